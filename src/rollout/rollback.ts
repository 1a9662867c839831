import { NotFoundError, UsageError } from '../core/errors.js';
import type { ModelLedger } from '../ledger/model.js';
import { latestRelease, stableRecords } from './queries.js';
import type { RollbackOptions, RollbackResult } from './results.js';
import { soleSplit } from './splits.js';

/**
 * `modelctl rollback`: an instant switch of all traffic to a warm version of the stable set. The
 * decision and the ledger change are pure (they run inside the engine's compare-and-swap update);
 * the engine makes the switch on the target after they are written (write-ahead).
 */

export interface RollbackDecision {
  /** switched: traffic moves; already-serving: nothing to do; needs-deploy: --force on a version that is not running. */
  action: RollbackResult['action'];
  from: string | null;
  to: string;
  digest: string;
}

/** Where to roll `model` back to (default: the previous stable), or why there is nowhere to go. */
export function decideRollback(doc: ModelLedger, model: string, opts: RollbackOptions): RollbackDecision {
  const set = doc.stableSet;
  const from = set[0] ?? null;
  if (!from) throw new NotFoundError(`${model} has no stable version on target ${doc.target}`, { hint: `deploy one: modelctl deploy ${model}@<version>` });
  const to = opts.to ?? set[1];
  if (!to) throw new UsageError(`${model} has a single stable version (${from}): there is nothing to roll back to`, { hint: `modelctl history ${model}` });
  const release = latestRelease(doc, to);
  if (!release) throw new NotFoundError(`${model}@${to} was never deployed on target ${doc.target}`, { hint: `modelctl history ${model}` });
  if (to === from) return { action: 'already-serving', from, to, digest: release.digest };
  if (!set.includes(to)) {
    if (!opts.force) {
      throw new UsageError(`${model}@${to} is not in the stable set (${set.join(', ')}): it is ${release.state} and not running, so there is no instant switch to it`, {
        hint: `roll forward to it through the canary steps: modelctl rollback ${model} --to ${to} --force`,
        details: { model, version: to, state: release.state, stableSet: set },
      });
    }
    return { action: 'needs-deploy', from, to, digest: release.digest };
  }
  return { action: 'switched', from, to, digest: release.digest };
}

/** Record a switch in the ledger, before it is made: the stable set, the split, the history. */
export function recordRollback(doc: ModelLedger, d: RollbackDecision, opts: { by: string; now: number; keepStable: boolean }): void {
  const { from, to } = d;
  const { by, now, keepStable } = opts;
  // The target becomes serving: front of the stable set, the others keep their order. The
  // version rolled back from was judged bad by a human: it leaves the set (unless kept), so
  // the next rollback does not go straight back to it.
  doc.stableSet = [to, ...doc.stableSet.filter((v) => v !== to && (keepStable || v !== from))];
  doc.traffic = soleSplit(to);
  if (!keepStable && from) {
    for (const r of stableRecords(doc, from)) Object.assign(r, { state: 'retired', endedAt: now, reason: `rolled back to ${to} by ${by}` });
  }
  // The rollback itself is a release event in the history: `to` serves again from now on.
  doc.releases.push({
    version: to,
    digest: d.digest,
    state: 'stable',
    startedAt: now,
    endedAt: now,
    reason: `rollback from ${from} by ${by}${keepStable ? ` (${from} kept in the stable set)` : ''}`,
    startedBy: by,
    steps: [],
  });
}
