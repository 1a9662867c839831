import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { after, before, describe, test } from 'node:test';
import { leftovers } from '../fakes/kube/netns.js';
import { CLI } from '../helpers/fixtures.js';
import { versionObjectName } from '../../src/targets/kubernetes/names.js';
import { startKubeBox, type KubeBox } from '../helpers/kube-world.js';

/**
 * Whole flows on the cluster in a box (test/fakes/kube/README.md): every part real — the bundle in
 * the real S3 (Ceph RGW) pulled by the init container's `modelctl bundle pull`, the real example
 * model and the real meter sidecar as processes in per-pod network namespaces, probes sent by the
 * kubelet to the pod IP, and load through the Gateway data plane that follows the HTTPRoute.
 */

const MODEL = 'sentiment';
const svc = (v: string): string => versionObjectName(MODEL, v);
const ROUTE = ['gateway.networking.k8s.io/v1', 'HTTPRoute', 'default', MODEL] as const;

function weights(w: KubeBox): Record<string, number> {
  const out: Record<string, number> = {};
  for (const b of w.fake.get(...ROUTE)?.spec?.rules?.[0]?.backendRefs ?? []) out[b.name] = b.weight;
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** The kubelet's Warning events (probe failures, back-offs): what a failure message must show. */
function warnings(w: KubeBox): string[] {
  return [...new Set(w.fake.list('v1', 'Event', 'default').filter((e) => e.type === 'Warning').map((e) => `${e.reason}: ${e.message}`))];
}

function podsOf(w: KubeBox, version: string): any[] {
  return w.fake.list('v1', 'Pod', 'default').filter((p) => p.metadata.annotations?.['modelctl.dev/version'] === version);
}

describe('cluster in a box: whole rollouts with real pods', { timeout: 600_000 }, () => {
  let w: KubeBox;
  let runId = '';
  before(async () => {
    w = await startKubeBox();
    runId = w.box.network.runId;
    for (const v of ['1.0.0', '1.1.0']) await w.push(v);
    await w.push('1.2.0', { errorRate: 0.5 });
  });
  after(async () => {
    await w?.close();
    assert.deepEqual(await leftovers(runId), [], 'no namespace, veth or bridge of this run is left');
  });

  test('first deploy: the pod pulls the bundle from S3, the kubelet probes the pod IP, the Gateway serves it', async () => {
    const r = await w.cli(['deploy', `${MODEL}@1.0.0`, '--ready-timeout', '40s', '--json']);
    const pod = podsOf(w, '1.0.0')[0];
    const why = `${r.stderr}\nkubelet warnings: ${warnings(w).join('\n  ')}\npod status: ${JSON.stringify(pod?.status?.containerStatuses?.map((c: any) => ({ name: c.name, ready: c.ready, restarts: c.restartCount, state: c.state })))}`;
    assert.equal(r.code, 0, why);
    assert.equal(r.json().outcome, 'promoted');
    assert.deepEqual(await w.send(20), { '1.0.0': 20 }, 'every answer through the Gateway comes from 1.0.0');
    const init = pod.status.initContainerStatuses[0];
    assert.equal(init.state.terminated?.reason, 'Completed', 'the init container pulled the bundle and exited 0');
    assert.match(pod.status.podIP, /^10\.\d+\.\d+\.\d+$/);
  });

  test('canary promoted: both versions answer through the Gateway during the steps, then only the new one', async () => {
    const load = w.load();
    const r = await w.cli(['deploy', `${MODEL}@1.1.0`, '--steps', '50,100', '--interval', '5s', '--ready-timeout', '40s', '--json']);
    const seen = await load.stop();
    assert.equal(r.code, 0, `${r.stderr}\nkubelet warnings: ${warnings(w).join('\n  ')}`);
    assert.equal(r.json().outcome, 'promoted');
    assert.ok((seen.byVersion['1.0.0'] ?? 0) > 20 && (seen.byVersion['1.1.0'] ?? 0) > 20, `both answered on the wire: ${JSON.stringify(seen)}`);
    assert.equal(seen.errors, 0, `no failed request during the canary: ${JSON.stringify(seen)}`);
    assert.deepEqual(await w.send(20), { '1.1.0': 20 });
    assert.equal(podsOf(w, '1.0.0').length, 1, '1.0.0 stays warm with one pod');
  });

  test('a bad canary is rolled back automatically by its error rate, measured by the real meter', async () => {
    const load = w.load();
    const r = await w.cli(['deploy', `${MODEL}@1.2.0`, '--steps', '50,100', '--interval', '6s', '--ready-timeout', '40s', '--json']);
    const seen = await load.stop();
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.json().outcome, 'rolled-back');
    assert.match(r.json().reason, /error-rate/);
    assert.ok((seen.byVersion['1.2.0'] ?? 0) > 0, 'the candidate did get traffic');
    assert.deepEqual(weights(w), { [svc('1.1.0')]: 100 });
    assert.deepEqual(await w.send(20), { '1.1.0': 20 }, 'after the rollback every answer is the stable one');
  });

  test('shadow: the candidate receives the requested share of live requests on the wire, callers never see it', async () => {
    await w.push('1.3.0');
    const since = Date.now();
    const load = w.load();
    const mirrorKey = `default/${svc('1.3.0')}`;
    // The candidate's pods are retired when the shadow phase ends: read its meter while it runs, and
    // the Gateway's own count at the same moment.
    let sample = { meter: 0, mirrored: 0, mirrorable: 0 };
    let done = false;
    const sampler = (async () => {
      while (!done) {
        const meter = await w.meterRequests('1.3.0', since).catch(() => 0);
        if (meter > 0) sample = { meter, mirrored: w.box.gatewayStats.mirrored.get(mirrorKey) ?? 0, mirrorable: w.box.gatewayStats.mirrorable.get(mirrorKey) ?? 0 };
        await sleep(300);
      }
    })();
    const r = await w.cli(['deploy', `${MODEL}@1.3.0`, '--shadow', '20%', '--shadow-only', '--shadow-duration', '8s', '--ready-timeout', '40s', '--json']);
    done = true;
    await sampler;
    const seen = await load.stop();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(seen.byVersion['1.3.0'], undefined, `no caller got an answer from the shadow: ${JSON.stringify(seen)}`);
    // The share on the wire: copies sent over the live requests that went through the mirroring
    // route (the data plane's share is exact, see dataplane.ts), and what the candidate's own meter
    // received of them (a few may still be in flight when it is read).
    assert.ok(sample.meter >= 10, `the candidate's meter saw mirrored requests: ${JSON.stringify(sample)}`);
    assert.ok(Math.abs(sample.mirrored - sample.mirrorable * 0.2) <= 1, `${sample.mirrored} copies of ${sample.mirrorable} live requests: ${((sample.mirrored / sample.mirrorable) * 100).toFixed(1)}%, asked 20%`);
    assert.ok(sample.meter <= sample.mirrored && sample.meter >= sample.mirrored - 5, `the candidate's meter counted the mirrored requests (a few in flight): ${JSON.stringify(sample)}`);
    assert.deepEqual(weights(w), { [svc('1.1.0')]: 100 });
  });

  test('manual rollback to a warm version: instant, on the pod that was already running', async () => {
    const warm = podsOf(w, '1.0.0');
    assert.equal(warm.length, 1);
    const r = await w.cli(['rollback', MODEL, '--to', '1.0.0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await w.send(20), { '1.0.0': 20 });
    assert.equal(podsOf(w, '1.0.0')[0].metadata.uid, warm[0].metadata.uid, 'no new pod: the warm one took the traffic');
  });

  test('a model container killed mid-step: the candidate is not ready while it holds 50%, so the step fails and traffic goes back to stable', async (t) => {
    // While its only pod is unready the Gateway answers the candidate's share itself (503, no
    // healthy upstream): those requests never reach its meter, so only the built-in
    // candidate-ready gate (the Deployment's ready replicas) can see it. Checks every second:
    // the kubelet restarts the container at once and it is unready for a few seconds.
    const stable = (await w.cli(['status', MODEL, '--json'])).json().serving as string;
    await w.push('1.4.0');
    const load = w.load();
    const child = w.cli(['deploy', `${MODEL}@1.4.0`, '--steps', '50,100', '--interval', '8s', '--check-every', '1s', '--ready-timeout', '40s', '--json']);
    await until('1.4.0 at 50% on the route', () => weights(w)[svc('1.4.0')] === 50);
    await sleep(1000);
    const pod = podsOf(w, '1.4.0')[0];
    w.box.kubelet.signal('default', pod.metadata.name, 'model', 'SIGKILL');
    const r = await child;
    const seen = await load.stop();
    t.diagnostic(`after the kill: ${r.json().outcome} (${r.json().reason}); load ${JSON.stringify({ ...seen, timed: seen.timed.length })}; answered by the Gateway itself: ${JSON.stringify([...w.box.gatewayStats.local])}`);
    assert.equal(r.json().outcome, 'rolled-back', r.stderr);
    // Which check sees it first is a race: requests in flight at the kill (or sent before the
    // readiness probe notices) reach the meter as 502s, so the critical error-rate gate may fail
    // first (1 of 30 in one run); otherwise only candidate-ready can (3 runs of 4 here). Either
    // way the step fails at once — never promoted. (The engine tests pin candidate-ready alone.)
    assert.match(r.json().reason, /critical gate candidate-ready failed: sentiment@1\.4\.0 is not ready .*while it takes 50% of traffic|critical gate error-rate failed/);
    const step = r.json().steps.at(-1);
    assert.ok(step.gates.some((g: { name: string }) => g.name === 'candidate-ready'), 'candidate-ready was checked in the failing step');
    const status = (await w.cli(['status', MODEL, '--json'])).json();
    assert.deepEqual(status.differences, [], `ledger and cluster agree: ${JSON.stringify(status.observed)}`);
    assert.equal(status.serving, stable);
    assert.deepEqual(await w.send(20), { [stable]: 20 });
  });

  /** Start a CLI deploy and SIGKILL it once the candidate has traffic on the route. */
  async function killMidCanary(version: string): Promise<void> {
    const child = spawn(process.execPath, [CLI, 'deploy', `${MODEL}@${version}`, '--steps', '30,100', '--interval', '30s', '--ready-timeout', '40s', '--kubeconfig', w.kubeconfigFile], {
      cwd: w.projectDir,
      env: { ...process.env, ...w.env },
      stdio: 'ignore',
    });
    try {
      await until(`${version} at 30% on the route`, () => weights(w)[svc(version)] === 30, 60_000);
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
  }

  test('kill -9 of the CLI mid-canary, then abort: all traffic back on the stable version', async () => {
    const stable = (await w.cli(['status', MODEL, '--json'])).json().serving as string;
    await w.push('1.5.0');
    await killMidCanary('1.5.0');
    const mixed = await w.send(40);
    assert.ok((mixed['1.5.0'] ?? 0) > 0 && (mixed[stable] ?? 0) > 0, `the canary kept serving its share after the CLI died: ${JSON.stringify(mixed)}`);
    const a = await w.cli(['abort', MODEL, '--json']);
    assert.equal(a.code, 0, a.stderr);
    assert.deepEqual(await w.send(20), { [stable]: 20 });
  });

  test('kill -9 of the CLI mid-canary, then deploy --resume: promoted', async () => {
    await w.push('1.6.0');
    await killMidCanary('1.6.0');
    const load = w.load();
    const r = await w.cli(['deploy', `${MODEL}@1.6.0`, '--resume', '--steps', '30,100', '--interval', '4s', '--json']);
    const seen = await load.stop();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json().outcome, 'promoted');
    assert.equal(seen.errors, 0, JSON.stringify(seen));
    assert.deepEqual(await w.send(20), { '1.6.0': 20 });
  });

  /**
   * Shadow comparison on the cluster: the Gateway mirrors the share to the candidate, whose meter
   * asks the stable Service (a ClusterIP, through the box's kube-proxy) the same request and
   * compares both answers (serve.agreementField: label). Figures are printed as diagnostics.
   */
  async function shadowRollout(t: { diagnostic: (s: string) => void }, version: string): Promise<{ r: any; figures: Record<string, unknown> }> {
    const file = path.join(w.projectDir, 'modelctl.yaml');
    const project = await readFile(file, 'utf8');
    const config = parse(project);
    config.rollout.gates.push({ name: 'shadow-agreement', metric: 'shadow-agreement', min: 0.9, phases: ['shadow'] });
    await writeFile(file, stringify(config));
    try {
      const stable = (await w.cli(['status', MODEL, '--json'])).json().serving as string;
      const mirrorKey = `default/${svc(version)}`;
      const stableKey = `default/${svc(stable)}`;
      const proxiedBefore = w.box.kubeProxy.stats.proxied.get(stableKey) ?? 0;
      const load = w.load();
      await sleep(6000); // the baseline: the same load, nothing mirrored
      let compare: { compared: number; dropped: number; failed: number } | undefined;
      let done = false;
      // The candidate's pods are retired when it is rolled back: read its meter while it runs.
      const sampler = (async () => {
        while (!done) {
          for (const p of podsOf(w, version).filter((x) => x.status?.phase === 'Running')) {
            const res = await fetch(`${w.fake.url}/api/v1/namespaces/default/pods/${p.metadata.name}:9090/proxy/v1/window?since=0`, { signal: AbortSignal.timeout(5000) }).catch(() => undefined);
            const body = res?.ok ? ((await res.json()) as { compare?: typeof compare }) : undefined;
            if (body?.compare) compare = body.compare;
          }
          await sleep(500);
        }
      })();
      const r = await w.cli(['deploy', `${MODEL}@${version}`, '--shadow', '25%', '--shadow-duration', '12s', '--check-every', '2s', '--steps', '50,100', '--interval', '4s', '--ready-timeout', '40s', '--json']);
      done = true;
      await sampler;
      const seen = await load.stop();
      const events = r.json().events as Array<{ type: string; phase?: string; at: number }>;
      const shadowStart = events.find((e) => e.type === 'step-started' && e.phase === 'shadow')?.at ?? 0;
      const shadowEnd = events.find((e) => e.at > shadowStart && ['step-started', 'step-failed', 'rollback-started'].includes(e.type))?.at ?? 0;
      const deployStart = events[0]!.at;
      const q = (xs: number[], p: number) => {
        const s = [...xs].sort((a, b) => a - b);
        return s.length ? Number(s[Math.min(s.length - 1, Math.floor(p * s.length))]!.toFixed(2)) : null;
      };
      const before = seen.timed.filter((x) => x.at < deployStart).map((x) => x.ms);
      const during = seen.timed.filter((x) => x.at >= shadowStart + 1000 && x.at < shadowEnd).map((x) => x.ms);
      const agreement = r.json().steps?.[0]?.gates?.find((g: any) => g.name === 'shadow-agreement');
      const figures = {
        outcome: r.json().outcome,
        agreement: agreement ? { value: agreement.value, samples: agreement.samples, reason: agreement.reason } : null,
        mirrored: w.box.gatewayStats.mirrored.get(mirrorKey) ?? 0,
        mirrorable: w.box.gatewayStats.mirrorable.get(mirrorKey) ?? 0,
        candidateMeter: compare,
        stableAskedConnections: (w.box.kubeProxy.stats.proxied.get(stableKey) ?? 0) - proxiedBefore,
        userLatencyMs: { withoutMirror: { n: before.length, p50: q(before, 0.5), p99: q(before, 0.99) }, withMirror: { n: during.length, p50: q(during, 0.5), p99: q(during, 0.99) } },
        userErrors: seen.errors,
        answeredBy: seen.byVersion,
      };
      t.diagnostic(`shadow of ${version} against ${stable}: ${JSON.stringify(figures)}`);
      assert.equal(seen.errors, 0, `no caller saw an error: ${JSON.stringify(seen.byVersion)}`);
      return { r, figures };
    } finally {
      await writeFile(file, project);
    }
  }

  test('shadow comparison on the cluster: an equal candidate agrees (~100% of compared answers) and is promoted', async (t) => {
    await w.push('1.7.0');
    const { r, figures } = await shadowRollout(t, '1.7.0');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json().outcome, 'promoted', r.json().reason);
    const a = figures.agreement as { value: number; samples: number };
    assert.ok(a && a.value >= 0.99 && a.samples >= 20, `agreement measured on the cluster: ${JSON.stringify(a)}`);
    const c = figures.candidateMeter as { compared: number };
    assert.ok(c && c.compared >= a.samples, `the candidate's meter compared them: ${JSON.stringify(c)}`);
    // Connections, not requests: the meter's keep-alive pool reuses them.
    assert.ok((figures.stableAskedConnections as number) >= 1, 'the comparisons asked the stable Service at its ClusterIP');
  });

  test('shadow comparison on the cluster: a candidate whose answers differ is rolled back by shadow-agreement, before any user saw it', async (t) => {
    // scoreShift -1: every answer's label is "negative" where the stable says "positive".
    await w.push('1.8.0', { scoreShift: -1 });
    const { r, figures } = await shadowRollout(t, '1.8.0');
    assert.equal(r.json().outcome, 'rolled-back', r.stderr);
    assert.match(r.json().reason, /shadow-agreement/);
    const a = figures.agreement as { value: number; samples: number };
    assert.ok(a && a.value <= 0.1 && a.samples >= 20, `agreement measured on the cluster: ${JSON.stringify(a)}`);
    assert.equal((figures.answeredBy as Record<string, number>)['1.8.0'], undefined, 'no caller got an answer from the shadow');
  });
});

describe('cluster in a box: Gateway API v1.2 (no RequestMirror percent)', { timeout: 300_000 }, () => {
  let w: KubeBox;
  let runId = '';
  before(async () => {
    w = await startKubeBox({ gatewayApi: 'v1.2.0' });
    runId = w.box.network.runId;
    await w.push('1.0.0');
    await w.push('1.1.0');
  });
  after(async () => {
    await w?.close();
    assert.deepEqual(await leftovers(runId), [], 'no namespace, veth or bridge of this run is left');
  });

  test('a shadow is refused before any traffic moves; nothing is mirrored on the wire', async () => {
    const first = await w.cli(['deploy', `${MODEL}@1.0.0`, '--ready-timeout', '40s', '--json']);
    assert.equal(first.code, 0, `${first.stderr}\nkubelet warnings: ${warnings(w).join('\n  ')}`);
    const load = w.load();
    const r = await w.cli(['deploy', `${MODEL}@1.1.0`, '--shadow', '10%', '--shadow-only', '--shadow-duration', '4s', '--json']);
    const seen = await load.stop();
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.json().error.message, /percent/i);
    assert.match(`${r.json().error.message} ${r.json().error.hint}`, /v1\.3/);
    assert.equal(w.box.gatewayStats.mirrored.size, 0, 'no request was mirrored');
    assert.deepEqual(Object.keys(seen.byVersion), ['1.0.0']);
    assert.deepEqual(weights(w), { [svc('1.0.0')]: 100 });
  });

  test('the same refusal when the CRD cannot be read (a namespaced Role): the server-side dry run decides', async () => {
    // modelctl's Role is namespaced: on most clusters it may not read CRDs. Then only the API
    // server's answer to the dry run tells — and for server-side apply that answer is a 500
    // (structured-merge-diff: "field not declared in schema"), not a 400.
    w.fake.forbid('get', 'customresourcedefinitions', 'apiextensions.k8s.io');
    const r = await w.cli(['deploy', `${MODEL}@1.1.0`, '--shadow', '10%', '--shadow-only', '--shadow-duration', '4s', '--json'], { timeoutMs: 90_000 });
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.json().error.message, /percent/i);
    assert.equal(w.box.gatewayStats.mirrored.size, 0, 'no request was mirrored');
    assert.deepEqual(weights(w), { [svc('1.0.0')]: 100 });
  });
});
