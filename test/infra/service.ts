import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants as fsConstants, openSync, readFileSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

/** An executable on PATH (or in the usual system dirs), or undefined. */
export function findBinary(name: string): string | undefined {
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

/** The last lines of a log file, for error messages. */
export function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines - 1).join('\n').trimEnd();
  } catch {
    return `(no ${file})`;
  }
}

export interface ServiceProcess {
  /** How it ended ("exited with code 1", "killed by SIGKILL"…), or undefined while it runs. */
  exitInfo(): string | undefined;
  /** Kill it (its process group), wait for it, remove `dir`. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Start a test service (Prometheus, Pushgateway…) in the foreground as our child, output to
 * `logFile`, in its own process group, wrapped in `setpriv --pdeathsig KILL` so the kernel kills it
 * if this process dies for any reason; on a normal exit it is killed and `dir` removed.
 */
export function spawnService(bin: string, args: string[], dir: string, logFile: string): ServiceProcess {
  const out = openSync(logFile, 'a');
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
  return {
    exitInfo: () => exitInfo,
    stop: () =>
      (stopped ??= (async () => {
        process.off('exit', exitHook);
        kill();
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([exited, new Promise<void>((r) => (timer = setTimeout(r, 10_000)))]);
        clearTimeout(timer);
        await rm(dir, { recursive: true, force: true, maxRetries: 3 });
      })()),
  };
}
