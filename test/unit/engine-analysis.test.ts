import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { GateResult, GateSpec } from '../../src/core/gates.js';
import { StepAnalysis } from '../../src/rollout/analysis.js';

/** The step verdict rules on their own (the engine tests exercise them end to end). */

const G: GateSpec = { name: 'g', metric: 'error-rate', max: 0.01 };

function result(verdict: GateResult['verdict'], name = 'g'): GateResult {
  return { name, verdict, value: null, limit: '<= 0.01', samples: 0, reason: verdict, query: '', at: 0 };
}

function feed(gates: GateSpec[], seq: Array<GateResult['verdict'] | [string, GateResult['verdict']]>, atEndLast = true) {
  const a = new StepAnalysis(gates);
  let d = a.decide(false);
  seq.forEach((v, i) => {
    const [name, verdict] = Array.isArray(v) ? v : ['g', v];
    a.record(result(verdict, name));
    d = a.decide(atEndLast && i === seq.length - 1);
  });
  return { a, d };
}

describe('StepAnalysis', () => {
  test('all passes → continue during the bake, pass at its end', () => {
    assert.equal(feed([G], ['pass', 'pass'], false).d.kind, 'continue');
    assert.equal(feed([G], ['pass', 'pass']).d.kind, 'pass');
  });

  test('failureLimit (default 0) counts failed measurements', () => {
    assert.equal(feed([G], ['fail'], false).d.kind, 'fail');
    assert.equal(feed([{ ...G, failureLimit: 1 }], ['fail', 'pass'], false).d.kind, 'continue');
    assert.equal(feed([{ ...G, failureLimit: 1 }], ['fail', 'pass', 'fail'], false).d.kind, 'fail');
  });

  test('onInconclusive: rollback turns what would hold into a failure; the default holds', () => {
    // Beyond inconclusiveLimit during the bake (after the gate's first decisive result)…
    assert.equal(feed([G], ['pass', 'inconclusive'], false).d.kind, 'hold');
    const d = feed([{ ...G, onInconclusive: 'rollback' }], ['pass', 'inconclusive'], false).d;
    assert.equal(d.kind, 'fail');
    assert.match((d as { reason: string }).reason, /onInconclusive: rollback/);
    // …and an inconclusive latest measurement at the end of the bake.
    assert.equal(feed([{ ...G, inconclusiveLimit: 5 }], ['pass', 'inconclusive']).d.kind, 'hold');
    assert.equal(feed([{ ...G, inconclusiveLimit: 5, onInconclusive: 'rollback' }], ['pass', 'inconclusive']).d.kind, 'fail');
  });

  test('critical overrides failureLimit', () => {
    assert.equal(feed([{ ...G, failureLimit: 9, critical: true }], ['fail'], false).d.kind, 'fail');
  });

  test('consecutive errors (default limit 4) are reset by any answer, even inconclusive', () => {
    assert.equal(feed([G], ['error', 'error', 'error', 'error'], false).d.kind, 'continue');
    assert.equal(feed([G], ['error', 'error', 'error', 'error', 'error'], false).d.kind, 'fail');
    assert.equal(feed([G], ['error', 'error', 'error', 'error', 'inconclusive', 'error', 'error'], false).d.kind, 'continue');
    assert.deepEqual(feed([G], ['error', 'error'], false).a.counts(), [{ name: 'g', measurements: 0, failed: 0, inconclusive: 0, consecutiveErrors: 2 }]);
  });

  test('inconclusive before the first conclusive result is warm-up; after it, it counts', () => {
    const warm = feed([G], ['inconclusive', 'inconclusive', 'pass'], false);
    assert.equal(warm.d.kind, 'continue');
    assert.equal(warm.a.counts()[0]!.inconclusive, 0);
    assert.equal(feed([G], ['pass', 'inconclusive'], false).d.kind, 'hold');
    assert.equal(feed([{ ...G, inconclusiveLimit: 1 }], ['pass', 'inconclusive'], false).d.kind, 'continue');
  });

  test('end of bake: the latest measurement of each gating gate must be a pass', () => {
    assert.equal(feed([G], ['inconclusive']).d.kind, 'hold');
    assert.equal(feed([G], ['pass', 'error']).d.kind, 'hold');
    assert.equal(feed([{ ...G, failureLimit: 3 }], ['pass', 'fail']).d.kind, 'fail');
    const never = new StepAnalysis([G]);
    const d = never.decide(true);
    assert.equal(d.kind, 'hold');
    assert.match((d as { reason: string }).reason, /never measured/);
  });

  test('failures win over holds; dry-run gates never decide', () => {
    const H: GateSpec = { ...G, name: 'h' };
    assert.equal(feed([G, H], [['g', 'pass'], ['h', 'pass'], ['g', 'inconclusive'], ['h', 'fail']], false).d.kind, 'fail');
    const dry = feed([{ ...G, dryRun: true, critical: true }, H], [['g', 'fail'], ['h', 'pass']]);
    assert.equal(dry.d.kind, 'pass');
    assert.deepEqual(dry.a.evidence().map((r) => [r.name, r.verdict]), [['g', 'fail'], ['h', 'pass']]);
  });
});
