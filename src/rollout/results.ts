import { ModelctlError } from '../core/errors.js';
import type { RolloutEvent } from '../core/events.js';
import type { LockRecord, Outcome, RolloutPhase, RolloutPlan } from '../core/model.js';
import type { Release, StepRecord } from '../ledger/model.js';
import type { EvaluationInput } from '../gates/evaluation.js';
import type { EvaluationReport } from './evaluation.js';

/**
 * What the engine's operations take and give back: the results every command renders (and --json
 * prints), kept apart from the state machine so that readers of results need not load it.
 */

export interface RolloutResult {
  model: string;
  version: string;
  digest: string;
  outcome: Outcome;
  /** The version serving all traffic after a rollback or abort (null: none, e.g. a failed first deploy). */
  rolledBackTo: string | null;
  /** Why it ended this way, in words. */
  reason: string;
  serving: string | null;
  stableSet: string[];
  /** The candidate's steps with their gate evidence (from the ledger, so a resumed rollout shows all). */
  steps: StepRecord[];
  events: RolloutEvent[];
  /** Set when an interruption (the deploy's `signal`, e.g. SIGINT) made it abort: what interrupted it. */
  interrupted?: string;
  /** The evaluation replay before traffic (kind eval gates), when it ran. */
  evaluation?: EvaluationReport;
}

export interface DeployOptions {
  /** Take over an interrupted rollout of this same version and digest and continue it from its recorded phase. */
  resume?: boolean;
  /**
   * Aborting it (e.g. on SIGINT/SIGTERM) aborts the rollout to stable through the ordinary abort
   * path, as `modelctl abort` would: bakes and readiness waits wake at once. Its `reason` (a string,
   * e.g. 'SIGINT') names the interruption in the result. A promotion already under way finishes.
   */
  signal?: AbortSignal;
  /**
   * With `resume`: timings given again on the command line (--interval, --check-every,
   * --shadow-duration, --ready-timeout) replace the recorded ones from the resumed step on. The
   * shape of the plan (steps, shadow share) is the recorded one: the caller refuses changes to it.
   */
  resumeTimings?: Partial<Pick<RolloutPlan, 'intervalMs' | 'checkEveryMs' | 'shadowDurationMs' | 'readyTimeoutMs'>>;
  /** With `resume`: the plan's shape as given again (--steps, --shadow, …); refused unless it is the recorded one. */
  resumeShape?: Partial<Pick<RolloutPlan, 'steps' | 'shadowPercent' | 'shadowOnly'>>;
  /** The bundle's evaluation set, replayed before any live traffic when the plan has kind eval gates (src/rollout/evaluation.ts). */
  evaluation?: EvaluationInput;
}

/** promote/abort either asked the live deploy to do it, or resolved a held/interrupted rollout here. */
export type ResolveResult =
  | { kind: 'requested'; model: string; version: string; action: 'promote' | 'abort'; holder: string }
  | { kind: 'resolved'; result: RolloutResult };

export interface RollbackOptions {
  /** A version of the stable set; default: the one after the serving one (the previous stable). */
  to?: string;
  /** Allow a version outside the stable set: the result says `needs-deploy` and the caller runs a full rollout of it. */
  force?: boolean;
  /** Keep the version rolled back from in the stable set (default: it leaves, so the next rollback does not return to it). */
  keepStable?: boolean;
}

export interface RollbackResult {
  model: string;
  /** switched: traffic moved; already-serving: nothing to do; needs-deploy: --force on a version that is not running. */
  action: 'switched' | 'already-serving' | 'needs-deploy';
  from: string | null;
  to: string;
  digest: string;
  /** Health of `to` after the switch (null when nothing was switched). */
  healthy: boolean | null;
  stableSet: string[];
  events: RolloutEvent[];
}

export interface StatusView {
  model: string;
  target: string;
  serving: string | null;
  stableSet: string[];
  traffic: Record<string, number>;
  mirror: { version: string; percent: number } | null;
  rollout: null | {
    version: string;
    digest: string;
    phase: RolloutPhase;
    stepIndex: number;
    steps: number[];
    /** Live percent on the candidate (0 in shadow). */
    weight: number;
    holder: string;
    startedAt: number;
    requested: 'promote' | 'abort' | null;
    /** Present but nobody drives it: the lock is absent or expired (and it is not a deliberate hold). */
    interrupted: boolean;
  };
  lock: (LockRecord & { expired: boolean }) | null;
}

/** A release without its step evidence (what `history` lists). */
export type HistoryEntry = Omit<Release, 'steps'>;

/** A rollout stopped by an unexpected failure (a Target call threw): the ledger shows where. */
export class RolloutInterruptedError extends ModelctlError {}
