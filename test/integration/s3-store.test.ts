import { GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { packDirectory } from '../../src/bundle/source.js';
import { ExitCode, type ModelctlError } from '../../src/core/errors.js';
import { push, pull } from '../../src/store/transfer.js';
import { S3Store } from '../../src/store/s3-store.js';
import { blobKey } from '../../src/store/store.js';
import { testS3, type TestS3 } from '../infra/ceph-rgw.js';
import { startFaultProxy, when, type FaultProxy } from '../infra/fault-proxy.js';
import { CLI, runCli, sampleBundle, useScratch } from '../helpers/fixtures.js';
import { s3CliEnv } from '../helpers/s3-env.js';

/**
 * The S3 store against a real Ceph RGW on 127.0.0.1 (started once per test run by the global
 * setup), with a fault-injecting proxy in front of it for throttling, 5xx and cut connections.
 */
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

/** The environment an AWS user would set for an S3-compatible server. */
function awsEnv(endpoint = s3.endpoint): NodeJS.ProcessEnv {
  return s3CliEnv(s3, endpoint);
}

/** An S3Store through the fault proxy, with short retry backoff so fault tests stay quick. */
function proxiedStore(bucket: string, prefix = 'models'): { store: S3Store; client: S3Client } {
  const client = s3.client({ endpoint: proxy.endpoint, maxAttempts: 4, retryMode: 'standard' });
  return { store: new S3Store(client, bucket, prefix), client };
}

describe('S3 store on Ceph RGW', () => {
  test('push (multipart), list, pull, verify, dedup and conflict through the CLI', async () => {
    const bucket = await s3.newBucket('roundtrip');
    const store = `s3://${bucket}/team/models`;
    const env = awsEnv();
    const src = await bundle(sampleBundle({ largeBytes: 21 * 1024 * 1024 })); // 3 multipart parts

    const pushed = await runCli(['bundle', 'push', src, '--store', store, '--json'], { env });
    assert.equal(pushed.code, 0, pushed.stderr);
    const p = pushed.json();
    assert.equal(p.store, store);
    assert.equal(p.reusedBytes, 0);

    const keys = (await s3.client().send(new ListObjectsV2Command({ Bucket: bucket }))).Contents!.map((o) => o.Key);
    assert.ok(keys.includes('team/models/refs/sentiment/1.0.0.json'), keys.join('\n'));
    assert.ok(keys.includes(`team/models/manifests/sha256/${p.digest.slice(7)}.json`));

    const list = (await runCli(['bundle', 'list', 'sentiment', '--store', store, '--json'], { env })).json();
    assert.deepEqual(list.map((r: { version: string; digest: string }) => [r.version, r.digest]), [['1.0.0', p.digest]]);

    const out = path.join(await fresh('pull'), 'sentiment');
    const pulled = await runCli(['bundle', 'pull', 'sentiment@1.0.0', '-o', out, '--store', store, '--json'], { env });
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.deepEqual(await readFile(path.join(out, 'weights/model.safetensors')), await readFile(path.join(src, 'weights/model.safetensors')));
    assert.equal((await runCli(['bundle', 'verify', 'sentiment@1.0.0', '--store', store], { env })).code, 0);

    await writeFile(path.join(src, 'prompts/explain.txt'), 'changed\n');
    const again = (await runCli(['bundle', 'push', src, '--version', '1.0.1', '--store', store, '--json'], { env })).json();
    assert.ok(again.uploadedBytes < 0.01 * again.reusedBytes, JSON.stringify(again));

    const conflict = await runCli(['bundle', 'push', src, '--store', store, '--json'], { env });
    assert.equal(conflict.code, ExitCode.conflict);
    assert.equal(conflict.json().error.existingDigest, p.digest);
  });

  test('concurrent pushes of one version: If-None-Match makes exactly one win', async () => {
    const bucket = await s3.newBucket('race');
    const store = `s3://${bucket}`;
    const env = awsEnv();
    const a = await bundle(sampleBundle({ seed: randomBytes(32) }));
    const b = await bundle(sampleBundle({ seed: randomBytes(32) }));
    for (let round = 0; round < 3; round++) {
      const version = `3.0.${round}`;
      const [ra, rb] = await Promise.all([
        runCli(['bundle', 'push', a, '--version', version, '--store', store, '--json'], { env }),
        runCli(['bundle', 'push', b, '--version', version, '--store', store, '--json'], { env }),
      ]);
      assert.deepEqual([ra.code, rb.code].sort(), [0, 7], `${ra.stdout}${ra.stderr}\n${rb.stdout}${rb.stderr}`);
      const winner = (ra.code === 0 ? ra : rb).json().digest;
      const ref = await s3.client().send(new GetObjectCommand({ Bucket: bucket, Key: `refs/sentiment/${version}.json` }));
      assert.equal(JSON.parse(await ref.Body!.transformToString()).digest, winner);
    }
  });

  test('throttling (503 SlowDown) and 5xx are retried with backoff', async () => {
    const bucket = await s3.newBucket('retry');
    const { store } = proxiedStore(bucket);
    const src = await packDirectory(await bundle(sampleBundle({ largeBytes: 17 * 1024 * 1024 })));
    try {
      proxy.clearLog();
      proxy.injectStatus(when({ method: 'PUT', url: /partNumber=2/ }), 503, 2);
      proxy.injectStatus(when({ method: 'HEAD' }), 500, 1);
      proxy.injectStatus(when({ method: 'PUT', url: '/refs/' }), 503, 1);
      const result = await push(store, src);
      assert.equal(result.created, true);
      const part2 = proxy.requests.filter((r) => r.method === 'PUT' && /partNumber=2/.test(r.url)).map((r) => r.status);
      assert.deepEqual(part2, [503, 503, 200], 'part 2 retried after two SlowDowns');
      assert.deepEqual(proxy.requests.filter((r) => r.url.includes('/refs/') && r.method === 'PUT').map((r) => r.status), [503, 200]);

      const out = path.join(await fresh('pull'), 'x');
      proxy.injectStatus(when({ method: 'GET', url: '/blobs/' }), 503, 2);
      await pull(store, 'sentiment@1.0.0', out);
      assert.ok(existsSync(path.join(out, 'weights/model.safetensors')));
    } finally {
      proxy.clearFaults();
      await src.close();
    }
  });

  test('an upload cut mid-body leaves no version and no multipart garbage; the next push completes', async () => {
    const bucket = await s3.newBucket('cut');
    const { store, client } = proxiedStore(bucket);
    const src = await packDirectory(await bundle(sampleBundle({ largeBytes: 25 * 1024 * 1024 })));
    try {
      proxy.cutAfterBytes(when({ method: 'PUT', url: /partNumber=3/ }), 1024 * 1024, 100);
      await assert.rejects(push(store, src), (e: ModelctlError) => e.exitCode === ExitCode.unavailable);
      proxy.clearFaults();
      assert.equal(await store.getRef('sentiment', '1.0.0'), undefined, 'no ref after a failed push');
      const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      assert.equal(uploads.Uploads?.length ?? 0, 0, 'the failed multipart upload was aborted');

      const result = await push(store, src);
      assert.equal(result.created, true);
      assert.ok(result.reusedBytes > 0, 'blobs that made it are re-used');
    } finally {
      proxy.clearFaults();
      await src.close();
    }
  });

  test('a push killed mid-upload (SIGKILL) leaves no version; running it again completes', async () => {
    const bucket = await s3.newBucket('kill');
    const store = `s3://${bucket}`;
    const env = awsEnv(proxy.endpoint);
    const src = await bundle(sampleBundle({ largeBytes: 30 * 1024 * 1024 }));
    proxy.clearLog();
    proxy.delay(when({ method: 'PUT', url: /partNumber=/ }), 60_000, 1000); // hold parts so the kill lands mid-upload
    const child = spawn(process.execPath, [CLI, 'bundle', 'push', src, '--store', store], { env: { ...process.env, ...env }, stdio: 'ignore' });
    const exited = new Promise((r) => child.on('exit', r));
    const deadline = Date.now() + 60_000;
    while (!proxy.requests.some((r) => r.method === 'PUT' && /partNumber=/.test(r.url))) {
      assert.ok(Date.now() < deadline, 'the push never started uploading parts');
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    await exited;
    proxy.clearFaults();

    const missing = await runCli(['bundle', 'pull', 'sentiment@1.0.0', '-o', path.join(await fresh('pull'), 'x'), '--store', store, '--json'], { env });
    assert.equal(missing.code, ExitCode.notFound, missing.stdout);
    const again = await runCli(['bundle', 'push', src, '--store', store, '--json'], { env });
    assert.equal(again.code, 0, again.stderr);
    const out = path.join(await fresh('pull'), 'y');
    assert.equal((await runCli(['bundle', 'pull', 'sentiment@1.0.0', '-o', out, '--store', store], { env })).code, 0);
    assert.deepEqual(await readFile(path.join(out, 'weights/model.safetensors')), await readFile(path.join(src, 'weights/model.safetensors')));
  });

  test('a corrupted blob in the bucket is caught on pull (exit 6) and leaves no output', async () => {
    const bucket = await s3.newBucket('corrupt');
    const store = `s3://${bucket}/p`;
    const env = awsEnv();
    const src = await bundle(sampleBundle({ largeBytes: 9 * 1024 * 1024 }));
    const p = (await runCli(['bundle', 'push', src, '--store', store, '--json'], { env })).json();
    const packed = await packDirectory(src);
    const big = packed.encoded.manifest.blobs.find((b) => b.kind === 'file')!;
    await packed.close();
    const bytes = await readFile(path.join(src, 'weights/model.safetensors'));
    bytes[12345]! ^= 0x01;
    await s3.client().send(new PutObjectCommand({ Bucket: bucket, Key: `p/${blobKey(big.digest)}`, Body: bytes }));

    const parent = await fresh('pull');
    const pulled = await runCli(['bundle', 'pull', `sentiment@${p.digest}`, '-o', path.join(parent, 'x'), '--store', store, '--json'], { env });
    assert.equal(pulled.code, ExitCode.integrity, pulled.stdout + pulled.stderr);
    assert.match(pulled.json().error.message, new RegExp(`blob ${big.digest} .*is corrupt`));
    assert.deepEqual(await readdir(parent), []);
  });

  test('clear errors: a missing bucket and refused credentials exit 9', async () => {
    const env = awsEnv();
    const noBucket = await runCli(['bundle', 'list', '--store', 's3://no-such-bucket-here', '--json'], { env });
    assert.equal(noBucket.code, ExitCode.unavailable, noBucket.stdout);
    assert.match(noBucket.json().error.message, /bucket "no-such-bucket-here" does not exist/);

    const bucket = await s3.newBucket('denied');
    const denied = await runCli(['bundle', 'list', '--store', `s3://${bucket}`, '--json'], { env: { ...env, AWS_SECRET_ACCESS_KEY: 'wrong' } });
    assert.equal(denied.code, ExitCode.unavailable, denied.stdout);
    assert.match(denied.json().error.message, /refused/);
  });
});

describe('S3 endpoint that accepts connections and never answers', () => {
  test('bundle list and push give up after bounded retries with exit 9 naming the endpoint', async () => {
    // A real TCP server on loopback: accepts, reads, never writes a byte.
    const sockets = new Set<Socket>();
    const server = createServer((s) => {
      sockets.add(s);
      s.on('data', () => {});
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const env = { ...awsEnv(endpoint), MODELCTL_S3_TIMEOUT: '0.5' };
      const started = Date.now();
      const list = await runCli(['bundle', 'list', '--store', 's3://silent-bucket', '--json'], { env, timeoutMs: 60_000 });
      const took = Date.now() - started;
      assert.equal(list.code, ExitCode.unavailable, list.stdout + list.stderr);
      const e = list.json().error;
      assert.match(e.message, new RegExp(`s3://silent-bucket at ${endpoint} did not answer \\(\\d+ attempts\\): silent for 0\\.5 s`));
      assert.match(e.hint, /MODELCTL_S3_TIMEOUT/);
      assert.equal(e.endpoint, endpoint);
      assert.ok(took < 30_000, `gave up after ${took} ms`);

      const src = await bundle(sampleBundle());
      const pushed = await runCli(['bundle', 'push', src, '--store', 's3://silent-bucket/p', '--json'], { env, timeoutMs: 60_000 });
      assert.equal(pushed.code, ExitCode.unavailable, pushed.stdout + pushed.stderr);
      assert.match(pushed.json().error.message, /did not answer/);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  test('MODELCTL_S3_TIMEOUT that is not a number of seconds is bad input (2)', async () => {
    const r = await runCli(['bundle', 'list', '--store', 's3://any-bucket', '--json'], { env: { ...awsEnv(), MODELCTL_S3_TIMEOUT: '5m' } });
    assert.equal(r.code, ExitCode.usage, r.stdout);
    assert.match(r.json().error.message, /MODELCTL_S3_TIMEOUT="5m"/);
  });
});
