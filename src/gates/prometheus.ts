/**
 * A small Prometheus HTTP API client: instant queries (`GET /api/v1/query`) over fetch, with the
 * wire format parsed exactly (ANCHORS.md):
 *
 * - sample values are strings; "NaN", "+Inf" and "-Inf" are parsed by hand (`Number("+Inf")` is
 *   NaN in JavaScript);
 * - `"result": []` is no data, not zero;
 * - `"status": "error"` carries `errorType` and `error`; 400 (bad_data) and 422 (execution) are
 *   errors of the query itself and are not retried;
 * - 503 (Prometheus not ready, query timeout/cancelled), other 5xx (a proxy in front), 429,
 *   timeouts and connection errors are retried with exponential backoff, then reported as
 *   unavailable; 401/403/404 are not retried (wrong credentials or URL).
 *
 * Credentials (bearer token, basic auth) come from environment variables named in the settings;
 * they are sent as headers and never appear in messages.
 */

export interface PrometheusAuth {
  kind: 'bearer' | 'basic';
  /** The full Authorization header value. Never printed. */
  header: string;
}

export interface PrometheusSettings {
  /** Base URL, e.g. http://prometheus:9090 or https://mimir.example/prometheus (path prefix kept). */
  url: string;
  /** Extra request headers, e.g. X-Scope-OrgID for Mimir/Cortex/Thanos tenants. */
  headers: Record<string, string>;
  auth: PrometheusAuth | null;
  /** Per attempt (and Prometheus' own `timeout` parameter). */
  timeoutMs: number;
  /** Retries after the first attempt. */
  retries: number;
  /** First backoff; doubles per retry (with jitter). */
  backoffMs: number;
  /** Floor of {{interval}}: rate() needs at least two scrapes in its window. */
  minIntervalMs: number;
  /** Extra template variables (modelctl.yaml prometheus.vars, --var). */
  vars: Record<string, string>;
}

export const PROMETHEUS_DEFAULTS = {
  timeoutMs: 10_000,
  retries: 3,
  backoffMs: 250,
  minIntervalMs: 60_000,
} as const;

/** 'query': Prometheus refused or could not run the query (fix the query). 'unavailable': no answer. */
export type PrometheusErrorKind = 'query' | 'unavailable';

export class PrometheusError extends Error {
  override name = 'PrometheusError';
  constructor(
    readonly kind: PrometheusErrorKind,
    message: string,
    readonly status?: number,
    readonly errorType?: string,
  ) {
    super(message);
  }
}

export interface PromSample {
  /** Labels of the series ({} for a scalar or an aggregated vector). */
  labels: Record<string, string>;
  /** The value exactly as sent. */
  raw: string;
  value: number;
}

export interface PromInstantResult {
  resultType: 'vector' | 'scalar';
  samples: PromSample[];
  warnings: string[];
}

/** The part of the client the evaluator needs (fakes implement it in tests). */
export interface PromQuerier {
  /** Instant query at `timeSec` (Unix seconds; default: Prometheus' now). */
  query(promql: string, timeSec?: number): Promise<PromInstantResult>;
}

/** A sample value string as Prometheus writes it → number. */
export function parseSampleValue(raw: unknown): number {
  if (typeof raw !== 'string') throw new PrometheusError('query', `unexpected sample value ${JSON.stringify(raw)} (Prometheus sends strings)`);
  switch (raw) {
    case 'NaN':
      return Number.NaN;
    case '+Inf':
    case 'Inf':
      return Number.POSITIVE_INFINITY;
    case '-Inf':
      return Number.NEGATIVE_INFINITY;
  }
  const n = raw.trim() === '' ? Number.NaN : Number(raw);
  if (Number.isNaN(n)) throw new PrometheusError('query', `unparseable sample value ${JSON.stringify(raw)}`);
  return n;
}

function samplePair(v: unknown, where: string): { raw: string; value: number } {
  if (!Array.isArray(v) || v.length !== 2) throw new PrometheusError('query', `malformed ${where} in the Prometheus answer: ${JSON.stringify(v)?.slice(0, 200)}`);
  return { raw: v[1] as string, value: parseSampleValue(v[1]) };
}

function snippet(text: string): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > 200 ? `${one.slice(0, 200)}…` : one;
}

/**
 * Parse one /api/v1/query answer. Returns the result or throws a PrometheusError: 'query' for a
 * refused query (400, 422, any `status: error` that is not transient) or an unusable result type;
 * 'unavailable' for anything else (503, 5xx, 429, an answer that is not Prometheus'): worth a retry.
 */
export function parseQueryResponse(status: number, body: string): PromInstantResult {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    doc = undefined;
  }
  const d = doc as { status?: unknown; data?: { resultType?: unknown; result?: unknown }; errorType?: unknown; error?: unknown; warnings?: unknown } | undefined;
  if (!d || typeof d !== 'object' || (d.status !== 'success' && d.status !== 'error')) {
    const kind: PrometheusErrorKind = status === 400 || status === 422 ? 'query' : 'unavailable';
    throw new PrometheusError(kind, `HTTP ${status} and not a Prometheus API answer: ${snippet(body) || '(empty body)'}`, status);
  }
  if (d.status === 'error' || status < 200 || status >= 300) {
    const errorType = typeof d.errorType === 'string' ? d.errorType : undefined;
    const msg = typeof d.error === 'string' ? d.error : snippet(body);
    // 400 bad_data and 422 execution: the query is wrong; anything else (503 not ready or query
    // timeout, 500 internal, a proxy's 502/504) may pass on another attempt.
    const refused = status === 400 || status === 422 || errorType === 'bad_data' || errorType === 'execution';
    throw new PrometheusError(refused ? 'query' : 'unavailable', `HTTP ${status}${errorType ? ` ${errorType}` : ''}: ${msg}`, status, errorType);
  }
  const warnings = Array.isArray(d.warnings) ? d.warnings.map(String) : [];
  const resultType = d.data?.resultType;
  const result = d.data?.result;
  if (resultType === 'scalar') {
    return { resultType, samples: [{ labels: {}, ...samplePair(result, 'scalar') }], warnings };
  }
  if (resultType === 'vector') {
    if (!Array.isArray(result)) throw new PrometheusError('query', 'malformed vector in the Prometheus answer: result is not a list');
    const samples = result.map((s: { metric?: Record<string, string>; value?: unknown; histogram?: unknown }) => {
      if (s.value === undefined && s.histogram !== undefined) {
        throw new PrometheusError('query', 'the query returned a native histogram, not a number: wrap it, e.g. histogram_quantile(0.99, …)');
      }
      return { labels: s.metric ?? {}, ...samplePair(s.value, 'sample') };
    });
    return { resultType, samples, warnings };
  }
  if (resultType === 'matrix') {
    throw new PrometheusError('query', 'the query returned a range vector (matrix): a gate needs one number; apply a function such as rate(…[5m]) or avg_over_time(…[5m])');
  }
  throw new PrometheusError('query', `the query returned a ${String(resultType)}, not a number`);
}

function describeFetchError(err: unknown, timeoutMs: number): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `no answer within ${timeoutMs} ms`;
  const cause = e?.cause;
  if (cause?.message) return cause.code && !cause.message.includes(cause.code) ? `${cause.code}: ${cause.message}` : cause.message;
  if (cause?.code) return cause.code;
  return e?.message ?? String(err);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class PrometheusClient implements PromQuerier {
  private readonly base: string;

  constructor(
    readonly settings: Pick<PrometheusSettings, 'url' | 'headers' | 'auth' | 'timeoutMs' | 'retries' | 'backoffMs'>,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {
    this.base = settings.url.replace(/\/+$/, '');
  }

  /** Where queries go, safe to print (settings refuse credentials inside the URL). */
  get endpoint(): string {
    return `${this.base}/api/v1/query`;
  }

  async query(promql: string, timeSec?: number): Promise<PromInstantResult> {
    const params = new URLSearchParams({ query: promql, timeout: `${Math.max(1, Math.floor(this.settings.timeoutMs / 1000))}s` });
    if (timeSec !== undefined) params.set('time', timeSec.toFixed(3));
    const url = `${this.endpoint}?${params}`;
    const headers: Record<string, string> = { Accept: 'application/json', ...this.settings.headers };
    if (this.settings.auth) headers.Authorization = this.settings.auth.header;
    const attempts = this.settings.retries + 1;
    let last: PrometheusError | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1) {
        const base = this.settings.backoffMs * 2 ** (attempt - 2);
        await sleep(base / 2 + Math.random() * base);
      }
      let status: number;
      let body: string;
      try {
        const res = await this.fetchImpl(url, { headers, signal: AbortSignal.timeout(this.settings.timeoutMs), redirect: 'follow' });
        status = res.status;
        body = await res.text();
      } catch (err) {
        last = new PrometheusError('unavailable', `cannot reach Prometheus at ${this.base}: ${describeFetchError(err, this.settings.timeoutMs)}`);
        continue;
      }
      if (status === 401 || status === 403) {
        throw new PrometheusError('unavailable', `Prometheus at ${this.base} refused access: HTTP ${status}${snippet(body) ? ` ${snippet(body)}` : ''}`, status);
      }
      if (status === 404) {
        throw new PrometheusError('unavailable', `no Prometheus API at ${this.endpoint} (HTTP 404): check the URL and its path prefix`, status);
      }
      try {
        return parseQueryResponse(status, body);
      } catch (err) {
        if (!(err instanceof PrometheusError)) throw err;
        if (err.kind === 'query') throw err;
        last = err;
      }
    }
    const msg = last?.message ?? 'no attempt made';
    throw new PrometheusError('unavailable', `${msg} (after ${attempts} attempt${attempts === 1 ? '' : 's'})`, last?.status, last?.errorType);
  }
}
