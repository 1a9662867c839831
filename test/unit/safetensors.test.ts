import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { openArchive, writeArchive } from '../../src/bundle/archive.js';
import { hashParts } from '../../src/bundle/hash.js';
import { decodeManifest, encodeManifest, isSplit, type Manifest } from '../../src/bundle/manifest.js';
import { parseSafetensorsHeader, planParts, readSafetensorsLayout, SafetensorsFormatError } from '../../src/bundle/safetensors.js';
import { packDirectory } from '../../src/bundle/source.js';
import { ExitCode, type ModelctlError } from '../../src/core/errors.js';
import { diff, inspectRef, pull, push, verifyLocal } from '../../src/store/transfer.js';
import { pinnedBlobs } from '../../src/targets/local/cache.js';
import { localPaths } from '../../src/targets/local/paths.js';
import { BlobCache } from '../../src/store/blob-cache.js';
import { FsStore } from '../../src/store/fs-store.js';
import { bundleYaml, runCli, useScratch } from '../helpers/fixtures.js';
import { retrainTensor, safetensorsHeader, writeSafetensors, type TensorSpec } from '../helpers/safetensors.js';

const { fresh, bundle, cleanup } = useScratch();
after(cleanup);

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A header (with its 8-byte length) for a raw JSON text, and a file size that fits it plus `data` bytes. */
function rawHeader(json: string): Buffer {
  const body = Buffer.from(json);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(body.length));
  return Buffer.concat([prefix, body]);
}

describe('safetensors parsing (the reference reader\'s rules)', () => {
  test('a file written like the reference writer parses: header, tensors in offset order', async () => {
    const dir = await fresh('st');
    const tensors: TensorSpec[] = [
      { name: 'b', dtype: 'F16', shape: [4, 8] },
      { name: 'a', dtype: 'F32', shape: [3] },
      { name: 'empty', dtype: 'F32', shape: [0, 5] },
    ];
    const file = path.join(dir, 'm.safetensors');
    const size = await writeSafetensors(file, tensors, { format: 'pt' });
    const layout = await readSafetensorsLayout(file, size);
    const h = safetensorsHeader(tensors, { format: 'pt' }).length;
    assert.equal(layout.headerBytes, h);
    assert.equal(h % 8, 0, 'padded to 8 like the reference writer');
    assert.deepEqual(
      layout.tensors.map((t) => [t.name, t.start, t.end]),
      [['b', h, h + 64], ['a', h + 64, h + 76], ['empty', h + 76, h + 76]],
    );
  });

  test('malformed files are refused with what is wrong', () => {
    const cases: Array<[string, Buffer, number, RegExp]> = [
      ['not JSON', Buffer.from('{"a":'), 100, /not valid JSON/],
      ['not an object', Buffer.from('[1,2]'), 100, /not a JSON object/],
      ['bad UTF-8', Buffer.from([0x7b, 0xff, 0x7d]), 100, /not valid UTF-8/],
      ['metadata not strings', Buffer.from('{"__metadata__":{"x":1}}'), 32, /__metadata__/],
      ['no dtype', Buffer.from('{"t":{"shape":[1],"data_offsets":[0,4]}}'), 1000, /no string "dtype"/],
      ['gap', Buffer.from('{"t":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}'), 1000, /expected it to begin at 0/],
      ['overlap', Buffer.from('{"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"u":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}'), 1000, /tensor "u".*begin at 4/],
      ['shape vs bytes', Buffer.from('{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,4]}}'), 1000, /needs 16 bytes but its data_offsets span 4/],
    ];
    for (const [what, header, dataBytes, message] of cases) {
      assert.throws(() => parseSafetensorsHeader(header, 8 + header.length + dataBytes), (e: Error) => e instanceof SafetensorsFormatError && message.test(e.message), what);
    }
    // The buffer must be covered exactly: bytes after the last tensor are refused, like MetadataIncompleteBuffer.
    const ok = Buffer.from('{"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}');
    assert.doesNotThrow(() => parseSafetensorsHeader(ok, 8 + ok.length + 4));
    assert.throws(() => parseSafetensorsHeader(ok, 8 + ok.length + 5), /covered exactly/);
    // Unknown or sub-byte dtypes are taken on their offsets alone.
    const f4 = Buffer.from('{"t":{"dtype":"F4","shape":[8],"data_offsets":[0,4]}}');
    assert.doesNotThrow(() => parseSafetensorsHeader(f4, 8 + f4.length + 4));
  });

  test('a header length beyond the file or the format limit is refused before reading it', async () => {
    const dir = await fresh('st');
    const file = path.join(dir, 'x.safetensors');
    const big = Buffer.alloc(16);
    big.writeBigUInt64LE(1000n);
    await writeFile(file, big);
    await assert.rejects(readSafetensorsLayout(file, 16), /header length is 1000 bytes but the file has only 8/);
    big.writeBigUInt64LE(2n ** 40n);
    await writeFile(file, big);
    await assert.rejects(readSafetensorsLayout(file, 16), /more than the 100000000 the format allows/);
    await assert.rejects(readSafetensorsLayout(file, 4), /shorter than the 8-byte header length/);
  });

  test('parts: the header alone, large tensors alone, small neighbours in runs of at least the threshold', () => {
    const json = JSON.stringify({
      big: { dtype: 'U8', shape: [100], data_offsets: [0, 100] },
      s1: { dtype: 'U8', shape: [30], data_offsets: [100, 130] },
      s2: { dtype: 'U8', shape: [30], data_offsets: [130, 160] },
      s3: { dtype: 'U8', shape: [30], data_offsets: [160, 190] },
      s4: { dtype: 'U8', shape: [30], data_offsets: [190, 220] },
      big2: { dtype: 'U8', shape: [64], data_offsets: [220, 284] },
      zero: { dtype: 'U8', shape: [0], data_offsets: [284, 284] },
    });
    const header = rawHeader(json);
    const layout = parseSafetensorsHeader(header.subarray(8), header.length + 284);
    const parts = planParts(layout, 50);
    assert.deepEqual(
      parts.map((p) => p.tensors.map((t) => t.name)),
      [[], ['big'], ['s1', 's2'], ['s3', 's4'], ['big2', 'zero']],
    );
    // Parts tile the file.
    let at = 0;
    for (const p of parts) {
      assert.equal(p.start, at);
      at = p.end;
    }
    assert.equal(at, header.length + 284);
  });
});

test('hashParts: per-tensor hashes of a run whose tensors cross the 1 MiB read boundaries, empty tensors included', async () => {
  const dir = await fresh('hp');
  const file = path.join(dir, 'f');
  const sizes = [700 * 1024, 0, 900 * 1024, 1, 600 * 1024 + 3, 0];
  const bytes = Buffer.alloc(10 + sizes.reduce((n, x) => n + x, 0));
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + (i >> 11)) & 0xff;
  await writeFile(file, bytes);
  let at = 10;
  const tensors = sizes.map((n) => ({ start: at, end: (at += n) }));
  const r = await hashParts({ file, parts: [{ start: 0, end: 10, tensors: [] }, { start: 10, end: bytes.length, tensors }] });
  assert.equal(r.parts[0]!.sha256, sha(bytes.subarray(0, 10)));
  assert.equal(r.parts[1]!.sha256, sha(bytes.subarray(10)));
  assert.deepEqual(r.parts[1]!.tensors, tensors.map((t) => sha(bytes.subarray(t.start, t.end))));
});

describe('packing and pulling split safetensors files', () => {
  const tensors: TensorSpec[] = [];
  for (let i = 0; i < 40; i++) {
    tensors.push({ name: `layers.${String(i).padStart(2, '0')}.weight`, dtype: 'F32', shape: [64, 1024] }); // 256 KiB
    if (i % 10 === 0) tensors.push({ name: `layers.${String(i).padStart(2, '0')}.norm`, dtype: 'F32', shape: [64] });
  }
  tensors.push({ name: 'tied.a', dtype: 'U8', shape: [200000], fill: 7 }, { name: 'tied.b', dtype: 'U8', shape: [200000], fill: 7 });
  const runBytes = 128 * 1024;

  async function model(version = '1.0.0'): Promise<{ dir: string; file: string }> {
    const dir = await bundle({ 'bundle.yaml': bundleYaml('llm', version), 'prompts/p.txt': 'hello\n', 'config/c.json': '{}\n', 'preprocessing/x.txt': 'x\n' });
    const file = path.join(dir, 'weights', 'model.safetensors');
    await import('node:fs/promises').then((fs) => fs.mkdir(path.dirname(file), { recursive: true }));
    await writeSafetensors(file, tensors, { format: 'pt' });
    return { dir, file };
  }

  test('pack: schema 2, one blob per large tensor, hashes of every tensor, deterministic digest', async () => {
    const { dir, file } = await model();
    const bytes = await readFile(file);
    const a = await packDirectory(dir, { tensorRunBytes: runBytes });
    const b = await packDirectory(dir, { tensorRunBytes: runBytes });
    try {
      assert.equal(a.encoded.digest, b.encoded.digest, 'same files, same digest (hashing runs on a thread pool)');
      const m = a.encoded.manifest;
      assert.equal(m.schemaVersion, 2);
      const f = m.components.find((c) => c.name === 'weights')!.files[0]!;
      assert.ok(isSplit(f));
      assert.equal(f.sha256, sha(bytes));
      assert.equal(f.parts.length, 1 + 40 + 4 + 2, 'the header, 40 weights, 4 norms (each a run of its own: a large tensor on both sides), the two tied tensors');
      // Every part's digest and every tensor's sha256 are those of the bytes.
      let at = 0;
      for (const p of f.parts) {
        assert.equal(p.blob, `sha256:${sha(bytes.subarray(at, at + p.size))}`);
        let t0 = at + (p.tensors.length === 0 ? p.size : 0);
        for (const t of p.tensors) {
          assert.equal(t.sha256, sha(bytes.subarray(t0, t0 + t.size)), t.name);
          t0 += t.size;
        }
        at += p.size;
      }
      assert.equal(at, bytes.length);
      // Identical tensors share their blob: listed once.
      assert.equal(new Set(m.blobs.map((x) => x.digest)).size, m.blobs.length);
      // The manifest round-trips through the decoder.
      assert.equal(decodeManifest(a.encoded.bytes, a.encoded.digest, 'test').digest, a.encoded.digest);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('a schema-1 manifest with a split file, or a schema-2 one without, is refused', async () => {
    const { dir } = await model();
    const src = await packDirectory(dir, { tensorRunBytes: runBytes });
    try {
      const downgraded = { ...src.encoded.manifest, schemaVersion: 1, mediaType: 'application/vnd.modelctl.bundle.manifest.v1+json' } as Manifest;
      const enc = encodeManifest(downgraded);
      assert.throws(() => decodeManifest(enc.bytes, enc.digest, 'test'), (e: ModelctlError) => e.exitCode === ExitCode.integrity && /inconsistent/.test(e.message));
      const future = { ...src.encoded.manifest, schemaVersion: 3 } as unknown as Manifest;
      const enc3 = encodeManifest(future);
      assert.throws(() => decodeManifest(enc3.bytes, enc3.digest, 'test'), (e: ModelctlError) => e.exitCode === ExitCode.usage && /upgrade modelctl/.test(e.hint ?? ''));
    } finally {
      await src.close();
    }
  });

  test('a malformed .safetensors file is stored whole, with a warning naming it (schema 1, same digest as before splitting)', async () => {
    const dir = await bundle({ 'bundle.yaml': bundleYaml('llm'), 'prompts/p.txt': 'x', 'config/c.json': '{}', 'preprocessing/x.txt': 'x' });
    const file = path.join(dir, 'weights', 'model.safetensors');
    const bytes = Buffer.concat([rawHeader('{"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}'), Buffer.alloc(9 * 1024 * 1024, 1)]);
    await import('node:fs/promises').then((fs) => fs.mkdir(path.dirname(file), { recursive: true }));
    await writeFile(file, bytes);
    const r = await runCli(['bundle', 'pack', dir, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = r.json();
    assert.equal(out.warnings.length, 1);
    assert.match(out.warnings[0], /weights\/model\.safetensors is not a valid safetensors file: its tensors end at byte \d+ of the file but the file has \d+.*stored as one whole-file blob/);
    const src = await packDirectory(dir);
    try {
      assert.equal(src.encoded.manifest.schemaVersion, 1);
      const f = src.encoded.manifest.components.find((c) => c.name === 'weights')!.files[0]!;
      assert.equal(f.blob, `sha256:${sha(bytes)}`);
    } finally {
      await src.close();
    }
  });

  test('push, pull (with and without the blob cache), archive: byte for byte; a fine-tune moves only its tensors; diff names them', async () => {
    const { dir, file } = await model();
    const original = await readFile(file);
    const store = new FsStore(await fresh('store'));
    const v1 = await packDirectory(dir, { tensorRunBytes: runBytes });
    const p1 = await push(store, v1, undefined).finally(() => v1.close());
    assert.equal(p1.created, true);

    // Plain pull (no cache): parts written at their offsets, whole file re-hashed.
    const out = path.join(await fresh('out'), 'b');
    await pull(store, 'llm@1.0.0', out);
    assert.ok((await readFile(path.join(out, 'weights/model.safetensors'))).equals(original));

    // Archive round trip: the parts are copied from their ranges.
    const archive = path.join(await fresh('arch'), 'a.tar');
    const again = await packDirectory(dir, { tensorRunBytes: runBytes });
    await writeArchive(again, archive).finally(() => again.close());
    const opened = await openArchive(archive);
    assert.equal(opened.encoded.digest, p1.digest);
    await opened.close();

    // A fine-tune: 2 weights and one small norm (inside a run) change; version 1.1.0.
    await writeFile(path.join(dir, 'bundle.yaml'), bundleYaml('llm', '1.1.0'));
    const changed = (await retrainTensor(file, tensors, 'layers.07.weight', { format: 'pt' })) + (await retrainTensor(file, tensors, 'layers.31.weight', { format: 'pt' }));
    await retrainTensor(file, tensors, 'layers.20.norm', { format: 'pt' });
    const v2 = await packDirectory(dir, { tensorRunBytes: runBytes });
    const p2 = await push(store, v2).finally(() => v2.close());
    // Two 256 KiB tensors plus the run holding the norm (≤ 2 × runBytes).
    assert.ok(p2.uploadedBytes <= changed + 2 * runBytes, `uploaded ${p2.uploadedBytes}`);
    assert.ok(p2.uploadedBytes >= changed);

    const d = await diff(store, 'llm@1.0.0', 'llm@1.1.0');
    const w = d.components.find((c) => c.name === 'weights')!;
    assert.deepEqual(w.changed, ['weights/model.safetensors']);
    assert.deepEqual(
      w.tensors!.map((t) => [t.name, t.change, t.dtype, t.shape, t.bytes]),
      [
        ['layers.07.weight', 'changed', 'F32', [64, 1024], 262144],
        ['layers.20.norm', 'changed', 'F32', [64], 256],
        ['layers.31.weight', 'changed', 'F32', [64, 1024], 262144],
      ],
    );

    // Through the blob cache: 1.0.0, then 1.1.0 fetches only the changed parts; the file is linked read-only.
    const home = await fresh('home');
    const cache = BlobCache.forHome(home);
    const fetched: string[] = [];
    const counting = Object.assign(Object.create(store) as FsStore, {
      getBlob: (digest: string) => (fetched.push(digest), store.getBlob(digest)),
    });
    await pull(counting, 'llm@1.0.0', path.join(home, 'v1'), undefined, cache);
    fetched.length = 0;
    await pull(counting, 'llm@1.1.0', path.join(home, 'v2'), undefined, cache);
    // 1× on disk: the cache holds the two reassembled files, not their parts besides.
    const entries = await cache.entries();
    assert.deepEqual(entries.map((e) => e.size).sort(), [original.length, original.length]);
    const v2file = path.join(home, 'v2', 'weights/model.safetensors');
    assert.ok((await readFile(v2file)).equals(await readFile(file)));
    const [m1, m2] = [(await inspectRef(store, 'llm@1.0.0')).manifest, (await inspectRef(store, 'llm@1.1.0')).manifest];
    const had = new Set(m1.blobs.map((b) => b.digest));
    // Component tars are not cached (small files are fetched with their tar every time): all of them, and bundle.yaml.
    const expected = [...m2.blobs.filter((b) => !had.has(b.digest) || b.kind === 'tar').map((b) => b.digest), m2.bundleFile!.digest].sort();
    assert.deepEqual([...new Set(fetched)].sort(), expected, 'of the weights, only the 3 changed tensor parts');
    assert.equal(m2.blobs.filter((b) => !had.has(b.digest) && b.kind === 'part').length, 3);
    const st = await stat(v2file);
    assert.equal(st.mode & 0o777, 0o444, 'read-only');
    assert.equal(st.ino, (await stat(cache.pathOf(`sha256:${sha(await readFile(file))}`))).ino, 'hard-linked from the cache');

    // A cached file altered on disk is no source: its parts are fetched again, the result is right.
    const home3 = await fresh('home3');
    const cache3 = BlobCache.forHome(home3);
    await pull(counting, 'llm@1.0.0', path.join(home3, 'v1'), undefined, cache3);
    const v1cached = cache3.pathOf(`sha256:${sha(original)}`);
    const fh = await open(v1cached, 'r+');
    await fh.write(Buffer.from('tampered'), 0, 8, 70000);
    await fh.close();
    fetched.length = 0;
    await pull(counting, 'llm@1.1.0', path.join(home3, 'v2'), undefined, cache3);
    assert.ok((await readFile(path.join(home3, 'v2', 'weights/model.safetensors'))).equals(await readFile(file)));
    const split2parts = m2.components.flatMap((c) => c.files).find(isSplit)!.parts;
    assert.equal(fetched.filter((dg) => split2parts.some((p) => p.blob === dg)).length, new Set(split2parts.map((p) => p.blob)).size, 'every part fetched again');

    // The pulled directory verifies (re-packing it cuts the file the same way) against its manifest.
    assert.equal((await verifyLocal(path.join(home, 'v2'))).digest, p2.digest);

    // Eviction keeps a running version's tensor blobs and its reassembled file.
    await mkdir(path.dirname(localPaths(home).state), { recursive: true });
    await writeFile(localPaths(home).state, JSON.stringify({ schemaVersion: 1, port: null, versions: [{ model: 'llm', version: '1.1.0', digest: p2.digest, bundleDir: path.join(home, 'v2') }], traffic: {} }));
    const pinned = await pinnedBlobs(home);
    const split2 = m2.components.flatMap((c) => c.files).find(isSplit)!;
    assert.ok(pinned.has(`sha256:${split2.sha256}`), 'the reassembled file');
    assert.ok(split2.parts.every((p) => pinned.has(p.blob)), 'every tensor blob');
    await rm(path.join(home, 'v1'), { recursive: true, force: true });
    await cache.evict(0, pinned);
    assert.ok((await readFile(v2file)).equals(await readFile(file)));
    assert.ok(await cache.has(`sha256:${split2.sha256}`, split2.size));
  });
});
