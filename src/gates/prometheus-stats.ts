import type { MetricSource } from '../core/ports.js';
import { fmt } from './compare.js';
import type { GateContext, GateEvaluator } from './contracts.js';
import { strayField, type DriftGate, type GatePhase, type StatisticalGate, type StatisticsGate } from '../core/gates.js';
import { DRIFT_DEFAULTS, DriftGateEvaluator } from './drift.js';
import { PrometheusError, type PromQuerier, type PromSample } from './prometheus.js';
import { PrometheusGateEvaluator, type PrometheusErrorCause, type PrometheusGateResult } from './prometheus-evaluator.js';
import { type ConditionalPrior } from './stats/proportions.js';
import { psiFromCounts } from './stats/distribution.js';
import { judgeErrorRate, STATISTICAL_DEFAULTS, StatisticalGateEvaluator } from './statistical.js';
import { checkTemplate, placeholdersOf, resolveTemplate, TemplateError } from './template.js';

/**
 * `kind: statistical` and `kind: drift` gates measured by Prometheus instead of the local runtime,
 * so they work on any target that exports metrics. Each query template is resolved twice, with
 * `{{version}}` = the candidate and `{{version}}` = the stable version (as relative query gates do),
 * at the same instant and over the same window (`{{interval}}`: the step so far, floored at the
 * evaluator's minimum interval).
 *
 * - `kind: statistical`, `metric: error-rate`, `errorsQuery` + `totalQuery`: two COUNTS over the
 *   window (e.g. `sum(increase(http_requests_total{version="{{version}}",code=~"5.."}[{{interval}}]))`)
 *   → the same decision as the local statistical gate (`judgeErrorRate`: the sequential test by
 *   default). `increase()` extrapolates to the window's edges and returns non-integers: the counts
 *   are rounded to whole requests (the reason says so, with the raw values).
 * - `kind: drift`, `metric: psi`, `bucketsQuery`: a histogram's cumulative buckets, one series per
 *   `le` (e.g. `sum by (le) (increase(model_score_bucket{version="{{version}}"}[{{interval}}]))`)
 *   → per-bucket counts (sorted by `le` numerically, `+Inf` last, differences of neighbours) →
 *   PSI of the candidate's bucket proportions against stable's, judged against `max` (default 0.2).
 *   The histogram's own buckets are the bins (not stable's quantiles, as the local gate cuts): PSI
 *   depends on the binning, so coarse or badly placed buckets under-report a shift.
 *
 * An empty result or NaN on either side, or too few requests/observations (`minSamples`) →
 * inconclusive. A refused query, an unreachable Prometheus, a bad template, or an answer of the
 * wrong shape (several series for a count, a bucket without `le`, negative counts) → verdict
 * 'error' naming the resolved query.
 */

export interface PrometheusStatsOptions {
  /** Extra template values (modelctl.yaml prometheus.vars, `--var`). */
  vars?: Readonly<Record<string, string>>;
  /** Floor of {{interval}} (default 1m). */
  minIntervalMs?: number;
  /** The sequential error-rate test's Beta prior (speed only). */
  prior?: ConditionalPrior;
}

const BOTH: GatePhase[] = ['shadow', 'canary'];
const QUERY_FIELDS = ['errorsQuery', 'totalQuery', 'bucketsQuery'] as const;
type QueryField = (typeof QUERY_FIELDS)[number];

class MeasureError extends Error {
  constructor(
    readonly cause_: PrometheusErrorCause,
    message: string,
    readonly query: string,
  ) {
    super(message);
  }
}

/** One per-`le` histogram bucket, cumulative as Prometheus stores it. */
export interface CumulativeBucket {
  le: number;
  /** The `le` label as sent (e.g. "+Inf", "0.5"). */
  leRaw: string;
  count: number;
}

/** Parse an `le` label ("0.25", "+Inf", "1e+06"). */
export function parseLe(raw: string): number {
  if (raw === '+Inf' || raw === 'Inf' || raw === 'inf' || raw === '+inf') return Number.POSITIVE_INFINITY;
  const n = raw.trim() === '' ? Number.NaN : Number(raw);
  if (Number.isNaN(n)) throw new Error(`unparseable le label ${JSON.stringify(raw)}`);
  return n;
}

/**
 * The samples of a `sum by (le) (…_bucket…)` query → buckets sorted by `le` numerically. Throws
 * (with a message for the user) on a series without `le`, a repeated `le` (not aggregated by le),
 * no `+Inf` bucket, or a negative/infinite count. NaN counts are kept (the caller reports no data).
 */
export function cumulativeBuckets(samples: readonly PromSample[]): CumulativeBucket[] {
  const seen = new Map<number, CumulativeBucket>();
  for (const s of samples) {
    const leRaw = s.labels.le;
    if (leRaw === undefined) throw new Error(`a series has no le label (${JSON.stringify(s.labels)}): the query must return a histogram's buckets, e.g. sum by (le) (increase(x_bucket{…}[{{interval}}]))`);
    const le = parseLe(leRaw);
    if (seen.has(le)) throw new Error(`two series have le="${leRaw}": aggregate by le only, e.g. sum by (le) (…)`);
    if (!Number.isNaN(s.value) && !(Number.isFinite(s.value) && s.value >= 0)) throw new Error(`bucket le="${leRaw}" has count ${s.raw}: counts must be finite and >= 0 (use increase(), not rate of a gauge)`);
    seen.set(le, { le, leRaw, count: s.value });
  }
  const sorted = [...seen.values()].sort((a, b) => a.le - b.le);
  if (sorted.length > 0 && sorted[sorted.length - 1]!.le !== Number.POSITIVE_INFINITY) {
    throw new Error('no le="+Inf" bucket: the query must keep every bucket of the histogram (the +Inf one holds the total)');
  }
  return sorted;
}

/**
 * Cumulative → per-bucket counts: bucket i holds (le[i−1], le[i]]. Neighbours are subtracted; a
 * small negative difference (increase() extrapolates each bucket series on its own) is clamped to 0.
 */
export function perBucketCounts(buckets: readonly CumulativeBucket[]): number[] {
  const out: number[] = [];
  let prev = 0;
  for (const b of buckets) {
    out.push(Math.max(0, b.count - prev));
    prev = Math.max(prev, b.count);
  }
  return out;
}

function psiReading(v: number): string {
  return v < 0.1 ? 'no meaningful shift (< 0.1)' : v <= 0.25 ? 'moderate shift (0.1–0.25)' : 'major shift (> 0.25)';
}

/** Promise.all, in parallel, but the first failure IN ORDER is the one reported (the candidate's before stable's). */
async function inOrder<T>(work: Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(work);
  return settled.map((r) => {
    if (r.status === 'rejected') throw r.reason;
    return r.value;
  });
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class PrometheusStatsGateEvaluator implements GateEvaluator<StatisticsGate> {
  private readonly templates: PrometheusGateEvaluator;
  private readonly prior: ConditionalPrior;
  private readonly statistical = new StatisticalGateEvaluator();
  private readonly drift = new DriftGateEvaluator();

  constructor(
    private readonly client: PromQuerier,
    opts: PrometheusStatsOptions = {},
  ) {
    this.templates = new PrometheusGateEvaluator(client, { ...(opts.vars ? { vars: opts.vars } : {}), ...(opts.minIntervalMs !== undefined ? { minIntervalMs: opts.minIntervalMs } : {}) });
    this.prior = opts.prior ?? {};
  }

  private fieldsFor(gate: StatisticsGate): QueryField[] {
    return gate.kind === 'drift' ? ['bucketsQuery'] : ['errorsQuery', 'totalQuery'];
  }

  validate(gate: StatisticsGate): string[] {
    const where = `gate ${JSON.stringify(gate.name ?? '')}`;
    // The local evaluators' checks of the shared fields (confidence, tolerance, max…), minus the source.
    const { source: _source, errorsQuery: _errors, totalQuery: _total, bucketsQuery: _buckets, ...local } = gate;
    const errs: string[] = [];
    if (gate.kind === 'statistical') {
      errs.push(...this.statistical.validate({ ...local, kind: 'statistical' }));
      if (gate.metric !== 'error-rate') errs.push(`${where}: a statistical gate from Prometheus measures error-rate (errorsQuery, totalQuery), not ${JSON.stringify(gate.metric)}`);
    } else if (gate.kind === 'drift') {
      errs.push(...this.drift.validate({ ...local, kind: 'drift' }).filter((e) => !e.includes('buckets is for psi')));
      if (gate.metric !== 'psi') errs.push(`${where}: a drift gate from Prometheus measures psi over a histogram's buckets (bucketsQuery), not ${JSON.stringify(gate.metric)}`);
      if (gate.buckets !== undefined) errs.push(`${where}: buckets does not apply with bucketsQuery (the histogram's own le buckets are the bins)`);
    } else {
      errs.push(`${where}: Prometheus statistics are for kind statistical or drift, not ${JSON.stringify(strayField(gate, 'kind'))}`);
      return errs;
    }
    if (strayField(gate, 'query') !== undefined) errs.push(`${where}: query is for kind prometheus; a ${gate.kind} gate from Prometheus uses ${this.fieldsFor(gate).join(' and ')}`);
    const wanted = this.fieldsFor(gate);
    for (const f of QUERY_FIELDS) {
      if (!wanted.includes(f) && gate[f] !== undefined) errs.push(`${where}: ${f} does not apply to kind ${gate.kind} (it uses ${wanted.join(' and ')})`);
    }
    for (const f of wanted) {
      const t = gate[f];
      if (t === undefined) {
        errs.push(`${where}: a ${gate.kind} gate from Prometheus needs ${f}`);
        continue;
      }
      errs.push(...checkTemplate(t, gate.name, this.templates.knownPlaceholders()).map((m) => `${m} (${f})`));
      let names: string[] = [];
      try {
        names = placeholdersOf(t, gate.name);
      } catch {
        /* reported above */
      }
      if (!names.includes('version')) errs.push(`${where}: ${f} must use {{version}}: it is resolved once for the candidate and once for stable`);
    }
    return errs;
  }

  phasesOf(gate: StatisticsGate): GatePhase[] {
    return gate.phases ?? BOTH;
  }

  async evaluate(gate: StatisticsGate, ctx: GateContext, _source?: MetricSource): Promise<PrometheusGateResult> {
    return gate.kind === 'drift' ? this.evaluateDrift(gate, ctx) : this.evaluateErrorRate(gate, ctx);
  }

  private resolve(gate: StatisticsGate, field: QueryField, ctx: GateContext, version: string): string {
    const t = gate[field];
    if (t === undefined) throw new MeasureError('template', `no ${field}`, '');
    try {
      return resolveTemplate(t, this.templates.values(ctx, version), gate.name);
    } catch (err) {
      throw new MeasureError('template', `${field}: ${messageOf(err)}`, t);
    }
  }

  private async run(query: string, nowMs: number): Promise<{ samples: PromSample[]; warnings: string[] }> {
    try {
      const r = await this.client.query(query, nowMs / 1000);
      return { samples: r.samples, warnings: r.warnings };
    } catch (err) {
      if (err instanceof PrometheusError) throw new MeasureError(err.kind, err.kind === 'query' ? `Prometheus refused the query: ${err.message}` : err.message, query);
      if (err instanceof TemplateError) throw new MeasureError('template', err.message, query);
      throw new MeasureError('unavailable', messageOf(err), query);
    }
  }

  /** One count: null for no data (empty result or NaN). */
  private async count(query: string, nowMs: number): Promise<{ value: number | null; raw: string | null; warnings: string[] }> {
    const r = await this.run(query, nowMs);
    if (r.samples.length === 0) return { value: null, raw: null, warnings: r.warnings };
    if (r.samples.length > 1) {
      throw new MeasureError('query', `the query returned ${r.samples.length} series, a count needs exactly one number: aggregate it, e.g. sum(increase(…))`, query);
    }
    const s = r.samples[0]!;
    if (Number.isNaN(s.value)) return { value: null, raw: s.raw, warnings: r.warnings };
    if (!Number.isFinite(s.value) || s.value < 0) throw new MeasureError('query', `the query returned ${s.raw}, not a count (a finite number >= 0)`, query);
    return { value: s.value, raw: s.raw, warnings: r.warnings };
  }

  private async evaluateErrorRate(gate: StatisticalGate, ctx: GateContext): Promise<PrometheusGateResult> {
    const alpha = 1 - (gate.confidence ?? STATISTICAL_DEFAULTS.confidence);
    const limit = `p < ${fmt(alpha)} (confidence ${fmt(1 - alpha)})`;
    const base = { name: gate.name, at: ctx.now, limit, samples: 0, value: null };
    const describe = (e: string, t: string) => `errors: ${e} / total: ${t}`;
    let query = describe(gate.errorsQuery ?? '', gate.totalQuery ?? '');
    if (gate.metric !== 'error-rate') return { ...base, query, verdict: 'error', errorCause: 'template', reason: `a statistical gate from Prometheus measures error-rate, not ${JSON.stringify(gate.metric)}` };
    let stableQuery = '';
    try {
      const qE = this.resolve(gate, 'errorsQuery', ctx, ctx.candidate);
      const qT = this.resolve(gate, 'totalQuery', ctx, ctx.candidate);
      query = describe(qE, qT);
      if (ctx.stable === null) return { ...base, query, verdict: 'inconclusive', reason: 'no stable version to compare with' };
      const sE = this.resolve(gate, 'errorsQuery', ctx, ctx.stable);
      const sT = this.resolve(gate, 'totalQuery', ctx, ctx.stable);
      stableQuery = describe(sE, sT);
      const [cE, cT, bE, bT] = await inOrder([qE, qT, sE, sT].map((q) => this.count(q, ctx.now)));
      const warnings = [...new Set([cE!, cT!, bE!, bT!].flatMap((m) => m.warnings))];
      const warn = warnings.length ? ` (Prometheus warns: ${warnings.join('; ')})` : '';
      const baselineOf = (v: number | null) => ({ baseline: { query: stableQuery, value: v } });
      const missing = (
        [
          [cE!, `errors of ${ctx.candidate}`],
          [cT!, `requests of ${ctx.candidate}`],
          [bE!, `errors of stable ${ctx.stable}`],
          [bT!, `requests of stable ${ctx.stable}`],
        ] as const
      ).filter(([m]) => m.value === null);
      if (missing.length > 0) {
        const what = missing.map(([m, w]) => `${w} (${m.raw === null ? 'empty result' : `raw "${m.raw}"`})`).join(', ');
        return { ...base, query, verdict: 'inconclusive', reason: `no data: ${what} — no traffic yet, or labels that match nothing${warn}`, ...baselineOf(null) };
      }
      const raws = [cE!, cT!, bE!, bT!].map((m) => m.value!);
      const [ce, ct, be, bt] = raws.map((v) => Math.round(v)) as [number, number, number, number];
      for (const [e, t, who] of [
        [ce, ct, ctx.candidate],
        [be, bt, `stable ${ctx.stable}`],
      ] as const) {
        if (e > t) {
          return { ...base, query, verdict: 'error', errorCause: 'query', reason: `${who}: errorsQuery counts ${e} errors but totalQuery only ${t} requests: errors must be a subset of the requests`, ...baselineOf(null) };
        }
      }
      const rounded = raws.some((v) => !Number.isInteger(v));
      const note = rounded
        ? ` (Prometheus counts rounded to whole requests — increase() extrapolates — from raw candidate ${cE!.raw}/${cT!.raw}, stable ${bE!.raw}/${bT!.raw})`
        : '';
      const j = judgeErrorRate(gate, { errors: ce, requests: ct }, { errors: be, requests: bt }, ctx.stable, { alpha, prior: this.prior });
      return { ...base, query, verdict: j.verdict, value: j.value, samples: j.samples, reason: `${j.reason}${note}${warn}`, ...baselineOf(j.stableRate) };
    } catch (err) {
      if (!(err instanceof MeasureError)) throw err;
      const which = err.query && stableQuery.includes(err.query) && !query.includes(err.query) ? `stable ${ctx.stable}: ` : '';
      return { ...base, query: err.query || query, verdict: 'error', errorCause: err.cause_, reason: `${which}${err.message}`, ...(stableQuery ? { baseline: { query: stableQuery, value: null } } : {}) };
    }
  }

  private async evaluateDrift(gate: DriftGate, ctx: GateContext): Promise<PrometheusGateResult> {
    const max = gate.max ?? DRIFT_DEFAULTS.psiMax;
    const minSamples = gate.minSamples ?? DRIFT_DEFAULTS.minSamples;
    const base = { name: gate.name, at: ctx.now, limit: `<= ${fmt(max)}`, samples: 0, value: null };
    let query = gate.bucketsQuery ?? '';
    if (gate.metric !== 'psi') return { ...base, query, verdict: 'error', errorCause: 'template', reason: `a drift gate from Prometheus measures psi, not ${JSON.stringify(gate.metric)}` };
    let stableQuery = '';
    try {
      query = this.resolve(gate, 'bucketsQuery', ctx, ctx.candidate);
      if (ctx.stable === null) return { ...base, query, verdict: 'inconclusive', reason: 'no stable version to compare with' };
      stableQuery = this.resolve(gate, 'bucketsQuery', ctx, ctx.stable);
      const [c, s] = await inOrder([this.run(query, ctx.now), this.run(stableQuery, ctx.now)]);
      const warnings = [...new Set([...c!.warnings, ...s!.warnings])];
      const warn = warnings.length ? ` (Prometheus warns: ${warnings.join('; ')})` : '';
      const baseline = (v: number | null) => ({ baseline: { query: stableQuery, value: v } });
      const parse = (samples: PromSample[], q: string): CumulativeBucket[] => {
        try {
          return cumulativeBuckets(samples);
        } catch (err) {
          throw new MeasureError('query', messageOf(err), q);
        }
      };
      const cb = parse(c!.samples, query);
      const sb = parse(s!.samples, stableQuery);
      if (cb.length === 0 || sb.length === 0) {
        const who = [cb.length === 0 ? ctx.candidate : '', sb.length === 0 ? `stable ${ctx.stable}` : ''].filter(Boolean).join(' and ');
        return { ...base, query, verdict: 'inconclusive', reason: `no data: the buckets query returned an empty result for ${who} — no traffic yet, or labels that match nothing${warn}`, ...baseline(null) };
      }
      if (cb.some((b) => Number.isNaN(b.count)) || sb.some((b) => Number.isNaN(b.count))) {
        return { ...base, query, verdict: 'inconclusive', reason: `no data: NaN bucket counts${warn}`, ...baseline(null) };
      }
      const cLes = cb.map((b) => b.le).join(',');
      const sLes = sb.map((b) => b.le).join(',');
      if (cLes !== sLes) {
        return {
          ...base,
          query,
          verdict: 'error',
          errorCause: 'query',
          reason: `the candidate's and stable's histograms have different buckets (le ${cb.map((b) => b.leRaw).join(', ')} vs ${sb.map((b) => b.leRaw).join(', ')}): PSI needs the same bins`,
          ...baseline(null),
        };
      }
      const cTotal = cb[cb.length - 1]!.count;
      const sTotal = sb[sb.length - 1]!.count;
      const nC = Math.round(cTotal);
      const nS = Math.round(sTotal);
      if (nC < minSamples || nS < minSamples) {
        return { ...base, query, verdict: 'inconclusive', samples: nC, reason: `not enough data: ${minSamples} observations needed on each side (candidate ${nC}, stable ${nS})${warn}`, ...baseline(null) };
      }
      const cc = perBucketCounts(cb);
      const sc = perBucketCounts(sb);
      const value = psiFromCounts(cc, sc);
      const facts = `PSI ${fmt(value)} over the histogram's ${cb.length} buckets (le ${cb.map((b) => b.leRaw).join(', ')}), ~${nC} candidate vs ~${nS} stable (${ctx.stable}) observations: ${psiReading(value)}`;
      const verdict = value > max ? 'fail' : 'pass';
      return {
        ...base,
        query,
        verdict,
        value,
        samples: nC,
        reason: `${facts}; ${verdict === 'fail' ? `fails above ${fmt(max)}` : `within ${fmt(max)}`}${warn}`,
        ...baseline(null),
      };
    } catch (err) {
      if (!(err instanceof MeasureError)) throw err;
      const which = err.query && err.query === stableQuery && err.query !== query ? `stable ${ctx.stable}: ` : '';
      return { ...base, query: err.query || query, verdict: 'error', errorCause: err.cause_, reason: `${which}${err.message}`, ...(stableQuery ? { baseline: { query: stableQuery, value: null } } : {}) };
    }
  }
}
