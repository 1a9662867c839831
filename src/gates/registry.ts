import type { MetricSource } from '../core/ports.js';
import { CommandGateEvaluator } from './command.js';
import { describeLimit } from './compare.js';
import { type GateContext, type GateEvaluator } from './contracts.js';
import { strayField, type GatePhase, type GateResult, type GateSpec, usesPrometheusSource } from '../core/gates.js';
import { DriftGateEvaluator } from './drift.js';
import { EvalGateEvaluator } from './evaluation.js';
import { HttpGateEvaluator } from './http.js';
import { LocalGateEvaluator } from './local.js';
import { StatisticalGateEvaluator } from './statistical.js';

/**
 * One GateEvaluator that dispatches on `gate.kind` ('local' when absent). The Prometheus,
 * statistical (Mann-Whitney) and drift evaluators of the next issue register here; the engine
 * only ever sees a GateEvaluator.
 */
export class GateRegistry implements GateEvaluator {
  private readonly kinds = new Map<string, GateEvaluator>();

  register(kind: string, evaluator: GateEvaluator): this {
    this.kinds.set(kind, evaluator);
    return this;
  }

  /**
   * The gate's `kind`; else 'prometheus' for a gate with a query, 'local' for a metric. Statistical
   * and drift gates fed by Prometheus (`source: prometheus`, errorsQuery/totalQuery/bucketsQuery)
   * go to PROMETHEUS_STATS_KIND.
   */
  kindOf(gate: GateSpec): string {
    if ((gate.kind === 'statistical' || gate.kind === 'drift') && usesPrometheusSource(gate)) return PROMETHEUS_STATS_KIND;
    // A gate with a query and no kind can only come untyped (toGate always sets kind prometheus).
    return gate.kind ?? (strayField(gate, 'query') !== undefined ? 'prometheus' : 'local');
  }

  validate(gate: GateSpec): string[] {
    const ev = this.kinds.get(this.kindOf(gate));
    if (!ev && needsPrometheus(this.kindOf(gate))) return [`gate ${JSON.stringify(gate.name)}: ${PROMETHEUS_NOT_CONFIGURED}`];
    if (!ev) return [`gate ${JSON.stringify(gate.name)}: unknown kind ${JSON.stringify(this.kindOf(gate))} (known: ${[...this.kinds.keys()].join(', ')})`];
    return ev.validate?.(gate) ?? [];
  }

  phasesOf(gate: GateSpec): GatePhase[] {
    return gate.phases ?? this.kinds.get(this.kindOf(gate))?.phasesOf?.(gate) ?? ['shadow', 'canary'];
  }

  async evaluate(gate: GateSpec, ctx: GateContext, source: MetricSource): Promise<GateResult> {
    const ev = this.kinds.get(this.kindOf(gate));
    if (!ev) {
      return {
        name: gate.name,
        verdict: 'error',
        value: null,
        limit: describeLimit(gate),
        samples: 0,
        reason: needsPrometheus(this.kindOf(gate)) ? PROMETHEUS_NOT_CONFIGURED : `no evaluator for gate kind ${JSON.stringify(this.kindOf(gate))}`,
        query: '',
        at: ctx.now,
      };
    }
    return ev.evaluate(gate, ctx, source);
  }
}

/** Registry key of the Prometheus-fed statistical and drift gates (src/gates/prometheus-stats.ts). */
export const PROMETHEUS_STATS_KIND = 'prometheus-stats';

function needsPrometheus(kind: string): boolean {
  return kind === 'prometheus' || kind === PROMETHEUS_STATS_KIND;
}

/** Why a query gate cannot run; the hint names every place a URL can come from. */
export const PROMETHEUS_NOT_CONFIGURED =
  'query gates need a Prometheus URL: set MODELCTL_PROMETHEUS_URL (or --prometheus-url where a command has it) or prometheus.url in modelctl.yaml';

/**
 * The registry modelctl uses by default: local gates, statistical and drift tests over the same
 * local windows, and the user's own checks (kind command and http).
 */
export function defaultGateRegistry(): GateRegistry {
  return new GateRegistry()
    .register('local', new LocalGateEvaluator())
    .register('statistical', new StatisticalGateEvaluator())
    .register('drift', new DriftGateEvaluator())
    .register('command', new CommandGateEvaluator())
    .register('http', new HttpGateEvaluator())
    .register('eval', new EvalGateEvaluator());
}
