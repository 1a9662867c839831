import assert from 'node:assert/strict';
import type { RolloutStartedEvent } from '../../src/core/events.js';
import { describe, test } from 'node:test';
import { ExitCode, ModelctlError } from '../../src/core/errors.js';
import { LockLostError } from '../../src/ledger/lock.js';
import { OUTCOME_EXIT_CODES } from '../../src/core/model.js';
import { type ResolveResult, type RolloutResult } from '../../src/rollout/results.js';
import { emptyWindow } from '../fakes/metrics.js';
import { MODEL, plan, ref, show, World } from '../fakes/world.js';

/**
 * Two modelctl processes, one ledger: the lock, requests from another process while a deploy
 * bakes, and the resolution of held and interrupted rollouts by `promote` / `abort`.
 * (Each engine is a "process": same world, different holder.)
 */

const TTL = 60_000;

async function heldWorld() {
  const w = new World();
  await w.seed('1.0.0');
  w.metrics.script('1.1.0', () => emptyWindow());
  const r = await w.engine().deploy(ref('1.1.0'), plan());
  assert.equal(r.outcome, 'held');
  w.metrics.script('1.1.0', null);
  return w;
}

describe('requests from another process while a deploy drives the rollout', () => {
  test('promote mid-bake: the driving deploy skips the remaining steps and promotes', async () => {
    const w = new World();
    await w.seed('1.0.0');
    let asked: ResolveResult | null = null;
    w.clock.after(60_000 + 30_000, async () => (asked = await w.engine('bob', 200).promote(MODEL)));
    const m = w.mark();
    const r = await w.engine().deploy(ref('1.1.0'), plan());
    assert.deepEqual(asked, { kind: 'requested', model: MODEL, version: '1.1.0', action: 'promote', holder: 'alice' });
    assert.equal(r.outcome, 'promoted');
    // Obeyed at the next check (40 s into step 2), straight to 100%.
    assert.deepEqual(w.splitsSince(m), ['1.0.0:95 1.1.0:5', '1.0.0:75 1.1.0:25', '1.1.0:100']);
    assert.deepEqual(r.steps.map((s) => [s.weight, s.verdict]), [[5, 'pass'], [25, null]]);
    assert.equal(w.release('1.1.0').reason, 'promoted by bob');
    assert.deepEqual(w.ledger().stableSet, ['1.1.0', '1.0.0']);
    assert.equal(w.ledger().lock, null);
    assert.ok(r.events.some((e) => e.type === 'promote-requested' && e.by === 'bob'));
    assert.deepEqual(w.violations, []);
  });

  test('abort mid-bake: all traffic back on stable, candidate aborted and stopped', async () => {
    const w = new World();
    await w.seed('1.0.0');
    w.clock.after(60_000 + 30_000, () => w.engine('bob', 200).abort(MODEL));
    const m = w.mark();
    const r = await w.engine().deploy(ref('1.1.0'), plan());
    assert.equal(r.outcome, 'aborted');
    assert.equal(OUTCOME_EXIT_CODES.aborted, ExitCode.rolledBack);
    assert.equal(r.rolledBackTo, '1.0.0');
    assert.deepEqual(w.splitsSince(m), ['1.0.0:95 1.1.0:5', '1.0.0:75 1.1.0:25', '1.0.0:100']);
    const rel = w.release('1.1.0');
    assert.deepEqual([rel.state, rel.reason], ['aborted', 'aborted by bob']);
    assert.equal(w.ledger().rollout, null);
    assert.deepEqual(w.target.running(MODEL), ['1.0.0']);
    assert.deepEqual(w.violations, []);
  });

  test('abort while the candidate is still starting: it never gets traffic', async () => {
    const w = new World();
    await w.seed('1.0.0');
    w.target.failAt(2, 'pause'); // waitReady of 1.1.0
    const m = w.mark();
    const running = w.engine().deploy(ref('1.1.0'), plan());
    await w.until(() => w.target.calls.length >= m + 2);
    const asked = await w.engine('bob', 200).abort(MODEL);
    assert.equal(asked.kind, 'requested');
    w.target.resume();
    const r = await running;
    assert.equal(r.outcome, 'aborted');
    assert.deepEqual(w.splitsSince(m), ['1.0.0:100']);
    assert.deepEqual(w.violations, []);
  });

  test('too late to abort a promotion in flight', async () => {
    const w = new World();
    await w.seed('1.0.0');
    const m = w.mark();
    w.target.failAt(7, 'pause'); // deploy, waitReady, 50%, 3 readiness checks, then the 100% apply of the promotion stalls
    const running = w.engine().deploy(ref('1.1.0'), plan({ steps: [50, 100] }));
    await w.until(() => w.target.calls.length >= m + 7);
    await assert.rejects(w.engine('bob', 200).abort(MODEL), (e: ModelctlError) => e.exitCode === ExitCode.usage && /already promoting/.test(e.message));
    w.target.resume();
    assert.equal((await running).outcome, 'promoted');
  });
});

describe('held rollouts are resolved by a human', () => {
  test('promote a held rollout: finishes here, 100% candidate, stable set updated', async () => {
    const w = await heldWorld();
    const m = w.mark();
    const res = await w.engine('bob', 200).promote(MODEL);
    assert.equal(res.kind, 'resolved');
    const r = (res as { result: RolloutResult }).result;
    assert.equal(r.outcome, 'promoted');
    assert.equal(r.version, '1.1.0');
    assert.deepEqual(w.splitsSince(m), ['1.1.0:100']);
    assert.deepEqual(w.ledger().stableSet, ['1.1.0', '1.0.0']);
    assert.deepEqual([w.release('1.1.0').state, w.release('1.1.0').reason], ['stable', 'promoted by bob']);
    assert.equal(w.ledger().lock, null);
    assert.equal(w.ledger().rollout, null);
    assert.deepEqual(w.violations, []);
  });

  test('abort a held rollout: stable restored, candidate aborted', async () => {
    const w = await heldWorld();
    const m = w.mark();
    const res = await w.engine('bob', 200).abort(MODEL);
    const r = (res as { result: RolloutResult }).result;
    assert.equal(r.outcome, 'aborted');
    assert.deepEqual(w.splitsSince(m), ['1.0.0:100']);
    assert.deepEqual(w.ledger().stableSet, ['1.0.0']);
    assert.equal(w.release('1.1.0').state, 'aborted');
    assert.deepEqual(w.target.running(MODEL), ['1.0.0']);
    assert.deepEqual(w.violations, []);
  });

  test('nothing to promote or abort → usage error (exit 2)', async () => {
    const w = new World();
    await w.seed('1.0.0');
    await assert.rejects(w.engine().promote(MODEL), (e: ModelctlError) => e.exitCode === ExitCode.usage && /no rollout of sentiment is in progress \(the latest release, 1\.0\.0, is stable\)/.test(e.message));
    await assert.rejects(w.engine().abort(MODEL), (e: ModelctlError) => e.exitCode === ExitCode.usage && /modelctl rollback/.test(e.hint!));
  });
});

describe('the lock', () => {
  test('a live deploy holds it: another deploy gets exit 5 naming holder, pid, host and since when', async () => {
    const w = new World();
    await w.seed('1.0.0');
    const t0 = w.clock.now();
    let err: unknown = null;
    w.clock.after(30_000, async () => {
      err = await w.engine('bob', 200).deploy(ref('1.2.0'), plan()).catch((e: unknown) => e);
    });
    await w.engine().deploy(ref('1.1.0'), plan());
    assert.ok(err instanceof ModelctlError);
    assert.equal(err.exitCode, ExitCode.locked);
    assert.match(err.message, /a rollout of sentiment@1\.1\.0 \(canary step 1\/4\) is running, driven by alice \(pid 100 on laptop\) since /);
    assert.ok(err.message.includes(new Date(t0).toISOString()));
    assert.match(err.hint!, /modelctl abort sentiment/);
    assert.equal(w.release('1.1.0').state, 'stable', 'the running deploy was not disturbed');
    // A rollback by hand is refused too while a rollout runs.
  });

  test('renewed as checks go, always covering the wait until the next one with most of a TTL to spare', async () => {
    const w = new World();
    await w.seed('1.0.0');
    const seen: number[] = [];
    for (const t of [25_000, 45_000, 85_000]) w.clock.after(t, () => seen.push(w.ledger().lock!.expiresAt - w.clock.now()));
    await w.engine().deploy(ref('1.1.0'), plan());
    // Checks every 20 s; sampled 5 s after one. A renewal extends to TTL past the next check, and is
    // skipped while at least ¾ TTL past it is still left (each renewal is a Lease write on Kubernetes).
    assert.equal(seen.length, 3);
    for (const left of seen) {
      assert.ok(left >= 0.75 * TTL + 20_000 - 5_000 && left <= TTL + 20_000 - 5_000, `lock left ${left} ms: ${seen.join(', ')}`);
    }
  });

  test('a deploy killed mid-canary (kill -9): its lock expires; the next deploy is told to resolve it, never steals it', async () => {
    const w = new World();
    await w.seed('1.0.0');
    const m0 = w.mark();
    w.target.failAt(11, 'hang'); // deploy, waitReady, 95/5, 3 readiness checks, 75/25, 3 more — the 50/50 apply never returns
    void w.engine().deploy(ref('1.1.0'), plan());
    await w.until(() => w.target.calls.length >= m0 + 11);
    assert.equal(w.ledger().rollout!.stepIndex, 2);
    // Before expiry the holder is presumed alive.
    await assert.rejects(w.engine('bob', 200).deploy(ref('1.2.0'), plan()), (e: ModelctlError) => /is running/.test(e.message));
    assert.equal((await w.engine('bob', 200).abort(MODEL)).kind, 'requested');
    await w.clock.advance(TTL + 20_000);
    let status = await w.engine('bob', 200).status(MODEL);
    assert.equal(status.rollout!.interrupted, true);
    assert.equal(status.lock!.expired, true);
    await assert.rejects(w.engine('bob', 200).deploy(ref('1.2.0'), plan()), (e: ModelctlError) => {
      assert.equal(e.exitCode, ExitCode.locked);
      assert.match(e.message, /sentiment@1\.1\.0 \(canary step 3\/4\) was interrupted: its lock \(alice \(pid 100 on laptop\) since .*\) expired at .*presumed dead/);
      assert.match(e.hint!, /modelctl abort sentiment/);
      assert.equal(e.details.interrupted, true);
      return true;
    });
    assert.equal(w.ledger().lock!.holder, 'alice', 'not stolen');
    // The explicit resolution takes it over.
    const m = w.mark();
    const res = await w.engine('bob', 200).abort(MODEL);
    const r = (res as { result: RolloutResult }).result;
    assert.equal(r.outcome, 'aborted');
    assert.ok(r.events.some((e) => e.type === 'lock-taken-over' && (e.previous as { holder: string }).holder === 'alice'));
    assert.deepEqual(w.splitsSince(m), ['1.0.0:100']);
    status = await w.engine('bob', 200).status(MODEL);
    assert.deepEqual([status.rollout, status.lock, status.traffic], [null, null, { '1.0.0': 100 }]);
    assert.deepEqual(w.violations, []);
  });

  test('a holder that stalled past its lock and comes back finds it lost and touches nothing', async () => {
    const w = new World();
    await w.seed('1.0.0');
    const m0 = w.mark();
    w.target.failAt(2, 'pause'); // alice stalls in waitReady
    const alice = w.engine().deploy(ref('1.1.0'), plan());
    await w.until(() => w.target.calls.length >= m0 + 2);
    await w.clock.advance(30_000 + TTL + 1); // past the readiness allowance and the TTL
    const res = await w.engine('bob', 200).abort(MODEL);
    assert.equal((res as { result: RolloutResult }).result.outcome, 'aborted');
    const m = w.mark();
    w.target.resume();
    await assert.rejects(alice, (e: unknown) => e instanceof LockLostError && e.exitCode === ExitCode.locked && /bob|released/.test(e.message));
    assert.deepEqual(w.splitsSince(m), [], 'alice applied no traffic');
    assert.deepEqual(w.target.traffic(MODEL).weights, { '1.0.0': 100 });
    assert.equal(w.ledger().rollout, null);
  });

  test('a manual rollback is refused while a rollout runs, is held, or is interrupted', async () => {
    const w = await heldWorld();
    await assert.rejects(w.engine('bob', 200).rollback(MODEL), (e: ModelctlError) => e.exitCode === ExitCode.locked && /held/.test(e.message));
  });

  test('--resume: only for an interrupted rollout of the same version', async () => {
    const w = new World();
    await w.seed('1.0.0');
    await assert.rejects(w.engine().deploy(ref('1.1.0'), plan(), { resume: true }), (e: ModelctlError) => e.exitCode === ExitCode.usage);
    w.target.failAt(3, 'throw'); // the 95/5 apply
    await assert.rejects(w.engine().deploy(ref('1.1.0'), plan()), (e: ModelctlError) => e.exitCode === ExitCode.unavailable && /--resume/.test(e.hint!));
    await assert.rejects(w.engine('bob', 200).deploy(ref('1.2.0'), plan(), { resume: true }), (e: ModelctlError) => e.exitCode === ExitCode.locked && /interrupted/.test(e.message));
    const m = w.mark();
    const r = await w.engine('bob', 200).deploy(ref('1.1.0'), plan(), { resume: true });
    assert.equal(r.outcome, 'promoted');
    assert.equal(r.events[0]!.type, 'rollout-resumed');
    assert.deepEqual(w.splitsSince(m), ['1.0.0:95 1.1.0:5', '1.0.0:75 1.1.0:25', '1.0.0:50 1.1.0:50', '1.1.0:100']);
    assert.deepEqual(w.violations, []);
  });
});

describe('shadow-only rollouts and promote', () => {
  test('promoting a held shadow-only rollout ends the shadow as passed; it never serves', async () => {
    const w = new World();
    await w.seed('1.0.0');
    w.metrics.script('1.1.0', () => emptyWindow());
    const held = await w.engine().deploy(ref('1.1.0'), plan({ shadowPercent: 10, shadowDurationMs: 60_000, shadowOnly: true }));
    assert.equal(held.outcome, 'held');
    assert.equal(show(w.target.traffic(MODEL)), '1.0.0:100 mirror 1.1.0:10', 'held: the mirror stays');
    const m = w.mark();
    const r = (await w.engine('bob', 200).promote(MODEL)) as { result: RolloutResult };
    assert.equal(r.result.outcome, 'shadow-passed');
    assert.deepEqual(w.splitsSince(m), ['1.0.0:100']);
    assert.deepEqual([w.release('1.1.0').state, w.ledger().stableSet], ['shadowed', ['1.0.0']]);
    assert.deepEqual(w.violations, []);
  });
});

describe('deploy --resume with plan flags given again', () => {
  const PLAN = plan({ steps: [10, 50, 100], intervalMs: 60_000, checkEveryMs: 20_000 });
  async function interrupted(): Promise<World> {
    const w = new World();
    await w.seed('1.0.0');
    w.target.failAt(3, 'throw'); // deploy, waitReady, then applying the first canary step fails
    await assert.rejects(w.engine().deploy(ref('1.1.0'), PLAN));
    assert.equal(w.ledger().rollout?.phase, 'canary');
    return w;
  }

  test('timings (--interval, --check-every) apply from the resumed step on', async () => {
    const w = await interrupted();
    const t0 = w.clock.now();
    const r = await w.engine().deploy(ref('1.1.0'), PLAN, { resume: true, resumeTimings: { intervalMs: 300_000, checkEveryMs: 100_000 } });
    assert.equal(r.outcome, 'promoted');
    assert.equal(w.clock.now() - t0, 2 * 300_000, 'two steps baked 5 minutes each');
    assert.deepEqual(r.events.find((e): e is RolloutStartedEvent => e.type === 'rollout-resumed')!.changed, { intervalMs: 300_000, checkEveryMs: 100_000 });
    assert.equal(r.steps[0]!.tallies![0]!.measurements, 3);
  });

  test('a different shape (--steps, --shadow) is refused, not ignored; the recorded one is accepted', async () => {
    const w = await interrupted();
    const before = w.ledger();
    await assert.rejects(
      w.engine().deploy(ref('1.1.0'), PLAN, { resume: true, resumeShape: { steps: [20, 100] } }),
      (e: ModelctlError) => e.exitCode === ExitCode.usage && /cannot change its steps \[20,100\] \(recorded: \[10,50,100\]\)/.test(e.message),
    );
    assert.deepEqual(w.ledger(), before, 'nothing written');
    const r = await w.engine().deploy(ref('1.1.0'), PLAN, { resume: true, resumeShape: { steps: [10, 50, 100] } });
    assert.equal(r.outcome, 'promoted');
  });
});

describe('an interruption (SIGINT/SIGTERM) of the deploy itself: DeployOptions.signal', () => {
  test('mid-bake: the bake wakes, the rollout is aborted to stable through the abort path, and the result names the signal', async () => {
    const w = new World();
    await w.seed('1.0.0');
    const interrupt = new AbortController();
    const t0 = w.clock.now();
    // 90 s into a 10-minute bake of the first step.
    w.clock.at(t0 + 90_000, () => interrupt.abort('SIGTERM'));
    const m = w.mark();
    const r = await w.engine().deploy(ref('1.1.0'), plan({ steps: [20, 100], intervalMs: 600_000, checkEveryMs: 60_000 }), { signal: interrupt.signal });
    assert.deepEqual([r.outcome, r.interrupted, r.serving], ['aborted', 'SIGTERM', '1.0.0']);
    assert.match(r.reason, /interrupted by SIGTERM/);
    assert.ok(w.clock.now() - t0 < 200_000, `noticed at the next check, not at the end of the bake (${(w.clock.now() - t0) / 1000} s)`);
    assert.deepEqual(w.splitsSince(m), ['1.0.0:80 1.1.0:20', '1.0.0:100']);
    const l = w.ledger();
    assert.deepEqual([l.rollout, l.lock, w.release('1.1.0').state], [null, null, 'aborted']);
    assert.deepEqual(w.target.running(MODEL), ['1.0.0']);
    assert.deepEqual(w.violations, []);
  });

  test('while the candidate starts: the readiness wait does not hold it up and no traffic ever moved', async () => {
    const w = new World();
    await w.seed('1.0.0');
    const interrupt = new AbortController();
    const m = w.mark();
    w.target.failAt(2, 'pause'); // waitReady never returns by itself
    const running = w.engine().deploy(ref('1.1.0'), plan({ steps: [20, 100] }), { signal: interrupt.signal });
    await w.until(() => w.target.calls.length >= m + 2);
    interrupt.abort('SIGINT');
    const r = await running;
    assert.deepEqual([r.outcome, r.interrupted], ['aborted', 'SIGINT']);
    assert.deepEqual(w.splitsSince(m), ['1.0.0:100'], 'traffic only ever on stable');
    assert.deepEqual([w.ledger().rollout, w.ledger().lock, w.target.running(MODEL)], [null, null, ['1.0.0']]);
    w.target.resume();
  });

  test('before it starts: refused with exit 10, nothing written; a promotion already under way finishes', async () => {
    const w = new World();
    await w.seed('1.0.0');
    const before = w.ledger();
    const gone = new AbortController();
    gone.abort('SIGINT');
    await assert.rejects(w.engine().deploy(ref('1.1.0'), plan(), { signal: gone.signal }), (e: ModelctlError) => e.exitCode === ExitCode.interrupted);
    assert.deepEqual(w.ledger(), before);
    const late = new AbortController();
    const m = w.mark();
    w.target.failAt(7, 'pause'); // deploy, waitReady, 50%, 3 readiness checks, then the 100% apply of the promotion
    const running = w.engine().deploy(ref('1.1.0'), plan({ steps: [50, 100] }), { signal: late.signal });
    await w.until(() => w.target.calls.length >= m + 7);
    late.abort('SIGINT');
    w.target.resume();
    const r = await running;
    assert.equal(r.outcome, 'promoted');
    assert.equal(r.interrupted, undefined);
  });
});
