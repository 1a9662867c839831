import type { MetricSource } from '../core/ports.js';
import { describeLimit, errorMessage, fmt, hasRelative, judge, validateCommon } from './compare.js';
import type { GateContext } from './contracts.js';
import type { CommandGate, GateResult, GateSpec, HttpGate } from '../core/gates.js';

/**
 * What the user's own checks (kind command, kind http) share: the values they are given about the
 * rollout, secrets taken from modelctl's environment by name (and kept out of every reason),
 * templating, and the judgement of the one number they measure by the common limits (compare.ts).
 * Like Argo Rollouts' Job and Web metric providers, with the same rule: a check that could not
 * measure (hang, crash, garbage) is an error, never a pass.
 */

/** The values a check is given, by placeholder name (`{{candidate_url}}`) and by variable (MODELCTL_CANDIDATE_URL). */
export const CHECK_VALUES = {
  model: 'MODELCTL_MODEL',
  candidate: 'MODELCTL_CANDIDATE_VERSION',
  stable: 'MODELCTL_STABLE_VERSION',
  candidate_url: 'MODELCTL_CANDIDATE_URL',
  stable_url: 'MODELCTL_STABLE_URL',
} as const;
/** Other spellings people reach for: {{version}} is the candidate's (as in query gates). */
const ALIASES: Record<string, keyof typeof CHECK_VALUES> = { version: 'candidate', candidate_version: 'candidate', stable_version: 'stable' };

export type CheckValueName = keyof typeof CHECK_VALUES;
export type CheckValues = Record<CheckValueName, string | null>;

/** The rollout's values for one measurement; URLs only where the metric source can tell (MetricSource.endpoint). */
export async function checkValues(ctx: GateContext, source: MetricSource): Promise<CheckValues> {
  const url = async (version: string | null): Promise<string | null> => (version === null || !source.endpoint ? null : source.endpoint(ctx.model, version));
  const [candidateUrl, stableUrl] = await Promise.all([url(ctx.candidate), url(ctx.stable)]);
  return { model: ctx.model, candidate: ctx.candidate, stable: ctx.stable, candidate_url: candidateUrl, stable_url: stableUrl };
}

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

function canonical(name: string): CheckValueName | undefined {
  return name in CHECK_VALUES ? (name as CheckValueName) : ALIASES[name];
}

/** Placeholders of a template that name no value, and `{{` that is not a placeholder. */
export function templateProblems(template: string): string[] {
  const errs: string[] = [];
  for (const m of template.matchAll(PLACEHOLDER)) {
    if (!canonical(m[1]!)) errs.push(`unknown placeholder {{${m[1]}}} (known: ${[...Object.keys(CHECK_VALUES), ...Object.keys(ALIASES)].join(', ')})`);
  }
  if (template.replace(PLACEHOLDER, '').includes('{{')) errs.push('malformed placeholder (write {{name}})');
  return errs;
}

/** The values a template uses. */
export function placeholdersOf(template: string): CheckValueName[] {
  return [...template.matchAll(PLACEHOLDER)].map((m) => canonical(m[1]!)).filter((n): n is CheckValueName => n !== undefined);
}

/**
 * Fill `template`, each value passed through `encode(value, name, offset)` for where it stands.
 * A value that is null (no stable version yet, no URL) throws: the caller decides what that means.
 */
export function fill(template: string, values: CheckValues, encode: (value: string, name: CheckValueName, offset: number) => string): string {
  return template.replace(PLACEHOLDER, (_m, raw: string, offset: number) => {
    const name = canonical(raw)!;
    const v = values[name];
    if (v === null) throw new MissingValue(name);
    return encode(v, name, offset);
  });
}

export class MissingValue extends Error {
  constructor(readonly value: CheckValueName) {
    super(value === 'stable' || value === 'stable_url' ? 'no stable version to compare with' : `the target does not tell the ${value.replace('_', ' ')}`);
  }
}

/** A literal value, or a secret read from modelctl's environment by name. */
export type EnvRef = string | { fromEnv: string };

/**
 * Resolve literal and {fromEnv} values. `secrets` are the values read from the environment: they
 * are redacted from every reason a check gives (its stderr, an HTTP error body).
 */
export function resolveEnvRefs(map: Record<string, EnvRef> | undefined, env: NodeJS.ProcessEnv, what: string): { values: Record<string, string>; secrets: string[] } {
  const values: Record<string, string> = {};
  const secrets: string[] = [];
  for (const [k, v] of Object.entries(map ?? {})) {
    if (typeof v === 'string') values[k] = v;
    else {
      const s = env[v.fromEnv];
      if (s === undefined || s === '') throw new Error(`${what} ${k}: environment variable ${v.fromEnv} is not set`);
      values[k] = s;
      secrets.push(s);
    }
  }
  return { values, secrets };
}

/** Every occurrence of a secret replaced by ***; short values too (a 1-character secret is still a secret). */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) if (s) out = out.split(s).join('***');
  return out;
}

/** The last `max` characters of some output, on one line, for a reason. */
export function tail(text: string, max = 500): string {
  const t = text.trim().replace(/\s*\n\s*/g, ' | ');
  return t.length > max ? `…${t.slice(-max)}` : t;
}

/** Problems the two kinds share: limits (optional for commands), no relative bounds, a sane timeout, env refs by name. */
export function validateExternal(gate: CommandGate | HttpGate, opts: { limitOptional: boolean }): string[] {
  const where = `gate ${JSON.stringify(gate.name ?? '')}`;
  const errs = validateCommon(gate, { limitOptional: opts.limitOptional });
  if (hasRelative(gate)) errs.push(`${where}: kind ${gate.kind} measures one value, not candidate against stable: use max or min (the check itself can compare both URLs)`);
  if (gate.timeoutMs !== undefined && !(Number.isFinite(gate.timeoutMs) && gate.timeoutMs > 0)) errs.push(`${where}: timeout must be longer than 0`);
  const refs = gate.kind === 'command' ? { field: 'env', map: gate.env } : { field: 'headers', map: gate.headers };
  for (const { field, map } of [refs]) {
    for (const [k, v] of Object.entries(map ?? {})) {
      if (typeof v !== 'string' && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(v.fromEnv)) errs.push(`${where}: ${field}.${k}.fromEnv must be an environment variable name, got ${JSON.stringify(v.fromEnv)}`);
    }
  }
  return errs;
}

/** A GateResult for one measured value, judged by the gate's limits (or by `passed` when it has none: an exit code). */
export function judged(gate: GateSpec, ctx: GateContext, query: string, value: number, detail: string, passed?: boolean): GateResult {
  const base = { name: gate.name, query, at: ctx.now, samples: 1, value };
  if (passed !== undefined) {
    return { ...base, verdict: passed ? 'pass' : 'fail', limit: 'exit code 0', reason: detail };
  }
  const j = judge(gate, value, null);
  return {
    ...base,
    verdict: j.verdict,
    limit: j.limit,
    reason: j.verdict === 'pass' ? `${fmt(value)} within ${j.limit} (${detail})` : `${gate.name} ${j.broken} (${detail})`,
  };
}

/** A check that could not measure: an error (counts against consecutiveErrorLimit), never a pass. */
export function failedToMeasure(gate: GateSpec, ctx: GateContext, query: string, reason: string): GateResult {
  return { name: gate.name, verdict: 'error', value: null, limit: describeLimit(gate), samples: 0, reason, query, at: ctx.now };
}

/** No stable version yet for a check that needs one: inconclusive, as every comparison gate is then. */
export function cannotYet(gate: GateSpec, ctx: GateContext, query: string, err: unknown): GateResult {
  const inconclusive = err instanceof MissingValue && (err.value === 'stable' || err.value === 'stable_url') && ctx.stable === null;
  return { ...failedToMeasure(gate, ctx, query, errorMessage(err)), ...(inconclusive ? { verdict: 'inconclusive' as const } : {}) };
}
