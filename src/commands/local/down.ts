import { Flags } from '@oclif/core';
import { BaseCommand } from '../../cli/base-command.js';

export default class LocalDown extends BaseCommand {
  static override summary = 'Stop the local runtime and every version it runs.';
  static override description = `Stops the router (in-flight requests finish first), then every version process, then the daemon.
The versions and traffic splits are kept: the next \`local up\` (or deploy) restores them. --forget
clears them too. Pulled bundles stay in $MODELCTL_HOME/local/bundles.
Refused (exit 5) while a deploy drives a rollout on it: stop that first (\`modelctl abort <model>\`, or
Ctrl-C in its terminal), or the rollout would be judged on a runtime that is going away.`;
  static override examples = ['<%= config.bin %> local down', '<%= config.bin %> local down --forget --json'];
  static override flags = {
    forget: Flags.boolean({ description: 'Also forget the deployed versions and traffic (a clean slate for the next `local up`).' }),
  };

  protected async execute(): Promise<unknown> {
    const { flags } = await this.parse(LocalDown);
    const { stopRuntime } = await import('../../targets/local/client.js');
    const home = (await this.context()).home();
    const { liveLocalRollouts } = await import('../../services/rollouts.js');
    const live = await liveLocalRollouts(home);
    if (live.length > 0) {
      const { LockedError } = await import('../../ledger/lock.js');
      const what = live.map((r) => `${r.model}@${r.version} (${r.phase}, driven by ${r.holder})`).join(', ');
      throw new LockedError(`the local runtime serves ${live.length === 1 ? 'a rollout' : 'rollouts'} in progress: ${what}; stopping it now would pull the versions from under ${live.length === 1 ? 'it' : 'them'}`, {
        hint: `stop ${live.length === 1 ? 'it' : 'them'} first: ${live.map((r) => `modelctl abort ${r.model}`).join('; ')} (all traffic back on stable), or Ctrl-C the deploy; then modelctl local down`,
        details: { rollouts: live },
      });
    }
    return { home, forgot: flags.forget, ...(await stopRuntime(home, { forget: flags.forget })) };
  }

  protected human(r: { stopped: boolean; pid: number | null; forgot: boolean }): string {
    const what = r.stopped ? `Stopped the local runtime (pid ${r.pid}).` : 'The local runtime was not running.';
    return r.forgot ? `${what} Versions and traffic forgotten.` : what;
  }
}
