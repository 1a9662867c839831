/**
 * A real S3 server for integration tests: a throw-away single-node Ceph
 * cluster (1 mon, 1 memstore OSD, 1 radosgw) bound to 127.0.0.1 only.
 *
 * How the test run shares one RGW (the choice, and why):
 *
 *   `node --test` (Node 24) runs every test file in its own child process, so
 *   an in-process singleton would start one cluster per file (~10-20 s each).
 *   `--test-global-setup=<module>` runs `globalSetup()` once in the runner's
 *   parent process *before* the files are spawned, and the children inherit
 *   the parent's `process.env` at spawn time (verified on Node 24.21: an env
 *   var set in globalSetup is visible in every test file process, with and
 *   without process isolation). So:
 *
 *   1. `test/infra/global-setup.ts` starts ONE cluster for the whole run and
 *      publishes it in `MODELCTL_TEST_S3_*` env vars; `globalTeardown()` stops
 *      it. If it cannot start, it publishes `MODELCTL_TEST_S3_ERROR` instead,
 *      so unit tests still run and every S3 test fails with that message.
 *   2. `testS3()` / `sharedRgw()` use those env vars when present. When they
 *      are absent (a single file run as `node --test dist/test/x.test.js`
 *      without the flag) they start a cluster for this process, once, and
 *      stop it when the process is done (`beforeExit`, `exit` as fallback).
 *
 *   So the npm script needs `--test-global-setup=dist/test/infra/global-setup.js`;
 *   without it everything still works, just with one cluster per file.
 *
 * Tests never skip: if Ceph is missing, `startRgw` throws an error telling to
 * run `.ci/install-debian.sh` (in CI and locally alike).
 *
 * Daemon lifetime: daemons run in the foreground (`-f`) as children of this
 * Node process, each in its own process group, wrapped in
 * `setpriv --pdeathsig KILL` (util-linux, Essential in Debian) so the kernel
 * kills them if this process dies for any reason, SIGKILL included. `stop()`
 * SIGKILLs the groups (memstore keeps nothing worth a clean shutdown), waits
 * for them to be reaped and removes the temp dir. Temp dirs of dead owners
 * (a run that was SIGKILLed) are swept at the next start.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync, accessSync, constants as fsConstants } from 'node:fs';
import { rm, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join, delimiter } from 'node:path';
import { S3Client, CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, PutObjectCommand, type S3ClientConfig } from '@aws-sdk/client-s3';
import { sweepStaleDirs } from './temp-dirs.js';

export interface RgwHandle {
  /** e.g. `http://127.0.0.1:41234` */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** Temp dir holding ceph.conf, logs (log/), sockets; undefined when the handle came from env. */
  dir?: string;
  /** Kills the daemons and removes the temp dir. No-op on a handle shared through env. */
  stop(): Promise<void>;
}

export interface StartRgwOptions {
  /** Overall start-up timeout. Default 180 s. */
  timeoutMs?: number;
  /**
   * Capacity of the in-RAM memstore OSD (`memstore device bytes`). Default 4 GiB.
   * The OSD's RSS is about 2x the bytes stored; deleted data is freed by RGW's
   * garbage collector within ~15 s.
   */
  memstoreBytes?: number;
  /** Keep the temp dir on stop() (for debugging). Default false. */
  keepDir?: boolean;
  /** Progress messages (default: silent). */
  log?: (msg: string) => void;
}

export const ENV = {
  endpoint: 'MODELCTL_TEST_S3_ENDPOINT',
  accessKeyId: 'MODELCTL_TEST_S3_ACCESS_KEY_ID',
  secretAccessKey: 'MODELCTL_TEST_S3_SECRET_ACCESS_KEY',
  region: 'MODELCTL_TEST_S3_REGION',
  error: 'MODELCTL_TEST_S3_ERROR',
} as const;

const REQUIRED_BINARIES = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'ceph'] as const;
const DIR_PREFIX = 'modelctl-rgw-';
const REGION = 'us-east-1';

export class RgwStartError extends Error {
  override name = 'RgwStartError';
  /** Temp dir of the failed attempt (kept for its logs), if any. */
  dir?: string;
}

function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    try {
      accessSync(p, fsConstants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

function resolveBinaries(): Record<(typeof REQUIRED_BINARIES)[number], string> {
  const out: Partial<Record<(typeof REQUIRED_BINARIES)[number], string>> = {};
  const missing: string[] = [];
  for (const b of REQUIRED_BINARIES) {
    const p = findBinary(b);
    if (p) out[b] = p;
    else missing.push(b);
  }
  if (missing.length > 0) {
    throw new RgwStartError(
      `Ceph RGW binaries not found: ${missing.join(', ')}. ` +
        `The S3 integration tests need a local Ceph; install it with: sudo bash .ci/install-debian.sh`,
    );
  }
  return out as Record<(typeof REQUIRED_BINARIES)[number], string>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function tail(path: string, lines = 40): string {
  try {
    const text = readFileSync(path, 'utf8');
    return text.split('\n').slice(-lines - 1).join('\n').trimEnd();
  } catch {
    return `(no ${path})`;
  }
}



const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function httpStatus(url: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { method: 'GET', agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end();
  });
}

interface Daemon {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
  exitInfo?: string;
}

class Cluster {
  readonly daemons: Daemon[] = [];
  private readonly setpriv = findBinary('setpriv');
  /** Last resort when the process exits without stop() (e.g. process.exit()): kill, then remove the dir. */
  private readonly exitHook = () => {
    this.killAllSync();
    if (!this.keepDirOnExit) rmSync(this.dir, { recursive: true, force: true });
  };
  /** StartRgwOptions.keepDir */
  keepDirOnExit = false;

  constructor(
    readonly dir: string,
    readonly conf: string,
  ) {
    process.on('exit', this.exitHook);
  }

  /** Launch a daemon in the foreground, own process group, killed if we die. */
  launch(name: string, bin: string, args: string[]): Daemon {
    const out = openSync(join(this.dir, 'log', `${name}.out`), 'a');
    const [cmd, argv] = this.setpriv ? [this.setpriv, ['--pdeathsig', 'KILL', '--', bin, ...args]] : [bin, args];
    const child = spawn(cmd, argv, { cwd: this.dir, detached: true, stdio: ['ignore', out, out] });
    closeSync(out);
    child.unref();
    const d: Daemon = { name, child, exited: Promise.resolve() };
    d.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        d.exitInfo = signal ? `killed by ${signal}` : `exited with code ${code}`;
        resolve();
      });
      child.once('error', (err) => {
        d.exitInfo = `failed to spawn: ${err.message}`;
        resolve();
      });
    });
    this.daemons.push(d);
    return d;
  }

  /** Throws if a daemon died. */
  checkAlive(): void {
    for (const d of this.daemons) {
      if (d.exitInfo !== undefined) {
        throw new RgwStartError(
          `${d.name} ${d.exitInfo} during start-up.\n--- ${d.name}.out ---\n${tail(join(this.dir, 'log', `${d.name}.out`))}` +
            `\n--- ${d.name} log ---\n${tail(join(this.dir, 'log', `${logNameOf(d.name)}.log`))}`,
        );
      }
    }
  }

  killAllSync(): void {
    for (const d of this.daemons) {
      if (d.exitInfo !== undefined || d.child.pid === undefined) continue;
      try {
        process.kill(-d.child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }

  async stop(keepDir: boolean): Promise<void> {
    process.off('exit', this.exitHook);
    this.killAllSync();
    // The (ref'ed) timer keeps the event loop alive until the unref'ed children are reaped.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.daemons.map((d) => d.exited)), new Promise<void>((r) => (timer = setTimeout(r, 10_000)))]);
    clearTimeout(timer);
    if (!keepDir) await rm(this.dir, { recursive: true, force: true, maxRetries: 3 });
  }

  /**
   * Run a ceph tool against this cluster; fails early if one of our daemons dies meanwhile.
   * The ceph CLI sometimes asks the mon for its command list before it has the monmap: the mon
   * sees fsid 0 ("handle_command on fsid 00000000-… != …" in mon.a.log) and answers EPERM, "problem
   * getting command descriptions from mon", before the command itself was sent. Seen on a loaded
   * 2-core machine; that one answer is retried (a few times, briefly), any other error is not.
   */
  async run(bin: string, args: string[], timeoutMs = 60_000): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.runOnce(bin, args, timeoutMs);
      } catch (err) {
        if (attempt >= 5 || !(err instanceof RgwStartError) || !/problem getting command descriptions/.test(err.message)) throw err;
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
  }

  private runOnce(bin: string, args: string[], timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      let done = false;
      const child = execFile(bin, ['-c', this.conf, ...args], { cwd: this.dir, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        done = true;
        if (err) {
          try {
            this.checkAlive(); // a dead daemon is the better explanation
          } catch (dead) {
            return reject(dead);
          }
          reject(new RgwStartError(`${bin} ${args.join(' ')} failed: ${err.message}\n${stderr}`.trimEnd()));
        } else resolve(stdout);
      });
      if (this.daemons.length > 0) {
        void Promise.race(this.daemons.map((d) => d.exited)).then(() => {
          if (!done) child.kill('SIGKILL');
        });
      }
    });
  }
}

const LOG_NAMES: Record<string, string> = { mon: 'mon.a', osd: 'osd.0', rgw: 'client.rgw.test' };
function logNameOf(daemon: string): string {
  return LOG_NAMES[daemon] ?? daemon;
}

function cephConf(dir: string, monPort: number, rgwPort: number, memstoreBytes: number): string {
  return `# generated by test/infra/ceph-rgw.ts — throw-away loopback-only cluster
[global]
fsid = ${randomUUID()}
mon host = v1:127.0.0.1:${monPort}
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr2 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
keyring = /dev/null
run dir = ${dir}/run
admin socket = ${dir}/run/$name.$pid.asok
pid file = ${dir}/run/$name.pid
log file = ${dir}/log/$name.log
crash dir = ${dir}/crash
osd objectstore = memstore
memstore device bytes = ${memstoreBytes}
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
osd class load list = *
osd class default list = *
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon data avail warn = 1
mon data avail crit = 0
mon warn on insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
mon warn on pool no redundancy = false
# Each mon command waits for a paxos round (1 s by default): RGW's first start
# issues ~20 of them (pool creation), so shorten the rounds.
paxos propose interval = 0.05
paxos min wait = 0.01
# We put osd.0 in the CRUSH map ourselves; the OSD's own start-up update
# occasionally races the monmap (fsid 0 -> 'wrong fsid', EPERM, OSD exits).
osd crush update on start = false
osd class update on start = false

[mon.a]
public addr = v1:127.0.0.1:${monPort}
mon data = ${dir}/mon

[osd.0]
osd data = ${dir}/osd

[client.rgw.test]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw data = ${dir}/rgw
rgw crypt require ssl = false
rgw dynamic resharding = false
rgw enable usage log = false
# memstore keeps objects in RAM: let RGW's garbage collector free the data of
# deleted/overwritten objects after seconds instead of 2 hours.
rgw gc obj min wait = 5
rgw gc processor period = 10
rgw gc processor max time = 10
`;
}

async function startOnce(opts: Required<Omit<StartRgwOptions, 'log'>> & { log: (m: string) => void }): Promise<RgwHandle> {
  const bins = resolveBinaries();
  sweepStaleDirs(DIR_PREFIX);
  const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
  writeFileSync(join(dir, 'owner.pid'), `${process.pid}\n`);
  for (const sub of ['mon', 'osd', 'rgw', 'run', 'log', 'crash']) mkdirSync(join(dir, sub));
  const monPort = await freePort();
  let rgwPort = await freePort();
  while (rgwPort === monPort) rgwPort = await freePort();
  const conf = join(dir, 'ceph.conf');
  writeFileSync(conf, cephConf(dir, monPort, rgwPort, opts.memstoreBytes));
  const cluster = new Cluster(dir, conf);
  cluster.keepDirOnExit = opts.keepDir;
  const t0 = Date.now();
  const deadline = t0 + opts.timeoutMs;
  const left = () => Math.max(1_000, deadline - Date.now());
  let stage = 'mon';
  try {
    await cluster.run(bins['ceph-mon'], ['--mkfs', '-i', 'a'], left());
    cluster.launch('mon', bins['ceph-mon'], ['-c', conf, '-i', 'a', '-f']);
    // `ceph` waits for the mon (bounded by --connect-timeout); osd create returns the id.
    const connect = ['--connect-timeout', String(Math.ceil(Math.min(left(), 60_000) / 1000))];
    const id = (await cluster.run(bins.ceph, [...connect, 'osd', 'create'], left())).trim();
    if (id !== '0') throw new RgwStartError(`ceph osd create returned ${JSON.stringify(id)}, expected 0`);
    cluster.checkAlive();
    await cluster.run(bins.ceph, [...connect, 'osd', 'crush', 'add', 'osd.0', '1', 'root=default', 'host=localhost'], left());
    opts.log(`ceph-rgw: mon up after ${Date.now() - t0} ms`);
    stage = 'osd';
    await cluster.run(bins['ceph-osd'], ['-i', '0', '--mkfs'], left());
    cluster.launch('osd', bins['ceph-osd'], ['-c', conf, '-i', '0', '-f']);
    stage = 'rgw';
    cluster.launch('rgw', bins.radosgw, ['-c', conf, '-n', 'client.rgw.test', '-f']);
    const endpoint = `http://127.0.0.1:${rgwPort}`;
    for (;;) {
      cluster.checkAlive();
      if ((await httpStatus(endpoint + '/', 2_000)) === 200) break;
      if (Date.now() > deadline) throw new RgwStartError(`radosgw did not answer HTTP 200 on ${endpoint} within ${opts.timeoutMs} ms`);
      await sleep(250);
    }
    opts.log(`ceph-rgw: radosgw up after ${Date.now() - t0} ms`);
    stage = 'user';
    const accessKeyId = 'MODELCTLTEST' + randomBytes(4).toString('hex').toUpperCase();
    const secretAccessKey = randomBytes(30).toString('base64url');
    await cluster.run(
      bins['radosgw-admin'],
      ['user', 'create', '--uid=modelctl-test', '--display-name=modelctl test', `--access-key=${accessKeyId}`, `--secret=${secretAccessKey}`, '--max-buckets=100000'],
      left(),
    );
    // Warm up: the bucket index/data pools are created on first use (a few
    // paxos rounds); do it now so the first test is not the slow one. Also
    // proves the credentials work.
    stage = 'warm-up';
    const warm = new S3Client({ endpoint, region: REGION, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey }, maxAttempts: 1 });
    try {
      const Bucket = `warmup-${randomBytes(4).toString('hex')}`;
      await warm.send(new CreateBucketCommand({ Bucket }));
      await warm.send(new PutObjectCommand({ Bucket, Key: 'warmup', Body: 'ok' }));
      await warm.send(new DeleteObjectCommand({ Bucket, Key: 'warmup' }));
      await warm.send(new DeleteBucketCommand({ Bucket }));
    } finally {
      warm.destroy();
    }
    opts.log(`ceph-rgw: ready at ${endpoint} in ${Date.now() - t0} ms (dir ${dir})`);
    let stopped: Promise<void> | undefined;
    return {
      endpoint,
      accessKeyId,
      secretAccessKey,
      region: REGION,
      dir,
      stop: () =>
        (stopped ??= cluster.stop(opts.keepDir).then(() => {
          // A dir kept on request is not swept by later starts.
          if (opts.keepDir) rmSync(join(dir, 'owner.pid'), { force: true });
        })),
    };
  } catch (err) {
    const logs =
      stage === 'mon'
        ? ['mon.out', 'mon.a.log', 'client.admin.log']
        : stage === 'osd'
          ? ['osd.out', 'osd.0.log', 'mon.a.log']
          : ['rgw.out', 'client.rgw.test.log', 'osd.0.log', 'mon.a.log'];
    const detail = logs.map((l) => `--- ${l} ---\n${tail(join(dir, 'log', l), 25)}`).join('\n');
    await cluster.stop(true);
    const msg = err instanceof Error ? err.message : String(err);
    const e = new RgwStartError(`Ceph RGW start-up failed at stage "${stage}" after ${Date.now() - t0} ms: ${msg}\n${detail}\n(logs kept in ${dir})`);
    e.cause = err;
    e.dir = dir;
    throw e;
  }
}

/**
 * Start a fresh single-node Ceph RGW on 127.0.0.1 (random free ports).
 * Retries once with new ports if a daemon dies early (e.g. a port race).
 */
export async function startRgw(opts: StartRgwOptions = {}): Promise<RgwHandle> {
  const o = {
    timeoutMs: opts.timeoutMs ?? 180_000,
    memstoreBytes: opts.memstoreBytes ?? 4 * 1024 ** 3,
    keepDir: opts.keepDir ?? false,
    log: opts.log ?? (() => {}),
  };
  try {
    return await startOnce(o);
  } catch (err) {
    if (!(err instanceof RgwStartError && /during start-up/.test(err.message))) throw err;
    const first = err.message.split('\n')[0];
    o.log(`ceph-rgw: first attempt failed (${first}), retrying with new ports`);
    try {
      const h = await startOnce(o);
      if (err.dir) await rm(err.dir, { recursive: true, force: true });
      return h;
    } catch (err2) {
      if (err2 instanceof Error) err2.message += `\n(an earlier attempt failed too: ${first}; its logs are in ${err.dir})`;
      throw err2;
    }
  }
}

/** Handle published by global-setup in env vars, if any. Throws the global-setup error if it failed. */
export function rgwFromEnv(): RgwHandle | undefined {
  const error = process.env[ENV.error];
  if (error) throw new RgwStartError(`Ceph RGW (started by the test global setup) is not available:\n${error}`);
  const endpoint = process.env[ENV.endpoint];
  const accessKeyId = process.env[ENV.accessKeyId];
  const secretAccessKey = process.env[ENV.secretAccessKey];
  if (!endpoint || !accessKeyId || !secretAccessKey) return undefined;
  return { endpoint, accessKeyId, secretAccessKey, region: process.env[ENV.region] || REGION, stop: async () => {} };
}

export function publishToEnv(h: RgwHandle): void {
  process.env[ENV.endpoint] = h.endpoint;
  process.env[ENV.accessKeyId] = h.accessKeyId;
  process.env[ENV.secretAccessKey] = h.secretAccessKey;
  process.env[ENV.region] = h.region;
  delete process.env[ENV.error];
}

let shared: Promise<RgwHandle> | undefined;

/**
 * The RGW for this test run: the one from global setup (env), else one started
 * for this process on first call and stopped when the process is done.
 * Its `stop()` is a no-op: the owner stops it.
 */
export function sharedRgw(): Promise<RgwHandle> {
  if (shared) return shared;
  const fromEnv = rgwFromEnv();
  if (fromEnv) return (shared = Promise.resolve(fromEnv));
  shared = startRgw({ log: process.env.MODELCTL_TEST_VERBOSE ? (m) => console.error(m) : undefined }).then((h) => {
    let stopping = false;
    // Async, clean stop once the test file has nothing left to do.
    process.on('beforeExit', () => {
      if (stopping) return;
      stopping = true;
      void h.stop();
    });
    return { ...h, stop: async () => {} };
  });
  // A failure is cached on purpose: every test of this process fails fast with the same message.
  return shared;
}

export interface TestS3 {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** Config for `new S3Client(...)`: endpoint, region, credentials, forcePathStyle. */
  config(overrides?: Partial<S3ClientConfig>): S3ClientConfig;
  /** A new S3Client on the shared RGW (overrides e.g. `{ endpoint: proxy.endpoint }`). */
  client(overrides?: Partial<S3ClientConfig>): S3Client;
  /** Create a fresh, uniquely named bucket and return its name. */
  newBucket(prefix?: string): Promise<string>;
}

let bucketSeq = 0;

/** One call for a test file: the shared RGW plus helpers. */
export async function testS3(): Promise<TestS3> {
  const h = await sharedRgw();
  const config = (overrides: Partial<S3ClientConfig> = {}): S3ClientConfig => ({
    endpoint: h.endpoint,
    region: h.region,
    forcePathStyle: true,
    credentials: { accessKeyId: h.accessKeyId, secretAccessKey: h.secretAccessKey },
    ...overrides,
  });
  let admin: S3Client | undefined;
  return {
    endpoint: h.endpoint,
    accessKeyId: h.accessKeyId,
    secretAccessKey: h.secretAccessKey,
    region: h.region,
    config,
    client: (overrides) => new S3Client(config(overrides)),
    async newBucket(prefix = 't') {
      admin ??= new S3Client(config());
      const clean = prefix.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 30) || 't';
      const name = `${clean}-${process.pid}-${++bucketSeq}-${randomBytes(3).toString('hex')}`.slice(0, 63);
      await admin.send(new CreateBucketCommand({ Bucket: name }));
      return name;
    },
  };
}

/** Read a daemon log of a handle (debug aid). */
export async function readRgwLog(h: RgwHandle, file = 'client.rgw.test.log'): Promise<string> {
  if (!h.dir) return '';
  return readFile(join(h.dir, 'log', file), 'utf8').catch(() => '');
}
