// Build step (`npm run build`, after `oclif manifest` and scripts/bundle-core.mjs): every help page
// (root, topics, commands) as oclif renders it when stdout is not a terminal, into
// dist/src/vendor/help.json, for bin/run.js to print `modelctl <words> --help` without loading the
// CLI framework. Each page is rendered by the real CLI (`node bin/run.js <words> --help`), so the
// text is oclif's own. bin/run.js serves a page only where oclif would print these exact bytes
// (not a terminal, no OCLIF_COLUMNS, no colour, no theme, no DEBUG) and only while the manifest and
// package.json it was rendered from are unchanged (their FNV-1a hashes are kept here); anything else
// goes through oclif. test/integration/startup.test.ts compares every page with oclif's.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fnv1a } from '../bin/help-cache.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const manifestText = readFileSync(path.join(root, 'oclif.manifest.json'), 'utf8');
const pjsonText = readFileSync(path.join(root, 'package.json'), 'utf8');
const ids = new Set(Object.keys(JSON.parse(manifestText).commands));
for (const id of [...ids]) for (let i = id.indexOf(':'); i > 0; i = id.indexOf(':', i + 1)) ids.add(id.slice(0, i));
for (const topic of Object.keys(JSON.parse(pjsonText).oclif.topics ?? {})) ids.add(topic);
const pages = ['', ...[...ids].sort()];
const target = path.join(root, 'dist', 'src', 'vendor', 'help.json');
rmSync(target, { force: true }); // the pages are rendered by oclif, never served from a previous build

// A clean environment: no terminal, no colour, no theme file (an empty HOME), no debug output.
const home = mkdtempSync(path.join(tmpdir(), 'modelctl-help-'));
const env = { PATH: process.env.PATH ?? '', HOME: home, NO_COLOR: '1', MODELCTL_GITHUB: 'off' };
const render = (id) =>
  new Promise((resolve, reject) => {
    const words = id === '' ? [] : id.split(':');
    const child = spawn(process.execPath, [path.join(root, 'bin', 'run.js'), ...words, '--help'], { env, cwd: home, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 && err === '' ? resolve(out) : reject(new Error(`modelctl ${words.join(' ')} --help: exit ${code}, stderr: ${err}`))));
  });
try {
  const rendered = {};
  // Two at a time: the build machine's cores, without starving it.
  for (let i = 0; i < pages.length; i += 2) {
    const batch = pages.slice(i, i + 2);
    const texts = await Promise.all(batch.map(render));
    batch.forEach((id, j) => (rendered[id] = texts[j]));
  }
  const out = { manifest: fnv1a(manifestText), packageJson: fnv1a(pjsonText), pages: rendered };
  writeFileSync(target, JSON.stringify(out));
} finally {
  rmSync(home, { recursive: true, force: true });
}
