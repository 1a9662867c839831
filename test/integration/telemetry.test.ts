import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT, runCli, useScratch, steadyLoad, faultyExample } from '../helpers/fixtures.js';
import { sampleValue, startPushgateway, type PushgatewayHandle } from '../infra/pushgateway.js';

/**
 * modelctl's own telemetry end to end: real deploys and a rollback on the embedded local
 * runtime, pushed to a real Pushgateway (Debian's prometheus-pushgateway), read back from its
 * /metrics with the grouping labels job/model/target.
 */
const { fresh, cleanup } = useScratch();
let home: string;
let env: NodeJS.ProcessEnv;
let pgw: PushgatewayHandle;

const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) => runCli(args, { env: { ...env, ...extra }, timeoutMs: 60_000 });
const GROUP = { job: 'modelctl', model: 'sentiment', target: 'local' };

async function pushed(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  return sampleValue(await pgw.metrics(), name, { ...GROUP, ...labels });
}

async function routerUrl(): Promise<string> {
  const r = await cli(['local', 'status', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return r.json().url;
}

before(async () => {
  pgw = await startPushgateway();
  home = await fresh('telemetry-home');
  env = { MODELCTL_HOME: home, MODELCTL_LOCAL_PORT: '0', MODELCTL_STORE: undefined, MODELCTL_PUSHGATEWAY_URL: undefined } as unknown as NodeJS.ProcessEnv;
  const example = path.join(REPO_ROOT, 'bundles/example');
  const bad = await faultyExample(await fresh('bad'), 0.5);
  for (const [dir, version] of [[example, '1.0.0'], [example, '1.1.0'], [bad, '1.2.0']] as const) {
    const r = await cli(['bundle', 'push', dir, '--version', version, '--json']);
    assert.equal(r.code, 0, r.stderr);
  }
});

after(async () => {
  await cli(['local', 'down', '--forget']).catch(() => undefined);
  await pgw?.stop();
  await cleanup();
});

describe('telemetry pushed to a real Pushgateway', { timeout: 120_000 }, () => {
  test('a first deploy: promoted, idle, candidate at 100%, the health gate counted', async () => {
    const r = await cli(['deploy', 'sentiment@1.0.0', '--pushgateway', pgw.url, '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json().outcome, 'promoted');
    assert.doesNotMatch(r.stderr, /Warning/);
    assert.equal(await pushed('modelctl_rollout_phase', { phase: 'idle' }), 1);
    assert.equal(await pushed('modelctl_rollout_phase', { phase: 'promoting' }), 0);
    assert.equal(await pushed('modelctl_rollout_candidate_weight_percent'), 100);
    assert.equal(await pushed('modelctl_rollout_duration_seconds_count', { outcome: 'promoted' }), 1);
    assert.equal(await pushed('modelctl_rollout_gate_verdicts_total', { gate: 'health', verdict: 'pass' }), 1);
    assert.equal(await pushed('modelctl_rollbacks_total', { reason: 'gate' }), 0);
    assert.ok((await pushed('push_time_seconds'))! > 0, 'the gateway recorded the push of this group');
    assert.doesNotMatch(await pgw.metrics(), /modelctl_[a-z_]+\{[^}]*version=/, 'no version label');
  });

  test('an unreachable Pushgateway (MODELCTL_PUSHGATEWAY_URL) only warns on stderr: exit code and JSON unchanged', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const t0 = Date.now();
    // A judged step (a one-step plan over a serving version is refused): under load, so the gates have data.
    const { stop, load } = steadyLoad(await routerUrl());
    const r = await cli(['deploy', 'sentiment@1.1.0', '--steps', '50,100', '--interval', '3s', '--check-every', '1s', '--json'], { MODELCTL_PUSHGATEWAY_URL: `http://127.0.0.1:${port}` });
    stop.abort();
    await load;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json().outcome, 'promoted');
    assert.match(r.stderr, new RegExp(`Warning: could not push telemetry to the Pushgateway http://127\\.0\\.0\\.1:${port}`));
    assert.equal(r.stderr.match(/Warning: could not push/g)!.length, 1, 'one warning per command');
    assert.ok(Date.now() - t0 < 30_000);
    // The real gateway still holds the first deploy's story.
    assert.equal(await pushed('modelctl_rollout_duration_seconds_count', { outcome: 'promoted' }), 1);
  });

  test('a bad canary rolled back by its gate: rollback counter, outcome, gate verdicts and values, gate→rollback time', async () => {
    const url = await routerUrl();
    const { stop, load } = steadyLoad(url);
    const r = await cli(['deploy', 'sentiment@1.2.0', '--steps', '30,100', '--interval', '20s', '--check-every', '1s', '--pushgateway', pgw.url, '--json']);
    stop.abort();
    await load;
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.equal(r.json().outcome, 'rolled-back');
    assert.equal(await pushed('modelctl_rollbacks_total', { reason: 'gate' }), 1);
    assert.equal(await pushed('modelctl_rollbacks_total', { reason: 'manual' }), 0);
    assert.equal(await pushed('modelctl_rollout_duration_seconds_count', { outcome: 'rolled-back' }), 1);
    assert.equal(await pushed('modelctl_rollout_duration_seconds_count', { outcome: 'promoted' }), undefined, 'PUT replaced the group');
    assert.equal(await pushed('modelctl_rollout_phase', { phase: 'idle' }), 1);
    assert.equal(await pushed('modelctl_rollout_candidate_weight_percent'), 0);
    assert.ok((await pushed('modelctl_rollout_gate_verdicts_total', { gate: 'error-rate', verdict: 'fail' }))! >= 1);
    assert.ok((await pushed('modelctl_rollout_gate_value', { gate: 'error-rate' }))! > 0.05);
    assert.equal(await pushed('modelctl_rollout_gate_to_rollback_seconds_count'), 1);
    assert.ok((await pushed('modelctl_rollout_gate_to_rollback_seconds_sum'))! < 5, 'traffic back on stable within seconds of the failing gate');
  });

  test('modelctl rollback --pushgateway: a manual rollback replaces the group', async () => {
    const r = await cli(['rollback', 'sentiment', '--keep-stable', '--pushgateway', pgw.url, '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual([r.json().from, r.json().to], ['1.1.0', '1.0.0']);
    assert.equal(await pushed('modelctl_rollbacks_total', { reason: 'manual' }), 1);
    assert.equal(await pushed('modelctl_rollbacks_total', { reason: 'gate' }), 0);
    assert.equal(await pushed('modelctl_rollout_phase', { phase: 'idle' }), 1);

    // The same from modelctl.yaml telemetry.pushgateway (no flag, no env): back to 1.1.0.
    const before = (await pushed('push_time_seconds'))!;
    const project = await fresh('project');
    await writeFile(path.join(project, 'modelctl.yaml'), `telemetry:\n  pushgateway: ${pgw.url}\n`);
    await new Promise((r) => setTimeout(r, 20));
    const again = await runCli(['rollback', 'sentiment', '--to', '1.1.0', '--json'], { env, cwd: project, timeoutMs: 60_000 });
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.ok((await pushed('push_time_seconds'))! > before, 'pushed again, configured by modelctl.yaml');
    assert.equal(await pushed('modelctl_rollbacks_total', { reason: 'manual' }), 1);
  });

  test('a malformed Pushgateway URL is bad input (exit 2) before anything starts', async () => {
    const r = await cli(['deploy', 'sentiment@1.1.0', '--pushgateway', 'ftp://nope', '--json']);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.json().error.message, /Pushgateway URL must be http/);
  });
});
