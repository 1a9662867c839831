import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { packDirectory } from '../../src/bundle/source.js';
import { ExitCode, type ModelctlError } from '../../src/core/errors.js';
import { pull, push } from '../../src/store/transfer.js';
import { S3Store } from '../../src/store/s3-store.js';
import { blobKey } from '../../src/store/store.js';
import { testS3, type TestS3 } from '../infra/ceph-rgw.js';
import { startFaultProxy, when, type FaultProxy } from '../infra/fault-proxy.js';
import { CLI, runCli, sampleBundle, useScratch } from '../helpers/fixtures.js';
import { s3CliEnv } from '../helpers/s3-env.js';
import { mountRamfs, mountTmpfs } from '../helpers/tmpfs.js';

/**
 * Parallel transfers against the real Ceph RGW, through the fault proxy (which logs every request
 * with the bytes it carried): multipart parts and ranged GETs in flight at once up to the
 * configured bound, a pull killed with SIGKILL and resumed, a damaged partial file, an object
 * changed under a partial, and a full disk. Small blobs with 5 MiB parts keep it quick.
 */
const MiB = 1024 * 1024;
let s3: TestS3;
let proxy: FaultProxy;
const { fresh, bundle, cleanup } = useScratch();

before(async () => {
  s3 = await testS3();
  proxy = await startFaultProxy(s3.endpoint);
});
after(async () => {
  await proxy?.stop();
  await cleanup();
});

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** The most requests matching `match` that were in flight at once while `run` ran (log polled every 5 ms). */
async function maxPending<T>(match: (r: { method: string; url: string }) => boolean, run: () => Promise<T>): Promise<{ result: T; max: number }> {
  let max = 0;
  let running = true;
  const poll = (async () => {
    while (running) {
      max = Math.max(max, proxy.requests.filter((r) => r.status === 'pending' && match(r)).length);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  try {
    return { result: await run(), max };
  } finally {
    running = false;
    await poll;
  }
}

describe('parallel S3 transfers on Ceph RGW', () => {
  test('multipart parts and ranged GETs run in parallel up to the concurrency, for the whole store', async () => {
    const bucket = await s3.newBucket('parallel');
    const client = s3.client({ endpoint: proxy.endpoint, maxAttempts: 4 });
    const store = new S3Store(client, bucket, 'm', undefined, { concurrency: 3, partSize: 5 * MiB });
    const files = sampleBundle({ largeBytes: 17 * MiB }); // 4 parts of 5 MiB
    const src = await packDirectory(await bundle(files));
    try {
      proxy.clearLog();
      // Held long enough that the poll sees every part in flight at once.
      proxy.delay(when({ method: 'PUT', url: /partNumber=/ }), 300, 100);
      const pushed = await maxPending((r) => r.method === 'PUT' && /partNumber=/.test(r.url), () => push(store, src));
      assert.equal(pushed.result.created, true);
      assert.equal(pushed.max, 3, 'three parts in flight at once, never more');
      assert.equal(proxy.requests.filter((r) => r.method === 'PUT' && /partNumber=/.test(r.url)).length, 4);

      proxy.clearFaults();
      proxy.clearLog();
      proxy.delay(when({ method: 'GET', header: ['range', /^bytes=/] }), 300, 100);
      const out = path.join(await fresh('pull'), 'x');
      const digest = sha256(files['weights/model.safetensors'] as Buffer);
      const hex = digest.slice('sha256:'.length);
      const pulled = await maxPending((r) => r.method === 'GET' && r.url.includes(hex), () => pull(store, 'sentiment@1.0.0', out));
      assert.equal(pulled.max, 3);
      assert.equal(proxy.requests.filter((r) => r.method === 'GET' && r.url.includes(hex)).length, 4, 'four ranges');
      assert.deepEqual(await readFile(path.join(out, 'weights/model.safetensors')), files['weights/model.safetensors']);
      // The same bytes through getBlob's ordered stream (what verify and --repair read).
      const chunks: Buffer[] = [];
      for await (const c of await store.getBlob(digest)) chunks.push(c as Buffer);
      assert.equal(sha256(Buffer.concat(chunks)), digest);
    } finally {
      proxy.clearFaults();
      await src.close();
    }
  });

  test('a ranged GET that keeps failing ends the pull with exit 9 after bounded retries; nothing under the output', async () => {
    const bucket = await s3.newBucket('rangefail');
    const client = s3.client({ endpoint: proxy.endpoint, maxAttempts: 2, retryMode: 'standard' });
    const store = new S3Store(client, bucket, 'm', undefined, { concurrency: 2, partSize: 5 * MiB });
    const src = await packDirectory(await bundle(sampleBundle({ largeBytes: 12 * MiB })));
    try {
      await push(store, src);
      proxy.clearLog();
      // One transient failure of the second range: retried and the pull completes.
      proxy.injectStatus(when({ method: 'GET', header: ['range', /^bytes=5242880-/] }), 503, 1);
      const ok = path.join(await fresh('pull'), 'ok');
      await pull(store, 'sentiment@1.0.0', ok);
      assert.deepEqual(
        proxy.requests.filter((r) => r.method === 'GET' && r.url.includes('/blobs/')).map((r) => r.status).filter((s) => s !== 200 && s !== 206),
        [503],
      );
      // Failing for good: every attempt is bounded (2 by the SDK × 4 per part).
      proxy.clearLog();
      proxy.injectStatus(when({ method: 'GET', header: ['range', /^bytes=5242880-/] }), 503, 1000);
      const parent = await fresh('pull');
      await assert.rejects(pull(store, 'sentiment@1.0.0', path.join(parent, 'x')), (e: ModelctlError) => e.exitCode === ExitCode.unavailable && /503/.test(e.message));
      assert.equal(proxy.requests.filter((r) => r.status === 503).length, 8);
      assert.deepEqual(await readdir(parent), [], 'no output and no partial directory');
    } finally {
      proxy.clearFaults();
      await src.close();
    }
  });
});

describe('resumable pulls (SIGKILL mid-pull, then pull again)', () => {
  const BLOB = 30 * MiB; // 6 parts of 5 MiB
  /**
   * Push a bundle with a 30 MiB weights blob, then start `bundle pull` through the proxy in a child
   * (MODELCTL_HOME with its blob cache) with ranges from 10 MiB on held back, and SIGKILL it once
   * its partial record lists the two first parts as written.
   */
  async function killedPull(name: string) {
    const bucket = await s3.newBucket(name);
    const store = `s3://${bucket}/m`;
    const home = await fresh('home');
    const env = { ...s3CliEnv(s3, proxy.endpoint), MODELCTL_HOME: home, MODELCTL_S3_PART_SIZE: '5MiB', MODELCTL_S3_CONCURRENCY: '2' };
    const files = sampleBundle({ largeBytes: BLOB });
    const weights = files['weights/model.safetensors'] as Buffer;
    const digest = sha256(weights);
    const hex = digest.slice('sha256:'.length);
    const pushed = await runCli(['bundle', 'push', await bundle(files), '--store', store], { env: { ...env, AWS_ENDPOINT_URL_S3: s3.endpoint } });
    assert.equal(pushed.code, 0, pushed.stderr);

    proxy.clearLog();
    proxy.delay(when({ method: 'GET', header: ['range', /^bytes=\d{8}/] }), 60_000, 1000); // ranges at ≥ 10 MB
    const record = path.join(home, 'cache', 'tmp', `${hex}.partial.json`);
    const child = spawn(process.execPath, [CLI, 'bundle', 'pull', 'sentiment@1.0.0', '-o', path.join(await fresh('pull'), 'first'), '--store', store], {
      env: { ...process.env, ...env },
      stdio: 'ignore',
    });
    const exited = new Promise((r) => child.on('exit', r));
    const deadline = Date.now() + 60_000;
    for (;;) {
      const done = await readFile(record, 'utf8').then((t) => (JSON.parse(t) as { done: number[] }).done, () => []);
      if (done.length >= 2) break;
      assert.ok(Date.now() < deadline, 'the pull never wrote two parts');
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGKILL');
    await exited;
    proxy.clearFaults();
    proxy.clearLog();
    const partial = path.join(home, 'cache', 'tmp', `${hex}.partial`);
    assert.ok(existsSync(partial), 'the partial file stays for the next pull');
    assert.ok(!existsSync(path.join(home, 'cache', 'blobs', 'sha256', hex)), 'nothing under the final name');
    const again = async () => {
      const out = path.join(await fresh('pull'), 'again');
      const r = await runCli(['bundle', 'pull', 'sentiment@1.0.0', '-o', out, '--store', store, '--json'], { env });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.deepEqual(await readFile(path.join(out, 'weights/model.safetensors')), weights);
      const fetched = proxy.requests.filter((q) => q.method === 'GET' && q.url.includes(hex)).reduce((n, q) => n + q.bytesOut, 0);
      return { fetched, leftovers: (await readdir(path.join(home, 'cache', 'tmp'))).filter((n) => n.startsWith(hex)) };
    };
    return { partial, record, again };
  }

  test('the second pull fetches only the parts the killed one had not written, and verifies', async () => {
    const k = await killedPull('resume');
    const { fetched, leftovers } = await k.again();
    assert.ok(fetched <= BLOB - 2 * 5 * MiB, `fetched ${fetched} bytes of a ${BLOB}-byte blob the second time`);
    assert.ok(fetched >= 4 * 5 * MiB - 5 * MiB, `fetched ${fetched}: the missing parts`);
    assert.deepEqual(leftovers, [], 'partial file, record and lock are gone');
  });

  test('a damaged partial is caught by the final digest and fetched again in full', async () => {
    const k = await killedPull('damaged');
    const bytes = await readFile(k.partial);
    bytes[1234]! ^= 0xff; // inside part 0, which the record lists as written
    await writeFile(k.partial, bytes);
    const { fetched } = await k.again();
    assert.ok(fetched >= BLOB, `fetched ${fetched}: everything again after the digest mismatch`);
  });

  test('a partial whose object changed (another ETag) is not resumed', async () => {
    const k = await killedPull('etag');
    const rec = JSON.parse(await readFile(k.record, 'utf8')) as { etag: string };
    await writeFile(k.record, JSON.stringify({ ...rec, etag: '"0123456789abcdef0123456789abcdef-6"' }));
    const { fetched } = await k.again();
    assert.ok(fetched >= BLOB, `fetched ${fetched}: the whole blob`);
  });
});

describe('S3 pull to a full disk', () => {
  let disk: string;
  let unmount: (() => void) | undefined;
  before(async () => {
    disk = await fresh('tmpfs');
    unmount = mountTmpfs(disk, '4m');
  });
  after(() => unmount?.());

  test('exit 2 naming the disk, at once; nothing under the output or the cache blob name', async () => {
    const bucket = await s3.newBucket('full');
    const store = `s3://${bucket}`;
    const env = { ...s3CliEnv(s3), MODELCTL_S3_PART_SIZE: '5MiB' };
    assert.equal((await runCli(['bundle', 'push', await bundle(sampleBundle({ largeBytes: 12 * MiB })), '--store', store], { env })).code, 0);
    for (const [label, extra] of [
      ['no cache', { MODELCTL_CACHE: 'off' }],
      ['cache on the full disk', { MODELCTL_HOME: path.join(disk, 'home') }],
    ] as const) {
      const started = Date.now();
      const r = await runCli(['bundle', 'pull', 'sentiment@1.0.0', '-o', path.join(disk, 'pulled'), '--store', store, '--json'], { env: { ...env, ...extra } });
      assert.equal(r.code, ExitCode.usage, `${label}: ${r.stdout}${r.stderr}`);
      assert.match(r.json().error.message, /no space left on the device \(ENOSPC\)/, label);
      assert.ok(Date.now() - started < 20_000, `${label}: not retried as a store fault`);
      assert.deepEqual((await readdir(disk)).filter((n) => n.startsWith('pulled')), [], label);
    }
    assert.deepEqual(await readdir(path.join(disk, 'home', 'cache', 'blobs', 'sha256')).catch(() => []), []);
  });

  test('bad MODELCTL_S3_CONCURRENCY or MODELCTL_S3_PART_SIZE: exit 2 naming the variable and value', async () => {
    for (const [name, value, message] of [
      ['MODELCTL_S3_CONCURRENCY', '0', /MODELCTL_S3_CONCURRENCY="0" is not a whole number from 1 to 64/],
      ['MODELCTL_S3_PART_SIZE', '1MiB', /MODELCTL_S3_PART_SIZE="1MiB" is not a size from 5MiB to 5GiB/],
    ] as const) {
      const r = await runCli(['bundle', 'list', '--store', 's3://some-bucket', '--json'], { env: { ...s3CliEnv(s3), [name]: value } });
      assert.equal(r.code, ExitCode.usage, r.stdout + r.stderr);
      assert.match(r.json().error.message, message);
    }
  });
});

describe('ranged pulls written with O_DIRECT, hashed in order from the part buffers', () => {
  const SIZE = 17 * MiB + 1234; // neither a multiple of 4096 nor of the 5 MiB part size
  const data = randomBytes(SIZE);
  const digest = sha256(data);
  let ramfs: string;
  let unmount: (() => void) | undefined;
  before(async () => {
    ramfs = await fresh('ramfs');
    unmount = mountRamfs(ramfs);
  });
  after(() => unmount?.());

  /** A store holding `blob` under `key` (default: its own digest; another puts corrupt bytes in place). */
  async function storeWith(name: string, settings: { concurrency: number; partSize: number }, blob = data, key = sha256(blob)) {
    const bucket = await s3.newBucket(name);
    const store = new S3Store(s3.client({ endpoint: proxy.endpoint, maxAttempts: 2 }), bucket, 'm', undefined, settings);
    await s3.client().send(new PutObjectCommand({ Bucket: bucket, Key: `m/${blobKey(key)}`, Body: blob }));
    return store;
  }

  test('byte-exact through O_DIRECT on ext4; the tail that is not a whole block written buffered', async () => {
    const store = await storeWith('dio', { concurrency: 3, partSize: 5 * MiB });
    const dest = path.join(await fresh('dio'), 'blob');
    const r = await store.downloadBlob(digest, SIZE, dest);
    assert.ok((await readFile(dest)).equals(data));
    assert.deepEqual(r.writes, { direct: SIZE - 1234, buffered: 1234 });
    assert.equal(r.fetchedBytes, SIZE);
  });

  test('a file system that refuses O_DIRECT (ramfs), and a part size not a multiple of 4096: the same bytes, written buffered', async () => {
    const store = await storeWith('ramfs', { concurrency: 3, partSize: 5 * MiB });
    const r = await store.downloadBlob(digest, SIZE, path.join(ramfs, 'blob'));
    assert.ok((await readFile(path.join(ramfs, 'blob'))).equals(data));
    assert.deepEqual(r.writes, { direct: 0, buffered: SIZE });

    const odd = await storeWith('oddpart', { concurrency: 3, partSize: 5 * MiB + 100 });
    const dest = path.join(await fresh('odd'), 'blob');
    const o = await odd.downloadBlob(digest, SIZE, dest);
    assert.ok((await readFile(dest)).equals(data));
    assert.deepEqual(o.writes, { direct: 0, buffered: SIZE });
  });

  test('the reorder window bounds the part buffers held while an early range is slow', async () => {
    const blob = randomBytes(10 * 5 * MiB + 7); // 11 parts
    const store = await storeWith('window', { concurrency: 2, partSize: 5 * MiB }, blob);
    proxy.clearFaults();
    // Part 0 held back: every later part lands before it and must wait in memory for the hash.
    proxy.delay(when({ method: 'GET', header: ['range', /^bytes=0-/] }), 1500, 1);
    try {
      const dest = path.join(await fresh('window'), 'blob');
      const r = await store.downloadBlob(sha256(blob), blob.length, dest);
      assert.ok((await readFile(dest)).equals(blob));
      assert.equal(r.heldParts.window, 4, 'the concurrency + 2');
      // Without the bound the 10 later parts would all be held behind part 0.
      assert.equal(r.heldParts.peak, 4, `held ${r.heldParts.peak} part buffers at once`);
    } finally {
      proxy.clearFaults();
    }
  });

  test('an interrupted O_DIRECT pull resumes: only the missing parts fetched, resumed parts read back and hashed', async () => {
    // One range at a time: parts 0 and 1 are surely written before part 2 is refused (with two at
    // once, part 1 may still be in flight when part 2's refusal aborts it).
    const store = await storeWith('dioresume', { concurrency: 1, partSize: 5 * MiB });
    const dir = await fresh('dioresume');
    const dest = path.join(dir, 'blob');
    const partial = path.join(dir, 'blob.partial');
    const hex = digest.slice('sha256:'.length);
    proxy.clearFaults();
    // Ranges from 10 MiB on refused for good (403: not retried): parts 0 and 1 are written, then the pull fails.
    proxy.injectStatus(when({ method: 'GET', header: ['range', /^bytes=\d{8}/] }), 403, 100);
    await assert.rejects(store.downloadBlob(digest, SIZE, dest, { partial }));
    proxy.clearFaults();
    assert.ok(!existsSync(dest));
    const rec = JSON.parse(await readFile(`${partial}.json`, 'utf8')) as { done: number[] };
    assert.deepEqual(rec.done.sort(), [0, 1]);
    proxy.clearLog();
    const r = await store.downloadBlob(digest, SIZE, dest, { partial });
    assert.ok((await readFile(dest)).equals(data));
    assert.equal(r.resumedBytes, 10 * MiB);
    assert.equal(r.fetchedBytes, SIZE - 10 * MiB);
    assert.deepEqual(r.writes, { direct: SIZE - 10 * MiB - 1234, buffered: 1234 });
    assert.equal(proxy.requests.filter((q) => q.method === 'GET' && q.url.includes(hex)).reduce((n, q) => n + q.bytesOut, 0), SIZE - 10 * MiB);
    assert.ok(!existsSync(partial) && !existsSync(`${partial}.json`));
  });

  test('bytes corrupt in the store (in the last, partial part): IntegrityError after one more try, nothing under dest', async () => {
    const bad = Buffer.from(data);
    bad[SIZE - 10]! ^= 0x01;
    // The bad bytes under the good digest (what the manifest names).
    const store = await storeWith('diocorrupt', { concurrency: 3, partSize: 5 * MiB }, bad, digest);
    const dest = path.join(await fresh('diocorrupt'), 'blob');
    await assert.rejects(store.downloadBlob(digest, SIZE, dest), (e: ModelctlError) => e.exitCode === ExitCode.integrity && e.message.includes(`hash to ${sha256(bad)}`));
    assert.deepEqual(await readdir(path.dirname(dest)), []);
  });
});
