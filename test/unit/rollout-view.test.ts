import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { describeEvent } from '../../src/cli/rollout-view.js';
import type { RolloutEvent } from '../../src/core/events.js';
import { REPO_ROOT } from '../helpers/fixtures.js';

/** Every event type the engine emits, with the fields it carries. */
const SAMPLES: Record<string, Record<string, unknown>> = {
  'rollout-started': { version: '1.1.0', stable: '1.0.0' },
  'rollout-resumed': { version: '1.1.0', stable: '1.0.0' },
  'version-deployed': { version: '1.1.0' },
  'version-ready': { version: '1.1.0' },
  'version-not-ready': { version: '1.1.0', reason: 'timed out' },
  'start-failed': { version: '1.1.0', reason: 'no serve section' },
  'step-started': { phase: 'canary', index: 0, weight: 5, mirror: 0 },
  'traffic-applied': { weights: { '1.0.0': 95, '1.1.0': 5 }, mirror: null },
  'gate-evaluated': { gate: 'error-rate', verdict: 'pass', value: 0.01, limit: '<= 0.05', samples: 40 },
  'gate-failed': { gate: 'error-rate', verdict: 'fail', value: 0.5, limit: '<= 0.05', samples: 40, reason: 'too many' },
  'step-passed': { index: 0 },
  'shadow-passed': { index: -1 },
  'step-failed': { index: 1, reason: 'error-rate' },
  promoted: { version: '1.1.0', stableSet: ['1.1.0', '1.0.0'] },
  'rollback-started': { reason: 'gate failed' },
  'rolled-back': { to: '1.0.0', healthy: true },
  'abort-started': { reason: 'interrupted by SIGINT: aborted to stable' },
  aborted: { to: '1.0.0', reason: 'aborted by bob' },
  'shadow-finished': { to: '1.0.0', reason: 'shadow-only' },
  held: { reason: 'not enough data' },
  'already-serving': { version: '1.0.0' },
  cascade: { from: '1.0.0', to: '0.9.0' },
  'stable-unhealthy': { version: '1.0.0' },
  'no-healthy-stable': { tried: ['1.0.0', '0.9.0'], servingNow: '1.0.0' },
  retired: { version: '0.9.0' },
  'retire-failed': { version: '0.9.0', reason: 'busy' },
  'lock-taken-over': { previous: { holder: 'bob@ci', pid: 1, host: 'h' } },
  'lock-release-failed': { reason: 'conflict' },
  'promote-requested': { by: 'bob', version: '1.1.0' },
  'abort-requested': { by: 'bob', version: '1.1.0' },
};

test('every engine event reads as words in the human log: no raw event names or key=value pairs', async () => {
  // The engine's source names what it emits: a new event without words here fails this test.
  const engine = await readFile(path.join(REPO_ROOT, 'src/rollout/engine.ts'), 'utf8');
  const emitted = [...engine.matchAll(/emit\(run, '([a-z-]+)'/g)].map((m) => m[1]!);
  assert.ok(emitted.length >= 20, `found the engine's emits (${emitted.length})`);
  for (const type of emitted) assert.ok(type in SAMPLES, `no sample for event ${type}`);
  for (const [type, fields] of Object.entries(SAMPLES)) {
    // Samples are loose parts per type name (the engine's source is the list of types): typed by the type they name.
    const line = describeEvent({ at: 0, type, ...fields } as RolloutEvent);
    assert.doesNotMatch(line, /\b[a-zA-Z]+=/, `${type}: ${line}`);
    assert.ok(!line.startsWith(type) || ['promoted', 'aborted', 'held', 'retired', 'rolled-back'].some((w) => line.startsWith(w)), `${type} is shown by its raw name: ${line}`);
  }
  assert.equal(describeEvent({ at: 0, type: 'shadow-passed', index: -1 }), 'shadow phase passed');
  assert.equal(describeEvent({ at: 0, type: 'retired', version: '0.9.0' }), '0.9.0 stopped (left the stable set)');
});

test('candidate-ready reads as words, not 1 / 0: ready, NOT ready with the reason, unknown when the target could not tell', () => {
  const ev = (verdict: string, value: number | null, reason: string) => ({ type: verdict === 'fail' ? 'gate-failed' : 'gate-evaluated', at: 0, gate: 'candidate-ready', verdict, value, limit: 'ready', samples: 1, reason }) as never;
  assert.equal(describeEvent(ev('pass', 1, 'sentiment@1.1.0 is ready')), 'gate candidate-ready: ready → pass');
  assert.equal(describeEvent(ev('fail', 0, 'sentiment@1.1.0 is not ready (no ready pod or process) while it takes 50% of traffic')), 'gate candidate-ready: NOT ready → fail: sentiment@1.1.0 is not ready (no ready pod or process) while it takes 50% of traffic');
  assert.match(describeEvent(ev('error', null, 'could not tell whether sentiment@1.1.0 is ready')), /^gate candidate-ready: unknown → error: could not tell/);
});
