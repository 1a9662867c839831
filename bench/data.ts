import { randomFillSync } from 'node:crypto';
import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';

const MiB = 1024 * 1024;

/** Random bytes via crypto, written in 4 MiB chunks through one reused buffer (never a whole file in memory). */
export async function writeRandomFile(file: string, size: number): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const CHUNK = 4 * MiB;
  const buf = Buffer.allocUnsafe(CHUNK);
  const fh = await open(file, 'wx', 0o644);
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(CHUNK, size - done);
      randomFillSync(buf, 0, n);
      let off = 0;
      while (off < n) off += (await fh.write(buf, off, n - off)).bytesWritten;
      done += n;
    }
    // On disk before any timing starts: else the kernel's write-back (30 s later) lands in a measure.
    await fh.sync();
  } finally {
    await fh.close();
  }
}
