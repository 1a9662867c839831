import type { GateSpec } from './gates.js';
import { ExitCode } from './errors.js';

/**
 * The model: the words every layer shares (DESIGN.md, Words). Plain data, no behaviour beyond
 * tables, so that any layer may import it and none has to import another layer to speak.
 */

export interface VersionRef {
  model: string;
  version: string;
  digest: string;
}

/** Where traffic goes: integer percentages per version summing to 100, plus an optional mirror. */
export interface TrafficSplit {
  weights: Record<string, number>;
  /** A share of live requests copied to `version`; its answers are discarded (never seen by callers). */
  mirror: { version: string; percent: number } | null;
}

/** The plan a rollout follows (resolved from defaults < modelctl.yaml < bundle < env < flags). */
export interface RolloutPlan {
  /** Canary weights, ascending, ending at 100 (e.g. [5, 25, 50, 100]). Empty for the first deploy. */
  steps: number[];
  /** Bake time of each canary step, ms. */
  intervalMs: number;
  /** How often gates are evaluated during a bake, ms. */
  checkEveryMs: number;
  /** Shadow percent (0 = no shadow phase) and its duration. */
  shadowPercent: number;
  shadowDurationMs: number;
  shadowOnly: boolean;
  gates: GateSpec[];
  /** How long a version may take to become ready. */
  readyTimeoutMs: number;
  /** Evaluation replay before any live traffic (kind eval gates judge it); absent: the defaults. */
  evaluation?: EvaluationSettings;
}

/** How an evaluation set is replayed (rollout.evaluation in bundle.yaml / modelctl.yaml). */
export interface EvaluationSettings {
  /** The bundle component of JSONL files. */
  component: string;
  /** Default request path of a case. */
  path?: string;
  /** Cases in flight at once (per version). */
  concurrency: number;
  /** Per-request timeout. */
  timeoutMs: number;
  maxLines: number;
  maxBytes: number;
}

export type RolloutPhase = 'starting' | 'shadow' | 'canary' | 'promoting' | 'rolling-back' | 'held';

/** Who drives a model's rollout (the ledger's lock), and until when. */
export interface LockRecord {
  holder: string;
  pid: number;
  host: string;
  acquiredAt: number;
  /** Renewed by the holder; past this the holder is presumed dead (reported, never silently stolen mid-step). */
  expiresAt: number;
}

export type Outcome = 'promoted' | 'rolled-back' | 'aborted' | 'held' | 'shadow-passed';

/** What a command exits with for each outcome (aborted: the candidate did not ship either). */
export const OUTCOME_EXIT_CODES: Readonly<Record<Outcome, ExitCode>> = {
  promoted: ExitCode.ok,
  'shadow-passed': ExitCode.ok,
  'rolled-back': ExitCode.rolledBack,
  aborted: ExitCode.rolledBack,
  held: ExitCode.held,
};
