import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { UsageError } from '../../src/core/errors.js';
import { connectKube } from '../../src/targets/kubernetes/client.js';
import { deploymentReady, describeProblems, diagnosePods, giveUpAfterMs, problemHint, progressDeadlineExceeded, replicaFailure } from '../../src/targets/kubernetes/readiness.js';
import { useScratch } from '../helpers/fixtures.js';

const { fresh, cleanup } = useScratch();
after(cleanup);

function kubeconfig(contexts: Array<{ name: string; namespace?: string }>, current: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c1', cluster: { server: 'https://10.0.0.1:6443' } }],
    users: [{ name: 'u1', user: { token: 'secret' } }],
    contexts: contexts.map((c) => ({ name: c.name, context: { cluster: 'c1', user: 'u1', ...(c.namespace ? { namespace: c.namespace } : {}) } })),
    'current-context': current,
  });
}

describe('connectKube: where the cluster configuration comes from', () => {
  test('--kubeconfig wins; the context namespace is reported', async () => {
    const dir = await fresh('kc');
    const file = path.join(dir, 'config');
    await writeFile(file, kubeconfig([{ name: 'prod', namespace: 'ml' }, { name: 'dev' }], 'dev'));
    const c = connectKube({ kubeconfig: file, context: 'prod', env: {}, home: dir });
    assert.equal(c.context, 'prod');
    assert.equal(c.contextNamespace, 'ml');
    assert.equal(c.server, 'https://10.0.0.1:6443');
    assert.match(c.source, /--kubeconfig/);
  });

  test('KUBECONFIG is used when there is no flag; then ~/.kube/config', async () => {
    const dir = await fresh('kc');
    const file = path.join(dir, 'one');
    await writeFile(file, kubeconfig([{ name: 'from-env' }], 'from-env'));
    assert.equal(connectKube({ env: { KUBECONFIG: file }, home: dir }).context, 'from-env');
    await mkdir(path.join(dir, '.kube'));
    await writeFile(path.join(dir, '.kube', 'config'), kubeconfig([{ name: 'from-home' }], 'from-home'));
    const c = connectKube({ env: {}, home: dir });
    assert.equal(c.context, 'from-home');
    assert.equal(c.source, '~/.kube/config');
  });

  test('nothing configured: a usage error instead of client-node\'s silent http://localhost:8080', async () => {
    const dir = await fresh('kc');
    assert.throws(
      () => connectKube({ env: {}, home: dir }),
      (e: unknown) => e instanceof UsageError && /no Kubernetes configuration found/.test(e.message) && /--kubeconfig/.test(e.hint ?? ''),
    );
  });

  test('a kubeconfig without a usable current context is refused, naming the file', async () => {
    const dir = await fresh('kc');
    const file = path.join(dir, 'empty');
    await writeFile(file, 'apiVersion: v1\nkind: Config\n');
    assert.throws(() => connectKube({ kubeconfig: file, env: {}, home: dir }), (e: unknown) => e instanceof UsageError && /names no cluster|fallback/.test(e.message));
  });

  test('unknown --context lists the known ones; a missing file is named', async () => {
    const dir = await fresh('kc');
    const file = path.join(dir, 'config');
    await writeFile(file, kubeconfig([{ name: 'a' }, { name: 'b' }], 'a'));
    assert.throws(() => connectKube({ kubeconfig: file, context: 'c', env: {}, home: dir }), (e: unknown) => e instanceof UsageError && /known contexts: a, b/.test(e.hint ?? ''));
    assert.throws(() => connectKube({ kubeconfig: path.join(dir, 'nope'), env: {}, home: dir }), (e: unknown) => e instanceof UsageError && /nope does not exist/.test(e.message));
    assert.throws(() => connectKube({ env: { KUBECONFIG: path.join(dir, 'nope') }, home: dir }), (e: unknown) => e instanceof UsageError && /KUBECONFIG/.test(e.message));
  });
});

describe('readiness: why a version is not ready, in kubectl words', () => {
  const pod = (name: string, status: object) => ({ metadata: { name }, status }) as any;

  test('deploymentReady needs the new generation observed and every replica ready', () => {
    const d = (gen: number, observed: number, ready: number) =>
      ({ metadata: { generation: gen }, spec: { replicas: 2 }, status: { observedGeneration: observed, updatedReplicas: 2, readyReplicas: ready, availableReplicas: ready } }) as any;
    assert.equal(deploymentReady(d(2, 2, 2)), true);
    assert.equal(deploymentReady(d(2, 1, 2)), false, 'old generation');
    assert.equal(deploymentReady(d(2, 2, 1)), false, 'one replica missing');
    assert.equal(progressDeadlineExceeded({ status: { conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet x has timed out progressing.' }] } } as any), 'ReplicaSet x has timed out progressing.');
  });

  test('image pull back-off and crash loops are fatal; unschedulable waits but is named; events add detail', () => {
    const problems = diagnosePods(
      [
        pod('a', { containerStatuses: [{ name: 'model', restartCount: 0, state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "x:1"' } } }] }),
        pod('b', { containerStatuses: [{ name: 'model', restartCount: 4, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 1, reason: 'Error' } } }] }),
        pod('c', { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available: 3 Insufficient nvidia.com/gpu.' }] }),
        pod('d', { phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }], containerStatuses: [{ name: 'model', restartCount: 0, state: { running: {} } }] }),
        pod('e', { initContainerStatuses: [{ name: 'fetch-bundle', restartCount: 0, state: { waiting: { reason: 'PodInitializing' } } }] }),
      ],
      [{ involvedObject: { name: 'a' }, type: 'Warning', reason: 'Failed', message: 'Failed to pull image "x:1": not found' } as any],
    );
    const by = Object.fromEntries(problems.map((p) => [p.pod, p]));
    assert.equal(by.a!.fatal, true);
    assert.match(by.a!.message, /not found/, 'the event says why the pull failed');
    assert.equal(by.b!.fatal, true);
    assert.match(by.b!.message, /last exit code 1.*4 restarts/);
    assert.equal(by.c!.fatal, false);
    assert.match(by.c!.message, /Insufficient nvidia.com\/gpu/);
    assert.equal(by.d!.reason, 'NotReady');
    assert.equal(by.e, undefined, 'initialising is not a problem');
    assert.equal(problems[0]!.fatal, true, 'fatal problems first');
    assert.match(describeProblems(problems), /ImagePullBackOff on 1 pod \(a: container model/);
  });

  test('replicaFailure reads the Deployment condition; giveUpAfterMs: refusals at once, claims after 30 s, resources after 5 min, the rest at the deadline', () => {
    const rf = { reason: 'FailedCreate', message: 'pods "m-1-abc-x1y2z" is forbidden: violates PodSecurity "baseline:latest": hostPath volumes (volume "bundle-cache")' };
    const dep = (conditions: object[]) => ({ status: { conditions } }) as any;
    assert.deepEqual(replicaFailure(dep([{ type: 'ReplicaFailure', status: 'True', ...rf }])), rf);
    assert.equal(replicaFailure(dep([{ type: 'ReplicaFailure', status: 'False', ...rf }])), undefined);
    assert.equal(replicaFailure(dep([{ type: 'Available', status: 'True' }])), undefined);
    assert.equal(giveUpAfterMs(rf), 0);
    assert.equal(giveUpAfterMs({ reason: 'FailedCreate', message: 'pods "x" is forbidden: exceeded quota: compute, requested: cpu=2, used: cpu=8, limited: cpu=8' }), 0);
    assert.equal(giveUpAfterMs({ reason: 'FailedCreate', message: 'Internal error occurred: failed calling webhook "x": context deadline exceeded' }), 30_000);
    const sched = (m: string) => giveUpAfterMs({ reason: 'Unschedulable', message: `0/3 nodes are available: ${m}. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.` });
    assert.equal(sched('persistentvolumeclaim "model-cache" not found'), 30_000);
    assert.equal(sched('pod has unbound immediate PersistentVolumeClaims'), 30_000);
    assert.equal(sched('3 Insufficient nvidia.com/gpu'), 300_000);
    assert.equal(giveUpAfterMs({ reason: 'NotReady', message: 'running but failing its readiness probe' }), undefined);
    assert.match(problemHint(rf, 'ml', 'm-1'), /modelctl kubernetes check.*persistentVolumeClaim cache is admitted at every level/);
    assert.match(problemHint({ reason: 'Unschedulable', message: 'persistentvolumeclaim "c" not found' }, 'ml', 'm-1'), /PersistentVolumeClaim must exist in namespace ml and be Bound/);
  });
});
