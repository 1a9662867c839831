import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { LimitFunction } from 'p-limit';
import { IntegrityError } from '../core/errors.js';
import { hashFile } from '../bundle/hash.js';
import { wholeFileDigest, type ManifestPart, type SplitFile } from '../bundle/manifest.js';
import { HashTap } from '../bundle/tar-io.js';
import type { BlobCache } from '../store/blob-cache.js';
import { mkdirs } from '../util/local-io.js';
import type { Progress } from './progress.js';

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
 * change of the bundle) it is hard-linked and no part is touched; otherwise only the parts the
 * cache lacks are fetched (a fine-tune: its changed tensors), the file is put together from the
 * cached parts into the cache, verified as it goes in, then linked (read-only). Without the cache,
 * the parts are written at their offsets of `dest` (verified one by one), then `dest` is re-hashed.
 * Memory stays constant: every byte streams through 1 MiB buffers, whatever a tensor's size.
 */
export async function pullSplitFile(deps: SplitPullDeps, file: SplitFile, dest: string): Promise<void> {
  await mkdirs(path.dirname(dest));
  if (deps.cache) return pullThroughCache(deps, deps.cache, file, dest);
  const offsets: number[] = [];
  file.parts.reduce((at, p) => (offsets.push(at), at + p.size), 0);
  await (await open(dest, 'wx', file.executable ? 0o755 : 0o644)).close();
  await Promise.all(
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

async function pullThroughCache(deps: SplitPullDeps, cache: BlobCache, file: SplitFile, dest: string): Promise<void> {
  const whole = wholeFileDigest(file);
  const assemble = async () => {
    await Promise.all(
      uniqueParts(file).map((part) =>
        deps.partLimit(async () => {
          if (await cache.has(part.blob, part.size)) return deps.progress.advance(part.size);
          try {
            await deps.fetch(part.blob, (body) => cache.insert(part.blob, part.size, body, (n) => deps.progress.advance(n)).then(() => undefined));
          } catch (err) {
            if (!(err instanceof IntegrityError) || typeof err.details.actual !== 'string') throw err;
            throw corruptPart(deps, file, part, err.details.actual, part.size, `in ${deps.storeUrl}`);
          }
        }),
      ),
    );
    try {
      await cache.insert(whole, file.size, Readable.from(concatenate(cache, file.parts)));
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
      // Every part was verified when it entered the cache: find the one that changed since.
      for (const part of uniqueParts(file)) {
        const h = await hashFile(cache.pathOf(part.blob)).catch(() => undefined);
        if (!h || `sha256:${h.sha256}` !== part.blob) throw corruptPart(deps, file, part, h ? `sha256:${h.sha256}` : 'nothing (missing)', h?.size ?? 0, `in the blob cache ${cache.root}`);
      }
      throw wholeMismatch(file, String(err.details.actual ?? '').replace(/^sha256:/, ''), file.size);
    }
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

/** The parts' cached bytes in file order, 1 MiB at a time. */
async function* concatenate(cache: BlobCache, parts: ManifestPart[]): AsyncGenerator<Buffer> {
  for (const part of parts) {
    if (part.size === 0) continue;
    for await (const chunk of createReadStream(cache.pathOf(part.blob), { highWaterMark: 1024 * 1024 })) yield chunk as Buffer;
  }
}
