import type { PlanDescription } from '../../rollout/describe.js';
import type { RollbackResult, RolloutEvent, RolloutResult } from '../../rollout/engine.js';
import type { ComponentDiff } from '../../services/bundles.js';
import { formatBytes } from '../format.js';
import { gateChart, gateSeries, isGateEvent } from './charts.js';
import { code, link, table, text } from './markdown.js';
import { renderXyChart, validateXyChart } from './mermaid.js';

/**
 * Job summaries (Markdown appended to $GITHUB_STEP_SUMMARY), one builder per command. Pure: every
 * input is data (the command's result, the bundle change looked up by the caller).
 */

/** What the deploy changed in the bundle, against the version that served before it. */
export type BundleChange =
  | { kind: 'first-deploy'; totalBytes: number | null }
  | { kind: 'diff'; from: string; fromDigest: string; components: ComponentDiff[]; transferBytes: number; totalBytes: number }
  | { kind: 'unavailable'; from: string | null; reason: string }
  | { kind: 'none' };

/** Caps that keep one summary far below the runner's limit (1 MiB per step, 128 KiB on older runners). */
export const SUMMARY_LIMITS = { charts: 12, rows: 200, chartPoints: 50 } as const;

const OUTCOME_WORDS: Record<RolloutResult['outcome'], string> = {
  promoted: 'PROMOTED',
  'rolled-back': 'ROLLED BACK',
  aborted: 'ABORTED',
  held: 'HELD',
  'shadow-passed': 'SHADOW PASSED',
};

export function outcomeWord(r: RolloutResult): string {
  if (r.events.some((e) => e.type === 'already-serving')) return 'ALREADY SERVING';
  return OUTCOME_WORDS[r.outcome];
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
    if (e.type === 'held' && e.traffic) return (e.traffic as { weights?: unknown }).weights;
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

export function bundleSection(r: Pick<RolloutResult, 'model' | 'version' | 'digest'>, change: BundleChange): string {
  const lines = [`- **Bundle** ${code(`${r.model}@${r.version}`)} · ${code(r.digest)}`];
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

function queryAndReason(query: unknown, reason: unknown): string {
  const q = typeof query === 'string' && query ? code(query) : '';
  const r = typeof reason === 'string' && reason ? text(reason) : '';
  return [q, r].filter(Boolean).join('<br>') || '–';
}

/** Steps and their gate evidence (the latest measurement of each gate in each step). */
export function stepsTable(r: RolloutResult, maxRows: number = SUMMARY_LIMITS.rows): string {
  const headers = ['Step', 'Gate', 'Value', 'Limit', 'Verdict', 'Samples', 'Query / reason'];
  const rows: string[][] = [];
  for (const s of r.steps) {
    const step = `${stepName(s)}${s.verdict ? ` · ${verdictCell(s.verdict)}` : s.endedAt === null ? ' · running' : ''}`;
    if (s.gates.length === 0) rows.push([step, '–', '–', '–', '–', '–', 'no measurement']);
    for (const g of s.gates) {
      rows.push([step, text(g.name), n(g.value), text(g.limit || '–'), verdictCell(g.verdict), n(g.samples), queryAndReason(g.query, g.reason)]);
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

/** One Mermaid xychart per gate with at least two numeric measurements. */
export function chartsSection(events: readonly RolloutEvent[], maxCharts: number = SUMMARY_LIMITS.charts): string {
  const parts: string[] = [];
  const series = gateSeries(events);
  let charts = 0;
  for (const [gate, points] of series) {
    if (charts >= maxCharts) {
      parts.push(`_${series.size - maxCharts} more gates are not charted._`);
      break;
    }
    const c = gateChart(gate, points, SUMMARY_LIMITS.chartPoints);
    if (!c) {
      parts.push(`**${text(gate)}** — ${points.length === 0 ? 'no numeric measurement' : 'a single measurement'}: nothing to chart.`);
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
    const colours = ['blue', 'red', 'amber'];
    const legend = c.legend.map((l, i) => `${l} (${colours[i]})`).join(', ');
    const thinned = c.points < c.measured ? `, ${c.points} of ${c.measured} measurements shown` : `, ${c.measured} measurements`;
    parts.push(`**${text(gate)}** — ${legend}; x: seconds since the start${thinned}.\n\n\`\`\`mermaid\n${src}\n\`\`\``);
  }
  return parts.join('\n\n');
}

function stableSetLine(set: readonly string[]): string {
  if (set.length === 0) return 'none';
  return set.map((v, i) => (i === 0 ? `${code(v)} (serving)` : code(v))).join(' · ');
}

export interface DeploySummaryOptions {
  /** What ran, for the heading, e.g. "modelctl deploy sentiment@1.2.0". */
  command: string;
  change: BundleChange;
}

export function deploySummary(r: RolloutResult, opts: DeploySummaryOptions): string {
  const first = r.events[0]?.at;
  const last = r.events.at(-1)?.at;
  const took = first !== undefined && last !== undefined && last > first ? ` Took ${seconds(last - first)}.` : '';
  const out = [`### ${text(opts.command)}: ${outcomeWord(r)}`, '', `${outcomeLine(r)}${took}`, '', bundleSection(r, opts.change)];
  if (r.steps.length || r.events.some(isGateEvent)) out.push('', '#### Steps and gates', '', stepsTable(r));
  const charts = chartsSection(r.events);
  if (charts) out.push('', '#### Gates over time', '', charts);
  out.push('', '#### Stable set after the run', '', stableSetLine(r.stableSet));
  return `${out.join('\n')}\n\n`;
}

export function planSummary(p: PlanDescription, command: string): string {
  const steps = p.steps.map((s) => [s.phase === 'shadow' ? `shadow ${s.mirror}%` : `canary ${s.weight}%`, seconds(s.bakeMs), seconds(s.startsAtMs)]);
  const gates = p.gates.map((g) => [text(g.name), text(g.limit), code(g.query)]);
  return [
    `### ${text(command)}: PLANNED (dry run)`,
    '',
    `**PLANNED** — ${code(`${p.model}@${p.version}`)} · ${code(p.digest)}; nothing was changed. ${p.firstDeploy ? 'First deploy: health check, then 100%.' : `Against ${p.stable ? code(p.stable) : 'nothing'}, about ${seconds(p.totalMs)} if every step passes.`}`,
    '',
    steps.length ? table(['Step', 'Bake', 'Starts at'], steps) : '_No canary steps._',
    '',
    gates.length ? table(['Gate', 'Limit', 'Query'], gates) : '_No gates._',
    '',
    '',
  ].join('\n');
}

export function pushSummary(r: { ref: string; digest: string; uploadedBytes: number; reusedBytes: number; store: string; created: boolean }): string {
  const word = r.created ? 'PUSHED' : 'ALREADY PRESENT';
  return [
    `### modelctl bundle push ${text(r.ref)}: ${word}`,
    '',
    `**${word}** — ${code(r.ref)} · ${code(r.digest)} in ${code(r.store)}.`,
    '',
    `Uploaded ${formatBytes(r.uploadedBytes)}, re-used ${formatBytes(r.reusedBytes)} already in the store.`,
    '',
    '',
  ].join('\n');
}

export function rollbackSummary(r: RollbackResult): string {
  if (r.action === 'already-serving') {
    return `### modelctl rollback ${text(r.model)}: ALREADY SERVING\n\n**ALREADY SERVING** — ${code(`${r.model}@${r.to}`)} already serves all traffic: nothing changed.\n\n`;
  }
  const word = r.healthy === false ? 'ROLLED BACK, NOT HEALTHY' : 'ROLLED BACK';
  const health = r.healthy === false ? `it **failed** its health check` : 'its health check passed';
  return [
    `### modelctl rollback ${text(r.model)}: ${word}`,
    '',
    `**${word}** — all traffic on ${code(`${r.model}@${r.to}`)} (was ${r.from ? code(r.from) : 'none'}); ${health}.`,
    '',
    `Stable set: ${stableSetLine(r.stableSet)}`,
    '',
    '',
  ].join('\n');
}

export function requestedSummary(r: { model: string; version: string; action: 'promote' | 'abort'; holder: string }): string {
  return [
    `### modelctl ${r.action} ${text(r.model)}: REQUESTED`,
    '',
    `**REQUESTED** — the running deploy of ${code(`${r.model}@${r.version}`)} (${link(r.holder)}) was asked to ${r.action}; it obeys at its next check and reports the outcome itself.`,
    '',
    '',
  ].join('\n');
}
