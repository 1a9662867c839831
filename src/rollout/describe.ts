import type { GateSpec } from '../core/gates.js';
import type { RolloutPlan } from '../core/model.js';

/** A gate's limits in words, e.g. "<= 0.01" or "<= stable × 1.2". */
export function describeLimit(g: GateSpec): string {
  const parts: string[] = [];
  if (g.max !== undefined) parts.push(`<= ${g.max}`);
  if (g.min !== undefined) parts.push(`>= ${g.min}`);
  const r = g.relative;
  if (r?.maxRatio !== undefined || r?.maxDelta !== undefined) parts.push(`<= stable × ${r.maxRatio ?? 1} + ${r.maxDelta ?? 0}`);
  if (r?.minRatio !== undefined || r?.minDelta !== undefined) parts.push(`>= stable × ${r.minRatio ?? 1} - ${r.minDelta ?? 0}`);
  return parts.join(' and ') || 'reported only';
}

function seconds(ms: number): string {
  return ms % 60_000 === 0 && ms >= 60_000 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

export interface PlannedStep {
  phase: 'shadow' | 'canary';
  /** Live traffic on the candidate. */
  weight: number;
  /** Mirrored share (shadow). */
  mirror: number;
  bakeMs: number;
  /** Offset from the start of the rollout, ms (after readiness). */
  startsAtMs: number;
}

export interface PlanDescription {
  model: string;
  version: string;
  digest: string;
  target: string;
  firstDeploy: boolean;
  stable: string | null;
  steps: PlannedStep[];
  /** Total bake time if every step passes. */
  totalMs: number;
  checkEveryMs: number;
  readyTimeoutMs: number;
  gates: Array<GateSpec & { limit: string; query: string }>;
  /** Kubernetes: the objects the first step would apply (Deployment, Service, HTTPRoute…). */
  manifests?: object[];
}

/** What `deploy --dry-run` prints: the steps with their timings and the gates with their resolved queries. */
export function describePlan(input: { model: string; version: string; digest: string; target: string; stable: string | null; plan: RolloutPlan }): PlanDescription {
  const { plan, stable } = input;
  const steps: PlannedStep[] = [];
  let t = 0;
  if (stable !== null) {
    if (plan.shadowPercent > 0) {
      steps.push({ phase: 'shadow', weight: 0, mirror: plan.shadowPercent, bakeMs: plan.shadowDurationMs, startsAtMs: t });
      t += plan.shadowDurationMs;
    }
    if (!plan.shadowOnly) {
      for (const w of plan.steps) {
        // The last step (100%) is the promotion itself: no bake after it.
        const bake = w === 100 ? 0 : plan.intervalMs;
        steps.push({ phase: 'canary', weight: w, mirror: 0, bakeMs: bake, startsAtMs: t });
        t += bake;
      }
    }
  }
  return {
    model: input.model,
    version: input.version,
    digest: input.digest,
    target: input.target,
    firstDeploy: stable === null,
    stable,
    steps,
    totalMs: t,
    checkEveryMs: plan.checkEveryMs,
    readyTimeoutMs: plan.readyTimeoutMs,
    gates: plan.gates.map((g) => ({
      ...g,
      limit: g.kind === 'command' && g.max === undefined && g.min === undefined ? 'exit code 0' : describeLimit(g),
      query: g.kind === 'prometheus' && g.query
        ? `prometheus: ${g.query}`
        : g.kind === 'command'
          ? `command: ${(g.command ?? []).join(' ')}`
          : g.kind === 'http'
            ? `http: ${g.method ?? 'GET'} ${g.url} → ${g.valuePath}`
            : g.kind === 'eval'
              ? `eval: ${g.metric} of the evaluation set (component ${plan.evaluation?.component ?? 'eval'}) replayed against ${input.model}@${input.version}${stable ? ` and ${input.model}@${stable}` : ''} before any live traffic${g.maxDrop !== undefined ? `; drop vs stable <= ${g.maxDrop}` : ''}`
              : `${input.target}: ${g.metric} of ${input.model}@${input.version}${g.relative && stable ? ` vs ${input.model}@${stable}` : ''}, requests since the step started`,
    })),
  };
}

export function renderPlan(d: PlanDescription): string {
  const lines = [`Plan for ${d.model}@${d.version} (${d.digest.slice(0, 19)}) on ${d.target}:`];
  if (d.firstDeploy) {
    lines.push('  first deploy of this model: start, wait until ready (health gate), then 100% of traffic; it becomes the first stable version');
  } else {
    lines.push(`  stable: ${d.stable}`);
    for (const s of d.steps) {
      const what = s.phase === 'shadow' ? `shadow: mirror ${s.mirror}% of requests` : s.weight === 100 ? 'promote: 100%' : `canary ${s.weight}%`;
      lines.push(`  t+${seconds(s.startsAtMs).padEnd(6)} ${what}${s.bakeMs ? `, bake ${seconds(s.bakeMs)}` : ''}`);
    }
    lines.push(`  total ${seconds(d.totalMs)} if every gate passes; gates checked every ${seconds(d.checkEveryMs)}`);
  }
  lines.push('Gates:');
  for (const g of d.gates) {
    const flags = [g.critical ? 'critical' : '', g.dryRun ? 'dry-run' : ''].filter(Boolean).join(', ');
    lines.push(`  ${g.name}: ${g.metric} ${g.limit}${flags ? ` (${flags})` : ''}`);
    lines.push(`    ${g.query}`);
  }
  return lines.join('\n');
}
