import { PutObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { after, before, test } from 'node:test';
import { isSplit } from '../../src/bundle/manifest.js';
import { packDirectory } from '../../src/bundle/source.js';
import { ExitCode } from '../../src/core/errors.js';
import { diff, inspectRef, pull, push } from '../../src/store/transfer.js';
import type { Progress } from '../../src/core/progress.js';
import { BlobCache } from '../../src/store/blob-cache.js';
import { S3Store } from '../../src/store/s3-store.js';
import { blobKey, type BundleStore } from '../../src/store/store.js';
import { testS3, type TestS3 } from '../infra/ceph-rgw.js';
import { bundleYaml, runCli, useScratch } from '../helpers/fixtures.js';
import { s3CliEnv } from '../helpers/s3-env.js';
import { retrainTensor, tensorBytes, writeSafetensors, type TensorSpec } from '../helpers/safetensors.js';

/**
 * Tensor-level dedup against a real S3 (Ceph RGW from the global setup): a 200-tensor safetensors
 * model, a fine-tune of 2 tensors, the bytes each push uploads as the store reports them.
 *
 * The tensors are 96 KiB (so the model is ~19 MiB and the RGW's memory stays small) and packed
 * with runs of 64 KiB instead of the default 1 MiB, so that each is one blob as a ≥ 1 MiB tensor
 * is by default; the split logic is the same.
 */
let s3: TestS3;
const { fresh, bundle, cleanup } = useScratch();
before(async () => {
  s3 = await testS3();
});
after(cleanup);

const RUN = 64 * 1024;
const TENSORS: TensorSpec[] = Array.from({ length: 200 }, (_, i) => ({ name: `model.layers.${String(i).padStart(3, '0')}.weight`, dtype: 'F16', shape: [128, 384] }));

/** Counts the bytes a push reports uploading (the store's own progress callbacks). */
function countingProgress(): Progress & { bytes: Map<string, number> } {
  let label = '';
  const bytes = new Map<string, number>();
  return {
    bytes,
    start: (l) => void (label = l),
    advance: (n) => void bytes.set(label, (bytes.get(label) ?? 0) + n),
    finish: () => undefined,
  };
}

/** The real store, with every blob it serves counted (the reads a pull makes). */
function countingReads(store: S3Store): { store: BundleStore; read: Map<string, number> } {
  const read = new Map<string, number>();
  const counted = Object.assign(Object.create(store) as S3Store, {
    getBlob: async (digest: string) => {
      const body = await store.getBlob(digest);
      const count = new Transform({
        transform: (c: Buffer, _e, cb) => {
          read.set(digest, (read.get(digest) ?? 0) + c.length);
          cb(null, c);
        },
      });
      body.once('error', (err) => count.destroy(err));
      return body.pipe(count);
    },
  });
  return { store: counted, read };
}

test('a fine-tune of 2 of 200 tensors uploads those two; pull reassembles byte for byte; a corrupt tensor blob is exit 6', async () => {
  const bucket = await s3.newBucket('tensors');
  const store = new S3Store(s3.client(), bucket, 'models');
  const dir = await bundle({ 'bundle.yaml': bundleYaml('llm', '1.0.0'), 'prompts/system.txt': 'You are helpful.\n', 'config/c.json': '{}\n', 'preprocessing/t.txt': 't\n' });
  const file = path.join(dir, 'weights', 'model.safetensors');
  await mkdir(path.dirname(file), { recursive: true });
  await writeSafetensors(file, TENSORS, { format: 'pt' });

  const first = countingProgress();
  const v1 = await packDirectory(dir, { tensorRunBytes: RUN });
  const p1 = await push(store, v1, first).finally(() => v1.close());
  assert.equal(p1.created, true);
  const fileBytes = (await stat(file)).size;
  assert.ok(p1.uploadedBytes >= fileBytes, `${p1.uploadedBytes} ≥ ${fileBytes}`);

  // The fine-tune: 2 tensors retrained, a new version.
  await writeFile(path.join(dir, 'bundle.yaml'), bundleYaml('llm', '1.1.0'));
  const changed = (await retrainTensor(file, TENSORS, 'model.layers.017.weight', { format: 'pt' })) + (await retrainTensor(file, TENSORS, 'model.layers.150.weight', { format: 'pt' }));
  assert.equal(changed, 2 * tensorBytes(TENSORS[0]!));
  const second = countingProgress();
  const v2 = await packDirectory(dir, { tensorRunBytes: RUN });
  const p2 = await push(store, v2, second).finally(() => v2.close());
  const uploaded = second.bytes.get('pushing llm@1.1.0') ?? 0;
  // The store streamed the two tensors' blobs and bundle.yaml (which push keeps out of its count).
  assert.equal(p2.uploadedBytes, changed, 'exactly the two tensors');
  assert.ok(uploaded - p2.uploadedBytes < 200, `store progress ${uploaded}`);
  assert.ok(uploaded <= 2 * changed, `uploaded ${uploaded} bytes for ${changed} bytes of changed tensors`);
  assert.ok(uploaded >= changed);
  console.log(`fine-tune of 2/200 tensors: uploaded ${uploaded} bytes, changed tensors ${changed} bytes (${(uploaded / changed).toFixed(3)}×), re-used ${p2.reusedBytes}`);

  // The manifest records the file's own SHA-256 and both tensors' blobs are in the store (HEAD).
  const m2 = (await inspectRef(store, 'llm@1.1.0')).manifest;
  const split = m2.components.flatMap((c) => c.files).find(isSplit)!;
  assert.equal(split.parts.length, 201);
  for (const p of split.parts) assert.ok(await store.hasBlob(p.blob, p.size), p.blob);

  const d = await diff(store, 'llm@1.0.0', 'llm@1.1.0');
  assert.deepEqual(
    d.components.flatMap((c) => c.tensors ?? []).map((t) => `${t.change} ${t.name} ${t.dtype} [${t.shape.join(',')}] ${t.bytes}`),
    ['changed model.layers.017.weight F16 [128,384] 98304', 'changed model.layers.150.weight F16 [128,384] 98304'],
  );
  const env = { ...s3CliEnv(s3), MODELCTL_HOME: await fresh('home') };
  const cliDiff = await runCli(['bundle', 'diff', 'llm@1.0.0', 'llm@1.1.0', '--store', `s3://${bucket}/models`, '--json'], { env });
  assert.equal(cliDiff.code, 0, cliDiff.stderr);
  assert.deepEqual(cliDiff.json().components.find((c: { name: string }) => c.name === 'weights').tensors.map((t: { name: string }) => t.name), ['model.layers.017.weight', 'model.layers.150.weight']);
  const humanDiff = await runCli(['bundle', 'diff', 'llm@1.0.0', 'llm@1.1.0', '--store', `s3://${bucket}/models`], { env });
  assert.match(humanDiff.stdout + humanDiff.stderr, /~ model\.layers\.017\.weight {2}F16 \[128, 384\] {2}96(\.0)? KiB/);

  // Pull through the blob cache: 1.0.0, then 1.1.0 reads only the 2 changed tensors of the weights.
  const home = await fresh('cache-home');
  const cache = BlobCache.forHome(home);
  const counted = countingReads(store);
  await pull(counted.store, 'llm@1.0.0', path.join(home, 'v1'), undefined, cache);
  counted.read.clear();
  await pull(counted.store, 'llm@1.1.0', path.join(home, 'v2'), undefined, cache);
  const m1 = (await inspectRef(store, 'llm@1.0.0')).manifest;
  const had = new Set(m1.blobs.map((b) => b.digest));
  const partsRead = [...counted.read].filter(([dg]) => split.parts.some((p) => p.blob === dg));
  assert.deepEqual(partsRead.map(([dg]) => dg).sort(), split.parts.filter((p) => !had.has(p.blob)).map((p) => p.blob).sort());
  assert.equal(partsRead.reduce((n, [, b]) => n + b, 0), changed);
  const pulled = path.join(home, 'v2', 'weights/model.safetensors');
  assert.ok((await readFile(pulled)).equals(await readFile(file)), 'byte for byte');
  assert.equal((await stat(pulled)).mode & 0o222, 0, 'read-only');

  // A prompt-only change: the weights are linked from the cache, not one byte of them read.
  await writeFile(path.join(dir, 'bundle.yaml'), bundleYaml('llm', '1.1.1'));
  await writeFile(path.join(dir, 'prompts/system.txt'), 'You are very helpful.\n');
  const v3 = await packDirectory(dir, { tensorRunBytes: RUN });
  const p3 = await push(store, v3).finally(() => v3.close());
  assert.ok(p3.uploadedBytes <= 4096, `prompt-only push uploaded ${p3.uploadedBytes} (the prompts tar)`);
  counted.read.clear();
  await pull(counted.store, 'llm@1.1.1', path.join(home, 'v3'), undefined, cache);
  assert.equal([...counted.read.keys()].filter((dg) => split.parts.some((p) => p.blob === dg)).length, 0, 'no tensor blob read');
  assert.equal((await stat(path.join(home, 'v3', 'weights/model.safetensors'))).ino, (await stat(pulled)).ino, 'the same cached file, hard-linked');

  // Plain pull (no cache) of 1.1.0 through the CLI: byte for byte.
  const plain = path.join(await fresh('plain'), 'out');
  const r = await runCli(['bundle', 'pull', 'llm@1.1.0', '-o', plain, '--store', `s3://${bucket}/models`, '--json'], { env: { ...env, MODELCTL_CACHE: 'off' } });
  assert.equal(r.code, 0, r.stderr);
  assert.ok((await readFile(path.join(plain, 'weights/model.safetensors'))).equals(await readFile(file)));

  // Corrupt one tensor blob in the store (same size, other bytes): pull and verify fail with exit 6
  // naming the file and the tensor, with and without the cache.
  const victim = split.parts.find((p) => p.tensors[0]?.name === 'model.layers.150.weight')!;
  await s3.client().send(new PutObjectCommand({ Bucket: bucket, Key: `models/${blobKey(victim.blob)}`, Body: randomBytes(victim.size) }));
  for (const cacheMode of ['on', 'off']) {
    const out = path.join(await fresh('corrupt'), 'out');
    const bad = await runCli(['bundle', 'pull', 'llm@1.1.0', '-o', out, '--store', `s3://${bucket}/models`, '--json'], {
      env: { ...env, MODELCTL_HOME: await fresh('home2'), MODELCTL_CACHE: cacheMode },
    });
    assert.equal(bad.code, ExitCode.integrity, `${cacheMode}: ${bad.stdout}${bad.stderr}`);
    const err = bad.json().error;
    assert.match(err.message, /weights\/model\.safetensors: the blob of tensor model\.layers\.150\.weight \(sha256:[0-9a-f]{64}\) in s3:\/\/.* is corrupt/, cacheMode);
    assert.match(err.hint, /--repair/);
  }
  const verify = await runCli(['bundle', 'verify', 'llm@1.1.0', '--store', `s3://${bucket}/models`, '--json'], { env });
  assert.equal(verify.code, ExitCode.integrity);
  assert.match(verify.json().error.message, /weights\/model\.safetensors \(tensor model\.layers\.150\.weight\)/);
});
