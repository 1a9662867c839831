import { emptyLedger, LedgerConflictError, type LedgerStore, type ModelLedger, type Versioned } from './model.js';

/**
 * An in-memory LedgerStore with the same compare-and-swap semantics as the file and ConfigMap
 * stores: every write names the revision it read, a stale revision throws LedgerConflictError,
 * and documents are stored as JSON so callers can never mutate stored state by reference (the
 * same isolation a real store gives two processes). Used by tests and as a fake.
 */
export class MemoryLedgerStore implements LedgerStore {
  private readonly docs = new Map<string, { json: string; rev: number }>();
  private counter = 0;
  /** Number of reads, successful writes and rejected (conflicting) ones, for tests. */
  reads = 0;
  writes = 0;
  conflicts = 0;

  constructor(readonly target = 'local') {}

  async read(model: string): Promise<Versioned<ModelLedger>> {
    this.reads++;
    const entry = this.docs.get(model);
    if (!entry) return { doc: emptyLedger(model, this.target), rev: null };
    return { doc: JSON.parse(entry.json) as ModelLedger, rev: String(entry.rev) };
  }

  async write(model: string, doc: ModelLedger, rev: string | null): Promise<string> {
    const entry = this.docs.get(model);
    const current = entry ? String(entry.rev) : null;
    if (current !== rev) {
      this.conflicts++;
      throw new LedgerConflictError(model);
    }
    // A global counter, not per model: a deleted-and-recreated ledger never reuses a revision.
    const next = ++this.counter;
    this.docs.set(model, { json: JSON.stringify(doc), rev: next });
    this.writes++;
    return String(next);
  }

  async list(): Promise<string[]> {
    return [...this.docs.keys()].sort();
  }

  /** The stored document (a copy), or null; for assertions. */
  peek(model: string): ModelLedger | null {
    const entry = this.docs.get(model);
    return entry ? (JSON.parse(entry.json) as ModelLedger) : null;
  }
}
