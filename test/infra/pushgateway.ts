/**
 * A real Prometheus Pushgateway for integration tests (Debian's `prometheus-pushgateway` 1.5,
 * installed by `.ci/install-debian.sh`, started by nothing), bound to 127.0.0.1 on a free port,
 * persisting to a throw-away file in a temp dir.
 *
 *   const pgw = await startPushgateway();
 *   … modelctl deploy … --pushgateway pgw.url …
 *   const text = await pgw.metrics();          // GET /metrics, Prometheus text format
 *   await pgw.stop();
 *
 * Tests never skip: a missing binary is an error telling to run the install script.
 *
 * Lifetime (as test/infra/prometheus.ts): a child of this Node process in its own process group,
 * wrapped in `setpriv --pdeathsig KILL` so the kernel kills it if this process dies; an `exit`
 * hook kills it if the test forgets `stop()`. `stop()` SIGKILLs it, waits until it is reaped and
 * removes the temp dir. Temp dirs of dead owners are swept at the next start.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './prometheus.js';
import { findBinary, spawnService, tail } from './service.js';
import { sweepStaleDirs } from './temp-dirs.js';

const DIR_PREFIX = 'modelctl-pgw-';
const BINARY = 'prometheus-pushgateway';

export class PushgatewayStartError extends Error {
  override name = 'PushgatewayStartError';
}

export interface PushgatewayHandle {
  /** e.g. http://127.0.0.1:41234 */
  url: string;
  dir: string;
  /** GET /metrics (every pushed group, with its grouping labels, plus the gateway's own metrics). */
  metrics(): Promise<string>;
  stop(): Promise<void>;
}





const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function startOnce(bin: string, timeoutMs: number): Promise<PushgatewayHandle> {
  sweepStaleDirs(DIR_PREFIX);
  const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
  writeFileSync(join(dir, 'owner.pid'), `${process.pid}\n`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const logFile = join(dir, 'pushgateway.log');
  const args = [`--web.listen-address=127.0.0.1:${port}`, `--persistence.file=${join(dir, 'pushgateway.data')}`, '--log.level=warn'];
  const proc = spawnService(bin, args, dir, logFile);
  const stop = proc.stop;
  const metrics = async (): Promise<string> => {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) });
    if (!res.ok) throw new Error(`GET ${url}/metrics: HTTP ${res.status}`);
    return res.text();
  };
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (proc.exitInfo() !== undefined) throw new PushgatewayStartError(`pushgateway ${proc.exitInfo()} during start-up\n--- pushgateway.log ---\n${tail(logFile)}`);
      const status = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1_000) }).then(
        (r) => r.status,
        () => 0,
      );
      if (status === 200) return { url, dir, metrics, stop };
      if (Date.now() > deadline) throw new PushgatewayStartError(`pushgateway not ready on ${url} within ${timeoutMs} ms\n${tail(logFile)}`);
      await sleep(50);
    }
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Start a fresh Pushgateway on 127.0.0.1 (retries once with a new port if it dies at start-up, e.g. a port race). */
export async function startPushgateway(opts: { timeoutMs?: number } = {}): Promise<PushgatewayHandle> {
  const bin = findBinary(BINARY);
  if (!bin) throw new PushgatewayStartError(`the ${BINARY} binary is not installed; the telemetry integration test needs it: sudo bash .ci/install-debian.sh`);
  const timeoutMs = opts.timeoutMs ?? 15_000;
  try {
    return await startOnce(bin, timeoutMs);
  } catch (err) {
    if (!(err instanceof PushgatewayStartError && /during start-up/.test(err.message))) throw err;
    return startOnce(bin, timeoutMs);
  }
}

/**
 * The value of the one series of `name` whose labels include all of `labels` (any order), from
 * Prometheus text format; undefined when there is none. Throws when several match.
 */
export function sampleValue(text: string, name: string, labels: Record<string, string>): number | undefined {
  const hits: number[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have[k!] = v!;
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) hits.push(Number(m[3]));
  }
  if (hits.length > 1) throw new Error(`${hits.length} series of ${name} match ${JSON.stringify(labels)}`);
  return hits[0];
}
