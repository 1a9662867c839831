import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { UsageError } from '../../src/core/errors.js';
import { parseHostPort, roleOfHost, startMeter, type Meter, type MeterWindow } from '../../src/targets/kubernetes/meter.js';
import { mergeWindows } from '../../src/targets/kubernetes/metric-source.js';
import { meterAnswerSchema } from '../../src/targets/kubernetes/window-codec.js';
import { CLI, REPO_ROOT } from '../helpers/fixtures.js';
import { listenLocal, stopServer } from '../helpers/http-server.js';

/**
 * The metering sidecar against a real model server (node:http) over real sockets: what it forwards
 * (status, headers, streamed bodies) and what it records (the window served on its API port).
 */

const LOCAL = '127.0.0.1';

/** A stand-in for the bundle's server: a few behaviours a model server has in production. */
function modelServer(): http.Server {
  return http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const json = (status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}) => {
      req.resume();
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    switch (url.pathname) {
      case '/predict':
        return json(200, { label: 'pos', out: { score: Number(url.searchParams.get('score') ?? 0.5) } });
      case '/fail':
        return json(500, { error: 'model crashed' });
      case '/bad-request':
        return json(400, { out: { score: 0.9 } });
      case '/slow':
        setTimeout(() => json(200, { out: { score: 0.1 } }), Number(url.searchParams.get('ms') ?? 100));
        return;
      case '/hang':
        req.resume();
        return; // never answers
      case '/text':
        req.resume();
        res.writeHead(200, { 'content-type': 'text/plain' });
        return res.end('positive (0.3)');
      case '/big': {
        // > 1 MiB of JSON: forwarded whole, never parsed for its score.
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ out: { score: 0.77 }, pad: 'x'.repeat(2 * 1024 * 1024) }));
      }
      case '/headers':
        return json(201, { method: req.method, headers: req.headers }, { 'x-model': 'sentiment', connection: 'keep-alive' });
      case '/echo':
        // Answer as the body arrives: a proxy that buffered either way would deadlock the test.
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        req.pipe(res);
        return;
      default:
        return json(404, { error: 'no such path' });
    }
  });
}

const listen = listenLocal;
const stop = stopServer;

/** A port nothing listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const s = http.createServer();
  const port = await listen(s);
  await stop(s);
  return port;
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function send(port: number, opts: { method?: string; path: string; headers?: http.OutgoingHttpHeaders; body?: Buffer | string }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: LOCAL, port, method: opts.method ?? 'GET', path: opts.path, headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function windowOf(meter: Meter, since: number): Promise<MeterWindow> {
  const a = await send(meter.apiPort, { path: `/v1/window?since=${since}` });
  assert.equal(a.status, 200, a.body.toString());
  return JSON.parse(a.body.toString()) as MeterWindow;
}

describe('kubernetes meter', () => {
  let server: http.Server;
  let upstreamPort: number;
  let now = 1_000_000;
  const meters: Meter[] = [];
  const start = async (opts: { upstreamPort?: number; scoreField?: string | undefined; upstreamTimeoutMs?: number; capacity?: number } = {}) => {
    const m = await startMeter({
      listen: { host: LOCAL, port: 0 },
      upstream: { host: LOCAL, port: opts.upstreamPort ?? upstreamPort },
      api: { host: LOCAL, port: 0 },
      scoreField: 'scoreField' in opts ? opts.scoreField : 'out.score',
      clock: () => now,
      upstreamTimeoutMs: opts.upstreamTimeoutMs,
      capacity: opts.capacity,
    });
    meters.push(m);
    return m;
  };

  before(async () => {
    server = modelServer();
    upstreamPort = await listen(server);
  });
  after(async () => {
    await Promise.all(meters.map((m) => m.close(100)));
    await stop(server);
  });

  test('records one sample per request: counts, 5xx errors, latencies, scores of successful JSON answers', async () => {
    const meter = await start();
    now = 1_000_000;
    for (const s of [0.25, 0.5, 0.75]) assert.equal((await send(meter.trafficPort, { path: `/predict?score=${s}` })).status, 200);
    assert.equal((await send(meter.trafficPort, { path: '/fail' })).status, 500);
    assert.equal((await send(meter.trafficPort, { path: '/bad-request' })).status, 400); // 4xx: not an error, no score
    assert.equal((await send(meter.trafficPort, { path: '/slow?ms=60' })).status, 200);
    const w = await windowOf(meter, 0);
    assert.equal(w.requests, 6);
    assert.equal(w.errors, 1);
    assert.deepEqual(w.scores, [0.25, 0.5, 0.75, 0.1]);
    assert.equal(w.latenciesMs.length, 6);
    assert.ok(w.latenciesMs.every((l) => l >= 0));
    assert.ok(w.latenciesMs[5]! >= 50, `the slow request's latency ${w.latenciesMs[5]} covers the server's delay`);
    // Agreement cannot be measured behind a Gateway mirror: never compared.
    assert.equal(w.shadowCompared, 0);
    assert.equal(w.shadowAgreed, 0);
    assert.equal(w.truncated, false);
    assert.equal(w.now, now);
    assert.equal(meter.recorded, 6);
  });

  test('evaluation replay requests (x-modelctl-evaluation) are forwarded and answered, never recorded; /healthz counts them', async () => {
    const meter = await start();
    now = 1_000_000;
    const body = '{"text":"I loved it"}';
    for (const path of ['/predict?score=0.9', '/fail', '/headers']) {
      const a = await send(meter.trafficPort, { method: 'POST', path, headers: { 'x-modelctl-evaluation': '1', 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, body });
      assert.notEqual(a.status, 0);
      if (path === '/headers') assert.equal((JSON.parse(a.body.toString()) as { headers: Record<string, string> }).headers['x-modelctl-evaluation'], '1', 'the model gets the request as sent');
      if (path === '/fail') assert.equal(a.status, 500, "the model's own error goes back as is");
    }
    assert.equal((await send(meter.trafficPort, { path: '/predict?score=0.5' })).status, 200);
    const w = await windowOf(meter, 0);
    assert.deepEqual([w.requests, w.errors, w.scores], [1, 0, [0.5]], 'only the live request is in the window');
    assert.equal(meter.recorded, 1);
    assert.equal(meter.evaluated, 3);
    const health = JSON.parse((await send(meter.apiPort, { path: '/healthz' })).body.toString()) as { recorded: number; evaluated: number };
    assert.deepEqual([health.recorded, health.evaluated], [1, 3]);
  });

  test('mirrored requests (Host ending in -shadow) are measured like live ones', async () => {
    const meter = await start();
    const a = await send(meter.trafficPort, { path: '/predict?score=0.6', headers: { host: 'models.example.com-shadow' } });
    assert.equal(a.status, 200);
    const w = await windowOf(meter, 0);
    assert.deepEqual([w.requests, w.errors, w.scores], [1, 0, [0.6]]);
    assert.equal(w.shadowCompared, 0, 'the Gateway drops the mirror answer: nothing to compare it with');
  });

  test('a mirrored copy (Host ending in -shadow) is recorded even when it carries x-modelctl-evaluation or x-modelctl-compare', async () => {
    // Only the Gateway sends mirror copies; whether it removed the headers before copying is up to the
    // implementation, so the meter never lets a mirror copy out of the window (its errors count).
    const meter = await start();
    for (const mark of ['x-modelctl-evaluation', 'x-modelctl-compare', 'X-Modelctl-Evaluation']) {
      assert.equal((await send(meter.trafficPort, { path: '/fail', headers: { host: 'models.example.com-shadow', [mark]: '1' } })).status, 500);
    }
    const w = await windowOf(meter, 0);
    assert.deepEqual([w.requests, w.errors], [3, 3]);
    assert.equal(meter.evaluated, 0, 'not counted as evaluation replay either');
  });

  test('window since: only requests that ended at or after it (meter clock)', async () => {
    const meter = await start();
    now = 5_000;
    await send(meter.trafficPort, { path: '/predict?score=0.1' });
    now = 6_000;
    await send(meter.trafficPort, { path: '/predict?score=0.2' });
    await send(meter.trafficPort, { path: '/fail' });
    now = 7_000;
    const w = await windowOf(meter, 6_000);
    assert.equal(w.requests, 2);
    assert.equal(w.errors, 1);
    assert.deepEqual(w.scores, [0.2]);
    assert.equal((await windowOf(meter, 0)).requests, 3);
    assert.equal((await windowOf(meter, 6_001)).requests, 0);
  });

  test('ring overflow inside the window is reported as truncated', async () => {
    const meter = await start({ capacity: 2 });
    now = 10_000;
    for (let i = 0; i < 3; i++) await send(meter.trafficPort, { path: '/predict?score=0.5' });
    const w = await windowOf(meter, 0);
    assert.equal(w.requests, 2);
    assert.equal(w.truncated, true);
  });

  test('no score from answers that are not JSON (counted unreadable, as on the local router), too large to parse, or when the bundle names no score field', async () => {
    const meter = await start();
    const text = await send(meter.trafficPort, { path: '/text' });
    assert.equal(text.body.toString(), 'positive (0.3)');
    const big = await send(meter.trafficPort, { path: '/big' });
    assert.equal(big.status, 200);
    assert.ok(big.body.length > 2 * 1024 * 1024, 'the large answer is forwarded whole');
    assert.equal((JSON.parse(big.body.toString()) as { out: { score: number } }).out.score, 0.77);
    const w = await windowOf(meter, 0);
    assert.equal(w.requests, 2);
    assert.deepEqual(w.scores, []);
    assert.equal(w.unreadable, 1, 'the plain-text answer is unreadable; the one too large to copy is unknown, not unreadable');
    assert.equal(w.errors, 0);

    const noField = await start({ scoreField: undefined });
    await send(noField.trafficPort, { path: '/predict?score=0.4' });
    const w2 = await windowOf(noField, 0);
    assert.equal(w2.requests, 1);
    assert.deepEqual(w2.scores, []);
  });

  test('transparent: method, status, end-to-end headers and Host pass through; hop-by-hop headers do not', async () => {
    const meter = await start();
    const a = await send(meter.trafficPort, {
      method: 'PUT',
      path: '/headers?x=1',
      headers: { host: 'models.example.com', 'x-request-id': 'abc', connection: 'x-secret, keep-alive', 'x-secret': 'hop', 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(a.status, 201);
    assert.equal(a.headers['x-model'], 'sentiment');
    const seen = JSON.parse(a.body.toString()) as { method: string; headers: Record<string, string> };
    assert.equal(seen.method, 'PUT');
    assert.equal(seen.headers.host, 'models.example.com');
    assert.equal(seen.headers['x-request-id'], 'abc');
    assert.equal(seen.headers['content-length'], '2');
    assert.equal(seen.headers['x-secret'], undefined, 'a header named by Connection is hop-by-hop');
  });

  test('streams bodies both ways: the server answers while the caller is still sending (5 MiB round trip)', { timeout: 20_000 }, async () => {
    const meter = await start();
    const chunk = Buffer.alloc(1024 * 1024, 7);
    const rounds = 5;
    const sent = createHash('sha256');
    const got = createHash('sha256');
    let received = 0;
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ host: LOCAL, port: meter.trafficPort, method: 'POST', path: '/echo', agent: false, headers: { 'content-type': 'application/octet-stream' } });
      let written = 0;
      const writeNext = () => {
        written++;
        const c = Buffer.from(chunk);
        c.writeUInt32BE(written, 0); // distinct chunks, so order matters to the hash
        sent.update(c);
        req.write(c);
      };
      req.on('response', (res) => {
        assert.equal(res.statusCode, 200);
        res.on('data', (c: Buffer) => {
          got.update(c);
          received += c.length;
          // Send the next MiB only once the previous one came back through the meter.
          if (received === written * chunk.length) {
            if (written < rounds) writeNext();
            else req.end();
          }
        });
        res.on('end', () => resolve());
        res.on('error', reject);
      });
      req.on('error', reject);
      req.flushHeaders();
      writeNext();
    });
    assert.equal(received, rounds * chunk.length);
    assert.equal(got.digest('hex'), sent.digest('hex'));
    const w = await windowOf(meter, 0);
    assert.equal(w.requests, 1);
    assert.equal(w.errors, 0);
  });

  test('model server down: 502 to the caller, counted as an error', async () => {
    const meter = await start({ upstreamPort: await deadPort() });
    const a = await send(meter.trafficPort, { path: '/predict' });
    assert.equal(a.status, 502);
    assert.match(a.body.toString(), /unreachable/);
    const w = await windowOf(meter, 0);
    assert.deepEqual([w.requests, w.errors, w.scores.length], [1, 1, 0]);
  });

  test('model server silent: 504 after the upstream timeout, counted as an error', async () => {
    const meter = await start({ upstreamTimeoutMs: 150 });
    const a = await send(meter.trafficPort, { path: '/hang' });
    assert.equal(a.status, 504);
    const w = await windowOf(meter, 0);
    assert.deepEqual([w.requests, w.errors], [1, 1]);
  });

  test('API: /healthz, 400 on a bad since, 404 on anything else', async () => {
    const meter = await start();
    assert.equal((await send(meter.apiPort, { path: '/healthz' })).status, 200);
    assert.equal((await send(meter.apiPort, { path: '/v1/window' })).status, 400);
    assert.equal((await send(meter.apiPort, { path: '/v1/window?since=yesterday' })).status, 400);
    assert.equal((await send(meter.apiPort, { path: '/v1/windows?since=0' })).status, 404);
    assert.equal((await send(meter.apiPort, { method: 'POST', path: '/v1/window?since=0' })).status, 404);
    assert.equal((await send(meter.apiPort, { path: '/' })).status, 404);
    // The API port does not proxy, and its requests are not traffic.
    assert.equal((await windowOf(meter, 0)).requests, 0);
  });

  test('close lets in-flight requests finish and records them, then refuses new connections', async () => {
    const meter = await startMeter({ listen: { host: LOCAL, port: 0 }, upstream: { host: LOCAL, port: upstreamPort }, api: { host: LOCAL, port: 0 } });
    const inFlight = send(meter.trafficPort, { path: '/slow?ms=200' });
    await new Promise((r) => setTimeout(r, 50));
    const closed = meter.close(2_000);
    assert.equal((await inFlight).status, 200);
    await closed;
    assert.equal(meter.recorded, 1);
    await assert.rejects(send(meter.trafficPort, { path: '/predict' }), /ECONNREFUSED/);
  });
});

describe('meter helpers', () => {
  test('role: Envoy appends -shadow to the host of mirrored requests (before the port)', () => {
    assert.equal(roleOfHost('models.example.com-shadow'), 'shadow');
    assert.equal(roleOfHost('models.example.com-shadow:8080'), 'shadow');
    assert.equal(roleOfHost('sentiment-1-4-0.ml.svc-shadow'), 'shadow');
    assert.equal(roleOfHost('models.example.com'), 'live');
    assert.equal(roleOfHost('shadow.example.com'), 'live');
    assert.equal(roleOfHost(undefined), 'live');
  });

  test('host:port flags', () => {
    assert.deepEqual(parseHostPort('0.0.0.0:8080', '--listen'), { host: '0.0.0.0', port: 8080 });
    assert.deepEqual(parseHostPort('[::]:9090', '--api'), { host: '::', port: 9090 });
    assert.deepEqual(parseHostPort(':8081', '--upstream'), { host: '0.0.0.0', port: 8081 });
    assert.throws(() => parseHostPort('8080', '--listen'), UsageError);
    assert.throws(() => parseHostPort('host:99999', '--listen'), /--listen: "host:99999" is not host:port/);
  });
});

/**
 * The kubelet's view of a pod: it probes the pod IP, so the model container's probes go to the
 * meter's GET /model-ready, which asks the model's readinessPath on 127.0.0.1. Real processes:
 * the `modelctl kubernetes meter` CLI (exactly the sidecar's command line) and the example bundle's
 * serve.mjs, on ports of the loopback.
 */
describe('meter: the model probe the kubelet uses', () => {
  const children: ChildProcess[] = [];
  after(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  });

  const spawnLogged = (args: string[], env: NodeJS.ProcessEnv, cwd: string): ChildProcess => {
    const c = spawn(process.execPath, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(c);
    return c;
  };
  const waitFor = async (what: string, ok: () => Promise<boolean>, ms = 15_000) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (await ok().catch(() => false)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail(`${what} within ${ms} ms`);
  };
  const probe = (port: number, query = '') => send(port, { path: `/model-ready${query}` });
  const exited = (c: ChildProcess) => new Promise<void>((r) => (c.exitCode !== null ? r() : c.once('exit', () => r())));

  test('forwards to the model readinessPath; down, hung or failing model = probe failure; probes are not traffic', async () => {
    const [modelPort, trafficPort, apiPort] = [await deadPort(), await deadPort(), await deadPort()];
    const meter = spawnLogged(
      [CLI, 'kubernetes', 'meter', '--listen', `${LOCAL}:${trafficPort}`, '--upstream', `${LOCAL}:${modelPort}`, '--api', `${LOCAL}:${apiPort}`, '--readiness-path', '/healthz'],
      { MODELCTL_DEBUG: '' },
      REPO_ROOT,
    );
    await waitFor('the meter answers /healthz', async () => (await send(apiPort, { path: '/healthz' })).status === 200);

    // No model yet: the meter is up (its own /healthz says so) but the model's probe fails fast.
    const none = await probe(apiPort);
    assert.equal(none.status, 503);
    assert.match(JSON.parse(none.body.toString()).error, /unreachable: ECONNREFUSED/);

    // The real example model, bound to the loopback as in the pod (HOST=127.0.0.1).
    const model = spawnLogged([path.join(REPO_ROOT, 'bundles/example/serve.mjs')], { HOST: LOCAL, PORT: String(modelPort), MODELCTL_VERSION: '1.0.0' }, path.join(REPO_ROOT, 'bundles/example'));
    await waitFor('the model becomes ready through the meter', async () => (await probe(apiPort)).status === 200);
    const ready = JSON.parse((await probe(apiPort, '?timeoutMs=1000')).body.toString());
    assert.equal(ready.status, 200);
    assert.equal(ready.model, `${LOCAL}:${modelPort}/healthz`);

    // Probes are not traffic: the window stays empty; live traffic still flows through the traffic port.
    const answer = await send(trafficPort, { method: 'POST', path: '/predict', headers: { 'content-type': 'application/json' }, body: '{"text":"great, I love it"}' });
    assert.equal(answer.status, 200);
    const w = JSON.parse((await send(apiPort, { path: '/v1/window?since=0' })).body.toString()) as MeterWindow;
    assert.equal(w.requests, 1, 'one predict, no probe');

    // The model dies: the probe fails again (the meter keeps running: its own health is separate).
    model.kill('SIGKILL');
    await exited(model);
    assert.equal((await probe(apiPort)).status, 503);
    assert.equal((await send(apiPort, { path: '/healthz' })).status, 200, 'a dead model never fails the meter\'s own probe');

    // A hung model (accepts, never answers) fails within the probe's timeout, before the kubelet's.
    const hung = http.createServer(() => {});
    await new Promise<void>((r) => hung.listen(modelPort, LOCAL, () => r()));
    try {
      const t0 = Date.now();
      const slow = await probe(apiPort, '?timeoutMs=300');
      assert.equal(slow.status, 503);
      assert.match(JSON.parse(slow.body.toString()).error, /no answer within 300 ms/);
      assert.ok(Date.now() - t0 < 1_500, `answered after ${Date.now() - t0} ms`);
    } finally {
      await stop(hung);
    }

    // A model that answers 500 on its readiness path: the kubelet sees 500 (a failure), not a meter 200.
    const sick = http.createServer((req, res) => {
      req.resume();
      res.writeHead(req.url === '/healthz' ? 500 : 200).end();
    });
    await new Promise<void>((r) => sick.listen(modelPort, LOCAL, () => r()));
    try {
      assert.equal((await probe(apiPort)).status, 500);
    } finally {
      await stop(sick);
    }

    meter.kill('SIGTERM');
    await exited(meter);
    assert.equal(meter.exitCode, 0, 'the sidecar drains and exits 0 on SIGTERM');
  });
});

describe('meter: shadow comparison with the stable Service (shadow-compare.ts)', () => {
  // The candidate's model answers label "pos" on /predict; the stable's answers what the test says.
  let candidate: http.Server;
  let stable: http.Server;
  let candidatePort: number;
  let stablePort: number;
  let stableLabel = 'pos';
  let stableDelayMs = 0;
  const seenByStable: Array<{ path: string; body: string; compare: string | undefined; host: string | undefined }> = [];
  const meters: Meter[] = [];
  const compareMeter = async (concurrency = 16, timeoutMs = 2000) => {
    const m = await startMeter({
      listen: { host: LOCAL, port: 0 },
      upstream: { host: LOCAL, port: candidatePort },
      api: { host: LOCAL, port: 0 },
      scoreField: 'out.score',
      compare: { host: LOCAL, port: stablePort, agreement: { mode: 'fields', fields: ['label'] }, concurrency, timeoutMs },
    });
    meters.push(m);
    return m;
  };
  const settle = async (m: Meter, want: (w: MeterWindow) => boolean) => {
    for (let i = 0; i < 100; i++) {
      const w = await windowOf(m, 0);
      if (want(w)) return w;
      await new Promise((r) => setTimeout(r, 20));
    }
    return windowOf(m, 0);
  };

  before(async () => {
    candidate = modelServer();
    candidatePort = await listen(candidate);
    stable = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seenByStable.push({ path: req.url ?? '', body: Buffer.concat(chunks).toString(), compare: req.headers['x-modelctl-compare'] as string | undefined, host: req.headers.host });
        setTimeout(() => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ label: stableLabel, out: { score: 0.5 } }));
        }, stableDelayMs);
      });
    });
    stablePort = await listen(stable);
  });
  after(async () => {
    await Promise.all(meters.map((m) => m.close(100)));
    await stop(candidate);
    await stop(stable);
  });

  test('a mirrored request is asked again at stable (same method, path, body) and the answers compared: agreed, then disagreed', async () => {
    const m = await compareMeter();
    stableLabel = 'pos';
    const a = await send(m.trafficPort, { method: 'POST', path: '/predict?score=0.7', headers: { host: 'models.example.com-shadow', 'content-type': 'application/json' }, body: '{"text":"a fine film"}' });
    assert.equal(a.status, 200);
    let w = await settle(m, (x) => x.shadowCompared === 1);
    assert.deepEqual([w.requests, w.shadowCompared, w.shadowAgreed], [1, 1, 1]);
    const asked = seenByStable.at(-1)!;
    assert.deepEqual([asked.path, asked.body, asked.compare], ['/predict?score=0.7', '{"text":"a fine film"}', '1']);
    stableLabel = 'neg';
    await send(m.trafficPort, { method: 'POST', path: '/predict', headers: { host: 'models.example.com-shadow' }, body: '{"text":"x"}' });
    w = await settle(m, (x) => x.shadowCompared === 2);
    assert.deepEqual([w.requests, w.shadowCompared, w.shadowAgreed], [2, 2, 1]);
    assert.ok(w.latenciesMs.every((ms) => ms < 1000), 'latency is the candidate answer, not the comparison');
  });

  test('live requests are never compared (nothing asked of stable); a comparison arriving at a meter is served but not recorded', async () => {
    const m = await compareMeter();
    const before = seenByStable.length;
    await send(m.trafficPort, { path: '/predict', headers: { host: 'models.example.com' } });
    await send(m.trafficPort, { path: '/predict', headers: { host: 'models.example.com', 'x-modelctl-compare': '1' } });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(seenByStable.length, before);
    const w = await windowOf(m, 0);
    assert.deepEqual([w.requests, w.shadowCompared], [1, 0]);
  });

  test('a slow stable never delays the mirrored request: comparisons beyond the bound are dropped and counted, past the timeout they fail', async () => {
    const m = await compareMeter(1, 300);
    stableLabel = 'pos';
    stableDelayMs = 600;
    const t0 = performance.now();
    await Promise.all([0, 1, 2].map(() => send(m.trafficPort, { path: '/predict', headers: { host: 'h-shadow' } })));
    assert.ok(performance.now() - t0 < 300, 'the caller got the candidate answer at once');
    const w = await settle(m, (x) => x.requests === 3);
    const stats = (w as MeterWindow & { compare: { compared: number; dropped: number; failed: number } }).compare;
    stableDelayMs = 0;
    assert.deepEqual([w.requests, w.shadowCompared], [3, 0], 'none compared: never counted as agreeing');
    assert.deepEqual(stats, { compared: 0, dropped: 2, failed: 1 });
    // The window itself says so (what the shadow-agreement gate reports), in both encodings.
    assert.deepEqual([w.shadowDropped, w.shadowFailed], [2, 1]);
    const runs = meterAnswerSchema.parse(JSON.parse((await send(m.apiPort, { path: '/v1/window?since=0&encoding=runs' })).body.toString()));
    assert.deepEqual([runs.shadowDropped, runs.shadowFailed], [2, 1]);
    assert.deepEqual(mergeWindows([runs, runs]).shadowDropped, 4, 'summed over pods');
  });
});
