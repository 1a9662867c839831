import type { ObservedState } from '../core/ports.js';
import type { StatusView } from './results.js';

/**
 * Does the target agree with the ledger? Pure: the ledger's view (`status`) against what the target
 * reports it runs and routes. Each difference is one sentence for a person at 3 a.m.: traffic that
 * someone moved by hand, a warm version that is not warm any more.
 */
export function differences(status: StatusView, observed: ObservedState): string[] {
  const out: string[] = [];
  const split = (w: Record<string, number>) =>
    Object.entries(w)
      .filter(([, p]) => p > 0)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([v, p]) => `${v} ${p}%`)
      .join(', ') || 'nothing';
  if (observed.traffic === null) {
    if (Object.values(status.traffic).some((p) => p > 0)) out.push(`the ledger routes ${split(status.traffic)}, but the target routes nothing for this model`);
  } else {
    const versions = new Set([...Object.keys(status.traffic), ...Object.keys(observed.traffic.weights)]);
    const off = [...versions].some((v) => Math.abs((status.traffic[v] ?? 0) - (observed.traffic!.weights[v] ?? 0)) > 1);
    if (off) out.push(`traffic: the ledger says ${split(status.traffic)}, the target routes ${split(observed.traffic.weights)}`);
    const a = status.mirror;
    const b = observed.traffic.mirror;
    if ((a?.version ?? null) !== (b?.version ?? null) || (a && b && a.percent !== b.percent)) {
      out.push(`mirror: the ledger says ${a ? `${a.percent}% → ${a.version}` : 'none'}, the target mirrors ${b ? `${b.percent}% → ${b.version}` : 'nothing'}`);
    }
  }
  const wanted = [...status.stableSet, ...(status.rollout ? [status.rollout.version] : [])];
  for (const v of wanted) {
    const o = observed.versions[v];
    const role = v === status.serving ? 'serving' : status.rollout?.version === v ? 'candidate' : 'warm';
    if (!o) out.push(`${v} (${role}) is not running`);
    else if (o.ready < Math.max(1, o.desired)) out.push(`${v} (${role}) has ${o.ready}/${o.desired} replicas ready`);
  }
  return out;
}
