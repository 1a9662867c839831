import { z } from 'zod';
import { UsageError } from '../core/errors.js';
import { GATE_KINDS, type GateSpec } from '../core/gates.js';
import { parseDuration } from '../core/units.js';
import { answerComparisonSchema, jsonPathField } from './answers.js';

/**
 * The gate schema of modelctl.yaml, bundle.yaml and gates files, and its one translation into the
 * GateSpec union (src/core/gates.ts). It lives with the gates (not with the rollout plan) so that
 * gates/ depends on nothing above it; rollout/plan.ts and the gates-file reader both use it.
 */

/** A duration as written in YAML: text with a unit ("30s"), or a number of seconds. */
export const durationField = z.union([z.string(), z.number()], { error: 'expected a duration like 30s or 2m' });

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

export type GateEntry = z.output<typeof gateSpecSchema>;

/**
 * A gates-file entry → GateSpec, the member of the union its kind names. A gate with a `query` is a Prometheus gate (`kind: prometheus`,
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
    return checkKind === 'command'
      ? { ...rest, kind: 'command', metric: 'command', ...delay, ...timeoutMs }
      : { ...rest, kind: 'http', metric: 'http', ...delay, ...timeoutMs };
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
  const { kind, ...measured } = { ...rest, metric, ...delay };
  switch (kind) {
    case undefined:
      return measured; // kind local by default (no key, as written)
    case 'local':
    case 'statistical':
    case 'drift':
    case 'eval':
      return { ...measured, kind };
    default:
      // The union has no member for a kind nobody evaluates: refuse it here, where the file and gate are known.
      throw new UsageError(`${where}: gate "${g.name}" has unknown kind ${JSON.stringify(kind)} (known: ${GATE_KINDS.join(', ')})`, { hint: 'drop kind for a built-in metric, or use one of the known kinds' });
  }
}
