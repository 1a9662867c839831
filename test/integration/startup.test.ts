import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, test } from 'node:test';
import { CLI, REPO_ROOT, runCli, runProcess, useScratch } from '../helpers/fixtures.js';

const { fresh, cleanup } = useScratch();
after(cleanup);

/**
 * Start-up speed, two ways, neither allowed to change what the CLI says:
 * - bin/run.js loads @oclif/core from one pre-linked file (dist/src/vendor/oclif-core.cjs, made by
 *   `npm run build`: scripts/bundle-core.mjs);
 * - `<words> --help` is printed from pages rendered at build time (dist/src/vendor/help.json,
 *   scripts/render-help.mjs) when oclif would print the same bytes (bin/help-cache.js).
 * Every help page, topic and error is compared with oclif loaded from node_modules, the way it ran
 * before. The list of pages comes from the oclif manifest, so a new command or flag is covered.
 */
const BUNDLED = path.join(REPO_ROOT, 'dist', 'src', 'vendor', 'oclif-core.cjs');

/** The CLI as it ran before the bundle: @oclif/core from node_modules, same root and argv. */
function reference(args: string[], extraEnv: NodeJS.ProcessEnv = {}) {
  const code = `const { execute } = await import('@oclif/core'); await execute({ dir: ${JSON.stringify(pathToFileURL(CLI).href)}, args: JSON.parse(process.env.REF_ARGS) });`;
  const env = { ...process.env, MODELCTL_DEBUG: '', MODELCTL_GITHUB: 'off', MODELCTL_CACHE: 'off', ...extraEnv, REF_ARGS: JSON.stringify(args) };
  return runProcess(process.execPath, ['--input-type=module', '-e', code], { env, cwd: REPO_ROOT });
}

async function sameAsReference(args: string[], env: NodeJS.ProcessEnv = {}): Promise<void> {
  const [ours, ref] = await Promise.all([runCli(args, { env: { MODELCTL_CACHE: 'off', ...env } }), reference(args, env)]);
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

/** Run the CLI with a preload that lists, at exit, every CommonJS module loaded (require.cache is process-wide). */
async function loadedModules(cli: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const preload = `data:text/javascript,${encodeURIComponent("import { createRequire } from 'node:module'; const r = createRequire(process.cwd() + '/'); process.on('exit', () => process.stderr.write('LOADED ' + JSON.stringify(Object.values(r.cache).map((m) => m.filename)) + '\\n'));")}`;
  const r = await runProcess(process.execPath, ['--import', preload, cli, ...args], { cwd: REPO_ROOT, env: { ...process.env, MODELCTL_GITHUB: 'off', ...env } });
  const m = /LOADED (.*)\n/.exec(r.stderr);
  assert.ok(m, r.stderr);
  return { code: r.code, stdout: r.stdout, stderr: r.stderr.replace(m[0], ''), loaded: JSON.parse(m[1]!) as string[] };
}
/**
 * A plain pipe: none of the variables that make oclif's colour library (ansis) colour a pipe — a CI
 * service (CI, TF_BUILD, TEAMCI*), COLORTERM, FORCE_COLOR. Where one is set (as on a CI machine) oclif
 * colours flag values, so the build-time pages (plain) are rightly not served; the tests that expect
 * them served say so with this environment.
 */
function plainPipe(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const key of Object.keys(process.env)) if (['CI', 'COLORTERM', 'FORCE_COLOR', 'TF_BUILD'].includes(key) || key.startsWith('TEAMCI')) env[key] = undefined;
  return env;
}
const oclifLoaded = (loaded: string[]) => loaded.some((f) => f.endsWith('oclif-core.cjs') || f.includes(`${path.sep}@oclif${path.sep}core${path.sep}`));

describe('start-up: @oclif/core from the build-time bundle, help pages from the build', () => {
  test('the build made the bundle, and a run loads no module of @oclif/core from node_modules', async () => {
    assert.ok(existsSync(BUNDLED), `${BUNDLED} is missing: run npm run build`);
    const { code, stderr, loaded } = await loadedModules(CLI, ['bundle', 'pack', '/nonexistent/modelctl-startup-test', '--json']);
    assert.equal(code, 2, stderr);
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

  test('`<words> --help` piped is served from the build without loading oclif; a terminal width, colour or a theme go through oclif', { timeout: 120_000 }, async () => {
    const fast = await loadedModules(CLI, ['bundle', '--help'], plainPipe());
    assert.equal(fast.code, 0);
    assert.match(fast.stdout, /bundle push/);
    assert.equal(oclifLoaded(fast.loaded), false, 'oclif was loaded for a page rendered at build time');
    const theme = await fresh('theme');
    writeFileSync(path.join(theme, 'theme.json'), JSON.stringify({ flag: 'red', bin: 'blue' }));
    for (const env of [{ OCLIF_COLUMNS: '132' }, { OCLIF_COLUMNS: '40' }, { FORCE_COLOR: '1' }, { CI: 'true' }, { COLORTERM: 'truecolor' }, { MODELCTL_CONFIG_DIR: theme }]) {
      const slow = await loadedModules(CLI, ['bundle', 'push', '--help'], { ...plainPipe(), ...env });
      assert.ok(oclifLoaded(slow.loaded), `oclif rendered the page with ${JSON.stringify(env)}`);
      await sameAsReference(['bundle', 'push', '--help'], env);
      await sameAsReference(['--help'], env);
    }
  });

  test('a manifest changed after the build (new flag or text): the page comes from oclif, not the stale build', async () => {
    // A copy of the CLI (as the bench makes) whose manifest says something the rendered pages do not.
    const dir = await fresh('stale');
    cpSync(path.join(REPO_ROOT, 'bin'), path.join(dir, 'bin'), { recursive: true });
    cpSync(path.join(REPO_ROOT, 'dist', 'src'), path.join(dir, 'dist', 'src'), { recursive: true, filter: (f) => !f.endsWith('.map') });
    cpSync(path.join(REPO_ROOT, 'package.json'), path.join(dir, 'package.json'));
    symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
    const manifest = JSON.parse(readFileSync(path.join(REPO_ROOT, 'oclif.manifest.json'), 'utf8')) as { commands: Record<string, { summary?: string }> };
    const copied = path.join(dir, 'bin', 'run.js');
    // Unchanged copy: served from the build.
    writeFileSync(path.join(dir, 'oclif.manifest.json'), readFileSync(path.join(REPO_ROOT, 'oclif.manifest.json')));
    assert.equal(oclifLoaded((await loadedModules(copied, ['bundle', 'pack', '--help'], plainPipe())).loaded), false);
    manifest.commands['bundle:pack']!.summary = 'A summary written after the build.';
    writeFileSync(path.join(dir, 'oclif.manifest.json'), JSON.stringify(manifest));
    const r = await loadedModules(copied, ['bundle', 'pack', '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /A summary written after the build\./);
    assert.ok(oclifLoaded(r.loaded));
  });
});
