/**
 * Measure 9 of `npm run bench` (and runnable alone: `node dist/bench/kube.js [--quick]`): the
 * Kubernetes target's cost on the API server, against the in-repo fake API server
 * (test/fakes/kube/server.ts) driven through the real @kubernetes/client-node, with the production
 * wiring (openKubernetes + RolloutEngine): in this process for (a), in a worker thread for (b)
 * (bench/kube-fake.ts) so the wall time is not the fake's CPU taken from the engines.
 *
 * (a) API requests per canary step. One model, already serving, then a canary; every request the
 *     fake answers is attributed to the step whose window it falls in. A step's window runs from the
 *     previous step-passed (for the first: version-ready) to its own step-passed: the ledger write
 *     entering it, the route update to its weight, its bake with the gate checks. (The 100% step
 *     is the promotion and is not baked: [50, 100] has one baked step.) Requests are split into writes (create/update/patch/delete),
 *     reads (get/list), watches, discovery, and pod-proxy reads (the metering sidecars' windows,
 *     which scale with gate checks × pods and are reported per gate check). Three scenarios:
 *     2 steps [50, 100]; 10 steps [10 … 100]; and 2 steps with 4 versions deployed before (the
 *     stable set is capped at 3: serving + 2 warm). Same bake and check interval everywhere, so
 *     every step has the same number of gate checks.
 *     pass: max/min of the Kubernetes API requests per step ≤ 1.5 over all three, and the
 *     warm-versions median ≤ the one-version median + 1.
 * (b) N models (50; --quick 10) first-deployed concurrently, then N canaries started at the same
 *     moment with steps [5, 25, 50, 100], 1 s bake, checks every 250 ms. Wall time of the N
 *     canaries vs the ideal (3 baked steps × 1 s — 100% is the promotion, not baked — plus
 *     readiness), API requests, requests/s, and how many promoted. pass: all promoted and wall
 *     ≤ 2× the bake time (6 s).
 *
 * (c) One full canary on the cluster in a box (test/fakes/kube/README.md): real pods (the example model,
 *     the meter, the init container pulling from a real S3 — Ceph RGW), each in its own network
 *     namespace, probes on the pod IP, load through the Gateway data plane; the CLI exactly as a user
 *     runs it. Wall time of `modelctl deploy sentiment@1.1.0 --steps 10,50,100 --interval 5s` from
 *     start to exit vs its bake (2 baked steps × 5 s). pass: promoted, no failed request on the wire,
 *     wall ≤ bake + 15 s (starting the candidate's pod — init pull, three node processes, the first
 *     probes at a 2 s period — and the route changes). Needs root (network namespaces): otherwise the
 *     row says why and counts as not measured.
 *
 * Bundles go to a file:// store in a temp dir (pushed in-process); the kubernetes section names
 * s3://bench/models as the cluster-side store, which nothing pulls from (the fake runs no
 * containers: its controller marks pods ready after controller.readyAfterMs = 20 ms).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { defaultLocalGates } from '../src/gates/local.js';
import { defaultGateRegistry } from '../src/gates/registry.js';
import type { RolloutPlan } from '../src/core/model.js';
import { systemClock } from '../src/core/ports.js';
import { type VersionRef } from '../src/core/model.js';
import { CANDIDATE_READY } from '../src/rollout/candidate-ready.js';
import { RolloutEngine } from '../src/rollout/engine.js';
import { type RolloutResult } from '../src/rollout/results.js';
import { isGateEvent, type RolloutEvent } from '../src/core/events.js';
import { openLocalBundle, push } from '../src/store/transfer.js';
import { openStore } from '../src/store/open.js';
import type { BundleStore } from '../src/store/store.js';
import { openKubernetes } from '../src/targets/kubernetes/open.js';
import type { KubernetesSection } from '../src/targets/kubernetes/settings.js';
import type { FakeKube, FakeRequest } from '../test/fakes/kube/server.js';
import { startFakeInWorker, startMeteredFake, type RemoteFake } from './kube-fake.js';
import { standaloneReport, type BenchRow } from './report.js';

export interface KubeBenchOptions {
  /** Models rolled out at once in (b). */
  models: number;
  /** Bake per step and gate-check interval (a and b). */
  intervalMs: number;
  checkEveryMs: number;
  /** Which of (a), (b), (c) to run (default: all); the bench's smoke test runs (a) and (b). */
  parts?: ReadonlyArray<'a' | 'b' | 'c'>;
}

export const KUBE_DEFAULTS: KubeBenchOptions = { models: 50, intervalMs: 1000, checkEveryMs: 250 };
export const KUBE_QUICK: KubeBenchOptions = { models: 10, intervalMs: 1000, checkEveryMs: 250 };

export interface KubeRow extends BenchRow {
  pass: boolean | null | undefined;
}

export interface KubeReport {
  rows: KubeRow[];
  notes: string[];
  ms: number;
}

const READY_AFTER_MS = 20;
const REPLICAS = 2;
const WARM_REPLICAS = 1;
const CANARY_GATES = defaultLocalGates().filter((g) => g.metric !== 'shadow-agreement');

// ---------------------------------------------------------------------------------------------
// Request accounting

type Kind = 'write' | 'read' | 'watch' | 'discovery' | 'proxy' | 'other';
type Counts = Record<Kind, number>;

function kindOf(r: FakeRequest): Kind {
  // A pod-proxy request carries the verb the API server authorizes it as (GET → get): its kind is its subresource.
  if (r.subresource === 'proxy') return 'proxy';
  switch (r.verb) {
    case 'create':
    case 'update':
    case 'patch':
    case 'delete':
    case 'deletecollection':
      return 'write';
    case 'get':
    case 'list':
      return r.resource ? 'read' : 'discovery';
    case 'watch':
      return 'watch';
    case 'discovery':
      return 'discovery';
    default:
      return 'other';
  }
}

function count(reqs: FakeRequest[]): Counts {
  const c: Counts = { write: 0, read: 0, watch: 0, discovery: 0, proxy: 0, other: 0 };
  for (const r of reqs) c[kindOf(r)]++;
  return c;
}

/** Kubernetes API requests: everything but the pod proxy (whose count is gate checks × pods). */
const apiOf = (c: Counts) => c.write + c.read + c.watch + c.discovery + c.other;

/** "configmaps get ×4, leases update ×4…": what a window's API requests were. */
function breakdown(reqs: FakeRequest[]): string {
  const m = new Map<string, number>();
  for (const r of reqs) {
    if (kindOf(r) === 'proxy') continue;
    const k = `${r.verb} ${r.resource || r.path}${r.subresource ? `/${r.subresource}` : ''}`;
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return [...m].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([k, n]) => `${k} ×${n}`).join(', ');
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const fmtS = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const fmtN = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1));

// ---------------------------------------------------------------------------------------------
// World: fake API server, file store, engines

/** The two ways the fake runs: in this process (sync request log) or in a worker thread. */
interface FakeHandle {
  kubeconfigYaml(namespace: string): string;
  close(): Promise<void>;
}

interface World<F extends FakeHandle> {
  fake: F;
  store: BundleStore;
  pushVersion(model: string, version: string): Promise<VersionRef>;
  engine(model: string, onEvent?: (e: RolloutEvent) => void): RolloutEngine;
  close(): Promise<void>;
}

/** A watch history large enough for 50 models' churn (the real apiserver keeps ~5 minutes). */
const FAKE_OPTIONS = { readyAfterMs: READY_AFTER_MS, watchHistory: 100_000 };

async function startWorld<F extends FakeHandle>(startFake: () => Promise<F>): Promise<World<F>> {
  const dir = await mkdtemp(path.join(tmpdir(), 'modelctl-bench-kube-'));
  let fake: F | undefined;
  try {
    fake = await startFake();
    const f = fake;
    const store = await openStore(pathToFileURL(path.join(dir, 'store')).href, { s3PathStyle: false });
    const kubeconfig = path.join(dir, 'kubeconfig');
    await writeFile(kubeconfig, f.kubeconfigYaml('default'));
    const section = (model: string): KubernetesSection =>
      ({
        namespace: 'default',
        replicas: REPLICAS,
        warmReplicas: WARM_REPLICAS,
        route: { parentRefs: [{ name: 'public', namespace: 'gateways' }], hostnames: ['models.example.com'], path: `/${model}` },
        store: 's3://bench/models',
        lease: '10s',
        progressDeadline: '30s',
      }) as KubernetesSection;
    return {
      fake: f,
      store,
      async pushVersion(model, version) {
        const b = path.join(dir, 'bundles', `${model}-${version}`);
        await mkdir(path.join(b, 'weights'), { recursive: true });
        await mkdir(path.join(b, 'config'), { recursive: true });
        await writeFile(
          path.join(b, 'bundle.yaml'),
          `name: ${model}\nversion: ${version}\ncomponents:\n  weights: [weights/]\n  prompts: []\n  preprocessing: []\n  config: [config/]\nserve:\n  command: [node, serve.mjs]\n`,
        );
        await writeFile(path.join(b, 'weights', 'small.bin'), `weights of ${model}@${version}\n`);
        await writeFile(path.join(b, 'config', 'labels.json'), '{"labels":["negative","positive"]}\n');
        const source = await openLocalBundle(b);
        try {
          const r = await push(store, source);
          return { model, version, digest: r.digest };
        } finally {
          await source.close();
        }
      },
      engine(model, onEvent) {
        // One openKubernetes per model, as one `modelctl deploy` process per model would do.
        const p = openKubernetes({ flags: { kubeconfig }, config: { file: path.join(dir, 'modelctl.yaml'), section: section(model) }, store });
        return new RolloutEngine({
          target: p.target,
          metrics: p.metrics,
          ledger: p.ledger,
          clock: systemClock,
          holder: { holder: `bench@${model}`, pid: process.pid, host: hostname() },
          evaluator: defaultGateRegistry(),
          lockTtlMs: 10_000,
          ...(onEvent ? { onEvent } : {}),
        });
      },
      async close() {
        await f.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await fake?.close();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

function plan(steps: number[], intervalMs: number, checkEveryMs: number): RolloutPlan {
  return { steps, intervalMs, checkEveryMs, shadowPercent: 0, shadowDurationMs: 0, shadowOnly: false, gates: CANARY_GATES, readyTimeoutMs: 30_000 };
}

function mustPromote(r: RolloutResult): RolloutResult {
  if (r.outcome !== 'promoted') throw new Error(`${r.model}@${r.version}: ${r.outcome} (${r.reason})`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// (a) Requests per step

interface StepWindow {
  index: number;
  weight: number;
  counts: Counts;
  api: number;
  checks: number;
  reqs: FakeRequest[];
}

interface ScenarioResult {
  label: string;
  steps: number[];
  versionsBefore: number;
  stableSetBefore: string[];
  /** One per baked step (the 100% step is the promotion, not baked): see requestsPerStep. */
  windows: StepWindow[];
  /** Rollout start → candidate ready: lock, ledger, candidate Deployment + Service, readiness watch. */
  setup: Counts;
  setupReqs: FakeRequest[];
  /** Last step-passed → end: promotion (ledger, route to 100%, warm-scaling, retiring, lock release). */
  finish: Counts;
  total: Counts;
  ms: number;
}

async function scenario(w: World<FakeKube>, label: string, model: string, versionsBefore: number, steps: number[], o: KubeBenchOptions): Promise<ScenarioResult> {
  const versions = Array.from({ length: versionsBefore + 1 }, (_, i) => `1.${i}.0`);
  const refs: VersionRef[] = [];
  for (const v of versions) refs.push(await w.pushVersion(model, v));
  mustPromote(await w.engine(model).deploy(refs[0]!, plan([], o.intervalMs, o.checkEveryMs)));
  let stableSet: string[] = [versions[0]!];
  // Earlier versions only fill the stable set: one short judged step (the engine refuses a plan whose only step is 100%).
  for (const ref of refs.slice(1, versionsBefore)) stableSet = mustPromote(await w.engine(model).deploy(ref, plan([50, 100], 200, 100))).stableSet;

  const marks: { type: string; n: number; phase?: unknown; index?: unknown; gate?: string }[] = [];
  const engine = w.engine(model, (e) => marks.push({ type: e.type, n: w.fake.requests.length, ...(e.type === 'step-started' ? { phase: e.phase, index: e.index } : isGateEvent(e) ? { phase: e.phase, gate: e.gate } : {}) }));
  w.fake.resetRequests();
  const t0 = performance.now();
  mustPromote(await engine.deploy(refs[versionsBefore]!, plan(steps, o.intervalMs, o.checkEveryMs)));
  const ms = performance.now() - t0;
  const reqs = [...w.fake.requests];

  const ready = marks.findIndex((m) => m.type === 'version-ready');
  const passed = marks.map((m, i) => [m, i] as const).filter(([m]) => m.type === 'step-passed');
  if (ready < 0 || passed.length !== steps.length - 1) throw new Error(`${label}: ${passed.length} step-passed events for ${steps.length - 1} baked steps`);
  // One check measures every gate of the phase, then the candidate-ready gate: that last event counts
  // the checks (only gate events' marks carry a gate).
  const isCheck = (m: (typeof marks)[number]) => m.gate === CANDIDATE_READY.name && m.phase === 'canary';
  const windows: StepWindow[] = [];
  let from = ready;
  for (const [k, [m, i]] of passed.entries()) {
    const slice = reqs.slice(marks[from]!.n, m.n);
    const counts = count(slice);
    windows.push({ index: k, weight: steps[k]!, counts, api: apiOf(counts), checks: marks.slice(from, i).filter(isCheck).length, reqs: slice });
    from = i;
  }
  return {
    label,
    steps,
    versionsBefore,
    stableSetBefore: stableSet,
    windows,
    setup: count(reqs.slice(0, marks[ready]!.n)),
    setupReqs: reqs.slice(0, marks[ready]!.n),
    finish: count(reqs.slice(marks[from]!.n)),
    total: count(reqs),
    ms,
  };
}

function fmtCounts(c: Counts): string {
  const parts = [`${c.write} writes`, `${c.read} reads`, `${c.watch} watches`, `${c.discovery} discovery`];
  if (c.other) parts.push(`${c.other} other`);
  return parts.join(' + ');
}

async function requestsPerStep(w: World<FakeKube>, o: KubeBenchOptions): Promise<{ rows: KubeRow[]; notes: string[] }> {
  const ten = Array.from({ length: 10 }, (_, i) => (i + 1) * 10);
  const runs = [
    await scenario(w, '2 steps, 1 version', 'bench-steps2', 1, [50, 100], o),
    await scenario(w, '10 steps, 1 version', 'bench-steps10', 1, ten, o),
    await scenario(w, '2 steps, after 4 versions', 'bench-warm', 4, [50, 100], o),
  ];
  const all = runs.flatMap((r) => r.windows);
  // A baked step always has gate checks, and each reads the pods' meters: none counted means the
  // bench's accounting no longer matches the engine's events or the fake's request log.
  const uncounted = all.filter((c) => c.checks === 0 || c.counts.proxy === 0);
  if (uncounted.length > 0) throw new Error(`kube (a): ${uncounted.length} baked steps with no gate check or no pod-proxy read counted: the bench's accounting is broken`);
  const apis = all.map((c) => c.api);
  const max = Math.max(...apis);
  const min = Math.min(...apis);
  const medOf = (r: ScenarioResult) => median(r.windows.map((c) => c.api));
  const single = medOf(runs[0]!);
  const warm = medOf(runs[2]!);
  const pass = min > 0 && max / min <= 1.5 && warm <= single + 1;
  const proxyPerCheck = (r: ScenarioResult) => {
    const checks = r.windows.reduce((n, c) => n + c.checks, 0);
    return r.windows.reduce((n, c) => n + c.counts.proxy, 0) / (checks || 1);
  };
  const perRun = runs.map((r) => `${r.label}: ${r.windows.map((c) => c.api).join('/')}`).join('; ');
  const rows: KubeRow[] = [
    {
      measure: `kubernetes API requests per canary step (bake ${o.intervalMs / 1000} s, gate check every ${o.checkEveryMs} ms; fake API server)`,
      modelctl: `${fmtN(median(apis))} per step (min ${min}, max ${max}; ${perRun}); pod-proxy meter reads ${runs.map((r) => fmtN(proxyPerCheck(r))).join('/')} per gate check`,
      reference: '—',
      ratio: `max/min ${(max / min).toFixed(2)}`,
      target: 'O(1): same per step for 2 or 10 steps, 1 or 3 warm versions (max/min ≤ 1.5, no growth with versions)',
      pass,
    },
  ];
  const notes: string[] = [];
  for (const r of runs) {
    const c0 = r.windows[0]!;
    const checks = r.windows.map((c) => fmtN(c.checks)).join('/');
    notes.push(
      `kube (a) ${r.label} (steps [${r.steps.join(', ')}]${r.versionsBefore > 1 ? `, stable set before the canary [${r.stableSetBefore.join(', ')}]` : ''}): ` +
        `per baked step ${r.windows.map((c) => c.api).join('/')} API requests (first: ${fmtCounts(c0.counts)}; ${breakdown(c0.reqs)}), ` +
        `gate checks per step ${checks}, pod-proxy reads ${r.windows.map((c) => c.counts.proxy).join('/')} (${fmtN(proxyPerCheck(r))} per check); ` +
        `start → candidate ready ${apiOf(r.setup)} (${fmtCounts(r.setup)}; ${breakdown(r.setupReqs)}), promotion ${apiOf(r.finish)} (${fmtCounts(r.finish)}), ` +
        `whole rollout ${apiOf(r.total)} API + ${r.total.proxy} pod-proxy in ${fmtS(r.ms)}.`,
    );
  }
  const planned = o.intervalMs / o.checkEveryMs;
  const odd = runs.flatMap((r) => r.windows.filter((c) => c.checks !== planned).map((c) => `${r.label} step ${c.index + 1}: ${fmtN(c.checks)} checks, ${c.api} requests`));
  if (odd.length) {
    notes.push(
      `kube (a): steps with other than ${planned} gate checks (${odd.join('; ')}). The bake loop sleeps min(check interval, end − now); ` +
        'when the timer fires a moment before the end of the step, one more check (meters read, ledger written) follows right away. That is the jitter in the per-step counts, not growth.',
    );
  }
  notes.push(
    'kube (a): a step is from the previous step-passed (or, for the first, version-ready) to its own step-passed: the ledger write entering it, the route update to its weight, its bake with the gate checks. ' +
      'The final 100% step is the promotion, which is not baked (so [50, 100] has one baked step, [10 … 100] nine). ' +
      'The Kubernetes API count excludes pod-proxy reads, which are gate checks × pods read (candidate and stable) and reported per check. ' +
      'Each gate check writes the ledger ConfigMap (renewing the lock), so requests per step scale with bake ÷ check interval, a constant of the plan.',
  );
  return { rows, notes };
}

// ---------------------------------------------------------------------------------------------
// (b) N canaries at once

async function concurrentCanaries(w: World<RemoteFake>, o: KubeBenchOptions): Promise<{ rows: KubeRow[]; notes: string[] }> {
  const n = o.models;
  const steps = [5, 25, 50, 100];
  const models = Array.from({ length: n }, (_, i) => `bench-fleet-${String(i).padStart(2, '0')}`);
  const v1: VersionRef[] = [];
  const v2: VersionRef[] = [];
  for (const m of models) {
    v1.push(await w.pushVersion(m, '1.0.0'));
    v2.push(await w.pushVersion(m, '1.1.0'));
  }

  await w.fake.resetRequests();
  let t = performance.now();
  const firsts = await Promise.all(v1.map((ref) => w.engine(ref.model).deploy(ref, plan([], o.intervalMs, o.checkEveryMs))));
  const firstMs = performance.now() - t;
  const firstPromoted = firsts.filter((r) => r.outcome === 'promoted').length;
  const firstReqs = (await w.fake.requests()).length;
  if (firstPromoted !== n) throw new Error(`first deploys: ${firstPromoted}/${n} promoted: ${firsts.find((r) => r.outcome !== 'promoted')?.reason}`);

  await w.fake.resetRequests();
  const readyMs: number[] = [];
  const perModelMs: number[] = [];
  /** Bake (step-started → step-passed) and switch (step-passed → next step-started) durations. */
  const bakes: number[] = [];
  const switches: number[] = [];
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const cpu0 = process.cpuUsage();
  t = performance.now();
  const results = await Promise.all(
    v2.map(async (ref) => {
      let started = 0;
      let stepAt = 0;
      let passedAt = 0;
      const engine = w.engine(ref.model, (e) => {
        const now = performance.now();
        if (e.type === 'rollout-started') started = now;
        if (e.type === 'version-ready') readyMs.push(now - started);
        if (e.type === 'step-started') {
          stepAt = now;
          if (passedAt) switches.push(now - passedAt);
        }
        if (e.type === 'step-passed') {
          passedAt = now;
          bakes.push(now - stepAt);
        }
      });
      const t1 = performance.now();
      try {
        return await engine.deploy(ref, plan(steps, o.intervalMs, o.checkEveryMs));
      } catch (err) {
        return { model: ref.model, version: ref.version, outcome: 'error', reason: (err as Error).message } as unknown as RolloutResult;
      } finally {
        perModelMs.push(performance.now() - t1);
      }
    }),
  );
  const wallMs = performance.now() - t;
  const cpu = process.cpuUsage(cpu0);
  lag.disable();
  const reqs = await w.fake.requests();
  const c = count(reqs);
  const statuses = new Map<number, number>();
  for (const r of reqs) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
  const statusText = [...statuses].sort((a, b) => a[0] - b[0]).map(([k, v]) => `${k}: ${v}`).join(', ');
  const promoted = results.filter((r) => r.outcome === 'promoted').length;
  const failures = results.filter((r) => r.outcome !== 'promoted');
  const baked = steps.filter((x) => x < 100).length;
  const bakeMs = baked * o.intervalMs;
  const idealMs = bakeMs + median(readyMs);
  const targetMs = 2 * bakeMs;
  const cpuPct = ((cpu.user + cpu.system) / 1000 / wallMs) * 100;
  const rows: KubeRow[] = [
    {
      measure: `${n} canaries at once on one fake API server (steps [${steps.join(', ')}], bake ${o.intervalMs / 1000} s, checks every ${o.checkEveryMs} ms; engines in one process, the fake in a worker thread)`,
      modelctl: `${fmtS(wallMs)} wall, ${promoted}/${n} promoted; ${apiOf(c)} API requests + ${c.proxy} pod-proxy (${((reqs.length / wallMs) * 1000).toFixed(0)} req/s)`,
      reference: `${fmtS(idealMs)} ideal (${baked} baked steps × ${o.intervalMs / 1000} s + readiness ${fmtS(median(readyMs))})`,
      ratio: `${(wallMs / idealMs).toFixed(2)}×`,
      target: `≤ ${fmtS(targetMs)} (2× the bake), ${n}/${n} promoted`,
      pass: promoted === n && wallMs <= targetMs,
    },
  ];
  const notes = [
    `kube (b) ${n} canaries: per model ${fmtS(median(perModelMs))} median, ${fmtS(Math.max(...perModelMs))} max (ideal ${fmtS(idealMs)}); ` +
      `version start → ready median ${fmtS(median(readyMs))}, max ${fmtS(Math.max(...readyMs))} (controller.readyAfterMs ${READY_AFTER_MS} ms); ` +
      `requests: ${fmtCounts(c)}, ${c.proxy} pod-proxy = ${fmtN(apiOf(c) / n)} API + ${fmtN(c.proxy / n)} pod-proxy per model ` +
      `(${fmtN(apiOf(c) / n / baked)} API per model and baked step, incl. setup and promotion); ` +
      `process CPU ${cpuPct.toFixed(0)}% of one core over the run (engines and client on the main thread, the fake API server in its worker), main event-loop delay p50 ${(lag.percentile(50) / 1e6).toFixed(1)} ms, p99 ${(lag.percentile(99) / 1e6).toFixed(1)} ms, max ${(lag.max / 1e6).toFixed(0)} ms.`,
    `kube (b) ${n} canaries: step bake (step-started → step-passed, ${o.intervalMs} ms planned) median ${fmtS(median(bakes))}, max ${fmtS(Math.max(...bakes))}; ` +
      `switch to the next weight (step-passed → step-started) median ${fmtS(median(switches))}, max ${fmtS(Math.max(...switches))}; answers by HTTP status ${statusText}.`,
    `kube (b) first deploys of the ${n} models (concurrent, no canary): ${fmtS(firstMs)}, ${firstReqs} requests.` +
      (failures.length ? ` NOT promoted: ${failures.slice(0, 5).map((r) => `${r.model}: ${r.outcome} (${r.reason})`).join('; ')}` : ''),
  ];
  return { rows, notes };
}

// ---------------------------------------------------------------------------------------------

/** (c): a full canary on the cluster in a box, through the CLI, with load on the Gateway. */
async function canaryInTheBox(): Promise<{ rows: KubeRow[]; notes: string[] }> {
  const { startKubeBox } = await import('../test/helpers/kube-world.js');
  const intervalS = 5;
  const steps = [10, 50, 100];
  const bakeMs = steps.filter((x) => x < 100).length * intervalS * 1000;
  const measure = `one full canary on the cluster in a box (real pods in network namespaces, S3 pull, meter, Gateway data plane; CLI; steps [${steps.join(', ')}], bake ${intervalS} s)`;
  let box: Awaited<ReturnType<typeof startKubeBox>> | undefined;
  try {
    const t0 = performance.now();
    box = await startKubeBox();
    await box.push('1.0.0');
    await box.push('1.1.0');
    const first = await box.cli(['deploy', 'sentiment@1.0.0', '--json']);
    if (first.code !== 0) throw new Error(`first deploy failed: ${first.stderr.slice(-500)}`);
    const setupMs = performance.now() - t0;
    const load = box.load();
    const t1 = performance.now();
    const r = await box.cli(['deploy', 'sentiment@1.1.0', '--steps', steps.join(','), '--interval', `${intervalS}s`, '--json']);
    const wallMs = performance.now() - t1;
    const seen = await load.stop();
    const outcome = r.code === 0 ? (r.json() as { outcome: string }).outcome : `exit ${r.code}`;
    const targetMs = bakeMs + 15_000;
    return {
      rows: [
        {
          measure,
          modelctl: `${fmtS(wallMs)} wall, ${outcome}; ${seen.total} requests through the Gateway during it, ${seen.errors} failed (${Object.entries(seen.byVersion).map(([v, n]) => `${v}: ${n}`).join(', ')})`,
          reference: `${fmtS(bakeMs)} bake (${steps.filter((x) => x < 100).length} baked steps × ${intervalS} s)`,
          ratio: `${(wallMs / bakeMs).toFixed(2)}×`,
          target: `promoted, 0 failed requests, ≤ ${fmtS(targetMs)} (bake + 15 s to start the candidate's pod and move the route)`,
          pass: outcome === 'promoted' && seen.errors === 0 && wallMs <= targetMs,
        },
      ],
      notes: [`kube (c) cluster in a box: setup (network, RGW bucket, 2 pushes, first deploy with its pod) ${fmtS(setupMs)}; the canary ${fmtS(wallMs)}.` + (r.code === 0 ? '' : ` deploy failed: ${r.stderr.slice(-400)}`)],
    };
  } catch (err) {
    return { rows: [{ measure, modelctl: `not measured: ${(err as Error).message}`, reference: '—', ratio: '—', target: 'promoted within bake + 15 s', pass: undefined }], notes: [] };
  } finally {
    await box?.close();
  }
}

/** Run `use` in a world around a fresh fake API server, closed afterwards whatever happens. */
async function inWorld<F extends FakeHandle, T>(startFake: () => Promise<F>, use: (w: World<F>) => Promise<T>): Promise<T> {
  const w = await startWorld(startFake);
  try {
    return await use(w);
  } finally {
    await w.close();
  }
}

export async function benchKubernetes(o: KubeBenchOptions = KUBE_DEFAULTS, log: (line: string) => void = () => {}): Promise<KubeReport> {
  const t0 = performance.now();
  const rows: KubeRow[] = [];
  const notes: string[] = [];
  const parts = new Set(o.parts ?? ['a', 'b', 'c']);
  const collect = (r: { rows: KubeRow[]; notes: string[] }) => {
    rows.push(...r.rows);
    notes.push(...r.notes);
  };
  if (parts.has('a')) {
    log('9a kubernetes: API requests per canary step (2 steps, 10 steps, after 4 versions)…');
    collect(await inWorld(() => startMeteredFake(FAKE_OPTIONS), (w) => requestsPerStep(w, o)));
  }
  if (parts.has('b')) {
    log(`9b kubernetes: ${o.models} canaries at once…`);
    // Wall time: the fake API server in a worker thread of its own, as a real one runs elsewhere.
    collect(await inWorld(() => startFakeInWorker(FAKE_OPTIONS), (w) => concurrentCanaries(w, o)));
  }
  if (parts.has('c')) {
    log('9c kubernetes: one full canary on the cluster in a box (real pods)…');
    collect(await canaryInTheBox());
  }
  const ms = performance.now() - t0;
  notes.push(`kube: ${fmtS(ms)} in all (fake API server: in-process for (a), in a worker thread for (b); ${READY_AFTER_MS} ms to ready, ${REPLICAS} replicas, ${WARM_REPLICAS} warm).`);
  return { rows, notes, ms };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const quick = process.argv.includes('--quick');
  const r = await benchKubernetes(quick ? KUBE_QUICK : KUBE_DEFAULTS, (l) => process.stderr.write(`${l}\n`));
  process.stdout.write(standaloneReport(r.rows, r.notes));
}
