import assert from 'node:assert/strict';
import { mkdir, readdir, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { ExitCode } from '../../src/core/errors.js';
import { FileLedgerStore, LedgerDamagedError } from '../../src/ledger/file-store.js';
import { LedgerConflictError } from '../../src/ledger/model.js';
import { runCli, useScratch } from '../helpers/fixtures.js';

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

test('a damaged newest revision: named in a warning, the previous one is used, the next write supersedes it', async () => {
  const root = await fresh('ledger');
  const warnings: string[] = [];
  const store = new FileLedgerStore(root, 'local', (m) => warnings.push(m));
  const first = await store.read('m');
  const rev1 = await store.write('m', { ...first.doc, stableSet: ['1.0.0'] }, first.rev);
  const rev2 = await store.write('m', { ...first.doc, stableSet: ['1.1.0', '1.0.0'] }, rev1);
  const file = path.join(root, 'm', `${rev2}.json`);
  await truncate(file, 30);

  const read = await store.read('m');
  assert.deepEqual(read.doc.stableSet, ['1.0.0']);
  assert.equal(read.rev, rev2, 'read at the newest revision number, so the next write goes over the damaged one');
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, new RegExp(`ledger of m is damaged: ${file} \\(not valid JSON, 30 bytes`));
  assert.match(warnings[0]!, /Using the previous revision .*1\.json/);

  const rev3 = await store.write('m', { ...read.doc, stableSet: ['1.2.0', '1.0.0'] }, read.rev);
  assert.deepEqual((await store.read('m')).doc.stableSet, ['1.2.0', '1.0.0']);
  assert.equal(rev3, String(Number(rev2) + 1));
  assert.equal(warnings.length, 1, 'no warning once a good revision is newest');

  // Valid JSON that is not a ledger is damage too.
  await writeFile(path.join(root, 'm', `${Number(rev3) + 1}.json`), '{"model":"other"}');
  assert.deepEqual((await new FileLedgerStore(root, 'local', () => {}).read('m')).doc.stableSet, ['1.2.0', '1.0.0']);
});

test('every revision damaged: an integrity error naming the files and how to start afresh', async () => {
  const root = await fresh('ledger');
  await mkdir(path.join(root, 'm'));
  await writeFile(path.join(root, 'm', '1.json'), '');
  await writeFile(path.join(root, 'm', '2.json'), '{"model":"m","rel');
  const err = await new FileLedgerStore(root, 'local', () => {}).read('m').catch((e: unknown) => e);
  assert.ok(err instanceof LedgerDamagedError, String(err));
  assert.equal(err.exitCode, ExitCode.integrity);
  assert.match(err.message, /2\.json \(not valid JSON.*1\.json \(empty file\)/);
  assert.match(err.hint!, /mv .*\/m .*\/m\.damaged/);
});

test('status, history, rollback and abort with a truncated ledger file: a warning naming it, never a raw JSON.parse error', async () => {
  const home = await fresh('home');
  const store = new FileLedgerStore(path.join(home, 'ledger', 'local'), 'local', () => {});
  const { doc } = await store.read('sentiment');
  const rev1 = await store.write('sentiment', { ...doc, stableSet: ['1.0.0'], traffic: { weights: { '1.0.0': 100 }, mirror: null } }, null);
  const rev2 = await store.write('sentiment', { ...doc, stableSet: ['1.1.0', '1.0.0'] }, rev1);
  await truncate(path.join(home, 'ledger', 'local', 'sentiment', `${rev2}.json`), 40);
  for (const cmd of ['status', 'history', 'rollback', 'abort']) {
    const r = await runCli([cmd, 'sentiment', '--json'], { env: { MODELCTL_HOME: home } });
    assert.notEqual(r.code, ExitCode.unexpected, `${cmd}: ${r.stdout}${r.stderr}`);
    assert.doesNotMatch(r.stdout + r.stderr, /looks like a bug|^Error: Unterminated/m, cmd);
    assert.match(r.stderr, /Warning: the ledger of sentiment is damaged: .*sentiment\/2\.json/, cmd);
    r.json(); // stdout stays one JSON document
  }
});
