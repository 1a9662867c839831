import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { removeOnInterrupt } from '../core/cleanup.js';
import { UsageError } from '../core/errors.js';
import { silentProgress, type Progress } from '../core/progress.js';
import { hashFiles, type PartsTask } from './hash.js';
import { planParts, readSafetensorsLayout, SafetensorsFormatError, TENSOR_RUN_BYTES, type PlannedPart } from './safetensors.js';
import {
  canonicalJson,
  encodeManifest,
  LARGE_FILE_BYTES,
  MANIFEST_MEDIA_TYPE,
  MANIFEST_MEDIA_TYPE_V2,
  type EncodedManifest,
  type Manifest,
  type ManifestBlob,
  type ManifestFile,
  sha256Digest,
} from './manifest.js';
import { collectFiles, compareBytes, safeRelativePath, type SourceFile } from './paths.js';
import { parseYamlText } from '../core/yaml-file.js';
import { BUNDLE_FILE, bundleSpecSchema, bundleVersion, loadBundleSpec, MAX_BUNDLE_FILE_BYTES, type BundleSpec } from './spec.js';
import { writeDeterministicTar } from './tar-io.js';

/**
 * A bundle whose manifest is known and whose blobs can be streamed: a packed directory, an
 * extracted archive, or a ref in a store. Push, archive writing and verification consume this.
 */
export interface BundleSource {
  /** What the user named: a directory, an archive file or a ref. */
  readonly origin: string;
  readonly encoded: EncodedManifest;
  /** A fresh stream of the blob's bytes (the consumer verifies them against the digest). */
  openBlob(digest: string): Promise<Readable>;
  /** A local file holding exactly the blob's bytes, when there is one. */
  localBlobPath(digest: string): string | undefined;
  /** Remove temporary files. Safe to call twice. */
  close(): Promise<void>;
  /** What packing noticed and worked around (e.g. a .safetensors file that does not parse, stored whole). */
  readonly warnings?: string[];
}

export interface PackOptions {
  /** Overrides bundle.yaml's version (e.g. 1.4.0-rc.1+<git sha> in CI). */
  version?: string | undefined;
  /** Reports hashing of large files and writing of component tars (coarse: per file). */
  progress?: Progress;
  /** Tensors below this many bytes are coalesced into runs (see TENSOR_RUN_BYTES); for tests and benches. */
  tensorRunBytes?: number;
}

/**
 * Whether a large file is split into tensors: `.safetensors` files only. Other large files keep one
 * whole-file blob. Content-defined chunking (Xet's ~64 KiB chunks) would dedup them too, but it
 * costs a rolling hash over every byte at pack and push, thousands of objects per GiB (a request
 * each on S3) and a chunk index; for the other formats in a bundle (ONNX, GGUF, tokenizers) a
 * new version rewrites most bytes, so whole files lose little. Safetensors tensors are already
 * the unit a fine-tune changes, named and bounded in a header: exact dedup for free.
 */
export function isSafetensors(relPath: string): boolean {
  return relPath.toLowerCase().endsWith('.safetensors');
}

/** A blob to read from a byte range of a bundle file (a part of a split file). */
interface RangeBlob {
  filePath: string;
  start: number;
  end: number;
}

/** A private temp directory, removed even if the process is interrupted before its owner's cleanup runs. */
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), `modelctl-${prefix}-`));
  removeOnInterrupt(dir);
  return dir;
}

/**
 * Pack a bundle directory: validate bundle.yaml, collect and check every component file, hash
 * large files on all cores, group each component's small files into one deterministic tar blob,
 * and build the canonical manifest. The manifest's per-file hashes of small files are read back
 * from the tar that was written, so the manifest always describes exactly the bytes stored.
 */
export async function packDirectory(bundleDir: string, opts: PackOptions = {}): Promise<BundleSource> {
  const dir = path.resolve(bundleDir);
  const spec = await loadBundleSpec(dir);
  let version = spec.version;
  if (opts.version !== undefined) {
    const checked = bundleVersion.safeParse(opts.version);
    if (!checked.success) throw new UsageError(`--version "${opts.version}": ${checked.error.issues[0]?.message}`);
    version = opts.version;
  }
  const { components } = specIdentity(spec, version).spec as { components: Record<string, string[]> };
  const files = await collectFiles(dir, components);

  const large = files.filter((f) => f.size >= LARGE_FILE_BYTES);
  const small = files.filter((f) => f.size < LARGE_FILE_BYTES);
  const progress = opts.progress ?? silentProgress;
  const warnings: string[] = [];
  // Safetensors files are split along their tensors (see isSafetensors). One that does not parse is
  // stored whole with a warning, not refused: modelctl ships what it is given (a file named
  // .safetensors may be a Git LFS pointer, random test bytes or a newer format variant), its digest
  // is then what it was before splitting existed, and the model's loader is the judge of the bytes.
  const plans = new Map<string, PlannedPart[]>();
  const runBytes = opts.tensorRunBytes ?? TENSOR_RUN_BYTES;
  for (const f of large) {
    if (!isSafetensors(f.path) || plans.has(f.absPath)) continue;
    try {
      plans.set(f.absPath, planParts(await readSafetensorsLayout(f.absPath, f.size), runBytes));
    } catch (err) {
      if (!(err instanceof SafetensorsFormatError)) throw err;
      warnings.push(`${f.path} is not a valid safetensors file: ${err.message}; stored as one whole-file blob (no tensor-level dedup)`);
    }
  }
  progress.start(`hashing ${spec.name}`, files.reduce((n, f) => n + f.size, 0));
  const partTasks: PartsTask[] = [...plans].map(([file, parts]) => ({ file, parts: parts.map((p) => ({ start: p.start, end: p.end, tensors: p.tensors })) }));
  const hashed = await hashFiles([...new Set(large.map((f) => f.absPath))], (_p, h) => progress.advance(h.size), partTasks);
  const largeHashes = hashed.files;

  const tmp = await makeTempDir('pack');
  let bundleFile: { digest: string; size: number; filePath: string } | undefined;
  try {
    const blobs = new Map<string, ManifestBlob & { filePath: string; range?: RangeBlob }>();
    const entries: Array<ManifestFile & { component: string }> = [];

    for (const f of large) {
      const h = largeHashes.get(f.absPath)!;
      const plan = plans.get(f.absPath);
      const partHashes = hashed.parts.get(f.absPath);
      if (plan && partHashes) {
        const parts = plan.map((p, i) => {
          const ph = partHashes.parts[i]!;
          const digest = `sha256:${ph.sha256}`;
          if (!blobs.has(digest)) blobs.set(digest, { digest, size: ph.size, kind: 'part', filePath: f.absPath, range: { filePath: f.absPath, start: p.start, end: p.end } });
          return {
            blob: digest,
            size: ph.size,
            tensors: p.tensors.map((t, j) => ({ name: t.name, dtype: t.dtype, shape: t.shape, size: t.end - t.start, sha256: ph.tensors[j]! })),
          };
        });
        // Two reads of the file (whole, and by parts, on two threads): they must have seen the same file.
        if (parts.reduce((n, p) => n + p.size, 0) !== h.size) {
          throw new UsageError(`${f.path} changed while it was being packed`, { hint: 'something is still writing to the bundle directory: let it finish, then pack again' });
        }
        entries.push({ component: f.component, path: f.path, size: h.size, executable: f.executable, sha256: h.sha256, format: 'safetensors', runBytes, parts });
        continue;
      }
      const digest = `sha256:${h.sha256}`;
      blobs.set(digest, { digest, size: h.size, kind: 'file', filePath: f.absPath });
      entries.push({ component: f.component, path: f.path, size: h.size, executable: f.executable, sha256: h.sha256, blob: digest });
    }

    const byComponent = new Map<string, SourceFile[]>();
    // push, not spread: copying the list for every file made 20,000 small files quadratic (seconds of GC).
    for (const f of small) {
      const list = byComponent.get(f.component);
      if (list) list.push(f);
      else byComponent.set(f.component, [f]);
    }
    for (const [component, list] of byComponent) {
      const tarPath = path.join(tmp, `${component}.tar`);
      const tarHash = await writeDeterministicTar(dir, list.map((f) => f.path), tarPath, list.reduce((n, f) => n + f.size, 0));
      const digest = `sha256:${tarHash.sha256}`;
      blobs.set(digest, { digest, size: tarHash.size, kind: 'tar', filePath: tarPath });
      const stored = tarHash.entries;
      for (const f of list) {
        const e = stored.get(f.path);
        if (!e) throw new Error(`internal: ${f.path} missing from the ${component} tar`);
        entries.push({ component, path: f.path, size: e.size, executable: (e.mode & 0o111) !== 0, sha256: e.sha256, blob: digest });
      }
      progress.advance(list.reduce((n, f) => n + f.size, 0));
    }

    const identity = specIdentity(spec, version);
    // bundle.yaml as written, so that a pull gives back the same bytes (comments included). With
    // --version, its top-level `version:` line is rewritten to the version being packed.
    const written = await recordedBundleFile(dir, version, identity);
    if (written) {
      const file = path.join(tmp, BUNDLE_FILE);
      await writeFile(file, written, { flag: 'wx', mode: 0o600 });
      bundleFile = { digest: sha256Digest(written), size: written.length, filePath: file };
    }
    const split = entries.some((e) => e.parts !== undefined);
    const manifest: Manifest = {
      schemaVersion: split ? 2 : 1,
      mediaType: split ? MANIFEST_MEDIA_TYPE_V2 : MANIFEST_MEDIA_TYPE,
      name: spec.name,
      version,
      spec: identity.spec,
      ...(bundleFile ? { bundleFile: { digest: bundleFile.digest, size: bundleFile.size } } : {}),
      components: Object.keys(components)
        .sort(compareBytes)
        .map((name) => {
          const own = entries.filter((e) => e.component === name).sort((a, b) => compareBytes(a.path, b.path));
          return {
            name,
            size: own.reduce((n, e) => n + e.size, 0),
            files: own.map(({ component: _c, ...file }) => file),
          };
        }),
      blobs: [...blobs.values()].map(({ filePath: _f, range: _r, ...b }) => b).sort((a, b) => compareBytes(a.digest, b.digest)),
    };
    const encoded = encodeManifest(manifest);
    progress.finish();
    // A part is read from its range of the bundle file: never copied, whatever the tensor's size.
    const fileOf = (digest: string) => (blobs.get(digest)?.range ? undefined : (blobs.get(digest)?.filePath ?? (bundleFile?.digest === digest ? bundleFile.filePath : undefined)));
    return {
      origin: dir,
      encoded,
      openBlob: async (digest) => {
        const range = blobs.get(digest)?.range;
        if (range) return createReadStream(range.filePath, { start: range.start, end: range.end - 1, highWaterMark: 1024 * 1024 });
        return createReadStream(fileOf(digest)!, { highWaterMark: 1024 * 1024 });
      },
      localBlobPath: fileOf,
      close: () => rm(tmp, { recursive: true, force: true }),
      warnings,
    };
  } catch (err) {
    progress.finish();
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** What a bundle.yaml means, as the manifest records it: name, version and the rest with component paths normalised. */
export function specIdentity(spec: BundleSpec, version: string): { name: string; version: string; spec: Record<string, unknown> } {
  const components: Record<string, string[]> = {};
  for (const [name, paths] of Object.entries(spec.components)) {
    components[name] = [...new Set(paths.map((p, i) => safeRelativePath(p, `bundle.yaml: components.${name}[${i}]`)))];
  }
  const { name, version: _v, ...rest } = spec;
  return { name, version, spec: { ...rest, components } };
}

/** True when `bytes` is a bundle.yaml that means exactly what `manifest` records. */
export function bundleFileMatches(bytes: Buffer, manifest: Manifest): boolean {
  if (bytes.length > MAX_BUNDLE_FILE_BYTES) return false;
  try {
    const spec = parseYamlText(bytes.toString('utf8'), BUNDLE_FILE, bundleSpecSchema, 'bundle file');
    if (spec.version !== manifest.version) return false;
    return canonicalJson(specIdentity(spec, spec.version)) === canonicalJson({ name: manifest.name, version: manifest.version, spec: manifest.spec });
  } catch {
    return false;
  }
}

/**
 * The bytes of `dir`/bundle.yaml to keep with the bundle: as written, or with its top-level
 * `version:` value replaced when --version packs another version. Undefined when the result would
 * not mean exactly what the manifest records (then a pull regenerates bundle.yaml, as before).
 */
async function recordedBundleFile(dir: string, version: string, identity: ReturnType<typeof specIdentity>): Promise<Buffer | undefined> {
  let text = await readFile(path.join(dir, BUNDLE_FILE), 'utf8');
  const spec = parseYamlText(text, BUNDLE_FILE, bundleSpecSchema, 'bundle file');
  if (spec.version !== version) {
    const line = /^version:[ \t]*(?:"[^"\n]*"|'[^'\n]*'|[^\s#]+)/m;
    if (!line.test(text)) return undefined;
    text = text.replace(line, `version: ${JSON.stringify(version)}`);
  }
  const bytes = Buffer.from(text, 'utf8');
  const check = { name: identity.name, version, spec: identity.spec };
  return bundleFileMatches(bytes, check as unknown as Manifest) ? bytes : undefined;
}
