import { Flags } from '@oclif/core';
import { BaseCommand } from '../../cli/base-command.js';
import type { LocalStatus } from '../../targets/local/status.js';

export default class LocalUp extends BaseCommand {
  static override summary = 'Start the local runtime (router + version processes) in the background.';
  static override description = `Starts the embedded runtime daemon for this MODELCTL_HOME if it is not running (idempotent), and
restores the versions and traffic it ran before. The router listens on 127.0.0.1 only:
http://127.0.0.1:<port>/<model>/<path> goes to a version of <model> per its traffic split.

Port: --port, else MODELCTL_LOCAL_PORT, else \`local: {port: N}\` in modelctl.yaml, else the port it
had last time, else 8700 (or any free port when 8700 is taken). --port 0 picks a free port.`;
  static override examples = ['<%= config.bin %> local up', '<%= config.bin %> local up --port 9000 --json'];
  static override flags = {
    port: Flags.integer({ description: 'Router port on 127.0.0.1 (0 = any free port).', env: 'MODELCTL_LOCAL_PORT', min: 0, max: 65535 }),
  };

  protected async execute(): Promise<unknown> {
    const { flags } = await this.parse(LocalUp);
    const { resolveLocalPort } = await import('../../targets/local/config.js');
    const { ensureRuntime } = await import('../../targets/local/client.js');
    const { localStatus } = await import('../../targets/local/status.js');
    const ctx = await this.context();
    const home = ctx.home();
    const { client, started } = await ensureRuntime({ home, port: await resolveLocalPort(flags.port, ctx.env, () => ctx.localConfig()) });
    return { started, ...(await localStatus(home, client)) };
  }

  protected human(r: LocalStatus & { started: boolean }): string {
    const lines = [`${r.started ? 'Started' : 'Already running:'} local runtime (pid ${r.pid}) at ${r.url}`, `  metrics: ${r.metricsUrl}`];
    if (r.versions.length) lines.push(`  ${r.versions.length} version(s): ${r.versions.map((v) => `${v.model}@${v.version}${v.ready ? '' : ` (${v.status})`}`).join(', ')}`);
    return lines.join('\n');
  }
}
