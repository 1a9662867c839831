import { createWriteStream } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pLimit from 'p-limit';
import rcompare from 'semver/functions/rcompare.js';
import { stringify as toYaml } from 'yaml';
import { removeOnInterrupt } from '../core/cleanup.js';
import { ConflictError, IntegrityError, ModelctlError, NotFoundError, UnavailableError, UsageError } from '../core/errors.js';
import { openArchive, readArchiveManifest, writeArchive } from '../bundle/archive.js';
import {
  canonicalJson,
  decodeManifest,
  describeBlob,
  fileCount,
  isSplit,
  filesOfBlob,
  totalSize,
  type EncodedManifest,
  type Manifest,
  type ManifestFile,
} from '../bundle/manifest.js';
import { META_DIR } from '../bundle/paths.js';
import { formatRef, parseRef, type BundleRef } from '../bundle/ref.js';
import { bundleFileMatches, packDirectory, type BundleSource } from '../bundle/source.js';
import { BUNDLE_FILE, MAX_BUNDLE_FILE_BYTES } from '../bundle/spec.js';
import { checkTarBlob, devNull, HashTap, through } from '../bundle/tar-io.js';
import type { BlobCache } from './blob-cache.js';
import { blobKey, manifestKey, type BundleStore, type CorruptRefError, type RefRecord } from './store.js';
import { asLocalIO, isLocalIOFailure, localIOError, mkdirs } from '../util/local-io.js';
import { silentProgress, type Progress } from '../core/progress.js';
import { pullSplitFile, type SplitPullDeps } from './split-pull.js';

/*
 * Bundles to and from a store: pack, push, pull (through the blob cache), verify, inspect, list,
 * diff, init. It was src/services/bundles.ts; it lives here, below the targets, because the local
 * and Kubernetes targets pull and resolve bundles through it, and a target must not import the
 * application layer. store/ (not bundle/) because store/ already builds on bundle/ (tar-io), and
 * bundle/ must not build on store/ in turn.
 */

/** Blobs moved at once; each large blob also has up to 4 parts in flight (memory ≈ 2 × 4 × 8 MiB). */
const BLOBS_IN_FLIGHT = 2;
/** Whole-blob download attempts (the SDK retries requests; this retries a stream cut mid-body). */
const DOWNLOAD_ATTEMPTS = 3;
const MANIFEST_RECORD = path.join(META_DIR, 'manifest.json');

export interface PackSummary {
  name: string;
  version: string;
  digest: string;
  size: number;
  files: number;
  components: Array<{ name: string; size: number; files: number }>;
  /** What packing worked around (e.g. a .safetensors file that does not parse, stored whole). */
  warnings?: string[];
}

export function summarize(encoded: EncodedManifest): PackSummary {
  const m = encoded.manifest;
  return {
    name: m.name,
    version: m.version,
    digest: encoded.digest,
    size: totalSize(m),
    files: fileCount(m),
    components: m.components.map((c) => ({ name: c.name, size: c.size, files: c.files.length })),
  };
}

/** True when `p` is a regular file (an archive) rather than a bundle directory. */
async function isArchiveFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    throw new UsageError(`${p} does not exist`, { hint: 'pass a bundle directory (with bundle.yaml) or an archive made by `modelctl bundle pack --output`' });
  }
}

/** Open a directory (packing it) or an archive (extracting and verifying it) as a bundle source. */
export async function openLocalBundle(
  p: string,
  opts: { version?: string | undefined; progress?: Progress; tensorRunBytes?: number | undefined } = {},
): Promise<BundleSource> {
  if (await isArchiveFile(p)) {
    if (opts.version !== undefined) throw new UsageError('--version applies to bundle directories only; an archive\'s version is sealed in its digest');
    return asLocalIO(`unpacking the archive ${p}`, tmpdir(), () => openArchive(p));
  }
  const source = await asLocalIO(`packing ${p}`, tmpdir(), () => packDirectory(p, { version: opts.version, progress: opts.progress, tensorRunBytes: opts.tensorRunBytes }));
  try {
    await (await import('../gates/evaluation-set.js')).checkEvaluationSetOnDisk(p, source.encoded.manifest);
  } catch (err) {
    await source.close();
    throw err;
  }
  return source;
}

export async function pack(
  dir: string,
  opts: { version?: string | undefined; output?: string | undefined; progress?: Progress },
): Promise<PackSummary & { output?: string; archiveSize?: number }> {
  if (await isArchiveFile(dir)) {
    throw new UsageError(`${dir} is a file; \`bundle pack\` takes a bundle directory (holding bundle.yaml)`, {
      hint: 'an archive is already packed: push, verify or inspect it directly',
    });
  }
  const source = await asLocalIO(`packing ${dir}`, tmpdir(), () => packDirectory(dir, { version: opts.version, progress: opts.progress }));
  try {
    // An evaluation set that would be refused at deploy is refused now (file, line, field).
    await (await import('../gates/evaluation-set.js')).checkEvaluationSetOnDisk(dir, source.encoded.manifest);
    const summary = { ...summarize(source.encoded), ...(source.warnings?.length ? { warnings: source.warnings } : {}) };
    if (!opts.output) return summary;
    const output = opts.output;
    const { size } = await asLocalIO(`writing the archive ${output}`, output, () => writeArchive(source, output));
    return { ...summary, output: path.resolve(output), archiveSize: size };
  } finally {
    await source.close();
  }
}

export interface PushResult {
  ref: string;
  digest: string;
  uploadedBytes: number;
  reusedBytes: number;
  created: boolean;
  /** Blobs that were missing (or, with `repair`, corrupt) in the store although the version existed, and were re-uploaded. */
  repairedBlobs: string[];
  /** The stored manifest was missing or damaged and was written again. */
  repairedManifest: boolean;
  /** What packing worked around (e.g. a .safetensors file that does not parse, stored whole). */
  warnings?: string[];
}

function conflict(name: string, version: string, existing: string, attempted: string, store: string): ConflictError {
  return new ConflictError(`${name}@${version} already exists in ${store} with different content: it is ${existing}, this bundle is ${attempted}`, {
    hint: 'versions are immutable: bump the version (or pass --version) and push again',
    details: { ref: `${name}@${version}`, existingDigest: existing, attemptedDigest: attempted },
  });
}

export interface PushOptions {
  /**
   * Download and re-hash every blob the store holds for this bundle and re-upload the ones whose
   * bytes are wrong. Without it, a push checks presence and size of every blob (a HEAD each), which
   * finds deleted and truncated blobs but not same-size corruption.
   */
  repair?: boolean;
}

/**
 * Whether the manifest stored under `digest` can stay: it decodes to that digest and the
 * bundle.yaml it names is there. An earlier push of the same content whose bundle.yaml was
 * formatted differently keeps its own bytes; a missing or damaged manifest is written again.
 */
async function storedManifestSound(store: BundleStore, digest: string, ours: Manifest): Promise<boolean> {
  const bytes = await store.getManifest(digest);
  if (!bytes) return false;
  let stored: EncodedManifest;
  try {
    stored = decodeManifest(bytes, digest, store.url);
  } catch (err) {
    if (err instanceof ModelctlError) return false;
    throw err;
  }
  const file = stored.manifest.bundleFile;
  // A manifest from before bundle.yaml was kept gains ours (same digest: only the formatting differs).
  if (!file) return ours.bundleFile === undefined;
  return file.digest === ours.bundleFile?.digest || store.hasBlob(file.digest, file.size);
}

/** Whether a stored blob is there with the right bytes: re-hashes what the store returns. */
async function storedBlobState(store: BundleStore, digest: string, size: number): Promise<'ok' | 'missing' | 'corrupt'> {
  let body: Readable;
  try {
    body = await store.getBlob(digest);
  } catch (err) {
    if (err instanceof NotFoundError) return 'missing';
    throw err;
  }
  const tap = new HashTap();
  await pipeline(body, tap, devNull());
  return tap.bytes === size && `sha256:${tap.hex()}` === digest ? 'ok' : 'corrupt';
}

/**
 * Push: blobs the store lacks (verified as they stream), then the manifest, then the version ref,
 * create-only. An interrupted push leaves no ref, so no version resolves to half a bundle; the
 * next push re-uses whatever blobs made it. A push of a version that is already there checks every
 * blob and the manifest all the same and puts back what is missing or damaged: pushing the same
 * bundle again is how a store is mended.
 */
export async function push(store: BundleStore, source: BundleSource, progress: Progress = silentProgress, opts: PushOptions = {}): Promise<PushResult> {
  const { manifest, digest, bytes } = source.encoded;
  const ref = `${manifest.name}@${manifest.version}`;
  const existing = await store.getRef(manifest.name, manifest.version);
  if (existing && existing.digest !== digest) throw conflict(manifest.name, manifest.version, existing.digest, digest, store.url);

  // The component blobs, and bundle.yaml as written (kept beside them; not counted in the bytes
  // reported, which are the bundle's content).
  const wanted = [...manifest.blobs, ...(manifest.bundleFile ? [manifest.bundleFile] : [])];
  const counted = (b: { digest: string }) => manifest.blobs.some((x) => x.digest === b.digest);
  const limit = pLimit(BLOBS_IN_FLIGHT);
  if (opts.repair) progress.start(`re-hashing the stored blobs of ${ref}`, wanted.reduce((n, b) => n + b.size, 0));
  let states: Array<'ok' | 'missing' | 'corrupt'>;
  try {
    states = await Promise.all(
      wanted.map((b) =>
        limit(async () => {
          if (!opts.repair) return (await store.hasBlob(b.digest, b.size)) ? 'ok' : 'missing';
          const state = await storedBlobState(store, b.digest, b.size);
          progress.advance(b.size);
          return state;
        }),
      ),
    );
  } finally {
    if (opts.repair) progress.finish();
  }
  const missing = wanted.filter((_, i) => states[i] !== 'ok');
  const reusedBytes = wanted.filter((b, i) => states[i] === 'ok' && counted(b)).reduce((n, b) => n + b.size, 0);
  const uploadedBytes = missing.filter(counted).reduce((n, b) => n + b.size, 0);

  progress.start(`pushing ${ref}`, uploadedBytes);
  try {
    // allSettled, not all: when one blob fails, the caller closes the source (removing its temp
    // files) only after every other upload has stopped reading from it.
    const settled = await Promise.allSettled(
      missing.map((b) => limit(async () => store.putBlob(b.digest, b.size, await source.openBlob(b.digest), (n) => progress.advance(n)))),
    );
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  } finally {
    progress.finish();
  }
  const manifestOk = await storedManifestSound(store, digest, manifest);
  if (!manifestOk) await store.putManifest(digest, bytes);
  const repaired = { repairedBlobs: existing ? missing.map((b) => b.digest) : [], repairedManifest: existing !== undefined && !manifestOk };
  const warned = source.warnings?.length ? { warnings: source.warnings } : {};
  if (existing) return { ref, digest, uploadedBytes, reusedBytes, created: false, ...repaired, ...warned };
  const created = await store.createRef({ name: manifest.name, version: manifest.version, digest, size: totalSize(manifest), createdAt: new Date().toISOString() });
  if (!created.created && created.existing.digest !== digest) throw conflict(manifest.name, manifest.version, created.existing.digest, digest, store.url);
  return { ref, digest, uploadedBytes, reusedBytes, created: created.created, ...repaired, ...warned };
}

export interface ResolvedRef {
  ref: BundleRef;
  digest: string;
  record?: RefRecord;
}

export async function resolveRef(store: BundleStore, refText: string): Promise<ResolvedRef> {
  const ref = parseRef(refText);
  if (ref.digest !== undefined) return { ref, digest: ref.digest };
  const record = await store.getRef(ref.name, ref.version!);
  if (!record) {
    if (store.exists && !(await store.exists())) await assertStoreExists(store);
    throw new NotFoundError(`${refText} is not in ${store.url}`, {
      hint: `list what is there with \`modelctl bundle list ${ref.name}\``,
      details: { ref: refText, store: store.url },
    });
  }
  return { ref, digest: record.digest, record };
}

/** Fetch and verify a manifest by digest; for a digest ref, the name must match too. */
export async function fetchManifest(store: BundleStore, resolved: ResolvedRef): Promise<EncodedManifest> {
  const bytes = await store.getManifest(resolved.digest);
  if (!bytes) {
    throw new NotFoundError(`${formatRef(resolved.ref)}: manifest ${resolved.digest} is not in ${store.url}`, {
      ...(resolved.record ? { hint: repairHint(store.url, 'missing') } : {}),
      details: { digest: resolved.digest },
    });
  }
  let encoded: EncodedManifest;
  try {
    encoded = decodeManifest(bytes, resolved.digest, store.url);
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    throw new IntegrityError(`${formatRef(resolved.ref)}: the stored manifest ${manifestKey(resolved.digest)} is damaged: ${err.message}`, {
      hint: `push the bundle again from its source (\`modelctl bundle push <bundle dir or archive> --store ${store.url}\`): it rewrites a damaged manifest`,
      details: { ...err.details, key: manifestKey(resolved.digest) },
      cause: err,
    });
  }
  if (encoded.manifest.name !== resolved.ref.name) {
    throw new NotFoundError(`${formatRef(resolved.ref)}: digest ${resolved.digest} is a bundle of "${encoded.manifest.name}", not "${resolved.ref.name}"`);
  }
  return encoded;
}

/** Stream a blob from the store through `consume`, retrying the whole blob on a cut stream. */
async function withBlob(
  store: BundleStore,
  digest: string,
  consume: (body: Readable) => Promise<void>,
  cleanup: () => Promise<void> = async () => {},
  /** Where `consume` writes, named when the local disk fails. */
  localRoot?: string,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await consume(await store.getBlob(digest));
      return;
    } catch (caught) {
      await cleanup().catch(() => undefined);
      // A full or read-only local disk is not the store's fault and fails again if retried.
      const err = isLocalIOFailure(caught) ? await localIOError(caught, `writing blob ${digest}`, localRoot ?? '.') : caught;
      const transient = !(err instanceof ModelctlError && !(err instanceof UnavailableError));
      if (!transient || attempt >= DOWNLOAD_ATTEMPTS) {
        if (transient && !(err instanceof UnavailableError)) {
          throw new UnavailableError(`downloading blob ${digest} from ${store.url} failed ${attempt} times: ${(err as Error).message}`, { cause: err });
        }
        throw withRepairHint(err, store.url);
      }
      await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
    }
  }
}

/** A store's own file download (parallel, resumable, verified): its errors get the same repair hints. */
async function downloaded(store: string, run: () => Promise<unknown>): Promise<void> {
  try {
    await run();
  } catch (err) {
    throw withRepairHint(err, store);
  }
}

/** What to run to mend a store from the bundle's source (a directory or an archive). */
export function repairHint(store: string, what: 'missing' | 'corrupt'): string {
  return what === 'missing'
    ? `the store lost part of this bundle: push it again from its source (\`modelctl bundle push <bundle dir or archive> --store ${store}\`), which re-uploads every missing blob`
    : `the store was altered or damaged: \`modelctl bundle push <bundle dir or archive> --repair --store ${store}\` re-hashes every stored blob of the bundle and re-uploads the wrong ones`;
}

function blobMismatch(digest: string, tap: HashTap, size: number, store: string, holds?: string): IntegrityError | undefined {
  const actual = `sha256:${tap.hex()}`;
  if (actual === digest && tap.bytes === size) return undefined;
  return new IntegrityError(`blob ${digest}${holds && holds !== digest ? ` (${holds})` : ''} in ${store} is corrupt: its ${tap.bytes} bytes hash to ${actual}`, {
    hint: repairHint(store, 'corrupt'),
    details: { blob: digest, key: blobKey(digest), actual, store },
  });
}

/**
 * A blob the manifest names that the store does not hold (NotFoundError from getBlob), or whose
 * bytes are wrong (IntegrityError from a tar check), with the way to mend it.
 */
function withRepairHint(err: unknown, store: string): unknown {
  if (err instanceof NotFoundError && err.hint === undefined && typeof err.details.blob === 'string') {
    return new NotFoundError(err.message, { hint: repairHint(store, 'missing'), details: err.details, cause: err.cause });
  }
  if (err instanceof IntegrityError && err.hint === undefined) {
    return new IntegrityError(`${err.message} (in ${store})`, { hint: repairHint(store, 'corrupt'), details: { ...err.details, store }, cause: err.cause });
  }
  return err;
}

export interface PullResult {
  ref: string;
  digest: string;
  path: string;
}

/**
 * Pull into a temporary sibling of `output`, check every byte, then rename into place: the output
 * either appears complete and verified or not at all.
 */
export async function pull(
  store: BundleStore,
  refText: string,
  output: string,
  progress: Progress = silentProgress,
  /**
   * The blob cache of MODELCTL_HOME: whole-file blobs come from it (fetched into it first when
   * absent) and are hard-linked into the output, so a version costs only the blobs it changed.
   */
  cache?: BlobCache,
): Promise<PullResult> {
  const out = path.resolve(output);
  await assertEmptyOrAbsent(out);
  const resolved = await resolveRef(store, refText);
  const encoded = await fetchManifest(store, resolved);
  const { manifest } = encoded;
  const tmp = `${out}.partial-${process.pid}-${Date.now()}`;
  // Registered before it exists: a Ctrl-C right after the mkdir must still remove it (and exit 130).
  const forget = removeOnInterrupt(tmp);
  await asLocalIO(`creating ${tmp}`, tmp, () => mkdirs(tmp));
  try {
    // Split files (safetensors by tensor) are put together from their parts by pullSplitFile;
    // the other blobs are fetched as before. A part blob no whole file uses is fetched only there.
    const splitFiles = manifest.components.flatMap((c) => c.files.filter(isSplit));
    const direct = manifest.blobs.filter((b) => b.kind === 'tar' || manifest.components.some((c) => c.files.some((f) => f.blob === b.digest)));
    progress.start(`pulling ${refText}`, direct.reduce((n, b) => n + b.size, 0) + splitFiles.reduce((n, f) => n + f.size, 0));
    const limit = pLimit(BLOBS_IN_FLIGHT);
    const splitDeps: SplitPullDeps = {
      storeUrl: store.url,
      fetch: (digest, consume) => withBlob(store, digest, consume, undefined, out),
      partLimit: pLimit(BLOBS_IN_FLIGHT),
      progress,
      corruptHint: repairHint(store.url, 'corrupt'),
      cache,
    };
    // allSettled, not all: a failed blob must not let us delete the temp dir while another
    // download is still writing into it (rm would race the writes: ENOTEMPTY).
    const settled = await Promise.allSettled([
      ...splitFiles.map((f) => pullSplitFile(splitDeps, f, path.join(tmp, f.path))),
      ...direct.map((b) =>
        limit(async () => {
          if (b.kind === 'tar') {
            const files = filesOfBlob(manifest, b.digest);
            await withBlob(
              store,
              b.digest,
              async (body) => {
                const tap = new HashTap((n) => progress.advance(n));
                await checkTarBlob(through(body, tap), b.digest, files, tmp);
                const bad = blobMismatch(b.digest, tap, b.size, store.url);
                if (bad) throw bad;
              },
              async () => {
                for (const f of files.values()) await rm(path.join(tmp, f.path), { force: true });
              },
              out,
            );
            return;
          }
          const targets = manifest.components.flatMap((c) => c.files.filter((f) => f.blob === b.digest));
          if (cache) {
            const download = store.downloadBlob?.bind(store);
            const fetch = download
              ? () => downloaded(store.url, () => cache.insertDownloaded(b.digest, (file, partial) => download(b.digest, b.size, file, { partial, onBytes: (n) => progress.advance(n) })))
              : () => withBlob(store, b.digest, (body) => cache.insert(b.digest, b.size, body, (n) => progress.advance(n)).then(() => undefined), undefined, out);
            // One fetch per blob across every puller of this cache (a node's pods, parallel deploys).
            if ((await cache.ensure(b.digest, b.size, fetch)) !== 'fetched') progress.advance(b.size);
            for (const t of targets) {
              const dest = path.join(tmp, t.path);
              await mkdirs(path.dirname(dest));
              await cache.materialise(b.digest, dest, t.executable).catch(async (err: unknown) => {
                // Evicted by another process between the check and the link: fetch it again, once.
                if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || (await stat(path.dirname(dest)).catch(() => undefined)) === undefined) throw err;
                await fetch();
                await cache.materialise(b.digest, dest, t.executable);
              });
            }
            return;
          }
          const first = path.join(tmp, targets[0]!.path);
          await mkdirs(path.dirname(first));
          if (store.downloadBlob) {
            await downloaded(store.url, () => store.downloadBlob!(b.digest, b.size, first, { onBytes: (n) => progress.advance(n) }));
            await chmod(first, targets[0]!.executable ? 0o755 : 0o644);
          } else await withBlob(
            store,
            b.digest,
            async (body) => {
              const tap = new HashTap((n) => progress.advance(n));
              await pipeline(body, tap, createWriteStream(first, { flags: 'wx', mode: targets[0]!.executable ? 0o755 : 0o644 }));
              const bad = blobMismatch(b.digest, tap, b.size, store.url);
              if (bad) throw bad;
            },
            () => rm(first, { force: true }),
            out,
          );
          for (const t of targets.slice(1)) {
            const dest = path.join(tmp, t.path);
            await mkdirs(path.dirname(dest));
            await copyFile(first, dest);
          }
        }),
      ),
    ]);
    await cache?.release(); // every blob is copied or linked by now: eviction may have them
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    progress.finish();
    await writeFile(path.join(tmp, BUNDLE_FILE), await storedBundleFile(store, manifest));
    await mkdir(path.join(tmp, META_DIR));
    await writeFile(path.join(tmp, MANIFEST_RECORD), encoded.bytes);
    await rm(out, { recursive: true, force: true }); // only ever an empty directory here
    await rename(tmp, out);
    forget();
    return { ref: `${manifest.name}@${manifest.version}`, digest: encoded.digest, path: out };
  } catch (err) {
    progress.finish();
    await rm(tmp, { recursive: true, force: true });
    if (isLocalIOFailure(err)) throw await localIOError(err, `writing the pulled bundle to ${out}`, out);
    throw err;
  }
}

/**
 * bundle.yaml as it was pushed (comments, order and all), checked: its bytes hash to the digest the
 * manifest names, and it means exactly what the manifest records. A bundle pushed before modelctl
 * kept the file gets one regenerated from the manifest instead.
 */
async function storedBundleFile(store: BundleStore, manifest: Manifest): Promise<Buffer | string> {
  const file = manifest.bundleFile;
  if (!file) return bundleYaml(manifest);
  if (file.size > MAX_BUNDLE_FILE_BYTES) {
    throw new IntegrityError(`the manifest of ${manifest.name}@${manifest.version} names a bundle.yaml of ${file.size} bytes, more than bundle.yaml may hold`, {
      hint: repairHint(store.url, 'corrupt'),
      details: { blob: file.digest, store: store.url },
    });
  }
  let bytes = Buffer.alloc(0);
  await withBlob(store, file.digest, async (body) => {
    const tap = new HashTap();
    const chunks: Buffer[] = [];
    await pipeline(body, tap, new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }));
    const bad = blobMismatch(file.digest, tap, file.size, store.url);
    if (bad) throw bad;
    bytes = Buffer.concat(chunks);
  });
  if (!bundleFileMatches(bytes, manifest)) {
    throw new IntegrityError(`the bundle.yaml stored for ${manifest.name}@${manifest.version} (${file.digest}) does not describe this bundle's manifest`, {
      hint: repairHint(store.url, 'corrupt'),
      details: { blob: file.digest, store: store.url },
    });
  }
  return bytes;
}

/** bundle.yaml regenerated from the manifest: re-packing a pulled bundle gives the same digest. */
export function bundleYaml(manifest: Manifest): string {
  return `# Pulled by modelctl: ${manifest.name}@${manifest.version}\n${toYaml({ name: manifest.name, version: manifest.version, ...manifest.spec })}`;
}

async function assertEmptyOrAbsent(dir: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ENOTDIR') throw new UsageError(`--output ${dir} is a file`, { hint: 'choose a new directory' });
    throw err;
  }
  if (entries.length > 0) throw new UsageError(`--output ${dir} exists and is not empty`, { hint: 'choose a new directory or remove it first' });
}

export interface VerifyResult {
  target: string;
  kind: 'ref' | 'archive' | 'directory';
  digest: string;
  ok: true;
  blobs: number;
  bytes: number;
}

/** Verify every byte of a ref in a store: manifest digest, every blob's SHA-256, every file in every tar. */
export async function verifyRef(store: BundleStore, refText: string, progress: Progress = silentProgress): Promise<VerifyResult> {
  const resolved = await resolveRef(store, refText);
  const encoded = await fetchManifest(store, resolved);
  const { manifest } = encoded;
  const bytes = manifest.blobs.reduce((n, b) => n + b.size, 0);
  progress.start(`verifying ${refText}`, bytes);
  const limit = pLimit(BLOBS_IN_FLIGHT);
  try {
    await Promise.all(
      manifest.blobs.map((b) =>
        limit(() =>
          withBlob(store, b.digest, async (body) => {
            const tap = new HashTap((n) => progress.advance(n));
            if (b.kind === 'tar') await checkTarBlob(through(body, tap), b.digest, filesOfBlob(manifest, b.digest));
            else await pipeline(body, tap, devNull());
            const bad = blobMismatch(b.digest, tap, b.size, store.url, describeBlob(manifest, b.digest));
            if (bad) throw bad;
          }),
        ),
      ),
    );
  } finally {
    progress.finish();
  }
  await storedBundleFile(store, manifest);
  return { target: refText, kind: 'ref', digest: encoded.digest, ok: true, blobs: manifest.blobs.length, bytes };
}

/**
 * Verify a local bundle. An archive is checked blob by blob against its manifest. A directory is
 * packed (so every path and schema rule is checked); if it was written by `bundle pull` it must
 * still match the manifest recorded then, and with `expectedDigest` it must match that digest.
 */
export async function verifyLocal(p: string, expectedDigest?: string): Promise<VerifyResult> {
  const archive = await isArchiveFile(p);
  const recorded = archive ? undefined : await readFile(path.join(p, MANIFEST_RECORD)).catch(() => undefined);
  const was = recorded ? decodeManifest(recorded, undefined, path.join(p, MANIFEST_RECORD)) : undefined;
  // Cut split files as the pulled bundle was cut, whatever this modelctl's default.
  const tensorRunBytes = was?.manifest.components.flatMap((c) => c.files).find((f) => f.runBytes !== undefined)?.runBytes;
  const source = await openLocalBundle(p, { tensorRunBytes });
  try {
    const { digest, manifest } = source.encoded;
    let expected = expectedDigest;
    if (was && !expected && was.digest !== digest) throw changedFiles(p, was.manifest, manifest, was.digest, digest);
    if (expected && expected !== digest) {
      throw new IntegrityError(`${p} has digest ${digest}, expected ${expected}`, { details: { expected, actual: digest } });
    }
    return {
      target: p,
      kind: archive ? 'archive' : 'directory',
      digest,
      ok: true,
      blobs: manifest.blobs.length,
      bytes: manifest.blobs.reduce((n, b) => n + b.size, 0),
    };
  } finally {
    await source.close();
  }
}

function changedFiles(dir: string, was: Manifest, now: Manifest, wasDigest: string, nowDigest: string): IntegrityError {
  const d = diffManifests(was, now);
  const changed = d.components.flatMap((c) => [...c.added, ...c.removed, ...c.changed]);
  return new IntegrityError(
    `${dir} no longer matches what was pulled (${wasDigest}, now ${nowDigest})${changed.length ? `: ${changed.slice(0, 10).join(', ')}` : ''}`,
    { hint: 'pull the bundle again into a new directory', details: { expected: wasDigest, actual: nowDigest, changed } },
  );
}

export interface InspectResult extends PackSummary {
  source: string;
  manifest: Manifest;
}

export async function inspectLocal(p: string): Promise<InspectResult> {
  if (await isArchiveFile(p)) {
    const encoded = await readArchiveManifest(p);
    return { ...summarize(encoded), source: p, manifest: encoded.manifest };
  }
  const source = await packDirectory(p);
  try {
    return { ...summarize(source.encoded), source: p, manifest: source.encoded.manifest };
  } finally {
    await source.close();
  }
}

export async function inspectRef(store: BundleStore, refText: string): Promise<InspectResult> {
  const encoded = await fetchManifest(store, await resolveRef(store, refText));
  return { ...summarize(encoded), source: refText, manifest: encoded.manifest };
}

export interface ListEntry {
  name: string;
  version: string;
  digest: string;
  size: number;
  createdAt: string;
}

export interface ListOptions {
  /** Told about each damaged ref object, which is left out of the list (other refs keep working). */
  onBadRef?: (err: CorruptRefError) => void;
  /**
   * The store was named explicitly (flag, environment, modelctl.yaml): a file store that does not
   * exist is then a mistake (NotFoundError naming the path), not an empty store. The default store
   * does not exist until the first push.
   */
  explicitStore?: boolean;
}

/** A file store that does not exist, named explicitly: a typo, not an empty store. */
async function assertStoreExists(store: BundleStore): Promise<void> {
  if (store.exists && !(await store.exists())) {
    throw new NotFoundError(`store ${store.url} does not exist`, {
      hint: 'check the --store path (or MODELCTL_STORE, or store: in modelctl.yaml); a file store is created by the first `modelctl bundle push`',
      details: { store: store.url },
    });
  }
}

/**
 * Newest first by semver precedence (then by name, then by the full version string). A name with
 * no version in the store is NotFoundError; a damaged ref is reported to `onBadRef` and skipped,
 * unless it is all there is of the model asked for (then it is the error).
 */
export async function list(store: BundleStore, name?: string, opts: ListOptions = {}): Promise<ListEntry[]> {
  if (name !== undefined) parseRef(`${name}@0.0.0`); // validates the name with the usual message
  if (opts.explicitStore) await assertStoreExists(store);
  const bad: CorruptRefError[] = [];
  const refs = await store.listRefs(name, (err) => {
    bad.push(err);
    opts.onBadRef?.(err);
  });
  if (name !== undefined && refs.length === 0) {
    if (bad[0]) throw bad[0];
    throw new NotFoundError(`no version of "${name}" is in ${store.url}`, {
      hint: 'see the models stored there with `modelctl bundle list` (names are case-sensitive)',
      details: { name, store: store.url },
    });
  }
  return refs
    .map(({ name, version, digest, size, createdAt }) => ({ name, version, digest, size, createdAt }))
    .sort((a, b) => a.name.localeCompare(b.name) || rcompare(a.version, b.version) || (a.version < b.version ? 1 : -1));
}

export interface ComponentDiff {
  name: string;
  status: 'added' | 'removed' | 'changed' | 'unchanged';
  added: string[];
  removed: string[];
  changed: string[];
  /**
   * For changed files stored by tensor on both sides (safetensors, manifest schema 2): the tensors
   * added, removed or changed (bytes, dtype or shape), in the new file's order.
   */
  tensors?: TensorChange[];
}

export interface TensorChange {
  file: string;
  name: string;
  change: 'added' | 'removed' | 'changed';
  dtype: string;
  shape: number[];
  /** The tensor's bytes in `to` (in `from` when removed). */
  bytes: number;
}

/** The tensors that differ between two versions of a split file, matched by name. */
function tensorChanges(file: string, a: ManifestFile, b: ManifestFile): TensorChange[] {
  if (!a.parts || !b.parts) return [];
  const before = new Map(a.parts.flatMap((p) => p.tensors).map((t) => [t.name, t]));
  const after = b.parts.flatMap((p) => p.tensors);
  const out: TensorChange[] = [];
  for (const t of after) {
    const was = before.get(t.name);
    const change = !was ? 'added' : was.sha256 !== t.sha256 || was.dtype !== t.dtype || canonicalJson(was.shape) !== canonicalJson(t.shape) ? 'changed' : undefined;
    if (change) out.push({ file, name: t.name, change, dtype: t.dtype, shape: t.shape, bytes: t.size });
    before.delete(t.name);
  }
  for (const t of before.values()) out.push({ file, name: t.name, change: 'removed', dtype: t.dtype, shape: t.shape, bytes: t.size });
  return out;
}

export interface DiffResult {
  from: string;
  to: string;
  fromDigest: string;
  toDigest: string;
  identical: boolean;
  components: ComponentDiff[];
  /** Bytes a node that has `from` must fetch to get `to` (blobs of `to` that `from` lacks). */
  transferBytes: number;
  totalBytes: number;
}

export function diffManifests(a: Manifest, b: Manifest): Pick<DiffResult, 'components' | 'transferBytes' | 'totalBytes'> {
  const names = [...new Set([...a.components.map((c) => c.name), ...b.components.map((c) => c.name)])].sort();
  const components = names.map((name): ComponentDiff => {
    const ca = a.components.find((c) => c.name === name);
    const cb = b.components.find((c) => c.name === name);
    const fa = new Map((ca?.files ?? []).map((f) => [f.path, f]));
    const fb = new Map((cb?.files ?? []).map((f) => [f.path, f]));
    const added = [...fb.keys()].filter((p) => !fa.has(p));
    const removed = [...fa.keys()].filter((p) => !fb.has(p));
    const changed = [...fb.keys()].filter((p) => fa.has(p) && (fa.get(p)!.sha256 !== fb.get(p)!.sha256 || fa.get(p)!.executable !== fb.get(p)!.executable));
    const status = !ca ? 'added' : !cb ? 'removed' : added.length + removed.length + changed.length > 0 ? 'changed' : 'unchanged';
    const tensors = changed.flatMap((p) => tensorChanges(p, fa.get(p)!, fb.get(p)!));
    return { name, status, added, removed, changed, tensors };
  });
  const have = new Set(a.blobs.map((x) => x.digest));
  return {
    components,
    transferBytes: b.blobs.filter((x) => !have.has(x.digest)).reduce((n, x) => n + x.size, 0),
    totalBytes: b.blobs.reduce((n, x) => n + x.size, 0),
  };
}

export async function diff(store: BundleStore, fromRef: string, toRef: string): Promise<DiffResult> {
  const a = await fetchManifest(store, await resolveRef(store, fromRef));
  const b = await fetchManifest(store, await resolveRef(store, toRef));
  return { from: fromRef, to: toRef, fromDigest: a.digest, toDigest: b.digest, identical: a.digest === b.digest, ...diffManifests(a.manifest, b.manifest) };
}

/**
 * A minimal server for a new bundle, no dependencies: what `serve:` in the scaffolded bundle.yaml
 * runs, so that `bundle init` → `bundle push` → `deploy` works before any model code is written.
 */
const SERVE_SCAFFOLD = `#!/usr/bin/env node
// How modelctl runs this bundle (bundle.yaml, \`serve:\`): started from the bundle directory with
// PORT and HOST set (and MODELCTL_MODEL, MODELCTL_VERSION). Replace the body of predict() with
// your model; keep the two routes:
//
//   GET  /healthz   200 once the model is loaded (the readiness probe, serve.readinessPath)
//   POST /predict   {"text": "..."} -> {"label": ..., "score": ...}
//                   score: the number modelctl records per request (serve.scoreField)
//                   label: compared between a shadow version and the live one (serve.agreementField)
import http from 'node:http';

const MAX_BODY = 1024 * 1024;
const version = process.env.MODELCTL_VERSION ?? 'dev';

function predict(input) {
  // A placeholder model: replace with yours (load weights/ once, at start-up, above).
  const text = String(input.text ?? '');
  const score = text.length === 0 ? 0.5 : (text.length % 100) / 100;
  return { label: score >= 0.5 ? 'positive' : 'negative', score, version };
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const server = http.createServer(async (req, res) => {
  try {
    if (req.method === 'GET' && req.url === '/healthz') return send(res, 200, { status: 'ok', version });
    if (req.method === 'POST' && req.url === '/predict') {
      let body = '';
      for await (const chunk of req) {
        body += chunk;
        if (body.length > MAX_BODY) return send(res, 413, { error: 'body too large' });
      }
      return send(res, 200, predict(body ? JSON.parse(body) : {}));
    }
    send(res, 404, { error: \`no route \${req.method} \${req.url}\` });
  } catch (err) {
    send(res, 400, { error: String(err?.message ?? err) });
  }
});
server.listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? '127.0.0.1');
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
`;

/** Scaffold a bundle directory with the four components, a server and a bundle.yaml that explains itself. */
export async function init(dir: string, name: string): Promise<{ path: string; name: string; files: string[] }> {
  const out = path.resolve(dir);
  await assertEmptyOrAbsent(out);
  const files: Record<string, string> = {
    [BUNDLE_FILE]: `# A modelctl bundle: everything one model version needs, packed into one content-addressed unit.
name: ${name}            # DNS-1123 label: lower-case letters, digits, "-"
version: 0.1.0           # semver; \`modelctl bundle push --version\` can override it (e.g. in CI)
components:              # each: a list of files or directories relative to this file
  weights: [weights/]
  prompts: [prompts/]
  preprocessing: [preprocessing/]
  config: [config/]
  serving: [serve.mjs]   # the code that serves the model over HTTP
# serve: how \`modelctl deploy\` runs this version (see serve.mjs)
serve:
  command: [node, serve.mjs]   # started in the bundle directory with PORT (and HOST) set
  readinessPath: /healthz      # GET -> 200 once the model is loaded
  scoreField: score            # recorded per request (score gates, histograms)
  agreementField: label        # compared between a shadow version and the live one
metadata:                # free-form: anything your team wants to know about this version
  description: ""
`,
    'serve.mjs': SERVE_SCAFFOLD,
    'weights/README.md': 'Put model weights here (e.g. model.safetensors). Files of 8 MiB or more are stored as their own blobs and re-used across versions.\n',
    'prompts/system.txt': 'You are a helpful model.\n',
    'preprocessing/README.md': 'Put tokenizers and preprocessing code here.\n',
    'config/config.json': '{}\n',
  };
  await asLocalIO(`writing the new bundle ${out}`, out, async () => {
    for (const [rel, content] of Object.entries(files)) {
      await mkdirs(path.dirname(path.join(out, rel)));
      await writeFile(path.join(out, rel), content);
    }
  });
  return { path: out, name, files: Object.keys(files).sort() };
}
