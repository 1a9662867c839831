import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gatesCheckReport } from '../../src/cli/github/reports.js';
import type { CheckResult } from '../../src/gates/prometheus-check.js';

test('gates check in Actions: the verdict as output, a table with the resolved queries, an annotation per gate that did not pass', () => {
  const r: CheckResult = {
    verdict: 'fail',
    prometheus: 'http://prom:9090',
    at: '2026-11-22T12:00:00.000Z',
    interval: '1m',
    vars: { version: '1.2.0' },
    gates: [
      { name: 'error-rate', query: 'sum(rate(x{v="1.2.0"}[1m])) / sum(rate(y[1m]))', value: 0.05, raw: '0.05', limit: '<= 0.01', verdict: 'fail', samples: 1, reason: '0.05 > 0.01' },
      { name: 'throughput', query: 'sum(rate(y{a="b|c"}[1m]))', value: null, raw: null, limit: '>= 1', verdict: 'inconclusive', samples: 0, reason: 'no data' },
      { name: 'ok', query: 'up', value: 1, raw: '1', limit: '<= 1', verdict: 'pass', samples: 1, reason: 'within' },
    ],
  };
  const report = gatesCheckReport(r);
  assert.deepEqual(report.outputs, { outcome: 'fail' });
  assert.match(report.summary!, /### modelctl gates check: FAIL/);
  const rows = report.summary!.split('\n').filter((l) => l.startsWith('|'));
  assert.equal(rows.length, 2 + 3, 'header, separator and one row per gate');
  for (const row of rows.slice(2)) assert.equal(row.split(/(?<!\\)\|/).length, 8, `a "|" in a query cannot add a column: ${row}`);
  assert.deepEqual(
    report.annotations!.map((a) => [a.level, a.title]),
    [
      ['error', 'Gate error-rate failed'],
      ['warning', 'Gate throughput inconclusive'],
    ],
  );
  assert.match(report.annotations![0]!.message, /query: sum\(rate/);
});
