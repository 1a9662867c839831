import { LedgerConflictError, type LedgerStore, type ModelLedger } from '../ledger/model.js';

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
  for (let attempt = 0; ; attempt++) {
    const { doc, rev } = await store.read(model);
    if (change(doc) === false) return doc;
    try {
      await store.write(model, doc, rev);
      return doc;
    } catch (err) {
      if (!(err instanceof LedgerConflictError) || attempt >= retries) throw err;
    }
  }
}
