import { lockState, type HolderGone } from '../ledger/lock.js';
import type { ModelLedger } from '../ledger/model.js';
import type { HistoryEntry, StatusView } from './results.js';

/** What `status` and `history` show: pure views of a ledger document at time `now`. */

/** Serving version, stable set, traffic, the rollout in progress (and whether anybody drives it), the lock. */
export function statusOf(model: string, doc: ModelLedger, now: number, holderGone?: HolderGone): StatusView {
  const r = doc.rollout;
  const ls = lockState(doc.lock, now, holderGone);
  return {
    model,
    target: doc.target,
    serving: doc.stableSet[0] ?? null,
    stableSet: doc.stableSet,
    traffic: doc.traffic.weights,
    mirror: doc.traffic.mirror,
    rollout: r && {
      version: r.version,
      digest: r.digest,
      phase: r.phase,
      stepIndex: r.stepIndex,
      steps: r.plan.steps,
      weight: doc.traffic.weights[r.version] ?? 0,
      holder: r.holder,
      startedAt: r.startedAt,
      requested: r.requested,
      interrupted: r.phase !== 'held' && ls.kind !== 'live',
    },
    lock: doc.lock && { ...doc.lock, expired: ls.kind === 'expired' },
  };
}

/** Releases, newest first, without their step evidence. */
export function historyOf(doc: ModelLedger): HistoryEntry[] {
  return [...doc.releases].reverse().map((r) => ({
    version: r.version,
    digest: r.digest,
    state: r.state,
    startedAt: r.startedAt,
    endedAt: r.endedAt,
    reason: r.reason,
    startedBy: r.startedBy,
  }));
}
