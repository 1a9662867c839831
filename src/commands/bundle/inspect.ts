import { Args } from '@oclif/core';
import { existsSync } from 'node:fs';
import { StoreCommand, storeFlags } from '../../cli/base-command.js';
import { formatBytes, shortDigest } from '../../cli/format.js';
import type { InspectResult } from '../../store/transfer.js';

export default class BundleInspect extends StoreCommand {
  static override summary = 'Show a bundle\'s manifest: components, files, sizes, blobs.';
  static override description = 'TARGET is a path on disk (bundle directory or archive) when it exists, else a ref in the store.';
  static override examples = [
    '<%= config.bin %> bundle inspect sentiment@1.0.0',
    '<%= config.bin %> bundle inspect bundles/example',
    '<%= config.bin %> bundle inspect sentiment-1.0.0.tar --json',
  ];
  static override args = { target: Args.string({ description: 'Ref, bundle directory or archive.', required: true }) };
  static override flags = { ...storeFlags };

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(BundleInspect);
    const svc = await import('../../store/transfer.js');
    if (existsSync(args.target)) return svc.inspectLocal(args.target);
    return svc.inspectRef(await this.openStore(flags), args.target);
  }

  protected human(r: InspectResult): string {
    const lines = [`${r.name}@${r.version}  ${r.digest}`, `${r.files} files, ${formatBytes(r.size)}, ${r.manifest.blobs.length} blobs`];
    for (const c of r.manifest.components) {
      lines.push(`${c.name} (${c.files.length} files, ${formatBytes(c.size)})`);
      for (const f of c.files) lines.push(`  ${f.executable ? 'x' : '-'} ${formatBytes(f.size).padStart(9)}  ${f.path}  ${shortDigest(`sha256:${f.sha256}`)}`);
    }
    const meta = r.manifest.spec.metadata;
    if (meta && typeof meta === 'object') lines.push(`metadata: ${JSON.stringify(meta)}`);
    return lines.join('\n');
  }
}
