import { normalCdf, normalSf } from './normal.js';

export type Direction = 'increase' | 'decrease' | 'either';

export interface MannWhitney {
  /** U of the candidate sample: the number of (candidate, stable) pairs where the candidate is larger (ties count ½). */
  u: number;
  /** Normal approximation: mean nC·nS/2, variance with tie correction; z with continuity correction. */
  z: number;
  /** p-value for the alternative `direction` (increase: candidate stochastically greater). */
  p: number;
  nC: number;
  nS: number;
}

/**
 * Mann-Whitney U test of candidate vs stable (Kayenta's judge, ANCHORS.md), normal approximation
 * with tie correction and continuity correction — the same numbers as
 * scipy.stats.mannwhitneyu(candidate, stable, method='asymptotic', use_continuity=True).
 * Rank-based: robust to the heavy tails of latencies without Kayenta's outlier stripping.
 */
export function mannWhitneyU(candidate: readonly number[], stable: readonly number[], direction: Direction = 'increase'): MannWhitney {
  const nC = candidate.length;
  const nS = stable.length;
  if (nC === 0 || nS === 0) throw new Error('mannWhitneyU: both samples need values');
  const all: Array<[number, 0 | 1]> = [];
  for (const v of candidate) all.push([v, 0]);
  for (const v of stable) all.push([v, 1]);
  all.sort((a, b) => a[0] - b[0]);
  const N = all.length;
  let rankSumC = 0;
  let tieTerm = 0;
  for (let i = 0; i < N; ) {
    let j = i;
    while (j + 1 < N && all[j + 1]![0] === all[i]![0]) j++;
    const t = j - i + 1;
    const midrank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (all[k]![1] === 0) rankSumC += midrank;
    tieTerm += t * t * t - t;
    i = j + 1;
  }
  const u = rankSumC - (nC * (nC + 1)) / 2;
  const mean = (nC * nS) / 2;
  const variance = ((nC * nS) / 12) * (N + 1 - tieTerm / (N * (N - 1)));
  if (!(variance > 0)) return { u, z: 0, p: 1, nC, nS }; // every value equal: no evidence either way
  const sd = Math.sqrt(variance);
  let z: number;
  let p: number;
  if (direction === 'increase') {
    z = (u - mean - 0.5) / sd;
    p = normalSf(z);
  } else if (direction === 'decrease') {
    z = (u - mean + 0.5) / sd;
    p = normalCdf(z);
  } else {
    const d = Math.abs(u - mean);
    z = (d - 0.5) / sd;
    p = Math.min(1, 2 * normalSf(z));
    z = u >= mean ? z : -z;
  }
  return { u, z, p, nC, nS };
}

/** Nearest-rank percentile (the local gates' definition): the smallest value with p% at or below it. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}
