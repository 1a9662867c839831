import type { TrafficSplit } from '../../core/model.js';

/**
 * Pure traffic-splitting logic of the local router (no I/O, unit-testable).
 *
 * Smooth weighted round-robin (the nginx algorithm) rather than random picks: it is
 * deterministic, honours the weights exactly over every window of `sum(weights)` picks (80/20 →
 * exactly 80 and 20 of every 100), and interleaves versions instead of sending bursts, so a 5 %
 * canary sees its share from the first requests instead of "eventually".
 */
export class SmoothWeightedRoundRobin {
  private readonly entries: Array<{ key: string; weight: number; current: number }>;
  private readonly total: number;

  constructor(weights: Record<string, number>) {
    // Sorted so that the same split always yields the same sequence, whatever the key order.
    this.entries = Object.entries(weights)
      .filter(([, w]) => w > 0)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, weight]) => ({ key, weight, current: 0 }));
    this.total = this.entries.reduce((n, e) => n + e.weight, 0);
  }

  /** The next key, or undefined when no key has weight. */
  next(): string | undefined {
    let best: { key: string; weight: number; current: number } | undefined;
    for (const e of this.entries) {
      e.current += e.weight;
      if (!best || e.current > best.current) best = e;
    }
    if (!best) return undefined;
    best.current -= this.total;
    return best.key;
  }
}

/**
 * Decides which requests are mirrored: exactly `percent` of them, spread evenly (an error-diffusion
 * accumulator, like Bresenham's line), deterministic for the same reasons as the round-robin.
 * Fractional percents (0.5) work too.
 */
export class MirrorSampler {
  private acc = 0;
  constructor(private readonly percent: number) {}

  take(): boolean {
    if (this.percent <= 0) return false;
    this.acc += this.percent;
    if (this.acc >= 100) {
      this.acc -= 100;
      return true;
    }
    return false;
  }
}

/**
 * Problems with a split, in words (empty when valid). A valid split has integer weights ≥ 0 that
 * sum to 100, or no weight at all (the model takes no live traffic; then no mirror either), and a
 * mirror percent in (0, 100].
 */
export function splitProblems(split: unknown): string[] {
  const problems: string[] = [];
  if (typeof split !== 'object' || split === null || Array.isArray(split)) return ['expected an object {"weights": {...}, "mirror": null | {...}}'];
  const { weights, mirror } = split as Partial<TrafficSplit>;
  if (typeof weights !== 'object' || weights === null || Array.isArray(weights)) {
    problems.push('weights: expected a map of version to an integer percent, e.g. {"1.0.0": 95, "1.1.0": 5}');
  } else {
    let sum = 0;
    for (const [version, w] of Object.entries(weights)) {
      if (typeof w !== 'number' || !Number.isInteger(w) || w < 0 || w > 100) problems.push(`weights.${version}: expected an integer from 0 to 100, got ${JSON.stringify(w)}`);
      else sum += w;
    }
    if (problems.length === 0 && Object.keys(weights).length > 0 && sum !== 100 && sum !== 0) problems.push(`weights must sum to 100, they sum to ${sum}`);
    if (problems.length === 0 && sum === 0 && mirror) problems.push('a mirror needs live traffic to copy: give some version weight');
  }
  if (mirror !== null && mirror !== undefined) {
    if (typeof mirror !== 'object' || Array.isArray(mirror)) problems.push('mirror: expected null or {"version": "...", "percent": N}');
    else {
      if (typeof mirror.version !== 'string' || mirror.version === '') problems.push('mirror.version: expected a version string');
      if (typeof mirror.percent !== 'number' || !(mirror.percent >= 0 && mirror.percent <= 100)) {
        problems.push(`mirror.percent: expected a number from 0 to 100, got ${JSON.stringify(mirror.percent)}`);
      }
    }
  }
  return problems;
}

/** The canonical form of a valid split: zero weights dropped, a 0 % mirror is no mirror. */
export function normalizeSplit(split: TrafficSplit): TrafficSplit {
  const weights = Object.fromEntries(Object.entries(split.weights).filter(([, w]) => w > 0));
  const mirror = split.mirror && split.mirror.percent > 0 ? { version: split.mirror.version, percent: split.mirror.percent } : null;
  return { weights, mirror };
}

/** Versions a split sends anything to (live or mirrored). */
export function versionsOf(split: TrafficSplit): string[] {
  const out = new Set(Object.entries(split.weights).filter(([, w]) => w > 0).map(([v]) => v));
  if (split.mirror && split.mirror.percent > 0) out.add(split.mirror.version);
  return [...out];
}
