import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Where a tensor part's bytes can be read without fetching them: a range of a reassembled file the
 * blob cache holds (safetensors split by tensor). One small JSON file per part digest under
 * `<cache>/parts/<hex>.json`: `{file, offset, size}`, written atomically, last writer wins (any
 * cached file holding the bytes will do). An entry is only a hint: the caller checks that the file
 * is still intact in the cache before reading it, and every byte read is hashed again (the
 * reassembled file must hash to its own digest before it enters the cache).
 *
 * This is what keeps a split file at 1× on disk: its parts are not kept as blobs of their own once
 * the file is put together, yet the next version (a fine-tune) still fetches only its changed parts.
 */
export interface PartLocation {
  /** sha256:<hex> of the cached file that holds the part. */
  file: string;
  fileSize: number;
  offset: number;
  size: number;
}

export class PartIndex {
  private readonly dir: string;
  constructor(cacheRoot: string) {
    this.dir = path.join(cacheRoot, 'parts');
  }

  private entry(digest: string): string {
    return path.join(this.dir, `${digest.slice('sha256:'.length)}.json`);
  }

  async find(digest: string, size: number): Promise<PartLocation | undefined> {
    const text = await readFile(this.entry(digest), 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    try {
      const loc = JSON.parse(text) as PartLocation;
      const ok =
        /^sha256:[0-9a-f]{64}$/.test(String(loc.file)) && Number.isSafeInteger(loc.fileSize) && Number.isSafeInteger(loc.offset) && loc.offset >= 0 && loc.size === size && loc.offset + size <= loc.fileSize;
      return ok ? loc : undefined;
    } catch {
      return undefined; // a damaged entry is no hint: the part is fetched instead
    }
  }

  async record(parts: Array<{ digest: string } & PartLocation>): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    for (const p of parts) {
      const tmp = `${this.entry(p.digest)}.${process.pid}.${randomBytes(4).toString('hex')}`;
      await writeFile(tmp, JSON.stringify({ file: p.file, fileSize: p.fileSize, offset: p.offset, size: p.size } satisfies PartLocation));
      await rename(tmp, this.entry(p.digest));
    }
  }
}
