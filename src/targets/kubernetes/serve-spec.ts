import { serveSpecSchema, type ServeSpec } from '../../bundle/serve.js';
import { UsageError } from '../../core/errors.js';
import type { VersionRef } from '../../core/model.js';
import { fetchManifest, resolveRef } from '../../store/transfer.js';
import type { BundleStore } from '../../store/store.js';

/** The serve section of a stored version (checked like the local runtime does), read from the store's manifest. */
export async function serveSpecOf(store: BundleStore, ref: VersionRef): Promise<ServeSpec> {
  const { manifest } = await fetchManifest(store, await resolveRef(store, `${ref.model}@${ref.digest}`));
  const where = `bundle.yaml of ${ref.model}@${ref.version}`;
  if (manifest.spec.serve === undefined) {
    throw new UsageError(`${ref.model}@${ref.version} cannot run on Kubernetes: its bundle.yaml has no serve section`, {
      hint: 'add e.g. `serve: {command: [node, serve.mjs], readinessPath: /healthz}` to bundle.yaml, push a new version and deploy it',
    });
  }
  const parsed = serveSpecSchema.safeParse(manifest.spec.serve);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `serve.${i.path.join('.')}: ${i.message}`).join('; ');
    throw new UsageError(`${where}: ${issues}`, { hint: 'fix the serve section, push a new version and deploy it' });
  }
  return parsed.data;
}
