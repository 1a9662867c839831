import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { FileLedgerStore } from '../../src/ledger/file-store.js';
import { LedgerConflictError } from '../../src/ledger/model.js';
import { useScratch } from '../helpers/fixtures.js';

const { fresh, cleanup } = useScratch();
after(cleanup);

test('a new model reads as an empty ledger; writes are compare-and-swap', async () => {
  const store = new FileLedgerStore(await fresh('ledger'), 'local');
  const first = await store.read('sentiment');
  assert.equal(first.rev, null);
  assert.equal(first.doc.target, 'local');
  assert.deepEqual(first.doc.releases, []);

  const rev1 = await store.write('sentiment', { ...first.doc, stableSet: ['1.0.0'] }, null);
  await assert.rejects(store.write('sentiment', first.doc, null), LedgerConflictError, 'create-only when rev is null');
  const read = await store.read('sentiment');
  assert.equal(read.rev, rev1);
  assert.deepEqual(read.doc.stableSet, ['1.0.0']);

  // Two writers from the same revision: exactly one wins.
  const results = await Promise.allSettled([
    store.write('sentiment', { ...read.doc, stableSet: ['a'] }, read.rev),
    store.write('sentiment', { ...read.doc, stableSet: ['b'] }, read.rev),
  ]);
  assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
  const winner = results.findIndex((r) => r.status === 'fulfilled') === 0 ? 'a' : 'b';
  assert.deepEqual((await store.read('sentiment')).doc.stableSet, [winner]);
  assert.deepEqual(await store.list(), ['sentiment']);
});

test('old revisions are pruned; no temp files are left', async () => {
  const root = await fresh('ledger');
  const store = new FileLedgerStore(root, 'local');
  let { doc, rev } = await store.read('m');
  for (let i = 0; i < 30; i++) {
    rev = await store.write('m', { ...doc, stableSet: [String(i)] }, rev);
    doc = (await store.read('m')).doc;
  }
  const files = await readdir(path.join(root, 'm'));
  assert.equal(files.length, 20);
  assert.ok(files.every((f) => /^\d+\.json$/.test(f)));
  assert.deepEqual(doc.stableSet, ['29']);
});
