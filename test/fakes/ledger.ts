import type { LedgerStore, ModelLedger, Versioned } from '../../src/ledger/model.js';

export { MemoryLedgerStore } from '../../src/ledger/memory-store.js';

/**
 * A LedgerStore where another modelctl keeps writing in between: before every `every`-th write,
 * a foreign writer rewrites the stored document (`touch` may change it; by default it bumps the
 * revision only), so the write that follows conflicts and must be re-applied to a fresh read.
 */
export class ContendedLedgerStore implements LedgerStore {
  private attempts = 0;
  foreignWrites = 0;

  constructor(
    private readonly inner: LedgerStore,
    private readonly every = 2,
    private readonly touch: (doc: ModelLedger) => void = () => {},
    /** Stop interfering after this many foreign writes. */
    private readonly maxForeign = Number.POSITIVE_INFINITY,
  ) {}

  read(model: string): Promise<Versioned<ModelLedger>> {
    return this.inner.read(model);
  }

  async write(model: string, doc: ModelLedger, rev: string | null): Promise<string> {
    this.attempts++;
    if (rev !== null && this.attempts % this.every === 0 && this.foreignWrites < this.maxForeign) {
      const current = await this.inner.read(model);
      this.touch(current.doc);
      await this.inner.write(model, current.doc, current.rev);
      this.foreignWrites++;
    }
    return this.inner.write(model, doc, rev);
  }

  list(): Promise<string[]> {
    return this.inner.list();
  }
}

/** A LedgerStore whose N-th write (from now on) fails once, as if the disk or API server went away. */
export class FailingLedgerStore implements LedgerStore {
  private count = 0;
  private failOn = 0;
  /** Writes that got through, for counting a clean run. */
  writes = 0;

  constructor(private readonly inner: LedgerStore) {}

  failAt(n: number): void {
    this.failOn = this.count + n;
  }

  read(model: string): Promise<Versioned<ModelLedger>> {
    return this.inner.read(model);
  }

  async write(model: string, doc: ModelLedger, rev: string | null): Promise<string> {
    this.count++;
    if (this.count === this.failOn) throw new Error(`injected ledger failure at write ${this.count}`);
    const r = await this.inner.write(model, doc, rev);
    this.writes++;
    return r;
  }

  list(): Promise<string[]> {
    return this.inner.list();
  }
}
