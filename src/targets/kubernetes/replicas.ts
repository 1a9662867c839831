import type { TrafficSplit } from '../../core/model.js';
import { assertNoMirrorWithoutGateway } from './manifests.js';

/**
 * Replica-ratio traffic (no Gateway API installed): one model Service selects every pod labelled
 * in-service, so a version's share of requests is its share of in-service pods. A 5% canary can
 * only be approximated. The rule, in order:
 *
 * 1. Versions with weight > 0 are in service. The *primary* (largest weight; ties: a version of the
 *    stable set, then the lowest version string) keeps at least `servingReplicas` pods — as Argo
 *    Rollouts keeps the stable at full size during a canary, so an abort moves all traffic back at
 *    once without waiting for pods. Every other in-service version gets at least 1 pod.
 * 2. The total of in-service pods N may grow (the primary scaled up) to get closer to the asked
 *    shares, up to `maxInServicePods` (default max(10, 2 × servingReplicas), never below the
 *    minimum of rule 1).
 * 3. For each N, pods are handed out one at a time to the version furthest below its asked share
 *    (after the minimums). The error of N is the largest gap, in percentage points, between a
 *    version's asked and achieved share. Among all N, take the smallest N whose error is within
 *    1 point of the best error reachable: extra pods only when they buy more than a point.
 *
 *    servingReplicas 1, canary 5%  → 9 + 1 pods, achieved 10%  (the best under the cap of 10)
 *    servingReplicas 1, canary 50% → 1 + 1 pods, achieved 50%
 *    servingReplicas 20, canary 5% → 20 + 1 pods, achieved 4.76% (40 pods would give 5.00%: not worth 19 pods)
 *
 * 4. Versions of the stable set without traffic stay warm: `warmReplicas` pods, not in service.
 *    Versions in the split at 0% and not in the stable set (a candidate deployed, not yet given
 *    traffic) get 1 pod, not in service, so the target can wait for it to be ready.
 *    Versions in neither are not in the plan (the target retires them).
 *
 * Mirroring is impossible with replicas alone: a split with a mirror is a UsageError (exit 2).
 */

export interface ReplicaPlanOptions {
  /** settings.replicas: pods of the serving version. */
  servingReplicas: number;
  /** settings.warmReplicas: pods of each warm version of the stable set. */
  warmReplicas: number;
  /** The stable set (most recent first). */
  stableSet: readonly string[];
  /** Cap on in-service pods; default max(10, 2 × servingReplicas). */
  maxInServicePods?: number | undefined;
}

export type ReplicaRole = 'primary' | 'canary' | 'warm' | 'staged';

export interface VersionReplicas {
  replicas: number;
  inService: boolean;
  role: ReplicaRole;
  /** The share the split asked for (0 for versions without traffic). */
  askedPercent: number;
  /** replicas / in-service pods × 100, rounded to 2 decimals (0 when not in service). */
  achievedPercent: number;
}

export interface ReplicaPlan {
  versions: Record<string, VersionReplicas>;
  /** Pods behind the model Service. */
  inServicePods: number;
  /** Largest |asked − achieved| over the in-service versions, in percentage points (2 decimals). */
  maxErrorPoints: number;
  /** Every in-service version got exactly what it asked for. */
  exact: boolean;
  /** When not exact, a sentence for people: "replica-ratio traffic: 1.1.0 asked 5%, got 10% (1 of 10 pods); …". */
  note: string | null;
}

const TOLERANCE_POINTS = 1;

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/** Hand out N pods: minimums first, then one at a time to the version furthest below its share. */
function apportion(live: Array<{ version: string; weight: number; min: number }>, total: number, sumWeights: number): number[] | null {
  const counts = live.map((l) => l.min);
  let left = total - counts.reduce((a, b) => a + b, 0);
  if (left < 0) return null;
  while (left > 0) {
    let best = 0;
    let bestGap = -Infinity;
    live.forEach((l, i) => {
      const gap = (l.weight / sumWeights) * total - counts[i]!;
      if (gap > bestGap + 1e-12) {
        bestGap = gap;
        best = i;
      }
    });
    counts[best]! += 1;
    left -= 1;
  }
  return counts;
}

function maxError(live: Array<{ weight: number }>, counts: number[], sumWeights: number): number {
  const total = counts.reduce((a, b) => a + b, 0);
  return Math.max(...live.map((l, i) => Math.abs((100 * l.weight) / sumWeights - (100 * counts[i]!) / total)));
}

export function replicaPlan(split: TrafficSplit, opts: ReplicaPlanOptions, model = 'model'): ReplicaPlan {
  assertNoMirrorWithoutGateway(model, split);
  if (!Number.isInteger(opts.servingReplicas) || opts.servingReplicas < 1) throw new RangeError(`servingReplicas must be an integer ≥ 1, got ${opts.servingReplicas}`);
  if (!Number.isInteger(opts.warmReplicas) || opts.warmReplicas < 0) throw new RangeError(`warmReplicas must be an integer ≥ 0, got ${opts.warmReplicas}`);
  for (const [v, w] of Object.entries(split.weights)) {
    if (!Number.isFinite(w) || w < 0) throw new RangeError(`${model}@${v}: weight ${w} must be a number ≥ 0`);
  }
  const stable = new Set(opts.stableSet);
  const liveEntries = Object.entries(split.weights).filter(([, w]) => w > 0);
  if (liveEntries.length === 0) throw new RangeError(`${model}: a traffic split needs at least one version with a weight above 0`);
  const stableRank = (v: string): number => {
    const i = opts.stableSet.indexOf(v);
    return i === -1 ? Number.MAX_SAFE_INTEGER : i;
  };
  liveEntries.sort(([va, wa], [vb, wb]) => wb - wa || stableRank(va) - stableRank(vb) || cmp(va, vb));
  const sumWeights = liveEntries.reduce((s, [, w]) => s + w, 0);
  const live = liveEntries.map(([version, weight], i) => ({ version, weight, min: i === 0 ? opts.servingReplicas : 1 }));
  const minTotal = live.reduce((s, l) => s + l.min, 0);
  const cap = Math.max(minTotal, opts.maxInServicePods ?? Math.max(10, 2 * opts.servingReplicas));

  const candidates: Array<{ total: number; counts: number[]; error: number }> = [];
  for (let total = minTotal; total <= cap; total++) {
    const counts = apportion(live, total, sumWeights);
    if (counts) candidates.push({ total, counts, error: maxError(live, counts, sumWeights) });
  }
  const bestError = Math.min(...candidates.map((c) => c.error));
  const chosen = candidates.find((c) => c.error <= bestError + TOLERANCE_POINTS + 1e-9)!;

  const versions: Record<string, VersionReplicas> = {};
  live.forEach((l, i) => {
    const n = chosen.counts[i]!;
    versions[l.version] = {
      replicas: n,
      inService: true,
      role: i === 0 ? 'primary' : 'canary',
      askedPercent: round2((100 * l.weight) / sumWeights),
      achievedPercent: round2((100 * n) / chosen.total),
    };
  });
  for (const v of opts.stableSet) {
    if (!versions[v]) versions[v] = { replicas: opts.warmReplicas, inService: false, role: 'warm', askedPercent: 0, achievedPercent: 0 };
  }
  for (const v of Object.keys(split.weights).sort(cmp)) {
    if (!versions[v] && !stable.has(v)) versions[v] = { replicas: 1, inService: false, role: 'staged', askedPercent: 0, achievedPercent: 0 };
  }
  const exact = chosen.error < 1e-9;
  const plan: ReplicaPlan = { versions, inServicePods: chosen.total, maxErrorPoints: round2(chosen.error), exact, note: null };
  if (!exact) plan.note = `replica-ratio traffic (no Gateway API): ${describeReplicaPlan(plan).join('; ')}`;
  return plan;
}

/** One line per in-service version whose share differs from the asked one: "1.1.0: asked 5%, got 10% (1 of 10 pods)". */
export function describeReplicaPlan(plan: ReplicaPlan): string[] {
  return Object.entries(plan.versions)
    .filter(([, r]) => r.inService)
    .map(([v, r]) => {
      const pods = `${r.replicas} of ${plan.inServicePods} pod${plan.inServicePods === 1 ? '' : 's'}`;
      return r.askedPercent === r.achievedPercent ? `${v}: ${r.achievedPercent}% (${pods})` : `${v}: asked ${r.askedPercent}%, got ${r.achievedPercent}% (${pods})`;
    });
}
