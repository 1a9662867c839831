import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { ReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import pLimit from 'p-limit';
import { IntegrityError, NotFoundError, UnavailableError, UsageError } from '../core/errors.js';
import { blobKey, CorruptRefError, manifestKey, parseRefRecord, refKey, type BlobDownload, type BundleStore, type CreateRefResult, type RefRecord } from './store.js';
import { DirectRangeHandler, rangeTarget, type RangeTarget, type SdkHandler } from './s3-direct-get.js';
import { DEFAULT_TRANSFER, downloadResumable, rangedStream, Slots, uploadPartSize, type DownloadResult, type FetchRange, type TransferSettings } from './s3-transfer.js';

export interface S3StoreOptions {
  bucket: string;
  prefix: string;
  pathStyle: boolean;
  /** Custom endpoint (Ceph RGW, MinIO…); defaults to AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL. */
  endpoint?: string | undefined;
  region?: string | undefined;
  maxAttempts?: number;
  /** Connections kept to the endpoint: at least the parts in flight (the SDK's default is 50). */
  maxSockets?: number;
}

/** Idle time after which a request to S3 is abandoned (and retried), unless MODELCTL_S3_TIMEOUT says otherwise. */
export const DEFAULT_S3_IDLE_TIMEOUT_MS = 30_000;
/** TCP connect time after which a request is abandoned (and retried); never more than the idle timeout. */
const DEFAULT_S3_CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_MAX_ATTEMPTS = 6;

/**
 * Timeouts of every S3 request: `MODELCTL_S3_TIMEOUT` (seconds, e.g. 30 or 2.5) is how long a
 * connection may stay silent — no response, or a body that stops flowing — before the request is
 * abandoned and retried. An idle timeout rather than a total one: a multi-GiB download may take
 * as long as it needs while bytes keep coming. Without these, a server that accepts connections
 * and never answers (an overloaded or full RGW) hangs modelctl forever.
 */
export function s3Timeouts(env: NodeJS.ProcessEnv = process.env): { idleMs: number; connectMs: number } {
  const raw = env.MODELCTL_S3_TIMEOUT;
  let idleMs = DEFAULT_S3_IDLE_TIMEOUT_MS;
  if (raw !== undefined && raw !== '') {
    const seconds = Number(raw);
    if (!Number.isFinite(seconds) || seconds <= 0) {
      throw new UsageError(`MODELCTL_S3_TIMEOUT="${raw}" is not a positive number of seconds`, { hint: 'e.g. MODELCTL_S3_TIMEOUT=30' });
    }
    idleMs = Math.round(seconds * 1000);
  }
  return { idleMs, connectMs: Math.min(DEFAULT_S3_CONNECT_TIMEOUT_MS, idleMs) };
}

/** The endpoint requests go to, for messages: the custom one, or AWS's. */
export function s3EndpointOf(opts: Pick<S3StoreOptions, 'endpoint'>, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return opts.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
}

export function createS3Client(opts: S3StoreOptions): S3Client {
  const endpoint = s3EndpointOf(opts);
  // The SDK resolves the region from AWS_REGION and the shared config; a custom endpoint usually
  // does not care about the region, so don't fail for lack of one there.
  const region = opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? (endpoint ? 'us-east-1' : undefined);
  const { idleMs, connectMs } = s3Timeouts();
  return new S3Client({
    ...(endpoint ? { endpoint } : {}),
    ...(region ? { region } : {}),
    forcePathStyle: opts.pathStyle,
    // "standard" retries throttling (SlowDown, 503), 5xx and timeouts with exponential backoff and
    // jitter, at most maxAttempts times: a silent server costs at most about maxAttempts × idle.
    retryMode: 'standard',
    // Every blob byte is verified against its SHA-256 by modelctl itself (push before Complete, pull
    // before a blob is kept): the SDK's own CRC32 of each upload part and of GET answers (its
    // WHEN_SUPPORTED default) would be a second checksum of every byte for nothing.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    requestHandler: { connectionTimeout: connectMs, socketTimeout: idleMs, ...(opts.maxSockets ? { httpAgent: { keepAlive: true, maxSockets: Math.max(opts.maxSockets * 2, 8) }, httpsAgent: { keepAlive: true, maxSockets: Math.max(opts.maxSockets * 2, 8) } } : {}) },
  });
}

/**
 * A store in an S3 bucket under a prefix. Blobs are verified before they become visible: small
 * blobs are hashed before the PutObject, large ones are multipart uploads whose Complete call is
 * only sent once the streamed bytes hashed to the expected digest (else the upload is aborted).
 * Refs are created with `If-None-Match: *`, so two pushes of one version cannot both win.
 */
export class S3Store implements BundleStore {
  readonly url: string;
  private readonly prefix: string;
  /** Parts (upload or ranged GET) in flight, for all blobs of this store together. */
  private readonly slots: Slots;
  /** Buffers of finished upload parts, reused: memory stays at slots × part size however big the push. */
  private readonly spare: ArrayBuffer[] = [];

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    prefix: string,
    /** Named in errors when it cannot be reached (a custom endpoint; AWS's otherwise). */
    private readonly endpoint?: string,
    /** Concurrency and part size of large transfers (MODELCTL_S3_CONCURRENCY, MODELCTL_S3_PART_SIZE). */
    readonly transfer: TransferSettings = DEFAULT_TRANSFER,
  ) {
    this.prefix = prefix.replace(/^\/+|\/+$/g, '');
    this.url = `s3://${bucket}${this.prefix ? `/${this.prefix}` : ''}`;
    this.slots = new Slots(transfer.concurrency);
    directRangeGets(client, transfer.concurrency);
  }

  private key(k: string): string {
    return this.prefix ? `${this.prefix}/${k}` : k;
  }

  async hasBlob(digest: string, size: number): Promise<boolean> {
    try {
      const head = await this.call(() => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(blobKey(digest)) })));
      return head.ContentLength === size;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async putBlob(digest: string, size: number, body: Readable, onBytes?: (n: number) => void): Promise<void> {
    const key = this.key(blobKey(digest));
    const partSize = uploadPartSize(size, this.transfer.partSize);
    if (size < partSize) {
      const bytes = await readAll(body, size);
      checkDigest(digest, size, bytes.length, createHash('sha256').update(bytes).digest('hex'));
      await this.call(() => this.client.send(unsignedPayload(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: bytes, ContentLength: bytes.length }))));
      onBytes?.(bytes.length);
      return;
    }
    await this.multipartUpload(key, digest, size, partSize, body, onBytes);
  }

  /**
   * Parts are read in order (and hashed as they are read), each into a buffer of its own, and sent
   * as soon as a store slot is free: at most `concurrency` parts in flight for the whole store,
   * plus one being read per blob. Complete is sent only once every part is in and the bytes hashed
   * to the digest; on any failure the upload is aborted (nothing becomes visible).
   */
  private async multipartUpload(key: string, digest: string, size: number, partSize: number, body: Readable, onBytes?: (n: number) => void): Promise<void> {
    const { UploadId } = await this.call(() => this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key })));
    const hash = createHash('sha256');
    const parts: CompletedPart[] = [];
    const inFlight = new Set<Promise<void>>();
    const state: { failure?: { err: unknown } } = {};
    let total = 0;
    const file = unreadFileRange(body);
    if (file) body.destroy(); // read below with positional reads instead
    const reader = file ? fileParts(file, partSize, () => this.takeBuffer(partSize)) : chunked(body, partSize, () => this.takeBuffer(partSize));
    try {
      for (let n = 1; ; n++) {
        // A slot before reading on: never more part buffers than slots (plus the one being filled).
        const release = await this.slots.acquire();
        if (state.failure) {
          release();
          throw state.failure.err;
        }
        let next: IteratorResult<Buffer>;
        try {
          next = await reader.next();
        } catch (err) {
          release();
          throw err;
        }
        if (next.done) {
          release();
          break;
        }
        const part = next.value;
        hash.update(part);
        total += part.length;
        const p: Promise<void> = this.call(() =>
          this.client.send(unsignedPayload(new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId, PartNumber: n, Body: part, ContentLength: part.length }))),
        )
          .then(
            (res) => {
              parts.push({ PartNumber: n, ETag: res.ETag });
              onBytes?.(part.length);
            },
            (err: unknown) => {
              state.failure ??= { err };
            },
          )
          .finally(() => {
            inFlight.delete(p);
            this.giveBuffer(part);
            release();
          });
        inFlight.add(p);
      }
      await Promise.all(inFlight);
      const failure = state.failure as { err: unknown } | undefined; // set by callbacks (TS narrowed it above)
      if (failure) throw failure.err;
      checkDigest(digest, size, total, hash.digest('hex'));
      parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
      await this.call(() => this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } })));
    } catch (err) {
      await reader.return(undefined).catch(() => undefined);
      await Promise.allSettled(inFlight);
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId })).catch(() => undefined);
      throw err;
    }
  }

  private takeBuffer(size: number): Buffer {
    const i = this.spare.findIndex((b) => b.byteLength === size);
    return i >= 0 ? Buffer.from(this.spare.splice(i, 1)[0]!) : Buffer.allocUnsafeSlow(size);
  }

  /** Keeps a sent part's memory for the next part (the last part of a blob is a shorter view of a whole one). */
  private giveBuffer(part: Buffer): void {
    if (this.spare.length < this.transfer.concurrency + 2) this.spare.push(part.buffer as ArrayBuffer);
  }

  /** Large blobs are read as parallel ranged GETs, returned in order (memory ≈ concurrency × part size). */
  async getBlob(digest: string): Promise<Readable> {
    const key = this.key(blobKey(digest));
    try {
      const head = await this.call(() => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key })));
      const size = head.ContentLength ?? 0;
      if (size > this.transfer.partSize) {
        return rangedStream({ size, partSize: this.transfer.partSize, window: this.transfer.concurrency, slots: this.slots, fetch: this.fetchRange(key) });
      }
      const res = await this.call(() => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key })));
      return res.Body as Readable;
    } catch (err) {
      throw this.notFound(err, digest);
    }
  }

  /**
   * Download a blob into a local file: parallel ranged GETs written in place, hashed in order,
   * verified, then renamed to `dest`; resumable through `partial` (see downloadResumable).
   */
  async downloadBlob(digest: string, size: number, dest: string, opts: BlobDownload = {}): Promise<DownloadResult> {
    const key = this.key(blobKey(digest));
    try {
      return await downloadResumable({
        digest,
        size,
        dest,
        partial: opts.partial,
        partSize: this.transfer.partSize,
        slots: this.slots,
        onBytes: opts.onBytes,
        where: this.url,
        head: async () => {
          const h = await this.call(() => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key })));
          return { size: h.ContentLength ?? 0, etag: h.ETag };
        },
        fetch: this.fetchRange(key),
      });
    } catch (err) {
      throw this.notFound(err, digest);
    }
  }

  private notFound(err: unknown, digest: string): unknown {
    if (isNotFound(err)) return new NotFoundError(`blob ${digest} is missing from ${this.url}`, { details: { blob: digest } });
    return this.explain(err);
  }

  /**
   * One ranged GET into `into`; a body cut short is an UnavailableError (retried by the caller).
   * Over plain HTTP the body is read from the socket straight into `into` (s3-direct-get.ts);
   * otherwise (HTTPS) it streams through the SDK and is copied in.
   */
  private fetchRange(key: string): FetchRange {
    return async (start, into, signal) => {
      const end = start + into.length - 1;
      const target: RangeTarget = { into, got: 0, direct: false };
      const res = await rangeTarget.run(target, () =>
        this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: `bytes=${start}-${end}` }), { abortSignal: signal }),
      );
      let off = target.got;
      if (!target.direct) {
        // 'data' events rather than `for await`: a promise per 16–64 KiB chunk is measurable CPU at
        // hundreds of MB/s on two cores.
        const body = res.Body as Readable;
        off = 0;
        await new Promise<void>((resolve, reject) => {
          body.on('data', (chunk: Buffer) => {
            if (off + chunk.length > into.length) {
              body.destroy(new UnavailableError(`${this.url}: ${key} answered more than the ${into.length} bytes asked for at ${start}`));
              return;
            }
            chunk.copy(into, off);
            off += chunk.length;
          });
          body.once('end', resolve);
          body.once('error', reject);
          body.once('close', () => resolve()); // destroyed or aborted without 'end': the length check below decides
        });
      }
      if (off !== into.length) throw new UnavailableError(`${this.url}: the range ${start}-${end} of ${key} was cut after ${off} of ${into.length} bytes`);
      return res.ETag;
    };
  }

  async putManifest(digest: string, bytes: Buffer): Promise<void> {
    await this.call(() => this.client.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: this.key(manifestKey(digest)), Body: bytes, ContentType: 'application/json' }),
    ));
  }

  async getManifest(digest: string): Promise<Buffer | undefined> {
    return this.getSmall(this.key(manifestKey(digest)));
  }

  async createRef(ref: RefRecord): Promise<CreateRefResult> {
    const key = this.key(refKey(ref.name, ref.version));
    try {
      await this.call(() => this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: Buffer.from(`${JSON.stringify(ref, null, 2)}\n`),
          ContentType: 'application/json',
          IfNoneMatch: '*',
        }),
      ));
      return { created: true };
    } catch (err) {
      // 412: the ref exists. 409 (AWS): a concurrent conditional write to the same key is in flight.
      const status = httpStatus(err);
      if (status !== 412 && status !== 409) throw err;
      for (let attempt = 0; attempt < 10; attempt++) {
        const existing = await this.getRef(ref.name, ref.version);
        if (existing) return { created: false, existing };
        await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
      }
      throw err;
    }
  }

  async getRef(name: string, version: string): Promise<RefRecord | undefined> {
    const key = refKey(name, version);
    const bytes = await this.getSmall(this.key(key));
    return bytes ? parseRefRecord(bytes, this.key(key), this.url) : undefined;
  }

  async listRefs(name?: string, onBadRef?: (err: CorruptRefError) => void): Promise<RefRecord[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.call(() => this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.key(name ? `refs/${name}/` : 'refs/'), ContinuationToken: token }),
      ));
      for (const o of page.Contents ?? []) if (o.Key?.endsWith('.json')) keys.push(o.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    const limit = pLimit(8);
    const refs = await Promise.all(
      keys.map((k) =>
        limit(async () => {
          const bytes = await this.getSmall(k);
          if (!bytes) return undefined;
          try {
            return parseRefRecord(bytes, k, this.url);
          } catch (err) {
            if (!(err instanceof CorruptRefError) || !onBadRef) throw err;
            onBadRef(err);
            return undefined;
          }
        }),
      ),
    );
    return refs.filter((r): r is RefRecord => r !== undefined);
  }

  private async getSmall(key: string): Promise<Buffer | undefined> {
    try {
      const res = await this.call(() => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key })));
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Send with the SDK's retries, turning what remains into errors that say what to do. */
  private async call<T>(request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (err) {
      throw this.explain(err);
    }
  }

  private explain(err: unknown): unknown {
    if (isNotFound(err) && !(err instanceof S3ServiceException && err.name === 'NoSuchBucket')) return err;
    const status = httpStatus(err);
    const name = err instanceof S3ServiceException ? err.name : (err as NodeJS.ErrnoException)?.code;
    if (status === 412 || status === 409) return err;
    if (name === 'NoSuchBucket') {
      return new UnavailableError(`bucket "${this.bucket}" does not exist (${this.url})`, { hint: 'create the bucket, or fix --store', cause: err });
    }
    if (status === 403 || name === 'AccessDenied' || name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch') {
      return new UnavailableError(`access to ${this.url} was refused (${name ?? status})`, {
        hint: 'check AWS_PROFILE / AWS_ACCESS_KEY_ID and the bucket policy: modelctl needs s3:GetObject, s3:PutObject, s3:ListBucket and multipart upload permissions',
        cause: err,
      });
    }
    if (status !== undefined && status >= 500) {
      return new UnavailableError(`${this.url} kept failing (HTTP ${status} ${name ?? ''}) after retries`, { hint: 'try again later', cause: err });
    }
    const where = this.endpoint ? `${this.url} at ${this.endpoint}` : this.url;
    if (err instanceof Error && (err.name === 'TimeoutError' || /ETIMEDOUT|timed out|timeout/i.test(`${(err as NodeJS.ErrnoException).code} ${err.message}`))) {
      const { idleMs, connectMs } = s3Timeouts();
      const attempts = (err as { $metadata?: { attempts?: number } }).$metadata?.attempts;
      return new UnavailableError(
        `${where} did not answer${attempts ? ` (${attempts} attempts)` : ''}: ${/connection/i.test(err.message) ? `no connection within ${connectMs / 1000} s` : `silent for ${idleMs / 1000} s`}`,
        {
          hint: 'the server accepts no requests or is stuck (an S3 server whose disks are full can hang): check it and AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL; MODELCTL_S3_TIMEOUT (seconds) sets how long a silent request is waited for',
          details: { store: this.url, ...(this.endpoint ? { endpoint: this.endpoint } : {}) },
          cause: err,
        },
      );
    }
    if (err instanceof Error && /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ECONNRESET|EPIPE|socket hang up/i.test(`${(err as NodeJS.ErrnoException).code} ${err.message}`)) {
      return new UnavailableError(`cannot reach ${where}: ${err.message}`, {
        hint: 'check the network and AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (for S3-compatible servers, also --s3-path-style)',
        details: { store: this.url, ...(this.endpoint ? { endpoint: this.endpoint } : {}) },
        cause: err,
      });
    }
    if (err instanceof Error && /Region is missing/i.test(err.message)) {
      return new UnavailableError('no AWS region configured for the S3 store', { hint: 'set AWS_REGION (or a region in your AWS profile)', cause: err });
    }
    return err;
  }
}

/**
 * Blob bytes are sent with `x-amz-content-sha256: UNSIGNED-PAYLOAD`: the SDK's SigV4 signer would
 * otherwise SHA-256 every part body once more (a third pass over every byte pushed, after pack's
 * and the upload's own), and the bytes are verified against the blob's SHA-256 before Complete and
 * on every pull anyway. The request itself (key, part number, length) stays signed; over HTTPS
 * TLS protects the body in transit, as for `aws s3 cp`, which sends UNSIGNED-PAYLOAD over HTTPS.
 */
function unsignedPayload<C extends { middlewareStack: { add: (...args: never[]) => void } }>(command: C): C {
  type Next = (args: { request: { headers?: Record<string, string> } }) => Promise<unknown>;
  (command.middlewareStack as unknown as { add: (mw: (next: Next) => Next, opts: { step: 'build'; name: string }) => void }).add(
    (next) => async (args) => {
      if (args.request.headers) args.request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      return next(args);
    },
    { step: 'build', name: 'modelctlUnsignedPayload' },
  );
  return command;
}

/**
 * Route this client's ranged GETs over plain HTTP through DirectRangeHandler (socket straight into
 * the part buffer); everything else still goes to the SDK's handler. Done once per client, before
 * its first request (the SDK reads config.requestHandler when it builds each request's stack).
 */
function directRangeGets(client: S3Client, concurrency: number): void {
  const config = client.config as unknown as { requestHandler: SdkHandler };
  if (config.requestHandler instanceof DirectRangeHandler) return;
  const { idleMs, connectMs } = s3Timeouts();
  config.requestHandler = new DirectRangeHandler(config.requestHandler, { idleMs, connectMs, maxIdle: Math.max(concurrency * 2, 8) });
}

function checkDigest(digest: string, size: number, actualSize: number, hex: string): void {
  if (`sha256:${hex}` !== digest || actualSize !== size) {
    throw new IntegrityError(`blob ${digest} changed while it was being pushed: its bytes now hash to sha256:${hex} (${actualSize} bytes)`, {
      hint: 'a source file was modified during the push; run the command again',
      details: { blob: digest, actual: `sha256:${hex}` },
    });
  }
}

function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function isNotFound(err: unknown): boolean {
  const name = (err as { name?: string })?.name;
  return httpStatus(err) === 404 || name === 'NotFound' || name === 'NoSuchKey';
}

async function readAll(body: Readable, expected: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    chunks.push(c as Buffer);
    n += (c as Buffer).length;
    if (n > expected + 1) break; // oversize: the digest check will fail; don't buffer more
  }
  return Buffer.concat(chunks);
}

/**
 * The file range behind a file stream nobody has read from yet (what a bundle source hands out for
 * a blob). Its parts are then read with positional reads straight into the part buffers: measured
 * (bench/README.md, measure 11), the stream's fresh 1 MiB buffer per read, copied again into the
 * part, cost about as much CPU as the upload's own SHA-256, half of it in the garbage collector.
 */
function unreadFileRange(body: Readable): { path: string; start: number; end: number } | undefined {
  if (!(body instanceof ReadStream) || body.bytesRead !== 0 || body.readableLength > 0 || body.readableFlowing !== null || body.destroyed) return undefined;
  const r = body as ReadStream & { start?: unknown; end?: unknown };
  if (typeof r.path !== 'string') return undefined;
  const start = typeof r.start === 'number' ? r.start : 0;
  const end = typeof r.end === 'number' ? r.end : Infinity; // inclusive, as createReadStream's option
  return { path: r.path, start, end };
}

/** Parts of exactly `size` bytes (the last may be shorter) of a file range, read in order into fresh part buffers. */
async function* fileParts(file: { path: string; start: number; end: number }, size: number, alloc: () => Buffer): AsyncGenerator<Buffer> {
  const fh = await open(file.path, 'r');
  try {
    let pos = file.start;
    let stop = file.end + 1;
    while (pos < stop) {
      const buf = alloc();
      let fill = 0;
      while (fill < size && pos < stop) {
        const { bytesRead } = await fh.read(buf, fill, Math.min(size - fill, stop - pos), pos);
        if (bytesRead === 0) {
          stop = pos; // end of file: the caller's size and digest check decide
          break;
        }
        fill += bytesRead;
        pos += bytesRead;
      }
      if (fill === 0) return;
      yield fill === size ? buf : buf.subarray(0, fill);
    }
  } finally {
    await fh.close();
  }
}

/** Re-chunk a stream into parts of exactly `size` bytes (the last may be shorter). */
async function* chunked(body: Readable, size: number, alloc: () => Buffer): AsyncGenerator<Buffer> {
  let buf = alloc();
  let fill = 0;
  for await (const c of body) {
    let chunk = c as Buffer;
    while (chunk.length > 0) {
      const n = Math.min(chunk.length, size - fill);
      chunk.copy(buf, fill, 0, n);
      fill += n;
      chunk = chunk.subarray(n);
      if (fill === size) {
        yield buf;
        buf = alloc();
        fill = 0;
      }
    }
  }
  if (fill > 0) yield buf.subarray(0, fill);
}
