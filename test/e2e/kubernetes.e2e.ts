/**
 * modelctl on a real cluster: the example model pushed to S3, deployed to Kubernetes, a canary
 * promoted under load, a bad canary rolled back by its gates — all through the CLI as users run it
 * (bin/run.js as a subprocess), checked with kubectl.
 *
 * Set up by .github/workflows/e2e-kubernetes.yml (kind + Gateway API v1.3 + Envoy Gateway + MinIO).
 * Not part of `npm test` (its files end in .e2e.ts, not .test.ts): run it with `npm run test:e2e`.
 * Without a cluster it fails at once, saying why — running it is asking for a cluster.
 *
 * Environment (defaults match the workflow):
 *   KUBECONFIG                 admin view for the assertions (kubectl)
 *   E2E_MODELCTL_KUBECONFIG    what modelctl runs with (the workflow's RBAC-only ServiceAccount); default KUBECONFIG
 *   E2E_NAMESPACE              modelctl-e2e        E2E_GATEWAY        e2e (a programmed Gateway in that namespace)
 *   E2E_IMAGE                  modelctl:e2e        E2E_STORE_SECRET   modelctl-store
 *   E2E_GATEWAY_URL            optional; default: a port-forward to the Envoy Service of the Gateway
 *   MODELCTL_STORE (s3://…), AWS_* and MODELCTL_S3_PATH_STYLE: the store as the runner sees it
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { versionObjectName } from '../../src/targets/kubernetes/names.js';

const run = promisify(execFile);
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = path.join(REPO, 'bin/run.js');
const EXAMPLE = path.join(REPO, 'bundles/example');

const NS = process.env.E2E_NAMESPACE ?? 'modelctl-e2e';
const GATEWAY = process.env.E2E_GATEWAY ?? 'e2e';
const IMAGE = process.env.E2E_IMAGE ?? 'modelctl:e2e';
const STORE_SECRET = process.env.E2E_STORE_SECRET ?? 'modelctl-store';
const MODEL = 'sentiment';
const ROUTE = MODEL; // settings.route.name unset → the model name
const MINUTE = 60_000;

// ── the cluster, or a clear reason why not ──────────────────────────────────────────────────

async function clusterReachable(): Promise<string | null> {
  try {
    await run('kubectl', ['version', '--request-timeout=10s', '-o', 'json'], { timeout: 20_000 });
    return null;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') return 'kubectl is not installed';
    return `no Kubernetes cluster answers (KUBECONFIG=${process.env.KUBECONFIG ?? '~/.kube/config'}): ${(e.stderr ?? e.message).trim().split('\n')[0]}`;
  }
}

const noCluster = await clusterReachable();
if (noCluster) process.stderr.write(`kubernetes e2e cannot run: ${noCluster}. See .github/workflows/e2e-kubernetes.yml for the setup it expects.\n`);

// ── helpers: kubectl, the CLI, load ────────────────────────────────────────────────────────

async function kubectl(...args: string[]): Promise<string> {
  const { stdout } = await run('kubectl', ['-n', NS, ...args], { timeout: 60_000, maxBuffer: 16 << 20 });
  return stdout;
}

async function kubectlJson<T>(...args: string[]): Promise<T> {
  return JSON.parse(await kubectl(...args, '-o', 'json')) as T;
}

interface HTTPRouteView {
  spec: { rules: Array<{ backendRefs?: Array<{ name: string; weight?: number }>; filters?: Array<{ type: string }> }> };
}

/** {Service name: weight} of the route's one rule; null when the route does not exist. */
async function routeWeights(): Promise<Record<string, number> | null> {
  try {
    const route = await kubectlJson<HTTPRouteView>('get', 'httproute', ROUTE);
    assert.equal(route.spec.rules.length, 1, 'modelctl renders exactly one rule');
    return Object.fromEntries((route.spec.rules[0]!.backendRefs ?? []).map((b) => [b.name, b.weight ?? 1]));
  } catch (err) {
    if (/NotFound|not found/i.test(String((err as { stderr?: string }).stderr ?? err))) return null;
    throw err;
  }
}

interface CliResult {
  code: number;
  json: Record<string, unknown>;
  stderr: string;
}

/** Run modelctl with --json in `cwd` (where the test's modelctl.yaml is). */
function modelctl(cwd: string, args: string[], timeoutMs = 15 * MINUTE): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, MODELCTL_HOME: path.join(cwd, '.home'), MODELCTL_TARGET: 'kubernetes', NO_COLOR: '1' };
    if (process.env.E2E_MODELCTL_KUBECONFIG) env.KUBECONFIG = process.env.E2E_MODELCTL_KUBECONFIG;
    const child = spawn(process.execPath, [CLI, ...args, '--json'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
      process.stderr.write(d); // progress of a long rollout, visible in the CI log
    });
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      try {
        resolve({ code: code ?? -1, json: JSON.parse(stdout) as Record<string, unknown>, stderr });
      } catch {
        reject(new Error(`modelctl ${args.join(' ')} exited ${code} without one JSON document on stdout:\n${stdout}\n${stderr}`));
      }
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** The Gateway's data plane from the runner: E2E_GATEWAY_URL, or a port-forward to Envoy's Service. */
async function gatewayUrl(): Promise<{ url: string; stop: () => void }> {
  if (process.env.E2E_GATEWAY_URL) return { url: process.env.E2E_GATEWAY_URL.replace(/\/+$/, ''), stop: () => {} };
  const { stdout } = await run('kubectl', [
    'get', 'service', '-A',
    '-l', `gateway.envoyproxy.io/owning-gateway-name=${GATEWAY},gateway.envoyproxy.io/owning-gateway-namespace=${NS}`,
    '-o', 'jsonpath={.items[0].metadata.namespace}/{.items[0].metadata.name}',
  ]);
  const [svcNs, svc] = stdout.trim().split('/');
  assert.ok(svcNs && svc, `no Envoy Service for Gateway ${NS}/${GATEWAY}: is Envoy Gateway installed and the Gateway programmed? (or set E2E_GATEWAY_URL)`);
  const port = await freePort();
  const child: ChildProcess = spawn('kubectl', ['-n', svcNs, 'port-forward', `service/${svc}`, `${port}:80`], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 60; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  return { url, stop: () => child.kill() };
}

/** Steady requests through the Gateway until stopped: the canaries' gates need traffic. */
function steadyLoad(url: string): { stop: () => Promise<{ sent: number; errors: number }> } {
  const ac = new AbortController();
  let sent = 0;
  let errors = 0;
  const texts = ['I loved it', 'terrible, would not buy again', 'fine', 'the best purchase this year', 'broke after a day'];
  const worker = async (): Promise<void> => {
    while (!ac.signal.aborted) {
      sent++;
      try {
        const res = await fetch(`${url}/predict`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ text: texts[sent % texts.length] }),
          signal: AbortSignal.any([ac.signal, AbortSignal.timeout(5000)]),
        });
        await res.arrayBuffer();
        if (res.status >= 500) errors++;
      } catch {
        if (!ac.signal.aborted) errors++;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const workers = Array.from({ length: 4 }, () => worker());
  return {
    stop: async () => {
      ac.abort();
      await Promise.all(workers);
      return { sent, errors };
    },
  };
}

/** Polls the route while `work` runs: every distinct weight map seen (to see the canary steps happen). */
async function watchingRoute<T>(work: Promise<T>): Promise<{ result: T; seen: Array<Record<string, number>> }> {
  const seen: Array<Record<string, number>> = [];
  let done = false;
  const poll = (async () => {
    while (!done) {
      const w = await routeWeights().catch(() => null);
      if (w && JSON.stringify(w) !== JSON.stringify(seen.at(-1))) seen.push(w);
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  try {
    return { result: await work, seen };
  } finally {
    done = true;
    await poll;
  }
}

/** The Service (and Deployment) of a version, as modelctl names it. */
const svc = (version: string): string => versionObjectName(MODEL, version);

/** POST /predict through the Gateway, retried while the route is being programmed (404/503 at first). */
async function predictThroughGateway(url: string, text: string, withinMs = 2 * MINUTE): Promise<Response> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const res = await fetch(`${url}/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text }) }).catch(
      (err: Error) => ({ status: 0, text: async () => err.message }) as unknown as Response,
    );
    if (res.status === 200 || Date.now() > deadline) return res;
    await res.text().catch(() => '');
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// ── the scenario ───────────────────────────────────────────────────────────────────────────

describe('modelctl on a real Kubernetes cluster (Gateway API)', { timeout: 60 * MINUTE }, () => {
  before(() => assert.equal(noCluster, null, `a cluster is needed: ${noCluster}`));
  let work = '';
  let gateway: { url: string; stop: () => void } | undefined;
  let load: ReturnType<typeof steadyLoad> | undefined;

  before(async () => {
    assert.ok(process.env.MODELCTL_STORE?.startsWith('s3://'), 'MODELCTL_STORE must be an s3:// store the cluster can reach (see .github/workflows/e2e-kubernetes.yml)');
    work = await mkdtemp(path.join(tmpdir(), 'modelctl-e2e-'));
    // Clean slate: a previous run's objects would turn the first deploy into a rollout.
    await kubectl('delete', 'deployments,services,httproutes,configmaps,leases', '-l', `app.kubernetes.io/managed-by=modelctl,modelctl.dev/model=${MODEL}`, '--ignore-not-found', '--wait=true');
    await writeFile(
      path.join(work, 'modelctl.yaml'),
      toYaml({
        store: process.env.MODELCTL_STORE,
        s3: { pathStyle: true },
        kubernetes: {
          namespace: NS,
          image: IMAGE,
          imagePullPolicy: 'Never', // loaded into kind; never pulled
          traffic: 'gateway-api',
          replicas: 1,
          warmReplicas: 1,
          route: { parentRefs: [{ name: GATEWAY }], path: '/' },
          storeSecret: STORE_SECRET,
          progressDeadline: '5m',
          resources: { requests: { cpu: '50m', memory: '64Mi' } },
        },
      }),
    );
    // 1.0.0 as shipped, 1.1.0 the same model under a new version, 1.2.0 a bad one: its config makes 30% of answers fail.
    const good = path.join(work, 'v110');
    const bad = path.join(work, 'v120');
    await cp(EXAMPLE, good, { recursive: true });
    await cp(EXAMPLE, bad, { recursive: true });
    for (const [dir, version] of [[good, '1.1.0'], [bad, '1.2.0']] as const) {
      const manifest = path.join(dir, 'bundle.yaml');
      await writeFile(manifest, (await readFile(manifest, 'utf8')).replace(/^version: .*$/m, `version: ${version}`));
    }
    const configFile = path.join(bad, 'config/model.json');
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { faults: Record<string, number> };
    config.faults.errorRate = 0.3;
    await writeFile(configFile, JSON.stringify(config, null, 2));

    for (const dir of [EXAMPLE, good, bad]) {
      const pushed = await modelctl(work, ['bundle', 'push', dir], 5 * MINUTE);
      assert.equal(pushed.code, 0, `push ${dir}: ${JSON.stringify(pushed.json)}`);
    }
  });

  after(async () => {
    await load?.stop();
    gateway?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('the first deploy goes live: a Deployment, a Service and a route at 100%', async () => {
    const r = await modelctl(work, ['deploy', `${MODEL}@1.0.0`, '--ready-timeout', '5m']);
    assert.equal(r.code, 0, `first deploy: ${JSON.stringify(r.json, null, 2)}\n${r.stderr}`);
    assert.equal(r.json.outcome, 'promoted');
    assert.deepEqual(await routeWeights(), { [svc('1.0.0')]: 100 });

    const d = await kubectlJson<{ metadata: { annotations: Record<string, string> }; status: { readyReplicas?: number } }>('get', 'deployment', svc('1.0.0'));
    assert.equal(d.metadata.annotations['modelctl.dev/version'], '1.0.0');
    assert.equal(d.metadata.annotations['modelctl.dev/digest'], r.json.digest);
    assert.ok((d.status.readyReplicas ?? 0) >= 1, 'the version has a ready pod');

    gateway = await gatewayUrl();
    const res = await predictThroughGateway(gateway.url, 'I loved it');
    assert.equal(res.status, 200, `through the Gateway: ${await res.text()}`);
    const answer = (await res.json()) as { label?: string; score?: number };
    assert.equal(answer.label, 'positive');
  });

  test('a canary under load is promoted: the route walks 20 → 50 → 100, exit code 0', async () => {
    load = steadyLoad(gateway!.url);
    const { result: r, seen } = await watchingRoute(modelctl(work, ['deploy', `${MODEL}@1.1.0`, '--steps', '20,50,100', '--interval', '45s', '--ready-timeout', '5m']));
    assert.equal(r.code, 0, `canary 1.1.0: ${JSON.stringify(r.json, null, 2)}\n${r.stderr}`);
    assert.equal(r.json.outcome, 'promoted');
    assert.ok(
      seen.some((w) => w[svc('1.0.0')] === 80 && w[svc('1.1.0')] === 20),
      `the 20% step was applied to the HTTPRoute (saw ${JSON.stringify(seen)})`,
    );
    assert.deepEqual(await routeWeights(), { [svc('1.1.0')]: 100 });
    // 1.0.0 stays warm (stable set) for an instant rollback.
    const warm = await kubectlJson<{ spec: { replicas: number } }>('get', 'deployment', svc('1.0.0'));
    assert.ok(warm.spec.replicas >= 1, '1.0.0 is kept warm');
  });

  test('a bad canary is rolled back by its gates: traffic back on 1.1.0, exit code 3', async () => {
    const { result: r, seen } = await watchingRoute(modelctl(work, ['deploy', `${MODEL}@1.2.0`, '--steps', '20,50,100', '--interval', '60s', '--ready-timeout', '5m']));
    assert.equal(r.code, 3, `bad canary 1.2.0: ${JSON.stringify(r.json, null, 2)}\n${r.stderr}`);
    assert.equal(r.json.outcome, 'rolled-back');
    assert.equal(r.json.rolledBackTo, '1.1.0');
    assert.ok(seen.some((w) => (w[svc('1.2.0')] ?? 0) > 0), `1.2.0 got canary traffic before the rollback (saw ${JSON.stringify(seen)})`);
    assert.ok(!seen.some((w) => w[svc('1.2.0')] === 100), '1.2.0 never got all the traffic');
    assert.deepEqual(await routeWeights(), { [svc('1.1.0')]: 100 });
  });

  test('afterwards: the ledger is in its ConfigMap, the lock is free, load reached the model', async () => {
    const stats = await load!.stop();
    load = undefined;
    assert.ok(stats.sent > 100, `load was sent (${stats.sent})`);
    // Only the bad canary's share (30% of its ≤ 20–50%) may have failed; the rest was answered.
    assert.ok(stats.errors < stats.sent * 0.2, `${stats.errors} of ${stats.sent} requests failed`);
    const cm = await kubectlJson<{ data: Record<string, string> }>('get', 'configmap', `modelctl-ledger-${MODEL}`);
    const ledger = JSON.parse(cm.data['ledger.json']!) as { stableSet: string[]; releases: Array<{ version: string }> };
    assert.equal(ledger.stableSet[0], '1.1.0');
    assert.deepEqual(ledger.releases.map((x) => x.version).filter((v, i, a) => a.indexOf(v) === i), ['1.0.0', '1.1.0', '1.2.0']);
    const lease = await kubectlJson<{ spec: { holderIdentity?: string } }>('get', 'lease', `modelctl-lock-${MODEL}`).catch((): { spec: { holderIdentity?: string } } => ({ spec: {} }));
    assert.ok(!lease.spec.holderIdentity, `the lock is released (held by ${lease.spec.holderIdentity})`);

    const status = await modelctl(work, ['status', MODEL]);
    assert.equal(status.code, 0, JSON.stringify(status.json));
  });
});
