import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { ModelctlError } from '../../src/core/errors.js';
import type { RolloutEvent } from '../../src/core/events.js';
import { groupUrl, parsePushgateway, PUSH_JOB, pushgatewayUrlOf, RolloutMetrics, RolloutTelemetry } from '../../src/telemetry/index.js';
import { groupingSegment } from '../../src/telemetry/push.js';
import { emptyWindow } from '../fakes/metrics.js';
import { MODEL, plan, ref, World } from '../fakes/world.js';

/**
 * modelctl's own telemetry: engine events → Prometheus series (exact text), and the Pushgateway
 * push (URL, grouping, coalescing, failures that only warn).
 */

const L = 'model="sentiment",target="local"';

function feed(m: RolloutMetrics, events: Array<Partial<RolloutEvent> & { type: string; at: number }>): boolean[] {
  return events.map((e) => m.onEvent(e as RolloutEvent));
}

/** `name{labels} value` lines of one metric, HELP/TYPE left out. */
async function series(m: RolloutMetrics, name: string): Promise<string[]> {
  const text = await m.registry.getSingleMetricAsString(name);
  return text.split('\n').filter((l) => l && !l.startsWith('#'));
}

/** The value of one exact series line (labels in prom-client's order), or undefined. */
async function value(m: RolloutMetrics, name: string, labels: string): Promise<number | undefined> {
  const line = (await series(m, name.replace(/_(bucket|sum|count)$/, ''))).find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

describe('event → metrics mapping', () => {
  test('a fresh registry: phase idle, rollbacks at zero, nothing else', async () => {
    const m = new RolloutMetrics({ model: MODEL, target: 'local' });
    assert.deepEqual(await series(m, 'modelctl_rollout_phase'), [
      `modelctl_rollout_phase{${L},phase="idle"} 1`,
      `modelctl_rollout_phase{${L},phase="starting"} 0`,
      `modelctl_rollout_phase{${L},phase="shadow"} 0`,
      `modelctl_rollout_phase{${L},phase="canary"} 0`,
      `modelctl_rollout_phase{${L},phase="held"} 0`,
      `modelctl_rollout_phase{${L},phase="promoting"} 0`,
      `modelctl_rollout_phase{${L},phase="rolling-back"} 0`,
    ]);
    assert.deepEqual(await series(m, 'modelctl_rollbacks_total'), [
      `modelctl_rollbacks_total{${L},reason="gate"} 0`,
      `modelctl_rollbacks_total{${L},reason="abort"} 0`,
      `modelctl_rollbacks_total{${L},reason="not-ready"} 0`,
      `modelctl_rollbacks_total{${L},reason="manual"} 0`,
    ]);
    assert.deepEqual(await series(m, 'modelctl_rollout_gate_verdicts_total'), []);
    assert.equal(m.active, false);
  });

  test('a scripted canary that fails a gate: phases, weights, gate values, verdicts, rollback and timings', async () => {
    const m = new RolloutMetrics({ model: MODEL, target: 'local' });
    const t = 1_000_000;
    const changed = feed(m, [
      { type: 'rollout-started', at: t, version: '1.1.0', phase: 'starting' },
      { type: 'version-deployed', at: t + 1_000, version: '1.1.0' },
      { type: 'version-ready', at: t + 2_000, version: '1.1.0' },
      { type: 'traffic-applied', at: t + 2_100, weights: { '1.0.0': 90, '1.1.0': 10 }, mirror: null },
      { type: 'step-started', at: t + 2_200, phase: 'canary', index: 0, weight: 10, mirror: 0 },
      { type: 'gate-evaluated', at: t + 12_000, phase: 'canary', gate: 'error-rate', verdict: 'pass', value: 0.01, limit: '<= 0.05' },
      { type: 'gate-evaluated', at: t + 12_000, phase: 'canary', gate: 'latency-p99', verdict: 'inconclusive', value: null, limit: '<= 0.5' },
      { type: 'step-passed', at: t + 12_100, index: 0 },
      { type: 'traffic-applied', at: t + 12_200, weights: { '1.0.0': 50, '1.1.0': 50 }, mirror: null },
      { type: 'step-started', at: t + 12_300, phase: 'canary', index: 1, weight: 50, mirror: 0 },
      { type: 'gate-failed', at: t + 22_000, phase: 'canary', gate: 'error-rate', verdict: 'fail', value: 0.25, limit: '<= 0.05' },
      { type: 'step-failed', at: t + 22_050, index: 1, gate: 'error-rate', reason: 'error-rate 0.25 > 0.05' },
      { type: 'rollback-started', at: t + 22_100, reason: 'error-rate 0.25 > 0.05' },
      { type: 'traffic-applied', at: t + 22_300, weights: { '1.0.0': 100 }, mirror: null },
      { type: 'rolled-back', at: t + 22_500, to: '1.0.0', reason: 'error-rate 0.25 > 0.05' },
      { type: 'retired', at: t + 23_000, version: '1.1.0' },
    ]);
    // Phase changes (the moments a push is scheduled): starting, canary, rolling-back, idle.
    assert.deepEqual(
      changed.map((c, i) => (c ? i : -1)).filter((i) => i >= 0),
      [0, 4, 12, 14],
    );
    assert.equal(m.currentPhase, 'idle');
    assert.equal(await value(m, 'modelctl_rollout_phase', `${L},phase="idle"`), 1);
    assert.equal(await value(m, 'modelctl_rollout_phase', `${L},phase="rolling-back"`), 0);
    assert.deepEqual(await series(m, 'modelctl_rollout_candidate_weight_percent'), [`modelctl_rollout_candidate_weight_percent{${L}} 0`]);
    assert.deepEqual(await series(m, 'modelctl_rollout_gate_value'), [`modelctl_rollout_gate_value{${L},gate="error-rate"} 0.25`]);
    assert.deepEqual(await series(m, 'modelctl_rollout_gate_verdicts_total'), [
      `modelctl_rollout_gate_verdicts_total{${L},gate="error-rate",verdict="pass"} 1`,
      `modelctl_rollout_gate_verdicts_total{${L},gate="latency-p99",verdict="inconclusive"} 1`,
      `modelctl_rollout_gate_verdicts_total{${L},gate="error-rate",verdict="fail"} 1`,
    ]);
    assert.equal(await value(m, 'modelctl_rollbacks_total', `${L},reason="gate"`), 1);
    assert.equal(await value(m, 'modelctl_rollbacks_total', `${L},reason="abort"`), 0);
    // Duration: rollout-started → rolled-back = 22.5 s, in the 30 s bucket, outcome rolled-back.
    assert.equal(await value(m, 'modelctl_rollout_duration_seconds_count', `${L},outcome="rolled-back"`), 1);
    assert.equal(await value(m, 'modelctl_rollout_duration_seconds_sum', `${L},outcome="rolled-back"`), 22.5);
    assert.equal(await value(m, 'modelctl_rollout_duration_seconds_bucket', `le="15",${L},outcome="rolled-back"`), 0);
    assert.equal(await value(m, 'modelctl_rollout_duration_seconds_bucket', `le="30",${L},outcome="rolled-back"`), 1);
    // Failing gate (t+22.0) → rolled back (t+22.5).
    assert.equal(await value(m, 'modelctl_rollout_gate_to_rollback_seconds_count', L), 1);
    assert.equal(await value(m, 'modelctl_rollout_gate_to_rollback_seconds_sum', L), 0.5);
    assert.equal(await value(m, 'modelctl_rollout_gate_to_rollback_seconds_bucket', `le="0.25",${L}`), 0);
    assert.equal(await value(m, 'modelctl_rollout_gate_to_rollback_seconds_bucket', `le="0.5",${L}`), 1);
    // No per-run labels anywhere.
    const all = await m.registry.metrics();
    assert.doesNotMatch(all, /version=|run=|digest=/);
  });

  test('promotion: weight climbs to 100, promoting then idle; no rollback, no gate→rollback sample', async () => {
    const m = new RolloutMetrics({ model: MODEL, target: 'local' });
    feed(m, [
      { type: 'rollout-started', at: 0, version: '1.0.0', phase: 'starting' },
      { type: 'version-ready', at: 500, version: '1.0.0' },
      { type: 'gate-evaluated', at: 600, gate: 'health', verdict: 'pass', version: '1.0.0' },
      { type: 'traffic-applied', at: 700, weights: { '1.0.0': 100 }, mirror: null },
    ]);
    assert.equal(m.currentPhase, 'promoting');
    assert.deepEqual(await series(m, 'modelctl_rollout_candidate_weight_percent'), [`modelctl_rollout_candidate_weight_percent{${L}} 100`]);
    feed(m, [{ type: 'promoted', at: 2_000, version: '1.0.0', stableSet: ['1.0.0'] }]);
    assert.equal(m.currentPhase, 'idle');
    assert.equal(await value(m, 'modelctl_rollout_duration_seconds_count', `${L},outcome="promoted"`), 1);
    assert.equal(await value(m, 'modelctl_rollout_duration_seconds_sum', `${L},outcome="promoted"`), 2);
    assert.equal(await value(m, 'modelctl_rollout_gate_verdicts_total', `${L},gate="health",verdict="pass"`), 1);
    // The health gate measures no value: no gate_value series for it.
    assert.deepEqual(await series(m, 'modelctl_rollout_gate_value'), []);
    assert.equal(await value(m, 'modelctl_rollout_gate_to_rollback_seconds_count', L), 0);
    for (const reason of ['gate', 'abort', 'not-ready', 'manual']) assert.equal(await value(m, 'modelctl_rollbacks_total', `${L},reason="${reason}"`), 0);
  });

  test('rollback reasons: not-ready, abort, manual; held keeps the phase; interrupted is an outcome', async () => {
    const notReady = new RolloutMetrics({ model: MODEL, target: 'local' });
    feed(notReady, [
      { type: 'rollout-started', at: 0, version: '1.1.0', phase: 'starting' },
      { type: 'version-not-ready', at: 1_000, version: '1.1.0', reason: 'timeout' },
      { type: 'rollback-started', at: 1_001, reason: 'timeout' },
      { type: 'rolled-back', at: 1_500, to: '1.0.0' },
    ]);
    assert.equal(await value(notReady, 'modelctl_rollbacks_total', `${L},reason="not-ready"`), 1);
    assert.equal(await value(notReady, 'modelctl_rollbacks_total', `${L},reason="gate"`), 0);
    assert.equal(await value(notReady, 'modelctl_rollout_gate_to_rollback_seconds_count', L), 0, 'no gate failed');

    const aborted = new RolloutMetrics({ model: MODEL, target: 'local' });
    feed(aborted, [
      { type: 'rollout-started', at: 0, version: '1.1.0', phase: 'starting' },
      { type: 'step-started', at: 10, phase: 'shadow', index: -1, weight: 0, mirror: 10 },
      { type: 'abort-started', at: 5_000, reason: 'aborted by bob' },
      { type: 'aborted', at: 6_000, to: '1.0.0' },
    ]);
    assert.equal(await value(aborted, 'modelctl_rollbacks_total', `${L},reason="abort"`), 1);
    assert.equal(await value(aborted, 'modelctl_rollout_duration_seconds_count', `${L},outcome="aborted"`), 1);

    const manual = new RolloutMetrics({ model: MODEL, target: 'local' });
    const changed = feed(manual, [
      { type: 'rollback-started', at: 0, from: '1.1.0', to: '1.0.0' },
      { type: 'traffic-applied', at: 100, weights: { '1.0.0': 100 }, mirror: null },
      { type: 'rolled-back', at: 200, to: '1.0.0', healthy: true },
    ]);
    assert.deepEqual(changed, [true, false, true]);
    assert.equal(manual.active, true);
    assert.equal(await value(manual, 'modelctl_rollbacks_total', `${L},reason="manual"`), 1);
    assert.deepEqual(await series(manual, 'modelctl_rollout_duration_seconds'), [], 'a switch is not a rollout');

    const held = new RolloutMetrics({ model: MODEL, target: 'local' });
    feed(held, [
      { type: 'rollout-started', at: 0, version: '1.1.0', phase: 'starting' },
      { type: 'traffic-applied', at: 10, weights: { '1.0.0': 95, '1.1.0': 5 }, mirror: null },
      { type: 'step-started', at: 20, phase: 'canary', index: 0, weight: 5, mirror: 0 },
      { type: 'held', at: 60_020, reason: 'no data' },
    ]);
    assert.equal(held.currentPhase, 'held');
    assert.equal(await value(held, 'modelctl_rollout_candidate_weight_percent', L), 5, 'held leaves traffic where it is');
    assert.equal(await value(held, 'modelctl_rollout_duration_seconds_count', `${L},outcome="held"`), 1);

    const interrupted = new RolloutMetrics({ model: MODEL, target: 'local' });
    feed(interrupted, [
      { type: 'rollout-started', at: 0, version: '1.1.0', phase: 'starting' },
      { type: 'step-started', at: 20, phase: 'canary', index: 0, weight: 5, mirror: 0 },
    ]);
    interrupted.interrupted(4_020);
    interrupted.interrupted(9_999); // once
    assert.equal(interrupted.currentPhase, 'canary', 'the ledger still records the canary');
    assert.equal(await value(interrupted, 'modelctl_rollout_duration_seconds_count', `${L},outcome="interrupted"`), 1);
    assert.equal(await value(interrupted, 'modelctl_rollout_duration_seconds_sum', `${L},outcome="interrupted"`), 4.02);
  });

  test('fed by the real engine (virtual time): a gate failure at step 2 of a canary', async () => {
    const w = new World();
    await w.seed('1.0.0');
    w.metrics.behave('1.0.0', { errorRate: 0.004 });
    w.metrics.script('1.1.0', (q) => ({ errorRate: q.share >= 25 ? 0.2 : 0.01 }));
    const m = new RolloutMetrics({ model: MODEL, target: 'fake' });
    const r = await w.engine().deploy(ref('1.1.0'), plan());
    assert.equal(r.outcome, 'rolled-back');
    for (const e of r.events) m.onEvent(e);
    const F = 'model="sentiment",target="fake"';
    assert.equal(await value(m, 'modelctl_rollbacks_total', `${F},reason="gate"`), 1);
    assert.equal(await value(m, 'modelctl_rollout_gate_verdicts_total', `${F},gate="error-rate",verdict="fail"`), 1);
    assert.equal(await value(m, 'modelctl_rollout_gate_verdicts_total', `${F},gate="error-rate",verdict="pass"`), 3, 'three checks of step 1');
    assert.equal(await value(m, 'modelctl_rollout_gate_value', `${F},gate="error-rate"`), 0.2);
    assert.equal(await value(m, 'modelctl_rollout_duration_seconds_sum', `${F},outcome="rolled-back"`), 80, 'step 1 (60 s) + the first check of step 2');
    assert.equal(await value(m, 'modelctl_rollout_gate_to_rollback_seconds_count', F), 1);
    assert.equal(await value(m, 'modelctl_rollout_gate_to_rollback_seconds_sum', F), 0, 'instant in virtual time');
    assert.equal(await value(m, 'modelctl_rollout_phase', `${F},phase="idle"`), 1);
    assert.equal(await value(m, 'modelctl_rollout_candidate_weight_percent', F), 0);
  });

  test('fed by the real engine: a held rollout', async () => {
    const w = new World();
    await w.seed('1.0.0');
    w.metrics.script('1.1.0', () => emptyWindow());
    const m = new RolloutMetrics({ model: MODEL, target: 'fake' });
    const r = await w.engine().deploy(ref('1.1.0'), plan());
    assert.equal(r.outcome, 'held');
    for (const e of r.events) m.onEvent(e);
    assert.equal(m.currentPhase, 'held');
    assert.equal(await value(m, 'modelctl_rollout_candidate_weight_percent', 'model="sentiment",target="fake"'), 5);
  });
});

describe('Pushgateway push', () => {
  test('grouping URL: percent-encoding, base64 for a value with a slash', () => {
    const gw = parsePushgateway('http://pgw:9091/');
    assert.equal(groupUrl(gw, PUSH_JOB, { model: 'sentiment', target: 'local' }), 'http://pgw:9091/metrics/job/modelctl/model/sentiment/target/local');
    assert.equal(groupingSegment('model', 'team/a b'), `model@base64/${Buffer.from('team/a b').toString('base64url')}`);
    assert.equal(groupingSegment('model', 'a b'), 'model/a%20b');
    assert.equal(groupUrl(parsePushgateway('https://h/prefix'), 'j', {}), 'https://h/prefix/metrics/job/j');
  });

  test('URL validation (bad input, exit 2) and credentials moved to a header', () => {
    for (const bad of ['not a url', 'ftp://h:1', 'http://h:1/?x=1']) {
      assert.throws(() => parsePushgateway(bad), (e: unknown) => e instanceof ModelctlError && e.exitCode === 2, bad);
    }
    const gw = parsePushgateway('http://u:p%40ss@h:9091');
    assert.equal(gw.url, 'http://h:9091');
    assert.equal(gw.authorization, `Basic ${Buffer.from('u:p@ss').toString('base64')}`);
    assert.equal(gw.timeoutMs, 5_000);
  });

  test('precedence: flag > MODELCTL_PUSHGATEWAY_URL > modelctl.yaml telemetry.pushgateway', () => {
    const project = { config: { telemetry: { pushgateway: 'http://yaml:9091' } } };
    assert.equal(pushgatewayUrlOf('http://flag:1', project, { MODELCTL_PUSHGATEWAY_URL: 'http://env:1' }), 'http://flag:1');
    assert.equal(pushgatewayUrlOf(undefined, project, { MODELCTL_PUSHGATEWAY_URL: 'http://env:1' }), 'http://env:1');
    assert.equal(pushgatewayUrlOf(undefined, project, {}), 'http://yaml:9091');
    assert.equal(pushgatewayUrlOf(undefined, { config: {} }, {}), undefined);
    assert.throws(() => pushgatewayUrlOf(undefined, { file: 'modelctl.yaml', config: { telemetry: { pushgateway: 3 } } }, {}), /telemetry: pushgateway/);
  });

  test('pushes PUT the registry to the group at phase changes (coalesced) and at the end; nothing when nothing happened', async () => {
    const got: Array<{ method: string; url: string; body: string; type: string }> = [];
    let release: () => void = () => {};
    let gate = Promise.resolve();
    const server = createServer(async (req: IncomingMessage, res) => {
      let body = '';
      for await (const c of req) body += c;
      await gate;
      got.push({ method: req.method!, url: req.url!, body, type: req.headers['content-type'] ?? '' });
      res.writeHead(200).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const warnings: string[] = [];
      const idle = new RolloutTelemetry({ model: MODEL, target: 'local', pushgateway: parsePushgateway(url), warn: (m) => warnings.push(m) });
      idle.onEvent({ type: 'already-serving', at: 0, version: '1.0.0' });
      await idle.flush();
      assert.equal(got.length, 0, 'a no-op command does not replace the group');

      const tel = new RolloutTelemetry({ model: MODEL, target: 'local', pushgateway: parsePushgateway(url), warn: (m) => warnings.push(m) });
      gate = new Promise<void>((r) => (release = r));
      // Four phase changes while the first push hangs: one in flight, one pending (with the latest state).
      tel.onEvent({ type: 'rollout-started', at: 0, version: '1.1.0', phase: 'starting', digest: 'sha256:0', stable: '1.0.0', steps: [10, 100] });
      tel.onEvent({ type: 'step-started', at: 1, phase: 'canary', index: 0, weight: 10, mirror: 0 });
      tel.onEvent({ type: 'rollback-started', at: 2, reason: 'x' });
      tel.onEvent({ type: 'rolled-back', at: 3, to: '1.0.0' });
      release();
      await tel.flush();
      assert.equal(got.length, 3, 'in flight + one coalesced + the final push');
      assert.equal(tel.pushes, 3);
      for (const g of got) {
        assert.equal(g.method, 'PUT');
        assert.equal(g.url, '/metrics/job/modelctl/model/sentiment/target/local');
        assert.match(g.type, /text\/plain/);
      }
      assert.match(got[1]!.body, /modelctl_rollout_phase\{model="sentiment",target="local",phase="idle"\} 1/, 'the pending push sends the latest state');
      assert.match(got[2]!.body, /modelctl_rollbacks_total\{model="sentiment",target="local",reason="gate"\} 1/);
      assert.deepEqual(warnings, []);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  test('an unreachable or failing Pushgateway: one warning, never an error; bounded by the timeout', async () => {
    const server = createServer((req, res) => {
      req.resume();
      if (req.url!.includes('slow')) return; // never answers
      res.writeHead(400).end('pushed metrics are invalid or inconsistent');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const run = async (url: string, model = MODEL) => {
        const warnings: string[] = [];
        const tel = new RolloutTelemetry({ model, target: 'local', pushgateway: { ...parsePushgateway(url), timeoutMs: 300 }, warn: (m) => warnings.push(m) });
        tel.onEvent({ type: 'rollout-started', at: 0, version: '1.1.0', phase: 'starting', digest: 'sha256:0', stable: '1.0.0', steps: [10, 100] });
        tel.onEvent({ type: 'promoted', at: 1, version: '1.1.0', stableSet: ['1.1.0'] });
        const t0 = Date.now();
        await tel.flush();
        return { warnings, ms: Date.now() - t0 };
      };
      const closedPort = await new Promise<number>((resolve) => {
        const s = createServer();
        s.listen(0, '127.0.0.1', () => {
          const p = (s.address() as AddressInfo).port;
          s.close(() => resolve(p));
        });
      });
      const closed = await run(`http://127.0.0.1:${closedPort}`);
      assert.equal(closed.warnings.length, 1);
      assert.match(closed.warnings[0]!, new RegExp(`^Warning: could not push telemetry to the Pushgateway http://127\\.0\\.0\\.1:${closedPort}: .*ECONNREFUSED`));
      const rejected = await run(`http://127.0.0.1:${port}`);
      assert.match(rejected.warnings[0]!, /HTTP 400: pushed metrics are invalid/);
      const slow = await run(`http://127.0.0.1:${port}`, 'slow');
      assert.match(slow.warnings[0]!, /no answer within 300 ms/);
      assert.ok(slow.ms < 3_000, `bounded: ${slow.ms} ms`);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
