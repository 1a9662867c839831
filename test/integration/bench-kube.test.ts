// The Kubernetes measures of `npm run bench` (bench/kube.ts), run small: the bench is not part of
// the test run otherwise, and it broke unseen twice (a plan the engine had come to refuse; gate
// checks and pod-proxy reads counted as 0 after the events and the fake's request log changed).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { benchKubernetes } from '../../bench/kube.js';

test('bench kube (a) and (b) run to the end against the fake API server and count gate checks and meter reads', async () => {
  const r = await benchKubernetes({ models: 2, intervalMs: 400, checkEveryMs: 100, parts: ['a', 'b'] });
  assert.equal(r.rows.length, 2, JSON.stringify(r.rows));
  const [perStep, concurrent] = r.rows;
  // Which targets pass depends on the machine's load; that the measures were taken does not.
  assert.match(String(perStep!.modelctl), /pod-proxy meter reads [1-9]/);
  assert.match(String(concurrent!.modelctl), /2\/2 promoted/);
  assert.ok(r.notes.some((n) => /gate checks per step [1-9]/.test(n)), r.notes.join('\n'));
});
