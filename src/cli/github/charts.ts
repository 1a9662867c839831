import { isGateEvent, type GateEvent, type RolloutEvent } from '../../core/events.js';
import type { XyChart, XySeries } from './mermaid.js';

/**
 * Each gate's measurements over a rollout (from its gate-evaluated / gate-failed events) as a
 * chart of the comparison the gate makes: the candidate's value, the stable version's value over
 * the same window (relative gates), and the limit — per evaluation, because a limit relative to
 * the stable version moves with it — over real time, with the step boundaries. Pure functions.
 *
 * Why xychart-beta on a resampled grid: GitHub renders Mermaid only, and of Mermaid's charts only
 * xychart draws numeric series against an axis (gantt and timeline have a time axis but no
 * values). Its series carry y values only, spread evenly over the x-axis, so the measurements are
 * placed on an even time grid (each at the nearest grid point, straight lines between them) and
 * the x-axis is numeric: real time, with mermaid's own readable ticks however many points there
 * are. A step boundary is a thin spike of its own series (a line cannot be vertical on an even grid;
 * a `bar` on a numeric axis is as wide as a tick interval), fine enough to read as a rule at
 * GRID points.
 */

export interface Bounds {
  /** The tightest upper bound ("<= x"), if the limit has one with a number. */
  upper: number | null;
  /** The tightest lower bound (">= x"). */
  lower: number | null;
}

const NUMBER = String.raw`[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?`;

/**
 * The numbers in a limit as the gates word it: "<= 0.05", ">= 0.9 and <= 250 ms",
 * "<= stable (0.004) × 1.5 + 0.01 = 0.016" (the evaluated bound after "="). The tightest bound of
 * each side counts; a side with a clause that has no number yet ("<= stable × 1.2", before the
 * stable version was measured) is unknown for that evaluation — not the looser bound beside it.
 */
export function parseLimit(limit: string): Bounds {
  const found = { upper: [] as Array<number | null>, lower: [] as Array<number | null> };
  for (const clause of limit.split(/\s+and\s+/)) {
    const op = /^\s*(<=|>=|<|>)/.exec(clause)?.[1];
    if (!op) continue;
    const rest = clause.slice(clause.indexOf(op) + op.length);
    const m = new RegExp(`=\\s*(${NUMBER})(?:\\s*[^\\d\\s=]\\S*)?\\s*$`, 'i').exec(rest) ?? new RegExp(`^\\s*(${NUMBER})(?:\\s|$)`, 'i').exec(rest);
    const n = m ? Number(m[1]) : Number.NaN;
    found[op.startsWith('<') ? 'upper' : 'lower'].push(Number.isFinite(n) ? n : null);
  }
  const side = (xs: Array<number | null>, pick: (...v: number[]) => number) =>
    xs.length === 0 || xs.includes(null) ? null : pick(...(xs as number[]));
  return { upper: side(found.upper, Math.min), lower: side(found.lower, Math.max) };
}

/** The stable version's value a relative limit was computed from: "<= stable (0.004) × 1.5 …" → 0.004. */
export function stableOfLimit(limit: string): number | null {
  const m = new RegExp(`stable \\((${NUMBER})`, 'i').exec(limit);
  return m ? Number(m[1]) : null;
}

function finite(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** The bounds of one evaluation: numeric fields on the event win over the words. */
export function eventBounds(e: GateEvent): Bounds {
  const words = typeof e.limit === 'string' ? parseLimit(e.limit) : { upper: null, lower: null };
  const upper = finite(e.limitMax) ?? finite(e.limitUpper);
  const lower = finite(e.limitMin) ?? finite(e.limitLower);
  const single = finite(e.limitValue);
  if (upper !== null || lower !== null) return { upper: upper ?? words.upper, lower: lower ?? words.lower };
  if (single !== null) return typeof e.limit === 'string' && /^\s*>/.test(e.limit) ? { upper: words.upper, lower: single } : { upper: single, lower: words.lower };
  return words;
}

/** The stable value of one evaluation: a `baseline` on the event, else the one in the limit's words. */
export function eventStable(e: GateEvent): number | null {
  return finite(e.baseline?.value) ?? (typeof e.limit === 'string' ? stableOfLimit(e.limit) : null);
}

export interface GatePoint {
  /** Seconds since the start of the run. */
  t: number;
  value: number;
  upper: number | null;
  lower: number | null;
  /** The stable version's value over the same window (relative gates), else null. */
  stable: number | null;
  verdict: string;
  phase: string;
}


/** Per gate (in order of first appearance), its numeric measurements. */
export function gateSeries(events: readonly RolloutEvent[]): Map<string, GatePoint[]> {
  const start = events[0]?.at ?? 0;
  const series = new Map<string, GatePoint[]>();
  for (const e of events) {
    if (!isGateEvent(e)) continue;
    const points = series.get(e.gate) ?? [];
    series.set(e.gate, points);
    if (typeof e.value !== 'number' || !Number.isFinite(e.value)) continue; // no data: nothing to plot
    const b = eventBounds(e);
    points.push({ t: (e.at - start) / 1000, value: e.value, upper: b.upper, lower: b.lower, stable: eventStable(e), verdict: String(e.verdict ?? ''), phase: String(e.phase ?? '') });
  }
  return series;
}

/** A moment worth a rule on the time axis: a step start, the rollback. */
export interface Marker {
  /** Seconds since the start of the run. */
  t: number;
  label: string;
  kind: 'step' | 'end';
}

/** The step starts and the moment the rollout turned back (rollback or abort started, or it held). */
export function markers(events: readonly RolloutEvent[]): Marker[] {
  const start = events[0]?.at ?? 0;
  const out: Marker[] = [];
  for (const e of events) {
    const t = (e.at - start) / 1000;
    if (e.type === 'step-started') out.push({ t, kind: 'step', label: e.phase === 'shadow' ? `shadow ${String(e.mirror)}%` : `canary ${String(e.weight)}%` });
    else if (e.type === 'rollback-started' && e.reason !== undefined) out.push({ t, kind: 'end', label: 'rollback' });
    else if (e.type === 'abort-started') out.push({ t, kind: 'end', label: 'abort' });
    else if (e.type === 'held') out.push({ t, kind: 'end', label: 'held' });
  }
  return out;
}

/** Points of the time grid: fine enough that a spike one grid step wide reads as a rule. */
export const GRID = 241;

/**
 * `values` (one per measurement, null where unknown) on an even grid of `n` points from `t0` to
 * `t1`: each measurement at its nearest grid point (a failed one wins its point, else the latest),
 * straight lines between, held flat before the first and after the last. Null when all unknown.
 */
export function resample(ts: number[], values: Array<number | null>, t0: number, t1: number, n: number, wins: boolean[] = []): number[] | null {
  const at = new Map<number, { v: number; win: boolean }>();
  const dt = (t1 - t0) / (n - 1);
  ts.forEach((t, k) => {
    const v = values[k];
    if (v === null || v === undefined) return;
    const i = Math.min(n - 1, Math.max(0, Math.round((t - t0) / dt)));
    const prev = at.get(i);
    if (!prev || !prev.win || wins[k]) at.set(i, { v, win: wins[k] ?? false });
  });
  const known = [...at.keys()].sort((a, b) => a - b);
  if (known.length === 0) return null;
  const out: number[] = [];
  let k = 0;
  for (let i = 0; i < n; i++) {
    while (k + 1 < known.length && known[k + 1]! <= i) k++;
    const a = known[k]!;
    const b = known[k + 1];
    const va = at.get(a)!.v;
    if (i <= a || b === undefined) out.push(i < a ? at.get(known[0]!)!.v : va);
    else out.push(va + ((at.get(b)!.v - va) * (i - a)) / (b - a));
  }
  return out;
}

/**
 * Blue, grey, red: told apart by hue and by lightness (red and green would not be, for one reader
 * in twelve), each readable on GitHub's light and dark backgrounds; the step rules light grey, behind.
 */
export const COLOURS = { candidate: '#3b82f6', stable: '#6b7280', limit: '#dc2626', step: '#c4c9d0' } as const;

export interface GateChart {
  gate: string;
  chart: XyChart;
  /** Measurements with a value. */
  measured: number;
  /** The time unit of the x-axis. */
  unit: 's' | 'min';
  /** Over time, or one measurement as bars (candidate, stable, limit). */
  kind: 'time' | 'single';
  /** Seconds since the start of the run: the first and the last measurement charted. */
  span: { t0: number; t1: number };
}

export interface ChartVersions {
  candidate: string;
  stable: string | null;
}

function yRange(values: number[]): { yMin: number; yMax: number } {
  const lo = Math.min(0, ...values);
  const hi = Math.max(...values);
  return { yMin: lo, yMax: hi > lo ? niceCeil(hi + (hi - lo) * 0.08) : lo + 1 };
}

/** A round number at or above x (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10^k): axis ends people read. */
export function niceCeil(x: number): number {
  if (x <= 0) return x;
  const p = 10 ** Math.floor(Math.log10(x));
  const m = [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10].find((s) => s * p >= x * (1 - 1e-12))!;
  return Number((m * p).toPrecision(6));
}

/** The chart of one gate: over time from two measurements on, as bars for a single one; null for none. */
export function gateChart(gate: string, points: GatePoint[], marks: Marker[], v: ChartVersions, runSeconds = points.at(-1)?.t ?? 0): GateChart | null {
  if (points.length === 0) return null;
  // One unit for every chart of the run, from its length: minutes from 3 minutes on.
  const unit = runSeconds >= 180 ? 'min' : 's';
  const relative = points.some((p) => p.stable !== null);
  if (points.length === 1 || points.at(-1)!.t - points[0]!.t <= 0) {
    // One measurement (a rollback at the first check): the comparison it made, as bars, with the
    // limit as a red line across them. One bar series only: mermaid draws a zero bar as a sliver
    // (its y-axis is padded), so bars of several colours would each stain the others' feet.
    const p = points.at(-1)!;
    const bound = p.upper ?? p.lower;
    const bars: Array<[string, number]> = [[`candidate ${v.candidate}`, p.value]];
    if (p.stable !== null) bars.push([`stable ${v.stable ?? ''}`.trim(), p.stable]);
    else if (bound !== null) bars.push([`limit`, bound]);
    const series: XySeries[] = [{ kind: 'bar', title: 'measured', colour: COLOURS.candidate, values: bars.map((b) => b[1]) }];
    if (bound !== null && bars.length > 1) series.push({ kind: 'line', title: p.upper !== null ? 'limit (upper)' : 'limit (lower)', colour: COLOURS.limit, values: bars.map(() => bound) });
    const { yMin, yMax } = yRange(series.flatMap((x) => x.values));
    return {
      gate,
      measured: 1,
      unit,
      kind: 'single',
      span: { t0: p.t, t1: p.t },
      chart: { title: `${gate}: ${p.verdict} at ${fmtTime(p.t, unit)}`, xLabel: '', x: bars.map((b) => b[0]), yLabel: gate, yMin, yMax, series, width: 600, height: 320 },
    };
  }
  const t0 = points[0]!.t;
  const t1 = points.at(-1)!.t;
  const scale = unit === 'min' ? 60 : 1;
  const ts = points.map((p) => p.t);
  const wins = points.map((p) => p.verdict === 'fail');
  const candidate = resample(ts, points.map((p) => p.value), t0, t1, GRID, wins)!;
  const lines: XySeries[] = [];
  const hasUpper = points.some((p) => p.upper !== null);
  const hasLower = points.some((p) => p.lower !== null);
  const stable = relative ? resample(ts, points.map((p) => p.stable), t0, t1, GRID, wins) : null;
  const upper = hasUpper ? resample(ts, points.map((p) => p.upper), t0, t1, GRID, wins) : null;
  const lower = hasLower ? resample(ts, points.map((p) => p.lower), t0, t1, GRID, wins) : null;
  if (upper) lines.push({ kind: 'line', title: 'limit', colour: COLOURS.limit, values: upper });
  if (lower) lines.push({ kind: 'line', title: upper ? 'lower limit' : 'limit', colour: COLOURS.limit, values: lower });
  if (stable) lines.push({ kind: 'line', title: `stable ${v.stable ?? ''}`.trim(), colour: COLOURS.stable, values: stable });
  lines.push({ kind: 'line', title: `candidate ${v.candidate}`, colour: COLOURS.candidate, values: candidate });
  const { yMin, yMax } = yRange(lines.flatMap((l) => l.values));
  // Rules: a spike to the top at each marker's grid point, the rest of the series on the floor.
  const rule = (kind: Marker['kind']): number[] | null => {
    // A step that started before the first measurement gets no rule: the chart's left edge is
    // the first measurement, and a rule there would put the step start at the wrong time.
    const half = (t1 - t0) / (GRID - 1) / 2;
    const at = new Set(marks.filter((m) => m.kind === kind && m.t >= t0 - half && m.t <= t1 + half).map((m) => Math.round(((m.t - t0) / (t1 - t0)) * (GRID - 1))));
    if (at.size === 0) return null;
    return Array.from({ length: GRID }, (_, i) => (at.has(i) ? yMax : yMin));
  };
  // Only the step starts get rules: the rollback / abort / hold is the right edge of the chart
  // anyway, and a second rule series would paint its floor over the x-axis in its colour.
  const steps = rule('step');
  const series: XySeries[] = [...(steps ? [{ kind: 'line' as const, title: 'step start', colour: COLOURS.step, values: steps }] : []), ...lines];
  return {
    gate,
    measured: points.length,
    unit,
    kind: 'time',
    span: { t0, t1 },
    chart: {
      title: relative ? `${gate}: candidate vs stable` : `${gate}: candidate vs limit`,
      xLabel: unit === 'min' ? 'minutes since the rollout started' : 'seconds since the rollout started',
      x: { min: Number((t0 / scale).toPrecision(6)), max: Number((t1 / scale).toPrecision(6)) },
      yLabel: gate,
      yMin,
      yMax,
      series,
      width: 900,
      height: 360,
    },
  };
}

/** "42 s", "1:05" (minutes:seconds) — times on the chart's axis, in its unit. */
export function fmtTime(seconds: number, unit: 's' | 'min'): string {
  if (unit === 's') return `${Number(seconds.toFixed(1))} s`;
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}
