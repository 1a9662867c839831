import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { GateContext } from '../../src/gates/contracts.js';
import type { GateSpec } from '../../src/core/gates.js';
import { PrometheusClient } from '../../src/gates/prometheus.js';
import { cumulativeBuckets, perBucketCounts, PrometheusStatsGateEvaluator } from '../../src/gates/prometheus-stats.js';
import { defaultGateRegistry, PROMETHEUS_NOT_CONFIGURED, PROMETHEUS_STATS_KIND } from '../../src/gates/registry.js';
import { judgeErrorRate, StatisticalGateEvaluator } from '../../src/gates/statistical.js';
import { psiFromCounts } from '../../src/gates/stats/distribution.js';
import { emptyWindow, FakeMetricSource } from '../fakes/metrics.js';
import { FakeClock } from '../fakes/clock.js';
import { parseRolloutSection } from '../../src/rollout/plan.js';
import { toGate } from '../../src/gates/schema.js';

const NOW = 1_700_000_000_000;
const ctx: GateContext = { model: 'm', candidate: '2.0.0', stable: '1.0.0', sinceMs: NOW - 120_000, now: NOW, phase: 'canary' };

const ERRORS_Q = 'sum(increase(http_requests_total{version="{{version}}",code=~"5.."}[{{interval}}]))';
const TOTAL_Q = 'sum(increase(http_requests_total{version="{{version}}"}[{{interval}}]))';
const BUCKETS_Q = 'sum by (le) (increase(model_score_bucket{version="{{version}}"}[{{interval}}]))';
const resolved = (tpl: string, version: string) => tpl.replace('{{version}}', version).replace('{{interval}}', '2m');

const STAT: GateSpec = { name: 'errors', kind: 'statistical', metric: 'error-rate', errorsQuery: ERRORS_Q, totalQuery: TOTAL_Q };
const DRIFT: GateSpec = { name: 'drift', kind: 'drift', metric: 'psi', bucketsQuery: BUCKETS_Q };

type Answer = { status?: number; body: unknown } | 'refuse';
const vector = (...samples: Array<[Record<string, string>, string]>): Answer => ({ body: { status: 'success', data: { resultType: 'vector', result: samples.map(([metric, v]) => ({ metric, value: [NOW / 1000, v] })) } } });
const count = (v: string): Answer => vector([{}, v]);
const buckets = (les: string[], cum: number[]): Answer => vector(...les.map((le, i) => [{ le }, String(cum[i])] as [Record<string, string>, string]));

/** A fake Prometheus answering each resolved query from a table (unknown queries: empty vector). */
let answers = new Map<string, Answer>();
let server: Server;
let client: PrometheusClient;
const seen: string[] = [];

before(async () => {
  server = createServer((req, res) => {
    const q = new URL(req.url ?? '/', 'http://x').searchParams.get('query') ?? '';
    seen.push(q);
    const a = answers.get(q) ?? vector();
    if (a === 'refuse') {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'parse error: unexpected }' }));
      return;
    }
    res.writeHead(a.status ?? 200, { 'content-type': 'application/json' }).end(JSON.stringify(a.body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  client = new PrometheusClient({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, headers: {}, auth: null, timeoutMs: 2_000, retries: 0, backoffMs: 1 });
});
after(() => new Promise<void>((r) => server.close(() => r())));

function script(table: Record<string, Answer>): void {
  answers = new Map(Object.entries(table));
}
const ev = () => new PrometheusStatsGateEvaluator(client);

function errorCounts(c: [string, string], s: [string, string]): Record<string, Answer> {
  return {
    [resolved(ERRORS_Q, '2.0.0')]: count(c[0]),
    [resolved(TOTAL_Q, '2.0.0')]: count(c[1]),
    [resolved(ERRORS_Q, '1.0.0')]: count(s[0]),
    [resolved(TOTAL_Q, '1.0.0')]: count(s[1]),
  };
}

describe('histogram conversions', () => {
  test('cumulative buckets sort by le numerically, +Inf last, and difference into per-bucket counts', () => {
    const b = cumulativeBuckets([
      { labels: { le: '+Inf' }, raw: '100', value: 100 },
      { labels: { le: '10' }, raw: '90', value: 90 },
      { labels: { le: '2.5' }, raw: '40', value: 40 },
      { labels: { le: '0.5' }, raw: '10', value: 10 },
    ]);
    assert.deepEqual(
      b.map((x) => x.leRaw),
      ['0.5', '2.5', '10', '+Inf'],
    );
    assert.deepEqual(perBucketCounts(b), [10, 30, 50, 10]);
  });

  test('extrapolation noise (a bucket below its neighbour) is clamped to 0, not negative', () => {
    const b = cumulativeBuckets([
      { labels: { le: '1' }, raw: '10.2', value: 10.2 },
      { labels: { le: '2' }, raw: '10.1', value: 10.1 },
      { labels: { le: '+Inf' }, raw: '20', value: 20 },
    ]);
    const c = perBucketCounts(b);
    assert.deepEqual(c, [10.2, 0, 20 - 10.2]);
  });

  test('refused shapes: no le, a repeated le, no +Inf, a negative count', () => {
    assert.throws(() => cumulativeBuckets([{ labels: { version: '1' }, raw: '1', value: 1 }]), /no le label/);
    assert.throws(
      () =>
        cumulativeBuckets([
          { labels: { le: '1', pod: 'a' }, raw: '1', value: 1 },
          { labels: { le: '1.0', pod: 'b' }, raw: '1', value: 1 },
        ]),
      /two series have le="1.0": aggregate by le/,
    );
    assert.throws(() => cumulativeBuckets([{ labels: { le: '1' }, raw: '1', value: 1 }]), /no le="\+Inf" bucket/);
    assert.throws(() => cumulativeBuckets([{ labels: { le: '+Inf' }, raw: '-1', value: -1 }]), /counts must be finite and >= 0/);
  });
});

describe('judgeErrorRate is the local statistical gate\'s decision', () => {
  test('same verdict and p-value as StatisticalGateEvaluator on the same counts', async () => {
    const clock = new FakeClock();
    const src = new FakeMetricSource(clock);
    src.script('2.0.0', () => ({ ...emptyWindow(), requests: 600, errors: 30 }));
    src.script('1.0.0', () => ({ ...emptyWindow(), requests: 11_400, errors: 114 }));
    const local = await new StatisticalGateEvaluator().evaluate({ name: 'e', kind: 'statistical', metric: 'error-rate' }, { ...ctx, now: clock.now(), sinceMs: clock.now() - 60_000 }, src);
    const pure = judgeErrorRate({}, { errors: 30, requests: 600 }, { errors: 114, requests: 11_400 }, '1.0.0');
    assert.equal(local.verdict, 'fail');
    assert.equal(pure.verdict, local.verdict);
    assert.equal(pure.value, local.value);
    assert.equal(pure.reason, local.reason);
  });
});

describe('statistical error-rate from Prometheus', () => {
  test('a clearly worse candidate fails; counts rounded, and the reason says so with the raw values', async () => {
    script(errorCounts(['30.4', '600.2'], ['114', '11400.7']));
    const r = await ev().evaluate(STAT, ctx);
    assert.equal(r.verdict, 'fail', r.reason);
    assert.ok(r.value !== null && r.value < 0.02);
    assert.equal(r.samples, 600);
    assert.equal(r.limit, 'p < 0.02 (confidence 0.98)');
    assert.match(r.reason, /candidate 5% \(30\/600\) vs stable 0\.9999% \(114\/11401\)/);
    assert.match(r.reason, /rounded to whole requests .*from raw candidate 30\.4\/600\.2, stable 114\/11400\.7/);
    assert.equal(r.query, `errors: ${resolved(ERRORS_Q, '2.0.0')} / total: ${resolved(TOTAL_Q, '2.0.0')}`);
    assert.equal(r.baseline?.query, `errors: ${resolved(ERRORS_Q, '1.0.0')} / total: ${resolved(TOTAL_Q, '1.0.0')}`);
    assert.ok(Math.abs(r.baseline!.value! - 114 / 11401) < 1e-9);
  });

  test('an equal candidate passes; integer counts add no rounding note', async () => {
    script(errorCounts(['6', '600'], ['114', '11400']));
    const r = await ev().evaluate(STAT, ctx);
    assert.equal(r.verdict, 'pass', r.reason);
    assert.doesNotMatch(r.reason, /rounded/);
  });

  test('no data: an empty result or NaN on any side is inconclusive, naming it', async () => {
    script({ ...errorCounts(['1', '600'], ['1', '600']), [resolved(ERRORS_Q, '1.0.0')]: vector() });
    let r = await ev().evaluate(STAT, ctx);
    assert.equal(r.verdict, 'inconclusive');
    assert.match(r.reason, /no data: errors of stable 1\.0\.0 \(empty result\)/);
    script(errorCounts(['NaN', '0'], ['1', '600']));
    r = await ev().evaluate(STAT, ctx);
    assert.equal(r.verdict, 'inconclusive');
    assert.match(r.reason, /errors of 2\.0\.0 \(raw "NaN"\)/);
  });

  test('too few requests, or no stable version → inconclusive', async () => {
    script(errorCounts(['1', '20'], ['1', '600']));
    assert.equal((await ev().evaluate(STAT, ctx)).verdict, 'inconclusive');
    const r = await ev().evaluate(STAT, { ...ctx, stable: null });
    assert.equal(r.verdict, 'inconclusive');
    assert.equal(r.reason, 'no stable version to compare with');
  });

  test('a refused query is an error naming the resolved query; several series are an error', async () => {
    script({ ...errorCounts(['1', '600'], ['1', '600']), [resolved(TOTAL_Q, '1.0.0')]: 'refuse' });
    let r = await ev().evaluate(STAT, ctx);
    assert.equal(r.verdict, 'error');
    assert.equal(r.errorCause, 'query');
    assert.equal(r.query, resolved(TOTAL_Q, '1.0.0'));
    assert.match(r.reason, /^stable 1\.0\.0: Prometheus refused the query: HTTP 400 bad_data/);
    script({ ...errorCounts(['1', '600'], ['1', '600']), [resolved(ERRORS_Q, '2.0.0')]: vector([{ code: '500' }, '1'], [{ code: '503' }, '2']) });
    r = await ev().evaluate(STAT, ctx);
    assert.equal(r.verdict, 'error');
    assert.equal(r.query, resolved(ERRORS_Q, '2.0.0'));
    assert.match(r.reason, /returned 2 series, a count needs exactly one number/);
  });

  test('more errors than requests is an error', async () => {
    script(errorCounts(['700', '600'], ['1', '600']));
    const r = await ev().evaluate(STAT, ctx);
    assert.equal(r.verdict, 'error');
    assert.match(r.reason, /errorsQuery counts 700 errors but totalQuery only 600/);
  });

  test('an unreachable Prometheus is an error, cause unavailable', async () => {
    const dead = new PrometheusClient({ url: 'http://127.0.0.1:9', headers: {}, auth: null, timeoutMs: 500, retries: 0, backoffMs: 1 });
    const r = await new PrometheusStatsGateEvaluator(dead).evaluate(STAT, ctx);
    assert.equal(r.verdict, 'error');
    assert.equal(r.errorCause, 'unavailable');
  });
});

describe('drift PSI from Prometheus histogram buckets', () => {
  const LES = ['0.2', '0.4', '0.6', '0.8', '1', '+Inf'];
  test('equal distributions: PSI ~0, pass; shifted: large, fail', async () => {
    script({ [resolved(BUCKETS_Q, '2.0.0')]: buckets(LES, [100, 300, 500, 700, 1000, 1000]), [resolved(BUCKETS_Q, '1.0.0')]: buckets(LES, [200, 600, 1000, 1400, 2000, 2000]) });
    let r = await ev().evaluate(DRIFT, ctx);
    assert.equal(r.verdict, 'pass', r.reason);
    assert.ok(r.value !== null && r.value < 1e-9);
    assert.equal(r.limit, '<= 0.2');
    assert.equal(r.samples, 1000);
    assert.equal(r.query, resolved(BUCKETS_Q, '2.0.0'));
    assert.equal(r.baseline?.query, resolved(BUCKETS_Q, '1.0.0'));
    assert.match(r.reason, /over the histogram's 6 buckets \(le 0\.2, 0\.4, 0\.6, 0\.8, 1, \+Inf\), ~1000 candidate vs ~2000 stable/);

    script({ [resolved(BUCKETS_Q, '2.0.0')]: buckets(LES, [0, 0, 100, 400, 1000, 1000]), [resolved(BUCKETS_Q, '1.0.0')]: buckets(LES, [200, 600, 1000, 1400, 2000, 2000]) });
    r = await ev().evaluate(DRIFT, ctx);
    assert.equal(r.verdict, 'fail', r.reason);
    const expected = psiFromCounts([0, 0, 100, 300, 600, 0], [200, 400, 400, 400, 600, 0]);
    assert.ok(Math.abs(r.value! - expected) < 1e-12);
    assert.match(r.reason, /major shift/);
  });

  test('empty result, too few observations, no stable → inconclusive', async () => {
    script({ [resolved(BUCKETS_Q, '2.0.0')]: buckets(LES, [1, 2, 3, 4, 5, 5]), [resolved(BUCKETS_Q, '1.0.0')]: buckets(LES, [200, 600, 1000, 1400, 2000, 2000]) });
    let r = await ev().evaluate(DRIFT, ctx);
    assert.equal(r.verdict, 'inconclusive');
    assert.match(r.reason, /100 observations needed on each side \(candidate 5, stable 2000\)/);
    script({ [resolved(BUCKETS_Q, '1.0.0')]: buckets(LES, [200, 600, 1000, 1400, 2000, 2000]) });
    r = await ev().evaluate(DRIFT, ctx);
    assert.equal(r.verdict, 'inconclusive');
    assert.match(r.reason, /empty result for 2\.0\.0/);
    assert.equal((await ev().evaluate(DRIFT, { ...ctx, stable: null })).verdict, 'inconclusive');
  });

  test('different bucket boundaries, or a series without le → error with the query', async () => {
    script({ [resolved(BUCKETS_Q, '2.0.0')]: buckets(['1', '+Inf'], [500, 1000]), [resolved(BUCKETS_Q, '1.0.0')]: buckets(LES, [200, 600, 1000, 1400, 2000, 2000]) });
    let r = await ev().evaluate(DRIFT, ctx);
    assert.equal(r.verdict, 'error');
    assert.match(r.reason, /different buckets/);
    script({ [resolved(BUCKETS_Q, '2.0.0')]: count('1000'), [resolved(BUCKETS_Q, '1.0.0')]: buckets(LES, [200, 600, 1000, 1400, 2000, 2000]) });
    r = await ev().evaluate(DRIFT, ctx);
    assert.equal(r.verdict, 'error');
    assert.equal(r.query, resolved(BUCKETS_Q, '2.0.0'));
    assert.match(r.reason, /no le label/);
  });
});

describe('validation, registry routing and the gates-file schema', () => {
  test('validate: the right queries for the kind, each using {{version}}', () => {
    const e = ev();
    assert.deepEqual(e.validate(STAT), []);
    assert.deepEqual(e.validate(DRIFT), []);
    assert.match(e.validate({ ...STAT, totalQuery: undefined }).join('\n'), /needs totalQuery/);
    assert.match(e.validate({ ...STAT, errorsQuery: 'sum(increase(x[5m]))' }).join('\n'), /errorsQuery must use \{\{version\}\}/);
    assert.match(e.validate({ ...STAT, bucketsQuery: BUCKETS_Q }).join('\n'), /bucketsQuery does not apply to kind statistical/);
    assert.match(e.validate({ ...STAT, metric: 'latency' }).join('\n'), /measures error-rate/);
    assert.match(e.validate({ ...DRIFT, metric: 'ks', max: 0.1 }).join('\n'), /measures psi/);
    assert.match(e.validate({ ...DRIFT, buckets: 5 }).join('\n'), /buckets does not apply with bucketsQuery/);
    assert.match(e.validate({ ...STAT, errorsQuery: 'x{v="{{nope}}"}' }).join('\n'), /nope/);
    assert.match(e.validate({ ...STAT, confidence: 2 }).join('\n'), /confidence must be between 0 and 1/);
  });

  test('the registry routes Prometheus-fed statistical/drift gates to their own evaluator', async () => {
    const reg = defaultGateRegistry();
    assert.equal(reg.kindOf(STAT), PROMETHEUS_STATS_KIND);
    assert.equal(reg.kindOf(DRIFT), PROMETHEUS_STATS_KIND);
    assert.equal(reg.kindOf({ name: 's', kind: 'statistical', metric: 'error-rate', source: 'prometheus' }), PROMETHEUS_STATS_KIND);
    assert.equal(reg.kindOf({ name: 's', kind: 'statistical', metric: 'error-rate' }), 'statistical');
    assert.deepEqual(reg.validate(STAT), [`gate "errors": ${PROMETHEUS_NOT_CONFIGURED}`]);
    const r = await reg.evaluate(STAT, ctx, new FakeMetricSource(new FakeClock()));
    assert.equal(r.verdict, 'error');
    assert.equal(r.reason, PROMETHEUS_NOT_CONFIGURED);
    reg.register(PROMETHEUS_STATS_KIND, ev());
    assert.deepEqual(reg.validate(STAT), []);
    script(errorCounts(['6', '600'], ['114', '11400']));
    assert.equal((await reg.evaluate(STAT, ctx, new FakeMetricSource(new FakeClock()))).verdict, 'pass');
  });

  test('gates file: the new fields parse; they need a Prometheus URL and kind statistical or drift', () => {
    const section = parseRolloutSection({ gates: [{ name: 'errors', kind: 'statistical', metric: 'error-rate', errorsQuery: ERRORS_Q, totalQuery: TOTAL_Q }] }, 'modelctl.yaml');
    const g = toGate(section.gates![0]!, 'modelctl.yaml', { queryGates: true });
    assert.ok(g.kind === 'statistical');
    assert.equal(g.errorsQuery, ERRORS_Q);
    assert.equal(g.kind, 'statistical');
    assert.throws(() => toGate(section.gates![0]!, 'modelctl.yaml'), /reads Prometheus, and no Prometheus URL is configured/);
    const drift = parseRolloutSection({ gates: [{ name: 'd', kind: 'drift', metric: 'psi', source: 'prometheus', bucketsQuery: BUCKETS_Q }] }, 'x').gates![0]!;
    const d = toGate(drift, 'x', { queryGates: true });
    assert.ok(d.kind === 'drift');
    assert.equal(d.source, 'prometheus');
    const local = parseRolloutSection({ gates: [{ name: 'l', metric: 'error-rate', max: 0.1, errorsQuery: ERRORS_Q }] }, 'x').gates![0]!;
    assert.throws(() => toGate(local, 'x', { queryGates: true }), /only kind statistical or drift takes/);
    assert.throws(() => parseRolloutSection({ gates: [{ name: 'x', kind: 'drift', metric: 'psi', source: 'elsewhere' }] }, 'x'), /source/);
  });
});
