import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

/**
 * Writing downloaded blobs with O_DIRECT, from page-aligned part buffers.
 *
 * Why (bench/README.md, measure 11): a buffered write copies every byte into fresh page-cache
 * pages. On a VM whose balloon reports free pages to the host (virtio-balloon free page
 * reporting), each of those pages is first faulted in at the host inside that kernel copy: a
 * 2 GiB pull spent 77% of its samples in `copy_folio_from_iter_atomic`, 5–24 s of sys time that
 * varied from run to run. O_DIRECT skips the page cache: 2 GiB in 8 MiB writes took 0.06 s sys
 * instead of 4.8–12.4 s. Beyond that VM it is what a multi-GB model download should do anyway: it
 * does not evict the node's page cache (the model server's hot pages) for bytes nobody reads soon.
 *
 * O_DIRECT needs the buffer address, the file offset and the length to be multiples of the
 * logical block size (4096 covers every common device). A Buffer from Buffer.allocUnsafe is
 * malloc'd (a 16-byte offset into its page: EINVAL); the memory of a WebAssembly.Memory is
 * mmap'd, so offset 0 of it is page-aligned.
 */
export const DIRECT_ALIGN = 4096;

const WASM_PAGE = 64 * 1024;
/** Largest WebAssembly.Memory V8 gives (4 GiB − 64 KiB, memory32): bigger parts are not aligned. */
const MAX_ALIGNED_BYTES = 65535 * WASM_PAGE;

/** The global WebAssembly.Memory (the project's `lib` has no DOM/wasm typings; only this is used). */
const WasmMemory = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum?: number }) => { buffer: ArrayBuffer } } }).WebAssembly.Memory;

/** A buffer of `size` bytes at a page-aligned address, or undefined when none can be had. */
export function alignedBuffer(size: number): Buffer | undefined {
  const pages = Math.max(1, Math.ceil(size / WASM_PAGE));
  if (pages * WASM_PAGE > MAX_ALIGNED_BYTES) return undefined;
  try {
    return Buffer.from(new WasmMemory({ initial: pages, maximum: pages }).buffer, 0, size);
  } catch {
    return undefined; // out of address space for wasm memories: the caller writes buffered
  }
}

/**
 * Part buffers of one download, reused: at most `max` exist at once (the caller bounds how many it
 * holds), each page-aligned when the platform allows it (`aligned` says whether all were).
 */
export class PartBuffers {
  private readonly free: Buffer[] = [];
  private made = 0;
  /** Buffers taken and not yet given back, and the most at once (for tests: the memory bound). */
  held = 0;
  peak = 0;
  aligned = true;
  constructor(
    /** Bytes per buffer: the part size rounded up to DIRECT_ALIGN (a last partial part fits). */
    readonly size: number,
    readonly max: number,
  ) {}

  take(): Buffer {
    let buf = this.free.pop();
    if (!buf) {
      if (this.made >= this.max) throw new Error(`internal: more than ${this.max} part buffers asked for at once`);
      buf = alignedBuffer(this.size);
      if (!buf) {
        this.aligned = false;
        buf = Buffer.allocUnsafe(this.size);
      }
      this.made++;
    }
    this.held++;
    this.peak = Math.max(this.peak, this.held);
    return buf;
  }

  give(buf: Buffer): void {
    this.held--;
    this.free.push(buf);
  }
}

/**
 * `path` opened for writing with O_DIRECT, or undefined when the file system refuses it (EINVAL:
 * tmpfs before Linux 6.6, some FUSE and overlay mounts; absent flag: not Linux).
 */
export async function openDirect(path: string): Promise<FileHandle | undefined> {
  const flag = (constants as { O_DIRECT?: number }).O_DIRECT;
  if (flag === undefined) return undefined;
  try {
    return await open(path, constants.O_WRONLY | flag);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') return undefined;
    throw err;
  }
}

/** Every byte of `buf` at `position` (positional writes may be short). */
export async function writeAll(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let off = 0; off < buf.length; ) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, position + off);
    off += bytesWritten;
  }
}

/**
 * Writes parts of one file: through the O_DIRECT handle when the part is aligned (offset and
 * buffer; a tail that is not a whole block goes through the buffered handle, into its own
 * block, so no page is written both ways), else buffered. A direct write the device refuses
 * (EINVAL: an alignment it wants larger than 4096) switches this writer to buffered for good.
 * Counts the bytes written each way: tests and the bench read which path ran, not guess it.
 */
export class PartWriter {
  readonly bytes = { direct: 0, buffered: 0 };
  constructor(
    private readonly buffered: FileHandle,
    private direct: FileHandle | undefined,
  ) {}

  get usesDirect(): boolean {
    return this.direct !== undefined;
  }

  async write(buf: Buffer, position: number, aligned: boolean): Promise<void> {
    const whole = this.direct && aligned && position % DIRECT_ALIGN === 0 ? buf.length - (buf.length % DIRECT_ALIGN) : 0;
    if (whole > 0) {
      try {
        await writeAll(this.direct!, buf.subarray(0, whole), position);
        this.bytes.direct += whole;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
        await this.close();
        return this.write(buf, position, false);
      }
    }
    if (whole < buf.length) {
      await writeAll(this.buffered, buf.subarray(whole), position + whole);
      this.bytes.buffered += buf.length - whole;
    }
  }

  async close(): Promise<void> {
    const d = this.direct;
    this.direct = undefined;
    await d?.close().catch(() => undefined);
  }
}

/** Bytes gathered before each O_DIRECT write of a sequential sink (one aligned buffer per sink). */
const SINK_CHUNK = 8 * 1024 * 1024;

/**
 * A new file (created exclusively, 0600) written front to back with O_DIRECT: the stream's chunks
 * are gathered into one page-aligned buffer and written a full buffer at a time (so every offset is
 * aligned); the last bytes that are not a whole block go through the page cache. For blobs
 * streamed into the blob cache (a small or single-range pull, a safetensors file put together
 * from its tensors): the same reason as ranged parts (see the top of this file).
 * `writes` says how many bytes went each way.
 */
export class DirectFileSink extends Writable {
  private fh: FileHandle | undefined;
  private writer: PartWriter | undefined;
  private buf: Buffer | undefined;
  private fill = 0;
  private at = 0;
  constructor(
    private readonly file: string,
    /** 'wx': a new file only; 'w': replace (a fetch retried from its start). */
    private readonly flags: 'wx' | 'w' = 'wx',
  ) {
    super({ highWaterMark: 1024 * 1024 });
  }

  get writes(): { direct: number; buffered: number } {
    return { ...(this.writer?.bytes ?? { direct: 0, buffered: 0 }) };
  }

  override _construct(callback: (err?: Error | null) => void): void {
    (async () => {
      this.fh = await open(this.file, this.flags, 0o600);
      this.buf = alignedBuffer(SINK_CHUNK);
      this.writer = new PartWriter(this.fh, this.buf ? await openDirect(this.file) : undefined);
      this.buf ??= Buffer.allocUnsafe(SINK_CHUNK);
    })().then(() => callback(), callback);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.take(chunk).then(() => callback(), callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.flush().then(() => callback(), callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const closing = async () => {
      await this.writer?.close();
      await this.fh?.close().catch(() => undefined);
    };
    closing().then(() => callback(err), () => callback(err));
  }

  private async take(chunk: Buffer): Promise<void> {
    for (let off = 0; off < chunk.length; ) {
      const n = chunk.copy(this.buf!, this.fill, off);
      this.fill += n;
      off += n;
      if (this.fill === this.buf!.length) await this.flush();
    }
  }

  private async flush(): Promise<void> {
    if (this.fill === 0) return;
    await this.writer!.write(this.buf!.subarray(0, this.fill), this.at, true);
    this.at += this.fill;
    this.fill = 0;
  }
}
