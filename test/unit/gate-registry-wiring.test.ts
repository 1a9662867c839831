import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GateSpec } from '../../src/core/gates.js';
import { createContext } from '../../src/services/context.js';
import { gateRegistryFor } from '../../src/services/rollouts.js';

const statistical: GateSpec = {
  name: 'errors',
  kind: 'statistical',
  metric: 'error-rate',
  errorsQuery: 'sum(increase(http_requests_total{version="{{version}}",code=~"5.."}[{{interval}}]))',
  totalQuery: 'sum(increase(http_requests_total{version="{{version}}"}[{{interval}}]))',
} as GateSpec;
const drift: GateSpec = {
  name: 'scores',
  kind: 'drift',
  metric: 'psi',
  bucketsQuery: 'sum by (le) (increase(model_score_bucket{version="{{version}}"}[{{interval}}]))',
  max: 0.2,
} as GateSpec;

test('rollouts can use statistical and drift gates fed by Prometheus once a Prometheus URL is configured', async (t) => {
  const saved = process.env.MODELCTL_PROMETHEUS_URL;
  delete process.env.MODELCTL_PROMETHEUS_URL; // the test decides where Prometheus is
  t.after(() => {
    if (saved !== undefined) process.env.MODELCTL_PROMETHEUS_URL = saved;
  });
  const withUrl = await gateRegistryFor(createContext(), { prometheusUrl: 'http://127.0.0.1:9' });
  assert.deepEqual(withUrl.validate(statistical), []);
  assert.deepEqual(withUrl.validate(drift), []);
  const without = await gateRegistryFor(createContext(), { prometheusUrl: undefined });
  assert.match(without.validate(statistical).join(), /Prometheus URL/);
});
