import { writeFile } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { hostname } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { systemClock } from '../../src/core/ports.js';
import { RolloutEngine } from '../../src/rollout/engine.js';
import { type RolloutEvent } from '../../src/core/events.js';
import type { RolloutPlan } from '../../src/core/model.js';
import { defaultLocalGates } from '../../src/gates/local.js';
import { defaultGateRegistry } from '../../src/gates/registry.js';
import { openStore } from '../../src/store/open.js';
import type { BundleStore } from '../../src/store/store.js';
import type { KubernetesSection } from '../../src/targets/kubernetes/settings.js';
import { openKubernetes, type KubernetesParts } from '../../src/targets/kubernetes/open.js';
import { meterWindow } from '../fakes/kube/meter-window.js';
import { startFakeKube, type FakeKube } from '../fakes/kube/server.js';
import { testS3 } from '../infra/ceph-rgw.js';
import { bundleYaml, runCli, sampleBundle, useScratch, type CliResult } from './fixtures.js';

/**
 * One Kubernetes world for a test file: the fake API server, a real S3 bucket (Ceph RGW) holding
 * the bundles, a project directory with modelctl.yaml and a kubeconfig, and the "quality" of each
 * version as its metering sidecars report it (answered through the API server's pod proxy, like a
 * real cluster's pods would). Engines and CLIs built here use the production wiring (openKubernetes).
 */
export interface KubeWorld {
  fake: FakeKube;
  store: BundleStore;
  storeUrl: string;
  projectDir: string;
  kubeconfigFile: string;
  /** Env for CLI subprocesses: store, S3 credentials, target kubernetes, GitHub off. */
  env: NodeJS.ProcessEnv;
  /** Per version: error rate its pods report (default 0.005); `null` = the meter does not answer. */
  quality: Map<string, number | null>;
  /** What the target told the user (stderr notes in the CLI), for engines made here. */
  notes: string[];
  /** Push `name`@`version` (default the world's model); `agreementField`: its serve section says how answers compare. */
  push(version: string, opts?: { name?: string; agreementField?: string }): Promise<void>;
  parts(section?: Partial<KubernetesSection>): KubernetesParts;
  engine(opts?: { holder?: string; section?: Partial<KubernetesSection>; onEvent?: (e: RolloutEvent) => void; lockTtlMs?: number }): RolloutEngine;
  cli(args: string[], opts?: { timeoutMs?: number }): Promise<CliResult>;
  close(): Promise<void>;
}

export const MODEL = 'sentiment';

/** A fast plan: two canary steps of ~0.8 s, gates checked every 150 ms. */
export function fastPlan(overrides: Partial<RolloutPlan> = {}): RolloutPlan {
  return {
    steps: [20, 100],
    intervalMs: 800,
    checkEveryMs: 150,
    shadowPercent: 0,
    shadowDurationMs: 0,
    shadowOnly: false,
    gates: defaultLocalGates().filter((g) => g.metric !== 'shadow-agreement'),
    readyTimeoutMs: 10_000,
    ...overrides,
  };
}

export async function startKubeWorld(opts: { gatewayApi?: boolean; section?: Partial<KubernetesSection> } = {}): Promise<KubeWorld> {
  const scratch = useScratch();
  const fake = await startFakeKube();
  if (opts.gatewayApi === false) fake.withoutGatewayApi();
  const s3 = await testS3();
  const bucket = await s3.newBucket('kube');
  const storeUrl = `s3://${bucket}/models`;
  const s3Env = {
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AWS_REGION: s3.region,
    AWS_ENDPOINT_URL: s3.endpoint,
    MODELCTL_S3_PATH_STYLE: 'true',
  };
  // The in-process store and engines read the same variables as the CLI does.
  Object.assign(process.env, s3Env);
  const store = await openStore(storeUrl, { s3PathStyle: true });
  const projectDir = await scratch.fresh('kube-project');
  const kubeconfigFile = path.join(projectDir, 'kubeconfig');
  await writeFile(kubeconfigFile, fake.kubeconfigYaml('default'));
  const section: Partial<KubernetesSection> = {
    namespace: 'default',
    route: { parentRefs: [{ name: 'public', namespace: 'gateways' }], hostnames: ['models.example.com'], path: '/sentiment' },
    lease: '10s',
    progressDeadline: '20s',
    ...opts.section,
  };
  await writeFile(path.join(projectDir, 'modelctl.yaml'), stringify({ kubernetes: section }));
  const quality = new Map<string, number | null>();
  fake.onPodProxy(({ pod, path: p }) => {
    const version = pod.metadata?.annotations?.['modelctl.dev/version'] ?? pod.metadata?.labels?.['app.kubernetes.io/version'];
    if (!p.startsWith('/v1/window') && !p.startsWith('v1/window')) return { status: 404, body: { error: `no ${p}` } };
    const q = quality.has(version) ? quality.get(version)! : 0.005;
    if (q === null) return { status: 503, body: { error: 'meter down' } };
    return { status: 200, body: meterWindow(q) };
  });
  const env: NodeJS.ProcessEnv = { ...s3Env, MODELCTL_STORE: storeUrl, MODELCTL_TARGET: 'kubernetes', MODELCTL_HOME: await scratch.fresh('kube-home') };

  const notes: string[] = [];
  const parts = (extra: Partial<KubernetesSection> = {}): KubernetesParts =>
    openKubernetes({
      flags: { kubeconfig: kubeconfigFile },
      config: { file: path.join(projectDir, 'modelctl.yaml'), section: { ...section, ...extra } },
      store,
      note: (m) => notes.push(m),
    });

  return {
    fake,
    store,
    storeUrl,
    projectDir,
    kubeconfigFile,
    env,
    quality,
    notes,
    async push(version, o = {}) {
      const name = o.name ?? MODEL;
      const files = sampleBundle({ name, version });
      const agreement = o.agreementField ? `  agreementField: ${o.agreementField}\n` : '';
      files['bundle.yaml'] = bundleYaml(name, version, `serve:\n  command: [node, serve.mjs]\n  readinessPath: /healthz\n  scoreField: score\n${agreement}`);
      const dir = await scratch.bundle(files);
      const r = await runCli(['bundle', 'push', dir, '--json'], { env: { ...process.env, ...env } });
      if (r.code !== 0) throw new Error(`push ${name}@${version} failed: ${r.stderr}`);
    },
    parts,
    engine(o = {}) {
      const p = parts(o.section);
      return new RolloutEngine({
        target: p.target,
        metrics: p.metrics,
        ledger: p.ledger,
        clock: systemClock,
        holder: { holder: o.holder ?? 'test@world', pid: process.pid, host: hostname() },
        evaluator: defaultGateRegistry(),
        lockTtlMs: o.lockTtlMs ?? 10_000,
        ...(o.onEvent ? { onEvent: o.onEvent } : {}),
      });
    },
    cli(args, o = {}) {
      return runCli([...args, '--kubeconfig', kubeconfigFile], { env: { ...process.env, ...env }, cwd: projectDir, timeoutMs: o.timeoutMs ?? 60_000 });
    },
    async close() {
      await fake.close();
      await scratch.cleanup();
    },
  };
}

// ── The cluster in a box: real pods, real probes, real data plane ───────────────────────────────

/**
 * A world on the cluster in a box (startFakeKube with a real kubelet, see test/fakes/kube/README.md):
 * the real example model pushed to the real S3 (Ceph RGW), pulled by each pod's init container
 * through a relay on the pod network's gateway address with the credentials of the store Secret,
 * served by the real model and meter processes in per-pod network namespaces, and load sent through
 * the Gateway data plane. Short timings everywhere so that a whole rollout takes seconds.
 */
export interface KubeBox {
  fake: FakeKube;
  box: NonNullable<FakeKube['box']>;
  storeUrl: string;
  projectDir: string;
  kubeconfigFile: string;
  env: NodeJS.ProcessEnv;
  /** Push the real example bundle as `version` (a config-only faulty copy when `errorRate` > 0). */
  /** Push the example model as `version`; `errorRate` / `scoreShift` set its config/model.json faults (serve.mjs). */
  push(version: string, opts?: { errorRate?: number; scoreShift?: number }): Promise<void>;
  cli(args: string[], opts?: { timeoutMs?: number }): Promise<CliResult>;
  /** POST /sentiment/predict through the Gateway: answers counted by the version that gave them. */
  send(n: number): Promise<Record<string, number>>;
  /** Steady load through the Gateway until stopped (each request with `headers`): answers counted by version and status. */
  load(headers?: Record<string, string>): { stop(): Promise<{ byVersion: Record<string, number>; errors: number; total: number; timed: Array<{ at: number; ms: number }> }> };
  /** The meter window (requests seen since `sinceMs`) of every running pod of `version`, summed. */
  meterRequests(version: string, sinceMs: number): Promise<number>;
  /** Bytes through the relay to the store (what the pods fetched from S3 on the wire, so far); set toPodsPerSecond to slow the store down. */
  s3Bytes: { toPods: number; fromPods: number; toPodsPerSecond: number };
  close(): Promise<void>;
}

export const BOX_HOST = 'models.example.com';

const keepAlive = new Agent({ keepAlive: true, maxSockets: 4 });

export async function startKubeBox(opts: { gatewayApi?: 'v1.2.0' | 'v1.3.0'; section?: Partial<KubernetesSection> } = {}): Promise<KubeBox> {
  const { CoreV1Api } = await import('@kubernetes/client-node');
  const { REPO_ROOT, faultyExample } = await import('./fixtures.js');
  const scratch = useScratch();
  const fake = await startFakeKube({ kubelet: { backoffBaseMs: 1000, backoffMaxMs: 4000, closeGraceMs: 3000 }, ...(opts.gatewayApi ? { gatewayApiVersion: opts.gatewayApi } : {}) });
  const box = fake.box!;
  try {
    const s3 = await testS3();
    const bucket = await s3.newBucket('kubebox');
    const storeUrl = `s3://${bucket}/models`;
    const s3Env = { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, AWS_REGION: s3.region, AWS_ENDPOINT_URL: s3.endpoint, MODELCTL_S3_PATH_STYLE: 'true' };
    // The pods reach the store the way pods reach an external S3: at an address of the pod network.
    const relay = await box.relay(Number(new URL(s3.endpoint).port));
    const secret = { ...s3Env, AWS_ENDPOINT_URL: `http://${relay.host}:${relay.port}` };
    await fake.kubeConfig('default').makeApiClient(CoreV1Api).createNamespacedSecret({
      namespace: 'default',
      body: { metadata: { name: 'modelctl-store' }, data: Object.fromEntries(Object.entries(secret).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) },
    });
    const projectDir = await scratch.fresh('kube-box');
    const kubeconfigFile = path.join(projectDir, 'kubeconfig');
    await writeFile(kubeconfigFile, fake.kubeconfigYaml('default'));
    const section: Partial<KubernetesSection> = {
      namespace: 'default',
      image: 'ghcr.io/modelctl/modelctl:box',
      route: { parentRefs: [{ name: 'public', namespace: 'gateways' }], hostnames: [BOX_HOST], path: '/sentiment' },
      storeSecret: 'modelctl-store',
      replicas: 1,
      warmReplicas: 1,
      lease: '15s',
      progressDeadline: '40s',
      ...opts.section,
    } as Partial<KubernetesSection>;
    // The defaults without shadow-agreement (the shadow tests that judge agreement add it: most
    // shadows here are too short for its 20 compared answers), with a latency gate calibrated for the box: every pod shares the host's CPU (2 cores shared
    // with other test runs), so a freshly started candidate's p99 measures the host's load more than
    // the model. The error-rate gate keeps its defaults.
    const gates = [
      { name: 'error-rate', metric: 'error-rate', max: 0.05, relative: { maxRatio: 1.5, maxDelta: 0.01 }, critical: true },
      { name: 'latency-p99', metric: 'latency-p99', relative: { maxRatio: 3, maxDelta: 250 }, failureLimit: 1 },
    ];
    await writeFile(path.join(projectDir, 'modelctl.yaml'), stringify({ kubernetes: section, rollout: { gates } }));
    const env: NodeJS.ProcessEnv = { ...s3Env, MODELCTL_STORE: storeUrl, MODELCTL_TARGET: 'kubernetes', MODELCTL_HOME: await scratch.fresh('kube-box-home'), MODELCTL_GITHUB: 'off' };

    // node:http, not fetch: fetch may not set Host, and the route matches on its hostname.
    const gateway = new URL(box.gatewayUrl);
    const predict = (extra: Record<string, string> = {}): Promise<{ status: number; version?: string }> =>
      new Promise((resolve) => {
        const body = '{"text":"a fine film"}';
        const req = httpRequest(
          { host: gateway.hostname, port: gateway.port, path: '/sentiment/predict', method: 'POST', headers: { ...extra, host: BOX_HOST, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: 10_000, agent: keepAlive },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              try {
                resolve({ status: res.statusCode ?? 0, version: (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { version?: string }).version });
              } catch {
                resolve({ status: res.statusCode ?? 0 });
              }
            });
            res.on('error', () => resolve({ status: 0 }));
          },
        );
        req.on('timeout', () => req.destroy());
        req.on('error', () => resolve({ status: 0 }));
        req.end(body);
      });
    return {
      fake,
      box,
      s3Bytes: relay.bytes,
      storeUrl,
      projectDir,
      kubeconfigFile,
      env,
      async push(version, o = {}) {
        const dir = o.errorRate || o.scoreShift ? await faultyExample(await scratch.fresh('faulty'), o.errorRate ?? 0, { scoreShift: o.scoreShift ?? 0 }) : path.join(REPO_ROOT, 'bundles/example');
        const r = await runCli(['bundle', 'push', dir, '--version', version, '--json'], { env: { ...process.env, ...env } });
        if (r.code !== 0) throw new Error(`push sentiment@${version} failed: ${r.stderr}`);
      },
      cli(args, o = {}) {
        return runCli([...args, '--kubeconfig', kubeconfigFile], { env: { ...process.env, ...env }, cwd: projectDir, timeoutMs: o.timeoutMs ?? 120_000 });
      },
      async send(n) {
        const out: Record<string, number> = {};
        for (let i = 0; i < n; i++) {
          const r = await predict();
          const k = r.status === 200 ? r.version ?? '?' : `HTTP ${r.status}`;
          out[k] = (out[k] ?? 0) + 1;
        }
        return out;
      },
      load(headers) {
        let running = true;
        const byVersion: Record<string, number> = {};
        let errors = 0;
        let total = 0;
        // Every request's start (ms since the epoch) and round trip through the Gateway, as a caller sees it.
        const timed: Array<{ at: number; ms: number }> = [];
        const loop = (async () => {
          while (running) {
            const at = Date.now();
            const t0 = performance.now();
            const r = await predict(headers);
            timed.push({ at, ms: performance.now() - t0 });
            total++;
            if (r.status === 200 && r.version) byVersion[r.version] = (byVersion[r.version] ?? 0) + 1;
            else errors++;
            await new Promise((res) => setTimeout(res, 4));
          }
        })();
        return {
          async stop() {
            running = false;
            await loop;
            return { byVersion, errors, total, timed };
          },
        };
      },
      async meterRequests(version, sinceMs) {
        const pods = fake.list('v1', 'Pod', 'default').filter((p) => p.metadata.annotations?.['modelctl.dev/version'] === version && p.status?.phase === 'Running');
        let n = 0;
        for (const p of pods) {
          const res = await fetch(`${fake.url}/api/v1/namespaces/default/pods/${p.metadata.name}:9090/proxy/v1/window?since=${sinceMs}`, { signal: AbortSignal.timeout(10_000) });
          if (res.ok) n += ((await res.json()) as { requests: number }).requests;
        }
        return n;
      },
      async close() {
        await fake.close();
        await scratch.cleanup();
      },
    };
  } catch (err) {
    await fake.close();
    await scratch.cleanup();
    throw err;
  }
}
