/**
 * Seeded pseudo-random numbers for simulations (tests' A/A runs, bench/detect.ts): reproducible,
 * dependency-free, not cryptographic.
 */

/** mulberry32: a 32-bit state generator, uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal draw (Box–Muller). */
export function normal(rand: () => number): number {
  const u = 1 - rand();
  const v = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * Binomial(n, p) draw. Exact inversion (sequential search from 0) while n·p is small (the error
 * counts simulated here have means of 0.1–100); a rounded normal beyond that.
 */
export function binomial(rand: () => number, n: number, p: number): number {
  if (n <= 0 || p <= 0) return 0;
  if (p >= 1) return n;
  if (p > 0.5) return n - binomial(rand, n, 1 - p);
  const mean = n * p;
  if (mean > 200) {
    const x = Math.round(mean + Math.sqrt(mean * (1 - p)) * normal(rand));
    return Math.min(n, Math.max(0, x));
  }
  const q = 1 - p;
  const ratio = p / q;
  let prob = Math.pow(q, n);
  let cdf = prob;
  const u = rand();
  let k = 0;
  while (u > cdf && k < n) {
    prob *= (ratio * (n - k)) / (k + 1);
    k++;
    cdf += prob;
    if (prob < 1e-300 && k > mean) break;
  }
  return k;
}
