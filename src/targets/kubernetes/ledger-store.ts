import type { KubernetesObject, V1ConfigMap, V1Lease } from '@kubernetes/client-node';
import { emptyLedger, LedgerConflictError, type LedgerStore, type ModelLedger, type Release, type Versioned } from '../../ledger/model.js';
import { type LockRecord } from '../../core/model.js';
import { KubeConflictError, type KubeApi } from './client.js';
import { ledgerConfigMapFor, leaseFor, parseMicroTime, LEDGER_KEY } from './manifests.js';
import { ANNOTATIONS, LABELS, ledgerConfigMapName, leaseName, MANAGED_BY } from './names.js';

/**
 * The ledger of a model in the cluster: the document in a ConfigMap, the lock in a
 * coordination.k8s.io/v1 Lease (holder identity, acquire/renew MicroTimes, duration), so `kubectl
 * get lease` shows who is rolling out what, and the engine's one compare-and-swap covers both.
 *
 * The revision the engine sees is "<configmap rv>/<lease rv>" ("-" for a missing object). A write
 * is a resourceVersion-preconditioned update of each object whose part changed (409 → the engine's
 * LedgerConflictError → it re-reads and retries). The two objects cannot change in one request, so
 * the order is chosen so that a failure between them is harmless:
 * - taking or renewing the lock writes the Lease first: if the ledger write then conflicts, we hold
 *   a lock nobody else can take while we re-read (acquire is re-entrant for its owner);
 * - releasing writes the ledger first, then frees the Lease: the final state is recorded before
 *   anyone else can start.
 */

const NONE = '-';

interface Rev {
  configMap: string | null;
  lease: string | null;
}

function parseRev(rev: string | null): Rev {
  if (rev === null) return { configMap: null, lease: null };
  const [cm, lease] = rev.split('/');
  return { configMap: cm && cm !== NONE ? cm : null, lease: lease && lease !== NONE ? lease : null };
}

function formatRev(r: Rev): string {
  return `${r.configMap ?? NONE}/${r.lease ?? NONE}`;
}

/** The Lease as the engine's LockRecord (null: no Lease, or nobody holds it). */
export function lockFromLease(lease: V1Lease | undefined): LockRecord | null {
  const spec = lease?.spec;
  if (!spec?.holderIdentity) return null;
  const annotations = lease!.metadata?.annotations ?? {};
  const renewedAt = spec.renewTime ? parseMicroTime(spec.renewTime) : 0;
  return {
    holder: spec.holderIdentity,
    pid: Number(annotations[ANNOTATIONS.holderPid] ?? 0),
    host: annotations[ANNOTATIONS.holderHost] ?? '',
    acquiredAt: spec.acquireTime ? parseMicroTime(spec.acquireTime) : renewedAt,
    expiresAt: renewedAt + (spec.leaseDurationSeconds ?? 0) * 1000,
  };
}

function sameLock(a: LockRecord | null, b: LockRecord | null): boolean {
  if (a === null || b === null) return a === b;
  return a.holder === b.holder && a.pid === b.pid && a.host === b.host && a.acquiredAt === b.acquiredAt && a.expiresAt === b.expiresAt;
}

export interface KubernetesLedgerStoreOptions {
  api: KubeApi;
  namespace: string;
  /** When a Lease is renewed (MicroTime); injected so tests can use a fake clock. */
  now?: () => number;
}

export class KubernetesLedgerStore implements LedgerStore {
  /** The lock as last read or written at a Lease resourceVersion, so writes know whether the lock changed without re-reading. */
  private readonly seenLocks = new Map<string, { rv: string | null; lock: LockRecord | null; transitions: number }>();
  private readonly now: () => number;

  constructor(private readonly opts: KubernetesLedgerStoreOptions) {
    this.now = opts.now ?? Date.now;
  }

  private ref(kind: 'ConfigMap' | 'Lease', model: string) {
    return kind === 'ConfigMap'
      ? { apiVersion: 'v1', kind, namespace: this.opts.namespace, name: ledgerConfigMapName(model) }
      : { apiVersion: 'coordination.k8s.io/v1', kind, namespace: this.opts.namespace, name: leaseName(model) };
  }

  async read(model: string): Promise<Versioned<ModelLedger>> {
    const [cm, lease] = await Promise.all([
      this.opts.api.read<V1ConfigMap>(this.ref('ConfigMap', model)),
      this.opts.api.read<V1Lease>(this.ref('Lease', model)),
    ]);
    const text = cm?.data?.[LEDGER_KEY];
    let doc: ModelLedger;
    if (text === undefined) {
      doc = emptyLedger(model, 'kubernetes');
    } else {
      try {
        doc = JSON.parse(text) as ModelLedger;
      } catch (err) {
        throw new Error(`ConfigMap ${ledgerConfigMapName(model)} in ${this.opts.namespace} does not hold a ledger (${LEDGER_KEY} is not JSON: ${String(err)}); was it edited by hand?`);
      }
    }
    const leaseRv = lease?.metadata?.resourceVersion ?? null;
    doc.lock = lockFromLease(lease);
    this.seenLocks.set(model, { rv: leaseRv, lock: doc.lock, transitions: lease?.spec?.leaseTransitions ?? 0 });
    const rev: Rev = { configMap: cm?.metadata?.resourceVersion ?? null, lease: leaseRv };
    return { doc, rev: rev.configMap === null && rev.lease === null ? null : formatRev(rev) };
  }

  async write(model: string, doc: ModelLedger, revText: string | null): Promise<string> {
    const rev = parseRev(revText);
    const seen = await this.lockAt(model, rev.lease);
    const lockChanged = !sameLock(seen.lock, doc.lock);
    let leaseRv = rev.lease;
    try {
      if (lockChanged && doc.lock !== null) leaseRv = await this.writeLease(model, doc.lock, seen, rev.lease);
      const stored = fitLedger({ ...doc, lock: null }); // the lock lives in the Lease only
      const cm = ledgerConfigMapFor(model, this.opts.namespace, stored);
      let written: KubernetesObject;
      if (rev.configMap === null) {
        written = await this.opts.api.create(cm);
      } else {
        written = await this.opts.api.replace({ ...cm, metadata: { ...cm.metadata, resourceVersion: rev.configMap } });
      }
      const cmRv = written.metadata!.resourceVersion!;
      if (lockChanged && doc.lock === null && seen.lock !== null) leaseRv = await this.writeLease(model, null, seen, leaseRv);
      return formatRev({ configMap: cmRv, lease: leaseRv });
    } catch (err) {
      if (err instanceof KubeConflictError) throw new LedgerConflictError(model);
      throw err;
    }
  }

  async list(): Promise<string[]> {
    const { items } = await this.opts.api.list<V1ConfigMap>('v1', 'ConfigMap', this.opts.namespace, `${LABELS.managedBy}=${MANAGED_BY},${LABELS.component}=ledger`);
    return items
      .map((cm) => cm.metadata?.labels?.[LABELS.model])
      .filter((m): m is string => !!m)
      .sort();
  }

  /** The lock the engine saw at Lease revision `rv` (re-read when this process did not see that revision). */
  private async lockAt(model: string, rv: string | null): Promise<{ rv: string | null; lock: LockRecord | null; transitions: number }> {
    const cached = this.seenLocks.get(model);
    if (cached && cached.rv === rv) return cached;
    const lease = await this.opts.api.read<V1Lease>(this.ref('Lease', model));
    const current = lease?.metadata?.resourceVersion ?? null;
    if (current !== rv) throw new LedgerConflictError(model);
    const fresh = { rv: current, lock: lockFromLease(lease), transitions: lease?.spec?.leaseTransitions ?? 0 };
    this.seenLocks.set(model, fresh);
    return fresh;
  }

  /** Create or CAS-update the Lease to hold `lock` (null: released). Returns its new resourceVersion. */
  private async writeLease(model: string, lock: LockRecord | null, seen: { lock: LockRecord | null; transitions: number }, rv: string | null): Promise<string> {
    const now = this.now();
    const transitions = seen.transitions + (lock && seen.lock?.holder !== lock.holder ? 1 : 0);
    const lease = leaseFor(model, this.opts.namespace, lock, { renewedAt: Math.min(now, lock?.expiresAt ?? now), transitions });
    const written = rv === null ? await this.opts.api.create(lease) : await this.opts.api.replace({ ...lease, metadata: { ...lease.metadata, resourceVersion: rv } });
    const newRv = written.metadata!.resourceVersion!;
    // Remember the lock as the engine holds it (the Lease rounds its duration up to whole seconds),
    // so the next write with the same lock does not rewrite the Lease for nothing.
    this.seenLocks.set(model, { rv: newRv, lock, transitions });
    return newRv;
  }
}

/** A ConfigMap holds at most 1 MiB (data plus metadata): the ledger stays well under it. */
export const MAX_LEDGER_BYTES = 900 * 1024;

/**
 * The ledger, made to fit `maxBytes` of JSON: first the step evidence (gate results per step) of
 * the oldest finished releases is dropped, then the oldest releases that are neither in the stable
 * set nor the rollout in progress. Years of releases fit; the newest evidence is always kept.
 */
export function fitLedger(doc: ModelLedger, maxBytes = MAX_LEDGER_BYTES): ModelLedger {
  const bytes = (x: unknown) => Buffer.byteLength(JSON.stringify(x));
  let size = bytes(doc);
  if (size <= maxBytes) return doc;
  const out = structuredClone(doc);
  const keep = new Set([...out.stableSet, ...(out.rollout ? [out.rollout.version] : [])]);
  const finished = (r: Release) => !(out.rollout && r.version === out.rollout.version && r.state === 'deploying');
  for (const r of out.releases) {
    if (size <= maxBytes) return out;
    if (!finished(r) || r.steps.length === 0) continue;
    const before = bytes(r);
    r.steps = [];
    r.evidenceTrimmed = true;
    size += bytes(r) - before;
  }
  out.releasesDropped ??= 0;
  size = bytes(out);
  while (size > maxBytes) {
    const i = out.releases.findIndex((r) => finished(r) && !keep.has(r.version));
    if (i < 0) break; // what is left is what a rollback needs: the store will refuse it, loudly
    size -= bytes(out.releases[i]) + 1; // and its comma
    out.releases.splice(i, 1);
    out.releasesDropped++;
  }
  if (out.releasesDropped === 0) delete out.releasesDropped;
  return out;
}
