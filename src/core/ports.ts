/**
 * The ports: the contracts between the rollout engine and the world. The engine only ever talks to these
 * interfaces (DESIGN.md): a Target runs versions and moves traffic, a MetricSource measures them,
 * a LedgerStore remembers everything before it is done, a Clock tells time. One implementation per
 * backend (local runtime now, Kubernetes and Prometheus next); fakes in tests.
 */

import type { RolloutPlan, TrafficSplit, VersionRef } from './model.js';

/** Milliseconds since the epoch; the engine never reads the system clock itself. */
export interface Clock {
  now(): number;
  /** Resolves after `ms`, or as soon as `signal` aborts (an interrupted rollout must not wait out its bake). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      // The timer is cleared on abort so that no pending sleep keeps the process alive after it is done.
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
    }),
};

export interface DeployOptions {
  /**
   * `ref` is the candidate of a rollout starting now, not a stable version made to run again (a
   * rollback, a resume). A target whose versions compare a shadow's answers with the version serving
   * (Kubernetes: the meter's --compare-with) points a candidate at what serves now.
   */
  candidate?: boolean;
}

/** Runs versions and routes traffic. Every method is idempotent (the engine may repeat a step after a crash). */
export interface Target {
  readonly name: string; // 'local' | 'kubernetes'
  /** Make `ref` run (pull its verified bundle, start it) without giving it traffic. */
  deploy(ref: VersionRef, opts?: DeployOptions): Promise<void>;
  /** Resolve when `version` is ready to serve; reject with a reason (crash loop, timeout…) otherwise. */
  waitReady(model: string, version: string, timeoutMs: number): Promise<void>;
  /**
   * A live health check of a running version (after a rollback switch, and at every check of a
   * step: the candidate-ready gate). False when it is not running or has nothing ready to serve;
   * throws when it cannot tell (the target's API unreachable): not the same as unhealthy.
   */
  healthy(model: string, version: string): Promise<boolean>;
  /** Apply the whole split atomically. Resolves once the router serves the new split. */
  applyTraffic(model: string, split: TrafficSplit): Promise<void>;
  /** Stop a version (it left the stable set, or it failed). */
  retire(model: string, version: string): Promise<void>;
  /** Refuse (UsageError) a plan this target cannot carry out, or a version it cannot run (`ref`), before the engine changes anything. */
  checkPlan?(model: string, plan: RolloutPlan, ref?: VersionRef): Promise<void>;
  /** The objects deploy() and applyTraffic(split) would write, for `deploy --dry-run` (targets that write manifests). */
  manifests?(ref: VersionRef, split: TrafficSplit): Promise<object[]>;
  /**
   * Send one evaluation request to `version` alone, through the path the target serves (the local
   * router's per-version route), never counted as live traffic nor in gate windows. Throws on no
   * answer (timeout, unreachable). Optional: a target without it cannot run evaluation gates.
   */
  evaluate?(model: string, version: string, request: EvaluationRequest): Promise<EvaluationAnswer>;
  /** What actually runs and where traffic actually goes, read from the target (for `status`: is the ledger true?). */
  observe?(model: string): Promise<ObservedState>;
}

/** One replayed evaluation case: a JSON body POSTed to `path` on one version. */
export interface EvaluationRequest {
  path: string;
  body: unknown;
  timeoutMs: number;
  signal?: AbortSignal;
  /** The case, for errors: "eval/cases.jsonl:12" (file inside the bundle and line). */
  what?: string;
}

export interface EvaluationAnswer {
  status: number;
  /** The raw body (bounded by the target). */
  body: Buffer;
  latencyMs: number;
}

/** A target's own view of a model, independent of the ledger. */
export interface ObservedState {
  /** Per version found running: ready and desired replicas. */
  versions: Record<string, { ready: number; desired: number }>;
  /** The split the router is configured with (null: no router object found). */
  traffic: TrafficSplit | null;
}

/** What a metric source measured for one version over a window. */
export interface VersionWindow {
  requests: number;
  /** 5xx answers and failed connections. */
  errors: number;
  /** Latencies in ms of the window's requests (possibly a bounded sample). */
  latenciesMs: number[];
  /** Values of the bundle's numeric answer field (e.g. `score`), when it names one. */
  scores: number[];
  /** Shadow only: requests whose candidate answer was compared with the stable one, and how many agreed. */
  shadowCompared: number;
  shadowAgreed: number;
  /**
   * Shadow only: mirrored answers that could not be compared with stable's — dropped at the
   * comparer's concurrency bound, or failed (stable did not answer in time, or with an error). Never
   * counted as agreeing; shown so that "0 of 0 compared" says why. Absent: not measured (the local
   * router compares every mirrored answer it gets).
   */
  shadowDropped?: number;
  shadowFailed?: number;
  /**
   * Answers (status < 400) from which a field the bundle declares (serve.scoreField /
   * agreementField) could not be read: not JSON, or the field missing or not a number. The version
   * broke its own answer contract; gates must not read these as good answers. Absent: not measured.
   */
  unreadable?: number;
}

export interface MetricSource {
  /** Measurements of `version` for requests that ended in [sinceMs, now]. */
  window(model: string, version: string, sinceMs: number): Promise<VersionWindow>;
  /**
   * The base URL that reaches `version` alone (no traffic split), for checks that call the model
   * themselves (command and http gates); null when it is not running. Optional: a source that
   * cannot tell (Kubernetes today) leaves those URLs out.
   */
  endpoint?(model: string, version: string): Promise<string | null>;
}

/**
 * A view of `source` for one gate check: every gate of the check that asks for the same version and
 * window shares one measurement (on Kubernetes a measurement is a pod list plus a read of every
 * pod's meter). Windows are treated as read-only by gates, so sharing them is safe.
 */
export function sharedPerCheck(source: MetricSource): MetricSource {
  const taken = new Map<string, Promise<VersionWindow>>();
  return {
    ...(source.endpoint ? { endpoint: source.endpoint.bind(source) } : {}),
    window(model, version, sinceMs) {
      const key = `${model}\u0000${version}\u0000${sinceMs}`;
      let w = taken.get(key);
      if (!w) {
        w = source.window(model, version, sinceMs);
        taken.set(key, w);
      }
      return w;
    },
  };
}
