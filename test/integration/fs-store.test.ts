import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { CLI, runCli, sampleBundle, useScratch } from '../helpers/fixtures.js';

/**
 * The file store end to end, through the real CLI in child processes: what users and CI scripts
 * see (JSON documents, exit codes, files on disk).
 */
const { fresh, bundle, cleanup } = useScratch();
after(cleanup);

async function findFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(path.join(e.parentPath, e.name));
  return out;
}

describe('file store', () => {
  test('push, list, pull, verify: a round trip that re-packs to the same digest', async () => {
    const store = `file://${await fresh('store')}`;
    const src = await bundle(sampleBundle({ largeBytes: 9 * 1024 * 1024 }));
    const pushed = await runCli(['bundle', 'push', src, '--store', store, '--json']);
    assert.equal(pushed.code, 0, pushed.stderr);
    const p = pushed.json();
    assert.equal(p.ref, 'sentiment@1.0.0');
    assert.match(p.digest, /^sha256:[0-9a-f]{64}$/);
    assert.equal(p.reusedBytes, 0);
    assert.ok(p.uploadedBytes > 9 * 1024 * 1024);

    const listed = (await runCli(['bundle', 'list', '--store', store, '--json'])).json();
    assert.deepEqual(listed.map((r: { version: string }) => r.version), ['1.0.0']);
    assert.equal(listed[0].digest, p.digest);

    const out = path.join(await fresh('pull'), 'sentiment');
    const pulled = await runCli(['bundle', 'pull', 'sentiment@1.0.0', '--output', out, '--store', store, '--json']);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.deepEqual(pulled.json(), { ref: 'sentiment@1.0.0', digest: p.digest, path: out });
    assert.deepEqual(await readFile(path.join(out, 'weights/model.safetensors')), await readFile(path.join(src, 'weights/model.safetensors')));
    assert.equal((await stat(path.join(out, 'preprocessing/tokenize.sh'))).mode & 0o111, 0o111, 'executable bit restored');

    const repacked = (await runCli(['bundle', 'pack', out, '--json'])).json();
    assert.equal(repacked.digest, p.digest, 'a pulled bundle packs to the digest it was pulled by');
    const byDigest = path.join(await fresh('pull2'), 'x');
    assert.equal((await runCli(['bundle', 'pull', `sentiment@${p.digest}`, '-o', byDigest, '--store', store])).code, 0);

    const verified = await runCli(['bundle', 'verify', 'sentiment@1.0.0', '--store', store, '--json']);
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal(verified.json().digest, p.digest);

    // A pulled directory remembers what it was: editing a file is caught by `verify <dir>`.
    assert.equal((await runCli(['bundle', 'verify', out])).code, 0);
    await writeFile(path.join(out, 'prompts/explain.txt'), 'tampered');
    const tampered = await runCli(['bundle', 'verify', out, '--json']);
    assert.equal(tampered.code, 6);
    assert.match(tampered.json().error.message, /prompts\/explain\.txt/);
  });

  test('re-pushing after one prompt changed uploads only that component', async () => {
    const store = `file://${await fresh('store')}`;
    const src = await bundle(sampleBundle({ largeBytes: 12 * 1024 * 1024 }));
    assert.equal((await runCli(['bundle', 'push', src, '--store', store])).code, 0);
    const same = await runCli(['bundle', 'push', src, '--store', store, '--json']);
    assert.equal(same.code, 0, 'pushing the same version and content again is a quiet success');
    assert.equal(same.json().uploadedBytes, 0);

    await writeFile(path.join(src, 'prompts/explain.txt'), 'A new explanation for {{label}}.\n');
    const changed = await runCli(['bundle', 'push', src, '--version', '1.0.1', '--store', store, '--json']);
    assert.equal(changed.code, 0, changed.stderr);
    const r = changed.json();
    assert.ok(r.uploadedBytes < 0.01 * (r.uploadedBytes + r.reusedBytes), `uploaded ${r.uploadedBytes} of ${r.uploadedBytes + r.reusedBytes}`);

    const d = (await runCli(['bundle', 'diff', 'sentiment@1.0.0', 'sentiment@1.0.1', '--store', store, '--json'])).json();
    assert.deepEqual(
      d.components.filter((c: { status: string }) => c.status !== 'unchanged').map((c: { name: string; changed: string[] }) => [c.name, c.changed]),
      [['prompts', ['prompts/explain.txt']]],
    );
    assert.equal(d.transferBytes, r.uploadedBytes);

    const conflict = await runCli(['bundle', 'push', src, '--store', store, '--json']); // 1.0.0 again, new content
    assert.equal(conflict.code, 7);
    const e = conflict.json().error;
    assert.equal(e.code, 'conflict');
    assert.match(e.message, /sentiment@1\.0\.0 already exists/);
    assert.ok(e.existingDigest && e.attemptedDigest && e.existingDigest !== e.attemptedDigest);
  });

  test('a corrupted blob is caught on pull (exit 6) and leaves no output', async () => {
    const store = await fresh('store');
    const src = await bundle(sampleBundle({ largeBytes: 9 * 1024 * 1024 }));
    assert.equal((await runCli(['bundle', 'push', src, '--store', store])).code, 0);
    const blobs = await findFiles(path.join(store, 'blobs'));
    const big = (await Promise.all(blobs.map(async (f) => [f, (await stat(f)).size] as const))).sort((a, b) => b[1] - a[1])[0]![0];
    const bytes = await readFile(big);
    bytes[bytes.length >> 1]! ^= 0xff;
    await writeFile(big, bytes);

    const parent = await fresh('pull');
    const out = path.join(parent, 'sentiment');
    const pulled = await runCli(['bundle', 'pull', 'sentiment@1.0.0', '-o', out, '--store', store, '--json']);
    assert.equal(pulled.code, 6, pulled.stdout + pulled.stderr);
    assert.match(pulled.json().error.message, new RegExp(`blob sha256:${path.basename(big)} .*is corrupt`));
    assert.equal(existsSync(out), false);
    assert.deepEqual(await readdir(parent), [], 'no partial directory is left behind');

    const verified = await runCli(['bundle', 'verify', 'sentiment@1.0.0', '--store', store]);
    assert.equal(verified.code, 6);
    assert.match(verified.stderr, /is corrupt/);
  });

  test('concurrent pushes of one version: exactly one wins, the other gets a conflict', async () => {
    const store = await fresh('store');
    const a = await bundle(sampleBundle({ seed: randomBytes(64) }));
    const b = await bundle(sampleBundle({ seed: randomBytes(64) }));
    for (let round = 0; round < 3; round++) {
      const version = `2.0.${round}`;
      const [ra, rb] = await Promise.all([
        runCli(['bundle', 'push', a, '--version', version, '--store', store, '--json']),
        runCli(['bundle', 'push', b, '--version', version, '--store', store, '--json']),
      ]);
      assert.deepEqual([ra.code, rb.code].sort(), [0, 7], `${ra.stderr}\n${rb.stderr}`);
      const winner = ra.code === 0 ? ra.json() : rb.json();
      const listed = (await runCli(['bundle', 'list', 'sentiment', '--store', store, '--json'])).json();
      assert.equal(listed.find((r: { version: string }) => r.version === version).digest, winner.digest);
    }
  });

  test('a push killed mid-upload leaves no version; running it again completes', async () => {
    const store = await fresh('store');
    const files = sampleBundle();
    for (let i = 0; i < 4; i++) files[`weights/shard-${i}.bin`] = randomBytes(48 * 1024 * 1024);
    const src = await bundle(files);
    const child = spawn(process.execPath, [CLI, 'bundle', 'push', src, '--store', store], { stdio: 'ignore' });
    const exited = new Promise((r) => child.on('exit', r));
    // Kill as soon as bytes start landing in the store.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const landed = existsSync(path.join(store, 'tmp')) ? await findFiles(path.join(store, 'tmp')) : [];
      const sizes = await Promise.all(landed.map((f) => stat(f).then((s) => s.size).catch(() => 0)));
      if (sizes.some((s) => s > 0)) break;
      assert.ok(Date.now() < deadline, 'push never started writing');
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGKILL');
    await exited;

    const afterKill = await runCli(['bundle', 'pull', 'sentiment@1.0.0', '-o', path.join(await fresh('pull'), 'x'), '--store', store, '--json']);
    assert.equal(afterKill.code, 8, 'the version does not resolve');
    assert.deepEqual((await runCli(['bundle', 'list', '--store', store, '--json'])).json(), []);

    // The killed push left temp files (never visible as blobs or refs). Once they are a day old,
    // the next push gives the space back; fresh ones (a concurrent push's) are left alone.
    const leftovers = await findFiles(path.join(store, 'tmp'));
    assert.ok(leftovers.length > 0, 'SIGKILL leaves its temp file behind');
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600 * 1000);
    for (const f of leftovers) await utimes(f, twoDaysAgo, twoDaysAgo);
    await writeFile(path.join(store, 'tmp', 'in-flight-elsewhere'), 'x');

    const again = await runCli(['bundle', 'push', src, '--store', store, '--json']);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await readdir(path.join(store, 'tmp')), ['in-flight-elsewhere']);
    const out = path.join(await fresh('pull'), 'x');
    assert.equal((await runCli(['bundle', 'pull', 'sentiment@1.0.0', '-o', out, '--store', store])).code, 0);
    assert.deepEqual(await readFile(path.join(out, 'weights/shard-3.bin')), await readFile(path.join(src, 'weights/shard-3.bin')));
  });

  test('Ctrl-C during a pull exits 130 and leaves no partial directory', async () => {
    const store = await fresh('store');
    const files = sampleBundle();
    for (let i = 0; i < 4; i++) files[`weights/shard-${i}.bin`] = randomBytes(64 * 1024 * 1024);
    const src = await bundle(files);
    assert.equal((await runCli(['bundle', 'push', src, '--store', store])).code, 0);
    const parent = await fresh('pull');
    const child = spawn(process.execPath, [CLI, 'bundle', 'pull', 'sentiment@1.0.0', '-o', path.join(parent, 'out'), '--store', store], { stdio: 'ignore' });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const deadline = Date.now() + 60_000;
    while ((await readdir(parent)).length === 0) {
      assert.ok(Date.now() < deadline, 'pull never started writing');
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill('SIGINT');
    assert.equal(await exited, 130);
    assert.deepEqual(await readdir(parent), []);
  });
});
