import type { GateResult, GateSpec, Verdict } from '../gates/contracts.js';
import type { TrafficSplit } from '../rollout/contracts.js';

/**
 * The ledger: per model and target, the release history and the rollout in progress. Written
 * (compare-and-swap) BEFORE every action, so a killed modelctl leaves a state the next command can
 * see and resolve. Plain JSON: the local target keeps it in a file, Kubernetes in a ConfigMap.
 */

export type ReleaseState =
  | 'deploying' // a rollout of this version is in progress (or was interrupted)
  | 'stable' // promoted; in the stable set (warm) or the serving version
  | 'retired' // was stable, pushed out of the stable set and stopped
  | 'failed' // rolled back by its gates (evidence attached)
  | 'aborted' // ended by a human (`modelctl abort`) or an interrupted rollout resolved by abort
  | 'held' // gates inconclusive: waiting for a human to promote or abort
  | 'shadowed'; // a shadow-only rollout whose gates passed: never served, stopped, not promoted

export interface StepRecord {
  /** Percent of live traffic on the candidate during this step (0 for a shadow step). */
  weight: number;
  /** Shadow steps mirror `mirror` percent instead of splitting. */
  mirror: number;
  startedAt: number;
  endedAt: number | null;
  verdict: Verdict | null;
  /** The latest result of each gate during this step (the evidence). */
  gates: GateResult[];
  /** Per gate, the measurements counted so far in this step (Argo-style limits act on these). */
  tallies?: GateTally[];
}

export interface GateTally {
  name: string;
  measurements: number;
  failed: number;
  inconclusive: number;
  consecutiveErrors: number;
}

export interface Release {
  version: string;
  digest: string;
  state: ReleaseState;
  startedAt: number;
  endedAt: number | null;
  /** Why it ended the way it did ("gate error-rate failed: 0.052 > 0.01", "promoted", "aborted by …"). */
  reason: string | null;
  /** Who started it: "user@host pid 123", or the GitHub run URL in Actions. */
  startedBy: string;
  steps: StepRecord[];
  /** The step evidence was dropped to keep the ledger within its store's size limit (a ConfigMap holds 1 MiB). */
  evidenceTrimmed?: boolean;
}

export type RolloutPhase = 'starting' | 'shadow' | 'canary' | 'promoting' | 'rolling-back' | 'held';

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

export interface RolloutState {
  version: string;
  digest: string;
  phase: RolloutPhase;
  /** Index into plan.steps of the current canary step (-1 before canary). */
  stepIndex: number;
  plan: RolloutPlan;
  startedAt: number;
  holder: string;
  /** Set by `modelctl promote` / `modelctl abort` from another process; the driving deploy obeys. */
  requested: 'promote' | 'abort' | null;
  /** Who asked for `requested`, and when. */
  requestedBy?: string | null;
  requestedAt?: number | null;
}

export interface LockRecord {
  holder: string;
  pid: number;
  host: string;
  acquiredAt: number;
  /** Renewed by the holder; past this the holder is presumed dead (reported, never silently stolen mid-step). */
  expiresAt: number;
}

export interface ModelLedger {
  model: string;
  target: string;
  releases: Release[]; // oldest first
  /** The stable set, serving version first, at most three. */
  stableSet: string[];
  /** The split last applied (recorded before applying). */
  traffic: TrafficSplit;
  rollout: RolloutState | null;
  lock: LockRecord | null;
  /** Oldest releases removed to keep the ledger within its store's size limit. */
  releasesDropped?: number;
}

export function emptyLedger(model: string, target: string): ModelLedger {
  return { model, target, releases: [], stableSet: [], traffic: { weights: {}, mirror: null }, rollout: null, lock: null };
}

/** A ledger document and the revision it was read at. */
export interface Versioned<T> {
  doc: T;
  /** Opaque revision for compare-and-swap (a counter on disk, resourceVersion in Kubernetes). */
  rev: string | null;
}

/** Compare-and-swap persistence of one ledger per model and target. */
export interface LedgerStore {
  read(model: string): Promise<Versioned<ModelLedger>>;
  /** Write if the stored revision is still `rev` (null = must not exist); else throw LedgerConflictError. */
  write(model: string, doc: ModelLedger, rev: string | null): Promise<string>;
  /** Models that have a ledger. */
  list(): Promise<string[]>;
}

export class LedgerConflictError extends Error {
  constructor(model: string) {
    super(`ledger of ${model} changed under us (another modelctl wrote it); re-read and retry`);
    this.name = 'LedgerConflictError';
  }
}
