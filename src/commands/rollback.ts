import { Args, Flags } from '@oclif/core';
import { StoreCommand, storeFlags } from '../cli/base-command.js';
import { ExitCode } from '../core/errors.js';
import { planFlags, rolloutFlagsOf, targetFlags, targetOptionsOf } from '../cli/rollout-flags.js';
import type { GithubReport } from '../cli/github/reports.js';
import { createRolloutView } from '../cli/rollout-view.js';
import { OUTCOME_EXIT_CODES } from '../core/model.js';
import { type RollbackResult, type RolloutResult } from '../rollout/results.js';
import { telemetryFlags, warnOnStderr } from '../telemetry/flags.js';

type Result = (RollbackResult & { deploy?: undefined }) | { action: 'redeployed'; deploy: RolloutResult };

export default class Rollback extends StoreCommand {
  static override summary = 'Switch all traffic to a warm version of the stable set, now.';
  static override description = `Instant: the last three stable versions stay running, so a rollback is a traffic switch (seconds), checked
by a health probe of the version it lands on. Default: the stable version before the serving one.
The version rolled back from leaves the stable set and is stopped (so the next rollback does not go
straight back to it) unless --keep-stable; the rollback is recorded in \`modelctl history\`.
An older stored version that is no longer warm needs --force, which deploys it afresh through the usual
canary steps and gates (plan flags apply). Refused while a rollout is in progress: use \`modelctl abort\`.`;
  static override examples = [
    '<%= config.bin %> rollback sentiment',
    '<%= config.bin %> rollback sentiment --to 1.2.0',
    '<%= config.bin %> rollback sentiment --keep-stable   # the version left stays warm in the stable set',
    '<%= config.bin %> rollback sentiment --to 0.9.0 --force --steps 50,100 --interval 30s',
  ];
  static override args = { model: Args.string({ description: 'Model name.', required: true }) };
  static override flags = {
    ...storeFlags,
    ...targetFlags,
    ...planFlags,
    ...telemetryFlags,
    to: Flags.string({ description: 'The version to serve (default: the previous stable version).' }),
    force: Flags.boolean({ description: 'Allow a version outside the stable set: deploy it afresh.' }),
    'keep-stable': Flags.boolean({ description: 'Keep the version rolled back from warm in the stable set (default: it leaves and is stopped).' }),
  };

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(Rollback);
    const store = await this.openStore(flags);
    const { openEngine, deploy, openTelemetry, teeEvents, withTelemetry } = await import('../services/rollouts.js');
    const view = createRolloutView({});
    try {
      const telemetry = await openTelemetry(args.model, flags.target, { pushgateway: flags.pushgateway, telemetry: true, warn: warnOnStderr });
      const onEvent = teeEvents((e) => view.onEvent(e), telemetry && ((e) => telemetry.onEvent(e)))!;
      const engine = await openEngine({ ...targetOptionsOf(flags), store, onEvent, note: (m) => this.note(m) });
      // A switch pushes its own story; needs-deploy pushes nothing here (the deploy below does).
      const r = await withTelemetry(telemetry, () => engine.rollback(args.model, { to: flags.to, force: flags.force, keepStable: flags['keep-stable'] }));
      if (r.action !== 'needs-deploy') return r;
      this.note(`${args.model}@${r.to} is not warm: deploying it afresh (--force)`);
      // A full rollout: Ctrl-C aborts it to stable, as for deploy.
      const { rolloutInterruption } = await import('../cli/rollout-interrupt.js');
      const interruption = rolloutInterruption(args.model, this.jsonMode);
      const result = (await deploy({
        ...targetOptionsOf(flags),
        store,
        note: (m) => this.note(m),
        ref: `${args.model}@${r.to}`,
        dryRun: false,
        resume: false,
        pushgateway: flags.pushgateway,
        telemetry: true,
        warn: warnOnStderr,
        flags: rolloutFlagsOf(flags),
        signal: interruption.signal,
        onEvent: (e) => {
          interruption.onEvent(e);
          view.onEvent(e);
        },
      }).finally(interruption.dispose)) as RolloutResult;
      return { action: 'redeployed', deploy: result } satisfies Result;
    } finally {
      view.close();
    }
  }

  protected override exitCodeOf(r: Result): ExitCode {
    if (r.action === 'redeployed') return r.deploy.interrupted ? ExitCode.interrupted : OUTCOME_EXIT_CODES[r.deploy.outcome];
    return r.healthy === false ? ExitCode.rolledBack : ExitCode.ok;
  }

  protected override async githubReport(r: Result): Promise<GithubReport> {
    const { bundleChange, rollbackReport, runPlace } = await import('../cli/github/reports.js');
    const model = r.action === 'redeployed' ? r.deploy.model : r.model;
    const { flags } = await this.parse(Rollback);
    return rollbackReport(r, await bundleChange(this.openedStore, r.deploy), `modelctl rollback ${model}`, await runPlace(flags, this.openedStore));
  }

  protected human(r: Result): string {
    if (r.action === 'redeployed') return `${r.deploy.model}@${r.deploy.version}: ${r.deploy.outcome} — ${r.deploy.reason}`;
    if (r.action === 'already-serving') return `${r.model}@${r.to} is already serving`;
    const left = r.from && !r.stableSet.includes(r.from) ? `\n${r.from} left the stable set${r.healthy ? ' and was stopped' : ''} (--keep-stable keeps it)` : '';
    return `${r.model}: all traffic on ${r.to} (was ${r.from})${r.healthy === false ? ' — but it is NOT healthy' : ', healthy'}\nstable set: ${r.stableSet.join(', ')}${left}`;
  }
}
