import assert from 'node:assert/strict';
import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT, runCli, useScratch } from '../helpers/fixtures.js';
import { assertReplayPassedBeforeTraffic } from '../helpers/evaluation.js';

/**
 * Evaluation replay end to end on the local runtime: the real CLI, daemon, router and example
 * model. A candidate whose accuracy drops (faults.scoreShift moves scores across the threshold) is
 * rolled back by the replay before it serves a single live request; an equal one is promoted.
 */
const { fresh, cleanup } = useScratch();
let env: NodeJS.ProcessEnv;
const cli = (args: string[]) => runCli(args, { env, timeoutMs: 180_000 });

const GATES = `rollout:
  evaluation:
    path: /predict
    concurrency: 3
    timeout: 5s
  gates:
    - { name: accuracy, kind: eval, metric: accuracy, min: 0.8, maxDrop: 0, confidence: 0.95 }
    - { name: agrees, kind: eval, metric: agreement, min: 0.9 }
    - { name: errors, metric: error-rate, max: 0.05, minSamples: 5 }
`;

/** A copy of the example with eval gates in its bundle.yaml; `edit` changes its config or eval set. */
async function variant(name: string, opts: { scoreShift?: number; evalText?: string } = {}): Promise<string> {
  const dir = path.join(await fresh(name), 'bundle');
  await cp(path.join(REPO_ROOT, 'bundles/example'), dir, { recursive: true });
  const yamlFile = path.join(dir, 'bundle.yaml');
  const yaml = await readFile(yamlFile, 'utf8');
  await writeFile(yamlFile, yaml.replace(/^rollout:\n  evaluation:\n    path: \/predict\n/m, GATES));
  if (opts.scoreShift !== undefined) {
    const configFile = path.join(dir, 'config/model.json');
    const config = JSON.parse(await readFile(configFile, 'utf8'));
    config.faults.scoreShift = opts.scoreShift;
    await writeFile(configFile, JSON.stringify(config));
  }
  if (opts.evalText !== undefined) await writeFile(path.join(dir, 'eval/sentiment.jsonl'), opts.evalText);
  return dir;
}

async function routerUrl(): Promise<string> {
  const r = await cli(['local', 'status', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return r.json().url;
}

/** Live traffic through the router while `body` runs; the versions that answered it. */
async function underLoad<T>(body: () => Promise<T>): Promise<{ value: T; answered: Record<string, number> }> {
  const url = await routerUrl();
  const answered: Record<string, number> = {};
  let stop = false;
  const load = (async () => {
    while (!stop) {
      const res = await fetch(`${url}/sentiment/predict`, { method: 'POST', body: '{"text":"a fine day"}', headers: { 'content-type': 'application/json' } }).catch(() => undefined);
      if (res) {
        await res.arrayBuffer();
        const v = res.headers.get('x-model-version') ?? '?';
        answered[v] = (answered[v] ?? 0) + 1;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  try {
    return { value: await body(), answered };
  } finally {
    stop = true;
    await load;
  }
}

before(async () => {
  const home = await fresh('eval-home');
  env = { MODELCTL_HOME: home, MODELCTL_LOCAL_PORT: '0', MODELCTL_STORE: undefined } as unknown as NodeJS.ProcessEnv;
  const good = await variant('good');
  const bad = await variant('bad', { scoreShift: -0.3 });
  const typo = await variant('typo', { evalText: '{"request": {"text": "fine"}, "expect": {"lable": "positive"}}\n' });
  for (const [dir, version] of [[path.join(REPO_ROOT, 'bundles/example'), '1.0.0'], [bad, '1.1.0'], [good, '1.2.0'], [typo, '1.3.0']] as const) {
    const r = await cli(['bundle', 'push', dir, '--version', version, '--json']);
    assert.equal(r.code, 0, r.stderr);
  }
  const first = await cli(['deploy', 'sentiment@1.0.0', '--json']);
  assert.equal(first.code, 0, first.stderr);
});

after(async () => {
  await cli(['local', 'down', '--forget']);
  await cleanup();
});

describe('evaluation replay before live traffic', () => {
  test('a candidate whose accuracy drops is rolled back by the replay with zero live requests served', async () => {
    const { value: r, answered } = await underLoad(() => cli(['deploy', 'sentiment@1.1.0', '--steps', '50,100', '--interval', '3s', '--check-every', '1s', '--json']));
    assert.equal(r.code, 3, r.stderr);
    const result = r.json();
    assert.equal(result.outcome, 'rolled-back');
    assert.match(result.reason, /evaluation replay: gate accuracy failed/);
    assert.equal(result.evaluation.pass, false);
    assert.equal(result.evaluation.cases, 40);
    assert.equal(result.evaluation.stableAccuracy, 34 / 40);
    assert.ok(result.evaluation.accuracy < 0.8, `candidate accuracy ${result.evaluation.accuracy}`);
    assert.ok(result.evaluation.worst.length > 0);
    assert.match(result.evaluation.worst[0].why, /stable right, candidate wrong/);
    // Never routed: no split gave it a weight, and no live request was answered by it.
    const weights = result.events.filter((e: { type: string }) => e.type === 'traffic-applied').map((e: { weights: Record<string, number> }) => e.weights['1.1.0'] ?? 0);
    assert.deepEqual(weights.filter((w: number) => w > 0), []);
    assert.equal(answered['1.1.0'] ?? 0, 0, `live answers: ${JSON.stringify(answered)}`);
    assert.ok((answered['1.0.0'] ?? 0) > 0, 'the load ran');
    const s = (await cli(['status', 'sentiment', '--json'])).json();
    assert.equal(s.serving, '1.0.0');
    assert.equal(s.rollout, null);
  });

  test('dry runs describe the replay, on the local and the Kubernetes target alike', async () => {
    const dry = await cli(['deploy', 'sentiment@1.2.0', '--dry-run', '--steps', '50,100', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    const accuracy = dry.json().gates.find((g: { name: string }) => g.name === 'accuracy');
    assert.match(accuracy.query, /^eval: accuracy of the evaluation set \(component eval\) replayed against sentiment@1\.2\.0 and sentiment@1\.0\.0 before any live traffic/);
    // Kubernetes replays too (through the version's Service): no refusal. Without a cluster the dry
    // run assumes the newest stored version below the candidate serves (1.1.0 here); the pods' store
    // must be one they can reach (kubernetes.store), the bundles are read from the local one.
    const project = await fresh('eval-kube-project');
    await writeFile(path.join(project, 'modelctl.yaml'), 'kubernetes:\n  store: s3://models/prod\n');
    const kube = await runCli(['deploy', 'sentiment@1.2.0', '--target', 'kubernetes', '--dry-run', '--steps', '50,100', '--json'], { env, cwd: project, timeoutMs: 180_000 });
    assert.equal(kube.code, 0, kube.stdout + kube.stderr);
    const kubeAccuracy = kube.json().gates.find((g: { name: string }) => g.name === 'accuracy');
    assert.match(kubeAccuracy.query, /^eval: accuracy of the evaluation set \(component eval\) replayed against sentiment@1\.2\.0 and sentiment@1\.1\.0 before any live traffic/);
  });

  test('an equal candidate passes the replay, then the canary, and is promoted', async () => {
    const { value: r } = await underLoad(() => cli(['deploy', 'sentiment@1.2.0', '--steps', '50,100', '--interval', '3s', '--check-every', '1s', '--json']));
    assert.equal(r.code, 0, r.stderr);
    assertReplayPassedBeforeTraffic(r.json());
  });

  test('an evaluation set expecting a field the model never returns is refused (exit 2: file, line, field) and nothing is left behind', async () => {
    const r = await cli(['deploy', 'sentiment@1.3.0', '--steps', '50,100', '--interval', '3s', '--json']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stdout + r.stderr, /eval\/sentiment\.jsonl:1: expects field "lable"/);
    const s = (await cli(['status', 'sentiment', '--json'])).json();
    assert.equal(s.serving, '1.2.0');
    assert.equal(s.rollout, null);
  });

  test('bundle pack refuses a set that does not parse (with its line) or is empty', async () => {
    const broken = await variant('broken', { evalText: '{"request": {"text": "a"}}\n{"request": \n' });
    const r = await cli(['bundle', 'pack', broken, '--json']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stdout + r.stderr, /eval\/sentiment\.jsonl:2: not JSON/);
    const empty = await variant('empty', { evalText: '\n' });
    const e = await cli(['bundle', 'pack', empty, '--json']);
    assert.equal(e.code, 2, e.stderr);
    assert.match(e.stdout + e.stderr, /eval\/sentiment\.jsonl is empty/);
  });
});
