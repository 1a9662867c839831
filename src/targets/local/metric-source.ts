import { UnavailableError } from '../../core/errors.js';
import type { MetricSource, VersionWindow } from '../../core/ports.js';
import { connectRuntime } from './client.js';
import { localPaths } from './paths.js';

/**
 * Exact per-version windows from the local runtime's in-memory request history (the daemon's
 * ring buffers), not sampled from cumulative Prometheus counters. Does not start the daemon: a
 * runtime that is not running has no measurements, which a gate must see as a query error.
 */
export class LocalMetricSource implements MetricSource {
  constructor(private readonly opts: { home: string }) {}

  async window(model: string, version: string, sinceMs: number): Promise<VersionWindow> {
    const client = await connectRuntime(this.opts.home);
    if (!client) {
      throw new UnavailableError(`the local runtime of ${this.opts.home} is not running: no measurements of ${model}@${version}`, {
        hint: `start it with \`modelctl local up\`; see ${localPaths(this.opts.home).daemonLog}`,
      });
    }
    const w = await client.window(model, version, sinceMs);
    return {
      requests: w.requests,
      errors: w.errors,
      latenciesMs: w.latenciesMs,
      scores: w.scores,
      shadowCompared: w.shadowCompared,
      shadowAgreed: w.shadowAgreed,
      // A daemon from before this field existed does not send it: not measured.
      ...(typeof w.unreadable === 'number' ? { unreadable: w.unreadable } : {}),
    };
  }

  /** The version's own port on 127.0.0.1 (the router picks by split; a check must reach one version). */
  async endpoint(model: string, version: string): Promise<string | null> {
    const client = await connectRuntime(this.opts.home);
    if (!client) return null;
    const v = await client.version(model, version).catch(() => null);
    return v?.port ? `http://127.0.0.1:${v.port}` : null;
  }
}
