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

/** Byte ranges of one file to hash apart: parts that tile the file, each with the tensors inside it. */
export interface PartsTask {
  file: string;
  parts: Array<{ start: number; end: number; tensors: Array<{ start: number; end: number }> }>;
}

export interface PartsHash {
  /** Per part: its SHA-256, and its tensors' (a part of one tensor: that tensor's is the part's). */
  parts: Array<{ sha256: string; size: number; tensors: string[] }>;
}

/**
 * SHA-256 of every part of a file and of every tensor of a multi-tensor run, in one sequential read
 * with constant memory (a tensor larger than memory is fine: only 1 MiB is held at a time).
 */
export async function hashParts(task: PartsTask): Promise<PartsHash> {
  const fh = await open(task.file, 'r');
  const buffer = Buffer.allocUnsafe(CHUNK);
  const out: PartsHash = { parts: [] };
  try {
    for (const part of task.parts) {
      const whole = createHash('sha256');
      const tensorHashes: string[] = [];
      const cuts = part.tensors.length > 1 ? part.tensors : [];
      let ti = 0;
      let th = cuts.length > 0 ? createHash('sha256') : undefined;
      let pos = part.start;
      while (pos < part.end) {
        const want = Math.min(CHUNK, part.end - pos);
        const { bytesRead } = await fh.read(buffer, 0, want, pos);
        if (bytesRead === 0) throw new Error(`${task.file} ended at byte ${pos}, before ${part.end}: it changed while being packed`);
        const chunk = buffer.subarray(0, bytesRead);
        whole.update(chunk);
        // Split the chunk at tensor boundaries for the per-tensor hashes of a run.
        let at = 0;
        while (th && at < chunk.length) {
          const t = cuts[ti]!;
          const take = Math.min(chunk.length - at, t.end - (pos + at));
          th.update(chunk.subarray(at, at + take));
          at += take;
          if (pos + at === t.end) {
            // Done (an empty tensor is done at once: take was 0).
            tensorHashes.push(th.digest('hex'));
            ti++;
            th = ti < cuts.length ? createHash('sha256') : undefined;
          }
        }
        pos += bytesRead;
      }
      while (th) {
        // Empty tensors at the very end of the part.
        tensorHashes.push(th.digest('hex'));
        ti++;
        th = ti < cuts.length ? createHash('sha256') : undefined;
      }
      const sha256 = whole.digest('hex');
      out.parts.push({ sha256, size: part.end - part.start, tensors: cuts.length > 0 ? tensorHashes : part.tensors.map(() => sha256) });
    }
  } finally {
    await fh.close();
  }
  return out;
}

/**
 * Hash many files. With two or more, they are spread over a worker-thread pool (one thread per
 * core), so a bundle of several large files hashes on every core; a single file is hashed on the
 * main thread, which avoids the pool's start-up cost.
 */
export async function hashFiles(
  paths: string[],
  onFileDone?: (p: string, h: FileHash) => void,
  /**
   * Files to hash part by part as well (safetensors split into tensors): each is a second task on
   * the pool beside its whole-file hash, so one large model file keeps two cores busy.
   */
  partTasks: PartsTask[] = [],
): Promise<{ files: Map<string, FileHash>; parts: Map<string, PartsHash> }> {
  const results = new Map<string, FileHash>();
  const parts = new Map<string, PartsHash>();
  if (paths.length === 0) return { files: results, parts };
  if (paths.length === 1 && partTasks.length === 0) {
    const h = await hashFile(paths[0]!);
    results.set(paths[0]!, h);
    onFileDone?.(paths[0]!, h);
    return { files: results, parts };
  }
  const { Piscina } = await import('piscina');
  const threads = Math.max(1, Math.min(paths.length + partTasks.length, availableParallelism()));
  const pool = new Piscina({
    filename: new URL('./hash-worker.js', import.meta.url).href,
    minThreads: threads,
    maxThreads: threads,
  });
  try {
    await Promise.all([
      ...paths.map(async (p) => {
        const h = (await pool.run(p)) as FileHash;
        results.set(p, h);
        onFileDone?.(p, h);
      }),
      ...partTasks.map(async (task) => {
        parts.set(task.file, (await pool.run(task, { name: 'hashPartsTask' })) as PartsHash);
      }),
    ]);
  } finally {
    await pool.destroy();
  }
  return { files: results, parts };
}
