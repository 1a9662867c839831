import assert from 'node:assert/strict';
import { isGateEvent } from '../../src/core/events.js';
import { describe, test } from 'node:test';
import { ExitCode, ModelctlError, UnavailableError } from '../../src/core/errors.js';
import type { GateSpec } from '../../src/core/gates.js';
import type { RolloutPlan } from '../../src/core/model.js';
import { OUTCOME_EXIT_CODES } from '../../src/core/model.js';
import { type StatusView } from '../../src/rollout/results.js';
import { emptyWindow } from '../fakes/metrics.js';
import { ERROR_GATE, MODEL, plan, ref, World } from '../fakes/world.js';

/**
 * The rollout engine, transition by transition, in virtual time. Assertions look at what the
 * world saw — the splits the target applied, the ledger's records — not only at outcomes; and
 * every world checks the write-ahead rule on each Target call (`w.violations`).
 */

function types(events: Array<{ type: string }>): string[] {
  return events.map((e) => e.type);
}

/** `sub` appears in `list` in this order (other items may sit in between). */
function assertSubsequence(list: string[], sub: string[]): void {
  let i = 0;
  for (const x of list) if (x === sub[i]) i++;
  assert.equal(i, sub.length, `expected ${JSON.stringify(sub)} in order within ${JSON.stringify(list)}`);
}

describe('first deploy', () => {
  test('deploy → ready → health gate → 100% → stable', async () => {
    const w = new World();
    const r = await w.engine().deploy(ref('1.0.0'), plan());
    assert.equal(r.outcome, 'promoted');
    assert.equal(r.rolledBackTo, null);
    assert.deepEqual(
      w.target.calls.map((c) => `${c.method} ${c.version ?? ''}`.trim()),
      ['deploy 1.0.0', 'waitReady 1.0.0', 'healthy 1.0.0', 'applyTraffic'],
    );
    assert.deepEqual(w.splitsSince(0), ['1.0.0:100']);
    const l = w.ledger();
    assert.deepEqual(l.stableSet, ['1.0.0']);
    assert.equal(l.rollout, null);
    assert.equal(l.lock, null);
    assert.equal(w.release('1.0.0').state, 'stable');
    assert.equal(w.release('1.0.0').startedBy, 'alice');
    assertSubsequence(types(r.events), ['rollout-started', 'version-deployed', 'version-ready', 'gate-evaluated', 'traffic-applied', 'promoted']);
    assert.deepEqual(w.violations, []);
  });

  test('never ready → failed, nothing ever routed to it, stopped', async () => {
    const w = new World();
    w.target.notReady.set('1.0.0', 'crash loop: exit code 1');
    const r = await w.engine().deploy(ref('1.0.0'), plan());
    assert.equal(r.outcome, 'rolled-back');
    assert.equal(r.rolledBackTo, null);
    assert.match(r.reason, /did not become ready: crash loop/);
    assert.deepEqual(w.splitsSince(0), ['(none)']);
    assert.equal(w.release('1.0.0').state, 'failed');
    assert.deepEqual(w.ledger().stableSet, []);
    assert.deepEqual(w.target.running(MODEL), []);
    assert.equal(OUTCOME_EXIT_CODES[r.outcome], ExitCode.rolledBack);
    assert.deepEqual(w.violations, []);
  });

  test('ready but unhealthy → failed by the health gate', async () => {
    const w = new World();
    w.target.unhealthy.add('1.0.0');
    const r = await w.engine().deploy(ref('1.0.0'), plan());
    assert.equal(r.outcome, 'rolled-back');
    assert.match(w.release('1.0.0').reason!, /health check of 1.0.0 failed/);
    assert.equal(w.ledger().traffic.weights['1.0.0'], undefined);
  });

  test('the lock lives while the bundle is pulled and readiness awaited (renewed that far ahead)', async () => {
    const w = new World({ lockTtlMs: 10_000 });
    w.target.failAt(2, 'pause'); // inside waitReady
    const running = w.engine().deploy(ref('1.0.0'), plan({ readyTimeoutMs: 120_000 }));
    await w.until(() => w.target.calls.length >= 2);
    await w.clock.advance(100_000); // longer than the TTL, shorter than the readiness timeout
    await assert.rejects(w.engine('bob', 200).deploy(ref('1.0.1'), plan()), (e: ModelctlError) => e.exitCode === ExitCode.locked && /is running/.test(e.message));
    w.target.resume();
    assert.equal((await running).outcome, 'promoted');
  });
});

describe('canary', () => {
  test('promoted through 5 → 25 → 50 → 100 with evidence per step; the old stable stays warm', async () => {
    const w = new World();
    await w.seed('1.0.0');
    w.metrics.behave('1.0.0', { errorRate: 0.01 }).behave('1.1.0', { errorRate: 0.01 });
    const m = w.mark();
    const t0 = w.clock.now();
    const r = await w.engine().deploy(ref('1.1.0'), plan());
    assert.equal(r.outcome, 'promoted');
    assert.deepEqual(w.splitsSince(m), ['1.0.0:95 1.1.0:5', '1.0.0:75 1.1.0:25', '1.0.0:50 1.1.0:50', '1.1.0:100']);
    // Three bakes of 60 s, checked every 20 s.
    assert.equal(w.clock.now() - t0, 180_000);
    assert.deepEqual(r.steps.map((s) => [s.weight, s.verdict]), [[5, 'pass'], [25, 'pass'], [50, 'pass']]);
    for (const s of r.steps) {
      assert.equal(s.endedAt! - s.startedAt, 60_000);
      assert.equal(s.gates[0]!.verdict, 'pass');
      assert.equal(s.gates[0]!.limit, '<= 0.05');
      assert.deepEqual(s.tallies, [
        { name: 'error-rate', measurements: 3, failed: 0, inconclusive: 0, consecutiveErrors: 0 },
        { name: 'candidate-ready', measurements: 3, failed: 0, inconclusive: 0, consecutiveErrors: 0 },
      ]);
      assert.equal(s.gates[1]!.verdict, 'pass', 'the built-in readiness gate, shown with the others');
    }
    const l = w.ledger();
    assert.deepEqual(l.stableSet, ['1.1.0', '1.0.0']);
    assert.deepEqual(l.traffic, { weights: { '1.1.0': 100 }, mirror: null });
    assert.equal(l.rollout, null);
    assert.equal(l.lock, null);
    assert.deepEqual(w.ledger().releases.map((x) => [x.version, x.state]), [['1.0.0', 'stable'], ['1.1.0', 'stable']]);
    assert.deepEqual(w.target.running(MODEL), ['1.0.0', '1.1.0'], 'previous stable stays warm');
    assert.equal(w.target.callsOf('retire').length, 0);
    assertSubsequence(types(r.events), [
      'rollout-started', 'version-deployed', 'version-ready',
      'traffic-applied', 'step-started', 'gate-evaluated', 'gate-evaluated', 'gate-evaluated', 'gate-evaluated', 'gate-evaluated', 'gate-evaluated', 'step-passed',
      'traffic-applied', 'step-passed', 'traffic-applied', 'step-passed', 'traffic-applied', 'promoted',
    ]);
    // traffic-applied carries the split and comes after the router confirmed it.
    const applied = r.events.filter((e) => e.type === 'traffic-applied');
    assert.deepEqual(applied[0]!.weights, { '1.0.0': 95, '1.1.0': 5 });
    assert.deepEqual(w.violations, []);
  });

  test('gate fails at step 2 → rollback at that check, with the evidence in the ledger', async () => {
    const w = new World();
    await w.seed('1.0.0');
    w.metrics.behave('1.0.0', { errorRate: 0.004 });
    // 1.1.0 is fine at 5% and breaks under the load of 25%.
    w.metrics.script('1.1.0', (q) => ({ errorRate: q.share >= 25 ? 0.2 : 0.01 }));
    const m = w.mark();
    const t0 = w.clock.now();
    const r = await w.engine().deploy(ref('1.1.0'), plan());
    assert.equal(r.outcome, 'rolled-back');
    assert.equal(r.rolledBackTo, '1.0.0');
    assert.equal(OUTCOME_EXIT_CODES[r.outcome], 3);
    assert.deepEqual(w.splitsSince(m), ['1.0.0:95 1.1.0:5', '1.0.0:75 1.1.0:25', '1.0.0:100']);
    // Rolled back at the first check of step 2 (20 s in), not at the end of the bake.
    assert.equal(w.clock.now() - t0, 60_000 + 20_000);
    const rel = w.release('1.1.0');
    assert.equal(rel.state, 'failed');
    assert.match(rel.reason!, /gate error-rate failed 1 measurement\(s\), limit 0: error-rate 0\.2 > 0\.05 \(20 of 100 requests failed\)/);
    assert.deepEqual(rel.steps.map((s) => [s.weight, s.verdict]), [[5, 'pass'], [25, 'fail']]);
    const evidence = rel.steps[1]!.gates[0]!;
    assert.deepEqual([evidence.verdict, evidence.value, evidence.limit, evidence.samples], ['fail', 0.2, '<= 0.05', 100]);
    assert.match(evidence.query, /local:error-rate\{model=sentiment,version=1\.1\.0\}/);
    const l = w.ledger();
    assert.deepEqual(l.stableSet, ['1.0.0']);
    assert.equal(l.rollout, null);
    assert.deepEqual(w.target.running(MODEL), ['1.0.0'], 'the failed candidate is stopped');
    // Retired only after traffic left it.
    const calls = w.target.calls.slice(m).map((c) => c.method);
    assert.ok(calls.lastIndexOf('applyTraffic') < calls.indexOf('retire'));
    assertSubsequence(types(r.events), ['step-passed', 'gate-failed', 'step-failed', 'rollback-started', 'traffic-applied', 'rolled-back', 'retired']);
    assert.deepEqual(w.violations, []);
  });

  test('no data at all → held at the end of the step, never promoted; traffic stays; lock freed', async () => {
    const w = new World();
    await w.seed('1.0.0');
    w.metrics.script('1.1.0', () => emptyWindow());
    const m = w.mark();
    const r = await w.engine().deploy(ref('1.1.0'), plan());
    assert.equal(r.outcome, 'held');
    assert.equal(OUTCOME_EXIT_CODES[r.outcome], ExitCode.held);
    assert.match(r.reason, /gate error-rate is inconclusive at the end of the step: not enough data: 0 of 20 requests/);
    assert.deepEqual(w.splitsSince(m), ['1.0.0:95 1.1.0:5']);
    const l = w.ledger();
    assert.equal(l.rollout!.phase, 'held');
    assert.equal(l.rollout!.stepIndex, 0);
    assert.equal(l.lock, null);
    assert.deepEqual(l.traffic.weights, { '1.0.0': 95, '1.1.0': 5 });
    assert.equal(w.release('1.1.0').state, 'held');
    assert.equal(w.release('1.1.0').steps[0]!.verdict, 'inconclusive');
    assert.deepEqual(l.stableSet, ['1.0.0']);
    const st = await w.engine().status(MODEL);
    assert.deepEqual([st.rollout!.phase, st.rollout!.weight, st.rollout!.interrupted], ['held', 5, false]);
    // A new deploy must not bury the held one.
    await assert.rejects(w.engine('bob').deploy(ref('1.2.0'), plan()), (e: ModelctlError) => e.exitCode === ExitCode.locked && /held/.test(e.message) && /modelctl promote sentiment/.test(e.hint!));
    assert.deepEqual(w.violations, []);
  });

  test('low traffic: early checks lack samples (warm-up, not counted); the step passes once data arrives', async () => {
    const w = new World({ totalRps: 6 }); // 5% = 0.3 rps: 6 requests at 20 s, 12 at 40 s, 18… then 25% plenty
    await w.seed('1.0.0');
    const r = await w.engine().deploy(ref('1.1.0'), plan({ intervalMs: 120_000 }));
    assert.equal(r.outcome, 'promoted');
    const first = r.events.filter(isGateEvent).filter((e) => e.type === 'gate-evaluated' && e.gate === 'error-rate').slice(0, 4).map((e) => e.verdict);
    assert.deepEqual(first, ['inconclusive', 'inconclusive', 'inconclusive', 'pass']);
    assert.equal(r.steps[0]!.tallies![0]!.inconclusive, 0);
  });

  test('a step whose bake ends without enough data holds even if data came late', async () => {
    const w = new World({ totalRps: 6 });
    await w.seed('1.0.0');
    const r = await w.engine().deploy(ref('1.1.0'), plan({ intervalMs: 60_000 }));
    assert.equal(r.outcome, 'held');
    assert.match(r.reason, /18 of 20 requests needed/);
  });

  test('a plan not ending at 100 still ends in promotion', async () => {
    const w = new World();
    await w.seed('1.0.0');
    const m = w.mark();
    assert.equal((await w.engine().deploy(ref('1.1.0'), plan({ steps: [10, 50] }))).outcome, 'promoted');
    assert.deepEqual(w.splitsSince(m), ['1.0.0:90 1.1.0:10', '1.0.0:50 1.1.0:50', '1.1.0:100']);
  });

  test('no plan promotes a candidate no gate judged: a one-step (100%) plan, or gates that never judge, are refused before anything happens', async () => {
    const w = new World();
    await w.seed('1.0.0');
    const before = w.ledger();
    const m = w.mark();
    const unjudged: Array<[Partial<RolloutPlan>, RegExp]> = [
      [{ steps: [100] }, /only step is 100%/],
      [{ steps: [10, 100], gates: [] }, /none of its gates/],
      [{ steps: [10, 100], gates: [{ ...ERROR_GATE, dryRun: true }] }, /none of its gates/],
    ];
    for (const [over, re] of unjudged) {
      const engine = w.engine();
      for (const attempt of [() => engine.checkPlan(ref('1.1.0'), plan(over)), () => engine.deploy(ref('1.1.0'), plan(over))]) {
        await assert.rejects(attempt(), (e: ModelctlError) => e.exitCode === ExitCode.usage && re.test(e.message) && /--steps 10,100/.test(e.hint ?? ''), JSON.stringify(over));
      }
    }
    assert.equal(w.mark(), m, 'no target call');
    assert.deepEqual(w.ledger(), before, 'nothing written');
    // A shadow phase judged by a gate is a judgement; a first deploy is judged by its health check.
    assert.equal((await w.engine().deploy(ref('1.1.0'), plan({ steps: [100], shadowPercent: 10, shadowDurationMs: 60_000 }))).outcome, 'promoted');
    const fresh = new World();
    assert.equal((await fresh.engine().deploy(ref('1.0.0'), plan({ steps: [100] }))).outcome, 'promoted');
  });

  test('invalid plans are usage errors before anything happens', async () => {
    const w = new World();
    await w.seed('1.0.0');
    const m = w.mark();
    const bad: Array<[Partial<RolloutPlan>, RegExp]> = [
      [{ steps: [50, 25] }, /must increase/],
      [{ steps: [0, 50] }, /integer percent/],
      [{ checkEveryMs: 0 }, /check interval/],
      [{ shadowOnly: true }, /shadow-only rollout needs a shadow percent/],
      [{ gates: [{ name: 'x', metric: 'nope', max: 1 }] }, /unknown local metric "nope"/],
      [{ gates: [ERROR_GATE, ERROR_GATE] }, /two gates are named/],
      [{ gates: [{ name: 'x', metric: 'error-rate' }] }, /no limit/],
    ];
    for (const [over, re] of bad) {
      await assert.rejects(w.engine().deploy(ref('1.1.0'), plan(over)), (e: ModelctlError) => e.exitCode === ExitCode.usage && re.test(e.message));
    }
    assert.equal(w.mark(), m);
    assert.equal(w.ledger().releases.length, 1);
  });
});

describe('deploying versions the ledger already knows', () => {
  test('the serving version again: no ledger change (idempotent CI re-runs), the target is reconciled', async () => {
    const w = new World();
    await w.seed('1.0.0');
    const writes = w.memory.writes;
    const r = await w.engine().deploy(ref('1.0.0'), plan());
    assert.equal(r.outcome, 'promoted');
    assert.deepEqual(types(r.events), ['already-serving']);
    assert.equal(w.memory.writes, writes);
    assert.deepEqual(w.target.traffic(MODEL).weights, { '1.0.0': 100 });
  });

  test('the serving version again after the target lost it (runtime reset): started and routed again', async () => {
    const w = new World();
    await w.seed('1.0.0', '2.0.0');
    await w.target.retire(MODEL, '1.0.0').catch(() => undefined);
    await w.target.applyTraffic(MODEL, { weights: {}, mirror: null }).catch(() => undefined);
    for (const v of w.target.running(MODEL)) await w.target.retire(MODEL, v).catch(() => undefined);
    const r = await w.engine().deploy(ref('2.0.0'), plan());
    assert.equal(r.outcome, 'promoted');
    assert.ok(w.target.running(MODEL).includes('2.0.0'));
    assert.deepEqual(w.target.traffic(MODEL).weights, { '2.0.0': 100 });
  });

  test('same version, different digest → conflict (exit 7)', async () => {
    const w = new World();
    await w.seed('1.0.0');
    await assert.rejects(w.engine().deploy({ ...ref('1.0.0'), digest: 'sha256:00' }, plan()), (e: ModelctlError) => e.exitCode === ExitCode.conflict);
  });

  test('a warm version of the stable set → use rollback --to, it is instant', async () => {
    const w = new World();
    await w.seed('1.0.0', '1.1.0');
    await assert.rejects(w.engine().deploy(ref('1.0.0'), plan()), (e: ModelctlError) => e.exitCode === ExitCode.usage && /rollback sentiment --to 1\.0\.0/.test(e.hint!));
  });

  test('a failed version can be deployed again: a new release record', async () => {
    const w = new World();
    await w.seed('1.0.0');
    w.target.notReady.set('1.1.0', 'boom');
    assert.equal((await w.engine().deploy(ref('1.1.0'), plan())).outcome, 'rolled-back');
    w.target.notReady.delete('1.1.0');
    assert.equal((await w.engine().deploy(ref('1.1.0'), plan())).outcome, 'promoted');
    assert.deepEqual(w.ledger().releases.map((x) => [x.version, x.state]), [['1.0.0', 'stable'], ['1.1.0', 'failed'], ['1.1.0', 'stable']]);
    assert.deepEqual(w.violations, []);
  });
});

describe('analysis limits (Argo semantics) through the engine', () => {
  async function run(gate: GateSpec, script: (i: number) => number | Error | null, over = {}) {
    const w = new World();
    await w.seed('1.0.0');
    let i = 0;
    // One scripted measurement per check: an error rate over 100 requests, no data (null), or a query error.
    w.metrics.script('1.1.0', () => {
      const x = script(i++);
      if (x instanceof Error) throw x;
      if (x === null) return emptyWindow();
      return { ...emptyWindow(), requests: 100, errors: Math.round(x * 100) };
    });
    const r = await w.engine().deploy(ref('1.1.0'), plan({ gates: [gate], steps: [50, 100], ...over }));
    return { w, r };
  }

  test('failureLimit 1: one failed measurement is tolerated, the second fails the step', async () => {
    const gate = { ...ERROR_GATE, failureLimit: 1 };
    const tolerated = await run(gate, (i) => (i === 0 ? 0.2 : 0.01));
    assert.equal(tolerated.r.outcome, 'promoted');
    assert.equal(tolerated.r.steps[0]!.tallies![0]!.failed, 1);
    const failed = await run(gate, (i) => (i === 0 || i === 1 ? 0.2 : 0.01));
    assert.equal(failed.r.outcome, 'rolled-back');
    assert.match(failed.r.reason, /failed 2 measurement\(s\), limit 1/);
  });

  test('a failed LATEST measurement fails the step even within failureLimit', async () => {
    const { r } = await run({ ...ERROR_GATE, failureLimit: 5 }, (i) => (i === 2 ? 0.2 : 0.01));
    assert.equal(r.outcome, 'rolled-back');
    assert.match(r.reason, /failed at the end of the step/);
  });

  test('critical: the first failure rolls back whatever the limit', async () => {
    const { r, w } = await run({ ...ERROR_GATE, failureLimit: 3, critical: true }, () => 0.2);
    assert.equal(r.outcome, 'rolled-back');
    assert.match(r.reason, /critical gate error-rate failed/);
    assert.equal(w.release('1.1.0').steps[0]!.tallies![0]!.measurements, 1);
  });

  test('consecutiveErrorLimit: 4 errors then a good answer is fine; 5 in a row fail', async () => {
    const over = { intervalMs: 120_000 }; // 6 checks
    const ok = await run(ERROR_GATE, (i) => (i < 4 ? new Error('source down') : 0.01), over);
    assert.equal(ok.r.outcome, 'promoted');
    const bad = await run(ERROR_GATE, (i) => (i < 5 ? new Error('source down') : 0.01), over);
    assert.equal(bad.r.outcome, 'rolled-back');
    assert.match(bad.r.reason, /5 consecutive query errors, limit 4: measuring 1\.1\.0: source down/);
    const custom = await run({ ...ERROR_GATE, consecutiveErrorLimit: 0 }, (i) => (i === 0 ? new Error('timeout') : 0.01));
    assert.equal(custom.r.outcome, 'rolled-back');
  });

  test('an error as the latest measurement holds (unknown is not a pass)', async () => {
    const { r } = await run(ERROR_GATE, (i) => (i === 2 ? new Error('timeout') : 0.01));
    assert.equal(r.outcome, 'held');
    assert.match(r.reason, /is error at the end of the step: measuring 1\.1\.0: timeout/);
  });

  test('inconclusiveLimit counts data that went away after the gate had some', async () => {
    const over = { intervalMs: 100_000 }; // 5 checks
    const held = await run(ERROR_GATE, (i) => (i === 1 ? null : 0.01), over);
    assert.equal(held.r.outcome, 'held');
    assert.match(held.r.reason, /inconclusive 1 time\(s\), limit 0/);
    assert.equal(held.w.clock.now() - held.w.release('1.1.0').steps[0]!.startedAt, 40_000, 'held at the 2nd check, not at the end');
    const tolerated = await run({ ...ERROR_GATE, inconclusiveLimit: 2 }, (i) => (i === 1 || i === 2 ? null : 0.01), over);
    assert.equal(tolerated.r.outcome, 'promoted');
  });

  test('dryRun: evaluated and reported, never gates', async () => {
    // Alongside a real gate (a plan judged by dry-run gates only is refused: see "no plan promotes …").
    const { r } = await run({ ...ERROR_GATE, dryRun: true, critical: true }, () => 0.5, { gates: [{ ...ERROR_GATE, dryRun: true, critical: true }, { ...ERROR_GATE, name: 'lenient', max: 0.9 }] });
    assert.equal(r.outcome, 'promoted');
    const ev = r.events.filter(isGateEvent).filter((e) => e.type === 'gate-failed');
    assert.equal(ev.length, 3);
    assert.equal(ev[0]!.dryRun, true);
    assert.equal(r.steps[0]!.gates[0]!.verdict, 'fail');
  });

  test('initialDelay: no measurement before it, and the warm-up is left out of the window', async () => {
    const { r, w } = await run({ ...ERROR_GATE, initialDelayMs: 30_000 }, () => 0.01);
    assert.equal(r.outcome, 'promoted');
    assert.equal(r.steps[0]!.tallies![0]!.measurements, 2); // checks at 40 s and 60 s
    const start = r.steps[0]!.startedAt;
    assert.ok(w.metrics.queries.every((q) => q.sinceMs === start + 30_000));
  });
});

describe('shadow', () => {
  const agreement: GateSpec = { name: 'agreement', metric: 'shadow-agreement', min: 0.9 };

  test('shadow then canary: mirror first, agreement gated only in shadow', async () => {
    const w = new World();
    await w.seed('1.0.0');
    w.metrics.behave('1.1.0', { errorRate: 0.01, agreement: 0.97 });
    const m = w.mark();
    const r = await w.engine().deploy(ref('1.1.0'), plan({ shadowPercent: 10, shadowDurationMs: 120_000, gates: [ERROR_GATE, agreement] }));
    assert.equal(r.outcome, 'promoted');
    assert.deepEqual(w.splitsSince(m), ['1.0.0:100 mirror 1.1.0:10', '1.0.0:95 1.1.0:5', '1.0.0:75 1.1.0:25', '1.0.0:50 1.1.0:50', '1.1.0:100']);
    assert.deepEqual(r.steps.map((s) => [s.weight, s.mirror, s.verdict]), [[0, 10, 'pass'], [5, 0, 'pass'], [25, 0, 'pass'], [50, 0, 'pass']]);
    assert.deepEqual(r.steps[0]!.gates.map((g) => g.name), ['error-rate', 'agreement', 'candidate-ready']);
    assert.deepEqual(r.steps[1]!.gates.map((g) => g.name), ['error-rate', 'candidate-ready'], 'no agreement gate in canary');
    assert.ok(Math.abs(r.steps[0]!.gates[1]!.value! - 0.97) < 0.01);
    assertSubsequence(types(r.events), ['step-started', 'shadow-passed', 'step-started', 'step-passed']);
    assert.deepEqual(w.violations, []);
  });

  test('shadow-only: gates pass, mirror removed, candidate NOT promoted ("shadow-passed", exit 0)', async () => {
    const w = new World();
    await w.seed('1.0.0');
    w.metrics.behave('1.1.0', { agreement: 0.95 });
    const m = w.mark();
    const r = await w.engine().deploy(ref('1.1.0'), plan({ shadowPercent: 50, shadowDurationMs: 60_000, shadowOnly: true, gates: [ERROR_GATE, agreement] }));
    assert.equal(r.outcome, 'shadow-passed');
    assert.equal(OUTCOME_EXIT_CODES[r.outcome], ExitCode.ok);
    assert.equal(r.rolledBackTo, null);
    assert.deepEqual(w.splitsSince(m), ['1.0.0:100 mirror 1.1.0:50', '1.0.0:100']);
    assert.equal(w.release('1.1.0').state, 'shadowed');
    assert.deepEqual(w.ledger().stableSet, ['1.0.0']);
    assert.deepEqual(w.target.running(MODEL), ['1.0.0']);
    assert.deepEqual(w.violations, []);
  });

  test('disagreeing shadow → rolled back before any user saw it', async () => {
    const w = new World();
    await w.seed('1.0.0');
    w.metrics.behave('1.1.0', { agreement: 0.6 });
    const m = w.mark();
    const r = await w.engine().deploy(ref('1.1.0'), plan({ shadowPercent: 20, shadowDurationMs: 60_000, gates: [agreement] }));
    assert.equal(r.outcome, 'rolled-back');
    assert.match(r.reason, /shadow-agreement 0\.6 < 0\.9/);
    assert.deepEqual(w.splitsSince(m), ['1.0.0:100 mirror 1.1.0:20', '1.0.0:100']);
  });

  test('no shadow phase on a first deploy; shadow-only without a stable version is refused', async () => {
    const w = new World();
    const r = await w.engine().deploy(ref('1.0.0'), plan({ shadowPercent: 10, shadowDurationMs: 60_000 }));
    assert.equal(r.outcome, 'promoted');
    const w2 = new World();
    await assert.rejects(w2.engine().deploy(ref('1.0.0'), plan({ shadowPercent: 10, shadowOnly: true })), (e: ModelctlError) => e.exitCode === ExitCode.usage);
  });
});

describe('the stable set', () => {
  test('capped at three; the one pushed out is retired only after the new one is stable', async () => {
    const w = new World();
    await w.seed('1.0.0', '2.0.0', '3.0.0');
    assert.deepEqual(w.ledger().stableSet, ['3.0.0', '2.0.0', '1.0.0']);
    const seen: string[][] = [];
    const check = w.target.beforeCall!;
    w.target.beforeCall = (call) => {
      check(call);
      if (call.method === 'retire') seen.push([...w.ledger().stableSet, w.release('4.0.0').state]);
    };
    const m = w.mark();
    const r = await w.engine().deploy(ref('4.0.0'), plan());
    assert.equal(r.outcome, 'promoted');
    assert.deepEqual(r.stableSet, ['4.0.0', '3.0.0', '2.0.0']);
    assert.deepEqual(seen, [['4.0.0', '3.0.0', '2.0.0', 'stable']]);
    const calls = w.target.calls.slice(m);
    assert.deepEqual(calls.at(-1)!.method, 'retire');
    assert.equal(calls.at(-1)!.version, '1.0.0');
    assert.equal(w.release('1.0.0').state, 'retired');
    assert.match(w.release('1.0.0').reason!, /left the stable set when 4\.0\.0 was promoted/);
    assert.deepEqual(w.target.running(MODEL), ['2.0.0', '3.0.0', '4.0.0']);
    assert.deepEqual(w.violations, []);
  });

  test('a retire that fails is reported, not fatal: the promotion stands', async () => {
    const w = new World();
    await w.seed('1.0.0', '2.0.0', '3.0.0');
    w.target.retireFails.add('1.0.0');
    const r = await w.engine().deploy(ref('4.0.0'), plan());
    assert.equal(r.outcome, 'promoted');
    assert.ok(r.events.some((e) => e.type === 'retire-failed' && e.version === '1.0.0'));
  });

  test('a candidate that stops being ready mid-canary fails the built-in candidate-ready gate → rolled back, not promoted', async () => {
    // Its metrics stay perfect: what the router answers itself (503, no ready backend) never
    // reaches the candidate's meter. Only asking the target whether it can serve catches it.
    const w = new World();
    await w.seed('1.0.0');
    const check = w.target.beforeCall!;
    w.target.beforeCall = (call) => {
      check(call);
      if (call.method === 'applyTraffic' && call.split?.weights['1.1.0'] === 25) w.target.unhealthy.add('1.1.0');
    };
    const m = w.mark();
    const r = await w.engine().deploy(ref('1.1.0'), plan());
    assert.equal(r.outcome, 'rolled-back');
    assert.equal(r.rolledBackTo, '1.0.0');
    assert.match(r.reason, /critical gate candidate-ready failed: sentiment@1\.1\.0 is not ready .* while it takes 25% of traffic/);
    assert.deepEqual(w.splitsSince(m), ['1.0.0:95 1.1.0:5', '1.0.0:75 1.1.0:25', '1.0.0:100']);
    const steps = w.release('1.1.0').steps;
    assert.deepEqual(steps.map((s) => s.verdict), ['pass', 'fail']);
    assert.equal(steps[0]!.gates.find((g) => g.name === 'candidate-ready')?.verdict, 'pass', 'checked while it was ready too');
    const failed = steps[1]!.gates.find((g) => g.name === 'candidate-ready');
    assert.equal(failed?.verdict, 'fail');
    assert.equal(steps[1]!.gates.find((g) => g.name === 'error-rate')?.verdict, 'pass', 'the metric gate saw nothing wrong');
    assert.ok(r.events.some((e) => e.type === 'gate-failed' && e.gate === 'candidate-ready' && e.phase === 'canary'));
    assert.deepEqual(w.violations, []);
  });

  test('a shadow candidate that is not ready fails candidate-ready in the shadow phase: no canary step', async () => {
    const w = new World();
    await w.seed('1.0.0');
    const m = w.mark();
    w.target.unhealthy.add('1.1.0'); // waitReady passed; the first check finds it gone
    const r = await w.engine().deploy(ref('1.1.0'), plan({ shadowPercent: 10, shadowDurationMs: 60_000 }));
    assert.equal(r.outcome, 'rolled-back');
    assert.match(r.reason, /candidate-ready failed: .* receives a 10% mirror of traffic/);
    assert.deepEqual(w.splitsSince(m), ['1.0.0:100 mirror 1.1.0:10', '1.0.0:100']);
    assert.deepEqual(w.violations, []);
  });

  test('a target that cannot tell (its API failing) is asked again within the check, then an error of candidate-ready — never a failure', async () => {
    // A transient API outage (500s past the client's retries) must not roll back a good candidate.
    const w = new World();
    await w.seed('1.0.0');
    const check = w.target.beforeCall!;
    let failing = 0;
    w.target.beforeCall = (call) => {
      check(call);
      // At 25%: the first check's 3 attempts all fail (an error), the second check's first one too (retried away).
      if (call.method === 'applyTraffic' && call.split?.weights['1.1.0'] === 25) failing = 4;
      if (call.method === 'healthy' && failing > 0) {
        failing--;
        throw new UnavailableError('the Kubernetes API server answered 500 to get Deployment sentiment-1-1-0 in namespace default: etcdserver: request timed out');
      }
    };
    const r = await w.engine().deploy(ref('1.1.0'), plan());
    assert.equal(r.outcome, 'promoted', r.reason);
    const step = w.release('1.1.0').steps[1]!;
    assert.equal(step.verdict, 'pass');
    // Errors are not measurements; the next "ready" reset the error count.
    assert.deepEqual(step.tallies!.find((t) => t.name === 'candidate-ready'), { name: 'candidate-ready', measurements: 2, failed: 0, inconclusive: 0, consecutiveErrors: 0 });
    const errors = r.events.filter(isGateEvent).filter((e) => e.gate === 'candidate-ready' && e.verdict === 'error');
    assert.equal(errors.length, 1, 'one check could not tell; the next one was retried within the check');
    assert.equal(errors[0]!.type, 'gate-evaluated', 'an error is not a gate failure');
    assert.match(String(errors[0]!.reason), /could not tell whether sentiment@1\.1\.0 is ready \(3 attempts; an error, not "unready"\): .*answered 500/);
    assert.deepEqual(w.violations, []);
  });

  test('a target that cannot tell for longer than consecutiveErrorLimit (4) fails the step, naming the errors', async () => {
    const w = new World();
    await w.seed('1.0.0');
    const check = w.target.beforeCall!;
    w.target.beforeCall = (call) => {
      check(call);
      if (call.method === 'healthy' && call.version === '1.1.0' && w.target.callsOf('applyTraffic').length >= 1) throw new UnavailableError('cannot reach the Kubernetes API server');
    };
    const r = await w.engine().deploy(ref('1.1.0'), plan({ intervalMs: 120_000, checkEveryMs: 10_000 }));
    assert.equal(r.outcome, 'rolled-back');
    assert.match(r.reason, /gate candidate-ready: 5 consecutive query errors, limit 4: could not tell/);
  });

  async function failingCanaryWith(unhealthy: string[]) {
    const w = new World();
    await w.seed('1.0.0', '2.0.0', '3.0.0');
    w.metrics.behave('4.0.0', { errorRate: 0.3 });
    for (const v of unhealthy) w.target.unhealthy.add(v);
    const m = w.mark();
    const r = await w.engine().deploy(ref('4.0.0'), plan());
    return { w, r, m };
  }

  test('cascade: stable unhealthy after the switch → the 2nd of the set', async () => {
    const { w, r, m } = await failingCanaryWith(['3.0.0']);
    assert.equal(r.outcome, 'rolled-back');
    assert.equal(r.rolledBackTo, '2.0.0');
    assert.deepEqual(w.splitsSince(m), ['3.0.0:95 4.0.0:5', '3.0.0:100', '2.0.0:100']);
    assert.deepEqual(w.ledger().stableSet, ['2.0.0', '3.0.0', '1.0.0']);
    assertSubsequence(types(r.events), ['rollback-started', 'traffic-applied', 'stable-unhealthy', 'cascade', 'traffic-applied', 'rolled-back']);
    assert.deepEqual(w.violations, [], 'each switch recorded before it is made');
  });

  test('cascade: 1st and 2nd unhealthy → the 3rd', async () => {
    const { w, r, m } = await failingCanaryWith(['3.0.0', '2.0.0']);
    assert.equal(r.rolledBackTo, '1.0.0');
    assert.deepEqual(w.splitsSince(m), ['3.0.0:95 4.0.0:5', '3.0.0:100', '2.0.0:100', '1.0.0:100']);
    assert.deepEqual(w.ledger().stableSet, ['1.0.0', '3.0.0', '2.0.0']);
    assert.deepEqual(w.violations, []);
  });

  test('cascade: none healthy → back on the one that served before, and said so', async () => {
    const { w, r, m } = await failingCanaryWith(['3.0.0', '2.0.0', '1.0.0']);
    assert.equal(r.rolledBackTo, '3.0.0');
    assert.deepEqual(w.splitsSince(m), ['3.0.0:95 4.0.0:5', '3.0.0:100', '2.0.0:100', '1.0.0:100', '3.0.0:100']);
    assert.deepEqual(w.ledger().stableSet, ['3.0.0', '2.0.0', '1.0.0']);
    assert.ok(r.events.some((e) => e.type === 'no-healthy-stable'));
    assert.deepEqual(w.violations, []);
  });
});

describe('rollback', () => {
  test('default: instant switch to the previous stable; the version rolled back from leaves the set and stops; recorded in the history', async () => {
    const w = new World();
    await w.seed('1.0.0', '2.0.0', '3.0.0');
    const m = w.mark();
    const r = await w.engine().rollback(MODEL);
    assert.deepEqual([r.action, r.from, r.to, r.healthy], ['switched', '3.0.0', '2.0.0', true]);
    assert.deepEqual(w.splitsSince(m), ['2.0.0:100']);
    // deploy + waitReady make sure the warm version still runs (no-ops when it does), then the switch, then 3.0.0 stops.
    assert.deepEqual(w.target.calls.slice(m).map((c) => c.method), ['deploy', 'waitReady', 'applyTraffic', 'healthy', 'retire']);
    assert.deepEqual(w.target.running(MODEL), ['1.0.0', '2.0.0']);
    assert.deepEqual(w.ledger().stableSet, ['2.0.0', '1.0.0']);
    assert.equal(w.ledger().lock, null);
    const history = await w.engine().history(MODEL);
    assert.deepEqual([history[0]!.version, history[0]!.state], ['2.0.0', 'stable']);
    assert.match(history[0]!.reason!, /^rollback from 3\.0\.0 by alice/);
    assert.deepEqual([w.release('3.0.0').state, w.release('3.0.0').reason], ['retired', 'rolled back to 2.0.0 by alice']);
    // Again: on to 1.0.0 — never straight back to the version just rolled back from.
    assert.equal((await w.engine().rollback(MODEL)).to, '1.0.0');
    assert.deepEqual(w.ledger().stableSet, ['1.0.0']);
    assert.deepEqual(w.violations, []);
  });

  test('--keep-stable keeps the version rolled back from warm in the set (the old behaviour, asked for)', async () => {
    const w = new World();
    await w.seed('1.0.0', '2.0.0', '3.0.0');
    const r = await w.engine().rollback(MODEL, { keepStable: true });
    assert.equal(r.to, '2.0.0');
    assert.deepEqual(w.ledger().stableSet, ['2.0.0', '3.0.0', '1.0.0']);
    assert.deepEqual(w.target.running(MODEL), ['1.0.0', '2.0.0', '3.0.0'], 'nothing stopped');
    assert.equal(w.release('3.0.0').state, 'stable');
    assert.match(w.release('2.0.0').reason!, /3\.0\.0 kept in the stable set/);
    // Both records of 2.0.0 leave together when it is pushed out later.
    assert.equal((await w.engine().rollback(MODEL, { to: '3.0.0', keepStable: true })).to, '3.0.0');
    assert.deepEqual(w.ledger().stableSet, ['3.0.0', '2.0.0', '1.0.0']);
    await w.engine().deploy(ref('4.0.0'), plan({ steps: [50, 100] }));
    await w.engine().deploy(ref('5.0.0'), plan({ steps: [50, 100] }));
    assert.deepEqual(w.ledger().stableSet, ['5.0.0', '4.0.0', '3.0.0']);
    assert.deepEqual(w.ledger().releases.filter((x) => x.version === '2.0.0').map((x) => x.state), ['retired', 'retired']);
  });

  test('--to a version of the stable set; to the serving one is a no-op', async () => {
    const w = new World();
    await w.seed('1.0.0', '2.0.0', '3.0.0');
    const r = await w.engine().rollback(MODEL, { to: '1.0.0' });
    assert.equal(r.to, '1.0.0');
    assert.deepEqual(w.ledger().stableSet, ['1.0.0', '2.0.0']);
    assert.deepEqual(w.target.traffic(MODEL).weights, { '1.0.0': 100 });
    const m = w.mark();
    assert.equal((await w.engine().rollback(MODEL, { to: '1.0.0' })).action, 'already-serving');
    assert.equal(w.mark(), m);
  });

  test('outside the stable set: refused, or with --force a plan to deploy it afresh', async () => {
    const w = new World();
    await w.seed('1.0.0', '2.0.0', '3.0.0', '4.0.0');
    await assert.rejects(w.engine().rollback(MODEL, { to: '1.0.0' }), (e: ModelctlError) => e.exitCode === ExitCode.usage && /retired and not running/.test(e.message) && /--force/.test(e.hint!));
    const forced = await w.engine().rollback(MODEL, { to: '1.0.0', force: true });
    assert.deepEqual([forced.action, forced.to, forced.digest], ['needs-deploy', '1.0.0', ref('1.0.0').digest]);
    await assert.rejects(w.engine().rollback(MODEL, { to: '9.9.9' }), (e: ModelctlError) => e.exitCode === ExitCode.notFound);
  });

  test('nothing to roll back to', async () => {
    const w = new World();
    await assert.rejects(w.engine().rollback(MODEL), (e: ModelctlError) => e.exitCode === ExitCode.notFound);
    await w.seed('1.0.0');
    await assert.rejects(w.engine().rollback(MODEL), (e: ModelctlError) => e.exitCode === ExitCode.usage && /single stable version/.test(e.message));
  });

  test('an unhealthy target of an explicit rollback is reported (no cascade: the human chose)', async () => {
    const w = new World();
    await w.seed('1.0.0', '2.0.0');
    w.target.unhealthy.add('1.0.0');
    const r = await w.engine().rollback(MODEL);
    assert.equal(r.healthy, false);
    assert.ok(r.events.some((e) => e.type === 'stable-unhealthy'));
  });
});

describe('status and history', () => {
  test('history newest first; status of a quiet model', async () => {
    const w = new World();
    await w.seed('1.0.0', '2.0.0');
    w.target.notReady.set('3.0.0', 'oom');
    await w.engine().deploy(ref('3.0.0'), plan());
    const h = await w.engine().history(MODEL);
    assert.deepEqual(h.map((x) => [x.version, x.state]), [['3.0.0', 'failed'], ['2.0.0', 'stable'], ['1.0.0', 'stable']]);
    assert.match(h[0]!.reason!, /oom/);
    const s = await w.engine().status(MODEL);
    assert.deepEqual({ serving: s.serving, stableSet: s.stableSet, traffic: s.traffic, rollout: s.rollout, lock: s.lock }, {
      serving: '2.0.0',
      stableSet: ['2.0.0', '1.0.0'],
      traffic: { '2.0.0': 100 },
      rollout: null,
      lock: null,
    });
  });

  test('status during a canary shows the live weight and holder', async () => {
    const w = new World();
    await w.seed('1.0.0');
    let seen = null as StatusView | null;
    w.clock.after(60_000 + 30_000, async () => (seen = await w.engine('bob').status(MODEL)));
    await w.engine().deploy(ref('1.1.0'), plan());
    const s = seen!;
    assert.deepEqual([s.rollout!.phase, s.rollout!.stepIndex, s.rollout!.weight, s.rollout!.holder, s.rollout!.interrupted], ['canary', 1, 25, 'alice', false]);
    assert.equal(s.lock!.holder, 'alice');
  });
});
