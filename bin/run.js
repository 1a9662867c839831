#!/usr/bin/env node
// modelctl needs Node >= 22 (its CLI framework and Kubernetes client do); say so plainly.
const [major] = process.versions.node.split('.').map(Number);
if (major < 22) {
  process.stderr.write(`modelctl needs Node.js 22 or newer; this is ${process.version}.\n`);
  process.exit(1);
}

// Start-up is part of every command (CI steps, emergency rollbacks): cache compiled code across
// runs, and answer --version without loading the CLI framework at all.
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v' || argv[0] === 'version')) {
  const { readFileSync } = await import('node:fs');
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  process.stdout.write(`modelctl/${version} ${process.platform}-${process.arch} node-${process.version}\n`);
  process.exit(0);
}

// `modelctl <topic/command> --help` as rendered at build time (bin/help-cache.js says when oclif
// would print the same bytes); else oclif renders it below.
const help =
  argv.at(-1) === '--help' && argv.slice(0, -1).every((w) => /^[a-z][a-z0-9-]*$/.test(w))
    ? (await import('./help-cache.js')).helpPage((await import('node:url')).fileURLToPath(new URL('..', import.meta.url)), argv.slice(0, -1))
    : undefined;
if (help !== undefined) {
  process.stdout.write(help);
  process.exit(0);
}

// `bundle pack` is hashing on every core: its worker threads boot now, on the other cores, while this
// thread loads the CLI framework and the bundle.yaml schema (src/bundle/hash.ts, prestartHashWorkers).
if (argv[0] === 'bundle' && argv[1] === 'pack' && !argv.includes('--help') && !argv.includes('-h')) {
  (await import('../dist/src/bundle/hash.js')).prestartHashWorkers();
}

// @oclif/core pre-linked into one file at build time (scripts/bundle-core.mjs): loading its ~170
// modules one by one was a third of the start-up of every command. The bundle is loaded first and
// entered in the module cache under the path `@oclif/core` resolves to, so every later import or
// require of it (our commands, the oclif plugins) gets this one copy (a resolve hook did the same
// but cost a JS call on every module resolution). A build without the bundle loads node_modules'.
const { createRequire } = await import('node:module');
const require = createRequire(import.meta.url);
const bundled = new URL('../dist/src/vendor/oclif-core.cjs', import.meta.url);
if ((await import('node:fs')).existsSync(bundled)) {
  const { fileURLToPath } = await import('node:url');
  require(fileURLToPath(bundled));
  require.cache[require.resolve('@oclif/core')] = require.cache[fileURLToPath(bundled)];
}
// zod and yaml pre-linked the same way (scripts/bundle-core.mjs): ~165 modules fewer to load before a
// command reads its YAML. Only imports from our own code (dist/src) are sent there: a dependency that
// imports `yaml` may depend on another version. One string test per resolution; the hook is not
// installed at all in a build without the files.
const vendor = new URL('../dist/src/vendor/', import.meta.url);
const vendored = { zod: new URL('zod.mjs', vendor).href, yaml: new URL('yaml.cjs', vendor).href };
// module.registerHooks came with Node 22.15 / 23.5: on an older Node 22 the copies in node_modules load.
const { registerHooks } = await import('node:module');
if (registerHooks && (await import('node:fs')).existsSync(new URL('zod.mjs', vendor))) {
  const ours = new URL('../dist/src/', import.meta.url).href;
  registerHooks({
    resolve: (specifier, context, nextResolve) =>
      Object.hasOwn(vendored, specifier) && context.parentURL?.startsWith(ours)
        ? { url: vendored[specifier], shortCircuit: true }
        : nextResolve(specifier, context),
  });
}
const { execute } = await import('@oclif/core');
await execute({ dir: import.meta.url });
