import type { MetricSource, VersionWindow } from '../core/ports.js';
import type { GateContext } from './contracts.js';
import type { GateSpec, Verdict } from '../core/gates.js';

/**
 * Threshold arithmetic shared by every gate kind: a local metric, a Prometheus query or a
 * statistic all end in "candidate value (and maybe stable value) against the spec's bounds".
 * Kept apart from any metric source so each evaluator only has to produce numbers.
 */

export const DEFAULT_MIN_SAMPLES = 20;

export interface Measured {
  value: number;
  samples: number;
}

export interface Judgement {
  verdict: Exclude<Verdict, 'inconclusive'>;
  /** "<= 0.05 and <= stable (0.004) × 1.5 + 0.01 = 0.016" */
  limit: string;
  /** The first bound broken, in words ("0.052 > 0.016"); empty when it passed. */
  broken: string;
}

export function hasRelative(gate: GateSpec): boolean {
  const r = gate.relative;
  return r !== undefined && [r.maxRatio, r.maxDelta, r.minRatio, r.minDelta].some((x) => x !== undefined);
}

function hasUpper(gate: GateSpec): boolean {
  return gate.relative?.maxRatio !== undefined || gate.relative?.maxDelta !== undefined;
}

function hasLower(gate: GateSpec): boolean {
  return gate.relative?.minRatio !== undefined || gate.relative?.minDelta !== undefined;
}

/** Compact number for humans: 0.0048 not 0.0048000000000000004. */
export function fmt(n: number, unit = ''): string {
  if (!Number.isFinite(n)) return String(n);
  const s = String(Number(n.toPrecision(4)));
  return unit ? `${s} ${unit}` : s;
}

/**
 * Judge `value` against the gate's absolute and relative bounds. `stable` must be given when the
 * gate has relative bounds (the caller measures it over the same window, or returns inconclusive
 * before calling this). All bounds must hold.
 */
export function judge(gate: GateSpec, value: number, stable: number | null, unit = ''): Judgement {
  const parts: string[] = [];
  let broken = '';
  const check = (ok: boolean, limit: string, breach: string) => {
    parts.push(limit);
    if (!ok && !broken) broken = breach;
  };
  const v = fmt(value, unit);
  if (gate.max !== undefined) check(value <= gate.max, `<= ${fmt(gate.max, unit)}`, `${v} > ${fmt(gate.max, unit)}`);
  if (gate.min !== undefined) check(value >= gate.min, `>= ${fmt(gate.min, unit)}`, `${v} < ${fmt(gate.min, unit)}`);
  if (hasRelative(gate)) {
    if (stable === null) throw new Error(`gate ${gate.name}: relative bounds need the stable value`);
    const r = gate.relative!;
    if (hasUpper(gate)) {
      const ratio = r.maxRatio ?? 1;
      const delta = r.maxDelta ?? 0;
      const bound = stable * ratio + delta;
      const text = `<= stable (${fmt(stable, unit)})${r.maxRatio !== undefined ? ` × ${fmt(ratio)}` : ''}${r.maxDelta !== undefined ? ` + ${fmt(delta, unit)}` : ''} = ${fmt(bound, unit)}`;
      check(value <= bound, text, `${v} > ${fmt(bound, unit)} (stable ${fmt(stable, unit)})`);
    }
    if (hasLower(gate)) {
      const ratio = r.minRatio ?? 1;
      const delta = r.minDelta ?? 0;
      const bound = stable * ratio - delta;
      const text = `>= stable (${fmt(stable, unit)})${r.minRatio !== undefined ? ` × ${fmt(ratio)}` : ''}${r.minDelta !== undefined ? ` − ${fmt(delta, unit)}` : ''} = ${fmt(bound, unit)}`;
      check(value >= bound, text, `${v} < ${fmt(bound, unit)} (stable ${fmt(stable, unit)})`);
    }
  }
  return { verdict: broken ? 'fail' : 'pass', limit: parts.join(' and '), broken };
}

/** The limit in words before the stable value is known (for inconclusive and error results). */
export function describeLimit(gate: GateSpec, unit = ''): string {
  const parts: string[] = [];
  if (gate.max !== undefined) parts.push(`<= ${fmt(gate.max, unit)}`);
  if (gate.min !== undefined) parts.push(`>= ${fmt(gate.min, unit)}`);
  const r = gate.relative;
  if (r && hasUpper(gate)) {
    parts.push(`<= stable${r.maxRatio !== undefined ? ` × ${fmt(r.maxRatio)}` : ''}${r.maxDelta !== undefined ? ` + ${fmt(r.maxDelta, unit)}` : ''}`);
  }
  if (r && hasLower(gate)) {
    parts.push(`>= stable${r.minRatio !== undefined ? ` × ${fmt(r.minRatio)}` : ''}${r.minDelta !== undefined ? ` − ${fmt(r.minDelta, unit)}` : ''}`);
  }
  return parts.join(' and ') || '(none)';
}

/** Spec problems every gate kind shares: a name, at least one bound, sane numbers. */
export function validateCommon(gate: GateSpec, opts: { limitOptional?: boolean } = {}): string[] {
  const errs: string[] = [];
  const where = `gate ${JSON.stringify(gate.name ?? '')}`;
  if (!gate.name) errs.push('a gate needs a name');
  if (!opts.limitOptional && gate.max === undefined && gate.min === undefined && !hasRelative(gate)) {
    errs.push(`${where}: no limit (set max, min or relative)`);
  }
  const nonNegative: Array<[string, number | undefined]> = [
    ['minSamples', gate.minSamples],
    ['initialDelayMs', gate.initialDelayMs],
    ['failureLimit', gate.failureLimit],
    ['inconclusiveLimit', gate.inconclusiveLimit],
    ['consecutiveErrorLimit', gate.consecutiveErrorLimit],
    ['relative.maxRatio', gate.relative?.maxRatio],
    ['relative.maxDelta', gate.relative?.maxDelta],
    ['relative.minRatio', gate.relative?.minRatio],
    ['relative.minDelta', gate.relative?.minDelta],
  ];
  for (const [field, v] of nonNegative) {
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) errs.push(`${where}: ${field} must be a number >= 0, got ${v}`);
  }
  for (const [field, v] of [['max', gate.max], ['min', gate.min]] as const) {
    if (v !== undefined && !Number.isFinite(v)) errs.push(`${where}: ${field} must be a finite number, got ${v}`);
  }
  if (gate.max !== undefined && gate.min !== undefined && gate.min > gate.max) {
    errs.push(`${where}: min (${gate.min}) is above max (${gate.max}); nothing could pass`);
  }
  return errs;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The candidate's and the stable version's windows over the same span (what every comparison
 * gate measures), or why one of them could not be measured.
 */
export async function measurePair(
  source: MetricSource,
  ctx: GateContext & { stable: string },
): Promise<{ cand: VersionWindow; stab: VersionWindow } | { error: string }> {
  let cand: VersionWindow;
  try {
    cand = await source.window(ctx.model, ctx.candidate, ctx.sinceMs);
  } catch (err) {
    return { error: `measuring ${ctx.candidate}: ${errorMessage(err)}` };
  }
  try {
    return { cand, stab: await source.window(ctx.model, ctx.stable, ctx.sinceMs) };
  } catch (err) {
    return { error: `measuring stable ${ctx.stable}: ${errorMessage(err)}` };
  }
}
