import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { background as backgroundCli, waitFor } from '../helpers/background.js';
import { REPO_ROOT, runCli, steadyLoad, useScratch, writeTree } from '../helpers/fixtures.js';

/**
 * The safety path end to end on the local runtime, with real CLI processes and real model
 * processes: a deploy interrupted as a terminal (Ctrl-C) or a cancelled GitHub job (SIGINT, then
 * SIGTERM ~7.5 s later) interrupts it; a start that fails; answers the gates cannot read.
 */
const { fresh, cleanup } = useScratch();
let home: string;
let env: NodeJS.ProcessEnv;
const children: ChildProcess[] = [];

const cli = (args: string[]) => runCli(args, { env, timeoutMs: 180_000 });
const background = (args: string[], extra: NodeJS.ProcessEnv = {}) => backgroundCli(args, { ...env, ...extra }, children);

async function status(): Promise<any> {
  const r = await cli(['status', 'sentiment', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return r.json();
}

const inCanary = async () => {
  const s = await status();
  return s.rollout?.phase === 'canary' && s.traffic['1.1.0'] === 20 ? true : undefined;
};

before(async () => {
  home = await fresh('signals-home');
  env = { MODELCTL_HOME: home, MODELCTL_LOCAL_PORT: '0', MODELCTL_STORE: undefined } as unknown as NodeJS.ProcessEnv;
  const example = path.join(REPO_ROOT, 'bundles/example');
  // A version that starts and never becomes ready: its rollout stays in 'starting'.
  const neverReady = await writeTree(await fresh('never-ready'), {
    'bundle.yaml': 'name: sentiment\nversion: 1.9.0\ncomponents:\n  weights: []\n  prompts: []\n  preprocessing: []\n  config: []\n  serving: [serve.mjs]\nserve:\n  command: [node, serve.mjs]\n',
    'serve.mjs': 'setInterval(() => {}, 1000);\n',
  });
  const noComponents = 'components:\n  weights: []\n  prompts: []\n  preprocessing: []\n  config: []\n  serving: [serve.mjs]\n';
  // Answers 200 with a plain-text body while declaring a JSON score field.
  const notJson = await writeTree(await fresh('not-json'), {
    'bundle.yaml': `name: sentiment\nversion: 1.8.0\n${noComponents}serve:\n  command: [node, serve.mjs]\n  scoreField: score\n`,
    'serve.mjs': `import http from 'node:http';
http.createServer((req, res) => {
  req.resume();
  req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end(req.url === '/healthz' ? 'ok' : 'OK'));
}).listen(Number(process.env.PORT), process.env.HOST ?? '127.0.0.1');
`,
  });
  // No serve: section: it cannot be started.
  const noServe = await writeTree(await fresh('no-serve'), { 'bundle.yaml': `name: sentiment\nversion: 1.7.0\n${noComponents}`, 'serve.mjs': '' });
  for (const [dir, version] of [[example, '1.0.0'], [example, '1.1.0'], [neverReady, '1.9.0'], [notJson, '1.8.0'], [noServe, '1.7.0']] as const) {
    const r = await cli(['bundle', 'push', dir, '--version', version, '--json']);
    assert.equal(r.code, 0, r.stderr);
  }
  const first = await cli(['deploy', 'sentiment@1.0.0', '--json']);
  assert.equal(first.code, 0, first.stderr);
});

after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await cli(['local', 'down', '--forget']);
  await cleanup();
});

describe('a deploy interrupted by a signal', () => {
  test('the first SIGINT mid-canary aborts to stable, frees the lock, reports aborted (and GitHub outputs) and exits 10', async () => {
    const gh = await fresh('gh');
    const outputs = path.join(gh, 'output');
    const summary = path.join(gh, 'summary');
    await writeFile(outputs, '');
    await writeFile(summary, '');
    const run = background(['deploy', 'sentiment@1.1.0', '--steps', '20,100', '--interval', '10m', '--json'], {
      GITHUB_ACTIONS: 'true',
      MODELCTL_GITHUB: '',
      GITHUB_OUTPUT: outputs,
      GITHUB_STEP_SUMMARY: summary,
    });
    await waitFor('the canary to take traffic', inCanary);
    const t0 = Date.now();
    run.child.kill('SIGINT');
    const { code, stdout, stderr } = await run.done;
    const elapsed = Date.now() - t0;
    assert.equal(code, 10, stderr);
    assert.ok(elapsed < 5000, `done ${elapsed} ms after SIGINT (the runner sends SIGTERM after ~7.5 s)`);
    const result = JSON.parse(stdout);
    assert.equal(result.outcome, 'aborted');
    assert.equal(result.interrupted, 'SIGINT');
    assert.match(result.reason, /SIGINT/);
    assert.equal(result.serving, '1.0.0');

    const s = await status();
    assert.deepEqual([s.serving, s.traffic, s.rollout, s.lock], ['1.0.0', { '1.0.0': 100 }, null, null]);
    assert.deepEqual(s.observed.traffic.weights, { '1.0.0': 100 }, 'the local runtime routes everything to stable');
    assert.deepEqual(Object.keys(s.observed.versions), ['1.0.0'], 'the aborted candidate was stopped');

    assert.match(await readFile(outputs, 'utf8'), /^outcome<<.*\naborted\n/m);
    assert.match(await readFile(summary, 'utf8'), /abort/i);
    console.log(`SIGINT mid-canary → exit 10 in ${elapsed} ms`);
  });

  test('a second signal exits at once (143) leaving the rollout interrupted, and says how to resolve it', async () => {
    // The lock is free: this deploy is not refused (exit 5).
    const run = background(['deploy', 'sentiment@1.1.0', '--steps', '20,100', '--interval', '10m']);
    await waitFor('the canary to take traffic', inCanary);
    // `local down` does not pull the runtime from under a running rollout: refused, naming it and how to stop it.
    const down = await cli(['local', 'down', '--json']);
    assert.equal(down.code, 5, down.stdout + down.stderr);
    assert.match(down.json().error.message, /rollout in progress: sentiment@1\.1\.0 \(canary step 1\/2, driven by /);
    assert.match(down.json().error.hint, /modelctl abort sentiment/);
    assert.equal((await status()).observed.traffic.weights['1.1.0'], 20, 'the runtime still serves the canary');
    run.child.kill('SIGINT');
    run.child.kill('SIGTERM');
    const { code, stderr } = await run.done;
    // Two signals sent back to back may reach the process's event loop in either order (seen on a
    // loaded machine): whichever is handled second exits at once with 128 + its number.
    const second = /Interrupted again \((SIGINT|SIGTERM)\), exiting at once/.exec(stderr)?.[1];
    assert.ok(second, `a second signal was handled: ${stderr}`);
    assert.equal(code, second === 'SIGINT' ? 130 : 143, stderr);
    assert.match(stderr, /modelctl abort sentiment/);
    assert.match(stderr, /--resume/);
    assert.doesNotMatch(stderr, /nothing was left/);

    const s = await status();
    assert.equal(s.rollout?.version, '1.1.0');
    assert.equal(s.rollout.interrupted, true);
    const abort = await cli(['abort', 'sentiment', '--json']);
    assert.equal(abort.code, 0, abort.stdout + abort.stderr);
    const after = await status();
    assert.deepEqual([after.serving, after.traffic, after.rollout], ['1.0.0', { '1.0.0': 100 }, null]);
  });

  test('a signal while the candidate starts leaves the model as it was', async () => {
    const run = background(['deploy', 'sentiment@1.9.0', '--steps', '20,100', '--ready-timeout', '2m', '--json']);
    await waitFor('the candidate to be started', async () => {
      const s = await status();
      return s.rollout?.phase === 'starting' && s.observed.versions['1.9.0'] ? true : undefined;
    });
    const t0 = Date.now();
    run.child.kill('SIGTERM');
    const { code, stdout, stderr } = await run.done;
    assert.equal(code, 10, stderr);
    assert.ok(Date.now() - t0 < 5000, 'the readiness wait does not hold the abort up');
    assert.equal(JSON.parse(stdout).outcome, 'aborted');
    const s = await status();
    assert.deepEqual([s.serving, s.stableSet, s.traffic, s.rollout, s.lock], ['1.0.0', ['1.0.0'], { '1.0.0': 100 }, null, null]);
    assert.deepEqual(Object.keys(s.observed.versions), ['1.0.0']);
  });
});

describe('the safety path', () => {
  test('a deploy that cannot start its candidate (no serve section) leaves the model as it was: no rollout, no lock, no promote hint', async () => {
    const r = await cli(['deploy', 'sentiment@1.7.0', '--steps', '20,100']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /serve/);
    assert.doesNotMatch(r.stderr, /promote|--resume|this looks like a bug/i);
    const s = await status();
    assert.deepEqual([s.serving, s.traffic, s.rollout, s.lock], ['1.0.0', { '1.0.0': 100 }, null, null]);
    const h = await cli(['history', 'sentiment', '--json']);
    assert.equal(h.json()[0].version, '1.7.0');
    assert.equal(h.json()[0].state, 'failed');
  });

  test('a candidate whose answers the gates cannot read (200, not JSON, scoreField declared) is rolled back, and the reason says so', async () => {
    const { stop, load } = steadyLoad((await cli(['local', 'status', '--json'])).json().url);
    const r = await cli(['deploy', 'sentiment@1.8.0', '--steps', '50,100', '--interval', '6s', '--check-every', '1s', '--json']);
    stop.abort();
    await load;
    assert.equal(r.code, 3, r.stdout + r.stderr);
    const result = r.json();
    assert.equal(result.outcome, 'rolled-back');
    assert.match(result.reason, /answers? unreadable \(not JSON, or without the declared field\)/);
    assert.equal((await status()).serving, '1.0.0');
  });

  test('a manual rollback is recorded in the history; the version rolled back from leaves the stable set, so the next rollback does not return to it', async () => {
    const { stop, load } = steadyLoad((await cli(['local', 'status', '--json'])).json().url);
    const d = await cli(['deploy', 'sentiment@1.1.0', '--steps', '50,100', '--interval', '4s', '--check-every', '1s', '--json']);
    stop.abort();
    await load;
    assert.equal(d.code, 0, d.stdout + d.stderr);
    const r = await cli(['rollback', 'sentiment']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /all traffic on 1\.0\.0 \(was 1\.1\.0\)/);
    assert.match(r.stdout, /1\.1\.0 left the stable set and was stopped/);
    const h = (await cli(['history', 'sentiment', '--json'])).json();
    assert.deepEqual([h[0].version, h[0].state], ['1.0.0', 'stable']);
    assert.match(h[0].reason, /^rollback from 1\.1\.0 by /);
    assert.deepEqual([h[1].version, h[1].state], ['1.1.0', 'retired']);
    assert.match(h[1].reason, /^rolled back to 1\.0\.0 by /);
    const s = await status();
    assert.deepEqual([s.serving, s.stableSet, Object.keys(s.observed.versions)], ['1.0.0', ['1.0.0'], ['1.0.0']]);
    const again = await cli(['rollback', 'sentiment', '--json']);
    assert.equal(again.code, 2, 'not straight back to the version just rolled back from');
    assert.match(again.json().error.message, /single stable version/);
  });

  test('a readiness timeout names the whole wait and what it waited on, and says so while waiting', async () => {
    const r = await cli(['deploy', 'sentiment@1.9.0', '--steps', '20,100', '--ready-timeout', '7s']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /waiting for sentiment@1\.9\.0 to become ready \(5 s of 7 s\): sentiment@1\.9\.0 is starting \(/);
    assert.match(r.stdout, /did not become ready within 7 s \(the ready timeout\): sentiment@1\.9\.0 is starting/);
    assert.doesNotMatch(r.stdout + r.stderr, /after 60000 ms|after 2000 ms/);
    assert.equal((await status()).serving, '1.0.0');
  });

  test('rollback --force passes every plan flag (--shadow-only was dropped)', async () => {
    const r = await cli(['rollback', 'sentiment', '--to', '1.1.0', '--force', '--shadow-only', '--json']);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.json().error.message, /--shadow-only needs a shadow share/);
  });

  test('--dry-run refuses what the real run refuses; bad plan inputs are usage errors', async () => {
    const project = await writeTree(await fresh('project'), {
      'modelctl.yaml': 'rollout:\n  gates:\n    - name: typo\n      metric: eror-rate\n      max: 0.1\n',
    });
    const cases: Array<[string[], RegExp, string?]> = [
      [['--check-every', '0s'], /check interval must be > 0/],
      [['--steps', '100'], /only step is 100%/],
      [['--canary', '100%'], /only step is 100%/],
      [['--canary', '5%', '--steps', '10,100'], /both set the canary steps/],
      [['--interval', '90'], /"90" has no unit/],
      [[], /unknown local metric "eror-rate"/, project],
    ];
    for (const [flags, re, cwd] of cases) {
      for (const dry of [['--dry-run'], []]) {
        const r = await runCli(['deploy', 'sentiment@1.1.0', ...flags, ...dry, '--json'], { env, cwd, timeoutMs: 60_000 });
        assert.equal(r.code, 2, `${flags.join(' ')} ${dry.join(' ')}: ${r.stdout}${r.stderr}`);
        assert.match(r.json().error.message, re);
      }
    }
    const ok = await cli(['deploy', 'sentiment@1.1.0', '--dry-run', '--interval', '1m30s', '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.json().steps[0].bakeMs, 90_000);
    const typo = await writeTree(await fresh('typo'), { 'modelctl.yaml': 'rolout:\n  steps: [10, 100]\n' });
    const t = await runCli(['deploy', 'sentiment@1.1.0', '--dry-run', '--json'], { env, cwd: typo, timeoutMs: 60_000 });
    assert.equal(t.code, 2);
    assert.match(t.json().error.message, /rolout: unknown setting \(did you mean rollout\?\)/);
    assert.equal((await status()).rollout, null, 'nothing started');
  });

  test('local load of a model the runtime does not route is refused (exit 8), naming what it routes', async () => {
    const r = await cli(['local', 'load', 'nosuchmodel', '--duration', '1s', '--json']);
    assert.equal(r.code, 8, r.stdout + r.stderr);
    assert.match(r.json().error.message, /routes no model named nosuchmodel \(it routes: sentiment\)/);
  });
});
