import path from 'node:path';
import { loadYamlFile } from '../../core/yaml-file.js';
import { serveSpecSchema, type ServeSpec } from '../../bundle/serve.js';
import { BUNDLE_FILE, bundleSpecSchema } from '../../bundle/spec.js';
import { UsageError } from '../../core/errors.js';

/** bundle.yaml with its serve section parsed to the runtime's form (defaults applied). */
const bundleWithServe = bundleSpecSchema.extend({ serve: serveSpecSchema.optional() });

/** Read and check the serve section of the bundle in `bundleDir` (UsageError naming file, line and field). */
export async function loadServeSpec(bundleDir: string): Promise<ServeSpec> {
  const file = path.join(bundleDir, BUNDLE_FILE);
  const spec = await loadYamlFile(file, bundleWithServe, 'bundle file');
  if (!spec.serve) {
    throw new UsageError(`${spec.name}@${spec.version} cannot run on the local runtime: ${file} has no serve section`, {
      hint: 'add e.g. `serve: {command: [node, serve.mjs], readinessPath: /healthz}` to bundle.yaml, push a new version and deploy it',
    });
  }
  return spec.serve;
}

/** The value at a dotted path of a parsed JSON answer (undefined when absent). */
export function fieldOf(body: unknown, field: string): unknown {
  let v: unknown = body;
  for (const part of field.split('.')) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}
