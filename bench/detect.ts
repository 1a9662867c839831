/**
 * Measure 8 of `npm run bench` (and runnable alone: `node dist/bench/detect.js [--quick]`):
 * how fast does a gate catch a bad canary, and how often does it roll back a good one?
 *
 * A pure simulation — seeded PRNG, no processes, no clock — of many synthetic canaries at the
 * same traffic: 200 req/s, the canary at 5% (10 req/s), stable at 1% errors.
 *
 * - bad canaries fail 5% of their requests; the time to detect is from the start of the step to
 *   the check that rolls back (censored at the 30-minute bake: counted as not detected);
 * - good canaries fail 1%, like stable; a rollback within the 30-minute bake is a false rollback.
 *
 * Two gates judge the same simulated traffic:
 *
 * (a) modelctl: a `kind: statistical, metric: error-rate` gate with its defaults (sequential Beta-mixture SPRT,
 *     confidence 0.98, tolerance 0.25, minSamples 50), evaluated by the real
 *     StatisticalGateEvaluator every 10 s over the window from the start of the step (as the
 *     rollout engine does); its first `fail` rolls back (failureLimit 0).
 * (b) Flagger, as documented (ANCHORS.md): every `interval` = 1 m, the canary's error rate over
 *     the last 1 m must be <= 1%; it rolls back after `threshold` = 5 failed checks.
 *
 * Also, for the record: the same statistic as a fixed-sample z-test (`sequential: false`) peeked
 * every 10 s — the false-rollback rate that an always-valid test exists to avoid.
 */
import { pathToFileURL } from 'node:url';
import { standaloneReport, type BenchRow } from './report.js';

export interface DetectOptions {
  badCanaries: number;
  goodCanaries: number;
  seed: number;
}

export interface DetectRow extends BenchRow {
  pass: boolean | null;
}

export interface DetectReport {
  rows: DetectRow[];
  notes: string[];
  ms: number;
}

const TOTAL_RPS = 200;
const CANARY_SHARE = 0.05;
const STABLE_ERRORS = 0.01;
const BAD_ERRORS = 0.05;
const BAKE_S = 30 * 60;
const CHECK_EVERY_S = 10;
const FLAGGER = { intervalS: 60, maxErrorRate: 0.01, threshold: 5 };

export const DETECT_DEFAULTS: DetectOptions = { badCanaries: 2000, goodCanaries: 5000, seed: 20261122 };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export async function simulateDetection(opts: DetectOptions = DETECT_DEFAULTS): Promise<DetectReport> {
  // The working tree's gate code, loaded when the measure runs (this file is also bench/run.ts's measure 8).
  const { StatisticalGateEvaluator } = await import('../src/gates/statistical.js');
  const { binomial, mulberry32 } = await import('../src/gates/stats/prng.js');
  type Window = import('../src/core/ports.js').VersionWindow;
  type Gate = import('../src/core/gates.js').StatisticalGate;

  const started = performance.now();
  const rand = mulberry32(opts.seed);
  const evaluator = new StatisticalGateEvaluator();
  const sequential: Gate = { name: 'errors', kind: 'statistical', metric: 'error-rate' };
  const peeked: Gate = { ...sequential, sequential: false };
  const canaryPerCheck = Math.round(TOTAL_RPS * CANARY_SHARE * CHECK_EVERY_S);
  const stablePerCheck = Math.round(TOTAL_RPS * (1 - CANARY_SHARE) * CHECK_EVERY_S);
  const checksPerFlagger = FLAGGER.intervalS / CHECK_EVERY_S;
  const looks = BAKE_S / CHECK_EVERY_S;

  const empty = (): Window => ({ requests: 0, errors: 0, latenciesMs: [], scores: [], shadowCompared: 0, shadowAgreed: 0 });

  /** One canary; returns when each gate would have rolled back (seconds), or null. */
  async function canary(candidateErrors: number): Promise<{ sequential: number | null; flagger: number | null; peeked: number | null }> {
    const cand = empty();
    const stab = empty();
    const source = { window: async (_m: string, v: string) => (v === 'cand' ? cand : stab) };
    let seqAt: number | null = null;
    let peekAt: number | null = null;
    let flaggerAt: number | null = null;
    let flaggerFailed = 0;
    let minuteReq = 0;
    let minuteErr = 0;
    for (let look = 1; look <= looks && (seqAt === null || flaggerAt === null || peekAt === null); look++) {
      const e = binomial(rand, canaryPerCheck, candidateErrors);
      cand.requests += canaryPerCheck;
      cand.errors += e;
      stab.requests += stablePerCheck;
      stab.errors += binomial(rand, stablePerCheck, STABLE_ERRORS);
      minuteReq += canaryPerCheck;
      minuteErr += e;
      const t = look * CHECK_EVERY_S;
      const ctx = { model: 'm', candidate: 'cand', stable: 'stab', sinceMs: 0, now: t * 1000, phase: 'canary' as const };
      if (seqAt === null && (await evaluator.evaluate(sequential, ctx, source)).verdict === 'fail') seqAt = t;
      if (peekAt === null && (await evaluator.evaluate(peeked, ctx, source)).verdict === 'fail') peekAt = t;
      if (look % checksPerFlagger === 0) {
        if (flaggerAt === null && minuteErr / minuteReq > FLAGGER.maxErrorRate && ++flaggerFailed >= FLAGGER.threshold) flaggerAt = t;
        minuteReq = 0;
        minuteErr = 0;
      }
    }
    return { sequential: seqAt, flagger: flaggerAt, peeked: peekAt };
  }

  const bad = { sequential: [] as number[], flagger: [] as number[], missedSeq: 0, missedFlagger: 0 };
  for (let i = 0; i < opts.badCanaries; i++) {
    const r = await canary(BAD_ERRORS);
    if (r.sequential === null) bad.missedSeq++;
    else bad.sequential.push(r.sequential);
    if (r.flagger === null) bad.missedFlagger++;
    else bad.flagger.push(r.flagger);
  }
  const good = { sequential: 0, flagger: 0, peeked: 0 };
  for (let i = 0; i < opts.goodCanaries; i++) {
    const r = await canary(STABLE_ERRORS);
    if (r.sequential !== null) good.sequential++;
    if (r.flagger !== null) good.flagger++;
    if (r.peeked !== null) good.peeked++;
  }
  const ms = performance.now() - started;

  // Median over all bad canaries, an undetected one counting as +∞ (it sorts last).
  const med = (xs: number[], missed: number) => (missed * 2 >= xs.length + missed ? Infinity : median([...xs, ...new Array<number>(missed).fill(Infinity)]));
  const seqMed = med(bad.sequential, bad.missedSeq);
  const flagMed = med(bad.flagger, bad.missedFlagger);
  const rate = (n: number) => n / opts.goodCanaries;
  const pctText = (n: number) => `${((100 * n) / opts.goodCanaries).toFixed(2)}% (${n}/${opts.goodCanaries})`;
  const secs = (s: number) => (Number.isFinite(s) ? `${s} s` : 'not detected');
  const rows: DetectRow[] = [
    {
      measure: `time to roll back a bad canary (1% → 5% errors, 5% of ${TOTAL_RPS} req/s), median of ${opts.badCanaries}`,
      modelctl: `${secs(seqMed)} (sequential, checked every ${CHECK_EVERY_S} s)`,
      reference: `${secs(flagMed)} (Flagger: 1 m × threshold ${FLAGGER.threshold})`,
      ratio: `${(seqMed / flagMed).toFixed(2)}×`,
      target: '< 0.5× Flagger',
      pass: seqMed < 0.5 * flagMed,
    },
    {
      measure: `false rollbacks of good canaries (1% vs 1%) over a 30 m bake, ${opts.goodCanaries} canaries`,
      modelctl: pctText(good.sequential),
      reference: `${pctText(good.flagger)} (Flagger)`,
      ratio: '—',
      target: '≤ 1%',
      pass: rate(good.sequential) <= 0.01,
    },
  ];
  const notes = [
    `detect: bad canaries — modelctl p10/p90 ${quantile(bad.sequential, 0.1)}/${quantile(bad.sequential, 0.9)} s, ${bad.missedSeq} not detected in 30 m; ` +
      `Flagger p10/p90 ${bad.flagger.length ? `${quantile(bad.flagger, 0.1)}/${quantile(bad.flagger, 0.9)} s` : '—'}, ${bad.missedFlagger} not detected.`,
    `detect: the same statistic as a fixed-sample z-test (sequential: false) peeked every ${CHECK_EVERY_S} s rolls back ${pctText(good.peeked)} of good canaries — the inflation the always-valid sequential test avoids.`,
    `detect: Flagger's check "error rate over 1 m <= 1%" sits at stable's own 1% rate, so good canaries fail about half the checks by chance; that is the cost of an absolute threshold, not a simulation artefact.`,
    `detect: simulation time ${(ms / 1000).toFixed(1)} s (seeded PRNG ${opts.seed}, binomial error counts per ${CHECK_EVERY_S} s, pure).`,
  ];
  return { rows, notes, ms };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const quick = process.argv.includes('--quick');
  const r = await simulateDetection(quick ? { ...DETECT_DEFAULTS, badCanaries: 250, goodCanaries: 500 } : DETECT_DEFAULTS);
  process.stdout.write(standaloneReport(r.rows, r.notes));
}
