import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GateContext } from '../../src/gates/contracts.js';
import type { GateSpec } from '../../src/core/gates.js';
import { PrometheusClient } from '../../src/gates/prometheus.js';
import { PrometheusStatsGateEvaluator } from '../../src/gates/prometheus-stats.js';
import { PROMETHEUS_STATS_KIND, defaultGateRegistry } from '../../src/gates/registry.js';
import { startExporter, startPrometheus, type ExporterHandle, type PrometheusHandle } from '../infra/prometheus.js';
import { FakeMetricSource } from '../fakes/metrics.js';
import { FakeClock } from '../fakes/clock.js';
import { runCli, useScratch } from '../helpers/fixtures.js';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Prometheus-fed statistical and drift gates against a real Prometheus 2.42 scraping, every
 * second, an exporter whose counters grow linearly with time (so every scrape is exact):
 *
 *   1.0.0  stable   100 req/s, 1% 5xx; scores spread evenly over [0, 1]
 *   1.1.0  equal    100 req/s, 1% 5xx; the same score distribution
 *   1.2.0  bad      100 req/s, 10% 5xx; scores shifted up (most above 0.6)
 *
 * as `http_requests_total{version,code}` and a histogram `model_score_bucket{version,le}`.
 */

const RATES: Record<string, { ok: number; err: number }> = {
  '1.0.0': { ok: 99, err: 1 },
  '1.1.0': { ok: 99, err: 1 },
  '1.2.0': { ok: 90, err: 10 },
};
const LES = ['0.2', '0.4', '0.6', '0.8', '1', '+Inf'];
/** Share of observations per bucket (same order as LES). */
const SHARES: Record<string, number[]> = {
  '1.0.0': [0.2, 0.2, 0.2, 0.2, 0.2, 0],
  '1.1.0': [0.2, 0.2, 0.2, 0.2, 0.2, 0],
  '1.2.0': [0.02, 0.03, 0.05, 0.3, 0.6, 0],
};
const SCORES_PER_S = 50;

function exposition(t0: number): string {
  const t = (Date.now() - t0) / 1000;
  const lines = ['# TYPE http_requests_total counter'];
  for (const [v, r] of Object.entries(RATES)) {
    lines.push(`http_requests_total{version="${v}",code="200"} ${r.ok * t}`, `http_requests_total{version="${v}",code="500"} ${r.err * t}`);
  }
  lines.push('# TYPE model_score histogram');
  for (const [v, shares] of Object.entries(SHARES)) {
    let cum = 0;
    LES.forEach((le, i) => {
      cum += shares[i]!;
      lines.push(`model_score_bucket{version="${v}",le="${le}"} ${cum * SCORES_PER_S * t}`);
    });
    lines.push(`model_score_count{version="${v}"} ${SCORES_PER_S * t}`, `model_score_sum{version="${v}"} ${0.5 * SCORES_PER_S * t}`);
  }
  return `${lines.join('\n')}\n`;
}

const STAT: GateSpec = {
  name: 'errors-vs-stable',
  kind: 'statistical',
  metric: 'error-rate',
  errorsQuery: 'sum(increase(http_requests_total{version="{{version}}",code=~"5.."}[{{interval}}]))',
  totalQuery: 'sum(increase(http_requests_total{version="{{version}}"}[{{interval}}]))',
};
const DRIFT: GateSpec = { name: 'score-drift', kind: 'drift', metric: 'psi', bucketsQuery: 'sum by (le) (increase(model_score_bucket{version="{{version}}"}[{{interval}}]))' };

describe('statistical and drift gates from a real Prometheus', { timeout: 60_000 }, () => {
  let exporter: ExporterHandle;
  let prom: PrometheusHandle;
  let evaluator: PrometheusStatsGateEvaluator;
  let t0: number;
  const ctx = (candidate: string): GateContext => ({ model: 'm', candidate, stable: '1.0.0', sinceMs: t0, now: Date.now(), phase: 'canary' });

  before(async () => {
    t0 = Date.now();
    exporter = await startExporter(() => exposition(t0));
    prom = await startPrometheus({ targets: [exporter.target] });
    // increase() needs two samples in its range; wait for several, so each side has hundreds of requests.
    await prom.waitFor('count_over_time(http_requests_total{version="1.0.0",code="200"}[1m])', (r) => Number(r[0]?.value[1] ?? 0) >= 5, 30_000);
    evaluator = new PrometheusStatsGateEvaluator(new PrometheusClient({ url: prom.url, headers: {}, auth: null, timeoutMs: 5_000, retries: 1, backoffMs: 100 }), { minIntervalMs: 5_000 });
  });
  after(async () => {
    await prom?.stop();
    await exporter?.stop();
  });

  test('a clearly worse candidate fails the statistical error-rate gate', async () => {
    assert.deepEqual(evaluator.validate(STAT), []);
    const r = await evaluator.evaluate(STAT, ctx('1.2.0'));
    assert.equal(r.verdict, 'fail', r.reason);
    assert.ok(r.value !== null && r.value < 0.02, `p ${r.value}`);
    assert.ok(r.samples >= 300, `samples ${r.samples}`);
    assert.match(r.query, /version="1\.2\.0"/);
    assert.match(r.baseline!.query, /version="1\.0\.0"/);
    assert.ok(Math.abs(r.baseline!.value! - 0.01) < 0.002, `stable rate ${r.baseline!.value}`);
  });

  test('an equal candidate never fails (pass, or inconclusive)', async () => {
    const r = await evaluator.evaluate(STAT, ctx('1.1.0'));
    assert.ok(r.verdict === 'pass' || r.verdict === 'inconclusive', `${r.verdict}: ${r.reason}`);
    assert.equal(r.verdict, 'pass', r.reason);
  });

  test('drift PSI: ~0 for the same distribution, large for a shifted one', async () => {
    assert.deepEqual(evaluator.validate(DRIFT), []);
    const same = await evaluator.evaluate(DRIFT, ctx('1.1.0'));
    assert.equal(same.verdict, 'pass', same.reason);
    assert.ok(same.value !== null && same.value < 0.01, `PSI ${same.value}`);
    assert.match(same.reason, /6 buckets \(le 0\.2, 0\.4, 0\.6, 0\.8, 1, \+Inf\)/);
    const shifted = await evaluator.evaluate(DRIFT, ctx('1.2.0'));
    assert.equal(shifted.verdict, 'fail', shifted.reason);
    assert.ok(shifted.value !== null && shifted.value > 0.5, `PSI ${shifted.value}`);
  });

  test('gates check evaluates them too: the bad version fails both (exit 3), the equal one never fails', async () => {
    const scratch = useScratch();
    try {
      const file = path.join(await scratch.fresh('stats-check'), 'gates.yaml');
      await writeFile(
        file,
        `gates:\n  - name: errors-vs-stable\n    kind: statistical\n    metric: error-rate\n    errorsQuery: '${STAT.errorsQuery}'\n    totalQuery: '${STAT.totalQuery}'\n` +
          `  - name: score-drift\n    kind: drift\n    metric: psi\n    bucketsQuery: '${DRIFT.bucketsQuery}'\n    max: 0.2\n`,
      );
      const check = (version: string) =>
        runCli(['gates', 'check', '--file', file, '--var', `version=${version}`, '--var', 'stable=1.0.0', '--window', '30s', '--prometheus-url', prom.url, '--json'], {
          env: { MODELCTL_PROMETHEUS_URL: '', MODELCTL_PROMETHEUS_TOKEN: '' },
        });
      const bad = await check('1.2.0');
      assert.equal(bad.code, 3, bad.stdout + bad.stderr);
      assert.deepEqual(bad.json().gates.map((g: { name: string; verdict: string }) => [g.name, g.verdict]), [
        ['errors-vs-stable', 'fail'],
        ['score-drift', 'fail'],
      ]);
      const equal = await check('1.1.0');
      assert.notEqual(equal.code, 3, equal.stdout);
      const noStable = await runCli(['gates', 'check', '--file', file, '--var', 'version=1.2.0', '--prometheus-url', prom.url, '--json'], { env: { MODELCTL_PROMETHEUS_URL: '' } });
      assert.equal(noStable.code, 2);
      assert.match(noStable.json().error.message, /compared with stable: give --var stable=/);
    } finally {
      await scratch.cleanup();
    }
  });

  test('no data and a refused query, through the registry', async () => {
    const reg = defaultGateRegistry().register(PROMETHEUS_STATS_KIND, evaluator);
    const src = new FakeMetricSource(new FakeClock());
    const missing = await reg.evaluate(STAT, ctx('9.9.9'), src);
    assert.equal(missing.verdict, 'inconclusive', missing.reason);
    assert.match(missing.reason, /no data: errors of 9\.9\.9 \(empty result\), requests of 9\.9\.9 \(empty result\)/);
    const broken = await reg.evaluate({ ...DRIFT, bucketsQuery: 'sum by (le) (increase(model_score_bucket{version="{{version}}"}[{{interval}}])' }, ctx('1.1.0'), src);
    assert.equal(broken.verdict, 'error');
    assert.match(broken.query, /version="1\.1\.0"/);
    assert.match(broken.reason, /Prometheus refused the query: HTTP 400 bad_data/);
  });
});
