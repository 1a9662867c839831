import { BaseCommand } from '../../cli/base-command.js';
import { table } from '../../cli/format.js';
import { describeSplit, localStatus, type LocalStatus } from '../../targets/local/status.js';

export default class LocalStatusCommand extends BaseCommand {
  static override summary = 'Show the local runtime: URL, versions (pid, ready) and traffic per model.';
  static override description = `Exit code 0 whether or not it runs; "running" says which. When it is not running, the versions
and traffic listed are the ones \`local up\` would restore. A version that is not ready says why
(exit code and last stderr lines of a crash, the failing readiness probe…) and where its log is.`;
  static override examples = ['<%= config.bin %> local status', '<%= config.bin %> local status --json'];

  protected async execute(): Promise<unknown> {
    await this.parse(LocalStatusCommand);
    return localStatus((await this.context()).home());
  }

  protected human(r: LocalStatus): string {
    const head = r.running
      ? `Local runtime running (pid ${r.pid}) at ${r.url}\n  metrics: ${r.metricsUrl}`
      : 'Local runtime not running (start it with `modelctl local up`).';
    if (r.versions.length === 0) return `${head}\nNo versions deployed.`;
    const rows = r.versions.map((v) => [v.model, v.version, v.pid === null ? '-' : String(v.pid), v.ready ? 'yes' : 'no', v.status, String(v.restarts)]);
    const models = [...new Set([...r.versions.map((v) => v.model), ...Object.keys(r.traffic)])].sort();
    const problems = r.versions.filter((v) => !v.ready && r.running && v.reason).map((v) => `  ${v.model}@${v.version}: ${v.reason}`);
    return [
      head,
      '',
      table(['MODEL', 'VERSION', 'PID', 'READY', 'STATUS', 'RESTARTS'], rows),
      '',
      'Traffic:',
      ...models.map((m) => `  ${m}: ${describeSplit(r.traffic[m])}`),
      ...(problems.length ? ['', 'Not ready:', ...problems] : []),
    ].join('\n');
  }
}
