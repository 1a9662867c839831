/**
 * Tests of the fake Kubernetes API server itself, driven only through the real
 * @kubernetes/client-node, so that what our Kubernetes target sees is what these tests pin down.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  ApisApi,
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  KubernetesObjectApi,
  PatchStrategy,
  V1MicroTime,
  Watch,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { startFakeKube, type FakeKube } from '../fakes/kube/server.js';
import { apiError, waitFor } from '../helpers/kube-api.js';

let fake: FakeKube;

before(async () => {
  fake = await startFakeKube({ readyAfterMs: 20 });
});
after(async () => {
  await fake.close();
});

function objectApi(namespace = 'default'): KubernetesObjectApi {
  return KubernetesObjectApi.makeApiClient(fake.kubeConfig(namespace));
}

function deployment(name: string, labels: Record<string, string>, image: string, replicas = 1): any {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, labels },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name, ...labels } }, spec: { containers: [{ name: 'server', image, ports: [{ containerPort: 8080 }] }] } },
    },
  };
}

test('discovery lets KubernetesObjectApi create, read, apply, replace and delete a ConfigMap', async () => {
  const api = objectApi();
  const created = await api.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm1', labels: { team: 'ml' } }, data: { a: '1' } } as KubernetesObject);
  assert.equal(created.metadata?.namespace, 'default');
  assert.match(created.metadata?.uid ?? '', /^[0-9a-f-]{36}$/);
  assert.ok(Number(created.metadata?.resourceVersion) > 0);
  assert.ok(fake.requests.some((r) => r.path === '/api/v1' && r.verb === 'discovery'));

  const read = (await api.read({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm1', namespace: 'default' } })) as any;
  assert.deepEqual(read.data, { a: '1' });

  const applied = (await api.patch({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm1' }, data: { a: '2', b: '3' } } as KubernetesObject, undefined, undefined, 'modelctl', true, PatchStrategy.ServerSideApply)) as any;
  assert.deepEqual(applied.data, { a: '2', b: '3' });
  assert.ok(Number(applied.metadata.resourceVersion) > Number(created.metadata?.resourceVersion));

  const replaced = (await api.replace({ ...applied, data: { only: 'this' } })) as any;
  assert.deepEqual(replaced.data, { only: 'this' });

  const listed = await api.list('v1', 'ConfigMap', 'default', undefined, undefined, undefined, undefined, 'team=ml');
  assert.deepEqual(listed.items.map((i) => i.metadata?.name), ['cm1']);
  assert.equal((await api.list('v1', 'ConfigMap', 'default', undefined, undefined, undefined, undefined, 'team!=ml')).items.length, 0);

  await api.delete({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm1', namespace: 'default' } });
  const missing = await apiError(() => api.read({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm1', namespace: 'default' } }));
  assert.equal(missing.code, 404);
  assert.deepEqual(missing.status, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'configmaps "cm1" not found', reason: 'NotFound', details: { name: 'cm1', kind: 'configmaps' }, code: 404 });
});

test('generic CRUD works for Deployment, HTTPRoute and Lease (MicroTime enforced)', async () => {
  const api = objectApi();
  const d = (await api.create(deployment('gen-d', {}, 'registry/model:1'))) as any;
  assert.equal(d.metadata.generation, 1);
  assert.equal(d.spec.strategy.type, 'RollingUpdate', 'defaults applied');
  const d2 = (await api.patch({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'gen-d' }, spec: { replicas: 2 } } as KubernetesObject, undefined, undefined, 'me', undefined, PatchStrategy.MergePatch)) as any;
  assert.equal(d2.metadata.generation, 2, 'spec change bumps generation');
  const d3 = (await api.patch({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'gen-d', labels: { x: 'y' } } } as KubernetesObject, undefined, undefined, 'me', undefined, PatchStrategy.MergePatch)) as any;
  assert.equal(d3.metadata.generation, 2, 'metadata change does not');

  const route = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r1' }, spec: { parentRefs: [{ name: 'gw' }], rules: [{ backendRefs: [{ name: 'svc-a', port: 80, weight: 100 }] }] } };
  await api.create(route as KubernetesObject);
  const r = (await api.read({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r1', namespace: 'default' } })) as any;
  assert.equal(r.spec.rules[0].backendRefs[0].weight, 100);
  const routes = await api.list('gateway.networking.k8s.io/v1', 'HTTPRoute', 'default');
  assert.equal(routes.items[0]?.kind, 'HTTPRoute', 'CRD list items keep apiVersion/kind');
  await api.delete({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r1', namespace: 'default' } });
  assert.equal(fake.get('gateway.networking.k8s.io/v1', 'HTTPRoute', 'default', 'r1'), undefined);

  const leases = fake.kubeConfig().makeApiClient(CoordinationV1Api);
  const renew = new V1MicroTime('2026-11-22T13:40:06.123Z');
  const lease = await leases.createNamespacedLease({ namespace: 'default', body: { metadata: { name: 'lock' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: renew, acquireTime: renew } } });
  assert.equal(lease.spec?.holderIdentity, 'a');
  assert.equal(fake.get('coordination.k8s.io/v1', 'Lease', 'default', 'lock').spec.renewTime, '2026-11-22T13:40:06.123000Z');
  // A plain Date serializes with milliseconds, which the real apiserver cannot parse as MicroTime.
  const bad = await apiError(() => api.create({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'lock2' }, spec: { renewTime: new Date().toISOString() } } as KubernetesObject));
  assert.equal(bad.code, 400);
  assert.equal(bad.status.reason, 'BadRequest');
  const replaced = (await api.replace({ ...(fake.get('coordination.k8s.io/v1', 'Lease', 'default', 'lock') as any), spec: { holderIdentity: 'b', renewTime: '2026-11-22T13:41:00.000001Z' } })) as any;
  assert.equal(replaced.spec.holderIdentity, 'b');
});

test('replace with a stale resourceVersion is a 409 Conflict; without one it is unconditional', async () => {
  const core = fake.kubeConfig().makeApiClient(CoreV1Api);
  const cm = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'occ' }, data: { v: '1' } } });
  await core.replaceNamespacedConfigMap({ name: 'occ', namespace: 'default', body: { ...cm, data: { v: '2' } } });
  const err = await apiError(() => core.replaceNamespacedConfigMap({ name: 'occ', namespace: 'default', body: { ...cm, data: { v: '3' } } }));
  assert.equal(err.code, 409);
  assert.equal(err.status.reason, 'Conflict');
  assert.equal(err.status.message, 'Operation cannot be fulfilled on configmaps "occ": the object has been modified; please apply your changes to the latest version and try again');
  const forced = await core.replaceNamespacedConfigMap({ name: 'occ', namespace: 'default', body: { metadata: { name: 'occ' }, data: { v: '4' } } });
  assert.equal(forced.data?.v, '4');
  assert.equal((await apiError(() => core.replaceNamespacedConfigMap({ name: 'nope', namespace: 'default', body: { metadata: { name: 'nope' } } }))).code, 404);
  assert.equal((await apiError(() => core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'occ' } } }))).status.reason, 'AlreadyExists');
  // A resourceVersion in a merge patch is a precondition too.
  const stale = await apiError(() => objectApi().patch({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'occ', resourceVersion: cm.metadata!.resourceVersion! }, data: { v: '5' } } as KubernetesObject, undefined, undefined, 'x', undefined, PatchStrategy.MergePatch));
  assert.equal(stale.code, 409);
});

test('server-side apply: upsert, removal of dropped fields, atomic lists, no-op re-apply', async (t) => {
  // No Gateway controller here: its status write (a real new resourceVersion) would race the no-op check.
  fake.gateway.mode = 'silent';
  t.after(() => (fake.gateway.mode = 'accept'));
  const api = objectApi();
  const first = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'ssa-route', labels: { a: '1', b: '2' } },
    spec: { parentRefs: [{ name: 'gw' }], rules: [{ backendRefs: [{ name: 'v1', port: 80, weight: 90 }, { name: 'v2', port: 80, weight: 10 }] }] },
  };
  const created = (await api.patch(first as KubernetesObject, undefined, undefined, 'modelctl', true, PatchStrategy.ServerSideApply)) as any;
  assert.equal(created.metadata.generation, 1, 'apply on a missing object creates it');
  assert.equal(fake.requests.at(-1)?.status, 201);

  const second = { ...first, metadata: { name: 'ssa-route', labels: { a: '1' } }, spec: { parentRefs: [{ name: 'gw' }], rules: [{ backendRefs: [{ name: 'v2', port: 80, weight: 100 }] }] } };
  const updated = (await api.patch(second as KubernetesObject, undefined, undefined, 'modelctl', true, PatchStrategy.ServerSideApply)) as any;
  assert.deepEqual(updated.metadata.labels, { a: '1' }, 'label dropped from the apply is removed');
  assert.deepEqual(updated.spec.rules, [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ group: '', kind: 'Service', name: 'v2', port: 80, weight: 100 }] }], 'atomic list replaced wholesale');
  assert.equal(updated.metadata.generation, 2);
  assert.equal(updated.metadata.managedFields[0].manager, 'modelctl');
  assert.equal(updated.metadata.managedFields[0].operation, 'Apply');

  const again = (await api.patch(second as KubernetesObject, undefined, undefined, 'modelctl', true, PatchStrategy.ServerSideApply)) as any;
  assert.equal(again.metadata.resourceVersion, updated.metadata.resourceVersion, 'identical re-apply is a no-op');

  // A field another manager set is kept when our apply drops it.
  await api.patch({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'ssa-route', annotations: { note: 'ops' } } } as KubernetesObject, undefined, undefined, 'ops-tool', undefined, PatchStrategy.MergePatch);
  const kept = (await api.patch(second as KubernetesObject, undefined, undefined, 'modelctl', true, PatchStrategy.ServerSideApply)) as any;
  assert.deepEqual(kept.metadata.annotations, { note: 'ops' });

  const readBack = await apiError(() => api.patch(kept, undefined, undefined, 'modelctl', true, PatchStrategy.ServerSideApply));
  assert.equal(readBack.code, 400, 'applying an object with managedFields is rejected');

  const noManager = await apiError(() => api.patch(second as KubernetesObject, undefined, undefined, undefined, undefined, PatchStrategy.ServerSideApply));
  assert.equal(noManager.code, 422);
});

test('server-side apply conflicts with another manager unless forced', async () => {
  const api = objectApi();
  const d = deployment('ssa-d', {}, 'img:1', 2);
  await api.patch(d, undefined, undefined, 'modelctl', false, PatchStrategy.ServerSideApply);
  // Someone scales it by hand (kubectl scale / a merge patch with its own field manager).
  await api.patch({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'ssa-d' }, spec: { replicas: 5 } } as KubernetesObject, undefined, undefined, 'kubectl', undefined, PatchStrategy.MergePatch);
  const conflict = await apiError(() => api.patch({ ...d, spec: { ...d.spec, replicas: 3 } }, undefined, undefined, 'modelctl', false, PatchStrategy.ServerSideApply));
  assert.equal(conflict.code, 409);
  assert.equal(conflict.status.reason, 'Conflict');
  assert.equal(conflict.status.message, 'Apply failed with 1 conflict: conflict with "kubectl" using apps/v1: .spec.replicas');
  // Same value as live: shared ownership, no conflict.
  await api.patch({ ...d, spec: { ...d.spec, replicas: 5 } }, undefined, undefined, 'modelctl', false, PatchStrategy.ServerSideApply);
  await api.patch({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'ssa-d' }, spec: { replicas: 6 } } as KubernetesObject, undefined, undefined, 'kubectl', undefined, PatchStrategy.MergePatch);
  const forced = (await api.patch({ ...d, spec: { ...d.spec, replicas: 3 } }, undefined, undefined, 'modelctl', true, PatchStrategy.ServerSideApply)) as any;
  assert.equal(forced.spec.replicas, 3);
  const kubectl = forced.metadata.managedFields.find((m: any) => m.manager === 'kubectl');
  assert.equal(kubectl?.fieldsV1?.['f:spec']?.['f:replicas'], undefined, 'force took ownership');
});

test('422 for volumes the API server refuses: a hostPath with ".." or an unsupported type, a mount of an undeclared volume', async () => {
  const apps = fake.kubeConfig().makeApiClient(AppsV1Api);
  const d = deployment('vols', {}, 'img:1');
  d.spec.template.spec.volumes = [
    { name: 'up', hostPath: { path: '/var/cache/../etc' } },
    { name: 'odd', hostPath: { path: '/var/cache/x', type: 'Folder' } },
  ];
  d.spec.template.spec.containers[0].volumeMounts = [{ name: 'nowhere', mountPath: '/x' }];
  const bad = await apiError(() => apps.createNamespacedDeployment({ namespace: 'default', body: d }));
  assert.equal(bad.code, 422);
  assert.deepEqual(
    bad.status.details.causes.map((c: any) => `${c.reason} ${c.field}`),
    [
      'FieldValueInvalid spec.template.spec.volumes[0].hostPath.path',
      'FieldValueNotSupported spec.template.spec.volumes[1].hostPath.type',
      'FieldValueNotFound spec.template.spec.containers[0].volumeMounts[0].name',
    ],
  );
  const ok = deployment('vols-ok', {}, 'img:1');
  ok.spec.template.spec.volumes = [{ name: 'cache', hostPath: { path: '/var/cache/modelctl', type: 'DirectoryOrCreate' } }];
  ok.spec.template.spec.containers[0].volumeMounts = [{ name: 'cache', mountPath: '/cache' }];
  await apps.createNamespacedDeployment({ namespace: 'default', body: ok });
});

test('Pod Security "baseline" enforced on a namespace: a Deployment with a hostPath volume gets no pod, only FailedCreate with the admission text', async () => {
  const core = fake.kubeConfig().makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: 'psa', labels: { 'pod-security.kubernetes.io/enforce': 'baseline' } } } });
  const apps = fake.kubeConfig().makeApiClient(AppsV1Api);
  const d = deployment('cached', {}, 'img:1');
  d.spec.template.spec.volumes = [{ name: 'bundle-cache', hostPath: { path: '/var/cache/modelctl', type: 'DirectoryOrCreate' } }];
  await apps.createNamespacedDeployment({ namespace: 'psa', body: d });
  const plain = deployment('plain', {}, 'img:1');
  await apps.createNamespacedDeployment({ namespace: 'psa', body: plain });
  let events: string[] = [];
  const plainPods = () => fake.list('v1', 'Pod', 'psa').filter((p) => p.metadata.name.startsWith('plain-')).length;
  for (let i = 0; i < 50 && (events.length === 0 || plainPods() === 0); i++) {
    events = fake.list('v1', 'Event', 'psa').filter((e) => e.reason === 'FailedCreate' && e.involvedObject.name === 'cached').map((e) => e.message);
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.match(events[0] ?? '', /^Error creating: pods "cached-[a-z0-9]+-[a-z0-9]{5}" is forbidden: violates PodSecurity "baseline:latest": hostPath volumes \(volume "bundle-cache"\)$/);
  const pods = fake.list('v1', 'Pod', 'psa');
  assert.equal(pods.filter((p) => p.metadata.name.startsWith('cached-')).length, 0, 'no pod of the hostPath Deployment');
  assert.equal(pods.filter((p) => p.metadata.name.startsWith('plain-')).length, 1, 'the same namespace admits a pod without hostPath');
});

test('422 Invalid for bad names, labels and selectors; 400 for namespace mismatch', async () => {
  const core = fake.kubeConfig().makeApiClient(CoreV1Api);
  const bad = await apiError(() => core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'Bad_Name' } } }));
  assert.equal(bad.code, 422);
  assert.equal(bad.status.reason, 'Invalid');
  assert.equal(bad.status.details.causes[0].field, 'metadata.name');
  assert.equal(bad.status.details.causes[0].reason, 'FieldValueInvalid');
  assert.match(bad.status.message, /^ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/);

  const label = await apiError(() => core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'ok', labels: { v: 'x'.repeat(64) } } } }));
  assert.equal(label.code, 422);
  const svc = await apiError(() => core.createNamespacedService({ namespace: 'default', body: { metadata: { name: '1svc' }, spec: { ports: [{ port: 80 }] } } }));
  assert.equal(svc.code, 422, 'services are DNS-1035 labels');

  const apps = fake.kubeConfig().makeApiClient(AppsV1Api);
  const d = deployment('mismatch', {}, 'img:1');
  d.spec.selector.matchLabels = { app: 'other' };
  const sel = await apiError(() => apps.createNamespacedDeployment({ namespace: 'default', body: d }));
  assert.equal(sel.code, 422);
  assert.equal(sel.status.details.kind, 'Deployment');
  assert.equal(sel.status.details.group, 'apps');
  assert.ok(sel.status.details.causes.some((c: any) => c.field === 'spec.template.metadata.labels'));

  const ns = await apiError(() => core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'x', namespace: 'other' } } }));
  assert.equal(ns.code, 400);
  const noNs = await apiError(() => core.createNamespacedConfigMap({ namespace: 'missing-ns', body: { metadata: { name: 'x' } } }));
  assert.equal(noNs.code, 404);
  assert.equal(noNs.status.message, 'namespaces "missing-ns" not found');
});

test('Watch receives ADDED/MODIFIED/DELETED and resumes from a resourceVersion', async () => {
  const kc = fake.kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const events: { type: string; name: string; rv: string }[] = [];
  const watch = new Watch(kc);
  let done: unknown = 'open';
  const ctl = await watch.watch('/api/v1/namespaces/default/configmaps', { labelSelector: 'w=1' }, (type, obj) => events.push({ type, name: obj.metadata.name, rv: obj.metadata.resourceVersion }), (err) => (done = err));
  await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'w1', labels: { w: '1' } }, data: { a: '1' } } });
  await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'ignored', labels: { w: '2' } } } });
  await core.patchNamespacedConfigMap({ name: 'w1', namespace: 'default', body: [{ op: 'replace', path: '/data/a', value: '2' }] });
  await core.deleteNamespacedConfigMap({ name: 'w1', namespace: 'default' });
  await waitFor('3 events', () => events.length >= 3);
  assert.deepEqual(events.map((e) => `${e.type} ${e.name}`), ['ADDED w1', 'MODIFIED w1', 'DELETED w1']);
  ctl.abort();
  await waitFor('watch done', () => done !== 'open');

  // Resume after the ADDED: we get exactly what happened since.
  const resumed: string[] = [];
  const ctl2 = await new Watch(kc).watch('/api/v1/namespaces/default/configmaps', { labelSelector: 'w=1', resourceVersion: events[0]!.rv }, (type, obj) => resumed.push(`${type} ${obj.metadata.name}`), () => undefined);
  await waitFor('2 replayed events', () => resumed.length >= 2);
  assert.deepEqual(resumed, ['MODIFIED w1', 'DELETED w1']);
  ctl2.abort();

  // timeoutSeconds ends the stream from the server side.
  let ended: unknown = 'open';
  await new Watch(kc).watch('/api/v1/namespaces/default/configmaps', { timeoutSeconds: 1 }, () => undefined, (err) => (ended = err));
  await waitFor('server-side timeout', () => ended !== 'open', 3000);
  assert.equal(ended, null);
});

test('watching from a compacted resourceVersion yields an ERROR event with 410 Expired', async () => {
  const small = await startFakeKube({ watchHistory: 3 });
  try {
    const kc = small.kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    const first = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'c0' } } });
    for (let i = 1; i <= 5; i++) await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: `c${i}` } } });
    const got: { type: string; obj: any }[] = [];
    let done: unknown = 'open';
    await new Watch(kc).watch('/api/v1/namespaces/default/configmaps', { resourceVersion: first.metadata!.resourceVersion! }, (type, obj) => got.push({ type, obj }), (err) => (done = err));
    await waitFor('stream closed', () => done !== 'open');
    assert.equal(got.length, 1);
    assert.equal(got[0]!.type, 'ERROR');
    assert.equal(got[0]!.obj.code, 410);
    assert.equal(got[0]!.obj.reason, 'Expired');
  } finally {
    await small.close();
  }
});

test('deployment controller: ok mode becomes ready, scales down, and deleting GCs pods', async () => {
  const apps = fake.kubeConfig().makeApiClient(AppsV1Api);
  const core = fake.kubeConfig().makeApiClient(CoreV1Api);
  await apps.createNamespacedDeployment({ namespace: 'default', body: deployment('okd', { 'modelctl.dev/model': 'm' }, 'img:ok', 2) });
  const ready = await waitFor('ready', () => {
    const d = fake.get('apps/v1', 'Deployment', 'default', 'okd');
    return d?.status?.readyReplicas === 2 && d.status.conditions?.find((c: any) => c.type === 'Progressing')?.reason === 'NewReplicaSetAvailable' && d;
  });
  assert.equal(ready.status.observedGeneration, 1);
  assert.equal(ready.status.updatedReplicas, 2);
  assert.equal(ready.status.availableReplicas, 2);
  assert.equal(ready.status.conditions.find((c: any) => c.type === 'Available').status, 'True');
  const pods = await core.listNamespacedPod({ namespace: 'default', labelSelector: 'app=okd' });
  assert.equal(pods.items.length, 2);
  const pod = pods.items[0]!;
  assert.match(pod.metadata!.name!, /^okd-[a-z0-9]{10}-[a-z0-9]{5}$/);
  assert.equal(pod.metadata?.ownerReferences?.[0]?.kind, 'Deployment');
  assert.equal(pod.metadata?.labels?.['modelctl.dev/model'], 'm');
  assert.ok(pod.metadata?.labels?.['pod-template-hash']);
  assert.equal(pod.status?.phase, 'Running');
  assert.ok(pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));

  const scale = await apps.patchNamespacedDeploymentScale({ name: 'okd', namespace: 'default', body: [{ op: 'replace', path: '/spec/replicas', value: 0 }] });
  assert.equal(scale.spec?.replicas, 0);
  assert.equal((await apps.readNamespacedDeploymentScale({ name: 'okd', namespace: 'default' })).status?.selector, 'app=okd');
  await waitFor('scaled to 0', () => fake.list('v1', 'Pod', 'default').filter((p) => p.metadata.labels?.app === 'okd').length === 0 && fake.get('apps/v1', 'Deployment', 'default', 'okd')?.status?.replicas === undefined);

  await objectApi().patch({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'okd' }, spec: { replicas: 1 } } as KubernetesObject, undefined, undefined, 'me', undefined, PatchStrategy.MergePatch);
  await waitFor('scaled to 1', () => fake.get('apps/v1', 'Deployment', 'default', 'okd')?.status?.readyReplicas === 1);
  await apps.deleteNamespacedDeployment({ name: 'okd', namespace: 'default' });
  assert.equal(fake.list('v1', 'Pod', 'default').filter((p) => p.metadata.labels?.app === 'okd').length, 0, 'pods garbage-collected');
});

test('deployment controller failure modes show in pod status and events', async () => {
  const apps = fake.kubeConfig().makeApiClient(AppsV1Api);
  const core = fake.kubeConfig().makeApiClient(CoreV1Api);
  fake.controller.behave({ image: 'img:missing' }, 'image-pull');
  fake.controller.behave({ model: 'm', version: 'crash' }, 'crash-loop');
  fake.controller.behave({ version: 'gpu' }, 'unschedulable');
  fake.controller.behave({ version: 'stuck' }, 'never-ready');
  await apps.createNamespacedDeployment({ namespace: 'default', body: deployment('f-pull', {}, 'img:missing') });
  await apps.createNamespacedDeployment({ namespace: 'default', body: deployment('f-crash', { 'modelctl.dev/model': 'm', 'app.kubernetes.io/version': 'crash' }, 'img:1') });
  await apps.createNamespacedDeployment({ namespace: 'default', body: deployment('f-gpu', { 'app.kubernetes.io/version': 'gpu' }, 'img:1') });
  await apps.createNamespacedDeployment({ namespace: 'default', body: deployment('f-stuck', { 'app.kubernetes.io/version': 'stuck' }, 'img:1') });
  const podOf = (app: string) => fake.list('v1', 'Pod', 'default').find((p) => p.metadata.labels?.app === app);
  const eventsOf = async (pod: any) => (await core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.name=${pod.metadata.name}` })).items;

  const pull = await waitFor('ImagePullBackOff', () => { const p = podOf('f-pull'); return p?.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'ImagePullBackOff' && p; });
  assert.equal(pull.status.phase, 'Pending');
  assert.equal(pull.status.containerStatuses[0].state.waiting.message, 'Back-off pulling image "img:missing"');
  const pullEvents = await eventsOf(pull);
  assert.ok(pullEvents.some((e) => e.reason === 'Failed' && e.type === 'Warning' && e.message === 'Failed to pull image "img:missing": not found'));
  const pullDeploy = fake.get('apps/v1', 'Deployment', 'default', 'f-pull');
  assert.equal(pullDeploy.status.readyReplicas, undefined);
  assert.equal(pullDeploy.status.conditions.find((c: any) => c.type === 'Progressing').reason, 'ReplicaSetUpdated');

  const crash = await waitFor('restarts', () => { const p = podOf('f-crash'); return (p?.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 2 && p; });
  assert.equal(crash.status.phase, 'Running');
  assert.equal(crash.status.containerStatuses[0].state.waiting.reason, 'CrashLoopBackOff');
  assert.equal(crash.status.containerStatuses[0].lastState.terminated.exitCode, 1);
  assert.ok((await eventsOf(crash)).some((e) => e.reason === 'BackOff' && e.message?.startsWith('Back-off restarting failed container')));

  const gpu = await waitFor('unschedulable', () => { const p = podOf('f-gpu'); return p?.status?.conditions?.[0]?.reason === 'Unschedulable' && p; });
  assert.equal(gpu.status.conditions[0].message, '0/3 nodes are available: 3 Insufficient nvidia.com/gpu.');
  assert.ok((await eventsOf(gpu)).some((e) => e.reason === 'FailedScheduling'));

  const stuck = await waitFor('running but unready', () => { const p = podOf('f-stuck'); return p?.status?.phase === 'Running' && p; });
  assert.ok(stuck.status.conditions.some((c: any) => c.type === 'Ready' && c.status === 'False'));
  assert.ok(!(await eventsOf(stuck)).some((e) => e.type === 'Warning'));

  // A rollout to a broken image keeps the old ready pod (like maxUnavailable=0 rounding does).
  fake.controller.behave({ image: 'img:bad' }, 'image-pull');
  await apps.createNamespacedDeployment({ namespace: 'default', body: deployment('f-roll', {}, 'img:good') });
  await waitFor('first ready', () => fake.get('apps/v1', 'Deployment', 'default', 'f-roll')?.status?.readyReplicas === 1);
  await apps.patchNamespacedDeployment({ name: 'f-roll', namespace: 'default', body: [{ op: 'replace', path: '/spec/template/spec/containers/0/image', value: 'img:bad' }] });
  const rolling = await waitFor('two pods', () => { const d = fake.get('apps/v1', 'Deployment', 'default', 'f-roll'); return d?.status?.observedGeneration === 2 && d?.status?.replicas === 2 && d; });
  assert.equal(rolling.status.updatedReplicas, 1);
  assert.equal(rolling.status.readyReplicas, 1);
});

test('faults: failNext, setDown and forbid answer like the apiserver', async () => {
  const core = fake.kubeConfig().makeApiClient(CoreV1Api);
  fake.failNext(1, 500, (r) => r.path.endsWith('/configmaps'));
  const e500 = await apiError(() => core.listNamespacedConfigMap({ namespace: 'default' }));
  assert.equal(e500.code, 500);
  assert.equal(e500.status.reason, 'InternalError');
  fake.failNext(1, 504);
  const e504 = await apiError(() => core.listNamespacedConfigMap({ namespace: 'default' }));
  assert.equal(e504.status.reason, 'Timeout');
  await core.listNamespacedConfigMap({ namespace: 'default' });

  let watchDone: unknown = 'open';
  await new Watch(fake.kubeConfig()).watch('/api/v1/namespaces/default/pods', {}, () => undefined, (err) => (watchDone = err));
  fake.setDown(true);
  await waitFor('outage drops open watches', () => watchDone !== 'open');
  const down = await apiError(() => core.readNamespace({ name: 'default' }));
  assert.equal(down.code, 503);
  assert.equal(down.status.reason, 'ServiceUnavailable');
  fake.setDown(false);
  await core.readNamespace({ name: 'default' });

  fake.delayMs(60);
  const t0 = Date.now();
  await core.readNamespace({ name: 'default' });
  assert.ok(Date.now() - t0 >= 55, 'latency injected');
  fake.delayMs(0);

  fake.forbid('patch', 'deployments', 'apps');
  const api = objectApi();
  await api.create(deployment('forbidden-d', {}, 'img:1'));
  const denied = await apiError(() => api.patch({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'forbidden-d' }, spec: { replicas: 2 } } as KubernetesObject, undefined, undefined, 'm', undefined, PatchStrategy.MergePatch));
  assert.equal(denied.code, 403);
  assert.equal(denied.status.reason, 'Forbidden');
  assert.equal(denied.status.message, 'deployments.apps "forbidden-d" is forbidden: User "system:serviceaccount:ci:modelctl" cannot patch resource "deployments" in API group "apps" in the namespace "default"');
  const rec = fake.requests.at(-1)!;
  assert.deepEqual([rec.verb, rec.resource, rec.group, rec.namespace, rec.name, rec.status], ['patch', 'deployments', 'apps', 'default', 'forbidden-d', 403]);
});

test('pod proxy calls the hook; 404 for a missing pod', async () => {
  const core = fake.kubeConfig().makeApiClient(CoreV1Api);
  await core.createNamespacedPod({ namespace: 'default', body: { metadata: { name: 'meter' }, spec: { containers: [{ name: 'c', image: 'img:1' }] } } });
  await waitFor('pod running', () => fake.get('v1', 'Pod', 'default', 'meter')?.status?.podIP);
  const noHook = await apiError(() => core.connectGetNamespacedPodProxyWithPath({ name: 'meter:9090', namespace: 'default', path: 'metrics' }));
  assert.equal(noHook.code, 503);
  const seen: any[] = [];
  fake.onPodProxy((req) => {
    seen.push({ ns: req.namespace, pod: req.pod.metadata.name, port: req.port, path: req.path, q: req.query.get('x') });
    return { status: 200, body: { requests: 42 } };
  });
  const res = await fetch(`${fake.url}/api/v1/namespaces/default/pods/meter:9090/proxy/stats/now?x=1`);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { requests: 42 });
  await core.connectGetNamespacedPodProxyWithPath({ name: 'meter:9090', namespace: 'default', path: 'metrics' });
  assert.deepEqual(seen, [
    { ns: 'default', pod: 'meter', port: '9090', path: '/stats/now', q: '1' },
    { ns: 'default', pod: 'meter', port: '9090', path: '/metrics', q: null },
  ]);
  const missing = await apiError(() => core.connectGetNamespacedPodProxyWithPath({ name: 'ghost:9090', namespace: 'default', path: 'metrics' }));
  assert.equal(missing.code, 404);
  assert.deepEqual([fake.requests.at(-1)?.verb, fake.requests.at(-1)?.subresource], ['get', 'proxy'], 'authorized as the real server does: GET → get');
});

test('withoutGatewayApi hides the group from discovery and 404s its paths', async () => {
  const bare = await startFakeKube();
  try {
    const full = await bare.kubeConfig().makeApiClient(ApisApi).getAPIVersions();
    bare.withoutGatewayApi();
    assert.ok(full.groups.some((g) => g.name === 'gateway.networking.k8s.io'), 'served by default');
    const groups = await bare.kubeConfig().makeApiClient(ApisApi).getAPIVersions();
    assert.ok(!groups.groups.some((g) => g.name === 'gateway.networking.k8s.io'));
    assert.ok(groups.groups.some((g) => g.name === 'apps'));
    const api = KubernetesObjectApi.makeApiClient(bare.kubeConfig());
    await assert.rejects(api.create({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r' } } as KubernetesObject), /404/);
    assert.equal((await fetch(`${bare.url}/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes`)).status, 404);
    // Everything else still works.
    await api.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'still-ok' } } as KubernetesObject);
  } finally {
    await bare.close();
  }
});

test('kubeconfigYaml and request accounting', async () => {
  const yaml = fake.kubeconfigYaml('prod');
  assert.match(yaml, new RegExp(`server: ${fake.url}`));
  assert.match(yaml, /namespace: prod/);
  fake.resetRequests();
  const core = fake.kubeConfig().makeApiClient(CoreV1Api);
  await core.listNamespacedPod({ namespace: 'default', labelSelector: 'app in (okd,x)', fieldSelector: 'status.phase=Running' });
  assert.equal(fake.requests.length, 1);
  const r = fake.requests[0]!;
  assert.deepEqual([r.method, r.path, r.verb, r.resource, r.group, r.namespace, r.status], ['GET', '/api/v1/namespaces/default/pods', 'list', 'pods', '', 'default', 200]);
  assert.equal(r.query.labelSelector, 'app in (okd,x)');
  const badField = await apiError(() => core.listNamespacedPod({ namespace: 'default', fieldSelector: 'spec.foo=1' }));
  assert.equal(badField.code, 400);
});
