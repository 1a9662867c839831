import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { LimitFunction } from 'p-limit';
import { IntegrityError } from '../core/errors.js';
import { hashFile } from '../bundle/hash.js';
import { wholeFileDigest, type ManifestPart, type SplitFile } from '../bundle/manifest.js';
import { devNull, HashTap } from '../bundle/tar-io.js';
import { STALE_TEMP_MS, type BlobCache } from './blob-cache.js';
import { PartIndex } from './part-index.js';
import { DirectFileSink } from './direct-io.js';
import { mkdirs } from '../util/local-io.js';
import type { Progress } from '../core/progress.js';

/** What pulling a split file needs from its caller (the store's retrying blob fetch, limits, progress). */
export interface SplitPullDeps {
  storeUrl: string;
  /** Stream a blob from the store through `consume`, retrying cut streams (bundles.ts withBlob). */
  fetch: (digest: string, consume: (body: Readable) => Promise<void>) => Promise<void>;
  /** Shared by every part of every split file of the pull: bounds the parts in flight. */
  partLimit: LimitFunction;
  progress: Progress;
  /** How to mend a store whose blob is corrupt (named in the error). */
  corruptHint: string;
  cache?: BlobCache | undefined;
}

/** "tensor a" / "tensors a, b, …" / "header": what a part of a split file holds. */
export function partLabel(part: ManifestPart): string {
  if (part.tensors.length === 0) return 'header';
  const names = part.tensors.map((t) => t.name);
  return `tensor${names.length > 1 ? 's' : ''} ${names.slice(0, 8).join(', ')}${names.length > 8 ? `, … (${names.length})` : ''}`;
}

function corruptPart(deps: SplitPullDeps, file: SplitFile, part: ManifestPart, actual: string, bytes: number, where: string): IntegrityError {
  return new IntegrityError(`${file.path}: the blob of ${partLabel(part)} (${part.blob}) ${where} is corrupt: its ${bytes} bytes hash to ${actual}`, {
    hint: deps.corruptHint,
    details: { file: file.path, tensors: part.tensors.map((t) => t.name), blob: part.blob, actual, store: deps.storeUrl },
  });
}

/** Parts listed once each (a file may hold the same bytes twice: identical tensors share a blob). */
function uniqueParts(file: SplitFile): ManifestPart[] {
  return [...new Map(file.parts.map((p) => [p.blob, p])).values()];
}

/**
 * Put a split file (safetensors stored as header + tensor blobs) at `dest`, byte for byte, and
 * check its own SHA-256 from the manifest.
 *
 * With the blob cache: when the reassembled file is cached (under its own SHA-256: a prompt-only
 * change of the bundle) it is hard-linked and no part is touched; otherwise the parts that some
 * cached file holds (found through the part index: an earlier version) are read from there, only
 * the others are fetched (a fine-tune: its changed tensors), and the file is put together into the
 * cache, verified as it goes in, then linked (read-only). Without the cache,
 * the parts are written at their offsets of `dest` (verified one by one), then `dest` is re-hashed.
 * Memory stays constant: every byte streams through 1 MiB buffers, whatever a tensor's size.
 */
export async function pullSplitFile(deps: SplitPullDeps, file: SplitFile, dest: string): Promise<void> {
  await mkdirs(path.dirname(dest));
  if (deps.cache) return pullThroughCache(deps, deps.cache, file, dest);
  const offsets: number[] = [];
  file.parts.reduce((at, p) => (offsets.push(at), at + p.size), 0);
  await (await open(dest, 'wx', file.executable ? 0o755 : 0o644)).close();
  await settleAll(
    file.parts.map((part, i) =>
      deps.partLimit(() =>
        deps.fetch(part.blob, async (body) => {
          const tap = new HashTap((n) => deps.progress.advance(n));
          await pipeline(body, tap, createWriteStream(dest, { flags: 'r+', start: offsets[i]! }));
          if (`sha256:${tap.hex()}` !== part.blob || tap.bytes !== part.size) throw corruptPart(deps, file, part, `sha256:${tap.hex()}`, tap.bytes, `in ${deps.storeUrl}`);
        }),
      ),
    ),
  );
  const whole = await hashFile(dest);
  if (whole.sha256 !== file.sha256 || whole.size !== file.size) throw wholeMismatch(file, whole.sha256, whole.size);
}

function wholeMismatch(file: SplitFile, actual: string, size: number): IntegrityError {
  return new IntegrityError(`${file.path}: its ${file.parts.length} parts put together (${size} bytes) hash to sha256:${actual}, not the file's sha256:${file.sha256} the manifest records`, {
    hint: 'the manifest does not describe its own parts: push the bundle again from its source',
    details: { file: file.path, expected: file.sha256, actual },
  });
}

/** Where a part's bytes come from when a split file is put together in the cache. */
type PartSource = { kind: 'cached-file'; path: string; start: number } | { kind: 'fetched'; path: string };

async function pullThroughCache(deps: SplitPullDeps, cache: BlobCache, file: SplitFile, dest: string): Promise<void> {
  const whole = wholeFileDigest(file);
  const index = new PartIndex(cache.root);
  const assemble = async () => {
    // Parts held by a cached file (an earlier version: a fine-tune keeps most tensors) are read
    // from there; the others are fetched, verified, into a private temp dir, not the cache: once
    // the file is put together they live inside it (1× on disk), found again through the index.
    // Beside the cache (same file system), not in its tmp/ (whose sweep removes files, not directories).
    const stagingRoot = await ensureDir(path.join(cache.root, 'staging'));
    await sweepStaleStaging(stagingRoot);
    const staging = await mkdtemp(path.join(stagingRoot, 'parts-'));
    // Each cached file is checked once per assembly (a small one is re-hashed in full by has()).
    const checked = new Map<string, Promise<boolean>>();
    const intact = (digest: string, size: number) => {
      if (!checked.has(digest)) checked.set(digest, cache.has(digest, size));
      return checked.get(digest)!;
    };
    try {
      const sources = new Map<string, PartSource>();
      await settleAll(
        uniqueParts(file).map((part) =>
          deps.partLimit(async () => {
            const loc = await index.find(part.blob, part.size);
            if (loc && (await intact(loc.file, loc.fileSize))) {
              sources.set(part.blob, { kind: 'cached-file', path: cache.pathOf(loc.file), start: loc.offset });
              return deps.progress.advance(part.size);
            }
            const to = path.join(staging, part.blob.slice('sha256:'.length));
            await deps.fetch(part.blob, async (body) => {
              const tap = new HashTap((n) => deps.progress.advance(n));
              // O_DIRECT, as every blob a pull writes (direct-io.ts); 'w': a retried fetch starts over.
              await pipeline(body, tap, new DirectFileSink(to, 'w'));
              if (`sha256:${tap.hex()}` !== part.blob || tap.bytes !== part.size) throw corruptPart(deps, file, part, `sha256:${tap.hex()}`, tap.bytes, `in ${deps.storeUrl}`);
            });
            sources.set(part.blob, { kind: 'fetched', path: to });
          }),
        ),
      );
      try {
        await cache.insert(whole, file.size, Readable.from(concatenate(file.parts, sources)));
      } catch (err) {
        if (!(err instanceof IntegrityError)) throw err;
        // Every fetched part was verified; a cached file changed since it entered the cache, or the
        // manifest does not describe its parts: find which part, to name its tensor.
        for (const part of uniqueParts(file)) {
          const got = await hashSource(sources.get(part.blob)!, part.size).catch(() => 'nothing (unreadable)');
          if (got !== part.blob) throw corruptPart(deps, file, part, got, part.size, `as read from the blob cache ${cache.root}`);
        }
        throw wholeMismatch(file, String(err.details.actual ?? '').replace(/^sha256:/, ''), file.size);
      }
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
    let offset = 0;
    const located = file.parts.map((p) => {
      const loc = { digest: p.blob, file: whole, fileSize: file.size, offset, size: p.size };
      offset += p.size;
      return loc;
    });
    await index.record(located);
  };
  if (await cache.has(whole, file.size)) deps.progress.advance(file.size);
  else await assemble();
  await cache.materialise(whole, dest, file.executable).catch(async (err: unknown) => {
    // Evicted by another process between the check and the link: put it together again, once.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await assemble();
    await cache.materialise(whole, dest, file.executable);
  });
}

/**
 * Staging dirs of pulls that were killed (SIGKILL, power loss) would fill the disk: remove those
 * untouched for STALE_TEMP_MS (a pull still running writes into its dir, keeping it fresh).
 */
async function sweepStaleStaging(root: string): Promise<void> {
  const now = Date.now();
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const dir = path.join(root, name);
    const st = await stat(dir).catch(() => undefined);
    if (st && now - st.mtimeMs > STALE_TEMP_MS) await rm(dir, { recursive: true, force: true });
  }
}

async function ensureDir(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  return dir;
}

function rangeOf(source: PartSource, size: number): Readable {
  const start = source.kind === 'cached-file' ? source.start : 0;
  return createReadStream(source.path, { start, end: start + size - 1, highWaterMark: 1024 * 1024 });
}

async function hashSource(source: PartSource, size: number): Promise<string> {
  const tap = new HashTap();
  await pipeline(rangeOf(source, size), tap, devNull());
  return `sha256:${tap.hex()}`;
}

/** The parts' bytes in file order, 1 MiB at a time, from where each one is. */
async function* concatenate(parts: ManifestPart[], sources: Map<string, PartSource>): AsyncGenerator<Buffer> {
  for (const part of parts) {
    if (part.size === 0) continue;
    for await (const chunk of rangeOf(sources.get(part.blob)!, part.size)) yield chunk as Buffer;
  }
}

/**
 * Promise.all that waits for every task to stop before it rejects: a failed part must not let the
 * caller remove a directory another part is still being written into (ENOTEMPTY would then hide
 * the real error).
 */
async function settleAll(tasks: Array<Promise<unknown>>): Promise<void> {
  const settled = await Promise.allSettled(tasks);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
