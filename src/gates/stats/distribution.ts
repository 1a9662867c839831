/**
 * Distribution drift between the stable version's outputs (the reference) and the candidate's:
 * population stability index and the two-sample Kolmogorov-Smirnov statistic.
 */

/** Proportions below this are raised to it before the logarithm (an empty bucket is not infinite drift). */
export const PSI_EPSILON = 1e-4;

/**
 * Cut points at the reference's quantiles i/buckets (i = 1…buckets−1), nearest-rank, duplicates
 * dropped (a reference with many equal values has fewer, wider buckets). Bucket b holds values
 * in (cut[b−1], cut[b]]; the last one is open above.
 */
export function quantileCuts(reference: readonly number[], buckets: number): number[] {
  const sorted = [...reference].sort((a, b) => a - b);
  const cuts: number[] = [];
  for (let i = 1; i < buckets; i++) {
    const rank = Math.max(1, Math.ceil((i / buckets) * sorted.length));
    const v = sorted[rank - 1]!;
    if (cuts.length === 0 || v > cuts[cuts.length - 1]!) cuts.push(v);
  }
  if (cuts.length > 0 && cuts[cuts.length - 1]! >= sorted[sorted.length - 1]!) cuts.pop(); // no empty top bucket
  return cuts;
}

/** Bucket counts of `values` over `cuts` (binary search). */
export function bucketCounts(values: readonly number[], cuts: readonly number[]): number[] {
  const counts = new Array<number>(cuts.length + 1).fill(0);
  for (const v of values) {
    let lo = 0;
    let hi = cuts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (v <= cuts[mid]!) hi = mid;
      else lo = mid + 1;
    }
    counts[lo]!++;
  }
  return counts;
}

/**
 * PSI = Σ (c_i − r_i) · ln(c_i / r_i) over bucket proportions, each floored at `epsilon`.
 * Conventional reading: < 0.1 no meaningful shift, 0.1–0.25 moderate shift (look), > 0.25 major
 * shift (act). Symmetric in its two arguments, 0 for identical proportions.
 */
export function psiFromCounts(candidate: readonly number[], reference: readonly number[], epsilon = PSI_EPSILON): number {
  if (candidate.length !== reference.length) throw new Error('psiFromCounts: bucket counts differ in length');
  const nC = candidate.reduce((a, b) => a + b, 0);
  const nR = reference.reduce((a, b) => a + b, 0);
  if (nC === 0 || nR === 0) throw new Error('psiFromCounts: empty distribution');
  let psi = 0;
  for (let i = 0; i < candidate.length; i++) {
    const c = Math.max(epsilon, candidate[i]! / nC);
    const r = Math.max(epsilon, reference[i]! / nR);
    psi += (c - r) * Math.log(c / r);
  }
  return psi;
}

export interface Psi {
  psi: number;
  buckets: number;
  candidateCounts: number[];
  referenceCounts: number[];
}

/** PSI of `candidate` against `reference`, binned by the reference's quantiles. */
export function psi(candidate: readonly number[], reference: readonly number[], buckets = 10, epsilon = PSI_EPSILON): Psi {
  const cuts = quantileCuts(reference, buckets);
  const candidateCounts = bucketCounts(candidate, cuts);
  const referenceCounts = bucketCounts(reference, cuts);
  return { psi: psiFromCounts(candidateCounts, referenceCounts, epsilon), buckets: cuts.length + 1, candidateCounts, referenceCounts };
}

export interface Ks {
  /** sup |F_candidate − F_reference| */
  d: number;
  /** Asymptotic two-sided p-value (Kolmogorov distribution, Stephens' small-sample adjustment). */
  p: number;
}

/** Kolmogorov's Q(λ) = 2 Σ (−1)^(k−1) exp(−2k²λ²). */
function kolmogorovQ(lambda: number): number {
  if (lambda < 1e-3) return 1;
  let sum = 0;
  let sign = 1;
  for (let k = 1; k <= 100; k++) {
    const term = sign * Math.exp(-2 * k * k * lambda * lambda);
    sum += term;
    if (Math.abs(term) < 1e-12) break;
    sign = -sign;
  }
  return Math.min(1, Math.max(0, 2 * sum));
}

export function ks(candidate: readonly number[], reference: readonly number[]): Ks {
  const a = [...candidate].sort((x, y) => x - y);
  const b = [...reference].sort((x, y) => x - y);
  const n = a.length;
  const m = b.length;
  if (n === 0 || m === 0) throw new Error('ks: both samples need values');
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < n && j < m) {
    const v = Math.min(a[i]!, b[j]!);
    while (i < n && a[i]! <= v) i++;
    while (j < m && b[j]! <= v) j++;
    d = Math.max(d, Math.abs(i / n - j / m));
  }
  const ne = Math.sqrt((n * m) / (n + m));
  return { d, p: kolmogorovQ((ne + 0.12 + 0.11 / ne) * d) };
}
