import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { ExitCode, UsageError } from '../../src/core/errors.js';
import { KubeApi } from '../../src/targets/kubernetes/client.js';
import { explainUnknownFields, httpRouteCrdFacts, parseWarnings, unknownFieldsOf } from '../../src/targets/kubernetes/field-validation.js';
import { describeGatewaySupport, gatewayApiSupport, preflightRoute } from '../../src/targets/kubernetes/gateway-support.js';
import { httpRouteFor } from '../../src/targets/kubernetes/manifests.js';
import { kubernetesSectionSchema, resolveKubernetesSettings } from '../../src/targets/kubernetes/settings.js';
import type { RolloutPlan } from '../../src/core/model.js';
import { openStore } from '../../src/store/open.js';
import { KubernetesTarget } from '../../src/targets/kubernetes/target.js';
import { REPO_ROOT, useScratch } from '../helpers/fixtures.js';
import { listenLocal, stopServer } from '../helpers/http-server.js';

/**
 * fieldValidation=Strict on every write, the Warning header of every answer, and what a cluster
 * whose Gateway API predates RequestMirror.percent (v1.2 and older) makes of a shadow.
 *
 * The CRDs are the upstream ones (kubernetes-sigs/gateway-api v1.2.1 and v1.3.0, standard channel,
 * trimmed to what is read). The in-test API server answers in the real server's words: the
 * structured-merge-diff refusal of a server-side apply — a 500 whatever fieldValidation says
 * (`failed to create typed patch object (…): .spec…percent: field not declared in schema`,
 * kubernetes#122480, #139253) — and the RFC 7234 Warning header (`299 - "…"`). The fake API server
 * of this branch (test/fakes/kube) has no field validation; these semantics are exercised here.
 */

const scratch = useScratch();
after(scratch.cleanup);

const crd = (v: string) => parse(readFileSync(path.join(REPO_ROOT, 'test/fixtures/gateway-api', `httproutes-${v}.yaml`), 'utf8'));
const SETTINGS = resolveKubernetesSettings(kubernetesSectionSchema.parse({ route: { parentRefs: [{ name: 'public', namespace: 'gateways' }] } }), {
  namespace: 'ml',
  storeUrl: 's3://models/prod',
});

describe('unknown fields in the API server\'s words', () => {
  test('Strict refusals (JSON and server-side apply) and Warn warnings name the fields', () => {
    assert.deepEqual(unknownFieldsOf('strict decoding error: unknown field "spec.foo", unknown field "spec.rules[0].bar"'), ['spec.foo', 'spec.rules[0].bar']);
    assert.deepEqual(
      unknownFieldsOf('failed to create typed patch object (ml/sentiment; gateway.networking.k8s.io/v1, Kind=HTTPRoute): .spec.rules[0].filters[0].requestMirror.percent: field not declared in schema'),
      ['spec.rules[0].filters[0].requestMirror.percent'],
    );
    assert.deepEqual(unknownFieldsOf('Deployment.apps "x" is invalid: spec.replicas: Invalid value: -1'), []);
  });

  test('Warning headers: RFC 7234 form, several joined by ", ", escaped quotes kept', () => {
    assert.deepEqual(parseWarnings('299 - "unknown field \\"spec.rules[0].filters[0].requestMirror.percent\\"", 299 - "policy/v1beta1 PodSecurityPolicy is deprecated"'), [
      'unknown field "spec.rules[0].filters[0].requestMirror.percent"',
      'policy/v1beta1 PodSecurityPolicy is deprecated',
    ]);
    assert.deepEqual(parseWarnings(undefined), []);
  });

  test('a mirror percent the cluster does not know says which Gateway API brings it and what to do', () => {
    const e = explainUnknownFields('HTTPRoute sentiment in namespace ml', '.spec.rules[0].filters[1].requestMirror.percent: field not declared in schema')!;
    assert.match(e.message, /RequestMirror percent needs Gateway API v1\.3\.0\+ standard channel \(HTTPRouteRequestPercentageMirror\)/);
    assert.match(e.message, /\.spec\.rules\[0\]\.filters\[1\]\.requestMirror\.percent of HTTPRoute sentiment/);
    assert.match(e.hint, /v1\.3\.0\/standard-install\.yaml/);
    assert.match(e.hint, /without --shadow/);
    assert.match(explainUnknownFields('Deployment x', 'strict decoding error: unknown field "spec.template.spec.foo"')!.message, /does not know \.spec\.template\.spec\.foo of Deployment x/);
  });

  test('the HTTPRoute CRD tells its version and whether it has requestMirror.percent (upstream v1.2.1 vs v1.3.0)', () => {
    assert.deepEqual(httpRouteCrdFacts(crd('v1.2.1')), { bundleVersion: 'v1.2.1', channel: 'standard', mirrorPercent: false });
    assert.deepEqual(httpRouteCrdFacts(crd('v1.3.0')), { bundleVersion: 'v1.3.0', channel: 'standard', mirrorPercent: true });
  });
});

/** A minimal API server with the real answers for what these tests send. */
interface Behaviour {
  /** The installed HTTPRoute CRD, or 403 (the namespaced Role cannot read CRDs). */
  crd: object | 403;
  /** The server refuses requestMirror.percent under Strict (Gateway API < v1.3). */
  oldGatewayApi: boolean;
  warning?: string;
}

describe('KubeApi against an API server with field validation', () => {
  let server: http.Server;
  let port: number;
  const seen: Array<{ method: string; path: string; query: Record<string, string> }> = [];
  let behaviour: Behaviour = { crd: 403, oldGatewayApi: true };

  before(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const u = new URL(req.url ?? '/', 'http://x');
        seen.push({ method: req.method ?? '', path: u.pathname, query: Object.fromEntries(u.searchParams) });
        const json = (status: number, o: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json', ...(behaviour.warning ? { warning: behaviour.warning } : {}) });
          res.end(JSON.stringify(o));
        };
        const status = (code: number, reason: string, message: string) => json(code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason, code });
        if (u.pathname === '/apis') return json(200, { kind: 'APIGroupList', groups: [{ name: 'gateway.networking.k8s.io', versions: [{ groupVersion: 'gateway.networking.k8s.io/v1', version: 'v1' }] }] });
        if (u.pathname === '/apis/gateway.networking.k8s.io/v1')
          return json(200, { kind: 'APIResourceList', groupVersion: 'gateway.networking.k8s.io/v1', resources: [{ name: 'httproutes', namespaced: true, kind: 'HTTPRoute', verbs: ['get', 'patch'] }] });
        if (u.pathname === '/apis/apiextensions.k8s.io/v1')
          return json(200, { kind: 'APIResourceList', groupVersion: 'apiextensions.k8s.io/v1', resources: [{ name: 'customresourcedefinitions', namespaced: false, kind: 'CustomResourceDefinition', verbs: ['get'] }] });
        if (u.pathname === '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/httproutes.gateway.networking.k8s.io') {
          if (behaviour.crd === 403)
            return status(403, 'Forbidden', 'customresourcedefinitions.apiextensions.k8s.io "httproutes.gateway.networking.k8s.io" is forbidden: User "ci" cannot get resource "customresourcedefinitions" in API group "apiextensions.k8s.io" at the cluster scope');
          return json(200, behaviour.crd);
        }
        const route = /^\/apis\/gateway\.networking\.k8s\.io\/v1\/namespaces\/([^/]+)\/httproutes\/([^/]+)$/.exec(u.pathname);
        if (route && req.method === 'PATCH') {
          const obj = JSON.parse(body);
          const filters: Array<{ type: string; requestMirror?: { percent?: number } }> = obj.spec.rules[0].filters ?? [];
          const at = filters.findIndex((f) => f.requestMirror?.percent !== undefined);
          // Server-side apply types the patch against the CRD schema whatever fieldValidation says, and
          // structured-merge-diff's refusal comes back as a 500 without a reason (kubernetes#122480, #139253).
          const apply = req.headers['content-type'] === 'application/apply-patch+yaml';
          if (behaviour.oldGatewayApi && at >= 0 && (apply || u.searchParams.get('fieldValidation') === 'Strict')) {
            const message = apply
              ? `failed to create typed patch object (${route[1]}/${route[2]}; gateway.networking.k8s.io/v1, Kind=HTTPRoute): .spec.rules[0].filters[${at}].requestMirror.percent: field not declared in schema`
              : `strict decoding error: unknown field "spec.rules[0].filters[${at}].requestMirror.percent"`;
            return apply ? json(500, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, code: 500 }) : status(400, 'BadRequest', message);
          }
          return json(200, { ...obj, metadata: { ...obj.metadata, resourceVersion: '7', generation: 1 } });
        }
        status(404, 'NotFound', `the server could not find the requested resource (${req.method} ${u.pathname})`);
      });
    });
    port = await listenLocal(server);
  });
  after(() => stopServer(server));

  const apiOf = (warnings: string[] = []) => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    // Retries on (a 5xx is normally retried: the unknown-field 500 must not be), without waiting.
    return new KubeApi(kc, { retry: { attempts: 4 }, sleep: async () => {}, onWarning: (w) => warnings.push(w) });
  };

  test('a write is sent with fieldValidation=Strict; the refusal of requestMirror.percent (SSA: a 500) is a usage error (exit 2) naming Gateway API v1.3.0', async () => {
    behaviour = { crd: 403, oldGatewayApi: true };
    seen.length = 0;
    const route = httpRouteFor({ model: 'sentiment', settings: SETTINGS, split: { weights: { '1.0.0': 100 }, mirror: { version: '1.1.0', percent: 5 } } });
    const err = await apiOf().apply(route).then(
      () => assert.fail('the server refused it'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof UsageError, String(err));
    assert.equal(err.exitCode, ExitCode.usage);
    assert.match(err.message, /RequestMirror percent needs Gateway API v1\.3\.0\+ standard channel \(HTTPRouteRequestPercentageMirror\)/);
    assert.match(err.hint ?? '', /standard-install\.yaml/);
    const patches = seen.filter((s) => s.method === 'PATCH');
    assert.equal(patches.length, 1, 'the 500 of a field the schema lacks is not retried');
    assert.equal(patches[0]!.query.fieldValidation, 'Strict');
    assert.equal(patches[0]!.query.fieldManager, 'modelctl');
    // Without the percent the same write passes (canary weights work on every v1 Gateway API).
    const plain = httpRouteFor({ model: 'sentiment', settings: SETTINGS, split: { weights: { '1.0.0': 90, '1.1.0': 10 }, mirror: null } });
    assert.equal(((await apiOf().apply(plain)).metadata as { resourceVersion?: string }).resourceVersion, '7');
  });

  test('every Warning header reaches onWarning, once per text', async () => {
    behaviour = { crd: 403, oldGatewayApi: false, warning: '299 - "spec.foo is deprecated; use spec.bar"' };
    const warnings: string[] = [];
    const api = apiOf(warnings);
    const route = httpRouteFor({ model: 'sentiment', settings: SETTINGS, split: { weights: { '1.0.0': 100 }, mirror: null } });
    await api.apply(route);
    await api.apply(route);
    assert.deepEqual(warnings, ['spec.foo is deprecated; use spec.bar']);
  });

  test('shadow pre-flight: CRDs forbidden → a server-side dry run (dryRun=All, Strict) decides; nothing is persisted', async () => {
    behaviour = { crd: 403, oldGatewayApi: true };
    seen.length = 0;
    const old = await gatewayApiSupport(apiOf(), 'sentiment', SETTINGS, 5);
    assert.equal(old.mirrorPercent, false);
    assert.match(old.crdUnreadable ?? '', /forbidden.*namespaced/);
    assert.match(old.refusal?.message ?? '', /Gateway API v1\.3\.0\+/);
    const dry = seen.filter((s) => s.method === 'PATCH');
    assert.equal(dry.length, 1);
    assert.equal(dry[0]!.query.dryRun, 'All');
    assert.equal(dry[0]!.query.fieldValidation, 'Strict');
    assert.match(describeGatewaySupport(old), /version unknown: reading the CRD was forbidden.*RequestMirror percent NOT supported/);

    behaviour = { crd: 403, oldGatewayApi: false };
    const ok = await gatewayApiSupport(apiOf(), 'sentiment', SETTINGS, 5);
    assert.equal(ok.mirrorPercent, true);
    assert.equal(ok.refusal, undefined);
  });

  test('shadow pre-flight: a readable CRD gives the version; its schema wins over a server that dropped the field', async () => {
    behaviour = { crd: crd('v1.3.0'), oldGatewayApi: false };
    const v13 = await gatewayApiSupport(apiOf(), 'sentiment', SETTINGS, 5);
    assert.deepEqual([v13.crd?.bundleVersion, v13.mirrorPercent], ['v1.3.0', true]);
    assert.match(describeGatewaySupport(v13), /^Gateway API v1\.3\.0 standard channel; RequestMirror percent supported/);
    // A v1.2.1 CRD on a server that accepted the dry run (too old for fieldValidation: drops silently).
    behaviour = { crd: crd('v1.2.1'), oldGatewayApi: false };
    const v12 = await gatewayApiSupport(apiOf(), 'sentiment', SETTINGS, 5);
    assert.equal(v12.mirrorPercent, false);
    assert.match(v12.refusal?.message ?? '', /HTTPRoute CRD \(Gateway API v1\.2\.1 standard channel\) has no requestMirror\.percent.*v1\.3\.0\+/);
    assert.equal(v12.refusal?.exitCode, ExitCode.usage);
  });

  test('a shadow deploy on Gateway API < v1.3 is refused by the target before anything is written or any traffic moves', async () => {
    behaviour = { crd: 403, oldGatewayApi: true };
    seen.length = 0;
    const store = await openStore(`file://${await scratch.fresh('store')}`, { s3PathStyle: false });
    const target = new KubernetesTarget({ api: apiOf(), settings: SETTINGS, store });
    const shadow: RolloutPlan = { steps: [10, 100], intervalMs: 1000, checkEveryMs: 100, shadowPercent: 5, shadowDurationMs: 1000, shadowOnly: false, gates: [], readyTimeoutMs: 1000 };
    await assert.rejects(target.checkPlan('sentiment', shadow), (e: unknown) => e instanceof UsageError && /RequestMirror percent needs Gateway API v1\.3\.0\+/.test(e.message));
    const writes = seen.filter((q) => ['POST', 'PUT', 'PATCH', 'DELETE'].includes(q.method));
    assert.deepEqual(writes.map((q) => [q.method, q.query.dryRun]), [['PATCH', 'All']], 'the only write was the dry run');
    // Without a shadow nothing is asked: canary weights work on every v1 Gateway API.
    seen.length = 0;
    await target.checkPlan('sentiment', { ...shadow, shadowPercent: 0, shadowDurationMs: 0 });
    assert.deepEqual(seen.filter((q) => q.method === 'PATCH'), []);
  });

  test('a policy of the cluster (admission webhook) is a usage error naming it, not a missing permission', () => {
    const err = apiOf().translate(
      { verb: 'patch', kind: 'Deployment', namespace: 'ml', name: 'sentiment-1-4-0' },
      { code: 400, body: { message: 'admission webhook "validation.gatekeeper.sh" denied the request: [require-memory-limit] container <model> has no memory limit' } },
    );
    assert.ok(err instanceof UsageError, String(err));
    assert.match(err.message, /a policy of the cluster refused to patch Deployment sentiment-1-4-0 in namespace ml: admission webhook/);
    assert.doesNotMatch(err.hint ?? '', /kubernetes rbac/);
  });

  test('the pre-flight route is the model\'s own route with a mirror', () => {
    const r = preflightRoute('sentiment', SETTINGS, 5);
    assert.equal(r.metadata.name, 'sentiment');
    assert.deepEqual(r.spec.parentRefs, [{ name: 'public', namespace: 'gateways' }]);
    assert.equal(r.spec.rules[0]!.filters!.find((f) => f.type === 'RequestMirror')?.type, 'RequestMirror');
  });
});
