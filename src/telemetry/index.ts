import type { RolloutEvent } from '../rollout/engine.js';
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
  /** A failed push (stderr); never an error of the command. */
  warn?: (message: string) => void;
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
  private failures = 0;
  /** Pushes attempted (tests and the JSON result of a command may look). */
  pushes = 0;

  constructor(private readonly opts: TelemetryOptions) {
    this.metrics = new RolloutMetrics({ model: opts.model, target: opts.target });
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
    if (!this.opts.pushgateway) return;
    while (this.inFlight) await this.inFlight;
    if (!this.metrics.active) return;
    this.pending = false;
    await this.pushOnce();
  }

  private schedule(): void {
    if (!this.opts.pushgateway) return;
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
    const gw = this.opts.pushgateway!;
    this.pushes++;
    try {
      await pushRegistry(gw, this.metrics.registry, PUSH_JOB, { model: this.opts.model, target: this.opts.target });
    } catch (err) {
      this.failures++;
      // One warning per command is enough to say the Pushgateway is missing the story.
      if (this.failures === 1) {
        const why = err instanceof Error ? (err.name === 'TimeoutError' ? `no answer within ${gw.timeoutMs} ms` : describeFetchError(err)) : String(err);
        this.opts.warn?.(`Warning: could not push telemetry to the Pushgateway ${gw.url}: ${why}`);
      }
    }
  }
}

function describeFetchError(err: Error): string {
  const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ? `${err.message} (${cause.code})` : cause?.message ? `${err.message}: ${cause.message}` : err.message;
}
