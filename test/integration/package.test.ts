import assert from 'node:assert/strict';
import path from 'node:path';
import { after, test } from 'node:test';
import { runProcess as exec, useScratch } from '../helpers/fixtures.js';
import { npmCli, packageVersion, packTarball } from '../helpers/package.js';

/**
 * The npm package as a user gets it: `npm pack`, installed with `npm install -g` into an empty
 * prefix, run from there, outside the repository (cwd and HOME elsewhere). Dependencies come from
 * the npm cache when it has them, else from the registry.
 */
const { fresh, cleanup } = useScratch();
after(cleanup);

test('the packed package installs and runs on a clean prefix: --version, bundle --help, demo', { timeout: 90_000 }, async () => {
  const version = await packageVersion();
  const tarball = await packTarball(await fresh('pkg'));
  const prefix = await fresh('pkg-prefix');
  const elsewhere = await fresh('pkg-cwd');
  const install = await exec(npmCli(), ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', tarball], { cwd: elsewhere, timeoutMs: 60_000 });
  assert.equal(install.code, 0, install.stderr);
  process.stderr.write(`# npm install -g of the packed tarball: ${install.ms} ms\n`);
  const bin = path.join(prefix, 'bin', 'modelctl');
  const env = { ...process.env, HOME: elsewhere, MODELCTL_HOME: path.join(elsewhere, '.modelctl'), MODELCTL_GITHUB: 'off', MODELCTL_LOCAL_PORT: '0' };
  const v = await exec(bin, ['--version'], { cwd: elsewhere, env });
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, new RegExp(`^modelctl/${version.replaceAll('.', '\\.')} `));
  const help = await exec(bin, ['bundle', '--help'], { cwd: elsewhere, env });
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /bundle push/);
  // The demo packs bundles/example from the installed package (it failed with ENOENT when the
  // package left the example out).
  const demo = await exec(bin, ['demo', '--json'], { cwd: elsewhere, env, timeoutMs: 60_000 });
  assert.equal(demo.code, 0, demo.stdout + demo.stderr);
  const report = JSON.parse(demo.stdout) as { ok: boolean; chapters: Array<{ ok: boolean }> };
  assert.equal(report.ok, true, demo.stdout.slice(0, 4000) + demo.stderr.slice(-2000));
  assert.ok(report.chapters.length >= 3);
});
