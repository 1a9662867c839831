import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { GateContext } from '../../src/gates/contracts.js';
import type { DriftGate, GateSpec, StatisticalGate } from '../../src/core/gates.js';
import { DriftGateEvaluator } from '../../src/gates/drift.js';
import { defaultGateRegistry } from '../../src/gates/registry.js';
import { StatisticalGateEvaluator } from '../../src/gates/statistical.js';
import { binomial, mulberry32, normal } from '../../src/gates/stats/prng.js';
import type { VersionWindow } from '../../src/core/ports.js';
import { parseRolloutSection } from '../../src/rollout/plan.js';
import { toGate } from '../../src/gates/schema.js';
import { FakeClock } from '../fakes/clock.js';
import { emptyWindow, FakeMetricSource } from '../fakes/metrics.js';
import { MODEL, plan, ref, World } from '../fakes/world.js';

const clock = new FakeClock();
const T0 = clock.now();
const ctx: GateContext = { model: 'm', candidate: '2.0.0', stable: '1.0.0', sinceMs: T0 - 60_000, now: T0, phase: 'canary' };

/** A scripted MetricSource with exact windows per version. */
function source(windows: Record<string, Partial<VersionWindow> | Error>): FakeMetricSource {
  const s = new FakeMetricSource(clock);
  for (const [version, w] of Object.entries(windows)) {
    s.script(version, () => {
      if (w instanceof Error) throw w;
      return { ...emptyWindow(), ...w };
    });
  }
  return s;
}

const stat = new StatisticalGateEvaluator();
const drift = new DriftGateEvaluator();
const ERRORS: StatisticalGate = { name: 'errors', kind: 'statistical', metric: 'error-rate' };

describe('statistical error-rate gate', () => {
  test('a bad canary fails; the reason gives the statistic, p-value, both sides and the rule', async () => {
    const r = await stat.evaluate(ERRORS, ctx, source({ '2.0.0': { requests: 600, errors: 30 }, '1.0.0': { requests: 11_400, errors: 114 } }));
    assert.equal(r.verdict, 'fail');
    assert.ok(r.value !== null && r.value < 0.02, `p ${r.value}`);
    assert.equal(r.samples, 600);
    assert.equal(r.limit, 'p < 0.02 (confidence 0.98)');
    assert.equal(r.baseline?.value, 0.01);
    assert.match(r.reason, /candidate's error rate is worse than 1\.0\.0 × 1\.25: candidate 5% \(30\/600\) vs stable 1% \(114\/11400\)/);
    assert.match(r.reason, /sequential test \(always valid under repeated looks\): 30 of 144 errors on the candidate where H0 allows a share of 6\.173%/);
    assert.match(r.reason, /always-valid p = .* < α 0\.02, so H0 \(no worse than the margin\) is rejected/);
  });

  test('a canary as good as stable passes, with the rule in words', async () => {
    const r = await stat.evaluate(ERRORS, ctx, source({ '2.0.0': { requests: 600, errors: 6 }, '1.0.0': { requests: 11_400, errors: 114 } }));
    assert.equal(r.verdict, 'pass');
    assert.match(r.reason, /^no evidence the error rate is worse than 1\.0\.0 × 1\.25: .* >= α 0\.02$/);
  });

  test('within the tolerance: 20% worse passes at tolerance 0.25, fails at 0 with enough data', async () => {
    const windows = { '2.0.0': { requests: 100_000, errors: 1200 }, '1.0.0': { requests: 1_000_000, errors: 10_000 } };
    assert.equal((await stat.evaluate(ERRORS, ctx, source(windows))).verdict, 'pass');
    assert.equal((await stat.evaluate({ ...ERRORS, tolerance: 0 }, ctx, source(windows))).verdict, 'fail');
    assert.equal((await stat.evaluate({ ...ERRORS, tolerance: 0, maxDelta: 0.005 }, ctx, source(windows))).verdict, 'pass');
  });

  test('not enough samples on either side, or no stable: inconclusive, never pass', async () => {
    const few = await stat.evaluate(ERRORS, ctx, source({ '2.0.0': { requests: 49, errors: 40 }, '1.0.0': { requests: 5000, errors: 0 } }));
    assert.deepEqual([few.verdict, few.value], ['inconclusive', null]);
    assert.match(few.reason, /not enough data: 50 requests needed on each side \(candidate 40\/49 failed, stable 0\/5000\)/);
    const fewStable = await stat.evaluate(ERRORS, ctx, source({ '2.0.0': { requests: 500, errors: 0 }, '1.0.0': { requests: 10, errors: 0 } }));
    assert.equal(fewStable.verdict, 'inconclusive');
    const first = await stat.evaluate(ERRORS, { ...ctx, stable: null }, source({ '2.0.0': { requests: 500 } }));
    assert.deepEqual([first.verdict, first.reason], ['inconclusive', 'no stable version to compare with']);
  });

  test('a query error on either side is an error verdict', async () => {
    const r = await stat.evaluate(ERRORS, ctx, source({ '2.0.0': { requests: 500 }, '1.0.0': new Error('backend down') }));
    assert.deepEqual([r.verdict, r.reason], ['error', 'measuring stable 1.0.0: backend down']);
  });

  test('sequential: false is the one-look z-test, and says so', async () => {
    const r = await stat.evaluate({ ...ERRORS, sequential: false }, ctx, source({ '2.0.0': { requests: 600, errors: 30 }, '1.0.0': { requests: 11_400, errors: 114 } }));
    assert.equal(r.verdict, 'fail');
    assert.match(r.reason, /one-sided two-proportion z-test \(valid for one look\): z = [\d.]+, p = /);
  });

  test('A/A canaries checked every 10 s for 30 minutes: false fails stay under α', async () => {
    const rand = mulberry32(42);
    const runs = 200;
    let falseFails = 0;
    for (let r = 0; r < runs; r++) {
      const cand = { ...emptyWindow() };
      const stab = { ...emptyWindow() };
      const src = { window: async (_m: string, v: string) => (v === '2.0.0' ? cand : stab) };
      for (let look = 0; look < 180; look++) {
        cand.requests += 100;
        cand.errors += binomial(rand, 100, 0.01);
        stab.requests += 1900;
        stab.errors += binomial(rand, 1900, 0.01);
        if ((await stat.evaluate(ERRORS, ctx, src)).verdict === 'fail') {
          falseFails++;
          break;
        }
      }
    }
    assert.ok(falseFails / runs <= 0.02, `${falseFails}/${runs}`);
  });
});

describe('statistical latency gate (Mann-Whitney)', () => {
  const lat = (n: number, base: number, seed: number) => {
    const rand = mulberry32(seed);
    return Array.from({ length: n }, () => base * Math.exp(0.3 * normal(rand)));
  };
  const LAT: GateSpec = { name: 'latency', kind: 'statistical', metric: 'latency-p50' };

  test('a 30% slower candidate fails; the reason names U, z, p, both samples and the rule', async () => {
    const r = await stat.evaluate(LAT, ctx, source({ '2.0.0': { latenciesMs: lat(200, 130, 1) }, '1.0.0': { latenciesMs: lat(400, 100, 2) } }));
    assert.equal(r.verdict, 'fail');
    assert.equal(r.limit, 'p < 0.02 (confidence 0.98), effect >= 1.1×');
    assert.match(r.reason, /^candidate latencies exceed stable's: p50 candidate [\d.]+ ms vs stable 1\.0\.0 [\d.]+ ms \(ratio 1\.\d+\); Mann-Whitney U = \d+, z = [\d.]+, p = [\de.-]+ \(increase\) on 200 candidate and 400 stable latencies; fails when p < α 0\.02 and the ratio is at least 1\.1$/);
  });

  test('significant but smaller than the effect size: pass, and the reason says why', async () => {
    const r = await stat.evaluate(LAT, ctx, source({ '2.0.0': { latenciesMs: lat(5000, 104, 3) }, '1.0.0': { latenciesMs: lat(5000, 100, 4) } }));
    assert.equal(r.verdict, 'pass');
    assert.match(r.reason, /^significant, but the shift is smaller than the effect size/);
  });

  test('direction: a faster candidate passes "increase", fails "decrease" and "either"', async () => {
    const windows = { '2.0.0': { latenciesMs: lat(300, 70, 5) }, '1.0.0': { latenciesMs: lat(300, 100, 6) } };
    assert.equal((await stat.evaluate(LAT, ctx, source(windows))).verdict, 'pass');
    assert.equal((await stat.evaluate({ ...LAT, direction: 'decrease' }, ctx, source(windows))).verdict, 'fail');
    assert.equal((await stat.evaluate({ ...LAT, direction: 'either' }, ctx, source(windows))).verdict, 'fail');
  });

  test('p99 effect size and too few latencies', async () => {
    const r = await stat.evaluate({ ...LAT, metric: 'latency-p99' }, ctx, source({ '2.0.0': { latenciesMs: lat(20, 100, 7) }, '1.0.0': { latenciesMs: lat(400, 100, 8) } }));
    assert.equal(r.verdict, 'inconclusive');
    assert.match(r.reason, /50 latencies needed on each side \(candidate 20, stable 400\)/);
  });

  test('A/A at one look: false fails under α', async () => {
    let fails = 0;
    for (let i = 0; i < 300; i++) {
      const r = await stat.evaluate({ ...LAT, effectSize: 1 }, ctx, source({ '2.0.0': { latenciesMs: lat(60, 100, 1000 + i) }, '1.0.0': { latenciesMs: lat(120, 100, 5000 + i) } }));
      if (r.verdict === 'fail') fails++;
    }
    assert.ok(fails / 300 <= 0.02 + 0.025, `${fails}/300`); // α plus 3 standard errors of 300 draws
  });
});

describe('drift gate', () => {
  const scores = (n: number, shift: number, seed: number) => {
    const rand = mulberry32(seed);
    return Array.from({ length: n }, () => shift + normal(rand));
  };
  const PSI: GateSpec = { name: 'drift', kind: 'drift', metric: 'psi' };

  test('PSI: same distribution passes with a reading of the value; a shifted one fails', async () => {
    const same = await drift.evaluate(PSI, ctx, source({ '2.0.0': { scores: scores(2000, 0, 1) }, '1.0.0': { scores: scores(4000, 0, 2) } }));
    assert.equal(same.verdict, 'pass');
    assert.equal(same.limit, '<= 0.2');
    assert.match(same.reason, /^PSI 0\.0\d+ over 10 buckets cut at stable's quantiles, 2000 candidate vs 4000 stable \(1\.0\.0\) scores: no meaningful shift \(< 0\.1\); within 0\.2$/);
    const moved = await drift.evaluate(PSI, ctx, source({ '2.0.0': { scores: scores(2000, 1, 3) }, '1.0.0': { scores: scores(4000, 0, 4) } }));
    assert.equal(moved.verdict, 'fail');
    assert.match(moved.reason, /major shift \(> 0\.25\); fails above 0\.2$/);
  });

  test('KS: D against max, with its p-value', async () => {
    const gate: GateSpec = { name: 'ks', kind: 'drift', metric: 'ks', max: 0.1 };
    const r = await drift.evaluate(gate, ctx, source({ '2.0.0': { scores: scores(1000, 0.5, 5) }, '1.0.0': { scores: scores(1000, 0, 6) } }));
    assert.equal(r.verdict, 'fail');
    assert.match(r.reason, /^KS D = 0\.\d+ \(p = [\de.-]+\), 1000 candidate vs 1000 stable \(1\.0\.0\) scores; fails when D > 0\.1$/);
  });

  test('too few scores or no stable: inconclusive', async () => {
    const r = await drift.evaluate(PSI, ctx, source({ '2.0.0': { scores: scores(50, 0, 1) }, '1.0.0': { scores: scores(4000, 0, 2) } }));
    assert.equal(r.verdict, 'inconclusive');
    assert.equal((await drift.evaluate(PSI, { ...ctx, stable: null }, source({}))).verdict, 'inconclusive');
  });
});

describe('validation, registry and plan fields', () => {
  const reg = defaultGateRegistry();

  test('statistical and drift are registered kinds, valid with their defaults', () => {
    assert.deepEqual(reg.validate(ERRORS), []);
    assert.deepEqual(reg.validate({ name: 'l', kind: 'statistical', metric: 'latency', direction: 'either', effectSize: 1.2 }), []);
    assert.deepEqual(reg.validate({ name: 'd', kind: 'drift', metric: 'psi', buckets: 20 }), []);
    assert.deepEqual(reg.phasesOf(ERRORS), ['shadow', 'canary']);
  });

  test('spec problems in words', () => {
    const problems = (g: StatisticalGate | DriftGate) => reg.validate(g).join('\n');
    assert.match(problems({ ...ERRORS, metric: 'score-mean' }), /kind statistical measures error-rate, latency or latency-pNN, not "score-mean"/);
    assert.match(problems({ ...ERRORS, max: 0.1 }), /max does not apply to kind statistical/);
    assert.match(problems({ ...ERRORS, direction: 'decrease' }), /error-rate gate only fails on an increase/);
    assert.match(problems({ ...ERRORS, confidence: 1.5 }), /confidence must be between 0 and 1/);
    assert.match(problems({ name: 'l', kind: 'statistical', metric: 'latency', tolerance: 0.1 }), /tolerance is for error-rate/);
    assert.match(problems({ name: 'k', kind: 'drift', metric: 'ks' }), /a ks gate needs max/);
    assert.match(problems({ name: 'k', kind: 'drift', metric: 'mean' }), /kind drift measures psi or ks/);
  });

  test('the new fields parse from a rollout section and reach the GateSpec', () => {
    const section = parseRolloutSection(
      {
        gates: [
          { name: 'errors', kind: 'statistical', metric: 'error-rate', confidence: 0.99, tolerance: 0.1, maxDelta: 0.001, sequential: true, critical: true },
          { name: 'latency', kind: 'statistical', metric: 'latency-p90', direction: 'increase', effectSize: 1.2 },
          { name: 'drift', kind: 'drift', metric: 'psi', max: 0.25, buckets: 20 },
        ],
      },
      'modelctl.yaml',
    );
    const gates = section.gates!.map((g) => toGate(g, 'modelctl.yaml'));
    assert.deepEqual(gates[0], { name: 'errors', kind: 'statistical', metric: 'error-rate', confidence: 0.99, tolerance: 0.1, maxDelta: 0.001, sequential: true, critical: true });
    const [, latency, drift] = gates;
    assert.ok(latency?.kind === 'statistical' && drift?.kind === 'drift');
    assert.equal(latency.effectSize, 1.2);
    assert.equal(drift.buckets, 20);
    for (const g of gates) assert.deepEqual(reg.validate(g), [], g.name);
    assert.throws(() => parseRolloutSection({ gates: [{ name: 'x', metric: 'error-rate', direction: 'up' }] }, 'modelctl.yaml'), /rollout\.gates\.0\.direction/);
    assert.throws(() => parseRolloutSection({ gates: [{ name: 'x', metric: 'error-rate', confidence: 1 }] }, 'modelctl.yaml'), /rollout\.gates\.0\.confidence/);
  });
});

describe('the engine with a statistical gate', () => {
  const gates: GateSpec[] = [{ name: 'errors', kind: 'statistical', metric: 'error-rate', critical: true }];

  test('a canary failing 5% against stable’s 1% is rolled back at the first check', async () => {
    const w = new World({ totalRps: 200 });
    await w.seed('1.0.0');
    w.metrics.behave('1.0.0', { errorRate: 0.01 }).behave('1.1.0', { errorRate: 0.05 });
    const r = await w.engine().deploy(ref('1.1.0'), plan({ gates }));
    assert.equal(r.outcome, 'rolled-back');
    assert.match(r.reason, /critical gate errors failed: candidate's error rate is worse than 1\.0\.0 × 1\.25/);
    assert.deepEqual(w.ledger(MODEL).stableSet, ['1.0.0']);
    assert.deepEqual(w.violations, []);
  });

  test('a canary as good as stable is promoted', async () => {
    const w = new World({ totalRps: 200 });
    await w.seed('1.0.0');
    w.metrics.behave('1.0.0', { errorRate: 0.01 }).behave('1.1.0', { errorRate: 0.01 });
    assert.equal((await w.engine().deploy(ref('1.1.0'), plan({ gates }))).outcome, 'promoted');
  });
});
