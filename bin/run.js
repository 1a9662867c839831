#!/usr/bin/env node
// modelctl needs Node >= 22 (its CLI framework and Kubernetes client do); say so plainly.
const [major] = process.versions.node.split('.').map(Number);
if (major < 22) {
  process.stderr.write(`modelctl needs Node.js 22 or newer; this is ${process.version}.\n`);
  process.exit(1);
}
const { execute } = await import('@oclif/core');
await execute({ dir: import.meta.url });
