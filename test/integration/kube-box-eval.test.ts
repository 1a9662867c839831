import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { leftovers } from '../fakes/kube/netns.js';
import { versionObjectName } from '../../src/targets/kubernetes/names.js';
import { startKubeBox, type KubeBox } from '../helpers/kube-world.js';
import { assertReplayPassedBeforeTraffic } from '../helpers/evaluation.js';

/**
 * Evaluation replay on the cluster in a box (test/fakes/kube/README.md): the example model's
 * evaluation set (40 cases) POSTed by the real CLI to each version's own Service through the fake
 * API server's service proxy, which dials a ready pod's meter, which forwards to the real model.
 * A candidate whose accuracy drops (faults.scoreShift) is rolled back by the replay with no live
 * request recorded by its meter and no traffic ever routed to it; an equal one is promoted, its
 * meter's window holding exactly the live requests the Gateway routed to it.
 */

const MODEL = 'sentiment';
const svc = (v: string): string => versionObjectName(MODEL, v);
const ROUTE = ['gateway.networking.k8s.io/v1', 'HTTPRoute', 'default', MODEL] as const;
const CASES = 40;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function weights(w: KubeBox): Record<string, number> {
  const out: Record<string, number> = {};
  for (const b of w.fake.get(...ROUTE)?.spec?.rules?.[0]?.backendRefs ?? []) out[b.name] = b.weight;
  return out;
}

function runningPods(w: KubeBox, version: string): any[] {
  return w.fake.list('v1', 'Pod', 'default').filter((p) => p.metadata.annotations?.['modelctl.dev/version'] === version && p.status?.phase === 'Running');
}

/** A pod's meter, through the pod proxy: requests in its window since `since`, and evaluation requests it forwarded. */
async function meterOf(w: KubeBox, pod: string, since: number): Promise<{ requests: number; evaluated: number } | undefined> {
  const base = `${w.fake.url}/api/v1/namespaces/default/pods/${pod}:9090/proxy`;
  try {
    const [win, health] = await Promise.all([fetch(`${base}/v1/window?since=${since}`, { signal: AbortSignal.timeout(3000) }), fetch(`${base}/healthz`, { signal: AbortSignal.timeout(3000) })]);
    if (!win.ok || !health.ok) return undefined;
    return { requests: ((await win.json()) as { requests: number }).requests, evaluated: ((await health.json()) as { evaluated: number }).evaluated };
  } catch {
    return undefined;
  }
}

/** The service proxy POSTs the API server answered for `version`'s Service, by status. */
function replayed(w: KubeBox, version: string, from: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of w.fake.requests.slice(from)) {
    if (r.subresource !== 'proxy' || r.resource !== 'services' || r.name !== svc(version) || r.method !== 'POST') continue;
    out[r.status] = (out[r.status] ?? 0) + 1;
  }
  return out;
}

describe('cluster in a box: evaluation replay through the version Services', { timeout: 400_000 }, () => {
  let w: KubeBox;
  let runId = '';
  before(async () => {
    w = await startKubeBox();
    runId = w.box.network.runId;
    // The eval gates of the local evaluation test, next to the box's live gates.
    const file = path.join(w.projectDir, 'modelctl.yaml');
    const config = parse(await readFile(file, 'utf8'));
    config.rollout.gates = [
      { name: 'accuracy', kind: 'eval', metric: 'accuracy', min: 0.8, maxDrop: 0, confidence: 0.95 },
      { name: 'agrees', kind: 'eval', metric: 'agreement', min: 0.9 },
      ...config.rollout.gates,
    ];
    await writeFile(file, stringify(config));
    await w.push('1.0.0');
    await w.push('1.1.0', { scoreShift: -0.3 });
    await w.push('1.2.0');
  });
  after(async () => {
    await w?.close();
    assert.deepEqual(await leftovers(runId), [], 'no namespace, veth or bridge of this run is left');
  });

  test('first deploy: the replay judges the candidate alone (accuracy), then it serves', async () => {
    const from = w.fake.requests.length;
    const r = await w.cli(['deploy', `${MODEL}@1.0.0`, '--ready-timeout', '40s', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const result = r.json();
    assert.equal(result.outcome, 'promoted');
    assert.equal(result.evaluation.cases, CASES);
    assert.equal(result.evaluation.accuracy, 34 / 40);
    assert.deepEqual(replayed(w, '1.0.0', from), { 200: CASES });
    assert.deepEqual(await w.send(5), { '1.0.0': 5 });
  });

  test('a candidate whose accuracy drops is rolled back by the replay: zero live requests in its meter, traffic never moved', async () => {
    const since = Date.now();
    const from = w.fake.requests.length;
    // The candidate's pods are retired by the rollback: read its meter while it runs.
    const samples: Array<{ requests: number; evaluated: number }> = [];
    let done = false;
    const sampler = (async () => {
      while (!done) {
        for (const p of runningPods(w, '1.1.0')) {
          const m = await meterOf(w, p.metadata.name, since);
          if (m) samples.push(m);
        }
        await sleep(100);
      }
    })();
    const load = w.load();
    const t0 = Date.now();
    const r = await w.cli(['deploy', `${MODEL}@1.1.0`, '--steps', '50,100', '--interval', '3s', '--check-every', '1s', '--ready-timeout', '40s', '--json']);
    const seen = await load.stop();
    done = true;
    await sampler;
    assert.equal(r.code, 3, r.stderr);
    const result = r.json();
    assert.equal(result.outcome, 'rolled-back');
    assert.match(result.reason, /evaluation replay: gate accuracy failed/);
    assert.equal(result.evaluation.cases, CASES);
    assert.equal(result.evaluation.stableAccuracy, 34 / 40);
    assert.ok(result.evaluation.accuracy < 0.8, `candidate accuracy ${result.evaluation.accuracy}`);
    assert.match(result.evaluation.worst[0].why, /stable right, candidate wrong/);
    // The replay went through each version's Service (candidate and stable), every case answered.
    assert.deepEqual(replayed(w, '1.1.0', from), { 200: CASES });
    assert.deepEqual(replayed(w, '1.0.0', from), { 200: CASES });
    // Never routed, never answered a caller, never counted by its meter.
    const routed = result.events.filter((e: { type: string }) => e.type === 'traffic-applied').map((e: { weights: Record<string, number> }) => e.weights['1.1.0'] ?? 0);
    assert.deepEqual(routed.filter((x: number) => x > 0), []);
    assert.equal(seen.byVersion['1.1.0'] ?? 0, 0, `live answers: ${JSON.stringify(seen.byVersion)}`);
    assert.ok((seen.byVersion['1.0.0'] ?? 0) > 0, 'the load ran');
    assert.equal(w.box.gatewayStats.routed.get(`default/${svc('1.1.0')}`) ?? 0, 0, 'the Gateway sent it nothing');
    assert.ok(samples.length > 0, 'the candidate\'s meter was read while it ran');
    assert.deepEqual([...new Set(samples.map((s) => s.requests))], [0], `its window stayed empty: ${JSON.stringify(samples.slice(-3))}`);
    const evaluated = Math.max(...samples.map((s) => s.evaluated));
    assert.ok(evaluated > 0 && evaluated <= CASES, `it forwarded replay requests (${evaluated} seen) without recording them`);
    assert.deepEqual(weights(w), { [svc('1.0.0')]: 100 });
    const evStart = result.events.find((e: { type: string }) => e.type === 'evaluation-started')?.at;
    const evEnd = result.events.find((e: { type: string }) => e.type === 'evaluation-failed')?.at;
    console.log(
      `# bad candidate: ${CASES} cases × 2 versions replayed in ${result.evaluation.ms} ms (events ${evEnd - evStart} ms); deploy ${Date.now() - t0} ms; accuracy ${result.evaluation.accuracy} vs stable ${result.evaluation.stableAccuracy}; candidate meter: window requests ${samples.at(-1)?.requests}, evaluation requests forwarded (last sample) ${samples.at(-1)?.evaluated}, max seen ${evaluated}; live load ${JSON.stringify(seen.byVersion)}`,
    );
  });

  test('an equal candidate passes the replay and is promoted; its meter holds exactly the live requests the Gateway routed', async () => {
    const since = Date.now();
    const from = w.fake.requests.length;
    const load = w.load();
    const r = await w.cli(['deploy', `${MODEL}@1.2.0`, '--steps', '50,100', '--interval', '3s', '--check-every', '1s', '--ready-timeout', '40s', '--json']);
    const seen = await load.stop();
    assert.equal(r.code, 0, r.stderr);
    const result = r.json();
    assertReplayPassedBeforeTraffic(result);
    assert.deepEqual(replayed(w, '1.2.0', from), { 200: CASES });
    assert.ok((seen.byVersion['1.2.0'] ?? 0) > 0, `live answers: ${JSON.stringify(seen.byVersion)}`);
    const [pod] = runningPods(w, '1.2.0');
    const m = await meterOf(w, pod.metadata.name, since);
    const routed = w.box.gatewayStats.routed.get(`default/${svc('1.2.0')}`) ?? 0;
    assert.deepEqual(m, { requests: routed, evaluated: CASES }, `meter ${JSON.stringify(m)} vs the Gateway's ${routed} live requests`);
    assert.deepEqual(weights(w), { [svc('1.2.0')]: 100 });
    console.log(`# good candidate: ${CASES} cases × 2 versions replayed in ${result.evaluation.ms} ms; its meter: ${m?.requests} live requests (= Gateway routed ${routed}), ${m?.evaluated} evaluation requests not recorded`);
  });
});
