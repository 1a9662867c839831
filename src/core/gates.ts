/**
 * A gate: one metric check with limits, in the spirit of Argo Rollouts' analysis (ANCHORS.md).
 * A union by `kind`: each kind carries its own fields, so an evaluator narrows on `kind` and a field
 * of another kind does not type-check. Built by gates/schema.ts (toGate) from YAML; runtime values
 * (an old ledger, a caller in JavaScript) can still hold strays, which each kind's `validate` reports.
 */
export type GateSpec = LocalGate | PrometheusGate | StatisticalGate | DriftGate | CommandGate | HttpGate | EvalGate;

/** The kinds modelctl knows; `local` is the kind of a gate that names none. */
export type GateKind = NonNullable<GateSpec['kind']>;
export const GATE_KINDS: readonly GateKind[] = ['local', 'prometheus', 'statistical', 'drift', 'command', 'http', 'eval'];

/** What every kind shares: the name, the limits on the measured value, and Argo-style tallies. */
export interface GateBase {
  name: string;
  /** Rollout phases the gate runs in. Default: the metric's own (shadow-agreement: shadow only; others: both). */
  phases?: GatePhase[];
  /** 'error-rate' | 'latency-p50' | 'latency-p90' | 'latency-p99' | 'score-mean' | 'request-rate' | 'shadow-agreement' | … ('query', 'command', 'http' for those kinds). */
  metric: string;
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
}

/** A built-in measurement of the local runtime's windows (gates/local.ts). */
export interface LocalGate extends GateBase {
  kind?: 'local';
}

/** A PromQL instant query template judged by gates/prometheus-evaluator.ts; `metric` is 'query'. */
export interface PrometheusGate extends GateBase {
  kind: 'prometheus';
  /** {{model}}, {{version}}, {{stable}}, {{namespace}}, {{interval}}, --var names; see template.ts. Always set by toGate; validate reports it missing. */
  query?: string;
}

/** Where a statistical or drift gate's data comes from (gates/prometheus-stats.ts). */
export interface StatisticsSource {
  /** The local runtime (default) or Prometheus (implied by the queries below). */
  source?: 'local' | 'prometheus';
  /** Statistical error-rate from Prometheus: a template giving the COUNT of failed requests over the window, e.g. sum(increase(…{code=~"5.."}[{{interval}}])). */
  errorsQuery?: string;
  /** Statistical error-rate from Prometheus: a template giving the COUNT of all requests over the window. */
  totalQuery?: string;
  /** Drift PSI from Prometheus: a histogram's cumulative bucket counts over the window, one series per `le`: sum by (le) (increase(…_bucket{…}[{{interval}}])). */
  bucketsQuery?: string;
}

/** Candidate against stable by a test (gates/statistical.ts), as Kayenta's judge. */
export interface StatisticalGate extends GateBase, StatisticsSource {
  kind: 'statistical';
  /** 1 − α of the test (default 0.98, Kayenta's). */
  confidence?: number;
  /** Error-rate: the candidate may be worse than stable by this fraction (default 0.25). */
  tolerance?: number;
  /** Error-rate: … and by this much in absolute error rate (default 0). */
  maxDelta?: number;
  /** Latency: which shift fails (default 'increase'), as Kayenta's direction. */
  direction?: 'increase' | 'decrease' | 'either';
  /** Error-rate: always-valid sequential test (default true); false = fixed-sample z-test at each look. */
  sequential?: boolean;
  /** Latency: smallest ratio candidate/stable (of the metric's percentile, median for 'latency') that fails (default 1.1). */
  effectSize?: number;
}

/** A shift of the score distribution, PSI or KS (gates/drift.ts). */
export interface DriftGate extends GateBase, StatisticsSource {
  kind: 'drift';
  /** PSI: number of buckets, cut at stable's quantiles (default 10). */
  buckets?: number;
}

/** A literal, or a secret named by its environment variable (the YAML never holds the secret). */
export type EnvRef = string | { fromEnv: string };

/** The user's own check: a program whose exit code or printed value decides (gates/command.ts); `metric` is 'command'. */
export interface CommandGate extends GateBase {
  kind: 'command';
  /** The argv to run (never a shell string); "node" is modelctl's own Node. Always set by toGate; validate reports it missing. */
  command?: string[];
  /** Extra environment; a value is literal, or {fromEnv: NAME} read from modelctl's environment. */
  env?: Record<string, EnvRef>;
  /** Give up after this long (an error, never a pass). Default 60 s. */
  timeoutMs?: number;
}

/** The user's own check over HTTP: a number read from a JSON answer (gates/http.ts); `metric` is 'http'. */
export interface HttpGate extends GateBase {
  kind: 'http';
  /** The URL template ({{candidate_url}}, {{stable_url}}, {{model}}, {{candidate}}, {{stable}}). */
  url?: string;
  /** GET by default. */
  method?: string;
  /** Request headers; a value is literal, or {fromEnv: NAME} (secrets by name). */
  headers?: Record<string, EnvRef>;
  /** An object is sent as JSON (templates in its strings), a string as is (templates JSON-escaped). */
  body?: unknown;
  /** Where the number is in the JSON answer: $.metrics.accuracy, a.b[0].c. */
  valuePath?: string;
  /** Give up after this long (an error, never a pass). Default 10 s. */
  timeoutMs?: number;
}

/**
 * How two answers are compared (a candidate's and stable's, or an answer and what was expected).
 * gates/answers.ts holds the schema that produces it (checked at compile time to be this type) and
 * the comparing; the type lives here because gates, serve specs and the Kubernetes meter all speak it.
 */
export type AnswerComparison =
  | { mode: 'exact' }
  | { mode: 'fields'; fields: string[] }
  | { mode: 'numeric'; field: string; absolute?: number | undefined; relative?: number | undefined }
  | { mode: 'labels'; field: string; minJaccard: number }
  | { mode: 'text'; field: string; ignoreCase: boolean; ignoreWhitespace: boolean; ignorePunctuation: boolean }
  | { mode: 'topk'; field: string; k: number; minOverlap: number; key?: string | undefined };

/**
 * Judged on the evaluation replay before any live traffic (gates/evaluation.ts, rollout/evaluation.ts);
 * `metric` is accuracy | agreement | score-drift | latency-p99 | error-rate.
 */
export interface EvalGate extends GateBase {
  kind: 'eval';
  /** How answers are compared (with the expectation for accuracy, with stable's for agreement). */
  compare?: AnswerComparison;
  /** Metric accuracy: the largest drop of accuracy against stable tolerated (one-sided paired test at `confidence`, default 0.99). */
  maxDrop?: number;
  /** Metric score-drift: the numeric answer field compared with stable's. */
  scoreField?: string;
  /** 1 − α of the accuracy-drop test (default 0.99). */
  confidence?: number;
}

export type StatisticsGate = StatisticalGate | DriftGate;

/** A statistical or drift gate measured by Prometheus (`source: prometheus`, or any of its queries). */
export function usesPrometheusSource(gate: GateSpec): boolean {
  if (gate.kind !== 'statistical' && gate.kind !== 'drift') return false;
  return gate.source === 'prometheus' || gate.errorsQuery !== undefined || gate.totalQuery !== undefined || gate.bucketsQuery !== undefined;
}

/**
 * A field a gate of this kind does not declare, as the runtime value holds it: what validators
 * read to report strays (YAML passes one schema for every kind; old ledgers are untyped).
 */
export function strayField(gate: GateSpec, field: string): unknown {
  return Reflect.get(gate, field);
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
  /**
   * shadow-agreement on a target that says (Kubernetes): mirrored answers of the window that were not
   * compared with stable — dropped at the comparer's concurrency bound, or failed. Never agreeing.
   */
  uncompared?: { dropped: number; failed: number };
}
