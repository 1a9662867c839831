import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { UnavailableError } from '../../src/core/errors.js';
import { startMeter, type Meter } from '../../src/targets/kubernetes/meter.js';
import { KubernetesMetricSource, mergeWindows, type PodAccess } from '../../src/targets/kubernetes/metric-source.js';
import { selectorString, versionSelector } from '../../src/targets/kubernetes/names.js';
import { METER_PORT } from '../../src/targets/kubernetes/settings.js';
import { listenLocal, stopServer } from '../helpers/http-server.js';

/**
 * KubernetesMetricSource over real metering sidecars: each "pod" is a real meter in front of a real
 * model server; the PodAccess stands in for the API server only (pod list + pod proxy = a plain
 * HTTP GET to the pod's meter API port).
 */

const LOCAL = '127.0.0.1';
const MODEL = 'sentiment';
const VERSION = '1.4.0';
const NS = 'ml-serving';

const listen = listenLocal;
const stop = stopServer;

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: LOCAL, port, path, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

type Pod = { name: string; phase: string; ready: boolean; apiPort: number };

/** The API server's part: list pods by selector, proxy GETs to a pod's port. */
function podAccess(pods: () => Pod[], calls: { selectors: string[] }): PodAccess {
  return {
    async listPods(namespace, labelSelector) {
      assert.equal(namespace, NS);
      calls.selectors.push(labelSelector);
      return pods().map(({ name, phase, ready }) => ({ name, phase, ready }));
    },
    async proxyGet(namespace, pod, port, path) {
      assert.equal(namespace, NS);
      assert.equal(port, METER_PORT, 'windows are read from the meter port');
      const p = pods().find((x) => x.name === pod);
      if (!p) throw new Error(`pods "${pod}" not found`);
      const a = await get(p.apiPort, path);
      // Like the API server: a failed proxied request is an error, not a body.
      if (a.status !== 200) throw new Error(`HTTP ${a.status} from ${pod}: ${a.body}`);
      return JSON.parse(a.body);
    },
  };
}

describe('KubernetesMetricSource over real meters', () => {
  let model: http.Server;
  let silent: http.Server;
  let modelPort: number;
  let silentPort: number;
  let a: Meter;
  let b: Meter;
  let now = 100_000;
  const clock = () => now;

  before(async () => {
    model = http.createServer((req, res) => {
      req.resume();
      const url = new URL(req.url ?? '/', 'http://x');
      const fail = url.pathname === '/fail';
      res.writeHead(fail ? 500 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(fail ? { error: 'boom' } : { score: Number(url.searchParams.get('score')) }));
    });
    modelPort = await listen(model);
    // A "pod" whose meter never answers (hung proxy).
    silent = http.createServer(() => {});
    silentPort = await listen(silent);
    const meter = () =>
      startMeter({ listen: { host: LOCAL, port: 0 }, upstream: { host: LOCAL, port: modelPort }, api: { host: LOCAL, port: 0 }, scoreField: 'score', clock });
    a = await meter();
    b = await meter();
    now = 100_000;
    await get(a.trafficPort, '/predict?score=0.1');
    await get(a.trafficPort, '/fail');
    await get(b.trafficPort, '/predict?score=0.9');
    now = 200_000;
    await get(a.trafficPort, '/predict?score=0.2');
    await get(b.trafficPort, '/predict?score=0.8');
    await get(b.trafficPort, '/fail');
    now = 300_000;
  });
  after(async () => {
    await Promise.all([a.close(100), b.close(100)]);
    await Promise.all([stop(model), stop(silent)]);
  });

  const running = (name: string, apiPort: number): Pod => ({ name, phase: 'Running', ready: true, apiPort });

  test('sums the windows of every running pod of the version', async () => {
    const calls = { selectors: [] as string[] };
    const src = new KubernetesMetricSource({ core: podAccess(() => [running('pod-a', a.apiPort), running('pod-b', b.apiPort)], calls), namespace: NS, clock });
    const w = await src.window(MODEL, VERSION, 0);
    assert.deepEqual(calls.selectors, [selectorString(versionSelector(MODEL, VERSION))]);
    assert.equal(w.requests, 6);
    assert.equal(w.errors, 2);
    assert.deepEqual(w.scores, [0.1, 0.2, 0.8, 0.9], 'pod by pod, each sorted (the meters send runs: order is no part of a window)');
    assert.equal(w.latenciesMs.length, 6);
    assert.deepEqual([w.shadowCompared, w.shadowAgreed, w.truncated], [0, 0, false]);
    assert.deepEqual(w.pods, ['pod-a', 'pod-b']);
    assert.deepEqual(w.missing, []);
  });

  test('since is passed to every meter', async () => {
    const src = new KubernetesMetricSource({ core: podAccess(() => [running('pod-a', a.apiPort), running('pod-b', b.apiPort)], { selectors: [] }), namespace: NS });
    const w = await src.window(MODEL, VERSION, 150_000);
    assert.equal(w.requests, 3);
    assert.equal(w.errors, 1);
    assert.deepEqual(w.scores, [0.2, 0.8]);
  });

  test('an unready but running pod still counts (its errors matter); pending and finished pods are not asked', async () => {
    const pods = () => [
      { ...running('pod-a', a.apiPort), ready: false },
      { name: 'pod-new', phase: 'Pending', ready: false, apiPort: 1 },
      { name: 'pod-old', phase: 'Succeeded', ready: false, apiPort: 1 },
    ];
    const w = await new KubernetesMetricSource({ core: podAccess(pods, { selectors: [] }), namespace: NS }).window(MODEL, VERSION, 0);
    assert.equal(w.requests, 3);
    assert.deepEqual(w.pods, ['pod-a']);
    assert.deepEqual(w.missing, []);
  });

  test('pods that do not answer are left out and named; the others still make the window', async () => {
    const pods = () => [running('pod-a', a.apiPort), running('pod-hung', silentPort), running('pod-model', modelPort)];
    const src = new KubernetesMetricSource({ core: podAccess(pods, { selectors: [] }), namespace: NS, timeoutMs: 200 });
    const w = await src.window(MODEL, VERSION, 0);
    assert.equal(w.requests, 3);
    assert.deepEqual(w.pods, ['pod-a']);
    assert.deepEqual(
      w.missing.map((m) => m.pod),
      ['pod-hung', 'pod-model'],
    );
    assert.match(w.missing[0]!.error, /no answer within 200 ms/);
    // The model server answers JSON of another shape: rejected, not read as zeros.
    assert.match(w.missing[1]!.error, /unexpected answer from the meter/);
  });

  test('no pod answers: UnavailableError naming the pods and the errors', async () => {
    const closed = await startMeter({ listen: { host: LOCAL, port: 0 }, upstream: { host: LOCAL, port: modelPort }, api: { host: LOCAL, port: 0 } });
    await closed.close();
    const src = new KubernetesMetricSource({ core: podAccess(() => [running('pod-gone', closed.apiPort), running('pod-hung', silentPort)], { selectors: [] }), namespace: NS, timeoutMs: 200 });
    await assert.rejects(src.window(MODEL, VERSION, 0), (err: unknown) => {
      assert.ok(err instanceof UnavailableError);
      assert.match(err.message, /no metering sidecar of sentiment@1\.4\.0 answered/);
      assert.match(err.message, /pod-gone: .*ECONNREFUSED/);
      assert.match(err.message, /pod-hung: .*no answer within 200 ms/);
      return true;
    });
  });

  test('no running pod: UnavailableError, never an empty window that would read as "no traffic"', async () => {
    const src = new KubernetesMetricSource({ core: podAccess(() => [{ name: 'pod-new', phase: 'Pending', ready: false, apiPort: 1 }], { selectors: [] }), namespace: NS });
    await assert.rejects(src.window(MODEL, VERSION, 0), (err: unknown) => {
      assert.ok(err instanceof UnavailableError);
      assert.match(err.message, /no running pods of sentiment@1\.4\.0 in namespace ml-serving/);
      return true;
    });
    const none = new KubernetesMetricSource({ core: podAccess(() => [], { selectors: [] }), namespace: NS });
    await assert.rejects(none.window(MODEL, VERSION, 0), UnavailableError);
  });

  test('listing pods fails: the error propagates (a gate counts it as a query error)', async () => {
    const core: PodAccess = {
      listPods: async () => {
        throw new Error('forbidden: cannot list pods');
      },
      proxyGet: async () => assert.fail('not reached'),
    };
    await assert.rejects(new KubernetesMetricSource({ core, namespace: NS }).window(MODEL, VERSION, 0), /forbidden/);
  });
});

describe('mergeWindows', () => {
  test('counts add up, samples concatenate, truncated if any part is', () => {
    const part = (n: number, truncated = false) => ({
      requests: n,
      errors: 1,
      latenciesMs: Array.from({ length: n }, (_, i) => i),
      scores: [n],
      shadowCompared: 2,
      shadowAgreed: 1,
      truncated,
    });
    assert.deepEqual(mergeWindows([]), { requests: 0, errors: 0, latenciesMs: [], scores: [], shadowCompared: 0, shadowAgreed: 0, truncated: false });
    const w = mergeWindows([part(2), part(3, true)]);
    assert.deepEqual(w, { requests: 5, errors: 2, latenciesMs: [0, 1, 0, 1, 2], scores: [2, 3], shadowCompared: 4, shadowAgreed: 2, truncated: true });
    // Unreadable answers (a meter that counted some) add up; meters that counted none add nothing.
    assert.equal(mergeWindows([{ ...part(2), unreadable: 3 }, part(1), { ...part(1), unreadable: 2 }]).unreadable, 5);
    // A full ring per pod must not overflow the call stack.
    assert.equal(mergeWindows([part(200_000), part(200_000)]).latenciesMs.length, 400_000);
  });
});
