import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { windowOf, SampleRing } from '../../src/targets/local/window.js';
import { decodeRuns, encodeRuns, encodeWindow, LATENCY_RESOLUTION_MS, meterAnswerSchema } from '../../src/targets/kubernetes/window-codec.js';

/** A deterministic lognormal-ish latency sample (ms), like a real service's. */
function latencies(n: number): number[] {
  let x = 12345;
  const rand = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  return Array.from({ length: n }, () => Math.exp(3 + 0.5 * Math.sqrt(-2 * Math.log(rand() || 1e-9)) * Math.cos(2 * Math.PI * rand())));
}

describe('window codec: sorted [value, count] runs', () => {
  test('round trip keeps the distribution: exact for scores, within 5 µs for latencies', () => {
    assert.deepEqual(decodeRuns(encodeRuns([0.9, 0.1, 0.1, 0.5])), [0.1, 0.1, 0.5, 0.9]);
    const lat = latencies(5000);
    const back = decodeRuns(encodeRuns(lat, LATENCY_RESOLUTION_MS));
    const sorted = [...lat].sort((a, b) => a - b);
    assert.equal(back.length, lat.length);
    for (let i = 0; i < sorted.length; i++) assert.ok(Math.abs(back[i]! - sorted[i]!) <= LATENCY_RESOLUTION_MS / 2 + 1e-9, `${back[i]} vs ${sorted[i]}`);
    assert.deepEqual(encodeRuns([0.1 + 0.2, 0.3], 0.01), [[0.3, 2]], 'float noise after rounding does not split runs');
  });

  test('unreadable answers travel with the window; an older meter without the field is read as not measured', () => {
    const ring = new SampleRing(10);
    ring.push({ at: 1, status: 200, latencyMs: 3, score: null, agreed: null, role: 'live', unreadable: true });
    ring.push({ at: 2, status: 200, latencyMs: 4, score: 0.5, agreed: null, role: 'live' });
    const sent = encodeWindow(windowOf(ring, 0, 10));
    assert.equal(sent.unreadable, 1);
    assert.equal(meterAnswerSchema.parse(JSON.parse(JSON.stringify(sent))).unreadable, 1);
    const { unreadable: _dropped, ...older } = sent;
    assert.equal(meterAnswerSchema.parse(older).unreadable, undefined);
  });

  test('a window of 100 000 requests: a fraction of the raw JSON', () => {
    const ring = new SampleRing(100_000);
    const lat = latencies(100_000);
    lat.forEach((l, i) => ring.push({ at: 1000 + i, status: i % 100 === 0 ? 500 : 200, latencyMs: l, score: i % 2 ? 0.25 : 0.75, agreed: null, role: 'live' }));
    const w = windowOf(ring, 0, 1e9);
    const raw = JSON.stringify(w).length;
    const compact = JSON.stringify(encodeWindow(w)).length;
    assert.ok(compact * 10 < raw, `runs ${compact} B vs raw ${raw} B`);
    const decoded = meterAnswerSchema.parse(JSON.parse(JSON.stringify(encodeWindow(w))));
    assert.equal(decoded.requests, 100_000);
    assert.equal(decoded.errors, 1000);
    assert.equal(decoded.latenciesMs.length, 100_000);
    assert.deepEqual(decoded.scores.filter((s) => s === 0.25).length, 50_000);
  });

  test('an older meter that answers plain arrays is still understood; anything else is refused', () => {
    const plain = { requests: 2, errors: 0, latenciesMs: [5, 6], scores: [], shadowCompared: 0, shadowAgreed: 0, truncated: false, now: 1 };
    assert.deepEqual(meterAnswerSchema.parse(plain).latenciesMs, [5, 6]);
    assert.throws(() => meterAnswerSchema.parse({ encoding: 'runs', requests: 1, errors: 0, latencyRuns: [[5, 0]], scoreRuns: [], shadowCompared: 0, shadowAgreed: 0, truncated: false }));
    assert.throws(() => meterAnswerSchema.parse({ requests: 1 }));
  });
});
