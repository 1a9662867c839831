import assert from 'node:assert/strict';
import path from 'node:path';
import { after, test } from 'node:test';
import { runCli, useScratch } from '../helpers/fixtures.js';

/** `bundle init` scaffolds a bundle that deploys as it is: init → push → deploy → it answers. */
const { fresh, cleanup } = useScratch();
let env: NodeJS.ProcessEnv | undefined;
after(async () => {
  if (env) await runCli(['local', 'down', '--forget'], { env });
  await cleanup();
});

test('bundle init, push, deploy on the local runtime: the scaffold serves /predict', async () => {
  const home = await fresh('home');
  env = { MODELCTL_HOME: home, MODELCTL_LOCAL_PORT: '0', MODELCTL_STORE: undefined } as unknown as NodeJS.ProcessEnv;
  const dir = path.join(await fresh('init'), 'hello');
  assert.equal((await runCli(['bundle', 'init', dir, '--name', 'hello'], { env })).code, 0);
  const pushed = await runCli(['bundle', 'push', dir, '--json'], { env });
  assert.equal(pushed.code, 0, pushed.stderr);
  const deployed = await runCli(['deploy', 'hello@0.1.0', '--json'], { env, timeoutMs: 120_000 });
  assert.equal(deployed.code, 0, deployed.stdout + deployed.stderr);
  assert.equal(deployed.json().outcome, 'promoted');
  const status = (await runCli(['local', 'status', '--json'], { env })).json();
  const res = await fetch(`${status.url}/hello/predict`, { method: 'POST', body: JSON.stringify({ text: 'hello there' }) });
  assert.equal(res.status, 200);
  const answer = (await res.json()) as { label: string; score: number; version: string };
  assert.equal(typeof answer.score, 'number');
  assert.ok(['positive', 'negative'].includes(answer.label));
  assert.equal(answer.version, '0.1.0');
});
