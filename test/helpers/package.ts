import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT, runProcess } from './fixtures.js';

/** The npm on the tests' PATH (the one `npm test` runs with). */
export function npmCli(): string {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, 'npm');
    if (dir && existsSync(candidate)) return candidate;
  }
  throw new Error('npm is not on PATH');
}

/** `npm pack` of the built tree (dist is built by `npm test` first, so prepack's build is skipped). */
export async function packTarball(dest: string): Promise<string> {
  await mkdir(dest, { recursive: true });
  const r = await runProcess(npmCli(), ['pack', '--ignore-scripts', '--json', '--pack-destination', dest]);
  if (r.code !== 0) throw new Error(`npm pack failed:\n${r.stderr}`);
  const [info] = JSON.parse(r.stdout) as Array<{ filename: string }>;
  return path.join(dest, info!.filename);
}

export async function packageVersion(): Promise<string> {
  return (JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * An `npm` for install.sh tests, first on PATH. It stands for the registry, nothing else:
 * `npm install -g --prefix P … modelctl@V` installs the packed tarball with the real npm when V is
 * "published" (in `published`), and otherwise fails exactly as npm does for a version the registry
 * lacks (`npm error code ETARGET … No matching version found`, exit 1). `npm ci` and `npm run build`
 * (install.sh's source build) are recorded and do nothing, because the tree under test is already
 * installed and built; every call is appended to `log`.
 */
export async function fakeNpm(dir: string, opts: { published: Record<string, string>; log: string }): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, 'npm');
  const script = `#!${process.execPath}
const { appendFileSync } = require('node:fs');
const { spawnSync } = require('node:child_process');
const args = process.argv.slice(2);
appendFileSync(${JSON.stringify(opts.log)}, JSON.stringify({ cwd: process.cwd(), args }) + '\\n');
const published = ${JSON.stringify(opts.published)};
if (args[0] === 'ci' || (args[0] === 'run' && args[1] === 'build')) process.exit(0);
if (args[0] === 'install') {
  const spec = args.find((a) => /^modelctl@/.test(a));
  if (!spec) { console.error('fake npm: only modelctl@<version> installs are faked: ' + args.join(' ')); process.exit(99); }
  const version = spec.slice('modelctl@'.length);
  if (!published[version]) {
    console.error('npm error code ETARGET');
    console.error('npm error notarget No matching version found for ' + spec + '.');
    console.error("npm error notarget In most cases you or one of your dependencies are requesting a package version that doesn't exist.");
    process.exit(1);
  }
  const real = args.map((a) => (a === spec ? published[version] : a));
  const r = spawnSync(${JSON.stringify(npmCli())}, [...real, '--prefer-offline'], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
console.error('fake npm: unexpected call: npm ' + args.join(' '));
process.exit(99);
`;
  await writeFile(file, script);
  await chmod(file, 0o755);
  return dir;
}
