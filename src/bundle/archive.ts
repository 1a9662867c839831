import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash, type Hash } from 'node:crypto';
// tar is imported where it is used (writeArchive): `bundle pack` without --output never needs it.
import type { Parser, ReadEntry } from 'tar';
import { removeOnInterrupt } from '../core/cleanup.js';
import { IntegrityError, UsageError } from '../core/errors.js';
import { decodeManifest, describeBlob, filesOfBlob, hexOf, type EncodedManifest, type Manifest } from './manifest.js';
import { bundleFileMatches, makeTempDir, type BundleSource } from './source.js';
import { checkTarBlob, forEachTarEntry, HashTap } from './tar-io.js';

/**
 * The air-gapped archive: one deterministic tar holding `manifest.json` (the canonical manifest
 * bytes, so the archive's digest is sha256(manifest.json)) followed by `blobs/sha256/<hex>` for
 * every blob, sorted by digest. `push`, `verify` and `inspect` read it like a directory.
 */
export const ARCHIVE_MANIFEST = 'manifest.json';
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

/** Every blob an archive holds: the components', then bundle.yaml as written when the manifest names it. */
function archivedBlobs(manifest: Manifest): Array<{ digest: string; size: number }> {
  const blobs: Array<{ digest: string; size: number }> = [...manifest.blobs];
  const file = manifest.bundleFile;
  if (file && !blobs.some((b) => b.digest === file.digest)) blobs.push(file);
  return blobs.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
}

function blobEntryName(digest: string): string {
  return `blobs/sha256/${hexOf(digest)}`;
}

/** Write `source` as an archive at `outFile`, atomically (temp file + rename). */
export async function writeArchive(source: BundleSource, outFile: string): Promise<{ size: number }> {
  const staging = await makeTempDir('archive');
  const partial = `${outFile}.partial-${process.pid}`;
  const forget = removeOnInterrupt(partial);
  try {
    await writeFile(path.join(staging, ARCHIVE_MANIFEST), source.encoded.bytes, { mode: 0o644 });
    await mkdir(path.join(staging, 'blobs', 'sha256'), { recursive: true });
    const names = [ARCHIVE_MANIFEST];
    for (const blob of archivedBlobs(source.encoded.manifest)) {
      const local = source.localBlobPath(blob.digest);
      // A part of a split file has no file of its own: its range is copied into the staging dir.
      if (local) await symlink(local, path.join(staging, blobEntryName(blob.digest)));
      else await pipeline(await source.openBlob(blob.digest), createWriteStream(path.join(staging, blobEntryName(blob.digest)), { flags: 'wx', mode: 0o600 }));
      names.push(blobEntryName(blob.digest));
    }
    const tap = new HashTap();
    const tar = await import('tar');
    const check = new ArchiveCheck(source.encoded.manifest, outFile, tar.Parser);
    const pack = tar.create(
      {
        cwd: staging,
        portable: true,
        mtime: new Date(0),
        noDirRecurse: true,
        follow: true,
        strict: true,
        // Blobs are data: one mode for all, whatever file they were read from.
        onWriteEntry: (entry) => {
          if (entry.stat) entry.stat.mode = (entry.stat.mode & ~0o7777) | 0o644;
        },
      },
      names,
    );
    await pipeline(pack as unknown as Readable, tap, check, createWriteStream(partial, { mode: 0o644 }));
    check.assertMatches();
    await rename(partial, outFile);
    forget();
    return { size: tap.bytes };
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * Hashes every entry of the archive as it is written (a tar parser fed the same bytes that go to
 * disk, no second read) so that what the archive holds is checked against the manifest it claims:
 * a large file changed between `pack` hashing it and the archive reading it again would otherwise
 * be written silently, making a corrupt archive.
 */
class ArchiveCheck extends Transform {
  private readonly parser: Parser;
  private readonly seen = new Map<string, { sha256: string; size: number }>();
  private parseError: Error | undefined;

  constructor(
    private readonly manifest: Manifest,
    private readonly outFile: string,
    TarParser: typeof Parser,
  ) {
    super();
    this.parser = new TarParser({
      strict: true,
      onReadEntry: (entry: ReadEntry) => {
        const hash: Hash = createHash('sha256');
        let size = 0;
        entry.on('data', (c: Buffer) => {
          hash.update(c);
          size += c.length;
        });
        entry.on('end', () => this.seen.set(entry.path, { sha256: hash.digest('hex'), size }));
      },
    });
    this.parser.on('error', (err: Error) => (this.parseError ??= err));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.parser.write(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.parser.end(() => cb());
  }

  /** IntegrityError naming the file(s) whose bytes in the archive differ from the manifest. */
  assertMatches(): void {
    if (this.parseError) throw new IntegrityError(`internal: the archive written to ${this.outFile} does not parse: ${this.parseError.message}`);
    const changed: string[] = [];
    for (const b of archivedBlobs(this.manifest)) {
      const got = this.seen.get(blobEntryName(b.digest));
      if (got && `sha256:${got.sha256}` === b.digest && got.size === b.size) continue;
      changed.push(`${describeBlob(this.manifest, b.digest)} (${got ? `now ${got.size} bytes hashing to sha256:${got.sha256}` : 'missing'}, expected ${b.digest})`);
    }
    if (changed.length > 0) {
      throw new IntegrityError(`${changed.length === 1 ? 'a file' : 'files'} changed while the archive was being written: ${changed.join('; ')}; no archive was written`, {
        hint: 'something is still writing to the bundle directory: let it finish, then pack again',
        details: { output: this.outFile, changed },
      });
    }
  }
}

async function readBounded(stream: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream) {
    n += (chunk as Buffer).length;
    if (n > limit) throw new IntegrityError(`${what} is larger than ${limit} bytes; not a modelctl manifest`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Open an archive: read its manifest, then stream every blob into a temp directory while checking
 * its SHA-256 and size (and, for tar blobs, every file inside). Anything missing, extra or altered
 * is an IntegrityError naming the blob; nothing is left behind on failure.
 */
export async function openArchive(file: string, opts: { onBytes?: (n: number) => void } = {}): Promise<BundleSource> {
  const dir = await makeTempDir('unarchive');
  const blobPaths = new Map<string, string>();
  let encoded: EncodedManifest | undefined;
  try {
    await forEachTarEntry(openFile(file), `archive ${file}`, async (entry) => {
      if (!encoded) {
        if (entry.path !== ARCHIVE_MANIFEST || entry.type !== 'File') {
          throw new UsageError(`${file} is not a modelctl archive: its first entry is "${entry.path}", expected ${ARCHIVE_MANIFEST}`, {
            hint: 'create archives with `modelctl bundle pack <dir> --output <file>`',
          });
        }
        encoded = decodeManifest(await readBounded(entry as unknown as Readable, MAX_MANIFEST_BYTES, `${file}: manifest.json`), undefined, file);
        return;
      }
      const match = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(entry.path);
      const digest = match ? `sha256:${match[1]}` : undefined;
      const blob = archivedBlobs(encoded.manifest).find((b) => b.digest === digest);
      if (!digest || !blob || blobPaths.has(digest) || entry.type !== 'File') {
        throw new IntegrityError(`archive ${file} holds an unexpected entry "${entry.path}"`, { details: { archive: file, entry: entry.path } });
      }
      const dest = path.join(dir, hexOf(digest));
      const tap = new HashTap(opts.onBytes);
      await pipeline(entry as unknown as Readable, tap, createWriteStream(dest, { flags: 'wx', mode: 0o600 }));
      if (`sha256:${tap.hex()}` !== digest || tap.bytes !== blob.size) {
        throw new IntegrityError(`archive ${file}: blob ${digest} is corrupt (its bytes hash to sha256:${tap.hex()})`, {
          details: { archive: file, blob: digest, actual: `sha256:${tap.hex()}` },
        });
      }
      blobPaths.set(digest, dest);
    });
    if (!encoded) throw new UsageError(`${file} is empty, not a modelctl archive`);
    const manifest = encoded.manifest;
    const missing = archivedBlobs(manifest).filter((b) => !blobPaths.has(b.digest));
    if (missing.length > 0) {
      throw new IntegrityError(`archive ${file} is missing ${missing.length} blob(s): ${missing.map((b) => b.digest).join(', ')}`, {
        details: { archive: file, missing: missing.map((b) => b.digest) },
      });
    }
    const yamlBlob = manifest.bundleFile;
    if (yamlBlob && !bundleFileMatches(await readFile(blobPaths.get(yamlBlob.digest)!), manifest)) {
      throw new IntegrityError(`archive ${file}: its bundle.yaml (${yamlBlob.digest}) does not describe the archive's manifest`, {
        details: { archive: file, blob: yamlBlob.digest },
      });
    }
    for (const b of manifest.blobs) {
      if (b.kind === 'tar') await checkTarBlob(createReadStream(blobPaths.get(b.digest)!), b.digest, filesOfBlob(manifest, b.digest));
    }
    const done = encoded;
    return {
      origin: file,
      encoded: done,
      openBlob: async (digest) => createReadStream(blobPaths.get(digest)!, { highWaterMark: 1024 * 1024 }),
      localBlobPath: (digest) => blobPaths.get(digest),
      close: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Read only the manifest of an archive (its first entry): cheap, for `inspect`. */
export async function readArchiveManifest(file: string): Promise<EncodedManifest> {
  let encoded: EncodedManifest | undefined;
  const input = openFile(file);
  try {
    await forEachTarEntry(input, `archive ${file}`, async (entry) => {
      if (encoded) {
        entry.resume();
        input.destroy(); // we have what we need; stop reading the blobs
        return;
      }
      if (entry.path !== ARCHIVE_MANIFEST) {
        throw new UsageError(`${file} is not a modelctl archive: its first entry is "${entry.path}", expected ${ARCHIVE_MANIFEST}`);
      }
      encoded = decodeManifest(await readBounded(entry as unknown as Readable, MAX_MANIFEST_BYTES, `${file}: manifest.json`), undefined, file);
    });
  } catch (err) {
    if (!encoded) throw err;
  }
  if (!encoded) throw new UsageError(`${file} is empty, not a modelctl archive`);
  return encoded;
}

function openFile(file: string): Readable {
  return createReadStream(file, { highWaterMark: 1024 * 1024 });
}
