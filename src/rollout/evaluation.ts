import { ModelctlError, UsageError } from '../core/errors.js';
import type { EvaluationEventPayload } from '../core/events.js';
import type { EvalGate, GateSpec } from '../core/gates.js';
import type { EvaluationSettings, RolloutPlan } from '../core/model.js';
import type { Target } from '../core/ports.js';
import { checkExpectedFields, EVALUATION_DEFAULTS, judgeEvaluation, type EvaluationInput, type EvalAnswer, type EvalCase, type EvalJudgement, type EvalOutcome } from '../gates/evaluation.js';

/**
 * Evaluation replay: before any live traffic, the bundle's evaluation set is sent to the candidate
 * (and to the serving stable version, when a gate compares with it) through Target.evaluate, and
 * the plan's `kind: eval` gates judge the answers. The engine calls runEvaluationPhase() once,
 * between "candidate ready" and the first traffic step; a failing replay rolls back with no live
 * request served by the candidate.
 *
 * Bounded: `concurrency` cases in flight per version, a timeout per request, the set's size
 * checked when it was parsed. Deterministic in order: outcomes are reported in file order whatever
 * the concurrency (each case writes its own slot).
 */

/** The events this phase emits (core/events.ts); the engine stamps `at`. */
export type EvaluationEvent = EvaluationEventPayload;

/** The report kept in the rollout's result (--json, TTY, GitHub summary). */
export interface EvaluationReport extends EvalJudgement {
  candidate: string;
  stable: string | null;
  ms: number;
  /** Requests sent to the candidate by the replay (none of them live). */
  candidateRequests: number;
  reason: string;
}

/** Gates judged by the replay. */
export function evaluationGates(gates: readonly GateSpec[]): EvalGate[] {
  return gates.filter((g): g is EvalGate => g.kind === 'eval');
}

/**
 * Replay `cases` against `version`, at most `concurrency` at once; outcomes in case order. A
 * request that throws (timeout, refused, aborted) is an answer with status 0 and its error.
 */
export async function replay(
  target: Pick<Target, 'evaluate'>,
  model: string,
  version: string,
  cases: readonly EvalCase[],
  settings: Pick<EvaluationSettings, 'concurrency' | 'timeoutMs'>,
  signal?: AbortSignal,
): Promise<EvalAnswer[]> {
  if (!target.evaluate) throw new Error('bug: replay on a target without evaluate()');
  const evaluate = target.evaluate.bind(target);
  const out: EvalAnswer[] = new Array<EvalAnswer>(cases.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= cases.length) return;
      const c = cases[i]!;
      const t0 = performance.now();
      if (signal?.aborted) {
        out[i] = { status: 0, body: undefined, latencyMs: 0, error: 'interrupted' };
        continue;
      }
      try {
        const a = await evaluate(model, version, { path: c.path, body: c.request, timeoutMs: settings.timeoutMs, what: `case ${c.file}:${c.line}`, ...(signal ? { signal } : {}) });
        let body: unknown;
        try {
          body = JSON.parse(a.body.toString('utf8'));
        } catch {
          body = undefined;
        }
        out[i] = { status: a.status, body, latencyMs: a.latencyMs, ...(a.status >= 300 ? { error: `HTTP ${a.status}` } : {}) };
      } catch (err) {
        const e = err as Error;
        const timedOut = e.name === 'TimeoutError' || e.name === 'AbortError';
        out[i] = { status: 0, body: undefined, latencyMs: performance.now() - t0, error: timedOut && !signal?.aborted ? `no answer within ${settings.timeoutMs} ms` : e.message };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(settings.concurrency, cases.length)) }, worker));
  return out;
}

/** Whether any gate needs stable's answers. */
function needsStable(gates: readonly EvalGate[]): boolean {
  return gates.some((g) => g.metric === 'agreement' || g.metric === 'score-drift' || (g.metric === 'accuracy' && g.maxDrop !== undefined));
}

/**
 * Refuse, before the rollout starts, a plan whose eval gates cannot run: no evaluation set in the
 * bundle, or a target that cannot replay.
 */
export function checkEvaluationPlan(gates: readonly GateSpec[], input: EvaluationInput | undefined, target: Pick<Target, 'name' | 'evaluate'>, where: string): void {
  const ev = evaluationGates(gates);
  if (ev.length === 0) return;
  if (!input) {
    throw new UsageError(`${where}: gate ${JSON.stringify(ev[0]!.name)} is kind eval, but the bundle has no evaluation set`, {
      hint: 'add an eval component of JSONL files to bundle.yaml (e.g. eval: [eval/]), or drop the eval gates',
    });
  }
  if (!target.evaluate) {
    throw new UsageError(`${where}: gate ${JSON.stringify(ev[0]!.name)} is kind eval, and target ${target.name} cannot replay an evaluation set yet`, {
      hint: 'run eval gates on the local target, or drop them for this target',
    });
  }
}

/**
 * The phase: replay, judge, report. `emit` receives plain typed events. Expected fields the
 * model's first answers do not have are refused as bad input (UsageError: file, line, field).
 */
export async function runEvaluationPhase(args: {
  target: Pick<Target, 'evaluate'>;
  model: string;
  candidate: string;
  stable: string | null;
  gates: readonly GateSpec[];
  settings: EvaluationSettings;
  input: EvaluationInput;
  emit: (e: EvaluationEvent) => void;
  signal?: AbortSignal | undefined;
}): Promise<EvaluationReport> {
  const { target, model, candidate, settings, input, emit } = args;
  const gates = evaluationGates(args.gates);
  const stable = args.stable !== null && needsStable(gates) ? args.stable : null;
  const t0 = performance.now();
  emit({ type: 'evaluation-started', cases: input.cases.length, versions: stable ? [candidate, stable] : [candidate], concurrency: settings.concurrency, timeoutMs: settings.timeoutMs });
  const [cand, stab] = await Promise.all([
    replay(target, model, candidate, input.cases, settings, args.signal),
    stable ? replay(target, model, stable, input.cases, settings, args.signal) : Promise.resolve(null),
  ]);
  // Field names are checked against what the versions actually answer (the first answers that parsed).
  const firstAnswers = [...cand, ...(stab ?? [])].filter((a) => a.body !== undefined).slice(0, 8).map((a) => a.body);
  if (firstAnswers.length > 0) checkExpectedFields(input.cases, firstAnswers, input.declaredFields ?? []);
  const outcomes: EvalOutcome[] = input.cases.map((c, index) => ({ index, case: c, candidate: cand[index]!, stable: stab ? stab[index]! : null }));
  const judgement = judgeEvaluation(outcomes, gates, { agreement: input.agreement });
  for (const g of judgement.gates) emit({ type: 'evaluation-gate', gate: g.name, metric: g.metric, verdict: g.verdict, value: g.value, limit: g.limit, samples: g.samples, reason: g.reason, dryRun: g.dryRun });
  const ms = Math.round(performance.now() - t0);
  const reason = judgement.failed
    ? `evaluation replay: gate ${judgement.failed.name} ${judgement.failed.verdict === 'fail' ? 'failed' : 'was inconclusive'} (${judgement.failed.metric} ${judgement.failed.value === null ? 'n/a' : round(judgement.failed.value)}, limit ${judgement.failed.limit}): ${judgement.failed.reason}`
    : `evaluation replay passed (${input.cases.length} cases)`;
  if (judgement.pass) emit({ type: 'evaluation-passed', cases: input.cases.length, accuracy: judgement.accuracy, agreement: judgement.agreement, ms });
  else emit({ type: 'evaluation-failed', cases: input.cases.length, gate: judgement.failed?.name ?? null, reason, ms, worst: judgement.worst });
  return { ...judgement, candidate, stable, ms, candidateRequests: input.cases.length, reason };
}

function round(x: number): string {
  return String(Number(x.toPrecision(4)));
}

/** What the engine's run carries for this phase (a structural slice of its private Run). */
interface RunSlice {
  model: string;
  version: string;
  signal?: AbortSignal | undefined;
  evaluation?: EvaluationInput | undefined;
  evaluationReport?: EvaluationReport;
  refused?: ModelctlError;
}

/**
 * The engine's one call: nothing to do without eval gates or a set; else replay and judge, keep
 * the report on the run, and say whether to roll back. Bad input found on the way (an expected
 * field the model never returns) rolls back too and is kept on the run to be raised afterwards
 * (exit 2), so no half-started rollout is left behind.
 */
export async function runEvaluation(
  target: Pick<Target, 'evaluate'>,
  run: RunSlice,
  plan: RolloutPlan,
  stable: string | null,
  emit: (e: EvaluationEvent) => void,
  /** Renew the rollout's lock for `ms` ahead (a ledger write): the replay may outlast the lock's TTL. */
  renew?: (ms: number) => Promise<void>,
): Promise<{ failed: boolean; reason: string }> {
  const input = run.evaluation;
  if (!input || evaluationGates(plan.gates).length === 0 || !target.evaluate) return { failed: false, reason: '' };
  const settings = plan.evaluation ?? { ...EVALUATION_DEFAULTS };
  // A heartbeat while the replay runs, one renewal at a time; a lost lock stops the rollout afterwards.
  let lost: unknown;
  const renewing = (): Promise<void> => (renew ? renew(LOCK_AHEAD_MS).catch((err: unknown) => void (lost ??= err)) : Promise.resolve());
  let beat = renewing();
  await beat;
  if (lost !== undefined) throw lost;
  const timer = renew ? setInterval(() => (beat = beat.then(renewing)), LOCK_AHEAD_MS / 3) : undefined;
  let outcome: { failed: boolean; reason: string };
  try {
    outcome = await judged(target, run, plan, stable, emit, input, settings);
  } finally {
    clearInterval(timer);
    await beat;
  }
  if (lost !== undefined) throw lost;
  return outcome;
}

/** How far ahead the replay's heartbeat renews the lock. */
const LOCK_AHEAD_MS = 30_000;

async function judged(
  target: Pick<Target, 'evaluate'>,
  run: RunSlice,
  plan: RolloutPlan,
  stable: string | null,
  emit: (e: EvaluationEvent) => void,
  input: EvaluationInput,
  settings: EvaluationSettings,
): Promise<{ failed: boolean; reason: string }> {
  try {
    const report = await runEvaluationPhase({
      target,
      model: run.model,
      candidate: run.version,
      stable,
      gates: plan.gates,
      settings,
      input,
      emit,
      signal: run.signal,
    });
    run.evaluationReport = report;
    return { failed: !report.pass, reason: report.reason };
  } catch (err) {
    if (!(err instanceof ModelctlError)) throw err;
    run.refused = err;
    emit({ type: 'evaluation-failed', cases: input.cases.length, gate: null, reason: err.message, ms: 0 });
    return { failed: true, reason: `evaluation set refused: ${err.message}` };
  }
}
