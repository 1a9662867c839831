import { LedgerConflictError, type LedgerStore, type ModelLedger, type Versioned } from '../ledger/model.js';

/** How many times a change is re-applied to a fresh read before giving up. */
export const CONFLICT_RETRIES = 10;

/**
 * Read-modify-write with compare-and-swap: read the ledger, let `change` mutate it, write it at
 * the revision read; on LedgerConflictError (another modelctl wrote in between) re-read and
 * re-apply. `change` must therefore be a pure function of the document it is given (it may run
 * several times) and may throw to refuse (e.g. the lock is held). Returning `false` means
 * "nothing to change": no write happens.
 */
export async function updateLedger(
  store: LedgerStore,
  model: string,
  change: (doc: ModelLedger) => void | false,
  retries = CONFLICT_RETRIES,
): Promise<ModelLedger> {
  return (await updateLedgerAt(store, model, change, null, retries)).doc;
}

/**
 * updateLedger starting from `known`, the document and revision this process last read or wrote:
 * the change is applied to (a copy of) it and written at that revision without reading first. That
 * is safe because the write is a compare-and-swap: if anybody wrote since (a `promote` request, a
 * lock take-over), it conflicts and the change is re-applied to a fresh read. A change that finds
 * nothing to do on the known copy is re-run on a fresh read too, so "nothing to change" is always
 * decided on current data. Saves one read per write (two requests on Kubernetes).
 * Returns the document as written (or read) and its revision, to pass as `known` next time.
 */
export async function updateLedgerAt(
  store: LedgerStore,
  model: string,
  change: (doc: ModelLedger) => void | false,
  known: Versioned<ModelLedger> | null,
  retries = CONFLICT_RETRIES,
): Promise<Versioned<ModelLedger>> {
  let optimistic = known;
  for (let attempt = 0; ; attempt++) {
    const { doc, rev } = optimistic ? { doc: structuredClone(optimistic.doc), rev: optimistic.rev } : await store.read(model);
    const fromKnown = optimistic !== null;
    optimistic = null;
    if (change(doc) === false) {
      if (fromKnown) continue; // decide "nothing to do" on a fresh read
      return { doc, rev };
    }
    try {
      return { doc, rev: await store.write(model, doc, rev) };
    } catch (err) {
      if (!(err instanceof LedgerConflictError) || attempt >= retries) throw err;
    }
  }
}
