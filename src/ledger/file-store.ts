import { link, mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { IntegrityError } from '../core/errors.js';
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
    /** Where a damaged revision is reported (stderr by default: stdout may be --json). */
    private readonly warn: (message: string) => void = (m) => process.stderr.write(`Warning: ${m}\n`),
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

  /**
   * The newest revision that reads as a ledger. A damaged newest revision (truncated, hand-edited,
   * a disk error) is named in a warning and the one before it is used, at the newest revision
   * number, so the next change writes a good revision over the damaged one. Why fall back rather
   * than stop: the ledger is written ahead of every action, so the previous revision is the state
   * before the last recorded intent — the same position as a crash just before that write, which the
   * engine already resolves against the target's real state (`status` shows both). Stopping instead
   * would lock the model out of status, history, rollback and abort until someone edits files.
   */
  async read(model: string): Promise<Versioned<ModelLedger>> {
    read: for (;;) {
      const revs = await this.revisions(model);
      const newest = revs.at(-1);
      if (newest === undefined) return { doc: emptyLedger(model, this.target), rev: null };
      const damaged: Array<{ file: string; problem: string }> = [];
      for (const r of [...revs].reverse()) {
        const file = path.join(this.dir(model), `${r}.json`);
        let text: string;
        try {
          text = await readFile(file, 'utf8');
        } catch (err) {
          // Pruned by a concurrent writer between readdir and readFile: read again.
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue read;
          throw err;
        }
        const parsed = parseLedger(text, model);
        if ('problem' in parsed) {
          damaged.push({ file, problem: parsed.problem });
          continue;
        }
        if (damaged.length > 0) this.warnDamaged(model, damaged, file);
        return { doc: parsed.doc, rev: String(newest) };
      }
      throw new LedgerDamagedError(model, damaged);
    }
  }

  private warned = new Set<string>();

  private warnDamaged(model: string, damaged: Array<{ file: string; problem: string }>, used: string): void {
    if (this.warned.has(model)) return;
    this.warned.add(model);
    const list = damaged.map((d) => `${d.file} (${d.problem})`).join('; ');
    this.warn(
      `the ledger of ${model} is damaged: ${list}. Using the previous revision ${used}; the next change to ${model} writes a new revision over the damaged one (kept for inspection until pruned). Check \`modelctl status ${model}\` against what is really running.`,
    );
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

/** Parse one revision file; a problem (in words) instead of a ledger when it is not one. */
function parseLedger(text: string, model: string): { doc: ModelLedger } | { problem: string } {
  if (text.length === 0) return { problem: 'empty file' };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { problem: `not valid JSON, ${text.length} bytes (${(err as Error).message})` };
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return { problem: 'not a JSON object' };
  const d = doc as Partial<ModelLedger>;
  if (d.model !== model) return { problem: `its "model" is ${JSON.stringify(d.model)}, not "${model}"` };
  if (!Array.isArray(d.releases)) return { problem: '"releases" is not a list' };
  if (!Array.isArray(d.stableSet)) return { problem: '"stableSet" is not a list' };
  if (d.traffic === null || typeof d.traffic !== 'object') return { problem: '"traffic" is missing' };
  return { doc: doc as ModelLedger };
}

/** Every revision of a model's ledger is damaged: nothing to fall back to. Exit code 6. */
export class LedgerDamagedError extends IntegrityError {
  constructor(model: string, damaged: Array<{ file: string; problem: string }>) {
    const dir = damaged[0] ? path.dirname(damaged[0].file) : model;
    super(`the ledger of ${model} is damaged and no earlier revision is readable: ${damaged.map((d) => `${d.file} (${d.problem})`).join('; ')}`, {
      hint: `move ${dir} aside (e.g. \`mv ${dir} ${dir}.damaged\`) to start ${model}'s history afresh, then check what runs with \`modelctl status ${model}\``,
      details: { model, damaged },
    });
  }
}
