import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { judge, validateCommon } from '../../src/gates/compare.js';
import type { GateContext, GateEvaluator } from '../../src/gates/contracts.js';
import type { GateSpec } from '../../src/core/gates.js';
import { defaultLocalGates, LOCAL_METRICS, LocalGateEvaluator } from '../../src/gates/local.js';
import { defaultGateRegistry, GateRegistry } from '../../src/gates/registry.js';
import type { MetricSource, VersionWindow } from '../../src/core/ports.js';
import { emptyWindow } from '../fakes/metrics.js';

const T0 = Date.UTC(2025, 0, 1);
const ctx: GateContext = { model: 'm', candidate: '2.0.0', stable: '1.0.0', sinceMs: T0, now: T0 + 60_000, phase: 'canary' };

/** A source with fixed windows per version (a version it does not know throws, like a dead backend). */
function source(windows: Record<string, Partial<VersionWindow> | Error>): MetricSource & { asked: Array<[string, number]> } {
  const asked: Array<[string, number]> = [];
  return {
    asked,
    async window(_model, version, sinceMs) {
      asked.push([version, sinceMs]);
      const w = windows[version];
      if (w === undefined) throw new Error(`no series for ${version}`);
      if (w instanceof Error) throw w;
      return { ...emptyWindow(), ...w };
    },
  };
}

function errors(requests: number, errs: number): Partial<VersionWindow> {
  return { requests, errors: errs };
}

const ev = new LocalGateEvaluator();

describe('local metrics', () => {
  test('each metric from a window', () => {
    const w: VersionWindow = { requests: 50, errors: 2, latenciesMs: [5, 1, 4, 2, 3, 10, 9, 8, 7, 6], scores: [0.5, 0.7], shadowCompared: 40, shadowAgreed: 38 };
    const m = (name: string, span = 10_000) => LOCAL_METRICS[name]!.measure(w, span).value;
    assert.equal(m('error-rate'), 0.04);
    assert.equal(m('latency-p50'), 5);
    assert.equal(m('latency-p90'), 9);
    assert.equal(m('latency-p99'), 10);
    assert.equal(m('score-mean'), 0.6);
    assert.equal(m('request-rate'), 5);
    assert.equal(m('shadow-agreement'), 0.95);
    assert.equal(LOCAL_METRICS['error-rate']!.measure(emptyWindow(), 1).value, null, 'no requests: no value, not 0');
  });

  test('shadow-agreement runs in shadow only; the others in both phases; a spec may say otherwise', () => {
    assert.deepEqual(ev.phasesOf({ name: 'a', metric: 'shadow-agreement', min: 0.9 }), ['shadow']);
    assert.deepEqual(ev.phasesOf({ name: 'e', metric: 'error-rate', max: 0.1 }), ['shadow', 'canary']);
    assert.deepEqual(ev.phasesOf({ name: 'e', metric: 'error-rate', max: 0.1, phases: ['canary'] }), ['canary']);
  });
});

describe('LocalGateEvaluator', () => {
  test('absolute max: pass and fail with the limit and the numbers in words', async () => {
    const gate: GateSpec = { name: 'errors', metric: 'error-rate', max: 0.01 };
    const pass = await ev.evaluate(gate, ctx, source({ '2.0.0': errors(200, 1) }));
    assert.deepEqual([pass.verdict, pass.value, pass.limit, pass.samples], ['pass', 0.005, '<= 0.01', 200]);
    const fail = await ev.evaluate(gate, ctx, source({ '2.0.0': errors(200, 8) }));
    assert.deepEqual([fail.verdict, fail.value, fail.limit], ['fail', 0.04, '<= 0.01']);
    assert.equal(fail.reason, 'error-rate 0.04 > 0.01 (8 of 200 requests failed)');
    assert.match(fail.query, /^local:error-rate\{model=m,version=2\.0\.0\} over 60 s since 2025-01-01T00:00:00\.000Z$/);
    assert.equal(fail.at, ctx.now);
  });

  test('relative to stable over the same window: "<= stable (0.004) × 1.2 = 0.0048"', async () => {
    const gate: GateSpec = { name: 'errors', metric: 'error-rate', relative: { maxRatio: 1.2 } };
    const src = source({ '1.0.0': errors(1000, 4), '2.0.0': errors(1000, 5) });
    const r = await ev.evaluate(gate, ctx, src);
    assert.equal(r.limit, '<= stable (0.004) × 1.2 = 0.0048');
    assert.equal(r.verdict, 'fail');
    assert.equal(r.reason, 'error-rate 0.005 > 0.0048 (stable 0.004) (5 of 1000 requests failed)');
    assert.deepEqual(src.asked, [['2.0.0', T0], ['1.0.0', T0]], 'same window for both');
    const ok = await ev.evaluate(gate, ctx, source({ '1.0.0': errors(1000, 4), '2.0.0': errors(1000, 4) }));
    assert.equal(ok.verdict, 'pass');
  });

  test('ratio and delta together form one affine bound, so a zero baseline leaves room', async () => {
    const gate: GateSpec = { name: 'errors', metric: 'error-rate', relative: { maxRatio: 1.5, maxDelta: 0.01 } };
    const r = await ev.evaluate(gate, ctx, source({ '1.0.0': errors(500, 0), '2.0.0': errors(500, 3) }));
    assert.equal(r.limit, '<= stable (0) × 1.5 + 0.01 = 0.01');
    assert.equal(r.verdict, 'pass');
    const delta = await ev.evaluate({ ...gate, relative: { maxDelta: 0.002 } }, ctx, source({ '1.0.0': errors(500, 2), '2.0.0': errors(500, 3) }));
    assert.equal(delta.limit, '<= stable (0.004) + 0.002 = 0.006');
  });

  test('lower relative bounds for metrics where less is worse', async () => {
    const gate: GateSpec = { name: 'score', metric: 'score-mean', relative: { minRatio: 0.95 } };
    const scores = (v: number) => ({ scores: Array.from({ length: 30 }, () => v) });
    const r = await ev.evaluate(gate, ctx, source({ '1.0.0': scores(0.8), '2.0.0': scores(0.7) }));
    assert.equal(r.limit, '>= stable (0.8) × 0.95 = 0.76');
    assert.equal(r.verdict, 'fail');
  });

  test('absolute and relative bounds all apply', async () => {
    const gate: GateSpec = { name: 'p99', metric: 'latency-p99', max: 300, relative: { maxRatio: 2 } };
    const lat = (v: number) => ({ latenciesMs: Array.from({ length: 50 }, () => v) });
    const r = await ev.evaluate(gate, ctx, source({ '1.0.0': lat(200), '2.0.0': lat(350) }));
    assert.equal(r.limit, '<= 300 ms and <= stable (200 ms) × 2 = 400 ms');
    assert.equal(r.verdict, 'fail');
    assert.match(r.reason, /350 ms > 300 ms/);
  });

  test('fewer samples than minSamples → inconclusive, with how many were needed', async () => {
    const gate: GateSpec = { name: 'errors', metric: 'error-rate', max: 0.01 };
    const r = await ev.evaluate(gate, ctx, source({ '2.0.0': errors(12, 0) }));
    assert.equal(r.verdict, 'inconclusive');
    assert.equal(r.reason, 'not enough data: 12 of 20 requests needed (0 of 12 requests failed)');
    const custom = await ev.evaluate({ ...gate, minSamples: 10 }, ctx, source({ '2.0.0': errors(12, 0) }));
    assert.equal(custom.verdict, 'pass');
    const none = await ev.evaluate({ ...gate, minSamples: 0 }, ctx, source({ '2.0.0': {} }));
    assert.equal(none.verdict, 'inconclusive', 'no value is never a pass, whatever minSamples says');
  });

  test('relative: too little stable data, or no stable version → inconclusive', async () => {
    const gate: GateSpec = { name: 'errors', metric: 'error-rate', relative: { maxRatio: 1.2 } };
    const r = await ev.evaluate(gate, ctx, source({ '1.0.0': errors(3, 0), '2.0.0': errors(100, 0) }));
    assert.equal(r.verdict, 'inconclusive');
    assert.match(r.reason, /not enough stable data: 3 of 20 requests needed on 1\.0\.0/);
    assert.equal(r.limit, '<= stable × 1.2');
    const first = await ev.evaluate(gate, { ...ctx, stable: null }, source({ '2.0.0': errors(100, 0) }));
    assert.equal(first.verdict, 'inconclusive');
  });

  test('a source that throws → verdict error with its message (candidate or stable)', async () => {
    const gate: GateSpec = { name: 'errors', metric: 'error-rate', relative: { maxRatio: 1.2 } };
    const r = await ev.evaluate(gate, ctx, source({ '2.0.0': new Error('connection refused') }));
    assert.deepEqual([r.verdict, r.reason], ['error', 'measuring 2.0.0: connection refused']);
    const s = await ev.evaluate(gate, ctx, source({ '2.0.0': errors(100, 0) }));
    assert.deepEqual([s.verdict, s.reason], ['error', 'measuring stable 1.0.0: no series for 1.0.0']);
  });

  test('answers the gates cannot read (declared field missing, not JSON) are errors for error-rate and keep field gates from passing', async () => {
    const src = source({ '2.0.0': { requests: 100, errors: 0, unreadable: 40, scores: [0.9, 0.9, 0.9], shadowCompared: 60, shadowAgreed: 60 } });
    const err = await ev.evaluate({ name: 'e', metric: 'error-rate', max: 0.05 }, ctx, src);
    assert.equal(err.verdict, 'fail');
    assert.equal(err.value, 0.4);
    assert.match(err.reason, /0 of 100 requests failed, 40 answers unreadable \(not JSON, or without the declared field\)/);
    const score = await ev.evaluate({ name: 's', metric: 'score-mean', min: 0.5, minSamples: 1 }, ctx, src);
    assert.equal(score.verdict, 'inconclusive');
    assert.match(score.reason, /cannot judge 2\.0\.0: mean of 3 scores, 40 answers unreadable/);
    const agree = await ev.evaluate({ name: 'a', metric: 'shadow-agreement', min: 0.9, minSamples: 1 }, { ...ctx, phase: 'shadow' }, src);
    assert.equal(agree.verdict, 'inconclusive');
    // Latency does not need the field: judged as usual.
    assert.equal((await ev.evaluate({ name: 'l', metric: 'latency-p99', max: 100, minSamples: 1 }, ctx, source({ '2.0.0': { requests: 5, latenciesMs: [1, 2], unreadable: 5 } }))).verdict, 'pass');
  });

  test('shadow-agreement says how many mirrored answers were not compared (dropped, failed), in the reason and as uncompared', async () => {
    const shadow = { ...ctx, phase: 'shadow' as const };
    const none = await ev.evaluate({ name: 'a', metric: 'shadow-agreement', min: 0.9 }, shadow, source({ '2.0.0': { requests: 37, shadowDropped: 30, shadowFailed: 7 } }));
    assert.equal(none.verdict, 'inconclusive');
    assert.equal(
      none.reason,
      'not enough data: 0 of 20 compared answers needed (0 of 0 answers agreed with stable; 37 not compared: 30 dropped (comparisons at their concurrency bound), 7 failed (stable did not answer in time, or with an error))',
    );
    assert.deepEqual(none.uncompared, { dropped: 30, failed: 7 });
    const some = await ev.evaluate({ name: 'a', metric: 'shadow-agreement', min: 0.9, minSamples: 1 }, shadow, source({ '2.0.0': { requests: 25, shadowCompared: 20, shadowAgreed: 20, shadowDropped: 5 } }));
    assert.equal(some.verdict, 'pass');
    assert.match(some.reason, /\(20 of 20 answers agreed with stable; 5 not compared: 5 dropped .*, 0 failed/);
    assert.deepEqual(some.uncompared, { dropped: 5, failed: 0 });
    // A source that does not count them (the local runtime): nothing said, no field.
    const local = await ev.evaluate({ name: 'a', metric: 'shadow-agreement', min: 0.9, minSamples: 1 }, shadow, source({ '2.0.0': { requests: 20, shadowCompared: 20, shadowAgreed: 20 } }));
    assert.equal(local.reason, '1 within >= 0.9 (20 of 20 answers agreed with stable)');
    assert.equal(local.uncompared, undefined);
  });

  test('request-rate is per second over the window', async () => {
    const r = await ev.evaluate({ name: 'rps', metric: 'request-rate', min: 1 }, ctx, source({ '2.0.0': errors(120, 0) }));
    assert.deepEqual([r.verdict, r.value, r.limit], ['pass', 2, '>= 1 req/s']);
  });
});

describe('validation', () => {
  test('spec problems are found before a rollout starts', () => {
    assert.deepEqual(ev.validate({ name: 'ok', metric: 'error-rate', max: 0.1 }), []);
    assert.match(ev.validate({ name: 'x', metric: 'error-rates', max: 0.1 }).join(), /unknown local metric "error-rates" \(known: error-rate, latency-p50/);
    assert.match(validateCommon({ name: 'x', metric: 'error-rate' }).join(), /no limit/);
    assert.match(validateCommon({ name: 'x', metric: 'error-rate', min: 2, max: 1 }).join(), /min \(2\) is above max \(1\)/);
    assert.match(validateCommon({ name: 'x', metric: 'error-rate', max: 1, failureLimit: -1 }).join(), /failureLimit must be a number >= 0/);
    assert.match(validateCommon({ name: 'x', metric: 'error-rate', relative: { maxRatio: Number.NaN } }).join(), /relative\.maxRatio/);
  });

  test('judge needs the stable value for relative bounds (a bug otherwise, never a silent pass)', () => {
    assert.throws(() => judge({ name: 'x', metric: 'error-rate', relative: { maxRatio: 1 } }, 0.1, null), /need the stable value/);
  });
});

describe('GateRegistry', () => {
  test('dispatches on kind (local by default); unknown kinds are reported', async () => {
    const seen: string[] = [];
    const fake: GateEvaluator = {
      async evaluate(gate, c) {
        seen.push(gate.name);
        return { name: gate.name, verdict: 'pass', value: 1, limit: '', samples: 1, reason: '', query: 'up', at: c.now };
      },
      validate: () => [],
      phasesOf: () => ['canary'],
    };
    const reg = defaultGateRegistry().register('prometheus', fake);
    const prom: GateSpec = { name: 'p', kind: 'prometheus', metric: 'up', max: 1 };
    assert.equal((await reg.evaluate(prom, ctx, source({}))).verdict, 'pass');
    assert.deepEqual(seen, ['p']);
    assert.deepEqual(reg.phasesOf(prom), ['canary']);
    const local = await reg.evaluate({ name: 'l', metric: 'error-rate', max: 0.1 }, ctx, source({ '2.0.0': errors(100, 0) }));
    assert.equal(local.verdict, 'pass');
    // An unknown kind has no member in the union: it can only arrive untyped (an old ledger, a caller in JavaScript).
    const odd: GateSpec = JSON.parse('{"name": "o", "kind": "datadog", "metric": "x", "max": 1}');
    assert.match(reg.validate(odd).join(), /unknown kind "datadog" \(known: local, statistical, drift, command, http, eval, prometheus\)/);
    assert.equal((await reg.evaluate(odd, ctx, source({}))).verdict, 'error');
    assert.deepEqual(new GateRegistry().validate(prom).length, 1);
  });
});

describe('default local gates', () => {
  const gates = defaultLocalGates();
  const reg = defaultGateRegistry();

  test('are valid, and agreement only gates the shadow phase', () => {
    for (const g of gates) assert.deepEqual(reg.validate(g), [], g.name);
    assert.deepEqual(gates.filter((g) => reg.phasesOf(g).includes('canary')).map((g) => g.name), ['error-rate', 'latency-p99']);
  });

  test('error-rate: a clean stable does not fail a candidate on its first error; a real regression fails; 5% is a ceiling', async () => {
    const gate = gates.find((g) => g.name === 'error-rate')!;
    const judgeErrors = async (stable: number, cand: number) => (await reg.evaluate(gate, ctx, source({ '1.0.0': errors(1000, stable), '2.0.0': errors(1000, cand) }))).verdict;
    assert.equal(await judgeErrors(0, 5), 'pass'); // 0.5% vs 0%: within the +0.01 slack
    assert.equal(await judgeErrors(0, 20), 'fail'); // 2% vs 0%
    assert.equal(await judgeErrors(30, 40), 'pass'); // 4% vs 3%: within 3% × 1.5 + 1% and the ceiling
    assert.equal(await judgeErrors(40, 55), 'fail'); // 5.5% is within 4% × 1.5 + 1% = 7%, but above the 5% ceiling
  });
});
