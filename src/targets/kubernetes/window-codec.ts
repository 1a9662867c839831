import { z } from 'zod';
import type { LocalWindow } from '../local/window.js';

/**
 * A compact wire form of a meter's window. A ring holds up to 100 000 samples per pod; as JSON
 * arrays of floats that is ~1 MB per pod and gate check, all of it through the API server's pod
 * proxy. Gates only ever use the *distribution* of latencies and scores (quantiles, rank tests,
 * PSI/KS), never their order, so samples travel sorted as [value, count] runs: latencies rounded to
 * 10 µs (far below any gate's resolution), scores exact. A service's latencies fall into a few
 * thousand distinct 10 µs values at most, so a window costs kilobytes.
 */

export const LATENCY_RESOLUTION_MS = 0.01;

export type Runs = Array<[value: number, count: number]>;

/** Sorted runs of equal values, after rounding to `resolution` (0: exact). */
export function encodeRuns(values: readonly number[], resolution = 0): Runs {
  const rounded = resolution > 0 ? values.map((v) => Math.round(v / resolution) * resolution) : [...values];
  rounded.sort((a, b) => a - b);
  const runs: Runs = [];
  for (const v of rounded) {
    // Rounding to a decimal step leaves float noise (0.1 + 0.2); equal after rounding means equal here.
    const value = resolution > 0 ? Number(v.toFixed(decimals(resolution))) : v;
    const last = runs.at(-1);
    if (last && last[0] === value) last[1]++;
    else runs.push([value, 1]);
  }
  return runs;
}

export function decodeRuns(runs: Runs): number[] {
  const out: number[] = [];
  for (const [value, count] of runs) for (let i = 0; i < count; i++) out.push(value);
  return out;
}

function decimals(resolution: number): number {
  return Math.max(0, Math.ceil(-Math.log10(resolution)));
}

/** The window as the meter sends it with `?encoding=runs`. */
export interface EncodedWindow {
  encoding: 'runs';
  requests: number;
  errors: number;
  latencyRuns: Runs;
  scoreRuns: Runs;
  shadowCompared: number;
  shadowAgreed: number;
  /** Successful answers the declared score field could not be read from (absent from older meters). */
  unreadable?: number;
  /** Mirrored answers not compared with stable: dropped at the bound, failed (absent when none, and from older meters). */
  shadowDropped?: number;
  shadowFailed?: number;
  truncated: boolean;
}

export function encodeWindow(w: LocalWindow): EncodedWindow {
  return {
    encoding: 'runs',
    requests: w.requests,
    errors: w.errors,
    latencyRuns: encodeRuns(w.latenciesMs, LATENCY_RESOLUTION_MS),
    scoreRuns: encodeRuns(w.scores),
    shadowCompared: w.shadowCompared,
    shadowAgreed: w.shadowAgreed,
    ...(w.unreadable ? { unreadable: w.unreadable } : {}),
    ...uncomparedOf(w),
    truncated: w.truncated,
  };
}

/** shadowDropped / shadowFailed when the window has any (absent otherwise, as older meters send). */
function uncomparedOf(w: { shadowDropped?: number | undefined; shadowFailed?: number | undefined }): Pick<LocalWindow, 'shadowDropped' | 'shadowFailed'> {
  return { ...(w.shadowDropped ? { shadowDropped: w.shadowDropped } : {}), ...(w.shadowFailed ? { shadowFailed: w.shadowFailed } : {}) };
}

const count = z.number().int().nonnegative();
const runs = z.array(z.tuple([z.number(), z.number().int().positive()]));

/**
 * A meter's answer in either form: runs (current meters, asked with ?encoding=runs) or plain arrays
 * (a meter from before the encoding, which ignores the parameter). Checked: a wrong or old sidecar
 * must not become silently wrong numbers.
 */
export const meterAnswerSchema = z.union([
  z
    .object({
      encoding: z.literal('runs'),
      requests: count,
      errors: count,
      latencyRuns: runs,
      scoreRuns: runs,
      shadowCompared: count,
      shadowAgreed: count,
      unreadable: count.optional(),
      shadowDropped: count.optional(),
      shadowFailed: count.optional(),
      truncated: z.boolean(),
    })
    .transform(
      (e): LocalWindow => ({
        requests: e.requests,
        errors: e.errors,
        latenciesMs: decodeRuns(e.latencyRuns as Runs),
        scores: decodeRuns(e.scoreRuns as Runs),
        shadowCompared: e.shadowCompared,
        shadowAgreed: e.shadowAgreed,
        ...(e.unreadable !== undefined ? { unreadable: e.unreadable } : {}),
        ...uncomparedOf(e),
        truncated: e.truncated,
      }),
    ),
  z.object({
    requests: count,
    errors: count,
    latenciesMs: z.array(z.number()),
    scores: z.array(z.number()),
    shadowCompared: count,
    shadowAgreed: count,
    unreadable: count.optional(),
    shadowDropped: count.optional(),
    shadowFailed: count.optional(),
    truncated: z.boolean(),
  }),
]);
