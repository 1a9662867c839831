import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { hashFile, hashFiles } from '../../src/bundle/hash.js';
import { REPO_ROOT, runProcess, useScratch } from '../helpers/fixtures.js';

const { fresh, cleanup } = useScratch();
after(cleanup);

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('hashFiles: files of many sizes and part tasks, on the main thread and the workers, give the plain SHA-256 of each', async () => {
  assert.ok(availableParallelism() >= 2, 'this test needs two cores to exercise a worker thread');
  const dir = await fresh('hash');
  // Sizes around the 1 MiB read size, an empty file, and more tasks than threads (the queue is shared).
  const sizes = [0, 1, 1024 * 1024 - 1, 1024 * 1024, 1024 * 1024 + 1, 3 * 1024 * 1024 + 17, 5 * 1024 * 1024, 2 * 1024 * 1024 + 5];
  const files: string[] = [];
  for (const [i, size] of sizes.entries()) {
    const f = path.join(dir, `f${i}.bin`);
    await writeFile(f, randomBytes(size));
    files.push(f);
  }
  const big = files[6]!;
  const bigBytes = await readFile(big);
  const cut = 2 * 1024 * 1024 + 3;
  const task = {
    file: big,
    parts: [
      { start: 0, end: cut, tensors: [{ start: 0, end: 10 }, { start: 10, end: 10 }, { start: 10, end: cut }] },
      { start: cut, end: bigBytes.length, tensors: [{ start: cut, end: bigBytes.length }] },
    ],
  };
  const seen: string[] = [];
  const { files: got, parts } = await hashFiles(files, (p) => seen.push(p), [task]);
  assert.deepEqual([...seen].sort(), [...files].sort(), 'onFileDone once per file');
  for (const f of files) {
    const bytes = await readFile(f);
    assert.deepEqual(got.get(f), { sha256: sha(bytes), size: bytes.length }, f);
  }
  const p = parts.get(big)!;
  assert.deepEqual(p.parts.map((x) => x.sha256), [sha(bigBytes.subarray(0, cut)), sha(bigBytes.subarray(cut))]);
  assert.deepEqual(p.parts[0]!.tensors, [sha(bigBytes.subarray(0, 10)), sha(Buffer.alloc(0)), sha(bigBytes.subarray(10, cut))]);
  assert.deepEqual(p.parts[1]!.tensors, [p.parts[1]!.sha256]);
});

test('hashFile: reads overlapped (alone) or inline (every core hashing) give the same SHA-256; inline reads let the event loop in while hashing', async () => {
  const dir = await fresh('hash-modes');
  const f = path.join(dir, 'f.bin');
  const bytes = randomBytes(17 * 1024 * 1024 + 3); // past two 8 MiB yields, and a partial last chunk
  await writeFile(f, bytes);
  for (const reads of ['overlapped', 'inline'] as const) {
    let seen = 0;
    assert.deepEqual(await hashFile(f, (n) => (seen += n), reads), { sha256: sha(bytes), size: bytes.length }, reads);
    assert.equal(seen, bytes.length, `${reads}: onBytes adds up to the size`);
  }
  // A timer set once hashing has begun fires before it ends: synchronous reads still yield.
  let hashed = 0;
  let firedAt: number | undefined;
  await hashFile(
    f,
    (n) => {
      if (hashed === 0) setTimeout(() => (firedAt = hashed), 0);
      hashed += n;
    },
    'inline',
  );
  assert.ok(firedAt !== undefined && firedAt < bytes.length, `the timer fired after ${firedAt} of ${bytes.length} bytes`);
});

test('hashFiles: an error on the main thread or in a worker rejects with the error\'s code and path (asLocalIO turns those into a clear message)', async () => {
  const dir = await fresh('hash-err');
  const big = path.join(dir, 'big.bin');
  const small = path.join(dir, 'small.bin');
  await writeFile(big, randomBytes(4 * 1024 * 1024));
  await writeFile(small, randomBytes(1024 * 1024));
  // Biggest task first: the main thread takes the first, a worker the second. A part task of a
  // missing file fails when opened, in the thread that took it: the worker (it is second by size)
  // or the main thread (first).
  const missing = path.join(dir, 'gone.bin');
  const gone = (bytes: number) => ({ file: missing, parts: [{ start: 0, end: bytes, tensors: [] }] });
  for (const run of [
    () => hashFiles([big, small], undefined, [gone(3 * 1024 * 1024)]),
    () => hashFiles([big, small], undefined, [gone(8 * 1024 * 1024)]),
  ]) {
    await assert.rejects(run(), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'ENOENT');
      assert.equal(err.path, missing);
      return true;
    });
  }
});

test('prestartHashWorkers: hashFiles hashes on the prestarted workers (right sums, the process exits after); unused ones do not keep a process alive', async () => {
  const dir = await fresh('hash-pre');
  const files = [0, 1, 2, 3].map((i) => path.join(dir, `p${i}.bin`));
  for (const f of files) await writeFile(f, randomBytes(3 * 1024 * 1024 + 7));
  const hashJs = pathToFileURL(path.join(REPO_ROOT, 'dist', 'src', 'bundle', 'hash.js')).href;
  // In a child process: the prestarted workers are module state, and what is checked is that the
  // process exits by itself (a worker left referenced would hold it until the timeout).
  // Scripts in files, not `-e` with --input-type: worker threads inherit the parent's execArgv.
  const usedJs = path.join(dir, 'used.mjs');
  await writeFile(usedJs, `const { prestartHashWorkers, hashFiles } = await import(${JSON.stringify(hashJs)});
prestartHashWorkers(2);
const r = await hashFiles(${JSON.stringify(files)});
console.log(JSON.stringify([...r.files].map(([f, h]) => [f, h.sha256])));\n`);
  const used = await runProcess(process.execPath, [usedJs], { timeoutMs: 30_000 });
  assert.equal(used.code, 0, used.stderr);
  const sums = new Map(JSON.parse(used.stdout) as Array<[string, string]>);
  for (const f of files) assert.equal(sums.get(f), sha(await readFile(f)), f);
  const unusedJs = path.join(dir, 'unused.mjs');
  await writeFile(unusedJs, `(await import(${JSON.stringify(hashJs)})).prestartHashWorkers(2);\n`);
  const unused = await runProcess(process.execPath, [unusedJs], { timeoutMs: 10_000 });
  assert.equal(unused.code, 0, unused.stderr);
  assert.ok(unused.ms < 5_000, `a process with idle prestarted workers took ${unused.ms} ms to exit`);
});
