import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ExitCode, type ModelctlError } from '../../src/core/errors.js';
import type { GateSpec } from '../../src/core/gates.js';
import { ladderFrom, parseRolloutSection, parseSteps, resolvePlan } from '../../src/rollout/plan.js';
import { parseDuration, parsePercent } from '../../src/core/units.js';

const usage = (e: ModelctlError) => e.exitCode === ExitCode.usage;
const defaultGates: GateSpec[] = [{ name: 'errors', metric: 'error-rate', max: 0.05 }];

test('durations, percentages and steps', () => {
  assert.equal(parseDuration('30s', 'x'), 30_000);
  assert.equal(parseDuration('2m', 'x'), 120_000);
  assert.equal(parseDuration('1.5s', 'x'), 1500);
  assert.equal(parseDuration('250ms', 'x'), 250);
  assert.equal(parseDuration(5, 'x'), 5000);
  assert.throws(() => parseDuration('30', 'x'), usage);
  // One parser for every flag and setting: compounds too (--interval 1m30s was refused while local load took it).
  assert.equal(parseDuration('1m30s', '--interval'), 90_000);
  assert.equal(parseDuration('1h15m', 'x'), 4_500_000);
  assert.throws(() => parseDuration('1m30', 'x'), usage);
  assert.throws(() => parseDuration('m30s', 'x'), usage);
  assert.throws(() => parseDuration('soon', '--interval'), /--interval: "soon" is not a duration/);
  assert.equal(parsePercent('5%', 'x'), 5);
  assert.equal(parsePercent(100, 'x'), 100);
  assert.throws(() => parsePercent('0%', '--canary'), usage);
  assert.throws(() => parsePercent('101%', '--canary'), usage);
  assert.throws(() => parsePercent('2.5%', '--canary'), usage);
  assert.deepEqual(parseSteps('5,20,50,100', 'x'), [5, 20, 50, 100]);
  assert.throws(() => parseSteps('5,50,20,100', '--steps'), /must go up/);
  assert.throws(() => parseSteps('5,50', '--steps'), /last step must be 100/);
  assert.deepEqual(ladderFrom(5), [5, 25, 50, 100]);
  assert.deepEqual(ladderFrom(10), [10, 25, 50, 100]);
  assert.deepEqual(ladderFrom(50), [50, 100]);
  assert.deepEqual(ladderFrom(100), [100]);
});

test('precedence: defaults < modelctl.yaml < bundle < flags', () => {
  const base = resolvePlan({ project: {}, bundle: {}, flags: {}, defaultGates });
  assert.deepEqual(base.steps, [5, 25, 50, 100]);
  assert.equal(base.intervalMs, 30_000);
  assert.equal(base.checkEveryMs, 6000);
  assert.equal(base.shadowPercent, 0);
  assert.deepEqual(base.gates, defaultGates);

  const project = parseRolloutSection({ interval: '1m', steps: [10, 100], gates: [{ name: 'p', metric: 'latency-p99', max: 300 }] }, 'modelctl.yaml');
  const bundle = parseRolloutSection({ interval: '20s', gates: [{ name: 'b', metric: 'error-rate', max: 0.01, initialDelay: '5s' }] }, 'bundle.yaml');
  const layered = resolvePlan({ project, bundle, flags: {}, defaultGates });
  assert.equal(layered.intervalMs, 20_000, 'bundle beats project');
  assert.deepEqual(layered.steps, [10, 100], 'project beats default');
  assert.deepEqual(layered.gates, [{ name: 'b', metric: 'error-rate', max: 0.01, initialDelayMs: 5000 }]);

  const flagged = resolvePlan({ project, bundle, flags: { canary: '5%', interval: '2s', shadow: '10%', shadowDuration: '3s' }, defaultGates });
  assert.deepEqual(flagged.steps, [5, 25, 50, 100]);
  assert.equal(flagged.intervalMs, 2000);
  assert.equal(flagged.checkEveryMs, 1000);
  assert.equal(flagged.shadowPercent, 10);
  assert.equal(flagged.shadowDurationMs, 3000);
  // --steps and --canary both set the steps: refused rather than one silently dropped.
  assert.throws(() => resolvePlan({ project, bundle, flags: { steps: '10,100', canary: '5%' }, defaultGates }), /--canary 5% and --steps 10,100 .*both set the canary steps/);
});

test('bad rollout sections and flags are usage errors that say where', () => {
  assert.throws(() => parseRolloutSection({ gates: [{ name: 'x' }] }, 'bundle.yaml'), /bundle\.yaml: rollout\.gates\.0: a gate needs a metric/);
  assert.throws(() => parseRolloutSection({ colour: 1 }, 'modelctl.yaml'), /modelctl\.yaml: rollout/);
  assert.throws(() => resolvePlan({ project: {}, bundle: {}, flags: { shadowOnly: true }, defaultGates }), /--shadow-only needs a shadow share/);
  const dup = parseRolloutSection({ gates: [{ name: 'a', metric: 'error-rate' }, { name: 'a', metric: 'latency-p99' }] }, 'bundle.yaml');
  assert.throws(() => resolvePlan({ project: {}, bundle: dup, flags: {}, defaultGates }), /two gates are named "a"/);
  const query = parseRolloutSection({ gates: [{ name: 'q', query: 'up' }] }, 'modelctl.yaml');
  assert.throws(() => resolvePlan({ project: query, bundle: {}, flags: {}, defaultGates }), /needs the Prometheus metric source|query gates need/);
});
