// Build step (`npm run build`): @oclif/core as one CommonJS file, dist/src/vendor/oclif-core.cjs.
//
// Why: every modelctl command starts by loading @oclif/core, ~170 CommonJS modules whose path
// resolution (stat calls up node_modules), wrapping and compiling cost ~45 ms of CPU per run: a third
// of `modelctl bundle --help`. One pre-linked file loads in a fraction of that. bin/run.js loads it
// and enters it in the require cache under the path `@oclif/core` resolves to, for our commands and
// for the oclif plugins alike, so one copy of oclif is loaded (two would break `instanceof` and double the
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

// zod and yaml, the same way (dist/src/vendor/zod.mjs and yaml.cjs): they read and check bundle.yaml
// and modelctl.yaml, and loading them module by module (zod ~95 files, yaml ~70) cost ~85 and ~45 ms
// of CPU before `bundle pack` could hash its first byte (pre-linked: ~20 and ~10 ms). bin/run.js sends
// imports of `zod` and `yaml` from dist/src (only: a dependency keeps its own copy) to these files.
// The banner names the version bundled; test/unit/vendor.test.ts checks it is node_modules' version
// and that the exports are the same.
for (const [name, format, file] of [
  ['zod', 'esm', 'zod.mjs'],
  ['yaml', 'cjs', 'yaml.cjs'],
]) {
  const { version } = createRequire(`${root}package.json`)(`${name}/package.json`);
  await build({
    // The entry `import` resolves to from our code: zod's ESM build, yaml's node (CommonJS) build.
    entryPoints: [fileURLToPath(import.meta.resolve(name))],
    bundle: true,
    platform: 'node',
    format,
    target: 'node22',
    outfile: `${root}dist/src/vendor/${file}`,
    banner: { js: `/* modelctl vendor: ${name}@${version} */` },
    logLevel: 'warning',
    legalComments: 'inline',
  });
}
