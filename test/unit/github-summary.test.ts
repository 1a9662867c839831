import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gateChart, gateSeries, GRID, markers, niceCeil, parseLimit, resample, stableOfLimit } from '../../src/cli/github/charts.js';
import { a, code, table, text } from '../../src/cli/github/markdown.js';
import { chartNumber, mermaidBlocks, renderXyChart, validateXyChart } from '../../src/cli/github/mermaid.js';
import { deployReport, pushReport, resolveReport, rollbackReport, s3ConsoleRefsUrl, summaryContext } from '../../src/cli/github/reports.js';
import { runPlace } from '../../src/services/report-facts.js';
import { compactLimit, deploySummary, planSummary, SUMMARY_LIMITS, type BundleChange } from '../../src/cli/github/summary.js';
import { describePlan } from '../../src/rollout/describe.js';
import type { GateEvent, RolloutEvent, RolloutStartedEvent } from '../../src/core/events.js';

/** The fields of a rollout-started event these charts do not read. */
const START: Omit<RolloutStartedEvent, 'at' | 'type'> = { version: '1.2.0', digest: 'sha256:0', phase: 'starting', stable: null, steps: [5, 100] };
import type { RolloutResult } from '../../src/rollout/results.js';
import { MODEL, plan, ref, World } from '../fakes/world.js';

/**
 * Job summaries: Markdown from real engine results (the fake world, virtual time), every Mermaid
 * block checked twice — by the strict validator of the emitted xychart-beta subset, and by
 * mermaid's own parser (the grammar GitHub renders with).
 */

/** mermaid.parse, headless: its parser needs no DOM, only DOMPurify's sanitize (stubbed here). */
async function officialParse(): Promise<(src: string) => Promise<unknown>> {
  const { default: DOMPurify } = await import('dompurify');
  Object.assign(DOMPurify, { sanitize: (s: unknown) => String(s), addHook: () => {} });
  const { default: mermaid } = await import('mermaid');
  return (src) => mermaid.parse(src);
}

/** Both checks on every mermaid block of `markdown`; returns the blocks. */
async function assertCharts(markdown: string): Promise<string[]> {
  const parse = await officialParse();
  const blocks = mermaidBlocks(markdown);
  for (const b of blocks) {
    assert.deepEqual(validateXyChart(b), [], b);
    const r = (await parse(b)) as { diagramType: string };
    assert.equal(r.diagramType, 'xychart', b);
  }
  return blocks;
}

/** The columns of a GFM table row (escaped pipes stay in their cell). */
function cells(row: string): string[] {
  return row.replace(/^\|\s?/, '').replace(/\s?\|$/, '').split(/(?<!\\)\|/).map((c) => c.trim());
}

const LATENCY = { name: 'latency-p99', metric: 'latency-p99', relative: { maxRatio: 1.2 } };
const ERRORS = { name: 'error-rate', metric: 'error-rate', max: 0.05 };

/** 1.0.0 → 1.1.0 stable; 1.2.0 passes its 10% step, then starts failing at 50%: rolled back. */
async function rolledBack(): Promise<RolloutResult> {
  const w = new World({ totalRps: 100 });
  await w.seed('1.0.0', '1.1.0');
  const t0 = w.clock.now();
  // Stable's p99 drifts, so the relative latency limit moves from check to check.
  w.metrics.script('1.1.0', (q) => ({ latencyMs: 100 + ((q.now - t0) / 1000) % 30 }));
  w.metrics.script('1.2.0', (q) => (q.now - t0 < 70_000 ? { errorRate: 0.01, latencyMs: 105 } : { errorRate: 0.4, latencyMs: 110 }));
  return w.engine().deploy(ref('1.2.0'), plan({ steps: [10, 50, 100], intervalMs: 60_000, checkEveryMs: 10_000, gates: [ERRORS, LATENCY] }));
}

const CHANGE: BundleChange = {
  kind: 'diff',
  from: '1.1.0',
  fromDigest: ref('1.1.0').digest,
  components: [
    { name: 'config', status: 'changed', added: [], removed: [], changed: ['config/model.json'] },
    { name: 'preprocessing', status: 'unchanged', added: [], removed: [], changed: [] },
    { name: 'prompts', status: 'unchanged', added: [], removed: [], changed: [] },
    { name: 'weights', status: 'unchanged', added: [], removed: [], changed: [] },
  ],
  transferBytes: 1536,
  totalBytes: 40_960,
};

describe('deploy summary', () => {
  test('a rollback: outcome word, bundle change, steps and gates, one valid chart per gate, stable set', async () => {
    const r = await rolledBack();
    assert.equal(r.outcome, 'rolled-back');
    const report = deployReport(r, CHANGE, `modelctl deploy ${MODEL}@1.2.0`);
    const md = report.summary!;
    assert.match(md, /^### ❌ ROLLED BACK · `sentiment@1\.2\.0` → back on `1\.1\.0`\n\n\*\*ROLLED BACK\*\* — `sentiment@1\.2\.0`: gate error-rate failed/);
    assert.match(md, /All traffic is back on `1\.1\.0`\. Took \d/);
    assert.match(md, /- \*\*Against\*\* `sentiment@1\.1\.0` \(serving before this deploy\)/);
    assert.match(md, /- \*\*Changed\*\* `config` \(1 changed file: `config\/model\.json`\) · unchanged: `preprocessing`, `prompts`, `weights`/);
    assert.match(md, /- \*\*Moved\*\* 1\.5 KiB of 40 KiB \(4%\)/);

    const rows = md.split('\n').filter((l) => l.startsWith('| canary'));
    assert.ok(rows.length >= 4, md);
    for (const row of rows) assert.equal(cells(row).length, 7, row);
    const failed = rows.map(cells).find((c) => c[1] === 'error-rate' && c[4] === '**fail**')!;
    assert.ok(failed, 'the failing gate is in the table');
    assert.equal(failed[0], 'canary 50% · **fail**');
    assert.equal(failed[3], '&lt;= 0.05');
    assert.match(failed[6]!, /^`local:error-rate\{model=sentiment,version=1\.2\.0\} over 10 s since .*`<br>error-rate 0\.4 &gt; 0\.05 \(\d+ of \d+ requests failed\)$/);

    // One row per gate in the compact table: the failed gate first, candidate and stable side by side, the limit once.
    const gateRows = md.split('\n').filter((l) => /^\| (error-rate|latency-p99) \|/.test(l)).map(cells);
    assert.deepEqual(gateRows.map((c) => [c[0], c[4], c[5]]), [['error-rate', '❌ **fail**', 'canary 50%'], ['latency-p99', '✅ pass', 'canary 50%']]);
    assert.equal(gateRows[0]![1], '**0.4**');
    assert.equal(gateRows[0]![3], '≤ 0.05');
    assert.match(gateRows[1]![3]!, /^≤ [\d.]+ ms \(stable × 1\.2\)$/, 'the bound first, the rule after, the stable value in its own column');
    assert.equal(Number(gateRows[1]![2]), stableOfLimit(r.steps.at(-1)!.gates.find((g) => g.name === 'latency-p99')!.limit));
    assert.match(md, /\*\*Steps\*\* canary 10% ✅ 1 min → canary 50% ❌ 10\.0 s → rolled back to `1\.1\.0`/);

    const blocks = await assertCharts(md);
    assert.equal(blocks.length, 2, 'one chart per gate');
    assert.match(blocks[0]!, /title "error-rate: candidate vs limit"/, 'the failed gate first');
    const latency = blocks.find((b) => b.includes('title "latency-p99: candidate vs stable"'))!;
    const series = Object.fromEntries([...latency.matchAll(/^ {4}line "([^"]*)" \[(.*)\]$/gm)].map((m) => [m[1]!, m[2]!.split(', ').map(Number)]));
    assert.deepEqual(Object.keys(series), ['step start', 'limit', 'stable 1.1.0', 'candidate 1.2.0']);
    for (const v of Object.values(series)) assert.equal(v.length, GRID, 'every series on the same time grid');
    assert.ok(new Set(series.limit).size > 1, 'the relative limit is plotted per evaluation, not as one number');
    assert.ok(new Set(series['stable 1.1.0']).size > 1, 'the stable line moves with the stable version');
    // The x-axis is time: from the first measurement (10 s) to the last (70 s), in seconds.
    assert.match(latency, /x-axis "seconds since the rollout started" 10 --> 70\n/);
    // The canary 50% step started at 60 s: a rule at its grid point, nothing else but the floor.
    const rule = series['step start']!;
    const top = Math.max(...rule);
    assert.deepEqual(rule.flatMap((v, i) => (v === top ? [i] : [])), [Math.round(((60 - 10) / 60) * (GRID - 1))]);
    assert.match(md, /\*\*error-rate\*\* — candidate `1\.2\.0` \(blue\) vs limit \(red\); steps: canary 10% from 0 s, canary 50% from 60 s \(light grey rules\); rollback at 70 s\. 7 measurements, seconds since the rollout started\./);
    assert.match(md, /<details><summary>Every step and gate: values, samples, queries, reasons<\/summary>\n\n\| Step \|/);
    assert.match(md, /\*\*Stable set after the run\*\* `1\.1\.0` \(serving\) · `1\.0\.0`\n/);
    assert.deepEqual(report.outputs, { digest: r.digest, version: '1.2.0', outcome: 'rolled-back', 'rolled-back-to': '1.1.0', serving: '1.1.0' });
    assert.deepEqual(report.annotations?.map((a) => [a.level, a.title]), [['error', 'Rolled back sentiment@1.2.0']]);
  });

  test('promoted, first deploy and held read as such', async () => {
    const w = new World({ totalRps: 100 });
    const first = await w.engine().deploy(ref('1.0.0'), plan());
    const firstMd = deploySummary(first, { command: 'modelctl deploy sentiment@1.0.0', change: { kind: 'first-deploy', totalBytes: 40_960 } });
    assert.match(firstMd, /^### ✅ PROMOTED · `sentiment@1\.0\.0` serves 100%\n\n\*\*PROMOTED\*\* — `sentiment@1\.0\.0` serves 100% of traffic \(first version of the model: health check passed\)/);
    assert.match(firstMd, /- \*\*Against\*\* nothing: first deploy of `sentiment` on this target\n- \*\*Moved\*\* 40 KiB \(the whole bundle\)/);
    assert.match(firstMd, /\| health \| – \| – \| – \| ✅ pass \| start \|/);
    assert.match(firstMd, /\| start \| health \| – \| – \| pass \| – \| health check of 1\.0\.0 \|/);
    assert.deepEqual(await assertCharts(firstMd), [], 'nothing to chart on a first deploy');
    assert.doesNotMatch(firstMd, /nothing to chart/, 'and no words about it');

    w.metrics.behave('1.1.0', { errorRate: 0, latencyMs: 20 });
    const promoted = await w.engine().deploy(ref('1.1.0'), plan({ steps: [20, 100], intervalMs: 30_000, checkEveryMs: 10_000, gates: [ERRORS] }));
    const p = deployReport(promoted, CHANGE, 'modelctl deploy sentiment@1.1.0');
    assert.match(p.summary!, /^### ✅ PROMOTED · `sentiment@1\.1\.0` serves 100%\n\n\*\*PROMOTED\*\* — `sentiment@1\.1\.0` serves 100% of traffic \(all canary steps passed\)/);
    assert.deepEqual(p.annotations?.map((a) => a.level), ['notice']);
    await assertCharts(p.summary!);

    // No traffic at all on the candidate once it warmed up: inconclusive → held.
    const w2 = new World({ totalRps: 100 });
    await w2.seed('1.0.0');
    const t0 = w2.clock.now();
    w2.metrics.script('2.0.0', (q) => (q.now - t0 < 15_000 ? { errorRate: 0 } : { requests: 0, errors: 0, latenciesMs: [], scores: [], shadowCompared: 0, shadowAgreed: 0 }));
    const held = await w2.engine().deploy(ref('2.0.0'), plan({ steps: [50, 100], intervalMs: 60_000, checkEveryMs: 10_000, gates: [ERRORS] }));
    assert.equal(held.outcome, 'held');
    const h = deployReport(held, { kind: 'unavailable', from: '1.0.0', reason: 'manifest not in store' }, 'modelctl deploy sentiment@2.0.0');
    assert.match(h.summary!, /\*\*HELD\*\* — `sentiment@2\.0\.0`: gate error-rate inconclusive .* Traffic stays at `1\.0\.0` 50%, `2\.0\.0` 50% until a human decides: `modelctl promote sentiment` or `modelctl abort sentiment`\./);
    assert.match(h.summary!, /bundle diff unavailable \(manifest not in store\)/);
    assert.match(h.summary!, /^### ⏸️ HELD · `sentiment@2\.0\.0` held at `1\.0\.0` 50%, `2\.0\.0` 50%\n/);
    assert.match(h.summary!, /\| error-rate \| no data \| – \| ≤ 0\.05 \| ⏸️ inconclusive \| canary 50% \|/, 'the deciding measurement had no data: said so');
    assert.match(h.summary!, /\*\*error-rate\*\* — one measurement with a value, at 10 s, then held at 20 s: candidate 2\.0\.0 and limit \(blue bars\)/, 'the chart has the one value there was: said so');
    assert.deepEqual(h.annotations?.map((a) => [a.level, a.title]), [['warning', 'Held sentiment@2.0.0']]);
    assert.equal(h.outputs.outcome, 'held');
  });

  test('text from gates and reasons cannot break the Markdown (pipes, newlines, HTML, backticks)', async () => {
    const r = await rolledBack();
    const step = r.steps.find((s) => s.verdict === 'fail')!;
    step.gates[0] = { ...step.gates[0]!, name: 'a|b', reason: 'line one\nline | two <script>x</script>', query: 'sum(rate(x{a="|"}[5m])) `tick`' };
    const md = deploySummary(r, { command: 'modelctl deploy sentiment@1.2.0', change: { kind: 'none' } });
    const rows = md.split('\n').filter((l) => l.includes('a\\|b'));
    assert.deepEqual(rows.map((l) => cells(l).length), [6, 7], 'the compact table, then the evidence');
    const row = rows[1]!;
    assert.match(row, /line one<br>line \\\| two &lt;script&gt;x&lt;\/script&gt;/);
    assert.match(row, /`` sum\(rate\(x\{a="\\\|"\}\[5m\]\)\) `tick` ``/);
  });
});

describe('the other commands', () => {
  test('push: outputs digest, version, ref; a short summary', () => {
    const r = pushReport({ ref: 'sentiment@1.4.0-rc.1+abc', digest: ref('1.4.0').digest, uploadedBytes: 2048, reusedBytes: 4_194_304, store: 's3://models/prod', created: true });
    assert.deepEqual(r.outputs, { digest: ref('1.4.0').digest, version: '1.4.0-rc.1+abc', ref: 'sentiment@1.4.0-rc.1+abc' });
    assert.equal(r.summary, `### 📦 PUSHED · \`sentiment@1.4.0-rc.1+abc\`\n\n**PUSHED** — \`sentiment@1.4.0-rc.1+abc\` · \`${ref('1.4.0').digest}\` in \`s3://models/prod\`.\n\nUploaded 2.0 KiB, re-used 4.0 MiB already in the store.\n\n\`modelctl bundle push sentiment@1.4.0-rc.1+abc\`\n\n`);
  });

  test('rollback, promote/abort (requested and resolved), dry run', async () => {
    const switched = rollbackReport(
      { model: 'sentiment', action: 'switched', from: '1.1.0', to: '1.0.0', digest: ref('1.0.0').digest, healthy: true, stableSet: ['1.0.0', '1.1.0'], events: [] },
      { kind: 'none' },
      'modelctl rollback sentiment',
    );
    assert.deepEqual(switched.outputs, { outcome: 'switched', serving: '1.0.0', 'rolled-back-to': '1.0.0', healthy: true });
    // A rollback by hand is not a gate failure: its own word and icon.
    assert.match(switched.summary!, /^### ↩️ MANUAL ROLLBACK · `sentiment` → `1\.0\.0` \(was `1\.1\.0`\)\n\n\*\*MANUAL ROLLBACK\*\* — all traffic switched by hand to `sentiment@1\.0\.0` \(was `1\.1\.0`\); its health check passed\./);
    assert.doesNotMatch(switched.summary!, /ROLLED BACK/);
    assert.deepEqual(switched.annotations?.map((a) => a.level), ['notice']);
    const sick = rollbackReport({ model: 'sentiment', action: 'switched', from: '1.1.0', to: '1.0.0', digest: '', healthy: false, stableSet: ['1.0.0'], events: [] }, { kind: 'none' }, 'x');
    assert.deepEqual(sick.annotations?.map((a) => a.level), ['error']);
    assert.match(sick.summary!, /^### ❌ MANUAL ROLLBACK, NOT HEALTHY · /);

    const requested = resolveReport({ kind: 'requested', model: 'sentiment', version: '1.2.0', action: 'abort', holder: 'https://github.com/o/r/actions/runs/1' }, { kind: 'none' }, 'modelctl abort sentiment');
    assert.deepEqual(requested.outputs, { outcome: 'abort-requested', serving: null, version: '1.2.0' });
    assert.match(requested.summary!, /\(<https:\/\/github\.com\/o\/r\/actions\/runs\/1>\) was asked to abort/);
    const r = await rolledBack();
    // rollback --force of a version no longer warm redeploys it through the gates: said so in the heading.
    const redeployed = rollbackReport({ action: 'redeployed', deploy: r }, CHANGE, 'modelctl rollback sentiment');
    assert.match(redeployed.summary!, /^### ❌ ROLLED BACK · `sentiment@1\.2\.0` → back on `1\.1\.0` \(manual rollback: redeployed\)\n/);
    const resolved = resolveReport({ kind: 'resolved', result: r }, CHANGE, 'modelctl abort sentiment');
    assert.deepEqual(resolved.outputs, { digest: r.digest, version: '1.2.0', outcome: 'rolled-back', 'rolled-back-to': '1.1.0', serving: '1.1.0' });

    const p = describePlan({ model: 'sentiment', version: '1.2.0', digest: ref('1.2.0').digest, target: 'local', stable: '1.1.0', plan: plan({ gates: [ERRORS] }) });
    const dry = deployReport(p, { kind: 'none' }, 'modelctl deploy sentiment@1.2.0');
    assert.deepEqual(dry.outputs, { digest: p.digest, version: '1.2.0', outcome: 'dry-run', 'rolled-back-to': null, serving: '1.1.0' });
    assert.match(planSummary(p, 'modelctl deploy sentiment@1.2.0 --dry-run'), /^### 📝 PLANNED · `sentiment@1\.2\.0` \(dry run\)[\s\S]*\| canary 5% \| 1 min \| 0\.0 s \|/);
  });
});

describe('charts', () => {
  test('limits in words → numbers: absolute, relative (the evaluated bound), both sides, units, none', () => {
    assert.deepEqual(parseLimit('<= 0.05'), { upper: 0.05, lower: null });
    assert.deepEqual(parseLimit('<= stable (0.004) × 1.5 + 0.01 = 0.016'), { upper: 0.016, lower: null });
    assert.deepEqual(parseLimit('<= stable (120 ms) × 1.2 = 144 ms'), { upper: 144, lower: null });
    assert.deepEqual(parseLimit('>= 0.9 and <= 250 ms and <= 300 ms'), { upper: 250, lower: 0.9 });
    assert.deepEqual(parseLimit('>= stable (0.8) × 0.95 − 0.01 = 0.75'), { upper: null, lower: 0.75 });
    assert.deepEqual(parseLimit('<= stable × 1.2'), { upper: null, lower: null }, 'no stable value yet');
    assert.deepEqual(parseLimit('<= 0.05 and <= stable × 1.5 + 0.01'), { upper: null, lower: null }, 'one side half known is unknown, not the looser bound');
    assert.deepEqual(parseLimit('>= 0.5 and <= stable × 2'), { upper: null, lower: 0.5 });
    assert.deepEqual(parseLimit('(none)'), { upper: null, lower: null });
    assert.deepEqual(parseLimit('<= 1e-3'), { upper: 0.001, lower: null });
  });

  test('a numeric limit carried by the event wins over the words', () => {
    const e = (extra: Partial<GateEvent>): RolloutEvent => ({ at: 1000, type: 'gate-evaluated', gate: 'g', verdict: 'pass', value: 1, limit: '<= stable × 1.2', ...extra });
    const s = gateSeries([{ at: 0, type: 'rollout-started', ...START }, e({ limitValue: 1.44 }), e({ limitMax: 2, limitMin: 0.5 }), e({})]);
    assert.deepEqual(s.get('g')!.map((p) => [p.t, p.upper, p.lower]), [[1, 1.44, null], [1, 2, 0.5], [1, null, null]]);
  });

  test('120 measurements on the time grid: gaps bridged, a spike kept at its time, limits filled, no line without a number', async () => {
    const start: RolloutEvent = { at: 0, type: 'rollout-started', ...START };
    const evs: RolloutEvent[] = [start];
    for (let i = 1; i <= 120; i++) {
      evs.push({ at: i * 1000, type: i === 77 ? 'gate-failed' : 'gate-evaluated', gate: 'rate', verdict: i === 77 ? 'fail' : 'pass', value: i === 3 ? null : i === 77 ? 50 : i / 10, limit: i < 10 ? '>= stable × 0.9' : `>= stable (${i / 5}) × 0.9 = ${(i / 5) * 0.9}` });
      evs.push({ at: i * 1000, type: 'gate-evaluated', gate: 'score', verdict: 'pass', value: 0.5 + i / 1000, limit: '(none)' });
    }
    const r = { model: 'm', version: '1', digest: 'sha256:x', outcome: 'promoted', rolledBackTo: null, reason: 'ok', serving: '1', stableSet: ['1'], steps: [], events: evs } as RolloutResult;
    const md = deploySummary(r, { command: 'modelctl deploy m@1', change: { kind: 'none' } });
    const blocks = await assertCharts(md);
    assert.match(blocks[0]!, /title "rate: candidate vs stable"/, 'the gate with a failure is charted first');
    const rate = Object.fromEntries([...blocks[0]!.matchAll(/^ {4}line "([^"]*)" \[(.*)\]$/gm)].map((m) => [m[1]!, m[2]!.split(', ').map(Number)]));
    assert.deepEqual(Object.keys(rate), ['limit', 'stable', 'candidate 1']);
    assert.equal(rate['candidate 1']![Math.round(((77 - 1) / 119) * (GRID - 1))], 50, 'the failed spike at its own time');
    assert.equal(Math.max(...rate['candidate 1']!), 50);
    assert.equal(rate.limit![0], 1.8, 'the first points (no number yet) take the first known limit');
    assert.equal(rate.stable![0], 2);
    assert.match(blocks[0]!, /x-axis "seconds since the rollout started" 1 --> 120/);
    const score = blocks.find((b) => b.includes('"score: candidate vs limit"'))!;
    assert.equal([...score.matchAll(/^ {4}line /gm)].length, 1, 'no limit line without a numeric limit');
    assert.match(md, /\*\*rate\*\* — candidate `1` \(blue\) vs stable \(grey\) vs limit \(red\)\. 119 measurements, seconds since the rollout started\./);
  });

  test('resample: each measurement at its nearest grid point, straight lines between, flat at the ends, a failure wins its point', () => {
    assert.deepEqual(resample([0, 10], [1, 3], 0, 10, 5), [1, 1.5, 2, 2.5, 3]);
    assert.deepEqual(resample([2.5, 5], [4, 8], 0, 10, 5), [4, 4, 8, 8, 8]);
    assert.deepEqual(resample([0, 4, 5, 10], [1, 9, 2, 1], 0, 10, 3, [false, true, false, false]), [1, 9, 1], 'two in one cell: the failed one');
    assert.deepEqual(resample([0, 4, 5, 10], [1, 9, 2, 1], 0, 10, 3), [1, 2, 1], 'else the latest');
    assert.deepEqual(resample([0, 5, 10], [1, null, 3], 0, 10, 3), [1, 2, 3], 'a measurement without a number is bridged');
    assert.equal(resample([0, 10], [null, null], 0, 10, 3), null);
    assert.deepEqual([0.004, 0.0161, 0.35, 184, 1, 0.9].map(niceCeil), [0.004, 0.02, 0.4, 200, 1, 1]);
  });

  test('one measurement (a rollback at the first check): bars of candidate and stable, the limit as a line', () => {
    const evs: RolloutEvent[] = [
      { at: 0, type: 'rollout-started', ...START, stable: '1.1.0' },
      { at: 0, type: 'step-started', phase: 'canary', index: 0, weight: 5, mirror: 0 },
      { at: 10_000, type: 'gate-failed', gate: 'error-rate', verdict: 'fail', value: 0.35, limit: '<= 0.05 and <= stable (0.004) × 1.5 + 0.01 = 0.016' },
      { at: 10_000, type: 'gate-failed', gate: 'abs', verdict: 'fail', value: 0.35, limit: '<= 0.05' },
    ];
    const series = gateSeries(evs);
    const c = gateChart('error-rate', series.get('error-rate')!, markers(evs), { candidate: '1.2.0', stable: '1.1.0' })!;
    assert.equal(c.kind, 'single');
    assert.deepEqual(c.chart.x, ['candidate 1.2.0', 'stable 1.1.0']);
    assert.deepEqual(c.chart.series.map((x) => [x.kind, x.values]), [['bar', [0.35, 0.004]], ['line', [0.016, 0.016]]]);
    assert.deepEqual(validateXyChart(renderXyChart(c.chart)), []);
    const abs = gateChart('abs', series.get('abs')!, markers(evs), { candidate: '1.2.0', stable: '1.1.0' })!;
    assert.deepEqual(abs.chart.x, ['candidate 1.2.0', 'limit'], 'an absolute gate: the limit beside the candidate');
    assert.equal(gateChart('none', [], [], { candidate: '1', stable: null }), null);
  });

  test('limits compact: the bound first, the rule after, no stable value (it has its column)', () => {
    assert.equal(compactLimit('<= 0.05 and <= stable (0.004) × 1.5 + 0.01 = 0.016'), '≤ 0.05 and ≤ 0.016 (stable × 1.5 + 0.01)');
    assert.equal(compactLimit('>= stable (0.8 ms) × 0.95 − 0.01 = 0.75 ms'), '≥ 0.75 ms (stable × 0.95 − 0.01)');
    assert.equal(compactLimit('<= stable × 1.2'), '≤ stable × 1.2');
    assert.equal(compactLimit('(none)'), '–');
    assert.equal(stableOfLimit('<= stable (1.5e-3) × 2 = 0.003'), 0.0015);
    assert.equal(stableOfLimit('<= 0.05'), null);
  });

  test('where it ran and the links: run (and attempt), commit; none without the runner variables', async () => {
    const env = { GITHUB_SERVER_URL: 'https://github.example', GITHUB_REPOSITORY: 'acme/models', GITHUB_RUN_ID: '77', GITHUB_RUN_ATTEMPT: '2', GITHUB_SHA: 'abcdef0123456789abcdef0123456789abcdef01' };
    const c = summaryContext({ target: 'kubernetes', namespace: 'ml', store: 's3://models/prod' }, env);
    assert.equal(c.runUrl, 'https://github.example/acme/models/actions/runs/77/attempts/2');
    assert.equal(c.commitUrl, 'https://github.example/acme/models/commit/abcdef0123456789abcdef0123456789abcdef01');
    assert.deepEqual(summaryContext({}, {}), {});
    // Where: the target flags (env merged by oclif) and the opened store; a namespace only on Kubernetes.
    const store = { url: 's3://models/prod' } as Parameters<typeof runPlace>[2];
    assert.deepEqual(await runPlace(undefined, { target: 'kubernetes', namespace: 'ml' }, store), { target: 'kubernetes', namespace: 'ml', store: 's3://models/prod' });
    assert.deepEqual(await runPlace(undefined, { target: 'local', namespace: 'ml' }, undefined), { target: 'local', namespace: undefined, store: undefined });
    const md = deploySummary(await rolledBack(), { command: 'modelctl deploy sentiment@1.2.0', change: { kind: 'none' }, context: { ...c, store: 's3://AKIA:secret@models/prod?x=1' } });
    assert.match(md, /\n`modelctl deploy sentiment@1\.2\.0` on \*\*kubernetes\*\* · namespace `ml` · store `s3:\/\/models\/prod` · \[run 77 \(attempt 2\)\]\(https:\/\/github\.example\/acme\/models\/actions\/runs\/77\/attempts\/2\) · commit \[abcdef0\]\(https:\/\/github\.example\/acme\/models\/commit\/abcdef0123456789abcdef0123456789abcdef01\)\n/);
    assert.doesNotMatch(md, /secret|AKIA/);
    // The bundle ref links to the model's refs in the store, where there is a console to show them.
    assert.equal(summaryContext({ store: 's3://models/prod' }, { AWS_REGION: 'eu-west-1' }, 'sentiment').refsUrl, 'https://s3.console.aws.amazon.com/s3/buckets/models?region=eu-west-1&prefix=prod%2Frefs%2Fsentiment%2F');
    assert.equal(s3ConsoleRefsUrl('s3://models', 'm', {}), 'https://s3.console.aws.amazon.com/s3/buckets/models?prefix=refs%2Fm%2F');
    assert.equal(s3ConsoleRefsUrl('s3://models/prod', 'm', { AWS_ENDPOINT_URL: 'http://rgw:7480' }), undefined, 'an S3-compatible server: no AWS console');
    assert.equal(s3ConsoleRefsUrl('file:///srv/store', 'm', {}), undefined);
    const linked = deploySummary(await rolledBack(), { command: 'c', change: { kind: 'none' }, context: { refsUrl: 'https://s3.console.aws.amazon.com/s3/buckets/models?prefix=refs%2Fsentiment%2F' } });
    assert.match(linked, /\n- \*\*Bundle\*\* \[`sentiment@1\.2\.0`\]\(https:\/\/s3\.console\.aws\.amazon\.com\/s3\/buckets\/models\?prefix=refs%2Fsentiment%2F\) · `sha256:/);
  });

  test('the size bound: a huge run stays under the budget (the evidence, then the charts, give way) and far under 1 MiB', async () => {
    const r = await rolledBack();
    // 40 gates × 2000 measurements, long reasons: far beyond any budget before the cuts.
    const events: RolloutEvent[] = [r.events[0]!];
    for (let i = 0; i < 2000; i++) for (let g = 0; g < 40; g++) events.push({ at: r.events[0]!.at + i * 1000, type: 'gate-evaluated', gate: `gate-${g}`, verdict: 'pass', value: Math.random() * 1e-7, limit: `<= stable (${i}) × 1.5 = ${i * 1.5}`, reason: 'x'.repeat(500) });
    const steps = Array.from({ length: 50 }, () => ({ ...r.steps[0]!, gates: Array.from({ length: 40 }, (_, g) => ({ ...r.steps[0]!.gates[0]!, name: `gate-${g}`, reason: 'why '.repeat(1000) })) }));
    const huge = { ...r, events, steps };
    assert.ok(Buffer.byteLength(deploySummary(huge, { command: 'c', change: { kind: 'none' } }, Infinity)) > SUMMARY_LIMITS.bytes, 'uncut, it is over the budget');
    const md = deploySummary(huge, { command: 'modelctl deploy sentiment@1.2.0', change: { kind: 'none' } });
    assert.ok(Buffer.byteLength(md) <= SUMMARY_LIMITS.bytes + 2, `${Buffer.byteLength(md)} bytes`);
    assert.ok(SUMMARY_LIMITS.bytes < 1024 * 1024);
    assert.match(md, /^### ❌ ROLLED BACK/, 'the outcome always stays');
    assert.match(md, /\| gate-0 \|/, 'the compact table always stays');
    await assertCharts(md);
    assert.match(md, /_The full evidence is left out: the summary would exceed GitHub's size limit/);
    assert.equal(mermaidBlocks(md).length, SUMMARY_LIMITS.charts, 'the charts stay while they fit');
    // A tight budget: the evidence goes first, then the charts.
    const tight = deploySummary(r, { command: 'c', change: { kind: 'none' } }, 3000);
    assert.match(tight, /_The charts are left out: the summary would exceed GitHub's size limit/);
    assert.match(tight, /_The full evidence is left out/);
    assert.deepEqual(mermaidBlocks(tight), []);
  });

  test('chart numbers never use exponents; the validator is strict', () => {
    assert.equal(chartNumber(1e-7), '0.0000001');
    assert.equal(chartNumber(1.23456789e22), '12345700000000000000000');
    assert.equal(chartNumber(-1.5e-9), '-0.0000000015');
    assert.equal(chartNumber(123456789), '123457000');
    assert.equal(chartNumber(0.1 + 0.2), '0.3');
    assert.equal(chartNumber(-2.5), '-2.5');
    assert.throws(() => chartNumber(Number.NaN));

    const good = renderXyChart({ title: 'x "quoted"\nnext', xLabel: 's', x: { min: 0, max: 10 }, yLabel: 'v', yMin: 0, yMax: 1, series: [{ kind: 'line', title: 'a "b"', colour: '#000', values: [0.1, 0.2] }, { kind: 'bar', title: 'c', colour: '#111', values: [0.5, 0.5] }] });
    assert.deepEqual(validateXyChart(good), []);
    assert.match(good, /title "x 'quoted' next"/);
    assert.match(good, /^ {4}line "a 'b'" \[0\.1, 0\.2\]$/m);
    assert.match(good, /"plotColorPalette":"#000, #111"/);
    const bad = (s: string) => assert.notDeepEqual(validateXyChart(s), [], s);
    bad('xychart\n title "t"\n x-axis "s" ["1"]\n y-axis "v" 0 --> 1\n line [1]');
    bad('xychart-beta\n title "t"\n x-axis "s" ["1", "2"]\n y-axis "v" 0 --> 1\n line [1]');
    bad('xychart-beta\n title "t"\n x-axis "s" ["1"]\n y-axis "v" 0 --> 1\n line [1e-3]');
    bad('xychart-beta\n title "t"\n x-axis "s" ["1"]\n y-axis "v" 1 --> 1\n line [1]');
    bad('xychart-beta\n title "t"\n x-axis "s" ["1"]\n y-axis "v" 0 --> 1');
    bad('xychart-beta\n title "a "b""\n x-axis "s" ["1"]\n y-axis "v" 0 --> 1\n line [1]');
    bad('xychart-beta\n x-axis "s" ["1"]\n y-axis "v" 0 --> 1\n line [1]');
    bad('xychart-beta\n title "t"\n x-axis "s" 0 --> 10\n y-axis "v" 0 --> 1\n line [1]');
    bad('xychart-beta\n title "t"\n x-axis "s" 0 --> 10\n y-axis "v" 0 --> 1\n line [1, 2]\n line [1, 2, 3]');
    assert.deepEqual(validateXyChart('xychart-beta\n title "t"\n x-axis "s" 0 --> 10\n y-axis "v" 0 --> 1\n line [1, 2, 3]'), []);
    assert.deepEqual(validateXyChart('xychart-beta\n title "t"\n x-axis "s" ["a", "b"]\n y-axis "v" 0 --> 1\n bar "m" [1, 2]\n line "l" [1, 1]'), []);
  });

  test('markdown helpers', () => {
    assert.equal(text('a|b\nc <d> *e* `f` [g](h) #i'), 'a\\|b<br>c &lt;d&gt; \\*e\\* \\`f\\` \\[g\\](h) \\#i');
    assert.equal(code('x`y'), '``x`y``');
    assert.equal(code('`x'), '`` `x ``');
    assert.equal(code('a|b'), '`a\\|b`');
    assert.equal(table(['a', 'b'], [['1', '']]), '| a | b |\n| --- | --- |\n| 1 |   |');
    assert.equal(a('run [1]', 'https://x.test/a_(b)'), '[run \\[1\\]](https://x.test/a_%28b%29)');
    assert.equal(a('x', 'javascript:alert(1)'), 'x', 'only http(s) links');
  });
});

describe('the built-in candidate-ready gate in the job summary', () => {
  test('a row that says NOT ready (not 0) when it rolled the candidate back, and no chart of 1s', async () => {
    const w = new World({ totalRps: 200 });
    await w.seed('1.0.0');
    const check = w.target.beforeCall!;
    w.target.beforeCall = (call) => {
      check(call);
      if (call.method === 'applyTraffic' && call.split?.weights['1.1.0'] === 25) w.target.unhealthy.add('1.1.0');
    };
    const r = await w.engine().deploy(ref('1.1.0'), plan());
    assert.equal(r.outcome, 'rolled-back');
    const md = deploySummary(r, { command: `modelctl deploy ${MODEL}@1.1.0`, change: { kind: 'none' } });
    const row = md.split('\n').find((l) => l.startsWith('| candidate-ready |'));
    assert.ok(row, md);
    assert.match(row, /\| \*\*NOT ready\*\* \| – \| ready \| ❌ \*\*fail\*\* \| canary 25% \|/);
    assert.match(md, /critical gate candidate-ready failed: sentiment@1\.1\.0 is not ready/);
    assert.doesNotMatch(md, /candidate-ready: candidate vs stable|\*\*candidate-ready\*\* —/, 'no chart for a yes / no gate');
  });
});
