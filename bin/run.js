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

// @oclif/core pre-linked into one file at build time (scripts/bundle-core.mjs): loading its ~170
// modules one by one was a third of the start-up of every command. The resolve hook points every
// `@oclif/core` import and require (ours and the oclif plugins') at that one copy. A build without
// it, or a Node without module.registerHooks (before 22.15), loads @oclif/core from node_modules.
const { registerHooks } = await import('node:module');
const core = new URL('../dist/src/vendor/oclif-core.cjs', import.meta.url);
if (registerHooks && (await import('node:fs')).existsSync(core)) {
  registerHooks({
    resolve: (specifier, context, next) =>
      specifier === '@oclif/core' ? { url: core.href, format: 'commonjs', shortCircuit: true } : next(specifier, context),
  });
}
const { execute } = await import('@oclif/core');
await execute({ dir: import.meta.url });
