import assert from 'node:assert/strict';
import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { REPO_ROOT, runCli, useScratch } from '../helpers/fixtures.js';

/**
 * A shadow compares the candidate's answers with stable's only when the bundle says how
 * (serve.agreement / agreementField). Without it, shadow agreement has nothing to count: the
 * default gate used to stay inconclusive and hold every such shadow for a human. Now the default
 * gate is left out with a warning, and a shadow-agreement gate the user asked for is refused.
 */
const { fresh, cleanup } = useScratch();
let env: NodeJS.ProcessEnv;
let cwd: string;
const cli = (args: string[]) => runCli(args, { env, cwd, timeoutMs: 120_000 });

before(async () => {
  const home = await fresh('shadow-comparable-home');
  cwd = await fresh('shadow-comparable-project');
  env = { MODELCTL_HOME: home, MODELCTL_LOCAL_PORT: '0', MODELCTL_STORE: undefined } as unknown as NodeJS.ProcessEnv;
  const example = path.join(REPO_ROOT, 'bundles/example');
  const plain = path.join(await fresh('no-agreement'), 'bundle');
  await cp(example, plain, { recursive: true });
  const yaml = await readFile(path.join(plain, 'bundle.yaml'), 'utf8');
  const stripped = yaml.replace(/^\s*agreementField:.*\n/m, '');
  assert.notEqual(stripped, yaml, 'the example declares agreementField');
  await writeFile(path.join(plain, 'bundle.yaml'), stripped);
  for (const [dir, version] of [[example, '1.0.0'], [plain, '2.0.0']] as const) {
    const r = await cli(['bundle', 'push', dir, '--version', version, '--json']);
    assert.equal(r.code, 0, r.stderr);
  }
});

after(cleanup);

const gateNames = (plan: { gates: Array<{ name: string }> }) => plan.gates.map((g) => g.name);

test('a shadow of a bundle that declares how answers compare keeps the shadow-agreement gate', async () => {
  const r = await cli(['deploy', 'sentiment@1.0.0', '--shadow', '10%', '--dry-run', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(gateNames(r.json()).includes('shadow-agreement'), r.stdout);
  assert.doesNotMatch(r.stderr, /does not say how its answers compare/);
});

test('without serve.agreement/agreementField the default shadow-agreement gate is left out, and the user is told', async () => {
  const r = await cli(['deploy', 'sentiment@2.0.0', '--shadow', '10%', '--dry-run', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const names = gateNames(r.json());
  assert.ok(!names.includes('shadow-agreement'), `gates: ${names.join(', ')}`);
  assert.ok(names.includes('error-rate'), `the shadow is still judged on errors: ${names.join(', ')}`);
  assert.match(r.stderr, /sentiment@2\.0\.0 does not say how its answers compare.*errors and latency only.*serve\.agreementField/s);
  // No shadow, nothing to say.
  const canary = await cli(['deploy', 'sentiment@2.0.0', '--dry-run', '--json']);
  assert.equal(canary.code, 0, canary.stderr);
  assert.doesNotMatch(canary.stderr, /does not say how its answers compare/);
});

test('a shadow-agreement gate the user asked for is refused (exit 2), naming the gate and what to add', async () => {
  await writeFile(
    path.join(cwd, 'modelctl.yaml'),
    'rollout:\n  gates:\n    - {name: answers-agree, metric: shadow-agreement, min: 0.95}\n    - {name: errors, metric: error-rate, max: 0.01}\n',
  );
  try {
    const r = await cli(['deploy', 'sentiment@2.0.0', '--shadow', '10%', '--dry-run', '--json']);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    const err = r.json().error;
    assert.match(err.message, /gate "answers-agree" measures shadow-agreement, but sentiment@2\.0\.0 does not say how its answers compare/);
    assert.match(err.hint, /serve\.agreementField/);
    const ok = await cli(['deploy', 'sentiment@1.0.0', '--shadow', '10%', '--dry-run', '--json']);
    assert.equal(ok.code, 0, ok.stderr);
  } finally {
    await writeFile(path.join(cwd, 'modelctl.yaml'), '');
  }
});
