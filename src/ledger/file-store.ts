import { link, mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { emptyLedger, LedgerConflictError, type LedgerStore, type ModelLedger, type Versioned } from './model.js';

/** Revisions kept per model besides the newest (a short audit trail, and room for slow readers). */
const KEEP_REVISIONS = 20;

/**
 * Ledgers in files: `<root>/<model>/<revision>.json`, one immutable file per revision.
 * Compare-and-swap is an exclusive create of revision N+1: `link()` of a complete, fsynced temp
 * file fails with EEXIST when another writer got there first, so two writers can never both win
 * and a crash never leaves a half-written ledger (the newest complete revision is the ledger).
 */
export class FileLedgerStore implements LedgerStore {
  /** `root` holds the ledgers of one target (e.g. $MODELCTL_HOME/ledger/local). */
  constructor(
    private readonly root: string,
    private readonly target: string,
  ) {}

  private dir(model: string): string {
    return path.join(this.root, model);
  }

  private async revisions(model: string): Promise<number[]> {
    const names = await readdir(this.dir(model)).catch(() => [] as string[]);
    return names
      .map((n) => /^(\d+)\.json$/.exec(n)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  async read(model: string): Promise<Versioned<ModelLedger>> {
    for (;;) {
      const revs = await this.revisions(model);
      const newest = revs.at(-1);
      if (newest === undefined) return { doc: emptyLedger(model, this.target), rev: null };
      try {
        const doc = JSON.parse(await readFile(path.join(this.dir(model), `${newest}.json`), 'utf8')) as ModelLedger;
        return { doc, rev: String(newest) };
      } catch (err) {
        // Pruned by a concurrent writer between readdir and readFile: read again.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }

  async write(model: string, doc: ModelLedger, rev: string | null): Promise<string> {
    const dir = this.dir(model);
    await mkdir(dir, { recursive: true });
    const next = rev === null ? 1 : Number(rev) + 1;
    if (rev === null && (await this.revisions(model)).length > 0) throw new LedgerConflictError(model);
    const tmp = path.join(dir, `.tmp-${process.pid}-${randomUUID()}`);
    try {
      const fh = await open(tmp, 'wx', 0o644);
      try {
        await fh.writeFile(`${JSON.stringify(doc, null, 2)}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      try {
        await link(tmp, path.join(dir, `${next}.json`));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new LedgerConflictError(model);
        throw err;
      }
      const dh = await open(dir, 'r');
      await dh.sync().finally(() => dh.close());
    } finally {
      await rm(tmp, { force: true });
    }
    await this.prune(model, next);
    return String(next);
  }

  async list(): Promise<string[]> {
    const names = await readdir(this.root, { withFileTypes: true }).catch(() => []);
    return names.filter((d) => d.isDirectory()).map((d) => d.name).sort();
  }

  private async prune(model: string, newest: number): Promise<void> {
    for (const r of await this.revisions(model)) {
      if (r <= newest - KEEP_REVISIONS) await rm(path.join(this.dir(model), `${r}.json`), { force: true });
    }
  }
}
