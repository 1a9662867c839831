import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT, useScratch } from '../helpers/fixtures.js';
import { cacheAction, Job, registryAccessEnv, runComposite, SIGINT_GRACE_MS, type JobOptions, type StepRecord, type UsesHandler } from '../helpers/action-runner.js';
import { fakeNpm, packageVersion, packTarball } from '../helpers/package.js';

/**
 * The composite action (.github/actions/modelctl) run the way the runner runs it (see
 * test/helpers/action-runner.ts): install.sh's choice between the published package and a source
 * build, run.sh's mapping of inputs, its masking, its exit codes, and the runner's signals passed on
 * to modelctl. modelctl is a recording stand-in here (first on PATH, as an earlier install would
 * leave it), so what run.sh hands it is seen exactly; test/integration/github-flows.test.ts runs
 * the real CLI.
 */
const ACTION_DIR = path.join(REPO_ROOT, '.github/actions/modelctl');
const { fresh, cleanup } = useScratch();
after(cleanup);

/** Handlers for the actions the composite itself uses. */
function actionHandlers(cacheDir: string): Record<string, UsesHandler> {
  return {
    // Node 24 is already first on the runner's PATH (the test's own node).
    'actions/setup-node': async () => ({ outcome: 'success' }),
    // actions/cache: restore the path when the key was saved, save it in a post step otherwise.
    'actions/cache': cacheAction(cacheDir),
  };
}

async function newJob(extra: Partial<JobOptions> & { env?: Record<string, string>; path?: string[] } = {}): Promise<Job> {
  const workspace = await fresh('gh-ws');
  const runnerTemp = await fresh('gh-tmp');
  const job = new Job({
    workspace,
    runnerTemp,
    baseEnv: { ...registryAccessEnv(), PATH: `${path.dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`, HOME: process.env.HOME, RUNNER_TOOL_CACHE: path.join(runnerTemp, 'toolcache') },
    github: { event_name: 'push', ref: 'refs/heads/main', ref_name: 'main', sha: 'f'.repeat(40), run_id: '77', run_number: '3', repository: 'acme/models' },
    uses: actionHandlers(await fresh('gh-cache')),
    ...extra,
  });
  Object.assign(job.env, { MODELCTL_HOME: await fresh('gh-home') }, extra.env ?? {});
  job.prependPath.push(...(extra.path ?? []));
  return job;
}

/** modelctl's stand-in: logs argv, env and signals; exits with SHIM_CODE; or handles signals like the CLI's contract. */
async function shimModelctl(dir: string, log: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, 'modelctl');
  await writeFile(
    file,
    `#!${process.execPath}
const fs = require('node:fs');
if (process.argv[2] === '--version') { console.log('modelctl/0.0.0-shim linux-x64 node-' + process.version); process.exit(0); }
const log = (o) => fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify(o) + '\\n');
const pick = ['MODELCTL_TARGET', 'MODELCTL_STORE', 'MODELCTL_PROMETHEUS_URL', 'MODELCTL_S3_PATH_STYLE', 'MODELCTL_KUBE_CONTEXT', 'INPUT_COMMAND'];
log({ argv: process.argv.slice(2), env: Object.fromEntries(pick.map((k) => [k, process.env[k] ?? null])) });
const out = (k, v) => fs.appendFileSync(process.env.GITHUB_OUTPUT, k + '=' + v + '\\n');
const mode = process.env.SHIM_MODE || 'exit';
if (mode === 'exit') { out('outcome', process.env.SHIM_OUTCOME || 'promoted'); process.exit(Number(process.env.SHIM_CODE || 0)); }
let signals = 0;
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => {
  signals++;
  log({ signal: s, at: Date.now() });
  if (mode === 'stubborn' && s === 'SIGINT') return;
  if (signals === 1) setTimeout(() => { out('outcome', 'aborted'); process.exit(10); }, 300);
  else process.exit(s === 'SIGINT' ? 130 : 143);
});
log({ ready: true });
setTimeout(() => process.exit(0), 60000);
`,
  );
  await chmod(file, 0o755);
  return dir;
}

async function logLines(file: string): Promise<Array<Record<string, any>>> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function byId(steps: StepRecord[], id: string): StepRecord {
  const s = steps.find((x) => x.id === id);
  assert.ok(s, `no step ${id}: ${steps.map((x) => x.id).join(', ')}`);
  return s;
}

function runStep(steps: StepRecord[]): StepRecord {
  return byId(steps, 'run');
}

describe('run.sh: inputs, masks, exit codes, signals', () => {
  let shimDir: string;
  let shimLog: string;
  before(async () => {
    const d = await fresh('gh-shim');
    shimLog = path.join(d, 'log.jsonl');
    shimDir = await shimModelctl(path.join(d, 'bin'), shimLog);
  });
  // An earlier step of the job installed modelctl: the plan says "installed".
  const installed = (env: Record<string, string> = {}) => newJob({ env: { MODELCTL_ACTION_INSTALLED: '1', ...env }, path: [shimDir] });

  test('empty inputs change nothing: no --target, the job env stays as it is', async () => {
    await writeFile(shimLog, '');
    const job = await installed({ MODELCTL_TARGET: 'kubernetes', MODELCTL_PROMETHEUS_URL: 'http://prom:9090', MODELCTL_S3_PATH_STYLE: 'true', MODELCTL_STORE: 's3://b/p' });
    const r = await runComposite(job, ACTION_DIR, { command: 'deploy', ref: 'sentiment@1.4.0' });
    assert.equal(r.outcome, 'success');
    assert.deepEqual(r.unexpectedInputs, []);
    const [call] = await logLines(shimLog);
    assert.deepEqual(call!.argv, ['deploy', 'sentiment@1.4.0']);
    assert.deepEqual(call!.env, { MODELCTL_TARGET: 'kubernetes', MODELCTL_STORE: 's3://b/p', MODELCTL_PROMETHEUS_URL: 'http://prom:9090', MODELCTL_S3_PATH_STYLE: 'true', MODELCTL_KUBE_CONTEXT: null, INPUT_COMMAND: 'deploy' });
    assert.equal(r.outputs['exit-code'], '0');
    assert.equal(r.outputs.outcome, 'promoted');
    assert.equal(byId(r.steps, 'plan').outputs.mode, 'installed');
    // The job's Node.js 24 is kept: actions/setup-node is skipped.
    assert.equal(byId(r.steps, 'plan').outputs['setup-node'], 'false');
    assert.equal(r.steps[1]!.outcome, 'skipped');
  });

  test('a job whose Node.js is older than 22 gets Node.js 24 from actions/setup-node', async () => {
    const old = await fresh('gh-oldnode');
    await writeFile(path.join(old, 'node'), '#!/bin/sh\necho 20\n');
    await chmod(path.join(old, 'node'), 0o755);
    const calls: Array<Record<string, string>> = [];
    const job = await installed();
    job.prependPath.push(old);
    job.opts.uses!['actions/setup-node'] = async ({ with: w }) => (calls.push(w), { outcome: 'success' });
    const r = await runComposite(job, ACTION_DIR, { command: 'status', model: 'sentiment' });
    assert.equal(byId(r.steps, 'plan').outputs['setup-node'], 'true');
    assert.deepEqual(calls, [{ 'node-version': '24' }]);
  });

  test('given inputs become flags (and the Prometheus URL and an explicit false the variables)', async () => {
    await writeFile(shimLog, '');
    const job = await installed({ MODELCTL_S3_PATH_STYLE: 'true' });
    const r = await runComposite(job, ACTION_DIR, {
      command: 'deploy', ref: 'sentiment@1.4.0', canary: '5%', steps: '5,50,100', interval: '2m', shadow: '10%', 'shadow-duration': '1m', 'shadow-only': 'true',
      target: 'kubernetes', 'kube-context': 'prod', kubeconfig: '/k', namespace: 'ml', store: 's3://b/p', 's3-path-style': 'false', 'prometheus-url': 'http://p:9090', args: '--check-every 5s\n--json',
    });
    assert.equal(r.outcome, 'success');
    const [call] = await logLines(shimLog);
    assert.deepEqual(call!.argv, ['deploy', 'sentiment@1.4.0', '--canary', '5%', '--steps', '5,50,100', '--interval', '2m', '--shadow', '10%', '--shadow-duration', '1m', '--shadow-only', '--target', 'kubernetes', '--context', 'prod', '--kubeconfig', '/k', '--namespace', 'ml', '--store', 's3://b/p', '--check-every', '5s', '--json']);
    assert.equal(call!.env.MODELCTL_PROMETHEUS_URL, 'http://p:9090');
    assert.equal(call!.env.MODELCTL_S3_PATH_STYLE, 'false');
  });

  test('credentials in --store and args are masked before anything is printed, and never shown', async () => {
    await writeFile(shimLog, '');
    const job = await installed();
    const r = await runComposite(job, ACTION_DIR, { command: 'push', path: 'models/x', store: 's3://AKIAEXAMPLE:wJalrXUtnFEMI@rgw.internal/models?X-Amz-Signature=c2lnbmF0dXJl', args: '--var token=tok3n-s3cret' });
    const step = runStep(r.steps);
    assert.equal(step.outcome, 'success', step.log.join('\n'));
    for (const secret of ['wJalrXUtnFEMI', 'c2lnbmF0dXJl', 'tok3n-s3cret']) {
      assert.ok(job.masks.has(secret), `${secret} masked`);
      assert.ok(!step.log.some((l) => l.includes(secret)), step.log.join('\n'));
    }
    assert.ok(step.log.includes('modelctl bundle push models/x --store s3://***@rgw.internal/models?X-Amz-Signature=*** --var token=***'), step.log.join('\n'));
    // The masks come first: the runner masks only what it was told about before.
    assert.ok(step.log.findIndex((l) => l.startsWith('::add-mask::')) < step.log.findIndex((l) => l.startsWith('modelctl ')));
    const [call] = await logLines(shimLog);
    assert.deepEqual(call!.argv.slice(-2), ['--var', 'token=tok3n-s3cret'], 'modelctl gets the real values');
  });

  test('fail-on-rollback: false passes a rolled-back deploy, never a failed gates-check', async () => {
    const job = await installed({ SHIM_CODE: '3', SHIM_OUTCOME: 'rolled-back' });
    const deploy = await runComposite(job, ACTION_DIR, { command: 'deploy', ref: 'sentiment@1.4.0', 'fail-on-rollback': 'false' });
    assert.equal(deploy.outcome, 'success');
    assert.equal(deploy.outputs['exit-code'], '3');
    assert.equal(deploy.outputs.outcome, 'rolled-back');
    const strict = await runComposite(job, ACTION_DIR, { command: 'deploy', ref: 'sentiment@1.4.0' });
    assert.equal(strict.outcome, 'failure');
    const gates = await runComposite(job, ACTION_DIR, { command: 'gates-check', 'gates-file': 'g.yaml', 'fail-on-rollback': 'false' });
    assert.equal(gates.outcome, 'failure');
    assert.equal(gates.outputs['exit-code'], '3');
    const bad = await runComposite(job, ACTION_DIR, { command: 'deploy', ref: 'x@1', 'fail-on-rollback': 'maybe' });
    assert.equal(bad.outcome, 'failure');
    assert.match(runStep(bad.steps).annotations[0]!.message, /input 'fail-on-rollback' must be true, false or empty, got 'maybe'/);
  });

  test('a cancelled job: SIGINT reaches modelctl, which aborts; its outputs and exit code 10 are kept', async () => {
    await writeFile(shimLog, '');
    const job = await installed({ SHIM_MODE: 'graceful' });
    const running = runComposite(job, ACTION_DIR, { command: 'deploy', ref: 'sentiment@1.4.0' });
    await waitFor(async () => (await logLines(shimLog)).some((l) => l.ready));
    job.cancel();
    const r = await running;
    const step = runStep(r.steps);
    assert.deepEqual(step.signals, ['SIGINT'], 'one signal was enough');
    assert.equal(step.exitCode, 10);
    assert.equal(step.outcome, 'cancelled');
    assert.equal(r.outputs['exit-code'], '10');
    assert.equal(r.outputs.outcome, 'aborted');
    assert.deepEqual((await logLines(shimLog)).filter((l) => l.signal).map((l) => l.signal), ['SIGINT']);
  });

  test('when SIGINT is not enough, the SIGTERM 7.5 s later is passed on too', async () => {
    await writeFile(shimLog, '');
    const job = await installed({ SHIM_MODE: 'stubborn' });
    const running = runComposite(job, ACTION_DIR, { command: 'deploy', ref: 'sentiment@1.4.0' });
    await waitFor(async () => (await logLines(shimLog)).some((l) => l.ready));
    const t0 = Date.now();
    job.cancel();
    const r = await running;
    const step = runStep(r.steps);
    assert.deepEqual(step.signals, ['SIGINT', 'SIGTERM']);
    const got = (await logLines(shimLog)).filter((l) => l.signal);
    assert.deepEqual(got.map((l) => l.signal), ['SIGINT', 'SIGTERM']);
    assert.ok(got[1]!.at - t0 >= SIGINT_GRACE_MS - 100, `SIGTERM after ${got[1]!.at - t0} ms`);
    assert.equal(r.outputs['exit-code'], '143', 'the second signal: modelctl exits at once with 143, and run.sh reports its code');
  });
});

describe('install.sh: the published version on a version tag, else a source build', () => {
  let tarball: string;
  let version: string;
  before(async () => {
    tarball = await packTarball(await fresh('gh-pack'));
    version = await packageVersion();
  });

  test('tag v<version>: npm install -g modelctl@<version> once, then from the cache', { timeout: 180_000 }, async () => {
    const d = await fresh('gh-npm');
    const log = path.join(d, 'npm.jsonl');
    const npmDir = await fakeNpm(path.join(d, 'bin'), { published: { [version]: tarball }, log });
    const cacheDir = await fresh('gh-cache-shared');
    const first = await newJob({ path: [npmDir], uses: actionHandlers(cacheDir) });
    const r1 = await runComposite(first, ACTION_DIR, { command: 'status', model: 'sentiment', args: '--json' }, { actionRef: `v${version}` });
    assert.equal(r1.steps.find((s) => s.id === 'plan')!.outputs.mode, 'npm', JSON.stringify(r1.steps.map((s) => s.log), null, 1));
    const install = byId(r1.steps, 'install');
    assert.equal(install.outcome, 'success', install.log.join('\n'));
    assert.ok(install.log.includes(`modelctl/${version} linux-x64 node-${process.version}`), install.log.join('\n'));
    assert.deepEqual((await logLines(log)).map((c) => c.args.find((a: string) => a.startsWith('modelctl@'))), [`modelctl@${version}`]);
    // The CLI the step ran is the installed package, found on PATH through GITHUB_PATH.
    assert.ok(first.prependPath.some((p) => p.endsWith(`/modelctl/${version}/bin`)), first.prependPath.join(':'));
    assert.equal(runStep(r1.steps).outcome, 'success', runStep(r1.steps).log.join('\n'));
    assert.equal(first.env.MODELCTL_ACTION_INSTALLED, '1');
    // A second use in the same job installs nothing.
    const again = await runComposite(first, ACTION_DIR, { command: 'status', model: 'sentiment' }, { actionRef: `v${version}` });
    assert.equal(again.steps.find((s) => s.id === 'plan')!.outputs.mode, 'installed');
    await first.runPosts();
    // The next job restores the prefix from the cache: npm is not called again.
    const second = await newJob({ path: [npmDir], uses: actionHandlers(cacheDir) });
    const r2 = await runComposite(second, ACTION_DIR, { command: 'status', model: 'sentiment' }, { actionRef: `v${version}` });
    assert.equal(r2.outcome, 'success');
    assert.ok(byId(r2.steps, 'install').log.some((l) => l.includes('restored from the cache')), byId(r2.steps, 'install').log.join('\n'));
    assert.equal((await logLines(log)).length, 1);
  });

  test('a tag whose version is not published: a warning, then a build from the action checkout', async () => {
    const d = await fresh('gh-npm404');
    const log = path.join(d, 'npm.jsonl');
    const npmDir = await fakeNpm(path.join(d, 'bin'), { published: {}, log });
    const job = await newJob({ path: [npmDir] });
    const r = await runComposite(job, ACTION_DIR, { command: 'status', model: 'sentiment' }, { actionRef: `v${version}` });
    const install = byId(r.steps, 'install');
    assert.equal(install.outcome, 'success', install.log.join('\n'));
    assert.match(install.annotations[0]!.message, new RegExp(`modelctl@${version.replaceAll('.', '\\.')} is not on the npm registry`));
    assert.deepEqual((await logLines(log)).map((c) => [c.cwd, c.args[0]]), [[job.opts.workspace, 'install'], [REPO_ROOT, 'ci'], [REPO_ROOT, 'run']]);
    assert.equal(runStep(r.steps).outcome, 'success', runStep(r.steps).log.join('\n'));
  });

  test('a branch or a local action: built from source; a tag naming another version: refused', async () => {
    const d = await fresh('gh-npmsrc');
    const log = path.join(d, 'npm.jsonl');
    const npmDir = await fakeNpm(path.join(d, 'bin'), { published: { [version]: tarball }, log });
    for (const ref of ['main', '']) {
      const job = await newJob({ path: [npmDir] });
      const r = await runComposite(job, ACTION_DIR, { command: 'status', model: 'sentiment' }, { actionRef: ref });
      assert.equal(r.steps.find((s) => s.id === 'plan')!.outputs.mode, 'source');
      assert.equal(r.outcome, 'success');
    }
    assert.deepEqual((await logLines(log)).map((c) => c.args[0]), ['ci', 'run', 'ci', 'run']);
    const job = await newJob({ path: [npmDir] });
    const r = await runComposite(job, ACTION_DIR, { command: 'status', model: 'sentiment' }, { actionRef: 'v99.0.0' });
    assert.equal(r.outcome, 'failure');
    assert.match(byId(r.steps, 'plan').annotations[0]!.message, /action ref v99\.0\.0 does not match modelctl .* in its package\.json/);
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}
