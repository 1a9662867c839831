import type { RolloutPlan, TrafficSplit } from '../core/model.js';

/**
 * The traffic splits of a rollout, in one place: what each step routes (the engine applies them,
 * `deploy --dry-run` renders the first one). Pure functions of versions and the plan.
 */

/** All traffic on one version. */
export function soleSplit(version: string): TrafficSplit {
  return { weights: { [version]: 100 }, mirror: null };
}

/** The split of a shadow step (stable serves all, `percent` mirrored to the candidate) or of a canary step at `weight`. */
export function stepSplit(stable: string, candidate: string, step: { phase: 'shadow'; percent: number } | { phase: 'canary'; weight: number }): TrafficSplit {
  if (step.phase === 'shadow') return { weights: { [stable]: 100 }, mirror: { version: candidate, percent: step.percent } };
  return { weights: { [stable]: 100 - step.weight, [candidate]: step.weight }, mirror: null };
}

/** The split of a rollout's first step: all traffic for a first deploy, else the shadow mirror or the first canary weight. */
export function firstSplit(version: string, stable: string | null, plan: Pick<RolloutPlan, 'steps' | 'shadowPercent'>): TrafficSplit {
  if (stable === null || stable === version) return soleSplit(version);
  if (plan.shadowPercent > 0) return stepSplit(stable, version, { phase: 'shadow', percent: plan.shadowPercent });
  const first = plan.steps[0] ?? 100;
  return first >= 100 ? soleSplit(version) : stepSplit(stable, version, { phase: 'canary', weight: first });
}

/** The same routing (versions at 0% do not count). */
export function sameSplit(a: TrafficSplit, b: TrafficSplit): boolean {
  const norm = (s: TrafficSplit) => JSON.stringify([Object.entries(s.weights).filter(([, w]) => w > 0).sort(), s.mirror]);
  return norm(a) === norm(b);
}
