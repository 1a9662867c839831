import type { AnswerComparison } from './answers.js';
import type { MetricSource } from '../rollout/contracts.js';

/**
 * A gate: one metric check with limits, in the spirit of Argo Rollouts' analysis (ANCHORS.md).
 * `metric` names a built-in local measurement; `query` is a PromQL template judged by the
 * Prometheus evaluator (kind 'prometheus', the default kind of a gate with a query).
 */
export interface GateSpec {
  name: string;
  /** Which evaluator judges it ('local' by default; 'prometheus', 'statistical', 'drift' next). */
  kind?: string;
  /** Rollout phases the gate runs in. Default: the metric's own (shadow-agreement: shadow only; others: both). */
  phases?: GatePhase[];
  /** 'error-rate' | 'latency-p50' | 'latency-p90' | 'latency-p99' | 'score-mean' | 'request-rate' | 'shadow-agreement' | … */
  metric: string;
  /**
   * A PromQL instant query template ({{model}}, {{version}}, {{stable}}, {{namespace}}, {{interval}},
   * --var names; see template.ts). Query gates carry `metric: 'query'`.
   */
  query?: string;
  /** Absolute limits on the candidate's value. */
  max?: number;
  min?: number;
  /**
   * Relative to the stable version, measured over the same window. Upper bound: candidate <=
   * stable * maxRatio + maxDelta (either alone: ratio 1 / delta 0), so a zero baseline still
   * leaves `maxDelta` of room. Lower bound (metrics where less is worse: score, agreement, rate):
   * candidate >= stable * minRatio - minDelta.
   */
  relative?: { maxRatio?: number; maxDelta?: number; minRatio?: number; minDelta?: number };
  /** Fewer samples than this in the window → inconclusive (never pass on missing data). Default 20. */
  minSamples?: number;
  /** Wait this long into a step before the first measurement counts. Default 0. */
  initialDelayMs?: number;
  /** Failed measurements tolerated before the step fails. Default 0 (Argo's default). */
  failureLimit?: number;
  /** Inconclusive measurements tolerated before the rollout holds for a human. Default 0. */
  inconclusiveLimit?: number;
  /**
   * What too many inconclusive measurements (no data, too few samples) do: 'hold' the rollout for
   * a human (default: never promote or roll back on missing data), or 'rollback' — for teams that
   * would rather lose a canary than leave it waiting.
   */
  onInconclusive?: 'hold' | 'rollback';
  /** Consecutive query errors tolerated (reset by any good measurement). Default 4. */
  consecutiveErrorLimit?: number;
  /** A failing critical gate rolls back at once, whatever the limits. */
  critical?: boolean;
  /** Evaluate and report, never gate. */
  dryRun?: boolean;

  // --- kind 'statistical' and 'drift' (statistical.ts, drift.ts) ---
  /** Statistical gates: 1 − α of the test (default 0.98, Kayenta's). */
  confidence?: number;
  /** Statistical error-rate: the candidate may be worse than stable by this fraction (default 0.25). */
  tolerance?: number;
  /** Statistical error-rate: … and by this much in absolute error rate (default 0). */
  maxDelta?: number;
  /** Statistical latency: which shift fails (default 'increase'), as Kayenta's direction. */
  direction?: 'increase' | 'decrease' | 'either';
  /** Statistical error-rate: always-valid sequential test (default true); false = fixed-sample z-test at each look. */
  sequential?: boolean;
  /** Statistical latency: smallest ratio candidate/stable (of the metric's percentile, median for 'latency') that fails (default 1.1). */
  effectSize?: number;
  /** Drift PSI: number of buckets, cut at stable's quantiles (default 10). */
  buckets?: number;

  // --- kind 'statistical' / 'drift' fed by Prometheus (prometheus-stats.ts) ---
  /** Where a statistical/drift gate's data comes from: the local runtime (default) or Prometheus (implied by the queries below). */
  source?: 'local' | 'prometheus';
  /** Statistical error-rate from Prometheus: a template giving the COUNT of failed requests over the window, e.g. sum(increase(…{code=~"5.."}[{{interval}}])). */
  errorsQuery?: string;
  /** Statistical error-rate from Prometheus: a template giving the COUNT of all requests over the window. */
  totalQuery?: string;
  /** Drift PSI from Prometheus: a histogram's cumulative bucket counts over the window, one series per `le`: sum by (le) (increase(…_bucket{…}[{{interval}}])). */
  bucketsQuery?: string;

  // --- kind 'command' and 'http' (command.ts, http.ts): the user's own check ---
  /** kind command: the argv to run (never a shell string); "node" is modelctl's own Node. */
  command?: string[];
  /** kind command: extra environment; a value is literal, or {fromEnv: NAME} read from modelctl's environment (secrets by name). */
  env?: Record<string, string | { fromEnv: string }>;
  /** kind command / http: give up after this long (an error, never a pass). Default 60 s (command), 10 s (http). */
  timeoutMs?: number;
  /** kind http: the URL template ({{candidate_url}}, {{stable_url}}, {{model}}, {{candidate}}, {{stable}}). */
  url?: string;
  /** kind http: GET by default. */
  method?: string;
  /** kind http: request headers; a value is literal, or {fromEnv: NAME} (secrets by name). */
  headers?: Record<string, string | { fromEnv: string }>;
  /** kind http: request body: an object is sent as JSON (templates in its strings), a string as is (templates JSON-escaped). */
  body?: unknown;
  /** kind http: where the number is in the JSON answer: $.metrics.accuracy, a.b[0].c. */
  valuePath?: string;

  // --- kind 'eval' (evaluation replay before traffic: src/gates/evaluation.ts, src/rollout/evaluation.ts) ---
  /** kind eval: how answers are compared (with the expectation for accuracy, with stable's for agreement); see answers.ts. */
  compare?: AnswerComparison;
  /** kind eval, metric accuracy: the largest drop of accuracy against stable tolerated (one-sided paired test at `confidence`, default 0.99). */
  maxDrop?: number;
  /** kind eval, metric score-drift: the numeric answer field compared with stable's. */
  scoreField?: string;
}

/** A statistical or drift gate measured by Prometheus (`source: prometheus`, or any of its queries). */
export function usesPrometheusSource(gate: GateSpec): boolean {
  return gate.source === 'prometheus' || gate.errorsQuery !== undefined || gate.totalQuery !== undefined || gate.bucketsQuery !== undefined;
}

export type GatePhase = 'shadow' | 'canary';

export type Verdict = 'pass' | 'fail' | 'inconclusive';

/** One evaluation of one gate. `error` is a query error (counts against consecutiveErrorLimit). */
export interface GateResult {
  name: string;
  verdict: Verdict | 'error';
  value: number | null;
  /** Human form of the limit, e.g. "<= 0.01" or "<= stable(0.004) * 1.2". */
  limit: string;
  samples: number;
  /** Why, in words: "no requests in window", "3 of 40 requests failed", the query error… */
  reason: string;
  /** What was asked (the resolved query, or the local metric and window). */
  query: string;
  at: number;
  /** The value exactly as the source sent it (Prometheus sends strings: "NaN", "+Inf"…), when it sent one. */
  raw?: string;
  /** Relative gates: the stable version's measurement over the same window (the baseline). */
  baseline?: { query: string; value: number | null; raw?: string };
}

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

/** Evaluates gates of one kind against a metric source; the Prometheus/statistical gates plug in here. */
export interface GateEvaluator {
  evaluate(gate: GateSpec, ctx: GateContext, source: MetricSource): Promise<GateResult>;
  /** Problems with a spec (unknown metric, no limit…), checked before a rollout starts. */
  validate?(gate: GateSpec): string[];
  /** The phases a gate runs in when it does not say (`gate.phases`). */
  phasesOf?(gate: GateSpec): GatePhase[];
}
