import type { GateResult, GateSpec } from '../core/gates.js';
import type { GateTally } from '../ledger/model.js';

/**
 * The verdict of one step from its gates' measurements, with Argo Rollouts' analysis semantics
 * (ANCHORS.md): per gate, failed measurements beyond `failureLimit` fail the step, query errors
 * beyond `consecutiveErrorLimit` (reset by any good measurement) fail it, inconclusive ones beyond
 * `inconclusiveLimit` hold it for a human; a `critical` gate fails it on its first failure; a
 * `dryRun` gate is measured and reported, never counted.
 *
 * One departure, on purpose: windows grow from the start of the step, so the first checks of a
 * low-traffic canary have too few samples by construction. Inconclusive measurements BEFORE a
 * gate's first conclusive (pass/fail) one in the step are warm-up: reported, not counted (else
 * the default inconclusiveLimit of 0 would hold every 5% canary at its first check — the Flagger
 * "no values found" pain). Inconclusive measurements after that (the data went away) count.
 * The end-of-bake rule then makes missing data safe: a step passes only if every gating gate's
 * LATEST measurement passed; an inconclusive, errored or missing one holds, a failed one fails.
 */

export const DEFAULTS = { failureLimit: 0, inconclusiveLimit: 0, consecutiveErrorLimit: 4 } as const;

export type StepDecision =
  | { kind: 'continue' }
  | { kind: 'pass' }
  | { kind: 'fail'; gate: string; reason: string }
  | { kind: 'hold'; gate: string; reason: string };

interface Tally extends GateTally {
  spec: GateSpec;
  /** A pass or fail was seen in this step: later inconclusive results count (see above). */
  warmedUp: boolean;
  latest: GateResult | null;
}

export class StepAnalysis {
  private readonly tallies: Tally[];

  constructor(gates: GateSpec[]) {
    this.tallies = gates.map((spec) => ({
      spec,
      name: spec.name,
      measurements: 0,
      failed: 0,
      inconclusive: 0,
      consecutiveErrors: 0,
      warmedUp: false,
      latest: null,
    }));
  }

  record(result: GateResult): void {
    const t = this.tallies.find((x) => x.name === result.name);
    if (!t) throw new Error(`bug: result for unknown gate ${result.name}`);
    t.latest = result;
    if (result.verdict === 'error') {
      t.consecutiveErrors++;
      return;
    }
    // Any answer from the source, even "not enough data", proves the query works (Argo resets too).
    t.consecutiveErrors = 0;
    t.measurements++;
    if (result.verdict === 'fail') t.failed++;
    if (result.verdict === 'pass' || result.verdict === 'fail') t.warmedUp = true;
    if (result.verdict === 'inconclusive' && t.warmedUp) t.inconclusive++;
  }

  /**
   * After a check: fail or hold now if a limit is exceeded; at the end of the bake apply the
   * latest-must-pass rule. Failures win over holds: a bad candidate leaves traffic at once.
   */
  decide(atEnd: boolean): StepDecision {
    const gating = this.tallies.filter((t) => !t.spec.dryRun);
    let hold: StepDecision | null = null;
    for (const t of gating) {
      const reason = t.latest?.reason ?? '';
      if (t.spec.critical && t.latest?.verdict === 'fail') {
        return { kind: 'fail', gate: t.name, reason: `critical gate ${t.name} failed: ${reason}` };
      }
      const failureLimit = t.spec.failureLimit ?? DEFAULTS.failureLimit;
      if (t.failed > failureLimit) {
        return { kind: 'fail', gate: t.name, reason: `gate ${t.name} failed ${t.failed} measurement(s), limit ${failureLimit}: ${reason}` };
      }
      const errorLimit = t.spec.consecutiveErrorLimit ?? DEFAULTS.consecutiveErrorLimit;
      if (t.consecutiveErrors > errorLimit) {
        return { kind: 'fail', gate: t.name, reason: `gate ${t.name}: ${t.consecutiveErrors} consecutive query errors, limit ${errorLimit}: ${reason}` };
      }
      const inconclusiveLimit = t.spec.inconclusiveLimit ?? DEFAULTS.inconclusiveLimit;
      if (!hold && t.inconclusive > inconclusiveLimit) {
        hold = unsure(t, `gate ${t.name} inconclusive ${t.inconclusive} time(s), limit ${inconclusiveLimit}: ${reason}`);
      }
    }
    if (hold) return hold;
    if (!atEnd) return { kind: 'continue' };
    for (const t of gating) {
      if (t.latest?.verdict === 'fail') return { kind: 'fail', gate: t.name, reason: `gate ${t.name} failed at the end of the step: ${t.latest.reason}` };
    }
    for (const t of gating) {
      if (!t.latest) return unsure(t, `gate ${t.name} was never measured in this step (initial delay longer than the bake?)`);
      if (t.latest.verdict !== 'pass') return unsure(t, `gate ${t.name} is ${t.latest.verdict} at the end of the step: ${t.latest.reason}`);
    }
    return { kind: 'pass' };
  }

  /** The latest result of every gate measured so far (dry-run ones included): the evidence. */
  evidence(): GateResult[] {
    return this.tallies.flatMap((t) => (t.latest ? [t.latest] : []));
  }

  counts(): GateTally[] {
    return this.tallies.map(({ name, measurements, failed, inconclusive, consecutiveErrors }) => ({ name, measurements, failed, inconclusive, consecutiveErrors }));
  }
}

/** No decision from the data: hold for a human, unless the gate says to roll back instead. */
function unsure(t: { name: string; spec: { onInconclusive?: 'hold' | 'rollback' } }, reason: string): StepDecision {
  return t.spec.onInconclusive === 'rollback'
    ? { kind: 'fail', gate: t.name, reason: `${reason} (onInconclusive: rollback)` }
    : { kind: 'hold', gate: t.name, reason };
}
