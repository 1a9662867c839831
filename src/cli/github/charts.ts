import type { RolloutEvent } from '../../rollout/engine.js';
import { type XyChart } from './mermaid.js';

/**
 * Each gate's measurements over a rollout, from its gate-evaluated / gate-failed events, as a
 * chart: the value line, and the limit line(s) — per evaluation, because a limit relative to the
 * stable version moves with it. Pure functions.
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

/** The bounds of one evaluation: numeric fields on the event win over the words. */
export function eventBounds(e: RolloutEvent): Bounds {
  const words = typeof e.limit === 'string' ? parseLimit(e.limit) : { upper: null, lower: null };
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const upper = num(e.limitMax) ?? num(e.limitUpper);
  const lower = num(e.limitMin) ?? num(e.limitLower);
  const single = num(e.limitValue);
  if (upper !== null || lower !== null) return { upper: upper ?? words.upper, lower: lower ?? words.lower };
  if (single !== null) return typeof e.limit === 'string' && /^\s*>/.test(e.limit) ? { upper: words.upper, lower: single } : { upper: single, lower: words.lower };
  return words;
}

export interface GatePoint {
  /** Seconds since the start of the run. */
  t: number;
  value: number;
  upper: number | null;
  lower: number | null;
  verdict: string;
  phase: string;
}

export function isGateEvent(e: RolloutEvent): boolean {
  return e.type === 'gate-evaluated' || e.type === 'gate-failed';
}

/** Per gate (in order of first appearance), its numeric measurements. */
export function gateSeries(events: readonly RolloutEvent[]): Map<string, GatePoint[]> {
  const start = events[0]?.at ?? 0;
  const series = new Map<string, GatePoint[]>();
  for (const e of events) {
    if (!isGateEvent(e) || typeof e.gate !== 'string') continue;
    const points = series.get(e.gate) ?? [];
    series.set(e.gate, points);
    if (typeof e.value !== 'number' || !Number.isFinite(e.value)) continue; // no data: nothing to plot
    const b = eventBounds(e);
    points.push({ t: (e.at - start) / 1000, value: e.value, upper: b.upper, lower: b.lower, verdict: String(e.verdict ?? ''), phase: String(e.phase ?? '') });
  }
  return series;
}

/** At most `max` points, evenly spread, always keeping the first, the last and every failed one. */
export function thin(points: GatePoint[], max: number): GatePoint[] {
  if (points.length <= max) return points;
  const keep = new Set<number>([0, points.length - 1]);
  points.forEach((p, i) => p.verdict === 'fail' && keep.size < max && keep.add(i));
  // The rest evenly over the points not kept yet (steps of at least one: all distinct).
  const rest = points.map((_, i) => i).filter((i) => !keep.has(i));
  const free = max - keep.size;
  for (let k = 0; k < free; k++) keep.add(rest[free === 1 ? Math.floor(rest.length / 2) : Math.round((k * (rest.length - 1)) / (free - 1))]!);
  return [...keep].sort((a, b) => a - b).map((i) => points[i]!);
}

/** Seconds as distinct category labels (mermaid merges equal categories): more decimals only when needed. */
export function timeLabels(ts: number[]): string[] {
  for (const digits of [1, 2, 3]) {
    const labels = ts.map((t) => t.toFixed(digits));
    if (new Set(labels).size === labels.length) return labels;
  }
  const seen = new Map<string, number>();
  return ts.map((t) => {
    const l = t.toFixed(3);
    const n = (seen.get(l) ?? 0) + 1;
    seen.set(l, n);
    return n === 1 ? l : `${l} (${n})`;
  });
}

/** Fill the gaps of a per-point series from the nearest earlier value, else the nearest later one. */
function filled(values: Array<number | null>): number[] | null {
  const first = values.find((v) => v !== null);
  if (first === undefined || first === null) return null;
  let last = first;
  return values.map((v) => (v === null ? last : (last = v)));
}

export const CHART_PALETTE = ['#2563eb', '#dc2626', '#d97706'];

export interface GateChart {
  gate: string;
  chart: XyChart;
  /** What the lines are, in order ("value", "upper limit", "lower limit"). */
  legend: string[];
  points: number;
  /** Measurements in the run, before thinning. */
  measured: number;
}

export function gateChart(gate: string, all: GatePoint[], maxPoints = 50): GateChart | null {
  if (all.length < 2) return null;
  // Fill the limits over every measurement first, then thin: a kept point gets its nearest real limit.
  const allUpper = filled(all.map((p) => p.upper));
  const allLower = filled(all.map((p) => p.lower));
  const points = thin(
    all.map((p, i) => ({ ...p, upper: allUpper?.[i] ?? null, lower: allLower?.[i] ?? null })),
    maxPoints,
  );
  const lines: number[][] = [points.map((p) => p.value)];
  const legend = ['value'];
  const upper = allUpper && points.map((p) => p.upper!);
  const lower = allLower && points.map((p) => p.lower!);
  if (upper) {
    lines.push(upper);
    legend.push('upper limit');
  }
  if (lower) {
    lines.push(lower);
    legend.push('lower limit');
  }
  const ys = lines.flat();
  const lo = Math.min(0, ...ys);
  const hiRaw = Math.max(...ys);
  const hi = hiRaw > lo ? hiRaw + (hiRaw - lo) * 0.1 : lo + 1;
  const palette = [CHART_PALETTE[0]!, ...(upper ? [CHART_PALETTE[1]!] : []), ...(lower ? [CHART_PALETTE[2]!] : [])];
  return {
    gate,
    legend,
    points: points.length,
    measured: all.length,
    chart: {
      title: gate,
      xLabel: 'seconds since start',
      x: timeLabels(points.map((p) => p.t)),
      yLabel: gate,
      yMin: lo,
      yMax: hi,
      lines,
      palette,
    },
  };
}
