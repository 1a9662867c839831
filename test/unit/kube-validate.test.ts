import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { serveSpecSchema, type ServeSpec } from '../../src/bundle/serve.js';
import { UsageError } from '../../src/core/errors.js';
import type { RolloutPlan } from '../../src/core/model.js';
import { decideTrafficMode, renderRollout, rolloutIssues, validateRollout } from '../../src/targets/kubernetes/render.js';
import { kubernetesSectionSchema, resolveKubernetesSettings, type KubernetesSettings } from '../../src/targets/kubernetes/settings.js';
import {
  kubernetesIssues,
  labelValue,
  parseQuantity,
  qualifiedName,
  routeHostname,
  routePath,
  schemaIssues,
  type ValidationIssue,
} from '../../src/targets/kubernetes/validate.js';

/**
 * What modelctl would send is checked before anything is written, with the API server's own rules
 * (kubernetes/kubernetes pkg/apis/core/validation, apimachinery util/validation, resource.Quantity;
 * the Gateway API v1.3 HTTPRoute CRD) and the upstream schemas: every problem at once, each naming
 * the file, field, value and rule.
 */

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const FILE = '/work/project/modelctl.yaml';

function settingsOf(section: unknown, storeUrl = 's3://models/prod'): KubernetesSettings {
  return resolveKubernetesSettings(kubernetesSectionSchema.parse(section), { namespace: 'ml', storeUrl });
}
const serveOf = (extra: Record<string, unknown> = {}): ServeSpec => serveSpecSchema.parse({ command: ['node', 'serve.mjs'], ...extra });
const plan = (o: Partial<RolloutPlan> = {}): RolloutPlan => ({
  steps: [10, 50, 100],
  intervalMs: 1000,
  checkEveryMs: 100,
  shadowPercent: 0,
  shadowDurationMs: 0,
  shadowOnly: false,
  gates: [],
  readyTimeoutMs: 1000,
  ...o,
});
const GOOD = { route: { parentRefs: [{ name: 'public', namespace: 'gateways' }], hostnames: ['models.example.com', '*.models.example.com'], path: '/sentiment' } };
const v = (version: string, serve = serveOf()) => ({ ref: { model: 'sentiment', version, digest: DIGEST }, serve });

const fields = (issues: ValidationIssue[]) => issues.map((i) => `${i.file} ${i.field}`);

describe('the API server\'s rules', () => {
  test('quantities follow resource.Quantity\'s grammar', () => {
    assert.equal(parseQuantity('500m'), 0.5);
    assert.equal(parseQuantity('1Gi'), 2 ** 30);
    assert.equal(parseQuantity('1e3'), 1000);
    assert.equal(parseQuantity('1.5'), 1.5);
    assert.equal(parseQuantity('.5k'), 500);
    assert.equal(parseQuantity('+2M'), 2e6);
    for (const bad of ['lots', '1 Gi', '1gi', '1GiB', '1.2.3', '', 'Gi', '1Ki1', '0x10']) assert.equal(parseQuantity(bad), undefined, bad);
  });

  test('names, label keys and values, hostnames and paths', () => {
    assert.equal(qualifiedName('nvidia.com/gpu'), undefined);
    assert.equal(qualifiedName('cloud.google.com/gke-accelerator'), undefined);
    assert.match(qualifiedName('a/b/c') ?? '', /qualified name/);
    assert.match(qualifiedName('Bad.Prefix/x') ?? '', /prefix part/);
    assert.match(qualifiedName('-x') ?? '', /name part/);
    assert.equal(labelValue(''), undefined);
    assert.match(labelValue('x'.repeat(64)) ?? '', /63/);
    assert.equal(routeHostname('*.example.com'), undefined);
    for (const bad of ['Example.com', 'a.*.example.com', '*', '10.0.0.1', 'example.com.', 'ex ample.com']) assert.ok(routeHostname(bad), bad);
    assert.deepEqual(routePath('/sentiment'), []);
    assert.deepEqual(routePath('/a//b'), ["must not contain '//'"]);
    assert.deepEqual(routePath('/a/..'), ["must not end with '/..'"]);
    assert.ok(routePath('/a%2Fb').includes("must not contain '%2F'"));
    assert.ok(routePath('/a b').some((r) => /valid characters/.test(r)));
  });

  test('every problem of modelctl.yaml at once, each with its file, field, value and rule', () => {
    const settings = settingsOf({
      route: { parentRefs: [{ name: 'public', namespace: 'Gateways' }], hostnames: ['Models.example.com'], path: '/x/./y' },
      resources: { requests: { cpu: '2', memory: 'lots', 'nvidia.com/gpu': '1' }, limits: { cpu: '1' } },
      nodeSelector: { 'bad key': 'v', pool: 'gpu pool' },
      tolerations: [{ operator: 'Exists', value: 'x' }, { key: 'k', effect: 'NoSchedule', tolerationSeconds: 30 }, { value: 'y' }],
      serviceAccountName: 'Model_Runner',
      imagePullSecrets: ['ok', 'Not OK'],
      storeSecret: 'store_secret',
    });
    const issues = kubernetesIssues({ settings, settingsFile: FILE, versions: [v('1.0.0')], manifests: [] });
    assert.deepEqual(fields(issues).sort(), [
      `${FILE} kubernetes.imagePullSecrets[1]`,
      `${FILE} kubernetes.nodeSelector.bad key`,
      `${FILE} kubernetes.nodeSelector.pool`,
      `${FILE} kubernetes.resources.requests.cpu`,
      `${FILE} kubernetes.resources.requests.memory`,
      `${FILE} kubernetes.resources.requests.nvidia.com/gpu`,
      `${FILE} kubernetes.route.hostnames[0]`,
      `${FILE} kubernetes.route.parentRefs[0].namespace`,
      `${FILE} kubernetes.route.path`,
      `${FILE} kubernetes.serviceAccountName`,
      `${FILE} kubernetes.storeSecret`,
      `${FILE} kubernetes.tolerations[0].value`,
      `${FILE} kubernetes.tolerations[1].effect`,
      `${FILE} kubernetes.tolerations[2].operator`,
    ]);
    const cpu = issues.find((i) => i.field === 'kubernetes.resources.requests.cpu')!;
    assert.equal(cpu.value, '2');
    assert.match(cpu.rule, /must be less than or equal to cpu limit of 1/);
  });

  test('the bundle\'s serve: section is named as bundle.yaml of model@version; merged resources say which file each side came from', () => {
    const settings = settingsOf({ ...GOOD, resources: { limits: { cpu: '1', 'nvidia.com/gpu': '1' } } });
    const serve = serveOf({ env: { '1BAD': 'x', OK_NAME: 'y' }, resources: { requests: { cpu: '1500m', 'nvidia.com/gpu': '0.5' } } });
    const issues = kubernetesIssues({ settings, settingsFile: FILE, versions: [v('1.4.0', serve)], manifests: [] });
    const bundle = 'bundle.yaml of sentiment@1.4.0';
    assert.deepEqual(fields(issues).sort(), [
      `${bundle} serve.env.1BAD`,
      `${bundle} serve.resources.requests.cpu`,
      `${bundle} serve.resources.requests.nvidia.com/gpu`,
      `${bundle} serve.resources.requests.nvidia.com/gpu`,
    ]);
    assert.match(issues.find((i) => i.field === 'serve.resources.requests.cpu')!.rule, new RegExp(`cpu limit of 1 \\(${FILE.replace(/\//g, '\\/')}: kubernetes\\.resources\\.limits\\.cpu\\)`));
    assert.ok(issues.some((i) => /must be an integer/.test(i.rule)));
    assert.ok(issues.some((i) => /must be equal to nvidia\.com\/gpu limit of 1/.test(i.rule)));
  });

  test('HTTPRoute limits on what is rendered: backends, rules, weights, mirror percent', () => {
    const route = (rules: unknown[]) => ({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r', namespace: 'ml' }, spec: { parentRefs: [{ name: 'g' }], rules } });
    const backends = Array.from({ length: 17 }, (_, i) => ({ name: `s${i}`, port: 80, weight: 1 }));
    const issues = kubernetesIssues({
      settings: settingsOf(GOOD),
      settingsFile: FILE,
      versions: [],
      manifests: [
        route(Array.from({ length: 17 }, () => ({ backendRefs: [{ name: 's', port: 80, weight: 1 }] }))),
        route([{ backendRefs: backends }]),
        route([{ backendRefs: [{ name: 's', port: 80, weight: 1_000_001 }], filters: [{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'm', port: 80 }, percent: 101 } }] }]),
      ],
    });
    assert.deepEqual(
      issues.map((i) => [i.field, i.value]),
      [
        ['spec.rules', 17],
        ['spec.rules[0].backendRefs', 17],
        ['spec.rules[0].backendRefs[0].weight', 1_000_001],
        ['spec.rules[0].filters[0].requestMirror.percent', 101],
      ],
    );
    assert.equal(issues[0]!.file, 'HTTPRoute r (what modelctl renders)');
  });

  test('kubernetes.bundleCache: the hostPath rules of the API server and a size, each naming the field and what to do', () => {
    const issuesOf = (bundleCache: unknown) => kubernetesIssues({ settings: settingsOf({ bundleCache }), settingsFile: FILE, versions: [v('1.0.0')], manifests: [] });
    assert.deepEqual(issuesOf({ hostPath: '/var/cache/modelctl', maxBytes: '20Gi' }), []);
    assert.deepEqual(issuesOf({ hostPath: '/var/cache/modelctl', maxBytes: 21474836480 }), []);
    const back = issuesOf({ hostPath: '/var/cache/../etc' });
    assert.deepEqual(fields(back), [`${FILE} kubernetes.bundleCache.hostPath`]);
    assert.match(back[0]!.rule, /must not contain '\.\.'/);
    assert.match(issuesOf({ hostPath: 'cache' })[0]!.rule, /absolute path/);
    assert.match(issuesOf({ hostPath: '' })[0]!.rule, /Required value/);
    assert.match(issuesOf({ hostPath: '/' })[0]!.rule, /root directory/);
    const size = issuesOf({ hostPath: '/c', maxBytes: '20 GB' });
    assert.deepEqual(fields(size), [`${FILE} kubernetes.bundleCache.maxBytes`]);
    assert.equal(size[0]!.value, '20 GB');
    assert.match(size[0]!.rule, /20Gi/);
    assert.match(issuesOf({ hostPath: '/c', maxBytes: '-1Gi' })[0]!.rule, /non-negative/);
  });

  test('kubernetes.bundleCache.persistentVolumeClaim.claimName: a PersistentVolumeClaim name (RFC 1123 subdomain), naming the field', () => {
    const issuesOf = (claimName: string) => kubernetesIssues({ settings: settingsOf({ bundleCache: { persistentVolumeClaim: { claimName } } }), settingsFile: FILE, versions: [v('1.0.0')], manifests: [] });
    assert.deepEqual(issuesOf('model-cache'), []);
    assert.deepEqual(issuesOf('cache.v2'), []);
    const bad = issuesOf('Model_Cache');
    assert.deepEqual(fields(bad), [`${FILE} kubernetes.bundleCache.persistentVolumeClaim.claimName`]);
    assert.equal(bad[0]!.value, 'Model_Cache');
    assert.match(bad[0]!.rule, /RFC 1123 subdomain.*\(a PersistentVolumeClaim name\)/);
    assert.match(issuesOf('')[0]!.rule, /Required value: give the name of a PersistentVolumeClaim/);
    assert.match(issuesOf('x'.repeat(254))[0]!.rule, /no more than 253 characters/);
  });

  test('the upstream schemas catch what the rules do not name (kubernetes-models, @kubernetes-models/gateway-api)', async () => {
    const issues = await schemaIssues([
      { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r' }, spec: { hostnames: ['Bad_Host'], rules: [] } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [{ port: 80, protocol: 'QUIC' }] } },
    ]);
    assert.ok(issues.some((i) => i.file === 'HTTPRoute r (what modelctl renders)' && i.field === 'spec.hostnames.0' && /pattern/.test(i.rule)), JSON.stringify(issues));
    assert.ok(issues.some((i) => i.file === 'Service s (what modelctl renders)' && /protocol/.test(i.field)), JSON.stringify(issues));
  });
});

describe('every step of a rollout, rendered and validated by one function', () => {
  test('canary with shadow against a serving version: versions, shadow, each canary step, promotion — all valid upstream', async () => {
    const steps = await validateRollout({
      candidate: v('1.4.0'),
      stable: v('1.3.0'),
      plan: plan({ shadowPercent: 5, shadowDurationMs: 1000 }),
      settings: settingsOf(GOOD),
      mode: 'gateway-api',
      settingsFile: FILE,
    });
    assert.deepEqual(
      steps.map((s) => [s.phase, s.objects.map((o) => (o as { kind: string }).kind).join('+')]),
      [
        ['versions', 'Deployment+Service+Deployment+Service'],
        ['shadow', 'HTTPRoute'],
        ['canary', 'HTTPRoute'],
        ['canary', 'HTTPRoute'],
        ['promote', 'HTTPRoute'],
      ],
    );
    assert.deepEqual(await schemaIssues(steps.flatMap((s) => s.objects)), []);
    assert.deepEqual(steps[4]!.replicas, { '1.4.0': { replicas: 1 }, '1.3.0': { replicas: 1 } });
  });

  test('a rendering shows the candidate\'s meter comparing with the stable Service (its DNS name standing in for the ClusterIP the target writes); the stable\'s meter compares with nothing', () => {
    const withAgreement = serveOf({ agreementField: 'label' });
    const steps = renderRollout({ candidate: v('1.4.0', withAgreement), stable: v('1.3.0', withAgreement), plan: plan({ shadowPercent: 5, shadowDurationMs: 1000 }), settings: settingsOf(GOOD), mode: 'gateway-api' });
    const meterArgs = (version: string) => (steps[0]!.objects as any[]).find((o) => o.kind === 'Deployment' && o.metadata.annotations['modelctl.dev/version'] === version).spec.template.spec.containers[1].args as string[];
    const c = meterArgs('1.4.0');
    assert.deepEqual(c.slice(c.indexOf('--compare-with'), c.indexOf('--compare-with') + 2), ['--compare-with', 'sentiment-1-3-0.ml.svc:80']);
    assert.ok(!meterArgs('1.3.0').includes('--compare-with'));
  });

  test('replica-ratio mode: replica counts per step; a shadow is refused as the real target refuses it', () => {
    const steps = renderRollout({ candidate: v('1.4.0'), stable: v('1.3.0'), plan: plan({ steps: [50, 100] }), settings: settingsOf({ replicas: 2 }), mode: 'replicas' });
    assert.deepEqual(steps[1]!.replicas, { '1.3.0': { replicas: 2, inService: true }, '1.4.0': { replicas: 2, inService: true } });
    assert.equal((steps[0]!.objects.at(-1) as { kind: string; metadata: { name: string } }).metadata.name, 'sentiment');
    assert.throws(
      () => renderRollout({ candidate: v('1.4.0'), stable: v('1.3.0'), plan: plan({ shadowPercent: 5 }), settings: settingsOf({}), mode: 'replicas' }),
      (e: unknown) => e instanceof UsageError,
    );
  });

  test('a refusal lists every issue in one usage error (exit 2)', async () => {
    const bad = settingsOf({ ...GOOD, route: { ...GOOD.route, hostnames: ['UPPER.example.com'] }, resources: { requests: { memory: '1 Gi' } } }, 'file:///tmp/store');
    const { issues } = await rolloutIssues({ candidate: v('1.4.0'), stable: null, plan: plan(), settings: bad, mode: 'gateway-api', settingsFile: FILE });
    assert.equal(issues.length, 3);
    await assert.rejects(
      validateRollout({ candidate: v('1.4.0'), stable: null, plan: plan(), settings: bad, mode: 'gateway-api', settingsFile: FILE }),
      (e: unknown) =>
        e instanceof UsageError &&
        e.exitCode === 2 &&
        /^3 problems the Kubernetes API server would refuse, found before anything was sent:/.test(e.message) &&
        /kubernetes\.route\.hostnames\[0\] = "UPPER\.example\.com"/.test(e.message) &&
        /kubernetes\.resources\.requests\.memory = "1 Gi"/.test(e.message) &&
        /kubernetes\.store .* = "file:\/\/\/tmp\/store": pods pull bundles from an s3:\/\/ store/.test(e.message),
    );
  });
});

describe('traffic mode, with and without a cluster to ask', () => {
  const withGateway = settingsOf(GOOD);
  const withoutGateway = settingsOf({});
  test('a cluster answers: auto follows discovery; gateway-api without it is refused', () => {
    assert.equal(decideTrafficMode(withGateway, true, 'https://k').mode, 'gateway-api');
    assert.equal(decideTrafficMode(withGateway, false, 'https://k').mode, 'replicas');
    assert.throws(() => decideTrafficMode(settingsOf({ ...GOOD, traffic: 'gateway-api' }), false, 'https://k'), /does not serve gateway\.networking\.k8s\.io\/v1/);
    assert.throws(() => decideTrafficMode(withoutGateway, true, 'https://k'), /parentRefs is empty/);
  });
  test('no cluster: auto assumes the Gateway API when a parent Gateway is configured, and says so', () => {
    const g = decideTrafficMode(withGateway, undefined, '(no cluster)');
    assert.deepEqual([g.mode, /assumed gateway-api because kubernetes\.route\.parentRefs is set \(no cluster to ask\)/.test(g.why)], ['gateway-api', true]);
    assert.equal(decideTrafficMode(withoutGateway, undefined, '(no cluster)').mode, 'replicas');
    assert.equal(decideTrafficMode(settingsOf({ traffic: 'replicas' }), undefined, '(no cluster)').why, 'kubernetes.traffic: replicas');
  });
});
