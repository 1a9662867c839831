/**
 * The local runtime daemon: `node dist/src/targets/local/daemon.js --home <MODELCTL_HOME> [--port N]`.
 * Started in the background by `ensureRuntime()` (modelctl local up, modelctl deploy); outlives the
 * command that started it; stopped by `modelctl local down` (POST /v1/shutdown) or SIGTERM.
 *
 * Start-up order matters: take the home's lock, stop orphans of a crashed predecessor, re-spawn
 * the versions of state.json and wait (bounded) for them, restore every model's traffic, and
 * only then open the router and publish runtime.json. Nobody can send a request to a
 * half-restored runtime, and clients treat runtime.json as "up".
 *
 * Exit codes: 0 stopped, 1 crashed, 2 bad arguments or state, 3 another daemon runs for this
 * home, 4 the requested port is in use.
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { modelctlHome } from '../../util/home.js';
import { createAdminServer, listenAdmin } from './admin.js';
import { DEFAULT_LOCAL_PORT } from './config.js';
import { RuntimeMetrics } from './metrics.js';
import { localPaths, versionLogFile, type LocalPaths } from './paths.js';
import { Router } from './router.js';
import { loadServeSpec } from './serve-spec.js';
import { emptyState, JsonFileWriter, readJson, readState, StateStore, writeJsonAtomic, type RuntimeInfo } from './state.js';
import { reapOrphans, Supervisor } from './supervisor.js';
import { processAlive } from '../../util/process.js';

export const EXIT_ALREADY_RUNNING = 3;
export const EXIT_PORT_IN_USE = 4;
const RESTORE_READY_TIMEOUT_MS = 30_000;
const SHUTDOWN_GRACE_MS = 10_000;

function log(message: string): void {
  process.stdout.write(`${new Date().toISOString()} [daemon ${process.pid}] ${message}\n`);
}

function fail(code: number, message: string): never {
  process.stderr.write(`${new Date().toISOString()} [daemon ${process.pid}] error: ${message}\n`);
  process.exit(code);
}

/** A pid that runs a local-runtime daemon (not a recycled pid of something else), where /proc can tell. */
async function isDaemon(pid: number): Promise<boolean> {
  if (!processAlive(pid)) return false;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
  return cmdline === undefined || cmdline.includes('daemon.js');
}

/** One daemon per home: an exclusive lock file holding the pid; a dead holder's lock is taken over. */
async function acquireLock(paths: LocalPaths): Promise<boolean> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(paths.lock, 'wx', 0o600);
      await fh.writeFile(String(process.pid));
      await fh.close();
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number((await readFile(paths.lock, 'utf8').catch(() => '')).trim());
      if (holder && holder !== process.pid && (await isDaemon(holder))) return false;
      await rm(paths.lock, { force: true });
    }
  }
  return false;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { home: { type: 'string' }, port: { type: 'string' } }, strict: true });
  const home = values.home ?? modelctlHome();
  const explicitPort = values.port === undefined ? undefined : Number(values.port);
  if (explicitPort !== undefined && !(Number.isInteger(explicitPort) && explicitPort >= 0 && explicitPort <= 65535)) {
    fail(2, `--port ${values.port} is not a TCP port`);
  }
  const paths = localPaths(home);
  await mkdir(paths.logs, { recursive: true });
  await mkdir(paths.bundles, { recursive: true });
  if (!(await acquireLock(paths))) fail(EXIT_ALREADY_RUNNING, `another daemon runs for ${home}`);
  log(`starting for ${home}`);

  let state;
  try {
    state = await readState(paths.state);
  } catch (err) {
    await rm(paths.lock, { force: true });
    fail(2, (err as Error).message);
  }
  const store = new StateStore(paths.state, state);
  await reapOrphans((await readJson<number[]>(paths.children).catch(() => undefined)) ?? [], paths.root, log);

  const childrenFile = new JsonFileWriter<number[]>(paths.children);
  const supervisor = new Supervisor({
    logFileFor: (m, v) => versionLogFile(paths, m, v),
    runtimeMarker: paths.root,
    onPidChange: (pids) => void childrenFile.write(pids).catch((err: Error) => log(`cannot write ${paths.children}: ${err.message}`)),
    log,
  });
  const metrics = new RuntimeMetrics(() => supervisor.list().map((v) => ({ model: v.rec.model, version: v.rec.version, ready: v.status === 'ready', restarts: v.info().restarts })));
  const router = new Router(
    (model, version) => {
      const proc = supervisor.get(model, version);
      const port = proc?.backendPort;
      return proc?.spec && port ? { port, spec: proc.spec } : undefined;
    },
    metrics,
    log,
  );

  const startedAt = new Date().toISOString();
  const token = randomBytes(24).toString('hex');
  let routerPort: number | null = null;
  let adminPort: number | null = null;
  let stopping = false;
  let admin: Server | undefined;

  const shutdown = async (forget: boolean, code = 0): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log(`stopping${forget ? ' and forgetting every version and traffic split' : ''}`);
    await rm(paths.runtime, { force: true }); // clients see "not running" from now on
    await router.close(SHUTDOWN_GRACE_MS).catch(() => {});
    admin?.close();
    admin?.closeAllConnections();
    await supervisor.stopAll();
    if (forget) await writeJsonAtomic(paths.state, { ...emptyState(), port: store.state.port }).catch(() => {});
    await rm(paths.children, { force: true });
    await rm(paths.lock, { force: true });
    log('stopped');
    process.exit(code);
  };
  process.on('SIGTERM', () => void shutdown(false));
  process.on('SIGINT', () => void shutdown(false));
  process.on('SIGHUP', () => {}); // outlive the terminal that started us
  process.on('uncaughtException', (err) => {
    log(`crashed: ${err.stack ?? err.message}`);
    void shutdown(false, 1);
  });

  admin = createAdminServer({
    token,
    paths,
    runtime: () => ({ pid: process.pid, port: routerPort, adminPort, startedAt }),
    store,
    supervisor,
    router,
    metrics,
    shutdown: (forget) => void shutdown(forget),
    log,
  });
  adminPort = await listenAdmin(admin);

  // Restore: versions first (bounded wait for readiness), then traffic, then open the router.
  for (const rec of store.state.versions) {
    let spec = null;
    let broken: string | undefined;
    try {
      spec = await loadServeSpec(rec.bundleDir);
    } catch (err) {
      broken = (err as Error).message;
      log(`cannot restore ${rec.model}@${rec.version}: ${broken}`);
    }
    await supervisor.ensure(rec, spec, broken ? { broken } : {});
  }
  const waits = supervisor.list().map((v) =>
    v.waitReady(RESTORE_READY_TIMEOUT_MS).then(
      () => log(`restored ${v.key} (ready)`),
      (err: Error) => log(`restored ${v.key} but it is not ready: ${err.message}`),
    ),
  );
  await Promise.all(waits);
  for (const [model, split] of Object.entries(store.state.traffic)) router.setTraffic(model, split);

  const preferred = explicitPort ?? store.state.port ?? DEFAULT_LOCAL_PORT;
  try {
    routerPort = await router.listen(preferred);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    if (explicitPort !== undefined) {
      await supervisor.stopAll();
      await rm(paths.lock, { force: true });
      fail(EXIT_PORT_IN_USE, `port ${explicitPort} on 127.0.0.1 is in use by another program`);
    }
    // Not chosen by the user: any free port beats failing (another home may own the default one).
    routerPort = await router.listen(0);
    log(`port ${preferred} is in use; using ${routerPort}`);
  }
  if (store.state.port !== routerPort) await store.update((s) => void (s.port = routerPort));
  const info: RuntimeInfo = { pid: process.pid, port: routerPort, adminPort, startedAt, token, evaluationToken: router.evaluationToken };
  await writeJsonAtomic(paths.runtime, info, 0o600);
  log(`ready: router http://127.0.0.1:${routerPort}, admin http://127.0.0.1:${adminPort}, ${supervisor.list().length} version(s)`);
}

main().catch((err: Error) => fail(1, err.stack ?? err.message));
