/**
 * The fake API server's handling of fields it does not know, pinned to the real server's answers
 * (kubernetes staging/src/k8s.io/apiserver/pkg/endpoints/handlers/{create,update,patch}.go and
 * structured-merge-diff; see test/fakes/kube/schema.ts): raw HTTP, so status codes, Status bodies
 * and Warning headers are checked exactly as a client receives them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startFakeKube, type FakeKube } from '../fakes/kube/server.js';

interface Answer {
  status: number;
  body: any;
  warnings: string[];
}

async function call(fake: FakeKube, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Answer> {
  const res = await fetch(fake.url + path, {
    method,
    headers: { 'content-type': contentType },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  const raw = res.headers.get('warning');
  const warnings = raw ? [...raw.matchAll(/299 - "((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!.replace(/\\(.)/g, '$1')) : [];
  return { status: res.status, body: text ? JSON.parse(text) : undefined, warnings };
}

const CM = '/api/v1/namespaces/default/configmaps';
const ROUTES = '/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes';

function route(name: string, mirror?: { percent: number }): unknown {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name },
    spec: {
      parentRefs: [{ name: 'public', namespace: 'gateways' }],
      rules: [
        {
          matches: [{ path: { type: 'PathPrefix', value: '/m' } }],
          backendRefs: [{ name: 'm-1-0-0', port: 80, weight: 90 }],
          ...(mirror ? { filters: [{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'm-1-1-0', port: 80 }, percent: mirror.percent } }] } : {}),
        },
      ],
    },
  };
}

describe('unknown fields: fieldValidation on create, update and patch', () => {
  let fake: FakeKube;
  before(async () => {
    fake = await startFakeKube();
  });
  after(() => fake.close());

  test('Warn is the default: the field is dropped, the write succeeds, a 299 Warning names it', async () => {
    const a = await call(fake, 'POST', CM, { metadata: { name: 'warned' }, data: { k: 'v' }, extra: 1, metadata2: {} });
    assert.equal(a.status, 201);
    assert.deepEqual(a.warnings, ['unknown field "extra"', 'unknown field "metadata2"']);
    assert.equal(a.body.extra, undefined, 'pruned from the answer');
    assert.equal(fake.get('v1', 'ConfigMap', 'default', 'warned').extra, undefined, 'and from what is stored');
  });

  test('Strict refuses a create with 400 and the decoder\'s message; nothing is stored', async () => {
    const a = await call(fake, 'POST', `${CM}?fieldValidation=Strict`, { metadata: { name: 'strict', labelz: {} }, data: { k: 'v' } });
    assert.equal(a.status, 400);
    assert.equal(a.body.reason, 'BadRequest');
    assert.equal(a.body.message, 'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "metadata.labelz"');
    assert.equal(fake.get('v1', 'ConfigMap', 'default', 'strict'), undefined);
  });

  test('Ignore drops silently', async () => {
    const a = await call(fake, 'POST', `${CM}?fieldValidation=Ignore`, { metadata: { name: 'ignored' }, bogus: true });
    assert.equal(a.status, 201);
    assert.deepEqual(a.warnings, []);
    assert.equal(a.body.bogus, undefined);
  });

  test('a merge patch under Strict: 422 Invalid on `patch`, as patch.go answers', async () => {
    const a = await call(fake, 'PATCH', `${CM}/warned?fieldValidation=Strict`, { spec: { x: 1 } }, 'application/merge-patch+json');
    assert.equal(a.status, 422);
    assert.equal(a.body.reason, 'Invalid');
    assert.match(a.body.message, /^ "" is invalid: patch: Invalid value: ".*": strict decoding error: unknown field "spec"$/);
    assert.equal(a.body.details.causes[0].field, 'patch');
    const w = await call(fake, 'PATCH', `${CM}/warned`, { spec: { x: 1 } }, 'application/merge-patch+json');
    assert.equal(w.status, 200);
    assert.deepEqual(w.warnings, ['unknown field "spec"']);
  });

  test('nested paths in the decoder form: containers[0].foo', async () => {
    const a = await call(fake, 'POST', '/apis/apps/v1/namespaces/default/deployments?fieldValidation=Strict', {
      metadata: { name: 'd' },
      spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i', foo: 1, readinessProbe: { httpGet: { port: 80, hots: 'x' } } }] } } },
    });
    assert.equal(a.status, 400);
    assert.equal(a.body.message, 'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.template.spec.containers[0].foo", unknown field "spec.template.spec.containers[0].readinessProbe.httpGet.hots"');
  });
});

describe('unknown fields: server-side apply is refused whatever fieldValidation says', () => {
  let fake: FakeKube;
  before(async () => {
    fake = await startFakeKube();
  });
  after(() => fake.close());

  test('500 from structured-merge-diff, no reason, the SMD path (kubernetes#122480)', async () => {
    for (const fv of ['', '&fieldValidation=Ignore', '&fieldValidation=Strict']) {
      const a = await call(fake, 'PATCH', `${CM}/applied?fieldManager=t${fv}`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'applied' }, data: { k: 'v' }, extra: 1 }, 'application/apply-patch+yaml');
      assert.equal(a.status, 500, fv);
      assert.equal(a.body.reason, undefined);
      assert.equal(a.body.message, 'failed to create typed patch object (default/applied; /v1, Kind=ConfigMap): .extra: field not declared in schema');
    }
    assert.equal(fake.get('v1', 'ConfigMap', 'default', 'applied'), undefined, 'nothing was written');
  });
});

describe('Gateway API releases: RequestMirror percent exists from v1.3.0', () => {
  test('v1.3.0: the route with percent is stored as sent; the CRD says v1.3.0 and has percent in its schema', async () => {
    const fake = await startFakeKube({ gatewayApiVersion: 'v1.3.0' });
    try {
      const a = await call(fake, 'POST', `${ROUTES}?fieldValidation=Strict`, route('m', { percent: 10 }));
      assert.equal(a.status, 201, JSON.stringify(a.body));
      assert.equal(a.body.spec.rules[0].filters[0].requestMirror.percent, 10);
      const crd = await call(fake, 'GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/httproutes.gateway.networking.k8s.io');
      assert.equal(crd.status, 200);
      assert.equal(crd.body.metadata.annotations['gateway.networking.k8s.io/bundle-version'], 'v1.3.0');
      assert.equal(crd.body.metadata.annotations['gateway.networking.k8s.io/channel'], 'standard');
      const mirror = crd.body.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.rules.items.properties.filters.items.properties.requestMirror;
      assert.ok(mirror.properties.percent, 'percent in the v1 schema');
      const list = await call(fake, 'GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions');
      assert.deepEqual(list.body.items.map((c: any) => c.metadata.name), ['httproutes.gateway.networking.k8s.io']);
    } finally {
      await fake.close();
    }
  });

  test('v1.2.0: Warn drops percent with a warning (the route then mirrors everything); Strict refuses; apply 500s', async () => {
    const fake = await startFakeKube({ gatewayApiVersion: 'v1.2.0' });
    try {
      const warned = await call(fake, 'POST', ROUTES, route('warned', { percent: 10 }));
      assert.equal(warned.status, 201);
      assert.deepEqual(warned.warnings, ['unknown field "spec.rules[0].filters[0].requestMirror.percent"']);
      assert.deepEqual(fake.get('gateway.networking.k8s.io/v1', 'HTTPRoute', 'default', 'warned').spec.rules[0].filters[0].requestMirror, { backendRef: { name: 'm-1-1-0', port: 80 } });
      const strict = await call(fake, 'POST', `${ROUTES}?fieldValidation=Strict`, route('strict', { percent: 10 }));
      assert.equal(strict.status, 400);
      assert.equal(strict.body.message, 'HTTPRoute in version "v1" cannot be handled as a HTTPRoute: strict decoding error: unknown field "spec.rules[0].filters[0].requestMirror.percent"');
      const applied = await call(fake, 'PATCH', `${ROUTES}/applied?fieldManager=modelctl&fieldValidation=Strict`, route('applied', { percent: 10 }), 'application/apply-patch+yaml');
      assert.equal(applied.status, 500);
      assert.equal(applied.body.message, 'failed to create typed patch object (default/applied; gateway.networking.k8s.io/v1, Kind=HTTPRoute): .spec.rules[0].filters[0].requestMirror.percent: field not declared in schema');
      const crd = fake.get('apiextensions.k8s.io/v1', 'CustomResourceDefinition', '', 'httproutes.gateway.networking.k8s.io');
      assert.equal(crd.metadata.annotations['gateway.networking.k8s.io/bundle-version'], 'v1.2.0');
      const mirror = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.rules.items.properties.filters.items.properties.requestMirror;
      assert.equal(mirror.properties.percent, undefined, 'no percent in the v1.2 schema');
      // Without a mirror the route is fine on v1.2.
      assert.equal((await call(fake, 'PATCH', `${ROUTES}/plain?fieldManager=modelctl&fieldValidation=Strict`, route('plain'), 'application/apply-patch+yaml')).status, 201);
    } finally {
      await fake.close();
    }
  });
});

describe('defaulting of what clients read back', () => {
  test('probe fields, rolling-update bounds one by one, Service clusterIP, route parentRef group/kind, Secret stringData', async () => {
    const fake = await startFakeKube();
    try {
      const d = await call(fake, 'POST', '/apis/apps/v1/namespaces/default/deployments', {
        metadata: { name: 'd' },
        spec: {
          selector: { matchLabels: { a: 'b' } },
          strategy: { rollingUpdate: { maxSurge: 1 } },
          template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i:1', readinessProbe: { httpGet: { port: 80 } } }] } },
        },
      });
      assert.equal(d.status, 201);
      assert.deepEqual(d.body.spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: '25%' } });
      assert.deepEqual(d.body.spec.template.spec.containers[0].readinessProbe, { httpGet: { port: 80, path: '/', scheme: 'HTTP' }, timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3 });
      const s = await call(fake, 'POST', '/api/v1/namespaces/default/services', { metadata: { name: 's' }, spec: { selector: { a: 'b' }, ports: [{ port: 80 }] } });
      assert.match(s.body.spec.clusterIP, /^10\.96\.\d+\.\d+$/);
      assert.equal(s.body.spec.ports[0].targetPort, 80);
      const r = await call(fake, 'POST', ROUTES, route('r'));
      assert.deepEqual(r.body.spec.parentRefs, [{ name: 'public', namespace: 'gateways', group: 'gateway.networking.k8s.io', kind: 'Gateway' }]);
      assert.deepEqual(r.body.spec.rules[0].backendRefs, [{ name: 'm-1-0-0', port: 80, weight: 90, group: '', kind: 'Service' }]);
      const sec = await call(fake, 'POST', '/api/v1/namespaces/default/secrets', { metadata: { name: 'sec' }, stringData: { K: 'v' } });
      assert.deepEqual([sec.body.data, sec.body.stringData, sec.body.type], [{ K: Buffer.from('v').toString('base64') }, undefined, 'Opaque']);
    } finally {
      await fake.close();
    }
  });
});
