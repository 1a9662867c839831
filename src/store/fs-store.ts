import { createReadStream, createWriteStream } from 'node:fs';
import { link, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomUUID } from 'node:crypto';
import { removeOnInterrupt } from '../core/cleanup.js';
import { IntegrityError, NotFoundError } from '../core/errors.js';
import { HashTap } from '../bundle/tar-io.js';
import { asLocalIO, mkdirs } from '../util/local-io.js';
import { blobKey, CorruptRefError, manifestKey, parseRefRecord, refKey, type BundleStore, type CreateRefResult, type RefRecord } from './store.js';

/** Temp files older than this are leftovers of killed pushes. */
const STALE_TEMP_MS = 24 * 60 * 60 * 1000;

/**
 * A store in a local directory (the embedded default). Every write goes to `tmp/` first, is
 * fsynced, then renamed (blobs, manifests) or hard-linked (refs: link() fails if the target
 * exists, which is an atomic exclusive create of a complete file) into place.
 */
export class FsStore implements BundleStore {
  readonly url: string;
  constructor(readonly root: string) {
    this.url = pathToFileURL(root).href;
  }

  private p(key: string): string {
    return path.join(this.root, ...key.split('/'));
  }

  private swept = false;

  private async tempFile(): Promise<string> {
    await mkdirs(path.join(this.root, 'tmp'));
    if (!this.swept) {
      this.swept = true;
      await this.sweepStaleTemp();
    }
    const file = path.join(this.root, 'tmp', `${process.pid}-${randomUUID()}`);
    removeOnInterrupt(file);
    return file;
  }

  /**
   * Remove temp files left by pushes that were killed (SIGKILL, power loss) more than a day ago.
   * They were never visible as blobs or refs; this only gives the disk space back.
   */
  private async sweepStaleTemp(): Promise<void> {
    const dir = path.join(this.root, 'tmp');
    const cutoff = Date.now() - STALE_TEMP_MS;
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const file = path.join(dir, name);
      const st = await stat(file).catch(() => undefined);
      if (st && st.mtimeMs < cutoff) await rm(file, { force: true });
    }
  }

  async hasBlob(digest: string, size: number): Promise<boolean> {
    try {
      return (await stat(this.p(blobKey(digest)))).size === size;
    } catch {
      return false;
    }
  }

  /** A full or read-only disk under the store is named as such (never taken for a store fault). */
  async putBlob(digest: string, size: number, body: Readable, onBytes?: (n: number) => void): Promise<void> {
    return asLocalIO(`storing blob ${digest} in ${this.url}`, this.root, () => this.writeBlob(digest, size, body, onBytes));
  }

  private async writeBlob(digest: string, size: number, body: Readable, onBytes?: (n: number) => void): Promise<void> {
    // An error of `body` before the pipeline below is attached (a source file gone) must reject
    // this call, not crash the process as an unhandled 'error' event; pipeline still sees it.
    body.once('error', () => undefined);
    const tmp = await this.tempFile();
    try {
      const tap = new HashTap(onBytes);
      await pipeline(body, tap, createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
      const actual = `sha256:${tap.hex()}`;
      if (actual !== digest || tap.bytes !== size) {
        throw new IntegrityError(`blob ${digest} changed while it was being stored: its bytes now hash to ${actual} (${tap.bytes} bytes)`, {
          hint: 'a source file was modified during the push; run the command again',
          details: { blob: digest, actual },
        });
      }
      await this.commit(tmp, blobKey(digest));
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async getBlob(digest: string): Promise<Readable> {
    const file = this.p(blobKey(digest));
    try {
      await stat(file);
    } catch {
      throw new NotFoundError(`blob ${digest} is missing from ${this.url}`, { details: { blob: digest } });
    }
    return createReadStream(file, { highWaterMark: 1024 * 1024 });
  }

  async putManifest(digest: string, bytes: Buffer): Promise<void> {
    return asLocalIO(`storing manifest ${digest} in ${this.url}`, this.root, () => this.writeManifest(digest, bytes));
  }

  private async writeManifest(digest: string, bytes: Buffer): Promise<void> {
    const tmp = await this.tempFile();
    try {
      await writeDurable(tmp, bytes);
      await this.commit(tmp, manifestKey(digest));
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async getManifest(digest: string): Promise<Buffer | undefined> {
    return readIfExists(this.p(manifestKey(digest)));
  }

  async createRef(ref: RefRecord): Promise<CreateRefResult> {
    return asLocalIO(`storing ref ${ref.name}@${ref.version} in ${this.url}`, this.root, () => this.writeRef(ref));
  }

  private async writeRef(ref: RefRecord): Promise<CreateRefResult> {
    const target = this.p(refKey(ref.name, ref.version));
    await mkdirs(path.dirname(target));
    const tmp = await this.tempFile();
    try {
      await writeDurable(tmp, Buffer.from(`${JSON.stringify(ref, null, 2)}\n`));
      await link(tmp, target);
      await fsyncDir(path.dirname(target));
      return { created: true };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const existing = await this.getRef(ref.name, ref.version);
      if (!existing) throw err;
      return { created: false, existing };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async getRef(name: string, version: string): Promise<RefRecord | undefined> {
    const file = this.p(refKey(name, version));
    const bytes = await readIfExists(file);
    return bytes ? parseRefRecord(bytes, file, this.url) : undefined;
  }

  async listRefs(name?: string, onBadRef?: (err: CorruptRefError) => void): Promise<RefRecord[]> {
    const names = name ? [name] : await readdir(this.p('refs')).catch(() => [] as string[]);
    const out: RefRecord[] = [];
    for (const n of names) {
      const files = await readdir(this.p(`refs/${n}`)).catch(() => [] as string[]);
      for (const f of files) {
        if (!f.endsWith('.json')) continue;
        const file = this.p(`refs/${n}/${f}`);
        const bytes = await readIfExists(file);
        if (!bytes) continue;
        try {
          out.push(parseRefRecord(bytes, file, this.url));
        } catch (err) {
          if (!(err instanceof CorruptRefError) || !onBadRef) throw err;
          onBadRef(err);
        }
      }
    }
    return out;
  }

  /** Whether the store's directory exists (a mistyped --store path does not). */
  async exists(): Promise<boolean> {
    return stat(this.root).then((st) => st.isDirectory(), () => false);
  }

  /** fsync a finished temp file's directory entry into place (rename is atomic; same content wins). */
  private async commit(tmp: string, key: string): Promise<void> {
    const target = this.p(key);
    await mkdirs(path.dirname(target));
    const fh = await open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
    await fsyncDir(path.dirname(target));
  }
}

async function writeDurable(file: string, bytes: Buffer): Promise<void> {
  const fh = await open(file, 'wx', 0o644);
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function readIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
