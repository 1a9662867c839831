import { timingSafeEqual } from 'node:crypto';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { bundleName } from '../../bundle/spec.js';
import { isExactSemver } from '../../bundle/semver.js';
import type { TrafficSplit } from '../../core/model.js';
import { normalizeSplit, splitProblems } from './balance.js';
import type { RuntimeMetrics } from './metrics.js';
import type { LocalPaths } from './paths.js';
import type { Router } from './router.js';
import { loadServeSpec } from './serve-spec.js';
import type { StateStore, VersionRecord } from './state.js';
import type { Supervisor } from './supervisor.js';

/**
 * The admin API: JSON over HTTP on 127.0.0.1:<adminPort>. Everything but /v1/health and /metrics
 * needs `Authorization: Bearer <token>` (the token is in runtime.json, readable by the home's owner
 * only): the API starts processes, so another local user must not be able to drive it.
 *
 *   GET    /v1/health                                  liveness (no auth)
 *   GET    /metrics                                    Prometheus text (no auth)
 *   GET    /v1/state                                   runtime, versions (pid, port, ready…), traffic per model
 *   POST   /v1/versions                                start {model, version, digest, bundleDir[, restart]}
 *   GET    /v1/versions/:model/:version                one version
 *   GET    /v1/versions/:model/:version/ready?timeoutMs=   wait until ready: 200, or 503 with the reason
 *   GET    /v1/versions/:model/:version/health         live readiness probe {healthy}
 *   DELETE /v1/versions/:model/:version?drainTimeoutMs=    retire: refuse if it has traffic, drain, stop
 *   GET    /v1/traffic                                 every model's split
 *   GET    /v1/traffic/:model                          one model's split
 *   PUT    /v1/traffic/:model                          apply a TrafficSplit (answers once the router serves it)
 *   GET    /v1/window?model=&version=&since=[&until=]  VersionWindow of requests that ended in [since, until|now]
 *   PUT    /v1/telemetry/:model                        modelctl's rollout metrics of a model (prom-client JSON), shown in /metrics
 *   POST   /v1/shutdown                                {forget?}: stop every version and the daemon
 *
 * Bad input is a 4xx with {"error": "...", ...}: 400 invalid, 401 no token, 404 unknown, 409 refused
 * in the current state (still has traffic, not ready, other digest), 503 not ready (ready endpoint).
 */

export interface AdminContext {
  token: string;
  paths: LocalPaths;
  runtime(): { pid: number; port: number | null; adminPort: number | null; startedAt: string };
  store: StateStore;
  supervisor: Supervisor;
  router: Router;
  metrics: RuntimeMetrics;
  shutdown(forget: boolean): void;
  log(m: string): void;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly details: Record<string, unknown> = {}) {
    super(message);
  }
}

const MAX_JSON_BYTES = 1024 * 1024;
const MAX_WAIT_MS = 10 * 60_000;
const DEFAULT_DRAIN_MS = 30_000;

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_JSON_BYTES) throw new HttpError(413, `body larger than ${MAX_JSON_BYTES} bytes`);
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `body is not JSON: ${(err as Error).message}`);
  }
}

function checkModel(model: string): string {
  if (!bundleName.safeParse(model).success) throw new HttpError(400, `"${model}" is not a model name (a DNS-1123 label)`);
  return model;
}

function checkVersion(version: string): string {
  if (!isExactSemver(version)) throw new HttpError(400, `"${version}" is not a semver version`);
  return version;
}

function intParam(url: URL, name: string, fallback: number | undefined, max = Number.MAX_SAFE_INTEGER): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') {
    if (fallback === undefined) throw new HttpError(400, `query parameter "${name}" is required`);
    return fallback;
  }
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new HttpError(400, `query parameter "${name}" must be a non-negative number, got "${raw}"`);
  return Math.min(n, max);
}

function authorized(req: http.IncomingMessage, token: string): boolean {
  const given = Buffer.from(/^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '');
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

export function createAdminServer(ctx: AdminContext): http.Server {
  const { supervisor, router, store, metrics } = ctx;

  const versionOr404 = (model: string, version: string) => {
    const proc = supervisor.get(checkModel(model), checkVersion(version));
    if (!proc) throw new HttpError(404, `${model}@${version} is not deployed on this runtime`, { model, version });
    return proc;
  };

  async function startVersion(body: unknown) {
    if (typeof body !== 'object' || body === null) throw new HttpError(400, 'expected {model, version, digest, bundleDir}');
    const b = body as Record<string, unknown>;
    for (const f of ['model', 'version', 'digest', 'bundleDir']) if (typeof b[f] !== 'string') throw new HttpError(400, `${f}: expected a string`);
    const rec: VersionRecord = {
      model: checkModel(b.model as string),
      version: checkVersion(b.version as string),
      digest: b.digest as string,
      bundleDir: path.resolve(b.bundleDir as string),
    };
    if (!/^sha256:[0-9a-f]{64}$/.test(rec.digest)) throw new HttpError(400, 'digest: expected sha256:<64 hex digits>');
    // Only bundles pulled (verified) into this home may run: the API must not become "run any directory".
    if (!rec.bundleDir.startsWith(ctx.paths.bundles + path.sep)) {
      throw new HttpError(400, `bundleDir must be inside ${ctx.paths.bundles} (where verified bundles are pulled)`);
    }
    if (!(await stat(rec.bundleDir).catch(() => undefined))?.isDirectory()) throw new HttpError(400, `bundleDir ${rec.bundleDir} is not a directory`);
    const existing = supervisor.get(rec.model, rec.version);
    if (existing && existing.rec.digest !== rec.digest && existing.status !== 'stopped') {
      throw new HttpError(409, `${rec.model}@${rec.version} already runs with digest ${existing.rec.digest}, not ${rec.digest}`, {
        running: existing.rec.digest,
        requested: rec.digest,
      });
    }
    let spec;
    try {
      spec = await loadServeSpec(rec.bundleDir);
    } catch (err) {
      throw new HttpError(400, (err as Error).message, { hint: (err as { hint?: string }).hint });
    }
    await store.upsertVersion(rec); // recorded first: a daemon killed right now restarts it
    const { proc, started } = await supervisor.ensure(rec, spec, { restart: b.restart === true });
    ctx.log(`${proc.key} ${started ? 'started' : 'already running'} from ${rec.bundleDir}`);
    return { ...proc.info(), started };
  }

  async function setTraffic(model: string, body: unknown) {
    checkModel(model);
    const problems = splitProblems(body);
    if (problems.length) throw new HttpError(400, `invalid traffic split for ${model}: ${problems.join('; ')}`, { problems });
    const split = normalizeSplit(body as TrafficSplit);
    for (const [version, w] of Object.entries(split.weights)) {
      const proc = supervisor.get(model, version);
      if (!proc) throw new HttpError(409, `${model}@${version} gets ${w}% but is not deployed on this runtime`, { version });
      if (proc.status !== 'ready') throw new HttpError(409, `${model}@${version} gets ${w}% but is not ready: ${proc.reason()}`, { version, status: proc.status });
    }
    if (split.mirror) {
      const proc = supervisor.get(model, split.mirror.version);
      if (!proc || proc.status === 'stopping' || proc.status === 'stopped') {
        throw new HttpError(409, `mirror ${model}@${split.mirror.version} is not deployed on this runtime`, { version: split.mirror.version });
      }
    }
    await store.setTraffic(model, split); // recorded before it is applied
    router.setTraffic(model, split);
    ctx.log(`traffic of ${model}: ${JSON.stringify(split)}`);
    return { model, traffic: split };
  }

  async function retire(model: string, version: string, drainMs: number) {
    checkModel(model);
    checkVersion(version);
    const split = router.traffic()[model];
    const weight = split?.weights[version] ?? 0;
    if (weight > 0) {
      throw new HttpError(409, `${model}@${version} still gets ${weight}% of live traffic`, { hint: 'move its traffic to another version first', weight });
    }
    if (split?.mirror?.version === version) {
      throw new HttpError(409, `${model}@${version} still receives ${split.mirror.percent}% mirrored traffic`, { hint: 'remove the mirror first' });
    }
    const proc = supervisor.get(model, version);
    const inState = store.state.versions.some((v) => v.model === model && v.version === version);
    if (!proc && !inState) return { model, version, retired: false, reason: 'not deployed' };
    await store.removeVersion(model, version); // a daemon killed during the drain will not bring it back
    const drained = await router.waitDrained(model, version, drainMs);
    await supervisor.remove(model, version);
    ctx.log(`${model}@${version} retired${drained ? '' : ` (requests still in flight after ${drainMs} ms were cut)`}`);
    return { model, version, retired: true, drained };
  }

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const method = req.method ?? 'GET';
    const is = (m: string, n: number, ...prefix: string[]) => method === m && parts.length === n && prefix.every((p, i) => parts[i] === p);

    if (is('GET', 2, 'v1', 'health')) return send(res, 200, { ok: true, ...ctx.runtime() });
    if (is('GET', 1, 'metrics')) {
      const { contentType, body } = await metrics.text();
      res.writeHead(200, { 'content-type': contentType });
      res.end(body);
      return;
    }
    if (!authorized(req, ctx.token)) throw new HttpError(401, 'missing or wrong bearer token (it is in runtime.json of the local runtime)');

    if (is('GET', 2, 'v1', 'state')) {
      return send(res, 200, { ...ctx.runtime(), versions: supervisor.list().map((v) => v.info()), traffic: router.traffic() });
    }
    if (is('POST', 2, 'v1', 'versions')) return send(res, 202, await startVersion(await readJson(req)));
    if (parts[0] === 'v1' && parts[1] === 'versions' && parts.length >= 4) {
      const [, , model, version, action] = parts as [string, string, string, string, string?];
      if (method === 'GET' && parts.length === 4) return send(res, 200, versionOr404(model, version).info());
      if (method === 'GET' && action === 'ready' && parts.length === 5) {
        const proc = versionOr404(model, version);
        const timeoutMs = intParam(url, 'timeoutMs', 0, MAX_WAIT_MS);
        try {
          await proc.waitReady(timeoutMs);
          return send(res, 200, { ...proc.info(), ready: true });
        } catch (err) {
          return send(res, 503, { ...proc.info(), ready: false, error: (err as Error).message });
        }
      }
      if (method === 'GET' && action === 'health' && parts.length === 5) {
        const proc = versionOr404(model, version);
        return send(res, 200, { model, version, healthy: await proc.healthy(), status: proc.status });
      }
      if (method === 'DELETE' && parts.length === 4) {
        return send(res, 200, await retire(model, version, intParam(url, 'drainTimeoutMs', DEFAULT_DRAIN_MS, MAX_WAIT_MS)));
      }
    }
    if (is('GET', 2, 'v1', 'traffic')) return send(res, 200, router.traffic());
    if (is('GET', 3, 'v1', 'traffic')) {
      const model = checkModel(parts[2]!);
      return send(res, 200, { model, traffic: router.traffic()[model] ?? { weights: {}, mirror: null } });
    }
    if (is('PUT', 3, 'v1', 'traffic')) return send(res, 200, await setTraffic(parts[2]!, await readJson(req)));
    if (is('GET', 2, 'v1', 'window')) {
      const model = checkModel(url.searchParams.get('model') ?? '');
      const version = checkVersion(url.searchParams.get('version') ?? '');
      const since = intParam(url, 'since', undefined);
      const until = intParam(url, 'until', Date.now());
      return send(res, 200, { model, version, since, until, ...metrics.window(model, version, since, until) });
    }
    if (is('PUT', 3, 'v1', 'telemetry')) {
      const model = checkModel(parts[2]!);
      try {
        metrics.setRollout(model, (await readJson(req)) as never);
      } catch (err) {
        throw new HttpError(400, (err as Error).message);
      }
      return send(res, 200, { model, stored: true });
    }
    if (is('POST', 2, 'v1', 'shutdown')) {
      const body = (await readJson(req)) as { forget?: unknown };
      send(res, 202, { stopping: true, pid: process.pid });
      res.on('finish', () => ctx.shutdown(body?.forget === true));
      return;
    }
    throw new HttpError(404, `no route ${method} ${url.pathname}`);
  }

  const server = http.createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) ctx.log(`admin ${req.method} ${req.url} failed: ${(err as Error).stack ?? String(err)}`);
      if (res.headersSent) return void res.destroy();
      send(res, status, { error: (err as Error).message, ...(err instanceof HttpError ? err.details : {}) });
    });
  });
  // Long polls (ready?timeoutMs=…) must not be cut by the default 5-minute request timeout.
  server.requestTimeout = MAX_WAIT_MS + 60_000;
  return server;
}

export function listenAdmin(server: http.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}
