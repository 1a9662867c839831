// The local runtime with real processes: a daemon per test file (its own MODELCTL_HOME), the
// example sentiment bundle served from a file:// store, requests through the real router.
// Pure logic (round-robin, mirror sampling, split validation, windows) is checked first, without I/O.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { ConflictError, UsageError } from '../../src/core/errors.js';
import type { TrafficSplit, VersionRef } from '../../src/core/model.js';
import { openLocalBundle } from '../../src/store/transfer.js';
import { pushDirectory } from '../helpers/push.js';
import { FsStore } from '../../src/store/fs-store.js';
import { MirrorSampler, SmoothWeightedRoundRobin, splitProblems } from '../../src/targets/local/balance.js';
import { connectRuntime, ensureRuntime, stopRuntime, type RuntimeClient } from '../../src/targets/local/client.js';
import { runLoad } from '../../src/targets/local/load.js';
import { parseDuration as parseDurationOf } from '../../src/core/units.js';
import { LocalMetricSource } from '../../src/targets/local/metric-source.js';
import { localPaths } from '../../src/targets/local/paths.js';
import { LocalTarget } from '../../src/targets/local/target.js';
import { quantile, readAnswer, SampleRing, windowOf } from '../../src/targets/local/window.js';
import { REPO_ROOT, runCli, useScratch } from '../helpers/fixtures.js';

const run = promisify(execFile);

describe('local runtime: pure logic', () => {
  test('smooth weighted round-robin honours weights exactly per cycle and interleaves', () => {
    const rr = new SmoothWeightedRoundRobin({ b: 20, a: 80, c: 0 });
    const picks = Array.from({ length: 1000 }, () => rr.next());
    assert.equal(picks.filter((p) => p === 'a').length, 800);
    assert.equal(picks.filter((p) => p === 'b').length, 200);
    assert.ok(!picks.includes('c'));
    // Interleaved: never more than 4 a's in a row for 80/20 (a burst would be 80).
    assert.ok(!picks.join('').includes('aaaaa'), picks.slice(0, 20).join(''));
    // Deterministic whatever the key order.
    const again = new SmoothWeightedRoundRobin({ a: 80, b: 20 });
    assert.deepEqual(Array.from({ length: 50 }, () => again.next()), picks.slice(0, 50));
    assert.equal(new SmoothWeightedRoundRobin({}).next(), undefined);
    const canary = new SmoothWeightedRoundRobin({ stable: 95, canary: 5 });
    assert.ok(Array.from({ length: 20 }, () => canary.next()).includes('canary'), 'a 5% canary is served within the first 20 requests');
  });

  test('mirror sampler copies exactly the percent, evenly', () => {
    for (const percent of [0, 1, 10, 33, 50, 100, 2.5]) {
      const s = new MirrorSampler(percent);
      const n = Array.from({ length: 1000 }, () => s.take()).filter(Boolean).length;
      assert.equal(n, Math.floor(percent * 10), `${percent}%`);
    }
  });

  test('split validation explains every problem', () => {
    assert.deepEqual(splitProblems({ weights: { '1.0.0': 95, '1.1.0': 5 }, mirror: null }), []);
    assert.deepEqual(splitProblems({ weights: { '1.0.0': 100 }, mirror: { version: '1.1.0', percent: 10 } }), []);
    assert.match(splitProblems({ weights: { '1.0.0': 90 }, mirror: null }).join(), /sum to 100, they sum to 90/);
    assert.match(splitProblems({ weights: { '1.0.0': 99.5, x: 0.5 }, mirror: null }).join(), /integer/);
    assert.match(splitProblems({ weights: {}, mirror: { version: '1.1.0', percent: 5 } }).join(), /mirror needs live traffic/);
    assert.match(splitProblems({ weights: { '1.0.0': 100 }, mirror: { version: '1.1.0', percent: 120 } }).join(), /mirror\.percent/);
    assert.match(splitProblems([]).join(), /expected an object/);
  });

  test('answers a bundle declares fields of: unreadable when not JSON or without the field; unknown when too large to copy', () => {
    const fields = { scoreField: 'score', agreementField: 'label' };
    const b = (t: string) => [Buffer.from(t)];
    assert.deepEqual(readAnswer(b('{"score":0.7,"label":"positive"}'), fields), { answer: { score: 0.7, label: 'positive' }, score: 0.7, unreadable: false });
    assert.equal(readAnswer(b('OK'), fields).unreadable, true, 'not JSON');
    assert.equal(readAnswer(b(''), fields).unreadable, true, 'empty');
    assert.equal(readAnswer(b('{"label":"x"}'), fields).unreadable, true, 'no score');
    assert.equal(readAnswer(b('{"score":"high","label":"x"}'), fields).unreadable, true, 'score not a number');
    assert.equal(readAnswer(b('{"score":1}'), fields).unreadable, true, 'no label');
    assert.equal(readAnswer(null, fields).unreadable, false, 'too large to copy: unknown');
    assert.equal(readAnswer(b('OK'), {}).unreadable, false, 'nothing declared: nothing to read');
  });

  test('ring windows: exact counts in [since, now], errors, scores, agreement, truncation', () => {
    const ring = new SampleRing(5);
    const s = (at: number, status: number, extra: Partial<{ score: number; agreed: boolean }> = {}) =>
      ring.push({ at, status, latencyMs: at / 10, score: extra.score ?? null, agreed: extra.agreed ?? null, role: extra.agreed === undefined ? 'live' : 'shadow' });
    s(100, 200, { score: 0.1 });
    s(200, 500);
    s(300, 200, { score: 0.3, agreed: true });
    s(400, 200, { agreed: false });
    let w = windowOf(ring, 200, 350);
    assert.deepEqual(w, { requests: 2, errors: 1, latenciesMs: [20, 30], scores: [0.3], shadowCompared: 1, shadowAgreed: 1, unreadable: 0, truncated: false });
    s(500, 200);
    s(600, 200); // pushes out the sample at 100
    w = windowOf(ring, 0, 1000);
    assert.equal(w.requests, 5);
    assert.equal(w.truncated, true, 'the window reaches back past what the ring kept');
    assert.equal(windowOf(ring, 300, 1000).truncated, false);
    assert.deepEqual(windowOf(undefined, 0, 1).requests, 0);
    ring.push({ at: 700, status: 200, latencyMs: 1, score: null, agreed: null, role: 'live', unreadable: true });
    assert.equal(windowOf(ring, 700, 1000).unreadable, 1, 'an unreadable answer is counted');
    assert.equal(quantile([1, 2, 3, 4], 0.5), 2);
    assert.equal(quantile([1, 2, 3, 4], 0.99), 4);
    // The one duration parser of every flag (--duration here).
    const parseDuration = (t: string) => parseDurationOf(t, '--duration');
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.throws(() => parseDuration('2'), /"2" has no unit/);
    assert.throws(() => parseDuration('soon'), UsageError);
  });
});

// ---------------------------------------------------------------------------------------------

interface Hit {
  status: number;
  version: string | null;
  body: string;
  ms: number;
  text: string;
}

const TEXTS = ['I loved it, wonderful.', 'The worst service ever.', 'The movie was not good.', 'Great value for money.', 'A boring waste of time.'];

/** `n` POST /<model>/predict through the router, `concurrency` at a time, each worker pausing `pauseMs` between requests. */
async function hit(url: string, model: string, n: number, concurrency = 8, pauseMs = 0): Promise<Hit[]> {
  const out: Hit[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const text = TEXTS[i % TEXTS.length]!;
      const t0 = performance.now();
      try {
        const res = await fetch(`${url}/${model}/predict`, { method: 'POST', body: JSON.stringify({ text }), headers: { 'content-type': 'application/json' } });
        const body = await res.text();
        out.push({ status: res.status, version: res.headers.get('x-model-version'), body, ms: performance.now() - t0, text });
      } catch (err) {
        out.push({ status: 0, version: null, body: String(err), ms: performance.now() - t0, text });
      }
      if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return out;
}

function countBy<T>(list: T[], key: (t: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of list) out[key(x)] = (out[key(x)] ?? 0) + 1;
  return out;
}

/** Running and not a zombie. */
async function isRunning(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return false;
  return !/^\d+ \(.*\) Z/.test(stat);
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function daemonsOf(home: string): Promise<string[]> {
  const { stdout } = await run('pgrep', ['-af', 'daemon.js']).catch(() => ({ stdout: '' }));
  return stdout.split('\n').filter((l) => l.includes(`--home ${home}`));
}

describe('local runtime: daemon, router and target with real processes', { timeout: 300_000 }, () => {
  const scratch = useScratch();
  let home: string;
  let env: NodeJS.ProcessEnv;
  let store: FsStore;
  let target: LocalTarget;
  let client: RuntimeClient;
  const refs: Record<string, VersionRef> = {};
  const childPids = new Set<number>();

  /** Push bundles/example as `version`, with config/model.json faults. */
  async function pushExample(version: string, faults: Record<string, number> = {}): Promise<void> {
    const dir = path.join(await scratch.fresh('example'), 'sentiment');
    await cp(path.join(REPO_ROOT, 'bundles', 'example'), dir, { recursive: true });
    const configFile = path.join(dir, 'config', 'model.json');
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { faults: Record<string, number> };
    config.faults = { ...config.faults, ...faults };
    await writeFile(configFile, JSON.stringify(config, null, 2));
    refs[version] = { model: 'sentiment', version, digest: await pushDirectory(store, dir, { version }) };
  }

  async function state() {
    return client.state();
  }

  async function remember(): Promise<void> {
    for (const v of (await state()).versions) if (v.pid) childPids.add(v.pid);
  }

  before(async () => {
    home = await scratch.fresh('local-home');
    env = { MODELCTL_HOME: home, MODELCTL_LOCAL_PORT: undefined };
    store = new FsStore(path.join(await scratch.fresh('local-store'), 'store'));
    await pushExample('1.0.0');
    await pushExample('1.1.0', { latencyMs: 300, errorRate: 0.5, scoreShift: -0.6 }); // slow, failing, disagreeing
    await pushExample('1.2.0');
    await pushExample('1.3.0', { exitOnStart: 3 }); // crashes at start
    target = new LocalTarget({ home, store, port: 0, env: process.env });
  });

  after(async () => {
    try {
      await stopRuntime(home);
      assert.deepEqual(await daemonsOf(home), [], 'no daemon of this home is left');
      for (const pid of childPids) assert.equal(await isRunning(pid), false, `version process ${pid} is left`);
    } finally {
      await scratch.cleanup();
    }
  });

  test('local up starts the daemon once (idempotent); status --json has the documented shape', async () => {
    const up = await runCli(['local', 'up', '--port', '0', '--json'], { env });
    assert.equal(up.code, 0, up.stderr);
    const first = up.json();
    assert.equal(first.running, true);
    assert.equal(first.started, true);
    assert.match(first.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const again = (await runCli(['local', 'up', '--json'], { env })).json();
    assert.equal(again.started, false);
    assert.equal(again.pid, first.pid);
    assert.equal((await daemonsOf(home)).length, 1);
    const info = JSON.parse(await readFile(localPaths(home).runtime, 'utf8'));
    assert.deepEqual(Object.keys(info).sort(), ['adminPort', 'evaluationToken', 'pid', 'port', 'startedAt', 'token']);

    client = (await connectRuntime(home))!;
    await target.deploy(refs['1.0.0']!);
    await target.deploy(refs['1.0.0']!); // idempotent: same digest, already running
    await target.deploy(refs['1.2.0']!);
    await target.waitReady('sentiment', '1.0.0', 30_000);
    await target.waitReady('sentiment', '1.2.0', 30_000);
    assert.equal(await target.healthy('sentiment', '1.0.0'), true);
    assert.equal(await target.healthy('sentiment', '9.9.9'), false);
    await remember();

    const status = await runCli(['local', 'status', '--json'], { env });
    assert.equal(status.code, 0, status.stderr);
    const s = status.json();
    assert.equal(s.running, true);
    assert.equal(s.url, first.url);
    assert.match(s.metricsUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    assert.deepEqual(
      s.versions.map((v: { model: string; version: string; pid: number; ready: boolean }) => ({ model: v.model, version: v.version, ready: v.ready, pid: typeof v.pid })),
      [
        { model: 'sentiment', version: '1.0.0', ready: true, pid: 'number' },
        { model: 'sentiment', version: '1.2.0', ready: true, pid: 'number' },
      ],
    );
    const human = await runCli(['local', 'status'], { env });
    assert.match(human.stdout, /sentiment\s+1\.0\.0\s+\d+\s+yes/);
  });

  test('80/20 weights are honoured over 1,000 requests; every answer names its version', async () => {
    await target.applyTraffic('sentiment', { weights: { '1.0.0': 80, '1.2.0': 20 }, mirror: null });
    const hits = await hit(client.url, 'sentiment', 1000);
    assert.deepEqual(countBy(hits, (h) => String(h.status)), { '200': 1000 });
    const byVersion = countBy(hits, (h) => h.version ?? 'none');
    assert.ok(Math.abs(byVersion['1.0.0']! - 800) <= 30 && Math.abs(byVersion['1.2.0']! - 200) <= 30, JSON.stringify(byVersion));
    for (const h of hits) assert.equal(JSON.parse(h.body).version, h.version, 'x-model-version is the version that answered');
  });

  test('load generator: open loop, per-version report, stops early on its signal', async () => {
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 500);
    const t0 = Date.now();
    const report = await runLoad({ url: client.url, model: 'sentiment', rps: 100, durationMs: 5 * 60_000, signal: stop.signal });
    assert.ok(Date.now() - t0 < 5000, 'stopped by the signal');
    assert.equal(report.stoppedEarly, true);
    assert.ok(report.sent >= 30 && report.sent <= 80, `sent ${report.sent} in ~0.5 s at 100 rps`);
    assert.equal(report.answered, report.sent);
    assert.equal(report.versions.reduce((n, v) => n + v.requests, 0), report.answered);
    // A model nobody routes answers 404: every one of them is an error for the one sending load.
    const missing = await runLoad({ url: client.url, model: 'nosuchmodel', rps: 40, durationMs: 500 });
    assert.ok(missing.answered > 0 && missing.statuses['404'] === missing.answered, JSON.stringify(missing.statuses));
    assert.equal(missing.errors, missing.answered);
    await assert.rejects(runLoad({ url: 'http://example.com:80', model: 'sentiment', rps: 1, durationMs: 1000 }), UsageError);
    await assert.rejects(runLoad({ url: client.url, model: 'sentiment', rps: 2000, durationMs: 600_000 }), /more than 200000 requests/);
  });

  test('a slow, failing mirror never changes the caller\'s answer and adds no latency', async (t) => {
    await target.applyTraffic('sentiment', { weights: { '1.0.0': 100 }, mirror: null });
    await hit(client.url, 'sentiment', 50); // warm
    // ~100 rps: with 300 ms mirrors, about 30 mirrored requests are in flight (the router's cap is 128).
    const baseline = await hit(client.url, 'sentiment', 200, 4, 40);
    await target.deploy(refs['1.1.0']!);
    await target.waitReady('sentiment', '1.1.0', 30_000);
    await remember();
    const since = Date.now();
    await target.applyTraffic('sentiment', { weights: { '1.0.0': 100 }, mirror: { version: '1.1.0', percent: 100 } });
    const mirrored = await hit(client.url, 'sentiment', 200, 4, 40);

    assert.deepEqual(countBy(mirrored, (h) => `${h.status} ${h.version}`), { '200 1.0.0': 200 });
    const expected = new Map(baseline.map((h) => [h.text, h.body]));
    for (const h of mirrored) assert.equal(h.body, expected.get(h.text), 'the mirror never changes the answer');
    const p50 = (hs: Hit[]) => quantile(hs.map((h) => h.ms).sort((a, b) => a - b), 0.5);
    const max = Math.max(...mirrored.map((h) => h.ms));
    t.diagnostic(`caller p50 ${p50(baseline).toFixed(2)} ms without mirror, ${p50(mirrored).toFixed(2)} ms with a 300 ms mirror; max ${max.toFixed(1)} ms`);
    assert.ok(p50(mirrored) <= p50(baseline) + 20, `p50 ${p50(mirrored)} vs ${p50(baseline)}`);
    assert.ok(max < 250, `a caller waited ${max} ms: the 300 ms mirror leaked into the live path`);

    // The shadow's own measurements: every request mirrored, half failed, the rest compared.
    const source = new LocalMetricSource({ home });
    await until('the mirrored requests are recorded', async () => (await source.window('sentiment', '1.1.0', since)).requests >= 200);
    const w = await source.window('sentiment', '1.1.0', since);
    assert.deepEqual(Object.keys(w).sort(), ['errors', 'latenciesMs', 'requests', 'scores', 'shadowAgreed', 'shadowCompared', 'unreadable']);
    assert.equal(w.unreadable, 0, 'the example answers JSON with its declared fields');
    assert.equal(w.requests, 200);
    assert.equal(w.errors, 100, 'errorRate 0.5 is exact');
    assert.equal(w.shadowCompared, 100);
    assert.ok(w.shadowAgreed < w.shadowCompared, `scoreShift -0.6 flips positive labels: ${w.shadowAgreed}/${w.shadowCompared}`);
    assert.ok(Math.min(...w.latenciesMs) >= 290, `the shadow's own latency is measured: min ${Math.min(...w.latenciesMs)} ms`); // timers may fire ~1 ms early
    const live = await source.window('sentiment', '1.0.0', since);
    assert.equal(live.requests, 200);
    assert.equal(live.scores.length, 200);
    assert.equal(live.shadowCompared, 0);

    const metrics = await (await fetch(client.metricsUrl)).text();
    assert.match(metrics, /modelctl_local_requests_total\{model="sentiment",version="1\.0\.0",role="live",status_class="2xx"\} \d+/);
    assert.match(metrics, /modelctl_local_requests_total\{model="sentiment",version="1\.1\.0",role="shadow",status_class="5xx"\} 100/);
    assert.match(metrics, /modelctl_local_shadow_compared_total\{model="sentiment",version="1\.1\.0"\} 100/);
    assert.match(metrics, /modelctl_local_score_bucket\{le="0\.5",model="sentiment",version="1\.0\.0",role="live"\}/);
    assert.match(metrics, /modelctl_local_request_duration_seconds_count\{model="sentiment",version="1\.0\.0",role="live"\}/);
  });

  test('traffic switches under concurrent load fail no request', async () => {
    const splits: TrafficSplit[] = [
      { weights: { '1.0.0': 100 }, mirror: null },
      { weights: { '1.2.0': 100 }, mirror: { version: '1.1.0', percent: 10 } },
      { weights: { '1.0.0': 50, '1.2.0': 50 }, mirror: null },
      { weights: { '1.0.0': 5, '1.2.0': 95 }, mirror: null },
    ];
    let switching = true;
    let switches = 0;
    const switcher = (async () => {
      while (switching) {
        await target.applyTraffic('sentiment', splits[switches++ % splits.length]!);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const report = await runLoad({ url: client.url, model: 'sentiment', rps: 400, durationMs: 3000 });
    switching = false;
    await switcher;
    assert.ok(switches >= 20, `${switches} switches`);
    assert.equal(report.skipped, 0);
    assert.equal(report.answered, report.sent);
    assert.deepEqual(report.statuses, { '200': report.sent }, JSON.stringify(report));
    assert.deepEqual(report.versions.map((v) => v.version), ['1.0.0', '1.2.0']);
  });

  test('retire refuses a version with traffic, then drains and stops it without failing a request', async () => {
    await target.applyTraffic('sentiment', { weights: { '1.0.0': 50, '1.2.0': 50 }, mirror: { version: '1.1.0', percent: 5 } });
    await assert.rejects(target.retire('sentiment', '1.2.0'), (err: Error) => err instanceof ConflictError && /still gets 50%/.test(err.message));
    await assert.rejects(target.retire('sentiment', '1.1.0'), (err: Error) => err instanceof ConflictError && /mirrored/.test(err.message));
    const pid12 = (await state()).versions.find((v) => v.version === '1.2.0')!.pid!;
    const load = runLoad({ url: client.url, model: 'sentiment', rps: 200, durationMs: 1500 });
    await new Promise((r) => setTimeout(r, 300));
    await target.applyTraffic('sentiment', { weights: { '1.0.0': 100 }, mirror: null });
    await target.retire('sentiment', '1.2.0');
    await target.retire('sentiment', '1.1.0');
    await target.retire('sentiment', '1.1.0'); // idempotent
    const report = await load;
    assert.deepEqual(report.statuses, { '200': report.sent });
    assert.equal(await isRunning(pid12), false);
    assert.deepEqual((await state()).versions.map((v) => v.version), ['1.0.0']);
    await assert.rejects(target.applyTraffic('sentiment', { weights: { '1.2.0': 100 }, mirror: null }), /not deployed/);
    await assert.rejects(target.applyTraffic('sentiment', { weights: { '1.0.0': 60 }, mirror: null }), (err: Error) => err instanceof UsageError && /sum to 100/.test(err.message));
  });

  test('a version that crashes at start: waitReady rejects naming the exit code; it cannot get traffic', async () => {
    await target.deploy(refs['1.3.0']!);
    await assert.rejects(target.waitReady('sentiment', '1.3.0', 30_000), (err: Error) => {
      assert.match(err.message, /exit code 3/);
      assert.match(err.message, /faults\.exitOnStart is 3/, 'the last stderr lines are in the reason');
      return true;
    });
    await assert.rejects(target.applyTraffic('sentiment', { weights: { '1.0.0': 90, '1.3.0': 10 }, mirror: null }), (err: Error) => err instanceof ConflictError && /not ready/.test(err.message));
    const status = (await runCli(['local', 'status', '--json'], { env })).json();
    const crashed = status.versions.find((v: { version: string }) => v.version === '1.3.0');
    assert.equal(crashed.ready, false);
    assert.match(crashed.reason, /exit code 3/);
    assert.match(await readFile(crashed.logFile, 'utf8'), /exitOnStart/);
    await target.retire('sentiment', '1.3.0');
  });

  test('a bad serve section is refused when the bundle is packed, with file, line and field', async () => {
    const dir = path.join(await scratch.fresh('bad-serve'), 'sentiment');
    await cp(path.join(REPO_ROOT, 'bundles', 'example'), dir, { recursive: true });
    const yamlFile = path.join(dir, 'bundle.yaml');
    await writeFile(yamlFile, (await readFile(yamlFile, 'utf8')).replace('command: [node, serve.mjs]', 'command: node serve.mjs'));
    // Caught before anything reaches the store (the runtime checks again at deploy for bundles from older modelctl).
    await assert.rejects(openLocalBundle(dir, { version: '1.4.0' }), (err: Error) => {
      assert.ok(err instanceof UsageError);
      assert.match(err.message, /bundle\.yaml:\d+: serve\.command: expected the argv as a list/);
      return true;
    });
  });

  test('the daemon restarts with its versions and traffic (local down/up, and after SIGKILL)', async () => {
    await target.deploy(refs['1.2.0']!);
    await target.waitReady('sentiment', '1.2.0', 30_000);
    const split: TrafficSplit = { weights: { '1.0.0': 70, '1.2.0': 30 }, mirror: null };
    await target.applyTraffic('sentiment', split);
    await remember();
    const before = await state();

    const down = await runCli(['local', 'down', '--json'], { env });
    assert.equal(down.code, 0, down.stderr);
    assert.equal(down.json().pid, before.pid);
    assert.equal(await isRunning(before.pid), false);
    for (const v of before.versions) assert.equal(await isRunning(v.pid!), false, `${v.version} stopped with the daemon`);
    const stopped = (await runCli(['local', 'status', '--json'], { env })).json();
    assert.equal(stopped.running, false);
    assert.deepEqual(stopped.versions.map((v: { version: string }) => v.version), ['1.0.0', '1.2.0'], 'status lists what up would restore');

    const up = (await runCli(['local', 'up', '--json'], { env })).json();
    assert.equal(up.url, `http://127.0.0.1:${before.port}`, 'same port as before');
    client = (await connectRuntime(home))!;
    let after1 = await state();
    assert.deepEqual(after1.traffic, { sentiment: split });
    assert.deepEqual(after1.versions.map((v) => [v.version, v.ready]), [['1.0.0', true], ['1.2.0', true]], 'ready before the router opened');
    await remember();
    const hits = await hit(client.url, 'sentiment', 100);
    assert.deepEqual(countBy(hits, (h) => `${h.status} ${h.version}`), { '200 1.0.0': 70, '200 1.2.0': 30 });

    // A crashed daemon: its version processes are orphans; the next daemon stops them and starts its own.
    const orphans = after1.versions.map((v) => v.pid!);
    process.kill(after1.pid, 'SIGKILL');
    await until('the daemon is gone', async () => !(await isRunning(after1.pid)));
    for (const pid of orphans) assert.equal(await isRunning(pid), true, 'children outlive a SIGKILLed daemon');
    const { client: restarted, started } = await ensureRuntime({ home });
    assert.equal(started, true);
    client = restarted;
    for (const pid of orphans) await until(`orphan ${pid} is stopped`, async () => !(await isRunning(pid)));
    after1 = await state();
    assert.equal(after1.port, before.port);
    assert.deepEqual(after1.traffic, { sentiment: split });
    assert.ok(after1.versions.every((v) => v.ready && !orphans.includes(v.pid!)));
    await remember();
    assert.deepEqual(countBy(await hit(client.url, 'sentiment', 10), (h) => String(h.status)), { '200': 10 });
  });

  test('router overhead (diagnostic): direct to the version vs through the router', async (t) => {
    const v = (await state()).versions.find((x) => x.version === '1.0.0')!;
    await target.applyTraffic('sentiment', { weights: { '1.0.0': 100 }, mirror: null });
    const measure = async (url: string) => {
      const ms: number[] = [];
      for (let i = 0; i < 300; i++) {
        const t0 = performance.now();
        const res = await fetch(url, { method: 'POST', body: '{"text":"I loved it"}' });
        await res.arrayBuffer();
        ms.push(performance.now() - t0);
      }
      return ms.slice(50).sort((a, b) => a - b);
    };
    const direct = await measure(`http://127.0.0.1:${v.port}/predict`);
    const routed = await measure(`${client.url}/sentiment/predict`);
    const d50 = quantile(direct, 0.5);
    const r50 = quantile(routed, 0.5);
    t.diagnostic(`p50 direct ${d50.toFixed(3)} ms, routed ${r50.toFixed(3)} ms (overhead ${(r50 - d50).toFixed(3)} ms); p99 direct ${quantile(direct, 0.99).toFixed(3)}, routed ${quantile(routed, 0.99).toFixed(3)}`);
    // Loose on purpose (shared CI machines): catches pathologies such as a 40 ms Nagle stall, not noise.
    assert.ok(r50 - d50 < 25, 'the router adds only a few ms at p50');
  });

  test('local down stops everything; nothing is left running', async () => {
    await remember();
    const down = await runCli(['local', 'down', '--forget', '--json'], { env });
    assert.equal(down.code, 0, down.stderr);
    assert.equal(down.json().stopped, true);
    assert.deepEqual(await daemonsOf(home), []);
    for (const pid of childPids) assert.equal(await isRunning(pid), false, `pid ${pid}`);
    const s = (await runCli(['local', 'status', '--json'], { env })).json();
    assert.deepEqual([s.running, s.versions, s.traffic], [false, [], {}], '--forget cleared versions and traffic');
    const again = (await runCli(['local', 'down', '--json'], { env })).json();
    assert.equal(again.stopped, false);
  });
});
