import assert from 'node:assert/strict';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT, runCli, steadyLoad, useScratch } from '../helpers/fixtures.js';
import { cacheAction, compositeHandler, registryAccessEnv, runWorkflow, type JobResult, type StepRecord, type UsesHandler, type WorkflowOptions } from '../helpers/action-runner.js';
import { fakeNpm, packageVersion, packTarball } from '../helpers/package.js';

/**
 * The example release flow (.github/workflows/examples/), copied into a model repository as a team
 * would, run job by job through the runner-faithful harness on the LOCAL target: only the
 * workflows' `env:` (where models live and run) is replaced, by a file store and the local target.
 * The action installs the packed modelctl as the published package of its tag (a registry-faithful
 * fake npm serves the tarball), cached between jobs. Then: tag v1.0.0 pushes and deploys (first
 * deploy), v1.1.0 is promoted under load, a bad v1.2.0 is rolled back by its gates, the manual
 * rollback button goes back to the previous stable version, the button pressed during a canary
 * aborts it, and a run cancelled mid-canary aborts the rollout to stable (exit 10,
 * outcome=aborted, lock released).
 */
const ACTION_DIR = path.join(REPO_ROOT, '.github/actions/modelctl');
const { fresh, cleanup } = useScratch();
let repo: string;
let home: string;
let store: string;
let opts: Omit<WorkflowOptions, 'github'>;
let declaredOutputs: string[];
const cli = (args: string[]) => runCli(args, { env: { MODELCTL_HOME: home, MODELCTL_STORE: `file://${store}`, MODELCTL_TARGET: 'local' } as unknown as NodeJS.ProcessEnv, cwd: repo });

before(async () => {
  repo = await fresh('flow-repo');
  home = await fresh('flow-home');
  store = await fresh('flow-store');
  const runnerTemp = await fresh('flow-tmp');
  // The team's repository: the model, its rollout plan, the three workflows.
  await cp(path.join(REPO_ROOT, 'bundles/example'), path.join(repo, 'models/sentiment'), { recursive: true });
  // Its gates: the error rate only. The default latency gate (stable × 1.5 + 25 ms) judges this
  // shared test machine's scheduling more than the model.
  await writeFile(
    path.join(repo, 'modelctl.yaml'),
    'rollout:\n  steps: [50, 100]\n  interval: 8s\n  checkEvery: 1s\n  gates:\n    - name: error-rate\n      metric: error-rate\n      max: 0.05\n      critical: true\n',
  );
  await mkdir(path.join(repo, '.github/workflows'), { recursive: true });
  for (const f of ['build-and-push.yml', 'canary-on-release.yml', 'manual-rollback.yml']) await cp(path.join(REPO_ROOT, '.github/workflows/examples', f), path.join(repo, '.github/workflows', f));

  const version = await packageVersion();
  const d = await fresh('flow-npm');
  const npmDir = await fakeNpm(path.join(d, 'bin'), { published: { [version]: await packTarball(path.join(d, 'pack')) }, log: path.join(d, 'npm.jsonl') });
  const cacheDir = await fresh('flow-cache');
  const action = compositeHandler(ACTION_DIR);
  declaredOutputs = Object.keys((parseYaml(await readFile(path.join(ACTION_DIR, 'action.yml'), 'utf8')) as { outputs: Record<string, unknown> }).outputs);
  const uses: Record<string, UsesHandler> = {
    'actions/checkout': async () => ({ outcome: 'success' }), // the workspace is the repository at the tag
    'aws-actions/configure-aws-credentials': async () => ({ outcome: 'success' }), // the store is a folder here
    'actions/setup-node': async () => ({ outcome: 'success' }),
    'actions/cache': cacheAction(cacheDir),
    // `@v1` in the examples stands for this repository's release tag.
    'your-org/modelctl/.github/actions/modelctl': async (ctx) => action({ ...ctx, ref: `v${version}` }),
  };
  opts = {
    workspace: repo,
    runnerTemp,
    repoRoot: repo,
    baseEnv: { ...registryAccessEnv(), PATH: `${npmDir}:${path.dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`, HOME: process.env.HOME, RUNNER_TOOL_CACHE: path.join(runnerTemp, 'toolcache') },
    uses,
    envOverride: { MODELCTL_STORE: `file://${store}`, MODELCTL_TARGET: 'local', MODELCTL_KUBE_CONTEXT: undefined, MODELCTL_HOME: home },
  };
  // The runtime outlives the jobs (a long-lived machine): started here, outside any job.
  const up = await runCli(['local', 'up', '--port', '0', '--json'], { env: { MODELCTL_HOME: home } as unknown as NodeJS.ProcessEnv });
  assert.equal(up.code, 0, up.stderr);
});

after(async () => {
  await runCli(['local', 'down', '--forget'], { env: { MODELCTL_HOME: home } as unknown as NodeJS.ProcessEnv });
  await cleanup();
});

function tag(version: string): WorkflowOptions['github'] {
  return { event_name: 'push', ref: `refs/tags/v${version}`, ref_name: `v${version}`, sha: 'a'.repeat(40), run_id: '100', run_number: '7', repository: 'acme/models' };
}

function dispatch(runId: string): WorkflowOptions['github'] {
  return { event_name: 'workflow_dispatch', ref: 'refs/heads/main', ref_name: 'main', sha: 'b'.repeat(40), run_id: runId, run_number: runId, repository: 'acme/models' };
}

/** Until the candidate takes live traffic. */
async function waitForCanary(): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const s = (await cli(['status', 'sentiment', '--json'])).json();
    if (s.rollout?.phase === 'canary' && s.rollout.weight > 0) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('the canary never started');
}

/** The modelctl action's run step inside a job (by the workflow step's id). */
function actionStep(job: JobResult, id: string): StepRecord {
  const step = job.steps.find((s) => s.id === id);
  assert.ok(step?.steps, `step ${id} ran the action: ${JSON.stringify(job.steps.map((s) => [s.id, s.outcome]))}`);
  const run = step.steps.find((s) => s.id === 'run')!;
  // Everything the action's run step writes is declared as an output of the action.
  for (const k of Object.keys(run.outputs)) assert.ok(declaredOutputs.includes(k), `output ${k} written but not declared`);
  return run;
}

function explain(jobs: Record<string, JobResult>): string {
  return JSON.stringify(Object.fromEntries(Object.entries(jobs).map(([k, j]) => [k, j.steps.map((s) => ({ id: s.id, outcome: s.outcome, log: (s.steps ?? [s]).flatMap((x) => x.log).slice(-15) }))])), null, 1);
}

async function withLoad<T>(fn: () => Promise<T>): Promise<T> {
  const url = (await cli(['local', 'status', '--json'])).json().url;
  const { stop, load } = steadyLoad(url);
  try {
    return await fn();
  } finally {
    stop.abort();
    await load;
  }
}

async function setErrorRate(rate: number): Promise<void> {
  const file = path.join(repo, 'models/sentiment/config/model.json');
  const config = JSON.parse(await readFile(file, 'utf8'));
  config.faults.errorRate = rate;
  await writeFile(file, JSON.stringify(config, null, 2));
}

describe('the example release flow on the local target', { timeout: 600_000 }, () => {
  test('tag v1.0.0: pushed as sentiment@1.0.0, and that ref deployed (first deploy)', async () => {
    const jobs = await runWorkflow(path.join(repo, '.github/workflows/build-and-push.yml'), { ...opts, github: tag('1.0.0') }).done;
    assert.equal(jobs.push!.result, 'success', explain(jobs));
    assert.equal(jobs.push!.outputs.ref, 'sentiment@1.0.0');
    assert.match(jobs.push!.outputs.digest!, /^sha256:[0-9a-f]{64}$/);
    assert.equal(jobs['canary/deploy']!.result, 'success', explain(jobs));
    const deploy = actionStep(jobs['canary/deploy']!, 'deploy');
    assert.deepEqual([deploy.outputs.outcome, deploy.outputs.serving, deploy.outputs['exit-code']], ['promoted', '1.0.0', '0']);
    assert.equal(deploy.outputs.digest, jobs.push!.outputs.digest, 'the canary deployed exactly what was pushed');
  });

  test('tag v1.1.0 under load: the canary is promoted', async () => {
    const jobs = await withLoad(() => runWorkflow(path.join(repo, '.github/workflows/build-and-push.yml'), { ...opts, github: tag('1.1.0') }).done);
    assert.equal(jobs['canary/deploy']!.result, 'success', explain(jobs));
    const deploy = actionStep(jobs['canary/deploy']!, 'deploy');
    assert.deepEqual([deploy.outputs.outcome, deploy.outputs.serving], ['promoted', '1.1.0']);
  });

  test('tag v1.2.0, a bad version: rolled back by its gates, the job fails, the last step still reports', async () => {
    await setErrorRate(0.5);
    const jobs = await withLoad(() => runWorkflow(path.join(repo, '.github/workflows/build-and-push.yml'), { ...opts, github: tag('1.2.0') }).done);
    await setErrorRate(0);
    const job = jobs['canary/deploy']!;
    assert.equal(job.result, 'failure', explain(jobs));
    const deploy = actionStep(job, 'deploy');
    assert.deepEqual([deploy.outputs.outcome, deploy.outputs['rolled-back-to'], deploy.outputs.serving, deploy.outputs['exit-code']], ['rolled-back', '1.1.0', '1.1.0', '3']);
    assert.ok(deploy.summary.includes('ROLLED BACK'), deploy.summary.slice(0, 300));
    const report = job.steps.at(-1)!;
    assert.equal(report.outcome, 'success');
    assert.ok(report.log.includes('outcome=rolled-back serving=1.1.0 exit-code=3'), report.log.join('\n'));
  });

  test('the manual rollback button: "previous stable" serves 1.0.0 in seconds', async () => {
    const jobs = await runWorkflow(path.join(repo, '.github/workflows/manual-rollback.yml'), { ...opts, github: dispatch('101'), inputs: { model: 'sentiment', to: 'previous stable' } }).done;
    const job = jobs.rollback!;
    assert.equal(job.result, 'success', explain(jobs));
    assert.deepEqual([actionStep(job, 'status').outputs.serving, actionStep(job, 'status').outputs['stable-set']], ['1.1.0', '1.1.0,1.0.0']);
    assert.equal(job.steps.find((s) => s.id === 'abort')!.outcome, 'skipped');
    const rollback = actionStep(job, 'rollback');
    assert.deepEqual([rollback.outputs.outcome, rollback.outputs.serving, rollback.outputs.healthy], ['switched', '1.0.0', 'true']);
    assert.ok(rollback.durationMs < 30_000, `${rollback.durationMs} ms`);
  });

  test('the rollback button during a canary starts at once and aborts it: traffic back on stable', async () => {
    // The repository at this tag bakes each step for a minute: time enough to press the button.
    const plan = path.join(repo, 'modelctl.yaml');
    const before = await readFile(plan, 'utf8');
    await writeFile(plan, before.replace('interval: 8s', 'interval: 60s'));
    const { canary, rollback } = await withLoad(async () => {
      const release = runWorkflow(path.join(repo, '.github/workflows/build-and-push.yml'), { ...opts, github: tag('1.3.0') });
      await waitForCanary();
      const button = runWorkflow(path.join(repo, '.github/workflows/manual-rollback.yml'), { ...opts, github: dispatch('103'), inputs: { model: 'sentiment', to: 'previous stable' } });
      return { rollback: await button.done, canary: await release.done };
    });
    await writeFile(plan, before);
    const job = rollback.rollback!;
    assert.equal(job.result, 'success', explain(rollback));
    const abort = actionStep(job, 'abort');
    assert.equal(abort.outputs.outcome, 'abort-requested', explain(rollback));
    assert.deepEqual([job.steps.find((s) => s.id === 'pick')!.outcome, job.steps.find((s) => s.id === 'rollback')!.outcome], ['skipped', 'skipped']);
    const deploy = actionStep(canary['canary/deploy']!, 'deploy');
    assert.deepEqual([deploy.outputs.outcome, deploy.outputs.serving, deploy.outputs['exit-code']], ['aborted', '1.0.0', '3'], explain(canary));
    assert.equal((await cli(['status', 'sentiment', '--json'])).json().rollout, null);
  });

  test('tag v1.4.0 cancelled mid-canary: aborted to stable, outcome=aborted, exit 10, lock released', async () => {
    let cancelAt = 0;
    const jobs = await withLoad(async () => {
      const run = runWorkflow(path.join(repo, '.github/workflows/build-and-push.yml'), {
        ...opts,
        github: tag('1.4.0'),
        onJob: (id) => {
          if (id !== 'deploy') return;
          void waitForCanary().then(() => {
            cancelAt = Date.now();
            run.cancel();
          });
        },
      });
      return run.done;
    });
    const job = jobs['canary/deploy']!;
    assert.ok(cancelAt > 0, 'the canary started');
    assert.equal(job.result, 'cancelled', explain(jobs));
    const deploy = actionStep(job, 'deploy');
    assert.deepEqual(deploy.signals, ['SIGINT'], 'the first signal was enough');
    assert.deepEqual([deploy.outputs.outcome, deploy.outputs['exit-code']], ['aborted', '10'], explain(jobs));
    // The "What serves now" step runs on cancellation too (always()).
    assert.equal(job.steps.at(-1)!.outcome, 'success');
    const status = (await cli(['status', 'sentiment', '--json'])).json();
    assert.equal(status.rollout, null, 'no rollout left half-done');
    assert.equal(status.serving, '1.0.0');
    assert.deepEqual(status.traffic, { '1.0.0': 100 });
    // The lock is free: the next deploy of the same version starts at once (and is promoted).
    const next = await withLoad(() => runWorkflow(path.join(repo, '.github/workflows/canary-on-release.yml'), { ...opts, github: dispatch('102'), inputs: { ref: 'sentiment@1.4.0' } }).done);
    assert.equal(actionStep(next.deploy!, 'deploy').outputs.outcome, 'promoted', explain(next));
  });
});
