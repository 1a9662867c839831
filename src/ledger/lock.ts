import { ExitCode, ModelctlError } from '../core/errors.js';
import type { LockRecord } from '../core/model.js';
import type { ModelLedger } from './model.js';

/**
 * The per-model rollout lock, kept in the ledger's `lock` field so that taking it is the same
 * compare-and-swap as every other ledger change (a Kubernetes Lease plays this part later).
 *
 * These helpers are pure: they inspect or change a ledger document that the caller then writes
 * with CAS. A lost race therefore never leaves two holders: the loser's write conflicts, it
 * re-reads, and the helper now sees the winner's live lock.
 */

/** Who is acting: "alice@laptop", a GitHub run URL…; pid and host make a dead holder findable. */
export interface LockOwner {
  holder: string;
  pid: number;
  host: string;
}

export type LockState =
  | { kind: 'free' }
  | { kind: 'live'; lock: LockRecord }
  /** Past expiresAt: the holder stopped renewing and is presumed dead. */
  | { kind: 'expired'; lock: LockRecord };

/** How long a lock outlives its last renewal when the holder announced no longer wait. */
export const DEFAULT_LOCK_TTL_MS = 60_000;

/** Tells whether a lock's holder is known to be dead (e.g. same host and its pid is gone). */
export type HolderGone = (lock: LockRecord) => boolean;

/**
 * Live until `expiresAt`, unless the holder is known dead: a `kill -9`ed deploy on this machine is
 * recognised at once instead of after its (possibly long, pre-renewed) expiry.
 */
export function lockState(lock: LockRecord | null, now: number, holderGone?: HolderGone): LockState {
  if (!lock) return { kind: 'free' };
  return now < lock.expiresAt && !holderGone?.(lock) ? { kind: 'live', lock } : { kind: 'expired', lock };
}

export function isOwner(lock: LockRecord | null, owner: LockOwner): boolean {
  return lock !== null && lock.holder === owner.holder && lock.pid === owner.pid && lock.host === owner.host;
}

/** "alice@laptop (pid 4242 on laptop) since 2025-01-02T03:04:05.000Z" */
export function describeLock(lock: LockRecord): string {
  return `${lock.holder} (pid ${lock.pid} on ${lock.host}) since ${iso(lock.acquiredAt)}`;
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Another modelctl holds the lock, or left a rollout that must be resolved first. Exit code 5. */
export class LockedError extends ModelctlError {
  constructor(message: string, opts: { hint?: string; details?: Record<string, unknown> } = {}) {
    super(ExitCode.locked, message, opts);
  }
}

/**
 * We held the lock and somebody else now does (they found it expired and resolved the rollout
 * with `modelctl abort/promote`). The only safe move is to stop touching traffic at once.
 */
export class LockLostError extends ModelctlError {
  constructor(model: string, lock: LockRecord | null) {
    super(
      ExitCode.locked,
      `lost the lock of ${model}: ${lock ? `${describeLock(lock)} took it over` : 'it was released by another modelctl'}; this rollout stopped without touching traffic`,
      { hint: `see what happened with \`modelctl status ${model}\``, details: { model, lock } },
    );
  }
}

/**
 * Take the lock in `doc` (mutates it). Re-entrant for the same owner. A live lock of somebody else
 * throws LockedError. An expired one is only taken when `takeOverExpired` says the caller is the
 * explicit resolution of whatever the dead holder left (abort/promote), never implicitly.
 * Returns the previous (expired) lock when one was taken over, for the record.
 */
export function acquireLock(
  doc: ModelLedger,
  owner: LockOwner,
  now: number,
  ttlMs: number,
  opts: { takeOverExpired?: boolean; holderGone?: HolderGone | undefined } = {},
): LockRecord | null {
  const state = lockState(doc.lock, now, opts.holderGone);
  if (state.kind === 'live' && !isOwner(state.lock, owner)) {
    throw new LockedError(`${doc.model} is locked by ${describeLock(state.lock)} (a rollout is running)`, {
      hint: `wait for it to finish, or ask it to stop: \`modelctl abort ${doc.model}\``,
      details: { model: doc.model, lock: state.lock, lockState: 'live' },
    });
  }
  if (state.kind === 'expired' && !isOwner(state.lock, owner) && !opts.takeOverExpired) {
    throw new LockedError(
      `${doc.model} is locked by ${describeLock(state.lock)}, which stopped renewing it at ${iso(state.lock.expiresAt)} (presumed dead)`,
      {
        hint: `resolve what it left with \`modelctl abort ${doc.model}\` (or \`modelctl promote ${doc.model}\`), then retry`,
        details: { model: doc.model, lock: state.lock, lockState: 'expired' },
      },
    );
  }
  const previous = state.kind === 'expired' && !isOwner(state.lock, owner) ? state.lock : null;
  const acquiredAt = doc.lock && isOwner(doc.lock, owner) ? doc.lock.acquiredAt : now;
  doc.lock = { holder: owner.holder, pid: owner.pid, host: owner.host, acquiredAt, expiresAt: now + ttlMs };
  return previous;
}

/**
 * Extend our lock to `now + extraMs + ttlMs` (unless it already lasts nearly that long): `extraMs` is how long the holder is about to be
 * busy without renewing (a bake interval, a readiness timeout), so a slow but living holder is
 * never presumed dead. Throws LockLostError when the lock is no longer ours.
 */
export function renewLock(doc: ModelLedger, owner: LockOwner, now: number, ttlMs: number, extraMs = 0): void {
  if (!isOwner(doc.lock, owner)) throw new LockLostError(doc.model, doc.lock);
  const wanted = now + extraMs + ttlMs;
  // Extend only when less than ¾ of a TTL (beyond the announced wait) is left: a renewal is a write
  // of its own on Kubernetes (the Lease), and most ledger writes come well within that margin.
  if (doc.lock!.expiresAt >= wanted - ttlMs / 4) return;
  doc.lock = { ...doc.lock!, expiresAt: wanted };
}

/** Drop our lock (no-op if it is not ours: never release somebody else's). */
export function releaseLock(doc: ModelLedger, owner: LockOwner): void {
  if (isOwner(doc.lock, owner)) doc.lock = null;
}
