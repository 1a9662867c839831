import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { UsageError } from '../core/errors.js';
import { compareAnswers, parseJsonPath, valueAt, type AnswerComparison } from './answers.js';
import type { EvaluationDisagreement } from '../core/events.js';
import type { EvalGate, GateSpec } from '../core/gates.js';
import type { GateEvaluator } from './contracts.js';
import { durationField } from './schema.js';
import { normalSf } from './stats/normal.js';

/** Evaluation replay: bounded in concurrency, time per request, and size of the set. */
export const EVALUATION_DEFAULTS = { component: 'eval', concurrency: 4, timeoutMs: 10_000, maxLines: 10_000, maxBytes: 16 * 1024 * 1024 } as const;

/** `rollout.evaluation:` of modelctl.yaml and bundle.yaml (rollout/plan.ts reads it into the plan). */
export const evaluationSectionSchema = z
  .object({
    /** The bundle component holding the JSONL files (default eval). */
    component: z.string().min(1).optional(),
    /** Where each case is POSTed unless its line says ("/predict"). */
    path: z.string().startsWith('/', 'must start with /').optional(),
    concurrency: z.number().int().min(1).max(64).optional(),
    timeout: durationField.optional(),
    maxLines: z.number().int().min(1).optional(),
    maxBytes: z.number().int().min(1).optional(),
  })
  .strict();

/** What a deploy hands the engine: the parsed set and the bundle's answer comparison. */
export interface EvaluationInput {
  cases: EvalCase[];
  /** serve.agreement / agreementField of the candidate bundle (agreement gates without `compare`). */
  agreement?: AnswerComparison | undefined;
  /** Answer fields the bundle declares (serve.scoreField, agreement fields): known without asking the model. */
  declaredFields?: string[];
}

/**
 * Evaluation sets and their judgement, pure (no I/O, no clock): the replay itself lives in
 * src/rollout/evaluation.ts.
 *
 * An evaluation set is a bundle component (default `eval`) of JSONL files. Each line is one case:
 *
 *   {"request": {"text": "I loved it"}, "expect": {"label": "positive"}}
 *   {"request": {"text": "meh"}, "expect": {"score": {"min": 0.3, "max": 0.7}}}
 *   {"request": {"text": "no expectation: only compared with stable"}}
 *   {"path": "/predict", "request": {...}, "id": "case-17"}
 *
 * `expect` maps JSON paths of the answer to a value (equal as JSON, or per the gate's `compare`
 * when it reads that field) or a numeric range `{min, max}` (either bound may be left out).
 */

export interface EvalExpectation {
  /** JSON path of the answer field. */
  field: string;
  /** An exact value (compared as JSON, or by the gate's comparison when it reads this field)… */
  equals?: unknown;
  /** … or a numeric range, both ends included. */
  min?: number;
  max?: number;
}

export interface EvalCase {
  /** Where it came from: the file inside the bundle and its 1-based line. */
  file: string;
  line: number;
  id?: string;
  /** Path on the model's server ("/predict"); the line's own, else the plan's. */
  path: string;
  /** The JSON request body, sent as is. */
  request: unknown;
  expect: EvalExpectation[];
}

export interface EvalLimits {
  maxLines: number;
  maxBytes: number;
}

export const EVAL_DEFAULT_LIMITS: EvalLimits = { maxLines: 10_000, maxBytes: 16 * 1024 * 1024 };

const LINE_KEYS = new Set(['request', 'expect', 'path', 'id']);

function isRange(v: unknown): v is { min?: number; max?: number } {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const keys = Object.keys(v);
  return keys.length > 0 && keys.every((k) => k === 'min' || k === 'max');
}

/**
 * Parse the JSONL files of an evaluation set (file name → text, in the order given: the bundle's
 * order). Refuses, naming file and line: a line that is not JSON, a line without a request, an
 * unknown key, a bad JSON path or range, an empty file, an empty set, too many lines or bytes.
 */
export function parseEvalSet(files: ReadonlyArray<{ file: string; text: string }>, opts: { defaultPath?: string | undefined; limits?: EvalLimits } = {}): EvalCase[] {
  const limits = opts.limits ?? EVAL_DEFAULT_LIMITS;
  const bad = (file: string, line: number, what: string, hint?: string) =>
    new UsageError(`evaluation set ${file}:${line}: ${what}`, { hint: hint ?? 'each line is {"request": {...}, "expect": {"<field>": <value> | {"min": n, "max": n}}} (expect may be left out)', details: { file, line } });
  const cases: EvalCase[] = [];
  let bytes = 0;
  if (files.length === 0) throw new UsageError('the evaluation set has no files', { hint: 'list JSONL files in the eval component of bundle.yaml, e.g. eval: [eval/]' });
  for (const { file, text } of files) {
    bytes += Buffer.byteLength(text);
    if (bytes > limits.maxBytes) {
      throw new UsageError(`evaluation set ${file}: the set is larger than ${limits.maxBytes} bytes`, { hint: 'keep an evaluation set small (a few thousand cases), or raise rollout.evaluation.maxBytes', details: { file, limit: limits.maxBytes } });
    }
    const lines = text.split('\n');
    let inFile = 0;
    for (let i = 0; i < lines.length; i++) {
      const raw = lines[i]!.trim();
      if (raw === '') continue;
      const lineNo = i + 1;
      let obj: unknown;
      try {
        obj = JSON.parse(raw);
      } catch (err) {
        throw bad(file, lineNo, `not JSON (${(err as Error).message})`);
      }
      if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw bad(file, lineNo, 'expected a JSON object');
      const o = obj as Record<string, unknown>;
      const stray = Object.keys(o).filter((k) => !LINE_KEYS.has(k));
      if (stray.length) throw bad(file, lineNo, `unknown key ${JSON.stringify(stray[0])} (known: request, expect, path, id)`);
      if (o.request === undefined) throw bad(file, lineNo, 'no "request": the JSON body to send');
      const path = o.path ?? opts.defaultPath;
      if (typeof path !== 'string' || !path.startsWith('/')) {
        throw bad(file, lineNo, path === undefined ? 'no path to send the request to' : `path ${JSON.stringify(path)} must start with /`, 'set rollout.evaluation.path in bundle.yaml (e.g. /predict), or "path" on the line');
      }
      if (o.id !== undefined && typeof o.id !== 'string') throw bad(file, lineNo, '"id" must be a string');
      const expect: EvalExpectation[] = [];
      if (o.expect !== undefined) {
        if (typeof o.expect !== 'object' || o.expect === null || Array.isArray(o.expect)) throw bad(file, lineNo, '"expect" must be an object of answer field → expected value');
        for (const [field, v] of Object.entries(o.expect)) {
          try {
            parseJsonPath(field);
          } catch (err) {
            throw bad(file, lineNo, `expect field ${JSON.stringify(field)} is not a JSON path (${(err as Error).message})`);
          }
          if (isRange(v)) {
            const r = v as Record<string, unknown>;
            for (const k of ['min', 'max'] as const) {
              if (r[k] !== undefined && (typeof r[k] !== 'number' || !Number.isFinite(r[k]))) throw bad(file, lineNo, `expect ${field}.${k} must be a number`);
            }
            if (typeof r.min === 'number' && typeof r.max === 'number' && r.min > r.max) throw bad(file, lineNo, `expect ${field}: min ${r.min} > max ${r.max}`);
            expect.push({ field, ...(r.min !== undefined ? { min: r.min as number } : {}), ...(r.max !== undefined ? { max: r.max as number } : {}) });
          } else {
            expect.push({ field, equals: v });
          }
        }
      }
      cases.push({ file, line: lineNo, ...(typeof o.id === 'string' ? { id: o.id } : {}), path, request: o.request, expect });
      inFile++;
      if (cases.length > limits.maxLines) {
        throw new UsageError(`evaluation set ${file}:${lineNo}: more than ${limits.maxLines} cases`, { hint: 'raise rollout.evaluation.maxLines, or sample the set', details: { file, line: lineNo, limit: limits.maxLines } });
      }
    }
    if (inFile === 0) throw new UsageError(`evaluation set ${file} is empty`, { hint: 'an evaluation file holds one JSON case per line; remove the file from the eval component or fill it', details: { file } });
  }
  return cases;
}

/**
 * Expectations naming fields the model never returns: every expected field must be present in at
 * least one of `answers` (the first answers of the model), or be one the bundle declares. The
 * first offending case is named (file, line, field).
 */
export function checkExpectedFields(cases: readonly EvalCase[], answers: readonly unknown[], declared: readonly string[] = []): void {
  const known = new Set(declared);
  for (const c of cases) {
    for (const e of c.expect) {
      if (known.has(e.field)) continue;
      if (answers.some((a) => valueAt(a, e.field) !== undefined)) {
        known.add(e.field);
        continue;
      }
      throw new UsageError(`evaluation set ${c.file}:${c.line}: expects field ${JSON.stringify(e.field)}, which the model's answers do not have`, {
        hint: `the answers have ${describeKeys(answers)}; fix the field name in the evaluation set`,
        details: { file: c.file, line: c.line, field: e.field },
      });
    }
  }
}

function describeKeys(answers: readonly unknown[]): string {
  const keys = new Set<string>();
  for (const a of answers) if (typeof a === 'object' && a !== null && !Array.isArray(a)) for (const k of Object.keys(a)) keys.add(k);
  return keys.size ? [...keys].sort().join(', ') : 'no JSON object';
}

// ---------------------------------------------------------------------------------------------
// One replayed case.

export interface EvalAnswer {
  /** HTTP status; 0 = no answer (timeout, connection refused). */
  status: number;
  /** The parsed JSON body (undefined: not JSON or no answer). */
  body: unknown;
  latencyMs: number;
  /** Why there is no answer, in words. */
  error?: string;
}

export interface EvalOutcome {
  index: number;
  case: EvalCase;
  candidate: EvalAnswer;
  stable: EvalAnswer | null;
}

/** Whether an answer meets the case's expectations; null when the case expects nothing. */
export function meetsExpectations(c: EvalCase, answer: EvalAnswer, compare?: AnswerComparison): { correct: boolean | null; detail: string } {
  if (c.expect.length === 0) return { correct: null, detail: 'no expectation' };
  if (answer.status < 200 || answer.status >= 300) return { correct: false, detail: answer.error ?? `HTTP ${answer.status}` };
  for (const e of c.expect) {
    const v = valueAt(answer.body, e.field);
    if (e.equals === undefined) {
      if (typeof v !== 'number' || !Number.isFinite(v)) return { correct: false, detail: `${e.field} is not a number` };
      if ((e.min !== undefined && v < e.min) || (e.max !== undefined && v > e.max)) return { correct: false, detail: `${e.field} ${v} outside [${e.min ?? '-∞'}, ${e.max ?? '∞'}]` };
      continue;
    }
    const reads = compare && compare.mode !== 'exact' && ('field' in compare ? compare.field === e.field : compare.fields.length === 1 && compare.fields[0] === e.field);
    if (reads) {
      const r = compareAnswers(compare, answer.body, setAt(e.field, e.equals), { a: 'answer', b: 'expected' });
      if (r.outcome !== 'agree') return { correct: false, detail: r.detail };
    } else if (!isDeepStrictEqual(v, e.equals)) {
      return { correct: false, detail: v === undefined ? `no field ${e.field}` : `${e.field} is ${JSON.stringify(v)}, expected ${JSON.stringify(e.equals)}` };
    }
  }
  return { correct: true, detail: 'as expected' };
}

/** {a: {b: value}} for the path a.b (index segments make arrays). */
function setAt(path: string, value: unknown): unknown {
  const segs = parseJsonPath(path);
  let out: unknown = value;
  for (let i = segs.length - 1; i >= 0; i--) {
    const s = segs[i]!;
    if (typeof s === 'number') {
      const arr: unknown[] = [];
      arr[s] = out;
      out = arr;
    } else out = { [s]: out };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Gates of kind eval.

/** Metrics a `kind: eval` gate can judge. */
export const EVAL_METRICS = ['accuracy', 'agreement', 'score-drift', 'latency-p99', 'error-rate'] as const;
export type EvalMetric = (typeof EVAL_METRICS)[number];

/** Problems with an eval gate's spec (checked with the plan, before anything runs). */
export function validateEvalGate(g: EvalGate): string[] {
  const where = `gate ${JSON.stringify(g.name)}`;
  if (!(EVAL_METRICS as readonly string[]).includes(g.metric)) return [`${where}: kind eval measures ${EVAL_METRICS.join(', ')}, not ${JSON.stringify(g.metric)}`];
  const errs: string[] = [];
  if (g.phases !== undefined) errs.push(`${where}: an eval gate runs once, on the replay before traffic: drop phases`);
  const hasLimit = g.min !== undefined || g.max !== undefined || (g.metric === 'accuracy' && g.maxDrop !== undefined);
  if (!hasLimit) errs.push(`${where}: an eval gate needs a limit (${g.metric === 'accuracy' || g.metric === 'agreement' ? 'min' : 'max'}${g.metric === 'accuracy' ? ' or maxDrop' : ''})`);
  if (g.maxDrop !== undefined && g.metric !== 'accuracy') errs.push(`${where}: maxDrop is for metric accuracy`);
  if (g.metric === 'score-drift' && !g.scoreField) errs.push(`${where}: score-drift needs scoreField (the numeric answer field, e.g. score)`);
  return errs;
}

/**
 * The registry entry of `kind: eval`: validates the spec with the plan; never measured during a
 * bake (phases: none), because its evidence is the replay before traffic.
 */
export class EvalGateEvaluator implements GateEvaluator<EvalGate> {
  validate(gate: EvalGate): string[] {
    return validateEvalGate(gate);
  }

  phasesOf(): [] {
    return [];
  }

  evaluate(gate: EvalGate, ctx: { now: number }): Promise<never> {
    return Promise.reject(new Error(`gate ${gate.name} (kind eval) is judged by the evaluation replay before traffic, not during a step (at ${ctx.now})`));
  }
}

export interface EvalGateResult {
  name: string;
  metric: string;
  verdict: 'pass' | 'fail' | 'inconclusive';
  value: number | null;
  limit: string;
  samples: number;
  reason: string;
  dryRun: boolean;
  /** accuracy with a stable version: stable's accuracy over the same cases. */
  baseline?: number | null;
}

/** The worst disagreements shown to people: bounded, truncated. */
/** One case shown as a disagreement: the events' vocabulary (core/events.ts). */
export type Disagreement = EvaluationDisagreement;

export interface EvalJudgement {
  gates: EvalGateResult[];
  /** Every non-dry-run gate passed (an inconclusive gate does not pass). */
  pass: boolean;
  failed: EvalGateResult | null;
  cases: number;
  accuracy: number | null;
  stableAccuracy: number | null;
  agreement: number | null;
  worst: Disagreement[];
}

/**
 * One-sided paired test of an accuracy drop on the same cases (McNemar). b = cases stable got
 * right and the candidate wrong, c = the reverse. With maxDrop 0: exact binomial test of
 * H0 "the candidate is no worse" (b ~ Bin(b + c, 1/2)), p = P(X >= b). With maxDrop > 0: the
 * normal (Wald) upper confidence bound of acc_c − acc_s must stay above −maxDrop. Either fails
 * only when a drop is shown at `confidence`, so an equal candidate fails with probability <= 1 − confidence.
 */
export function accuracyDropTest(b: number, c: number, n: number, maxDrop: number, confidence: number): { drop: boolean; p: number | null; upper: number | null } {
  if (n === 0) return { drop: false, p: null, upper: null };
  if (maxDrop === 0) {
    const m = b + c;
    if (m === 0 || b <= c) return { drop: false, p: 1, upper: null };
    const p = binomialUpperTail(m, b);
    return { drop: p < 1 - confidence, p, upper: null };
  }
  const d = (c - b) / n;
  const variance = Math.max(0, ((b + c) / n - d * d) / n);
  const upper = d + zOf(confidence) * Math.sqrt(variance);
  return { drop: upper < -maxDrop, p: null, upper };
}

/** P(X >= k) for X ~ Bin(m, 1/2), by log-space sum (m up to the set's size). */
export function binomialUpperTail(m: number, k: number): number {
  let logC = 0; // log C(m, 0)
  const terms: number[] = [];
  for (let i = 0; i <= m; i++) {
    if (i > 0) logC += Math.log((m - i + 1) / i);
    if (i >= k) terms.push(logC - m * Math.LN2);
  }
  const max = Math.max(...terms);
  return Math.min(1, Math.exp(max) * terms.reduce((s, t) => s + Math.exp(t - max), 0));
}

/** The normal quantile z with P(Z > z) = 1 − confidence (bisection over normalSf). */
function zOf(confidence: number): number {
  let lo = 0;
  let hi = 10;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (normalSf(mid) > 1 - confidence) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

const MAX_SHOWN = 2000;

/** JSON text cut to `max` characters, with the fields named by `secrets` (env-style keys) masked. */
export function shown(v: unknown, max = 200): string {
  if (v === undefined) return '(no answer)';
  const text = JSON.stringify(v, (k, x: unknown) => (k !== '' && SECRET_KEY.test(k) ? '***' : x)) ?? String(v);
  const cut = text.length > Math.min(max, MAX_SHOWN) ? `${text.slice(0, Math.min(max, MAX_SHOWN) - 1)}…` : text;
  return cut;
}

/** Keys whose values are never printed (a request may carry an API key or a token). */
const SECRET_KEY = /(pass(word)?|secret|token|api[-_]?key|authorization|credential|cookie)/i;

function answerOk(a: EvalAnswer): boolean {
  return a.status >= 200 && a.status < 300;
}

function p99(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)]!;
}

/**
 * Judge a replay with the plan's eval gates. `agreement` is the bundle's comparison of two answers
 * (serve.agreement / agreementField) used by agreement gates without their own `compare`; absent,
 * whole answers are compared.
 */
export function judgeEvaluation(outcomes: readonly EvalOutcome[], gates: readonly GateSpec[], opts: { agreement?: AnswerComparison | undefined; worst?: number } = {}): EvalJudgement {
  const n = outcomes.length;
  const results: EvalGateResult[] = [];
  const worstScore = new Map<number, { rank: number; why: string }>();
  const note = (i: number, rank: number, why: string) => {
    const prev = worstScore.get(i);
    if (!prev || prev.rank < rank) worstScore.set(i, { rank, why });
  };
  let headline = { accuracy: null as number | null, stableAccuracy: null as number | null, agreement: null as number | null };

  for (const g of gates.filter((x): x is EvalGate => x.kind === 'eval')) {
    const dryRun = g.dryRun ?? false;
    const base = { name: g.name, metric: g.metric, dryRun };
    const limitText = [g.min !== undefined ? `>= ${g.min}` : '', g.max !== undefined ? `<= ${g.max}` : ''].filter(Boolean).join(' and ');
    const bounds = (v: number) => (g.min === undefined || v >= g.min) && (g.max === undefined || v <= g.max);
    switch (g.metric as EvalMetric) {
      case 'accuracy': {
        let judged = 0;
        let right = 0;
        let stableRight = 0;
        let paired = 0;
        let b = 0;
        let c = 0;
        for (const o of outcomes) {
          const cand = meetsExpectations(o.case, o.candidate, g.compare);
          if (cand.correct === null) continue;
          judged++;
          if (cand.correct) right++;
          else note(o.index, 2, `candidate: ${cand.detail}`);
          if (o.stable) {
            const st = meetsExpectations(o.case, o.stable, g.compare);
            paired++;
            if (st.correct) stableRight++;
            if (st.correct && !cand.correct) {
              b++;
              note(o.index, 3, `stable right, candidate wrong: ${cand.detail}`);
            }
            if (!st.correct && cand.correct) c++;
          }
        }
        const acc = judged ? right / judged : null;
        const sAcc = paired ? stableRight / paired : null;
        headline = { ...headline, accuracy: acc, stableAccuracy: sAcc };
        if (acc === null) {
          results.push({ ...base, verdict: 'inconclusive', value: null, limit: limitText, samples: 0, reason: 'no case of the set has an expectation' });
          break;
        }
        const parts: string[] = [`${right}/${judged} as expected`];
        let fail = false;
        if (g.min !== undefined && acc < g.min) {
          fail = true;
          parts.push(`below ${g.min}`);
        }
        let limit = limitText;
        if (g.maxDrop !== undefined) {
          limit = [limitText, `drop vs stable <= ${g.maxDrop} (one-sided, confidence ${g.confidence ?? 0.99})`].filter(Boolean).join(' and ');
          if (paired > 0) {
            const t = accuracyDropTest(b, c, paired, g.maxDrop, g.confidence ?? 0.99);
            parts.push(`stable ${stableRight}/${paired}; ${b} cases only stable got right, ${c} only the candidate${t.p !== null ? ` (p = ${t.p.toPrecision(3)})` : ''}${t.upper !== null ? ` (upper bound of the difference ${t.upper.toFixed(4)})` : ''}`);
            if (t.drop) {
              fail = true;
              parts.push('a drop is shown');
            }
          } else parts.push('no stable version to compare with');
        }
        results.push({ ...base, verdict: fail ? 'fail' : 'pass', value: acc, limit, samples: judged, reason: parts.join('; '), ...(sAcc !== null ? { baseline: sAcc } : {}) });
        break;
      }
      case 'agreement': {
        const spec = g.compare ?? opts.agreement ?? ({ mode: 'exact' } as AnswerComparison);
        let compared = 0;
        let agreed = 0;
        for (const o of outcomes) {
          if (!o.stable || !answerOk(o.stable)) continue;
          compared++;
          const r = answerOk(o.candidate) ? compareAnswers(spec, o.candidate.body, o.stable.body, { a: 'candidate', b: 'stable' }) : { outcome: 'disagree' as const, detail: o.candidate.error ?? `candidate HTTP ${o.candidate.status}` };
          if (r.outcome === 'agree') agreed++;
          else note(o.index, 1, r.detail);
        }
        const v = compared ? agreed / compared : null;
        headline = { ...headline, agreement: v };
        if (v === null) results.push({ ...base, verdict: 'inconclusive', value: null, limit: limitText, samples: 0, reason: 'no stable answers to compare with' });
        else results.push({ ...base, verdict: bounds(v) ? 'pass' : 'fail', value: v, limit: limitText, samples: compared, reason: `${agreed}/${compared} agree with stable (${spec.mode})` });
        break;
      }
      case 'score-drift': {
        const diffs: number[] = [];
        for (const o of outcomes) {
          const a = valueAt(o.candidate.body, g.scoreField!);
          const s = o.stable ? valueAt(o.stable.body, g.scoreField!) : undefined;
          if (typeof a === 'number' && typeof s === 'number') diffs.push(Math.abs(a - s));
        }
        const v = diffs.length ? diffs.reduce((x, y) => x + y, 0) / diffs.length : null;
        if (v === null) results.push({ ...base, verdict: 'inconclusive', value: null, limit: limitText, samples: 0, reason: `no pair of numeric ${g.scoreField} answers` });
        else results.push({ ...base, verdict: bounds(v) ? 'pass' : 'fail', value: v, limit: limitText, samples: diffs.length, reason: `mean |candidate − stable| of ${g.scoreField} over ${diffs.length} cases` });
        break;
      }
      case 'latency-p99': {
        const lat = outcomes.filter((o) => answerOk(o.candidate)).map((o) => o.candidate.latencyMs);
        const v = p99(lat);
        if (v === null) results.push({ ...base, verdict: 'inconclusive', value: null, limit: limitText, samples: 0, reason: 'no successful answer' });
        else results.push({ ...base, verdict: bounds(v) ? 'pass' : 'fail', value: v, limit: limitText, samples: lat.length, reason: `p99 of ${lat.length} replayed requests, ms` });
        break;
      }
      case 'error-rate': {
        const errors = outcomes.filter((o) => !answerOk(o.candidate));
        for (const o of errors) note(o.index, 4, o.candidate.error ?? `HTTP ${o.candidate.status}`);
        const v = n ? errors.length / n : null;
        if (v === null) results.push({ ...base, verdict: 'inconclusive', value: null, limit: limitText, samples: 0, reason: 'empty replay' });
        else results.push({ ...base, verdict: bounds(v) ? 'pass' : 'fail', value: v, limit: limitText, samples: n, reason: `${errors.length} of ${n} replayed requests failed` });
        break;
      }
    }
  }
  // A first deploy has no stable answers: gates that compare with stable cannot measure and do not block it.
  const noStable = outcomes.every((o) => o.stable === null);
  const gating = results.filter((r) => !r.dryRun && !(noStable && (r.metric === 'agreement' || r.metric === 'score-drift') && r.verdict === 'inconclusive'));
  const failed = gating.find((r) => r.verdict === 'fail') ?? gating.find((r) => r.verdict === 'inconclusive') ?? null;
  // Worst first: errors, then regressions against stable, then wrong answers, then disagreements; file order within a rank.
  const worst = [...worstScore.entries()]
    .sort(([ia, a], [ib, b]) => b.rank - a.rank || ia - ib)
    .slice(0, opts.worst ?? 5)
    .map(([i, w]) => {
      const o = outcomes[i]!;
      const expected = o.case.expect.length ? shown(Object.fromEntries(o.case.expect.map((e) => [e.field, e.equals !== undefined ? e.equals : { min: e.min, max: e.max }]))) : null;
      return {
        file: o.case.file,
        line: o.case.line,
        ...(o.case.id ? { id: o.case.id } : {}),
        request: shown(o.case.request),
        candidate: o.candidate.body !== undefined ? shown(o.candidate.body) : (o.candidate.error ?? `HTTP ${o.candidate.status}`),
        stable: o.stable ? (o.stable.body !== undefined ? shown(o.stable.body) : (o.stable.error ?? `HTTP ${o.stable.status}`)) : null,
        expected,
        why: w.why.slice(0, 200),
      };
    });
  return { gates: results, pass: failed === null, failed, cases: n, ...headline, worst };
}
