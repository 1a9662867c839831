import type { MetricSource, VersionWindow } from '../core/ports.js';
import { fmt, measurePair, validateCommon } from './compare.js';
import type { GateContext, GateEvaluator } from './contracts.js';
import { strayField, type GatePhase, type GateResult, type StatisticalGate } from '../core/gates.js';
import { type ConditionalPrior, conditionalMsprt, twoProportionZTest } from './stats/proportions.js';
import { type Direction, mannWhitneyU, percentile } from './stats/ranks.js';

/**
 * `kind: statistical` gates: the candidate against the stable version over the same window (same
 * traffic mix, same time of day, same load), judged by a hypothesis test instead of a threshold.
 *
 * - `metric: error-rate` — one-sided test of H0 "candidate's error rate <= stable's × (1 +
 *   tolerance) + maxDelta" (stats/proportions.ts). By default (`sequential`, the reason this kind
 *   exists) an exact mixture SPRT conditional on the errors (Beta mixture over the candidate's share of
 *   errors; see conditionalMsprt): an always-valid p-value, so checking every second does not raise the
 *   false-rollback rate above α = 1 − confidence per step, and a bad canary is caught as soon as
 *   the evidence is there rather than at the end of a fixed interval. `sequential: false` runs a
 *   fixed-sample two-proportion z-test at each look instead (only valid for ONE look per step).
 * - `metric: latency` / `latency-pNN` — Mann-Whitney U test of candidate vs stable latencies
 *   (Kayenta's judge), `direction` increase (default) | decrease | either, AND an effect size:
 *   the candidate's percentile (NN; the median for `latency`) must differ from stable's by at
 *   least `effectSize` (ratio, default 1.1) — with thousands of requests a 1% shift is
 *   "significant" and not worth a rollback. This one is a fixed-sample test: repeated looks inflate
 *   its α; give it a higher confidence or failureLimit >= 1 when it is checked often.
 *
 * Verdicts: fewer than `minSamples` on either side, or no stable version → inconclusive (never pass
 * on missing data). Otherwise fail when the test rejects H0 (and the effect is large enough),
 * pass when it does not: "no evidence of harm at this sample size", as in Kayenta.
 * `value` is the p-value; `limit` says "p < α"; the reason gives the statistic, the p-value, the
 * samples on each side and the rule, in words.
 */

export const STATISTICAL_DEFAULTS = {
  confidence: 0.98,
  tolerance: 0.25,
  maxDelta: 0,
  effectSize: 1.1,
  /** Per side. Spinnaker advises >= 50 data points per metric; the normal approximations need them too. */
  minSamples: 50,
} as const;

const LATENCY = /^latency(?:-p(\d+(?:\.\d+)?))?$/;
const BOTH: GatePhase[] = ['shadow', 'canary'];

export interface StatisticalOptions {
  /** The sequential error-rate test's Beta prior (speed only; validity holds for any). */
  prior?: ConditionalPrior;
}

function pct(x: number): string {
  return `${fmt(x * 100)}%`;
}

function pval(p: number): string {
  return p < 1e-4 ? p.toExponential(1) : fmt(p);
}

export class StatisticalGateEvaluator implements GateEvaluator<StatisticalGate> {
  private readonly prior: ConditionalPrior;

  constructor(opts: StatisticalOptions = {}) {
    this.prior = opts.prior ?? {};
  }

  validate(gate: StatisticalGate): string[] {
    const where = `gate ${JSON.stringify(gate.name ?? '')}`;
    // The shared checks, minus "no limit": a statistical gate's limit is its test.
    const errs = validateCommon(gate).filter((e) => !e.includes(': no limit ('));
    const isLatency = LATENCY.test(gate.metric);
    if (gate.metric !== 'error-rate' && !isLatency) {
      errs.push(`${where}: kind statistical measures error-rate, latency or latency-pNN, not ${JSON.stringify(gate.metric)}`);
    }
    if (gate.confidence !== undefined && !(gate.confidence > 0 && gate.confidence < 1)) errs.push(`${where}: confidence must be between 0 and 1, got ${gate.confidence}`);
    for (const [field, v] of [['tolerance', gate.tolerance], ['maxDelta', gate.maxDelta]] as const) {
      if (v !== undefined && !(Number.isFinite(v) && v >= 0)) errs.push(`${where}: ${field} must be a number >= 0, got ${v}`);
    }
    if (gate.effectSize !== undefined && !(Number.isFinite(gate.effectSize) && gate.effectSize >= 1)) errs.push(`${where}: effectSize is a ratio >= 1, got ${gate.effectSize}`);
    if (gate.direction !== undefined && !['increase', 'decrease', 'either'].includes(gate.direction)) errs.push(`${where}: direction must be increase, decrease or either`);
    if (gate.metric === 'error-rate') {
      if (gate.direction !== undefined && gate.direction !== 'increase') errs.push(`${where}: an error-rate gate only fails on an increase (drop direction)`);
      if (gate.effectSize !== undefined) errs.push(`${where}: effectSize is for latency; an error-rate gate uses tolerance and maxDelta`);
    } else if (isLatency) {
      const p = Number(LATENCY.exec(gate.metric)?.[1] ?? 50);
      if (!(p > 0 && p <= 100)) errs.push(`${where}: ${gate.metric}: the percentile must be in (0, 100]`);
      for (const f of ['tolerance', 'maxDelta', 'sequential'] as const) {
        if (gate[f] !== undefined) errs.push(`${where}: ${f} is for error-rate; a latency gate uses direction and effectSize`);
      }
    }
    for (const f of ['max', 'min', 'relative', 'buckets'] as const) {
      if (strayField(gate, f) !== undefined) errs.push(`${where}: ${f} does not apply to kind statistical (its limit is the test: confidence, tolerance, effectSize)`);
    }
    return errs;
  }

  phasesOf(gate: StatisticalGate): GatePhase[] {
    return gate.phases ?? BOTH;
  }

  async evaluate(gate: StatisticalGate, ctx: GateContext, source: MetricSource): Promise<GateResult> {
    const alpha = 1 - (gate.confidence ?? STATISTICAL_DEFAULTS.confidence);
    const minSamples = gate.minSamples ?? STATISTICAL_DEFAULTS.minSamples;
    const query = `statistical:${gate.metric}{model=${ctx.model},version=${ctx.candidate} vs ${ctx.stable ?? '(none)'}} over ${fmt((ctx.now - ctx.sinceMs) / 1000)} s since ${new Date(ctx.sinceMs).toISOString()}`;
    const limit = `p < ${fmt(alpha)} (confidence ${fmt(1 - alpha)})${gate.metric === 'error-rate' ? '' : `, effect >= ${fmt(gate.effectSize ?? STATISTICAL_DEFAULTS.effectSize)}×`}`;
    const base = { name: gate.name, query, at: ctx.now, limit };
    const result = (verdict: GateResult['verdict'], value: number | null, samples: number, reason: string, baseline?: GateResult['baseline']): GateResult => ({
      ...base,
      verdict,
      value,
      samples,
      reason,
      ...(baseline ? { baseline } : {}),
    });
    const isLatency = LATENCY.test(gate.metric);
    if (gate.metric !== 'error-rate' && !isLatency) return result('error', null, 0, `kind statistical cannot measure ${JSON.stringify(gate.metric)}`);
    if (ctx.stable === null) return result('inconclusive', null, 0, 'no stable version to compare with');

    const pair = await measurePair(source, { ...ctx, stable: ctx.stable });
    if ('error' in pair) return result('error', null, 0, pair.error);
    const { cand, stab } = pair;
    const baselineQuery = query.replace(`version=${ctx.candidate} vs ${ctx.stable}`, `version=${ctx.stable}`);
    return gate.metric === 'error-rate'
      ? this.errorRate(gate, cand, stab, alpha, minSamples, result, baselineQuery, ctx)
      : this.latency(gate, cand, stab, alpha, minSamples, result, baselineQuery, ctx);
  }

  private errorRate(
    gate: StatisticalGate,
    cand: VersionWindow,
    stab: VersionWindow,
    alpha: number,
    minSamples: number,
    result: (v: GateResult['verdict'], value: number | null, samples: number, reason: string, baseline?: GateResult['baseline']) => GateResult,
    baselineQuery: string,
    ctx: GateContext,
  ): GateResult {
    const j = judgeErrorRate(gate, { errors: cand.errors, requests: cand.requests }, { errors: stab.errors, requests: stab.requests }, ctx.stable ?? '', { alpha, minSamples, prior: this.prior });
    return result(j.verdict, j.value, j.samples, j.reason, j.stableRate === null ? undefined : { query: baselineQuery, value: j.stableRate });
  }

  private latency(
    gate: StatisticalGate,
    cand: VersionWindow,
    stab: VersionWindow,
    alpha: number,
    minSamples: number,
    result: (v: GateResult['verdict'], value: number | null, samples: number, reason: string, baseline?: GateResult['baseline']) => GateResult,
    baselineQuery: string,
    ctx: GateContext,
  ): GateResult {
    const nC = cand.latenciesMs.length;
    const nS = stab.latenciesMs.length;
    if (nC < minSamples || nS < minSamples) {
      return result('inconclusive', null, nC, `not enough data: ${minSamples} latencies needed on each side (candidate ${nC}, stable ${nS})`);
    }
    const direction: Direction = gate.direction ?? 'increase';
    const effectSize = gate.effectSize ?? STATISTICAL_DEFAULTS.effectSize;
    const pNum = Number(LATENCY.exec(gate.metric)?.[1] ?? 50);
    const qC = percentile(cand.latenciesMs, pNum)!;
    const qS = percentile(stab.latenciesMs, pNum)!;
    const ratio = qS > 0 ? qC / qS : qC > 0 ? Infinity : 1;
    const mw = mannWhitneyU(cand.latenciesMs, stab.latenciesMs, direction);
    const baseline = { query: baselineQuery, value: qS };
    const shifted = direction === 'increase' ? ratio >= effectSize : direction === 'decrease' ? ratio <= 1 / effectSize : ratio >= effectSize || ratio <= 1 / effectSize;
    const what = direction === 'either' ? 'differ from' : direction === 'increase' ? 'exceed' : 'fall below';
    const facts =
      `p${fmt(pNum)} candidate ${fmt(qC, 'ms')} vs stable ${ctx.stable} ${fmt(qS, 'ms')} (ratio ${fmt(ratio)}); ` +
      `Mann-Whitney U = ${fmt(mw.u)}, z = ${fmt(mw.z)}, p = ${pval(mw.p)} (${direction}) on ${nC} candidate and ${nS} stable latencies`;
    const rule = `fails when p < α ${fmt(alpha)} and the ratio is at least ${fmt(effectSize)}${direction === 'increase' ? '' : direction === 'decrease' ? ' downwards' : ' either way'}`;
    if (mw.p < alpha && shifted) return result('fail', mw.p, nC, `candidate latencies ${what} stable's: ${facts}; ${rule}`, baseline);
    const why = mw.p < alpha ? 'significant, but the shift is smaller than the effect size' : 'no significant shift';
    return result('pass', mw.p, nC, `${why}: ${facts}; ${rule}`, baseline);
  }
}

/** Error and request counts of one side over a window. */
export interface ErrorCounts {
  errors: number;
  requests: number;
}

export interface ErrorRateJudgement {
  verdict: 'pass' | 'fail' | 'inconclusive';
  /** The p-value (null when inconclusive). */
  value: number | null;
  /** The candidate's requests. */
  samples: number;
  reason: string;
  /** Stable's observed error rate (null when inconclusive). */
  stableRate: number | null;
}

/**
 * The error-rate decision of `kind: statistical` gates, pure: candidate counts against stable's
 * over the same window (whatever measured them: the local runtime or Prometheus). `alpha` and
 * `minSamples` default from the gate and STATISTICAL_DEFAULTS.
 */
export function judgeErrorRate(
  gate: Pick<StatisticalGate, 'confidence' | 'minSamples' | 'tolerance' | 'maxDelta' | 'sequential'>,
  cand: ErrorCounts,
  stab: ErrorCounts,
  stableName: string,
  opts: { alpha?: number; minSamples?: number; prior?: ConditionalPrior } = {},
): ErrorRateJudgement {
  const alpha = opts.alpha ?? 1 - (gate.confidence ?? STATISTICAL_DEFAULTS.confidence);
  const minSamples = opts.minSamples ?? gate.minSamples ?? STATISTICAL_DEFAULTS.minSamples;
  const counts = `candidate ${cand.errors}/${cand.requests} failed, stable ${stab.errors}/${stab.requests}`;
  if (cand.requests < minSamples || stab.requests < minSamples) {
    return { verdict: 'inconclusive', value: null, samples: cand.requests, stableRate: null, reason: `not enough data: ${minSamples} requests needed on each side (${counts})` };
  }
  const tolerance = gate.tolerance ?? STATISTICAL_DEFAULTS.tolerance;
  const maxDelta = gate.maxDelta ?? STATISTICAL_DEFAULTS.maxDelta;
  const counted = { xC: cand.errors, nC: cand.requests, xS: stab.errors, nS: stab.requests, ratio: 1 + tolerance, delta: maxDelta };
  const sequential = gate.sequential ?? true;
  const margin = `${stableName} × ${fmt(1 + tolerance)}${maxDelta > 0 ? ` + ${fmt(maxDelta)}` : ''}`;
  let t: { pC: number; pS: number; p: number };
  let test: string;
  if (sequential) {
    const s = conditionalMsprt(counted, opts.prior ?? {});
    t = s;
    test =
      `sequential test (always valid under repeated looks): ${s.k} of ${s.total} errors on the candidate where H0 allows a share of ${pct(s.pi0)}, ` +
      `likelihood ratio ${fmt(Math.exp(Math.min(700, s.logLambda)))}, always-valid p = ${pval(s.p)}`;
  } else {
    const z = twoProportionZTest(counted);
    t = z;
    test = `one-sided two-proportion z-test (valid for one look): z = ${fmt(z.z)}, p = ${pval(z.p)}`;
  }
  const rates = `candidate ${pct(t.pC)} (${cand.errors}/${cand.requests}) vs stable ${pct(t.pS)} (${stab.errors}/${stab.requests})`;
  if (t.p < alpha) {
    return { verdict: 'fail', value: t.p, samples: cand.requests, stableRate: t.pS, reason: `candidate's error rate is worse than ${margin}: ${rates}; ${test} < α ${fmt(alpha)}, so H0 (no worse than the margin) is rejected` };
  }
  return { verdict: 'pass', value: t.p, samples: cand.requests, stableRate: t.pS, reason: `no evidence the error rate is worse than ${margin}: ${rates}; ${test} >= α ${fmt(alpha)}` };
}
