import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bucketCounts, ks, psi, psiFromCounts, quantileCuts } from '../../src/gates/stats/distribution.js';
import { logBeta, logBetaUpperTail, logGamma } from '../../src/gates/stats/beta.js';
import { normalCdf, normalSf } from '../../src/gates/stats/normal.js';
import { binomial, mulberry32, normal } from '../../src/gates/stats/prng.js';
import { conditionalMsprt, contrast, twoProportionZTest } from '../../src/gates/stats/proportions.js';
import { mannWhitneyU, percentile } from '../../src/gates/stats/ranks.js';

const close = (actual: number, expected: number, tol: number, what = '') =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what} ${actual} is not within ${tol} of ${expected}`);

describe('normal distribution', () => {
  test('known values (scipy.stats.norm)', () => {
    close(normalCdf(0), 0.5, 1e-7);
    close(normalCdf(-1.96), 0.024997895148220435, 1e-7);
    close(normalSf(2.1908902300206643), 0.014229868458155282, 1e-7);
    close(normalSf(5) / 2.866515718791933e-7, 1, 1e-5, 'upper tail, relative');
  });
});

describe('beta functions (scipy.special, scipy.stats.beta)', () => {
  test('ln Γ, ln B and the upper tail of the beta distribution', () => {
    close(logGamma(10.5), 13.940625219403763, 1e-10);
    close(logGamma(1), 0, 1e-12);
    close(logBeta(2.5, 7), -4.825399338314249, 1e-10);
    const tails: Array<[number, number, number, number]> = [
      [0.3, 2, 5, -0.8670839878195068],
      [0.05, 1, 3, -0.1538798831626516],
      [0.9, 20, 3, -0.9676917647281897],
      [0.06, 3, 40, -0.626246424778664],
    ];
    for (const [x, a, b, want] of tails) close(logBetaUpperTail(x, a, b), want, 1e-9, `logsf(${x}, ${a}, ${b})`);
  });
});

describe('two-proportion z-test', () => {
  test('textbook: 45/100 vs 30/100, pooled variance, one-sided', () => {
    const t = twoProportionZTest({ xC: 45, nC: 100, xS: 30, nS: 100 });
    close(t.z, 2.1908902300206643, 1e-9, 'z');
    close(t.p, 0.014229868458155282, 1e-7, 'p');
  });

  test('a tolerance moves the null: 25% worse than stable is no evidence at ratio 1.25', () => {
    const counts = { xC: 125, nC: 10_000, xS: 100, nS: 10_000 };
    assert.ok(twoProportionZTest(counts).p < 0.05);
    const tolerant = twoProportionZTest({ ...counts, ratio: 1.25 });
    close(tolerant.theta, 0, 1e-12);
    close(tolerant.p, 0.5, 1e-7);
    assert.ok(twoProportionZTest({ ...counts, delta: 0.01 }).p > 0.99, 'an absolute slack of 1% swallows a 0.25% difference');
  });

  test('no errors anywhere: a finite statistic (the variance is kept off zero)', () => {
    const c = contrast({ xC: 0, nC: 100, xS: 0, nS: 2000 });
    assert.ok(c.variance > 0 && c.z === 0);
  });
});

describe('sequential conditional test (Beta-mixture SPRT)', () => {
  test('known value: Λ against numerical integration of the mixture (scipy quad)', () => {
    const t = conditionalMsprt({ xC: 5, nC: 100, xS: 19, nS: 1900, ratio: 1.25 });
    close(t.pi0, 0.06172839506172839, 1e-12);
    close(t.logLambda, 1.886031921529445, 1e-6);
    assert.equal(t.k, 5);
    assert.equal(t.total, 24);
  });

  test('no errors: Λ = 1; errors in the null share: no evidence; many on the candidate: tiny always-valid p', () => {
    assert.equal(conditionalMsprt({ xC: 0, nC: 100, xS: 0, nS: 1900 }).p, 1);
    assert.ok(conditionalMsprt({ xC: 10, nC: 1000, xS: 190, nS: 19_000 }).p > 0.5);
    const some = conditionalMsprt({ xC: 20, nC: 1000, xS: 190, nS: 19_000 });
    const lots = conditionalMsprt({ xC: 50, nC: 1000, xS: 190, nS: 19_000 });
    assert.ok(lots.p < 1e-6 && some.p > lots.p, `${some.p} ${lots.p}`);
  });

  test('a clean stable: one candidate error is weak evidence (the z-test calls it significant)', () => {
    const counts = { xC: 1, nC: 100, xS: 0, nS: 2000 };
    assert.ok(conditionalMsprt(counts).p > 0.02);
    assert.ok(twoProportionZTest(counts).p < 0.02, 'the normal approximation with one error is the problem this avoids');
  });

  test('stricter than the one-look z-test on the same counts (the price of looking any time)', () => {
    const counts = { xC: 19, nC: 1000, xS: 190, nS: 19_000 };
    assert.ok(twoProportionZTest(counts).p < conditionalMsprt(counts).p);
  });

  test('the tolerance moves the null share; maxDelta widens it', () => {
    const counts = { xC: 5, nC: 100, xS: 19, nS: 1900 };
    assert.ok(conditionalMsprt(counts).pi0 < conditionalMsprt({ ...counts, ratio: 1.25 }).pi0);
    assert.ok(conditionalMsprt({ ...counts, ratio: 1.25 }).pi0 < conditionalMsprt({ ...counts, ratio: 1.25, delta: 0.01 }).pi0);
  });

  test('A/A under continuous monitoring: rejections stay under α; the peeked z-test does not', () => {
    // 600 canaries at the null boundary (candidate exactly stable × 1.25, the worst case of H0),
    // 10 req/s vs 190 req/s, looked at every 10 s for 20 minutes.
    const rand = mulberry32(7);
    const alpha = 0.02;
    const runs = 600;
    let seqFalse = 0;
    let peekFalse = 0;
    for (let r = 0; r < runs; r++) {
      let xC = 0, nC = 0, xS = 0, nS = 0;
      let seq = false, peek = false;
      for (let look = 0; look < 120 && !(seq && peek); look++) {
        xC += binomial(rand, 100, 0.0125); nC += 100;
        xS += binomial(rand, 1900, 0.01); nS += 1900;
        const counts = { xC, nC, xS, nS, ratio: 1.25 };
        if (!seq && conditionalMsprt(counts).p < alpha) seq = true;
        if (!peek && twoProportionZTest(counts).p < alpha) peek = true;
      }
      if (seq) seqFalse++;
      if (peek) peekFalse++;
    }
    assert.ok(seqFalse / runs <= alpha, `sequential false rejections ${seqFalse}/${runs}`);
    assert.ok(peekFalse / runs > 2 * alpha, `the z-test peeked 120 times should inflate α: ${peekFalse}/${runs}`);
  });

  test('power: a 1% → 5% canary at 10 req/s is caught within a minute in most runs', () => {
    const rand = mulberry32(9);
    let caught = 0;
    for (let r = 0; r < 200; r++) {
      let xC = 0, nC = 0, xS = 0, nS = 0;
      for (let look = 0; look < 6; look++) {
        xC += binomial(rand, 100, 0.05); nC += 100;
        xS += binomial(rand, 1900, 0.01); nS += 1900;
        if (conditionalMsprt({ xC, nC, xS, nS, ratio: 1.25 }).p < 0.02) {
          caught++;
          break;
        }
      }
    }
    assert.ok(caught >= 190, `${caught}/200`);
  });
});

describe('Mann-Whitney U (scipy.stats.mannwhitneyu, asymptotic, continuity)', () => {
  test('small textbook samples without ties', () => {
    const c = [19, 22, 16, 29, 24];
    const s = [20, 11, 17, 12];
    const inc = mannWhitneyU(c, s, 'increase');
    assert.equal(inc.u, 17);
    close(inc.p, 0.055673443266570206, 1e-6);
    close(mannWhitneyU(c, s, 'decrease').p, 0.9669037101389033, 1e-6);
    close(mannWhitneyU(c, s, 'either').p, 0.11134688653314041, 1e-6);
  });

  test('ties: midranks and the tie-corrected variance', () => {
    const c = [3, 4, 4, 5, 6, 6, 6, 8];
    const s = [1, 2, 2, 3, 4, 4, 5];
    const inc = mannWhitneyU(c, s, 'increase');
    assert.equal(inc.u, 48);
    close(inc.p, 0.010960327932384759, 1e-6);
    close(mannWhitneyU(c, s, 'decrease').p, 0.9920076574374018, 1e-6);
    close(mannWhitneyU(c, s, 'either').p, 0.021920655864769517, 1e-6);
  });

  test('all values equal: no evidence, p = 1', () => {
    assert.equal(mannWhitneyU([5, 5, 5], [5, 5]).p, 1);
  });

  test('A/A: one-look false rejections near α', () => {
    const rand = mulberry32(11);
    let rejected = 0;
    const runs = 1000;
    for (let r = 0; r < runs; r++) {
      const a = Array.from({ length: 60 }, () => Math.exp(3 + 0.5 * normal(rand)));
      const b = Array.from({ length: 80 }, () => Math.exp(3 + 0.5 * normal(rand)));
      if (mannWhitneyU(a, b, 'increase').p < 0.02) rejected++;
    }
    // Binomial(1000, 0.02): mean 20, sd 4.4; 3 sd of slack above α.
    assert.ok(rejected <= 33, `${rejected}/${runs}`);
  });

  test('percentile is nearest-rank', () => {
    assert.equal(percentile([5, 1, 4, 2, 3, 10, 9, 8, 7, 6], 50), 5);
    assert.equal(percentile([5, 1, 4, 2, 3, 10, 9, 8, 7, 6], 99), 10);
    assert.equal(percentile([], 50), null);
  });
});

describe('PSI and KS', () => {
  test('PSI from bucket counts: known value, symmetric, 0 when identical', () => {
    // (0.25 − 0.5)·ln(0.5) + (0.75 − 0.5)·ln(1.5)
    close(psiFromCounts([25, 75], [50, 50]), 0.25 * Math.log(2) + 0.25 * Math.log(1.5), 1e-12);
    close(psiFromCounts([50, 50], [25, 75]), psiFromCounts([25, 75], [50, 50]), 1e-12);
    assert.equal(psiFromCounts([10, 20, 30], [1, 2, 3]), 0);
    // An empty bucket is floored at ε = 1e-4, not infinite.
    close(psiFromCounts([0, 100], [50, 50]), (1e-4 - 0.5) * Math.log(1e-4 / 0.5) + 0.5 * Math.log(2), 1e-9);
  });

  test('quantile buckets: deciles of the reference; duplicates collapse', () => {
    const ref = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.deepEqual(quantileCuts(ref, 10), [10, 20, 30, 40, 50, 60, 70, 80, 90]);
    assert.deepEqual(bucketCounts(ref, quantileCuts(ref, 10)), new Array(10).fill(10));
    assert.deepEqual(quantileCuts([1, 1, 1, 1, 2, 2, 2, 2], 4), [1]);
  });

  test('identical distributions ≈ 0; a shift of one sd is a major shift; a small shift is moderate at most', () => {
    const rand = mulberry32(3);
    const ref = Array.from({ length: 5000 }, () => normal(rand));
    const same = Array.from({ length: 5000 }, () => normal(rand));
    const small = Array.from({ length: 5000 }, () => 0.3 + normal(rand));
    const big = Array.from({ length: 5000 }, () => 1 + normal(rand));
    assert.equal(psi(ref, ref).psi, 0);
    assert.ok(psi(same, ref).psi < 0.01, `same ${psi(same, ref).psi}`);
    const s = psi(small, ref).psi;
    assert.ok(s > 0.05 && s < 0.25, `small shift ${s}`);
    assert.ok(psi(big, ref).psi > 0.25, `big shift ${psi(big, ref).psi}`);
    assert.equal(psi(same, ref).buckets, 10);
  });

  test('KS: D exactly; p matches the asymptotic Kolmogorov distribution', () => {
    const a = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
    const b = [0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95];
    const r = ks(a, b);
    close(r.d, 4 / 7, 1e-12); // scipy ks_2samp: 0.5714285714285714
    assert.ok(r.p > 0.1 && r.p < 0.4, `p ${r.p}`); // scipy's asymptotic 0.189; Stephens' small-sample form differs a little
    assert.equal(ks([1, 2, 3], [1, 2, 3]).d, 0);
    assert.equal(ks([1, 2, 3], [10, 20]).d, 1);
  });
});

describe('seeded PRNG', () => {
  test('reproducible; binomial mean and variance', () => {
    assert.equal(mulberry32(1)(), mulberry32(1)());
    const rand = mulberry32(5);
    const xs = Array.from({ length: 20_000 }, () => binomial(rand, 100, 0.05));
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
    close(mean, 5, 0.1, 'mean');
    close(variance, 4.75, 0.25, 'variance');
    assert.equal(binomial(rand, 10, 0), 0);
    assert.equal(binomial(rand, 10, 1), 10);
  });
});
