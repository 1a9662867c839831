import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { emptyLedger, LedgerConflictError, type ModelLedger, type Release } from '../../src/ledger/model.js';
import { KubeApi } from '../../src/targets/kubernetes/client.js';
import { fitLedger, KubernetesLedgerStore, MAX_LEDGER_BYTES } from '../../src/targets/kubernetes/ledger-store.js';
import { ledgerConfigMapFor, LEDGER_KEY } from '../../src/targets/kubernetes/manifests.js';
import { leaseName, ledgerConfigMapName } from '../../src/targets/kubernetes/names.js';
import { startFakeKube, type FakeKube } from '../fakes/kube/server.js';

describe('KubernetesLedgerStore: the ledger in a ConfigMap, the lock in a Lease', () => {
  let fake: FakeKube;
  let api: KubeApi;
  before(async () => {
    fake = await startFakeKube();
    api = new KubeApi(fake.kubeConfig('default'), { retry: { baseDelayMs: 5, maxDelayMs: 20 } });
  });
  after(() => fake?.close());

  const lock = (holder: string, acquiredAt: number, expiresAt: number) => ({ holder, pid: 42, host: 'runner-1', acquiredAt, expiresAt });

  test('compare-and-swap on resourceVersion: a stale writer conflicts, never overwrites', async () => {
    const a = new KubernetesLedgerStore({ api, namespace: 'default' });
    const b = new KubernetesLedgerStore({ api, namespace: 'default' });
    const first = await a.read('cas');
    assert.equal(first.rev, null);
    const rev1 = await a.write('cas', { ...first.doc, stableSet: ['1.0.0'] }, null);
    await assert.rejects(b.write('cas', first.doc, null), LedgerConflictError, 'create-only when read as missing');
    const seenByB = await b.read('cas');
    await a.write('cas', { ...seenByB.doc, stableSet: ['1.1.0', '1.0.0'] }, rev1);
    await assert.rejects(b.write('cas', { ...seenByB.doc, stableSet: ['lost update'] }, seenByB.rev), LedgerConflictError);
    assert.deepEqual((await b.read('cas')).doc.stableSet, ['1.1.0', '1.0.0']);
    assert.deepEqual(await a.list(), ['cas']);
  });

  test('the lock is a Lease: holder, MicroTimes, duration; the ConfigMap never holds it', async () => {
    let now = Date.parse('2026-11-22T13:00:00.000Z');
    const store = new KubernetesLedgerStore({ api, namespace: 'default', now: () => now });
    const { doc, rev } = await store.read('locked');
    doc.lock = lock('https://github.com/acme/models/actions/runs/7', now, now + 60_000);
    const rev2 = await store.write('locked', doc, rev);
    const lease = fake.get('coordination.k8s.io/v1', 'Lease', 'default', leaseName('locked'));
    assert.equal(lease.spec.holderIdentity, 'https://github.com/acme/models/actions/runs/7');
    assert.equal(lease.spec.renewTime, '2026-11-22T13:00:00.000000Z');
    assert.equal(lease.spec.acquireTime, '2026-11-22T13:00:00.000000Z');
    assert.equal(lease.spec.leaseDurationSeconds, 60);
    assert.equal(lease.metadata.annotations['modelctl.dev/holder-host'], 'runner-1');
    const cm = fake.get('v1', 'ConfigMap', 'default', ledgerConfigMapName('locked'));
    assert.equal(JSON.parse(cm.data['ledger.json']).lock, null, 'the ConfigMap does not duplicate the lock');
    const back = await new KubernetesLedgerStore({ api, namespace: 'default' }).read('locked');
    assert.deepEqual(back.doc.lock, doc.lock);

    // Another store takes the lock at the stale revision: conflict on the Lease, ledger untouched.
    const other = new KubernetesLedgerStore({ api, namespace: 'default' });
    const stale = { ...doc, lock: lock('someone-else', now, now + 60_000) };
    await assert.rejects(other.write('locked', stale, rev), LedgerConflictError);
    assert.equal(fake.get('coordination.k8s.io/v1', 'Lease', 'default', leaseName('locked')).spec.holderIdentity, 'https://github.com/acme/models/actions/runs/7');

    // Release: the Lease stays, without a holder.
    now += 5_000;
    const released = { ...back.doc, lock: null };
    await store.write('locked', released, rev2);
    const free = fake.get('coordination.k8s.io/v1', 'Lease', 'default', leaseName('locked'));
    assert.ok(!free.spec.holderIdentity);
    assert.equal((await store.read('locked')).doc.lock, null);
  });

  test('an unchanged lock is not rewritten: a ledger write is one request', async () => {
    const store = new KubernetesLedgerStore({ api, namespace: 'default' });
    const { doc, rev } = await store.read('quiet');
    doc.lock = lock('me', Date.now(), Date.now() + 60_000);
    const r1 = await store.write('quiet', doc, rev);
    fake.resetRequests();
    await store.write('quiet', { ...doc, stableSet: ['2.0.0'] }, r1);
    assert.deepEqual(
      fake.requests.map((q) => `${q.verb} ${q.resource}`),
      ['update configmaps'],
    );
  });
});

describe('connections to the API server are reused', () => {
  test('many requests, few TCP connections (client-node alone would open one per request)', async () => {
    const fake = await startFakeKube();
    try {
      const api = new KubeApi(fake.kubeConfig('default'));
      const before = fake.connections;
      for (let i = 0; i < 20; i++) await api.read({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'default', name: `none-${i}` });
      assert.ok(fake.connections - before <= 2, `${fake.connections - before} connections for 20 requests`);
    } finally {
      await fake.close();
    }
  });
});

describe('fitLedger: a ConfigMap holds at most 1 MiB', () => {
  const release = (version: string, state: Release['state'], evidenceBytes: number): Release => ({
    version,
    digest: `sha256:${'0'.repeat(64)}`,
    state,
    startedAt: 1,
    endedAt: 2,
    reason: 'promoted',
    startedBy: 'ci',
    steps: [{ weight: 5, mirror: 0, startedAt: 1, endedAt: 2, verdict: 'pass', gates: [{ name: 'x', verdict: 'pass', value: 1, limit: 'y', samples: 1, reason: 'z'.repeat(evidenceBytes), query: '', at: 1 }] }],
  });

  test('drops the oldest evidence first, then the oldest releases outside the stable set; keeps the rollout in progress', () => {
    const doc: ModelLedger = emptyLedger('big', 'kubernetes');
    for (let i = 0; i < 400; i++) doc.releases.push(release(`1.${i}.0`, i % 2 ? 'stable' : 'failed', 8 * 1024));
    doc.releases.push({ ...release('9.0.0', 'deploying', 8 * 1024) });
    doc.stableSet = ['1.399.0', '1.397.0', '1.1.0'];
    doc.rollout = { version: '9.0.0', digest: 'd', phase: 'canary', stepIndex: 0, plan: {} as any, startedAt: 1, holder: 'ci', requested: null };
    const fitted = fitLedger(doc);
    assert.ok(Buffer.byteLength(JSON.stringify(fitted)) <= MAX_LEDGER_BYTES);
    const stored = ledgerConfigMapFor('big', 'default', fitted).data![LEDGER_KEY]!;
    assert.ok(Buffer.byteLength(stored) <= MAX_LEDGER_BYTES, `the ConfigMap stores what was measured (${Buffer.byteLength(stored)} bytes)`);
    assert.ok(fitted.releases[0]!.evidenceTrimmed, 'oldest evidence went first');
    assert.equal(fitted.releases.at(-1)!.steps.length, 1, 'the rollout in progress keeps its evidence');
    assert.ok(!fitted.releases.at(-2)!.evidenceTrimmed, 'the newest finished releases keep theirs');
    assert.equal(fitted.releasesDropped, undefined, 'trimming evidence was enough');
    assert.equal(doc.releases[0]!.steps.length, 1, 'the input is not mutated');

    const tiny = fitLedger(doc, 40 * 1024);
    assert.ok(Buffer.byteLength(JSON.stringify(tiny)) <= 40 * 1024);
    assert.ok((tiny.releasesDropped ?? 0) > 0);
    for (const v of ['1.399.0', '1.397.0', '1.1.0', '9.0.0']) assert.ok(tiny.releases.some((r) => r.version === v), `${v} kept`);
  });

  test('a small ledger is returned as is', () => {
    const doc = emptyLedger('small', 'kubernetes');
    assert.equal(fitLedger(doc), doc);
  });
});
