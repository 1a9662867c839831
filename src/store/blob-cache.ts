import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { constants as fsConstants } from 'node:fs';
import { chmod, copyFile, link, mkdir, open, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { IntegrityError, UsageError } from '../core/errors.js';
import { HashTap } from '../bundle/tar-io.js';
import { DirectFileSink } from './direct-io.js';

/** Default size bound of the cache: 20 GiB (MODELCTL_CACHE_MAX_BYTES overrides it). */
export const DEFAULT_CACHE_MAX_BYTES = 20 * 1024 ** 3;
/**
 * Cached blobs up to this size are re-hashed in full every time they are used (a few ms); larger
 * ones only get the sidecar check unless MODELCTL_CACHE_VERIFY=full. Re-hashing 2 GiB of weights
 * at every version start would cost what the cache saves.
 */
export const FULL_VERIFY_BELOW_BYTES = 16 * 1024 * 1024;

/** A temp file in the cache untouched this long belongs to a fetch that died. */
export const STALE_TEMP_MS = 6 * 60 * 60 * 1000;

/**
 * Fetch locks (one per blob, `<root>/locks/<hex>.lock`, created O_EXCL): the holder touches its lock
 * every LOCK_HEARTBEAT_MS while it fetches; a lock untouched for LOCK_STALE_MS belongs to a puller
 * that died (SIGKILL, a pod evicted mid-pull) and is broken by the next waiter. The lock only saves
 * bytes (one fetch per blob per cache): correctness never depends on it, insert() alone is safe when
 * two processes fetch the same blob (a broken-too-early lock costs one duplicate fetch, no more).
 */
export const LOCK_HEARTBEAT_MS = 2_000;
export const LOCK_STALE_MS = 30_000;
const LOCK_POLL_MS = 200;

/** What was recorded when a blob entered the cache: any write to it in place changes size or mtime. */
interface Sidecar {
  size: number;
  /** Nanoseconds, as a string: a float of milliseconds would not round-trip exactly. */
  mtimeNs: string;
  ino: string;
}

/**
 * A content-addressed cache of blobs shared by every pull and by the local runtime of one
 * MODELCTL_HOME:
 *
 *   <home>/cache/blobs/sha256/<hex>        the blob, read-only (0444), bytes hash to the name
 *   <home>/cache/meta/<hex>.json           {size, mtimeNs, ino} recorded at insert; its own
 *                                          mtime is the blob's last use (for LRU eviction)
 *   <home>/cache/tmp/                      blobs being fetched (never under a final name)
 *
 * A blob enters by being streamed to a temp file while hashed (constant memory), verified,
 * fsync'd, made 0444 and then hard-linked to its final name: link() fails with EEXIST instead of
 * replacing, so two processes fetching the same blob both succeed and the first one's inode is
 * the one every version shares (a rename would swap the inode under a version already linked).
 *
 * Version directories hard-link the cache files, so they share the inode: a model process that
 * wrote to a bundle file would change the cached blob. The files are 0444, which stops a
 * non-root process; root ignores file modes, so the cache also detects a change (size or mtime
 * differs from the sidecar, or a full re-hash for small blobs and with MODELCTL_CACHE_VERIFY=full)
 * and re-fetches the blob instead of serving it.
 *
 * The version directories themselves stay writable on purpose: creating, deleting or renaming a
 * name in them never touches a cached inode (only an in-place write does, which 0444 covers), and
 * read-only directories would make a plain `rm -rf` of a home fail for its non-root owner (the
 * Go module cache's well-known annoyance).
 */
export class BlobCache {
  readonly blobs: string;
  private readonly meta: string;
  private readonly tmp: string;

  private readonly locks: string;
  private readonly inUseDir: string;
  /** What this process holds in use (ensure()d and not yet released): eviction elsewhere keeps them. */
  private readonly using = new Set<string>();
  private inUseFile: string | undefined;
  private inUseBeat: NodeJS.Timeout | undefined;
  /** Bytes this instance fetched from the store into the cache, and bytes it found already cached. */
  readonly counts = { fetchedBytes: 0, fetchedBlobs: 0, cachedBytes: 0, cachedBlobs: 0, waitedBlobs: 0 };
  /** Bytes insert() wrote with O_DIRECT and through the page cache (direct-io.ts): which path ran. */
  readonly writes = { direct: 0, buffered: 0 };

  constructor(
    readonly root: string,
    private readonly opts: { verify?: 'full' | 'auto'; lockStaleMs?: number } = {},
  ) {
    this.blobs = path.join(root, 'blobs', 'sha256');
    this.meta = path.join(root, 'meta');
    this.tmp = path.join(root, 'tmp');
    this.locks = path.join(root, 'locks');
    this.inUseDir = path.join(root, 'inuse');
  }

  /**
   * The cache of a MODELCTL_HOME ($MODELCTL_HOME/cache), or MODELCTL_CACHE_DIR when set (the
   * Kubernetes init container: a node-level cache volume shared by every pod of the node), with
   * MODELCTL_CACHE_VERIFY from the environment.
   */
  static forHome(home: string, env: NodeJS.ProcessEnv = process.env): BlobCache {
    const root = env.MODELCTL_CACHE_DIR ? path.resolve(env.MODELCTL_CACHE_DIR) : path.join(home, 'cache');
    return new BlobCache(root, { verify: env.MODELCTL_CACHE_VERIFY === 'full' ? 'full' : 'auto' });
  }

  /**
   * Make sure the cache holds `digest` intact, calling `fetch` (which must insert() it) at most once
   * across every process sharing this cache: the first puller takes the blob's lock and fetches, the
   * others wait for the lock to go and use what it inserted. Marks the blob in use until release().
   * Returns how the blob came: 'cached' (already there), 'fetched' (by this call), 'waited' (another
   * puller fetched it while this one waited).
   */
  async ensure(digest: string, size: number, fetch: () => Promise<unknown>): Promise<'cached' | 'fetched' | 'waited'> {
    await this.markInUse(digest);
    const how = await this.ensureLocked(digest, size, fetch);
    if (how === 'fetched') {
      this.counts.fetchedBytes += size;
      this.counts.fetchedBlobs++;
    } else {
      this.counts.cachedBytes += size;
      this.counts.cachedBlobs++;
      if (how === 'waited') this.counts.waitedBlobs++;
    }
    return how;
  }

  private async ensureLocked(digest: string, size: number, fetch: () => Promise<unknown>): Promise<'cached' | 'fetched' | 'waited'> {
    if (await this.has(digest, size)) return 'cached';
    await mkdir(this.locks, { recursive: true });
    const lock = path.join(this.locks, `${hexOf(digest)}.lock`);
    const staleMs = this.opts.lockStaleMs ?? LOCK_STALE_MS;
    let waited = false;
    for (;;) {
      const held = await open(lock, 'wx').then(
        async (fh) => {
          const st = await fh.stat();
          await fh.close();
          return st.ino;
        },
        (err: NodeJS.ErrnoException) => {
          if (err.code === 'EEXIST') return undefined;
          throw err;
        },
      );
      if (held !== undefined) {
        const beat = setInterval(() => {
          const now = new Date();
          void utimes(lock, now, now).catch(() => undefined);
        }, Math.max(50, Math.floor(staleMs / 15)));
        beat.unref();
        try {
          // Another puller may have inserted it between our check and our lock.
          if (await this.has(digest, size)) return waited ? 'waited' : 'cached';
          await fetch();
          return 'fetched';
        } finally {
          clearInterval(beat);
          // Only our own lock: if a waiter judged it stale and broke it, the name may be someone else's now.
          const st = await stat(lock).catch(() => undefined);
          if (st?.ino === held) await unlink(lock).catch(() => undefined);
        }
      }
      waited = true;
      await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
      if (await this.has(digest, size)) return 'waited';
      const st = await stat(lock).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > staleMs) {
        // The holder died mid-fetch (its temp file is never under a final name): break its lock.
        const again = await stat(lock).catch(() => undefined);
        if (again?.ino === st.ino) await unlink(lock).catch(() => undefined);
      }
    }
  }

  /**
   * Record `digest` as in use by this process in `<root>/inuse/<id>.json` (touched while held), so
   * that another process's evict() never removes a blob between this one's ensure() and its copy.
   * A file untouched for LOCK_STALE_MS is a dead process's and pins nothing.
   */
  private async markInUse(digest: string): Promise<void> {
    if (this.using.has(digest)) return;
    this.using.add(digest);
    await mkdir(this.inUseDir, { recursive: true });
    await mkdir(this.tmp, { recursive: true });
    this.inUseFile ??= path.join(this.inUseDir, `${process.pid}.${randomBytes(6).toString('hex')}.json`);
    const tmp = `${path.join(this.tmp, path.basename(this.inUseFile))}.${randomBytes(4).toString('hex')}`;
    await writeFile(tmp, JSON.stringify([...this.using]));
    await rename(tmp, this.inUseFile);
    if (!this.inUseBeat) {
      const file = this.inUseFile;
      this.inUseBeat = setInterval(() => {
        const now = new Date();
        void utimes(file, now, now).catch(() => undefined);
      }, Math.max(50, Math.floor((this.opts.lockStaleMs ?? LOCK_STALE_MS) / 15)));
      this.inUseBeat.unref();
    }
  }

  /** Forget what this process held in use (call when its pull is done, copied or failed). */
  async release(): Promise<void> {
    if (this.inUseBeat) clearInterval(this.inUseBeat);
    this.inUseBeat = undefined;
    this.using.clear();
    if (this.inUseFile) await rm(this.inUseFile, { force: true });
    this.inUseFile = undefined;
  }

  /** Blobs some live process holds in use (its in-use file touched within LOCK_STALE_MS). */
  async inUse(): Promise<Set<string>> {
    const out = new Set<string>(this.using);
    const staleMs = this.opts.lockStaleMs ?? LOCK_STALE_MS;
    for (const name of await readdir(this.inUseDir).catch(() => [] as string[])) {
      const file = path.join(this.inUseDir, name);
      const st = await stat(file).catch(() => undefined);
      if (!st) continue;
      if (Date.now() - st.mtimeMs > staleMs) {
        await rm(file, { force: true }); // a dead puller's
        continue;
      }
      const list = await readFile(file, 'utf8')
        .then((t) => JSON.parse(t) as unknown)
        .catch(() => []);
      if (Array.isArray(list)) for (const d of list) if (typeof d === 'string') out.add(d);
    }
    return out;
  }

  pathOf(digest: string): string {
    return path.join(this.blobs, hexOf(digest));
  }

  private metaOf(digest: string): string {
    return path.join(this.meta, `${hexOf(digest)}.json`);
  }

  /** Whether the cache holds `digest` intact (see intact()); a hit counts as a use for LRU. */
  async has(digest: string, size: number): Promise<boolean> {
    if (!(await this.intact(digest, size))) return false;
    const now = new Date();
    await utimes(this.metaOf(digest), now, now).catch(() => undefined);
    return true;
  }

  /**
   * Stream `body` into the cache as `digest`, hashing as it goes; IntegrityError (and nothing
   * cached) when the bytes are wrong. Returns the bytes read from `body`.
   */
  async insert(digest: string, size: number, body: Readable, onBytes?: (n: number) => void): Promise<number> {
    const tmp = await this.newTemp(digest);
    try {
      const tap = new HashTap(onBytes);
      const sink = new DirectFileSink(tmp);
      await pipeline(body, tap, sink);
      this.writes.direct += sink.writes.direct;
      this.writes.buffered += sink.writes.buffered;
      const actual = `sha256:${tap.hex()}`;
      if (actual !== digest || tap.bytes !== size) {
        throw new IntegrityError(`blob ${digest} is corrupt: its ${tap.bytes} bytes hash to ${actual}`, { details: { blob: digest, actual } });
      }
      await this.commit(tmp, digest);
      return tap.bytes;
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /**
   * Insert a blob that `download(file, partial)` writes to `file` already verified (a store's
   * resumable ranged download, see BundleStore.downloadBlob). `partial` is stable per blob, in the
   * cache's tmp/, so a fetch killed half-way is resumed by the next one (or swept after STALE_TEMP_MS).
   */
  async insertDownloaded(digest: string, download: (file: string, partial: string) => Promise<unknown>): Promise<void> {
    const tmp = await this.newTemp(digest);
    try {
      await download(tmp, path.join(this.tmp, `${hexOf(digest)}.partial`));
      await this.commit(tmp, digest);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** A fresh temp file name in tmp/ (the cache's directories made, stale temp files swept). */
  private async newTemp(digest: string): Promise<string> {
    await mkdir(this.blobs, { recursive: true });
    await mkdir(this.meta, { recursive: true });
    await mkdir(this.tmp, { recursive: true });
    await this.sweepStaleTemp();
    return path.join(this.tmp, `${hexOf(digest)}.${process.pid}.${randomBytes(4).toString('hex')}`);
  }

  /** A verified temp file into place: fsync, 0444, link (never replacing a sound blob), sidecar. */
  private async commit(tmp: string, digest: string): Promise<void> {
    const file = this.pathOf(digest);
    const fh = await open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await chmod(tmp, 0o444);
    for (;;) {
      try {
        await link(tmp, file);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        // Another process put it there first (maybe still writing its sidecar): keep theirs, one
        // inode for everyone, when its bytes are right; replace it when they are not.
        if ((await sha256File(file).catch(() => undefined)) === digest) break;
        await unlink(file).catch(() => undefined);
      }
    }
    // After the link: a crash in between leaves a blob without sidecar, which the next use
    // treats as unknown, fetches again and keeps (after a full re-hash) — safe, just slower.
    await this.writeSidecar(digest);
    await syncDir(this.blobs);
  }

  /**
   * Whether the cached blob is there and unchanged since it entered: size, mtime and inode match
   * the sidecar, and (small blobs, MODELCTL_CACHE_VERIFY=full or `full`) its bytes hash to the digest.
   * A damaged entry is left for insert() to replace: removing it here could race a process that
   * has just linked a sound blob and not yet written its sidecar.
   */
  async intact(digest: string, size: number, full = false): Promise<boolean> {
    const file = this.pathOf(digest);
    const st = await stat(file, { bigint: true }).catch(() => undefined);
    if (!st) return false;
    const side = await readFile(this.metaOf(digest), 'utf8')
      .then((t) => JSON.parse(t) as Sidecar)
      .catch(() => undefined);
    let ok = !!side && st.size === BigInt(size) && side.size === size && side.mtimeNs === String(st.mtimeNs) && side.ino === String(st.ino);
    if (ok && (full || this.opts.verify === 'full' || size <= FULL_VERIFY_BELOW_BYTES)) ok = (await sha256File(file)) === digest;
    return ok;
  }

  private swept = false;

  /**
   * Temp files of fetches that were killed (SIGKILL, power loss) are never under a final name, but
   * would fill the disk: remove those untouched for STALE_TEMP_MS, once per process. A fetch still
   * running writes its file continuously, so its mtime stays fresh.
   */
  private async sweepStaleTemp(): Promise<void> {
    if (this.swept) return;
    this.swept = true;
    const now = Date.now();
    for (const name of await readdir(this.tmp).catch(() => [] as string[])) {
      const file = path.join(this.tmp, name);
      const st = await stat(file).catch(() => undefined);
      if (st && now - st.mtimeMs > STALE_TEMP_MS) await rm(file, { force: true });
    }
  }

  /** Record what the blob looks like now; atomic (a reader never sees half a sidecar). */
  private async writeSidecar(digest: string): Promise<void> {
    const st = await stat(this.pathOf(digest), { bigint: true });
    const tmp = path.join(this.tmp, `${hexOf(digest)}.json.${process.pid}.${randomBytes(4).toString('hex')}`);
    await writeFile(tmp, JSON.stringify({ size: Number(st.size), mtimeNs: String(st.mtimeNs), ino: String(st.ino) } satisfies Sidecar));
    await rename(tmp, this.metaOf(digest));
  }

  /**
   * Put the cached blob at `dest`: a hard link (no bytes copied, no extra disk), or a copy when the
   * file systems differ (EXDEV), links are refused (EPERM, EMLINK) or the file must be executable
   * (a link shares the cache file's 0444 mode). The result is read-only either way.
   */
  async materialise(digest: string, dest: string, executable = false): Promise<'link' | 'copy'> {
    const file = this.pathOf(digest);
    if (!executable) {
      try {
        await link(file, dest);
        return 'link';
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK' && code !== 'ENOTSUP') throw err;
      }
    }
    try {
      // FICLONE: a reflink where the file system shares extents (XFS, btrfs), even across mounts of
      // the same file system, where link() gives EXDEV; a plain copy elsewhere.
      await copyFile(file, dest, fsConstants.COPYFILE_FICLONE);
    } catch (err) {
      // copyFile names its source in err.path; a full or read-only disk is the destination's.
      const e = err as NodeJS.ErrnoException & { dest?: string };
      if (e.code === 'ENOSPC' || e.code === 'EROFS' || e.code === 'EDQUOT') e.path = e.dest ?? dest;
      throw err;
    }
    await chmod(dest, executable ? 0o555 : 0o444);
    return 'copy';
  }

  /** Every cached blob: digest, size, last use, and link count (1 = no version directory links it). */
  async entries(): Promise<Array<{ digest: string; size: number; usedMs: number; nlink: number }>> {
    const names = await readdir(this.blobs).catch(() => [] as string[]);
    const out = [];
    for (const hex of names) {
      const digest = `sha256:${hex}`;
      const st = await stat(path.join(this.blobs, hex)).catch(() => undefined);
      if (!st) continue;
      const used = await stat(this.metaOf(digest)).catch(() => undefined);
      out.push({ digest, size: st.size, usedMs: used?.mtimeMs ?? 0, nlink: st.nlink });
    }
    return out;
  }

  /**
   * Remove least recently used blobs until the cache holds at most `maxBytes`, never one in
   * `pinned` (the stable set and running versions) and never one a version directory still links
   * (nlink > 1): removing that name would free no disk, the version's link keeps the bytes; nor one
   * a live puller holds in use (inUse(): between its ensure() and its copy).
   */
  async evict(maxBytes: number, pinnedByCaller: ReadonlySet<string>): Promise<{ evicted: string[]; bytes: number }> {
    const pinned = new Set([...pinnedByCaller, ...(await this.inUse())]);
    const all = await this.entries();
    let total = all.reduce((n, e) => n + e.size, 0);
    const evicted: string[] = [];
    for (const e of all.sort((a, b) => a.usedMs - b.usedMs)) {
      if (total <= maxBytes) break;
      if (pinned.has(e.digest) || e.nlink > 1) continue;
      await unlink(this.metaOf(e.digest)).catch(() => undefined);
      await unlink(this.pathOf(e.digest)).catch(() => undefined);
      total -= e.size;
      evicted.push(e.digest);
    }
    return { evicted, bytes: total };
  }
}

/** The cache size bound: MODELCTL_CACHE_MAX_BYTES, else `local.cacheMaxBytes`, else 20 GiB. */
export function cacheMaxBytes(env: NodeJS.ProcessEnv = process.env, configured?: unknown): number {
  const raw = env.MODELCTL_CACHE_MAX_BYTES ?? (configured === undefined ? undefined : String(configured));
  if (raw === undefined || raw === '') return DEFAULT_CACHE_MAX_BYTES;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) {
    const where = env.MODELCTL_CACHE_MAX_BYTES !== undefined ? 'MODELCTL_CACHE_MAX_BYTES' : 'local.cacheMaxBytes';
    throw new UsageError(`${where} "${raw}" is not a whole number of bytes`, { hint: 'give bytes, e.g. 21474836480 for 20 GiB' });
  }
  return n;
}

function hexOf(digest: string): string {
  const hex = digest.slice('sha256:'.length);
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`internal: not a sha256 digest: ${digest}`);
  return hex;
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return `sha256:${h.digest('hex')}`;
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r').catch(() => undefined);
  if (!fh) return;
  try {
    await fh.sync().catch(() => undefined);
  } finally {
    await fh.close();
  }
}
