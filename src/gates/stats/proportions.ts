import { logBeta, logBetaUpperTail } from './beta.js';
import { normalSf } from './normal.js';

/**
 * "Is the candidate's error rate worse than the stable one's?", as a one-sided test of
 *
 *   H0: pC <= ratio · pS + delta      (the candidate is no worse than the tolerated margin)
 *   H1: pC >  ratio · pS + delta
 *
 * on counts xC/nC (candidate) and xS/nS (stable) over the same window. `ratio` = 1 + tolerance
 * (0.25 → the candidate may fail up to 25% more often than stable), `delta` an absolute slack
 * (so a clean stable, 0 errors, does not fail a candidate on its first error).
 *
 * Two tests:
 *
 * - twoProportionZTest: fixed-sample, valid at ONE look (`sequential: false`). Its statistic is
 *   the contrast θ̂ = p̂C − ratio·p̂S − delta, whose
 * variance is estimated at the null boundary (score-test style, like the pooled two-proportion
 * z-test, which it reduces to when ratio = 1 and delta = 0): pS* = (xS + (xC − delta·nC)/ratio) /
 * (nS + nC), pC* = ratio·pS* + delta, V = pC*(1 − pC*)/nC + ratio²·pS*(1 − pS*)/nS. Under H0 the
 * candidate's true variance is at most the boundary's (for rates below 0.5), so the estimate errs
 * on the safe side (fewer false rollbacks).
 * - conditionalMsprt: sequential, exact, valid under any number of looks (the default).
 */

export interface ProportionCounts {
  /** Candidate failures and requests. */
  xC: number;
  nC: number;
  /** Stable failures and requests, same window. */
  xS: number;
  nS: number;
  /** Tolerated ratio (1 + tolerance). Default 1. */
  ratio?: number;
  /** Tolerated absolute difference. Default 0. */
  delta?: number;
}

export interface ContrastEstimate {
  /** Observed rates. */
  pC: number;
  pS: number;
  /** θ̂ = p̂C − ratio·p̂S − delta: > 0 means the candidate looks worse than the margin. */
  theta: number;
  /** Its variance at the null boundary. */
  variance: number;
  /** θ̂ / √V. */
  z: number;
}

export function contrast(c: ProportionCounts): ContrastEstimate {
  const ratio = c.ratio ?? 1;
  const delta = c.delta ?? 0;
  if (!(c.nC > 0 && c.nS > 0)) throw new Error('contrast: both sides need requests');
  const pC = c.xC / c.nC;
  const pS = c.xS / c.nS;
  const theta = pC - ratio * pS - delta;
  // Keep the boundary rates off 0 and 1 by half a count: a window without a single error has a
  // variance of (about) half an error, not zero (a zero variance would make one error "infinite evidence").
  const eps = 0.5 / (c.nC + c.nS);
  const clamp = (p: number) => Math.min(1 - eps, Math.max(eps, p));
  const pS0 = clamp((c.xS + (c.xC - delta * c.nC) / ratio) / (c.nS + c.nC));
  const pC0 = clamp(ratio * pS0 + delta);
  const variance = (pC0 * (1 - pC0)) / c.nC + (ratio * ratio * pS0 * (1 - pS0)) / c.nS;
  return { pC, pS, theta, variance, z: theta / Math.sqrt(variance) };
}

export interface FixedTest extends ContrastEstimate {
  /** One-sided p-value P(Z >= z). Valid at ONE look only. */
  p: number;
}

/** The fixed-sample one-sided two-proportion z-test (the textbook one when ratio = 1, delta = 0). */
export function twoProportionZTest(c: ProportionCounts): FixedTest {
  const e = contrast(c);
  return { ...e, p: normalSf(e.z) };
}

export interface ConditionalPrior {
  /** Prior mean of π at these odds times the null's (default 4: "the candidate fails 4× as often"). */
  oddsRatio?: number;
  /** a + b of the Beta prior (default 2: diffuse). */
  concentration?: number;
}

export const DEFAULT_CONDITIONAL_PRIOR: Required<ConditionalPrior> = { oddsRatio: 4, concentration: 2 };

export interface ConditionalSequentialTest {
  pC: number;
  pS: number;
  /** Errors on the candidate, errors in all. */
  k: number;
  total: number;
  /** Share of errors the candidate would have at the null boundary: π0 = r·nC / (r·nC + nS). */
  pi0: number;
  /** Observed share k / total (NaN without errors). */
  share: number;
  logLambda: number;
  /** Always-valid p-value at this look: min(1, 1/Λ). */
  p: number;
}

/**
 * Exact, always-valid sequential test of "the candidate fails more often than stable × ratio",
 * conditional on the errors (the classic conditional test for two Poisson rates, made sequential
 * as in Lindon & Malek, "Anytime-valid inference for multinomial count data", 2022).
 *
 * Rare errors at rates pC, pS over nC, nS requests are Poisson; given that an error happened, it
 * happened on the candidate with probability π = pC·nC / (pC·nC + pS·nS), which under H0
 * (pC <= ratio·pS) is at most π0 = ratio·nC / (ratio·nC + nS) — fixed while the traffic split is.
 * Each error is then a Bernoulli(π) trial, and
 *
 *   Λ = ∫_{π0}^{1} Π_i LR_i(π vs π0) dBeta(π; a, b) / P_Beta(π > π0)
 *     = B(a+k, b+X−k)·P(Beta(a+k, b+X−k) > π0) / (B(a,b)·P(Beta(a,b) > π0) · π0^k (1−π0)^(X−k))
 *
 * (k candidate errors of X) is a mixture of likelihood ratios of alternatives π >= π0: a
 * non-negative supermartingale under every π <= π0, so by Ville's inequality
 * P(Λ ever reaches 1/α) <= α, however often it is looked at. No normal approximation: it holds
 * with 1 error as with 10,000 (a Gaussian mSPRT on θ̂ — Johari et al. 2017 — does not: with a
 * handful of errors its plug-in variance is too small, and in simulation it rolled back 3.3% of
 * canaries at the null boundary for an α of 2%). The prior only decides speed; its mean
 * is put at `oddsRatio` × the null's odds, which makes the test behave the same at any canary share.
 *
 * An absolute slack `delta` enters as ratio + delta / p̂S (p̂S floored at half an error): a
 * plug-in, so with delta > 0 the guarantee is approximate.
 */
export function conditionalMsprt(c: ProportionCounts, prior: ConditionalPrior = {}): ConditionalSequentialTest {
  if (!(c.nC > 0 && c.nS > 0)) throw new Error('conditionalMsprt: both sides need requests');
  const { oddsRatio, concentration } = { ...DEFAULT_CONDITIONAL_PRIOR, ...prior };
  const pC = c.xC / c.nC;
  const pS = c.xS / c.nS;
  const delta = c.delta ?? 0;
  const ratio = (c.ratio ?? 1) + (delta > 0 ? delta / Math.max(pS, 0.5 / c.nS) : 0);
  const pi0 = (ratio * c.nC) / (ratio * c.nC + c.nS);
  const k = c.xC;
  const total = c.xC + c.xS;
  const odds1 = (oddsRatio * pi0) / (1 - pi0);
  const mean = odds1 / (1 + odds1);
  const a = mean * concentration;
  const b = (1 - mean) * concentration;
  const logLambda =
    total === 0
      ? 0
      : logBeta(a + k, b + total - k) +
        logBetaUpperTail(pi0, a + k, b + total - k) -
        logBeta(a, b) -
        logBetaUpperTail(pi0, a, b) -
        k * Math.log(pi0) -
        (total - k) * Math.log1p(-pi0);
  return { pC, pS, k, total, pi0, share: total > 0 ? k / total : NaN, logLambda, p: Math.min(1, Math.exp(-logLambda)) };
}
