import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { versionObjectName } from '../../src/targets/kubernetes/names.js';
import { startKubeBox, type KubeBox } from '../helpers/kube-world.js';

/**
 * Whole flows on the cluster in a box (test/fakes/kube/README.md): every part real — the bundle in
 * the real S3 (Ceph RGW) pulled by the init container's `modelctl bundle pull`, the real example
 * model and the real meter sidecar as processes in per-pod network namespaces, probes sent by the
 * kubelet to the pod IP, and load through the Gateway data plane that follows the HTTPRoute.
 */

const MODEL = 'sentiment';
export const svc = (v: string): string => versionObjectName(MODEL, v);

/** The kubelet's Warning events (probe failures, back-offs): what a failure message must show. */
function warnings(w: KubeBox): string[] {
  return [...new Set(w.fake.list('v1', 'Event', 'default').filter((e) => e.type === 'Warning').map((e) => `${e.reason}: ${e.message}`))];
}

function podsOf(w: KubeBox, version: string): any[] {
  return w.fake.list('v1', 'Pod', 'default').filter((p) => p.metadata.annotations?.['modelctl.dev/version'] === version);
}

describe('cluster in a box: whole rollouts with real pods', { timeout: 600_000 }, () => {
  let w: KubeBox;
  before(async () => {
    w = await startKubeBox();
    for (const v of ['1.0.0', '1.1.0']) await w.push(v);
    await w.push('1.2.0', { errorRate: 0.5 });
  });
  after(() => w?.close());

  test('first deploy: the pod pulls the bundle from S3, the kubelet probes the pod IP, the Gateway serves it', async () => {
    const r = await w.cli(['deploy', `${MODEL}@1.0.0`, '--ready-timeout', '40s', '--json']);
    const pod = podsOf(w, '1.0.0')[0];
    const why = `${r.stderr}\nkubelet warnings: ${warnings(w).join('\n  ')}\npod status: ${JSON.stringify(pod?.status?.containerStatuses?.map((c: any) => ({ name: c.name, ready: c.ready, restarts: c.restartCount, state: c.state })))}`;
    assert.equal(r.code, 0, why);
    assert.equal(r.json().outcome, 'promoted');
    assert.deepEqual(await w.send(20), { '1.0.0': 20 }, 'every answer through the Gateway comes from 1.0.0');
    const init = pod.status.initContainerStatuses[0];
    assert.equal(init.state.terminated?.reason, 'Completed', 'the init container pulled the bundle and exited 0');
    assert.match(pod.status.podIP, /^10\.\d+\.\d+\.\d+$/);
  });
});
