import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ExitCode, ModelctlError } from '../../src/core/errors.js';
import { acquireLock, lockState, LockLostError, releaseLock, renewLock, type LockOwner } from '../../src/ledger/lock.js';
import { MemoryLedgerStore } from '../../src/ledger/memory-store.js';
import { emptyLedger, LedgerConflictError } from '../../src/ledger/model.js';
import { updateLedger, updateLedgerAt } from '../../src/rollout/ledger-update.js';
import { sharedPerCheck, type VersionWindow } from '../../src/core/ports.js';
import { ContendedLedgerStore } from '../fakes/ledger.js';

const alice: LockOwner = { holder: 'alice', pid: 1, host: 'a' };
const bob: LockOwner = { holder: 'bob', pid: 2, host: 'b' };

describe('MemoryLedgerStore', () => {
  test('compare-and-swap: create-only, then only at the revision read', async () => {
    const s = new MemoryLedgerStore();
    const first = await s.read('m');
    assert.equal(first.rev, null);
    assert.deepEqual(first.doc, emptyLedger('m', 'local'));
    const rev1 = await s.write('m', first.doc, null);
    await assert.rejects(s.write('m', first.doc, null), LedgerConflictError, 'create-only');
    const rev2 = await s.write('m', first.doc, rev1);
    assert.notEqual(rev1, rev2);
    await assert.rejects(s.write('m', first.doc, rev1), LedgerConflictError, 'stale revision');
    assert.equal(s.conflicts, 2);
    assert.deepEqual(await s.list(), ['m']);
  });

  test('documents are copies: mutating what was read or written changes nothing stored', async () => {
    const s = new MemoryLedgerStore();
    const { doc } = await s.read('m');
    await s.write('m', doc, null);
    doc.stableSet.push('x');
    const again = await s.read('m');
    assert.equal(again.doc.stableSet.length, 0);
    again.doc.stableSet.push('y');
    assert.equal(s.peek('m')!.stableSet.length, 0);
  });
});

describe('updateLedgerAt: writing from the last known revision', () => {
  test('no read when nobody else wrote; a conflict (someone did) re-applies to a fresh read; "nothing to do" is decided on a fresh read', async () => {
    const mem = new MemoryLedgerStore();
    let known = await updateLedgerAt(mem, 'm', (d) => void (d.stableSet = ['1']), null);
    const reads = () => mem.reads;
    const r0 = reads();
    known = await updateLedgerAt(mem, 'm', (d) => void d.stableSet.push('2'), known);
    assert.equal(reads(), r0, 'written at the known revision without reading');
    assert.deepEqual(mem.peek('m')!.stableSet, ['1', '2']);
    // Another process writes (a promote request): our known revision is stale now.
    await updateLedger(mem, 'm', (d) => void (d.rollout = { requested: 'promote' } as any));
    const seen: unknown[] = [];
    known = await updateLedgerAt(mem, 'm', (d) => void seen.push(d.rollout?.requested ?? null), known);
    assert.deepEqual(seen, [null, 'promote'], 'first on the known copy, then on a fresh read after the conflict');
    assert.equal(mem.peek('m')!.rollout?.requested, 'promote', 'the other writer\'s change is kept');
    // A change that finds nothing to do on the known copy is asked again on current data.
    await updateLedger(mem, 'm', (d) => void d.stableSet.push('3'));
    const decided: string[][] = [];
    await updateLedgerAt(mem, 'm', (d) => (decided.push([...d.stableSet]), false), known);
    assert.deepEqual(decided, [['1', '2'], ['1', '2', '3']]);
  });

  test('the known document is never mutated by a failed attempt', async () => {
    const mem = new MemoryLedgerStore();
    const known = await updateLedgerAt(mem, 'm', () => {}, null);
    await updateLedger(mem, 'm', () => {});
    await updateLedgerAt(mem, 'm', (d) => void d.stableSet.push('x'), known);
    assert.deepEqual(known.doc.stableSet, []);
  });
});

describe('sharedPerCheck', () => {
  test('one measurement per version and window within a check', async () => {
    let calls = 0;
    const empty: VersionWindow = { requests: 0, errors: 0, latenciesMs: [], scores: [], shadowCompared: 0, shadowAgreed: 0 };
    const source = { window: async () => (calls++, empty) };
    const check = sharedPerCheck(source);
    await Promise.all([check.window('m', '1', 5), check.window('m', '1', 5), check.window('m', '2', 5), check.window('m', '1', 6)]);
    assert.equal(calls, 3);
    await sharedPerCheck(source).window('m', '1', 5);
    assert.equal(calls, 4, 'the next check measures again');
  });
});

describe('updateLedger', () => {
  test('re-applies the change to a fresh read after a conflict, keeping the other writer\'s change', async () => {
    const mem = new MemoryLedgerStore();
    await updateLedger(mem, 'm', (d) => void (d.stableSet = ['1']));
    const store = new ContendedLedgerStore(mem, 1, (d) => void d.stableSet.push('other'), 1);
    let runs = 0;
    const doc = await updateLedger(store, 'm', (d) => {
      runs++;
      d.stableSet.unshift('mine');
    }, 3);
    assert.equal(runs, 2);
    assert.deepEqual(doc.stableSet, ['mine', '1', 'other']);
    assert.deepEqual(mem.peek('m')!.stableSet, ['mine', '1', 'other']);
  });

  test('gives up after its retries; `false` means no write', async () => {
    const mem = new MemoryLedgerStore();
    await updateLedger(mem, 'm', () => {});
    const always = new ContendedLedgerStore(mem, 1);
    await assert.rejects(updateLedger(always, 'm', () => {}, 2), LedgerConflictError);
    const writes = mem.writes;
    await updateLedger(mem, 'm', () => false);
    assert.equal(mem.writes, writes);
  });
});

describe('lock helpers', () => {
  test('acquire, re-enter, renew, release; a live lock of another holder is refused with exit 5', () => {
    const doc = emptyLedger('m', 'local');
    assert.equal(acquireLock(doc, alice, 1_000, 60_000), null);
    assert.deepEqual(doc.lock, { holder: 'alice', pid: 1, host: 'a', acquiredAt: 1_000, expiresAt: 61_000 });
    acquireLock(doc, alice, 2_000, 60_000);
    assert.equal(doc.lock!.acquiredAt, 1_000, 're-entrant: keeps its start');
    assert.throws(
      () => acquireLock(doc, bob, 3_000, 60_000),
      (e: ModelctlError) => e.exitCode === ExitCode.locked && /locked by alice \(pid 1 on a\) since 1970-01-01T00:00:01\.000Z/.test(e.message),
    );
    renewLock(doc, alice, 10_000, 60_000, 30_000);
    assert.equal(doc.lock!.expiresAt, 100_000);
    releaseLock(doc, bob);
    assert.equal(doc.lock!.holder, 'alice', 'never release somebody else\'s');
    releaseLock(doc, alice);
    assert.equal(doc.lock, null);
  });

  test('an expired lock is reported, and only taken over when the caller says it resolves it', () => {
    const doc = emptyLedger('m', 'local');
    acquireLock(doc, alice, 0, 10_000);
    assert.equal(lockState(doc.lock, 10_000).kind, 'expired');
    assert.throws(() => acquireLock(doc, bob, 20_000, 10_000), (e: ModelctlError) => e.exitCode === ExitCode.locked && /presumed dead/.test(e.message) && /modelctl abort m/.test(e.hint!));
    const previous = acquireLock(doc, bob, 20_000, 10_000, { takeOverExpired: true });
    assert.equal(previous!.holder, 'alice');
    assert.equal(doc.lock!.holder, 'bob');
    assert.throws(() => renewLock(doc, alice, 21_000, 10_000), LockLostError);
  });
});
