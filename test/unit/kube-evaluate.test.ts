import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { UnavailableError, UsageError } from '../../src/core/errors.js';
import type { GateSpec } from '../../src/core/gates.js';
import type { RolloutPlan } from '../../src/core/model.js';
import { checkEvaluationPlan, replay } from '../../src/rollout/evaluation.js';
import { openStore } from '../../src/store/open.js';
import { checkCluster } from '../../src/targets/kubernetes/check.js';
import { KubeApi } from '../../src/targets/kubernetes/client.js';
import { MAX_EVALUATION_ANSWER_BYTES, serviceProxyUrl } from '../../src/targets/kubernetes/evaluate.js';
import { serviceFor } from '../../src/targets/kubernetes/manifests.js';
import { EVALUATION_HEADER, LABELS, versionObjectName } from '../../src/targets/kubernetes/names.js';
import { describePermission } from '../../src/targets/kubernetes/rbac.js';
import { kubernetesSectionSchema, resolveKubernetesSettings } from '../../src/targets/kubernetes/settings.js';
import { KubernetesTarget } from '../../src/targets/kubernetes/target.js';
import { startFakeKube, type FakeKube, type ServiceProxyRequest } from '../fakes/kube/server.js';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { kubernetesDryRun } from '../../src/targets/kubernetes/dry-run.js';
import { bundleYaml, sampleBundle, useScratch } from '../helpers/fixtures.js';
import { pushDirectory } from '../helpers/push.js';

/**
 * Evaluation replay on Kubernetes without real pods: the fake API server's service proxy, held to
 * the real one's rules (service storage ResourceLocation, UpgradeAwareHandler, requestinfo.go), and
 * KubernetesTarget.evaluate through it with the real client. What a real endpoint answers is the
 * onServiceProxy hook's (the cluster-in-a-box test, kube-box-eval, runs real pods).
 */

const NS = 'default';

async function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A Service `name` selecting app=<app>, port 80 named http → targetPort "http". */
async function service(fake: FakeKube, name: string, app: string, selector = true): Promise<void> {
  const core = fake.kubeConfig().makeApiClient(CoreV1Api);
  await core.createNamespacedService({
    namespace: NS,
    body: { metadata: { name }, spec: { ...(selector ? { selector: { app } } : {}), ports: [{ name: 'http', port: 80, targetPort: 'http' as never }] } },
  });
}

/** A pod of app=<app> with a container port named http (8080); image img:not-ready never turns ready. */
async function pod(fake: FakeKube, name: string, app: string, image = 'img:1'): Promise<void> {
  const core = fake.kubeConfig().makeApiClient(CoreV1Api);
  await core.createNamespacedPod({ namespace: NS, body: { metadata: { name, labels: { app } }, spec: { containers: [{ name: 'c', image, ports: [{ name: 'http', containerPort: 8080 }] }] } } });
  await waitFor(`pod ${name} running`, () => fake.get('v1', 'Pod', NS, name)?.status?.phase === 'Running');
}

async function post(fake: FakeKube, id: string, path: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(`${fake.url}/api/v1/namespaces/${NS}/services/${id}/proxy${path}`, { method: init.method ?? 'POST', redirect: 'manual', headers: { authorization: 'Bearer t', ...init.headers }, ...(init.body !== undefined ? { body: init.body } : {}) });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, headers: res.headers };
}

describe("the fake API server's service proxy: as strict as the real one", () => {
  let fake: FakeKube;
  const seen: ServiceProxyRequest[] = [];
  before(async () => {
    fake = await startFakeKube();
    fake.controller.behave({ image: 'img:not-ready' }, 'never-ready');
    fake.onServiceProxy((req) => {
      seen.push(req);
      return { status: 201, headers: { 'x-model': 'echo', 'access-control-allow-origin': '*' }, body: { method: req.method, path: req.path, q: req.query.get('q'), port: req.port, pod: req.pod.metadata.name, body: req.body.toString('utf8') } };
    });
    await service(fake, 'echo', 'echo');
    await pod(fake, 'echo-1', 'echo');
    await service(fake, 'empty', 'nobody');
    await service(fake, 'warming', 'warming');
    await pod(fake, 'warming-1', 'warming', 'img:not-ready');
    await service(fake, 'manual', 'manual', false);
  });
  after(() => fake.close());

  test('a POST reaches a ready endpoint: body, query and method through; status and headers back (CORS headers removed)', async () => {
    seen.length = 0;
    // (fetch resolves "." and ".." itself; a doubled slash reaches the server, which cleans it.)
    const r = await post(fake, 'echo:http', '/models//predict?q=1', { body: '{"text":"fine"}', headers: { 'content-type': 'application/json', [EVALUATION_HEADER]: '1' } });
    assert.equal(r.status, 201);
    assert.deepEqual(r.json, { method: 'POST', path: '/models/predict', q: '1', port: 8080, pod: 'echo-1', body: '{"text":"fine"}' });
    assert.equal(r.headers.get('x-model'), 'echo');
    assert.equal(r.headers.get('access-control-allow-origin'), null);
    const h = seen[0]!.headers;
    assert.equal(h[EVALUATION_HEADER], '1', 'the client\'s own headers reach the endpoint');
    assert.equal(h.authorization, undefined, 'the credentials do not (the authentication filter removes them)');
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h['x-forwarded-uri'], `/api/v1/namespaces/${NS}/services/echo:http/proxy/models/predict`);
    // Authorized as the real server does: POST is "create" on services/proxy.
    const rec = fake.requests.at(-1)!;
    assert.deepEqual([rec.verb, rec.resource, rec.subresource, rec.name], ['create', 'services', 'proxy', 'echo']);
  });

  test('a port number stands for the Service port of that number (its name); a trailing slash is kept', async () => {
    const r = await post(fake, 'echo:80', '/predict/');
    assert.equal(r.status, 201);
    assert.equal(r.json.path, '/predict/');
    assert.equal(r.json.port, 8080);
  });

  test("the real server's refusals, status and message", async () => {
    const cases: Array<[string, string, number, string]> = [
      ['a:b:c:d', '/x', 400, 'invalid service request "a:b:c:d"'],
      ['ftp:echo:80', '/x', 400, 'invalid service request "ftp:echo:80"'],
      [':80', '/x', 400, 'invalid service request ":80"'],
      ['ghost:http', '/x', 404, 'endpoints "ghost" not found'],
      ['ghost:80', '/x', 404, 'services "ghost" not found'],
      ['echo:81', '/x', 503, 'no service port 81 found for service "echo"'],
      ['manual:http', '/x', 404, 'endpoints "manual" not found'],
      ['empty:http', '/x', 503, 'no endpoints available for service "empty"'],
      // A pod that is not ready is a notReadyAddress: the subsets are not empty, but nothing serves.
      ['warming:http', '/x', 503, 'no endpoints available for service "warming:http"'],
      ['echo:grpc', '/x', 503, 'no endpoints available for service "echo:grpc"'],
      // Without a port the name is "", which this Service's only port (named http) is not.
      ['echo', '/x', 503, 'no endpoints available for service "echo"'],
    ];
    seen.length = 0;
    for (const [id, path, status, message] of cases) {
      const r = await post(fake, id, path, { body: '{}' });
      assert.equal(r.status, status, `${id}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.kind, 'Status', id);
      assert.equal(r.json.message, message, id);
    }
    assert.equal(seen.length, 0, 'no refused request reached an endpoint');
  });

  test('methods: PATCH is not proxied (405); an empty path of a GET is redirected to ".../proxy/"', async () => {
    const patch = await post(fake, 'echo:http', '/predict', { method: 'PATCH', body: '{}' });
    assert.equal(patch.status, 405);
    const get = await post(fake, 'echo:http', '', { method: 'GET' });
    assert.equal(get.status, 301);
    assert.equal(get.headers.get('location'), `/api/v1/namespaces/${NS}/services/echo:http/proxy/`);
  });

  test('RBAC: create on services/proxy, named in the 403 as the real server names it, and in access reviews', async () => {
    const locked = await startFakeKube();
    try {
      locked.forbid('create', 'services/proxy');
      await service(locked, 'echo', 'echo');
      const r = await post(locked, 'echo:http', '/predict', { body: '{}' });
      assert.equal(r.status, 403);
      assert.equal(r.json.message, `services "echo:http" is forbidden: User "system:serviceaccount:ci:modelctl" cannot create resource "services/proxy" in API group "" in the namespace "${NS}"`);
      const get = await post(locked, 'echo:http', '/predict', { method: 'GET' });
      assert.notEqual(get.status, 403, 'GET is "get", a different permission');
    } finally {
      await locked.close();
    }
  });
});

describe('KubernetesTarget.evaluate: one case to one version, through its Service', () => {
  const scratch = useScratch();
  let fake: FakeKube;
  let target: KubernetesTarget;
  let answer: (req: ServiceProxyRequest) => Promise<{ status: number; headers?: Record<string, string>; body: unknown }>;
  const seen: ServiceProxyRequest[] = [];
  const settings = resolveKubernetesSettings(kubernetesSectionSchema.parse({ route: { parentRefs: [{ name: 'public', namespace: 'gateways' }] } }), { namespace: NS, storeUrl: 's3://models/prod', where: 'modelctl.yaml' });
  const ref = { model: 'sentiment', version: '1.1.0', digest: `sha256:${'a'.repeat(64)}` };
  const svcName = versionObjectName(ref.model, ref.version);

  before(async () => {
    fake = await startFakeKube();
    fake.onServiceProxy(async (req) => {
      seen.push(req);
      return answer(req);
    });
    const api = new KubeApi(fake.kubeConfig(NS), { explainPermission: describePermission });
    await api.apply(serviceFor({ ref, settings }));
    // A pod as the version's Deployment makes it: the version's labels, the meter's port named http.
    const core = fake.kubeConfig().makeApiClient(CoreV1Api);
    const labels = fake.get('v1', 'Service', NS, svcName).spec.selector as Record<string, string>;
    assert.ok(labels[LABELS.model]);
    await core.createNamespacedPod({ namespace: NS, body: { metadata: { name: `${svcName}-abc`, labels }, spec: { containers: [{ name: 'meter', image: 'img:1', ports: [{ name: 'http', containerPort: 8080 }] }] } } });
    await waitFor('pod ready', () => (fake.get('v1', 'Pod', NS, `${svcName}-abc`)?.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True'));
    target = new KubernetesTarget({ api, settings, store: await openStore(`file://${await scratch.fresh('store')}`, { s3PathStyle: false }) });
  });
  after(async () => {
    await fake.close();
    await scratch.cleanup();
  });

  test('the service proxy URL keeps a server path prefix and escapes nothing it should not', () => {
    assert.equal(serviceProxyUrl('https://rancher.example/k8s/clusters/c-1/', { namespace: 'ml', service: 'sentiment-1-1-0', port: 'http' }, '/predict?x=1'), 'https://rancher.example/k8s/clusters/c-1/api/v1/namespaces/ml/services/sentiment-1-1-0:http/proxy/predict?x=1');
  });

  test('POSTs the case as JSON to the version\'s Service, marked as a replay; answers status, raw body and latency', async () => {
    seen.length = 0;
    answer = async (req) => ({ status: 200, body: { label: 'positive', echo: JSON.parse(req.body.toString('utf8')) } });
    const a = await target.evaluate(ref.model, ref.version, { path: '/predict', body: { text: 'I loved it' }, timeoutMs: 5000 });
    assert.equal(a.status, 200);
    assert.deepEqual(JSON.parse(a.body.toString('utf8')), { label: 'positive', echo: { text: 'I loved it' } });
    assert.ok(a.latencyMs > 0 && a.latencyMs < 5000);
    const req = seen[0]!;
    assert.equal(req.method, 'POST');
    assert.equal(req.path, '/predict');
    assert.equal(req.service.metadata.name, svcName);
    assert.equal(req.port, 8080, "the Service's targetPort: the meter's traffic port");
    assert.equal(req.headers[EVALUATION_HEADER], '1');
    assert.match(String(req.headers['content-type']), /application\/json/);
    const rec = fake.requests.find((r) => r.subresource === 'proxy')!;
    assert.deepEqual([rec.method, rec.path], ['POST', `/api/v1/namespaces/${NS}/services/${svcName}:http/proxy/predict`]);
  });

  test("the version's own errors are answers (status kept); the API server's are thrown, saying why", async () => {
    answer = async () => ({ status: 500, body: { error: 'model crashed' } });
    const a = await target.evaluate(ref.model, ref.version, { path: '/predict', body: {}, timeoutMs: 5000 });
    assert.equal(a.status, 500);
    await assert.rejects(target.evaluate(ref.model, '9.9.9', { path: '/predict', body: {}, timeoutMs: 5000 }), /the API server could not proxy to Service default\/sentiment-9-9-9 \(HTTP 404 NotFound\): endpoints "sentiment-9-9-9" not found/);
  });

  test('bounded: the timeout, the caller\'s signal, and answers over 1 MiB', async () => {
    answer = () => new Promise((r) => setTimeout(() => r({ status: 200, body: { late: true } }), 1500));
    const t0 = performance.now();
    await assert.rejects(target.evaluate(ref.model, ref.version, { path: '/predict', body: {}, timeoutMs: 200 }), (e: Error) => e.name === 'TimeoutError');
    assert.ok(performance.now() - t0 < 1000, 'gave up at the timeout');
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 100);
    await assert.rejects(target.evaluate(ref.model, ref.version, { path: '/predict', body: {}, timeoutMs: 5000, signal: stop.signal }), (e: Error) => e.name === 'AbortError');
    assert.equal(MAX_EVALUATION_ANSWER_BYTES, 1024 * 1024);
    answer = async () => ({ status: 200, body: { pad: 'x'.repeat(MAX_EVALUATION_ANSWER_BYTES) } });
    await assert.rejects(target.evaluate(ref.model, ref.version, { path: '/predict', body: {}, timeoutMs: 5000 }), /larger than 1048576 bytes/);
    answer = async () => ({ status: 200, body: { pad: 'x'.repeat(MAX_EVALUATION_ANSWER_BYTES - 100) } });
    const fits = await target.evaluate(ref.model, ref.version, { path: '/predict', body: {}, timeoutMs: 5000 });
    assert.equal(fits.status, 200);
  });

  test('through replay(): errors become answers with status 0, in case order', async () => {
    answer = async (req) => {
      const { n } = JSON.parse(req.body.toString('utf8')) as { n: number };
      if (n === 2) await new Promise((r) => setTimeout(r, 800));
      return { status: n === 3 ? 503 : 200, body: { n } };
    };
    const cases = [0, 1, 2, 3, 4].map((n) => ({ file: 'eval/x.jsonl', line: n + 1, path: '/predict', request: { n }, expect: [] }));
    const out = await replay(target, ref.model, ref.version, cases, { concurrency: 3, timeoutMs: 300 });
    assert.deepEqual(out.map((a) => a.status), [200, 200, 0, 503, 200]);
    assert.deepEqual(out.map((a) => (a.body as { n?: number } | undefined)?.n), [0, 1, undefined, 3, 4]);
    assert.equal(out[2]!.error, 'no answer within 300 ms');
    assert.equal(out[3]!.error, 'HTTP 503');
  });

  /** `deploy --target kubernetes --dry-run` of a real pushed bundle against the fake cluster, with `gates`. */
  const dryRun = async (gates: GateSpec[]) => {
    const store = await openStore(`file://${await scratch.fresh('dry-store')}`, { s3PathStyle: false });
    const files = sampleBundle({ version: '1.1.0' });
    files['bundle.yaml'] = bundleYaml('sentiment', '1.1.0', 'serve:\n  command: [node, serve.mjs]\n');
    const digest = await pushDirectory(store, await scratch.bundle(files), { version: '1.1.0' });
    const kubeconfig = path.join(await scratch.fresh('kc'), 'config');
    await writeFile(kubeconfig, fake.kubeconfigYaml(NS));
    const plan: RolloutPlan = { steps: [50, 100], intervalMs: 1000, checkEveryMs: 100, shadowPercent: 0, shadowDurationMs: 0, shadowOnly: false, gates, readyTimeoutMs: 1000 };
    return kubernetesDryRun({ store, config: { section: kubernetesSectionSchema.parse({ store: 's3://models/prod', route: { parentRefs: [{ name: 'public', namespace: 'gateways' }] } }), file: 'modelctl.yaml' }, flags: { kubeconfig }, ref: { model: 'sentiment', version: '1.1.0', digest }, plan });
  };
  const EVAL: GateSpec[] = [{ name: 'accuracy', kind: 'eval', metric: 'accuracy', min: 0.8 } as GateSpec];

  test('deploy --dry-run with eval gates asks the access review checkPlan asks, and says it is allowed', async () => {
    const from = fake.requests.length;
    const d = await dryRun(EVAL);
    assert.ok(d.fromCluster.includes(`"create" on services/proxy is allowed in ${NS} (SelfSubjectAccessReview): the evaluation replay can reach the version Services`), d.fromCluster.join('\n'));
    assert.equal(fake.requests.slice(from).filter((r) => r.resource === 'selfsubjectaccessreviews').length, 1);
    const plain = fake.requests.length;
    await dryRun([]);
    assert.equal(fake.requests.slice(plain).filter((r) => r.resource === 'selfsubjectaccessreviews').length, 0, 'nothing asked without eval gates');
  });

  test('a forbidden service proxy: refused before the rollout by checkPlan, and named in each case\'s error', async () => {
    const gates: GateSpec[] = [{ name: 'accuracy', kind: 'eval', metric: 'accuracy', min: 0.8 } as GateSpec];
    const plan: RolloutPlan = { steps: [50, 100], intervalMs: 1000, checkEveryMs: 100, shadowPercent: 0, shadowDurationMs: 0, shadowOnly: false, gates, readyTimeoutMs: 1000 };
    await target.checkPlan(ref.model, plan);
    fake.forbid('create', 'services/proxy');
    await assert.rejects(target.checkPlan(ref.model, plan), (e: unknown) => e instanceof UnavailableError && /does not allow "create" on services\/proxy in namespace default/.test(e.message) && /modelctl kubernetes rbac/.test(e.hint ?? ''));
    await target.checkPlan(ref.model, { ...plan, gates: [] }); // nothing asked without eval gates
    await assert.rejects(target.evaluate(ref.model, ref.version, { path: '/predict', body: {}, timeoutMs: 5000 }), /HTTP 403 Forbidden.*needs "create" on services\/proxy \(granted by rule \d of the modelctl Role/);
    // `kubernetes check` asks for it with the rest of the Role.
    const kc = fake.kubeConfig(NS);
    const api = new KubeApi(kc, { explainPermission: describePermission });
    const report = await checkCluster({ api, conn: { kc, contextNamespace: NS, context: 'fake', server: fake.url, source: 'test' }, settings, target });
    assert.deepEqual(report.checks.find((c) => c.name === 'permissions'), {
      name: 'permissions',
      ok: false,
      detail: `not allowed in ${NS}: create services/proxy`,
      hint: `apply the Role: modelctl kubernetes rbac --namespace ${NS} --service-account <who runs modelctl> | kubectl apply -f -`,
      exitCode: 9,
    });
  });

  test('deploy --dry-run with eval gates and a forbidden service proxy: refused like checkPlan (exit 9, the Role to apply)', async () => {
    // (services/proxy was forbidden by the test above.)
    await assert.rejects(dryRun(EVAL), (e: unknown) => e instanceof UnavailableError && e.exitCode === 9 && /does not allow "create" on services\/proxy in namespace default/.test(e.message) && /modelctl kubernetes rbac --namespace default/.test(e.hint ?? ''));
    const d = await dryRun([]);
    assert.ok(d.steps.length > 0, 'without eval gates the dry run does not ask');
  });

  test('checkEvaluationPlan: the Kubernetes target replays; a target without evaluate() is still refused', () => {
    const gates: GateSpec[] = [{ name: 'accuracy', kind: 'eval', metric: 'accuracy', min: 0.8 } as GateSpec];
    const input = { cases: [{ file: 'eval/x.jsonl', line: 1, path: '/predict', request: {}, expect: [] }] };
    checkEvaluationPlan(gates, input, target, 'sentiment@1.1.0');
    assert.throws(() => checkEvaluationPlan(gates, input, { name: 'elsewhere' }, 'sentiment@1.1.0'), (e: unknown) => e instanceof UsageError && /target elsewhere cannot replay an evaluation set yet/.test(e.message));
  });
});
