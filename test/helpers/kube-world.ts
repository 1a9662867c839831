import { writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { systemClock } from '../../src/rollout/contracts.js';
import { RolloutEngine, type RolloutEvent } from '../../src/rollout/engine.js';
import type { RolloutPlan } from '../../src/ledger/model.js';
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
  push(version: string, opts?: { name?: string }): Promise<void>;
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
      project: { file: path.join(projectDir, 'modelctl.yaml'), config: { kubernetes: { ...section, ...extra } } },
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
      files['bundle.yaml'] = bundleYaml(name, version, 'serve:\n  command: [node, serve.mjs]\n  readinessPath: /healthz\n  scoreField: score\n');
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
