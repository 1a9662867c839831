import type { MetricSource } from '../core/ports.js';
import { describeLimit, fmt, hasRelative, judge, validateCommon } from './compare.js';
import type { GateContext, GateEvaluator } from './contracts.js';
import type { GatePhase, GateResult, PrometheusGate } from '../core/gates.js';
import { PrometheusError, type PromQuerier, type PromSample } from './prometheus.js';
import { BUILTIN_PLACEHOLDERS, checkTemplate, placeholdersOf, promDuration, resolveTemplate, TemplateError } from './template.js';

/**
 * `kind: prometheus` gates (the default kind of a gate with a `query`): the query, resolved for
 * the candidate, must return one number, judged by the same bounds as every gate (compare.ts).
 * Relative bounds resolve the same query with `{{version}}` = the stable version, at the same
 * instant and over the same window, for the baseline.
 *
 * Missing data is never a pass and never a failure (unlike Flagger, whose users fight "no values
 * found" failures; like Kayenta's NODATA): an empty result or NaN (0/0 when nothing was served)
 * is inconclusive. ±Inf is a number and is compared like one. A query Prometheus refuses, a
 * result of several series, or an unreachable Prometheus is a query error (verdict 'error').
 */

export interface PrometheusEvaluatorOptions {
  /** Extra template values (modelctl.yaml prometheus.vars, `--var`), e.g. namespace. */
  vars?: Readonly<Record<string, string>>;
  /** Floor of {{interval}} (default 1m): rate() needs two scrapes inside its range. */
  minIntervalMs?: number;
}

/** Why a query gate could not be measured: the query (fix the gate), the source (unreachable) or the template. */
export type PrometheusErrorCause = 'query' | 'unavailable' | 'template';

export interface PrometheusGateResult extends GateResult {
  /** Set when verdict is 'error'. */
  errorCause?: PrometheusErrorCause;
}

export interface GateProblem {
  /** The gate field at fault, when one is (for file:line:field reports). */
  field?: string;
  message: string;
}

type Measured =
  | { kind: 'value'; value: number; raw: string; series: number; warnings: string[] }
  | { kind: 'empty'; warnings: string[] }
  | { kind: 'error'; cause: PrometheusErrorCause; message: string };

const BOTH: GatePhase[] = ['shadow', 'canary'];

function seriesName(labels: Record<string, string>): string {
  const inner = Object.entries(labels)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(',');
  return `{${inner}}`;
}

function describeSeries(samples: PromSample[]): string {
  const shown = samples.slice(0, 3).map((s) => `${seriesName(s.labels)} ${s.raw}`);
  return shown.join(', ') + (samples.length > 3 ? `, … (${samples.length - 3} more)` : '');
}

export class PrometheusGateEvaluator implements GateEvaluator<PrometheusGate> {
  private readonly vars: Readonly<Record<string, string>>;
  private readonly minIntervalMs: number;

  constructor(
    private readonly client: PromQuerier,
    opts: PrometheusEvaluatorOptions = {},
  ) {
    this.vars = opts.vars ?? {};
    this.minIntervalMs = opts.minIntervalMs ?? 60_000;
  }

  /** Every placeholder name a query may use. */
  knownPlaceholders(): string[] {
    return [...new Set<string>([...BUILTIN_PLACEHOLDERS, ...Object.keys(this.vars)])];
  }

  /** Spec problems, with the field at fault. */
  problems(gate: PrometheusGate): GateProblem[] {
    const where = `gate ${JSON.stringify(gate.name)}`;
    const out: GateProblem[] = validateCommon(gate).map((message) => ({ message }));
    if (!gate.query) {
      out.push({ field: 'query', message: `${where}: a prometheus gate needs a query` });
      return out;
    }
    for (const message of checkTemplate(gate.query, gate.name, this.knownPlaceholders())) out.push({ field: 'query', message });
    if (gate.minSamples !== undefined) {
      out.push({
        field: 'minSamples',
        message: `${where}: minSamples does not apply to query gates (a query returns one number); an empty result or NaN is already inconclusive — add a throughput gate with min to require traffic`,
      });
    }
    if (hasRelative(gate)) {
      let names: string[] = [];
      try {
        names = placeholdersOf(gate.query, gate.name);
      } catch {
        /* reported above */
      }
      if (!names.includes('version')) {
        out.push({
          field: 'query',
          message: `${where}: relative bounds compare the query for the candidate with the same query for stable, so it must use {{version}}`,
        });
      }
    }
    return out;
  }

  validate(gate: PrometheusGate): string[] {
    return this.problems(gate).map((p) => p.message);
  }

  phasesOf(gate: PrometheusGate): GatePhase[] {
    return gate.phases ?? BOTH;
  }

  /** The template values for `version` measured over the context's window. */
  values(ctx: GateContext, version: string): Record<string, string | undefined> {
    return {
      ...this.vars,
      model: ctx.model || undefined,
      version: version || undefined,
      stable: ctx.stable ?? undefined,
      namespace: this.vars.namespace,
      interval: promDuration(Math.max(ctx.now - ctx.sinceMs, this.minIntervalMs)),
    };
  }

  /** The Prometheus client this evaluator asks (shared with the statistics evaluator). */
  get querier(): PromQuerier {
    return this.client;
  }

  async evaluate(gate: PrometheusGate, ctx: GateContext, _source?: MetricSource): Promise<PrometheusGateResult> {
    const limit = describeLimit(gate);
    const template = gate.query ?? '';
    const base = { name: gate.name, at: ctx.now, limit, samples: 0, value: null };
    const errorResult = (query: string, cause: PrometheusErrorCause, reason: string): PrometheusGateResult => ({
      ...base,
      query,
      verdict: 'error',
      errorCause: cause,
      reason,
    });
    if (!gate.query) return errorResult('', 'template', 'no query');

    let query: string;
    try {
      query = resolveTemplate(template, this.values(ctx, ctx.candidate), gate.name);
    } catch (err) {
      return errorResult(template, 'template', (err as Error).message);
    }
    const cand = await this.measure(query, ctx.now);
    if (cand.kind === 'error') return errorResult(query, cand.cause, cand.message);
    const warn = (m: Measured) => (m.kind !== 'error' && m.warnings.length ? ` (Prometheus warns: ${m.warnings.join('; ')})` : '');
    const inconclusive = (reason: string, extra: Partial<GateResult> = {}): PrometheusGateResult => ({ ...base, query, verdict: 'inconclusive', reason, ...extra });
    if (cand.kind === 'empty') {
      return inconclusive(`no data: the query returned an empty result (no series for ${ctx.candidate || 'these labels'}: no traffic yet, or labels that match nothing)${warn(cand)}`);
    }
    const candFields = { raw: cand.raw, samples: cand.series };
    if (Number.isNaN(cand.value)) {
      return inconclusive(`NaN (e.g. 0/0: no requests) — raw "${cand.raw}"${warn(cand)}`, { ...candFields, value: null });
    }

    let stable: number | null = null;
    let baseline: GateResult['baseline'];
    let stableText = '';
    if (hasRelative(gate)) {
      if (ctx.stable === null) return inconclusive('no stable version to compare with', { ...candFields, value: cand.value });
      let stableQuery: string;
      try {
        stableQuery = resolveTemplate(template, this.values(ctx, ctx.stable), gate.name);
      } catch (err) {
        return { ...errorResult(query, 'template', (err as Error).message), ...candFields };
      }
      const b = await this.measure(stableQuery, ctx.now);
      if (b.kind === 'error') {
        return { ...errorResult(query, b.cause, `stable ${ctx.stable}: ${b.message}`), ...candFields, value: cand.value, baseline: { query: stableQuery, value: null } };
      }
      if (b.kind === 'empty') {
        return inconclusive(`no stable data: the query for stable ${ctx.stable} returned an empty result${warn(b)}`, {
          ...candFields,
          value: cand.value,
          baseline: { query: stableQuery, value: null },
        });
      }
      baseline = { query: stableQuery, value: Number.isNaN(b.value) ? null : b.value, raw: b.raw };
      if (Number.isNaN(b.value)) {
        return inconclusive(`stable ${ctx.stable} is NaN (e.g. 0/0: no requests) — raw "${b.raw}"`, { ...candFields, value: cand.value, baseline });
      }
      stable = b.value;
      stableText = `, stable ${ctx.stable} raw "${b.raw}"`;
    }

    const j = judge(gate, cand.value, stable);
    const rawText = `raw "${cand.raw}"${stableText}`;
    return {
      ...base,
      query,
      verdict: j.verdict,
      value: cand.value,
      limit: j.limit,
      ...candFields,
      ...(baseline ? { baseline } : {}),
      reason: j.verdict === 'pass' ? `${fmt(cand.value)} within ${j.limit} — ${rawText}${warn(cand)}` : `${j.broken} — ${rawText}${warn(cand)}`,
    };
  }

  private async measure(query: string, nowMs: number): Promise<Measured> {
    let r;
    try {
      r = await this.client.query(query, nowMs / 1000);
    } catch (err) {
      if (err instanceof PrometheusError) return { kind: 'error', cause: err.kind, message: err.kind === 'query' ? `Prometheus refused the query: ${err.message}` : err.message };
      if (err instanceof TemplateError) return { kind: 'error', cause: 'template', message: err.message };
      return { kind: 'error', cause: 'unavailable', message: err instanceof Error ? err.message : String(err) };
    }
    if (r.samples.length === 0) return { kind: 'empty', warnings: r.warnings };
    if (r.samples.length > 1) {
      return {
        kind: 'error',
        cause: 'query',
        message: `the query returned ${r.samples.length} series, a gate needs exactly one number: aggregate it in the query, e.g. sum(…) or max(…) — ${describeSeries(r.samples)}`,
      };
    }
    const s = r.samples[0]!;
    return { kind: 'value', value: s.value, raw: s.raw, series: 1, warnings: r.warnings };
  }
}
