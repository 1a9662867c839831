import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gateSeries, parseLimit, thin, timeLabels } from '../../src/cli/github/charts.js';
import { code, table, text } from '../../src/cli/github/markdown.js';
import { chartNumber, mermaidBlocks, renderXyChart, validateXyChart } from '../../src/cli/github/mermaid.js';
import { deployReport, pushReport, resolveReport, rollbackReport } from '../../src/cli/github/reports.js';
import { deploySummary, planSummary, type BundleChange } from '../../src/cli/github/summary.js';
import { describePlan } from '../../src/rollout/describe.js';
import type { RolloutEvent, RolloutResult } from '../../src/rollout/engine.js';
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
    assert.match(md, /^### modelctl deploy sentiment@1\.2\.0: ROLLED BACK\n\n\*\*ROLLED BACK\*\* — `sentiment@1\.2\.0`: gate error-rate failed/);
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

    const blocks = await assertCharts(md);
    assert.equal(blocks.length, 2, 'one chart per gate');
    const latency = blocks.find((b) => b.includes('title "latency-p99"'))!;
    const lines = [...latency.matchAll(/^ {4}line \[(.*)\]$/gm)].map((m) => m[1]!.split(', ').map(Number));
    assert.equal(lines.length, 2, 'value and upper limit');
    assert.ok(new Set(lines[1]).size > 1, 'the relative limit is plotted per evaluation, not as one number');
    const labels = /x-axis "seconds since start" \[(.*)\]/.exec(latency)![1]!.split(', ').map((s) => Number(JSON.parse(s)));
    assert.deepEqual(labels, [...labels].sort((a, b) => a - b), 'time goes forward');
    assert.ok(labels[0]! > 0 && labels.at(-1)! > 60, 'seconds since the rollout started');
    assert.match(md, /\*\*error-rate\*\* — value \(blue\), upper limit \(red\); x: seconds since the start, \d+ measurements\./);
    assert.match(md, /#### Stable set after the run\n\n`1\.1\.0` \(serving\) · `1\.0\.0`\n/);
    assert.deepEqual(report.outputs, { digest: r.digest, version: '1.2.0', outcome: 'rolled-back', 'rolled-back-to': '1.1.0', serving: '1.1.0' });
    assert.deepEqual(report.annotations?.map((a) => [a.level, a.title]), [['error', 'Rolled back sentiment@1.2.0']]);
  });

  test('promoted, first deploy and held read as such', async () => {
    const w = new World({ totalRps: 100 });
    const first = await w.engine().deploy(ref('1.0.0'), plan());
    const firstMd = deploySummary(first, { command: 'modelctl deploy sentiment@1.0.0', change: { kind: 'first-deploy', totalBytes: 40_960 } });
    assert.match(firstMd, /: PROMOTED\n\n\*\*PROMOTED\*\* — `sentiment@1\.0\.0` serves 100% of traffic \(first version of the model: health check passed\)/);
    assert.match(firstMd, /- \*\*Against\*\* nothing: first deploy of `sentiment` on this target\n- \*\*Moved\*\* 40 KiB \(the whole bundle\)/);
    assert.match(firstMd, /\| start \| health \| – \| – \| pass \| – \| health check of 1\.0\.0 \|/);
    assert.deepEqual(await assertCharts(firstMd), [], 'nothing to chart on a first deploy');

    w.metrics.behave('1.1.0', { errorRate: 0, latencyMs: 20 });
    const promoted = await w.engine().deploy(ref('1.1.0'), plan({ steps: [20, 100], intervalMs: 30_000, checkEveryMs: 10_000, gates: [ERRORS] }));
    const p = deployReport(promoted, CHANGE, 'modelctl deploy sentiment@1.1.0');
    assert.match(p.summary!, /: PROMOTED\n\n\*\*PROMOTED\*\* — `sentiment@1\.1\.0` serves 100% of traffic \(all canary steps passed\)/);
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
    assert.deepEqual(h.annotations?.map((a) => [a.level, a.title]), [['warning', 'Held sentiment@2.0.0']]);
    assert.equal(h.outputs.outcome, 'held');
  });

  test('text from gates and reasons cannot break the Markdown (pipes, newlines, HTML, backticks)', async () => {
    const r = await rolledBack();
    const step = r.steps.find((s) => s.verdict === 'fail')!;
    step.gates[0] = { ...step.gates[0]!, name: 'a|b', reason: 'line one\nline | two <script>x</script>', query: 'sum(rate(x{a="|"}[5m])) `tick`' };
    const md = deploySummary(r, { command: 'modelctl deploy sentiment@1.2.0', change: { kind: 'none' } });
    const row = md.split('\n').find((l) => l.includes('a\\|b'))!;
    assert.equal(cells(row).length, 7, row);
    assert.match(row, /line one<br>line \\\| two &lt;script&gt;x&lt;\/script&gt;/);
    assert.match(row, /`` sum\(rate\(x\{a="\\\|"\}\[5m\]\)\) `tick` ``/);
  });
});

describe('the other commands', () => {
  test('push: outputs digest, version, ref; a short summary', () => {
    const r = pushReport({ ref: 'sentiment@1.4.0-rc.1+abc', digest: ref('1.4.0').digest, uploadedBytes: 2048, reusedBytes: 4_194_304, store: 's3://models/prod', created: true });
    assert.deepEqual(r.outputs, { digest: ref('1.4.0').digest, version: '1.4.0-rc.1+abc', ref: 'sentiment@1.4.0-rc.1+abc' });
    assert.equal(r.summary, `### modelctl bundle push sentiment@1.4.0-rc.1+abc: PUSHED\n\n**PUSHED** — \`sentiment@1.4.0-rc.1+abc\` · \`${ref('1.4.0').digest}\` in \`s3://models/prod\`.\n\nUploaded 2.0 KiB, re-used 4.0 MiB already in the store.\n\n`);
  });

  test('rollback, promote/abort (requested and resolved), dry run', async () => {
    const switched = rollbackReport(
      { model: 'sentiment', action: 'switched', from: '1.1.0', to: '1.0.0', digest: ref('1.0.0').digest, healthy: true, stableSet: ['1.0.0', '1.1.0'], events: [] },
      { kind: 'none' },
      'modelctl rollback sentiment',
    );
    assert.deepEqual(switched.outputs, { outcome: 'switched', serving: '1.0.0', 'rolled-back-to': '1.0.0', healthy: true });
    assert.match(switched.summary!, /^### modelctl rollback sentiment: ROLLED BACK\n\n\*\*ROLLED BACK\*\* — all traffic on `sentiment@1\.0\.0` \(was `1\.1\.0`\); its health check passed\./);
    assert.deepEqual(switched.annotations?.map((a) => a.level), ['notice']);
    const sick = rollbackReport({ model: 'sentiment', action: 'switched', from: '1.1.0', to: '1.0.0', digest: '', healthy: false, stableSet: ['1.0.0'], events: [] }, { kind: 'none' }, 'x');
    assert.deepEqual(sick.annotations?.map((a) => a.level), ['error']);
    assert.match(sick.summary!, /ROLLED BACK, NOT HEALTHY/);

    const requested = resolveReport({ kind: 'requested', model: 'sentiment', version: '1.2.0', action: 'abort', holder: 'https://github.com/o/r/actions/runs/1' }, { kind: 'none' }, 'modelctl abort sentiment');
    assert.deepEqual(requested.outputs, { outcome: 'abort-requested', serving: null, version: '1.2.0' });
    assert.match(requested.summary!, /\(<https:\/\/github\.com\/o\/r\/actions\/runs\/1>\) was asked to abort/);
    const r = await rolledBack();
    const resolved = resolveReport({ kind: 'resolved', result: r }, CHANGE, 'modelctl abort sentiment');
    assert.deepEqual(resolved.outputs, { digest: r.digest, version: '1.2.0', outcome: 'rolled-back', 'rolled-back-to': '1.1.0', serving: '1.1.0' });

    const p = describePlan({ model: 'sentiment', version: '1.2.0', digest: ref('1.2.0').digest, target: 'local', stable: '1.1.0', plan: plan({ gates: [ERRORS] }) });
    const dry = deployReport(p, { kind: 'none' }, 'modelctl deploy sentiment@1.2.0');
    assert.deepEqual(dry.outputs, { digest: p.digest, version: '1.2.0', outcome: 'dry-run', 'rolled-back-to': null, serving: '1.1.0' });
    assert.match(planSummary(p, 'modelctl deploy sentiment@1.2.0 --dry-run'), /PLANNED \(dry run\)[\s\S]*\| canary 5% \| 1 min \| 0\.0 s \|/);
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
    const e = (extra: Record<string, unknown>): RolloutEvent => ({ at: 1000, type: 'gate-evaluated', gate: 'g', verdict: 'pass', value: 1, limit: '<= stable × 1.2', ...extra });
    const s = gateSeries([{ at: 0, type: 'rollout-started' }, e({ limitValue: 1.44 }), e({ limitMax: 2, limitMin: 0.5 }), e({})]);
    assert.deepEqual(s.get('g')!.map((p) => [p.t, p.upper, p.lower]), [[1, 1.44, null], [1, 2, 0.5], [1, null, null]]);
  });

  test('no numeric limit: only the value line; gaps in the limit are filled; thinning keeps failures', async () => {
    const start: RolloutEvent = { at: 0, type: 'rollout-started' };
    const evs: RolloutEvent[] = [start];
    for (let i = 1; i <= 120; i++) {
      evs.push({ at: i * 1000, type: i === 77 ? 'gate-failed' : 'gate-evaluated', gate: 'rate', verdict: i === 77 ? 'fail' : 'pass', value: i === 3 ? null : i / 10, limit: i < 10 ? '>= stable × 0.9' : `>= stable (${i / 5}) × 0.9 = ${i / 5 * 0.9}` });
      evs.push({ at: i * 1000, type: 'gate-evaluated', gate: 'score', verdict: 'pass', value: 0.5 + i / 1000, limit: '(none)' });
    }
    const r = { model: 'm', version: '1', digest: 'sha256:x', outcome: 'promoted', rolledBackTo: null, reason: 'ok', serving: '1', stableSet: ['1'], steps: [], events: evs } as RolloutResult;
    const md = deploySummary(r, { command: 'modelctl deploy m@1', change: { kind: 'none' } });
    const blocks = await assertCharts(md);
    const rate = blocks.find((b) => b.includes('"rate"'))!;
    const score = blocks.find((b) => b.includes('"score"'))!;
    assert.equal([...score.matchAll(/^ {4}line /gm)].length, 1, 'no limit line without a numeric limit');
    const rateLines = [...rate.matchAll(/^ {4}line \[(.*)\]$/gm)].map((m) => m[1]!.split(', '));
    assert.equal(rateLines.length, 2);
    assert.equal(rateLines[0]!.length, 50, 'thinned to 50 points');
    assert.equal(rateLines[1]![0], '1.8', 'the first points (no number yet) take the first known limit');
    assert.ok(rate.includes('"77.0"'), 'the failed measurement is kept');
    assert.match(md, /\*\*rate\*\* — value \(blue\), lower limit \(red\)|\*\*rate\*\* — value \(blue\), lower limit/);
    assert.match(md, /50 of 119 measurements shown/);
  });

  test('chart numbers never use exponents; labels stay distinct; the validator is strict', () => {
    assert.equal(chartNumber(1e-7), '0.0000001');
    assert.equal(chartNumber(1.23456789e22), '12345700000000000000000');
    assert.equal(chartNumber(-1.5e-9), '-0.0000000015');
    assert.equal(chartNumber(123456789), '123457000');
    assert.equal(chartNumber(0.1 + 0.2), '0.3');
    assert.equal(chartNumber(-2.5), '-2.5');
    assert.throws(() => chartNumber(Number.NaN));
    assert.deepEqual(timeLabels([0.01, 0.02, 1]), ['0.01', '0.02', '1.00']);
    assert.deepEqual(timeLabels([1, 1, 2]), ['1.000', '1.000 (2)', '2.000']);
    assert.equal(thin([1, 2, 3].map((t) => ({ t, value: t, upper: null, lower: null, verdict: 'pass', phase: 'canary' })), 50).length, 3);

    const good = renderXyChart({ title: 'x "quoted"\nnext', xLabel: 's', x: ['1.0', '2.0'], yLabel: 'v', yMin: 0, yMax: 1, lines: [[0.1, 0.2], [0.5, 0.5]], palette: ['#000', '#111'] });
    assert.deepEqual(validateXyChart(good), []);
    assert.match(good, /title "x 'quoted' next"/);
    const bad = (s: string) => assert.notDeepEqual(validateXyChart(s), [], s);
    bad('xychart\n title "t"\n x-axis "s" ["1"]\n y-axis "v" 0 --> 1\n line [1]');
    bad('xychart-beta\n title "t"\n x-axis "s" ["1", "2"]\n y-axis "v" 0 --> 1\n line [1]');
    bad('xychart-beta\n title "t"\n x-axis "s" ["1"]\n y-axis "v" 0 --> 1\n line [1e-3]');
    bad('xychart-beta\n title "t"\n x-axis "s" ["1"]\n y-axis "v" 1 --> 1\n line [1]');
    bad('xychart-beta\n title "t"\n x-axis "s" ["1"]\n y-axis "v" 0 --> 1');
    bad('xychart-beta\n title "a "b""\n x-axis "s" ["1"]\n y-axis "v" 0 --> 1\n line [1]');
    bad('xychart-beta\n x-axis "s" ["1"]\n y-axis "v" 0 --> 1\n line [1]');
    assert.deepEqual(validateXyChart('xychart-beta\n title "t"\n x-axis "s" 0 --> 10\n y-axis "v" 0 --> 1\n line [1, 2, 3]'), []);
  });

  test('markdown helpers', () => {
    assert.equal(text('a|b\nc <d> *e* `f` [g](h) #i'), 'a\\|b<br>c &lt;d&gt; \\*e\\* \\`f\\` \\[g\\](h) \\#i');
    assert.equal(code('x`y'), '``x`y``');
    assert.equal(code('`x'), '`` `x ``');
    assert.equal(code('a|b'), '`a\\|b`');
    assert.equal(table(['a', 'b'], [['1', '']]), '| a | b |\n| --- | --- |\n| 1 |   |');
  });
});
