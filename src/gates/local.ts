import type { MetricSource, VersionWindow } from '../core/ports.js';
import { DEFAULT_MIN_SAMPLES, describeLimit, fmt, hasRelative, judge, errorMessage, validateCommon } from './compare.js';
import type { GateContext, GateEvaluator } from './contracts.js';
import type { GatePhase, GateResult, GateSpec, LocalGate } from '../core/gates.js';

/**
 * Gates over the local runtime's per-version windows (MetricSource.window). Each metric is a pure
 * function of a VersionWindow; the evaluator adds the parts every gate shares: enough samples,
 * the stable baseline over the same window, the bounds (compare.ts), and the words.
 */

export interface LocalMeasurement {
  /** null when the window holds nothing to compute it from. */
  value: number | null;
  /** What the value stands on: requests, latencies, scores or compared answers. */
  samples: number;
  /** "3 of 58 requests failed" */
  detail: string;
  /** Answers this metric needed a declared field of and could not read it from (VersionWindow.unreadable). */
  unreadable?: number;
  /** shadow-agreement: answers not compared (VersionWindow.shadowDropped / shadowFailed), when the source says. */
  uncompared?: { dropped: number; failed: number };
}

export interface LocalMetric {
  unit: string;
  /** What a sample is, for "12 of 20 requests" style reasons. */
  sampleNoun: string;
  phases: GatePhase[];
  measure(w: VersionWindow, spanMs: number): LocalMeasurement;
}

/** "; 37 not compared: 30 dropped (comparisons at their concurrency bound), 7 failed (stable did not answer)" when the source counted any. */
function uncomparedNote(w: VersionWindow): string {
  const [dropped, failed] = [w.shadowDropped ?? 0, w.shadowFailed ?? 0];
  if (dropped + failed === 0) return '';
  return `; ${dropped + failed} not compared: ${dropped} dropped (comparisons at their concurrency bound), ${failed} failed (stable did not answer in time, or with an error)`;
}

/** "…, 12 answers unreadable (not JSON, or without the declared field)" when there are any. */
function unreadableNote(w: VersionWindow): string {
  return w.unreadable ? `, ${w.unreadable} answer${w.unreadable === 1 ? '' : 's'} unreadable (not JSON, or without the declared field)` : '';
}

const BOTH: GatePhase[] = ['shadow', 'canary'];

function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  // Nearest-rank: the smallest value with at least p% of the samples at or below it.
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

function latency(p: number): LocalMetric {
  return {
    unit: 'ms',
    sampleNoun: 'latencies',
    phases: BOTH,
    measure: (w) => ({ value: percentile(w.latenciesMs, p), samples: w.latenciesMs.length, detail: `p${p} of ${w.latenciesMs.length} requests` }),
  };
}

/** The built-in local metrics, by the name a GateSpec uses in `metric`. */
export const LOCAL_METRICS: Readonly<Record<string, LocalMetric>> = {
  'error-rate': {
    unit: '',
    sampleNoun: 'requests',
    phases: BOTH,
    // An answer the bundle's own contract says can be read, and cannot be, is an error too.
    measure: (w) => ({
      value: w.requests > 0 ? (w.errors + (w.unreadable ?? 0)) / w.requests : null,
      samples: w.requests,
      detail: `${w.errors} of ${w.requests} requests failed${unreadableNote(w)}`,
    }),
  },
  'latency-p50': latency(50),
  'latency-p90': latency(90),
  'latency-p99': latency(99),
  'score-mean': {
    unit: '',
    sampleNoun: 'scores',
    phases: BOTH,
    measure: (w) => ({
      value: w.scores.length > 0 ? w.scores.reduce((a, b) => a + b, 0) / w.scores.length : null,
      samples: w.scores.length,
      detail: `mean of ${w.scores.length} scores${unreadableNote(w)}`,
      unreadable: w.unreadable ?? 0,
    }),
  },
  'request-rate': {
    unit: 'req/s',
    sampleNoun: 'requests',
    phases: BOTH,
    measure: (w, spanMs) => ({
      value: spanMs > 0 ? w.requests / (spanMs / 1000) : null,
      samples: w.requests,
      detail: `${w.requests} requests in ${fmt(spanMs / 1000)} s`,
    }),
  },
  'shadow-agreement': {
    unit: '',
    sampleNoun: 'compared answers',
    // Only a mirrored candidate is compared with stable; in canary there is nothing to agree with.
    phases: ['shadow'],
    measure: (w) => ({
      value: w.shadowCompared > 0 ? w.shadowAgreed / w.shadowCompared : null,
      samples: w.shadowCompared,
      detail: `${w.shadowAgreed} of ${w.shadowCompared} answers agreed with stable${uncomparedNote(w)}${unreadableNote(w)}`,
      unreadable: w.unreadable ?? 0,
      ...(w.shadowDropped !== undefined || w.shadowFailed !== undefined ? { uncompared: { dropped: w.shadowDropped ?? 0, failed: w.shadowFailed ?? 0 } } : {}),
    }),
  },
};

export class LocalGateEvaluator implements GateEvaluator<LocalGate> {
  constructor(private readonly metrics: Readonly<Record<string, LocalMetric>> = LOCAL_METRICS) {}

  validate(gate: LocalGate): string[] {
    const errs = validateCommon(gate);
    if (!this.metrics[gate.metric]) {
      errs.push(`gate ${JSON.stringify(gate.name)}: unknown local metric ${JSON.stringify(gate.metric)} (known: ${Object.keys(this.metrics).join(', ')})`);
    }
    return errs;
  }

  phasesOf(gate: LocalGate): GatePhase[] {
    return gate.phases ?? this.metrics[gate.metric]?.phases ?? BOTH;
  }

  async evaluate(gate: LocalGate, ctx: GateContext, source: MetricSource): Promise<GateResult> {
    const metric = this.metrics[gate.metric];
    const query = `local:${gate.metric}{model=${ctx.model},version=${ctx.candidate}} over ${fmt((ctx.now - ctx.sinceMs) / 1000)} s since ${new Date(ctx.sinceMs).toISOString()}`;
    const base: Pick<GateResult, 'name' | 'query' | 'at' | 'uncompared'> = { name: gate.name, query, at: ctx.now };
    if (!metric) {
      return { ...base, verdict: 'error', value: null, limit: describeLimit(gate), samples: 0, reason: `unknown local metric ${JSON.stringify(gate.metric)}` };
    }
    const unit = metric.unit;
    const minSamples = gate.minSamples ?? DEFAULT_MIN_SAMPLES;
    const span = ctx.now - ctx.sinceMs;
    const inconclusive = (value: number | null, samples: number, reason: string): GateResult => ({
      ...base,
      verdict: 'inconclusive',
      value,
      limit: describeLimit(gate, unit),
      samples,
      reason,
    });

    let cand: LocalMeasurement;
    try {
      cand = metric.measure(await source.window(ctx.model, ctx.candidate, ctx.sinceMs), span);
    } catch (err) {
      return { ...base, verdict: 'error', value: null, limit: describeLimit(gate, unit), samples: 0, reason: `measuring ${ctx.candidate}: ${errorMessage(err)}` };
    }
    if (cand.uncompared) base.uncompared = cand.uncompared;
    if (cand.unreadable) {
      // The gate needs a field these answers do not carry: it cannot judge them, so it does not pass them.
      return inconclusive(cand.value, cand.samples, `cannot judge ${ctx.candidate}: ${cand.detail}`);
    }
    if (cand.samples < minSamples || cand.value === null || Number.isNaN(cand.value)) {
      return inconclusive(cand.value, cand.samples, `not enough data: ${cand.samples} of ${minSamples} ${metric.sampleNoun} needed (${cand.detail})`);
    }

    let stable: number | null = null;
    if (hasRelative(gate)) {
      if (ctx.stable === null) return inconclusive(cand.value, cand.samples, 'no stable version to compare with');
      let baseline: LocalMeasurement;
      try {
        // The same window for both versions: same traffic mix, same time of day, same load.
        baseline = metric.measure(await source.window(ctx.model, ctx.stable, ctx.sinceMs), span);
      } catch (err) {
        return { ...inconclusive(cand.value, cand.samples, ''), verdict: 'error', reason: `measuring stable ${ctx.stable}: ${errorMessage(err)}` };
      }
      if (baseline.samples < minSamples || baseline.value === null || Number.isNaN(baseline.value)) {
        return inconclusive(cand.value, cand.samples, `not enough stable data: ${baseline.samples} of ${minSamples} ${metric.sampleNoun} needed on ${ctx.stable}`);
      }
      stable = baseline.value;
    }

    const j = judge(gate, cand.value, stable, unit);
    return {
      ...base,
      verdict: j.verdict,
      value: cand.value,
      limit: j.limit,
      samples: cand.samples,
      reason: j.verdict === 'pass' ? `${fmt(cand.value, unit)} within ${j.limit} (${cand.detail})` : `${gate.metric} ${j.broken} (${cand.detail})`,
    };
  }
}

/**
 * The gates a local rollout uses when the plan names none.
 *
 * - error-rate: relative to stable, `<= stable × 1.5 + 0.01`. Relative, because the stable version
 *   under the same traffic over the same window is the best baseline there is (a bad input batch
 *   hurts both); the +0.01 slack, because a clean stable (0 errors) would otherwise fail the
 *   candidate on its first error; and an absolute ceiling of 0.05, because "as bad as stable" is
 *   not good enough when stable itself is failing. Critical: errors are the users' pain, so one
 *   failed measurement rolls back at once.
 * - latency-p99: `<= stable × 1.5 + 25 ms`. Tail latency is noisy on small windows (p99 of 20
 *   requests is their maximum), hence the generous ratio, the 25 ms floor for fast models, and one
 *   failed measurement tolerated (failureLimit 1); the end-of-bake rule still needs the latest to pass.
 * - shadow-agreement (shadow phase only): `>= 0.9` of compared answers agree with stable — a
 *   candidate that answers differently one time in ten deserves a human look before users see it.
 */
export function defaultLocalGates(): GateSpec[] {
  return [
    { name: 'error-rate', metric: 'error-rate', max: 0.05, relative: { maxRatio: 1.5, maxDelta: 0.01 }, critical: true },
    { name: 'latency-p99', metric: 'latency-p99', relative: { maxRatio: 1.5, maxDelta: 25 }, failureLimit: 1 },
    { name: 'shadow-agreement', metric: 'shadow-agreement', min: 0.9, phases: ['shadow'] },
  ];
}
