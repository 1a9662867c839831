import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { UsageError } from '../../core/errors.js';
import { decodeManifest, isSplit, wholeFileDigest } from '../../bundle/manifest.js';
import { META_DIR } from '../../bundle/paths.js';
import { FileLedgerStore } from '../../ledger/file-store.js';
import { BlobCache, cacheMaxBytes } from '../../store/blob-cache.js';
import type { LocalConfig } from './config.js';
import { bundleDirFor, localPaths } from './paths.js';
import { readState } from './state.js';

/**
 * The blobs eviction must keep: those of every version the local runtime runs (state.json) and of
 * every version in a model's stable set (the local ledgers), read from the manifest each pulled
 * version directory records. A directory that cannot be read pins nothing (it is pulled again,
 * through the cache, when it is next deployed).
 */
export async function pinnedBlobs(home: string): Promise<Set<string>> {
  const paths = localPaths(home);
  const dirs = new Set<string>();
  const state = await readState(paths.state).catch(() => undefined);
  for (const v of state?.versions ?? []) dirs.add(v.bundleDir);
  const ledgerRoot = path.join(home, 'ledger', 'local');
  const ledgers = new FileLedgerStore(ledgerRoot, 'local', () => undefined);
  for (const model of await readdir(ledgerRoot).catch(() => [] as string[])) {
    const doc = await ledgers.read(model).then((l) => l.doc, () => undefined);
    for (const version of doc?.stableSet ?? []) {
      const release = doc?.releases.findLast((r) => r.version === version);
      if (release) dirs.add(bundleDirFor(paths, model, version, release.digest));
    }
  }
  const pinned = new Set<string>();
  for (const dir of dirs) {
    const file = path.join(dir, META_DIR, 'manifest.json');
    const bytes = await readFile(file).catch(() => undefined);
    if (!bytes) continue;
    try {
      const { manifest } = decodeManifest(bytes, undefined, file);
      for (const b of manifest.blobs) pinned.add(b.digest);
      // A split file (safetensors by tensor) is cached as the reassembled file, under its own
      // SHA-256 (its parts are read from it through the part index, not kept apart).
      for (const c of manifest.components) for (const f of c.files) if (isSplit(f)) pinned.add(wholeFileDigest(f));
    } catch {
      /* a damaged record pins nothing; verifyLocal catches the directory at its next deploy */
    }
  }
  return pinned;
}

const cacheSectionSchema = z.object({ cacheMaxBytes: z.number().int().nonnegative().optional() }).loose();

/** MODELCTL_CACHE_MAX_BYTES, else `local.cacheMaxBytes` in modelctl.yaml, else 20 GiB. */
export function resolveCacheMaxBytes(env: NodeJS.ProcessEnv = process.env, config: LocalConfig = {}): number {
  if (env.MODELCTL_CACHE_MAX_BYTES) return cacheMaxBytes(env);
  const local = config.section;
  if (local === undefined) return cacheMaxBytes({});
  const parsed = cacheSectionSchema.safeParse(local);
  if (!parsed.success) {
    throw new UsageError(`${config.file}: local.cacheMaxBytes: expected a whole number of bytes`, { hint: 'e.g. `local: {cacheMaxBytes: 21474836480}` (20 GiB)' });
  }
  return cacheMaxBytes({}, parsed.data.cacheMaxBytes);
}

/** Trim the cache of `home` to `maxBytes` (see resolveCacheMaxBytes), keeping the pinned blobs. */
export async function trimCache(home: string, maxBytes: number, cache = BlobCache.forHome(home)): Promise<{ evicted: string[]; bytes: number }> {
  return cache.evict(maxBytes, await pinnedBlobs(home));
}
