import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ExitCode } from '../../src/core/errors.js';
import { runCli, sampleBundle, useScratch } from '../helpers/fixtures.js';

/**
 * A full and a read-only local disk, for real: a 4 MiB tmpfs mounted for this file (needs root,
 * or CAP_SYS_ADMIN, to mount) and a bundle larger than it. Local I/O failures must be named as
 * such — path, free space, exit 2 — never retried as if the store had failed, and leave nothing
 * half-written.
 */
const { fresh, bundle, cleanup } = useScratch();
let disk: string;

before(async () => {
  disk = await fresh('tmpfs');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', disk], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`this test mounts a 4 MiB tmpfs and needs root (or CAP_SYS_ADMIN): ${(err as Error).message}`);
  }
});
after(async () => {
  if (disk) execFileSync('umount', [disk], { stdio: 'pipe' });
  await cleanup();
});

describe('local disk full or read-only', () => {
  test('push into a file store on a full disk: exit 2 naming the path and free space; no temp file left', async () => {
    const src = await bundle(sampleBundle({ largeBytes: 9 * 1024 * 1024 }));
    const store = path.join(disk, 'store');
    const r = await runCli(['bundle', 'push', src, '--store', store, '--json']);
    assert.equal(r.code, ExitCode.usage, r.stdout + r.stderr);
    const e = r.json().error;
    assert.match(e.message, new RegExp(`storing blob sha256:[0-9a-f]+ in file://${store} failed: no space left on the device \\(ENOSPC\\) at ${store}.*; [\\d.]+ MiB free of 4\\.0 MiB`));
    assert.equal(e.errno, 'ENOSPC');
    assert.match(e.hint, /free space there/);
    assert.deepEqual(await readdir(path.join(store, 'tmp')), []);
    assert.equal((await runCli(['bundle', 'list', '--store', store])).code, 0);
  });

  test('pull to a full disk: exit 2 at once (not three retries blaming the store); no partial directory', async () => {
    const src = await bundle(sampleBundle({ largeBytes: 9 * 1024 * 1024 }));
    const store = await fresh('store');
    assert.equal((await runCli(['bundle', 'push', src, '--store', store])).code, 0);
    const started = Date.now();
    const out = path.join(disk, 'pulled');
    const r = await runCli(['bundle', 'pull', 'sentiment@1.0.0', '-o', out, '--store', store, '--json']);
    assert.equal(r.code, ExitCode.usage, r.stdout + r.stderr);
    const e = r.json().error;
    assert.match(e.message, new RegExp(`failed: no space left on the device \\(ENOSPC\\) at ${disk}`));
    assert.doesNotMatch(e.message, /times|downloading/);
    assert.ok(Date.now() - started < 15_000);
    assert.deepEqual((await readdir(disk)).filter((n) => n.startsWith('pulled')), []);
  });

  test('pack --output to a full disk: exit 2, no partial archive', async () => {
    const src = await bundle(sampleBundle({ largeBytes: 9 * 1024 * 1024 }));
    const out = path.join(disk, 'b.tar');
    const r = await runCli(['bundle', 'pack', src, '-o', out, '--json']);
    assert.equal(r.code, ExitCode.usage, r.stdout + r.stderr);
    assert.match(r.json().error.message, new RegExp(`writing the archive ${out} failed: no space left on the device \\(ENOSPC\\)`));
    assert.deepEqual((await readdir(disk)).filter((n) => n.startsWith('b.tar')), []);
  });

  test('push into a store on a read-only file system: exit 2, "read-only file system"', async () => {
    const store = path.join(disk, 'ro-store');
    await mkdir(store);
    await rm(path.join(disk, 'store'), { recursive: true, force: true });
    execFileSync('mount', ['-o', 'remount,ro', disk], { stdio: 'pipe' });
    try {
      const src = await bundle(sampleBundle());
      const r = await runCli(['bundle', 'push', src, '--store', store, '--json']);
      assert.equal(r.code, ExitCode.usage, r.stdout + r.stderr);
      assert.match(r.json().error.message, /read-only file system \(EROFS\)/);
      assert.match(r.json().error.hint, /mounted read-only/);

      const store2 = await fresh('store');
      assert.equal((await runCli(['bundle', 'push', src, '--store', store2])).code, 0);
      const pulled = await runCli(['bundle', 'pull', 'sentiment@1.0.0', '-o', path.join(disk, 'out'), '--store', store2, '--json']);
      assert.equal(pulled.code, ExitCode.usage, pulled.stdout + pulled.stderr);
      assert.match(pulled.json().error.message, /read-only file system \(EROFS\) at .*out\.partial-/);

      const init = await runCli(['bundle', 'init', path.join(disk, 'new'), '--json']);
      assert.equal(init.code, ExitCode.usage, init.stdout + init.stderr);
      assert.match(init.json().error.message, /read-only file system \(EROFS\)/);
    } finally {
      execFileSync('mount', ['-o', 'remount,rw', disk], { stdio: 'pipe' });
    }
  });
});
