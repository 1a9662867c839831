import { z } from 'zod';
import { UsageError } from '../core/errors.js';
import type { GateSpec } from '../core/gates.js';
import type { RolloutPlan } from '../core/model.js';
import { parseDuration, parsePercent } from '../core/units.js';
import { EVALUATION_DEFAULTS, evaluationSectionSchema } from '../gates/evaluation.js';
import { durationField, gateSpecSchema, toGate } from '../gates/schema.js';

/** The default canary ladder: `--canary 5%` starts at 5 and climbs it. */
export const DEFAULT_LADDER = [5, 25, 50, 100];

/** "5,20,50,100" → [5, 20, 50, 100]: strictly ascending, ending at 100. */
export function parseSteps(text: string | number[], what: string): number[] {
  const steps = (Array.isArray(text) ? text : String(text).split(',')).map((s) => parsePercent(s, what));
  for (let i = 1; i < steps.length; i++) {
    if (steps[i]! <= steps[i - 1]!) throw new UsageError(`${what}: steps must go up (${steps.join(',')})`, { hint: 'e.g. --steps 5,20,50,100' });
  }
  if (steps.at(-1) !== 100) throw new UsageError(`${what}: the last step must be 100 (${steps.join(',')})`, { hint: 'e.g. --steps 5,20,50,100' });
  return steps;
}

/** The canary ladder starting at `first` percent: 5 → [5, 25, 50, 100]; 10 → [10, 25, 50, 100]. */
export function ladderFrom(first: number): number[] {
  return [first, ...DEFAULT_LADDER.filter((w) => w > first)].filter((w, i, a) => a.indexOf(w) === i);
}

const percentField = z.union([z.string(), z.number()], { error: 'expected a percentage like 5%' });

/** The `rollout:` section, in modelctl.yaml and in a bundle's bundle.yaml. */
export const rolloutSectionSchema = z
  .object({
    steps: z.array(z.number()).optional(),
    interval: durationField.optional(),
    checkEvery: durationField.optional(),
    shadow: percentField.optional(),
    shadowDuration: durationField.optional(),
    readyTimeout: durationField.optional(),
    gates: z.array(gateSpecSchema).optional(),
    evaluation: evaluationSectionSchema.optional(),
  })
  .strict();
export type RolloutSection = z.output<typeof rolloutSectionSchema>;

/** What the deploy command's flags (and their MODELCTL_* variables) say; undefined = not given. */
export interface RolloutFlags {
  canary?: string | undefined;
  steps?: string | undefined;
  interval?: string | undefined;
  checkEvery?: string | undefined;
  shadow?: string | undefined;
  shadowDuration?: string | undefined;
  shadowOnly?: boolean | undefined;
  readyTimeout?: string | undefined;
}

export const PLAN_DEFAULTS = {
  steps: DEFAULT_LADDER,
  intervalMs: 30_000,
  shadowDurationMs: 60_000,
  readyTimeoutMs: 120_000,
} as const;

/** Check a `rollout:` section (from modelctl.yaml or bundle.yaml), naming where a problem is. */
export function parseRolloutSection(raw: unknown, where: string): RolloutSection {
  if (raw === undefined || raw === null) return {};
  const r = rolloutSectionSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new UsageError(`${where}: rollout.${issue.path.join('.')}: ${issue.message}`, { hint: 'see the rollout section in the README' });
  }
  return r.data;
}

/**
 * Resolve the plan. Precedence: built-in defaults < modelctl.yaml < the bundle's `rollout:` < env
 * (MODELCTL_*, merged into flags by oclif) < flags. Gates are not merged item by item: the most
 * specific layer that declares gates wins, so a bundle can tighten or loosen the project's gates.
 */
export function resolvePlan(layers: {
  project: RolloutSection;
  bundle: RolloutSection;
  flags: RolloutFlags;
  defaultGates: GateSpec[];
  /** A Prometheus URL is configured, so gates with a `query` can run. Default false. */
  queryGates?: boolean;
}): RolloutPlan {
  const { project, bundle, flags } = layers;
  const pick = <K extends keyof RolloutSection>(k: K): { value: RolloutSection[K]; where: string } | undefined =>
    bundle[k] !== undefined ? { value: bundle[k], where: 'bundle.yaml' } : project[k] !== undefined ? { value: project[k], where: 'modelctl.yaml' } : undefined;

  if (flags.steps !== undefined && flags.canary !== undefined) {
    // Either would win silently over the other: the user meant one of them.
    throw new UsageError(`--canary ${flags.canary} and --steps ${flags.steps} (or MODELCTL_STEPS) both set the canary steps`, {
      hint: '--canary N% climbs the default ladder from N; --steps lists every step: give one of them',
    });
  }
  let steps: number[];
  if (flags.steps !== undefined) steps = parseSteps(flags.steps, '--steps');
  else if (flags.canary !== undefined) steps = ladderFrom(parsePercent(flags.canary, '--canary'));
  else {
    const s = pick('steps');
    steps = s ? parseSteps(s.value!, `${s.where}: rollout.steps`) : [...PLAN_DEFAULTS.steps];
  }

  const duration = (flag: string | undefined, flagName: string, key: 'interval' | 'checkEvery' | 'shadowDuration' | 'readyTimeout', fallback: number): number => {
    if (flag !== undefined) return parseDuration(flag, flagName);
    const s = pick(key);
    return s ? parseDuration(s.value as string | number, `${s.where}: rollout.${key}`) : fallback;
  };
  const intervalMs = duration(flags.interval, '--interval', 'interval', PLAN_DEFAULTS.intervalMs);
  if (intervalMs <= 0) throw new UsageError('--interval must be longer than 0');
  // Several checks per bake: enough to catch a bad canary early, few enough to keep windows meaningful.
  const checkEveryMs = duration(flags.checkEvery, '--check-every', 'checkEvery', Math.min(Math.max(Math.round(intervalMs / 5), 1000), 15_000));

  let shadowPercent = 0;
  if (flags.shadow !== undefined) shadowPercent = parsePercent(flags.shadow, '--shadow', { allowZero: true });
  else {
    const s = pick('shadow');
    if (s) shadowPercent = parsePercent(s.value as string | number, `${s.where}: rollout.shadow`, { allowZero: true });
  }
  if (flags.shadowOnly && shadowPercent === 0) {
    throw new UsageError('--shadow-only needs a shadow share', { hint: 'e.g. --shadow 10% --shadow-only' });
  }

  const gateLayer = pick('gates');
  const gates = gateLayer ? gateLayer.value!.map((g) => toGate(g, gateLayer.where, { queryGates: layers.queryGates ?? false })) : layers.defaultGates;
  const names = new Set<string>();
  for (const g of gates) {
    if (names.has(g.name)) throw new UsageError(`${gateLayer?.where ?? 'gates'}: two gates are named "${g.name}"`);
    names.add(g.name);
  }

  const ev = pick('evaluation');
  const evaluation = {
    component: ev?.value?.component ?? EVALUATION_DEFAULTS.component,
    ...(ev?.value?.path !== undefined ? { path: ev.value.path } : {}),
    concurrency: ev?.value?.concurrency ?? EVALUATION_DEFAULTS.concurrency,
    timeoutMs: ev?.value?.timeout !== undefined ? parseDuration(ev.value.timeout, `${ev.where}: rollout.evaluation.timeout`) : EVALUATION_DEFAULTS.timeoutMs,
    maxLines: ev?.value?.maxLines ?? EVALUATION_DEFAULTS.maxLines,
    maxBytes: ev?.value?.maxBytes ?? EVALUATION_DEFAULTS.maxBytes,
  };

  return {
    evaluation,
    steps,
    intervalMs,
    checkEveryMs: Math.min(checkEveryMs, intervalMs),
    shadowPercent,
    shadowDurationMs: duration(flags.shadowDuration, '--shadow-duration', 'shadowDuration', PLAN_DEFAULTS.shadowDurationMs),
    shadowOnly: flags.shadowOnly ?? false,
    gates,
    readyTimeoutMs: duration(flags.readyTimeout, '--ready-timeout', 'readyTimeout', PLAN_DEFAULTS.readyTimeoutMs),
  };
}

/**
 * The plan as the engine runs it, checked whole (every problem at once, UsageError). This is the
 * rule for plans from code and from the ledger; `parseSteps` above is the stricter rule for what a
 * user writes: there a ladder that stops short of 100 is refused (plan.test), here it is completed
 * (engine.test: reaching 100% IS the promotion). Both refuse steps that do not go up.
 */
export function normalizePlan(plan: RolloutPlan, validateGate: (gate: GateSpec) => string[]): RolloutPlan {
  const errs: string[] = [];
  const steps = [...plan.steps];
  steps.forEach((w, i) => {
    if (!Number.isInteger(w) || w <= 0 || w > 100) errs.push(`canary step ${w} must be an integer percent in 1..100`);
    else if (i > 0 && w <= steps[i - 1]!) errs.push(`canary steps must increase (${steps[i - 1]} then ${w})`);
  });
  // Reaching 100% IS the promotion: a plan that stops short still ends there.
  if (steps.at(-1) !== 100) steps.push(100);
  if (!(plan.intervalMs >= 0)) errs.push(`bake interval must be >= 0 ms, got ${plan.intervalMs}`);
  if (!(plan.checkEveryMs > 0)) errs.push(`check interval must be > 0 ms, got ${plan.checkEveryMs}`);
  if (!(plan.shadowPercent >= 0 && plan.shadowPercent <= 100)) errs.push(`shadow percent must be in 0..100, got ${plan.shadowPercent}`);
  if (plan.shadowOnly && !(plan.shadowPercent > 0)) errs.push('a shadow-only rollout needs a shadow percent > 0');
  if (plan.shadowPercent > 0 && !(plan.shadowDurationMs >= 0)) errs.push(`shadow duration must be >= 0 ms, got ${plan.shadowDurationMs}`);
  const names = new Set<string>();
  for (const g of plan.gates) {
    if (names.has(g.name)) errs.push(`two gates are named ${JSON.stringify(g.name)}`);
    names.add(g.name);
    errs.push(...validateGate(g));
  }
  if (errs.length) throw new UsageError(`invalid rollout plan: ${errs.join('; ')}`, { details: { problems: errs } });
  return { ...plan, steps };
}
