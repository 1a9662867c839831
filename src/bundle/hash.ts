import { createHash } from 'node:crypto';
import { closeSync, open as fsOpen, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
// A builtin: loading it costs next to nothing (process.getBuiltinModule would need Node 22.3; engines says >= 22).
import { Worker } from 'node:worker_threads';

/** Read size for hashing: large enough to amortise syscalls, small enough to stay constant-memory. */
const CHUNK = 1024 * 1024;

export interface FileHash {
  sha256: string;
  size: number;
}

/**
 * How much is read and hashed between two turns of the event loop when the reads are synchronous
 * (ReadMode `inline`): the thread lets its timers and messages (progress lines) in this often.
 */
const YIELD_EVERY = 8 * CHUNK;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * How a hashing thread reads: `overlapped` — the next chunk read by libuv's thread pool (another
 * core) while this one hashes the current one, for a thread that hashes alone; `inline` — the
 * thread reads each chunk itself (synchronously) and hashes it, for when every core is hashing.
 *
 * Measured on the 2-core machine: with both cores hashing (4 × 256 MiB on two threads), inline
 * reads cost ~15% less CPU (user+sys 1.07 s against 1.25 s) — the thread-pool copies compete with
 * the hashing threads for the same two cores — and `bundle pack` took 746–777 ms instead of
 * 810–915 ms. Alone (one 1 GiB file), overlapping wins: the idle core does the copies (1.10 s
 * against 1.30 s for the same pack).
 */
export type ReadMode = 'overlapped' | 'inline';

/** SHA-256 of a file in constant memory (1 MiB buffers), read as `reads` says. */
export async function hashFile(filePath: string, onBytes?: (n: number) => void, reads: ReadMode = 'overlapped'): Promise<FileHash> {
  return reads === 'inline' ? hashFileInline(filePath, onBytes) : hashFileOverlapped(filePath, onBytes);
}

/** Two reused buffers, the next read in flight while the current one is hashed. */
async function hashFileOverlapped(filePath: string, onBytes?: (n: number) => void): Promise<FileHash> {
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

/** One buffer, read synchronously by the hashing thread itself; it yields every 8 MiB. */
async function hashFileInline(filePath: string, onBytes?: (n: number) => void): Promise<FileHash> {
  const hash = createHash('sha256');
  const fd = await openFd(filePath);
  const buffer = Buffer.allocUnsafe(CHUNK);
  let size = 0;
  try {
    for (let sinceYield = 0; ; ) {
      const bytesRead = readSync(fd, buffer, 0, CHUNK, null);
      if (bytesRead === 0) break;
      hash.update(bytesRead === CHUNK ? buffer : buffer.subarray(0, bytesRead));
      size += bytesRead;
      onBytes?.(bytesRead);
      if ((sinceYield += bytesRead) >= YIELD_EVERY) {
        sinceYield = 0;
        await nextTurn();
      }
    }
  } finally {
    closeSync(fd);
  }
  return { sha256: hash.digest('hex'), size };
}

/** open(2) for reading, off the thread (a slow file system may take its time to open). */
function openFd(filePath: string): Promise<number> {
  return new Promise((resolve, reject) => fsOpen(filePath, 'r', (err, fd) => (err ? reject(err) : resolve(fd))));
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
  const fd = await openFd(task.file);
  const buffer = Buffer.allocUnsafe(CHUNK);
  const out: PartsHash = { parts: [] };
  let sinceYield = 0;
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
        // Read inline (ReadMode): a parts task always runs beside its file's whole-file task.
        const bytesRead = readSync(fd, buffer, 0, want, pos);
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
        if ((sinceYield += bytesRead) >= YIELD_EVERY) {
          sinceYield = 0;
          await nextTurn();
        }
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
    closeSync(fd);
  }
  return out;
}

/** One unit of hashing work: a whole file, or the parts of a split file. */
export type HashTask = { kind: 'file'; file: string } | { kind: 'parts'; task: PartsTask };
export type HashTaskResult = FileHash | PartsHash;

/**
 * Run one task (on whichever thread: the main one or a hash worker). Workers run only beside other
 * hashers, so their reads are inline unless told otherwise (ReadMode).
 */
export function runHashTask(t: HashTask, reads: ReadMode = 'inline'): Promise<HashTaskResult> {
  return t.kind === 'file' ? hashFile(t.file, undefined, reads) : hashParts(t.task);
}

/** What a worker sends back: the result, or the error's fields (an Error's `code` does not survive postMessage). */
export type HashReply = { ok: true; result: HashTaskResult } | { ok: false; error: { message: string; code?: string; path?: string; syscall?: string; errno?: number } };

/**
 * Hash many files on every core: the main thread and one worker thread per other core take tasks
 * from one queue, biggest first (a big file taken last would finish alone). The main thread hashes
 * too, rather than waiting on a pool of one worker per core: it starts at once, while a worker is
 * still booting (~30 ms of CPU per thread, on the same cores), and it saves that thread altogether.
 * A single task runs on the main thread alone. Memory is two 1 MiB buffers per thread, whatever
 * the sizes.
 */
export async function hashFiles(
  paths: string[],
  onFileDone?: (p: string, h: FileHash) => void,
  /**
   * Files to hash part by part as well (safetensors split into tensors): each is a second task
   * beside its whole-file hash, so one large model file keeps two cores busy.
   */
  partTasks: PartsTask[] = [],
): Promise<{ files: Map<string, FileHash>; parts: Map<string, PartsHash> }> {
  const files = new Map<string, FileHash>();
  const parts = new Map<string, PartsHash>();
  const { stat } = await import('node:fs/promises');
  const sized = await Promise.all([
    ...paths.map(async (file) => ({ t: { kind: 'file', file } as HashTask, size: (await stat(file)).size })),
    ...partTasks.map(async (task) => ({ t: { kind: 'parts', task } as HashTask, size: task.parts.reduce((n, p) => n + p.end - p.start, 0) })),
  ]);
  const queue = sized.sort((a, b) => b.size - a.size).map((s) => s.t);
  const done = (t: HashTask, r: HashTaskResult) => {
    if (t.kind === 'file') {
      files.set(t.file, r as FileHash);
      onFileDone?.(t.file, r as FileHash);
    } else parts.set(t.task.file, r as PartsHash);
  };
  const workerCount = Math.max(0, Math.min(queue.length, availableParallelism()) - 1);
  const workers = takeHashWorkers(workerCount);
  try {
    // Each hasher takes the next task when it is free; the first error stops the others taking more.
    let failed = false;
    const drain = async (run: (t: HashTask) => Promise<HashTaskResult>) => {
      for (let t = queue.shift(); t && !failed; t = queue.shift()) {
        try {
          done(t, await run(t));
        } catch (err) {
          failed = true;
          throw err;
        }
      }
    };
    // The main thread alone (one task, or one core): its reads overlap its hashing on the idle core.
    const mainReads: ReadMode = workers.length > 0 ? 'inline' : 'overlapped';
    await Promise.all([drain((t) => runHashTask(t, mainReads)), ...workers.map((w) => drain(w.run))]);
  } finally {
    for (const w of workers) w.stop();
  }
  return { files, parts };
}

interface HashWorker {
  run(t: HashTask): Promise<HashTaskResult>;
  stop(): void;
  /** Keep the process alive while this worker works (a prestarted worker idles unref'd). */
  ref(): void;
}

/** Workers started ahead of need by prestartHashWorkers(), not yet taken by hashFiles(). */
let prestarted: HashWorker[] = [];

/**
 * Start the hash workers now, while the main thread still has modules to load (the CLI framework,
 * the bundle.yaml schema): a worker's boot (~40 ms of CPU, more on a busy machine) then overlaps
 * that start-up on the other cores instead of delaying the worker's first byte. hashFiles() takes
 * them. They are unref'd until taken, so a command that fails before hashing still exits at once.
 * bin/run.js calls this for `bundle pack`, whose time is the hashing.
 */
export function prestartHashWorkers(n = availableParallelism() - 1): void {
  if (prestarted.length > 0 || n <= 0) return;
  prestarted = Array.from({ length: n }, () => hashWorker(false));
}

/** n workers: the prestarted ones first (extra ones are stopped), then new ones. */
function takeHashWorkers(n: number): HashWorker[] {
  const taken = prestarted.splice(0, n);
  for (const w of prestarted.splice(0)) w.stop();
  for (const w of taken) w.ref();
  return [...taken, ...Array.from({ length: n - taken.length }, () => hashWorker(true))];
}

/** A worker thread running hash-worker.js, one task at a time. */
function hashWorker(referenced: boolean): HashWorker {
  const worker = new Worker(new URL('./hash-worker.js', import.meta.url));
  let pending: { resolve: (r: HashTaskResult) => void; reject: (e: Error) => void } | undefined;
  let dead: Error | undefined;
  const fail = (e: Error) => {
    dead ??= e;
    pending?.reject(dead);
    pending = undefined;
  };
  worker.on('message', (reply: HashReply) => {
    const p = pending;
    pending = undefined;
    if (reply.ok) p?.resolve(reply.result);
    else p?.reject(Object.assign(new Error(reply.error.message), reply.error));
  });
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`a hash worker thread stopped (exit code ${code})`)));
  // After the listeners: adding a 'message' listener refs the worker's port again.
  if (!referenced) worker.unref();
  return {
    run: (t) =>
      new Promise<HashTaskResult>((resolve, reject) => {
        if (dead) return reject(dead);
        pending = { resolve, reject };
        worker.postMessage(t);
      }),
    stop: () => {
      dead ??= new Error('hash worker stopped');
      void worker.terminate();
    },
    ref: () => worker.ref(),
  };
}
