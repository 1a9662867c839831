import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, constants, open, readdir, readFile, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { pull, verifyLocal } from '../../src/store/transfer.js';
import { pushDirectory as pushed } from '../helpers/push.js';
import { BlobCache, FULL_VERIFY_BELOW_BYTES, STALE_TEMP_MS } from '../../src/store/blob-cache.js';
import { FsStore } from '../../src/store/fs-store.js';
import type { BundleStore } from '../../src/store/store.js';
import { pinnedBlobs } from '../../src/targets/local/cache.js';
import { bundleDirFor, localPaths } from '../../src/targets/local/paths.js';
import { bundleYaml, runCli, useScratch } from '../helpers/fixtures.js';

/**
 * The blob cache of MODELCTL_HOME with real files, a real file store and real CLI processes:
 * a prompt-only change fetches only what changed, two pulls at once share one cache file, a
 * damaged cache file is re-fetched and never served, links fall back to copies across file
 * systems, and eviction keeps pinned blobs.
 */
const { fresh, bundle, cleanup } = useScratch();
after(cleanup);

const MiB = 1024 * 1024;
const weights = randomBytes(12 * MiB); // over LARGE_FILE_BYTES (8 MiB): a whole-file blob

function files(version: string, prompt: string, extra: Buffer = weights) {
  return {
    'bundle.yaml': bundleYaml('cached', version),
    'weights/model.safetensors': extra,
    'weights/small.bin': Buffer.from('tiny'),
    'prompts/explain.txt': prompt,
    'preprocessing/tokenize.sh': { content: '#!/bin/sh\ncat\n', mode: 0o755 },
    'config/labels.json': '{}\n',
  };
}

/** The file store, counting the bytes its blobs hand out (what a pull fetched). */
function counting(store: BundleStore): BundleStore & { read: number } {
  const wrapper = Object.create(store) as BundleStore & { read: number };
  wrapper.read = 0;
  wrapper.getBlob = async (digest: string): Promise<Readable> => {
    const body = await store.getBlob(digest);
    return body.pipe(
      new Transform({
        transform(chunk: Buffer, _e, cb) {
          wrapper.read += chunk.length;
          cb(null, chunk);
        },
      }),
    );
  };
  return wrapper;
}

describe('blob cache', () => {
  test('a prompt-only change fetches only the changed blob; the weights are one inode shared by cache and both versions', async () => {
    const root = await fresh('cache-home');
    const store = new FsStore(path.join(root, 'store'));
    await pushed(store, await bundle(files('1.0.0', 'v1 prompt\n')));
    await pushed(store, await bundle(files('1.1.0', 'v2 prompt, nothing else changed\n')));
    const cache = BlobCache.forHome(root);
    const s = counting(store);

    const a = path.join(root, 'a');
    await pull(s, 'cached@1.0.0', a, undefined, cache);
    const first = s.read;
    assert.ok(first >= weights.length, `first pull fetched the weights (${first} bytes)`);

    s.read = 0;
    const b = path.join(root, 'b');
    await pull(s, 'cached@1.1.0', b, undefined, cache);
    assert.ok(s.read < 64 * 1024, `second pull fetched only the small files' tar, not the 12 MiB weights: ${s.read} bytes`);

    const wa = await stat(path.join(a, 'weights/model.safetensors'));
    const wb = await stat(path.join(b, 'weights/model.safetensors'));
    const digest = `sha256:${execFileSync('sha256sum', [path.join(a, 'weights/model.safetensors')]).toString().split(' ')[0]}`;
    const wc = await stat(cache.pathOf(digest));
    assert.equal(wa.ino, wb.ino, 'both versions link one inode');
    assert.equal(wa.ino, wc.ino, 'the cache file is that inode');
    assert.equal(wc.nlink, 3);
    assert.equal(wa.mode & 0o777, 0o444, 'linked files are read-only');
    assert.equal((await stat(path.join(b, 'preprocessing/tokenize.sh'))).mode & 0o111, 0o111, 'executables stay executable');
    // Both directories still verify as the versions they are.
    await verifyLocal(a);
    await verifyLocal(b);
  });

  test('a write to a linked bundle file: refused for non-root by 0444; as root detected by the sidecar and the blob re-fetched, never served', async () => {
    const root = await fresh('cache-home');
    const store = new FsStore(path.join(root, 'store'));
    await pushed(store, await bundle(files('1.0.0', 'p\n')));
    const cache = BlobCache.forHome(root);
    const s = counting(store);
    const a = path.join(root, 'a');
    await pull(s, 'cached@1.0.0', a, undefined, cache);
    const file = path.join(a, 'weights/model.safetensors');
    const digest = `sha256:${execFileSync('sha256sum', [file]).toString().split(' ')[0]}`;

    // The mode says "read-only" to everyone; only root's CAP_DAC_OVERRIDE ignores it.
    assert.equal((await stat(file)).mode & 0o222, 0);
    if (process.getuid?.() !== 0) {
      await assert.rejects(open(file, 'r+'), { code: 'EACCES' });
    } else {
      // As root (this machine): 0444 does not stop the write. Change bytes in place, keeping the
      // size, as a model process writing into its bundle would: the cache must notice.
      const fh = await open(file, 'r+');
      await fh.write(Buffer.from('CORRUPTED'), 0, 9, 4 * MiB);
      await fh.close();
    }
    if (process.getuid?.() !== 0) {
      // Non-root cannot write through the link; damage the cache file the way root would to test detection too.
      execFileSync('chmod', ['u+w', cache.pathOf(digest)]);
      const fh = await open(cache.pathOf(digest), 'r+');
      await fh.write(Buffer.from('CORRUPTED'), 0, 9, 4 * MiB);
      await fh.close();
    }
    assert.equal(await cache.intact(digest, weights.length), false, 'same size, new mtime: the sidecar check catches it without a re-hash');

    s.read = 0;
    const b = path.join(root, 'b');
    await pull(s, 'cached@1.0.0', b, undefined, cache);
    assert.ok(s.read >= weights.length, 'the damaged blob was fetched again');
    assert.deepEqual(await readFile(path.join(b, 'weights/model.safetensors')), weights, 'the new pull holds the right bytes');
    assert.notEqual((await stat(cache.pathOf(digest))).ino, (await stat(file)).ino, 'the cache holds a fresh inode; the damaged one stays only in the damaged directory');
    await verifyLocal(b);
    await assert.rejects(verifyLocal(a), /no longer matches what was pulled/, 'the damaged version directory is caught by verify (a local deploy then pulls it again)');
  });

  test('a damaged cache file with its mtime put back: caught by a full re-hash (always under 16 MiB; above, with MODELCTL_CACHE_VERIFY=full)', async () => {
    const root = await fresh('cache-home');
    const store = new FsStore(path.join(root, 'store'));
    const big = randomBytes(FULL_VERIFY_BELOW_BYTES + 1);
    await pushed(store, await bundle(files('1.0.0', 'p\n', big)));
    await pull(store, 'cached@1.0.0', path.join(root, 'a'), undefined, BlobCache.forHome(root));
    const file = path.join(root, 'a', 'weights/model.safetensors');
    const digest = `sha256:${execFileSync('sha256sum', [file]).toString().split(' ')[0]}`;
    const before = await stat(file, { bigint: true });
    const fh = await open(file, 'r+');
    await fh.write(Buffer.from('X'), 0, 1, 0);
    await fh.close();
    const ns = before.mtimeNs;
    execFileSync('touch', ['-m', '-d', `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`, file]);
    assert.equal(await BlobCache.forHome(root).intact(digest, big.length), true, 'the cheap check (size, mtime, inode) cannot see this one: said plainly');
    assert.equal(await BlobCache.forHome(root, { MODELCTL_CACHE_VERIFY: 'full' }).intact(digest, big.length), false, 'a full re-hash does');
    // The same damage, mtime put back, on a blob under the threshold: the default check re-hashes it.
    const store2 = new FsStore(path.join(root, 'store2'));
    await pushed(store2, await bundle(files('1.0.0', 'p\n')));
    await pull(store2, 'cached@1.0.0', path.join(root, 'b'), undefined, BlobCache.forHome(root));
    const small = path.join(root, 'b', 'weights/model.safetensors');
    const d2 = `sha256:${execFileSync('sha256sum', [small]).toString().split(' ')[0]}`;
    const was = (await stat(small, { bigint: true })).mtimeNs;
    const fh2 = await open(small, 'r+');
    await fh2.write(Buffer.from('X'), 0, 1, 0);
    await fh2.close();
    execFileSync('touch', ['-m', '-d', `@${was / 1_000_000_000n}.${String(was % 1_000_000_000n).padStart(9, '0')}`, small]);
    assert.equal((await stat(small, { bigint: true })).mtimeNs, was, 'mtime really put back');
    assert.equal(await BlobCache.forHome(root).intact(d2, weights.length), false);
  });

  test('a blob evicted by another process between the check and the link is fetched again, not a failed pull', async () => {
    const root = await fresh('cache-home');
    const store = new FsStore(path.join(root, 'store'));
    await pushed(store, await bundle(files('1.0.0', 'p\n')));
    await pull(store, 'cached@1.0.0', path.join(root, 'a'), undefined, BlobCache.forHome(root));
    await rm(path.join(root, 'a'), { recursive: true });
    // The other process's eviction, placed exactly in the window: right after has() said yes.
    class RacedCache extends BlobCache {
      override async has(digest: string, size: number): Promise<boolean> {
        const yes = await super.has(digest, size);
        if (yes) await unlink(this.pathOf(digest));
        return yes;
      }
    }
    const s = counting(store);
    await pull(s, 'cached@1.0.0', path.join(root, 'b'), undefined, new RacedCache(path.join(root, 'cache')));
    assert.ok(s.read >= weights.length, 'fetched again');
    await verifyLocal(path.join(root, 'b'));
  });

  test('a temp file left by a killed fetch is swept (after STALE_TEMP_MS untouched); a fresh one is left alone', async () => {
    const root = await fresh('cache-home');
    const store = new FsStore(path.join(root, 'store'));
    await pushed(store, await bundle(files('1.0.0', 'p\n')));
    const cache = BlobCache.forHome(root);
    const tmpDir = path.join(root, 'cache', 'tmp');
    execFileSync('mkdir', ['-p', tmpDir]);
    await writeFile(path.join(tmpDir, 'dead'), 'half a blob');
    await writeFile(path.join(tmpDir, 'alive'), 'a blob being fetched');
    const old = (Date.now() - STALE_TEMP_MS - 60_000) / 1000;
    await utimes(path.join(tmpDir, 'dead'), old, old);
    await pull(store, 'cached@1.0.0', path.join(root, 'a'), undefined, cache);
    assert.deepEqual(await readdir(tmpDir), ['alive']);
  });

  test('two `bundle pull` processes of the same blob at once both succeed and share one cache file', async () => {
    const home = await fresh('cache-home');
    const storeDir = path.join(home, 'store');
    const src = await bundle(files('1.0.0', 'p\n', randomBytes(24 * MiB)));
    const env = { MODELCTL_HOME: home, MODELCTL_STORE: `file://${storeDir}` };
    const p = await runCli(['bundle', 'push', src, '--json'], { env });
    assert.equal(p.code, 0, p.stderr);
    const [x, y] = await Promise.all([
      runCli(['bundle', 'pull', 'cached@1.0.0', '--output', path.join(home, 'x'), '--json'], { env }),
      runCli(['bundle', 'pull', 'cached@1.0.0', '--output', path.join(home, 'y'), '--json'], { env }),
    ]);
    assert.equal(x.code, 0, x.stderr);
    assert.equal(y.code, 0, y.stderr);
    const blobs = await readdir(path.join(home, 'cache', 'blobs', 'sha256'));
    assert.equal(blobs.length, 1, `one cache file: ${blobs.join(', ')}`);
    assert.deepEqual(await readdir(path.join(home, 'cache', 'tmp')), [], 'no temp file left');
    const ix = (await stat(path.join(home, 'x', 'weights/model.safetensors'))).ino;
    const iy = (await stat(path.join(home, 'y', 'weights/model.safetensors'))).ino;
    const ic = (await stat(path.join(home, 'cache', 'blobs', 'sha256', blobs[0]!))).ino;
    assert.equal(ix, ic);
    assert.equal(iy, ic);
    for (const o of ['x', 'y']) {
      const v = await runCli(['bundle', 'verify', path.join(home, o), '--json'], { env });
      assert.equal(v.code, 0, v.stderr);
    }
  });

  test('across file systems (a tmpfs mounted for this test) the blob is copied, read-only and right', async (t) => {
    const root = await fresh('cache-home');
    const disk = await fresh('tmpfs');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', disk], { stdio: 'pipe' });
    t.after(() => execFileSync('umount', [disk], { stdio: 'pipe' }));
    const store = new FsStore(path.join(root, 'store'));
    await pushed(store, await bundle(files('1.0.0', 'p\n')));
    const cache = BlobCache.forHome(root);
    const out = path.join(disk, 'out');
    await pull(store, 'cached@1.0.0', out, undefined, cache);
    const f = await stat(path.join(out, 'weights/model.safetensors'));
    const [hex] = await readdir(cache.blobs);
    const c = await stat(path.join(cache.blobs, hex!));
    assert.notEqual(f.dev, c.dev, 'another file system');
    assert.equal(c.nlink, 1, 'the cache file is not linked (cannot be)');
    assert.equal(f.mode & 0o777, 0o444);
    assert.deepEqual(await readFile(path.join(out, 'weights/model.safetensors')), weights);
    await verifyLocal(out);
  });

  test('pull through the cache onto a full disk (a 4 MiB tmpfs): exit 2 naming that disk, not the cache; nothing half-written', async (t) => {
    const home = await fresh('cache-home');
    const disk = await fresh('tmpfs');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', disk], { stdio: 'pipe' });
    t.after(() => execFileSync('umount', [disk], { stdio: 'pipe' }));
    const env = { MODELCTL_HOME: home, MODELCTL_STORE: `file://${path.join(home, 'store')}` };
    assert.equal((await runCli(['bundle', 'push', await bundle(files('1.0.0', 'p\n')), '--json'], { env })).code, 0);
    const r = await runCli(['bundle', 'pull', 'cached@1.0.0', '-o', path.join(disk, 'pulled'), '--json'], { env });
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.json().error.message, new RegExp(`no space left on the device \\(ENOSPC\\) at ${disk}`));
    assert.deepEqual(await readdir(disk), [], 'no partial directory');
    assert.equal((await readdir(path.join(home, 'cache', 'blobs', 'sha256'))).length, 1, 'the verified blob stays cached for the next try');
  });

  test('eviction by size: least recently used first, never a pinned blob nor one a version directory links', async () => {
    const home = await fresh('cache-home');
    const cache = BlobCache.forHome(home);
    const store = new FsStore(path.join(home, 'store'));
    // Three versions with different 9 MiB weights, pulled (as the local runtime does) into the home's bundle dirs.
    const paths = localPaths(home);
    const dirs: Record<string, string> = {};
    const digests: Record<string, string> = {};
    const refs: Record<string, string> = {};
    for (const v of ['1.0.0', '2.0.0', '3.0.0', '4.0.0']) {
      const d = await pushed(store, await bundle(files(v, 'p\n', randomBytes(9 * MiB))));
      refs[v] = d;
      dirs[v] = bundleDirFor(paths, 'cached', v, d);
      await pull(store, `cached@${v}`, dirs[v]!, undefined, cache);
      const w = path.join(dirs[v]!, 'weights/model.safetensors');
      digests[v] = `sha256:${execFileSync('sha256sum', [w]).toString().split(' ')[0]}`;
      await new Promise((r) => setTimeout(r, 20)); // distinct last-use times
    }
    // 1.0.0 runs (state.json); 2.0.0 is in the stable set (the ledger); 3.0.0 is neither.
    await writeFile(paths.state, JSON.stringify({ schemaVersion: 1, port: null, versions: [{ model: 'cached', version: '1.0.0', digest: '', bundleDir: dirs['1.0.0'] }], traffic: {} }));
    const ledger = path.join(home, 'ledger', 'local', 'cached');
    execFileSync('mkdir', ['-p', ledger]);
    await writeFile(
      path.join(ledger, '1.json'),
      JSON.stringify({
        model: 'cached',
        target: 'local',
        releases: [{ version: '2.0.0', digest: refs['2.0.0'], status: 'stable', createdAt: new Date(0).toISOString() }],
        stableSet: ['2.0.0'],
        traffic: { weights: {}, mirror: null },
        rollout: null,
        lock: null,
      }),
    );
    const pinned = await pinnedBlobs(home);
    assert.ok(pinned.has(digests['1.0.0']!), 'the running version is pinned');
    assert.ok(pinned.has(digests['2.0.0']!), 'the stable set is pinned');
    assert.ok(!pinned.has(digests['3.0.0']!) && !pinned.has(digests['4.0.0']!));

    // While every version directory links its blob, removing a cache name frees nothing: nothing goes.
    let r = await cache.evict(0, pinned);
    assert.deepEqual(r.evicted, []);

    // Remove the version directories (as a cleanup would): now only the pins hold blobs back.
    for (const v of ['1.0.0', '2.0.0', '3.0.0', '4.0.0']) execFileSync('rm', ['-rf', dirs[v]!]);
    // Room for three of the four 9 MiB blobs: the least recently used unpinned one (3.0.0) goes, 4.0.0 stays.
    r = await cache.evict(3 * 9 * MiB, pinned);
    assert.deepEqual(r.evicted, [digests['3.0.0']]);
    await access(cache.pathOf(digests['4.0.0']!), constants.R_OK);
    // Room for none: every unpinned blob goes, the pinned ones stay even over the bound.
    r = await cache.evict(0, pinned);
    assert.deepEqual(r.evicted, [digests['4.0.0']]);
    await access(cache.pathOf(digests['1.0.0']!), constants.R_OK);
    await access(cache.pathOf(digests['2.0.0']!), constants.R_OK);
    await assert.rejects(access(cache.pathOf(digests['3.0.0']!)));
    // Only whole-file blobs are cached (the small files' tars are extracted, not linked).
    assert.equal((await readdir(cache.blobs)).length, 2);
  });
});
