import type { Release, ModelLedger, StepRecord } from '../ledger/model.js';

/** Pure reads and small edits of a ledger document that the engine's phases and the rollback share. */

/** The latest release record of `version` (a version may be deployed again after it failed). */
export function latestRelease(doc: ModelLedger, version: string): Release | undefined {
  for (let i = doc.releases.length - 1; i >= 0; i--) if (doc.releases[i]!.version === version) return doc.releases[i];
  return undefined;
}

/** The release records of `version` still marked stable (a rollback adds one per switch back to it). */
export function stableRecords(doc: ModelLedger, version: string): Release[] {
  return doc.releases.filter((r) => r.version === version && r.state === 'stable');
}

/** End the open step of `release` (if any) with `verdict`. */
export function closeOpenStep(release: Release, now: number, verdict: StepRecord['verdict']): void {
  const step = release.steps.at(-1);
  if (step && step.endedAt === null) Object.assign(step, { endedAt: now, verdict });
}
