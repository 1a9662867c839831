/**
 * modelctl on a real cluster: the example model pushed to S3, deployed to Kubernetes, a canary
 * promoted under load, a bad canary rolled back by its gates, a 20% shadow — all through the CLI as
 * users run it (bin/run.js as a subprocess), checked with kubectl and with real traffic: answers
 * counted by the version that gave them (through the Gateway), and the mirrored share counted at the
 * candidate's metering sidecar against the requests sent (a route that says 20% but mirrors 100%,
 * as Gateway API < v1.3 does, fails here). Pods only become Ready when the kubelet's probes (to the
 * pod IP) reach the model — through the meter's /model-ready.
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

/**
 * Steady requests through the Gateway until stopped: the canaries' gates need traffic, and the
 * answers say which version served them (the example model puts its version in every answer), so
 * the test counts what really reached each version — not what the route spec says.
 */
interface Load {
  /** Requests sent so far and answers per version (200s only), since the start. */
  counts(): { sent: number; errors: number; byVersion: Record<string, number> };
  stop(): Promise<{ sent: number; errors: number; byVersion: Record<string, number> }>;
}

function steadyLoad(url: string): Load {
  const ac = new AbortController();
  let sent = 0;
  let errors = 0;
  const byVersion: Record<string, number> = {};
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
        const body = await res.text();
        if (res.status >= 500) errors++;
        if (res.status === 200) {
          const version = (JSON.parse(body) as { version?: string }).version ?? '?';
          byVersion[version] = (byVersion[version] ?? 0) + 1;
        }
      } catch {
        if (!ac.signal.aborted) errors++;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const workers = Array.from({ length: 4 }, () => worker());
  const counts = () => ({ sent, errors, byVersion: { ...byVersion } });
  return {
    counts,
    stop: async () => {
      ac.abort();
      await Promise.all(workers);
      return counts();
    },
  };
}

/** Answers per version between two counts() snapshots. */
function answeredBetween(a: ReturnType<Load['counts']>, b: ReturnType<Load['counts']>): Record<string, number> {
  return Object.fromEntries(Object.entries(b.byVersion).map(([v, n]) => [v, n - (a.byVersion[v] ?? 0)]).filter(([, n]) => (n as number) > 0));
}

/** `n` requests through the Gateway, one at a time: which versions answered them. */
async function burst(url: string, n: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const res = await predictThroughGateway(url, 'fine', 30_000);
    const version = res.status === 200 ? ((await res.json()) as { version?: string }).version ?? '?' : `HTTP ${res.status}`;
    out[version] = (out[version] ?? 0) + 1;
  }
  return out;
}

/**
 * Requests the candidate's metering sidecars recorded since `sinceMs` (all of them mirrored copies
 * while the candidate has no live weight), read through the API server's pod proxy as modelctl does.
 */
async function meteredRequests(version: string, sinceMs: number): Promise<number> {
  const pods = (await kubectl('get', 'pods', '-l', `modelctl.dev/model=${MODEL},app.kubernetes.io/version=${version}`, '-o', 'jsonpath={.items[*].metadata.name}')).trim().split(/\s+/).filter(Boolean);
  assert.ok(pods.length > 0, `${version} has pods`);
  let total = 0;
  for (const pod of pods) {
    const { stdout } = await run('kubectl', ['get', '--raw', `/api/v1/namespaces/${NS}/pods/${pod}:9090/proxy/v1/window?since=${Math.floor(sinceMs)}`], { timeout: 30_000, maxBuffer: 64 << 20 });
    total += (JSON.parse(stdout) as { requests: number }).requests;
  }
  return total;
}

/** Does the route mirror right now? */
async function routeMirrors(): Promise<boolean> {
  const route = await kubectlJson<HTTPRouteView>('get', 'httproute', ROUTE).catch(() => null);
  return !!route?.spec.rules[0]?.filters?.some((f) => f.type === 'RequestMirror');
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
  let load: Load | undefined;

  before(async () => {
    assert.ok(process.env.MODELCTL_STORE?.startsWith('s3://'), 'MODELCTL_STORE must be an s3:// store the cluster can reach (see .github/workflows/e2e-kubernetes.yml)');
    // The namespace enforces Pod Security "restricted" (.github/workflows/e2e-kubernetes.yml): the real
    // admission refuses any pod of ours that would not pass it, so every deploy below checks that too.
    const ns = await kubectlJson<{ metadata: { labels?: Record<string, string> } }>('get', 'namespace', NS);
    assert.equal(ns.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted', `namespace ${NS} must enforce Pod Security "restricted"`);
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
    const shadow = path.join(work, 'v130');
    await cp(EXAMPLE, good, { recursive: true });
    await cp(EXAMPLE, bad, { recursive: true });
    await cp(EXAMPLE, shadow, { recursive: true });
    for (const [dir, version] of [[good, '1.1.0'], [bad, '1.2.0'], [shadow, '1.3.0']] as const) {
      const manifest = path.join(dir, 'bundle.yaml');
      await writeFile(manifest, (await readFile(manifest, 'utf8')).replace(/^version: .*$/m, `version: ${version}`));
    }
    const configFile = path.join(bad, 'config/model.json');
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { faults: Record<string, number> };
    config.faults.errorRate = 0.3;
    await writeFile(configFile, JSON.stringify(config, null, 2));

    for (const dir of [EXAMPLE, good, bad, shadow]) {
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

    // A caller of the public route cannot hide its requests from the gates: the HTTPRoute's
    // RequestHeaderModifier removes the headers the meter exempts (x-modelctl-evaluation,
    // x-modelctl-compare) before the Gateway forwards them. Without it these 20 would not be counted.
    const t0 = Date.now();
    for (let i = 0; i < 20; i++) {
      const sneaky = await fetch(`${gateway.url}/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-modelctl-evaluation': '1', 'x-modelctl-compare': '1' },
        body: JSON.stringify({ text: 'hidden?' }),
      });
      assert.equal(sneaky.status, 200, await sneaky.text());
      await sneaky.arrayBuffer().catch(() => undefined);
    }
    const metered = await meteredRequests('1.0.0', t0);
    assert.ok(metered >= 20, `the meter counted ${metered} of the 20 requests sent with the unmetered headers: the Gateway did not strip them`);
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
    // Real traffic reached both versions through the Gateway during the canary, and only 1.1.0 after it.
    const answered = answeredBetween({ sent: 0, errors: 0, byVersion: {} }, load.counts());
    assert.ok((answered['1.0.0'] ?? 0) > 0 && (answered['1.1.0'] ?? 0) > 0, `both versions answered through the Gateway during the canary: ${JSON.stringify(answered)}`);
    assert.deepEqual(await burst(gateway!.url, 30), { '1.1.0': 30 }, 'after the promotion every answer comes from 1.1.0');
    // 1.0.0 stays warm (stable set) for an instant rollback.
    const warm = await kubectlJson<{ spec: { replicas: number } }>('get', 'deployment', svc('1.0.0'));
    assert.ok(warm.spec.replicas >= 1, '1.0.0 is kept warm');
  });

  test('a bad canary is rolled back by its gates: traffic back on 1.1.0, exit code 3', async () => {
    const before = load!.counts();
    const { result: r, seen } = await watchingRoute(modelctl(work, ['deploy', `${MODEL}@1.2.0`, '--steps', '20,50,100', '--interval', '60s', '--ready-timeout', '5m']));
    assert.equal(r.code, 3, `bad canary 1.2.0: ${JSON.stringify(r.json, null, 2)}\n${r.stderr}`);
    const answered = answeredBetween(before, load!.counts());
    assert.ok((answered['1.2.0'] ?? 0) > 0, `the bad canary really served some requests before its rollback: ${JSON.stringify(answered)}`);
    assert.deepEqual(await burst(gateway!.url, 30), { '1.1.0': 30 }, 'after the rollback every answer comes from 1.1.0');
    assert.equal(r.json.outcome, 'rolled-back');
    assert.equal(r.json.rolledBackTo, '1.1.0');
    assert.ok(seen.some((w) => (w[svc('1.2.0')] ?? 0) > 0), `1.2.0 got canary traffic before the rollback (saw ${JSON.stringify(seen)})`);
    assert.ok(!seen.some((w) => w[svc('1.2.0')] === 100), '1.2.0 never got all the traffic');
    assert.deepEqual(await routeWeights(), { [svc('1.1.0')]: 100 });
  });

  test('shadow 20%: the candidate\'s meter counts ~20% of the requests sent (measured, not the route spec); callers only see the stable', async () => {
    const run = modelctl(work, ['deploy', `${MODEL}@1.3.0`, '--shadow', '20%', '--shadow-only', '--shadow-duration', '150s', '--ready-timeout', '5m']);
    // Wait until the route mirrors, give the Gateway a few seconds to program it, then measure for 60 s.
    const deadline = Date.now() + 6 * MINUTE;
    while (!(await routeMirrors())) {
      assert.ok(Date.now() < deadline, 'the route never got a RequestMirror filter');
      await new Promise((r) => setTimeout(r, 1000));
    }
    await new Promise((r) => setTimeout(r, 10_000));
    const t0 = Date.now();
    const before = load!.counts();
    await new Promise((r) => setTimeout(r, 60_000));
    const after = load!.counts();
    const mirrored = await meteredRequests('1.3.0', t0);
    assert.ok(await routeMirrors(), 'the mirror lasted the whole measurement');
    const sent = after.sent - before.sent;
    const share = mirrored / sent;
    assert.ok(sent > 500, `enough requests to measure a share (${sent})`);
    // Binomial: with n > 500 at p = 0.2 the standard deviation is < 1.8 points; ±6 points is > 3 sd.
    assert.ok(Math.abs(share - 0.2) <= 0.06, `mirrored ${mirrored} of ${sent} requests = ${(share * 100).toFixed(1)}% (asked 20%): a Gateway API without RequestMirror percent mirrors 100%`);
    const answered = answeredBetween(before, after);
    assert.deepEqual(Object.keys(answered), ['1.1.0'], `mirrored answers are discarded: callers only got the stable's (${JSON.stringify(answered)})`);
    const r = await run;
    assert.equal(r.code, 0, `shadow 1.3.0: ${JSON.stringify(r.json, null, 2)}\n${r.stderr}`);
    assert.equal(r.json.outcome, 'shadow-passed');
    assert.deepEqual(await routeWeights(), { [svc('1.1.0')]: 100 });
    assert.equal(await routeMirrors(), false, 'the mirror is removed after the shadow');
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
    assert.deepEqual(ledger.releases.map((x) => x.version).filter((v, i, a) => a.indexOf(v) === i), ['1.0.0', '1.1.0', '1.2.0', '1.3.0']);
    const lease = await kubectlJson<{ spec: { holderIdentity?: string } }>('get', 'lease', `modelctl-lock-${MODEL}`).catch((): { spec: { holderIdentity?: string } } => ({ spec: {} }));
    assert.ok(!lease.spec.holderIdentity, `the lock is released (held by ${lease.spec.holderIdentity})`);

    const status = await modelctl(work, ['status', MODEL]);
    assert.equal(status.code, 0, JSON.stringify(status.json));
  });
});
