import { isGateEvent } from '../../src/core/events.js';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ExitCode, ModelctlError } from '../../src/core/errors.js';
import type { RolloutPlan } from '../../src/core/model.js';
import type { RolloutResult } from '../../src/rollout/results.js';
import { ContendedLedgerStore, FailingLedgerStore } from '../fakes/ledger.js';
import { MODEL, plan, ref, show, World } from '../fakes/world.js';

/**
 * Crash at every step. A clean rollout (shadow, three canary steps, promotion) makes N Target
 * calls and W ledger writes; for every n ≤ N (and every w ≤ W) a fresh world fails exactly there,
 * then the rollout is resolved — by abort (stable restored), by promote, or by `deploy --resume`
 * — and the world must be consistent: the router serves what the ledger says, the stable set is
 * right, nothing half-done remains, and the write-ahead rule held at every call.
 */

const PLAN: RolloutPlan = plan({ steps: [5, 50, 100], shadowPercent: 10, shadowDurationMs: 40_000 });
const TTL = 60_000;

async function seeded(opts: ConstructorParameters<typeof World>[0] = {}): Promise<World> {
  const w = new World(opts);
  await w.seed('0.9.0', '1.0.0', '2.0.0');
  return w;
}

/** The world after a rollout ended: one rollout-free, lock-free ledger that matches the router. */
function assertConsistent(w: World, expected: { serving: string; stableSet: string[]; candidate: string; running: string[] }, label: string): void {
  const l = w.ledger();
  assert.equal(l.rollout, null, `${label}: rollout left in the ledger`);
  assert.equal(l.lock, null, `${label}: lock left`);
  assert.deepEqual(l.stableSet, expected.stableSet, `${label}: stable set`);
  assert.equal(show(l.traffic), `${expected.serving}:100`, `${label}: ledger traffic`);
  assert.equal(show(w.target.traffic(MODEL)), `${expected.serving}:100`, `${label}: router traffic`);
  assert.equal(w.release('3.0.0').state, expected.candidate, `${label}: candidate state`);
  assert.deepEqual(w.target.running(MODEL), expected.running, `${label}: running versions`);
  assert.deepEqual(w.violations, [], `${label}: write-ahead`);
}

const RESTORED = { serving: '2.0.0', stableSet: ['2.0.0', '1.0.0', '0.9.0'], candidate: 'aborted', running: ['0.9.0', '1.0.0', '2.0.0'] };
const PROMOTED = { serving: '3.0.0', stableSet: ['3.0.0', '2.0.0', '1.0.0'], candidate: 'stable', running: ['1.0.0', '2.0.0', '3.0.0'] };

async function cleanRun(): Promise<{ calls: number; writes: number; methods: string[]; checks: boolean[] }> {
  const failing = { store: null as FailingLedgerStore | null };
  const w = await seeded({ wrapStore: (m) => (failing.store = new FailingLedgerStore(m)) });
  const calls0 = w.mark();
  const writes0 = failing.store!.writes;
  const r = await w.engine().deploy(ref('3.0.0'), PLAN);
  assert.equal(r.outcome, 'promoted');
  assertConsistent(w, PROMOTED, 'clean run');
  const made = w.target.calls.slice(calls0);
  return { calls: w.mark() - calls0, writes: failing.store!.writes - writes0, methods: made.map((c) => c.method), checks: made.map((c) => c.method === 'healthy' && c.version === '3.0.0') };
}

function resolved(res: unknown): RolloutResult {
  const r = res as { kind: string; result: RolloutResult };
  assert.equal(r.kind, 'resolved');
  return r.result;
}

describe('a crash at every Target call', async () => {
  const { calls, methods, checks } = await cleanRun();

  // deploy, waitReady, shadow mirror, 95/5, 50/50, 100%, then retire 0.9.0 (pushed out of the set);
  // between them the candidate's readiness at every check: 2 in the 40 s shadow, 3 per 60 s step.
  test(`the clean run makes ${calls} target calls`, () => {
    assert.equal(calls, 15);
    assert.deepEqual(methods.filter((m) => m !== 'healthy'), ['deploy', 'waitReady', 'applyTraffic', 'applyTraffic', 'applyTraffic', 'applyTraffic', 'retire']);
  });

  test('the last call, retiring the version pushed out, is housekeeping after the commit', async () => {
    const w = await seeded();
    w.target.failAt(calls, 'throw');
    const r = await w.engine().deploy(ref('3.0.0'), PLAN);
    assert.equal(r.outcome, 'promoted');
    assert.ok(r.events.some((e) => e.type === 'retire-failed' && e.version === '0.9.0'));
    assert.deepEqual(w.ledger().stableSet, PROMOTED.stableSet);
    assert.equal(w.release('0.9.0').state, 'retired');
    // A kill -9 there leaves only an expired lock and no rollout: the next deploy just proceeds.
    const w2 = await seeded();
    const m = w2.mark();
    w2.target.failAt(calls, 'hang');
    void w2.engine().deploy(ref('3.0.0'), PLAN);
    await w2.until(() => w2.target.calls.length >= m + calls);
    await w2.clock.advance(TTL);
    assert.equal(w2.ledger().rollout, null);
    const next = await w2.engine('bob', 200).deploy(ref('4.0.0'), plan({ steps: [50, 100] }));
    assert.equal(next.outcome, 'promoted');
    assert.ok(next.events.some((e) => e.type === 'lock-taken-over'));
  });

  test('a waitReady that rejects is the candidate not becoming ready: rolled back, not interrupted', async () => {
    const n = methods.indexOf('waitReady') + 1;
    const w = await seeded();
    w.target.failAt(n, 'throw');
    const r = await w.engine().deploy(ref('3.0.0'), PLAN);
    assert.equal(r.outcome, 'rolled-back');
    assertConsistent(w, { ...RESTORED, candidate: 'failed' }, 'waitReady rejected');
  });

  test('a deploy call that throws (corrupt bundle, no serve section, port taken, disk full) leaves the model as it was', async () => {
    assert.equal(methods[0], 'deploy');
    const w = await seeded();
    const before = w.ledger();
    w.target.failAt(1, 'throw');
    const err = await w.engine().deploy(ref('3.0.0'), PLAN).catch((e: unknown) => e);
    assert.ok(err instanceof ModelctlError, String(err));
    assert.match(err.message, /injected failure/);
    assert.doesNotMatch(err.hint ?? '', /promote|--resume/, 'no hint to promote or resume a version that never ran');
    const l = w.ledger();
    assert.equal(l.rollout, null, 'no rollout left "starting … interrupted"');
    assert.equal(l.lock, null, 'no lock held');
    assert.deepEqual([l.stableSet, l.traffic], [before.stableSet, before.traffic]);
    assert.equal(w.release('3.0.0').state, 'failed');
    assert.match(w.release('3.0.0').reason ?? '', /could not start 3\.0\.0: .*injected failure/);
    assert.equal(show(w.target.traffic(MODEL)), '2.0.0:100');
    // Nothing blocks the next attempt.
    const again = await w.engine().deploy(ref('3.0.0'), PLAN);
    assert.equal(again.outcome, 'promoted');
  });

  test('a deploy killed while its candidate starts: the next deploy is told to abort it, never to promote a version that never ran', async () => {
    const w = await seeded();
    const m = w.mark();
    w.target.failAt(2, 'hang'); // waitReady never returns: kill -9 while starting
    void w.engine().deploy(ref('3.0.0'), PLAN);
    await w.until(() => w.target.calls.length >= m + 2);
    await w.clock.advance(PLAN.readyTimeoutMs + TTL);
    const err = await w.engine('bob', 200).deploy(ref('4.0.0'), PLAN).catch((e: unknown) => e);
    assert.ok(err instanceof ModelctlError && err.exitCode === ExitCode.locked, String(err));
    assert.match(err.message, /3\.0\.0 \(starting\) was interrupted/);
    assert.match(err.hint ?? '', /modelctl abort sentiment/);
    assert.doesNotMatch(err.hint ?? '', /promote/);
  });

  for (let n = 1; n < calls; n++) {
    // A rejecting waitReady is a verdict on the candidate, covered above; a hang there is a crash.
    // A deploy that throws never started anything: covered above. The candidate's readiness check
    // that throws once is "cannot tell", asked again within the check: below.
    const throws = methods[n - 1] !== 'waitReady' && methods[n - 1] !== 'deploy' && !checks[n - 1];
    if (checks[n - 1]) test(`call ${n} (healthy, the candidate-ready check) throws → asked again, the rollout goes on → promoted`, async () => {
      const w = await seeded();
      w.target.failAt(n, 'throw');
      const r = await w.engine().deploy(ref('3.0.0'), PLAN);
      assert.equal(r.outcome, 'promoted', r.reason);
      assert.ok(r.events.filter(isGateEvent).every((e) => e.gate !== 'candidate-ready' || e.verdict === 'pass'));
      assertConsistent(w, PROMOTED, `readiness check ${n} threw`);
    });
    if (throws) test(`call ${n} (${methods[n - 1]}) throws → interrupted (exit 9, lock freed) → abort restores stable`, async () => {
      const w = await seeded();
      w.target.failAt(n, 'throw');
      const err = await w.engine().deploy(ref('3.0.0'), PLAN).catch((e: unknown) => e);
      assert.ok(err instanceof ModelctlError, String(err));
      assert.equal(err.exitCode, ExitCode.unavailable);
      assert.match(err.message, /injected failure/);
      const st = await w.engine('bob', 200).status(MODEL);
      assert.equal(st.rollout!.interrupted, true, 'the rollout is recorded and shown as interrupted');
      assert.equal(st.lock, null, 'the lock was freed so it can be resolved at once');
      const r = resolved(await w.engine('bob', 200).abort(MODEL));
      assert.equal(r.outcome, 'aborted');
      assertConsistent(w, RESTORED, `crash at ${n}, abort`);
    });

    if (throws) test(`call ${n} (${methods[n - 1]}) throws → deploy --resume completes the rollout`, async () => {
      const w = await seeded();
      w.target.failAt(n, 'throw');
      await assert.rejects(w.engine().deploy(ref('3.0.0'), PLAN));
      const r = await w.engine().deploy(ref('3.0.0'), PLAN, { resume: true });
      assert.equal(r.outcome, 'promoted');
      assertConsistent(w, PROMOTED, `crash at ${n}, resume`);
    });

    test(`call ${n} (${methods[n - 1]}) hangs (kill -9) → lock expires → promote from another process completes it`, async () => {
      const w = await seeded();
      const m = w.mark();
      w.target.failAt(n, 'hang');
      void w.engine().deploy(ref('3.0.0'), PLAN);
      await w.until(() => w.target.calls.length >= m + n);
      await w.clock.advance(PLAN.readyTimeoutMs + PLAN.checkEveryMs + TTL);
      const r = resolved(await w.engine('bob', 200).promote(MODEL));
      assert.equal(r.outcome, 'promoted');
      assert.ok(r.events.some((e) => e.type === 'lock-taken-over'));
      assertConsistent(w, PROMOTED, `hang at ${n}, promote`);
    });
  }
});

describe('a crash at every Target call of a rollback that cascades', async () => {
  // 3.0.0 fails at 25%; the serving 2.0.0 turns out unhealthy, so traffic cascades to 1.0.0.
  const FAILING = plan({ steps: [5, 25, 100] });
  async function failingWorld(): Promise<World> {
    const w = await seeded();
    w.metrics.script('3.0.0', (q) => ({ errorRate: q.share >= 25 ? 0.5 : 0 }));
    w.target.unhealthy.add('2.0.0');
    return w;
  }
  const AFTER = { serving: '1.0.0', stableSet: ['1.0.0', '2.0.0', '0.9.0'], running: ['0.9.0', '1.0.0', '2.0.0'] };
  const w0 = await failingWorld();
  const m0 = w0.mark();
  const clean = await w0.engine().deploy(ref('3.0.0'), FAILING);
  const methods = w0.target.calls.slice(m0).map((c) => c.method);
  // The candidate's readiness checks: one that throws is asked again, and 3.0.0 still fails at 25%.
  const checks = w0.target.calls.slice(m0).map((c) => c.method === 'healthy' && c.version === '3.0.0');

  test('the clean run: fail at 25%, 2.0.0 unhealthy, 1.0.0 serves', () => {
    assert.equal(clean.outcome, 'rolled-back');
    assert.equal(clean.rolledBackTo, '1.0.0');
    // 3.0.0 passes its 5% step (3 readiness checks) and fails at the first check of 25% (1 more).
    assert.deepEqual(methods, ['deploy', 'waitReady', 'applyTraffic', 'healthy', 'healthy', 'healthy', 'applyTraffic', 'healthy', 'applyTraffic', 'healthy', 'applyTraffic', 'healthy', 'retire']);
    assertConsistent(w0, { ...AFTER, candidate: 'failed' }, 'clean failing run');
  });

  for (let n = 1; n < methods.length; n++) {
    if (methods[n - 1] === 'waitReady' || methods[n - 1] === 'deploy') continue;
    if (checks[n - 1]) {
      test(`call ${n} (healthy, the candidate-ready check) throws → asked again; still rolled back at 25%`, async () => {
        const w = await failingWorld();
        w.target.failAt(n, 'throw');
        const r = await w.engine().deploy(ref('3.0.0'), FAILING);
        assert.equal(r.outcome, 'rolled-back');
        assert.match(r.reason, /error-rate/);
        assertConsistent(w, { ...AFTER, candidate: 'failed' }, `readiness check ${n} threw`);
      });
      continue;
    }
    test(`call ${n} (${methods[n - 1]}) throws → abort finishes what was recorded`, async () => {
      const w = await failingWorld();
      w.target.failAt(n, 'throw');
      await assert.rejects(w.engine().deploy(ref('3.0.0'), FAILING), (e: ModelctlError) => e.exitCode === ExitCode.unavailable);
      const phase = w.ledger().rollout!.phase;
      if (phase === 'rolling-back') {
        // The failure was recorded before the crash: it is not "promotable" any more, and stays failed.
        await assert.rejects(w.engine('bob', 200).promote(MODEL), (e: ModelctlError) => e.exitCode === ExitCode.usage && /already rolling back/.test(e.message));
      }
      const r = resolved(await w.engine('bob', 200).abort(MODEL));
      assertConsistent(w, { ...AFTER, candidate: phase === 'rolling-back' ? 'failed' : 'aborted' }, `crash at ${n}, abort`);
      assert.equal(r.rolledBackTo, '1.0.0');
    });

    test(`call ${n} (${methods[n - 1]}) throws → deploy --resume ends rolled back`, async () => {
      const w = await failingWorld();
      w.target.failAt(n, 'throw');
      await assert.rejects(w.engine().deploy(ref('3.0.0'), FAILING));
      const r = await w.engine().deploy(ref('3.0.0'), FAILING, { resume: true });
      assert.equal(r.outcome, 'rolled-back');
      assertConsistent(w, { ...AFTER, candidate: 'failed' }, `crash at ${n}, resume`);
    });
  }
});

describe('a failed ledger write at every write', async () => {
  const { writes } = await cleanRun();

  test(`the clean run makes ${writes} ledger writes`, () => assert.ok(writes >= 10));

  for (let n = 1; n <= writes; n++) {
    test(`write ${n} fails → the ledger still tells the truth → abort (or nothing to do)`, async () => {
      const failing = { store: null as FailingLedgerStore | null };
      const w = await seeded({ wrapStore: (m) => (failing.store = new FailingLedgerStore(m)) });
      failing.store!.failAt(n);
      const out = await w.engine().deploy(ref('3.0.0'), PLAN).catch((e: unknown) => e);
      if (!(out instanceof Error)) {
        // Only the final lock release may fail without failing the deploy (the outcome is recorded; the lock expires).
        assert.equal((out as RolloutResult).outcome, 'promoted');
        assert.ok((out as RolloutResult).events.some((e) => e.type === 'lock-release-failed'));
        await w.clock.advance(TTL);
        assert.equal(w.ledger().rollout, null);
        assert.deepEqual(w.ledger().stableSet, PROMOTED.stableSet);
        return;
      }
      assert.ok(out instanceof ModelctlError, String(out));
      const l = w.ledger();
      if (l.rollout === null) {
        // Failed before the rollout was recorded (its first write): nothing happened at all.
        assert.equal(n, 1);
        assert.equal(w.target.calls.filter((c) => c.version === '3.0.0').length, 0);
        return;
      }
      const r = resolved(await w.engine('bob', 200).abort(MODEL));
      assert.equal(r.outcome, 'aborted');
      assertConsistent(w, RESTORED, `ledger write ${n} failed, abort`);
    });
  }
});

describe('compare-and-swap', () => {
  test('another writer between every other write: each change is re-applied, the rollout is unaffected', async () => {
    let contended: ContendedLedgerStore | null = null;
    // The foreign writer changes something the engine never touches; it must survive.
    const w = await seeded({
      wrapStore: (m) => (contended = new ContendedLedgerStore(m, 2, (doc) => void (doc.releases[0]!.startedBy = `touched ${doc.releases.length}`))),
    });
    const m = w.mark();
    const r = await w.engine().deploy(ref('3.0.0'), PLAN);
    assert.equal(r.outcome, 'promoted');
    assert.ok(contended!.foreignWrites >= 10);
    assert.ok(w.memory.conflicts >= contended!.foreignWrites);
    assert.deepEqual(w.splitsSince(m), ['2.0.0:100 mirror 3.0.0:10', '2.0.0:95 3.0.0:5', '2.0.0:50 3.0.0:50', '3.0.0:100']);
    assert.match(w.ledger().releases[0]!.startedBy, /^touched/);
    assertConsistent(w, PROMOTED, 'contended');
  });

  test('two deploys racing for the lock: exactly one wins', async () => {
    const w = await seeded();
    const [a, b] = await Promise.allSettled([w.engine('alice', 1).deploy(ref('3.0.0'), PLAN), w.engine('bob', 2).deploy(ref('4.0.0'), PLAN)]);
    const won = [a, b].filter((x) => x.status === 'fulfilled');
    const lost = [a, b].filter((x) => x.status === 'rejected') as PromiseRejectedResult[];
    assert.equal(won.length, 1);
    assert.equal(lost.length, 1);
    assert.equal((lost[0]!.reason as ModelctlError).exitCode, ExitCode.locked);
    assert.ok(w.memory.conflicts >= 1, 'the loser found out through a CAS conflict');
    assert.deepEqual(w.violations, []);
  });
});
