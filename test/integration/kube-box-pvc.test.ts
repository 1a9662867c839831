import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { leftovers } from '../fakes/kube/netns.js';
import { useScratch } from '../helpers/fixtures.js';
import { enforcePodSecurity } from '../helpers/kube-api.js';
import { CACHE_MODEL, podsOf, pulled, pushCacheVersion, warnings, WEIGHTS } from '../helpers/kube-box-cache.js';
import { startKubeBox, type KubeBox } from '../helpers/kube-world.js';

/**
 * kubernetes.bundleCache.persistentVolumeClaim on the cluster in a box, in a namespace enforcing
 * Pod Security "restricted" (the strictest level; baseline already refuses the hostPath form): the
 * fetch-bundle init containers of every pod share one claim, bound by the fake's PV controller to a
 * static hostPath PersistentVolume (a separate mount in each container, as a real volume is). Every
 * pod modelctl writes is admitted (fake-kube-volumes.test.ts shows restricted's checks one by one).
 *
 * Measured on the wire (bytes through the relay between the pods and the real S3) and in the init
 * containers' own output, as kube-box-cache.test.ts does for the hostPath form.
 */

const MODEL = CACHE_MODEL;
const CLAIM = 'model-cache';

describe('cluster in a box: bundle cache on a PersistentVolumeClaim (kubernetes.bundleCache.persistentVolumeClaim)', { timeout: 600_000 }, () => {
  let w: KubeBox;
  let runId = '';
  let volumeParent = '';
  const scratch = useScratch();
  const weights = randomBytes(WEIGHTS);

  const check = async () => {
    const r = await w.cli(['kubernetes', 'check', '--json']);
    return { code: r.code, item: r.json().checks.find((c: any) => c.name === 'bundle-cache'), all: r.stdout + r.stderr };
  };
  const create = async (apiPath: string, body: unknown) => {
    const r = await fetch(`${w.fake.url}${apiPath}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(r.status, 201, await r.text());
  };

  before(async () => {
    // The volume's directory on the node (not under /tmp: each container has its own /tmp).
    volumeParent = await mkdtemp(path.join('/var/tmp', 'modelctl-pv-'));
    w = await startKubeBox({ section: { replicas: 2, warmReplicas: 1, bundleCache: { persistentVolumeClaim: { claimName: CLAIM }, maxBytes: '1Gi' } } });
    runId = w.box.network.runId;
    await enforcePodSecurity(w.fake, 'default', 'restricted');
    await pushCacheVersion(w, scratch, '0.9.0', 'It says {{label}}.\n', weights);
    await pushCacheVersion(w, scratch, '1.0.0', 'It reads as {{label}} ({{confidence}}).\n', weights);
    await pushCacheVersion(w, scratch, '1.0.1', 'The text reads as {{label}}, confidence {{confidence}}.\n', weights);
  });
  after(async () => {
    await w?.close();
    await scratch.cleanup();
    if (volumeParent) await rm(volumeParent, { recursive: true, force: true });
    assert.deepEqual(await leftovers(runId), [], 'no namespace, veth or bridge of this run is left');
  });

  test('no such claim: `kubernetes check` fails saying what to create', async () => {
    const c = await check();
    assert.equal(c.code, 2, c.all);
    assert.equal(c.item.ok, false);
    assert.match(c.item.detail, /namespace default has no PersistentVolumeClaim model-cache; every new pod would stay Pending \(persistentvolumeclaim "model-cache" not found\)/);
    assert.match(c.item.hint, /create it in namespace default \(accessModes \[ReadWriteMany\]/);
  });

  test('a Pending claim fails the check; bound to a ReadWriteMany volume it passes, naming the volume and the access mode', async () => {
    await create('/api/v1/namespaces/default/persistentvolumeclaims', { metadata: { name: CLAIM }, spec: { accessModes: ['ReadWriteMany'], resources: { requests: { storage: '1Gi' } }, storageClassName: 'node-cache' } });
    const pending = await check();
    assert.equal(pending.code, 2, pending.all);
    assert.match(pending.item.detail, /the claim is Pending, not Bound \(no PersistentVolume matches storageClassName "node-cache", accessModes \[ReadWriteMany\], 1Gi/);
    await create('/api/v1/persistentvolumes', {
      metadata: { name: 'node-cache-1' },
      spec: { capacity: { storage: '2Gi' }, accessModes: ['ReadWriteMany'], storageClassName: 'node-cache', hostPath: { path: path.join(volumeParent, 'cache'), type: 'DirectoryOrCreate' } },
    });
    let bound: any;
    for (let i = 0; i < 50 && !bound; i++) {
      const c = await check();
      if (c.code === 0) bound = c.item;
      else await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(bound, 'the check passes once the claim is bound');
    assert.match(bound.detail, /cache on PersistentVolumeClaim model-cache \(at most 1Gi\) .*: Bound to node-cache-1 \(2Gi\), accessModes \[ReadWriteMany\]: pods on any node share it; a persistentVolumeClaim volume is admitted by every Pod Security level, and these pods pass "restricted"/);
  });

  test('first deploy, two pods: the weights are fetched once into the claim; the model container never sees it', async () => {
    const before = w.s3Bytes.toPods;
    const r = await w.cli(['deploy', `${MODEL}@1.0.0`, '--ready-timeout', '90s', '--json'], { timeoutMs: 180_000 });
    assert.equal(r.code, 0, `${r.stderr}\nwarnings: ${warnings(w).join('\n  ')}`);
    const onWire = w.s3Bytes.toPods - before;
    const pods = pulled(w, '1.0.0');
    process.stderr.write(`  first deploy on the claim: ${pods.length} pods, ${onWire} bytes from S3 on the wire (weights ${WEIGHTS}); per pod: ${JSON.stringify(pods)}\n`);
    assert.equal(pods.length, 2);
    assert.equal(pods.reduce((n, p) => n + p.fetchedBlobs, 0), 1, 'the weights blob fetched by one pod only');
    assert.ok(onWire >= WEIGHTS && onWire < WEIGHTS * 1.1, `${onWire} bytes on the wire: the weights once`);
    assert.ok((await readdir(path.join(volumeParent, 'cache', 'blobs', 'sha256'))).length > 0, 'the blobs are on the claim\'s volume');
    const spec = podsOf(w, '1.0.0')[0].spec;
    assert.deepEqual(spec.volumes.find((v: any) => v.name === 'bundle-cache'), { name: 'bundle-cache', persistentVolumeClaim: { claimName: CLAIM } });
    assert.deepEqual(spec.containers.find((c: any) => c.name === 'model').volumeMounts.map((m: any) => m.name), ['bundle']);
    assert.deepEqual(spec.containers.find((c: any) => c.name === 'model').securityContext, { runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' }, runAsUser: 1000 });
  });

  test('a prompt-only change: each new pod fetches ≤ 1% of the weights\' bytes from S3, the weights come from the claim', async () => {
    const before = w.s3Bytes.toPods;
    // Traffic through the Gateway, for the canary's gates to judge.
    const load = w.load();
    const r = await w.cli(['deploy', `${MODEL}@1.0.1`, '--steps', '50,100', '--interval', '3s', '--ready-timeout', '90s', '--json'], { timeoutMs: 180_000 });
    await load.stop();
    assert.equal(r.code, 0, `${r.stderr}\nwarnings: ${warnings(w).join('\n  ')}`);
    assert.equal(r.json().outcome, 'promoted');
    const onWire = w.s3Bytes.toPods - before;
    const pods = pulled(w, '1.0.1');
    assert.ok(pods.length >= 1);
    const perPod = onWire / pods.length;
    process.stderr.write(`  prompt-only change on the claim: ${pods.length} new pod(s), ${onWire} bytes on the wire (${perPod.toFixed(0)} per pod = ${((perPod / WEIGHTS) * 100).toFixed(2)}% of the weights); per pod: ${JSON.stringify(pods)}\n`);
    for (const p of pods) {
      assert.equal(p.fetched, 0, `${p.pod} fetched nothing the claim holds`);
      assert.ok(p.cached >= WEIGHTS, `${p.pod} took the weights from the claim`);
    }
    assert.ok(perPod <= WEIGHTS * 0.01, `${perPod} bytes per pod: at most 1% of ${WEIGHTS}`);
  });
  test('a claim that does not exist: the deploy fails on the scheduler\'s message after 30 s, not at its 120 s readiness timeout, and the stable version keeps serving', async () => {
    // The same project pointing at a claim nobody created.
    const file = path.join(w.projectDir, 'modelctl.yaml');
    const doc = parse(await readFile(file, 'utf8'));
    doc.kubernetes.bundleCache.persistentVolumeClaim.claimName = 'gone-cache';
    await writeFile(file, stringify(doc));
    const t0 = Date.now();
    // Human output (not --json, which keeps notes off stderr): the scheduler's verdict is said at once.
    const r = await w.cli(['deploy', `${MODEL}@0.9.0`, '--ready-timeout', '120s'], { timeoutMs: 180_000 });
    const took = Date.now() - t0;
    process.stderr.write(`  missing claim: the deploy ended after ${(took / 1000).toFixed(1)} s (readiness timeout 120 s), exit ${r.code}\n`);
    assert.equal(r.code, 3, `rolled back (exit 3)\n${r.stdout}\n${r.stderr}`);
    const said = r.stdout + r.stderr;
    assert.match(said, /pod \S+ of Deployment sentiment-0-9-0 Unschedulable for 30 s: 0\/1 nodes are available: persistentvolumeclaim "gone-cache" not found/);
    assert.match(said, /the bundle cache's PersistentVolumeClaim must exist in namespace default and be Bound/);
    assert.match(r.stderr, /sentiment@0\.9\.0: pod \S+ Unschedulable: .*"gone-cache" not found.*\(giving up in 30 s unless it clears\)/, 'said at once, while waiting');
    assert.ok(took < 75_000, `${took} ms: the 30 s bound, not the 120 s readiness timeout`);
    const served = await w.send(5);
    assert.deepEqual(Object.keys(served), ['1.0.1'], `the stable version answers: ${JSON.stringify(served)}`);
  });
});
