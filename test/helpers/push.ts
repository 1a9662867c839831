import { openLocalBundle, push } from '../../src/store/transfer.js';
import type { BundleStore } from '../../src/store/store.js';

/** Pack the bundle directory `dir` and push it to `store` (as `bundle push` does); its digest. */
export async function pushDirectory(store: BundleStore, dir: string, opts: { version?: string } = {}): Promise<string> {
  const source = await openLocalBundle(dir, opts);
  try {
    return (await push(store, source)).digest;
  } finally {
    await source.close();
  }
}
