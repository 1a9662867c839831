import type { GatePhase, GateResult, GateSpec } from '../core/gates.js';
import type { MetricSource } from '../core/ports.js';

export interface GateContext {
  model: string;
  candidate: string;
  /** The serving stable version; null on the very first deploy. */
  stable: string | null;
  /** Start of the measurement window (ms). */
  sinceMs: number;
  now: number;
  /** Which phase is measuring (shadow windows hold mirrored requests only). */
  phase?: GatePhase;
  /**
   * The rollout was interrupted: checks that run for long (kind command, http) stop at once and
   * report an error. Optional: a caller that passes none waits for their own timeouts.
   */
  signal?: AbortSignal;
}

/**
 * Evaluates gates of one kind (G) against a metric source; the registry dispatches on `kind`, so an
 * evaluator of one kind only ever sees gates of that kind. the Prometheus/statistical gates plug in here. */
export interface GateEvaluator<G extends GateSpec = GateSpec> {
  evaluate(gate: G, ctx: GateContext, source: MetricSource): Promise<GateResult>;
  /** Problems with a spec (unknown metric, no limit…), checked before a rollout starts. */
  validate?(gate: G): string[];
  /** The phases a gate runs in when it does not say (`gate.phases`). */
  phasesOf?(gate: G): GatePhase[];
}
