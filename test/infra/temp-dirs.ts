import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processAlive } from '../../src/util/process.js';

/**
 * Remove temp dirs named `<prefix>…` whose owner (the pid in their `owner.pid`) is gone — left by
 * a test run that was SIGKILLed before its cleanup. Dirs being created (no owner file yet) are left.
 */
export function sweepStaleDirs(prefix: string): void {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const name of entries.filter((n) => n.startsWith(prefix))) {
    const dir = join(tmpdir(), name);
    try {
      const owner = Number(readFileSync(join(dir, 'owner.pid'), 'utf8').trim());
      if (Number.isInteger(owner) && owner > 0 && !processAlive(owner)) rmSync(dir, { recursive: true, force: true });
    } catch {
      /* no owner file (being created) or unreadable: leave it */
    }
  }
}
