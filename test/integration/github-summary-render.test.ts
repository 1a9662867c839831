import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { deployReport, resolveReport, rollbackReport } from '../../src/cli/github/reports.js';
import type { RunPlace } from '../../src/services/report-facts.js';
import { SUMMARY_LIMITS } from '../../src/cli/github/summary.js';
import type { GateSpec } from '../../src/core/gates.js';
import { describePlan } from '../../src/rollout/describe.js';
import type { RolloutResult } from '../../src/rollout/results.js';
import { MODEL, plan, ref, World } from '../fakes/world.js';
import { launchChromium, renderSummary, type RenderedSummary } from '../infra/summary-browser.js';

/**
 * Job summaries of real rollouts (the engine on the fake world, virtual time), rendered as GitHub
 * shows them — GFM to HTML, Mermaid drawn by mermaid in headless Chromium — and saved as PNGs
 * (their paths are printed) for people to look at. Each must draw every diagram without mermaid's
 * error picture and without a page error.
 */

const ERRORS: GateSpec = { name: 'error-rate', metric: 'error-rate', max: 0.05, relative: { maxRatio: 1.5, maxDelta: 0.01 }, critical: true };
const LATENCY: GateSpec = { name: 'latency-p99', metric: 'latency-p99', relative: { maxRatio: 1.5, maxDelta: 25 }, failureLimit: 1 };
const AGREEMENT: GateSpec = { name: 'shadow-agreement', metric: 'shadow-agreement', min: 0.9, phases: ['shadow'] };
const PLACE: RunPlace = { target: 'kubernetes', namespace: 'ml-serving', store: 's3://models/prod' };
const GITHUB = { GITHUB_SERVER_URL: 'https://github.com', GITHUB_REPOSITORY: 'acme/models', GITHUB_RUN_ID: '4242', GITHUB_RUN_ATTEMPT: '1', GITHUB_SHA: '0123456789abcdef0123456789abcdef01234567' };

/** Stable 1.1.0 (over 1.0.0); the candidate 1.2.0 as `script` says, the stable's latency drifting. */
async function rollout(candidate: (sinceStart: number) => { errorRate?: number; latencyMs?: number; agreement?: number }, over: Parameters<typeof plan>[0]): Promise<{ w: World; r: RolloutResult }> {
  const w = new World({ totalRps: 200 });
  await w.seed('1.0.0', '1.1.0');
  const t0 = w.clock.now();
  w.metrics.script('1.1.0', (q) => ({ errorRate: 0.004, latencyMs: 100 + Math.sin((q.now - t0) / 40_000) * 8 }));
  w.metrics.script('1.2.0', (q) => candidate(q.now - t0));
  const r = await w.engine().deploy(ref('1.2.0'), plan({ gates: [ERRORS, LATENCY], ...over }));
  return { w, r };
}

const scenarios: Record<string, () => Promise<{ md: string; expect: { title: string; charts: number; measurements?: number } }>> = {
  async 'first-deploy'() {
    const w = new World({ totalRps: 200 });
    const r = await w.engine().deploy(ref('1.0.0'), plan());
    return { md: deployReport(r, { kind: 'first-deploy', totalBytes: 40_960 }, `modelctl deploy ${MODEL}@1.0.0`, PLACE).summary!, expect: { title: '✅ PROMOTED · sentiment@1.0.0 serves 100%', charts: 0 } };
  },
  async 'dry-run'() {
    const p = describePlan({ model: MODEL, version: '1.2.0', digest: ref('1.2.0').digest, target: 'kubernetes', stable: '1.1.0', plan: plan({ steps: [10, 50, 100], gates: [ERRORS, LATENCY] }) });
    return { md: deployReport(p, { kind: 'none' }, `modelctl deploy ${MODEL}@1.2.0`, PLACE).summary!, expect: { title: '📝 PLANNED · sentiment@1.2.0 (dry run)', charts: 0 } };
  },
  async promoted() {
    const { r } = await rollout((t) => ({ errorRate: 0.005, latencyMs: 104 + (t % 30_000) / 3000, agreement: 0.97 }), {
      steps: [10, 50, 100],
      intervalMs: 60_000,
      checkEveryMs: 10_000,
      shadowPercent: 10,
      shadowDurationMs: 60_000,
      gates: [ERRORS, LATENCY, AGREEMENT],
    });
    return { md: deployReport(r, { kind: 'none' }, `modelctl deploy ${MODEL}@1.2.0`, PLACE).summary!, expect: { title: '✅ PROMOTED · sentiment@1.2.0 serves 100%', charts: 3 } };
  },
  async 'rolled-back-fast'() {
    // Broken from its first request: the first check fails the critical gate.
    const { r } = await rollout(() => ({ errorRate: 0.35, latencyMs: 180 }), { steps: [5, 25, 50, 100], intervalMs: 60_000, checkEveryMs: 10_000 });
    return { md: deployReport(r, { kind: 'none' }, `modelctl deploy ${MODEL}@1.2.0`, PLACE).summary!, expect: { title: '❌ ROLLED BACK · sentiment@1.2.0 → back on 1.1.0', charts: 2 } };
  },
  async 'rolled-back-slow'() {
    // Fine for two steps, then errors creep up at 50% (a leak): 50+ measurements before the rollback.
    const { r } = await rollout((t) => ({ errorRate: t < 620_000 ? 0.004 + (t % 50_000) / 50_000_000 : 0.004 + (t - 620_000) / 2_000_000, latencyMs: 98 + (t % 70_000) / 7000 }), {
      steps: [5, 25, 50, 100],
      intervalMs: 300_000,
      checkEveryMs: 10_000,
    });
    return { md: deployReport(r, { kind: 'none' }, `modelctl deploy ${MODEL}@1.2.0`, PLACE).summary!, expect: { title: '❌ ROLLED BACK · sentiment@1.2.0 → back on 1.1.0', charts: 2, measurements: 50 } };
  },
  async held() {
    // Traffic to the candidate stops after 25 s: inconclusive → held for a human.
    const w = new World({ totalRps: 200 });
    await w.seed('1.0.0', '1.1.0');
    const t0 = w.clock.now();
    w.metrics.script('1.1.0', () => ({ errorRate: 0.004, latencyMs: 100 }));
    w.metrics.script('1.2.0', (q) => (q.now - t0 < 25_000 ? { errorRate: 0.004, latencyMs: 102 } : { requests: 0, errors: 0, latenciesMs: [], scores: [], shadowCompared: 0, shadowAgreed: 0 }));
    const r = await w.engine().deploy(ref('1.2.0'), plan({ steps: [20, 100], intervalMs: 60_000, checkEveryMs: 5_000, gates: [ERRORS, LATENCY] }));
    return { md: deployReport(r, { kind: 'none' }, `modelctl deploy ${MODEL}@1.2.0`, PLACE).summary!, expect: { title: '⏸️ HELD · sentiment@1.2.0 held at 1.1.0 80%, 1.2.0 20%', charts: 2 } };
  },
  async 'manual-rollback'() {
    const w = new World({ totalRps: 200 });
    await w.seed('1.0.0', '1.1.0', '1.2.0');
    const r = await w.engine('alice').rollback(MODEL, {});
    assert.equal(r.action, 'switched');
    return { md: rollbackReport(r, { kind: 'none' }, `modelctl rollback ${MODEL}`, PLACE).summary!, expect: { title: '↩️ MANUAL ROLLBACK · sentiment → 1.1.0 (was 1.2.0)', charts: 0 } };
  },
  async 'aborted-by-signal'() {
    // The runner cancels the job 95 s in: SIGINT → abort to stable.
    const w = new World({ totalRps: 200 });
    await w.seed('1.0.0', '1.1.0');
    w.metrics.script('1.1.0', () => ({ errorRate: 0.004, latencyMs: 100 }));
    w.metrics.script('1.2.0', () => ({ errorRate: 0.006, latencyMs: 104 }));
    w.clock.after(95_000, () => w.engine('signal', 200).abort(MODEL, 'SIGINT (the runner cancelled the job)'));
    const r = await w.engine().deploy(ref('1.2.0'), plan({ steps: [10, 50, 100], intervalMs: 60_000, checkEveryMs: 10_000, gates: [ERRORS, LATENCY] }));
    return { md: resolveReport({ kind: 'resolved', result: r }, { kind: 'none' }, `modelctl deploy ${MODEL}@1.2.0`, PLACE).summary!, expect: { title: '🛑 ABORTED · sentiment@1.2.0 → back on 1.1.0', charts: 2 } };
  },
};

describe('job summaries rendered as GitHub shows them (GFM + Mermaid in headless Chromium)', () => {
  let browser: Browser;
  let dir: string;
  const saved: Record<string, string> = {};
  before(async () => {
    Object.assign(process.env, GITHUB);
    browser = await launchChromium();
    dir = await mkdtemp(path.join(tmpdir(), 'modelctl-summaries-'));
  });
  after(async () => {
    await browser?.close();
    for (const k of Object.keys(GITHUB)) delete process.env[k];
    process.stderr.write(`job summary pictures:\n${Object.entries(saved).map(([k, p]) => `  ${k}: ${p}`).join('\n')}\n`);
  });

  const cases = [...Object.keys(scenarios).map((name) => ({ name, dark: false })), { name: 'rolled-back-slow', dark: true }];
  for (const { name: scenario, dark } of cases) {
    const name = dark ? `${scenario} (dark mode)` : scenario;
    test(name, async () => {
      const { md, expect } = await scenarios[scenario]!();
      assert.ok(Buffer.byteLength(md) < SUMMARY_LIMITS.bytes, `${Buffer.byteLength(md)} bytes`);
      const out: RenderedSummary = await renderSummary(browser, md, path.join(dir, `${scenario}${dark ? '-dark' : ''}.png`), { dark });
      saved[name] = out.png;
      assert.deepEqual(out.pageErrors, [], md);
      assert.deepEqual(out.mermaidErrors, [], md);
      assert.equal(out.blocks, expect.charts, md);
      assert.equal(out.diagrams, expect.charts, md);
      for (const s of out.svgs) {
        assert.equal(s.kind, 'xychart', md);
        assert.ok(s.width > 300 && s.height > 150, `diagram drawn at ${s.width}×${s.height}`);
        // Readable at any number of measurements: few x labels, none over its neighbour.
        assert.ok(s.xLabels.length >= 2 && s.xLabels.length <= 20, `x labels: ${s.xLabels.join(' ')}`);
        assert.equal(s.xLabelOverlaps, 0, `x labels overlap: ${s.xLabels.join(' ')}`);
      }
      assert.equal(out.text.split('\n')[0], expect.title, 'the outcome is the first thing on the page');
      if (expect.measurements) {
        const counts = [...md.matchAll(/ (\d+) measurements, /g)].map((m) => Number(m[1]));
        assert.ok(counts.length > 0 && counts.every((c) => c >= expect.measurements!), `measurements per chart: ${counts.join(', ')}`);
      }
    });
  }
});
