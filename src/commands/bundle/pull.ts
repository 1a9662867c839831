import { Args, Flags } from '@oclif/core';
import { StoreCommand, storeFlags } from '../../cli/base-command.js';
import type { PullResult } from '../../store/transfer.js';

/** What the cache saved: bytes fetched from the store vs found in the cache (also in the --json output). */
interface PullOutput extends PullResult {
  cache?: { dir: string; fetchedBytes: number; fetchedBlobs: number; cachedBytes: number; cachedBlobs: number; waitedBlobs: number };
}

export default class BundlePull extends StoreCommand {
  static override summary = 'Fetch a bundle into a directory, verifying every byte.';
  static override description = `Downloads into a temporary directory next to --output, checks every blob and file against its SHA-256,
and only then renames it into place: the output appears complete and verified, or not at all.
A mismatch exits with code 6 (integrity) naming the blob. The pulled directory holds a regenerated
bundle.yaml (re-packing it gives the same digest) and .modelctl/manifest.json (used by \`bundle verify <dir>\`).

Large files go through the blob cache of MODELCTL_HOME ($MODELCTL_HOME/cache, shared with the local
runtime): a blob already cached is not fetched again, and the output gets a read-only (0444) hard link
to it (a copy across file systems). Do not make those files writable: they share their bytes with the
cache. MODELCTL_CACHE_MAX_BYTES (or modelctl.yaml local.cacheMaxBytes, default 20 GiB) bounds the
cache; MODELCTL_CACHE_VERIFY=full re-hashes every cached blob each time it is used; MODELCTL_CACHE=off pulls
without the cache (the Kubernetes init container without kubernetes.bundleCache: its home dies with the pod);
MODELCTL_CACHE_DIR puts the cache elsewhere (the init container's node-level cache volume, shared by the
pods of a node: each blob is fetched once, under a lock, by whichever pod needs it first).`;
  static override examples = [
    '<%= config.bin %> bundle pull sentiment@1.0.0 --output ./sentiment',
    '<%= config.bin %> bundle pull sentiment@sha256:3f…  --output /models/current --json',
  ];
  static override args = { ref: Args.string({ description: '<name>@<version> or <name>@sha256:<hex>', required: true }) };
  static override flags = {
    ...storeFlags,
    output: Flags.string({ char: 'o', description: 'Directory to create (absent or empty).', required: true }),
  };

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(BundlePull);
    const store = await this.openStore(flags);
    const { pull } = await import('../../store/transfer.js');
    const { BlobCache } = await import('../../store/blob-cache.js');
    const { resolveCacheMaxBytes, trimCache } = await import('../../targets/local/cache.js');
    const ctx = await this.context();
    // The blob cache of MODELCTL_HOME, shared with the local runtime: blobs it holds are hard-linked
    // into the output (read-only), not fetched again.
    const home = ctx.home();
    // MODELCTL_CACHE=off: a throw-away home (a pod's init container) where caching only costs disk.
    if (ctx.env.MODELCTL_CACHE === 'off') return pull(store, args.ref, flags.output, this.progress());
    const cache = BlobCache.forHome(home);
    const result = await pull(store, args.ref, flags.output, this.progress(), cache);
    await Promise.resolve()
      .then(async () => trimCache(home, resolveCacheMaxBytes(ctx.env, await ctx.localConfig()), cache))
      .catch((err: unknown) => process.stderr.write(`Warning: blob cache not trimmed: ${(err as Error).message}\n`));
    return { ...result, cache: { dir: cache.root, ...cache.counts } } satisfies PullOutput;
  }

  protected human(r: PullOutput): string {
    const c = r.cache;
    const cached = c ? `\n  fetched ${c.fetchedBytes} bytes (${c.fetchedBlobs} blobs) from the store, ${c.cachedBytes} bytes (${c.cachedBlobs} blobs) from the cache ${c.dir}${c.waitedBlobs ? ` (${c.waitedBlobs} of them fetched meanwhile by another puller, waited for)` : ''}` : '';
    return `Pulled ${r.ref} ${r.digest}\n  into ${r.path} (verified)${cached}`;
  }
}
