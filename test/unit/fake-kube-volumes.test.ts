/**
 * The fake API server's PersistentVolumeClaims and PersistentVolumes (what kubernetes.bundleCache's
 * persistentVolumeClaim form meets), and the Deployment condition ReplicaFailure — driven through
 * the real @kubernetes/client-node, with the texts of the real validation, binder and scheduler
 * (pkg/apis/core/validation, pkg/controller/volume/persistentvolume, scheduler volumebinding).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { startFakeKube, type FakeKube } from '../fakes/kube/server.js';
import { apiError, waitFor } from '../helpers/kube-api.js';

let fake: FakeKube;
let core: CoreV1Api;
let apps: AppsV1Api;

before(async () => {
  fake = await startFakeKube({ readyAfterMs: 20 });
  core = fake.kubeConfig().makeApiClient(CoreV1Api);
  apps = fake.kubeConfig().makeApiClient(AppsV1Api);
});
after(async () => {
  await fake.close();
});

async function mergePatch(path: string, body: unknown): Promise<{ code: number; status: any }> {
  const r = await fetch(`${fake.url}${path}`, { method: 'PATCH', headers: { 'content-type': 'application/merge-patch+json' }, body: JSON.stringify(body) });
  return { code: r.status, status: await r.json() };
}

const causes = (s: any) => (s.details?.causes ?? []).map((c: any) => `${c.reason} ${c.field}`).sort();

function claim(name: string, spec: Record<string, unknown> = {}): any {
  return { metadata: { name }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, storageClassName: '', ...spec } };
}

function volume(name: string, spec: Record<string, unknown> = {}): any {
  return { metadata: { name }, spec: { capacity: { storage: '2Gi' }, accessModes: ['ReadWriteOnce', 'ReadWriteMany'], storageClassName: '', hostPath: { path: `/var/tmp/pv-${name}` }, ...spec } };
}

function deploymentWithClaim(name: string, claimName: string, replicas = 1): any {
  return {
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'server', image: 'img:1', volumeMounts: [{ name: 'cache', mountPath: '/cache' }] }], volumes: [{ name: 'cache', persistentVolumeClaim: { claimName } }] },
      },
    },
  };
}

const podsOf = (ns: string, prefix: string) => fake.list('v1', 'Pod', ns).filter((p) => p.metadata.name.startsWith(`${prefix}-`));
const scheduled = (p: any) => (p.status?.conditions ?? []).find((c: any) => c.type === 'PodScheduled');

test('422 for the claims and volumes the API server refuses, with its fields and texts', async () => {
  const noModes = await apiError(() => core.createNamespacedPersistentVolumeClaim({ namespace: 'default', body: { metadata: { name: 'c0' }, spec: { resources: { requests: { storage: '1Gi' } } } } }));
  assert.equal(noModes.code, 422);
  assert.deepEqual(causes(noModes.status), ['FieldValueRequired spec.accessModes']);
  assert.match(noModes.status.message, /spec.accessModes: Required value: at least 1 access mode is required/);
  const noSize = await apiError(() => core.createNamespacedPersistentVolumeClaim({ namespace: 'default', body: { metadata: { name: 'c1' }, spec: { accessModes: ['ReadWriteOnce'] } } }));
  assert.deepEqual(causes(noSize.status), ['FieldValueRequired spec.resources[storage]']);
  const mixed = await apiError(() => core.createNamespacedPersistentVolumeClaim({ namespace: 'default', body: claim('c2', { accessModes: ['ReadWriteOncePod', 'ReadWriteOnce'] }) }));
  assert.match(mixed.status.message, /may not use ReadWriteOncePod with other access modes/);
  const badName = await apiError(() => core.createNamespacedPersistentVolumeClaim({ namespace: 'default', body: claim('Model_Cache') }));
  assert.deepEqual(causes(badName.status), ['FieldValueInvalid metadata.name']);

  const noType = await apiError(() => core.createPersistentVolume({ body: { metadata: { name: 'v0' }, spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'] } } }));
  assert.deepEqual(causes(noType.status), ['FieldValueRequired spec']);
  assert.match(noType.status.message, /must specify a volume type/);
  const twoTypes = await apiError(() => core.createPersistentVolume({ body: volume('v1', { local: { path: '/x' }, nodeAffinity: { required: { nodeSelectorTerms: [] } } }) }));
  assert.match(twoTypes.status.message, /may not specify more than 1 volume type/);
  const localNoNode = await apiError(() => core.createPersistentVolume({ body: { metadata: { name: 'v2' }, spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], local: { path: '/x' } } } }));
  assert.match(localNoNode.status.message, /Local volumes require node affinity/);
  const noPvcName = await apiError(() => apps.createNamespacedDeployment({ namespace: 'default', body: deploymentWithClaim('noname', '') }));
  assert.deepEqual(causes(noPvcName.status), ['FieldValueRequired spec.template.spec.volumes[0].persistentVolumeClaim.claimName']);
});

test('the binder: a claim binds to the smallest volume with its class, modes and size; a claim\'s spec is immutable but for its size', async () => {
  await core.createPersistentVolume({ body: volume('big', { capacity: { storage: '10Gi' } }) });
  await core.createPersistentVolume({ body: volume('small', { capacity: { storage: '2Gi' } }) });
  await core.createPersistentVolume({ body: volume('rwo-only', { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'] }) });
  await core.createPersistentVolume({ body: volume('other-class', { storageClassName: 'fast' }) });
  await waitFor('volumes Available', () => fake.list('v1', 'PersistentVolume').every((v) => v.status?.phase === 'Available'));
  const c = await core.createNamespacedPersistentVolumeClaim({ namespace: 'default', body: claim('shared', { accessModes: ['ReadWriteMany'] }) });
  assert.equal(c.status?.phase, 'Pending', 'a new claim is Pending');
  const bound = await waitFor('the claim Bound', () => {
    const x = fake.get('v1', 'PersistentVolumeClaim', 'default', 'shared');
    return x?.status?.phase === 'Bound' && x;
  });
  assert.equal(bound.spec.volumeName, 'small', 'the smallest volume that fits (RWX, 1Gi, class "")');
  assert.deepEqual(bound.status.accessModes, ['ReadWriteOnce', 'ReadWriteMany']);
  assert.deepEqual(bound.status.capacity, { storage: '2Gi' });
  const pv = fake.get('v1', 'PersistentVolume', undefined as unknown as string, 'small');
  assert.equal(pv.status.phase, 'Bound');
  assert.deepEqual({ name: pv.spec.claimRef.name, namespace: pv.spec.claimRef.namespace, uid: pv.spec.claimRef.uid }, { name: 'shared', namespace: 'default', uid: bound.metadata.uid });

  const immutable = await mergePatch('/api/v1/namespaces/default/persistentvolumeclaims/shared', { spec: { accessModes: ['ReadWriteOnce'] } });
  assert.equal(immutable.code, 422);
  assert.match(immutable.status.message, /spec is immutable after creation except resources.requests/);
  assert.equal((await mergePatch('/api/v1/namespaces/default/persistentvolumeclaims/shared', { spec: { resources: { requests: { storage: '2Gi' } } } })).code, 200, 'a larger request (expansion) is allowed');

  // Nothing fits a claim in class "slow": it stays Pending.
  await core.createNamespacedPersistentVolumeClaim({ namespace: 'default', body: claim('nothing', { storageClassName: 'slow' }) });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(fake.get('v1', 'PersistentVolumeClaim', 'default', 'nothing').status.phase, 'Pending');
});

test('the scheduler: a pod whose claim is missing, then unbound, stays Pending with the real texts; it is scheduled once the claim binds', async () => {
  await apps.createNamespacedDeployment({ namespace: 'default', body: deploymentWithClaim('late', 'late-cache') });
  const missing = await waitFor('PodScheduled=False', () => podsOf('default', 'late').map(scheduled).find((c) => c?.status === 'False'));
  assert.equal(missing.reason, 'Unschedulable');
  assert.equal(missing.message, '0/1 nodes are available: persistentvolumeclaim "late-cache" not found. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.');
  assert.ok(fake.list('v1', 'Event', 'default').some((e) => e.reason === 'FailedScheduling' && e.message === missing.message));

  await core.createNamespacedPersistentVolumeClaim({ namespace: 'default', body: claim('late-cache', { storageClassName: 'late' }) });
  await waitFor('unbound message', () => podsOf('default', 'late').map(scheduled).find((c) => c?.message?.includes('pod has unbound immediate PersistentVolumeClaims')));
  assert.equal(podsOf('default', 'late')[0].spec.nodeName, undefined);

  await core.createPersistentVolume({ body: volume('late-pv', { storageClassName: 'late' }) });
  const pod = await waitFor('the pod scheduled and running', () => podsOf('default', 'late').find((p) => p.spec.nodeName && p.status?.phase === 'Running'));
  assert.equal(scheduled(pod).status, 'True');
});

test('ReadWriteOnce admits several pods on the (one) node; ReadWriteOncePod only one', async () => {
  await core.createPersistentVolume({ body: volume('rwo-pv', { storageClassName: 'rwo' }) });
  await core.createNamespacedPersistentVolumeClaim({ namespace: 'default', body: claim('rwo', { storageClassName: 'rwo' }) });
  await apps.createNamespacedDeployment({ namespace: 'default', body: deploymentWithClaim('two', 'rwo', 2) });
  await waitFor('two pods running on the node', () => podsOf('default', 'two').filter((p) => p.status?.phase === 'Running').length === 2);

  await core.createPersistentVolume({ body: volume('rwop-pv', { storageClassName: 'rwop', accessModes: ['ReadWriteOncePod'] }) });
  await core.createNamespacedPersistentVolumeClaim({ namespace: 'default', body: claim('rwop', { storageClassName: 'rwop', accessModes: ['ReadWriteOncePod'] }) });
  await waitFor('rwop bound', () => fake.get('v1', 'PersistentVolumeClaim', 'default', 'rwop')?.status?.phase === 'Bound');
  await apps.createNamespacedDeployment({ namespace: 'default', body: deploymentWithClaim('solo', 'rwop', 2) });
  const refused = await waitFor('the second pod unschedulable', () => podsOf('default', 'solo').map(scheduled).find((c) => c?.status === 'False'));
  assert.match(refused.message, /1 node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode/);
  assert.equal(podsOf('default', 'solo').filter((p) => p.spec.nodeName).length, 1);
});

test('ReplicaFailure: a Pod Security refusal sets the Deployment condition (FailedCreate, the admission text); it clears once pods are created', async () => {
  await core.createNamespace({ body: { metadata: { name: 'psa-rf', labels: { 'pod-security.kubernetes.io/enforce': 'baseline' } } } });
  const d = deploymentWithClaim('refused', 'x');
  d.spec.template.spec.volumes = [{ name: 'cache', hostPath: { path: '/var/cache/modelctl', type: 'DirectoryOrCreate' } }];
  await apps.createNamespacedDeployment({ namespace: 'psa-rf', body: d });
  const rf = await waitFor('ReplicaFailure', () => (fake.get('apps/v1', 'Deployment', 'psa-rf', 'refused')?.status?.conditions ?? []).find((c: any) => c.type === 'ReplicaFailure'));
  assert.equal(rf.status, 'True');
  assert.equal(rf.reason, 'FailedCreate');
  assert.match(rf.message, /^pods "refused-[a-z0-9]+-[a-z0-9]{5}" is forbidden: violates PodSecurity "baseline:latest": hostPath volumes \(volume "cache"\)$/);
  assert.equal(rf.lastUpdateTime, rf.lastTransitionTime);

  // The namespace is relabelled: the controller's retry creates the pod and removes the condition.
  assert.equal((await mergePatch('/api/v1/namespaces/psa-rf', { metadata: { labels: { 'pod-security.kubernetes.io/enforce': 'privileged' } } })).code, 200);
  await waitFor('ReplicaFailure removed', () => {
    const x = fake.get('apps/v1', 'Deployment', 'psa-rf', 'refused');
    return podsOf('psa-rf', 'refused').length === 1 && !(x?.status?.conditions ?? []).some((c: any) => c.type === 'ReplicaFailure');
  }, 5000);
});

test('Pod Security "restricted" admits every pod modelctl writes (no cache, the claim cache, any servingUser); only the hostPath cache needs "privileged"', async () => {
  const { deploymentFor } = await import('../../src/targets/kubernetes/manifests.js');
  const { kubernetesSectionSchema, resolveKubernetesSettings } = await import('../../src/targets/kubernetes/settings.js');
  const { serveSpecSchema } = await import('../../src/bundle/serve.js');
  await core.createNamespace({ body: { metadata: { name: 'strict', labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } } });
  const render = (model: string, section: unknown) => {
    const settings = resolveKubernetesSettings(kubernetesSectionSchema.parse(section), { namespace: 'strict', storeUrl: 's3://m/p' });
    return deploymentFor({ ref: { model, version: '1.0.0', digest: `sha256:${'a'.repeat(64)}` }, serve: serveSpecSchema.parse({ command: ['node', 'serve.mjs'] }), settings, replicas: 1 }) as any;
  };
  const claim = { persistentVolumeClaim: { claimName: 'model-cache' } };
  const admitted: Array<[string, unknown]> = [
    ['plain', {}],
    ['claim', { bundleCache: claim }],
    // A serving image of its own, run as its own (non-root) USER or as another uid.
    ['own-user', { servingImage: 'python:3.12-slim', servingUser: 'image', bundleCache: claim }],
    ['uid', { servingImage: 'python:3.12-slim', servingUser: 65532 }],
  ];
  for (const [model, section] of admitted) await apps.createNamespacedDeployment({ namespace: 'strict', body: render(model, section) });
  await apps.createNamespacedDeployment({ namespace: 'strict', body: render('node-cache', { bundleCache: { hostPath: '/var/cache/modelctl' } }) });
  for (const [model] of admitted) {
    // A created pod has passed admission (the claim ones then wait for their claim: Pending, not refused).
    await waitFor(`the ${model} pod created in "restricted"`, () => podsOf('strict', `${model}-1-0-0`).length === 1);
    assert.ok(!(fake.get('apps/v1', 'Deployment', 'strict', `${model}-1-0-0`)?.status?.conditions ?? []).some((c: any) => c.type === 'ReplicaFailure'), model);
  }
  // The hostPath form is refused, for the volume and its root init container only: the model and the meter pass.
  const rf = await waitFor('ReplicaFailure of the hostPath form', () => (fake.get('apps/v1', 'Deployment', 'strict', 'node-cache-1-0-0')?.status?.conditions ?? []).find((c: any) => c.type === 'ReplicaFailure'));
  assert.match(rf.message, /violates PodSecurity "restricted:latest": hostPath volumes \(volume "bundle-cache"\), restricted volume types \(volume "bundle-cache" uses restricted volume type "hostPath"\), runAsNonRoot != true \(container "fetch-bundle" must not set securityContext.runAsNonRoot=false\), runAsUser=0 \(container "fetch-bundle" must not set runAsUser=0\)$/);
  assert.doesNotMatch(rf.message, /"model"|"meter"/);
});
