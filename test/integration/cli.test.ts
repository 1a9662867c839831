import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { bundleYaml, runCli, sampleBundle, useScratch, writeTree } from '../helpers/fixtures.js';

const { fresh, bundle, cleanup } = useScratch();
after(cleanup);

describe('the CLI contract', () => {
  test('help teaches: topics, commands, examples', async () => {
    const top = await runCli(['--help']);
    assert.equal(top.code, 0);
    assert.match(top.stdout, /bundle\s+Pack, push, pull/);
    const push = await runCli(['bundle', 'push', '--help']);
    assert.equal(push.code, 0);
    assert.match(push.stdout, /EXAMPLES/);
    assert.match(push.stdout, /--store/);
    assert.match(push.stdout, /MODELCTL_STORE|file:\/\//);
  });

  test('bad input exits 2 with a message naming the file, line and field; --json errors are one JSON document', async () => {
    const dir = await bundle({ ...sampleBundle(), 'bundle.yaml': bundleYaml('sentiment', 'v1.4') });
    const human = await runCli(['bundle', 'pack', dir]);
    assert.equal(human.code, 2);
    assert.equal(human.stdout, '');
    assert.match(human.stderr, /bundle\.yaml:2: version: must be a full semver version/);
    assert.doesNotMatch(human.stderr, /\n\s+at /, 'no stack trace');

    const json = await runCli(['bundle', 'pack', dir, '--json']);
    assert.equal(json.code, 2);
    const err = json.json().error;
    assert.equal(err.code, 'usage');
    assert.equal(err.issues[0].field, 'version');
    assert.equal(err.issues[0].line, 2);

    const unknownFlag = await runCli(['bundle', 'pack', dir, '--bogus']);
    assert.equal(unknownFlag.code, 2);
    const badRef = await runCli(['bundle', 'pull', 'sentiment', '-o', path.join(await fresh('pull'), 'x'), '--json']);
    assert.equal(badRef.code, 2);
    assert.match(badRef.json().error.hint, /<name>@<version>/);
  });

  test('not found exits 8; list is newest first by semver', async () => {
    const home = await fresh('home');
    const env = { MODELCTL_HOME: home, MODELCTL_STORE: '' };
    delete (env as Record<string, string | undefined>).MODELCTL_STORE;
    const missing = await runCli(['bundle', 'pull', 'sentiment@9.9.9', '-o', path.join(home, 'out'), '--json'], { env });
    assert.equal(missing.code, 8);
    assert.equal(missing.json().error.code, 'not-found');

    const dir = await bundle(sampleBundle());
    for (const v of ['1.9.0', '1.10.0', '1.9.0-rc.1', '0.1.0']) {
      const r = await runCli(['bundle', 'push', dir, '--version', v, '--json'], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.json().store, `file://${home}/store`, 'the default store lives under MODELCTL_HOME');
    }
    const list = (await runCli(['bundle', 'list', '--json'], { env })).json();
    assert.deepEqual(list.map((r: { version: string }) => r.version), ['1.10.0', '1.9.0', '1.9.0-rc.1', '0.1.0']);
  });

  test('the store comes from --store, else MODELCTL_STORE, else modelctl.yaml (found walking up)', async () => {
    const project = await fresh('project');
    await writeTree(project, { 'modelctl.yaml': 'store: file://./team-store\n', 'models/sentiment/.keep': '' });
    const dir = await bundle(sampleBundle());
    const cwd = path.join(project, 'models/sentiment');
    const viaYaml = await runCli(['bundle', 'push', dir, '--json'], { cwd, env: { MODELCTL_STORE: undefined } as never });
    assert.equal(viaYaml.json().store, `file://${project}/team-store`);
    const viaEnv = await runCli(['bundle', 'push', dir, '--json'], { cwd, env: { MODELCTL_STORE: `file://${project}/env-store` } });
    assert.equal(viaEnv.json().store, `file://${project}/env-store`);
    const viaFlag = await runCli(['bundle', 'push', dir, '--json', '--store', `file://${project}/flag-store`], { cwd, env: { MODELCTL_STORE: `file://${project}/env-store` } });
    assert.equal(viaFlag.json().store, `file://${project}/flag-store`);

    await writeFile(path.join(project, 'modelctl.yaml'), 's3:\n  pathStyle: maybe\n');
    const bad = await runCli(['bundle', 'list', '--json'], { cwd, env: { MODELCTL_STORE: undefined } as never });
    assert.equal(bad.code, 2);
    assert.match(bad.json().error.message, /modelctl\.yaml:2: s3\.pathStyle: expected true or false/);
  });

  test('init scaffolds a bundle that packs; pack --output writes an archive that push, verify and inspect accept', async () => {
    const root = await fresh('init');
    const dir = path.join(root, 'ranker');
    const init = await runCli(['bundle', 'init', dir, '--json']);
    assert.equal(init.code, 0, init.stderr);
    const archive = path.join(root, 'ranker.tar');
    const packed = await runCli(['bundle', 'pack', dir, '--output', archive, '--json']);
    assert.equal(packed.code, 0, packed.stderr);
    const p = packed.json();
    assert.equal(p.name, 'ranker');
    assert.deepEqual(p.components.map((c: { name: string }) => c.name), ['config', 'preprocessing', 'prompts', 'serving', 'weights']);

    const inspect = await runCli(['bundle', 'inspect', archive, '--json']);
    assert.equal(inspect.json().digest, p.digest);
    const verify = await runCli(['bundle', 'verify', archive, '--json']);
    assert.equal(verify.code, 0, verify.stderr);
    assert.equal(verify.json().kind, 'archive');
    const store = `file://${root}/store`;
    const pushed = await runCli(['bundle', 'push', archive, '--store', store, '--json']);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.equal(pushed.json().digest, p.digest);
    const inspectRef = await runCli(['bundle', 'inspect', 'ranker@0.1.0', '--store', store, '--json']);
    assert.equal(inspectRef.json().manifest.name, 'ranker');
    const wrongDigest = await runCli(['bundle', 'verify', dir, '--digest', `sha256:${'0'.repeat(64)}`]);
    assert.equal(wrongDigest.code, 6);
    const packArchive = await runCli(['bundle', 'pack', archive, '--json']);
    assert.equal(packArchive.code, 2);
    assert.match(packArchive.json().error.message, /is a file; `bundle pack` takes a bundle directory/);
  });
});
