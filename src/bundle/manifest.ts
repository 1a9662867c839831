import { createHash } from 'node:crypto';
import { z } from 'zod';
import { IntegrityError, UsageError } from '../core/errors.js';
import { safeRelativePath } from './paths.js';
import { bundleName, bundleVersion } from './spec.js';

export const MANIFEST_MEDIA_TYPE = 'application/vnd.modelctl.bundle.manifest.v1+json';

/** Files at or above this size are stored as their own raw blob (deduplicated across versions). */
export const LARGE_FILE_BYTES = 8 * 1024 * 1024;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex digits');
export const digestSchema = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 hex digits>');

const manifestFileSchema = z
  .object({
    path: z.string().min(1),
    size: z.number().int().nonnegative(),
    executable: z.boolean(),
    sha256: sha256Hex,
    blob: digestSchema,
  })
  .strict();

const manifestSchema = z
  .object({
    schemaVersion: z.literal(1),
    mediaType: z.literal(MANIFEST_MEDIA_TYPE),
    name: bundleName,
    version: bundleVersion,
    spec: z.record(z.string(), z.unknown()),
    components: z.array(z.object({ name: z.string(), size: z.number().int().nonnegative(), files: z.array(manifestFileSchema) }).strict()),
    blobs: z.array(z.object({ digest: digestSchema, size: z.number().int().nonnegative(), kind: z.enum(['file', 'tar']) }).strict()),
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
    throw new UsageError(`manifest ${digest} from ${source} is not a modelctl v1 manifest: ${first?.path.join('.')}: ${first?.message}`, {
      hint: 'it may have been written by a newer modelctl; upgrade modelctl',
      details: { digest, source },
    });
  }
  const manifest = result.data;
  const seen = new Set<string>();
  const blobs = new Set(manifest.blobs.map((b) => b.digest));
  for (const c of manifest.components) {
    for (const f of c.files) {
      const safe = safeRelativePath(f.path, `manifest ${digest}: components.${c.name}`);
      if (safe !== f.path || seen.has(f.path)) {
        throw new IntegrityError(`manifest ${digest} from ${source} lists an unsafe or duplicate path "${f.path}"`, { details: { digest, path: f.path } });
      }
      if (!blobs.has(f.blob)) throw new IntegrityError(`manifest ${digest}: file ${f.path} names blob ${f.blob} that is not listed`);
      seen.add(f.path);
    }
  }
  return { manifest, bytes, digest };
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
