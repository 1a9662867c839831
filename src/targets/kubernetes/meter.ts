import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { UsageError } from '../../core/errors.js';
import { copyUpTo, parseJson, sendJson } from '../local/http-util.js';
import { readAnswer, SampleRing, windowOf, type LocalWindow, type Role } from '../local/window.js';
import { COMPARE_HEADER, EVALUATION_HEADER } from './names.js';
import { MODEL_PROBE_PATH } from './settings.js';
import { shadowComparer, type Comparison, type CompareTarget } from './shadow-compare.js';
import { encodeWindow } from './window-codec.js';

/**
 * The metering sidecar of a Kubernetes version pod: it takes the pod's traffic (:8080), streams it
 * to the bundle's server (127.0.0.1:8081) and records every request in the same SampleRing the
 * local router uses, so gates on Kubernetes judge exactly the same per-request windows as on the
 * local runtime (not Prometheus counters sampled at scrape time). Windows are served on a separate
 * API port (:9090) that no Service exposes: modelctl reaches it through the API server's pod proxy
 * (RBAC `get pods/proxy`), so the CLI needs no network path to pod IPs. Other pods can still reach
 * the pod IP directly; the windows hold only counts and timings, and a NetworkPolicy can close that.
 *
 * The API port also answers the kubelet's probes of the model container (GET /model-ready →
 * the model's readinessPath on 127.0.0.1): the kubelet probes the pod IP, where the model, bound to
 * the pod's loopback so that all traffic is metered, does not listen.
 *
 * Unlike the local router, the meter streams bodies both ways (it never needs a request copy: the
 * Gateway does the mirroring) and buffers at most MAX_PARSE_BYTES (http-util.ts) of an answer to read its score.
 * Shadow agreement: the Gateway discards mirrored answers, so the candidate's meter compares
 * instead: given `compare` (the stable Service, set in the candidate's pod spec), it asks stable the
 * same request after its own model answered a mirrored one, off every user's path
 * (shadow-compare.ts). Requests carrying COMPARE_HEADER (those comparisons, arriving at the
 * stable's meter) or EVALUATION_HEADER (an evaluation replay's cases, evaluate.ts) are forwarded but
 * not recorded: they are not traffic (GET /healthz counts the replay's as `evaluated`). The Gateway
 * removes both headers from live traffic; a client that reaches the pod's traffic port directly
 * (in-cluster) can still set them: a NetworkPolicy closes that (README.md).
 */

export const DEFAULT_UPSTREAM_TIMEOUT_MS = 60_000;
/** How long /model-ready waits for the model unless the probe says (?timeoutMs=): under the probes' 2 s timeoutSeconds. */
export const DEFAULT_PROBE_TIMEOUT_MS = 1_500;
const MAX_PROBE_TIMEOUT_MS = 60_000;
/** How long close() lets in-flight requests finish before cutting their connections. */
export const DEFAULT_CLOSE_GRACE_MS = 5_000;

export interface HostPort {
  host: string;
  port: number;
}

export interface MeterOptions {
  /** Where the pod's traffic arrives (the Service's target port). */
  listen: HostPort;
  /** The bundle's server inside the pod. */
  upstream: HostPort;
  /** The windows/health API (reached through the API server's pod proxy). */
  api: HostPort;
  /** The bundle's numeric answer field (`serve.scoreField`, dotted path). */
  scoreField?: string | undefined;
  /** The bundle's `serve.readinessPath`: what GET /model-ready on the API port asks the model (default /healthz). */
  readinessPath?: string | undefined;
  /** Ring capacity (samples kept); see SampleRing. */
  capacity?: number | undefined;
  /** Wall clock (ms since the epoch) of sample end times and of the window's "now". */
  clock?: (() => number) | undefined;
  /** No byte from the server for this long: 504 (before the answer started) or a cut answer. */
  upstreamTimeoutMs?: number | undefined;
  log?: ((message: string) => void) | undefined;
  /** Compare mirrored requests' answers with the stable version's (see shadow-compare.ts). */
  compare?: CompareTarget | undefined;
}

export interface Meter {
  trafficPort: number;
  apiPort: number;
  /** Samples recorded so far (tests, logs). */
  readonly recorded: number;
  /** Evaluation replay requests forwarded without being recorded (EVALUATION_HEADER). */
  readonly evaluated: number;
  /** Stop accepting, let in-flight requests finish for up to `graceMs`, then cut what is left. */
  close(graceMs?: number): Promise<void>;
}

/** What GET /v1/window answers: the local runtime's window plus the meter's clock at answer time. */
export interface MeterWindow extends LocalWindow {
  now: number;
}

/**
 * Envoy marks mirrored requests by appending "-shadow" to the host (before a port, if any):
 * "models.example.com:8080" → "models.example.com-shadow:8080". That is the only way the meter
 * can tell the Gateway's mirror copies from live traffic.
 */
export function roleOfHost(host: string | undefined): Role {
  if (!host) return 'live';
  const withoutPort = host.replace(/:\d+$/, '');
  return withoutPort.endsWith('-shadow') ? 'shadow' : 'live';
}


/** "0.0.0.0:8080", "[::]:8080" or ":8080" (all interfaces) → {host, port}; UsageError otherwise. */
export function parseHostPort(text: string, what: string): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535) throw new UsageError(`${what}: "${text}" is not host:port`, { hint: 'e.g. 0.0.0.0:8080 or 127.0.0.1:8081' });
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** The `since` of /v1/window: a non-negative ms timestamp, else null (400). */
export function parseSince(value: string | null): number | null {
  if (value === null || value.trim() === '') return null;
  const n = Number(value);
  return Number.isFinite(n) && n >= 0 ? n : null;
}

/*
 * Headers meaningful for one connection only (RFC 9110 §7.6.1), plus whatever the Connection
 * header names. Host, Content-Length and Transfer-Encoding framing: Host and Content-Length are
 * kept (the meter is transparent and streams, so the length stays true); Transfer-Encoding is
 * redone by Node on our own hop.
 * The router keeps a similar list privately (src/targets/local/router.ts HOP_BY_HOP), but it also
 * drops host/content-length because it re-sends buffered bodies, so it is not the same set.
 */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** Headers to pass on to the next hop: everything but the hop-by-hop ones. */
export function endToEndHeaders(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const named = new Set(
    String(headers.connection ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP_BY_HOP.has(k) && !named.has(k)) out[k] = v;
  return out;
}

/** A request without a body: nothing of it is consumed before the server answers, so it may be re-sent. */
function hasNoBody(req: http.IncomingMessage): boolean {
  const len = req.headers['content-length'];
  return req.headers['transfer-encoding'] === undefined && (len === undefined || Number(len) === 0);
}

async function listen(server: http.Server, at: HostPort): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** What /model-ready learned from the model: its status, or why there was none. */
export interface ModelProbe {
  status: number | null;
  error?: string;
  ms: number;
}

/**
 * Ask the model's readiness path once, the way the kubelet would if it could reach 127.0.0.1: a GET
 * with no body, bounded by `timeoutMs`, on a fresh connection (agent: false — a probe must see a
 * model that stopped accepting connections, not a pooled socket that still works). Only the status
 * travels back; the body is drained and dropped, so the probe endpoint is no path around the meter.
 */
export function probeModel(upstream: HostPort, path: string, timeoutMs: number): Promise<ModelProbe> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: Omit<ModelProbe, 'ms'>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ...r, ms: Math.round(performance.now() - t0) });
    };
    const req = http.request({ host: upstream.host, port: upstream.port, method: 'GET', path, agent: false, headers: { 'user-agent': 'modelctl-meter-probe' } }, (res) => {
      res.resume();
      res.on('end', () => finish({ status: res.statusCode ?? null }));
      res.on('error', () => finish({ status: null, error: 'the answer was cut' }));
    });
    const timer = setTimeout(() => {
      finish({ status: null, error: `no answer within ${timeoutMs} ms` });
      req.destroy();
    }, timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => finish({ status: null, error: `unreachable: ${err.code ?? err.message}` }));
    req.end();
  });
}

/** The `timeoutMs` of a probe request: a positive integer up to a minute, else the default. */
export function probeTimeoutOf(value: string | null): number {
  const n = Number(value);
  return value !== null && Number.isInteger(n) && n > 0 ? Math.min(n, MAX_PROBE_TIMEOUT_MS) : DEFAULT_PROBE_TIMEOUT_MS;
}

export async function startMeter(opts: MeterOptions): Promise<Meter> {
  const clock = opts.clock ?? Date.now;
  const timeoutMs = opts.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
  const log = opts.log ?? (() => {});
  const ring = new SampleRing(opts.capacity);
  const scoreField = opts.scoreField || undefined;
  // One keep-alive pool to the one server: no connect per request on the hot path.
  const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256 });
  let recorded = 0;
  /** Evaluation replay requests forwarded (never recorded). */
  let evaluated = 0;
  const comparer = opts.compare ? shadowComparer(opts.compare) : undefined;
  const fields = { scoreField, agreement: opts.compare?.agreement };
  const declared = scoreField !== undefined || opts.compare !== undefined;

  const record = (status: number, latencyMs: number, role: Role, score: number | null, unreadable = false, c: Comparison = { agreed: null }) => {
    recorded++;
    ring.push({ at: clock(), status, latencyMs, score: status < 400 ? score : null, agreed: c.agreed, role, unreadable, ...(c.uncompared ? { uncompared: c.uncompared } : {}) });
  };

  const forward = (req: http.IncomingMessage, res: http.ServerResponse, t0: number, role: Role, attempt: number): void => {
    let finished = false;
    let gotResponse = false;
    // A comparison's request from another version's meter, or an evaluation replay's case through
    // the API server's service proxy (evaluate.ts): served, not traffic. Neither comes through the
    // Gateway, which removes both headers from what it routes (manifests.ts stripUnmetered); a
    // mirrored copy (role shadow) always came through it, so it is never exempt: whether an
    // implementation mirrors the request before or after the header filter is its own choice.
    const marked = role === 'live' && (req.headers[COMPARE_HEADER] !== undefined || req.headers[EVALUATION_HEADER] !== undefined);
    const evaluation = marked && req.headers[EVALUATION_HEADER] !== undefined;
    const counted = !marked;
    if (evaluation && attempt === 0) evaluated++;
    const finish = (status: number, score: number | null = null, unreadable = false) => {
      if (finished) return;
      finished = true;
      if (counted) record(status, performance.now() - t0, role, score, unreadable);
    };
    // A mirrored request to compare: keep a bounded copy of its body to ask stable the same.
    const comparing = comparer !== undefined && role === 'shadow' && counted;
    const requestCopy = comparing && attempt === 0 ? copyUpTo(req) : null;
    const upstream = http.request({
      host: opts.upstream.host,
      port: opts.upstream.port,
      method: req.method,
      path: req.url,
      headers: endToEndHeaders(req.headers),
      agent,
      timeout: timeoutMs,
    });
    // The caller went away: stop the upstream request too (499, as nginx counts it: not a server error).
    const onClientClose = () => {
      if (!res.writableFinished && !finished) {
        upstream.destroy();
        finish(499);
      }
    };
    res.on('close', onClientClose);

    upstream.on('response', (up) => {
      gotResponse = true;
      const status = up.statusCode ?? 502;
      res.writeHead(status, up.statusMessage, endToEndHeaders(up.headers));
      // A bounded copy of every successful answer of a bundle that names a score field: its score, or,
      // for an answer that is not JSON or lacks the field, an unreadable mark — read exactly as the
      // local router reads it (readAnswer), so the gates judge such answers instead of passing them.
      const copy = declared && status < 400 ? copyUpTo(up) : null;
      let timedOut = false;
      upstream.on('timeout', () => (timedOut = true));
      const broken = () => {
        res.destroy();
        finish(timedOut ? 504 : 502);
      };
      up.on('error', () => {}); // 'close' below handles it; an unhandled 'error' would crash the sidecar
      up.on('close', () => {
        if (!up.complete) broken();
      });
      res.on('finish', () => {
        if (!up.complete) return finish(502); // the server cut its answer: the caller got a truncated body
        if (!copy) return finish(status);
        const chunks = copy();
        const read = readAnswer(chunks, fields);
        const body = requestCopy?.();
        const answer = read.answer ?? parseJson(chunks);
        if (!comparing || finished || !body || answer === undefined) return finish(status, read.score, read.unreadable);
        // The caller (the Gateway's mirror) has its answer already; the sample waits for the comparison.
        finished = true;
        const latencyMs = performance.now() - t0;
        void comparer!
          .compare({ method: req.method ?? 'GET', path: req.url ?? '/', headers: endToEndHeaders(req.headers), body: Buffer.concat(body) }, answer)
          .then((c) => record(status, latencyMs, role, read.score, read.unreadable, c));
      });
      up.pipe(res);
    });

    upstream.on('timeout', () => upstream.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (gotResponse) return; // the response's own error path records it
      // A keep-alive socket the server closed just as we reused it: the request never reached the
      // server. Re-sending is only safe when none of the caller's body was consumed (Node's pattern).
      if (attempt === 0 && upstream.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE') && hasNoBody(req)) {
        finished = true; // the retry records the sample
        res.off('close', onClientClose);
        forward(req, res, t0, role, 1);
        return;
      }
      if (res.writableEnded || res.destroyed) return finish(499);
      const timedOut = err.code === 'ETIMEDOUT';
      const status = timedOut ? 504 : 502;
      sendJson(res, status, { error: timedOut ? `the model server did not answer within ${timeoutMs} ms` : `the model server is unreachable: ${err.code ?? err.message}` }, {
        'x-modelctl-meter': 'error',
      });
      finish(status);
    });

    if (hasNoBody(req)) {
      req.resume();
      upstream.end();
    } else {
      req.pipe(upstream);
    }
  };

  const traffic = http.createServer((req, res) => forward(req, res, performance.now(), roleOfHost(req.headers.host), 0));
  // Longer than the Gateway's idle pool timeouts (Envoy: 1 h max, typically 60 s), so the proxy
  // closes idle connections first and never reuses one the meter is closing.
  traffic.keepAliveTimeout = 65_000;

  const readinessPath = opts.readinessPath ?? '/healthz';
  const api = http.createServer((req, res) => {
    req.resume();
    const url = new URL(req.url ?? '/', 'http://meter');
    if (req.method === 'GET' && url.pathname === '/healthz') {
      // The meter's own health only: a model that is down must not get the meter restarted.
      return sendJson(res, 200, { ok: true, recorded, evaluated });
    }
    if (req.method === 'GET' && url.pathname === MODEL_PROBE_PATH) {
      // The model container's probes (the kubelet reaches the pod IP, where only the meter listens).
      // The model's own status goes back as is (the kubelet counts 200–399 as success); no answer = 503.
      // Not recorded in the window: probes are not traffic.
      void probeModel(opts.upstream, readinessPath, probeTimeoutOf(url.searchParams.get('timeoutMs'))).then((p) =>
        sendJson(res, p.status ?? 503, { model: `${opts.upstream.host}:${opts.upstream.port}${readinessPath}`, status: p.status, ms: p.ms, ...(p.error ? { error: p.error } : {}) }),
      );
      return;
    }
    if (req.method === 'GET' && url.pathname === '/v1/window') {
      const since = parseSince(url.searchParams.get('since'));
      if (since === null) return sendJson(res, 400, { error: 'since must be a timestamp in ms since the epoch, e.g. /v1/window?since=1767225600000' });
      const now = clock();
      const window = windowOf(ring, since, now);
      // ?encoding=runs: sorted [value, count] runs instead of raw arrays (window-codec.ts); the default stays plain.
      // `compare` (comparisons made, dropped at the concurrency bound, failed): for people and tests; readers ignore it.
      if (url.searchParams.get('encoding') === 'runs') return sendJson(res, 200, { ...encodeWindow(window), now, ...(comparer ? { compare: comparer.stats } : {}) });
      const w: MeterWindow = { ...window, now, ...(comparer ? { compare: comparer.stats } : {}) };
      return sendJson(res, 200, w);
    }
    sendJson(res, 404, { error: `no ${req.method} ${url.pathname} here`, paths: ['GET /healthz', `GET ${MODEL_PROBE_PATH}[?timeoutMs=<ms>]`, 'GET /v1/window?since=<ms>[&encoding=runs]'] });
  });

  let trafficPort: number;
  let apiPort: number;
  try {
    trafficPort = await listen(traffic, opts.listen);
    apiPort = await listen(api, opts.api);
  } catch (err) {
    traffic.close();
    api.close();
    agent.destroy();
    throw err;
  }
  log(`meter: traffic ${opts.listen.host}:${trafficPort} → ${opts.upstream.host}:${opts.upstream.port}, api ${opts.api.host}:${apiPort}`);

  let closing: Promise<void> | undefined;
  return {
    trafficPort,
    apiPort,
    get recorded() {
      return recorded;
    },
    get evaluated() {
      return evaluated;
    },
    close(graceMs = DEFAULT_CLOSE_GRACE_MS) {
      closing ??= (async () => {
        // Traffic first: in-flight requests finish (and are recorded) while the API still answers.
        const trafficClosed = new Promise<void>((r) => traffic.close(() => r()));
        traffic.closeIdleConnections();
        const cut = setTimeout(() => traffic.closeAllConnections(), graceMs);
        await trafficClosed;
        clearTimeout(cut);
        const apiClosed = new Promise<void>((r) => api.close(() => r()));
        api.closeAllConnections();
        await apiClosed;
        agent.destroy();
        comparer?.close();
      })();
      return closing;
    },
  };
}

