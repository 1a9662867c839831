import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { IntegrityError, ModelctlError, UsageError } from '../core/errors.js';
import { DIRECT_ALIGN, openDirect, PartBuffers, PartWriter } from './direct-io.js';

/**
 * Parallel transfers of large blobs to and from S3: ranged GETs and multipart parts, a bounded
 * number in flight per store, each in a buffer of its own (memory ≈ concurrency × part size for a
 * push, (concurrency + 2) × part size for a download, for any blob size), every byte hashed once,
 * in order.
 */

/** S3's multipart rules: parts of 5 MiB–5 GiB (the last may be smaller), at most 10,000 of them. */
export const S3_MIN_PART_BYTES = 5 * 1024 * 1024;
export const S3_MAX_PART_BYTES = 5 * 1024 ** 3;
export const S3_MAX_PARTS = 10_000;
export const MAX_CONCURRENCY = 64;

export interface TransferSettings {
  /** Ranged GETs or upload parts in flight at once, for the whole store (all blobs together). */
  concurrency: number;
  /** Bytes per ranged GET and per upload part (scaled up for an upload that would need more than 10,000 parts). */
  partSize: number;
}

/**
 * 8 × 8 MiB: measured on the 2-core reference machine against Ceph RGW (bench/README.md), more
 * parts in flight gave nothing more and cost memory; `aws s3 cp` uses 10 × 8 MiB.
 */
export const DEFAULT_TRANSFER: TransferSettings = { concurrency: 8, partSize: 8 * 1024 * 1024 };

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };

/** `8388608`, `8MiB`, `16M`, `1GiB` (binary units: S3's part limits are in MiB and GiB). */
export function parseByteSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) return undefined;
  const n = Math.round(Number(m[1]) * unit);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * The transfer settings from MODELCTL_S3_CONCURRENCY (1–64) and MODELCTL_S3_PART_SIZE (5 MiB–5 GiB,
 * bytes or with a unit: 16MiB); UsageError naming the variable and its value when one is wrong.
 */
export function transferSettings(env: NodeJS.ProcessEnv = process.env): TransferSettings {
  const out = { ...DEFAULT_TRANSFER };
  const c = env.MODELCTL_S3_CONCURRENCY;
  if (c !== undefined && c !== '') {
    const n = Number(c);
    if (!Number.isInteger(n) || n < 1 || n > MAX_CONCURRENCY) {
      throw new UsageError(`MODELCTL_S3_CONCURRENCY="${c}" is not a whole number from 1 to ${MAX_CONCURRENCY}`, {
        hint: `it is how many ranged GETs or upload parts are in flight at once (default ${DEFAULT_TRANSFER.concurrency}); memory ≈ concurrency × MODELCTL_S3_PART_SIZE`,
        details: { variable: 'MODELCTL_S3_CONCURRENCY', value: c },
      });
    }
    out.concurrency = n;
  }
  const p = env.MODELCTL_S3_PART_SIZE;
  if (p !== undefined && p !== '') {
    const n = parseByteSize(p);
    if (n === undefined || n < S3_MIN_PART_BYTES || n > S3_MAX_PART_BYTES) {
      throw new UsageError(`MODELCTL_S3_PART_SIZE="${p}" is not a size from 5MiB to 5GiB`, {
        hint: 'give bytes or a binary unit, e.g. MODELCTL_S3_PART_SIZE=16MiB (S3 multipart parts are 5 MiB–5 GiB)',
        details: { variable: 'MODELCTL_S3_PART_SIZE', value: p },
      });
    }
    out.partSize = n;
  }
  return out;
}

/** Upload part size for a blob: the setting, scaled up so the blob fits in 10,000 parts. */
export function uploadPartSize(size: number, partSize: number): number {
  return Math.max(partSize, Math.ceil(size / S3_MAX_PARTS));
}

/** A counting semaphore shared by every transfer of one store: the bound on parts in flight. */
export class Slots {
  private free: number;
  private readonly waiting: Array<() => void> = [];
  constructor(readonly size: number) {
    this.free = size;
  }
  async acquire(): Promise<() => void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    };
  }
}

/** Fetch bytes [start, start + into.length) of the object into `into`; resolves to the object's ETag. */
export type FetchRange = (start: number, into: Buffer, signal: AbortSignal) => Promise<string | undefined>;

/** Per-part attempts for a body cut mid-way or a short read (the SDK retries failed requests itself). */
export const PART_ATTEMPTS = 4;

/** Whether an error is worth another attempt: not one of ours that says what is wrong, not a local disk fault. */
export function transient(err: unknown): boolean {
  if (err instanceof ModelctlError) return err.name === 'UnavailableError';
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EROFS' || code === 'EACCES' || code === 'EPERM' || code === 'EFBIG') return false;
  const status = (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) return false;
  return (err as Error)?.name !== 'AbortError';
}

async function withAttempts<T>(what: () => Promise<T>, signal: AbortSignal): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await what();
    } catch (err) {
      if (signal.aborted || attempt >= PART_ATTEMPTS || !transient(err)) throw err;
      await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
    }
  }
}

/** The object's ETag changed between two ranges: its parts cannot be put together. */
export class ChangedObjectError extends Error {
  constructor(readonly was: string | undefined, readonly now: string | undefined) {
    super(`the object changed during the download (ETag ${was} → ${now})`);
  }
}

/**
 * The blob's bytes in order, fetched as parallel ranged GETs: up to `window` ranges ahead of the
 * reader, each holding a store slot only while it downloads. Memory ≈ window × part size.
 * Destroying the stream aborts what is in flight.
 */
export function rangedStream(opts: { size: number; partSize: number; window: number; slots: Slots; fetch: FetchRange }): Readable {
  const { size, partSize, window, slots, fetch } = opts;
  const parts = Math.ceil(size / partSize);
  const abort = new AbortController();
  let etag: string | undefined;
  const started = new Map<number, Promise<Buffer>>();
  const start = (i: number): void => {
    const p = (async () => {
      const buf = Buffer.allocUnsafe(Math.min(partSize, size - i * partSize));
      const release = await slots.acquire();
      try {
        const tag = await withAttempts(() => fetch(i * partSize, buf, abort.signal), abort.signal);
        if (etag === undefined) etag = tag;
        else if (tag !== etag) throw new ChangedObjectError(etag, tag);
        return buf;
      } finally {
        release();
      }
    })();
    p.catch(() => undefined); // awaited in order below; never unhandled
    started.set(i, p);
  };
  async function* parts_(): AsyncGenerator<Buffer> {
    try {
      let next = 0;
      for (let i = 0; i < parts; i++) {
        while (next < parts && next < i + window) start(next++);
        const buf = await started.get(i)!;
        started.delete(i);
        yield buf;
      }
    } finally {
      abort.abort();
    }
  }
  return Readable.from(parts_(), { objectMode: false, highWaterMark: 1 });
}

/** What a resumable download records beside its partial file (`<partial>.json`). */
interface PartialRecord {
  etag: string;
  size: number;
  partSize: number;
  /** Indexes of the parts already written to the partial file. */
  done: number[];
}

export interface DownloadResult {
  /** Bytes fetched over the network by this call. */
  fetchedBytes: number;
  /** Bytes taken from an earlier interrupted download of the same object. */
  resumedBytes: number;
  /** Bytes written with O_DIRECT and through the page cache (see direct-io.ts): which path ran. */
  writes: { direct: number; buffered: number };
  /** Most part buffers held at once (fetched, not yet hashed) and the bound on it. */
  heldParts: { peak: number; window: number };
}

export interface DownloadOptions {
  digest: string;
  size: number;
  /** Final file, created only once every byte is verified (renamed from `partial`). Must not exist. */
  dest: string;
  /**
   * Where the bytes gather meanwhile, with `<partial>.json` listing the parts done and the object's
   * ETag: a stable name per blob lets a later call resume. Default `<dest>.partial`.
   */
  partial?: string;
  partSize: number;
  slots: Slots;
  /** HEAD: the object's size and ETag. */
  head: () => Promise<{ size: number; etag: string | undefined }>;
  fetch: FetchRange;
  onBytes?: (n: number) => void;
  /** Named in errors. */
  where: string;
  /**
   * Parts fetched ahead of the oldest one not yet hashed: default the store's concurrency + 2, so
   * every slot stays busy while a part or two wait for the hash, and memory ≈ (concurrency + 2) ×
   * part size (80 MiB at the defaults; 2 × concurrency measured 318 MB peak RSS on a 2 GiB pull).
   */
  window?: number;
}

/**
 * Download an object into `dest` with parallel ranged GETs written in place into `partial`
 * (positional writes, O_DIRECT where the file system allows it), hashed in order, verified, then
 * renamed to `dest`: nothing unverified is ever under `dest`. An interrupted download leaves
 * `partial` and its record; the next call with the same `partial` fetches only the parts missing,
 * if the object's ETag is unchanged. A damaged partial (the digest does not match) is discarded
 * and fetched again, once.
 */
export async function downloadResumable(o: DownloadOptions): Promise<DownloadResult> {
  const partial = o.partial ?? `${o.dest}.partial`;
  const lock = await lockPartial(partial);
  try {
    const first = await downloadOnce(o, lock.partial, true);
    if (first.ok) return first.result;
    // Bytes kept from an earlier run may be what was wrong (a disk error, a write to the file):
    // fetch everything again, once. Bytes all fetched now and wrong: the store's blob is corrupt.
    const again = first.result.resumedBytes > 0 ? await downloadOnce(o, lock.partial, false) : first;
    if (again.ok) return { ...again.result, fetchedBytes: first.result.fetchedBytes + again.result.fetchedBytes, resumedBytes: 0 };
    throw new IntegrityError(`blob ${o.digest} in ${o.where} is corrupt: its ${o.size} bytes hash to ${again.actual}`, {
      details: { blob: o.digest, actual: again.actual },
    });
  } finally {
    await lock.release();
  }
}

async function downloadOnce(
  o: DownloadOptions,
  partial: string,
  resume: boolean,
): Promise<{ ok: true; result: DownloadResult } | { ok: false; actual: string; result: DownloadResult }> {
  const record = `${partial}.json`;
  const head = await o.head();
  if (head.size !== o.size) {
    throw new IntegrityError(`blob ${o.digest} in ${o.where} is corrupt: it holds ${head.size} bytes, the manifest says ${o.size}`, {
      details: { blob: o.digest, size: head.size },
    });
  }
  const etag = head.etag ?? '';
  const parts = Math.max(1, Math.ceil(o.size / o.partSize));
  let done = new Set<number>();
  if (resume) {
    const was = await readRecord(record);
    const st = await stat(partial).catch(() => undefined);
    if (was && st && was.etag === etag && was.size === o.size && was.partSize === o.partSize && st.size === o.size) done = new Set(was.done.filter((i) => i >= 0 && i < parts));
  }
  const fh = await open(partial, done.size > 0 ? 'r+' : 'w+', 0o600);
  const resumedBytes = [...done].reduce((n, i) => n + partLength(i, o.size, o.partSize), 0);
  let fetchedBytes = 0;
  // Parts start at multiples of the part size: O_DIRECT only when those are block-aligned
  // (MODELCTL_S3_PART_SIZE need not be; such a pull is written buffered, nothing else changes).
  const writer = new PartWriter(fh, o.partSize % DIRECT_ALIGN === 0 ? await openDirect(partial).catch(() => undefined) : undefined);
  const window = Math.max(1, o.window ?? o.slots.size + 2);
  // One buffer per part between its fetch and its turn in the hash: at most `window` of them.
  const buffers = new PartBuffers(Math.ceil(o.partSize / DIRECT_ALIGN) * DIRECT_ALIGN, window);
  const result = (): DownloadResult => ({ fetchedBytes, resumedBytes, writes: { ...writer.bytes }, heldParts: { peak: buffers.peak, window } });
  try {
    if (done.size === 0) {
      await fh.truncate(o.size);
      await writeRecord(record, { etag, size: o.size, partSize: o.partSize, done: [] });
    }
    o.onBytes?.(resumedBytes);
    const hasher = new OrderedHasher(fh, o.size, o.partSize, window, done, (buf) => buffers.give(buf));
    const abort = new AbortController();
    const todo = [...Array(parts).keys()].filter((i) => !done.has(i));
    let saving: Promise<void> = Promise.resolve();
    const worker = async (): Promise<void> => {
      for (let i = todo.shift(); i !== undefined && !abort.signal.aborted; i = todo.shift()) {
        // Parts are taken in order, so every part below i is held, in flight or on disk: the
        // hash reaches them without this worker, and waiting here cannot deadlock.
        if (!(await hasher.room(i))) return;
        const len = partLength(i, o.size, o.partSize);
        // The buffer is taken once a slot is had: blobs waiting for the store's slots hold none.
        const release = await o.slots.acquire();
        const buf = buffers.take();
        const into = buf.subarray(0, len);
        try {
          const tag = await withAttempts(() => o.fetch(i * o.partSize, into, abort.signal), abort.signal);
          if ((tag ?? '') !== etag) throw new ChangedObjectError(etag, tag);
          await writer.write(into, i * o.partSize, buffers.aligned);
        } catch (err) {
          buffers.give(buf);
          throw err;
        } finally {
          release();
        }
        done.add(i);
        fetchedBytes += len;
        o.onBytes?.(len);
        hasher.hold(i, into, buf);
        // Recorded after the bytes are written: a kill in between only costs that part again.
        const snapshot = [...done];
        saving = saving.then(() => writeRecord(record, { etag, size: o.size, partSize: o.partSize, done: snapshot }));
      }
    };
    // The first failure is the cause; the others are mostly the aborts it set off ("aborted").
    let first: { err: unknown } | undefined;
    const fail = (err: unknown): never => {
      first ??= { err };
      abort.abort();
      hasher.stop();
      throw err;
    };
    const workers = Array.from({ length: Math.min(o.slots.size, todo.length) }, () => worker().catch(fail));
    const settled = await Promise.allSettled([...workers, hasher.run().catch(fail)]);
    await saving.catch(() => undefined);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      hasher.stop();
      throw (first as { err: unknown } | undefined)?.err ?? failed.reason;
    }
    const actual = `sha256:${hasher.hex()}`;
    if (actual !== o.digest) {
      await writer.close();
      await fh.close().catch(() => undefined);
      await rm(partial, { force: true });
      await rm(record, { force: true });
      return { ok: false, actual, result: result() };
    }
    // No fsync here: the caller decides (the blob cache fsyncs what it keeps; a pulled directory
    // is not fsynced, as before). A second fsync of gigabytes costs seconds on a busy disk.
  } finally {
    await writer.close();
    await fh.close().catch(() => undefined);
  }
  await rename(partial, o.dest);
  await rm(record, { force: true });
  return { ok: true, result: result() };
}

/**
 * Hashes the blob in order while the parts arrive, from the part buffers themselves: a fetched
 * part is held until every part before it is hashed, then hashed and its buffer given back (no
 * read-back of what was just written: with O_DIRECT it is not in the page cache). Workers do not
 * start a part `window` or more ahead of the oldest part not yet hashed, so at most `window`
 * buffers are held whatever the order parts land in (memory ≈ window × part size). Resumed
 * parts (on disk from an interrupted pull) are read back from the file.
 */
class OrderedHasher {
  private readonly hash = createHash('sha256');
  private next = 0;
  private readonly held = new Map<number, { bytes: Buffer; buf: Buffer }>();
  private waker: (() => void) | undefined;
  private readonly roomWaiters: Array<() => void> = [];
  private stopped = false;
  private readonly parts: number;
  constructor(
    private readonly fh: FileHandle,
    private readonly size: number,
    private readonly partSize: number,
    private readonly window: number,
    /** Parts on disk only when hashing starts (resumed). */
    private readonly onDisk: ReadonlySet<number>,
    private readonly giveBack: (buf: Buffer) => void,
  ) {
    this.parts = Math.max(1, Math.ceil(size / partSize));
    this.onDisk = new Set(onDisk);
  }

  /** Resolves to true once part i may start (i − next < window), false when stopped. */
  async room(i: number): Promise<boolean> {
    while (!this.stopped && i - this.next >= this.window) await new Promise<void>((r) => this.roomWaiters.push(r));
    return !this.stopped;
  }

  /** Part i is fetched and written: `bytes` (a view of `buf`) wait for their turn in the hash. */
  hold(i: number, bytes: Buffer, buf: Buffer): void {
    if (this.stopped) return this.giveBack(buf);
    this.held.set(i, { bytes, buf });
    this.waker?.();
  }

  stop(): void {
    this.stopped = true;
    for (const { buf } of this.held.values()) this.giveBack(buf);
    this.held.clear();
    this.waker?.();
    this.advanced();
  }

  hex(): string {
    return this.hash.digest('hex');
  }

  private advanced(): void {
    for (const r of this.roomWaiters.splice(0)) r();
  }

  async run(): Promise<void> {
    let readBuf: Buffer | undefined;
    while (this.next < this.parts) {
      if (this.stopped) return;
      const part = this.held.get(this.next);
      if (part) {
        this.hash.update(part.bytes);
        this.held.delete(this.next);
        this.giveBack(part.buf);
      } else if (this.onDisk.has(this.next)) {
        readBuf ??= Buffer.allocUnsafe(Math.min(4 * 1024 * 1024, Math.max(1, this.size)));
        const start = this.next * this.partSize;
        const end = Math.min(this.size, start + this.partSize);
        for (let at = start; at < end; ) {
          const { bytesRead } = await this.fh.read(readBuf, 0, Math.min(readBuf.length, end - at), at);
          if (bytesRead === 0) throw new Error(`internal: the partial file ended at ${at} of ${this.size} bytes`);
          this.hash.update(readBuf.subarray(0, bytesRead));
          at += bytesRead;
        }
        if (this.stopped) return;
      } else {
        await new Promise<void>((resolve) => (this.waker = resolve));
        this.waker = undefined;
        continue;
      }
      this.next++;
      this.advanced();
    }
  }
}

function partLength(i: number, size: number, partSize: number): number {
  return Math.min(partSize, size - i * partSize);
}

async function readRecord(file: string): Promise<PartialRecord | undefined> {
  try {
    const v = JSON.parse(await readFile(file, 'utf8')) as PartialRecord;
    return typeof v.etag === 'string' && Array.isArray(v.done) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Atomic: a kill mid-write leaves the previous record, never half of one. */
async function writeRecord(file: string, r: PartialRecord): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, JSON.stringify(r));
  await rename(tmp, file);
}

/**
 * One process at a time writes a given partial file: `<partial>.lock` holds the owner's pid. A
 * lock whose process is gone (killed) is taken over; while its owner lives, this download uses a
 * private partial of its own (correct, just not resumable).
 */
async function lockPartial(partial: string): Promise<{ partial: string; release: () => Promise<void> }> {
  const lock = `${partial}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(lock, String(process.pid), { flag: 'wx' });
      return { partial, release: () => rm(lock, { force: true }) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(await readFile(lock, 'utf8').catch(() => ''));
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner)) break;
      await rm(lock, { force: true });
    }
  }
  const mine = `${partial}.${process.pid}.${randomBytes(4).toString('hex')}`;
  return {
    partial: mine,
    release: async () => {
      await rm(mine, { force: true });
      await rm(`${mine}.json`, { force: true });
    },
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
