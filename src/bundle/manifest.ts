import { createHash } from 'node:crypto';
import { z } from 'zod';
import { IntegrityError, UsageError } from '../core/errors.js';
import { safeRelativePath } from './paths.js';
import { bundleName, bundleVersion } from './spec.js';

export const MANIFEST_MEDIA_TYPE = 'application/vnd.modelctl.bundle.manifest.v1+json';
/**
 * Schema 2 adds files stored as parts (safetensors split into header and tensors, `parts` instead
 * of `blob`). A bundle is written as schema 2 only when it has such a file, so every other bundle
 * keeps schema 1 and its digest. modelctl before schema 2 refuses a schema-2 manifest (its schema
 * accepts `schemaVersion: 1` only: "not a modelctl v1 manifest … upgrade modelctl", exit 2) rather
 * than misreading a file it cannot reassemble.
 */
export const MANIFEST_MEDIA_TYPE_V2 = 'application/vnd.modelctl.bundle.manifest.v2+json';

/** Files at or above this size are stored as their own raw blob (deduplicated across versions). */
export const LARGE_FILE_BYTES = 8 * 1024 * 1024;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex digits');
export const digestSchema = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 hex digits>');

const tensorSchema = z
  .object({ name: z.string(), dtype: z.string(), shape: z.array(z.number().int().nonnegative()), size: z.number().int().nonnegative(), sha256: sha256Hex })
  .strict();

/** A byte range of a split file stored as one raw blob: the header, one tensor, or a run of small tensors. */
const partSchema = z.object({ blob: digestSchema, size: z.number().int().nonnegative(), tensors: z.array(tensorSchema) }).strict();

const manifestFileSchema = z
  .object({
    path: z.string().min(1),
    size: z.number().int().nonnegative(),
    executable: z.boolean(),
    /** SHA-256 of the file's bytes; for a split file, of the parts put together (checked on pull). */
    sha256: sha256Hex,
    /** The blob holding the file (raw, or inside a component tar). Absent for a split file. */
    blob: digestSchema.optional(),
    /** Schema 2: how the file was split (only "safetensors") and its parts, in file order. */
    format: z.literal('safetensors').optional(),
    /**
     * The run threshold the file was cut with (TENSOR_RUN_BYTES when packed): re-packing a pulled
     * directory cuts it the same way, so it verifies even if the default changes.
     */
    runBytes: z.number().int().positive().optional(),
    parts: z.array(partSchema).optional(),
  })
  .strict();

const manifestSchema = z
  .object({
    schemaVersion: z.union([z.literal(1), z.literal(2)]),
    mediaType: z.enum([MANIFEST_MEDIA_TYPE, MANIFEST_MEDIA_TYPE_V2]),
    name: bundleName,
    version: bundleVersion,
    spec: z.record(z.string(), z.unknown()),
    components: z.array(z.object({ name: z.string(), size: z.number().int().nonnegative(), files: z.array(manifestFileSchema) }).strict()),
    /** `part`: raw bytes of one part of a split file (schema 2); `file`: a whole file; `tar`: small files. */
    blobs: z.array(z.object({ digest: digestSchema, size: z.number().int().nonnegative(), kind: z.enum(['file', 'tar', 'part']) }).strict()),
    /**
     * bundle.yaml exactly as written (comments and all), stored as one more blob so a pull gives it
     * back byte for byte. Not part of the digest: the digest covers what bundle.yaml means (`spec`),
     * so reformatting or commenting it does not make a new bundle. Readers check that these bytes
     * parse to `spec` before writing them. Absent in bundles pushed before it existed.
     */
    bundleFile: z.object({ digest: digestSchema, size: z.number().int().nonnegative() }).strict().optional(),
  })
  .strict();

export type Manifest = z.output<typeof manifestSchema>;
export type ManifestFile = Manifest['components'][number]['files'][number];
export type ManifestBlob = Manifest['blobs'][number];
export type ManifestPart = NonNullable<ManifestFile['parts']>[number];
export type ManifestTensor = ManifestPart['tensors'][number];

/** A file stored as parts (schema 2). */
export type SplitFile = ManifestFile & { parts: ManifestPart[] };

export function isSplit(f: ManifestFile): f is SplitFile {
  return f.parts !== undefined;
}

/**
 * Canonical JSON: object keys sorted by code point, no whitespace, UTF-8. The digest of a bundle
 * is the SHA-256 of these bytes, so the same content yields the same digest everywhere.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new Error('canonical JSON cannot hold NaN or Infinity');
    return JSON.stringify(value) ?? 'null';
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function sha256Digest(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function hexOf(digest: string): string {
  return digest.slice('sha256:'.length);
}

export interface EncodedManifest {
  manifest: Manifest;
  bytes: Buffer;
  digest: string;
}

/** The bundle's digest: SHA-256 of the canonical manifest without `bundleFile` (see the schema). */
export function manifestDigest(manifest: Manifest): string {
  const { bundleFile: _formatting, ...identity } = manifest;
  return sha256Digest(canonicalJson(identity));
}

export function encodeManifest(manifest: Manifest): EncodedManifest {
  const bytes = Buffer.from(canonicalJson(manifest), 'utf8');
  return { manifest, bytes, digest: manifestDigest(manifest) };
}

/**
 * Parse manifest bytes read from a store or an archive (untrusted): the bytes must hash to the
 * expected digest, match the schema, and every path must be safe and listed once.
 */
export function decodeManifest(bytes: Buffer, expectedDigest: string | undefined, source: string): EncodedManifest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new IntegrityError(`manifest from ${source} is not valid JSON${expectedDigest ? ` (expected ${expectedDigest})` : ''}`, {
      details: { expected: expectedDigest, source },
    });
  }
  // Only canonical bytes are manifests: nothing but `bundleFile` may vary outside the digest.
  if (!bytes.equals(Buffer.from(canonicalJson(parsed), 'utf8'))) {
    throw new IntegrityError(`manifest from ${source} is not in canonical form${expectedDigest ? ` (expected ${expectedDigest})` : ''}`, {
      details: { expected: expectedDigest, source },
    });
  }
  const { bundleFile: _formatting, ...identity } = (parsed ?? {}) as Record<string, unknown>;
  const digest = sha256Digest(canonicalJson(identity));
  if (expectedDigest !== undefined && digest !== expectedDigest) {
    throw new IntegrityError(`manifest from ${source} does not match its digest: expected ${expectedDigest}, got ${digest}`, {
      details: { expected: expectedDigest, actual: digest, source },
    });
  }
  const result = manifestSchema.safeParse(parsed);
  if (!result.success) {
    const first = result.error.issues[0];
    throw new UsageError(`manifest ${digest} from ${source} is not a modelctl manifest of schema 1 or 2: ${first?.path.join('.')}: ${first?.message}`, {
      hint: 'it may have been written by a newer modelctl; upgrade modelctl',
      details: { digest, source },
    });
  }
  const manifest = result.data;
  const seen = new Set<string>();
  const blobs = new Map(manifest.blobs.map((b) => [b.digest, b]));
  const split = manifest.components.some((c) => c.files.some(isSplit));
  const v2 = manifest.schemaVersion === 2;
  if ((manifest.mediaType === MANIFEST_MEDIA_TYPE_V2) !== v2 || split !== v2) {
    throw new IntegrityError(`manifest ${digest} from ${source} is inconsistent: schemaVersion ${manifest.schemaVersion} with mediaType ${manifest.mediaType}${split ? ' and split files' : ''}`, {
      details: { digest, source },
    });
  }
  for (const c of manifest.components) {
    for (const f of c.files) {
      const safe = safeRelativePath(f.path, `manifest ${digest}: components.${c.name}`);
      if (safe !== f.path || seen.has(f.path)) {
        throw new IntegrityError(`manifest ${digest} from ${source} lists an unsafe or duplicate path "${f.path}"`, { details: { digest, path: f.path } });
      }
      checkFileBlobs(f, blobs, digest);
      seen.add(f.path);
    }
  }
  return { manifest, bytes, digest };
}

/** A file names exactly one blob or a list of parts, every one listed, the parts adding up to the file. */
function checkFileBlobs(f: ManifestFile, blobs: Map<string, ManifestBlob>, digest: string): void {
  const bad = (what: string) => new IntegrityError(`manifest ${digest}: file ${f.path} ${what}`, { details: { digest, path: f.path } });
  if ((f.blob === undefined) === (f.parts === undefined) || (f.parts !== undefined) !== (f.format !== undefined) || (f.parts !== undefined) !== (f.runBytes !== undefined)) {
    throw bad('must name either one blob or a format, a run size and its parts');
  }
  if (f.blob !== undefined && !blobs.has(f.blob)) throw bad(`names blob ${f.blob} that is not listed`);
  if (!f.parts) return;
  let total = 0;
  for (const p of f.parts) {
    const b = blobs.get(p.blob);
    if (!b || b.kind === 'tar' || b.size !== p.size) throw bad(`names part ${p.blob} (${p.size} bytes) that is not listed as a raw blob of that size`);
    if (p.tensors.reduce((n, t) => n + t.size, 0) > p.size) throw bad(`lists more tensor bytes than part ${p.blob} holds`);
    total += p.size;
  }
  if (total !== f.size) throw bad(`has parts of ${total} bytes in all, not its size ${f.size}`);
}

/** The whole-file blob digest of a split file: its own SHA-256 (the blob cache keeps the reassembled file under it). */
export function wholeFileDigest(f: ManifestFile): string {
  return `sha256:${f.sha256}`;
}

/**
 * What a blob holds, for error messages: "bundle.yaml", "weights/a.bin", or a part as
 * "weights/model.safetensors (tensors x, y)" / "(header)".
 */
export function describeBlob(manifest: Manifest, digest: string): string {
  if (digest === manifest.bundleFile?.digest) return 'bundle.yaml';
  const users: string[] = [];
  for (const c of manifest.components) {
    for (const f of c.files) {
      if (f.blob === digest) users.push(f.path);
      for (const p of f.parts ?? []) {
        if (p.blob !== digest) continue;
        users.push(`${f.path} (${p.tensors.length === 0 ? 'header' : `tensor${p.tensors.length > 1 ? 's' : ''} ${p.tensors.map((t) => t.name).slice(0, 8).join(', ')}${p.tensors.length > 8 ? ', …' : ''}`})`);
      }
    }
  }
  return users.join('; ') || digest;
}

export function totalSize(manifest: Manifest): number {
  return manifest.components.reduce((n, c) => n + c.size, 0);
}

export function fileCount(manifest: Manifest): number {
  return manifest.components.reduce((n, c) => n + c.files.length, 0);
}

/** Files stored inside a given tar blob, keyed by path. */
export function filesOfBlob(manifest: Manifest, blobDigest: string): Map<string, ManifestFile> {
  const files = new Map<string, ManifestFile>();
  for (const c of manifest.components) for (const f of c.files) if (f.blob === blobDigest) files.set(f.path, f);
  return files;
}
