import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, test } from 'node:test';
import { CLI, REPO_ROOT, runCli, runProcess } from '../helpers/fixtures.js';

/**
 * bin/run.js loads @oclif/core from one pre-linked file (dist/src/vendor/oclif-core.cjs, made by
 * `npm run build`: scripts/bundle-core.mjs) for start-up speed. What the CLI says must not change:
 * every help page, topic and error is compared with oclif loaded from node_modules, the way it ran
 * before. The list of pages comes from the oclif manifest, so a new command or flag is covered.
 */
const BUNDLED = path.join(REPO_ROOT, 'dist', 'src', 'vendor', 'oclif-core.cjs');

/** The CLI as it ran before the bundle: @oclif/core from node_modules, same root and argv. */
function reference(args: string[]) {
  const code = `const { execute } = await import('@oclif/core'); await execute({ dir: ${JSON.stringify(pathToFileURL(CLI).href)}, args: JSON.parse(process.env.REF_ARGS) });`;
  const env = { ...process.env, MODELCTL_DEBUG: '', MODELCTL_GITHUB: 'off', MODELCTL_CACHE: 'off', REF_ARGS: JSON.stringify(args) };
  return runProcess(process.execPath, ['--input-type=module', '-e', code], { env, cwd: REPO_ROOT });
}

async function sameAsReference(args: string[]): Promise<void> {
  const [ours, ref] = await Promise.all([runCli(args, { env: { MODELCTL_CACHE: 'off' } }), reference(args)]);
  assert.ok(ref.stdout.length + ref.stderr.length > 0, `the reference printed nothing for ${args.join(' ')}`);
  assert.equal(ours.code, ref.code, `exit code of modelctl ${args.join(' ')}`);
  assert.equal(ours.stdout, ref.stdout, `stdout of modelctl ${args.join(' ')}`);
  assert.equal(ours.stderr, ref.stderr, `stderr of modelctl ${args.join(' ')}`);
}

/** Every command and every topic (from the manifest and package.json), as the words a user types. */
function helpPages(): string[][] {
  const manifest = JSON.parse(readFileSync(path.join(REPO_ROOT, 'oclif.manifest.json'), 'utf8')) as { commands: Record<string, unknown> };
  const pjson = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { oclif: { topics: Record<string, unknown> } };
  const ids = new Set<string>(Object.keys(manifest.commands));
  for (const id of ids) for (let i = id.indexOf(':'); i > 0; i = id.indexOf(':', i + 1)) ids.add(id.slice(0, i));
  for (const topic of Object.keys(pjson.oclif.topics)) ids.add(topic);
  return [[], ...[...ids].sort().map((id) => id.split(':'))];
}

describe('start-up: @oclif/core from the build-time bundle', () => {
  test('the build made the bundle, and a run loads no module of @oclif/core from node_modules', async () => {
    assert.ok(existsSync(BUNDLED), `${BUNDLED} is missing: run npm run build`);
    // A preload that lists, at exit, every CommonJS module loaded (require.cache is process-wide).
    const preload = `data:text/javascript,${encodeURIComponent("import { createRequire } from 'node:module'; const r = createRequire(process.cwd() + '/'); process.on('exit', () => process.stderr.write('LOADED ' + JSON.stringify(Object.values(r.cache).map((m) => m.filename)) + '\\n'));")}`;
    const r = await runProcess(process.execPath, ['--import', preload, CLI, 'bundle', '--help'], { cwd: REPO_ROOT });
    assert.equal(r.code, 0, r.stderr);
    const loaded = JSON.parse(/LOADED (.*)/.exec(r.stderr)![1]!) as string[];
    assert.ok(loaded.includes(BUNDLED), 'the bundled @oclif/core was loaded');
    assert.deepEqual(loaded.filter((f) => f.includes(`${path.sep}@oclif${path.sep}core${path.sep}`)), [], 'a second copy of @oclif/core was loaded');
  });

  test('every help page (root, each topic, each command) is what oclif from node_modules renders', { timeout: 300_000 }, async () => {
    const pages = helpPages();
    assert.ok(pages.length > 20, `only ${pages.length} help pages found`);
    for (const words of pages) await sameAsReference([...words, '--help']);
  });

  test('topics without a command, unknown commands and flags, and errors are unchanged', { timeout: 120_000 }, async () => {
    for (const args of [
      ['bundle'],
      ['nosuch'],
      ['bundle', 'nosuch'],
      ['bundle', 'pack', '--bogus', '.'],
      ['bundle', 'pack'],
      ['bundle', 'pack', '/nonexistent/modelctl-startup-test', '--json'],
      ['bundle', 'pack', '/nonexistent/modelctl-startup-test'],
      ['help', 'bundle', 'push'],
      ['deploy', '-h'],
    ]) {
      await sameAsReference(args);
    }
  });
});
