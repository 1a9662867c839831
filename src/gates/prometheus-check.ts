import { existsSync } from 'node:fs';
import { z } from 'zod';
import { ExitCode, UsageError } from '../core/errors.js';
import { loadYamlFile } from '../core/yaml-file.js';
import { gateSpecSchema, toGate } from './schema.js';
import { fmt, hasRelative } from './compare.js';
import { usesPrometheusSource, type GateSpec, type PrometheusGate, type StatisticsGate } from '../core/gates.js';

/** The gates `gates check` can judge: those Prometheus measures. */
export type PrometheusMeasuredGate = PrometheusGate | StatisticsGate;
import { type GateContext } from './contracts.js';
import { PrometheusGateEvaluator, type PrometheusErrorCause, type PrometheusGateResult } from './prometheus-evaluator.js';
import type { PromQuerier } from './prometheus.js';
import { PrometheusStatsGateEvaluator } from './prometheus-stats.js';
import { placeholdersOf, promDuration } from './template.js';

/**
 * `modelctl gates check`: every gate of a gates file evaluated once, now, against Prometheus.
 *
 * Overall verdict, worst first: fail > error > inconclusive > pass.
 * - fail (exit 3): some gate measured a value outside its limits — a known bad result wins over
 *   gates that could not be measured;
 * - error: some gate could not be measured. Exit 9 (unavailable) when Prometheus could not be
 *   reached or refused access (after retries); exit 2 (usage) when every error is the gate's own
 *   fault (Prometheus rejected the query: 400/422, or it returned several series);
 * - inconclusive (exit 4): no data (empty result) or NaN for some gate;
 * - pass (exit 0): every gate passed.
 */

/** Top-level `gates:` (the issue's shape), or a modelctl.yaml/bundle.yaml with `rollout.gates`. */
const gatesFileBase = z.looseObject({
  gates: z.array(gateSpecSchema).optional(),
  rollout: z.looseObject({ gates: z.array(gateSpecSchema).optional() }).optional(),
});

export type CheckVerdict = 'pass' | 'fail' | 'inconclusive' | 'error';

export interface CheckedGate {
  name: string;
  query: string;
  /** null when there is no number, and for ±Inf (JSON has none): `raw` has it as Prometheus sent it. */
  value: number | null;
  raw: string | null;
  limit: string;
  verdict: PrometheusGateResult['verdict'];
  samples: number;
  reason: string;
  baseline?: { query: string; value: number | null; raw: string | null };
  /** For verdict 'error': whose fault — the query, the source (unavailable), or the template. */
  error?: PrometheusErrorCause;
}

export interface CheckResult {
  verdict: CheckVerdict;
  /** Where the queries went (base URL, no credentials). */
  prometheus: string;
  /** The evaluation instant. */
  at: string;
  /** What {{interval}} stood for. */
  interval: string;
  vars: Record<string, string>;
  gates: CheckedGate[];
}

/**
 * Load and check a gates file: schema problems and gate problems (no limit, unknown placeholder,
 * relative without {{version}}…) are reported all at once as a UsageError naming file, line and field.
 */
export async function loadGatesFile(
  file: string,
  evaluator: PrometheusGateEvaluator,
  stats: PrometheusStatsGateEvaluator = new PrometheusStatsGateEvaluator(evaluator.querier),
): Promise<PrometheusMeasuredGate[]> {
  if (!existsSync(file)) {
    throw new UsageError(`cannot read gates file ${file}: no such file`, {
      hint: 'write one with a top-level gates: list of {name, query, max/min/relative} (see modelctl gates check --help)',
      details: { file },
    });
  }
  const specs: PrometheusMeasuredGate[] = [];
  const schema = gatesFileBase.superRefine((doc, ctx) => {
    const list = doc.gates ?? doc.rollout?.gates;
    const at: Array<string | number> = doc.gates ? ['gates'] : ['rollout', 'gates'];
    if (!list || list.length === 0) {
      ctx.addIssue({ code: 'custom', path: doc.gates ? ['gates'] : [], message: 'no gates: expected a top-level gates: list (or rollout.gates) with at least one gate' });
      return;
    }
    const names = new Set<string>();
    list.forEach((g, i) => {
      if (names.has(g.name)) ctx.addIssue({ code: 'custom', path: [...at, i, 'name'], message: `two gates are named ${JSON.stringify(g.name)}` });
      names.add(g.name);
      const fromCounts = g.errorsQuery !== undefined || g.totalQuery !== undefined || g.bucketsQuery !== undefined;
      if (g.query === undefined && !fromCounts) {
        ctx.addIssue({
          code: 'custom',
          path: [...at, i],
          message: `gate ${JSON.stringify(g.name)} has no query: gates check judges gates Prometheus measures — query, or errorsQuery/totalQuery (statistical) and bucketsQuery (drift); ${g.metric !== undefined ? `built-in metrics such as ${g.metric}` : `kind ${g.kind} checks`} are measured during a rollout`,
        });
        return;
      }
      let spec: GateSpec;
      try {
        spec = toGate(g, file, { queryGates: true });
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: [...at, i], message: (err as Error).message.replace(`${file}: `, '') });
        return;
      }
      // With a query or Prometheus counts (checked above), toGate yields one of these kinds or throws.
      if (isPrometheusStats(spec)) {
        for (const message of stats.validate(spec)) ctx.addIssue({ code: 'custom', path: [...at, i], message });
        specs.push(spec);
      } else if (spec.kind === 'prometheus') {
        for (const p of evaluator.problems(spec)) ctx.addIssue({ code: 'custom', path: p.field ? [...at, i, p.field] : [...at, i], message: p.message });
        specs.push(spec);
      }
    });
  });
  await loadYamlFile(file, schema, 'gates file');
  return specs;
}

/** `--var k=v` → { k: v }; a name is a template identifier. */
export function parseVars(pairs: readonly string[]): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    const name = i < 0 ? p : p.slice(0, i);
    if (i <= 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new UsageError(`--var ${JSON.stringify(p)}: expected name=value with a name of letters, digits and _`, { hint: 'e.g. --var version=1.2.0 --var stable=1.1.0' });
    }
    if (name === 'interval') throw new UsageError('--var interval: {{interval}} is the window; set it with --window', { hint: 'e.g. --window 5m' });
    vars[name] = p.slice(i + 1);
  }
  return vars;
}

export interface CheckOptions {
  gates: PrometheusMeasuredGate[];
  client: PromQuerier;
  /** Base URL for the report. */
  prometheus: string;
  /** --var values: version (the candidate), stable, model, namespace and any others. */
  vars: Record<string, string>;
  windowMs: number;
  minIntervalMs: number;
  now?: number;
}

/** Statistical and drift gates measured from Prometheus counts and buckets (candidate vs stable). */
function isPrometheusStats(g: GateSpec): g is StatisticsGate {
  return (g.kind === 'statistical' || g.kind === 'drift') && usesPrometheusSource(g);
}

/** Placeholders a gate uses that have no value, and gates compared with stable without a stable version: usage errors before any query. */
function missingInputs(gates: PrometheusMeasuredGate[], vars: Record<string, string>): string[] {
  const out: string[] = [];
  for (const g of gates) {
    const templates = (g.kind === 'prometheus' ? [g.query] : [g.errorsQuery, g.totalQuery, g.bucketsQuery]).filter((t): t is string => t !== undefined);
    const used = [...new Set(templates.flatMap((t) => placeholdersOf(t, g.name)))].filter((n) => n !== 'interval' && vars[n] === undefined);
    for (const n of used) out.push(`gate ${JSON.stringify(g.name)} uses {{${n}}}: give --var ${n}=…`);
    if ((hasRelative(g) || isPrometheusStats(g)) && vars.stable === undefined && !used.includes('stable')) {
      out.push(`gate ${JSON.stringify(g.name)} is compared with stable: give --var stable=… (the stable version)`);
    }
  }
  return [...new Set(out)];
}

export async function checkGates(opts: CheckOptions): Promise<CheckResult> {
  const problems = missingInputs(opts.gates, opts.vars);
  if (problems.length) {
    throw new UsageError(`missing template values:\n${problems.map((p) => `  ${p}`).join('\n')}`, { hint: 'e.g. --var version=1.2.0 --var stable=1.1.0', details: { problems } });
  }
  const now = opts.now ?? Date.now();
  const { model, version, stable, ...rest } = opts.vars;
  const templating = { vars: rest, minIntervalMs: opts.minIntervalMs };
  const evaluator = new PrometheusGateEvaluator(opts.client, templating);
  const stats = new PrometheusStatsGateEvaluator(opts.client, templating);
  const ctx: GateContext = { model: model ?? '', candidate: version ?? '', stable: stable ?? null, sinceMs: now - opts.windowMs, now };
  const results = await Promise.all(opts.gates.map((g) => (g.kind === 'prometheus' ? evaluator.evaluate(g, ctx) : stats.evaluate(g, ctx))));
  const gates = results.map(toChecked);
  return {
    verdict: overallVerdict(gates),
    prometheus: opts.prometheus,
    at: new Date(now).toISOString(),
    interval: promDuration(Math.max(opts.windowMs, opts.minIntervalMs)),
    vars: opts.vars,
    gates,
  };
}

function finite(v: number | null): number | null {
  return v !== null && Number.isFinite(v) ? v : null;
}

function toChecked(r: PrometheusGateResult): CheckedGate {
  return {
    name: r.name,
    query: r.query,
    value: finite(r.value),
    raw: r.raw ?? null,
    limit: r.limit,
    verdict: r.verdict,
    samples: r.samples,
    reason: r.reason,
    ...(r.baseline ? { baseline: { query: r.baseline.query, value: finite(r.baseline.value), raw: r.baseline.raw ?? null } } : {}),
    ...(r.errorCause ? { error: r.errorCause } : {}),
  };
}

export function overallVerdict(gates: ReadonlyArray<Pick<CheckedGate, 'verdict'>>): CheckVerdict {
  for (const v of ['fail', 'error', 'inconclusive'] as const) if (gates.some((g) => g.verdict === v)) return v;
  return 'pass';
}

export function checkExitCode(r: Pick<CheckResult, 'verdict' | 'gates'>): ExitCode {
  switch (r.verdict) {
    case 'pass':
      return ExitCode.ok;
    case 'fail':
      return ExitCode.rolledBack;
    case 'inconclusive':
      return ExitCode.held;
    case 'error':
      // The query's own fault (fix the gates file) → usage; the source could not answer → unavailable.
      return r.gates.every((g) => g.verdict !== 'error' || g.error === 'query' || g.error === 'template') ? ExitCode.usage : ExitCode.unavailable;
  }
}

const MARK: Record<CheckedGate['verdict'], string> = { pass: 'PASS', fail: 'FAIL', inconclusive: 'INCONCLUSIVE', error: 'ERROR' };

export function renderCheck(r: CheckResult): string {
  const lines: string[] = [];
  for (const g of r.gates) {
    const value = g.raw !== null ? ` value ${g.value !== null ? fmt(g.value) : g.raw}` : '';
    lines.push(`${MARK[g.verdict].padEnd(12)} ${g.name}:${value} (limit ${g.limit})`);
    lines.push(`             ${g.reason}`);
    if (g.verdict !== 'pass') {
      lines.push(`             query: ${g.query}`);
      if (g.baseline) lines.push(`             stable query: ${g.baseline.query}${g.baseline.raw !== null ? ` → raw "${g.baseline.raw}"` : ''}`);
    }
  }
  const counts = (['pass', 'fail', 'inconclusive', 'error'] as const)
    .map((v) => [v, r.gates.filter((g) => g.verdict === v).length] as const)
    .filter(([, n]) => n > 0)
    .map(([v, n]) => `${n} ${v}`)
    .join(', ');
  lines.push(`Verdict: ${r.verdict.toUpperCase()} (${counts}) — ${r.prometheus} at ${r.at}, {{interval}} = ${r.interval}`);
  return lines.join('\n');
}
