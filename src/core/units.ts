import { UsageError } from './errors.js';

/**
 * The units every flag and setting is written in, parsed in ONE place so that `--interval 1m30s`
 * and `rollout.interval: 1m30s` mean the same everywhere (README: Durations and percentages).
 */

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/**
 * THE duration parser of every flag and setting: "500ms", "30s", "2m", "1h", compounds such as
 * "1m30s" or "1h15m" → milliseconds. A YAML number is seconds; a bare number in text ("30") is
 * refused: on a command line it is too easily meant as minutes or milliseconds.
 */
export function parseDuration(text: string | number, what: string): number {
  if (typeof text === 'number' && Number.isFinite(text) && text >= 0) return Math.round(text * 1000);
  const t = String(text).trim();
  if (/^\d+(\.\d+)?$/.test(t)) throw new UsageError(`${what}: "${text}" has no unit`, { hint: `write ${t}s for seconds (or ${t}ms, ${t}m)` });
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let total = 0;
  let end = 0;
  for (let m; (m = part.exec(t)); end = part.lastIndex) total += Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  if (end === 0 || end !== t.length) throw new UsageError(`${what}: "${text}" is not a duration`, { hint: 'write it like 500ms, 30s, 2m, 1h or 1m30s' });
  return Math.round(total);
}

/** "5%", "5" or 5 → 5; must be within (0, 100]. */
export function parsePercent(text: string | number, what: string, opts: { allowZero?: boolean } = {}): number {
  const n = typeof text === 'number' ? text : Number(String(text).trim().replace(/%$/, ''));
  const ok = Number.isFinite(n) && Number.isInteger(n) && (opts.allowZero ? n >= 0 : n > 0) && n <= 100;
  if (!ok) throw new UsageError(`${what}: "${text}" is not a whole percentage between ${opts.allowZero ? 0 : 1} and 100`, { hint: 'e.g. 5%' });
  return n;
}
