/**
 * The bench's open-loop HTTP load generator, run as its own process by bench/run.ts (measures 6
 * and 7): `node dist/bench/load.js '<LoadSpec as JSON>'`. It prints one LoadResult as JSON on
 * stdout when it is done: after `durationMs`, or as soon as its stdin closes (the parent's "stop").
 *
 * Why not `runLoad` from src/targets/local/load.ts: the bench needs per-request wall-clock
 * timestamps (to see, from the client's side, the moment after which every answer comes from the
 * stable version), the generator's own lag (did it keep to the schedule, or was it the
 * bottleneck?), its CPU time, and a process of its own (so the bench's child-process bookkeeping
 * never delays a request); and the bench should not import the working tree's dist/src, which
 * other people rebuild while it runs.
 *
 * Open loop: request i is due at start + i/rps whatever earlier answers do. A request due while
 * `maxInFlight` are outstanding is skipped and counted (bounded load). Keep-alive sockets, at most
 * `maxInFlight` of them. Loopback URLs only.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { DEFAULT_TEXTS } from '../src/targets/local/load.js';

export interface LoadSpec {
  url: string;
  rps: number;
  durationMs: number;
  maxInFlight: number;
  /** Keep one [sentAt, doneAt, status, version] row per request (epoch ms, Date.now()). */
  samples: boolean;
  /** Requests sent (and answered) before the measured window starts; not counted anywhere. */
  warmupMs?: number;
  /** Also return every 2xx latency (ms, µs precision), to pool several runs. */
  latencies?: boolean;
}

/** [sentAt, doneAt, status (0 = failed connection), index into `versions`] */
export type Sample = [number, number, number, number];

export interface LoadResult {
  url: string;
  rps: number;
  /** Epoch ms when the measured window started, and how long requests were sent for. */
  startedAt: number;
  sendMs: number;
  /** From the start of the window to the last answer. */
  lastAnswerMs: number;
  due: number;
  sent: number;
  skipped: number;
  answered: number;
  /** 2xx answers. */
  ok: number;
  statuses: Record<string, number>;
  /** Latency of 2xx answers, from the request being written to the answer's end (ms). */
  latencyMs: Quantiles;
  /** How late requests left compared with their schedule (ms): the generator's own bottleneck. */
  lagMs: Quantiles;
  /** CPU time of this process over the window (user + system, ms). */
  cpuMs: number;
  versions: string[];
  samples?: Sample[];
  latencies?: number[];
}

export interface Quantiles {
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
}

// The same review sentences `modelctl local load` sends (a pure module: no CLI or runtime state).
const BODIES = DEFAULT_TEXTS.map((text) => Buffer.from(JSON.stringify({ text })));
const REQUEST_TIMEOUT_MS = 10_000;
const MAX_RPS = 5000;
const MAX_DURATION_MS = 5 * 60_000;

export function quantiles(values: number[]): Quantiles {
  if (values.length === 0) return { p50: null, p90: null, p99: null, max: null };
  const s = Float64Array.from(values).sort();
  const q = (p: number) => Math.round(s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]! * 1000) / 1000;
  return { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: q(1) };
}

export async function generate(spec: LoadSpec, stop: AbortSignal): Promise<LoadResult> {
  const u = new URL(spec.url);
  if (u.protocol !== 'http:' || u.hostname !== '127.0.0.1') throw new Error(`load goes to http://127.0.0.1 only, not ${spec.url}`);
  if (!(spec.rps > 0 && spec.rps <= MAX_RPS) || !(spec.durationMs > 0 && spec.durationMs <= MAX_DURATION_MS)) throw new Error('rps or duration out of bounds');
  const agent = new http.Agent({ keepAlive: true, maxSockets: spec.maxInFlight });
  const versions: string[] = [];
  const versionIndex = new Map<string, number>();
  const indexOf = (v: string) => {
    let i = versionIndex.get(v);
    if (i === undefined) {
      i = versions.length;
      versions.push(v);
      versionIndex.set(v, i);
    }
    return i;
  };

  let wake: (() => void) | undefined;
  stop.addEventListener('abort', () => wake?.(), { once: true });
  let inFlight = 0;
  let drained: (() => void) | undefined;
  const fire = (i: number, onDone: (sentAt: number, status: number, version: string, ms: number) => void) => {
    const body = BODIES[i % BODIES.length]!;
    const sentAt = Date.now();
    const t0 = performance.now();
    inFlight++;
    let settled = false;
    const done = (status: number, version: string) => {
      if (settled) return;
      settled = true;
      inFlight--;
      onDone(sentAt, status, version, performance.now() - t0);
      if (inFlight === 0) drained?.();
    };
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: `${u.pathname}${u.search}`,
        method: 'POST',
        agent,
        timeout: REQUEST_TIMEOUT_MS,
        headers: { 'content-type': 'application/json', 'content-length': body.length },
      },
      (res) => {
        res.resume();
        const version = String(res.headers['x-model-version'] ?? '');
        res.on('end', () => done(res.statusCode ?? 0, version));
        res.on('error', () => done(0, version));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => done(0, ''));
    req.end(body);
  };

  /** One open-loop phase; `record` false for the warm-up. */
  const phase = async (durationMs: number, record: boolean) => {
    const total = Math.max(1, Math.round((spec.rps * durationMs) / 1000));
    const latencies: number[] = [];
    const lags: number[] = [];
    const samples: Sample[] = [];
    const statuses: Record<string, number> = {};
    let sent = 0;
    let skipped = 0;
    let answered = 0;
    let ok = 0;
    let lastDone = 0;
    const cpu0 = process.cpuUsage();
    const startedAt = Date.now();
    const start = performance.now();
    let i = 0;
    while (i < total && !stop.aborted) {
      const now = performance.now();
      while (i < total && start + (i * 1000) / spec.rps <= now) {
        const due = start + (i * 1000) / spec.rps;
        i++;
        if (inFlight >= spec.maxInFlight) {
          skipped++;
          continue;
        }
        sent++;
        if (record) lags.push(performance.now() - due);
        fire(i, (sentAt, status, version, ms) => {
          if (!record) return;
          answered++;
          lastDone = performance.now() - start;
          const k = status === 0 ? 'failed' : String(status);
          statuses[k] = (statuses[k] ?? 0) + 1;
          if (status >= 200 && status < 300) {
            ok++;
            latencies.push(ms);
          }
          if (spec.samples) samples.push([sentAt, Date.now(), status, indexOf(version)]);
        });
      }
      if (i < total) {
        const wait = Math.max(0, Math.min(5, start + (i * 1000) / spec.rps - performance.now()));
        await new Promise<void>((r) => {
          const t = setTimeout(r, wait);
          wake = () => {
            clearTimeout(t);
            r();
          };
        });
        wake = undefined;
      }
    }
    const sendMs = performance.now() - start;
    if (inFlight > 0) await new Promise<void>((r) => (drained = r));
    drained = undefined;
    const cpu = process.cpuUsage(cpu0);
    return { total: i, sent, skipped, answered, ok, statuses, latencies, lags, samples, startedAt, sendMs, lastDone, cpuMs: (cpu.user + cpu.system) / 1000 };
  };

  try {
    if (spec.warmupMs) await phase(spec.warmupMs, false);
    const p = await phase(spec.durationMs, true);
    return {
      url: spec.url,
      rps: spec.rps,
      startedAt: p.startedAt,
      sendMs: Math.round(p.sendMs),
      lastAnswerMs: Math.round(p.lastDone),
      due: p.total,
      sent: p.sent,
      skipped: p.skipped,
      answered: p.answered,
      ok: p.ok,
      statuses: p.statuses,
      latencyMs: quantiles(p.latencies),
      lagMs: quantiles(p.lags),
      cpuMs: Math.round(p.cpuMs),
      versions,
      ...(spec.samples ? { samples: p.samples } : {}),
      ...(spec.latencies ? { latencies: p.latencies.map((ms) => Math.round(ms * 1000) / 1000) } : {}),
    };
  } finally {
    agent.destroy();
  }
}

// Run as a process: the spec in argv[2]; stdin closing means "stop now".
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
  const stop = new AbortController();
  process.stdin.on('end', () => stop.abort());
  process.stdin.on('error', () => stop.abort());
  process.stdin.resume();
  try {
    const result = await generate(spec, stop.signal);
    process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
  } catch (err) {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  }
}
