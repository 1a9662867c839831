import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { leftovers } from '../fakes/kube/netns.js';
import { useScratch } from '../helpers/fixtures.js';
import { CACHE_MODEL, podsOf, pulled, pushCacheVersion, warnings, WEIGHTS } from '../helpers/kube-box-cache.js';
import { enforcePodSecurity } from '../helpers/kube-api.js';
import { startKubeBox, type KubeBox } from '../helpers/kube-world.js';

/**
 * kubernetes.bundleCache on the cluster in a box: the fetch-bundle init containers of every pod of
 * the node share one hostPath blob cache. Measured on the wire (bytes through the relay between the
 * pods and the real S3) and in the init containers' own output:
 *  - two pods of a new version starting at once fetch its weights once (one waits for the other);
 *  - a prompt-only change fetches ≤ 1% of the weights' bytes per pod (the weights come from the
 *    node cache, copied into the pod's own volume);
 *  - the model container never sees the cache (it is mounted into the init container only).
 */

const MODEL = CACHE_MODEL;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('cluster in a box: node-level bundle cache (kubernetes.bundleCache)', { timeout: 600_000 }, () => {
  let w: KubeBox;
  let runId = '';
  let cacheDir = '';
  let cacheParent = '';
  const scratch = useScratch();
  const weights = randomBytes(WEIGHTS);

  /** The example model plus 16 MiB of extra weights; `prompt` changes prompts/explain.txt only. */
  const pushVersion = (version: string, prompt: string, extra = weights) => pushCacheVersion(w, scratch, version, prompt, extra);

  before(async () => {
    // Not under /tmp (each container has its own): a node directory, absent so that the kubelet
    // creates it (DirectoryOrCreate).
    cacheParent = await mkdtemp(path.join('/var/tmp', 'modelctl-node-cache-'));
    cacheDir = path.join(cacheParent, 'cache');
    w = await startKubeBox({ section: { replicas: 2, warmReplicas: 1, bundleCache: { hostPath: cacheDir, maxBytes: '1Gi' } } });
    runId = w.box.network.runId;
    await pushVersion('1.0.0', 'It reads as {{label}} ({{confidence}}).\n');
    await pushVersion('1.0.1', 'The text reads as {{label}}, confidence {{confidence}}.\n');
  });
  after(async () => {
    await w?.close();
    await scratch.cleanup();
    if (cacheParent) await rm(cacheParent, { recursive: true, force: true });
    assert.deepEqual(await leftovers(runId), [], 'no namespace, veth or bridge of this run is left');
  });

  test('first deploy, two pods starting at once on the node: the weights are fetched from S3 once', async () => {
    const before = w.s3Bytes.toPods;
    // A store at 4 MB/s (a remote S3 is not a local one): the weights take ~4 s to fetch, long
    // enough for the second pod's init container to start while the first is still fetching.
    w.s3Bytes.toPodsPerSecond = 4_000_000;
    const r = await w.cli(['deploy', `${MODEL}@1.0.0`, '--ready-timeout', '60s', '--json']).finally(() => (w.s3Bytes.toPodsPerSecond = 0));
    assert.equal(r.code, 0, `${r.stderr}\nkubelet warnings: ${warnings(w).join('\n  ')}`);
    const onWire = w.s3Bytes.toPods - before;
    const pods = pulled(w, '1.0.0');
    assert.equal(pods.length, 2, 'two pods of 1.0.0');
    process.stderr.write(`  first deploy: 2 pods, ${onWire} bytes from S3 on the wire (weights ${WEIGHTS}); per pod: ${JSON.stringify(pods)}\n`);
    assert.equal(pods.reduce((n, p) => n + p.fetchedBlobs, 0), 1, 'one pod fetched the weights blob, the other used it from the node cache');
    assert.equal(pods.reduce((n, p) => n + p.waited, 0), 1, 'the other pod started while it was being fetched, and waited for it (the pulls overlapped)');
    assert.ok(onWire >= WEIGHTS && onWire < WEIGHTS * 1.1, `${onWire} bytes on the wire: the weights once, not twice (${2 * WEIGHTS})`);
    const st = await stat(cacheDir);
    assert.ok(st.isDirectory(), 'the kubelet created the hostPath directory (DirectoryOrCreate)');
    assert.equal(st.mode & 0o777, 0o755);
    assert.deepEqual(await readdir(path.join(cacheDir, 'locks')), [], 'no fetch lock left');
    // The model container sees its bundle only (read-only), never the node's cache.
    const spec = podsOf(w, '1.0.0')[0].spec;
    assert.deepEqual(spec.containers.find((c: any) => c.name === 'model').volumeMounts.map((m: any) => m.name), ['bundle']);
    assert.deepEqual(spec.volumes.find((v: any) => v.name === 'bundle-cache').hostPath, { path: cacheDir, type: 'DirectoryOrCreate' });
  });

  test('a prompt-only change: each new pod fetches ≤ 1% of the weights from S3; the weights come from the node cache', async () => {
    const before = w.s3Bytes.toPods;
    const load = w.load();
    const r = await w.cli(['deploy', `${MODEL}@1.0.1`, '--steps', '50,100', '--interval', '3s', '--ready-timeout', '60s', '--json']);
    const seen = await load.stop();
    assert.equal(r.code, 0, `${r.stderr}\nkubelet warnings: ${warnings(w).join('\n  ')}`);
    assert.equal(r.json().outcome, 'promoted');
    assert.ok((seen.byVersion['1.0.1'] ?? 0) > 0, 'the new version answered');
    const onWire = w.s3Bytes.toPods - before;
    const pods = pulled(w, '1.0.1');
    assert.ok(pods.length >= 1);
    const perPod = onWire / pods.length;
    process.stderr.write(
      `  prompt-only change: ${pods.length} new pod(s), ${onWire} bytes from S3 on the wire (${perPod.toFixed(0)} per pod = ${((perPod / WEIGHTS) * 100).toFixed(2)}% of the weights); per pod: ${JSON.stringify(pods)}\n`,
    );
    for (const p of pods) {
      assert.equal(p.fetched, 0, `${p.pod} fetched no cached blob again`);
      assert.ok(p.cached >= WEIGHTS, `${p.pod} took the weights from the node cache`);
    }
    assert.ok(perPod <= WEIGHTS * 0.01, `${perPod} bytes per pod on the wire: at most 1% of the ${WEIGHTS} bytes of weights`);
  });

  test('kubernetes check: the cache is reported, and a namespace enforcing Pod Security "baseline" (which forbids hostPath) fails the check with what to do', async () => {
    const ok = await w.cli(['kubernetes', 'check', '--json']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const item = ok.json().checks.find((c: any) => c.name === 'bundle-cache');
    assert.equal(item.ok, true);
    assert.ok(item.detail.includes(`node cache hostPath ${cacheDir} (DirectoryOrCreate, at most 1Gi)`), item.detail);
    await enforcePodSecurity(w.fake, 'default', 'baseline');
    try {
      const refused = await w.cli(['kubernetes', 'check', '--json']);
      assert.equal(refused.code, 2, refused.stdout + refused.stderr);
      const bad = refused.json().checks.find((c: any) => c.name === 'bundle-cache');
      assert.equal(bad.ok, false);
      assert.match(bad.detail, /enforces Pod Security "baseline", which refuses hostPath volumes/);
      assert.match(bad.hint, /pod-security\.kubernetes\.io\/enforce=privileged, or remove kubernetes\.bundleCache/);
    } finally {
      await enforcePodSecurity(w.fake, 'default', null);
    }
  });

  test('a corrupted cache blob is never served: the next pod re-fetches it (and its model starts)', async () => {
    // Flip the bytes of the cached weights in place (as a disk fault or a careless root would).
    const blobs = path.join(cacheDir, 'blobs', 'sha256');
    const big = [];
    for (const name of await readdir(blobs)) if ((await stat(path.join(blobs, name))).size === WEIGHTS) big.push(name);
    assert.equal(big.length, 1);
    const file = path.join(blobs, big[0]!);
    const { open } = await import('node:fs/promises');
    const fh = await open(file, 'r+');
    await fh.write(Buffer.from('corrupt!'), 0, 8, 1024);
    await fh.close();
    const before = w.s3Bytes.toPods;
    // A rollback to 1.0.0 runs on its warm pod; a scale-up would be a new pod: delete one 1.0.1 pod,
    // the Deployment makes a new one whose init container meets the corrupt blob.
    const existing = new Set(podsOf(w, '1.0.1').map((p) => p.metadata.uid));
    const victim = podsOf(w, '1.0.1')[0];
    await fetch(`${w.fake.url}/api/v1/namespaces/default/pods/${victim.metadata.name}`, { method: 'DELETE' });
    let fresh: any;
    for (let i = 0; i < 600 && !fresh; i++) {
      fresh = podsOf(w, '1.0.1').find((p) => !existing.has(p.metadata.uid) && p.status?.containerStatuses?.find((c: any) => c.name === 'model')?.ready);
      if (!fresh) await sleep(100);
    }
    assert.ok(fresh, `a new 1.0.1 pod became ready\n${warnings(w).join('\n  ')}`);
    const [p] = pulled(w, '1.0.1', fresh.metadata.name);
    assert.ok(p);
    process.stderr.write(`  corrupt cache blob: the new pod fetched ${p.fetched} bytes again (${w.s3Bytes.toPods - before} on the wire)\n`);
    assert.equal(p.fetchedBlobs, 1, 'the corrupt weights were fetched again, not served');
    const { createHash } = await import('node:crypto');
    assert.equal(createHash('sha256').update(await (await import('node:fs/promises')).readFile(file)).digest('hex'), big[0], 'the cache holds the right bytes again');
  });
});
