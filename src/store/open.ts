import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../core/errors.js';
import type { BundleStore } from './store.js';

export type StoreLocation = { kind: 'file'; root: string } | { kind: 's3'; bucket: string; prefix: string };

/**
 * Parse a store URL: `file:///abs/path`, `file://relative/path`, a plain path, or
 * `s3://bucket[/prefix]`. Relative paths resolve against `cwd`.
 */
export function parseStoreUrl(url: string, cwd = process.cwd()): StoreLocation {
  if (url.startsWith('s3://')) {
    const rest = url.slice('s3://'.length);
    const [bucket = '', ...prefix] = rest.split('/');
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
      throw new UsageError(`store "${url}": "${bucket}" is not a valid S3 bucket name`, { hint: 'use s3://<bucket>/<optional prefix>' });
    }
    return { kind: 's3', bucket, prefix: prefix.join('/').replace(/\/+$/, '') };
  }
  if (url.startsWith('file://')) {
    const root = url.startsWith('file:///') ? fileURLToPath(url) : path.resolve(cwd, url.slice('file://'.length));
    return { kind: 'file', root };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new UsageError(`store "${url}": unsupported scheme`, { hint: 'use file://<path> or s3://<bucket>/<prefix>' });
  }
  return { kind: 'file', root: path.resolve(cwd, url) };
}

export interface OpenStoreOptions {
  s3PathStyle: boolean;
}

/** Open a store; the AWS SDK is only loaded for s3:// stores (keeps start-up light). */
export async function openStore(url: string, opts: OpenStoreOptions): Promise<BundleStore> {
  const loc = parseStoreUrl(url);
  if (loc.kind === 'file') {
    const { FsStore } = await import('./fs-store.js');
    return new FsStore(loc.root);
  }
  const { S3Store, createS3Client, s3EndpointOf } = await import('./s3-store.js');
  const { transferSettings } = await import('./s3-transfer.js');
  const transfer = transferSettings();
  const client = createS3Client({ bucket: loc.bucket, prefix: loc.prefix, pathStyle: opts.s3PathStyle, maxSockets: transfer.concurrency });
  return new S3Store(client, loc.bucket, loc.prefix, s3EndpointOf({}), transfer);
}
