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
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outfile = `${root}dist/src/vendor/oclif-core.cjs`;
await mkdir(`${root}dist/src/vendor`, { recursive: true });

/**
 * An esbuild plugin that rewrites one file of a package as it is bundled: `edit` gets the source and
 * returns the new one. The build fails when `edit` returns the source unchanged, so an upgrade of the
 * package that moves the code cannot silently drop the edit.
 */
const rewrite = (name, filter, edit) => ({
  name,
  setup(b) {
    b.onLoad({ filter }, async ({ path }) => {
      const source = await readFile(path, 'utf8');
      const contents = edit(source);
      if (contents === source) throw new Error(`${name}: ${path} no longer has the code this edit expects; see scripts/bundle-core.mjs`);
      return { contents, loader: 'js', resolveDir: dirname(path) };
    });
  },
});

// oclif's index.js checks at load time that Node satisfies its package.json's `engines`: it loads the
// whole of semver (ranges included, ~25 ms of CPU on a busy 2-core machine: a tenth of `bundle pack`'s
// start-up) and then, bundled, cannot even find its package.json (a dynamic require from
// dist/src/vendor), so the check never ran. bin/run.js checks Node >= 22 itself, first thing.
const noEngineCheck = rewrite('oclif-no-engine-check', /@oclif[\\/]core[\\/]lib[\\/]index\.js$/, (source) =>
  source.replace(/^checkNodeVersion\(\);$/m, '// checkNodeVersion(): bin/run.js checks the Node version (scripts/bundle-core.mjs)'),
);

await build({
  entryPoints: [createRequire(`${root}package.json`).resolve('@oclif/core')],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node22',
  outfile,
  external: ['typescript', 'ts-node'],
  plugins: [noEngineCheck],
  logLevel: 'warning',
  legalComments: 'inline',
});

// zod and yaml, the same way (dist/src/vendor/zod.mjs and yaml.cjs): they read and check bundle.yaml
// and modelctl.yaml, and loading them module by module (zod ~95 files, yaml ~70) cost ~85 and ~45 ms
// of CPU before `bundle pack` could hash its first byte (pre-linked: ~20 and ~10 ms). bin/run.js sends
// imports of `zod` and `yaml` from dist/src (only: a dependency keeps its own copy) to these files.
// The banner names the version bundled; test/unit/vendor.test.ts checks it is node_modules' version
// and that the exports are the same.
//
// zod's error messages in ~45 languages are half of its bundle (~360 KB of 760 KB, ~15 ms to compile
// and run at every start): modelctl speaks English and never calls `z.config(z.locales.…())`, so the
// vendored zod keeps only `z.locales.en` (its default, the messages users see). node_modules' zod, which
// tests and a tsc-only build use, keeps them all.
const englishOnly = rewrite('zod-english-only', /zod[\\/]v4[\\/]locales[\\/]index\.js$/, () => 'export { default as en } from "./en.js";\n');
for (const [name, format, file, plugins] of [
  ['zod', 'esm', 'zod.mjs', [englishOnly]],
  ['yaml', 'cjs', 'yaml.cjs', []],
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
    plugins,
    banner: { js: `/* modelctl vendor: ${name}@${version} */` },
    logLevel: 'warning',
    legalComments: 'inline',
  });
}
