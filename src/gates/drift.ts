import type { MetricSource } from '../core/ports.js';
import { fmt, measurePair, validateCommon } from './compare.js';
import type { GateContext, GateEvaluator } from './contracts.js';
import { strayField, type DriftGate, type GatePhase, type GateResult } from '../core/gates.js';
import { ks, psi } from './stats/distribution.js';

/**
 * `kind: drift` gates: has the candidate's output distribution (`scores[]` of its window, the
 * bundle's numeric answer field) moved away from the stable version's over the same window?
 *
 * - `metric: psi` — population stability index, candidate against stable, in `buckets` (default
 *   10) cut at stable's quantiles, proportions floored at ε = 1e-4. Conventional thresholds:
 *   PSI < 0.1 no meaningful shift; 0.1–0.25 moderate (worth a look); > 0.25 major (act). `max`
 *   defaults to 0.2: fail on the upper part of "moderate".
 * - `metric: ks` — two-sample Kolmogorov-Smirnov statistic D = sup |F_candidate − F_stable|
 *   (reported with its asymptotic p-value), judged against `max` (required: there is no
 *   conventional D threshold; 0.1 is a common start).
 *
 * In shadow the candidate answers mirrored copies of stable's requests, the cleanest comparison
 * there is; in canary both serve disjoint random shares of the same traffic. Fewer than
 * `minSamples` scores on either side (default 100) or no stable version → inconclusive.
 */

export const DRIFT_DEFAULTS = { psiMax: 0.2, buckets: 10, minSamples: 100 } as const;

const METRICS = ['psi', 'ks'];
const BOTH: GatePhase[] = ['shadow', 'canary'];

function psiReading(v: number): string {
  return v < 0.1 ? 'no meaningful shift (< 0.1)' : v <= 0.25 ? 'moderate shift (0.1–0.25)' : 'major shift (> 0.25)';
}

export class DriftGateEvaluator implements GateEvaluator<DriftGate> {
  validate(gate: DriftGate): string[] {
    const where = `gate ${JSON.stringify(gate.name ?? '')}`;
    const errs = validateCommon(gate).filter((e) => !e.includes(': no limit ('));
    if (!METRICS.includes(gate.metric)) errs.push(`${where}: kind drift measures psi or ks, not ${JSON.stringify(gate.metric)}`);
    if (gate.metric === 'ks' && gate.max === undefined) errs.push(`${where}: a ks gate needs max (the largest tolerated D, e.g. 0.1)`);
    if (gate.max !== undefined && !(gate.max >= 0)) errs.push(`${where}: max must be >= 0`);
    if (gate.buckets !== undefined && !(Number.isInteger(gate.buckets) && gate.buckets >= 2)) errs.push(`${where}: buckets must be a whole number >= 2`);
    if (gate.buckets !== undefined && gate.metric !== 'psi') errs.push(`${where}: buckets is for psi`);
    for (const f of ['min', 'relative', 'confidence', 'tolerance', 'maxDelta', 'direction', 'sequential', 'effectSize'] as const) {
      if (strayField(gate, f) !== undefined) errs.push(`${where}: ${f} does not apply to kind drift (its limit is max)`);
    }
    return errs;
  }

  phasesOf(gate: DriftGate): GatePhase[] {
    return gate.phases ?? BOTH;
  }

  async evaluate(gate: DriftGate, ctx: GateContext, source: MetricSource): Promise<GateResult> {
    const max = gate.max ?? (gate.metric === 'psi' ? DRIFT_DEFAULTS.psiMax : NaN);
    const minSamples = gate.minSamples ?? DRIFT_DEFAULTS.minSamples;
    const query = `drift:${gate.metric}(scores){model=${ctx.model},version=${ctx.candidate} vs ${ctx.stable ?? '(none)'}} over ${fmt((ctx.now - ctx.sinceMs) / 1000)} s since ${new Date(ctx.sinceMs).toISOString()}`;
    const base = { name: gate.name, query, at: ctx.now, limit: `<= ${fmt(max)}` };
    const result = (verdict: GateResult['verdict'], value: number | null, samples: number, reason: string): GateResult => ({ ...base, verdict, value, samples, reason });
    if (!METRICS.includes(gate.metric) || Number.isNaN(max)) return result('error', null, 0, `kind drift cannot judge ${JSON.stringify(gate.metric)}${Number.isNaN(max) ? ' without max' : ''}`);
    if (ctx.stable === null) return result('inconclusive', null, 0, 'no stable version to compare with');
    const pair = await measurePair(source, { ...ctx, stable: ctx.stable });
    if ('error' in pair) return result('error', null, 0, pair.error);
    const { cand, stab } = pair;
    const c = cand.scores.filter(Number.isFinite);
    const s = stab.scores.filter(Number.isFinite);
    if (c.length < minSamples || s.length < minSamples) {
      return result('inconclusive', null, c.length, `not enough data: ${minSamples} scores needed on each side (candidate ${c.length}, stable ${s.length})`);
    }
    const sides = `${c.length} candidate vs ${s.length} stable (${ctx.stable}) scores`;
    if (gate.metric === 'psi') {
      const r = psi(c, s, gate.buckets ?? DRIFT_DEFAULTS.buckets);
      const facts = `PSI ${fmt(r.psi)} over ${r.buckets} buckets cut at stable's quantiles, ${sides}: ${psiReading(r.psi)}`;
      return r.psi > max ? result('fail', r.psi, c.length, `${facts}; fails above ${fmt(max)}`) : result('pass', r.psi, c.length, `${facts}; within ${fmt(max)}`);
    }
    const r = ks(c, s);
    const facts = `KS D = ${fmt(r.d)} (p = ${r.p < 1e-4 ? r.p.toExponential(1) : fmt(r.p)}), ${sides}`;
    return r.d > max ? result('fail', r.d, c.length, `${facts}; fails when D > ${fmt(max)}`) : result('pass', r.d, c.length, `${facts}; within ${fmt(max)}`);
  }
}
