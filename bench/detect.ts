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
  /** Answer-quality part: canaries per accuracy drop (2, 5, 10 points), and equal candidates (false rollbacks). */
  qualityCanaries?: number;
  equalCanaries?: number;
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

export const DETECT_DEFAULTS: DetectOptions = { badCanaries: 2000, goodCanaries: 5000, seed: 20261122, qualityCanaries: 1000, equalCanaries: 5000 };

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
  const quality = await simulateQualityDetection(opts);
  return { rows: [...rows, ...quality.rows], notes: [...notes, ...quality.notes], ms: ms + quality.ms };
}

// ─────────────────────────── answer-quality regressions ───────────────────────────

/** Stable's accuracy on the task, the evaluation set's size and the replay test's confidence. */
const STABLE_ACCURACY = 0.9;
const EVAL_SET_SIZE = 1000;
const EVAL_CONFIDENCE = 0.99;
/**
 * How a candidate's mistakes relate to stable's (per case): an equal candidate (a retrained model,
 * same accuracy) gets 2% of stable's right answers wrong and 18% of its wrong answers right, so
 * 3.6% of answers differ while accuracy stays at 90%. A worse one fixes as many (FIXES of stable's
 * wrong answers) and loses more: acc = 0.9·(1 − loss) + 0.1·FIXES, so loss = (0.9 + 0.1·FIXES − acc) / 0.9.
 */
const FIXES = 0.18;
const lossFor = (accuracy: number) => (STABLE_ACCURACY + (1 - STABLE_ACCURACY) * FIXES - accuracy) / STABLE_ACCURACY;
/** Live traffic with labelled feedback: the share of live answers whose correctness becomes known (e.g. a user's thumbs or a later ground truth). */
const LABELLED_SHARE = 0.1;

/**
 * Answer-quality regressions: a candidate whose accuracy drops by 2, 5 or 10 points from stable's
 * 90%, and equal candidates (false rollbacks). Two ways to catch them:
 *
 * (a) evaluation replay before traffic: the same `EVAL_SET_SIZE` labelled cases sent to candidate
 *     and stable, judged by the real accuracy gate's test (src/gates/evaluation.ts
 *     accuracyDropTest: exact one-sided McNemar, maxDrop 0, confidence 0.99). Rolled back before the
 *     first canary step: zero live requests.
 * (b) live gates only: the canary at 5% of 200 req/s; answer quality is visible live only through
 *     labelled feedback (10% of answers, both versions), judged every 10 s by the real statistical
 *     gate (sequential, confidence 0.98, tolerance 0: any worse rate) with "wrong answer" as the
 *     error. The default live gates (error rate, latency) never see a wrong-but-successful answer.
 */
export async function simulateQualityDetection(opts: DetectOptions = DETECT_DEFAULTS): Promise<DetectReport> {
  const { StatisticalGateEvaluator } = await import('../src/gates/statistical.js');
  const { accuracyDropTest } = await import('../src/gates/evaluation.js');
  const { binomial, mulberry32 } = await import('../src/gates/stats/prng.js');
  type Window = import('../src/core/ports.js').VersionWindow;
  type Gate = import('../src/core/gates.js').StatisticalGate;
  const started = performance.now();
  const rand = mulberry32(opts.seed + 13);
  const evaluator = new StatisticalGateEvaluator();
  const gate: Gate = { name: 'wrong-answers', kind: 'statistical', metric: 'error-rate', tolerance: 0 };
  const canaryPerCheck = TOTAL_RPS * CANARY_SHARE * CHECK_EVERY_S;
  const stablePerCheck = TOTAL_RPS * (1 - CANARY_SHARE) * CHECK_EVERY_S;
  const looks = BAKE_S / CHECK_EVERY_S;
  const empty = (): Window => ({ requests: 0, errors: 0, latenciesMs: [], scores: [], shadowCompared: 0, shadowAgreed: 0 });

  /** (a) one replay of n cases: rolled back before traffic? */
  const replay = (accuracy: number, n: number, confidence = EVAL_CONFIDENCE): boolean => {
    const stableRight = binomial(rand, n, STABLE_ACCURACY);
    const b = binomial(rand, stableRight, lossFor(accuracy));
    const c = binomial(rand, n - stableRight, FIXES);
    return accuracyDropTest(b, c, n, 0, confidence).drop;
  };

  /** (b) one live canary: seconds until the feedback gate fails, or null within the bake. */
  const live = async (accuracy: number): Promise<number | null> => {
    const cand = empty();
    const stab = empty();
    const source = { window: async (_m: string, v: string) => (v === 'cand' ? cand : stab) };
    const labelledC = Math.round(canaryPerCheck * LABELLED_SHARE);
    const labelledS = Math.round(stablePerCheck * LABELLED_SHARE);
    for (let look = 1; look <= looks; look++) {
      cand.requests += labelledC;
      cand.errors += binomial(rand, labelledC, 1 - accuracy);
      stab.requests += labelledS;
      stab.errors += binomial(rand, labelledS, 1 - STABLE_ACCURACY);
      const t = look * CHECK_EVERY_S;
      const ctx = { model: 'm', candidate: 'cand', stable: 'stab', sinceMs: 0, now: t * 1000, phase: 'canary' as const };
      if ((await evaluator.evaluate(gate, ctx, source)).verdict === 'fail') return t;
    }
    return null;
  };

  const perDrop = opts.qualityCanaries ?? 300;
  const equal = opts.equalCanaries ?? 1000;
  const canaryRps = TOTAL_RPS * CANARY_SHARE;
  const rows: DetectRow[] = [];
  const notes: string[] = [];
  const secs = (s: number) => (Number.isFinite(s) ? `${Math.round(s)} s` : 'not detected in 30 m');
  for (const drop of [2, 5, 10]) {
    const acc = STABLE_ACCURACY - drop / 100;
    let caught = 0;
    const times: number[] = [];
    let missed = 0;
    for (let i = 0; i < perDrop; i++) {
      if (replay(acc, EVAL_SET_SIZE)) caught++;
      const t = await live(acc);
      if (t === null) missed++;
      else times.push(t);
    }
    const all = [...times, ...new Array<number>(missed).fill(Infinity)];
    const med = missed * 2 >= all.length ? Infinity : median(all);
    const rate = caught / perDrop;
    rows.push({
      measure: `accuracy ${Math.round(STABLE_ACCURACY * 100)}% → ${Math.round(acc * 100)}% (−${drop} points): rolled back before traffic by a ${EVAL_SET_SIZE}-case evaluation replay, of ${perDrop}`,
      modelctl: `${(100 * rate).toFixed(1)}% before any live request (0 live requests)`,
      reference: `live gates only: median ${secs(med)}, ${Number.isFinite(med) ? Math.round(med * canaryRps) : '≥ ' + BAKE_S * canaryRps} live requests on the candidate (labelled feedback on 10%, sequential test); error-rate/latency gates: never`,
      ratio: '—',
      target: drop === 5 ? '≥ 99% before any live request' : '—',
      pass: drop === 5 ? rate >= 0.99 : null,
    });
    notes.push(`detect (quality −${drop} points): replay caught ${caught}/${perDrop}; live feedback gate p10/p90 ${times.length ? `${quantile(times, 0.1)}/${quantile(times, 0.9)} s` : '—'}, ${missed} not detected in 30 m.`);
  }
  let falseReplay = 0;
  let falseLive = 0;
  for (let i = 0; i < equal; i++) {
    if (replay(STABLE_ACCURACY, EVAL_SET_SIZE)) falseReplay++;
    if ((await live(STABLE_ACCURACY)) !== null) falseLive++;
  }
  const pct = (k: number, n: number) => `${((100 * k) / n).toFixed(2)}% (${k}/${n})`;
  rows.push({
    measure: `false rollbacks of an equal candidate (90% vs 90%, 3.6% of answers differ), ${equal} candidates`,
    modelctl: `${pct(falseReplay, equal)} (replay)`,
    reference: `${pct(falseLive, equal)} (live feedback gate over a 30 m bake)`,
    ratio: '—',
    target: '≤ 1%',
    pass: falseReplay / equal <= 0.01,
  });
  // Statistical power of the replay by set size (why 1000 cases): the share of 5- and 2-point drops caught.
  const power = [200, 500, 1000, 2000].map((n) => {
    let five = 0;
    let two = 0;
    const k = 400;
    for (let i = 0; i < k; i++) {
      if (replay(STABLE_ACCURACY - 0.05, n)) five++;
      if (replay(STABLE_ACCURACY - 0.02, n)) two++;
    }
    return `${n} cases: −5 points ${((100 * five) / k).toFixed(0)}%, −2 points ${((100 * two) / k).toFixed(0)}%`;
  });
  notes.push(`detect (quality): power of the replay's one-sided exact McNemar test (α = 0.01) by set size, 400 draws each — ${power.join('; ')}.`);
  const ms = performance.now() - started;
  notes.push(`detect (quality): simulation time ${(ms / 1000).toFixed(1)} s (seeded PRNG ${opts.seed + 13}, binomial counts per case class and per ${CHECK_EVERY_S} s, pure).`);
  return { rows, notes, ms };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const quick = process.argv.includes('--quick');
  const r = await simulateDetection(quick ? { ...DETECT_DEFAULTS, badCanaries: 250, goodCanaries: 500, qualityCanaries: 60, equalCanaries: 200 } : DETECT_DEFAULTS);
  process.stdout.write(standaloneReport(r.rows, r.notes));
}
