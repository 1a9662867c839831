import type { Readable } from 'node:stream';
import { IntegrityError } from '../core/errors.js';

/** What a version ref records. Refs are created once and never change. */
export interface RefRecord {
  name: string;
  version: string;
  digest: string;
  /** Total bytes of the bundle's files. */
  size: number;
  createdAt: string;
}

export type CreateRefResult = { created: true } | { created: false; existing: RefRecord };

/**
 * Where bundles live. Content-addressed and append-only:
 *   blobs/sha256/<2 hex>/<hex>    raw file or component tar, bytes hash to the name
 *   manifests/sha256/<hex>.json   canonical manifest, bytes hash to the name
 *   refs/<name>/<version>.json    RefRecord, created last and create-only
 * Implementations verify the SHA-256 of every blob they write before it becomes visible, so a
 * blob key never holds wrong bytes; readers verify again (the store may be tampered with).
 */
export interface BundleStore {
  /** A URL that names this store (`file:///…`, `s3://bucket/prefix`). */
  readonly url: string;
  hasBlob(digest: string, size: number): Promise<boolean>;
  /**
   * Store a blob from a stream, checking its bytes hash to `digest` (IntegrityError otherwise,
   * and nothing is stored). `onBytes` reports progress.
   */
  putBlob(digest: string, size: number, body: Readable, onBytes?: (n: number) => void): Promise<void>;
  /** The blob's bytes, unverified (the caller hashes them). NotFoundError when absent. */
  getBlob(digest: string): Promise<Readable>;
  /**
   * Optional (stores that can do better than one stream, such as S3's parallel ranged GETs): fetch
   * the blob into the local file `dest`, verified — it appears under `dest` only once its bytes hash
   * to `digest` (IntegrityError otherwise, after fetching again once if resumed bytes were bad).
   * `dest` must not exist. An interrupted download leaves `opts.partial` (default `<dest>.partial`)
   * and a record beside it; a later call with the same `partial` fetches only what is missing.
   */
  downloadBlob?(digest: string, size: number, dest: string, opts?: BlobDownload): Promise<{ fetchedBytes: number; resumedBytes: number }>;
  putManifest(digest: string, bytes: Buffer): Promise<void>;
  /** Manifest bytes, unverified, or undefined when absent. */
  getManifest(digest: string): Promise<Buffer | undefined>;
  /** Create-only: when the ref exists, nothing is written and the existing record is returned. */
  createRef(ref: RefRecord): Promise<CreateRefResult>;
  getRef(name: string, version: string): Promise<RefRecord | undefined>;
  /**
   * Every ref of `name`, or of every model when name is omitted (any order). A damaged ref object
   * is left out and handed to `onBadRef` (so one bad file never hides the other versions); without
   * `onBadRef` it throws.
   */
  listRefs(name?: string, onBadRef?: (err: CorruptRefError) => void): Promise<RefRecord[]>;
  /** False when the store's location does not exist at all (a mistyped path); stores that cannot tell omit it. */
  exists?(): Promise<boolean>;
}

export interface BlobDownload {
  /** Where bytes gather until verified: a stable name per blob makes an interrupted download resumable. */
  partial?: string | undefined;
  /** Progress: bytes fetched, and bytes resumed from an earlier download (reported once, first). */
  onBytes?: ((n: number) => void) | undefined;
}

export function blobKey(digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return `blobs/sha256/${hex.slice(0, 2)}/${hex}`;
}

export function manifestKey(digest: string): string {
  return `manifests/sha256/${digest.slice('sha256:'.length)}.json`;
}

export function refKey(name: string, version: string): string {
  return `refs/${name}/${version}.json`;
}

/** A ref object that cannot be read: names the object and says how to mend it (exit 6). */
export class CorruptRefError extends IntegrityError {
  constructor(where: string, problem: string, store: string) {
    super(`ref ${where} in ${store} is damaged: ${problem}`, {
      hint: `delete ${where} from the store and push that version again from its source (\`modelctl bundle push <bundle dir or archive> --store ${store}\`); other versions are not affected`,
      details: { ref: where, store },
    });
  }
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** Parse a ref object's bytes; refs are small JSON documents. CorruptRefError when they are not one. */
export function parseRefRecord(bytes: Buffer, where: string, store: string): RefRecord {
  let v: Partial<RefRecord>;
  try {
    v = JSON.parse(bytes.toString('utf8')) as Partial<RefRecord>;
  } catch (err) {
    throw new CorruptRefError(where, `${bytes.length === 0 ? 'it is empty' : `it is not valid JSON (${(err as Error).message}; ${bytes.length} bytes)`}`, store);
  }
  if (v === null || typeof v !== 'object') throw new CorruptRefError(where, 'it is not a JSON object', store);
  for (const field of ['name', 'version', 'digest', 'createdAt'] as const) {
    if (typeof v[field] !== 'string') throw new CorruptRefError(where, `field "${field}" is ${v[field] === undefined ? 'missing' : `not a string (${JSON.stringify(v[field])})`}`, store);
  }
  if (!DIGEST.test(v.digest!)) throw new CorruptRefError(where, `field "digest" is ${JSON.stringify(v.digest)}, not sha256:<64 hex digits>`, store);
  return { name: v.name!, version: v.version!, digest: v.digest!, size: Number(v.size ?? 0), createdAt: v.createdAt! };
}
