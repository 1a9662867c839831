import type { GateResult } from '../../core/gates.js';
import type { StepRecord } from '../../ledger/model.js';
import { CANDIDATE_READY, gateValueWords } from '../../rollout/candidate-ready.js';
import type { PlanDescription } from '../../rollout/describe.js';
import type { RollbackResult, RolloutResult } from '../../rollout/results.js';
import { isGateEvent, isStartEvent, type RolloutEvent, type VersionEvent } from '../../core/events.js';
import type { ComponentDiff } from '../../store/transfer.js';
import type { BundleChange } from '../../services/report-facts.js';
import type { EvaluationReport } from '../../rollout/evaluation.js';
import { formatBytes } from '../format.js';
import { COLOURS, fmtTime, gateChart, gateSeries, markers, stableOfLimit, type GateChart } from './charts.js';
import { a, code, link, table, text } from './markdown.js';
import { renderXyChart, validateXyChart } from './mermaid.js';

/**
 * Job summaries (Markdown appended to $GITHUB_STEP_SUMMARY), one builder per command. Pure: every
 * input is data (the command's result, the bundle change looked up by the caller, where it ran).
 *
 * Read in three seconds, top to bottom: the outcome (an icon and a word — GitHub strips colours
 * from Markdown, emoji survive) with the version and where traffic is now; one line of why; where
 * it ran and links to the run and the commit; a table with one row per gate (candidate, stable,
 * limit, verdict); the steps in one line; then a chart per gate, the failing one first. The
 * evidence in full (every step, query and reason) is folded away below.
 */

export type { BundleChange } from '../../services/report-facts.js';

/** Where a command ran and the links of the job, for the line under the outcome. */
export interface SummaryContext {
  /** `local` or `kubernetes`. */
  target?: string | undefined;
  namespace?: string | undefined;
  /** The store URL (credentials are masked by the runner; they are dropped here anyway). */
  store?: string | undefined;
  /** The workflow run (and attempt) that ran the command. */
  runUrl?: string | undefined;
  runLabel?: string | undefined;
  commitUrl?: string | undefined;
  sha?: string | undefined;
  /** Where a reader can browse the model's refs in the store (the AWS console for an S3 store on AWS). */
  refsUrl?: string | undefined;
}

/**
 * Caps that keep one summary far below the runner's limit: 1 MiB per step (the runner refuses a
 * larger file and shows none of it); `bytes` leaves room for the other commands of the same step.
 */
export const SUMMARY_LIMITS = { charts: 12, rows: 200, bytes: 512 * 1024 } as const;

const OUTCOME_WORDS: Record<RolloutResult['outcome'], string> = {
  promoted: 'PROMOTED',
  'rolled-back': 'ROLLED BACK',
  aborted: 'ABORTED',
  held: 'HELD',
  'shadow-passed': 'SHADOW PASSED',
};

/** The outcome's icon: what the eye finds first. */
export const OUTCOME_ICONS: Record<string, string> = {
  PROMOTED: '✅',
  'ALREADY SERVING': '✅',
  'ROLLED BACK': '❌',
  ABORTED: '🛑',
  HELD: '⏸️',
  'SHADOW PASSED': '☑️',
  'MANUAL ROLLBACK': '↩️',
  'MANUAL ROLLBACK, NOT HEALTHY': '❌',
  PLANNED: '📝',
  PUSHED: '📦',
  'ALREADY PRESENT': '📦',
  REQUESTED: '📨',
};

export function outcomeWord(r: RolloutResult): string {
  if (r.events.some((e) => e.type === 'already-serving')) return 'ALREADY SERVING';
  return OUTCOME_WORDS[r.outcome];
}

/** "### ❌ ROLLED BACK · `sentiment@1.2.0` · …" */
function heading(word: string, rest: string): string {
  return `### ${OUTCOME_ICONS[word] ?? ''} ${word} · ${rest}`.replace('###  ', '### ');
}

function n(v: unknown): string {
  if (typeof v !== 'number') return v === null || v === undefined ? '–' : text(String(v));
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
}

function seconds(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round((ms % 60_000) / 1000);
  return `${Math.floor(ms / 60_000)} min${s ? ` ${s} s` : ''}`;
}

function trafficWords(weights: unknown): string {
  const entries = Object.entries((weights as Record<string, number> | undefined) ?? {}).filter(([, w]) => w > 0);
  return entries.length ? entries.map(([v, w]) => `${code(v)} ${w}%`).join(', ') : 'none';
}

function lastTraffic(events: readonly RolloutEvent[]): unknown {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    if (e.type === 'held' && e.traffic) return e.traffic.weights;
    if (e.type === 'traffic-applied') return e.weights;
  }
  return undefined;
}

/** The one-line outcome, in words. */
export function outcomeLine(r: RolloutResult): string {
  const word = outcomeWord(r);
  const ref = code(`${r.model}@${r.version}`);
  const why = text(r.reason);
  switch (word) {
    case 'PROMOTED':
      return `**PROMOTED** — ${ref} serves 100% of traffic (${why}).`;
    case 'ALREADY SERVING':
      return `**ALREADY SERVING** — ${ref} was already serving: nothing changed.`;
    case 'ROLLED BACK':
      return `**ROLLED BACK** — ${ref}: ${why}. ${r.rolledBackTo ? `All traffic is back on ${code(r.rolledBackTo)}.` : 'No version serves this model.'}`;
    case 'ABORTED':
      return `**ABORTED** — ${ref}: ${why}. ${r.rolledBackTo ? `All traffic is back on ${code(r.rolledBackTo)}.` : ''}`.trimEnd();
    case 'HELD':
      return `**HELD** — ${ref}: ${why}. Traffic stays at ${trafficWords(lastTraffic(r.events))} until a human decides: ${code(`modelctl promote ${r.model}`)} or ${code(`modelctl abort ${r.model}`)}.`;
    default:
      return `**SHADOW PASSED** — ${ref} (${why}); it never served and was not promoted.`;
  }
}

/** Where traffic is after the run, for the heading. */
function whereNow(r: RolloutResult): string {
  const ref = code(`${r.model}@${r.version}`);
  switch (outcomeWord(r)) {
    case 'PROMOTED':
    case 'ALREADY SERVING':
      return `${ref} serves 100%`;
    case 'ROLLED BACK':
    case 'ABORTED':
      return `${ref} → ${r.rolledBackTo ? `back on ${code(r.rolledBackTo)}` : 'no version serves'}`;
    case 'HELD':
      return `${ref} held at ${trafficWords(lastTraffic(r.events))}`;
    default:
      return `${ref} shadowed only`;
  }
}

/** Store URL without credentials or query (a presigned-style URL must not land in a summary). */
function safeStore(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password || u.search) {
      u.username = '';
      u.password = '';
      u.search = '';
    }
    return u.toString();
  } catch {
    return url;
  }
}

/** "`modelctl deploy …` on **kubernetes** · namespace `ml` · store `s3://…` · run #42 · commit abc1234" */
export function contextLine(command: string, c: SummaryContext = {}): string {
  const parts = [code(command) + (c.target ? ` on **${text(c.target)}**` : '')];
  if (c.namespace) parts.push(`namespace ${code(c.namespace)}`);
  if (c.store) parts.push(`store ${code(safeStore(c.store))}`);
  if (c.runUrl) parts.push(a(c.runLabel ?? 'workflow run', c.runUrl));
  if (c.commitUrl && c.sha) parts.push(`commit ${a(c.sha.slice(0, 7), c.commitUrl)}`);
  return parts.join(' · ');
}

function componentWords(c: ComponentDiff): string {
  if (c.status === 'added' || c.status === 'removed') return `${code(c.name)} (${c.status})`;
  const parts = [
    c.changed.length ? `${c.changed.length} changed` : '',
    c.added.length ? `${c.added.length} added` : '',
    c.removed.length ? `${c.removed.length} removed` : '',
  ].filter(Boolean);
  const files = [...c.changed, ...c.added, ...c.removed];
  const shown = files.slice(0, 5).map(code).join(', ') + (files.length > 5 ? ` and ${files.length - 5} more` : '');
  return `${code(c.name)} (${parts.join(', ')} file${files.length === 1 ? '' : 's'}: ${shown})`;
}

export function bundleSection(r: Pick<RolloutResult, 'model' | 'version' | 'digest'>, change: BundleChange, refsUrl?: string): string {
  const ref = code(`${r.model}@${r.version}`);
  const lines = [`- **Bundle** ${refsUrl ? `[${ref}](${refsUrl})` : ref} · ${code(r.digest)}`];
  switch (change.kind) {
    case 'first-deploy':
      lines.push(`- **Against** nothing: first deploy of ${code(r.model)} on this target`);
      if (change.totalBytes !== null) lines.push(`- **Moved** ${formatBytes(change.totalBytes)} (the whole bundle)`);
      break;
    case 'diff': {
      const changed = change.components.filter((c) => c.status !== 'unchanged');
      const same = change.components.filter((c) => c.status === 'unchanged').map((c) => code(c.name));
      lines.push(`- **Against** ${code(`${r.model}@${change.from}`)} (serving before this deploy) · ${code(change.fromDigest)}`);
      lines.push(`- **Changed** ${changed.length ? changed.map(componentWords).join('; ') : 'no component (same files, new version)'}${same.length ? ` · unchanged: ${same.join(', ')}` : ''}`);
      const pct = change.totalBytes > 0 ? ` (${Math.round((change.transferBytes / change.totalBytes) * 100)}%)` : '';
      lines.push(`- **Moved** ${formatBytes(change.transferBytes)} of ${formatBytes(change.totalBytes)}${pct}: the blobs ${code(change.from)} lacks`);
      break;
    }
    case 'unavailable':
      lines.push(`- **Against** ${change.from ? code(`${r.model}@${change.from}`) : 'the serving version'}: bundle diff unavailable (${text(change.reason)})`);
      break;
    case 'none':
      break;
  }
  return lines.join('\n');
}

function stepName(s: { weight: number; mirror: number }): string {
  return s.weight === 0 && s.mirror > 0 ? `shadow ${s.mirror}%` : `canary ${s.weight}%`;
}

function verdictCell(v: unknown): string {
  const s = v === null || v === undefined ? '–' : String(v);
  return s === 'fail' ? '**fail**' : text(s);
}

const VERDICT_ICONS: Record<string, string> = { pass: '✅ pass', fail: '❌ **fail**', inconclusive: '⏸️ inconclusive', error: '⚠️ error' };

function verdictIcon(v: unknown): string {
  return VERDICT_ICONS[String(v)] ?? verdictCell(v);
}

function queryAndReason(query: unknown, reason: unknown): string {
  const q = typeof query === 'string' && query ? code(query) : '';
  const r = typeof reason === 'string' && reason ? text(reason) : '';
  return [q, r].filter(Boolean).join('<br>') || '–';
}

/**
 * A limit in words, compact: the bound first, the rule after —
 * "<= stable (0.004) × 1.5 + 0.01 = 0.016" → "≤ 0.016 (stable × 1.5 + 0.01)".
 * The stable value has its own column, so it is not repeated here.
 */
export function compactLimit(limit: string): string {
  if (!limit || limit === '(none)') return '–';
  return limit
    .split(/\s+and\s+/)
    .map((clause) => {
      const m = /^(<=|>=|<|>)\s*stable \([^)]*\)(.*?)\s*=\s*(.+)$/.exec(clause.trim());
      const c = m ? `${m[1]} ${m[3]} (stable${m[2]})` : clause.trim();
      return text(c.replace(/^<=/, '≤').replace(/^>=/, '≥'));
    })
    .join(' and ');
}

/** Per gate, the measurement that counted last: in the latest step that measured it. */
function latestGates(steps: readonly StepRecord[]): Array<{ gate: GateResult; step: StepRecord }> {
  const latest = new Map<string, { gate: GateResult; step: StepRecord }>();
  for (const step of steps) for (const g of step.gates) latest.set(g.name, { gate: g, step });
  return [...latest.values()];
}

function stableValue(g: GateResult): number | null {
  const b = g.baseline?.value;
  return typeof b === 'number' && Number.isFinite(b) ? b : stableOfLimit(g.limit);
}

/**
 * One row per gate — the comparison it made last: candidate, stable (relative gates), limit,
 * verdict, and the step. Failed gates first.
 */
export function gatesTable(r: RolloutResult): string {
  const stable = r.events.find(isStartEvent)?.stable;
  const headers = ['Gate', `Candidate ${code(r.version)}`, `Stable${typeof stable === 'string' ? ` ${code(stable)}` : ''}`, 'Limit', 'Verdict', 'Step'];
  const rows = latestGates(r.steps)
    .sort((x, y) => Number(y.gate.verdict === 'fail') - Number(x.gate.verdict === 'fail'))
    .map(({ gate: g, step }) => {
      const shown = gateValueWords(g.name, g.value) ?? (g.value === null ? (g.verdict === 'error' ? 'query error' : 'no data') : n(g.value));
      const value = g.verdict === 'fail' ? `**${shown}**` : shown;
      return [text(g.name), value, n(stableValue(g)), compactLimit(g.limit), verdictIcon(g.verdict), stepName(step)];
    });
  // Gates outside any step: the first deploy's health check.
  if (r.steps.length === 0) {
    for (const e of r.events.filter(isGateEvent)) rows.push([text(String(e.gate)), n(e.value), '–', compactLimit(typeof e.limit === 'string' ? e.limit : ''), verdictIcon(e.verdict), 'start']);
  }
  return rows.length ? table(headers, rows) : '_No gate was measured._';
}

/** "canary 10% ✅ 1 min → canary 50% ❌ 20.0 s → rolled back to `1.1.0`" */
export function stepsLine(r: RolloutResult): string {
  const icon = (v: StepRecord['verdict']) => (v === 'pass' ? '✅' : v === 'fail' ? '❌' : v === 'inconclusive' ? '⏸️' : v === null ? '' : text(String(v)));
  const end = r.events.at(-1)?.at ?? 0;
  const steps = r.steps.map((s) => `${stepName(s)} ${icon(s.verdict)} ${seconds((s.endedAt ?? end) - s.startedAt)}`.replace('  ', ' '));
  const word = outcomeWord(r);
  const last =
    word === 'ROLLED BACK' || word === 'ABORTED'
      ? `${word === 'ABORTED' ? 'aborted' : 'rolled back'}${r.rolledBackTo ? ` to ${code(r.rolledBackTo)}` : ''}`
      : word === 'HELD'
        ? 'held for a human'
        : word === 'PROMOTED'
          ? 'promoted'
          : '';
  return [...steps, ...(last ? [last] : [])].join(' → ');
}

/** Steps and their gate evidence (the latest measurement of each gate in each step), with queries and reasons. */
export function stepsTable(r: RolloutResult, maxRows: number = SUMMARY_LIMITS.rows): string {
  const headers = ['Step', 'Gate', 'Value', 'Limit', 'Verdict', 'Samples', 'Query / reason'];
  const rows: string[][] = [];
  for (const s of r.steps) {
    const step = `${stepName(s)}${s.verdict ? ` · ${verdictCell(s.verdict)}` : s.endedAt === null ? ' · running' : ''}`;
    if (s.gates.length === 0) rows.push([step, '–', '–', '–', '–', '–', 'no measurement']);
    for (const g of s.gates) {
      rows.push([step, text(g.name), gateValueWords(g.name, g.value) ?? n(g.value), text(g.limit || '–'), verdictCell(g.verdict), n(g.samples), queryAndReason(g.query, g.reason)]);
    }
  }
  // Gates outside any step: the first deploy's health check.
  if (r.steps.length === 0) {
    for (const e of r.events.filter(isGateEvent)) {
      rows.push(['start', text(String(e.gate)), n(e.value), text(typeof e.limit === 'string' ? e.limit : '–'), verdictCell(e.verdict), n(e.samples), queryAndReason(e.query, e.reason ?? (e.gate === 'health' ? `health check of ${String(e.version ?? r.version)}` : ''))]);
    }
  }
  if (rows.length === 0) return '_No step ran._';
  const shown = rows.slice(0, maxRows);
  return table(headers, shown) + (rows.length > maxRows ? `\n\n_${rows.length - maxRows} more rows in the \`result\` output._` : '');
}

function caption(c: GateChart, marks: ReturnType<typeof markers>, v: { candidate: string; stable: string | null }): string {
  const names = c.chart.series.map((s) => s.title);
  const has = (colour: string) => c.chart.series.some((s) => s.colour === colour);
  const parts = [`candidate ${code(v.candidate)} (blue)`];
  if (has(COLOURS.stable)) parts.push(`stable ${v.stable ? code(v.stable) : ''} (grey)`.replace('  ', ' '));
  if (has(COLOURS.limit)) parts.push('limit (red)');
  if (c.kind === 'single') {
    const what = c.chart.x instanceof Array ? c.chart.x.join(' and ') : '';
    const end = marks.find((m) => m.kind === 'end');
    const then = end ? `, then ${end.label} at ${fmtTime(end.t, c.unit)}` : '';
    return `**${text(c.gate)}** — one measurement with a value, at ${fmtTime(c.span.t0, c.unit)}${then}: ${text(what)} (blue bars) against the limit (red line).`;
  }
  // The steps the chart shows: those that start within it, and the one its first measurement is in.
  const all = marks.filter((m) => m.kind === 'step');
  const firstIn = all.filter((m) => m.t <= c.span.t0).at(-1);
  const steps = all.filter((m) => m === firstIn || (m.t > c.span.t0 && m.t <= c.span.t1)).map((m) => `${m.label} from ${fmtTime(m.t, c.unit)}`);
  const end = marks.find((m) => m.kind === 'end');
  const rules = [
    steps.length ? `steps: ${steps.join(', ')}${names.includes('step start') ? ' (light grey rules)' : ''}` : '',
    end ? `${end.label} at ${fmtTime(end.t, c.unit)}` : '',
    // The chart stops at the last value: say so when the run went on without one (no data → held).
    end && end.t - c.span.t1 >= 1 ? `no value after ${fmtTime(c.span.t1, c.unit)}` : '',
  ].filter(Boolean);
  return `**${text(c.gate)}** — ${parts.join(' vs ')}${rules.length ? `; ${rules.join('; ')}` : ''}. ${c.measured} measurements, ${c.unit === 'min' ? 'minutes' : 'seconds'} since the rollout started.`;
}

/** One chart per gate with a numeric measurement, the failed gates first. */
export function chartsSection(r: Pick<RolloutResult, 'events' | 'version'>, maxCharts: number = SUMMARY_LIMITS.charts): string {
  const parts: string[] = [];
  const series = gateSeries(r.events);
  const marks = markers(r.events);
  const stable = r.events.find(isStartEvent)?.stable;
  const v = { candidate: r.version, stable: typeof stable === 'string' ? stable : null };
  const failed = new Set(r.events.filter(isGateEvent).filter((e) => e.type === 'gate-failed' && !e.dryRun).map((e) => e.gate));
  // candidate-ready is yes / no: a line of 1s says nothing its row in the gates table does not.
  const gates = [...series.keys()].filter((g) => g !== CANDIDATE_READY.name).sort((x, y) => Number(failed.has(y)) - Number(failed.has(x)));
  let charts = 0;
  for (const gate of gates) {
    const points = series.get(gate)!;
    if (charts >= maxCharts) {
      parts.push(`_${gates.length - maxCharts} more gates are not charted._`);
      break;
    }
    const c = gateChart(gate, points, marks, v, ((r.events.at(-1)?.at ?? 0) - (r.events[0]?.at ?? 0)) / 1000);
    if (!c) {
      // A check without a number or a limit (the first deploy's health check) has nothing to say here.
      const limited = r.events.some((e) => isGateEvent(e) && e.gate === gate && typeof e.limit === 'string' && e.limit !== '');
      if (limited) parts.push(`**${text(gate)}** — no numeric measurement: nothing to chart.`);
      continue;
    }
    const src = renderXyChart(c.chart);
    const problems = validateXyChart(src);
    if (problems.length) {
      // Never hand GitHub a chart it cannot draw; this would be a bug here.
      parts.push(`**${text(gate)}** — chart left out (${text(problems[0]!)}).`);
      continue;
    }
    charts++;
    parts.push(`${caption(c, marks, v)}\n\n\`\`\`mermaid\n${src}\n\`\`\``);
  }
  return parts.join('\n\n');
}

function stableSetLine(set: readonly string[]): string {
  if (set.length === 0) return 'none';
  return set.map((v, i) => (i === 0 ? `${code(v)} (serving)` : code(v))).join(' · ');
}

function details(title: string, body: string): string {
  // GitHub renders Markdown inside <details> when blank lines surround it.
  return `<details><summary>${text(title)}</summary>\n\n${body}\n\n</details>`;
}

export interface DeploySummaryOptions {
  /** What ran, e.g. "modelctl deploy sentiment@1.2.0". */
  command: string;
  change: BundleChange;
  context?: SummaryContext;
  /** A manual rollback that had to redeploy an older version (rollback --force). */
  manualRollback?: boolean;
}

/**
 * Cut a summary to the byte budget: the folded evidence goes first (the `result` output has it
 * all), then the charts; the outcome, the context, the gates table and the steps always stay.
 */
function withinBudget(sections: Array<{ body: string; droppable?: string }>, budget: number): string {
  const size = (xs: typeof sections) => Buffer.byteLength(xs.map((s) => s.body).join('\n\n'));
  const out = [...sections];
  for (const which of ['evidence', 'charts']) {
    if (size(out) <= budget) break;
    const i = out.findIndex((s) => s.droppable === which);
    if (i >= 0) out[i] = { body: `_The ${which === 'charts' ? 'charts are' : 'full evidence is'} left out: the summary would exceed GitHub's size limit; the \`result\` output has every measurement._` };
  }
  return out.map((s) => s.body).join('\n\n');
}

/** The evaluation replay before traffic: its gates, and the worst disagreements (truncated; secret-named fields masked). */
export function evaluationSection(e: EvaluationReport): string {
  const pct = (v: number | null) => (v === null ? '—' : `${(100 * v).toFixed(1)}%`);
  const head = `**Evaluation replay** ${e.pass ? '✅ passed' : '❌ failed'} · ${e.cases} cases · ${e.ms} ms · accuracy ${pct(e.accuracy)}${e.stableAccuracy !== null ? ` (stable ${pct(e.stableAccuracy)})` : ''} · agreement with stable ${pct(e.agreement)} · no live traffic`;
  const gates = table(
    ['gate', 'metric', 'value', 'limit', 'verdict', 'why'],
    e.gates.map((g) => [text(g.name), text(g.metric), g.value === null ? '—' : n(g.value), code(g.limit), verdictCell(g.verdict), text(g.reason)]),
  );
  if (e.worst.length === 0) return `${head}\n\n${gates}`;
  const worst = table(
    ['case', 'request', 'candidate', 'stable', 'expected', 'why'],
    e.worst.map((w) => [code(`${w.file}:${w.line}`), code(w.request), code(w.candidate), w.stable === null ? '—' : code(w.stable), w.expected === null ? '—' : code(w.expected), text(w.why)]),
  );
  return `${head}\n\n${gates}\n\n${details(`The ${e.worst.length} worst disagreements`, worst)}`;
}

export function deploySummary(r: RolloutResult, opts: DeploySummaryOptions, budget: number = SUMMARY_LIMITS.bytes): string {
  const first = r.events[0]?.at;
  const last = r.events.at(-1)?.at;
  const took = first !== undefined && last !== undefined && last > first ? ` Took ${seconds(last - first)}.` : '';
  const word = outcomeWord(r);
  const sections: Array<{ body: string; droppable?: string }> = [
    { body: heading(word, `${whereNow(r)}${opts.manualRollback ? ' (manual rollback: redeployed)' : ''}`) },
    { body: `${outcomeLine(r)}${took}` },
    { body: contextLine(opts.command, opts.context) },
  ];
  if (r.steps.length || r.events.some(isGateEvent)) {
    sections.push({ body: gatesTable(r) });
    if (r.steps.length) sections.push({ body: `**Steps** ${stepsLine(r)}` });
  }
  if (r.evaluation) sections.push({ body: evaluationSection(r.evaluation) });
  const charts = chartsSection(r);
  if (charts) sections.push({ body: charts, droppable: 'charts' });
  sections.push({ body: bundleSection(r, opts.change, opts.context?.refsUrl) });
  if (r.steps.length || r.events.some(isGateEvent)) sections.push({ body: details('Every step and gate: values, samples, queries, reasons', stepsTable(r)), droppable: 'evidence' });
  sections.push({ body: `**Stable set after the run** ${stableSetLine(r.stableSet)}` });
  return `${withinBudget(sections, budget)}\n\n`;
}

export function planSummary(p: PlanDescription, command: string, context?: SummaryContext): string {
  const steps = p.steps.map((s) => [s.phase === 'shadow' ? `shadow ${s.mirror}%` : `canary ${s.weight}%`, seconds(s.bakeMs), seconds(s.startsAtMs)]);
  const gates = p.gates.map((g) => [text(g.name), compactLimit(g.limit), code(g.query)]);
  return [
    heading('PLANNED', `${code(`${p.model}@${p.version}`)} (dry run)`),
    '',
    `**PLANNED** — ${code(`${p.model}@${p.version}`)} · ${code(p.digest)}; nothing was changed. ${p.firstDeploy ? 'First deploy: health check, then 100%.' : `Against ${p.stable ? code(p.stable) : 'nothing'}, about ${seconds(p.totalMs)} if every step passes.`}`,
    '',
    contextLine(command, context),
    '',
    steps.length ? table(['Step', 'Bake', 'Starts at'], steps) : '_No canary steps._',
    '',
    gates.length ? table(['Gate', 'Limit', 'Query'], gates) : '_No gates._',
    '',
    '',
  ].join('\n');
}

export function pushSummary(r: { ref: string; digest: string; uploadedBytes: number; reusedBytes: number; store: string; created: boolean }, context?: SummaryContext): string {
  const word = r.created ? 'PUSHED' : 'ALREADY PRESENT';
  return [
    heading(word, code(r.ref)),
    '',
    `**${word}** — ${code(r.ref)} · ${code(r.digest)} in ${code(safeStore(r.store))}.`,
    '',
    `Uploaded ${formatBytes(r.uploadedBytes)}, re-used ${formatBytes(r.reusedBytes)} already in the store.`,
    '',
    contextLine(`modelctl bundle push ${r.ref}`, { ...context, store: undefined }),
    '',
    '',
  ].join('\n');
}

/** A rollback by hand (`modelctl rollback`): a traffic switch to a warm stable version — not a gate failure. */
export function rollbackSummary(r: RollbackResult, context?: SummaryContext): string {
  const where = contextLine(`modelctl rollback ${r.model}`, context);
  if (r.action === 'already-serving') {
    return `${heading('ALREADY SERVING', `${code(`${r.model}@${r.to}`)} serves 100%`)}\n\n**ALREADY SERVING** — ${code(`${r.model}@${r.to}`)} already serves all traffic: nothing changed.\n\n${where}\n\n`;
  }
  const word = r.healthy === false ? 'MANUAL ROLLBACK, NOT HEALTHY' : 'MANUAL ROLLBACK';
  const health = r.healthy === false ? `it **failed** its health check` : 'its health check passed';
  const cascade = r.events.filter((e): e is VersionEvent => e.type === 'stable-unhealthy').map((e) => code(e.version));
  return [
    heading(word, `${code(r.model)} → ${code(r.to)}${r.from ? ` (was ${code(r.from)})` : ''}`),
    '',
    `**${word}** — all traffic switched by hand to ${code(`${r.model}@${r.to}`)} (was ${r.from ? code(r.from) : 'none'}); ${health}.${cascade.length ? ` Skipped, not healthy: ${cascade.join(', ')}.` : ''} No gate ran: a rollback goes to a version of the stable set that already served.`,
    '',
    where,
    '',
    `**Stable set** ${stableSetLine(r.stableSet)}`,
    '',
    '',
  ].join('\n');
}

export function requestedSummary(r: { model: string; version: string; action: 'promote' | 'abort'; holder: string }, context?: SummaryContext): string {
  return [
    heading('REQUESTED', `${r.action} ${code(`${r.model}@${r.version}`)}`),
    '',
    `**REQUESTED** — the running deploy of ${code(`${r.model}@${r.version}`)} (${link(r.holder)}) was asked to ${r.action}; it obeys at its next check and reports the outcome itself.`,
    '',
    contextLine(`modelctl ${r.action} ${r.model}`, context),
    '',
    '',
  ].join('\n');
}
