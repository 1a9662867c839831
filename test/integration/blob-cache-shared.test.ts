import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { after, describe, test } from 'node:test';
import { pull } from '../../src/store/transfer.js';
import { pushDirectory } from '../helpers/push.js';
import { BlobCache } from '../../src/store/blob-cache.js';
import { FsStore } from '../../src/store/fs-store.js';
import type { BundleStore } from '../../src/store/store.js';
import { bundleYaml, useScratch } from '../helpers/fixtures.js';

/**
 * One blob cache shared by several pullers at once (the pods of a node with kubernetes.bundleCache,
 * parallel local deploys): each blob is fetched once under its lock, a puller that died holding the
 * lock does not stall the others for ever, and eviction never removes a blob a live puller holds.
 * Two BlobCache instances on one root behave as two processes: they share nothing but the files.
 */
const { fresh, bundle, cleanup } = useScratch();
after(cleanup);

const MiB = 1024 * 1024;

/** A file store whose blobs arrive slowly (so two pulls overlap for sure), counting the bytes it hands out. */
function slowCounting(store: BundleStore, perChunkMs: number): BundleStore & { read: number } {
  const wrapper = Object.create(store) as BundleStore & { read: number };
  wrapper.read = 0;
  wrapper.getBlob = async (digest: string): Promise<Readable> => {
    const body = await store.getBlob(digest);
    return body.pipe(
      new Transform({
        transform(chunk: Buffer, _e, cb) {
          wrapper.read += chunk.length;
          setTimeout(() => cb(null, chunk), perChunkMs);
        },
      }),
    );
  };
  return wrapper;
}

async function pushed(store: BundleStore, version: string, weights: Buffer): Promise<string> {
  const dir = await bundle({ 'bundle.yaml': bundleYaml('shared', version), 'weights/model.safetensors': weights, 'prompts/explain.txt': `${version}\n`, 'preprocessing/tokenize.sh': { content: '#!/bin/sh\ncat\n', mode: 0o755 }, 'config/labels.json': '{}\n' });
  return pushDirectory(store, dir);
}

describe('blob cache shared by pullers at once', () => {
  test('two pulls of the same new blob at once: fetched once (the second waits for the first), both outputs right', async () => {
    const root = await fresh('shared-cache');
    const fs = new FsStore(path.join(root, 'store'));
    const weights = randomBytes(12 * MiB);
    await pushed(fs, '1.0.0', weights);
    const store = slowCounting(fs, 2);
    const a = new BlobCache(path.join(root, 'node-cache'));
    const b = new BlobCache(path.join(root, 'node-cache'));
    await Promise.all([pull(store, 'shared@1.0.0', path.join(root, 'a'), undefined, a), pull(store, 'shared@1.0.0', path.join(root, 'b'), undefined, b)]);
    // The tar blob of the small files is not cached (a few hundred bytes each time); the weights are.
    assert.ok(store.read < weights.length + 64 * 1024, `fetched ${store.read} bytes for ${weights.length} bytes of weights: the weights once`);
    assert.equal(a.counts.fetchedBlobs + b.counts.fetchedBlobs, 1, 'one of the two fetched the weights');
    assert.equal(a.counts.cachedBlobs + b.counts.cachedBlobs, 1, 'the other used what it fetched');
    for (const o of ['a', 'b']) assert.ok((await readFile(path.join(root, o, 'weights/model.safetensors'))).equals(weights));
    assert.deepEqual(await readdir(path.join(root, 'node-cache', 'locks')), [], 'no lock left');
    assert.deepEqual(await readdir(path.join(root, 'node-cache', 'inuse')), [], 'nothing left marked in use');
  });

  test('a lock left by a puller that died is broken once stale; until then nobody fetches twice', async () => {
    const root = await fresh('shared-cache');
    const cache = new BlobCache(path.join(root, 'c'), { lockStaleMs: 600 });
    const body = randomBytes(64 * 1024);
    const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    await mkdir(path.join(root, 'c', 'locks'), { recursive: true });
    const lock = path.join(root, 'c', 'locks', `${digest.slice(7)}.lock`);
    await writeFile(lock, ''); // a puller holding the lock, then killed: nobody touches it any more
    const started = Date.now();
    let fetches = 0;
    const how = await cache.ensure(digest, body.length, async () => {
      fetches++;
      await cache.insert(digest, body.length, Readable.from([body]));
    });
    const waited = Date.now() - started;
    assert.equal(how, 'fetched');
    assert.equal(fetches, 1);
    assert.ok(waited >= 600, `waited ${waited} ms: the lock was honoured until stale`);
    assert.ok(await cache.intact(digest, body.length, true));
    assert.deepEqual(await readdir(path.join(root, 'c', 'locks')), []);
  });

  test('eviction keeps a blob another puller holds in use, and drops it once released (or once that puller is dead)', async () => {
    const root = await fresh('shared-cache');
    const fs = new FsStore(path.join(root, 'store'));
    const weights = randomBytes(9 * MiB);
    await pushed(fs, '1.0.0', weights);
    const puller = new BlobCache(path.join(root, 'c'), { lockStaleMs: 800 });
    const evictor = new BlobCache(path.join(root, 'c'), { lockStaleMs: 800 });
    const digest = `sha256:${createHash('sha256').update(weights).digest('hex')}`;
    await puller.ensure(digest, weights.length, async () => puller.insert(digest, weights.length, await fs.getBlob(digest)));
    const held = await evictor.evict(0, new Set());
    assert.deepEqual(held.evicted, [], 'in use by the puller: kept');
    assert.ok(await evictor.intact(digest, weights.length));
    await puller.release();
    const freed = await evictor.evict(0, new Set());
    assert.deepEqual(freed.evicted, [digest]);

    // A puller that died holding it: its in-use file goes stale (untouched), and pins nothing after.
    const dead = new BlobCache(path.join(root, 'c'), { lockStaleMs: 800 });
    await dead.ensure(digest, weights.length, async () => dead.insert(digest, weights.length, await fs.getBlob(digest)));
    const inuse = path.join(root, 'c', 'inuse');
    const [file] = await readdir(inuse);
    // Simulate the death: stop its heartbeat without releasing, and age the file past stale.
    clearInterval((dead as unknown as { inUseBeat: NodeJS.Timeout }).inUseBeat);
    const old = (Date.now() - 5_000) / 1000;
    await utimes(path.join(inuse, file!), old, old);
    const after = await evictor.evict(0, new Set());
    assert.deepEqual(after.evicted, [digest]);
    assert.deepEqual(await readdir(inuse), [], "the dead puller's in-use file is removed");
  });
});
