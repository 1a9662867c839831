import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../cli/base-command.js';
import { NotFoundError, UnavailableError } from '../../core/errors.js';
import { table } from '../../cli/format.js';
import type { LoadReport } from '../../targets/local/load.js';

export default class LocalLoad extends BaseCommand {
  static override summary = 'Send steady test traffic to a model on the local runtime; print per-version counts and latency.';
  static override description = `Open-loop load: requests go out at --rps for --duration whatever the answers do, as JSON
{"text": …} POSTs to http://127.0.0.1:<port>/<model><path>, cycling through --text values (or a
built-in set of review sentences). Prints requests, errors (5xx and failed connections) and latency
p50/p99 per version (from x-model-version), so you can watch a canary take its share. Errors are every
answer that is not a success (4xx, 5xx) and failed connections. A model the runtime does not route is
refused before any load is sent.
Bounded: at most 2000 rps, 10 minutes, 200 000 requests and 256 requests in flight; loopback only.`;
  static override examples = [
    '<%= config.bin %> local load sentiment',
    '<%= config.bin %> local load sentiment --rps 200 --duration 1m',
    '<%= config.bin %> local load sentiment --text "I loved it" --text "Awful" --json',
  ];
  static override args = { model: Args.string({ description: 'Model name (the first path segment on the router).', required: true }) };
  static override flags = {
    rps: Flags.integer({ description: 'Requests per second.', default: 50, min: 1, max: 2000 }),
    duration: Flags.string({ description: 'How long: 30s, 500ms, 2m, 1m30s.', default: '30s' }),
    text: Flags.string({ description: 'Text to send (repeatable; cycled through).', multiple: true }),
    path: Flags.string({ description: 'Path below the model.', default: '/predict' }),
  };

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(LocalLoad);
    const [{ runLoad, checkLoadBounds }, { parseDuration }] = await Promise.all([import('../../targets/local/load.js'), import('../../core/units.js')]);
    const { connectRuntime } = await import('../../targets/local/client.js');
    const durationMs = parseDuration(flags.duration, '--duration');
    checkLoadBounds(flags.rps, durationMs);
    const client = await connectRuntime((await this.context()).home());
    if (!client) throw new UnavailableError('the local runtime is not running', { hint: 'start it with `modelctl local up` and deploy a version' });
    const routed = Object.keys((await client.state()).traffic);
    if (!routed.includes(args.model)) {
      throw new NotFoundError(`the local runtime routes no model named ${args.model}${routed.length ? ` (it routes: ${routed.join(', ')})` : ' (it routes none yet)'}`, {
        hint: `deploy it first: modelctl deploy ${args.model}@<version>`,
      });
    }
    this.note(`sending ${flags.rps} rps for ${durationMs / 1000} s to ${client.url}/${args.model}${flags.path}`);
    return runLoad({
      url: client.url,
      model: args.model,
      path: flags.path.startsWith('/') ? flags.path : `/${flags.path}`,
      rps: flags.rps,
      durationMs,
      texts: flags.text,
      onTick: (answered, total) => this.note(`  ${answered}/${total} answered`),
    });
  }

  protected human(r: LoadReport): string {
    const ms = (v: number | null) => (v === null ? '-' : `${v} ms`);
    const lines = [
      `${r.answered} answered of ${r.sent} sent to ${r.target}/${r.model} (${r.rps} rps, ${r.durationMs / 1000} s)${r.skipped ? `, ${r.skipped} skipped (too many in flight)` : ''}`,
      `errors: ${r.errors}   latency p50 ${ms(r.latencyMs.p50)}  p99 ${ms(r.latencyMs.p99)}  max ${ms(r.latencyMs.max)}`,
      '',
      table(
        ['VERSION', 'REQUESTS', 'SHARE', 'ERRORS', 'P50', 'P99'],
        r.versions.map((v) => [v.version, String(v.requests), `${((100 * v.requests) / Math.max(1, r.answered)).toFixed(1)}%`, String(v.errors), ms(v.p50Ms), ms(v.p99Ms)]),
      ),
      '',
      `statuses: ${Object.entries(r.statuses).map(([s, n]) => `${s}×${n}`).join(' ')}`,
    ];
    return lines.join('\n');
  }
}
