import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { availableParallelism } from 'node:os';

/** Read size for hashing: large enough to amortise syscalls, small enough to stay constant-memory. */
const CHUNK = 1024 * 1024;

export interface FileHash {
  sha256: string;
  size: number;
}

/**
 * SHA-256 of a file in constant memory: two reused buffers, the next read in flight while the
 * current one is hashed, so the disk (or page cache) and the hash overlap instead of taking turns.
 */
export async function hashFile(filePath: string, onBytes?: (n: number) => void): Promise<FileHash> {
  const hash = createHash('sha256');
  const fh = await open(filePath, 'r');
  const buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
  let size = 0;
  try {
    let which = 0;
    let pending = fh.read(buffers[which]!, 0, CHUNK, null);
    for (;;) {
      const { bytesRead } = await pending;
      if (bytesRead === 0) break;
      const current = buffers[which]!;
      which ^= 1;
      pending = fh.read(buffers[which]!, 0, CHUNK, null);
      hash.update(current.subarray(0, bytesRead));
      size += bytesRead;
      onBytes?.(bytesRead);
    }
  } finally {
    await fh.close();
  }
  return { sha256: hash.digest('hex'), size };
}

/**
 * Hash many files. With two or more, they are spread over a worker-thread pool (one thread per
 * core), so a bundle of several large files hashes on every core; a single file is hashed on the
 * main thread, which avoids the pool's start-up cost.
 */
export async function hashFiles(paths: string[], onFileDone?: (p: string, h: FileHash) => void): Promise<Map<string, FileHash>> {
  const results = new Map<string, FileHash>();
  if (paths.length === 0) return results;
  if (paths.length === 1) {
    const h = await hashFile(paths[0]!);
    results.set(paths[0]!, h);
    onFileDone?.(paths[0]!, h);
    return results;
  }
  const { Piscina } = await import('piscina');
  const threads = Math.max(1, Math.min(paths.length, availableParallelism()));
  const pool = new Piscina({
    filename: new URL('./hash-worker.js', import.meta.url).href,
    minThreads: threads,
    maxThreads: threads,
  });
  try {
    await Promise.all(
      paths.map(async (p) => {
        const h = (await pool.run(p)) as FileHash;
        results.set(p, h);
        onFileDone?.(p, h);
      }),
    );
  } finally {
    await pool.destroy();
  }
  return results;
}
