import { isGateEvent } from '../../src/core/events.js';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { UnavailableError } from '../../src/core/errors.js';
import { LockedError } from '../../src/ledger/lock.js';
import { DEFAULT_RETRY } from '../../src/targets/kubernetes/client.js';
import { versionObjectName, ledgerConfigMapName, leaseName } from '../../src/targets/kubernetes/names.js';
import { METER_CONTAINER } from '../../src/targets/kubernetes/manifests.js';
import { CLI } from '../helpers/fixtures.js';
import { enforcePodSecurity } from '../helpers/kube-api.js';
import { fastPlan, MODEL, startKubeWorld, type KubeWorld } from '../helpers/kube-world.js';

/**
 * Whole rollouts on Kubernetes, against the in-repo fake API server (driven through the real
 * @kubernetes/client-node) with its simulated deployment controller, bundles in a real S3 (Ceph
 * RGW), and per-version metrics read through the API server's pod proxy. The scenarios build on
 * each other like a day in the life of a model.
 */

const ROUTE = ['gateway.networking.k8s.io/v1', 'HTTPRoute', 'default', MODEL] as const;

function backendWeights(route: any): Record<string, number> {
  const out: Record<string, number> = {};
  for (const b of route?.spec?.rules?.[0]?.backendRefs ?? []) out[b.name] = b.weight;
  return out;
}

function mirrorOf(route: any): { name: string; percent: number } | null {
  const f = (route?.spec?.rules?.[0]?.filters ?? []).find((x: any) => x.type === 'RequestMirror');
  return f ? { name: f.requestMirror.backendRef.name, percent: f.requestMirror.percent } : null;
}

const svc = (v: string) => versionObjectName(MODEL, v);

/** An engine whose first traffic change takes the API server down (back up after `upAfterMs`, or never). */
function downAtFirstTraffic(w: KubeWorld, upAfterMs?: number): { engine: ReturnType<KubeWorld['engine']>; happened: () => boolean } {
  let downed = false;
  const engine = w.engine({
    onEvent: (e) => {
      if (e.type !== 'traffic-applied' || downed) return;
      downed = true;
      w.fake.setDown(true);
      if (upAfterMs !== undefined) setTimeout(() => w.fake.setDown(false), upAfterMs);
    },
  });
  return { engine, happened: () => downed };
}

describe('Kubernetes target: rollouts through the Gateway API', { timeout: 300_000 }, () => {
  let w: KubeWorld;
  before(async () => {
    w = await startKubeWorld({ section: { replicas: 2, warmReplicas: 1 } });
    for (const v of ['1.0.0', '1.1.0', '1.2.0', '1.3.0', '1.4.0', '1.5.0', '1.6.0', '1.7.0', '1.8.0', '1.9.0']) await w.push(v);
    for (const v of ['1.0.0', '1.1.0', '1.2.0', '1.3.0']) await w.push(v, { name: 'ranker' });
    for (const v of ['1.0.0', '1.1.0']) await w.push(v, { name: 'scorer' });
    // Versions no other test gives a quality (w.quality is by version).
    for (const v of ['3.0.0', '3.1.0', '3.2.0']) await w.push(v, { name: 'judge', agreementField: 'label' });
  });
  after(() => w?.close());

  test('first deploy: Deployment and Service per version, route 100% on it, ledger in a ConfigMap, Lease released', async () => {
    const r = await w.engine().deploy(await ref(w, '1.0.0'), fastPlan({ steps: [] }));
    assert.equal(r.outcome, 'promoted', r.reason);
    const d = w.fake.get('apps/v1', 'Deployment', 'default', svc('1.0.0'));
    assert.ok(d, 'Deployment created');
    assert.equal(d.metadata.labels['modelctl.dev/model'], MODEL);
    assert.equal(d.spec.replicas, 2);
    assert.equal(d.spec.template.spec.initContainers[0].name, 'fetch-bundle');
    assert.ok(w.fake.get('v1', 'Service', 'default', svc('1.0.0')), 'Service created');
    assert.deepEqual(backendWeights(w.fake.get(...ROUTE)), { [svc('1.0.0')]: 100 });
    const cm = w.fake.get('v1', 'ConfigMap', 'default', ledgerConfigMapName(MODEL));
    assert.deepEqual(JSON.parse(cm.data['ledger.json']).stableSet, ['1.0.0']);
    const lease = w.fake.get('coordination.k8s.io/v1', 'Lease', 'default', leaseName(MODEL));
    assert.ok(lease, 'the Lease exists');
    assert.ok(!lease.spec.holderIdentity, 'and nobody holds it after the rollout');
    assert.match(lease.spec.renewTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'renewTime is a MicroTime');
  });

  test('canary climbs the ladder on the HTTPRoute, promotes, and the old stable stays warm', async () => {
    const seen: Record<string, number>[] = [];
    const engine = w.engine({ onEvent: (e) => e.type === 'traffic-applied' && seen.push(backendWeights(w.fake.get(...ROUTE))) });
    w.fake.resetRequests();
    const r = await engine.deploy(await ref(w, '1.1.0'), fastPlan());
    assert.equal(r.outcome, 'promoted', r.reason);
    assert.deepEqual(backendWeights(w.fake.get(...ROUTE)), { [svc('1.1.0')]: 100 });
    assert.ok(
      seen.some((s) => s[svc('1.1.0')] === 20 && s[svc('1.0.0')] === 80),
      `the 20% step was on the route: ${JSON.stringify(seen)}`,
    );
    assert.equal(w.fake.get('apps/v1', 'Deployment', 'default', svc('1.0.0')).spec.replicas, 1, '1.0.0 scaled to the warm size, not away');
    assert.equal(w.fake.get('apps/v1', 'Deployment', 'default', svc('1.1.0')).spec.replicas, 2);
    // Before anything is written, the candidate's objects were dry-run on the server (Strict, admission).
    const writes = w.fake.requests.filter((q) => ['POST', 'PUT', 'PATCH'].includes(q.method));
    assert.deepEqual(writes.slice(0, 2).map((q) => [q.resource, q.query.dryRun]), [['deployments', 'All'], ['services', 'All']]);
    // One GET per check is the candidate-ready gate asking for ready replicas; the rest must be few.
    const checks = r.events.filter(isGateEvent).filter((e) => e.gate === 'candidate-ready').length;
    assert.ok(checks >= 1, `candidate-ready was checked (${checks} checks)`);
    const polls = w.fake.requests.filter((q) => q.verb === 'get' && q.resource === 'deployments').length - checks;
    assert.ok(polls <= 6, `readiness is watched, not polled (${polls} GETs of deployments besides the ${checks} checks)`);
  });

  test('candidate-ready asks the API server: a 500 is retried, and one past the retries is "cannot tell" (thrown), never "not ready"', async () => {
    const { target } = w.parts();
    const name = svc('1.1.0');
    const onIt = (q: { method: string; path: string }) => q.method === 'GET' && q.path.endsWith(`/deployments/${name}`);
    w.fake.failNext(2, 500, onIt);
    assert.equal(await target.healthy(MODEL, '1.1.0'), true, 'two 500s are retried away');
    w.fake.failNext(DEFAULT_RETRY.attempts, 500, onIt); // every attempt of one call
    await assert.rejects(target.healthy(MODEL, '1.1.0'), (e: Error) => e instanceof UnavailableError && /answered 500 to get Deployment/.test(e.message));
    assert.equal(await target.healthy(MODEL, 'no-such-version'), false, 'no Deployment: not ready');
  });

  test('a bad canary is rolled back automatically: route back on the stable, candidate retired', async () => {
    w.quality.set('1.2.0', 0.3);
    const r = await w.engine().deploy(await ref(w, '1.2.0'), fastPlan());
    assert.equal(r.outcome, 'rolled-back', r.reason);
    assert.equal(r.rolledBackTo, '1.1.0');
    assert.match(r.reason, /error-rate/);
    assert.deepEqual(backendWeights(w.fake.get(...ROUTE)), { [svc('1.1.0')]: 100 });
    assert.equal(w.fake.get('apps/v1', 'Deployment', 'default', svc('1.2.0')), undefined, 'the failed version is removed');
  });

  test('shadow: the route mirrors a percentage to the candidate; its answers never reach callers', async () => {
    let mirrored: { name: string; percent: number } | null = null;
    const engine = w.engine({ onEvent: (e) => e.type === 'traffic-applied' && (mirrored ??= mirrorOf(w.fake.get(...ROUTE))) });
    const r = await engine.deploy(await ref(w, '1.3.0'), fastPlan({ shadowPercent: 30, shadowDurationMs: 800, shadowOnly: true }));
    assert.equal(r.outcome, 'shadow-passed', r.reason);
    assert.deepEqual(mirrored, { name: svc('1.3.0'), percent: 30 });
    assert.equal(mirrorOf(w.fake.get(...ROUTE)), null, 'mirror removed after the shadow phase');
    assert.deepEqual(backendWeights(w.fake.get(...ROUTE)), { [svc('1.1.0')]: 100 });
  });

  test('a shadow compares with the version serving now: a candidate left running (its retirement failed) and shadowed again after the stable changed is pointed at today\'s stable; a re-deploy that is not a candidate keeps its pods', async () => {
    const judge = (v: string) => versionObjectName('judge', v);
    const deployment = (v: string) => w.fake.get('apps/v1', 'Deployment', 'default', judge(v));
    const compareWith = (v: string) => {
      const args: string[] = deployment(v).spec.template.spec.containers.find((c: any) => c.name === METER_CONTAINER)?.args ?? [];
      const i = args.indexOf('--compare-with');
      return i < 0 ? undefined : args[i + 1];
    };
    const address = (v: string) => {
      const s = w.fake.get('v1', 'Service', 'default', judge(v));
      return `${s.spec.clusterIP}:${s.spec.ports[0].port}`;
    };
    const judgeRef = (v: string) => ref(w, v, 'judge');
    const shadowOnly = fastPlan({ shadowPercent: 30, shadowDurationMs: 800, shadowOnly: true });
    assert.equal((await w.engine().deploy(await judgeRef('3.0.0'), fastPlan())).outcome, 'promoted');
    // A shadow's candidate is retired after it; here the retirement fails (the API server answers 500
    // past the retries: housekeeping, never fatal), so 3.1.0's Deployment is left behind.
    const deleting = (q: { method: string; path: string }) => q.method === 'DELETE' && q.path.endsWith(`/deployments/${judge('3.1.0')}`);
    w.fake.failNext(DEFAULT_RETRY.attempts, 500, deleting);
    let r = await w.engine().deploy(await judgeRef('3.1.0'), shadowOnly);
    assert.equal(r.outcome, 'shadow-passed', r.reason);
    assert.ok(deployment('3.1.0'), 'the retirement failed: 3.1.0 is still there');
    assert.equal(compareWith('3.1.0'), address('3.0.0'), 'shadowed while 3.0.0 served: 3.1.0 compares with 3.0.0');
    assert.equal((await w.engine().deploy(await judgeRef('3.2.0'), fastPlan())).outcome, 'promoted');
    const rolled = deployment('3.1.0').metadata.generation;
    // Seen when the mirror starts (the candidate is retired again after its shadow).
    let during: { compareWith: string | undefined; generation: number } | undefined;
    const engine = w.engine({ onEvent: (e) => e.type === 'traffic-applied' && (during ??= { compareWith: compareWith('3.1.0'), generation: deployment('3.1.0').metadata.generation }) });
    r = await engine.deploy(await judgeRef('3.1.0'), shadowOnly);
    assert.equal(r.outcome, 'shadow-passed', r.reason);
    assert.equal(during?.compareWith, address('3.2.0'), 'shadowed again, 3.1.0 compares its answers with 3.2.0, which serves now');
    assert.ok(during.generation > rolled, 'its pods were rolled for it');
    // A re-deploy that is not a candidate (a warm version made to run again for a rollback) keeps its meter: no roll.
    const before = deployment('3.0.0').metadata.generation;
    await w.parts().target.deploy(await judgeRef('3.0.0'));
    assert.equal(deployment('3.0.0').metadata.generation, before);
  });

  test('a version that cannot start fails before any traffic, naming the reason from pod status', async () => {
    w.fake.controller.behave({ version: '1.4.0' }, 'image-pull');
    const r = await w.engine().deploy(await ref(w, '1.4.0'), fastPlan());
    assert.equal(r.outcome, 'rolled-back', r.reason);
    assert.match(r.reason, /ImagePullBackOff/);
    assert.deepEqual(backendWeights(w.fake.get(...ROUTE)), { [svc('1.1.0')]: 100 });
  });

  test('a first deploy that cannot start is rolled back to "nothing served": no route left pointing at it, the ledger not stuck, the next deploy goes live', async () => {
    w.fake.controller.behave({ model: 'scorer', version: '1.0.0' }, 'image-pull');
    const r = await w.engine().deploy(await ref(w, '1.0.0', 'scorer'), fastPlan({ readyTimeoutMs: 1500 }));
    assert.equal(r.outcome, 'rolled-back', r.reason);
    assert.match(r.reason, /ImagePullBackOff/);
    const route = w.fake.get('gateway.networking.k8s.io/v1', 'HTTPRoute', 'default', 'scorer');
    assert.deepEqual(route?.spec?.rules?.flatMap((rule: any) => rule.backendRefs ?? []) ?? [], [], 'nothing routed to the version that never started');
    const status = await w.engine().status('scorer');
    assert.equal(status.rollout, null, `no rollout left in progress: ${JSON.stringify(status.rollout)}`);
    const next = await w.engine().deploy(await ref(w, '1.1.0', 'scorer'), fastPlan());
    assert.equal(next.outcome, 'promoted', next.reason);
    assert.deepEqual(backendWeights(w.fake.get('gateway.networking.k8s.io/v1', 'HTTPRoute', 'default', 'scorer')), { [versionObjectName('scorer', '1.1.0')]: 100 });
  });

  test('an unschedulable version: said while waiting, then named at the deadline', async () => {
    w.fake.controller.behave({ model: 'ranker', version: '1.2.0' }, 'unschedulable');
    const mark = w.notes.length;
    await w.engine().deploy(await ref(w, '1.0.0', 'ranker'), fastPlan({ steps: [] }));
    const r = await w.engine().deploy(await ref(w, '1.2.0', 'ranker'), fastPlan({ readyTimeoutMs: 1500 }));
    assert.equal(r.outcome, 'rolled-back', r.reason);
    assert.match(r.reason, /Unschedulable.*Insufficient nvidia\.com\/gpu/);
    assert.ok(w.notes.slice(mark).some((n) => /ranker@1\.2\.0: pod \S+ Unschedulable: .*still waiting/.test(n)), w.notes.slice(mark).join('\n'));
  });

  test('pods the API server refuses to create (Pod Security): the rollout fails at once on the Deployment\'s ReplicaFailure, not at the deadline', async () => {
    await enforcePodSecurity(w.fake, 'default', 'baseline');
    try {
      const mark = w.notes.length;
      const t0 = Date.now();
      // A hostPath cache in a namespace enforcing "baseline": every pod of the candidate is refused.
      const r = await w.engine({ section: { bundleCache: { hostPath: '/var/cache/modelctl' } } }).deploy(await ref(w, '1.3.0', 'ranker'), fastPlan({ readyTimeoutMs: 20_000 }));
      const took = Date.now() - t0;
      assert.equal(r.outcome, 'rolled-back', r.reason);
      assert.match(r.reason, /Deployment ranker-1-3-0 cannot create its pods: FailedCreate: pods "ranker-1-3-0-[a-z0-9]+-[a-z0-9]{5}" is forbidden: violates PodSecurity "baseline:latest": hostPath volumes/);
      assert.ok(took < 10_000, `failed after ${took} ms: at once, not after the 20 s readiness timeout`);
      assert.ok(w.notes.slice(mark).some((n) => /ranker@1\.3\.0: Deployment ranker-1-3-0 cannot create pods \(FailedCreate\)/.test(n)), w.notes.slice(mark).join('\n'));
    } finally {
      await enforcePodSecurity(w.fake, 'default', null);
    }
  });

  test('two CI jobs racing for the Lease: exactly one rolls out, the other is told who holds it', async () => {
    const a = w.engine({ holder: 'https://github.com/acme/models/actions/runs/1' });
    const b = w.engine({ holder: 'https://github.com/acme/models/actions/runs/2' });
    const results = await Promise.allSettled([a.deploy(await ref(w, '1.5.0'), fastPlan()), b.deploy(await ref(w, '1.5.0'), fastPlan())]);
    const won = results.filter((x) => x.status === 'fulfilled');
    const lost = results.filter((x): x is PromiseRejectedResult => x.status === 'rejected');
    assert.equal(won.length, 1, JSON.stringify(results.map((x) => (x.status === 'rejected' ? String(x.reason) : x.value.outcome))));
    assert.equal(lost.length, 1);
    assert.ok(lost[0]!.reason instanceof LockedError, String(lost[0]!.reason));
    assert.match(lost[0]!.reason.message, /actions\/runs\/[12]/);
  });

  test('the API server failing mid-rollout: requests are retried with backoff and the rollout completes', async () => {
    const outage = downAtFirstTraffic(w, 1500);
    const r = await outage.engine.deploy(await ref(w, '1.6.0'), fastPlan());
    assert.ok(outage.happened());
    assert.equal(r.outcome, 'promoted', r.reason);
    assert.deepEqual(backendWeights(w.fake.get(...ROUTE)), { [svc('1.6.0')]: 100 });
  });

  test('--dry-run prints every step\'s manifests against the serving version the cluster names, server-side dry-run checked, and changes nothing', async () => {
    const before = w.fake.requests.length;
    const r = await w.cli(['deploy', `${MODEL}@1.8.0`, '--canary', '5%', '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /kind: Deployment/);
    assert.match(r.stdout, /kind: HTTPRoute/);
    assert.match(r.stdout, new RegExp(`name: ${svc('1.8.0')}\\n\\s+port: 80\\n\\s+weight: 5`));
    assert.match(r.stdout, /#   from the cluster: serving version 1\.6\.0 \(the ledger ConfigMap\)/);
    assert.match(r.stdout, /#   from the cluster: a server-side dry run \(dryRun=All, fieldValidation=Strict\) accepted all \d+ objects/);
    assert.match(r.stdout, /# step \d+: promote: all traffic to 1\.8\.0/);
    const sent = w.fake.requests.slice(before);
    assert.ok(sent.some((q) => q.verb === 'patch' && q.query.dryRun === 'All' && q.query.fieldValidation === 'Strict'), 'the objects were dry-run on the server');
    const writes = sent.filter((q) => ['create', 'update', 'patch', 'delete'].includes(q.verb) && q.query.dryRun !== 'All');
    assert.deepEqual(writes, [], 'a dry run writes nothing');
  });

  test('settings the API server would refuse: deploy, --dry-run and kubernetes check name the same issues, and nothing is written', async () => {
    const file = path.join(w.projectDir, 'modelctl.yaml');
    const good = await readFile(file, 'utf8');
    const bad = parse(good);
    bad.kubernetes.route.hostnames = ['Models.Example.com'];
    bad.kubernetes.nodeSelector = { pool: 'gpu pool' };
    await writeFile(file, stringify(bad));
    try {
      const before = w.fake.requests.length;
      const deploy = await w.cli(['deploy', `${MODEL}@1.8.0`, '--canary', '5%', '--json']);
      const dry = await w.cli(['deploy', `${MODEL}@1.8.0`, '--canary', '5%', '--dry-run', '--json']);
      assert.equal(deploy.code, 2, deploy.stderr);
      assert.equal(dry.code, 2, dry.stderr);
      const issues = (r: typeof deploy) => r.json().error.issues.map((i: any) => `${i.file} ${i.field} ${JSON.stringify(i.value)}`);
      assert.deepEqual(issues(deploy), [`${file} kubernetes.route.hostnames[0] "Models.Example.com"`, `${file} kubernetes.nodeSelector.pool "gpu pool"`]);
      assert.deepEqual(issues(dry), issues(deploy), 'the very same validation');
      const writes = w.fake.requests.slice(before).filter((q) => ['POST', 'PUT', 'PATCH', 'DELETE'].includes(q.method) && q.resource !== 'selfsubjectaccessreviews');
      assert.deepEqual(writes.map((q) => `${q.method} ${q.path}`), [], 'nothing was written: no ledger, no Lease, no Deployment');
      const check = await w.cli(['kubernetes', 'check', '--json']);
      assert.equal(check.code, 2, check.stdout);
      const settings = check.json().checks.find((c: any) => c.name === 'settings');
      assert.equal(settings.ok, false);
      assert.match(settings.detail, /kubernetes\.route\.hostnames\[0\] = "Models\.Example\.com"/);
    } finally {
      await writeFile(file, good);
    }
  });

  test('rollback cascades: a bad canary while the previous stable is gone lands on the next warm version', async () => {
    assert.deepEqual(JSON.parse(w.fake.get('v1', 'ConfigMap', 'default', ledgerConfigMapName(MODEL)).data['ledger.json']).stableSet, ['1.6.0', '1.5.0', '1.1.0']);
    w.quality.set('1.8.0', 0.3);
    const { api } = w.parts();
    let deleted = false;
    const engine = w.engine({
      onEvent: (e) => {
        if (e.type === 'traffic-applied' && !deleted) {
          deleted = true;
          void api.delete({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'default', name: svc('1.6.0') });
        }
      },
    });
    const r = await engine.deploy(await ref(w, '1.8.0'), fastPlan());
    assert.equal(r.outcome, 'rolled-back', r.reason);
    assert.equal(r.rolledBackTo, '1.5.0');
    assert.ok(r.events.some((e) => e.type === 'cascade'), 'the cascade is in the events');
    assert.deepEqual(backendWeights(w.fake.get(...ROUTE)), { [svc('1.5.0')]: 100 });
    assert.equal(w.fake.get('apps/v1', 'Deployment', 'default', svc('1.5.0')).spec.replicas, 2, 'the version now serving is scaled up from warm');
  });

  test('the API server down for longer than the retries: exit 9, the ledger says where it stopped, --resume finishes', async () => {
    const outage = downAtFirstTraffic(w);
    const err = await outage.engine.deploy(await ref(w, '1.9.0'), fastPlan()).then(
      () => null,
      (e: unknown) => e as { exitCode?: number; message: string },
    );
    w.fake.setDown(false);
    assert.ok(err, 'the rollout could not go on');
    assert.equal(err.exitCode, 9, err.message);
    const s = await w.engine().status(MODEL);
    assert.equal(s.rollout?.version, '1.9.0', 'the ledger shows the interrupted rollout');
    const r = await w.engine({ holder: 'test@world' }).deploy(await ref(w, '1.9.0'), fastPlan(), { resume: true });
    assert.equal(r.outcome, 'promoted', r.reason);
    assert.deepEqual(backendWeights(w.fake.get(...ROUTE)), { [svc('1.9.0')]: 100 });
  });

  test('each route change waits until the Gateway reports its generation Accepted', async () => {
    w.fake.gateway.delayMs = 300;
    const accepted: boolean[] = [];
    const engine = w.engine({
      onEvent: (e) => {
        if (e.type !== 'traffic-applied') return;
        const route = w.fake.get('gateway.networking.k8s.io/v1', 'HTTPRoute', 'default', 'ranker');
        accepted.push(route.status?.parents?.[0]?.conditions?.some((c: any) => c.type === 'Accepted' && c.status === 'True' && c.observedGeneration === route.metadata.generation) ?? false);
      },
    });
    const r = await engine.deploy(await ref(w, '1.1.0', 'ranker'), fastPlan());
    w.fake.gateway.delayMs = 10;
    assert.equal(r.outcome, 'promoted', r.reason);
    assert.ok(accepted.length >= 2 && accepted.every(Boolean), `accepted before traffic-applied: ${accepted.join(', ')}`);
  });

  test('a route the Gateway rejects, or that nobody accepts, is reported (never blocks moving traffic)', async () => {
    w.fake.gateway.mode = 'reject';
    const before = w.notes.length;
    const r = await w.engine().deploy(await ref(w, '1.3.0', 'ranker'), fastPlan());
    assert.equal(r.outcome, 'promoted', r.reason);
    assert.ok(w.notes.slice(before).some((n) => /not accepted by Gateway public: NotAllowedByListeners/.test(n)), w.notes.join('\n'));
    w.fake.gateway.mode = 'silent';
    const mark = w.notes.length;
    const r2 = await w.engine({ section: { routeTimeout: '300ms' } }).rollback('ranker');
    w.fake.gateway.mode = 'accept';
    assert.equal(r2.action, 'switched');
    assert.equal(r2.to, '1.1.0');
    assert.ok(w.notes.slice(mark).some((n) => /no Gateway controller reported generation \d+ Accepted within 300 ms/.test(n)), w.notes.join('\n'));
  });

  test('fencing: a driver that stalled while another took over cannot move traffic any more', async () => {
    const serving = Object.keys(backendWeights(w.fake.get(...ROUTE)))[0]!;
    const version = (name: string) => ['1.9.0', '1.5.0', '1.1.0'].find((v) => svc(v) === name)!;
    const [a, b] = [w.parts().target, w.parts().target];
    const servingVersion = version(serving);
    const other = servingVersion === '1.5.0' ? '1.1.0' : '1.5.0';
    await a.applyTraffic(MODEL, { weights: { [servingVersion]: 100 }, mirror: null }); // A drives
    await new Promise((r) => setTimeout(r, 50)); // the Gateway writes status: a new resourceVersion, same generation
    await a.applyTraffic(MODEL, { weights: { [servingVersion]: 100 }, mirror: null }); // status writes do not trip the fence
    await b.applyTraffic(MODEL, { weights: { [servingVersion]: 90, [other]: 10 }, mirror: null }); // B took over
    await assert.rejects(a.applyTraffic(MODEL, { weights: { [servingVersion]: 50, [other]: 50 }, mirror: null }), (e: Error & { exitCode?: number }) => {
      assert.match(e.message, /changed by someone else/);
      assert.equal(e.exitCode, 5);
      return true;
    });
    assert.deepEqual(backendWeights(w.fake.get(...ROUTE)), { [svc(servingVersion)]: 90, [svc(other)]: 10 }, "B's split stands");
    await b.applyTraffic(MODEL, { weights: { [servingVersion]: 100 }, mirror: null });
  });

  test('status compares the ledger with the cluster: traffic moved by hand is spelled out, deploy of the serving version re-applies', async () => {
    const clean = await w.cli(['status', MODEL, '--json']);
    assert.equal(clean.code, 0, clean.stderr);
    const serving = clean.json().serving;
    // The cascade test above deleted 1.6.0's Deployment; it is still in the stable set, and status says so.
    assert.deepEqual(clean.json().differences, ['1.6.0 (warm) is not running'], JSON.stringify(clean.json().observed));
    assert.equal(clean.json().observed.traffic.weights[serving], 100);
    // Someone edits the route by hand: 50% to a warm version.
    const other = clean.json().stableSet.find((v: string) => v !== serving && v !== '1.6.0');
    const { api } = w.parts();
    const route: any = await api.read({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', namespace: 'default', name: MODEL });
    route.spec.rules[0].backendRefs = [
      { name: svc(serving), port: 80, weight: 50 },
      { name: svc(other), port: 80, weight: 50 },
    ];
    await api.replace(route);
    const drifted = await w.cli(['status', MODEL]);
    assert.equal(drifted.code, 0, drifted.stderr);
    assert.match(drifted.stdout, new RegExp(`DIFFERS: traffic: the ledger says ${serving.replace(/\./g, '\\.')} 100%, the target routes`));
    assert.match(drifted.stdout, new RegExp(`modelctl deploy ${MODEL}@${serving.replace(/\./g, '\\.')}`));
    const fix = await w.cli(['deploy', `${MODEL}@${serving}`, '--json']);
    assert.equal(fix.code, 0, fix.stderr);
    assert.deepEqual((await w.cli(['status', MODEL, '--json'])).json().differences, ['1.6.0 (warm) is not running'], 'the route agrees again');
  });

  test('kubernetes check: API server, every permission (SelfSubjectAccessReview), traffic, store — all ok here', async () => {
    const before = w.fake.requests.length;
    const r = await w.cli(['kubernetes', 'check', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const report = r.json();
    assert.deepEqual(report.checks.map((c: any) => [c.name, c.ok]), [['api-server', true], ['permissions', true], ['traffic', true], ['gateway-api', true], ['settings', true], ['store', true]]);
    assert.match(report.checks[2].detail, /Gateway API: HTTPRoutes attached to gateways\/public/);
    // The fake serves no CRDs, so the mirror-percent answer comes from the server-side dry run.
    assert.match(report.checks[3].detail, /RequestMirror percent supported \(a server-side dry run/);
    assert.equal(report.gatewayApi.mirrorPercent, true);
    const reviews = w.fake.requests.slice(before).filter((q) => q.resource === 'selfsubjectaccessreviews').length;
    assert.ok(reviews >= 30, `${reviews} access reviews: one per verb and resource of the Role`);
    const writes = w.fake.requests
      .slice(before)
      .filter((q) => q.query.dryRun !== 'All')
      .filter((q) => ['update', 'patch', 'delete'].includes(q.verb) || (q.verb === 'create' && q.resource !== 'selfsubjectaccessreviews'));
    assert.deepEqual(writes, [], 'a check writes nothing (server-side dry runs persist nothing)');
  });

  test('every write modelctl sent in this file carried fieldValidation=Strict (unknown fields are refused, not dropped)', () => {
    const writes = w.fake.requests.filter((q) => ['POST', 'PUT', 'PATCH'].includes(q.method));
    assert.ok(writes.length > 20, `${writes.length} writes`);
    assert.deepEqual(
      writes.filter((q) => q.query.fieldValidation !== 'Strict').map((q) => `${q.method} ${q.path}`),
      [],
    );
  });

  test('a missing permission is explained (403): which verb on which resource, and the rbac command', async () => {
    w.fake.forbid('patch', 'httproutes', 'gateway.networking.k8s.io');
    const r = await w.cli(['deploy', `${MODEL}@1.7.0`, '--steps', '50,100', '--interval', '1s', '--json']);
    assert.equal(r.code, 9, r.stderr);
    const err = r.json().error;
    assert.match(err.message, /forbidden|refused/);
    assert.match(err.hint, /httproutes\.gateway\.networking\.k8s\.io/);
    assert.match(err.hint, /modelctl kubernetes rbac/);
    const check = await w.cli(['kubernetes', 'check']);
    assert.equal(check.code, 9, check.stdout + check.stderr);
    assert.match(check.stdout, /FAIL permissions +not allowed in default: patch httproutes\.gateway\.networking\.k8s\.io/);
    assert.match(check.stdout, /modelctl kubernetes rbac --namespace default/);
  });

  test('kubernetes check of a claim cache: ReadWriteOnce passes with its one-node caveat, ReadWriteOncePod fails, an unreadable claim is said', async () => {
    const post = async (p: string, body: unknown) => assert.equal((await fetch(`${w.fake.url}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).status, 201);
    for (const [name, mode] of [['cache-rwo', 'ReadWriteOnce'], ['cache-rwop', 'ReadWriteOncePod']] as const) {
      await post('/api/v1/persistentvolumes', { metadata: { name: `${name}-pv` }, spec: { capacity: { storage: '5Gi' }, accessModes: [mode], storageClassName: name, hostPath: { path: `/var/tmp/${name}` } } });
      await post('/api/v1/namespaces/default/persistentvolumeclaims', { metadata: { name }, spec: { accessModes: [mode], resources: { requests: { storage: '5Gi' } }, storageClassName: name } });
    }
    const file = path.join(w.projectDir, 'modelctl.yaml');
    const original = await readFile(file, 'utf8');
    const itemFor = async (claimName: string) => {
      const doc = parse(original);
      doc.kubernetes.bundleCache = { persistentVolumeClaim: { claimName } };
      await writeFile(file, stringify(doc));
      const r = await w.cli(['kubernetes', 'check', '--json']);
      return r.json().checks.find((c: any) => c.name === 'bundle-cache');
    };
    try {
      let rwo: any;
      for (let i = 0; i < 50 && !rwo?.ok; i++) rwo = await itemFor('cache-rwo');
      assert.equal(rwo.ok, true, rwo.detail);
      assert.match(rwo.detail, /Bound to cache-rwo-pv \(5Gi\), accessModes \[ReadWriteOnce\]: ReadWriteOnce attaches it to one node at a time/);
      assert.match(rwo.hint, /one-node cluster or with a kubernetes.nodeSelector naming one node; otherwise use a ReadWriteMany claim/);
      const rwop = await itemFor('cache-rwop');
      assert.equal(rwop.ok, false);
      assert.match(rwop.detail, /ReadWriteOncePod admits a single pod in the whole cluster/);
      w.fake.forbid('get', 'persistentvolumeclaims');
      const hidden = await itemFor('cache-rwo');
      assert.equal(hidden.ok, true, 'not readable is not a failure: a Role applied before it granted get persistentvolumeclaims');
      assert.match(hidden.detail, /the claim could not be read: forbidden \(get persistentvolumeclaims is not granted: a modelctl Role applied before it granted that; re-apply `modelctl kubernetes rbac`\)/);
      assert.match(hidden.hint, /kubectl -n default get pvc cache-rwo/);
    } finally {
      await writeFile(file, original);
    }
  });
});

describe('Kubernetes target: a killed deploy, then resume or abort', { timeout: 300_000 }, () => {
  let w: KubeWorld;
  before(async () => {
    w = await startKubeWorld();
    for (const v of ['2.0.0', '2.1.0', '2.2.0']) await w.push(v);
    const first = await w.cli(['deploy', `${MODEL}@2.0.0`, '--json']);
    assert.equal(first.code, 0, first.stderr);
  });
  after(() => w?.close());

  /** Start a CLI deploy and SIGKILL it once the candidate has traffic on the route. */
  async function killMidCanary(version: string): Promise<void> {
    const child = spawn(process.execPath, [CLI, 'deploy', `${MODEL}@${version}`, '--steps', '30,100', '--interval', '8s', '--kubeconfig', w.kubeconfigFile], {
      cwd: w.projectDir,
      env: { ...process.env, ...w.env, MODELCTL_GITHUB: 'off' },
      stdio: 'ignore',
    });
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (backendWeights(w.fake.get(...ROUTE))[svc(version)] === 30) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.equal(backendWeights(w.fake.get(...ROUTE))[svc(version)], 30, 'killed mid-step with 30% on the candidate');
  }

  test('a Lease left by a dead CI job is reported, never silently taken; abort resolves what it left', async () => {
    await killMidCanary('2.1.0');
    // Make the dead holder look like a runner on another machine whose Lease ran out (its pid cannot be checked from here).
    const { api } = w.parts();
    const lease: any = await api.read({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace: 'default', name: leaseName(MODEL) });
    lease.spec.holderIdentity = 'https://github.com/acme/models/actions/runs/99';
    lease.metadata.annotations['modelctl.dev/holder-host'] = 'runner-7';
    lease.spec.renewTime = new Date(Date.now() - 300_000).toISOString().replace('Z', '000Z');
    lease.spec.leaseDurationSeconds = 10;
    await api.replace(lease);
    const s = await w.cli(['status', MODEL, '--json']);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(s.json().rollout.version, '2.1.0');
    assert.equal(s.json().rollout.interrupted, true);
    assert.equal(s.json().lock.expired, true);
    const other = await w.cli(['deploy', `${MODEL}@2.2.0`, '--json']);
    assert.equal(other.code, 5, other.stderr);
    assert.match(other.json().error.message, /2\.1\.0/);
    assert.match(other.json().error.hint, /modelctl abort sentiment/);
    assert.equal(backendWeights(w.fake.get(...ROUTE))[svc('2.1.0')], 30, 'nothing moved');
    const a = await w.cli(['abort', MODEL, '--json']);
    assert.equal(a.code, 0, a.stderr);
    assert.deepEqual(backendWeights(w.fake.get(...ROUTE)), { [svc('2.0.0')]: 100 });
  });

  test('deploy --resume continues the interrupted rollout to promotion', async () => {
    await killMidCanary('2.2.0');
    const r = await w.cli(['deploy', `${MODEL}@2.2.0`, '--resume', '--steps', '30,100', '--interval', '1s', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json().outcome, 'promoted');
    assert.deepEqual(backendWeights(w.fake.get(...ROUTE)), { [svc('2.2.0')]: 100 });
  });

  test('SIGINT mid-canary (a cancelled CI job): aborted to stable on the route, Lease released, outcome aborted, exit 10', async () => {
    const child = spawn(process.execPath, [CLI, 'deploy', `${MODEL}@2.1.0`, '--steps', '30,100', '--interval', '5m', '--kubeconfig', w.kubeconfigFile, '--json'], {
      cwd: w.projectDir,
      env: { ...process.env, ...w.env, MODELCTL_GITHUB: 'off' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.once('close', r));
    const deadline = Date.now() + 60_000;
    while (backendWeights(w.fake.get(...ROUTE))[svc('2.1.0')] !== 30) {
      assert.ok(Date.now() < deadline, `the canary never took traffic: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const t0 = Date.now();
    child.kill('SIGINT');
    const code = await exited;
    const elapsed = Date.now() - t0;
    assert.equal(code, 10, stderr);
    assert.ok(elapsed < 7000, `within the runner's grace before SIGTERM: ${elapsed} ms`);
    const result = JSON.parse(stdout);
    assert.deepEqual([result.outcome, result.interrupted, result.serving], ['aborted', 'SIGINT', '2.2.0']);
    assert.deepEqual(backendWeights(w.fake.get(...ROUTE)), { [svc('2.2.0')]: 100 });
    const s = await w.cli(['status', MODEL, '--json']);
    assert.deepEqual([s.json().rollout, s.json().lock], [null, null], 'the Lease is free for the next job');
    console.log(`kubernetes: SIGINT mid-canary → exit 10 in ${elapsed} ms`);
  });
});

describe('Kubernetes target: replica-ratio traffic where no Gateway API is installed', { timeout: 300_000 }, () => {
  let w: KubeWorld;
  before(async () => {
    w = await startKubeWorld({ gatewayApi: false, section: { replicas: 4, warmReplicas: 1 } });
    for (const v of ['3.0.0', '3.1.0', '3.2.0']) await w.push(v);
    await w.push('1.0.0', { name: 'scorer' });
  });
  after(() => w?.close());

  test('a first deploy that cannot start is rolled back with no pod in the model Service, and the ledger not stuck', async () => {
    w.fake.controller.behave({ model: 'scorer', version: '1.0.0' }, 'image-pull');
    const r = await w.engine().deploy(await ref(w, '1.0.0', 'scorer'), fastPlan({ readyTimeoutMs: 1500 }));
    assert.equal(r.outcome, 'rolled-back', r.reason);
    assert.equal((await w.engine().status('scorer')).rollout, null);
  });

  test('the canary share is approximated by pods behind one model Service', async () => {
    const first = await w.engine().deploy(await ref(w, '3.0.0'), fastPlan({ steps: [] }));
    assert.equal(first.outcome, 'promoted', first.reason);
    const service = w.fake.get('v1', 'Service', 'default', MODEL);
    assert.equal(service.spec.selector['modelctl.dev/in-service'], 'true');
    const snapshots: Array<Record<string, [number, string]>> = [];
    const engine = w.engine({
      onEvent: (e) => {
        if (e.type !== 'traffic-applied') return;
        const snap: Record<string, [number, string]> = {};
        for (const v of ['3.0.0', '3.1.0']) {
          const d = w.fake.get('apps/v1', 'Deployment', 'default', svc(v));
          if (d) snap[v] = [d.spec.replicas, d.spec.template.metadata.labels['modelctl.dev/in-service']];
        }
        snapshots.push(snap);
      },
    });
    const r = await engine.deploy(await ref(w, '3.1.0'), fastPlan({ steps: [25, 100] }));
    assert.equal(r.outcome, 'promoted', r.reason);
    const canary = snapshots.find((s) => s['3.1.0']?.[1] === 'true' && s['3.0.0']?.[1] === 'true');
    assert.ok(canary, `both versions in service during the canary: ${JSON.stringify(snapshots)}`);
    const [c, s] = [canary['3.1.0']![0], canary['3.0.0']![0]];
    assert.ok(Math.abs((100 * c) / (c + s) - 25) <= 10, `25% approximated by ${c} of ${c + s} pods`);
    const stable = w.fake.get('apps/v1', 'Deployment', 'default', svc('3.0.0'));
    assert.equal(stable.spec.template.metadata.labels['modelctl.dev/in-service'], 'false', 'the old stable left the Service');
  });

  test('kubernetes check says canaries will be approximated by pods', async () => {
    const r = await w.cli(['kubernetes', 'check', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.json().checks.find((c: any) => c.name === 'traffic').detail, /replica ratio/);
  });

  test('shadow needs the Gateway API: a clear usage error', async () => {
    const r = await w.cli(['deploy', `${MODEL}@3.2.0`, '--shadow', '10%', '--shadow-only', '--json']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.json().error.message, /shadow traffic needs the Gateway API/);
    assert.equal(w.fake.get('apps/v1', 'Deployment', 'default', svc('3.2.0')), undefined, 'nothing was created');
  });
});

async function ref(w: KubeWorld, version: string, model = MODEL) {
  const { resolveRef } = await import('../../src/store/transfer.js');
  const resolved = await resolveRef(w.store, `${model}@${version}`);
  return { model, version, digest: resolved.digest };
}

describe('modelctl kubernetes rbac', () => {
  test('prints the namespaced Role and RoleBinding (YAML for kubectl apply, or one JSON List)', async () => {
    const { runCli } = await import('../helpers/fixtures.js');
    const { parseAllDocuments } = await import('yaml');
    const human = await runCli(['kubernetes', 'rbac', '--namespace', 'ml-serving', '--service-account', 'github-deployer']);
    assert.equal(human.code, 0, human.stderr);
    const docs = parseAllDocuments(human.stdout).map((d) => d.toJS());
    assert.deepEqual(docs.map((d) => d.kind), ['Role', 'RoleBinding']);
    assert.equal(docs[0].metadata.namespace, 'ml-serving');
    assert.ok(docs[0].rules.some((r: any) => r.apiGroups.includes('coordination.k8s.io') && r.resources.includes('leases')));
    assert.deepEqual(docs[1].subjects, [{ kind: 'ServiceAccount', name: 'github-deployer', namespace: 'ml-serving' }]);
    const json = await runCli(['kubernetes', 'rbac', '--namespace', 'ml-serving', '--json']);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(json.json().items.map((i: any) => i.kind), ['Role', 'RoleBinding']);
    const bad = await runCli(['kubernetes', 'rbac', '--namespace', 'Not_A_Namespace', '--json']);
    assert.equal(bad.code, 2);
  });
});
