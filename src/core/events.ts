import type { GatePhase, Verdict } from './gates.js';
import type { LockRecord, RolloutPhase, RolloutPlan, TrafficSplit } from './model.js';

/**
 * What the rollout engine reports as it goes: one discriminated union by `type`. Every consumer
 * (the TTY view, the GitHub log, charts and summary, telemetry, interruption handling) reads it
 * through `switch (e.type)` and the fields that type declares, so renaming an event or a field is
 * a compile error in every place that reads it, not a silent gap in the output. The engine is the
 * only producer; the events also go out as JSON (`--json` results carry them), so a field's name
 * is part of the contract.
 */
export type RolloutEvent =
  | RolloutStartedEvent
  | VersionEvent
  | VersionProblemEvent
  | LockTakenOverEvent
  | RequestedEvent
  | GateEvent
  | StepStartedEvent
  | StepPassedEvent
  | StepFailedEvent
  | HeldEvent
  | PromotedEvent
  | RollbackStartedEvent
  | AbortStartedEvent
  | CascadeEvent
  | NoHealthyStableEvent
  | RestoredEvent
  | LockReleaseFailedEvent
  | TrafficAppliedEvent
  | EvaluationEvent;

export type RolloutEventType = RolloutEvent['type'];

interface Stamped {
  /** When it happened (the engine's clock, ms since the epoch). */
  at: number;
}

/** A rollout began, or a `deploy --resume` took over an interrupted one. */
export interface RolloutStartedEvent extends Stamped {
  type: 'rollout-started' | 'rollout-resumed';
  version: string;
  digest: string;
  /** The phase it starts (or resumes) in. */
  phase: RolloutPhase;
  /** The serving stable version (null on a first deploy). */
  stable: string | null;
  steps: number[];
  /** Resumed with new timings: the ones that now apply. */
  changed?: Partial<Pick<RolloutPlan, 'intervalMs' | 'checkEveryMs' | 'shadowDurationMs' | 'readyTimeoutMs'>>;
}

/** Something happened to one version. */
export interface VersionEvent extends Stamped {
  type: 'already-serving' | 'version-deployed' | 'version-ready' | 'stable-unhealthy' | 'retired';
  version: string;
}

/** One version could not do what was asked of it; `reason` says why. */
export interface VersionProblemEvent extends Stamped {
  type: 'version-not-ready' | 'start-failed' | 'retire-failed';
  version: string;
  reason: string;
}

/** The lock of a driver that is gone (or expired) was taken over. */
export interface LockTakenOverEvent extends Stamped {
  type: 'lock-taken-over';
  previous: LockRecord;
}

/** promote/abort asked for (by another process, or by this one resolving a held/interrupted rollout). */
export interface RequestedEvent extends Stamped {
  type: 'promote-requested' | 'abort-requested';
  by?: string | null | undefined;
  version?: string;
  /** Who drives the rollout that obeys the request. */
  driver?: string | undefined;
}

/**
 * One measurement of one gate (or the first deploy's health check: `gate: 'health'` with the
 * `version`). `gate-failed` is a measurement whose verdict is fail.
 */
export interface GateEvent extends Stamped {
  type: 'gate-evaluated' | 'gate-failed';
  gate: string;
  verdict: Verdict | 'error';
  phase?: GatePhase;
  version?: string;
  value?: number | null;
  /** The limit in words: "<= 0.01", ">= stable(0.9) * 0.95". */
  limit?: string;
  samples?: number;
  reason?: string;
  dryRun?: boolean;
  /** What was asked (the resolved query), when the producer attaches it. */
  query?: string;
  /** Relative gates: the stable version's measurement over the same window, when attached. */
  baseline?: { value: number | null };
  /** Numeric bounds, when attached; they win over the words of `limit` (charts). */
  limitMax?: number;
  limitMin?: number;
  limitUpper?: number;
  limitLower?: number;
  limitValue?: number;
}

/** A shadow or canary step began: its split is applied and its bake starts. */
export interface StepStartedEvent extends Stamped {
  type: 'step-started';
  phase: 'shadow' | 'canary';
  /** Index into the plan's steps (-1 for the shadow step). */
  index: number;
  /** Live percent on the candidate (0 in shadow). */
  weight: number;
  /** Mirrored percent (0 outside shadow). */
  mirror: number;
}

export interface StepPassedEvent extends Stamped {
  type: 'step-passed' | 'shadow-passed';
  index: number;
}

export interface StepFailedEvent extends Stamped {
  type: 'step-failed';
  index: number;
  /** The gate that failed the step. */
  gate: string;
  reason: string;
}

/** Gates were inconclusive: traffic stays where it is until a human promotes or aborts. */
export interface HeldEvent extends Stamped {
  type: 'held';
  reason: string;
  traffic: TrafficSplit;
}

export interface PromotedEvent extends Stamped {
  type: 'promoted';
  version: string;
  stableSet: string[];
}

/**
 * The way back began: a rollout's candidate failed (`reason`), or `modelctl rollback` switches
 * from one stable version to another (`from`, `to`).
 */
export interface RollbackStartedEvent extends Stamped {
  type: 'rollback-started';
  reason?: string;
  from?: string | null;
  to?: string;
}

export interface AbortStartedEvent extends Stamped {
  type: 'abort-started';
  reason: string;
}

/** The serving stable version was not healthy: the next of the stable set is tried. */
export interface CascadeEvent extends Stamped {
  type: 'cascade';
  from: string;
  to: string;
}

export interface NoHealthyStableEvent extends Stamped {
  type: 'no-healthy-stable';
  tried: string[];
  servingNow: string;
}

/**
 * How it ended when the candidate left: rolled back, aborted, or done shadowing (`to`: the
 * version serving all traffic now). A `modelctl rollback` says `from` and whether `to` is healthy.
 */
export interface RestoredEvent extends Stamped {
  type: 'rolled-back' | 'aborted' | 'shadow-finished';
  to: string | null;
  reason?: string | null;
  from?: string | null;
  healthy?: boolean;
}

export interface LockReleaseFailedEvent extends Stamped {
  type: 'lock-release-failed';
  reason: string;
}

/** The router now serves this split. */
export interface TrafficAppliedEvent extends Stamped {
  type: 'traffic-applied';
  weights: Record<string, number>;
  mirror: TrafficSplit['mirror'];
}

/** A gate measurement (`gate-evaluated` or `gate-failed`). */
export function isGateEvent(e: RolloutEvent): e is GateEvent {
  return e.type === 'gate-evaluated' || e.type === 'gate-failed';
}

/** The start (or resumption) of a rollout: where the stable version it started over is named. */
export function isStartEvent(e: RolloutEvent): e is RolloutStartedEvent {
  return e.type === 'rollout-started' || e.type === 'rollout-resumed';
}

/**
 * The `default:` of an exhaustive switch over event types: an event type a consumer does not list
 * fails to compile there. At run time it does nothing (events replayed from an older or newer
 * modelctl's JSON are skipped, never a crash of the output).
 */
export function noOtherEvent(_e: never): void {}

/** One case of the evaluation replay the candidate got wrong, or answered unlike stable (texts truncated, secrets masked). */
export interface EvaluationDisagreement {
  file: string;
  line: number;
  id?: string;
  request: string;
  candidate: string;
  stable: string | null;
  expected: string | null;
  why: string;
}

/** The evaluation replay before any live traffic (rollout/evaluation.ts) began. */
export interface EvaluationStartedEvent extends Stamped {
  type: 'evaluation-started';
  cases: number;
  versions: string[];
  concurrency: number;
  timeoutMs: number;
}

/** One kind eval gate judged the replay's answers. */
export interface EvaluationGateEvent extends Stamped {
  type: 'evaluation-gate';
  gate: string;
  metric: string;
  verdict: string;
  value: number | null;
  limit: string;
  samples: number;
  reason: string;
  dryRun: boolean;
}

/** The replay passed: live traffic may start. */
export interface EvaluationPassedEvent extends Stamped {
  type: 'evaluation-passed';
  cases: number;
  accuracy: number | null;
  agreement: number | null;
  ms: number;
}

/** The replay failed (or could not run): the candidate is rolled back before any live request. */
export interface EvaluationFailedEvent extends Stamped {
  type: 'evaluation-failed';
  cases: number;
  gate: string | null;
  reason: string;
  ms: number;
  worst?: EvaluationDisagreement[];
}

export type EvaluationEvent = EvaluationStartedEvent | EvaluationGateEvent | EvaluationPassedEvent | EvaluationFailedEvent;

/** An evaluation event as its phase emits it; the engine stamps `at`. */
export type EvaluationEventPayload = EvaluationEvent extends infer E ? (E extends EvaluationEvent ? Omit<E, 'at'> : never) : never;
