/**
 * Measure 11: push and pull of a 2 GiB bundle (2 × 1 GiB random weights) to and from a real S3 —
 * a throw-away Ceph RGW started here, on loopback — by modelctl and, side by side in the same
 * run, by `aws s3 cp --recursive` and `rclone copy` (Debian's awscli and rclone, at /usr/bin;
 * a peer that is absent is skipped and said so). Plus modelctl's peak RSS while pushing.
 *
 *   node dist/bench/s3.js [--quick] [--cli <bin/run.js>]   alone (sizes ÷ 8 with --quick)
 *
 * The RGW keeps every byte in RAM (memstore, ~2× what is stored), so at most one 2 GiB copy is
 * stored at a time: modelctl pushes, the three tools pull that copy, it is deleted; then each
 * peer pushes its own copy, which is deleted (and RGW's garbage collector waited for) before the
 * next one. That round runs twice (once with --quick); each tool's figure is its best round.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { CreateBucketCommand, DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { startRgw, type RgwHandle } from '../test/infra/ceph-rgw.js';
import { writeRandomFile } from './data.js';
import { standaloneReport, type BenchRow } from './report.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export interface S3BenchOptions {
  /** Bytes of each of the two weight files. */
  fileBytes: number;
  /** `bin/run.js` of the CLI under test. */
  cli: string;
  /** Scratch directory (removed by the caller). */
  dir: string;
  /** Environment of the modelctl children (MODELCTL_* cleaned by the caller). */
  env: NodeJS.ProcessEnv;
  /** Also run the peers with more parallelism than their defaults (see tunedPeers). */
  tuned: boolean;
  /** Rounds of every push and pull, alternating the tools; each tool's best round is its figure. */
  rounds: number;
}

export const AWS = '/usr/bin/aws';
export const RCLONE = '/usr/bin/rclone';
const RSS_TARGET_MB = 250;

interface Timed {
  ms: number;
  load: number;
  code: number | null;
  stderr: string;
  stdout: string;
  hwmKb: number;
  /** CPU seconds (user + sys, every thread) of the child, from /proc/<pid>/stat polled every 20 ms (undefined off Linux). */
  cpuS: number | undefined;
  /** CPU seconds the RGW's daemons (mon, osd, radosgw) used meanwhile. */
  serverCpuS?: number | undefined;
}

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ: 100 on Linux). */
const USER_HZ = 100;

/** utime + stime of a live process in seconds, or undefined once it is gone. */
function cpuOf(pid: number | undefined): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces), closed by the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / USER_HZ;
  } catch {
    return undefined;
  }
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const load = os.loadavg()[0]!;
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    let hwmKb = 0;
    let cpuS: number | undefined;
    const poller = setInterval(() => {
      cpuS = cpuOf(child.pid) ?? cpuS;
      try {
        const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) hwmKb = Math.max(hwmKb, Number(m[1]));
      } catch {
        /* exited */
      }
    }, 20);
    const timer = setTimeout(() => child.kill('SIGKILL'), 15 * 60_000);
    child.on('error', (e) => {
      clearInterval(poller);
      clearTimeout(timer);
      reject(e);
    });
    child.on('exit', () => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      clearInterval(poller);
      clearTimeout(timer);
      child.once('close', (code) => resolve({ ms, load, code, hwmKb, cpuS, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
    });
  });
}

async function runOk(label: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<Timed> {
  const r = await run(cmd, args, env, cwd);
  if (r.code !== 0) throw new Error(`${label}: ${path.basename(cmd)} ${args.join(' ')} exited ${r.code}: ${r.stdout.slice(-1000)} ${r.stderr.slice(-1500)}`);
  return r;
}

const fmtS = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const fmtGiB = (b: number) => (b >= GiB ? `${(b / GiB).toFixed(0)} GiB` : `${(b / MiB).toFixed(0)} MiB`);
const rate = (bytes: number, ms: number) => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;
const withLoad = (t: Timed) => `${fmtS(t.ms)} (load ${t.load.toFixed(1)})`;
/** CPU seconds per GiB moved (user + sys): on a shared machine, far steadier than wall time. */
const cpuPerGiB = (t: Timed, bytes: number) => (t.cpuS === undefined ? undefined : t.cpuS / (bytes / GiB));
const fmtCpu = (t: Timed, bytes: number) => {
  const c = cpuPerGiB(t, bytes);
  return c === undefined ? 'n/a' : `${c.toFixed(2)} CPU s/GiB`;
};

/** CPU seconds used so far by the RGW's daemons (every process started in its directory), or undefined off Linux. */
function rgwCpu(h: RgwHandle): number | undefined {
  if (!h.dir) return undefined;
  try {
    let sum = 0;
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(h.dir)) continue;
      } catch {
        continue;
      }
      sum += cpuOf(Number(pid)) ?? 0;
    }
    return sum;
  } catch {
    return undefined;
  }
}

/** Bytes the memstore OSD holds (RGW frees deleted objects some seconds later). */
function storedBytes(h: RgwHandle): number | undefined {
  if (!h.dir) return undefined;
  const r = spawnSync('ceph', ['-c', path.join(h.dir, 'ceph.conf'), 'df', '--format', 'json'], { encoding: 'utf8', timeout: 20_000 });
  try {
    return (JSON.parse(r.stdout) as { stats: { total_used_raw_bytes?: number; total_used_bytes?: number } }).stats.total_used_raw_bytes;
  } catch {
    return undefined;
  }
}

async function emptyPrefix(client: S3Client, bucket: string, prefix: string): Promise<void> {
  for (;;) {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (keys.length === 0) return;
    await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }));
  }
}

/** Delete a prefix and wait (≤ 90 s) until RGW's garbage collector gave the memory back. */
async function free(h: RgwHandle, client: S3Client, bucket: string, prefix: string, below: number, log: (m: string) => void): Promise<void> {
  await emptyPrefix(client, bucket, prefix);
  const deadline = Date.now() + 90_000;
  for (;;) {
    const used = storedBytes(h);
    if (used === undefined || used < below || Date.now() > deadline) return;
    log(`    waiting for RGW's garbage collector (${fmtGiB(used)} held)…`);
    await new Promise((r) => setTimeout(r, 5000));
  }
}

export async function benchS3(o: S3BenchOptions, log: (m: string) => void): Promise<{ rows: BenchRow[]; notes: string[] }> {
  const rows: BenchRow[] = [];
  const notes: string[] = [];
  const total = 2 * o.fileBytes;
  const label = `${fmtGiB(total)} (2 × ${fmtGiB(o.fileBytes)})`;
  const peers = { aws: existsSync(AWS), rclone: existsSync(RCLONE) };
  for (const [name, there] of Object.entries(peers)) {
    if (!there) notes.push(`S3: ${name} is not installed (${name === 'aws' ? AWS : RCLONE}; Debian package ${name === 'aws' ? 'awscli' : 'rclone'}): its column is skipped.`);
  }

  const bundle = path.join(o.dir, 'bundle');
  log(`    writing ${label} of random weights…`);
  for (const i of [1, 2]) await writeRandomFile(path.join(bundle, 'weights', `shard-${i}.bin`), o.fileBytes);
  await writeFile(path.join(bundle, 'bundle.yaml'), 'name: bench-s3\nversion: 1.0.0\ncomponents:\n  weights: [weights/]\n  prompts: []\n  preprocessing: []\n  config: []\n');

  log('    starting a Ceph RGW (memstore in RAM)…');
  // 4× what is stored at most: the memstore OSD goes "full osd" (and writes hang) well before its
  // size while deleted objects wait for RGW's garbage collector; memstore takes RAM only as used.
  const h = await startRgw({ memstoreBytes: Math.max(total * 4, 1 * GiB) });
  try {
    const bucket = 'bench';
    const client = new S3Client({ endpoint: h.endpoint, region: h.region, forcePathStyle: true, credentials: { accessKeyId: h.accessKeyId, secretAccessKey: h.secretAccessKey } });
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    const aws = { AWS_ACCESS_KEY_ID: h.accessKeyId, AWS_SECRET_ACCESS_KEY: h.secretAccessKey, AWS_REGION: h.region, AWS_DEFAULT_REGION: h.region };
    const base: NodeJS.ProcessEnv = { ...process.env, ...aws };
    delete base.AWS_CA_BUNDLE; // rclone fails while it points at a CA file; the RGW is plain HTTP
    delete base.AWS_PROFILE;
    const home = path.join(o.dir, 'home');
    const mEnv: NodeJS.ProcessEnv = { ...o.env, ...aws, AWS_ENDPOINT_URL_S3: h.endpoint, MODELCTL_S3_PATH_STYLE: 'true', MODELCTL_HOME: home };
    delete mEnv.AWS_CA_BUNDLE;
    const awsCfg = path.join(o.dir, 'aws-config');
    await writeFile(awsCfg, `[default]\nregion = ${h.region}\n`);
    const awsTuned = path.join(o.dir, 'aws-config-tuned');
    await writeFile(awsTuned, `[default]\nregion = ${h.region}\ns3 =\n  max_concurrent_requests = 20\n  multipart_chunksize = 16MB\n`);
    const awsEnv = (cfg: string) => ({ ...base, AWS_CONFIG_FILE: cfg, AWS_SHARED_CREDENTIALS_FILE: path.join(o.dir, 'none') });
    const rcloneEnv = {
      ...base,
      RCLONE_CONFIG: path.join(o.dir, 'rclone.conf'), // absent: the remote comes from the variables below
      RCLONE_CONFIG_RGW_TYPE: 's3',
      RCLONE_CONFIG_RGW_PROVIDER: 'Ceph',
      RCLONE_CONFIG_RGW_ENDPOINT: h.endpoint,
      RCLONE_CONFIG_RGW_ACCESS_KEY_ID: h.accessKeyId,
      RCLONE_CONFIG_RGW_SECRET_ACCESS_KEY: h.secretAccessKey,
      RCLONE_CONFIG_RGW_REGION: h.region,
    };
    const awsArgs = (from: string, to: string) => ['s3', 'cp', '--recursive', '--only-show-errors', '--endpoint-url', h.endpoint, from, to];
    const rcloneArgs = (from: string, to: string, tuned: boolean) => ['copy', from, to, ...(tuned ? ['--transfers', '8', '--multi-thread-streams', '8', '--s3-upload-concurrency', '8', '--s3-chunk-size', '16M'] : [])];

    // modelctl push, with its peak RSS (getrusage maxRSS from a --import preload, as measure 4).
    const preload = path.join(o.dir, 'rss-preload.mjs');
    const rssFile = path.join(o.dir, 'rss.txt');
    await writeFile(
      preload,
      `import { writeFileSync } from 'node:fs';\nimport { isMainThread } from 'node:worker_threads';\nif (isMainThread) process.on('exit', () => { try { writeFileSync(${JSON.stringify(rssFile)}, String(process.resourceUsage().maxRSS)); } catch {} });\n`,
    );
    // Rounds alternate the tools, and each row takes every tool's best round. On these shared 2-core
    // machines the RGW's own CPU for the same 2 GiB varies 2–3× from run to run (perf: most of it is
    // the kernel zeroing fresh pages for the OSD's buffers, which the VM's host backs lazily), and
    // whoever ran first in a fresh RGW paid the most; its CPU per run is in the notes.
    const pushRuns: Record<string, Timed[]> = {};
    const pullRuns: Record<string, Timed[]> = {};
    const timed = async (what: string, runs: Record<string, Timed[]>, name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Timed> => {
      const before = rgwCpu(h);
      const t = await runOk(`${name} ${what}`, cmd, args, env, o.dir);
      const after = rgwCpu(h);
      t.serverCpuS = before === undefined || after === undefined ? undefined : after - before;
      (runs[name] ??= []).push(t);
      return t;
    };
    let rssKb = 0;
    for (let round = 1; round <= o.rounds; round++) {
      const prefix = `m${round}`;
      log(`    round ${round}/${o.rounds}: modelctl push ${label}…`);
      const mPush = await timed('push', pushRuns, 'modelctl', process.execPath, ['--import', pathToFileURL(preload).href, o.cli, 'bundle', 'push', bundle, '--store', `s3://${bucket}/${prefix}`, '--json'], mEnv);
      const pushed = JSON.parse(mPush.stdout) as { uploadedBytes: number; digest: string };
      if (pushed.uploadedBytes !== total) throw new Error(`modelctl pushed ${pushed.uploadedBytes} bytes, expected ${total}`);
      rssKb = Math.max(rssKb, Number(await readFile(rssFile, 'utf8').catch(() => '0')) || mPush.hwmKb);

      log(`    round ${round}/${o.rounds}: modelctl pull…`);
      await timed('pull', pullRuns, 'modelctl', process.execPath, [o.cli, 'bundle', 'pull', 'bench-s3@1.0.0', '-o', path.join(o.dir, 'pulled-m'), '--store', `s3://${bucket}/${prefix}`], mEnv);
      await rm(path.join(o.dir, 'pulled-m'), { recursive: true, force: true });
      await rm(home, { recursive: true, force: true });

      // The peers pull the very objects modelctl stored (its blobs/ prefix: the two 1 GiB blobs).
      const pullPeer = async (name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv) => {
        const out = path.join(o.dir, `pulled-${name}`);
        log(`    round ${round}/${o.rounds}: ${name} pull…`);
        await timed('pull', pullRuns, name, cmd, args.map((a) => a.replace('{out}', out)), env);
        await rm(out, { recursive: true, force: true });
      };
      const blobs = `${bucket}/${prefix}/blobs`;
      if (peers.aws) await pullPeer('aws', AWS, awsArgs(`s3://${blobs}/`, '{out}'), awsEnv(awsCfg));
      if (peers.rclone) await pullPeer('rclone', RCLONE, rcloneArgs(`rgw:${blobs}`, '{out}', false), rcloneEnv);
      if (o.tuned && peers.aws) await pullPeer('aws (tuned)', AWS, awsArgs(`s3://${blobs}/`, '{out}'), awsEnv(awsTuned));
      if (o.tuned && peers.rclone) await pullPeer('rclone (tuned)', RCLONE, rcloneArgs(`rgw:${blobs}`, '{out}', true), rcloneEnv);
      await free(h, client, bucket, `${prefix}/`, total / 2, log);

      const pushPeer = async (name: string, prefix: string, cmd: string, args: string[], env: NodeJS.ProcessEnv) => {
        log(`    round ${round}/${o.rounds}: ${name} push…`);
        await timed('push', pushRuns, name, cmd, args, env);
        await free(h, client, bucket, prefix, total / 2, log);
      };
      const weights = path.join(bundle, 'weights');
      if (peers.aws) await pushPeer('aws', 'aws/', AWS, awsArgs(weights, `s3://${bucket}/aws/`), awsEnv(awsCfg));
      if (peers.rclone) await pushPeer('rclone', 'rclone/', RCLONE, rcloneArgs(weights, `rgw:${bucket}/rclone`, false), rcloneEnv);
      if (o.tuned && peers.aws) await pushPeer('aws (tuned)', 'aws/', AWS, awsArgs(weights, `s3://${bucket}/aws/`), awsEnv(awsTuned));
      if (o.tuned && peers.rclone) await pushPeer('rclone (tuned)', 'rclone/', RCLONE, rcloneArgs(weights, `rgw:${bucket}/rclone`, true), rcloneEnv);
    }
    const bestOf = (runs: Record<string, Timed[]>) => Object.fromEntries(Object.entries(runs).map(([n, ts]) => [n, ts.reduce((a, b) => (b.ms < a.ms ? b : a))]));
    const { modelctl: mPush, ...pushes } = bestOf(pushRuns) as Record<string, Timed> & { modelctl: Timed };
    const { modelctl: mPull, ...pulls } = bestOf(pullRuns) as Record<string, Timed> & { modelctl: Timed };
    for (const [what, runs] of [['push', pushRuns], ['pull', pullRuns]] as const) {
      notes.push(
        `S3 ${what}, every round (wall / RGW's CPU during it): ` +
          Object.entries(runs)
            .map(([n, ts]) => `${n} ${ts.map((t) => `${fmtS(t.ms)} / ${t.serverCpuS === undefined ? 'n/a' : `${t.serverCpuS.toFixed(1)} CPU s`}`).join(', ')}`)
            .join('; ') +
          '.',
      );
    }

    const row = (what: string, mine: Timed, theirs: Record<string, Timed>) => {
      const defaults = Object.entries(theirs).filter(([n]) => !n.includes('tuned'));
      const best = defaults.sort((a, b) => a[1].ms - b[1].ms)[0];
      const ratio = best ? mine.ms / best[1].ms : undefined;
      rows.push({
        measure: `S3 ${what} ${label}, Ceph RGW on loopback`,
        modelctl: `${withLoad(mine)}, ${rate(total, mine.ms)}`,
        reference: Object.entries(theirs).map(([n, t]) => `${n} ${withLoad(t)}`).join('; ') || 'no peer installed',
        ratio: ratio === undefined ? '—' : `${ratio.toFixed(2)}× ${best![0]}`,
        target: '≤ 1.0× the fastest peer (defaults)',
        pass: ratio === undefined ? null : ratio <= 1.0,
      });
    };
    row('push', mPush, pushes);
    row('pull', mPull, pulls);
    const cpuRow = (what: string, mine: Timed, theirs: Record<string, Timed>) => {
      const defaults = Object.entries(theirs).filter(([n, t]) => !n.includes('tuned') && cpuPerGiB(t, total) !== undefined);
      const best = defaults.sort((a, b) => cpuPerGiB(a[1], total)! - cpuPerGiB(b[1], total)!)[0];
      const m = cpuPerGiB(mine, total);
      rows.push({
        measure: `S3 ${what} ${label}: CPU time (user + sys) per GiB`,
        modelctl: fmtCpu(mine, total),
        reference: Object.entries(theirs).map(([n, t]) => `${n} ${fmtCpu(t, total)}`).join('; ') || 'no peer installed',
        ratio: m === undefined || !best ? '—' : `${(m / cpuPerGiB(best[1], total)!).toFixed(2)}× ${best[0]}`,
        target: '— (information: steadier than wall time under load)',
        pass: null,
      });
    };
    cpuRow('push', mPush, pushes);
    cpuRow('pull', mPull, pulls);
    const mb = (rssKb * 1024) / 1e6;
    rows.push({
      measure: `peak RSS, \`bundle push\` ${label} → S3`,
      modelctl: `${mb.toFixed(0)} MB (load ${mPush.load.toFixed(1)})`,
      reference: Object.entries(pushes).map(([n, t]) => `${n} ${((t.hwmKb * 1024) / 1e6).toFixed(0)} MB (VmHWM polled)`).join('; ') || '—',
      ratio: '—',
      target: `≤ ${RSS_TARGET_MB} MB`,
      pass: mb <= RSS_TARGET_MB,
    });
    notes.push(
      `S3 (measure 11): modelctl push = pack (SHA-256 of every file) + upload (each part hashed again as it is read, so a file changed meanwhile is caught) + manifest + ref; modelctl pull = parallel ranged GETs into the blob cache of a fresh MODELCTL_HOME, SHA-256 of every byte, hard links into the output. Peers copy the files only (no digest of their own). MODELCTL_S3_CONCURRENCY / _PART_SIZE at their defaults (${o.env.MODELCTL_S3_CONCURRENCY ?? 8} × ${o.env.MODELCTL_S3_PART_SIZE ?? '8MiB'}). Tuned peers: aws max_concurrent_requests 20, multipart_chunksize 16MB; rclone --transfers 8 --multi-thread-streams 8 --s3-upload-concurrency 8 --s3-chunk-size 16M. Load average (1 min) is given beside each figure: on 2 shared cores RGW, the client and everyone else's work compete.`,
    );
    return { rows, notes };
  } finally {
    await h.stop();
  }
}

/** Standalone: `node dist/bench/s3.js [--quick] [--tuned] [--cli <path to bin/run.js>]`. */
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const quick = process.argv.includes('--quick');
  const dir = await import('node:fs/promises').then((f) => f.mkdtemp(path.join(os.tmpdir(), 'modelctl-bench-s3-')));
  try {
    // --cli <bin/run.js>: another build of modelctl (e.g. an older commit's, for before/after figures).
    const at = process.argv.indexOf('--cli');
    const cli = at > 0 && process.argv[at + 1] ? path.resolve(process.argv[at + 1]!) : new URL('../../bin/run.js', import.meta.url).pathname;
    const env = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith('MODELCTL_') && !k.startsWith('MODELCTL_S3_')) delete env[k];
    delete env.NODE_OPTIONS;
    const r = await benchS3({ fileBytes: quick ? 128 * MiB : GiB, cli, dir, env, tuned: process.argv.includes('--tuned'), rounds: quick ? 1 : 2 }, (m) => process.stderr.write(`[bench s3] ${m}\n`));
    process.stdout.write(standaloneReport(r.rows, r.notes));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
