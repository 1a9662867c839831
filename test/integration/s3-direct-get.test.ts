import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo, type Socket } from 'node:net';
import tls from 'node:tls';
import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { S3Client } from '@aws-sdk/client-s3';
import { packDirectory } from '../../src/bundle/source.js';
import { push } from '../../src/store/transfer.js';
import { S3Store } from '../../src/store/s3-store.js';
import { DirectRangeHandler } from '../../src/store/s3-direct-get.js';
import { testS3, type TestS3 } from '../infra/ceph-rgw.js';
import { s3ErrorXml } from '../infra/fault-proxy.js';
import { REPO_ROOT, sampleBundle, useScratch } from '../helpers/fixtures.js';

/**
 * Ranged GETs read from the socket straight into the part buffer (src/store/s3-direct-get.ts):
 * against the real Ceph RGW (real SigV4, real answers), and against a small HTTP server on
 * loopback that misbehaves the way networks do — a body cut mid-way, a 503 with its XML error, a
 * server that never answers — to show the retries, errors and connection reuse of the SDK path
 * are kept.
 */
const MiB = 1024 * 1024;
const { fresh, bundle, cleanup } = useScratch();
after(cleanup);

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const handlerOf = (c: S3Client) => (c.config as unknown as { requestHandler: unknown }).requestHandler as DirectRangeHandler;

/**
 * 12 MiB + 123 bytes pushed in 5 MiB parts through `client` and pulled back (three ranges): the
 * bytes come back exactly, through the direct handler. The blob's digest and size, for more checks.
 */
async function roundTrip(client: S3Client, bucket: string): Promise<{ digest: string; size: number }> {
  const store = new S3Store(client, bucket, 'm', undefined, { concurrency: 2, partSize: 5 * MiB });
  const data = randomBytes(12 * MiB + 123);
  const digest = sha256(data);
  await store.putBlob(digest, data.length, Readable.from([data]));
  const dest = path.join(await fresh(bucket), 'blob');
  const r = await store.downloadBlob(digest, data.length, dest);
  assert.equal(r.fetchedBytes, data.length);
  assert.ok((await readFile(dest)).equals(data));
  assert.ok(handlerOf(client) instanceof DirectRangeHandler);
  return { digest, size: data.length };
}

describe('direct ranged GETs on Ceph RGW', () => {
  let s3: TestS3;
  before(async () => {
    s3 = await testS3();
  });

  test('a blob pushed in parts comes back byte for byte, every range read by the direct path', async () => {
    const client = s3.client();
    await roundTrip(client, await s3.newBucket('direct'));
    assert.equal(handlerOf(client).served, 3, 'three ranges of 5 MiB, each served from the socket into its buffer');
  });

  test('push reads parts straight from the file, and still refuses a file changed after pack: no version', async () => {
    const bucket = await s3.newBucket('changed');
    const store = new S3Store(s3.client(), bucket, 'm', undefined, { concurrency: 2, partSize: 5 * MiB });
    const dir = await bundle(sampleBundle({ largeBytes: 12 * MiB })); // not real safetensors: one whole-file blob, 3 parts
    const src = await packDirectory(dir);
    try {
      // Same size, other bytes in the second part: only the upload's own hash can see it.
      const fh = await open(path.join(dir, 'weights/model.safetensors'), 'r+');
      await fh.write(Buffer.from('changed after pack'), 0, 18, 6 * MiB);
      await fh.close();
      await assert.rejects(push(store, src), (e: Error & { exitCode?: number }) => e.name === 'IntegrityError' && /changed while it was being pushed/.test(e.message));
      assert.equal(await store.getRef('sentiment', '1.0.0'), undefined);
    } finally {
      await src.close();
    }
  });
});

/**
 * HTTPS in front of the real RGW: a TLS terminator on loopback with the test certificate
 * (test/fixtures/tls), bytes passed through unchanged, so SigV4 and RGW's answers stay real.
 */
async function tlsFront(upstream: string): Promise<{ endpoint: string; ca: Buffer; stop: () => Promise<void> }> {
  const dir = path.join(REPO_ROOT, 'test/fixtures/tls');
  const [cert, key] = await Promise.all([readFile(path.join(dir, 'localhost.crt')), readFile(path.join(dir, 'localhost.key'))]);
  const up = new URL(upstream);
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ cert, key }, (client) => {
    const rgw = net.connect(Number(up.port), up.hostname);
    for (const s of [client, rgw]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(rgw).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ca: cert,
    stop: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

describe('direct ranged GETs over HTTPS (real S3 is HTTPS)', () => {
  test('a TLS socket reads into the part buffer; the SDK handler\'s own CA is what is trusted', async () => {
    const s3 = await testS3();
    const front = await tlsFront(s3.endpoint);
    try {
      const bucket = await s3.newBucket('tls');
      // The test certificate is trusted only by this client's https Agent, as a user's custom CA
      // would be: a direct path that ignored the SDK's TLS settings would refuse the server.
      const client = s3.client({ endpoint: front.endpoint, requestHandler: { httpsAgent: new https.Agent({ ca: front.ca, keepAlive: true }) } });
      const { digest, size } = await roundTrip(client, bucket);
      assert.equal(handlerOf(client).served, 3, 'three ranges of 5 MiB over TLS, each decrypted straight into its buffer');
      // Without the CA the handshake is refused, by the SDK and by the direct path alike: never a pull from an unverified server.
      const untrusting = s3.client({ endpoint: front.endpoint, maxAttempts: 1 });
      const refused = new S3Store(untrusting, bucket, 'm', undefined, { concurrency: 2, partSize: 5 * MiB });
      await assert.rejects(refused.downloadBlob(digest, size, path.join(await fresh('tls-refused'), 'blob')), (e: Error) => /certificate|self.signed/i.test(`${e.message} ${(e as { cause?: Error }).cause?.message ?? ''}`));
      assert.equal(handlerOf(untrusting).served, 0);
    } finally {
      await front.stop();
    }
  });
});

/** A read-only S3 double for one object: HEAD and ranged GETs, with a fault hook per GET. */
async function objectServer(data: Buffer, fault: (n: number, range: string, res: http.ServerResponse) => boolean) {
  let gets = 0;
  const getSockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-length': data.length, etag: '"v1"' });
      res.end();
      return;
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (req.method !== 'GET' || !m) {
      res.writeHead(400).end();
      return;
    }
    getSockets.add(req.socket);
    if (fault(++gets, req.headers.range!, res)) return;
    const body = data.subarray(Number(m[1]), Number(m[2]) + 1);
    res.writeHead(206, { 'content-length': body.length, etag: '"v1"', 'content-range': `bytes ${m[1]}-${m[2]}/${data.length}` });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    endpoint,
    gets: () => gets,
    getConnections: () => getSockets.size,
    stop: () => new Promise<void>((r) => server.close(() => r()) && server.closeAllConnections()),
  };
}

function storeOn(endpoint: string, maxAttempts = 3): { store: S3Store; client: S3Client } {
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, maxAttempts, credentials: { accessKeyId: 'k', secretAccessKey: 's' } });
  return { client, store: new S3Store(client, 'bucket', 'm', undefined, { concurrency: 2, partSize: 5 * MiB }) };
}

describe('direct ranged GETs when the network misbehaves', () => {
  test('a body cut mid-way and a 503 are retried; the bytes come out right over reused connections', async () => {
    const data = randomBytes(22 * MiB); // 5 ranges
    const srv = await objectServer(data, (n, range, res) => {
      if (n === 1) {
        // Headers and 1000 bytes of the body, then the connection dies.
        const len = Number(/-(\d+)$/.exec(range)![1]) - Number(/=(\d+)-/.exec(range)![1]) + 1;
        res.writeHead(206, { 'content-length': len, etag: '"v1"' });
        res.write(data.subarray(0, 1000), () => res.socket!.destroy());
        return true;
      }
      if (n === 2) {
        const xml = s3ErrorXml('SlowDown', 'Please reduce your request rate.');
        res.writeHead(503, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml) });
        res.end(xml);
        return true;
      }
      return false;
    });
    try {
      const { store, client } = storeOn(srv.endpoint);
      const dest = path.join(await fresh('cut'), 'blob');
      await store.downloadBlob(sha256(data), data.length, dest);
      assert.ok((await readFile(dest)).equals(data));
      assert.equal(srv.gets(), 7, 'five ranges, plus one for the cut body and one for the 503');
      assert.equal(handlerOf(client).served, 7);
      assert.ok(srv.getConnections() <= 3, `keep-alive: ${srv.getConnections()} connections carried the GETs (2 in flight, one replaced after the cut)`);
    } finally {
      await srv.stop();
    }
  });

  test('a server that never answers a GET: UnavailableError (exit 9) after bounded idle timeouts', async () => {
    const data = randomBytes(6 * MiB);
    const srv = await objectServer(data, () => true); // accepts, never answers
    const was = process.env.MODELCTL_S3_TIMEOUT;
    process.env.MODELCTL_S3_TIMEOUT = '0.3';
    try {
      const { store } = storeOn(srv.endpoint, 2);
      const t0 = Date.now();
      await assert.rejects(store.downloadBlob(sha256(data), data.length, path.join(await fresh('silent'), 'blob')), (e: Error & { exitCode?: number }) => {
        assert.equal(e.exitCode, 9, e.message);
        assert.match(e.message, /did not answer/);
        return true;
      });
      assert.ok(Date.now() - t0 < 20_000, 'bounded');
    } finally {
      if (was === undefined) delete process.env.MODELCTL_S3_TIMEOUT;
      else process.env.MODELCTL_S3_TIMEOUT = was;
      await srv.stop();
    }
  });

  test('a GET answered 404: NotFoundError naming the blob', async () => {
    const data = randomBytes(6 * MiB);
    const srv = await objectServer(data, (_n, _r, res) => {
      const xml = s3ErrorXml('NoSuchKey', 'The specified key does not exist.');
      res.writeHead(404, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml) });
      res.end(xml);
      return true;
    });
    try {
      const { store } = storeOn(srv.endpoint);
      const digest = sha256(data);
      await assert.rejects(store.downloadBlob(digest, data.length, path.join(await fresh('gone'), 'blob')), (e: Error) => e.name === 'NotFoundError' && e.message.includes(digest));
    } finally {
      await srv.stop();
    }
  });
});
