import type { Readable } from 'node:stream';

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
  putManifest(digest: string, bytes: Buffer): Promise<void>;
  /** Manifest bytes, unverified, or undefined when absent. */
  getManifest(digest: string): Promise<Buffer | undefined>;
  /** Create-only: when the ref exists, nothing is written and the existing record is returned. */
  createRef(ref: RefRecord): Promise<CreateRefResult>;
  getRef(name: string, version: string): Promise<RefRecord | undefined>;
  /** Every ref of `name`, or of every model when name is omitted (any order). */
  listRefs(name?: string): Promise<RefRecord[]>;
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

/** Parse a ref object's bytes; refs are small JSON documents. */
export function parseRefRecord(bytes: Buffer, where: string): RefRecord {
  const v = JSON.parse(bytes.toString('utf8')) as Partial<RefRecord>;
  if (typeof v.name !== 'string' || typeof v.version !== 'string' || typeof v.digest !== 'string' || typeof v.createdAt !== 'string') {
    throw new Error(`ref ${where} is malformed`);
  }
  return { name: v.name, version: v.version, digest: v.digest, size: Number(v.size ?? 0), createdAt: v.createdAt };
}
