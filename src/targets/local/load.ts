import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { UsageError } from '../../core/errors.js';
import { quantile } from './window.js';

/**
 * A small open-loop load generator for the local router (`modelctl local load`, and the tests):
 * request i is sent at start + i/rps whatever the previous answers do (a closed loop would slow
 * down with a slow version and hide its latency). Bounded: at most MAX_RPS, MAX_DURATION_MS,
 * MAX_REQUESTS and `maxInFlight` requests at once (a request due while that many are in flight is
 * skipped and counted); loopback URLs only.
 */
export const MAX_RPS = 2000;
export const MAX_DURATION_MS = 10 * 60_000;
export const MAX_REQUESTS = 200_000;
const REQUEST_TIMEOUT_MS = 30_000;

export const DEFAULT_TEXTS = [
  'I loved every minute of it, wonderful acting.',
  'The food was cold and the waiter was rude.',
  'Great value for money, would buy again.',
  'A boring film and a waste of time.',
  'The room was clean and the staff were friendly.',
  'It broke after two days, awful quality.',
  'The movie was not good.',
  'Excellent service, fast and friendly.',
];

export interface LoadOptions {
  /** Router base URL, e.g. http://127.0.0.1:8700. */
  url: string;
  model: string;
  /** Path below the model, e.g. /predict. */
  path?: string;
  rps: number;
  durationMs: number;
  texts?: string[];
  maxInFlight?: number;
  /** Called about once a second with the requests answered so far. */
  onTick?: (answered: number, total: number) => void;
  /** Stop sending early (the report then covers what was sent; requests in flight are awaited). */
  signal?: AbortSignal;
}

export interface VersionLoadStats {
  version: string;
  requests: number;
  errors: number;
  p50Ms: number | null;
  p99Ms: number | null;
}

export interface LoadReport {
  model: string;
  target: string;
  rps: number;
  /** How long requests were sent for (less than asked when stopped by the signal). */
  durationMs: number;
  stoppedEarly: boolean;
  sent: number;
  answered: number;
  /** Due while `maxInFlight` requests were outstanding: not sent. */
  skipped: number;
  /** 5xx answers and failed connections. */
  errors: number;
  statuses: Record<string, number>;
  latencyMs: { p50: number | null; p99: number | null; max: number | null };
  versions: VersionLoadStats[];
}

export function assertLoopback(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`"${url}" is not a URL`);
  }
  if (u.protocol !== 'http:' || !['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) {
    throw new UsageError(`load is only sent to the local runtime on loopback, not to ${u.host}`, { hint: 'start the runtime with `modelctl local up`' });
  }
  return u;
}

export function checkLoadBounds(rps: number, durationMs: number): void {
  if (!(rps > 0 && rps <= MAX_RPS)) throw new UsageError(`--rps ${rps}: expected more than 0 and at most ${MAX_RPS}`);
  if (!(durationMs > 0 && durationMs <= MAX_DURATION_MS)) throw new UsageError(`--duration: expected more than 0 and at most ${MAX_DURATION_MS / 60_000} minutes`);
  if (Math.ceil((rps * durationMs) / 1000) > MAX_REQUESTS) {
    throw new UsageError(`${rps} rps for ${durationMs / 1000} s is more than ${MAX_REQUESTS} requests`, { hint: 'lower --rps or --duration' });
  }
}

interface Outcome {
  status: number;
  version: string;
  latencyMs: number;
}

function send(agent: http.Agent, base: URL, path: string, body: string): Promise<Outcome> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: base.hostname.replace(/^\[|\]$/g, ''),
        port: base.port || 80,
        method: 'POST',
        path,
        agent,
        timeout: REQUEST_TIMEOUT_MS,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        const done = (status: number) =>
          resolve({ status, version: String(res.headers['x-model-version'] ?? '(none)'), latencyMs: performance.now() - t0 });
        res.on('end', () => done(res.statusCode ?? 0));
        res.on('error', () => done(0));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, version: '(none)', latencyMs: performance.now() - t0 }));
    req.end(body);
  });
}

export async function runLoad(opts: LoadOptions): Promise<LoadReport> {
  const base = assertLoopback(opts.url);
  checkLoadBounds(opts.rps, opts.durationMs);
  const texts = opts.texts?.length ? opts.texts : DEFAULT_TEXTS;
  const maxInFlight = opts.maxInFlight ?? 256;
  const path = `/${opts.model}${opts.path ?? '/predict'}`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: maxInFlight });
  const total = Math.max(1, Math.round((opts.rps * opts.durationMs) / 1000));
  const outcomes: Outcome[] = [];
  const pending = new Set<Promise<void>>();
  let skipped = 0;
  let lastTick = performance.now();
  const start = performance.now();
  let i = 0;
  let wake: (() => void) | undefined;
  const onAbort = () => wake?.();
  opts.signal?.addEventListener('abort', onAbort);
  try {
    while (i < total && !opts.signal?.aborted) {
      const now = performance.now();
      while (i < total && start + (i * 1000) / opts.rps <= now) {
        const body = JSON.stringify({ text: texts[i % texts.length] });
        i++;
        if (pending.size >= maxInFlight) {
          skipped++;
          continue;
        }
        const p: Promise<void> = send(agent, base, path, body).then((o) => {
          outcomes.push(o);
          pending.delete(p);
        });
        pending.add(p);
      }
      if (opts.onTick && now - lastTick >= 1000) {
        lastTick = now;
        opts.onTick(outcomes.length, total);
      }
      if (i < total) {
        await new Promise<void>((r) => {
          const timer = setTimeout(r, Math.max(0, Math.min(10, start + (i * 1000) / opts.rps - performance.now())));
          wake = () => {
            clearTimeout(timer);
            r();
          };
        });
      }
    }
    await Promise.all(pending);
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    agent.destroy();
  }
  const stoppedEarly = i < total;
  const elapsed = stoppedEarly ? Math.round(performance.now() - start) : opts.durationMs;
  return summarize({ ...opts, durationMs: elapsed }, base.origin, outcomes, skipped, i, stoppedEarly);
}

function summarize(opts: LoadOptions, target: string, outcomes: Outcome[], skipped: number, due: number, stoppedEarly: boolean): LoadReport {
  // Anything but a success is an error for whoever sends the load: a 404 (no such model) or a 400
  // from the model counts as much as a 5xx or a failed connection.
  const isErr = (o: Outcome) => o.status === 0 || o.status >= 400;
  const statuses: Record<string, number> = {};
  for (const o of outcomes) {
    const k = o.status === 0 ? 'failed' : String(o.status);
    statuses[k] = (statuses[k] ?? 0) + 1;
  }
  const pct = (list: Outcome[], q: number) => {
    const sorted = list.map((o) => o.latencyMs).sort((a, b) => a - b);
    return sorted.length ? Math.round(quantile(sorted, q) * 10) / 10 : null;
  };
  const byVersion = new Map<string, Outcome[]>();
  for (const o of outcomes) {
    const list = byVersion.get(o.version);
    if (list) list.push(o);
    else byVersion.set(o.version, [o]);
  }
  return {
    model: opts.model,
    target,
    rps: opts.rps,
    durationMs: opts.durationMs,
    stoppedEarly,
    sent: due - skipped,
    answered: outcomes.length,
    skipped,
    errors: outcomes.filter(isErr).length,
    statuses,
    latencyMs: { p50: pct(outcomes, 0.5), p99: pct(outcomes, 0.99), max: pct(outcomes, 1) },
    versions: [...byVersion]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([version, list]) => ({ version, requests: list.length, errors: list.filter(isErr).length, p50Ms: pct(list, 0.5), p99Ms: pct(list, 0.99) })),
  };
}
