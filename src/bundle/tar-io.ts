import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
// tar is imported where it is used: `bundle pack` of large files only never needs it (~20 ms of CPU).
import type { ReadEntry } from 'tar';
import { IntegrityError, ModelctlError } from '../core/errors.js';
import { isLocalIOFailure } from '../util/local-io.js';
import type { ManifestFile } from './manifest.js';

/** Fixed mtime written into every tar entry: tar bytes depend on content only. */
const EPOCH = new Date(0);

/** A pass-through stream that hashes (and counts) what flows through it. */
export class HashTap extends Transform {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;
  constructor(private readonly onBytes?: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(chunk.length);
    cb(null, chunk);
  }
  private digestHex: string | undefined;
  /** The SHA-256 of everything that passed (call once the stream has ended; memoised). */
  hex(): string {
    this.digestHex ??= this.hash.digest('hex');
    return this.digestHex;
  }
}

/** Components whose small files add up to at most this are tarred synchronously (see below). */
const SYNC_TAR_BYTES = 256 * 1024 * 1024;

export interface TarWritten {
  /** SHA-256 and size of the tar file's bytes. */
  sha256: string;
  size: number;
  /** Every regular-file entry as stored, read back from the file written. */
  entries: Map<string, { sha256: string; size: number; mode: number }>;
}

/**
 * Write a deterministic tar of `paths` (relative to `root`, already byte-sorted and checked):
 * portable headers (no uid/gid/owner names, umask-independent modes), a fixed mtime, no directory
 * entries, symlinks followed (collectFiles has checked they stay inside the bundle). Then read it
 * back once, hashing the whole file and every entry: the manifest describes the bytes stored.
 *
 * Many small files (`totalBytes` ≤ 256 MiB) are written with node-tar's synchronous packer: for
 * 20,000 files it takes half the CPU time and a third of the memory of the streaming one (no
 * promise, stream and buffer per entry), with identical bytes. It blocks the event loop for that
 * long (about a second), so larger totals keep the streaming packer, which stays responsive.
 */
export async function writeDeterministicTar(root: string, paths: string[], outFile: string, totalBytes = Infinity): Promise<TarWritten> {
  const { create: createTar } = await import('tar');
  const options = { cwd: root, portable: true, mtime: EPOCH, noDirRecurse: true, follow: true, strict: true };
  if (totalBytes <= SYNC_TAR_BYTES) {
    createTar({ ...options, sync: true, file: outFile, mode: 0o600 }, paths);
  } else {
    const pack = createTar(options, paths);
    await pipeline(pack as unknown as Readable, createWriteStream(outFile, { flags: 'wx', mode: 0o600 }));
  }
  const tap = new HashTap();
  const entries = await hashTarEntries(through(createReadStream(outFile, { highWaterMark: 1024 * 1024 }), tap), outFile);
  return { sha256: tap.hex(), size: tap.bytes, entries };
}

/**
 * Read a tar stream entry by entry, in order, with backpressure: `onEntry` must consume the entry
 * (pipe it or resume it). Parse warnings are errors: a damaged tar never half-succeeds.
 */
export async function forEachTarEntry(input: Readable, source: string, onEntry: (entry: ReadEntry) => Promise<void>): Promise<void> {
  // Handlers run one after another, in archive order: entry N+1 waits (buffered, with
  // backpressure on the input) until the handler of entry N has finished.
  let chain: Promise<void> = Promise.resolve();
  let failure: unknown;
  const { Parser } = await import('tar');
  const parser = new Parser({
    strict: true,
    noResume: true,
    onReadEntry: (entry: ReadEntry) => {
      chain = chain
        .then(() => (failure === undefined ? onEntry(entry) : entry.resume()))
        .catch((err: unknown) => {
          failure ??= err;
          entry.resume();
          input.destroy(err instanceof Error ? err : new Error(String(err)));
        })
        .then(() => undefined);
    },
  });
  try {
    await pipeline(input, parser as unknown as NodeJS.WritableStream);
  } catch (err) {
    failure ??= err;
  }
  await chain;
  if (failure !== undefined) {
    // Our own verdicts and the local disk's failures (full, read-only) pass as they are: only a
    // tar that cannot be parsed is the archive's fault.
    if (failure instanceof ModelctlError || isLocalIOFailure(failure)) throw failure;
    throw new IntegrityError(`${source} is not a readable tar archive: ${(failure as Error).message ?? String(failure)}`, { cause: failure });
  }
}

/**
 * Check a component tar blob against the manifest entries it must hold — same set of paths,
 * regular files only, every byte matching its SHA-256 — and optionally write the files under
 * `writeRoot`. Any extra, missing, unsafe or altered entry is an IntegrityError naming the blob.
 */
export async function checkTarBlob(
  input: Readable,
  blobDigest: string,
  expected: Map<string, ManifestFile>,
  writeRoot?: string,
): Promise<void> {
  const seen = new Set<string>();
  await forEachTarEntry(input, `blob ${blobDigest}`, async (entry) => {
    const file = expected.get(entry.path);
    if (!file || seen.has(entry.path)) {
      throw new IntegrityError(`blob ${blobDigest} holds an entry "${entry.path}" the manifest does not list for it`, {
        details: { blob: blobDigest, path: entry.path },
      });
    }
    if (entry.type !== 'File' && entry.type !== 'OldFile') {
      throw new IntegrityError(`blob ${blobDigest}: entry "${entry.path}" is a ${entry.type}, not a regular file`, {
        details: { blob: blobDigest, path: entry.path },
      });
    }
    seen.add(entry.path);
    const tap = new HashTap();
    if (writeRoot) {
      const dest = path.join(writeRoot, file.path);
      await mkdir(path.dirname(dest), { recursive: true });
      await pipeline(entry as unknown as Readable, tap, createWriteStream(dest, { flags: 'wx', mode: file.executable ? 0o755 : 0o644 }));
    } else {
      await pipeline(entry as unknown as Readable, tap, devNull());
    }
    const sha256 = tap.hex();
    if (sha256 !== file.sha256 || tap.bytes !== file.size) {
      throw new IntegrityError(`blob ${blobDigest}: file ${file.path} does not match the manifest (sha256 ${sha256}, expected ${file.sha256})`, {
        details: { blob: blobDigest, path: file.path, expected: file.sha256, actual: sha256 },
      });
    }
  });
  const missing = [...expected.keys()].filter((p) => !seen.has(p));
  if (missing.length > 0) {
    throw new IntegrityError(`blob ${blobDigest} is missing ${missing.length} file(s) the manifest lists: ${missing.slice(0, 5).join(', ')}`, {
      details: { blob: blobDigest, missing },
    });
  }
}

/** List a tar's regular-file entries with their SHA-256 and size (used right after writing one). */
export async function hashTarEntries(input: Readable, source: string): Promise<Map<string, { sha256: string; size: number; mode: number }>> {
  const out = new Map<string, { sha256: string; size: number; mode: number }>();
  await forEachTarEntry(input, source, (entry) => {
    // Listeners rather than a pipeline per entry: a pipeline (and its AbortSignal) for each of
    // 20,000 small files cost more than hashing them.
    const hash = createHash('sha256');
    let size = 0;
    return new Promise<void>((resolve, reject) => {
      entry.on('data', (c: Buffer) => {
        hash.update(c);
        size += c.length;
      });
      entry.once('error', reject);
      entry.once('end', () => {
        out.set(entry.path, { sha256: hash.digest('hex'), size, mode: entry.mode ?? 0o644 });
        resolve();
      });
    });
  });
  return out;
}

/** `body.pipe(tap)` that also carries `body`'s errors (a cut download must fail, not hang). */
export function through<T extends Transform>(body: Readable, tap: T): T {
  body.once('error', (err) => tap.destroy(err));
  return body.pipe(tap);
}

/** A sink that discards what it is given (for verifying without writing). */
export function devNull(): Writable {
  return new Writable({ write: (_chunk, _enc, cb) => cb() });
}
