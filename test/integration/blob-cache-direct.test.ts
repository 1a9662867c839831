import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import { BlobCache } from '../../src/store/blob-cache.js';
import { DirectFileSink } from '../../src/store/direct-io.js';
import { useScratch } from '../helpers/fixtures.js';
import { mountRamfs } from '../helpers/tmpfs.js';

/**
 * Blobs streamed into the blob cache (and tensor blobs staged by a split pull) are written with
 * O_DIRECT in whole aligned chunks, the tail that is not a whole 4 KiB block through the page
 * cache; on a file system that refuses O_DIRECT (ramfs) every byte goes through the page cache.
 * Real files on the real file systems; the byte counts say which path ran.
 */
const { fresh, cleanup } = useScratch();
const MiB = 1024 * 1024;
const SIZE = 9 * MiB + 5; // one full 8 MiB chunk, then 1 MiB + 5 bytes: 1 MiB direct, 5 buffered
const data = randomBytes(SIZE);
const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
/** Uneven chunks, as a network stream hands them. */
const body = () => Readable.from([data.subarray(0, 100_000), data.subarray(100_000, 5 * MiB + 3), data.subarray(5 * MiB + 3)]);

let ramfs: string;
let unmount: (() => void) | undefined;
before(async () => {
  ramfs = await fresh('ramfs');
  unmount = mountRamfs(ramfs);
});
after(async () => {
  unmount?.();
  await cleanup();
});

describe('blob cache inserts written with O_DIRECT', () => {
  test('on ext4: byte-exact, all but the last 5 bytes direct', async () => {
    const cache = new BlobCache(path.join(await fresh('cache'), 'c'));
    assert.equal(await cache.insert(digest, SIZE, body()), SIZE);
    assert.ok((await readFile(cache.pathOf(digest))).equals(data));
    assert.deepEqual(cache.writes, { direct: 9 * MiB, buffered: 5 });
    assert.equal(await cache.intact(digest, SIZE, true), true);
  });

  test('on ramfs (refuses O_DIRECT): byte-exact, every byte buffered', async () => {
    const cache = new BlobCache(path.join(ramfs, 'c'));
    await cache.insert(digest, SIZE, body());
    assert.ok((await readFile(cache.pathOf(digest))).equals(data));
    assert.deepEqual(cache.writes, { direct: 0, buffered: SIZE });
  });

  test('wrong bytes are still refused: IntegrityError, nothing cached', async () => {
    const cache = new BlobCache(path.join(await fresh('cache'), 'c'));
    const bad = Buffer.from(data);
    bad[SIZE - 2]! ^= 1;
    await assert.rejects(cache.insert(digest, SIZE, Readable.from([bad])), (e: Error) => e.name === 'IntegrityError');
    assert.equal(await cache.intact(digest, SIZE), false);
  });

  test("a sink 'w' replaces a longer file from a failed attempt; 'wx' refuses an existing file", async () => {
    const file = path.join(await fresh('sink'), 'staged');
    await writeFile(file, randomBytes(SIZE + 3 * MiB));
    const sink = new DirectFileSink(file, 'w');
    await pipeline(body(), sink);
    assert.ok((await readFile(file)).equals(data));
    assert.deepEqual(sink.writes, { direct: 9 * MiB, buffered: 5 });
    await assert.rejects(pipeline(body(), new DirectFileSink(file)), (e: NodeJS.ErrnoException) => e.code === 'EEXIST');
  });
});
