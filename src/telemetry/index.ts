import type { Registry } from 'prom-client';
import type { RolloutEvent } from '../core/events.js';
import { RolloutMetrics } from './metrics.js';
import { pushRegistry, type PushGateway } from './push.js';

export { RolloutMetrics, PHASES, ROLLBACK_REASONS } from './metrics.js';
export { parsePushgateway, pushgatewayUrlOf, groupUrl, DEFAULT_PUSH_TIMEOUT_MS, type PushGateway } from './push.js';

/** The Pushgateway job of every modelctl push; the group is {model, target}. */
export const PUSH_JOB = 'modelctl';

export interface TelemetryOptions {
  model: string;
  target: string;
  /** Where to push (none: the metrics are only kept in memory). */
  pushgateway?: PushGateway | undefined;
  /** Other places that get the same state at the same moments (e.g. the local runtime's /metrics). */
  sinks?: TelemetrySink[];
  /** A failed push (stderr); never an error of the command. */
  warn?: (message: string) => void;
}

/** A destination of the rollout metrics besides the Pushgateway. */
export interface TelemetrySink {
  name: string;
  push(registry: Registry): Promise<void>;
  /** Its per-push timeout, for the warning when it does not answer. */
  timeoutMs?: number;
}

/**
 * The telemetry of one command: the metrics, fed by the engine's events, pushed to the
 * Pushgateway at each phase change (at most one push in flight and one pending: pushes never
 * pile up, and the pending one sends the latest state) and once at the end (`flush`).
 */
export class RolloutTelemetry {
  readonly metrics: RolloutMetrics;
  private inFlight: Promise<void> | null = null;
  private pending = false;
  private readonly failures = new Map<string, number>();
  private readonly sinks: TelemetrySink[];
  /** Pushes attempted (tests and the JSON result of a command may look). */
  pushes = 0;

  constructor(private readonly opts: TelemetryOptions) {
    this.metrics = new RolloutMetrics({ model: opts.model, target: opts.target });
    const gw = opts.pushgateway;
    this.sinks = [
      ...(gw ? [{ name: `the Pushgateway ${gw.url}`, push: (r: Registry) => pushRegistry(gw, r, PUSH_JOB, { model: opts.model, target: opts.target }), timeoutMs: gw.timeoutMs }] : []),
      ...(opts.sinks ?? []),
    ];
  }

  /** Feed one engine event (pass this as, or call it from, the engine's onEvent). */
  onEvent(e: RolloutEvent): void {
    try {
      if (this.metrics.onEvent(e)) this.schedule();
    } catch (err) {
      // Telemetry never breaks a rollout.
      this.opts.warn?.(`telemetry: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** The command failed: the rollout is recorded as interrupted. */
  interrupted(at = Date.now()): void {
    this.metrics.interrupted(at);
  }

  /**
   * The final push (waits for one in flight first). Never throws. A command that changed nothing
   * (the version already serves, a refused rollback) pushes nothing: the group keeps the last
   * rollout's story instead of being replaced by zeros.
   */
  async flush(): Promise<void> {
    if (this.sinks.length === 0) return;
    while (this.inFlight) await this.inFlight;
    if (!this.metrics.active) return;
    this.pending = false;
    await this.pushOnce();
  }

  private schedule(): void {
    if (this.sinks.length === 0) return;
    if (this.inFlight) {
      this.pending = true;
      return;
    }
    this.inFlight = (async () => {
      try {
        do {
          this.pending = false;
          await this.pushOnce();
        } while (this.pending);
      } finally {
        this.inFlight = null;
      }
    })();
  }

  private async pushOnce(): Promise<void> {
    this.pushes++;
    await Promise.all(
      this.sinks.map(async (sink) => {
        try {
          await sink.push(this.metrics.registry);
        } catch (err) {
          const failures = (this.failures.get(sink.name) ?? 0) + 1;
          this.failures.set(sink.name, failures);
          // One warning per destination and command is enough to say it is missing the story.
          if (failures === 1) {
            const why = err instanceof Error ? (err.name === 'TimeoutError' && sink.timeoutMs ? `no answer within ${sink.timeoutMs} ms` : describeFetchError(err)) : String(err);
            this.opts.warn?.(`Warning: could not push telemetry to ${sink.name}: ${why}`);
          }
        }
      }),
    );
  }
}

function describeFetchError(err: Error): string {
  const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ? `${err.message} (${cause.code})` : cause?.message ? `${err.message}: ${cause.message}` : err.message;
}
