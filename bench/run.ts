/**
 * `npm run bench`: performance report for modelctl's bundle commands.
 *
 *   node dist/bench/run.js            full run (a few minutes on 2 cores, ~4.2 GiB of temp disk at peak)
 *   node dist/bench/run.js --quick    every size divided by 8 (smoke run, well under a minute)
 *   node dist/bench/run.js --only 1,3 run only some measures (1 pack 1 file, 2 pack 4 files,
 *                                     3 re-push bytes, 4 peak RSS, 5 startup)
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
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync, statfsSync, symlinkSync } from 'node:fs';
import { link, mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

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
  prompts: 20,
  promptBytes: 4 * 1024,
};
const TIMED_RUNS = 3; // best of 3 after one warm-up run
const STARTUP_RUNS = 11; // median of 11 after one warm-up run
const RSS_TARGET_MB = 250;
/** Per-child wall-clock limit: a hung command fails the bench instead of hanging it. */
const CHILD_TIMEOUT_MS = (QUICK ? 2 : 10) * 60_000;

const tmpRoot = await mkdtemp(path.join(os.tmpdir(), 'modelctl-bench-'));
const HOME = path.join(tmpRoot, 'home');
const childEnv: NodeJS.ProcessEnv = { ...process.env, MODELCTL_HOME: HOME, NO_COLOR: '1' };
delete childEnv.MODELCTL_STORE;
delete childEnv.MODELCTL_S3_PATH_STYLE;
delete childEnv.NODE_OPTIONS; // a stray --inspect or --max-old-space-size would skew every number

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
    cleanup();
    process.exit(130);
  });
}
process.once('exit', cleanup);

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
function run(cmd: string, args: string[], opts: { pollHwm?: boolean; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { env: childEnv, cwd: opts.cwd ?? tmpRoot, stdio: ['ignore', 'pipe', 'pipe'] });
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

async function runOk(cmd: string, args: string[], opts: { pollHwm?: boolean; cwd?: string } = {}): Promise<RunResult> {
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

/** Random bytes via crypto, written in 4 MiB chunks through one reused buffer (never a whole file in memory). */
async function writeRandomFile(file: string, size: number): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const CHUNK = 4 * MiB;
  const buf = Buffer.allocUnsafe(CHUNK);
  const fh = await open(file, 'wx', 0o644);
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(CHUNK, size - done);
      randomFillSync(buf, 0, n);
      let off = 0;
      while (off < n) off += (await fh.write(buf, off, n - off)).bytesWritten;
      done += n;
    }
  } finally {
    await fh.close();
  }
}

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

interface Row {
  measure: string;
  modelctl: string;
  reference: string;
  ratio: string;
  target: string;
  pass: boolean | undefined; // undefined: not measured (error)
}
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

/** 1 & 2: `bundle pack` vs `openssl dgst -sha256` over the same files, warm cache, best of 3. */
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
 * (piscina hash workers are threads, not processes) and cannot miss a short spike the way
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

/** 5: process start-up, median of 11 runs each after one warm-up. */
async function startup(): Promise<void> {
  const target = '≤ 3× bare node';
  const medianOf = async (args: string[]) => {
    await runOk(NODE, args);
    const ms: number[] = [];
    for (let i = 0; i < STARTUP_RUNS; i++) ms.push((await runOk(NODE, args)).ms);
    return median(ms);
  };
  try {
    const bare = await medianOf(['-e', '0']);
    for (const [label, args] of [
      ['startup: `modelctl --version`', ['--version']],
      ['startup: `modelctl bundle --help`', ['bundle', '--help']],
    ] as const) {
      const t = await medianOf([CLI, ...args]);
      const ratio = t / bare;
      rows.push({ measure: label, modelctl: fmtMs(t), reference: `${fmtMs(bare)} (node -e 0)`, ratio: `${ratio.toFixed(2)}×`, target, pass: ratio <= 3 });
    }
  } catch (err) {
    failedRow('startup', target, err);
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
  ];
}

function freeBytes(p: string): number {
  const s = statfsSync(p);
  return s.bavail * s.bsize;
}

function table(): string {
  const header = ['measure', 'modelctl', 'reference', 'ratio', 'target', 'pass'];
  const body = rows.map((r) => [r.measure, r.modelctl, r.reference, r.ratio, r.target, r.pass === undefined ? 'ERROR' : r.pass ? 'yes' : 'NO']);
  const esc = (s: string) => s.replaceAll('|', '\\|');
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...body.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
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
  const needed = (SIZES.single + 4 * SIZES.quarter) * 2 + 4 * SIZES.repushWeight + 256 * MiB;
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

  if (wanted(1) || wanted(4)) {
    log(`writing ${fmtBytes(SIZES.single)} of random data…`);
    await writeRandomFile(oneFile, SIZES.single);
    await writeFile(path.join(one, 'bundle.yaml'), bundleYaml('bench-one', '1.0.0', WEIGHTS_ONLY));
  }
  if (wanted(2) || wanted(4)) {
    log(`writing 4 × ${fmtBytes(SIZES.quarter)} of random data…`);
    for (const f of fourFiles) await writeRandomFile(f, SIZES.quarter);
    await writeFile(path.join(four, 'bundle.yaml'), bundleYaml('bench-four', '1.0.0', WEIGHTS_ONLY));
  }
  if (wanted(1)) {
    log('1/5 pack of one large file vs openssl…');
    await packVsOpenssl(`pack 1 × ${fmtBytes(SIZES.single)} vs \`openssl dgst -sha256\``, one, [oneFile], 1.3);
  }
  if (wanted(2)) {
    log('2/5 pack of four files vs openssl (sequential)…');
    await packVsOpenssl(`pack 4 × ${fmtBytes(SIZES.quarter)} vs \`openssl dgst -sha256\` (1 core)`, four, fourFiles, 0.8);
  }
  if (wanted(3)) {
    log('3/5 re-push after one prompt changed…');
    await repushBytes();
  }
  if (wanted(4)) {
    log('4/5 peak RSS of push and pull…');
    await peakRss();
  }
  await rm(one, { recursive: true, force: true });
  await rm(four, { recursive: true, force: true });
  if (wanted(5)) {
    log('5/5 start-up…');
    await startup();
  }

  const out = [
    `# modelctl bench${QUICK ? ' (--quick: sizes ÷ 8)' : ''}`,
    '',
    ...facts,
    '',
    table(),
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
