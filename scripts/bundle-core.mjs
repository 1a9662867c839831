// Build step (`npm run build`): @oclif/core as one CommonJS file, dist/src/vendor/oclif-core.cjs.
//
// Why: every modelctl command starts by loading @oclif/core, ~170 CommonJS modules whose path
// resolution (stat calls up node_modules), wrapping and compiling cost ~45 ms of CPU per run: a third
// of `modelctl bundle --help`. One pre-linked file loads in a fraction of that. bin/run.js points the
// bare specifier `@oclif/core` at this file with a module resolve hook, for our commands and for the
// oclif plugins alike, so one copy of oclif is loaded (two would break `instanceof` and double the
// cost). Without this file (a tsc-only build) bin/run.js loads @oclif/core from node_modules as before.
//
// TypeScript and ts-node stay external: oclif requires them only to run .ts commands in development.
import { build } from 'esbuild';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outfile = `${root}dist/src/vendor/oclif-core.cjs`;
await mkdir(`${root}dist/src/vendor`, { recursive: true });
await build({
  entryPoints: [createRequire(`${root}package.json`).resolve('@oclif/core')],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node22',
  outfile,
  external: ['typescript', 'ts-node'],
  logLevel: 'warning',
  legalComments: 'inline',
});
