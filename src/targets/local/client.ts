import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { ConflictError, ModelctlError, NotFoundError, UnavailableError, UsageError, ExitCode } from '../../core/errors.js';
import type { TrafficSplit } from '../../core/model.js';
import { localPaths, rotateIfLarge, type LocalPaths } from './paths.js';
import { emptyState, readJson, readState, writeJsonAtomic, type RuntimeInfo } from './state.js';
import type { VersionInfo } from './supervisor.js';
import type { LocalWindow } from './window.js';
import { processAlive } from '../../util/process.js';

/** Compiled next to this file: dist/src/targets/local/daemon.js. */
export const DAEMON_SCRIPT = fileURLToPath(new URL('./daemon.js', import.meta.url));
const EXIT_ALREADY_RUNNING = 3; // daemon.ts (not imported: importing it would start a daemon)
const START_TIMEOUT_MS = 90_000; // the daemon waits up to 30 s for restored versions
const STOP_TIMEOUT_MS = 60_000;

export interface RuntimeState {
  pid: number;
  port: number;
  adminPort: number;
  startedAt: string;
  versions: VersionInfo[];
  traffic: Record<string, TrafficSplit>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** An admin API error as the CLI's typed errors (exit codes from the README's table). */
function adminError(status: number, body: Record<string, unknown>, what: string): ModelctlError {
  const message = typeof body.error === 'string' ? body.error : `${what} failed with HTTP ${status}`;
  const { error: _e, hint, ...details } = body;
  const opts = { hint: typeof hint === 'string' ? hint : undefined, details };
  if (status === 400 || status === 413) return new UsageError(message, opts);
  if (status === 404) return new NotFoundError(message, opts);
  if (status === 409) return new ConflictError(message, opts);
  if (status === 503) return new UnavailableError(message, opts);
  return new ModelctlError(ExitCode.unexpected, `local runtime: ${message}`, opts);
}

/** A client of one running daemon's admin API. */
export class RuntimeClient {
  constructor(readonly info: RuntimeInfo, readonly paths: LocalPaths) {}

  get url(): string {
    return `http://127.0.0.1:${this.info.port}`;
  }

  get adminUrl(): string {
    return `http://127.0.0.1:${this.info.adminPort}`;
  }

  get metricsUrl(): string {
    return `${this.adminUrl}/metrics`;
  }

  async call<T>(method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.adminUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.info.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
      throw new UnavailableError(`the local runtime (pid ${this.info.pid}) did not answer ${method} ${path}: ${cause}`, {
        hint: `see ${this.paths.daemonLog}; \`modelctl local status\` shows whether it runs`,
      });
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = { error: text.slice(0, 200) };
    }
    if (!res.ok) throw adminError(res.status, json as Record<string, unknown>, `${method} ${path}`);
    return json as T;
  }

  state(): Promise<RuntimeState> {
    return this.call('GET', '/v1/state');
  }

  startVersion(v: { model: string; version: string; digest: string; bundleDir: string; restart?: boolean }): Promise<VersionInfo & { started: boolean }> {
    return this.call('POST', '/v1/versions', v);
  }

  version(model: string, version: string): Promise<VersionInfo> {
    return this.call('GET', `/v1/versions/${model}/${encodeURIComponent(version)}`);
  }

  /**
   * Long-polls in slices (each request stays well under HTTP timeouts) until ready, failed or
   * `timeoutMs`; after each slice still starting, `onWaiting` hears what is being waited on.
   */
  async waitReady(model: string, version: string, timeoutMs: number, onWaiting?: (note: string) => void): Promise<VersionInfo> {
    const t0 = Date.now();
    const deadline = t0 + timeoutMs;
    const secs = (ms: number) => `${Math.round(ms / 1000)} s`;
    for (;;) {
      const slice = Math.max(0, Math.min(onWaiting ? 5000 : 60_000, deadline - Date.now()));
      try {
        return await this.call<VersionInfo>('GET', `/v1/versions/${model}/${encodeURIComponent(version)}/ready?timeoutMs=${slice}`, undefined, slice + 30_000);
      } catch (err) {
        // A slice that merely ran out while the version is still starting: ask again.
        const details = (err instanceof UnavailableError ? err.details : {}) as { status?: string; reason?: string | null; logFile?: string };
        if (!(err instanceof UnavailableError) || details.status !== 'starting') throw err;
        const waitingOn = details.reason ?? `${model}@${version} is starting`;
        if (Date.now() >= deadline) {
          // The whole wait, not the last slice of it, is what timed out.
          throw new UnavailableError(`${model}@${version} did not become ready within ${secs(timeoutMs)} (the ready timeout): ${waitingOn}`, {
            hint: `give it longer with --ready-timeout (or rollout.readyTimeout)${details.logFile ? `, or see its log: ${details.logFile}` : ''}`,
            details: { ...details, timeoutMs },
          });
        }
        onWaiting?.(`waiting for ${model}@${version} to become ready (${secs(Date.now() - t0)} of ${secs(timeoutMs)}): ${waitingOn}`);
      }
    }
  }

  health(model: string, version: string): Promise<{ healthy: boolean; status: string }> {
    return this.call('GET', `/v1/versions/${model}/${encodeURIComponent(version)}/health`);
  }

  setTraffic(model: string, split: TrafficSplit): Promise<{ model: string; traffic: TrafficSplit }> {
    return this.call('PUT', `/v1/traffic/${model}`, split);
  }

  retire(model: string, version: string, drainTimeoutMs = 30_000): Promise<{ retired: boolean; drained?: boolean }> {
    return this.call('DELETE', `/v1/versions/${model}/${encodeURIComponent(version)}?drainTimeoutMs=${drainTimeoutMs}`, undefined, drainTimeoutMs + 60_000);
  }

  window(model: string, version: string, sinceMs: number): Promise<LocalWindow> {
    const q = new URLSearchParams({ model, version, since: String(Math.floor(sinceMs)) });
    return this.call('GET', `/v1/window?${q}`);
  }
}

/** The running daemon of `home`, or undefined (no runtime.json, dead pid, or no answer). */
export async function connectRuntime(home: string): Promise<RuntimeClient | undefined> {
  const paths = localPaths(home);
  const info = await readJson<RuntimeInfo>(paths.runtime).catch(() => undefined);
  if (!info || typeof info.pid !== 'number' || !processAlive(info.pid)) return undefined;
  try {
    const res = await fetch(`http://127.0.0.1:${info.adminPort}/v1/health`, { signal: AbortSignal.timeout(3000) });
    const health = (await res.json()) as { pid?: number };
    if (!res.ok || health.pid !== info.pid) return undefined;
  } catch {
    return undefined;
  }
  return new RuntimeClient(info, paths);
}

async function logSince(file: string, offset: number): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.slice(offset).trim().split('\n').slice(-10).join('\n');
}

/**
 * The home's daemon, started in the background if it is not running (idempotent; safe to call
 * from two processes at once: the daemon's lock lets one win, the other waits for it).
 * `port`: undefined = whatever the daemon had (else 8700, else any free port); 0 = any free port.
 */
export async function ensureRuntime(opts: { home: string; port?: number | undefined }): Promise<{ client: RuntimeClient; started: boolean }> {
  const paths = localPaths(opts.home);
  const running = await connectRuntime(opts.home);
  if (running) {
    if (opts.port && running.info.port !== opts.port) {
      throw new UsageError(`the local runtime of ${opts.home} already runs on port ${running.info.port}, not ${opts.port}`, {
        hint: 'run `modelctl local down` first to move it, or leave out --port / MODELCTL_LOCAL_PORT',
      });
    }
    return { client: running, started: false };
  }
  await mkdir(paths.logs, { recursive: true });
  rotateIfLarge(paths.daemonLog);
  const logOffset = (await stat(paths.daemonLog).catch(() => undefined))?.size ?? 0;
  const out = await open(paths.daemonLog, 'a');
  const args = [DAEMON_SCRIPT, '--home', opts.home, ...(opts.port === undefined ? [] : ['--port', String(opts.port)])];
  const child = spawn(process.execPath, args, {
    detached: true, // its own session: it outlives this command and the terminal
    stdio: ['ignore', out.fd, out.fd],
    env: { ...process.env, MODELCTL_HOME: opts.home },
  });
  child.unref();
  await out.close();
  let exitCode: number | null | undefined;
  child.on('exit', (code) => (exitCode = code));
  child.on('error', () => (exitCode ??= -1));

  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const client = await connectRuntime(opts.home);
    if (client) return { client, started: client.info.pid === child.pid };
    if (exitCode !== undefined && exitCode !== EXIT_ALREADY_RUNNING) {
      const hint = exitCode === 4 ? 'choose another port with --port or MODELCTL_LOCAL_PORT' : `see ${paths.daemonLog}`;
      throw new UnavailableError(`the local runtime failed to start (exit code ${exitCode}):\n${await logSince(paths.daemonLog, logOffset)}`, { hint });
    }
    await sleep(50);
  }
  if (exitCode === undefined && child.pid !== undefined) {
    try {
      process.kill(child.pid, 'SIGTERM'); // ours, and not up in time: do not leave it behind
    } catch {
      /* gone */
    }
  }
  throw new UnavailableError(`the local runtime did not come up within ${START_TIMEOUT_MS / 1000} s:\n${await logSince(paths.daemonLog, logOffset)}`, {
    hint: `see ${paths.daemonLog}`,
  });
}

/**
 * Stop the home's daemon and every version it runs. The state (versions, traffic) is kept for the
 * next `local up` unless `forget`. Returns the pid stopped, or null when nothing ran.
 */
export async function stopRuntime(home: string, opts: { forget?: boolean } = {}): Promise<{ stopped: boolean; pid: number | null }> {
  const paths = localPaths(home);
  const client = await connectRuntime(home);
  let pid: number | null = null;
  if (client) {
    pid = client.info.pid;
    await client.call('POST', '/v1/shutdown', { forget: opts.forget === true });
  } else {
    // Not answering: a hung or half-started daemon. Stop it by the pid it recorded, if it is still a daemon.
    const info = await readJson<RuntimeInfo>(paths.runtime).catch(() => undefined);
    const lockPid = Number((await readFile(paths.lock, 'utf8').catch(() => '')).trim()) || undefined;
    const candidate = info?.pid ?? lockPid;
    if (candidate && processAlive(candidate) && (await readFile(`/proc/${candidate}/cmdline`, 'utf8').catch(() => 'daemon.js')).includes('daemon.js')) {
      pid = candidate;
      process.kill(pid, 'SIGTERM');
    }
    if (opts.forget) {
      const state = await readState(paths.state).catch(() => emptyState());
      await writeJsonAtomic(paths.state, { ...emptyState(), port: state.port });
    }
  }
  if (pid === null) {
    await rm(paths.runtime, { force: true });
    return { stopped: false, pid: null };
  }
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (processAlive(pid) && Date.now() < deadline) await sleep(50);
  if (processAlive(pid)) {
    process.kill(pid, 'SIGKILL');
    throw new UnavailableError(`the local runtime (pid ${pid}) did not stop within ${STOP_TIMEOUT_MS / 1000} s and was killed`, {
      hint: `its versions may still run: see ${paths.children} and ${paths.daemonLog}`,
    });
  }
  await rm(paths.runtime, { force: true });
  return { stopped: true, pid };
}
