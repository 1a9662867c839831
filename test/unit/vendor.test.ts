/**
 * zod and yaml pre-linked at build time (scripts/bundle-core.mjs → dist/src/vendor/zod.mjs, yaml.cjs)
 * and loaded by bin/run.js in place of node_modules' copies: the vendored files must be the versions
 * node_modules holds, with the same exports, and the CLI must really load them (and not the
 * node_modules copies too: two zods would break `instanceof ZodError`).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, test } from 'node:test';
import { CLI, REPO_ROOT, runProcess, useScratch } from '../helpers/fixtures.js';

const VENDOR = path.join(REPO_ROOT, 'dist', 'src', 'vendor');
const FILES = { zod: 'zod.mjs', yaml: 'yaml.cjs' } as const;
const scratch = useScratch();
after(() => scratch.cleanup());

for (const [name, file] of Object.entries(FILES)) {
  test(`vendored ${name} is node_modules' version with the same exports`, async () => {
    const vendored = path.join(VENDOR, file);
    const banner = readFileSync(vendored, 'utf8').split('\n', 1)[0];
    const { version } = createRequire(path.join(REPO_ROOT, 'package.json'))(`${name}/package.json`) as { version: string };
    assert.equal(banner, `/* modelctl vendor: ${name}@${version} */`, `${vendored} is stale: run npm run build`);
    const ours = Object.keys(await import(pathToFileURL(vendored).href)).sort();
    const theirs = Object.keys(await import(name)).sort();
    assert.deepEqual(ours, theirs);
  });
}

test('bin/run.js loads zod and yaml from the vendored files only, and pack still validates bundle.yaml through them', async () => {
  // A preload hook registered before bin/run.js's own sees the URLs its resolve hook chose.
  const preload = `import { registerHooks } from 'node:module';
const seen = new Set();
registerHooks({ load(url, ctx, next) { if (/\\/(zod|yaml)[./]/.test(url)) seen.add(url.includes('/node_modules/') ? 'node_modules' : url.slice(url.lastIndexOf('/') + 1)); return next(url, ctx); } });
process.on('exit', () => process.stderr.write('LOADED ' + JSON.stringify([...seen].sort()) + '\\n'));`;
  const importFlag = `data:text/javascript,${encodeURIComponent(preload)}`;
  const good = await scratch.bundle({ 'bundle.yaml': 'name: vend\nversion: 1.0.0\ncomponents:\n  weights: [w.bin]\n  prompts: []\n  preprocessing: []\n  config: []\n', 'w.bin': 'x' });
  const ok = await runProcess(process.execPath, ['--import', importFlag, CLI, 'bundle', 'pack', good, '--json'], { env: { ...process.env, MODELCTL_CACHE: 'off' } });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).name, 'vend');
  assert.match(ok.stderr, /LOADED \["yaml\.cjs","zod\.mjs"\]/);

  // A schema error still comes out of the vendored zod as a usage error (exit 2) naming the field.
  const bad = await scratch.bundle({ 'bundle.yaml': 'name: vend\nversion: not-semver\ncomponents:\n  weights: [w.bin]\n  prompts: []\n  preprocessing: []\n  config: []\n', 'w.bin': 'x' });
  const refused = await runProcess(process.execPath, ['--import', importFlag, CLI, 'bundle', 'pack', bad], { env: { ...process.env, MODELCTL_CACHE: 'off' } });
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /version/);
  assert.doesNotMatch(refused.stderr, /node_modules/);
});

test('the vendored zod keeps only English messages, and they are node_modules zod\'s word for word', async () => {
  type Zod = typeof import('zod');
  const vendored = (await import(pathToFileURL(path.join(VENDOR, FILES.zod)).href)) as Zod;
  const original = await import('zod');
  assert.deepEqual(Object.keys(vendored.locales), ['en']);
  assert.ok(Object.keys(original.locales).length > 1, 'node_modules zod has its other languages');
  // The default messages (the ones a user reads when bundle.yaml is wrong) come out the same.
  const schema = (z: Zod) => z.object({ version: z.string(), replicas: z.number().int().min(1), kind: z.enum(['a', 'b']) });
  const input = { version: 3, replicas: 0.5, kind: 'c' };
  const messages = (z: Zod) => schema(z).safeParse(input).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  assert.deepEqual(messages(vendored), messages(original));
  assert.equal(messages(vendored)?.length, 3);
});

test('the vendored oclif skips its own engine check (bin/run.js checks the Node version first)', () => {
  // The check was the only user of semver in oclif: with the call gone esbuild leaves semver out.
  // (The build itself fails when the edit no longer matches oclif's code.)
  const bundle = readFileSync(path.join(VENDOR, 'oclif-core.cjs'), 'utf8');
  assert.doesNotMatch(bundle, /checkNodeVersion\(\)/);
  assert.doesNotMatch(bundle, /SEMVER_SPEC_VERSION/, 'semver is bundled again: something in oclif loads it at start-up');
  const run = readFileSync(path.join(REPO_ROOT, 'bin', 'run.js'), 'utf8');
  assert.match(run, /major < 22/);
});
