import { randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { TrafficSplit } from '../../core/model.js';
import { MirrorSampler, normalizeSplit, SmoothWeightedRoundRobin } from './balance.js';
import type { RuntimeMetrics } from './metrics.js';
import { versionKey } from './paths.js';
import type { ServeSpec } from '../../bundle/serve.js';
import { copyUpTo, sendJson as sendJsonAnswer } from './http-util.js';
import { agreementOf, compareAnswers } from '../../gates/answers.js';
import { readAnswer, type Role } from './window.js';
// The header names are the Kubernetes meter's (one spelling for both targets' marks).
import { EVALUATION_HEADER, UNMETERED_HEADERS } from '../kubernetes/names.js';

/**
 * The router: 127.0.0.1:<port>/<model>/<path> → /<path> on one version of <model>, chosen by the
 * model's TrafficSplit; a share of requests is also copied to the mirror version, fire-and-forget.
 *
 * Atomic switches: each model's route is an immutable {split, picker} object. A request reads the
 * route once, on arrival, and is served by the version picked then; applying a split replaces the
 * object in one assignment. So in-flight requests finish where they started, new ones follow the
 * new split, and no request ever sees half a table. Retiring waits for a version's in-flight
 * count to drain before its process is stopped.
 *
 * Mirrors never touch the caller: the caller's answer is streamed from the live version as it
 * comes; the mirror's copy runs on its own sockets (own agent, bounded concurrency, own timeout),
 * nothing on the live path awaits it, and its errors are only recorded.
 *
 * Marks only the router sets: the headers that mean "not traffic" on Kubernetes
 * (x-modelctl-evaluation, x-modelctl-compare) and the mirror copies' x-modelctl-shadow are removed
 * from every request it forwards (ROUTER_MARKS), and the per-version evaluation route
 * (/<model>@<version>/…, served but never recorded) answers only a request carrying the runtime's
 * evaluation token in x-modelctl-evaluation (runtime.json, readable by the home's owner): without
 * it any client of the public port could reach a candidate before its evaluation passed, or send
 * requests no gate ever sees.
 */

/** Request bodies are buffered (a mirror needs its own copy); larger ones are refused with 413. */
const MAX_BODY_BYTES = 16 * 1024 * 1024;
const UPSTREAM_TIMEOUT_MS = 60_000;
const MIRROR_TIMEOUT_MS = 15_000;
/** Mirrored requests in flight at once; beyond this a request is not mirrored (counted as skipped). */
const MAX_MIRRORS_IN_FLIGHT = 128;

/** Headers only the router may set; removed from what clients send (see above). */
const ROUTER_MARKS: readonly string[] = [...UNMETERED_HEADERS, 'x-modelctl-shadow'];

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
]);

export interface Backend {
  port: number;
  spec: ServeSpec;
}

interface ModelRoute {
  readonly split: TrafficSplit;
  readonly picker: SmoothWeightedRoundRobin;
  readonly mirror: MirrorSampler | null;
}

/** What a request passes on to a version: neither hop-by-hop headers nor the router's marks. */
function forwardHeaders(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (!HOP_BY_HOP.has(k) && !ROUTER_MARKS.includes(k) && v !== undefined) out[k] = v;
  return out;
}

function responseHeaders(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (k === 'content-length' || (!HOP_BY_HOP.has(k) && v !== undefined)) out[k] = v;
  return out;
}

/** Whether `given` (a header value) is the evaluation token, compared in constant time. */
function isToken(given: string | string[] | undefined, token: string): boolean {
  if (typeof given !== 'string') return false;
  const [a, b] = [Buffer.from(given), Buffer.from(token)];
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Errors the router itself answers say so (`x-modelctl-router: error`), apart from a version's own errors. */
function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  sendJsonAnswer(res, status, body, { 'x-modelctl-router': 'error', ...headers });
}

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(Object.assign(new Error(`request body larger than ${limit} bytes`), { status: 413 }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    req.on('aborted', () => reject(new Error('client aborted')));
  });
}

export class Router {
  /** The routing table: model → immutable route. Replaced per model in one assignment. */
  private routes = new Map<string, ModelRoute>();
  private readonly inflight = new Map<string, number>();
  private readonly drained = new Map<string, Array<() => void>>();
  private mirrorsInFlight = 0;
  private server: http.Server | undefined;
  private readonly sockets = new Set<Socket>();
  // Separate pools: a slow mirror can hold only mirror sockets, never delay a live request.
  private readonly liveAgent = new http.Agent({ keepAlive: true, maxFreeSockets: 256 });
  private readonly mirrorAgent = new http.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 64 });

  /**
   * @param evaluationToken what the evaluation route requires in x-modelctl-evaluation (the daemon
   *   writes it to runtime.json for LocalTarget.evaluate); a random one when not given.
   */
  constructor(
    private readonly backendOf: (model: string, version: string) => Backend | undefined,
    private readonly metrics: RuntimeMetrics,
    private readonly log: (m: string) => void,
    readonly evaluationToken: string = randomBytes(24).toString('hex'),
  ) {}

  /** Swap in a model's new split (atomic for every request that arrives after this returns). */
  setTraffic(model: string, split: TrafficSplit): void {
    const s = normalizeSplit(split);
    const next = new Map(this.routes);
    next.set(model, { split: s, picker: new SmoothWeightedRoundRobin(s.weights), mirror: s.mirror ? new MirrorSampler(s.mirror.percent) : null });
    this.routes = next;
  }

  traffic(): Record<string, TrafficSplit> {
    return Object.fromEntries([...this.routes].map(([m, r]) => [m, r.split]));
  }

  inFlight(model: string, version: string): number {
    return this.inflight.get(versionKey(model, version)) ?? 0;
  }

  /** Resolve true once no request is in flight to the version, false after `timeoutMs`. */
  waitDrained(model: string, version: string, timeoutMs: number): Promise<boolean> {
    const key = versionKey(model, version);
    if (!this.inflight.get(key)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      const waiters = this.drained.get(key) ?? [];
      waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
      this.drained.set(key, waiters);
    });
  }

  private enter(key: string): void {
    this.inflight.set(key, (this.inflight.get(key) ?? 0) + 1);
  }

  private leave(key: string): void {
    const n = (this.inflight.get(key) ?? 1) - 1;
    if (n > 0) {
      this.inflight.set(key, n);
      return;
    }
    this.inflight.delete(key);
    for (const w of this.drained.get(key) ?? []) w();
    this.drained.delete(key);
  }

  async listen(port: number): Promise<number> {
    const server = http.createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = 65_000; // longer than typical client pools keep idle sockets
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    return (server.address() as AddressInfo).port;
  }

  /** Stop accepting, let in-flight requests finish (up to `graceMs`), then cut what is left. */
  async close(graceMs: number): Promise<void> {
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((r) => server.close(() => r()));
    server.closeIdleConnections();
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    await closed;
    clearTimeout(timer);
    this.liveAgent.destroy();
    this.mirrorAgent.destroy();
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const t0 = performance.now();
    const m = /^\/([^/?#]+)(\/[^?#]*)?(\?[^#]*)?/.exec(req.url ?? '/');
    // /<model>@<version>/<path>: one version alone, outside the split (evaluation replay). Model
    // names are DNS labels, so "@" never belongs to one.
    const pinned = /^([^@]+)@(.+)$/.exec(m?.[1] ?? '');
    if (m && pinned) return this.handlePinned(req, res, pinned[1]!, decodeURIComponent(pinned[2]!), `${m[2] ?? '/'}${m[3] ?? ''}`, t0);
    const model = m?.[1] ?? '';
    const route = this.routes.get(model);
    if (!m || !route) {
      req.resume();
      sendJson(res, 404, {
        error: model ? `no model "${model}" on this runtime` : 'requests go to /<model>/<path>',
        models: [...this.routes.keys()].sort(),
      });
      return;
    }
    const version = route.picker.next();
    if (version === undefined) {
      req.resume();
      sendJson(res, 503, { error: `${model} has no live traffic (every weight is 0)`, model });
      return;
    }
    const upstreamPath = `${m[2] ?? '/'}${m[3] ?? ''}`;
    const liveKey = versionKey(model, version);
    this.enter(liveKey);
    let shadow = route.mirror && route.split.mirror && route.split.mirror.version !== version && route.mirror.take() ? route.split.mirror.version : null;

    readBody(req, MAX_BODY_BYTES).then(
      (body) => {
        let liveAnswer: Promise<unknown> = Promise.resolve(undefined);
        let answered: (v: unknown) => void = () => {};
        if (shadow !== null) {
          if (this.mirrorsInFlight >= MAX_MIRRORS_IN_FLIGHT) {
            this.metrics.mirrorSkip(model, shadow, 'busy');
            shadow = null;
          } else {
            liveAnswer = new Promise((r) => (answered = r));
          }
        }
        this.forwardLive(req, res, { model, version, upstreamPath, body, t0, wantBody: shadow !== null, answered, attempt: 0 });
        if (shadow !== null) this.forwardMirror(req, { model, version: shadow, upstreamPath, body, liveAnswer });
      },
      (err: Error & { status?: number }) => {
        this.leave(liveKey);
        if (!res.writableEnded && !req.destroyed) sendJson(res, err.status ?? 400, { error: err.message }, { 'x-model-version': version });
        else res.destroy();
      },
    );
  }

  /**
   * A request for one version, whatever the split: it reaches the version as a live request would
   * (same body limit, upstream timeout, in-flight count so a retire drains it) but is not live
   * traffic: it is neither recorded in the version's windows nor in the request metrics, so gates
   * never count it and the candidate serves no caller before the evaluation passed.
   */
  private handlePinned(req: http.IncomingMessage, res: http.ServerResponse, model: string, version: string, upstreamPath: string, t0: number): void {
    if (!isToken(req.headers[EVALUATION_HEADER], this.evaluationToken)) {
      req.resume();
      sendJson(res, 403, {
        error: `/${model}@${version}/ is modelctl's evaluation route: it needs the runtime's evaluation token in ${EVALUATION_HEADER}; live requests go to /${model}/<path>`,
        model,
        version,
      });
      return;
    }
    if (!this.backendOf(model, version)) {
      req.resume();
      sendJson(res, 404, { error: `${model}@${version} is not running on this runtime`, model, version });
      return;
    }
    this.enter(versionKey(model, version));
    readBody(req, MAX_BODY_BYTES).then(
      (body) => this.forwardLive(req, res, { model, version, upstreamPath, body, t0, wantBody: false, answered: () => {}, attempt: 0, pinned: true }),
      (err: Error & { status?: number }) => {
        this.leave(versionKey(model, version));
        if (!res.writableEnded && !req.destroyed) sendJson(res, err.status ?? 400, { error: err.message }, { 'x-model-version': version });
        else res.destroy();
      },
    );
  }

  private forwardLive(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    ctx: { model: string; version: string; upstreamPath: string; body: Buffer; t0: number; wantBody: boolean; answered: (v: unknown) => void; attempt: number; pinned?: boolean },
  ): void {
    const { model, version } = ctx;
    const key = versionKey(model, version);
    let finished = false;
    // `chunks`: the answer's body as copied (null: not copied or too large; undefined: no answer).
    const finish = (status: number, chunks?: Buffer[] | null) => {
      if (finished) return;
      finished = true;
      this.leave(key);
      if (ctx.pinned) return; // evaluation requests are not live traffic (handlePinned)
      const read = chunks !== undefined && status < 400 ? readAnswer(chunks, backend?.spec) : { answer: undefined, score: null, unreadable: false };
      ctx.answered(read.answer);
      this.metrics.record(model, version, {
        at: Date.now(),
        status,
        latencyMs: performance.now() - ctx.t0,
        score: read.score,
        agreed: null,
        role: 'live',
        unreadable: read.unreadable,
      });
    };
    const backend = this.backendOf(model, version);
    if (!backend) {
      sendJson(res, 503, { error: `${model}@${version} is not running`, model, version }, { 'x-model-version': version });
      finish(503);
      return;
    }
    const collect = !ctx.pinned && (ctx.wantBody || backend.spec.scoreField !== undefined || agreementOf(backend.spec) !== undefined);
    let gotResponse = false;
    const upstream = http.request({
      host: '127.0.0.1',
      port: backend.port,
      method: req.method,
      path: ctx.upstreamPath,
      headers: { ...forwardHeaders(req.headers), 'content-length': ctx.body.length },
      agent: this.liveAgent,
      timeout: UPSTREAM_TIMEOUT_MS,
    });
    // The caller went away: stop the upstream request too.
    res.on('close', () => {
      if (!res.writableFinished && !finished) {
        upstream.destroy();
        finish(499);
      }
    });
    upstream.on('response', (up) => {
      gotResponse = true;
      const status = up.statusCode ?? 502;
      res.writeHead(status, { ...responseHeaders(up.headers), 'x-model-version': version });
      const copy = collect ? copyUpTo(up) : null;
      up.on('error', () => {
        res.destroy();
        finish(502);
      });
      res.on('finish', () => (up.complete ? finish(status, copy ? copy() : undefined) : finish(502)));
      up.pipe(res);
    });
    upstream.on('timeout', () => upstream.destroy(Object.assign(new Error(`no answer within ${UPSTREAM_TIMEOUT_MS} ms`), { code: 'ETIMEDOUT' })));
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (gotResponse) return; // handled by the response's own error path
      // A keep-alive socket the backend closed just as we reused it: the request never reached the
      // backend, so sending it once more on a fresh connection is safe (Node's documented pattern).
      if (ctx.attempt === 0 && upstream.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
        finished = true; // the retry owns the in-flight count and the sample
        this.forwardLive(req, res, { ...ctx, attempt: 1 });
        return;
      }
      if (res.writableEnded || res.destroyed) return finish(499);
      const timedOut = err.code === 'ETIMEDOUT';
      sendJson(
        res,
        timedOut ? 504 : 502,
        { error: `${model}@${version} ${timedOut ? 'did not answer in time' : `is unreachable: ${err.code ?? err.message}`}`, model, version },
        { 'x-model-version': version },
      );
      finish(timedOut ? 504 : 502);
    });
    upstream.end(ctx.body);
  }

  private forwardMirror(req: http.IncomingMessage, ctx: { model: string; version: string; upstreamPath: string; body: Buffer; liveAnswer: Promise<unknown> }): void {
    const { model, version } = ctx;
    const key = versionKey(model, version);
    const t0 = performance.now();
    const role: Role = 'shadow';
    this.enter(key);
    this.mirrorsInFlight++;
    let done = false;
    const complete = (status: number, chunks?: Buffer[] | null) => {
      if (done) return;
      done = true;
      this.mirrorsInFlight--;
      this.leave(key);
      const latencyMs = performance.now() - t0;
      // serve.agreement, or serve.agreementField as equality of that one field (src/gates/answers.ts).
      const comparison = agreementOf(backend?.spec);
      const read = chunks !== undefined && status < 400 ? readAnswer(chunks, backend?.spec) : { answer: undefined, score: null, unreadable: false };
      const answer = read.answer;
      const record = (agreed: boolean | null) =>
        this.metrics.record(model, version, { at: Date.now(), status, latencyMs, score: read.score, agreed, role, unreadable: read.unreadable });
      if (status >= 400 || !comparison || answer === undefined) return record(null);
      // Compare with the live answer once it exists (the live request has its own timeout).
      void ctx.liveAnswer.then((live) => {
        // Unreadable on either side: not compared (never counted as agreeing).
        const c = compareAnswers(comparison, answer, live);
        record(c.outcome === 'unreadable' ? null : c.outcome === 'agree');
      });
    };
    const backend = this.backendOf(model, version);
    if (!backend) return complete(503);
    const upstream = http.request({
      host: '127.0.0.1',
      port: backend.port,
      method: req.method,
      path: ctx.upstreamPath,
      headers: { ...forwardHeaders(req.headers), 'content-length': ctx.body.length, 'x-modelctl-shadow': '1' },
      agent: this.mirrorAgent,
      timeout: MIRROR_TIMEOUT_MS,
    });
    upstream.on('response', (up) => {
      const status = up.statusCode ?? 502;
      const copy = copyUpTo(up);
      up.on('end', () => complete(status, copy()));
      up.on('error', () => complete(502));
      up.on('aborted', () => complete(502));
    });
    upstream.on('timeout', () => upstream.destroy(Object.assign(new Error('mirror timeout'), { code: 'ETIMEDOUT' })));
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ECONNREFUSED' && err.code !== 'ETIMEDOUT') this.log(`mirror to ${key} failed: ${err.code ?? err.message}`);
      complete(err.code === 'ETIMEDOUT' ? 504 : 502);
    });
    upstream.end(ctx.body);
  }
}
