import { mkdir, statfs } from 'node:fs/promises';
import path from 'node:path';
import { ExitCode, ModelctlError } from '../core/errors.js';

/**
 * Errors of the local machine, not of a store or a network: a full disk, a quota, a permission,
 * a read-only mount. They are named as such (which path, how much space is left), exit 2 like any
 * other problem the user fixes on their side, and are never retried: writing again to a full disk
 * fails again, and blaming the store sends people to the wrong place.
 */
const LOCAL_CODES: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large for the file system or the process limit (ulimit -f)',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
};

export class LocalIOError extends ModelctlError {
  constructor(message: string, opts: { hint?: string; details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(ExitCode.usage, message, opts);
  }
}

export function isLocalIOFailure(err: unknown): err is NodeJS.ErrnoException {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && code in LOCAL_CODES && !(err instanceof ModelctlError);
}

/** Free and total bytes of the file system holding `p` (or its nearest existing parent). */
async function spaceAt(p: string): Promise<{ free: number; total: number; at: string } | undefined> {
  for (let dir = path.resolve(p); ; dir = path.dirname(dir)) {
    try {
      const s = await statfs(dir);
      return { free: s.bavail * s.bsize, total: s.blocks * s.bsize, at: dir };
    } catch {
      if (dir === path.dirname(dir)) return undefined;
    }
  }
}

function mb(n: number): string {
  return n >= 1024 * 1024 * 1024 ? `${(n / 1024 ** 3).toFixed(1)} GiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

/**
 * The LocalIOError for `err`: `doing` says what was being done ("writing the pulled bundle"),
 * `where` is the location to name when the error carries no path of its own.
 */
export async function localIOError(err: NodeJS.ErrnoException, doing: string, where: string): Promise<LocalIOError> {
  const code = err.code!;
  const file = err.path ?? where;
  const space = await spaceAt(file);
  const full = code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG';
  const free = space ? `${mb(space.free)} free of ${mb(space.total)} on that file system` : 'free space unknown';
  const hint = full
    ? `free space there, or use another location (--output, --store, or TMPDIR for modelctl's temporary files); nothing half-written was kept`
    : code === 'EROFS'
      ? 'that file system is mounted read-only: use another location'
      : `check the owner and permissions of ${file} and its directory`;
  return new LocalIOError(`${doing} failed: ${LOCAL_CODES[code]} (${code}) at ${file}; ${free}`, {
    hint,
    details: { errno: code, path: file, ...(space ? { freeBytes: space.free, totalBytes: space.total } : {}) },
    cause: err,
  });
}

/** Run `fn`; a local I/O failure becomes a LocalIOError naming the path and the free space. */
export async function asLocalIO<T>(doing: string, where: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isLocalIOFailure(err)) throw await localIOError(err, doing, where);
    throw err;
  }
}

/**
 * `mkdir -p` that reports the real reason. Node's recursive mkdir says ENOENT when the true error
 * is EROFS or EACCES (it retries the parent and reports that); creating level by level surfaces
 * the errno the file system gave.
 */
export async function mkdirs(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const parent = path.dirname(dir);
    if (parent !== dir) await mkdirs(parent);
    await mkdir(dir).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
  }
}
