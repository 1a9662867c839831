import { createReadStream, createWriteStream } from 'node:fs';
import { link, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomUUID } from 'node:crypto';
import { removeOnInterrupt } from '../cli/cleanup.js';
import { IntegrityError, NotFoundError } from '../cli/errors.js';
import { HashTap } from '../bundle/tar-io.js';
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
    await mkdir(path.join(this.root, 'tmp'), { recursive: true });
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

  async putBlob(digest: string, size: number, body: Readable, onBytes?: (n: number) => void): Promise<void> {
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
    const target = this.p(refKey(ref.name, ref.version));
    await mkdir(path.dirname(target), { recursive: true });
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
    await mkdir(path.dirname(target), { recursive: true });
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
