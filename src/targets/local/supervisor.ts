import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { rotateIfLarge, versionKey } from './paths.js';
import type { ServeSpec } from '../../bundle/serve.js';
import type { VersionRecord } from './state.js';

/**
 * One child process per deployed version, started from its bundle directory per `serve:`.
 *
 * Lifecycle: starting (spawned, probing readiness) → ready; an exit is never hidden: it is kept
 * (exit code or signal, last stderr lines), logged, and the version goes to backoff and is
 * restarted (0.5 s, 1 s, 2 s … 30 s), or to failed after MAX_FAILURES exits in a row without
 * becoming ready (a crash loop: restarting forever would only hide it). Every version runs in its
 * own process group so that stopping it also stops whatever its command started (sh -c, workers).
 */

export type VersionStatus = 'starting' | 'ready' | 'backoff' | 'failed' | 'stopping' | 'stopped';

export interface ExitInfo {
  code: number | null;
  signal: string | null;
  /** Set when the process could not be started at all (ENOENT, EACCES…). */
  error: string | null;
  at: string;
  beforeReady: boolean;
  stderrTail: string[];
}

export interface VersionInfo {
  model: string;
  version: string;
  digest: string;
  bundleDir: string;
  status: VersionStatus;
  ready: boolean;
  pid: number | null;
  port: number | null;
  startedAt: string | null;
  readyAt: string | null;
  restarts: number;
  lastExit: ExitInfo | null;
  /** Why it is not ready, in words (null when ready). */
  reason: string | null;
  logFile: string;
}

const MAX_FAILURES = 5;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
const PROBE_TIMEOUT_MS = 2000;
const STDERR_TAIL_LINES = 20;

/** A free loopback port. Another process may take it before the child binds it; the child then exits and is restarted on a new one. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** GET http://127.0.0.1:port/path → status code, or the connection error's message. */
export function probe(port: number, pathName: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<{ status: number } | { error: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathName, timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
      res.on('error', (err) => resolve({ error: err.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ error: (err as NodeJS.ErrnoException).code ?? err.message }));
  });
}

function describeExit(e: ExitInfo): string {
  if (e.error) return `could not be started: ${e.error}`;
  if (e.signal) return `was killed by ${e.signal}`;
  return `exited with exit code ${e.code}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class VersionProcess extends EventEmitter {
  status: VersionStatus = 'starting';
  private child: ChildProcess | undefined;
  private port: number | null = null;
  private startedAt: number | null = null;
  private readyAt: number | null = null;
  private restarts = 0;
  private failuresInARow = 0;
  private lastExit: ExitInfo | null = null;
  private lastProbe = 'not probed yet';
  private stderrTail: string[] = [];
  private backoffTimer: NodeJS.Timeout | undefined;
  private backoffUntil = 0;
  /** Bumped on every spawn: events of an older child are ignored. */
  private generation = 0;
  private readonly log: WriteStream;
  /** Set when the bundle cannot be run at all (no serve section, missing directory). */
  private brokenReason: string | null = null;

  constructor(
    readonly rec: VersionRecord,
    readonly spec: ServeSpec | null,
    private readonly opts: { logFile: string; runtimeMarker: string; onPidChange: () => void; log: (m: string) => void },
    broken?: string,
  ) {
    super();
    this.setMaxListeners(0); // one listener per concurrent waitReady
    rotateIfLarge(opts.logFile);
    this.log = createWriteStream(opts.logFile, { flags: 'a' });
    this.log.on('error', (err) => opts.log(`cannot write ${opts.logFile}: ${err.message}`));
    if (!spec || broken) {
      this.status = 'failed';
      this.brokenReason = broken ?? 'no serve section';
    }
  }

  get key(): string {
    return versionKey(this.rec.model, this.rec.version);
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Where the router sends this version's requests; null while it is not running. */
  get backendPort(): number | null {
    return this.child ? this.port : null;
  }

  start(): void {
    if (!this.spec || this.brokenReason) return;
    clearTimeout(this.backoffTimer);
    this.failuresInARow = 0;
    void this.spawnOnce();
  }

  private write(data: Buffer | string): void {
    if (!this.log.writableEnded) this.log.write(data);
  }

  private note(line: string): void {
    this.write(`[modelctl ${new Date().toISOString()}] ${line}\n`);
  }

  private changed(): void {
    this.emit('change');
  }

  private async spawnOnce(): Promise<void> {
    const spec = this.spec!;
    const gen = ++this.generation;
    this.status = 'starting';
    this.lastProbe = 'not probed yet';
    this.changed();
    let port: number;
    try {
      port = await freePort();
    } catch (err) {
      this.onExit(gen, null, null, `no free port: ${(err as Error).message}`);
      return;
    }
    if (gen !== this.generation || this.status !== 'starting') return; // stopped meanwhile
    const [cmd, ...args] = spec.command;
    // "node" means the Node that runs modelctl: the machine's `node` on PATH may be another version.
    const program = cmd === 'node' ? process.execPath : cmd!;
    const { rec } = this;
    this.stderrTail = [];
    this.port = port;
    this.startedAt = Date.now();
    this.readyAt = null;
    let child: ChildProcess;
    try {
      child = spawn(program, args, {
        cwd: rec.bundleDir,
        env: {
          ...process.env,
          ...spec.env,
          PORT: String(port),
          HOST: '127.0.0.1',
          MODELCTL_MODEL: rec.model,
          MODELCTL_VERSION: rec.version,
          MODELCTL_DIGEST: rec.digest,
          // Lets a restarted daemon recognise (and stop) children its crashed predecessor left behind.
          MODELCTL_LOCAL_RUNTIME: this.opts.runtimeMarker,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true, // own process group: stop() signals the whole group
      });
    } catch (err) {
      this.onExit(gen, null, null, (err as Error).message);
      return;
    }
    this.child = child;
    this.note(`starting ${spec.command.join(' ')} (pid ${child.pid ?? '-'}, port ${port}, cwd ${rec.bundleDir})`);
    child.stdout!.on('data', (d: Buffer) => this.write(d));
    let partial = '';
    child.stderr!.on('data', (d: Buffer) => {
      this.write(d);
      const lines = (partial + d.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      this.stderrTail.push(...lines.filter((l) => l.trim() !== ''));
      if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.splice(0, this.stderrTail.length - STDERR_TAIL_LINES);
    });
    child.stderr!.on('end', () => {
      if (partial.trim()) this.stderrTail.push(partial);
      partial = '';
    });
    child.once('error', (err) => this.onExit(gen, null, null, err.message));
    // 'exit' can come before the last stderr bytes are read: wait for 'close' (stdio drained), but
    // not forever, since a grandchild may hold the pipes open.
    child.once('exit', (code, signal) => {
      const done = () => this.onExit(gen, code, signal, null);
      const timer = setTimeout(done, 300);
      child.once('close', () => {
        clearTimeout(timer);
        done();
      });
    });
    if (child.pid !== undefined) {
      this.opts.onPidChange();
      void this.probeUntilReady(gen);
    }
  }

  private async probeUntilReady(gen: number): Promise<void> {
    const spec = this.spec!;
    const t0 = Date.now();
    while (gen === this.generation && this.status === 'starting' && this.port !== null) {
      const r = await probe(this.port, spec.readinessPath);
      if (gen !== this.generation || this.status !== 'starting') return;
      if ('status' in r && r.status === 200) {
        this.status = 'ready';
        this.readyAt = Date.now();
        this.failuresInARow = 0;
        this.note(`ready after ${this.readyAt - (this.startedAt ?? this.readyAt)} ms`);
        this.changed();
        return;
      }
      this.lastProbe = 'status' in r ? `GET ${spec.readinessPath} answered ${r.status}` : `GET ${spec.readinessPath} failed: ${r.error}`;
      // Poll fast while a healthy server would be coming up, then back off a little.
      await sleep(Date.now() - t0 < 5000 ? 50 : 250);
    }
  }

  private onExit(gen: number, code: number | null, signal: NodeJS.Signals | null, error: string | null): void {
    if (gen !== this.generation || (this.child === undefined && error === null)) return;
    const wasReady = this.status === 'ready';
    this.child = undefined;
    this.generation++; // ignore any further event of this child
    this.opts.onPidChange();
    if (this.status === 'stopping' || this.status === 'stopped') {
      this.note(`stopped (${code !== null ? `exit code ${code}` : signal ?? error})`);
      this.status = 'stopped';
      this.changed();
      return;
    }
    this.lastExit = { code, signal, error, at: new Date().toISOString(), beforeReady: !wasReady, stderrTail: [...this.stderrTail] };
    this.failuresInARow++;
    const what = describeExit(this.lastExit);
    this.opts.log(`${this.key} ${what}${wasReady ? '' : ' before becoming ready'}`);
    if (error !== null || this.failuresInARow >= MAX_FAILURES) {
      // A program that cannot be spawned will not start on a retry either.
      this.status = 'failed';
      this.note(`${what}; giving up after ${this.failuresInARow} failed start(s)`);
      this.changed();
      return;
    }
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (this.failuresInARow - 1));
    this.status = 'backoff';
    this.backoffUntil = Date.now() + delay;
    this.note(`${what}; restarting in ${delay} ms`);
    this.changed();
    this.backoffTimer = setTimeout(() => {
      if (this.status !== 'backoff') return;
      this.restarts++;
      void this.spawnOnce();
    }, delay);
  }

  /** Why the version is not ready, naming the exit code and the last stderr lines; null when ready. */
  reason(): string | null {
    const who = `${this.key}`;
    if (this.brokenReason) return `${who} cannot run: ${this.brokenReason}`;
    switch (this.status) {
      case 'ready':
        return null;
      case 'starting': {
        if (this.failuresInARow === 0 || !this.lastExit) return `${who} is starting (${this.lastProbe})`;
        // A restart after a crash: the crash is the news, not the probe of the new attempt.
        const stderr = this.lastExit.stderrTail.slice(-5).join(' | ');
        return `${who} is starting again (attempt ${this.failuresInARow + 1} of ${MAX_FAILURES}) after it ${describeExit(this.lastExit)}${stderr ? `; last stderr: ${stderr}` : ''}; log: ${this.opts.logFile}`;
      }
      case 'stopping':
      case 'stopped':
        return `${who} is ${this.status === 'stopping' ? 'being stopped' : 'stopped'}`;
      case 'backoff':
      case 'failed': {
        const e = this.lastExit!;
        const stderr = e.stderrTail.slice(-5).join(' | ');
        const next =
          this.status === 'failed'
            ? `gave up after ${this.failuresInARow} failed start(s)`
            : `restart ${this.failuresInARow} of ${MAX_FAILURES - 1} in ${Math.max(0, Math.ceil((this.backoffUntil - Date.now()) / 100) / 10)} s`;
        return `${who} ${describeExit(e)}${e.beforeReady ? ' before becoming ready' : ''} (${next})${stderr ? `; last stderr: ${stderr}` : ''}; log: ${this.opts.logFile}`;
      }
    }
  }

  /**
   * Resolve when ready; reject as soon as it is known not to become ready by itself: it exited
   * (even if a restart is scheduled: the engine should hear about a crash, not a later timeout),
   * failed, or is being stopped; or when `timeoutMs` passes.
   */
  waitReady(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const settle = (err?: Error) => {
        clearTimeout(timer);
        this.off('change', check);
        if (err) reject(err);
        else resolve();
      };
      const check = () => {
        if (this.status === 'ready') settle();
        else if (this.status !== 'starting') settle(new Error(this.reason() ?? `${this.key} is ${this.status}`));
      };
      const timer = setTimeout(() => settle(new Error(`${this.key} is not ready after ${timeoutMs} ms (${this.lastProbe}); log: ${this.opts.logFile}`)), timeoutMs);
      this.on('change', check);
      check();
    });
  }

  /** A live readiness probe (not the cached status). */
  async healthy(): Promise<boolean> {
    if (this.status !== 'ready' || this.port === null || !this.spec) return false;
    const r = await probe(this.port, this.spec.readinessPath);
    return 'status' in r && r.status === 200;
  }

  /** SIGTERM the process group, SIGKILL it after the grace period; resolves once it has exited. */
  async stop(): Promise<void> {
    clearTimeout(this.backoffTimer);
    const child = this.child;
    if (!child || child.pid === undefined) {
      this.generation++;
      this.status = 'stopped';
      this.changed();
      this.log.end();
      return;
    }
    this.status = 'stopping';
    this.changed();
    const exited = new Promise<void>((r) => {
      const check = () => {
        if (this.status === 'stopped') {
          this.off('change', check);
          r();
        }
      };
      this.on('change', check);
    });
    const kill = (sig: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, sig);
      } catch {
        try {
          child.kill(sig);
        } catch {
          /* already gone */
        }
      }
    };
    kill('SIGTERM');
    const grace = this.spec?.stopGraceMs ?? 5000;
    const graceful = await Promise.race([exited.then(() => true), sleep(grace).then(() => false)]);
    if (!graceful) {
      this.note(`did not stop within ${grace} ms of SIGTERM: SIGKILL`);
      kill('SIGKILL');
      await Promise.race([exited, sleep(5000)]);
    }
    this.log.end();
  }

  info(): VersionInfo {
    return {
      model: this.rec.model,
      version: this.rec.version,
      digest: this.rec.digest,
      bundleDir: this.rec.bundleDir,
      status: this.status,
      ready: this.status === 'ready',
      pid: this.pid,
      port: this.backendPort,
      startedAt: this.startedAt ? new Date(this.startedAt).toISOString() : null,
      readyAt: this.readyAt ? new Date(this.readyAt).toISOString() : null,
      restarts: this.restarts,
      lastExit: this.lastExit,
      reason: this.reason(),
      logFile: this.opts.logFile,
    };
  }
}

/** Kill version processes a crashed daemon left behind (recorded in children.json), if they are still ours. */
export async function reapOrphans(pids: number[], runtimeMarker: string, log: (m: string) => void): Promise<void> {
  for (const pid of pids) {
    let environ: string;
    try {
      environ = await readFile(`/proc/${pid}/environ`, 'latin1');
    } catch {
      continue; // gone (or no /proc: nothing we can check safely, so nothing we kill)
    }
    if (!environ.split('\0').includes(`MODELCTL_LOCAL_RUNTIME=${runtimeMarker}`)) continue; // pid reused by someone else
    log(`stopping pid ${pid}, a version process left behind by a previous daemon`);
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

/** The versions this daemon runs, and the pid file that lets a successor reap them after a crash. */
export class Supervisor {
  private readonly versions = new Map<string, VersionProcess>();

  constructor(
    private readonly opts: {
      logFileFor: (model: string, version: string) => string;
      runtimeMarker: string;
      onPidChange: (pids: number[]) => void;
      log: (m: string) => void;
    },
  ) {}

  get(model: string, version: string): VersionProcess | undefined {
    return this.versions.get(versionKey(model, version));
  }

  list(): VersionProcess[] {
    return [...this.versions.values()];
  }

  pids(): number[] {
    return this.list()
      .map((v) => v.pid)
      .filter((p): p is number => p !== null);
  }

  /**
   * Run `rec` (idempotent). A running version is left alone unless `restart`; a failed one is
   * started again (a new deploy is a new chance). Returns whether a process was (re)started.
   */
  async ensure(rec: VersionRecord, spec: ServeSpec | null, opts: { restart?: boolean; broken?: string } = {}): Promise<{ proc: VersionProcess; started: boolean }> {
    const key = versionKey(rec.model, rec.version);
    const existing = this.versions.get(key);
    if (existing) {
      const dead = existing.status === 'failed' || existing.status === 'stopped';
      if (!opts.restart && !dead && existing.rec.bundleDir === rec.bundleDir) return { proc: existing, started: false };
      await existing.stop();
      this.versions.delete(key);
    }
    const proc = new VersionProcess(
      rec,
      spec,
      {
        logFile: this.opts.logFileFor(rec.model, rec.version),
        runtimeMarker: this.opts.runtimeMarker,
        onPidChange: () => this.opts.onPidChange(this.pids()),
        log: this.opts.log,
      },
      opts.broken,
    );
    this.versions.set(key, proc);
    proc.start();
    return { proc, started: proc.status !== 'failed' };
  }

  async remove(model: string, version: string): Promise<boolean> {
    const key = versionKey(model, version);
    const proc = this.versions.get(key);
    if (!proc) return false;
    await proc.stop();
    this.versions.delete(key);
    this.opts.onPidChange(this.pids());
    return true;
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.list().map((v) => v.stop()));
    this.versions.clear();
    this.opts.onPidChange([]);
  }
}
