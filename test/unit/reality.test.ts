import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { StatusView } from '../../src/rollout/results.js';
import { differences } from '../../src/rollout/reality.js';

const status = (over: Partial<StatusView> = {}): StatusView => ({
  model: 'm',
  target: 'kubernetes',
  serving: '2.0.0',
  stableSet: ['2.0.0', '1.0.0'],
  traffic: { '2.0.0': 95, '3.0.0': 5 },
  mirror: null,
  rollout: { version: '3.0.0', digest: 'd', phase: 'canary', stepIndex: 0, steps: [5, 100], weight: 5, holder: 'ci', startedAt: 0, requested: null, interrupted: false },
  lock: null,
  ...over,
});

test('differences: agreement is silent; rounding within a point is not a difference', () => {
  const observed = { versions: { '2.0.0': { ready: 2, desired: 2 }, '1.0.0': { ready: 1, desired: 1 }, '3.0.0': { ready: 2, desired: 2 } }, traffic: { weights: { '2.0.0': 94.5, '3.0.0': 5.5 }, mirror: null } };
  assert.deepEqual(differences(status(), observed), []);
});

test('differences: traffic, mirror, missing router, versions not running or not ready', () => {
  const d = differences(status({ mirror: { version: '3.0.0', percent: 10 } }), {
    versions: { '2.0.0': { ready: 2, desired: 2 }, '3.0.0': { ready: 0, desired: 2 } },
    traffic: { weights: { '2.0.0': 100 }, mirror: null },
  });
  assert.deepEqual(d, [
    'traffic: the ledger says 2.0.0 95%, 3.0.0 5%, the target routes 2.0.0 100%',
    'mirror: the ledger says 10% → 3.0.0, the target mirrors nothing',
    '1.0.0 (warm) is not running',
    '3.0.0 (candidate) has 0/2 replicas ready',
  ]);
  assert.deepEqual(differences(status({ rollout: null, traffic: { '2.0.0': 100 } }), { versions: { '2.0.0': { ready: 1, desired: 1 }, '1.0.0': { ready: 1, desired: 1 } }, traffic: null }), [
    'the ledger routes 2.0.0 100%, but the target routes nothing for this model',
  ]);
});
