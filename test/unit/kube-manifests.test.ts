import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Lease } from 'kubernetes-models/coordination.k8s.io/v1/Lease';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { serveSpecSchema, type ServeSpec } from '../../src/bundle/serve.js';
import { UsageError } from '../../src/core/errors.js';
import type { TrafficSplit } from '../../src/core/model.js';
import {
  deploymentFor,
  httpRouteFor,
  leaseFor,
  LEDGER_KEY,
  ledgerConfigMapFor,
  mergeResources,
  microTime,
  modelServiceFor,
  parseMicroTime,
  serviceFor,
} from '../../src/targets/kubernetes/manifests.js';
import { ANNOTATIONS, LABELS, versionLabels, versionObjectName, versionSelector } from '../../src/targets/kubernetes/names.js';
import { resourceOf } from '../../src/targets/kubernetes/client.js';
import { describePermission, permissionRule, RBAC_RULES, roleBindingFor, roleFor } from '../../src/targets/kubernetes/rbac.js';
import { describeReplicaPlan, replicaPlan } from '../../src/targets/kubernetes/replicas.js';
import { kubernetesSectionSchema, resolveKubernetesSettings, type KubernetesSettings } from '../../src/targets/kubernetes/settings.js';

/**
 * The address a container's process binds for `port`, read from what modelctl tells it: the meter's
 * --listen/--api host:port arguments, the model's HOST/PORT environment. undefined: not this port.
 */
function bindHostOf(c: { args?: string[]; env?: Array<{ name: string; value?: string }> }, port: number): string | undefined {
  const args = c.args ?? [];
  for (const flag of ['--listen', '--api']) {
    const at = args.indexOf(flag);
    if (at < 0) continue;
    const [host, p] = args[at + 1]!.split(/:(?=\d+$)/);
    if (Number(p) === port) return host;
  }
  const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
  if (env.PORT !== undefined && Number(env.PORT) === port) return env.HOST ?? '0.0.0.0';
  return undefined;
}

// ── fixtures ────────────────────────────────────────────────────────────────────────────────

const DIGEST = `sha256:${'ab12'.repeat(16)}`;
const LONG_MODEL = `m${'x'.repeat(61)}z`; // 63 chars: the longest bundle name

function settingsOf(section: unknown): KubernetesSettings {
  return resolveKubernetesSettings(kubernetesSectionSchema.parse(section), { namespace: 'ml-serving', storeUrl: 's3://models/prod' });
}

const SETTINGS = {
  plain: settingsOf({}),
  gpu: settingsOf({
    image: 'ghcr.io/acme/modelctl:1.2.3',
    servingImage: 'ghcr.io/acme/serving-cuda:12.4',
    imagePullPolicy: 'IfNotPresent',
    replicas: 3,
    warmReplicas: 1,
    resources: { requests: { cpu: '2', memory: '8Gi' }, limits: { 'nvidia.com/gpu': 1, memory: '16Gi' } },
    nodeSelector: { 'cloud.google.com/gke-accelerator': 'nvidia-l4' },
    tolerations: [
      { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' },
      { key: 'dedicated', operator: 'Equal', value: 'ml', effect: 'NoExecute', tolerationSeconds: 300 },
    ],
    serviceAccountName: 'model-runner',
    imagePullSecrets: ['regcred', 'ghcr'],
    storeSecret: 'modelctl-store',
    progressDeadline: '15m',
    route: {
      name: 'public-sentiment',
      parentRefs: [{ name: 'public-gateway', namespace: 'gateways', sectionName: 'https' }],
      hostnames: ['models.example.com'],
      path: '/sentiment',
    },
  }),
};

function serveOf(extra: Record<string, unknown> = {}): ServeSpec {
  return serveSpecSchema.parse({ command: ['node', 'serve.mjs'], scoreField: 'score', env: { LOG_LEVEL: 'info', WORKERS: 2 }, ...extra });
}

const VERSIONS = ['1.0.0', '2.0.0-rc.1+build.7', '10.20.30-alpha.beta.gamma.delta.epsilon+sha.0123456789abcdef0123456789abcdef'];
const MODELS = ['sentiment', LONG_MODEL, '4chan-filter']; // a bundle name may start with a digit; a Service name may not

function validate(model: { validate(): void }, what: string): void {
  try {
    model.validate();
  } catch (err) {
    assert.fail(`${what} does not match the upstream schema: ${(err as Error).message}`);
  }
}

const DNS_1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Service names (and so every name we derive from a model): a letter first. */
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

function assertName(name: string | undefined, what: string): void {
  assert.ok(name, `${what}: no name`);
  assert.ok(name.length <= 63, `${what}: "${name}" is ${name.length} chars (> 63)`);
  assert.match(name, DNS_1123_LABEL, `${what}: "${name}" is not a DNS-1123 label`);
  assert.match(name, DNS_1035_LABEL, `${what}: "${name}" is not a DNS-1035 label (Services need a letter first)`);
}

function assertLabels(labels: Record<string, string> | undefined, what: string): void {
  assert.ok(labels && Object.keys(labels).length > 0, `${what}: no labels`);
  for (const [k, v] of Object.entries(labels)) {
    assert.match(k, LABEL_KEY, `${what}: label key ${k}`);
    assert.ok(v.length <= 63, `${what}: label ${k}=${v} is ${v.length} chars`);
    assert.match(v, LABEL_VALUE, `${what}: label ${k}=${v} is not a valid label value`);
  }
}

function split(weights: Record<string, number>, mirror: TrafficSplit['mirror'] = null): TrafficSplit {
  return { weights, mirror };
}

// ── schema validation of every builder ─────────────────────────────────────────────────────

describe('every manifest matches the upstream Kubernetes / Gateway API schemas', () => {
  for (const [settingsName, settings] of Object.entries(SETTINGS)) {
    for (const model of MODELS) {
      for (const version of VERSIONS) {
        const ref = { model, version, digest: DIGEST };
        const tag = `${settingsName} ${model.length > 20 ? `${model.slice(0, 8)}…(${model.length})` : model}@${version.slice(0, 24)}`;

        test(`Deployment + Service: ${tag}`, () => {
          for (const inService of [undefined, true, false]) {
            const d = deploymentFor({ ref, serve: serveOf({ resources: { limits: { 'nvidia.com/gpu': 2 } } }), settings, replicas: 2, inService });
            validate(new Deployment(d as never), 'Deployment');
            assertName(d.metadata?.name, 'Deployment');
            assertLabels(d.metadata?.labels, 'Deployment metadata');
            assertLabels(d.spec?.template.metadata?.labels, 'pod template');
            assertLabels(d.spec?.selector.matchLabels, 'selector');
            // The selector must select the template, or the API server rejects the Deployment.
            for (const [k, v] of Object.entries(d.spec!.selector.matchLabels!)) assert.equal(d.spec!.template.metadata!.labels![k], v, `selector ${k}`);
            // Container and port names: DNS-1123 labels / IANA_SVC_NAME (≤ 15 chars).
            for (const c of [...d.spec!.template.spec!.initContainers!, ...d.spec!.template.spec!.containers]) {
              assertName(c.name, 'container');
              for (const p of c.ports ?? []) assert.ok(p.name!.length <= 15 && /^[a-z0-9-]+$/.test(p.name!), `port name ${p.name}`);
            }
          }
          const s = serviceFor({ ref, settings });
          validate(new Service(s as never), 'Service');
          assertName(s.metadata?.name, 'Service');
          assertLabels(s.metadata?.labels, 'Service');
        });

        test(`HTTPRoute: ${tag}`, () => {
          for (const sp of [
            split({ [version]: 100 }),
            split({ '0.9.0': 95, [version]: 5 }),
            split({ '0.9.0': 100, [version]: 0 }, { version, percent: 10 }),
            split({ '0.9.0': 50, [version]: 25, '0.8.0': 25 }, { version: '0.7.0', percent: 100 }),
          ]) {
            const r = httpRouteFor({ model, split: sp, settings });
            validate(new HTTPRoute(r as never), 'HTTPRoute');
            assertLabels(r.metadata.labels, 'HTTPRoute');
            for (const b of r.spec.rules[0]!.backendRefs) assertName(b.name, 'backendRef');
          }
        });
      }

      test(`model Service, ledger ConfigMap, Lease: ${settingsName} ${model.slice(0, 12)}`, () => {
        const svc = modelServiceFor({ model, settings });
        validate(new Service(svc as never), 'model Service');
        assertName(svc.metadata?.name, 'model Service');
        assertLabels(svc.metadata?.labels, 'model Service');
        const cm = ledgerConfigMapFor(model, settings.namespace, { model, releases: [], lock: null });
        validate(new ConfigMap(cm as never), 'ConfigMap');
        assertName(cm.metadata?.name, 'ConfigMap');
        assertLabels(cm.metadata?.labels, 'ConfigMap');
        const held = leaseFor(model, settings.namespace, { holder: 'alice@laptop', pid: 4242, host: 'laptop', acquiredAt: 1_700_000_000_000.123, expiresAt: 1_700_000_060_000 }, { renewedAt: 1_700_000_000_500.5, transitions: 3 });
        validate(new Lease(held as never), 'Lease (held)');
        assertName(held.metadata.name, 'Lease');
        assertLabels(held.metadata.labels, 'Lease');
        const released = leaseFor(model, settings.namespace, null, { renewedAt: 1_700_000_001_000 });
        validate(new Lease(released as never), 'Lease (released)');
      });
    }
  }

  test('Role and RoleBinding', () => {
    const opts = { namespace: 'ml-serving', serviceAccount: 'github-deployer', serviceAccountNamespace: 'ci' };
    validate(new Role(roleFor(opts) as never), 'Role');
    validate(new RoleBinding(roleBindingFor(opts) as never), 'RoleBinding');
  });

  test('the validator does reject a broken object (so the checks above can fail)', () => {
    const r = httpRouteFor({ model: 'sentiment', split: split({ '1.0.0': 100 }, { version: '1.1.0', percent: 10 }), settings: SETTINGS.plain });
    const f = r.spec.rules[0]!.filters!.find((x) => x.type === 'RequestMirror')!;
    assert.ok(f.type === 'RequestMirror');
    f.requestMirror.percent = 101;
    assert.throws(() => new HTTPRoute(r as never).validate(), /percent/);
    const d = deploymentFor({ ref: { model: 'sentiment', version: '1.0.0', digest: DIGEST }, serve: serveOf(), settings: SETTINGS.plain, replicas: 1 });
    (d.spec!.template.spec!.containers[1]!.ports![0] as { containerPort: unknown }).containerPort = 'http';
    assert.throws(() => new Deployment(d as never).validate(), /containerPort/);
  });
});

// ── behaviour ───────────────────────────────────────────────────────────────────────────────

describe('Deployment of a version', () => {
  const ref = { model: 'sentiment', version: '2.0.0-rc.1+build.7', digest: DIGEST };
  const serve = serveOf({ env: { LOG_LEVEL: 'debug', PORT: '1' }, resources: { requests: { cpu: '4' }, limits: { memory: '32Gi', 'nvidia.com/gpu': 1 } } });
  const d = deploymentFor({ ref, serve, settings: SETTINGS.gpu, replicas: 3, inService: true });
  const pod = d.spec!.template.spec!;
  const [init] = pod.initContainers!;
  const model = pod.containers.find((c) => c.name === 'model')!;
  const meter = pod.containers.find((c) => c.name === 'meter')!;

  test('names, labels, selector and exact-version annotations', () => {
    assert.equal(d.metadata!.name, versionObjectName('sentiment', ref.version));
    assert.equal(d.metadata!.namespace, 'ml-serving');
    assert.deepEqual(d.metadata!.labels, versionLabels('sentiment', ref.version, DIGEST));
    assert.deepEqual(d.spec!.selector.matchLabels, versionSelector('sentiment', ref.version));
    assert.equal(d.metadata!.annotations![ANNOTATIONS.version], '2.0.0-rc.1+build.7');
    assert.equal(d.metadata!.annotations![ANNOTATIONS.digest], DIGEST);
    assert.equal(d.spec!.template.metadata!.annotations![ANNOTATIONS.digest], DIGEST);
    assert.equal(d.spec!.template.metadata!.labels![LABELS.inService], 'true');
    const gw = deploymentFor({ ref, serve, settings: SETTINGS.gpu, replicas: 3 });
    assert.equal(gw.spec!.template.metadata!.labels![LABELS.inService], undefined, 'no in-service label in Gateway API mode');
    const out = deploymentFor({ ref, serve, settings: SETTINGS.gpu, replicas: 1, inService: false });
    assert.equal(out.spec!.template.metadata!.labels![LABELS.inService], 'false');
  });

  test('rollout strategy, replicas, deadline, history', () => {
    assert.equal(d.spec!.replicas, 3);
    assert.deepEqual(d.spec!.strategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
    assert.equal(d.spec!.progressDeadlineSeconds, 900);
    assert.equal(d.spec!.revisionHistoryLimit, 2);
    assert.throws(() => deploymentFor({ ref, serve, settings: SETTINGS.gpu, replicas: -1 }), RangeError);
  });

  test('init container pulls the bundle by digest from the store, credentials from the optional Secret', () => {
    assert.equal(init!.name, 'fetch-bundle');
    assert.equal(init!.image, 'ghcr.io/acme/modelctl:1.2.3');
    assert.deepEqual([...init!.command!, ...init!.args!], ['modelctl', 'bundle', 'pull', `sentiment@${DIGEST}`, '--output', '/pull/bundle']);
    assert.equal(init!.env!.find((e) => e.name === 'MODELCTL_STORE')!.value, 's3://models/prod');
    assert.deepEqual(init!.envFrom, [{ secretRef: { name: 'modelctl-store', optional: true } }]);
    assert.equal(init!.imagePullPolicy, 'IfNotPresent');
    for (const c of [init!, meter]) {
      assert.equal(c.securityContext?.runAsNonRoot, true, `${c.name} runs as non-root`);
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
    }
    const plain = deploymentFor({ ref, serve, settings: SETTINGS.plain, replicas: 1 }).spec!.template.spec!;
    assert.equal(plain.initContainers![0]!.envFrom, undefined, 'no Secret configured → no envFrom');
    assert.equal(plain.automountServiceAccountToken, false);
  });

  test('the model container meets Pod Security "restricted" and runs as kubernetes.servingUser (default 1000, the modelctl image\'s uid)', () => {
    const restricted = { runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } };
    // A custom servingImage (SETTINGS.gpu) may run as root: the explicit uid keeps the kubelet's runAsNonRoot check from refusing it.
    assert.deepEqual(model.securityContext, { ...restricted, runAsUser: 1000 });
    const modelOf = (section: unknown) => deploymentFor({ ref, serve, settings: settingsOf(section), replicas: 1 }).spec!.template.spec!.containers.find((c) => c.name === 'model')!;
    assert.deepEqual(modelOf({ servingUser: 65532 }).securityContext, { ...restricted, runAsUser: 65532 });
    assert.deepEqual(modelOf({ servingUser: 'image' }).securityContext, restricted, 'image: the image\'s own USER, verified non-root by the kubelet');
    for (const bad of [0, -1, 1.5, 'root', '1000']) {
      const r = kubernetesSectionSchema.safeParse({ servingUser: bad });
      assert.equal(r.success, false, JSON.stringify(bad));
      assert.deepEqual(r.error!.issues[0]!.path, ['servingUser']);
      assert.match(r.error!.issues[0]!.message, /expected a non-root uid \(an integer from 1 to 2147483647\) or `image`/);
    }
  });

  test('the pulled directory is what the model container runs in', () => {
    assert.deepEqual(pod.volumes, [{ name: 'bundle', emptyDir: {} }]);
    assert.deepEqual(init!.volumeMounts, [{ name: 'bundle', mountPath: '/pull' }]);
    assert.deepEqual(model.volumeMounts, [{ name: 'bundle', mountPath: '/bundle', subPath: 'bundle', readOnly: true }]);
    assert.equal(model.workingDir, '/bundle');
    assert.deepEqual(model.command, ['node', 'serve.mjs']);
    assert.equal(model.image, 'ghcr.io/acme/serving-cuda:12.4');
  });

  test('serving env: serve.env plus the runtime variables, which win', () => {
    const env = Object.fromEntries(model.env!.map((e) => [e.name, e.value]));
    assert.equal(env.PORT, '8081');
    assert.equal(env.HOST, '127.0.0.1');
    assert.equal(env.MODELCTL_MODEL, 'sentiment');
    assert.equal(env.MODELCTL_VERSION, '2.0.0-rc.1+build.7');
    assert.equal(env.LOG_LEVEL, 'debug');
    assert.equal(env.WORKERS, undefined, 'serve.env was replaced in this fixture');
    assert.equal(model.env!.filter((e) => e.name === 'PORT').length, 1);
  });

  test('every probe goes where the kubelet sends it: a containerPort bound on all interfaces of the pod IP', () => {
    for (const dep of [d, deploymentFor({ ref, serve: serveOf(), settings: SETTINGS.plain, replicas: 1 })]) {
      const spec = dep.spec!.template.spec!;
      const probes = spec.containers.flatMap((c) =>
        (['startupProbe', 'readinessProbe', 'livenessProbe'] as const).filter((k) => c[k]).map((k) => ({ c, kind: k, probe: c[k]! })),
      );
      assert.equal(probes.length, 5, 'model: startup, readiness, liveness; meter: readiness, liveness');
      for (const { c, kind, probe } of probes) {
        const action = probe.httpGet ?? probe.tcpSocket;
        assert.ok(action, `${c.name} ${kind}: httpGet or tcpSocket`);
        assert.equal(action.host, undefined, `${c.name} ${kind}: no host, so the kubelet probes the pod IP`);
        // A named port resolves against the probed container's own ports (as the kubelet does).
        const port = typeof action.port === 'string' ? c.ports?.find((p) => p.name === action.port)?.containerPort : Number(action.port);
        const server = spec.containers.find((x) => x.ports?.some((p) => p.containerPort === port));
        assert.ok(server, `${c.name} ${kind}: port ${action.port} is a containerPort of the pod`);
        assert.equal(bindHostOf(server, port!), '0.0.0.0', `${c.name} ${kind}: ${server.name} serves port ${port} on the pod IP, not only on its loopback`);
      }
    }
  });

  test('the model is probed through the meter, which asks its readinessPath; the meter is probed alone', () => {
    for (const p of [model.readinessProbe!, model.startupProbe!, model.livenessProbe!]) {
      assert.equal(p.httpGet!.port, 9090);
      const url = new URL(p.httpGet!.path!, 'http://pod');
      assert.equal(url.pathname, '/model-ready');
      assert.ok(Number(url.searchParams.get('timeoutMs')) < p.timeoutSeconds! * 1000, 'the meter gives up before the kubelet does');
    }
    assert.deepEqual(meter.args!.slice(meter.args!.indexOf('--readiness-path'), meter.args!.indexOf('--readiness-path') + 2), ['--readiness-path', '/healthz']);
    const custom = deploymentFor({ ref, serve: serveOf({ readinessPath: '/ready' }), settings: SETTINGS.plain, replicas: 1 }).spec!.template.spec!.containers[1]!;
    assert.equal(custom.args![custom.args!.indexOf('--readiness-path') + 1], '/ready');
    assert.deepEqual(meter.readinessProbe!.httpGet, { path: '/healthz', port: 9090 });
    assert.deepEqual(meter.livenessProbe!.httpGet, { path: '/healthz', port: 9090 });
    // A meter outage must not get the model restarted: the model's liveness outlasts the meter's own
    // liveness restart and the kubelet's longest crash-loop back-off (5 minutes).
    const window = (p: NonNullable<typeof model.livenessProbe>) => p.periodSeconds! * p.failureThreshold!;
    assert.ok(window(model.livenessProbe!) > 300 + window(meter.livenessProbe!));
    assert.ok(window(model.livenessProbe!) > window(model.readinessProbe!));
  });

  test('shadow comparison: with a stable Service and a bundle that says how answers compare, the meter gets --compare-with and --agreement; otherwise nothing', () => {
    const meterOf = (serve: ServeSpec, compareWith?: string) => deploymentFor({ ref, serve, settings: SETTINGS.plain, replicas: 1, compareWith }).spec!.template.spec!.containers[1]!.args!;
    const args = meterOf(serveOf({ agreementField: 'label' }), '10.96.0.12:80');
    assert.deepEqual(args.slice(args.indexOf('--compare-with')), ['--compare-with', '10.96.0.12:80', '--agreement', '{"mode":"fields","fields":["label"]}']);
    const rich = meterOf(serveOf({ agreement: { mode: 'labels', field: 'labels', minJaccard: 0.8 } }), '10.96.0.12:80');
    assert.equal(JSON.parse(rich[rich.indexOf('--agreement') + 1]!).mode, 'labels');
    assert.ok(!meterOf(serveOf(), '10.96.0.12:80').includes('--compare-with'), 'no comparison declared: nothing to compare');
    assert.ok(!meterOf(serveOf({ agreementField: 'label' })).includes('--compare-with'), 'no stable (first deploy): nothing to compare with');
  });

  test('resources: settings merged with the bundle, the bundle winning per key; GPU limits pass through', () => {
    assert.deepEqual(model.resources, {
      requests: { cpu: '4', memory: '8Gi' },
      limits: { memory: '32Gi', 'nvidia.com/gpu': '1' },
    });
    assert.deepEqual(mergeResources({}, undefined), {});
    const plain = deploymentFor({ ref, serve: serveOf(), settings: SETTINGS.plain, replicas: 1 });
    assert.equal(plain.spec!.template.spec!.containers[0]!.resources, undefined);
  });

  test('scheduling settings reach the pod', () => {
    assert.deepEqual(pod.nodeSelector, { 'cloud.google.com/gke-accelerator': 'nvidia-l4' });
    assert.equal(pod.tolerations!.length, 2);
    assert.equal(pod.tolerations![1]!.tolerationSeconds, 300);
    assert.equal(pod.serviceAccountName, 'model-runner');
    assert.deepEqual(pod.imagePullSecrets, [{ name: 'regcred' }, { name: 'ghcr' }]);
  });

  test('meter sidecar: args, ports and the score field', () => {
    assert.equal(meter.image, 'ghcr.io/acme/modelctl:1.2.3');
    assert.deepEqual(meter.args, ['kubernetes', 'meter', '--listen', '0.0.0.0:8080', '--upstream', '127.0.0.1:8081', '--api', '0.0.0.0:9090', '--readiness-path', '/healthz']);
    assert.deepEqual(meter.ports!.map((p) => [p.name, p.containerPort]), [['http', 8080], ['meter', 9090]]);
    assert.equal(meter.env!.find((e) => e.name === 'MODELCTL_SCORE_FIELD')!.value, 'score');
    const noScore = deploymentFor({ ref, serve: serveSpecSchema.parse({ command: ['python', 'serve.py'] }), settings: SETTINGS.plain, replicas: 1 });
    assert.equal(noScore.spec!.template.spec!.containers[1]!.env!.find((e) => e.name === 'MODELCTL_SCORE_FIELD'), undefined);
  });

  test('serve.resources is validated, numbers become strings, and other bundles are unaffected', () => {
    assert.deepEqual(serveSpecSchema.parse({ command: ['x'], resources: { limits: { 'nvidia.com/gpu': 1 } } }).resources, { limits: { 'nvidia.com/gpu': '1' } });
    assert.equal(serveSpecSchema.parse({ command: ['x'] }).resources, undefined);
    assert.equal(serveSpecSchema.safeParse({ command: ['x'], resources: { limit: {} } }).success, false);
    assert.equal(serveSpecSchema.safeParse({ command: ['x'], resources: { limits: { cpu: -1 } } }).success, false);
  });
});

describe('kubernetes.bundleCache: a node-level blob cache for the init container', () => {
  const ref = { model: 'sentiment', version: '1.0.0', digest: DIGEST };
  const serve = serveOf({});
  const cached = deploymentFor({ ref, serve, settings: settingsOf({ bundleCache: { hostPath: '/var/cache/modelctl', maxBytes: '20Gi' } }), replicas: 1 }).spec!.template.spec!;
  const [init] = cached.initContainers!;
  const env = Object.fromEntries(init!.env!.map((e) => [e.name, e.value]));

  test('a DirectoryOrCreate hostPath volume, mounted into fetch-bundle only; the model keeps its read-only bundle', () => {
    assert.deepEqual(cached.volumes, [
      { name: 'bundle', emptyDir: {} },
      { name: 'bundle-cache', hostPath: { path: '/var/cache/modelctl', type: 'DirectoryOrCreate' } },
    ]);
    assert.deepEqual(init!.volumeMounts, [
      { name: 'bundle', mountPath: '/pull' },
      { name: 'bundle-cache', mountPath: '/modelctl-cache' },
    ]);
    for (const c of cached.containers) assert.ok(!(c.volumeMounts ?? []).some((m) => m.name === 'bundle-cache'), `${c.name} does not see the cache`);
    assert.deepEqual(cached.containers.find((c) => c.name === 'model')!.volumeMounts, [{ name: 'bundle', mountPath: '/bundle', subPath: 'bundle', readOnly: true }]);
    const d = deploymentFor({ ref, serve, settings: settingsOf({ bundleCache: { hostPath: '/var/cache/modelctl' } }), replicas: 1 });
    validate(new Deployment(d as never), 'Deployment');
  });

  test('the init container uses the cache (size bound in bytes, every cached byte re-hashed), as uid 0 without capabilities', () => {
    assert.equal(env.MODELCTL_CACHE_DIR, '/modelctl-cache');
    assert.equal(env.MODELCTL_CACHE_MAX_BYTES, String(20 * 2 ** 30));
    assert.equal(env.MODELCTL_CACHE_VERIFY, 'full');
    assert.equal(env.MODELCTL_CACHE, undefined);
    assert.equal(init!.securityContext?.runAsUser, 0);
    assert.equal(init!.securityContext?.runAsNonRoot, false);
    assert.equal(init!.securityContext?.allowPrivilegeEscalation, false);
    assert.deepEqual(init!.securityContext?.capabilities, { drop: ['ALL'] });
    assert.equal(settingsOf({ bundleCache: { hostPath: '/c' } }).bundleCache!.maxBytes, '20Gi', 'default bound');
  });

  test('without it: no cache volume, MODELCTL_CACHE=off, non-root as before', () => {
    const plain = deploymentFor({ ref, serve, settings: settingsOf({}), replicas: 1 }).spec!.template.spec!;
    assert.deepEqual(plain.volumes, [{ name: 'bundle', emptyDir: {} }]);
    assert.equal(plain.initContainers![0]!.env!.find((e) => e.name === 'MODELCTL_CACHE')!.value, 'off');
    assert.equal(plain.initContainers![0]!.securityContext?.runAsNonRoot, true);
  });

  test('the section is strict: a claim given as a bare string, or a typo, is refused by the schema', () => {
    assert.throws(() => kubernetesSectionSchema.parse({ bundleCache: { persistentVolumeClaim: 'cache' } }));
    assert.throws(() => kubernetesSectionSchema.parse({ bundleCache: { hostPath: '/c', maxbytes: '1Gi' } }));
    assert.throws(() => kubernetesSectionSchema.parse({ bundleCache: { persistentVolumeClaim: { name: 'cache' } } }));
  });

  test('exactly one of hostPath and persistentVolumeClaim: both, or neither, is refused naming the field and the choice', () => {
    for (const bad of [{ hostPath: '/c', persistentVolumeClaim: { claimName: 'cache' } }, { maxBytes: '1Gi' }]) {
      const r = kubernetesSectionSchema.safeParse({ bundleCache: bad });
      assert.equal(r.success, false, JSON.stringify(bad));
      assert.deepEqual(r.error!.issues[0]!.path, ['bundleCache']);
      assert.match(r.error!.issues[0]!.message, /exactly one of hostPath .* or persistentVolumeClaim: \{claimName: …\}/);
    }
  });
});

describe('kubernetes.bundleCache.persistentVolumeClaim: the cache on a claim, for namespaces that refuse hostPath', () => {
  const ref = { model: 'sentiment', version: '1.0.0', digest: DIGEST };
  const serve = serveOf({});
  const settings = settingsOf({ bundleCache: { persistentVolumeClaim: { claimName: 'model-cache' }, maxBytes: '50Gi' } });
  const d = deploymentFor({ ref, serve, settings, replicas: 2 });
  const pod = d.spec!.template.spec!;
  const [init] = pod.initContainers!;

  test('a persistentVolumeClaim volume, mounted into fetch-bundle only, the init container non-root (restricted admits it)', () => {
    assert.deepEqual(pod.volumes, [
      { name: 'bundle', emptyDir: {} },
      { name: 'bundle-cache', persistentVolumeClaim: { claimName: 'model-cache' } },
    ]);
    assert.deepEqual(init!.volumeMounts, [
      { name: 'bundle', mountPath: '/pull' },
      { name: 'bundle-cache', mountPath: '/modelctl-cache' },
    ]);
    for (const c of pod.containers) assert.ok(!(c.volumeMounts ?? []).some((m) => m.name === 'bundle-cache'), `${c.name} does not see the cache`);
    assert.equal(init!.securityContext?.runAsNonRoot, true);
    assert.equal(init!.securityContext?.runAsUser, undefined);
    const env = Object.fromEntries(init!.env!.map((e) => [e.name, e.value]));
    assert.equal(env.MODELCTL_CACHE_DIR, '/modelctl-cache');
    assert.equal(env.MODELCTL_CACHE_MAX_BYTES, String(50 * 2 ** 30));
    assert.equal(env.MODELCTL_CACHE_VERIFY, 'full');
    validate(new Deployment(d as never), 'Deployment');
  });

  test('the pod\'s fsGroup makes the claim writable for the image\'s uid 1000, without a recursive chown at every start', () => {
    assert.deepEqual(pod.securityContext, { fsGroup: 1000, fsGroupChangePolicy: 'OnRootMismatch' });
    const hostPath = deploymentFor({ ref, serve, settings: settingsOf({ bundleCache: { hostPath: '/c' } }), replicas: 1 }).spec!.template.spec!;
    assert.equal(hostPath.securityContext, undefined, 'no fsGroup for a hostPath (no ownership management) nor without a cache');
    assert.equal(deploymentFor({ ref, serve, settings: settingsOf({}), replicas: 1 }).spec!.template.spec!.securityContext, undefined);
  });
});

describe('Services', () => {
  test('version Service: ClusterIP, port 80 → http, selects exactly the version', () => {
    const s = serviceFor({ ref: { model: 'sentiment', version: '1.1.0', digest: DIGEST }, settings: SETTINGS.plain });
    assert.equal(s.metadata!.name, 'sentiment-1-1-0');
    assert.equal(s.spec!.type, 'ClusterIP');
    assert.deepEqual(s.spec!.ports, [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }]);
    assert.deepEqual(s.spec!.selector, versionSelector('sentiment', '1.1.0'));
  });

  test('model Service (replica ratio): every in-service pod of the model', () => {
    const s = modelServiceFor({ model: 'sentiment', settings: SETTINGS.plain });
    assert.equal(s.metadata!.name, 'sentiment');
    assert.deepEqual(s.spec!.selector, { [LABELS.model]: 'sentiment', [LABELS.inService]: 'true' });
  });
});

/** The first filter of every rule: no client of the Gateway may keep its requests out of the meters. */
const STRIP = { type: 'RequestHeaderModifier', requestHeaderModifier: { remove: ['x-modelctl-evaluation', 'x-modelctl-compare'] } };

describe('HTTPRoute', () => {
  test('every rule removes the unmetered headers first, whatever the split (one RequestHeaderModifier, ≤ 16 names)', () => {
    for (const [sp, settings] of [
      [split({ '1.0.0': 100 }), SETTINGS.plain],
      [split({ '1.0.0': 90, '1.1.0': 10 }), SETTINGS.gpu],
      [split({ '1.0.0': 100 }, { version: '1.1.0', percent: 5 }), SETTINGS.gpu],
    ] as const) {
      for (const rule of httpRouteFor({ model: 'sentiment', split: sp, settings }).spec.rules) {
        assert.deepEqual(rule.filters![0], STRIP);
        assert.equal(rule.filters!.filter((f) => f.type === 'RequestHeaderModifier').length, 1);
      }
    }
  });

  test('one rule with the whole split as weights, path prefix, parents and hostnames', () => {
    const r = httpRouteFor({ model: 'sentiment', split: split({ '1.0.0': 95, '1.1.0': 5 }), settings: SETTINGS.gpu });
    assert.equal(r.metadata.name, 'public-sentiment');
    assert.deepEqual(r.spec.parentRefs, [{ name: 'public-gateway', namespace: 'gateways', sectionName: 'https' }]);
    assert.deepEqual(r.spec.hostnames, ['models.example.com']);
    assert.equal(r.spec.rules.length, 1);
    const [rule] = r.spec.rules;
    assert.deepEqual(rule!.matches, [{ path: { type: 'PathPrefix', value: '/sentiment' } }]);
    assert.deepEqual(
      rule!.backendRefs.map((b) => [b.name, b.port, b.weight]),
      [['sentiment-1-0-0', 80, 95], ['sentiment-1-1-0', 80, 5]],
    );
    // The unmetered headers are removed first; a path other than "/" is stripped, so the bundle
    // serves the same paths as locally.
    assert.deepEqual(rule!.filters, [STRIP, { type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } } }]);
    const mirrored = httpRouteFor({ model: 'sentiment', split: split({ '1.0.0': 100 }, { version: '1.1.0', percent: 10 }), settings: SETTINGS.gpu });
    // Filters apply in order (spec: SHOULD): the mirror copies the request without the headers.
    assert.deepEqual(mirrored.spec.rules[0]!.filters!.map((f) => f.type), ['RequestHeaderModifier', 'URLRewrite', 'RequestMirror']);
  });

  test('default name and path; versions at 0% are left out', () => {
    const r = httpRouteFor({ model: 'sentiment', split: split({ '1.0.0': 100, '1.1.0': 0 }), settings: SETTINGS.plain });
    assert.equal(r.metadata.name, 'sentiment');
    assert.equal(r.spec.hostnames, undefined);
    assert.equal(r.spec.rules[0]!.matches[0]!.path.value, '/');
    assert.deepEqual(r.spec.rules[0]!.backendRefs.map((b) => b.name), ['sentiment-1-0-0']);
  });

  test('shadow: a RequestMirror filter with percent to the mirror version\'s Service', () => {
    const r = httpRouteFor({ model: 'sentiment', split: split({ '1.0.0': 100 }, { version: '2.0.0-rc.1+build.7', percent: 20 }), settings: SETTINGS.plain });
    assert.deepEqual(r.spec.rules[0]!.filters, [
      STRIP,
      { type: 'RequestMirror', requestMirror: { backendRef: { name: versionObjectName('sentiment', '2.0.0-rc.1+build.7'), port: 80 }, percent: 20 } },
    ]);
    // Mirror removed → the filter is gone from the (atomic) rules list, not left behind.
    const after = httpRouteFor({ model: 'sentiment', split: split({ '1.0.0': 100 }), settings: SETTINGS.plain });
    assert.deepEqual(after.spec.rules[0]!.filters, [STRIP]);
    assert.deepEqual(httpRouteFor({ model: 'sentiment', split: split({ '1.0.0': 100 }, { version: '1.1.0', percent: 0 }), settings: SETTINGS.plain }).spec.rules[0]!.filters, [STRIP]);
  });

  test('rejects splits that are not integer percentages or have no live version', () => {
    assert.throws(() => httpRouteFor({ model: 's', split: split({ '1.0.0': 0 }), settings: SETTINGS.plain }), /at least one version/);
    assert.throws(() => httpRouteFor({ model: 's', split: split({ '1.0.0': 99.5, '1.1.0': 0.5 }), settings: SETTINGS.plain }), /integer/);
    assert.throws(() => httpRouteFor({ model: 's', split: split({ '1.0.0': 100 }, { version: '1.1.0', percent: 150 }), settings: SETTINGS.plain }), /mirror/);
  });

  test('the output is deterministic (server-side apply sees no spurious change)', () => {
    const a = httpRouteFor({ model: 'sentiment', split: split({ '1.1.0': 5, '1.0.0': 95 }), settings: SETTINGS.gpu });
    const b = httpRouteFor({ model: 'sentiment', split: split({ '1.0.0': 95, '1.1.0': 5 }), settings: SETTINGS.gpu });
    assert.deepEqual(a, b);
  });
});

describe('ledger ConfigMap and Lease', () => {
  test('ConfigMap holds the ledger as JSON', () => {
    const cm = ledgerConfigMapFor('sentiment', 'ml', { model: 'sentiment', releases: [{ version: '1.0.0' }] });
    assert.equal(cm.metadata!.name, 'modelctl-ledger-sentiment');
    assert.equal(cm.metadata!.labels![LABELS.component], 'ledger');
    assert.deepEqual(JSON.parse(cm.data![LEDGER_KEY]!), { model: 'sentiment', releases: [{ version: '1.0.0' }] });
  });

  test('Lease: holder, MicroTimes, duration covering expiresAt, pid/host annotations; released has no holder', () => {
    const lock = { holder: 'alice@laptop', pid: 4242, host: 'laptop', acquiredAt: Date.UTC(2026, 10, 22, 13, 41, 19, 123), expiresAt: Date.UTC(2026, 10, 22, 13, 42, 19, 623) };
    const l = leaseFor('sentiment', 'ml', lock, { renewedAt: Date.UTC(2026, 10, 22, 13, 41, 20, 0), transitions: 2 });
    assert.equal(l.metadata.name, 'modelctl-lock-sentiment');
    assert.equal(l.spec.holderIdentity, 'alice@laptop');
    assert.equal(l.spec.acquireTime, '2026-11-22T13:41:19.123000Z');
    assert.equal(l.spec.renewTime, '2026-11-22T13:41:20.000000Z');
    assert.equal(l.spec.leaseDurationSeconds, 60); // 59.623 s left → 60
    assert.equal(l.spec.leaseTransitions, 2);
    assert.deepEqual(l.metadata.annotations, { [ANNOTATIONS.holderPid]: '4242', [ANNOTATIONS.holderHost]: 'laptop' });
    assert.ok(parseMicroTime(l.spec.renewTime!) + l.spec.leaseDurationSeconds! * 1000 >= lock.expiresAt);
    const free = leaseFor('sentiment', 'ml', null, { renewedAt: lock.acquiredAt });
    assert.equal(free.spec.holderIdentity, undefined);
    assert.deepEqual(free.metadata.annotations, {});
  });

  test('microTime: six fraction digits, UTC, microseconds kept; round trip', () => {
    assert.equal(microTime(0), '1970-01-01T00:00:00.000000Z');
    assert.equal(microTime(Date.UTC(2026, 0, 2, 3, 4, 5, 6)), '2026-01-02T03:04:05.006000Z');
    assert.equal(microTime(1_700_000_000_123.456), '2023-11-14T22:13:20.123456Z');
    assert.match(microTime(Date.now()), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
    for (const ms of [0, 1_700_000_000_123.456, 1_700_000_000_999.999, Date.UTC(2026, 10, 22, 23, 59, 59, 999) + 0.001]) {
      assert.ok(Math.abs(parseMicroTime(microTime(ms)) - ms) < 0.0005, `round trip of ${ms}: ${microTime(ms)} → ${parseMicroTime(microTime(ms))}`);
      assert.equal(microTime(parseMicroTime(microTime(ms))), microTime(ms));
    }
    assert.throws(() => microTime(Number.NaN), RangeError);
  });

  test('parseMicroTime reads what API servers return', () => {
    assert.equal(parseMicroTime('2026-11-22T13:41:19Z'), Date.UTC(2026, 10, 22, 13, 41, 19));
    assert.equal(parseMicroTime('2026-11-22T13:41:19.5Z'), Date.UTC(2026, 10, 22, 13, 41, 19, 500));
    assert.equal(parseMicroTime('2026-11-22T13:41:19.000001Z'), Date.UTC(2026, 10, 22, 13, 41, 19) + 0.001);
    assert.equal(parseMicroTime('2026-11-22T14:41:19.250000+01:00'), Date.UTC(2026, 10, 22, 13, 41, 19, 250));
    assert.equal(parseMicroTime(new Date(Date.UTC(2026, 10, 22, 13, 41, 19, 7))), Date.UTC(2026, 10, 22, 13, 41, 19, 7));
    assert.throws(() => parseMicroTime('yesterday'), RangeError);
  });
});

describe('replicaPlan (replica-ratio traffic)', () => {
  const base = { servingReplicas: 1, warmReplicas: 1, stableSet: ['1.0.0', '0.9.0', '0.8.0'] };

  test('a single version at 100% gets the serving replicas; the rest of the stable set stays warm', () => {
    const p = replicaPlan(split({ '1.0.0': 100 }), { ...base, servingReplicas: 3 });
    assert.deepEqual(p.versions['1.0.0'], { replicas: 3, inService: true, role: 'primary', askedPercent: 100, achievedPercent: 100 });
    assert.deepEqual(p.versions['0.9.0'], { replicas: 1, inService: false, role: 'warm', askedPercent: 0, achievedPercent: 0 });
    assert.equal(p.versions['0.8.0']!.replicas, 1);
    assert.equal(p.inServicePods, 3);
    assert.equal(p.exact, true);
    assert.equal(p.note, null);
  });

  test('5% canary with 1 serving replica: stable scaled to 9 (cap 10), achieved 10%, reported', () => {
    const p = replicaPlan(split({ '1.0.0': 95, '1.1.0': 5 }), base);
    assert.equal(p.versions['1.0.0']!.replicas, 9);
    assert.equal(p.versions['1.1.0']!.replicas, 1);
    assert.equal(p.versions['1.1.0']!.achievedPercent, 10);
    assert.equal(p.versions['1.1.0']!.role, 'canary');
    assert.equal(p.inServicePods, 10);
    assert.equal(p.maxErrorPoints, 5);
    assert.equal(p.exact, false);
    assert.match(p.note!, /1\.1\.0: asked 5%, got 10% \(1 of 10 pods\)/);
  });

  test('a lower cap gives the coarser share, and says so', () => {
    const p = replicaPlan(split({ '1.0.0': 95, '1.1.0': 5 }), { ...base, maxInServicePods: 2 });
    assert.deepEqual([p.versions['1.0.0']!.replicas, p.versions['1.1.0']!.replicas], [1, 1]);
    assert.equal(p.versions['1.1.0']!.achievedPercent, 50);
    assert.deepEqual(describeReplicaPlan(p), ['1.0.0: asked 95%, got 50% (1 of 2 pods)', '1.1.0: asked 5%, got 50% (1 of 2 pods)']);
  });

  test('50/50 and 25/75 are exact with few pods', () => {
    const half = replicaPlan(split({ '1.0.0': 50, '1.1.0': 50 }), base);
    assert.equal(half.inServicePods, 2);
    assert.equal(half.exact, true);
    assert.equal(half.versions['1.0.0']!.role, 'primary', 'tie → the stable version is the primary');
    const quarter = replicaPlan(split({ '1.0.0': 75, '1.1.0': 25 }), base);
    assert.deepEqual([quarter.versions['1.0.0']!.replicas, quarter.versions['1.1.0']!.replicas], [3, 1]);
  });

  test('the primary never shrinks below the serving replicas (abort is instant)', () => {
    const p = replicaPlan(split({ '1.0.0': 50, '1.1.0': 50 }), { ...base, servingReplicas: 4 });
    assert.equal(p.versions['1.0.0']!.replicas, 4);
    assert.equal(p.versions['1.1.0']!.replicas, 4);
    const big = replicaPlan(split({ '1.0.0': 95, '1.1.0': 5 }), { ...base, servingReplicas: 20 });
    assert.equal(big.versions['1.0.0']!.replicas, 20, 'no extra pods for less than a point of accuracy');
    assert.equal(big.versions['1.1.0']!.replicas, 1);
    assert.equal(big.versions['1.1.0']!.achievedPercent, 4.76);
  });

  test('error within a point of the best reachable, with the fewest pods', () => {
    const p = replicaPlan(split({ '1.0.0': 90, '1.1.0': 10 }), base);
    assert.deepEqual([p.versions['1.0.0']!.replicas, p.versions['1.1.0']!.replicas], [9, 1]);
    const third = replicaPlan(split({ '1.0.0': 67, '1.1.0': 33 }), base);
    assert.equal(third.inServicePods, 3);
    assert.ok(third.maxErrorPoints < 1);
  });

  test('three live versions; a staged candidate at 0% gets one pod out of service', () => {
    const p = replicaPlan(split({ '1.0.0': 60, '0.9.0': 20, '1.1.0': 20, '1.2.0': 0 }), base);
    assert.deepEqual(
      ['1.0.0', '0.9.0', '1.1.0'].map((v) => p.versions[v]!.replicas),
      [3, 1, 1],
    );
    assert.equal(p.exact, true);
    assert.deepEqual(p.versions['1.2.0'], { replicas: 1, inService: false, role: 'staged', askedPercent: 0, achievedPercent: 0 });
    assert.equal(p.versions['0.8.0']!.role, 'warm');
  });

  test('warmReplicas 0 is honoured when asked for; versions in neither list are not planned', () => {
    const p = replicaPlan(split({ '1.0.0': 100 }), { ...base, warmReplicas: 0 });
    assert.equal(p.versions['0.9.0']!.replicas, 0);
    assert.equal(p.versions['0.7.0'], undefined);
  });

  test('mirroring is impossible with replicas: a UsageError (exit 2) that names the Gateway API', () => {
    assert.throws(
      () => replicaPlan(split({ '1.0.0': 100 }, { version: '1.1.0', percent: 10 }), base, 'sentiment'),
      (err: unknown) => err instanceof UsageError && err.exitCode === 2 && /Gateway API/.test(err.message),
    );
  });

  test('achieved shares always sum to 100 and every live version has a pod', () => {
    for (let w = 1; w < 100; w++) {
      for (const servingReplicas of [1, 2, 3, 5, 8]) {
        const p = replicaPlan(split({ '1.0.0': 100 - w, '1.1.0': w }), { ...base, servingReplicas });
        const live = Object.values(p.versions).filter((v) => v.inService);
        assert.equal(live.reduce((s, v) => s + v.replicas, 0), p.inServicePods);
        assert.ok(live.every((v) => v.replicas >= 1));
        assert.ok(Math.abs(live.reduce((s, v) => s + v.achievedPercent, 0) - 100) < 0.02);
        assert.ok(p.inServicePods <= Math.max(10, 2 * servingReplicas, servingReplicas + 1));
        assert.ok(p.versions[w > 50 ? '1.1.0' : '1.0.0']!.replicas >= servingReplicas);
      }
    }
  });
});

describe('RBAC', () => {
  // Every call the Kubernetes target, ledger store and metric source make (verb, resource, group).
  const USED: Array<[string, string, string]> = [
    ...['get', 'list', 'watch', 'create', 'patch', 'update', 'delete'].flatMap((v): Array<[string, string, string]> => [
      [v, 'deployments', 'apps'],
      [v, 'services', ''],
      [v, 'configmaps', ''],
      [v, 'httproutes', 'gateway.networking.k8s.io'],
    ]),
    ['get', 'pods', ''],
    ['list', 'pods', ''],
    ['watch', 'pods', ''],
    ['get', 'pods/proxy', ''],
    // Evaluation replay: POST through the service proxy is authorized as "create" (requestinfo.go).
    ['create', 'services/proxy', ''],
    ['list', 'events', ''],
    ['watch', 'events', ''],
    ...['get', 'create', 'update', 'patch', 'delete'].map((v): [string, string, string] => [v, 'leases', 'coordination.k8s.io']),
    // kubernetes check: the bundle cache's claim (read only: modelctl never creates one).
    ['get', 'persistentvolumeclaims', ''],
  ];

  test('the Role grants every verb/resource modelctl uses', () => {
    const role = roleFor({ namespace: 'ml' });
    for (const [verb, resource, group] of USED) {
      const granted = role.rules!.some((r) => r.apiGroups!.includes(group) && r.resources!.includes(resource) && r.verbs.includes(verb));
      assert.ok(granted, `${verb} ${resource}.${group} not granted`);
      assert.ok(describePermission(verb, resource, group), `${verb} ${resource} not described`);
    }
  });

  test('every kind the builders emit can be applied (get/create/patch/update/delete) under the Role, as the client names it', () => {
    const ref = { model: 'sentiment', version: '1.0.0', digest: DIGEST };
    const objects = [
      deploymentFor({ ref, serve: serveOf(), settings: SETTINGS.plain, replicas: 1 }),
      serviceFor({ ref, settings: SETTINGS.plain }),
      modelServiceFor({ model: 'sentiment', settings: SETTINGS.plain }),
      httpRouteFor({ model: 'sentiment', split: split({ '1.0.0': 100 }), settings: SETTINGS.plain }),
      ledgerConfigMapFor('sentiment', 'ml', {}),
      leaseFor('sentiment', 'ml', null, { renewedAt: 0 }),
    ];
    for (const o of objects) {
      const { resource, group } = resourceOf(o.kind!);
      assert.equal(o.apiVersion!.includes('/') ? o.apiVersion!.split('/')[0] : '', group, `${o.kind}: apiVersion ${o.apiVersion} vs group ${group}`);
      for (const verb of ['get', 'create', 'patch', 'update', 'delete']) assert.ok(describePermission(verb, resource, group), `${verb} ${o.kind}`);
    }
    for (const kind of ['Pod', 'Event']) {
      const { resource, group } = resourceOf(kind);
      assert.ok(describePermission('list', resource, group) && describePermission('watch', resource, group), kind);
    }
  });

  test('and nothing more: no wildcards, no secrets, no cluster-scoped objects, no pod exec', () => {
    const role = roleFor({ namespace: 'ml' });
    assert.equal(role.kind, 'Role');
    const granted = role.rules!.flatMap((r) => r.apiGroups!.flatMap((g) => r.resources!.flatMap((res) => r.verbs.map((v) => `${v} ${res}.${g}`))));
    assert.equal(granted.length, USED.length);
    for (const g of granted) assert.doesNotMatch(g, /\*|secrets|exec|namespaces|nodes|clusterrole/);
    assert.equal(describePermission('get', 'secrets', ''), undefined);
    assert.equal(describePermission('create', 'pods/exec', ''), undefined);
    assert.equal(describePermission('delete', 'pods', ''), undefined);
    // The replay only POSTs: no other method through the service proxy, no pod proxy writes.
    assert.equal(describePermission('get', 'services/proxy', ''), undefined);
    assert.equal(describePermission('create', 'pods/proxy', ''), undefined);
    for (const verb of ['list', 'watch', 'create', 'patch', 'update', 'delete']) assert.equal(describePermission(verb, 'persistentvolumeclaims', ''), undefined, `${verb} persistentvolumeclaims`);
  });

  test('describePermission names the rule that grants a permission', () => {
    assert.match(describePermission('patch', 'httproutes', 'gateway.networking.k8s.io')!, /httproutes\.gateway\.networking\.k8s\.io: .*patch.*HTTPRoute/);
    assert.match(describePermission('update', 'leases', 'coordination.k8s.io')!, /rollout lock/);
    assert.equal(permissionRule('get', 'pods/proxy', '')!.rule.resources[0], 'pods/proxy');
    assert.equal(permissionRule('get', 'deployments', '')?.rule, undefined, 'deployments are in apps, not core');
  });

  test('RoleBinding binds the Role to the ServiceAccount', () => {
    const b = roleBindingFor({ namespace: 'ml', serviceAccount: 'ci', serviceAccountNamespace: 'github', name: 'deployer' });
    assert.deepEqual(b.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'deployer' });
    assert.deepEqual(b.subjects, [{ kind: 'ServiceAccount', name: 'ci', namespace: 'github' }]);
    assert.equal(roleFor({ namespace: 'ml', name: 'deployer' }).metadata!.name, 'deployer');
    assert.equal(RBAC_RULES.length, roleFor({ namespace: 'ml' }).rules!.length);
  });
});
