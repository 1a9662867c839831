import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { background as backgroundCli, waitFor } from '../helpers/background.js';
import { REPO_ROOT, runCli, useScratch, faultyExample } from '../helpers/fixtures.js';

/**
 * Rollouts end to end on the embedded local runtime: the real CLI, the real daemon, real model
 * processes. One MODELCTL_HOME for the whole file; the scenarios build on each other like a
 * day in the life of a model.
 */
const { fresh, cleanup } = useScratch();
let home: string;
let env: NodeJS.ProcessEnv;
const children: ChildProcess[] = [];

const cli = (args: string[]) => runCli(args, { env, timeoutMs: 180_000 });

async function status(): Promise<any> {
  const r = await cli(['status', 'sentiment', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return r.json();
}

async function routerUrl(): Promise<string> {
  const r = await cli(['local', 'status', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return r.json().url;
}

/** Versions that answered `n` requests through the router. Every request must succeed, except the bad 1.2.0's. */
async function answeredBy(n: number): Promise<Record<string, number>> {
  const url = await routerUrl();
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${url}/sentiment/predict`, { method: 'POST', body: JSON.stringify({ text: 'what a lovely day' }), headers: { 'content-type': 'application/json' } });
    await res.arrayBuffer();
    const v = res.headers.get('x-model-version')!;
    if (v !== '1.2.0') assert.equal(res.status, 200, `${v} answered ${res.status}`);
    counts[v] = (counts[v] ?? 0) + 1;
  }
  return counts;
}

/** A deploy running in the background, as a CI job or a second terminal would run it. */
const background = (args: string[]) => backgroundCli(args, env, children);

before(async () => {
  home = await fresh('rollout-home');
  env = { MODELCTL_HOME: home, MODELCTL_LOCAL_PORT: '0', MODELCTL_STORE: undefined } as unknown as NodeJS.ProcessEnv;
  const example = path.join(REPO_ROOT, 'bundles/example');
  const bad = await faultyExample(await fresh('bad'), 0.5);
  for (const [dir, version] of [[example, '1.0.0'], [example, '1.1.0'], [bad, '1.2.0'], [example, '1.3.0']] as const) {
    const r = await cli(['bundle', 'push', dir, '--version', version, '--json']);
    assert.equal(r.code, 0, r.stderr);
  }
});

after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await cli(['local', 'down', '--forget']);
  await cleanup();
});

describe('rollouts on the local runtime', () => {
  test('the first deploy goes live after a health check; --dry-run changes nothing', async () => {
    const dry = await cli(['deploy', 'sentiment@1.0.0', '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(dry.json().firstDeploy, true);
    assert.equal((await status()).serving, null, 'a dry run deploys nothing');

    const r = await cli(['deploy', 'sentiment@1.0.0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const result = r.json();
    assert.equal(result.outcome, 'promoted');
    assert.ok(result.events.some((e: { type: string }) => e.type === 'traffic-applied'));
    assert.deepEqual(await answeredBy(20), { '1.0.0': 20 });

    const plan = (await cli(['deploy', 'sentiment@1.1.0', '--dry-run', '--canary', '10%', '--interval', '2m', '--json'])).json();
    assert.deepEqual(plan.steps.map((s: { weight: number }) => s.weight), [10, 25, 50, 100]);
    assert.equal(plan.totalMs, 3 * 120_000);
    assert.ok(plan.gates.every((g: { query: string; limit: string }) => g.query && g.limit));
  });

  test('a second deploy is refused while one runs (exit 5); promote from another process finishes the first', async () => {
    const first = background(['deploy', 'sentiment@1.1.0', '--steps', '20,100', '--interval', '60s', '--json']);
    await waitFor('the canary to start', async () => ((await status()).rollout?.phase === 'canary' ? true : undefined));

    const second = await cli(['deploy', 'sentiment@1.2.0', '--json']);
    assert.equal(second.code, 5, second.stdout);
    assert.match(second.json().error.message, new RegExp(`driven by .*pid ${first.child.pid}`));

    const promote = await cli(['promote', 'sentiment', '--json']);
    assert.equal(promote.code, 0, promote.stderr);
    assert.equal(promote.json().kind, 'requested');
    const { code, stdout } = await first.done;
    assert.equal(code, 0);
    assert.equal(JSON.parse(stdout).outcome, 'promoted');
    const s = await status();
    assert.deepEqual([s.serving, s.stableSet, s.traffic], ['1.1.0', ['1.1.0', '1.0.0'], { '1.1.0': 100 }]);
  });

  test('kill -9 of deploy mid-step leaves traffic where the ledger says; abort restores stable', async () => {
    const run = background(['deploy', 'sentiment@1.2.0', '--steps', '50,100', '--interval', '60s']);
    await waitFor('the canary to take traffic', async () => ((await status()).traffic['1.2.0'] === 50 ? true : undefined));
    run.child.kill('SIGKILL');
    await run.done;

    const s = await status();
    assert.equal(s.rollout.version, '1.2.0');
    assert.equal(s.rollout.interrupted, true, 'a dead holder on this host is recognised at once');
    assert.deepEqual(s.traffic, { '1.1.0': 50, '1.2.0': 50 });
    const served = await answeredBy(40);
    assert.deepEqual(Object.keys(served).sort(), ['1.1.0', '1.2.0'], 'the router serves what the ledger says');

    const abort = await cli(['abort', 'sentiment', '--json']);
    assert.equal(abort.code, 0, abort.stdout + abort.stderr);
    assert.equal(abort.json().result.outcome, 'aborted');
    const after = await status();
    assert.deepEqual([after.serving, after.traffic, after.rollout], ['1.1.0', { '1.1.0': 100 }, null]);
    assert.deepEqual(await answeredBy(20), { '1.1.0': 20 });
  });

  test('a bad canary under load is rolled back by its gates (exit 3) with the evidence', async () => {
    const url = await routerUrl();
    const stop = new AbortController();
    const load = (async () => {
      let failures = 0;
      while (!stop.signal.aborted) {
        const res = await fetch(`${url}/sentiment/predict`, { method: 'POST', body: '{"text":"fine"}', headers: { 'content-type': 'application/json' } }).catch(() => undefined);
        if (!res || (res.status >= 500 && res.headers.get('x-model-version') !== '1.2.0')) failures++;
        await res?.arrayBuffer();
        await new Promise((r) => setTimeout(r, 5));
      }
      return failures;
    })();
    const r = await cli(['deploy', 'sentiment@1.2.0', '--steps', '30,100', '--interval', '20s', '--check-every', '1s', '--json']);
    stop.abort();
    assert.equal(await load, 0, 'no request to the stable version failed during the canary or the rollback switch');
    assert.equal(r.code, 3, r.stdout + r.stderr);
    const result = r.json();
    assert.equal(result.outcome, 'rolled-back');
    assert.equal(result.rolledBackTo, '1.1.0');
    const failed = result.steps[0].gates.find((g: { name: string }) => g.name === 'error-rate');
    assert.equal(failed.verdict, 'fail');
    assert.ok(failed.value > 0.05);
    const t = (type: string) => result.events.find((e: { type: string }) => e.type === type)?.at;
    assert.ok(t('rolled-back') - t('gate-failed') < 1000, 'traffic is back on stable within a second of the failing gate');
    const history = (await cli(['history', 'sentiment', '--json'])).json();
    assert.deepEqual(history.slice(0, 2).map((h: { version: string; state: string }) => [h.version, h.state]), [['1.2.0', 'failed'], ['1.2.0', 'aborted']]);
  });

  test("the local runtime exposes modelctl's rollout metrics next to the router's", async () => {
    const metricsUrl = (await cli(['local', 'status', '--json'])).json().metricsUrl;
    const text = await (await fetch(metricsUrl)).text();
    assert.match(text, /modelctl_rollbacks_total\{[^}]*model="sentiment"[^}]*reason="gate"[^}]*\} 1/);
    assert.match(text, /modelctl_rollout_phase\{[^}]*phase="idle"[^}]*\} 1/);
    assert.match(text, /modelctl_local_requests_total\{/, 'the router metrics are still there');
    assert.equal(text.match(/^# TYPE modelctl_rollout_phase /gm)?.length, 1, 'one family, valid exposition');
  });

  test('rollback is an instant switch to a warm stable version', async () => {
    // --keep-stable: 1.1.0 stays warm in the set, for the switch back below.
    const r = await cli(['rollback', 'sentiment', '--keep-stable', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual([r.json().from, r.json().to, r.json().healthy], ['1.1.0', '1.0.0', true]);
    assert.deepEqual(await answeredBy(20), { '1.0.0': 20 });
    const outside = await cli(['rollback', 'sentiment', '--to', '1.2.0', '--json']);
    assert.equal(outside.code, 2, outside.stdout + outside.stderr);
    assert.match(outside.json().error.message, /not in the stable set/);
    assert.equal((await cli(['rollback', 'sentiment', '--to', '1.1.0', '--keep-stable'])).code, 0);
    assert.deepEqual(await answeredBy(10), { '1.1.0': 10 });
  });
});

describe('shadow', () => {
  test('a shadow-only rollout mirrors traffic, judges agreement, and never answers a caller', async () => {
    const url = await routerUrl();
    const stop = new AbortController();
    const seen: Record<string, number> = {};
    const load = (async () => {
      while (!stop.signal.aborted) {
        const res = await fetch(`${url}/sentiment/predict`, { method: 'POST', body: '{"text":"a wonderful film"}', headers: { 'content-type': 'application/json' } });
        assert.equal(res.status, 200);
        await res.arrayBuffer();
        const v = res.headers.get('x-model-version')!;
        seen[v] = (seen[v] ?? 0) + 1;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const r = await cli(['deploy', 'sentiment@1.3.0', '--shadow', '50%', '--shadow-duration', '4s', '--shadow-only', '--check-every', '1s', '--json']);
    stop.abort();
    await load;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const result = r.json();
    assert.equal(result.outcome, 'shadow-passed');
    const agreement = result.steps[0].gates.find((g: { name: string }) => g.name === 'shadow-agreement');
    assert.equal(agreement.verdict, 'pass');
    assert.equal(agreement.value, 1, 'the same model agrees with itself');
    assert.deepEqual(Object.keys(seen), ['1.1.0'], 'callers only ever got the live version');
    const s = await status();
    assert.deepEqual([s.serving, s.traffic, s.mirror], ['1.1.0', { '1.1.0': 100 }, null]);
    assert.deepEqual(s.differences, [], 'the runtime runs and routes what the ledger says');
    assert.deepEqual(s.observed.traffic, { weights: { '1.1.0': 100 }, mirror: null });
  });
});

describe('after the runtime lost its versions (local down --forget)', () => {
  test('re-deploying the serving version brings it back; rollback restarts the warm version it needs', async () => {
    assert.equal((await cli(['local', 'down', '--forget'])).code, 0);
    const lost = await status();
    assert.equal(lost.serving, '1.1.0', 'the ledger still knows what should serve');
    assert.ok(lost.differences.includes('1.1.0 (serving) is not running'), lost.differences.join('; '));
    const human = await cli(['status', 'sentiment']);
    assert.match(human.stdout, /DIFFERS: .*the target routes nothing/);
    assert.match(human.stdout, /modelctl deploy sentiment@1\.1\.0` re-applies/);
    const again = await cli(['deploy', 'sentiment@1.1.0', '--json']);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.deepEqual(await answeredBy(10), { '1.1.0': 10 });
    const back = await cli(['rollback', 'sentiment', '--json']);
    assert.equal(back.code, 0, back.stdout + back.stderr);
    assert.deepEqual([back.json().to, back.json().healthy], ['1.0.0', true]);
    assert.deepEqual(await answeredBy(10), { '1.0.0': 10 });
  });
});

describe('the demo', () => {
  test('tells the whole story on a private home and checks it: promote, then an automatic rollback', async () => {
    const r = await runCli(['demo', '--json'], { env: { MODELCTL_HOME: undefined } as never, timeoutMs: 180_000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const report = r.json();
    assert.equal(report.ok, true);
    assert.deepEqual(report.chapters.map((c: { version: string; result: { outcome: string } }) => [c.version, c.result.outcome]), [
      ['1.0.0', 'promoted'],
      ['1.1.0', 'promoted'],
      ['1.2.0', 'rolled-back'],
    ]);
    assert.ok(report.load.answered > 500, 'the canaries ran under load');
    for (const [version, errors] of Object.entries(report.load.errorsByVersion)) {
      if (version !== '1.2.0') assert.equal(errors, 0, `${version} failed no request`);
    }
    assert.ok(report.durationMs < 120_000);
  });
});
