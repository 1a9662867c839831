import type { MetricSource } from '../rollout/contracts.js';
import { describeLimit } from './compare.js';
import type { GateContext, GateEvaluator, GatePhase, GateResult, GateSpec } from './contracts.js';
import { LocalGateEvaluator } from './local.js';

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

  kindOf(gate: GateSpec): string {
    return gate.kind ?? 'local';
  }

  validate(gate: GateSpec): string[] {
    const ev = this.kinds.get(this.kindOf(gate));
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
        reason: `no evaluator for gate kind ${JSON.stringify(this.kindOf(gate))}`,
        query: '',
        at: ctx.now,
      };
    }
    return ev.evaluate(gate, ctx, source);
  }
}

/** The registry modelctl uses by default: local gates only (for now). */
export function defaultGateRegistry(): GateRegistry {
  return new GateRegistry().register('local', new LocalGateEvaluator());
}
