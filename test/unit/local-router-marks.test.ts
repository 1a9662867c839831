import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { serveSpecSchema } from '../../src/bundle/serve.js';
import { RuntimeMetrics } from '../../src/targets/local/metrics.js';
import { localPaths } from '../../src/targets/local/paths.js';
import { Router } from '../../src/targets/local/router.js';
import type { RuntimeInfo } from '../../src/targets/local/state.js';
import { LocalTarget } from '../../src/targets/local/target.js';
import { FsStore } from '../../src/store/fs-store.js';
import { useScratch } from '../helpers/fixtures.js';
import { listenLocal, stopServer } from '../helpers/http-server.js';

/**
 * The local router's marks: live traffic on the public port cannot hide from the gates nor pose as
 * modelctl. The headers that mean "not traffic" (x-modelctl-evaluation, x-modelctl-compare) and the
 * router's own x-modelctl-shadow are removed from what a client sends, and the per-version evaluation
 * route (/<model>@<version>/…, never recorded) answers only modelctl, which sends the runtime's
 * evaluation token. LocalTarget.evaluate reads answers up to 1 MiB, naming the case when one is larger.
 *
 * A real Router in-process in front of a real HTTP model; LocalTarget finds it through the home's
 * runtime.json, as it finds the daemon (the daemon's /v1/health is answered as the daemon does).
 */

const MODEL = 'm';
const spec = serveSpecSchema.parse({ command: ['node', 'serve.mjs'] });

describe('local router: marks only modelctl sets', () => {
  const scratch = useScratch();
  const seen: Array<{ path: string; headers: http.IncomingHttpHeaders }> = [];
  let model: http.Server;
  let health: http.Server;
  let modelPort: number;
  let routerPort: number;
  const metrics = new RuntimeMetrics(() => []);
  const router = new Router((_m, _v) => ({ port: modelPort, spec }), metrics, () => {});
  let home: string;

  const send = async (path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`http://127.0.0.1:${routerPort}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{"text":"x"}' });
    return { status: res.status, body: await res.text() };
  };

  before(async () => {
    model = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        seen.push({ path: req.url ?? '', headers: req.headers });
        if (req.url === '/fail') return void res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"boom"}');
        if (req.url === '/big') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ text: 'x'.repeat(1024 * 1024 + 10) }));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"label":"pos"}');
      });
    });
    modelPort = await listenLocal(model);
    routerPort = await router.listen(0);
    router.setTraffic(MODEL, { weights: { '1.0.0': 100 }, mirror: null });
    // LocalTarget finds its runtime by runtime.json and the daemon's GET /v1/health ({pid}).
    health = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, pid: process.pid }));
    });
    const adminPort = await listenLocal(health);
    home = await scratch.fresh('router-marks-home');
    const paths = localPaths(home);
    await mkdir(paths.root, { recursive: true });
    const info: RuntimeInfo = { pid: process.pid, port: routerPort, adminPort, startedAt: new Date().toISOString(), token: 'admin', evaluationToken: router.evaluationToken };
    await writeFile(paths.runtime, JSON.stringify(info), { mode: 0o600 });
  });
  after(async () => {
    await router.close(100);
    await stopServer(model);
    await stopServer(health);
    await scratch.cleanup();
  });

  test('live requests: the marks a client sends never reach the model, and its failures are counted', async () => {
    const since = Date.now();
    const from = seen.length;
    const marks = { 'X-Modelctl-Evaluation': '1', 'x-modelctl-compare': '1', 'x-modelctl-shadow': '1', 'x-request-id': 'r1' };
    for (let i = 0; i < 3; i++) assert.equal((await send(`/${MODEL}/fail`, marks)).status, 500);
    assert.equal((await send(`/${MODEL}/predict`, marks)).status, 200);
    for (const s of seen.slice(from)) {
      for (const h of ['x-modelctl-evaluation', 'x-modelctl-compare', 'x-modelctl-shadow']) assert.equal(s.headers[h], undefined, `${h} reached the model on ${s.path}`);
      assert.equal(s.headers['x-request-id'], 'r1', 'other headers pass');
    }
    const w = metrics.window(MODEL, '1.0.0', since);
    assert.deepEqual([w.requests, w.errors], [4, 3]);
  });

  test("the evaluation route refuses a request without the runtime's token (403, the model never asked); with it: served, not recorded, token not forwarded", async () => {
    const since = Date.now();
    const from = seen.length;
    const refused: Array<Record<string, string>> = [{}, { 'x-modelctl-evaluation': '1' }, { 'x-modelctl-evaluation': `${router.evaluationToken}x` }];
    for (const headers of refused) {
      const r = await send(`/${MODEL}@1.0.0/fail`, headers);
      assert.equal(r.status, 403);
      assert.match(JSON.parse(r.body).error, /evaluation route: it needs the runtime's evaluation token in x-modelctl-evaluation; live requests go to \/m\/<path>/);
    }
    assert.equal(seen.length, from, 'no refused request reached the model');
    const ok = await send(`/${MODEL}@1.0.0/predict`, { 'x-modelctl-evaluation': router.evaluationToken });
    assert.equal(ok.status, 200);
    assert.equal(seen.at(-1)!.headers['x-modelctl-evaluation'], undefined, 'the token stays in the router');
    assert.equal(metrics.window(MODEL, '1.0.0', since).requests, 0, 'an evaluation request is not traffic');
  });

  test('LocalTarget.evaluate sends the token; an answer over 1 MiB is an error naming the case, not a truncated answer', async () => {
    const target = new LocalTarget({ home, store: new FsStore(await scratch.fresh('store')), port: routerPort, env: process.env });
    const a = await target.evaluate(MODEL, '1.0.0', { path: '/predict', body: { text: 'x' }, timeoutMs: 5000, what: 'case eval/cases.jsonl:3' });
    assert.equal(a.status, 200);
    assert.deepEqual(JSON.parse(a.body.toString()), { label: 'pos' });
    await assert.rejects(
      target.evaluate(MODEL, '1.0.0', { path: '/big', body: { text: 'x' }, timeoutMs: 5000, what: 'case eval/cases.jsonl:7' }),
      (e: Error) => /^the answer of case eval\/cases\.jsonl:7 from m@1\.0\.0 \(local runtime\) is larger than 1048576 bytes/.test(e.message),
    );
  });
});
