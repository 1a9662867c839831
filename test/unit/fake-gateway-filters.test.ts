import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { TrafficSplit } from '../../src/core/model.js';
import { httpRouteFor } from '../../src/targets/kubernetes/manifests.js';
import { kubernetesSectionSchema, resolveKubernetesSettings } from '../../src/targets/kubernetes/settings.js';
import { versionObjectName } from '../../src/targets/kubernetes/names.js';
import { KubeError } from '../fakes/kube/errors.js';
import { GatewayDataPlane, modifyHeaders } from '../fakes/kube/dataplane.js';
import { GatewayController } from '../fakes/kube/gateway.js';
import { resourceDef } from '../fakes/kube/resources.js';
import { Store } from '../fakes/kube/store.js';
import { listenLocal, stopServer } from '../helpers/http-server.js';

/**
 * The fake Gateway's RequestHeaderModifier and the HTTPRoute CRD's rules about filters, as
 * gateway-api v1.3.0 states them (apis/v1/httproute_types.go, config/crd/standard): set / add /
 * remove with case-insensitive names, filters applied in the rule's order (a RequestMirror copies the
 * request as the filters before it left it), and the CEL / schema refusals of the API server (one
 * RequestHeaderModifier per rule, `remove` ≤ 16 names and no duplicate, header name syntax).
 *
 * The data plane runs for real on 127.0.0.1 over a store holding the route, two Services and their
 * ready pods (pod IP 127.0.0.1, the container port of a local echo server): no network namespaces.
 */

const HTTPROUTES = resourceDef('httproutes');
const SERVICES = resourceDef('services');
const PODS = resourceDef('pods');
const NAMESPACES = resourceDef('namespaces');
const NS = 'default';
const HOST = 'models.example.com';
const MODEL = 'sentiment';
const SETTINGS = resolveKubernetesSettings(kubernetesSectionSchema.parse({ route: { parentRefs: [{ name: 'public', namespace: 'gateways' }], hostnames: [HOST], path: '/sentiment' } }), {
  namespace: NS,
  storeUrl: 's3://models/prod',
});

interface Seen {
  path: string;
  headers: http.IncomingHttpHeaders;
}

/** A backend that records what reached it. */
async function echo(seen: Seen[]): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ path: req.url ?? '', headers: req.headers });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  return { server, port: await listenLocal(server) };
}

function send(url: string, path: string, headers: http.OutgoingHttpHeaders): Promise<number> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path, method: 'POST', headers: { host: HOST, 'content-type': 'application/json', ...headers }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end('{"text":"x"}');
  });
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok(), what);
}

describe('fake Gateway: RequestHeaderModifier, filter order, and what the CRD refuses', () => {
  const store = new Store();
  const controller = new GatewayController(store);
  const plane = new GatewayDataPlane(store);
  const live: Seen[] = [];
  const mirror: Seen[] = [];
  const servers: http.Server[] = [];

  /** A Service `name` whose one ready pod is the echo server at `port`. */
  const version = (version: string, port: number) => {
    const name = versionObjectName(MODEL, version);
    const labels = { app: name };
    store.create(SERVICES, NS, { metadata: { name }, spec: { selector: labels, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } }, { manager: 'test' });
    store.create(PODS, NS, { metadata: { name: `${name}-0`, labels }, spec: { containers: [{ name: 'meter', image: 'x', ports: [{ name: 'http', containerPort: port }] }] } }, { manager: 'test' });
    store.writeStatus(PODS, NS, `${name}-0`, { phase: 'Running', podIP: '127.0.0.1', conditions: [{ type: 'Ready', status: 'True' }] }, 'kubelet');
  };
  /** Apply a route and wait until the data plane serves that generation. */
  const route = async (spec: object) => {
    const name = 'r';
    const existing = store.get(HTTPROUTES, NS, name);
    const body = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name }, spec };
    const o = existing ? store.replace(HTTPROUTES, NS, name, body, { manager: 'test' }) : store.create(HTTPROUTES, NS, body, { manager: 'test' });
    await until('the controller accepted the route', () => (store.get(HTTPROUTES, NS, name)?.status?.parents ?? []).some((p: any) => p.conditions.some((c: any) => c.type === 'Accepted' && c.observedGeneration === o.metadata.generation)));
  };

  before(async () => {
    store.create(NAMESPACES, undefined, { metadata: { name: NS } }, { manager: 'kube-apiserver' });
    const a = await echo(live);
    const b = await echo(mirror);
    servers.push(a.server, b.server);
    version('1.0.0', a.port);
    version('1.1.0', b.port);
    await plane.start();
  });
  after(async () => {
    controller.close();
    await plane.close();
    for (const s of servers) await stopServer(s);
  });

  test('modifyHeaders: set overwrites, add appends comma-separated, remove deletes; names case-insensitive', () => {
    const h: Record<string, string | string[] | undefined> = { 'x-set': 'old', 'x-add': 'foo', 'x-gone': '1', 'x-keep': 'k' };
    modifyHeaders(h, { type: 'headers', set: [{ name: 'X-Set', value: 'new' }, { name: 'X-New', value: 'n' }], add: [{ name: 'X-ADD', value: 'bar,baz' }, { name: 'x-fresh', value: 'f' }], remove: ['X-Gone', 'x-absent'] });
    assert.deepEqual(h, { 'x-set': 'new', 'x-new': 'n', 'x-add': 'foo,bar,baz', 'x-fresh': 'f', 'x-keep': 'k' });
  });

  test("modelctl's route: the unmetered headers (any case) never reach the backend nor the mirror copy; other headers do", async () => {
    const manifest = httpRouteFor({ model: MODEL, settings: SETTINGS, split: { weights: { '1.0.0': 100 }, mirror: { version: '1.1.0', percent: 100 } } });
    assert.deepEqual(
      manifest.spec.rules[0]!.filters!.map((f) => f.type),
      ['RequestHeaderModifier', 'URLRewrite', 'RequestMirror'],
      'the header filter comes first, so the mirror copies the cleaned request',
    );
    await route(manifest.spec);
    const [l0, m0] = [live.length, mirror.length];
    assert.equal(await send(plane.url, '/sentiment/predict', { 'X-Modelctl-Evaluation': '1', 'x-modelctl-compare': '1', 'x-request-id': 'abc' }), 200);
    await until('the mirror copy arrived', () => mirror.length > m0);
    const [got, copy] = [live[l0]!, mirror[m0]!];
    assert.equal(got.path, '/predict');
    assert.equal(copy.path, '/predict');
    for (const h of [got.headers, copy.headers]) {
      assert.equal(h['x-modelctl-evaluation'], undefined);
      assert.equal(h['x-modelctl-compare'], undefined);
      assert.equal(h['x-request-id'], 'abc');
    }
    assert.equal(copy.headers.host, `${HOST}-shadow`);
  });

  test('filters apply in the order listed: a mirror before the header filter copies the header, the backend does not get it', async () => {
    const backendRef = { name: versionObjectName(MODEL, '1.1.0'), port: 80 };
    await route({
      parentRefs: [{ name: 'public' }],
      hostnames: [HOST],
      rules: [
        {
          backendRefs: [{ name: versionObjectName(MODEL, '1.0.0'), port: 80, weight: 1 }],
          filters: [
            { type: 'RequestMirror', requestMirror: { backendRef } },
            { type: 'RequestHeaderModifier', requestHeaderModifier: { remove: ['x-modelctl-evaluation'], set: [{ name: 'x-via', value: 'gw' }] } },
          ],
        },
      ],
    });
    const [l0, m0] = [live.length, mirror.length];
    assert.equal(await send(plane.url, '/p', { 'x-modelctl-evaluation': '1' }), 200);
    await until('the mirror copy arrived', () => mirror.length > m0);
    assert.equal(mirror[m0]!.headers['x-modelctl-evaluation'], '1');
    assert.equal(mirror[m0]!.headers['x-via'], undefined);
    assert.equal(live[l0]!.headers['x-modelctl-evaluation'], undefined);
    assert.equal(live[l0]!.headers['x-via'], 'gw');
  });

  test('the API server refuses what the CRD refuses, naming the field (and accepts what modelctl writes)', () => {
    const refused = (filters: object[]): KubeError => {
      try {
        store.create(HTTPROUTES, NS, { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'bad' }, spec: { parentRefs: [{ name: 'public' }], rules: [{ backendRefs: [], filters }] } }, { manager: 'test' });
      } catch (err) {
        if (err instanceof KubeError) return err;
        throw err;
      }
      store.delete(HTTPROUTES, NS, 'bad');
      assert.fail(`accepted: ${JSON.stringify(filters)}`);
    };
    const rhm = (h: object) => ({ type: 'RequestHeaderModifier', requestHeaderModifier: h });
    const causes = (e: KubeError) => (e.details?.causes ?? []).map((c) => `${c.field}: ${c.message}`);

    let e = refused([rhm({ remove: ['a'] }), rhm({ remove: ['b'] })]);
    assert.equal(e.code, 422);
    assert.deepEqual(causes(e), ['spec.rules[0].filters: Invalid value: "array": RequestHeaderModifier filter cannot be repeated']);
    e = refused([rhm({ remove: Array.from({ length: 17 }, (_, i) => `x-h${i}`) })]);
    assert.deepEqual(causes(e), ['spec.rules[0].filters[0].requestHeaderModifier.remove: Too many: 17: must have at most 16 items']);
    e = refused([rhm({ remove: ['x-a', 'x-a'] })]);
    assert.deepEqual(causes(e), ['spec.rules[0].filters[0].requestHeaderModifier.remove[1]: Duplicate value: "x-a"']);
    e = refused([rhm({ set: [{ name: 'bad header', value: 'v' }] })]);
    assert.match(causes(e)[0]!, /^spec\.rules\[0\]\.filters\[0\]\.requestHeaderModifier\.set\[0\]\.name: Invalid value: "bad header"/);
    e = refused([{ type: 'RequestHeaderModifier' }]);
    assert.deepEqual(causes(e), ['spec.rules[0].filters[0]: Invalid value: "object": filter.requestHeaderModifier must be specified for RequestHeaderModifier filter.type']);
    e = refused([{ type: 'URLRewrite', requestHeaderModifier: { remove: ['a'] }, urlRewrite: {} }]);
    assert.deepEqual(causes(e), ['spec.rules[0].filters[0]: Invalid value: "object": filter.requestHeaderModifier must be nil if the filter.type is not RequestHeaderModifier']);

    // What modelctl writes, for every shape of split: accepted.
    const splits: TrafficSplit[] = [
      { weights: { '1.0.0': 100 }, mirror: null },
      { weights: { '1.0.0': 90, '1.1.0': 10 }, mirror: null },
      { weights: { '1.0.0': 100 }, mirror: { version: '1.1.0', percent: 5 } },
    ];
    for (const split of splits) {
      for (const settings of [SETTINGS, { ...SETTINGS, route: { ...SETTINGS.route, path: '/' } }]) {
        const m = httpRouteFor({ model: MODEL, settings, split });
        store.create(HTTPROUTES, NS, { ...m, metadata: { name: 'ok' } }, { manager: 'test' });
        store.delete(HTTPROUTES, NS, 'ok');
      }
    }
  });
});
