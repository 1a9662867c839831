import type { MetricSource } from '../core/ports.js';
import { parseJsonPath, valueAt } from './answers.js';
import { errorMessage, fmt } from './compare.js';
import type { GateContext, GateEvaluator } from './contracts.js';
import type { GatePhase, GateResult, HttpGate } from '../core/gates.js';
import { cannotYet, checkValues, failedToMeasure, fill, judged, redact, resolveEnvRefs, tail, templateProblems, validateExternal, type CheckValues } from './external.js';

/**
 * kind: http — call a URL and read one number from its JSON answer (Argo Rollouts' Web provider):
 *
 *   - name: judge-score
 *     kind: http
 *     url: https://judge.example/score?model={{model}}&candidate={{candidate_url}}
 *     method: POST
 *     headers: {Authorization: {fromEnv: JUDGE_TOKEN}}
 *     body: {candidate: "{{candidate_url}}", stable: "{{stable_url}}"}
 *     valuePath: $.metrics.accuracy
 *     timeout: 10s
 *     min: 0.9
 *
 * Templated values are percent-encoded in the URL (but a `{{candidate_url}}`/`{{stable_url}}` that
 * starts the URL is its base, inserted as is: modelctl built it), and JSON-escaped in a body. A
 * non-2xx status, a timeout, an answer larger than MAX_BODY_BYTES, not JSON, or without a number at
 * `valuePath` is an error, never a pass; its reason shows the status and the start of the answer,
 * with every secret header value replaced by ***.
 */

export const DEFAULT_HTTP_TIMEOUT_MS = 10_000;
export const MAX_BODY_BYTES = 1024 * 1024;
const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD']);

/** The URL with its values in: percent-encoded, except a *_url placeholder that is the URL's base. */
export function fillUrl(template: string, values: CheckValues): string {
  return fill(template, values, (v, name, offset) => (offset === 0 && name.endsWith('_url') ? v : encodeURIComponent(v)));
}

/** The request body: an object is JSON with its strings filled (escaped by JSON.stringify); a string is filled with JSON-escaped values. */
export function fillBody(body: unknown, values: CheckValues): string | undefined {
  if (body === undefined) return undefined;
  if (typeof body === 'string') return fill(body, values, (v) => JSON.stringify(v).slice(1, -1));
  const walk = (x: unknown): unknown => {
    if (typeof x === 'string') return fill(x, values, (v) => v);
    if (Array.isArray(x)) return x.map(walk);
    if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, walk(v)]));
    return x;
  };
  return JSON.stringify(walk(body));
}

function templatesOf(gate: HttpGate): string[] {
  const strings: string[] = [];
  const walk = (x: unknown): void => {
    if (typeof x === 'string') strings.push(x);
    else if (Array.isArray(x)) x.forEach(walk);
    else if (x && typeof x === 'object') Object.values(x).forEach(walk);
  };
  walk(gate.url);
  walk(gate.body);
  return strings;
}

/** Read at most `limit` bytes of a response body; more is an error (the rest is not downloaded). */
async function readBounded(res: Response, limit: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new Error(`answer larger than ${limit} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export class HttpGateEvaluator implements GateEvaluator<HttpGate> {
  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  validate(gate: HttpGate): string[] {
    const where = `gate ${JSON.stringify(gate.name)}`;
    const errs = validateExternal(gate, { limitOptional: false });
    if (!gate.url) errs.push(`${where}: kind http needs url`);
    else if (!/^(https?:\/\/|\{\{\s*(candidate|stable)_url\s*\}\})/.test(gate.url)) errs.push(`${where}: url must start with http://, https:// or {{candidate_url}}, got ${JSON.stringify(gate.url)}`);
    if (!gate.valuePath) errs.push(`${where}: kind http needs valuePath, e.g. $.metrics.accuracy`);
    else {
      try {
        parseJsonPath(gate.valuePath);
      } catch (err) {
        errs.push(`${where}: valuePath ${JSON.stringify(gate.valuePath)} is not a JSON path: ${errorMessage(err)}`);
      }
    }
    if (gate.method !== undefined && !METHODS.has(gate.method.toUpperCase())) errs.push(`${where}: method must be one of ${[...METHODS].join(', ')}, got ${gate.method}`);
    for (const t of templatesOf(gate)) for (const p of templateProblems(t)) errs.push(`${where}: ${p}`);
    return errs;
  }

  phasesOf(): GatePhase[] {
    return ['shadow', 'canary'];
  }

  async evaluate(gate: HttpGate, ctx: GateContext, source: MetricSource): Promise<GateResult> {
    const method = (gate.method ?? 'GET').toUpperCase();
    const timeoutMs = gate.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS;
    let query = `http: ${method} ${gate.url} → ${gate.valuePath}`;
    let url: string;
    let body: string | undefined;
    let headers: Record<string, string>;
    let secrets: string[] = [];
    try {
      const resolved = resolveEnvRefs(gate.headers, this.env, 'header');
      secrets = resolved.secrets;
      headers = resolved.values;
      const values = await checkValues(ctx, source);
      url = fillUrl(gate.url ?? '', values);
      body = fillBody(gate.body, values);
      if (body !== undefined && typeof gate.body !== 'string' && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
      query = `http: ${method} ${url} → ${gate.valuePath}`;
    } catch (err) {
      return cannotYet(gate, ctx, query, err);
    }
    let status: number;
    let text: string;
    try {
      const signal = ctx.signal ? AbortSignal.any([AbortSignal.timeout(timeoutMs), ctx.signal]) : AbortSignal.timeout(timeoutMs);
      // No redirects: a secret header must not follow the request to another host.
      const res = await fetch(url, { method, headers, body, signal, redirect: 'error' });
      status = res.status;
      text = await readBounded(res, MAX_BODY_BYTES);
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const why =
        ctx.signal?.aborted ? 'interrupted: the rollout was stopped' : e.name === 'TimeoutError' ? `no answer within ${fmt(timeoutMs / 1000)} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
      return failedToMeasure(gate, ctx, query, redact(`${method} ${url} failed: ${why}`, secrets));
    }
    const shown = () => JSON.stringify(redact(tail(text, 200), secrets));
    if (status < 200 || status >= 300) return failedToMeasure(gate, ctx, query, `HTTP ${status}: ${shown()}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return failedToMeasure(gate, ctx, query, `HTTP ${status}, answer is not JSON: ${shown()}`);
    }
    const raw = valueAt(parsed, gate.valuePath ?? '$');
    // Many APIs send numbers as strings ("0.93"); anything else is no value.
    const value = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : Number.NaN;
    if (!Number.isFinite(value)) {
      return failedToMeasure(gate, ctx, query, `HTTP ${status}, no number at ${gate.valuePath} (${raw === undefined ? 'absent' : `got ${JSON.stringify(raw)}`}): ${shown()}`);
    }
    return { ...judged(gate, ctx, query, value, `HTTP ${status}, ${gate.valuePath} = ${fmt(value)}`), ...(typeof raw === 'string' ? { raw } : {}) };
  }
}
