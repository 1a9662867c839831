/**
 * `npm run bench`: performance report for modelctl's bundle commands and its local runtime.
 *
 *   node dist/bench/run.js            full run (a few minutes on 2 cores, ~4.2 GiB of temp disk at peak)
 *   node dist/bench/run.js --quick    every size divided by 8, shorter load phases (smoke run, about a minute)
 *   node dist/bench/run.js --only 1,3 run only some measures (1 pack 1 file, 2 pack 4 files,
 *                                     3 re-push bytes, 4 peak RSS, 5 startup,
 *                                     6 rollback latency, 7 router overhead; 6 and 7 share one runtime;
 *                                     8 detect: bad-canary detection simulation, pure, see bench/detect.ts;
 *                                     9 kube: Kubernetes API requests per canary step and 50 canaries at
 *                                     once, in-process against the fake API server; one full canary on
 *                                     the cluster in a box (real pods, needs root), see bench/kube.ts;
 *                                     10 fine-tune: bytes a push of 1% changed tensors uploads;
 *                                     11 S3: push/pull of 2 × 1 GiB to a Ceph RGW started for it, modelctl
 *                                     vs aws s3 cp and rclone side by side, push peak RSS, see bench/s3.ts;
 *                                     --s3-tuned also runs the peers with more parallelism;
 *                                     12 prompt-only change of a 2 GiB bundle deployed on the local
 *                                     runtime vs the tiny example: time to ready, bytes written)
 *   node dist/bench/run.js --keep     leave the temp dir behind (for poking at it afterwards)
 *   node dist/bench/run.js --in-place run the CLI from the repo rather than from a private copy (see snapshotCli)
 *
 * It always exits 0 when the measurements could be taken: this is a report, and the table's
 * `pass` column says which targets were met. It exits 1 only if the bench itself broke (a
 * command failed, disk too small…). All data lives in one temp dir under os.tmpdir(), removed at
 * the end, on failure, and on SIGINT/SIGTERM.
 *
 * Every modelctl measurement runs the real CLI (`node bin/run.js …`) as a child process, with the
 * same Node binary as this script, MODELCTL_HOME pointing into the temp dir and an explicit
 * --store, so nothing on the machine (a modelctl.yaml, MODELCTL_STORE, ~/.local/share) leaks in.
 * Measures 6 and 7 start that home's local runtime (MODELCTL_LOCAL_PORT=0: any free loopback
 * port) and always stop it again (`local down --forget`), on failure and on SIGINT/SIGTERM too;
 * their load comes from bench/load.ts, run as a separate process.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, statfsSync, symlinkSync } from 'node:fs';
import { appendFile, link, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { LoadResult, LoadSpec, Sample } from './load.js';
import { writeRandomFile } from './data.js';
import { markdownTable, type BenchRow } from './report.js';

// ---------------------------------------------------------------------------------------------
// Setup

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench/run.js → repo root
const NODE = process.execPath;

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const KEEP = argv.includes('--keep');
const IN_PLACE = argv.includes('--in-place');
const ONLY = (() => {
  const i = argv.findIndex((a) => a === '--only' || a.startsWith('--only='));
  if (i < 0) return undefined;
  const raw = argv[i]!.includes('=') ? argv[i]!.split('=')[1]! : (argv[i + 1] ?? '');
  return new Set(raw.split(',').map((s) => Number(s.trim())));
})();
const wanted = (n: number) => ONLY === undefined || ONLY.has(n);

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const SCALE = QUICK ? 8 : 1;
const sz = (bytes: number) => Math.floor(bytes / SCALE);

const SIZES = {
  single: sz(GiB), // measure 1 (and reused as half of measure 4's bundle)
  quarter: sz(256 * MiB), // measure 2: four of these (and the other half of measure 4's bundle)
  repushWeight: sz(100 * MiB), // measure 3: two weight files
  fineTuneTensor: sz(5 * MiB), // measure 10: 200 tensors of this size (~1 GiB of safetensors)
  prompts: 20,
  promptBytes: 4 * 1024,
};
const TIMED_RUNS = 5; // best of 5 after one warm-up run: a second each, and the shared machine's noise comes in bursts
const STARTUP_RUNS = 11; // median of 11 after one warm-up run
const RSS_TARGET_MB = 250;
/** Measures 6 and 7 (local runtime). Load is open-loop and bounded (maxInFlight), loopback only. */
const LOCAL = {
  /** Bad versions deployed (and rolled back) one after the other under one steady load. */
  rollbackReps: QUICK ? 2 : 5,
  /** 200 req/s: the 20% canary gets one request every 25 ms, the client-side view's resolution. */
  rollbackRps: 200,
  /** Share of requests the bad version fails (its config/model.json faults.errorRate). */
  badErrorRate: 0.5,
  deployFlags: ['--steps', '20,100', '--interval', '6s', '--check-every', '1s'],
  overheadRps: 1000,
  /** Rounds alternate direct → router, router → direct, so drift hits both alike. */
  overheadRounds: 2,
  overheadRoundMs: QUICK ? 1500 : 5000,
  overheadWarmupMs: QUICK ? 500 : 1000,
  maxInFlight: 256,
  /** wrk (closed loop, saturation), only if it is installed: connections and duration per target. */
  wrkConnections: 16,
  wrkSeconds: QUICK ? 2 : 5,
};
/** Per-child wall-clock limit: a hung command fails the bench instead of hanging it. */
const CHILD_TIMEOUT_MS = (QUICK ? 2 : 10) * 60_000;

const tmpRoot = await mkdtemp(path.join(os.tmpdir(), 'modelctl-bench-'));
const HOME = path.join(tmpRoot, 'home');
const childEnv: NodeJS.ProcessEnv = { ...process.env, MODELCTL_HOME: HOME, NO_COLOR: '1' };
delete childEnv.MODELCTL_STORE;
delete childEnv.MODELCTL_S3_PATH_STYLE;
delete childEnv.NODE_OPTIONS; // a stray --inspect or --max-old-space-size would skew every number
delete childEnv.MODELCTL_TARGET;
delete childEnv.MODELCTL_STEPS;
delete childEnv.MODELCTL_INTERVAL;
childEnv.MODELCTL_LOCAL_PORT = '0'; // the local runtime of measures 6 and 7: any free port, never 8700

/**
 * The CLI under test runs from a private copy of the build made at start-up (bin/, dist/src/,
 * package.json, oclif.manifest.json; node_modules symlinked back to the repo), not from the working
 * tree: the bench takes minutes, and anyone running `npm run build` meanwhile rewrites dist/ file by
 * file, so a child could import a half-written module ("does not provide an export named …").
 * Module resolution, the oclif manifest and therefore start-up cost are the same as in place.
 */
function snapshotCli(): string {
  if (IN_PLACE) return path.join(ROOT, 'bin', 'run.js');
  const dest = path.join(tmpRoot, 'cli');
  cpSync(path.join(ROOT, 'bin'), path.join(dest, 'bin'), { recursive: true });
  cpSync(path.join(ROOT, 'dist', 'src'), path.join(dest, 'dist', 'src'), { recursive: true, filter: (f) => !f.endsWith('.map') });
  for (const f of ['package.json', 'oclif.manifest.json']) if (existsSync(path.join(ROOT, f))) cpSync(path.join(ROOT, f), path.join(dest, f));
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dest, 'node_modules'), 'dir');
  return path.join(dest, 'bin', 'run.js');
}
const CLI = snapshotCli();
/**
 * The load generator (bench/load.ts), copied for the same reason as the CLI. It imports
 * `../src/targets/local/load.js`, so it goes where that path resolves inside the copy:
 * `<copy>/dist/bench/load.js` next to `<copy>/dist/src/`.
 */
const LOAD_SCRIPT = (() => {
  const src = fileURLToPath(new URL('./load.js', import.meta.url));
  if (IN_PLACE) return src;
  const dest = path.join(tmpRoot, 'cli', 'dist', 'bench', 'load.js');
  mkdirSync(path.dirname(dest), { recursive: true });
  copyFileSync(src, dest);
  return dest;
})();

let cleanedUp = false;
function cleanup(): void {
  if (cleanedUp) return;
  cleanedUp = true;
  if (KEEP) {
    process.stderr.write(`(--keep) temp data left in ${tmpRoot}\n`);
    return;
  }
  rmSync(tmpRoot, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    process.stderr.write(`\n${sig}: removing ${tmpRoot}\n`);
    for (const c of running) c.kill('SIGKILL');
    stopLocalSync();
    cleanup();
    process.exit(130);
  });
}
// Also on a crash (an uncaught error ends the process through 'exit' too): stop the runtime this
// bench started before its home is removed, else its daemon and models outlive their files.
process.once('exit', () => {
  try {
    for (const c of running) c.kill('SIGKILL'); // a deploy or load generator still in flight
    stopLocalSync();
  } finally {
    cleanup();
  }
});

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

// ---------------------------------------------------------------------------------------------
// Child processes

interface RunResult {
  ms: number;
  stdout: string;
  stderr: string;
  code: number | null;
  /** Highest VmHWM seen while polling /proc/<pid>/status (kB), a cross-check for peak RSS. */
  polledHwmKb: number;
}

const running = new Set<ReturnType<typeof spawn>>();

/**
 * Run a command to completion, timing wall clock from spawn to exit. stdout/stderr are captured
 * (modelctl's stderr progress lines are ignored unless the command fails). With `pollHwm`, reads
 * VmHWM from /proc/<pid>/status every 20 ms while it runs.
 */
function run(cmd: string, args: string[], opts: { pollHwm?: boolean; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { env: opts.env ? { ...childEnv, ...opts.env } : childEnv, cwd: opts.cwd ?? tmpRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    let polledHwmKb = 0;
    const poll = () => {
      try {
        const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) polledHwmKb = Math.max(polledHwmKb, Number(m[1]));
      } catch {
        /* exited, or no /proc */
      }
    };
    const poller = opts.pollHwm ? setInterval(poll, 20) : undefined;
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    child.on('error', (e) => {
      running.delete(child);
      clearTimeout(timer);
      if (poller) clearInterval(poller);
      reject(e);
    });
    child.on('exit', () => {
      // 'exit' fires before stdio 'close': the ms stops at process exit, not at pipe drain.
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      child.once('close', (code) => {
        running.delete(child);
        clearTimeout(timer);
        if (poller) clearInterval(poller);
        resolve({ ms, code, polledHwmKb, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
      });
    });
  });
}

async function runOk(cmd: string, args: string[], opts: { pollHwm?: boolean; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(`${path.basename(cmd)} ${args.join(' ')} exited ${r.code}\n--- stdout\n${r.stdout.slice(-2000)}\n--- stderr\n${r.stderr.slice(-2000)}`);
  }
  return r;
}

/** `node [nodeArgs] bin/run.js args…` */
function modelctl(args: string[], opts: { nodeArgs?: string[]; pollHwm?: boolean } = {}): Promise<RunResult> {
  return runOk(NODE, [...(opts.nodeArgs ?? []), CLI, ...args], opts);
}

async function modelctlJson<T>(args: string[], opts: { nodeArgs?: string[]; pollHwm?: boolean } = {}): Promise<{ r: RunResult; json: T }> {
  const r = await modelctl([...args, '--json'], opts);
  return { r, json: JSON.parse(r.stdout) as T };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

// ---------------------------------------------------------------------------------------------
// Data

function bundleYaml(name: string, version: string, components: Record<'weights' | 'prompts' | 'preprocessing' | 'config', string[]>): string {
  const list = (xs: string[]) => `[${xs.join(', ')}]`;
  return [
    `name: ${name}`,
    `version: ${version}`,
    'components:',
    `  weights: ${list(components.weights)}`,
    `  prompts: ${list(components.prompts)}`,
    `  preprocessing: ${list(components.preprocessing)}`,
    `  config: ${list(components.config)}`,
    '',
  ].join('\n');
}

const WEIGHTS_ONLY = { weights: ['weights/'], prompts: [], preprocessing: [], config: [] };

// ---------------------------------------------------------------------------------------------
// Report

type Row = BenchRow;
const rows: Row[] = [];
const notes: string[] = [];

const fmtMs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);
const fmtBytes = (b: number) =>
  b >= GiB ? `${(b / GiB).toFixed(2)} GiB` : b >= MiB ? `${(b / MiB).toFixed(1)} MiB` : b >= 1024 ? `${(b / 1024).toFixed(1)} KiB` : `${b} B`;
const mbps = (bytes: number, ms: number) => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;

function failedRow(measure: string, target: string, err: unknown): void {
  rows.push({ measure, modelctl: 'error', reference: '—', ratio: '—', target, pass: undefined });
  notes.push(`${measure}: ${(err as Error).message.split('\n').slice(0, 6).join(' | ')}`);
  log(`FAILED ${measure}: ${(err as Error).stack ?? String(err)}`);
}

// ---------------------------------------------------------------------------------------------
// Measures

interface PackJson {
  name: string;
  version: string;
  digest: string;
  size: number;
  files: number;
}
interface PushJson {
  ref: string;
  digest: string;
  uploadedBytes: number;
  reusedBytes: number;
}

/** 1 & 2: `bundle pack` vs `openssl dgst -sha256` over the same files, warm cache, best of TIMED_RUNS. */
async function packVsOpenssl(measure: string, dir: string, files: string[], factor: number): Promise<void> {
  const target = `≤ ${factor}× openssl`;
  try {
    const total = files.reduce((n, f) => n + statSync(f).size, 0);
    const m = { all: [] as number[], best: Infinity };
    const o = { all: [] as number[], best: Infinity };
    const packOnce = async () => {
      const { r, json } = await modelctlJson<PackJson>(['bundle', 'pack', dir]);
      if (json.size !== total || json.files !== files.length) throw new Error(`pack reported ${json.files} files / ${json.size} bytes, expected ${files.length} / ${total}`);
      return r;
    };
    const opensslOnce = () => runOk('openssl', ['dgst', '-sha256', ...files]);
    // One warm-up each (page cache), then alternate the two so background load hits both alike.
    await packOnce();
    await opensslOnce();
    for (let i = 0; i < TIMED_RUNS; i++) {
      m.all.push((await packOnce()).ms);
      o.all.push((await opensslOnce()).ms);
    }
    m.best = Math.min(...m.all);
    o.best = Math.min(...o.all);
    const ratio = m.best / o.best;
    rows.push({ measure, modelctl: fmtMs(m.best), reference: fmtMs(o.best), ratio: `${ratio.toFixed(2)}×`, target, pass: ratio <= factor });
    notes.push(
      `${measure}: modelctl runs ${m.all.map(fmtMs).join(', ')} (${mbps(total, m.best)} incl. process start-up); ` +
        `openssl runs ${o.all.map(fmtMs).join(', ')} (${mbps(total, o.best)}).`,
    );
  } catch (err) {
    failedRow(measure, target, err);
  }
}

/** 3: bytes re-uploaded after one prompt changes. */
async function repushBytes(): Promise<void> {
  const measure = 're-push after 1 prompt changed: uploaded / bundle bytes';
  const target = '< 1%';
  const dir = path.join(tmpRoot, 'repush');
  const store = pathToFileURL(path.join(tmpRoot, 'store-repush')).href;
  try {
    await writeRandomFile(path.join(dir, 'weights', 'model-00001.bin'), SIZES.repushWeight);
    await writeRandomFile(path.join(dir, 'weights', 'model-00002.bin'), SIZES.repushWeight);
    for (let i = 0; i < SIZES.prompts; i++) {
      const p = path.join(dir, 'prompts', `prompt-${String(i).padStart(2, '0')}.txt`);
      await mkdir(path.dirname(p), { recursive: true });
      await writeFile(p, `Prompt ${i}.\n${randomText(SIZES.promptBytes)}\n`);
    }
    await mkdir(path.join(dir, 'config'), { recursive: true });
    await writeFile(path.join(dir, 'config', 'config.json'), `${JSON.stringify({ temperature: 0.2, max_tokens: 512 }, null, 2)}\n`);
    await writeFile(path.join(dir, 'bundle.yaml'), bundleYaml('bench-repush', '1.0.0', { weights: ['weights/'], prompts: ['prompts/'], preprocessing: [], config: ['config/'] }));

    const v1 = (await modelctlJson<PushJson>(['bundle', 'push', dir, '--store', store])).json;
    await writeFile(path.join(dir, 'prompts', 'prompt-07.txt'), `Prompt 7, revised.\n${randomText(SIZES.promptBytes)}\n`);
    const v2 = (await modelctlJson<PushJson>(['bundle', 'push', dir, '--version', '1.0.1', '--store', store])).json;
    if (v1.digest === v2.digest) throw new Error('changing a prompt did not change the digest');
    const total = v2.uploadedBytes + v2.reusedBytes;
    const ratio = v2.uploadedBytes / total;
    rows.push({
      measure,
      modelctl: `${fmtBytes(v2.uploadedBytes)} of ${fmtBytes(total)}`,
      reference: `v1 push: ${fmtBytes(v1.uploadedBytes)}`,
      ratio: `${(ratio * 100).toFixed(3)}%`,
      target,
      pass: ratio < 0.01,
    });
    notes.push(`re-push: v1 uploaded ${v1.uploadedBytes} B (re-used ${v1.reusedBytes} B); v2 uploaded ${v2.uploadedBytes} B, re-used ${v2.reusedBytes} B.`);
  } catch (err) {
    failedRow(measure, target, err);
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(new URL(store), { recursive: true, force: true });
  }
}

/**
 * 10: tensor-level dedup. A ~1 GiB safetensors model of 200 tensors (5 MiB each, BF16) is pushed as
 * 1.0.0; a fine-tune rewrites 2 of them (1%) and is pushed as 1.1.0. Bytes the second push uploads
 * vs the changed tensors' bytes; time of each push. A `file://` store: which blobs a push uploads
 * is decided by the store-independent HEAD-and-skip in services/bundles.ts push, so the bytes are
 * those an S3 store would get.
 */
async function fineTuneBytes(): Promise<void> {
  const measure = 'fine-tune of 1% of tensors (2 of 200, ~1 GiB safetensors): uploaded / changed tensor bytes';
  const target = '≤ 2×';
  const dir = path.join(tmpRoot, 'finetune');
  const store = pathToFileURL(path.join(tmpRoot, 'store-finetune')).href;
  try {
    const { writeSafetensors, retrainTensor } = await import('../test/helpers/safetensors.js');
    const cols = 1024;
    const height = Math.max(1, Math.floor(SIZES.fineTuneTensor / (2 * cols)));
    const tensors = Array.from({ length: 200 }, (_, i) => ({ name: `model.layers.${String(i).padStart(3, '0')}.weight`, dtype: 'BF16', shape: [height, cols] }));
    const file = path.join(dir, 'weights', 'model.safetensors');
    await mkdir(path.dirname(file), { recursive: true });
    const size = await writeSafetensors(file, tensors);
    await mkdir(path.join(dir, 'prompts'), { recursive: true });
    await writeFile(path.join(dir, 'prompts', 'system.txt'), 'You are helpful.\n');
    await writeFile(path.join(dir, 'bundle.yaml'), bundleYaml('bench-finetune', '1.0.0', { weights: ['weights/'], prompts: ['prompts/'], preprocessing: [], config: [] }));
    const v1 = await modelctlJson<PushJson>(['bundle', 'push', dir, '--store', store]);
    const changed = (await retrainTensor(file, tensors, 'model.layers.042.weight')) + (await retrainTensor(file, tensors, 'model.layers.137.weight'));
    const v2 = await modelctlJson<PushJson>(['bundle', 'push', dir, '--version', '1.1.0', '--store', store]);
    const ratio = v2.json.uploadedBytes / changed;
    rows.push({
      measure,
      modelctl: `${fmtBytes(v2.json.uploadedBytes)} in ${fmtMs(v2.r.ms)}`,
      reference: `changed ${fmtBytes(changed)}; v1 push ${fmtBytes(v1.json.uploadedBytes)} in ${fmtMs(v1.r.ms)}`,
      ratio: `${ratio.toFixed(3)}×`,
      target,
      pass: ratio <= 2,
    });
    notes.push(
      `fine-tune: model ${size} B; v1 uploaded ${v1.json.uploadedBytes} B in ${fmtMs(v1.r.ms)}; v2 (2 tensors of ${changed / 2} B changed) uploaded ${v2.json.uploadedBytes} B, re-used ${v2.json.reusedBytes} B, in ${fmtMs(v2.r.ms)} (the push re-hashes the whole file to find what changed).`,
    );
  } catch (err) {
    failedRow(measure, target, err);
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(new URL(store), { recursive: true, force: true });
  }
}

function randomText(n: number): string {
  const words = ['the', 'model', 'answers', 'briefly', 'and', 'cites', 'sources', 'when', 'asked', 'about', 'policy'];
  const buf = Buffer.allocUnsafe(n);
  randomFillSync(buf);
  let s = '';
  for (let i = 0; s.length < n; i++) s += `${words[buf[i % n]! % words.length]} `;
  return s.slice(0, n);
}

/**
 * Peak RSS: the child runs with `--import <preload>`, which (main thread only) writes
 * process.resourceUsage().maxRSS at 'exit'. That is getrusage(RUSAGE_SELF).ru_maxrss: the kernel's
 * high-water mark of the whole process's resident set, so it includes every worker thread
 * (hash workers are threads, not processes) and cannot miss a short spike the way
 * sampling can. It does not count page cache (file data read or written), only the process's own
 * memory. As a cross-check, VmHWM (the same high-water mark) is polled from /proc/<pid>/status;
 * the last poll before exit can only be ≤ the true peak, so the preload's number is the one
 * reported, and the polled one is used only if the preload wrote nothing (killed by a signal).
 * (/usr/bin/time -f %M would report the same number, but it is not installed everywhere.)
 */
async function peakRss(): Promise<void> {
  const rssBundle = fmtBytes(SIZES.single + 4 * SIZES.quarter);
  const pushMeasure = `peak RSS, \`bundle push\` ${rssBundle} → fresh file:// store`;
  const pullMeasure = `peak RSS, \`bundle pull\` ${rssBundle} from file:// store`;
  const target = `≤ ${RSS_TARGET_MB} MB`;
  const dir = path.join(tmpRoot, 'rss');
  const storeDir = path.join(tmpRoot, 'store-rss');
  const store = pathToFileURL(storeDir).href;
  const pulled = path.join(tmpRoot, 'pulled');
  const preload = path.join(tmpRoot, 'rss-preload.mjs');
  await writeFile(
    preload,
    `import { writeFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
if (isMainThread && process.env.BENCH_RSS_FILE) {
  process.on('exit', () => { try { writeFileSync(process.env.BENCH_RSS_FILE, String(process.resourceUsage().maxRSS)); } catch {} });
}
`,
  );
  const measureRss = async (label: string, args: string[]): Promise<{ kb: number; polledKb: number; ms: number; json: unknown }> => {
    const rssFile = path.join(tmpRoot, `rss-${label}.txt`);
    childEnv.BENCH_RSS_FILE = rssFile;
    try {
      const { r, json } = await modelctlJson<unknown>(args, { nodeArgs: ['--import', pathToFileURL(preload).href], pollHwm: true });
      const reported = existsSync(rssFile) ? Number(await readFile(rssFile, 'utf8')) : 0;
      return { kb: reported || r.polledHwmKb, polledKb: r.polledHwmKb, ms: r.ms, json };
    } finally {
      delete childEnv.BENCH_RSS_FILE;
    }
  };
  const mb = (kb: number) => (kb * 1024) / 1e6;
  const rssRow = (measure: string, kb: number) =>
    rows.push({ measure, modelctl: `${mb(kb).toFixed(0)} MB`, reference: '—', ratio: '—', target, pass: mb(kb) <= RSS_TARGET_MB });

  try {
    // The 2 GiB bundle is the 1 GiB file of measure 1 plus the 4 × 256 MiB of measure 2, hard-linked
    // (no extra disk, no extra generation time); generated here if those measures were skipped.
    const sources = [path.join(tmpRoot, 'one', 'weights', 'model.bin'), ...[1, 2, 3, 4].map((i) => path.join(tmpRoot, 'four', 'weights', `shard-${i}.bin`))];
    for (const [i, src] of sources.entries()) {
      if (!existsSync(src)) await writeRandomFile(src, i === 0 ? SIZES.single : SIZES.quarter);
      const dest = path.join(dir, 'weights', path.basename(src));
      await mkdir(path.dirname(dest), { recursive: true });
      await link(src, dest);
    }
    await writeFile(path.join(dir, 'bundle.yaml'), bundleYaml('bench-rss', '1.0.0', WEIGHTS_ONLY));
    const total = SIZES.single + 4 * SIZES.quarter;

    const push = await measureRss('push', ['bundle', 'push', dir, '--store', store]);
    const pushJson = push.json as PushJson;
    if (pushJson.uploadedBytes !== total) throw new Error(`push uploaded ${pushJson.uploadedBytes} bytes, expected ${total} (store not fresh?)`);
    rssRow(pushMeasure, push.kb);
    notes.push(`push of ${fmtBytes(total)}: ${fmtMs(push.ms)} (${mbps(total, push.ms)}, hashing + copy + fsync); VmHWM polled: ${mb(push.polledKb).toFixed(0)} MB.`);

    // The source is not needed any more: free its disk before pulling (peak stays ≈ 2 × 2 GiB).
    await rm(dir, { recursive: true, force: true });
    await rm(path.join(tmpRoot, 'one'), { recursive: true, force: true });
    await rm(path.join(tmpRoot, 'four'), { recursive: true, force: true });

    const pull = await measureRss('pull', ['bundle', 'pull', 'bench-rss@1.0.0', '--output', pulled, '--store', store]);
    rssRow(pullMeasure, pull.kb);
    notes.push(`pull of ${fmtBytes(total)}: ${fmtMs(pull.ms)} (${mbps(total, pull.ms)}, read + verify + write); VmHWM polled: ${mb(pull.polledKb).toFixed(0)} MB.`);
  } catch (err) {
    if (!rows.some((r) => r.measure === pushMeasure)) failedRow(pushMeasure, target, err);
    failedRow(pullMeasure, target, err);
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(storeDir, { recursive: true, force: true });
    await rm(pulled, { recursive: true, force: true });
  }
}

/**
 * 5: process start-up, median of 11 runs each after one warm-up. `bundle --help` piped is printed
 * from the page rendered at build time (bin/help-cache.js); the information row runs the same page
 * through oclif (OCLIF_COLUMNS=80: same width, no cached page), the path every other command and a
 * terminal take: oclif from its build-time bundle, Config.load, the help renderer.
 */
async function startup(): Promise<void> {
  const target = '≤ 3× bare node';
  const medianOf = async (args: string[], env?: NodeJS.ProcessEnv) => {
    await runOk(NODE, args, { env });
    const ms: number[] = [];
    for (let i = 0; i < STARTUP_RUNS; i++) ms.push((await runOk(NODE, args, { env })).ms);
    return median(ms);
  };
  try {
    const bare = await medianOf(['-e', '0']);
    for (const [label, args, env, info] of [
      ['startup: `modelctl --version`', ['--version'], undefined, false],
      ['startup: `modelctl bundle --help`', ['bundle', '--help'], undefined, false],
      ['startup: `modelctl bundle --help` through oclif (OCLIF_COLUMNS=80, not the build-time page)', ['bundle', '--help'], { OCLIF_COLUMNS: '80' }, true],
    ] as const) {
      const t = await medianOf([CLI, ...args], env);
      const ratio = t / bare;
      rows.push({ measure: label, modelctl: fmtMs(t), reference: `${fmtMs(bare)} (node -e 0)`, ratio: `${ratio.toFixed(2)}×`, target: info ? '— (information)' : target, pass: info ? null : ratio <= 3 });
    }
  } catch (err) {
    failedRow('startup', target, err);
  }
}

// ---------------------------------------------------------------------------------------------
// Measures 6 and 7: the local runtime (one per bench run, in this bench's MODELCTL_HOME)

interface StatusJson {
  running: boolean;
  pid: number | null;
  url: string | null;
  versions: Array<{ model: string; version: string; pid: number | null; port: number | null; ready: boolean }>;
}
interface DeployJson {
  outcome: string;
  reason: string;
  rolledBackTo: string | null;
  events: Array<{ at: number; type: string; [k: string]: unknown }>;
}

interface LocalRuntime {
  store: string;
  /** Router base URL, e.g. http://127.0.0.1:41899. */
  url: string;
  daemonPid: number;
  stable: { version: string; port: number; pid: number };
  badDir: string;
}

let localStarted = false;
/** Daemon and model pids seen once the runtime was up (killed by pid if `local down` cannot stop them). */
const localPids = new Set<number>();

/** Push the example bundle as 1.0.0 and deploy it: that starts the runtime (any free port). */
async function startLocal(): Promise<LocalRuntime> {
  const src = path.join(tmpRoot, 'local-src');
  const store = pathToFileURL(path.join(tmpRoot, 'store-local')).href;
  const good = path.join(src, 'good');
  const badDir = path.join(src, 'bad');
  // The bundle is copied once, so an edit of bundles/example during the run cannot change it.
  cpSync(path.join(ROOT, 'bundles', 'example'), good, { recursive: true });
  cpSync(good, badDir, { recursive: true });
  const configFile = path.join(badDir, 'config', 'model.json');
  const config = JSON.parse(await readFile(configFile, 'utf8')) as { faults?: Record<string, number> };
  config.faults = { ...config.faults, errorRate: LOCAL.badErrorRate };
  await writeFile(configFile, `${JSON.stringify(config, null, 2)}\n`);

  await modelctl(['bundle', 'push', good, '--version', '1.0.0', '--store', store, '--json']);
  localStarted = true; // from here on, whatever happens, `local down --forget` runs at the end
  const { json: first } = await modelctlJson<DeployJson>(['deploy', 'sentiment@1.0.0', '--store', store]);
  if (first.outcome !== 'promoted') throw new Error(`deploy of 1.0.0: ${first.outcome} (${first.reason})`);
  const { json: status } = await modelctlJson<StatusJson>(['local', 'status']);
  const v = status.versions.find((x) => x.model === 'sentiment' && x.version === '1.0.0');
  if (!status.running || !status.url || !status.pid || !v?.port || !v.pid || !v.ready) throw new Error(`local status after deploy: ${JSON.stringify(status).slice(0, 400)}`);
  localPids.add(status.pid).add(v.pid);
  return { store, url: status.url, daemonPid: status.pid, stable: { version: '1.0.0', port: v.port, pid: v.pid }, badDir };
}

async function stopLocal(): Promise<void> {
  stopLocalSync();
}

/**
 * Stop the runtime this bench started, whatever state it is in: `local down --forget`, and if that
 * fails or leaves anything (it may refuse while a rollout holds the model), kill what `local status`
 * reported, plus the pids seen at start, by pid. Synchronous, so the 'exit' handler and the signal
 * handlers can run it too: the bench's home (the runtime's files) is removed right after.
 */
function stopLocalSync(): void {
  if (!localStarted) return;
  localStarted = false;
  const status = spawnSync(NODE, [CLI, 'local', 'status', '--json'], { env: childEnv, cwd: tmpRoot, encoding: 'utf8', timeout: 30_000 });
  const pids = new Set(localPids);
  try {
    const s = JSON.parse(status.stdout) as StatusJson;
    if (s.pid) pids.add(s.pid);
    for (const v of s.versions ?? []) if (v.pid) pids.add(v.pid);
  } catch {
    /* no status: the pids seen at start are all we know */
  }
  const down = spawnSync(NODE, [CLI, 'local', 'down', '--forget', '--json'], { env: childEnv, cwd: tmpRoot, encoding: 'utf8', timeout: 60_000 });
  if (down.status !== 0) log(`local down --forget failed (exit ${down.status ?? down.signal}): ${(down.stderr ?? '').slice(-500)}`);
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  let left = [...pids].filter(alive);
  if (left.length === 0) return;
  log(`runtime processes still running after \`local down\`: ${left.join(', ')}; stopping them`);
  for (const pid of left) process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && (left = left.filter(alive)).length > 0) spawnSync('sleep', ['0.1']);
  for (const pid of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone meanwhile */
    }
  }
}

interface LoadRun {
  pid: number;
  stop(): void;
  result: Promise<LoadResult>;
}

/** bench/load.ts as its own process; `stop()` closes its stdin, which ends the load early. */
function startLoad(spec: LoadSpec): LoadRun {
  const child = spawn(NODE, [LOAD_SCRIPT, JSON.stringify(spec)], { env: childEnv, cwd: tmpRoot, stdio: ['pipe', 'pipe', 'pipe'] });
  running.add(child);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  child.stdin.on('error', () => {});
  const timer = setTimeout(() => child.kill('SIGKILL'), spec.durationMs + (spec.warmupMs ?? 0) + 60_000);
  const result = new Promise<LoadResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      running.delete(child);
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`load generator exited ${code}: ${Buffer.concat(err).toString('utf8').slice(-1000)}`));
      try {
        resolve(JSON.parse(Buffer.concat(out).toString('utf8')) as LoadResult);
      } catch (e) {
        reject(e as Error);
      }
    });
  });
  // Awaited later (or never, if a deploy fails first): a generator that dies early must not be an
  // unhandled rejection that ends the bench before its clean-up.
  result.catch(() => undefined);
  return { pid: child.pid ?? 0, stop: () => child.stdin.end(), result };
}

/** CPU time (user + system, ms) a process has used so far, from /proc/<pid>/stat; undefined without /proc. */
const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  return Number(r.stdout?.trim()) || 100;
})();
function cpuMsOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK; // utime, stime: fields 14 and 15
  } catch {
    return undefined;
  }
}

const fmtLat = (ms: number | null) => (ms === null ? '—' : ms < 10 ? `${ms.toFixed(2)} ms` : fmtMs(ms));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

/** `modelctl deploy <args> --json`, whatever its exit code (a rollback exits 3), and its JSON when it printed some. */
async function deploy(args: string[]): Promise<{ r: RunResult; json: DeployJson | undefined }> {
  const r = await run(NODE, [CLI, 'deploy', ...args, '--json']);
  try {
    return { r, json: JSON.parse(r.stdout) as DeployJson };
  } catch {
    return { r, json: undefined };
  }
}

// The large bundle's weights are measures 1 and 2's files: 2 GiB, or 256 MiB with --quick.
const PROMPT_ONLY_MEASURE = `local deploy of a prompt-only change: time to ready and bytes written, ${fmtBytes(SIZES.single + 4 * SIZES.quarter)} bundle vs the tiny example`;
const PROMPT_ONLY_TARGET = '≤ 1.5× the tiny bundle\'s time, ≤ 1% of the weights\' bytes written';

/**
 * 12's sources: `tiny` (the example bundle) and `large` (the example plus `weights` hard-linked in,
 * 2 GiB with measures 1 and 2's files). Made before those files are removed.
 */
async function promptOnlySources(weights: string[]): Promise<{ tiny: string; large: string; weightBytes: number }> {
  const src = path.join(tmpRoot, 'prompt-src');
  const make = async (name: string, extra: string[]) => {
    const dir = path.join(src, name);
    cpSync(path.join(ROOT, 'bundles', 'example'), dir, { recursive: true });
    const yamlFile = path.join(dir, 'bundle.yaml');
    await writeFile(yamlFile, (await readFile(yamlFile, 'utf8')).replace(/^name: .*$/m, `name: ${name}`));
    for (const f of extra) linkSync(f, path.join(dir, 'weights', `extra-${path.basename(f)}`));
    return dir;
  };
  return { tiny: await make('tiny', []), large: await make('large', weights), weightBytes: weights.reduce((n, f) => n + statSync(f).size, 0) };
}

/** Bytes of the distinct files under `dir` (a hard-linked file counted once): what was written there. */
function bytesUnder(dir: string): number {
  const r = spawnSync('du', ['-sb', dir], { encoding: 'utf8' });
  const n = Number(r.stdout.split(/\s/)[0]);
  if (r.status !== 0 || !Number.isFinite(n)) throw new Error(`du -sb ${dir}: ${r.stderr}`);
  return n;
}

/**
 * 12: a prompt-only change of a large bundle, deployed on the local runtime, against the same
 * change of the tiny example. Each model: 1.0.0 pushed and deployed (the first deploy copies what
 * the home's blob cache does not hold yet), then 1.0.1 and 1.0.2, each with one prompt edited, pushed and deployed as a canary
 * (the faster of the two counts). Time to ready:
 * the deploy's `rollout-started` → `version-ready` (pull into the version's directory, process
 * start, readiness). Bytes written: growth of the bench's MODELCTL_HOME during that deploy (du,
 * hard links counted once), against the bytes of the weights.
 */
async function promptOnlyDeploy(rt: LocalRuntime, src: { tiny: string; large: string; weightBytes: number }): Promise<void> {
  try {
    const readyMs = (events: DeployJson['events']) => {
      const at = (type: string) => events.find((e) => e.type === type)?.at;
      const [from, deployed, to] = [at('rollout-started'), at('version-deployed'), at('version-ready')];
      if (from === undefined || deployed === undefined || to === undefined) throw new Error(`no rollout-started / version-deployed / version-ready in ${events.map((e) => e.type).join(', ')}`);
      return { ms: to - from, deployedMs: deployed - from };
    };
    const deployed = async (model: string, version: string, flags: string[]) => {
      const before = bytesUnder(HOME);
      // The canary's gates need traffic to judge (else the rollout is held): a light load for its length.
      const load = flags.length > 0 ? startLoad({ url: `${rt.url}/${model}/predict`, rps: 200, durationMs: 60_000, maxInFlight: LOCAL.maxInFlight, samples: false }) : undefined;
      try {
        // Promoted, or rolled back (exit 3) when the shared cores make a latency gate fail: the time to ready is measured either way.
        const { r, json } = await deploy([`${model}@${version}`, ...flags, '--store', rt.store]);
        if (!json || !['promoted', 'rolled-back'].includes(json.outcome)) throw new Error(`deploy of ${model}@${version}: exit ${r.code}, ${json?.outcome ?? '?'} (${json?.reason ?? r.stderr.slice(-500)})`);
        return { ...readyMs(json.events), bytes: bytesUnder(HOME) - before };
      } finally {
        load?.stop();
        await load?.result.catch(() => undefined);
      }
    };
    type Deployed = { ms: number; deployedMs: number; bytes: number };
    const results: Record<string, { first: Deployed; change: Deployed; changes: Deployed[] }> = {};
    for (const [model, dir] of [['tiny', src.tiny], ['large', src.large]] as const) {
      await modelctl(['bundle', 'push', dir, '--version', '1.0.0', '--store', rt.store, '--json']);
      const first = await deployed(model, '1.0.0', []);
      // Two changes, the faster one counted: one sample of a ~0.4 s deploy on a shared machine is noise.
      const changes: Deployed[] = [];
      for (const version of ['1.0.1', '1.0.2']) {
        await appendFile(path.join(dir, 'prompts', 'explain.txt'), `\nA prompt edited for ${version}.\n`);
        await modelctl(['bundle', 'push', dir, '--version', version, '--store', rt.store, '--json']);
        changes.push(await deployed(model, version, ['--steps', '50,100', '--interval', '2s', '--check-every', '500ms']));
      }
      results[model] = { first, change: changes.reduce((a, b) => (b.ms < a.ms ? b : a)), changes };
    }
    const { tiny, large } = results as Record<'tiny' | 'large', (typeof results)[string]>;
    const ratio = large.change.ms / tiny.change.ms;
    const share = large.change.bytes / src.weightBytes;
    rows.push({
      measure: PROMPT_ONLY_MEASURE,
      modelctl: `${fmtMs(large.change.ms)} to ready, ${fmtBytes(Math.max(0, large.change.bytes))} written (${(share * 100).toFixed(3)}% of ${fmtBytes(src.weightBytes)} of weights)`,
      reference: `tiny bundle: ${fmtMs(tiny.change.ms)} to ready`,
      ratio: `${ratio.toFixed(2)}×`,
      target: PROMPT_ONLY_TARGET,
      pass: ratio <= 1.5 && share <= 0.01,
    });
    notes.push(
      `prompt-only change: first deploys (what the home's blob cache does not hold yet is copied; after measure 4, whose pull used the same home, the weights are there already) — large ${fmtMs(large.first.ms)} to ready, ${fmtBytes(large.first.bytes)} written; ` +
        `tiny ${fmtMs(tiny.first.ms)}, ${fmtBytes(tiny.first.bytes)} written. The changes (one prompt edited, 1.0.1 then 1.0.2 as a 50% canary for 2 s under 200 req/s; the faster counts): large ${large.changes.map((c) => fmtMs(c.ms)).join(', ')}, ` +
        `${fmtBytes(Math.max(0, large.change.bytes))} written; tiny ${tiny.changes.map((c) => fmtMs(c.ms)).join(', ')}, ${fmtBytes(Math.max(0, tiny.change.bytes))} written (MODELCTL_HOME growth, du, hard links counted once; logs and ledger included). ` +
        `Of the time to ready, pull and process start (→ version-deployed): large ${fmtMs(large.change.deployedMs)}, tiny ${fmtMs(tiny.change.deployedMs)}; the rest is the wait for its readiness path.`,
    );
  } catch (err) {
    failedRow(PROMPT_ONLY_MEASURE, PROMPT_ONLY_TARGET, err);
  }
}

/**
 * 6: rollback latency. One steady open-loop load through the router for the whole measure; under
 * it, bad versions 1.1.0, 1.1.1, … (errorRate 0.5) are deployed one after the other, and each is
 * rolled back by the error-rate gate.
 *
 * Engine view, from the deploy's JSON events: the failing gate evaluation (the last `gate-failed`
 * of the gate that `step-failed` names) → `rolled-back` (traffic on stable, stable health-checked,
 * ledger written); `traffic-applied` (the router has the new split) is reported alongside.
 * Client view, from the load generator's per-request records (Date.now() in both processes, one
 * host, one clock): the same gate evaluation → the last answer that came from the bad version,
 * i.e. the moment after which every answer comes from stable.
 */
async function rollbackLatency(rt: LocalRuntime): Promise<void> {
  const engineMeasure = 'rollback: failing gate → `rolled-back` event (engine)';
  const clientMeasure = 'rollback: failing gate → last answer from the bad version (client)';
  const target = '≤ 1 s';
  let load: LoadRun | undefined;
  try {
    const versions = Array.from({ length: LOCAL.rollbackReps }, (_, k) => `1.1.${k}`);
    for (const v of versions) await modelctl(['bundle', 'push', rt.badDir, '--version', v, '--store', rt.store, '--json']);
    load = startLoad({ url: `${rt.url}/sentiment/predict`, rps: LOCAL.rollbackRps, durationMs: 4 * 60_000, maxInFlight: LOCAL.maxInFlight, samples: true });
    await sleep(1000); // the stable version under steady load before the first canary
    const reps: Array<{ version: string; wallMs: number; events: DeployJson['events'] }> = [];
    for (const v of versions) {
      const { r, json } = await deploy([`sentiment@${v}`, ...LOCAL.deployFlags, '--store', rt.store]);
      // Exit code 3 is "rolled back by gates": the expected outcome here.
      if (r.code !== 3 || json?.outcome !== 'rolled-back' || json.rolledBackTo !== rt.stable.version) {
        throw new Error(`deploy of bad ${v}: exit ${r.code}, outcome ${json?.outcome ?? '?'} (${json?.reason ?? r.stderr.slice(-500)})`);
      }
      reps.push({ version: v, wallMs: r.ms, events: json.events });
      log(`  ${v}: ${json.reason}`);
      await sleep(500);
    }
    load.stop();
    const lr = await load.result;
    load = undefined;

    const per = reps.map(({ version, wallMs, events }) => {
      const at = (type: string, after = 0) => events.find((e) => e.type === type && e.at >= after)?.at;
      const stepFailed = events.find((e) => e.type === 'step-failed');
      const gateFailed = events.filter((e) => e.type === 'gate-failed' && e.gate === stepFailed?.gate && e.at <= (stepFailed?.at ?? Infinity)).at(-1);
      const rollbackStarted = at('rollback-started');
      const rolledBack = at('rolled-back');
      const applied = events.find(
        (e) => e.type === 'traffic-applied' && e.at >= (rollbackStarted ?? Infinity) && Object.keys((e.weights as object | undefined) ?? {}).join() === rt.stable.version,
      )?.at;
      if (!stepFailed || !gateFailed || rollbackStarted === undefined || rolledBack === undefined || applied === undefined) {
        throw new Error(`${version}: missing events (${events.map((e) => e.type).join(', ')})`);
      }
      const idx = lr.versions.indexOf(version);
      const bad = (lr.samples ?? []).filter((s: Sample) => s[3] === idx);
      if (bad.length === 0) throw new Error(`${version}: the load generator saw no answer from it`);
      const lastBadDone = Math.max(...bad.map((s) => s[1]));
      const firstBadError = Math.min(...bad.filter((s) => s[2] === 0 || s[2] >= 500).map((s) => s[1]));
      const gf = gateFailed.at;
      return {
        version,
        wallMs,
        engineMs: rolledBack - gf,
        appliedMs: applied - gf,
        clientMs: lastBadDone - gf,
        toRollbackStartedMs: rollbackStarted - gf,
        toAppliedMs: applied - rollbackStarted,
        appliedToRolledBackMs: rolledBack - applied,
        detectMs: gf - (at('step-started') ?? gf),
        startMs: (at('version-ready') ?? 0) - (at('rollout-started') ?? 0),
        exposureMs: lastBadDone - firstBadError,
        badAnswers: bad.length,
        badErrors: bad.filter((s) => s[2] === 0 || s[2] >= 500).length,
        // Requests the router still sent to the bad version after it reported the switch (should be 0).
        badSentAfterSwitch: bad.filter((s) => s[0] > applied).length,
      };
    });
    const stat = (xs: number[]) => `${fmtMs(median(xs))} / ${fmtMs(Math.max(...xs))}`;
    const engine = per.map((p) => p.engineMs);
    const client = per.map((p) => p.clientMs);
    const n = per.length;
    rows.push({
      measure: `${engineMeasure}, median / max of ${n}`,
      modelctl: stat(engine),
      reference: `router switched: ${stat(per.map((p) => p.appliedMs))}`,
      ratio: '—',
      target,
      pass: Math.max(...engine) <= 1000,
    });
    rows.push({
      measure: `${clientMeasure}, median / max of ${n}`,
      modelctl: stat(client),
      reference: `first 5xx → last bad answer: ${stat(per.map((p) => p.exposureMs))}`,
      ratio: '—',
      target,
      pass: Math.max(...client) <= 1000,
    });
    const canaryGapMs = 1000 / (LOCAL.rollbackRps * 0.2);
    notes.push(
      `rollback: ${n} bad versions (errorRate ${LOCAL.badErrorRate}, \`deploy ${LOCAL.deployFlags.join(' ')}\`) under ${LOCAL.rollbackRps} req/s through the router ` +
        `(${lr.answered} answers, ${lr.sent - lr.answered} unanswered, ${lr.skipped} skipped, statuses ${JSON.stringify(lr.statuses)}). ` +
        `Per version, gate-failed → rolled-back (engine) / → last bad answer (client), ms: ${per.map((p) => `${p.version} ${p.engineMs}/${p.clientMs}`).join(', ')}.`,
    );
    notes.push(
      `rollback, where the time goes (medians): gate-failed → rollback-started ${median(per.map((p) => p.toRollbackStartedMs))} ms (the step's other gates, evidence written to the ledger), ` +
        `→ traffic-applied ${median(per.map((p) => p.toAppliedMs))} ms (split written ahead to the ledger, admin PUT), ` +
        `→ rolled-back ${median(per.map((p) => p.appliedToRolledBackMs))} ms (stable health check, ledger). ` +
        `Before that: version start → ready ${fmtMs(median(per.map((p) => p.startMs)))}, canary step → failing gate (detection, --check-every 1s, ≥ 20 samples) ${fmtMs(median(per.map((p) => p.detectMs)))}; ` +
        `whole deploy command ${fmtMs(median(per.map((p) => p.wallMs)))}. Bad answers per version ${median(per.map((p) => p.badAnswers))} (${median(per.map((p) => p.badErrors))} of them 5xx); ` +
        `Requests sent after \`traffic-applied\` that still reached a bad version: ${per.reduce((a, p) => a + p.badSentAfterSwitch, 0)}; ` +
        `5xx or failed answers from ${rt.stable.version}: ${(lr.samples ?? []).filter((s) => lr.versions[s[3]] === rt.stable.version && (s[2] === 0 || s[2] >= 500)).length}.`,
    );
    notes.push(
      `rollback, client view: the canary gets one request every ~${canaryGapMs.toFixed(0)} ms (20% of ${LOCAL.rollbackRps} req/s), so its last answer can precede the actual switch ` +
        `by up to that much; a client number below the engine's is that resolution, not a faster switch. "first 5xx → last bad answer" includes detection (a gate check every second).`,
    );
  } catch (err) {
    failedRow(engineMeasure, target, err);
    failedRow(clientMeasure, target, err);
  } finally {
    load?.stop();
    await load?.result.catch(() => undefined);
  }
}

/**
 * 7: router overhead. The same open-loop load (LOCAL.overheadRps for overheadRounds × roundMs, after
 * a warm-up, keep-alive, bounded in flight) to the stable version's own port (POST /predict) and
 * to the router (POST /sentiment/predict), alternating; latency percentiles pooled over the rounds.
 * The generator, the router (the daemon process) and the model share the machine's cores; their
 * CPU time is read from /proc to show where the time goes. If `wrk` is installed, a closed-loop
 * saturation run of each is added as information.
 */
async function routerOverhead(rt: LocalRuntime): Promise<void> {
  const latMeasure = `router overhead at ${LOCAL.overheadRps} req/s: p50 latency, router vs direct`;
  const tputMeasure = `router at ${LOCAL.overheadRps} req/s: answered/s, router vs direct`;
  const latTarget = '< 1 ms added at p50';
  const tputTarget = '≥ 80% of direct';
  const urls = { direct: `http://127.0.0.1:${rt.stable.port}/predict`, router: `${rt.url}/sentiment/predict` };
  type Kind = keyof typeof urls;
  try {
    const acc: Record<Kind, { lat: number[]; ok: number; answered: number; sent: number; skipped: number; ms: number; lagP99: number[]; cpu: { gen: number; router: number; model: number } }> = {
      direct: { lat: [], ok: 0, answered: 0, sent: 0, skipped: 0, ms: 0, lagP99: [], cpu: { gen: 0, router: 0, model: 0 } },
      router: { lat: [], ok: 0, answered: 0, sent: 0, skipped: 0, ms: 0, lagP99: [], cpu: { gen: 0, router: 0, model: 0 } },
    };
    for (let round = 0; round < LOCAL.overheadRounds; round++) {
      for (const kind of (round % 2 === 0 ? ['direct', 'router'] : ['router', 'direct']) as Kind[]) {
        const load = startLoad({ url: urls[kind], rps: LOCAL.overheadRps, durationMs: LOCAL.overheadRoundMs, warmupMs: LOCAL.overheadWarmupMs, maxInFlight: LOCAL.maxInFlight, samples: false, latencies: true });
        // CPU of the router and the model over the measured window (the warm-up is left out).
        await sleep(LOCAL.overheadWarmupMs);
        const r0 = cpuMsOf(rt.daemonPid) ?? 0;
        const m0 = cpuMsOf(rt.stable.pid) ?? 0;
        const res = await load.result;
        const a = acc[kind];
        a.cpu.router += (cpuMsOf(rt.daemonPid) ?? 0) - r0;
        a.cpu.model += (cpuMsOf(rt.stable.pid) ?? 0) - m0;
        a.cpu.gen += res.cpuMs;
        a.lat.push(...(res.latencies ?? []));
        a.ok += res.ok;
        a.answered += res.answered;
        a.sent += res.sent;
        a.skipped += res.skipped;
        a.ms += Math.max(res.lastAnswerMs, res.sendMs);
        a.lagP99.push(res.lagMs.p99 ?? 0);
      }
    }
    const summary = (k: Kind) => {
      const a = acc[k];
      if (a.lat.length === 0) throw new Error(`no 2xx answer from ${urls[k]}`);
      return { p50: quantile(a.lat, 0.5), p90: quantile(a.lat, 0.9), p99: quantile(a.lat, 0.99), perSec: a.ok / (a.ms / 1000) };
    };
    const d = summary('direct');
    const r = summary('router');
    const added = r.p50 - d.p50;
    rows.push({
      measure: latMeasure,
      modelctl: `${fmtLat(r.p50)} (p99 ${fmtLat(r.p99)})`,
      reference: `${fmtLat(d.p50)} direct (p99 ${fmtLat(d.p99)})`,
      ratio: `${added >= 0 ? '+' : '−'}${Math.abs(added).toFixed(2)} ms`,
      target: latTarget,
      pass: added < 1,
    });
    rows.push({
      measure: tputMeasure,
      modelctl: `${r.perSec.toFixed(0)}/s`,
      reference: `${d.perSec.toFixed(0)}/s direct`,
      ratio: `${((r.perSec / d.perSec) * 100).toFixed(1)}%`,
      target: tputTarget,
      pass: r.perSec >= 0.8 * d.perSec,
    });
    const per1k = (k: Kind, cpuMs: number) => ((cpuMs / Math.max(1, acc[k].answered)) * 1000).toFixed(0);
    const cpuLine = (k: Kind) =>
      `generator ${per1k(k, acc[k].cpu.gen)}, router (daemon) ${per1k(k, acc[k].cpu.router)}, model ${per1k(k, acc[k].cpu.model)}`;
    notes.push(
      `router overhead: ${LOCAL.overheadRounds} rounds × ${fmtMs(LOCAL.overheadRoundMs)} per target after ${fmtMs(LOCAL.overheadWarmupMs)} warm-up each, open loop at ${LOCAL.overheadRps} req/s, ` +
        `Node http keep-alive client in its own process (bench/load.ts), at most ${LOCAL.maxInFlight} in flight. ` +
        `p50 / p90 / p99: direct ${fmtLat(d.p50)} / ${fmtLat(d.p90)} / ${fmtLat(d.p99)}, router ${fmtLat(r.p50)} / ${fmtLat(r.p90)} / ${fmtLat(r.p99)}. ` +
        `Sent / answered / skipped: direct ${acc.direct.sent} / ${acc.direct.answered} / ${acc.direct.skipped}, router ${acc.router.sent} / ${acc.router.answered} / ${acc.router.skipped}; ` +
        `generator lag p99 (late vs schedule) direct ${Math.max(...acc.direct.lagP99).toFixed(1)} ms, router ${Math.max(...acc.router.lagP99).toFixed(1)} ms.`,
    );
    notes.push(
      `router overhead, where the time goes (CPU ms per 1000 requests): direct: ${cpuLine('direct')}; through the router: ${cpuLine('router')}. ` +
        `All three share the machine's ${os.availableParallelism()} cores, so router CPU is taken from the model and the generator, and the latencies include that contention.`,
    );
  } catch (err) {
    failedRow(latMeasure, latTarget, err);
    failedRow(tputMeasure, tputTarget, err);
    return;
  }

  // Saturation with wrk (closed loop: N connections, each sends its next request when the last is
  // answered), only where wrk is installed; the bench never installs anything.
  const wrkMeasure = `saturation, \`wrk -c${LOCAL.wrkConnections}\` closed loop: req/s, router vs direct`;
  const wrkName = wrkVersion();
  if (wrkName === undefined) {
    notes.push('wrk: not installed, saturation not measured (e.g. `apt-get install wrk`).');
    return;
  }
  try {
    const lua = path.join(tmpRoot, 'wrk-post.lua');
    await writeFile(lua, `wrk.method = "POST"\nwrk.body = '{"text":"I loved every minute of it, wonderful acting."}'\nwrk.headers["Content-Type"] = "application/json"\n`);
    const wrk = async (url: string) => {
      const r0 = cpuMsOf(rt.daemonPid) ?? 0;
      const m0 = cpuMsOf(rt.stable.pid) ?? 0;
      const res = await run('wrk', ['-t1', `-c${LOCAL.wrkConnections}`, `-d${LOCAL.wrkSeconds}s`, '--latency', '-s', lua, url]);
      if (res.code !== 0) throw new Error(`wrk exited ${res.code}: ${res.stderr.slice(-300)}`);
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(res.stdout)?.[1]);
      const p50 = /50%\s+([\d.]+)(us|ms|s)/.exec(res.stdout);
      const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(res.stdout)?.[1] ?? 0);
      const p50ms = p50 ? Number(p50[1]) * ({ us: 0.001, ms: 1, s: 1000 }[p50[2] as 'us' | 'ms' | 's']) : NaN;
      const total = rps * LOCAL.wrkSeconds;
      const cpu = { router: (cpuMsOf(rt.daemonPid) ?? 0) - r0, model: (cpuMsOf(rt.stable.pid) ?? 0) - m0 };
      if (!Number.isFinite(rps)) throw new Error(`could not read wrk's output: ${res.stdout.slice(0, 300)}`);
      return { rps, p50ms, non2xx, routerPer1k: (cpu.router / total) * 1000, modelPer1k: (cpu.model / total) * 1000 };
    };
    const d = await wrk(urls.direct);
    const r = await wrk(urls.router);
    rows.push({
      measure: wrkMeasure,
      modelctl: `${r.rps.toFixed(0)}/s (p50 ${fmtLat(r.p50ms)})`,
      reference: `${d.rps.toFixed(0)}/s direct (p50 ${fmtLat(d.p50ms)})`,
      ratio: `${((r.rps / d.rps) * 100).toFixed(1)}%`,
      target: '— (information)',
      pass: null,
    });
    notes.push(
      `wrk (${wrkName}), -t1 -c${LOCAL.wrkConnections} -d${LOCAL.wrkSeconds}s: ` +
        `CPU ms per 1000 requests at saturation: direct: model ${d.modelPer1k.toFixed(0)}; router: router ${r.routerPer1k.toFixed(0)}, model ${r.modelPer1k.toFixed(0)}. ` +
        `Non-2xx: direct ${d.non2xx}, router ${r.non2xx}. wrk itself takes a share of the same cores.`,
    );
  } catch (err) {
    // Information only: a wrk problem is a note, not a broken bench.
    rows.push({ measure: wrkMeasure, modelctl: 'error', reference: '—', ratio: '—', target: '— (information)', pass: null });
    notes.push(`wrk: ${(err as Error).message.split('\n').slice(0, 3).join(' | ')}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Main

/** Share of all cores busy over `ms` (from /proc/stat), or undefined where there is no /proc. */
async function cpuBusy(ms: number): Promise<number | undefined> {
  const sample = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = (f[3] ?? 0) + (f[4] ?? 0); // idle + iowait
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  };
  try {
    const a = sample();
    await new Promise((r) => setTimeout(r, ms));
    const b = sample();
    return b.total > a.total ? 1 - (b.idle - a.idle) / (b.total - a.total) : undefined;
  } catch {
    return undefined;
  }
}

function busyFact(label: string, busy: number | undefined): string {
  if (busy === undefined) return `${label}: unknown`;
  return `${label}: ${(busy * 100).toFixed(0)}% of all cores${busy > 0.15 ? ' — other work is running: timings are noisy' : ''}`;
}

function machineFacts(busyBefore: number | undefined): string[] {
  const cpus = os.cpus();
  const openssl = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  const manifest = path.join(ROOT, 'oclif.manifest.json');
  let manifestFact = 'absent (oclif finds commands by importing them at start-up; `npx oclif manifest` makes that faster)';
  if (existsSync(manifest)) {
    // Stale = it does not list exactly the commands that are built (flags changes are not checked).
    const cmdsDir = path.join(ROOT, 'dist', 'src', 'commands');
    const built = existsSync(cmdsDir)
      ? readdirSync(cmdsDir, { recursive: true, encoding: 'utf8' })
          .filter((f) => f.endsWith('.js'))
          .map((f) => f.slice(0, -3).split(path.sep).join(':'))
          .sort()
      : [];
    let listed: string[] = [];
    try {
      listed = Object.keys((JSON.parse(readFileSync(manifest, 'utf8')) as { commands?: object }).commands ?? {}).sort();
    } catch {
      /* unreadable: reported as stale */
    }
    manifestFact = listed.join() === built.join() ? `present, lists all ${built.length} built commands` : `present but STALE (lists ${listed.length} commands, ${built.length} are built)`;
  }
  const [l1, l5] = os.loadavg();
  const cli = IN_PLACE ? CLI : `${CLI} (copy of ${path.join(ROOT, 'bin', 'run.js')} + dist/src taken at start)`;
  return [
    `- CPU: ${os.availableParallelism()} cores available (${cpus[0]?.model.trim() ?? 'unknown'}), ${(os.totalmem() / GiB).toFixed(1)} GiB RAM`,
    `- OS: ${os.type()} ${os.release()} ${os.arch()}`,
    `- Node: ${process.version} (${NODE})`,
    `- CLI under test: ${cli}`,
    `- ${busyFact('CPU busy before start (2 s sample)', busyBefore)}; load average ${l1!.toFixed(2)} (1 min), ${l5!.toFixed(2)} (5 min)`,
    `- OpenSSL (CLI): ${openssl.status === 0 ? openssl.stdout.trim() : 'not found'}; Node's OpenSSL: ${process.versions.openssl}`,
    `- Temp dir: ${tmpRoot} (${fmtBytes(freeBytes(tmpRoot))} free)`,
    `- oclif.manifest.json: ${manifestFact}`,
    `- Sizes: ${QUICK ? 'QUICK (÷8)' : 'full'} — single ${fmtBytes(SIZES.single)}, 4 × ${fmtBytes(SIZES.quarter)}, re-push weights 2 × ${fmtBytes(SIZES.repushWeight)}, RSS bundle ${fmtBytes(SIZES.single + 4 * SIZES.quarter)}`,
    `- Local runtime (6, 7): ${LOCAL.rollbackReps} rollbacks under ${LOCAL.rollbackRps} req/s; router overhead ${LOCAL.overheadRps} req/s × ${LOCAL.overheadRounds} rounds × ${fmtMs(LOCAL.overheadRoundMs)} per target; ` +
      `load generator, router and model all on these ${os.availableParallelism()} cores; wrk: ${wrkVersion() ?? 'not installed (saturation row skipped)'}`,
  ];
}

function wrkVersion(): string | undefined {
  const r = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
  return r.error ? undefined : (r.stdout.split('\n')[0]?.split(' [')[0]?.trim() || 'wrk'); // "wrk debian/4.1.0-3+b2 [epoll] Copyright…"
}

function freeBytes(p: string): number {
  const s = statfsSync(p);
  return s.bavail * s.bsize;
}

async function main(): Promise<number> {
  if (!existsSync(path.join(ROOT, 'dist', 'src', 'commands'))) {
    log(`no ${path.join(ROOT, 'dist/src/commands')}: run \`npm run build\` first (npm run bench does)`);
    return 1;
  }
  const openssl = spawnSync('openssl', ['version']);
  if (openssl.status !== 0) log('openssl not found: measures 1 and 2 will fail');

  // Peak disk: 1 GiB + 4 × 256 MiB of source data plus a 2 GiB store copy (≈ 4 GiB), then the store
  // plus a 2 GiB pull (the source is deleted first); measure 3 adds 2 × 200 MiB while it runs.
  // Measures 6 and 7 need a few MB (bundles, logs). Only what the selected measures need counts.
  const data = (wanted(1) || wanted(4) || wanted(12) ? SIZES.single : 0) + (wanted(2) || wanted(4) || wanted(12) ? 4 * SIZES.quarter : 0);
  // Measure 11: its own 2 × 1 GiB bundle plus a pulled copy (after measures 1–4 removed their data).
  const needed = Math.max((wanted(4) ? (SIZES.single + 4 * SIZES.quarter) * 2 : data) + (wanted(3) ? 4 * SIZES.repushWeight : 0) + (wanted(10) ? 2 * 201 * SIZES.fineTuneTensor : 0), wanted(11) ? 4 * SIZES.single : 0) + 256 * MiB;
  const free = freeBytes(tmpRoot);
  if (free < needed) {
    log(`only ${fmtBytes(free)} free in ${os.tmpdir()}, the bench needs about ${fmtBytes(needed)} (set TMPDIR, or use --quick)`);
    return 1;
  }

  const started = Date.now();
  const facts = machineFacts(await cpuBusy(2000));

  const one = path.join(tmpRoot, 'one');
  const four = path.join(tmpRoot, 'four');
  const oneFile = path.join(one, 'weights', 'model.bin');
  const fourFiles = [1, 2, 3, 4].map((i) => path.join(four, 'weights', `shard-${i}.bin`));

  if (wanted(1) || wanted(4) || wanted(12)) {
    log(`writing ${fmtBytes(SIZES.single)} of random data…`);
    await writeRandomFile(oneFile, SIZES.single);
    await writeFile(path.join(one, 'bundle.yaml'), bundleYaml('bench-one', '1.0.0', WEIGHTS_ONLY));
  }
  if (wanted(2) || wanted(4) || wanted(12)) {
    log(`writing 4 × ${fmtBytes(SIZES.quarter)} of random data…`);
    for (const f of fourFiles) await writeRandomFile(f, SIZES.quarter);
    await writeFile(path.join(four, 'bundle.yaml'), bundleYaml('bench-four', '1.0.0', WEIGHTS_ONLY));
  }
  // Measure 12's two bundles: the example, and the example with these 2 GiB of weights (hard links,
  // made now: measure 4 moves the files away).
  const promptSources = wanted(12) ? await promptOnlySources([oneFile, ...fourFiles]) : undefined;
  if (wanted(1)) {
    log('1/7 pack of one large file vs openssl…');
    await packVsOpenssl(`pack 1 × ${fmtBytes(SIZES.single)} vs \`openssl dgst -sha256\``, one, [oneFile], 1.3);
  }
  if (wanted(2)) {
    log('2/7 pack of four files vs openssl (sequential)…');
    await packVsOpenssl(`pack 4 × ${fmtBytes(SIZES.quarter)} vs \`openssl dgst -sha256\` (1 core)`, four, fourFiles, 0.8);
  }
  if (wanted(3)) {
    log('3/7 re-push after one prompt changed…');
    await repushBytes();
  }
  if (wanted(10)) {
    log('10 fine-tune of 1% of a safetensors model (tensor dedup)…');
    await fineTuneBytes();
  }
  if (wanted(4)) {
    log('4/7 peak RSS of push and pull…');
    await peakRss();
  }
  await rm(one, { recursive: true, force: true });
  await rm(four, { recursive: true, force: true });
  if (wanted(5)) {
    log('5/7 start-up…');
    await startup();
  }
  if (wanted(6) || wanted(7) || wanted(12)) {
    log(`local runtime (for ${[6, 7, 12].filter(wanted).join(', ')}): push and deploy 1.0.0 of the example bundle…`);
    let rt: LocalRuntime | undefined;
    try {
      rt = await startLocal();
      log(`    router ${rt.url}, 1.0.0 on port ${rt.stable.port} (daemon pid ${rt.daemonPid}, model pid ${rt.stable.pid})`);
    } catch (err) {
      if (wanted(6)) failedRow('rollback latency', '≤ 1 s', err);
      if (wanted(7)) failedRow('router overhead', '< 1 ms added at p50, ≥ 80% of direct answered/s', err);
      if (wanted(12)) failedRow(PROMPT_ONLY_MEASURE, PROMPT_ONLY_TARGET, err);
    }
    try {
      if (rt && promptSources) {
        log(`12 local deploy of a prompt-only change: ${fmtBytes(SIZES.single + 4 * SIZES.quarter)} bundle vs the tiny example…`);
        await promptOnlyDeploy(rt, promptSources);
      }
      if (rt && wanted(6)) {
        log(`6/7 rollback latency: ${LOCAL.rollbackReps} bad versions under ${LOCAL.rollbackRps} req/s…`);
        await rollbackLatency(rt);
      }
      if (rt && wanted(7)) {
        log(`7/7 router overhead: ${LOCAL.overheadRps} req/s direct vs through the router…`);
        await routerOverhead(rt);
      }
    } finally {
      await stopLocal();
    }
  }

  if (wanted(8)) {
    log('8 detect: sequential error-rate gate vs Flagger-style checks, simulated canaries…');
    try {
      // Pure simulation of the working tree's gate code, loaded only when this measure runs.
      const { simulateDetection, DETECT_DEFAULTS } = await import('./detect.js');
      const r = await simulateDetection(QUICK ? { ...DETECT_DEFAULTS, badCanaries: 250, goodCanaries: 500, qualityCanaries: 150, equalCanaries: 600 } : DETECT_DEFAULTS);
      rows.push(...r.rows);
      notes.push(...r.notes);
    } catch (err) {
      failedRow('time to roll back a bad canary (simulation)', '< 0.5× Flagger', err);
    }
  }

  if (wanted(9)) {
    log(`9 kube: Kubernetes API requests per canary step, then ${QUICK ? 10 : 50} canaries at once (fake API server, in-process), then one canary on the cluster in a box…`);
    try {
      // The working tree's Kubernetes target and the fake API server, loaded only when this measure runs.
      const { benchKubernetes, KUBE_DEFAULTS, KUBE_QUICK } = await import('./kube.js');
      const r = await benchKubernetes(QUICK ? KUBE_QUICK : KUBE_DEFAULTS, log);
      rows.push(...r.rows);
      notes.push(...r.notes);
    } catch (err) {
      failedRow('kubernetes API requests per canary step / concurrent canaries', 'O(1) per step; 50 canaries ≤ 2× the bake', err);
    }
  }

  if (wanted(11)) {
    log(`11 S3: push and pull of 2 × ${fmtBytes(SIZES.single)} to a Ceph RGW by modelctl, aws s3 cp and rclone, side by side…`);
    try {
      // Loaded only when this measure runs (it starts its own RGW; see bench/s3.ts).
      const { benchS3 } = await import('./s3.js');
      const r = await benchS3({ fileBytes: SIZES.single, cli: CLI, dir: path.join(tmpRoot, 's3'), env: childEnv, tuned: argv.includes('--s3-tuned'), rounds: QUICK ? 1 : 2 }, log);
      rows.push(...r.rows);
      notes.push(...r.notes);
    } catch (err) {
      failedRow('S3 push / pull of 2 GiB vs aws s3 cp and rclone', '≤ 1.0× the fastest peer; push RSS ≤ 250 MB', err);
    }
  }

  const out = [
    `# modelctl bench${QUICK ? ' (--quick: sizes ÷ 8)' : ''}`,
    '',
    ...facts,
    '',
    markdownTable(rows),
    '',
    'Notes:',
    ...notes.map((n) => `- ${n}`),
    `- Total bench time: ${fmtMs(Date.now() - started)}. ${busyFact('CPU busy right after (1 s sample, nothing of ours running)', await cpuBusy(1000))}.`,
    '',
  ];
  process.stdout.write(out.join('\n'));
  return rows.some((r) => r.pass === undefined) ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  log(`bench failed: ${(err as Error).stack ?? String(err)}`);
} finally {
  cleanup();
}
process.exitCode = code;
