import type { GatePhase, GateResult, GateSpec } from '../core/gates.js';
import type { Target } from '../core/ports.js';

/**
 * The built-in gate of every check while the candidate holds live traffic: can it serve at all?
 * Requests a router answers itself because the candidate has no ready backend (the Gateway's 503
 * "no healthy upstream") never reach the candidate's meter, so no metric gate can see them.
 *
 * Critical, and one failed check fails the step: readiness is already debounced where it is
 * decided (a Kubernetes readiness probe's failureThreshold, the local supervisor's live probe),
 * and from that moment the candidate's whole share is failing — a second check would only add
 * checkEveryMs of errors for users. A wrong "no" costs a rollback, the safe direction.
 *
 * "Cannot tell" is not "not ready": a target that could not be asked (the API server answered 500
 * or timed out past the client's own retries) is asked again within the check (RETRY); if it still
 * cannot tell, the verdict is `error`, which counts against the gate's consecutiveErrorLimit (4 by
 * default, as Argo's) and at the end of a step holds for a human like any gate that cannot tell —
 * it never rolls back on its own: a transient API outage must not cost a good candidate its rollout.
 */
export const CANDIDATE_READY: GateSpec = { name: 'candidate-ready', metric: 'candidate-ready', critical: true };

/** The limit the gate shows: what it requires. */
export const READY_LIMIT = 'ready';

export interface CandidateReadyInput {
  model: string;
  version: string;
  phase: GatePhase;
  /** The candidate's canary weight (canary) or mirror percent (shadow). */
  percent: number;
  now: number;
  /** Waits between attempts (the engine's clock, so tests run in virtual time). */
  sleep: (ms: number) => Promise<void>;
}

/** Attempts within one check when the target throws, and the pause between them. */
export const RETRY = { attempts: 3, delayMs: 1_000 } as const;

export async function candidateReady(target: Pick<Target, 'healthy'>, c: CandidateReadyInput): Promise<GateResult> {
  const share = c.phase === 'canary' ? `takes ${c.percent}% of traffic: the router answers its share with errors (503)` : `receives a ${c.percent}% mirror of traffic: its shadow answers are all errors`;
  const base = { name: CANDIDATE_READY.name, limit: READY_LIMIT, samples: 1, query: `target.healthy(${c.model}, ${c.version})`, at: c.now };
  let ready: boolean | undefined;
  let why = '';
  for (let attempt = 1; ready === undefined && attempt <= RETRY.attempts; attempt++) {
    if (attempt > 1) await c.sleep(RETRY.delayMs);
    try {
      ready = await target.healthy(c.model, c.version);
    } catch (err) {
      why = err instanceof Error ? err.message : String(err);
    }
  }
  if (ready === undefined) {
    return { ...base, verdict: 'error', value: null, samples: 0, reason: `could not tell whether ${c.model}@${c.version} is ready (${RETRY.attempts} attempts; an error, not "unready"): ${why}` };
  }
  if (ready) return { ...base, verdict: 'pass', value: 1, reason: `${c.model}@${c.version} is ready` };
  return { ...base, verdict: 'fail', value: 0, reason: `${c.model}@${c.version} is not ready (no ready pod or process) while it ${share}` };
}

/**
 * A gate's value in words where a number would mislead: candidate-ready's 1 / 0 is "ready" /
 * "NOT ready" ("unknown" when the target could not tell). Undefined for every other gate.
 */
export function gateValueWords(gate: unknown, value: unknown): string | undefined {
  if (gate !== CANDIDATE_READY.name) return undefined;
  return value === 1 ? 'ready' : value === 0 ? 'NOT ready' : 'unknown';
}
