// Worker-thread entry for hashFiles(): one task per message (a whole file, or the parts of a split
// file), answered with the result or the error's fields.
import { parentPort } from 'node:worker_threads';
import { runHashTask, type HashReply, type HashTask } from './hash.js';

parentPort!.on('message', (t: HashTask) => {
  runHashTask(t).then(
    (result) => parentPort!.postMessage({ ok: true, result } satisfies HashReply),
    (err: NodeJS.ErrnoException) =>
      parentPort!.postMessage({
        ok: false,
        error: { message: err.message, ...(err.code ? { code: err.code } : {}), ...(err.path ? { path: err.path } : {}), ...(err.syscall ? { syscall: err.syscall } : {}), ...(err.errno !== undefined ? { errno: err.errno } : {}) },
      } satisfies HashReply),
  );
});
