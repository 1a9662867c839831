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
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants as fsConstants, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort } from './prometheus.js';

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

function findBinary(name: string): string | undefined {
  for (const d of [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin']) {
    if (!d) continue;
    try {
      accessSync(join(d, name), fsConstants.X_OK);
      return join(d, name);
    } catch {
      /* next */
    }
  }
  return undefined;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function sweepStaleDirs(): void {
  let entries: string[] = [];
  try {
    entries = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const name of entries.filter((n) => n.startsWith(DIR_PREFIX))) {
    const dir = join(tmpdir(), name);
    try {
      const owner = Number(readFileSync(join(dir, 'owner.pid'), 'utf8').trim());
      if (Number.isInteger(owner) && owner > 0 && !pidAlive(owner)) rmSync(dir, { recursive: true, force: true });
    } catch {
      /* being created, or not ours to judge */
    }
  }
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines - 1).join('\n').trimEnd();
  } catch {
    return `(no ${file})`;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function startOnce(bin: string, timeoutMs: number): Promise<PushgatewayHandle> {
  sweepStaleDirs();
  const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
  writeFileSync(join(dir, 'owner.pid'), `${process.pid}\n`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const logFile = join(dir, 'pushgateway.log');
  const out = openSync(logFile, 'a');
  const args = [`--web.listen-address=127.0.0.1:${port}`, `--persistence.file=${join(dir, 'pushgateway.data')}`, '--log.level=warn'];
  const setpriv = findBinary('setpriv');
  const [cmd, argv] = setpriv ? [setpriv, ['--pdeathsig', 'KILL', '--', bin, ...args]] : [bin, args];
  const child: ChildProcess = spawn(cmd, argv, { cwd: dir, detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  child.unref();
  let exitInfo: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = signal ? `killed by ${signal}` : `exited with code ${code}`;
      resolve();
    });
    child.once('error', (err) => {
      exitInfo = `failed to spawn: ${err.message}`;
      resolve();
    });
  });
  const kill = () => {
    if (exitInfo === undefined && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  };
  const exitHook = () => {
    kill();
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', exitHook);
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      process.off('exit', exitHook);
      kill();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise<void>((r) => (timer = setTimeout(r, 10_000)))]);
      clearTimeout(timer);
      await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    })());
  const metrics = async (): Promise<string> => {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) });
    if (!res.ok) throw new Error(`GET ${url}/metrics: HTTP ${res.status}`);
    return res.text();
  };
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (exitInfo !== undefined) throw new PushgatewayStartError(`pushgateway ${exitInfo} during start-up\n--- pushgateway.log ---\n${tail(logFile)}`);
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
