import { z } from 'zod';
import { UsageError } from '../core/errors.js';
import { answerComparisonSchema, jsonPathField } from '../gates/answers.js';
import type { GateSpec } from '../gates/contracts.js';
import type { RolloutPlan } from '../ledger/model.js';

/** The default canary ladder: `--canary 5%` starts at 5 and climbs it. */
export const DEFAULT_LADDER = [5, 25, 50, 100];

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

const durationField = z.union([z.string(), z.number()], { error: 'expected a duration like 30s or 2m' });
const percentField = z.union([z.string(), z.number()], { error: 'expected a percentage like 5%' });

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name such as JUDGE_TOKEN');
/** A literal, or a secret named by its environment variable (the YAML never holds the secret). */
const envRef = z.union([z.string(), z.object({ fromEnv: envName }).strict()], { error: 'expected a string or {fromEnv: VARIABLE_NAME}' });
/** Fields of the user's own checks (src/gates/command.ts, http.ts), by kind. */
const CHECK_FIELDS = { command: ['command', 'env'], http: ['url', 'method', 'headers', 'body', 'valuePath'] } as const;

export const gateSpecSchema = z
  .object({
    name: z.string().min(1),
    metric: z.string().min(1).optional(),
    query: z.string().min(1).optional(),
    max: z.number().optional(),
    min: z.number().optional(),
    kind: z.string().min(1).optional(),
    phases: z.array(z.enum(['shadow', 'canary'])).min(1).optional(),
    relative: z
      .object({
        maxRatio: z.number().positive().optional(),
        maxDelta: z.number().optional(),
        minRatio: z.number().positive().optional(),
        minDelta: z.number().optional(),
      })
      .strict()
      .optional(),
    minSamples: z.number().int().nonnegative().optional(),
    initialDelay: durationField.optional(),
    failureLimit: z.number().int().nonnegative().optional(),
    inconclusiveLimit: z.number().int().nonnegative().optional(),
    onInconclusive: z.enum(['hold', 'rollback']).optional(),
    consecutiveErrorLimit: z.number().int().nonnegative().optional(),
    critical: z.boolean().optional(),
    dryRun: z.boolean().optional(),
    // kind: statistical / drift (src/gates/statistical.ts, drift.ts)
    confidence: z.number().gt(0).lt(1).optional(),
    tolerance: z.number().nonnegative().optional(),
    maxDelta: z.number().nonnegative().optional(),
    direction: z.enum(['increase', 'decrease', 'either']).optional(),
    sequential: z.boolean().optional(),
    effectSize: z.number().gte(1).optional(),
    buckets: z.number().int().gte(2).optional(),
    // kind: statistical / drift fed by Prometheus (src/gates/prometheus-stats.ts)
    source: z.enum(['local', 'prometheus']).optional(),
    errorsQuery: z.string().min(1).optional(),
    totalQuery: z.string().min(1).optional(),
    bucketsQuery: z.string().min(1).optional(),
    // kind: command / http (src/gates/command.ts, http.ts)
    command: z.array(z.string().min(1, 'cannot be empty'), { error: 'expected the argv as a list, e.g. [python, eval.py]' }).min(1).optional(),
    env: z.record(envName, envRef).optional(),
    timeout: durationField.optional(),
    url: z.string().min(1).optional(),
    method: z.string().min(1).optional(),
    headers: z.record(z.string().min(1), envRef).optional(),
    body: z.union([z.string(), z.record(z.string(), z.unknown())], { error: 'expected a string or a JSON object' }).optional(),
    valuePath: jsonPathField.optional(),
    // kind: eval (src/gates/evaluation.ts): judged on the evaluation replay, before any live traffic
    compare: answerComparisonSchema.optional(),
    maxDrop: z.number().min(0).max(1).optional(),
    scoreField: jsonPathField.optional(),
  })
  .strict()
  .refine((g) => g.metric !== undefined || g.query !== undefined || g.kind === 'command' || g.kind === 'http', {
    message: 'a gate needs a metric (e.g. error-rate), a query, or kind: command / http',
  });

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
    evaluation: z
      .object({
        /** The bundle component holding the JSONL files (default eval). */
        component: z.string().min(1).optional(),
        /** Where each case is POSTed unless its line says ("/predict"). */
        path: z.string().startsWith('/', 'must start with /').optional(),
        concurrency: z.number().int().min(1).max(64).optional(),
        timeout: durationField.optional(),
        maxLines: z.number().int().min(1).optional(),
        maxBytes: z.number().int().min(1).optional(),
      })
      .strict()
      .optional(),
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

/** Evaluation replay: bounded in concurrency, time per request, and size of the set. */
export const EVALUATION_DEFAULTS = { component: 'eval', concurrency: 4, timeoutMs: 10_000, maxLines: 10_000, maxBytes: 16 * 1024 * 1024 } as const;

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
 * A gates-file entry → GateSpec. A gate with a `query` is a Prometheus gate (`kind: prometheus`,
 * `metric: 'query'`); it is refused unless `queryGates` says a Prometheus URL is configured.
 */
export function toGate(g: z.output<typeof gateSpecSchema>, where: string, opts: { queryGates?: boolean } = {}): GateSpec {
  const { initialDelay, query, metric, timeout, ...rest } = g;
  const delay = initialDelay !== undefined ? { initialDelayMs: parseDuration(initialDelay, `${where}: gate ${g.name} initialDelay`) } : {};
  const checkKind = g.kind === 'command' || g.kind === 'http' ? g.kind : undefined;
  for (const [kind, fields] of Object.entries(CHECK_FIELDS)) {
    const stray = fields.filter((f) => g[f] !== undefined);
    if (stray.length > 0 && checkKind !== kind) {
      throw new UsageError(`${where}: gate "${g.name}" has ${stray.join(', ')}, which only kind ${kind} takes`, { hint: `add kind: ${kind}, or drop ${stray.join(', ')}` });
    }
  }
  const evalFields = (['compare', 'maxDrop', 'scoreField'] as const).filter((f) => g[f] !== undefined);
  if (evalFields.length > 0 && g.kind !== 'eval') {
    throw new UsageError(`${where}: gate "${g.name}" has ${evalFields.join(', ')}, which only kind eval takes`, { hint: 'add kind: eval (judged on the evaluation replay), or drop them' });
  }
  if (timeout !== undefined && !checkKind) throw new UsageError(`${where}: gate "${g.name}" has timeout, which only kind command or http takes`);
  if (checkKind) {
    if (metric !== undefined || query !== undefined) {
      throw new UsageError(`${where}: gate "${g.name}" is kind ${checkKind}: its ${metric !== undefined ? 'metric' : 'query'} would be ignored`, { hint: `drop it; the ${checkKind === 'command' ? 'command' : 'URL'} is the measurement` });
    }
    const missing = checkKind === 'command' ? (['command'] as const).filter((f) => g[f] === undefined) : (['url', 'valuePath'] as const).filter((f) => g[f] === undefined);
    if (missing.length > 0) {
      throw new UsageError(`${where}: gate "${g.name}" is kind ${checkKind} and needs ${missing.join(' and ')}`, {
        hint: checkKind === 'command' ? 'e.g. command: [python, eval.py]' : 'e.g. url: http://judge/score?v={{candidate}} and valuePath: $.metrics.accuracy',
      });
    }
    const timeoutMs = timeout !== undefined ? { timeoutMs: parseDuration(timeout, `${where}: gate ${g.name} timeout`) } : {};
    return { ...rest, metric: checkKind, ...delay, ...timeoutMs };
  }
  if (query !== undefined) {
    if (metric !== undefined) {
      throw new UsageError(`${where}: gate "${g.name}" has both a metric and a query; a gate measures one thing`, { hint: 'split it into two gates' });
    }
    if (g.kind !== undefined && g.kind !== 'prometheus') {
      throw new UsageError(`${where}: gate "${g.name}" has a query, but kind ${g.kind} does not take one`, { hint: 'drop kind (a gate with a query is kind: prometheus)' });
    }
    if (!opts.queryGates) {
      throw new UsageError(`${where}: gate "${g.name}" has a query: query gates need a Prometheus URL, and none is configured`, {
        hint: 'set MODELCTL_PROMETHEUS_URL or prometheus.url in modelctl.yaml (or use a built-in metric: error-rate, latency-p99, …)',
      });
    }
    return { ...rest, kind: 'prometheus', metric: 'query', query, ...delay };
  }
  const promFields = (['errorsQuery', 'totalQuery', 'bucketsQuery'] as const).filter((f) => g[f] !== undefined);
  if (promFields.length > 0 || g.source === 'prometheus') {
    if (g.kind !== 'statistical' && g.kind !== 'drift') {
      throw new UsageError(`${where}: gate "${g.name}" has ${promFields.length ? promFields.join(', ') : 'source: prometheus'}, which only kind statistical or drift takes`, {
        hint: 'add kind: statistical (errorsQuery, totalQuery) or kind: drift (bucketsQuery)',
      });
    }
    if (g.source === 'local') {
      throw new UsageError(`${where}: gate "${g.name}" has source: local and ${promFields.join(', ')}; Prometheus queries need source: prometheus (or no source)`);
    }
    if (!opts.queryGates) {
      throw new UsageError(`${where}: gate "${g.name}" reads Prometheus, and no Prometheus URL is configured`, {
        hint: 'set MODELCTL_PROMETHEUS_URL or prometheus.url in modelctl.yaml (or drop the queries to measure on the local runtime)',
      });
    }
  }
  if (metric === undefined || g.kind === 'prometheus') {
    throw new UsageError(`${where}: gate "${g.name}" is kind prometheus but has no query`, { hint: 'add query: <PromQL>, or use a built-in metric' });
  }
  return { ...rest, metric, ...delay };
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
