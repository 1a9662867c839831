import { Args, Flags } from '@oclif/core';
import { StoreCommand, storeFlags } from '../../cli/base-command.js';
import { formatBytes } from '../../cli/format.js';
import type { GithubReport } from '../../cli/github/reports.js';
import type { PushResult } from '../../store/transfer.js';

export default class BundlePush extends StoreCommand {
  static override summary = 'Store a bundle (directory or archive) under <name>@<version>.';
  static override description = `Uploads only the blobs the store lacks (a new version that keeps its weights re-uploads none of them),
streaming every byte and checking it against its SHA-256; then the manifest; then the version ref, create-only.
An interrupted push leaves no version behind (run it again to finish); two concurrent pushes of one version
cannot both win. Pushing a version that exists with the same digest checks that every blob and the manifest
are still in the store (a HEAD per blob) and puts back whatever is missing: pushing the same bundle again is
how a damaged store is mended. --repair also downloads and re-hashes every stored blob of the bundle and
re-uploads those whose bytes are wrong. With a different digest it fails with exit code 7 (conflict).`;
  static override examples = [
    '<%= config.bin %> bundle push bundles/example',
    '<%= config.bin %> bundle push sentiment-1.0.0.tar --store s3://models/prod',
    '<%= config.bin %> bundle push . --version 1.4.0-rc.1+$GITHUB_SHA --json',
    '<%= config.bin %> bundle push bundles/example --repair',
  ];
  static override args = { source: Args.string({ description: 'Bundle directory or archive (from `bundle pack --output`).', required: true }) };
  static override flags = {
    ...storeFlags,
    version: Flags.string({ description: 'Override bundle.yaml\'s version (directories only).' }),
    repair: Flags.boolean({ description: 'Re-hash every blob of the bundle already in the store and re-upload the ones that are wrong.' }),
  };

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(BundlePush);
    const store = await this.openStore(flags);
    const { openLocalBundle, push } = await import('../../store/transfer.js');
    const source = await openLocalBundle(args.source, { version: flags.version, progress: this.progress() });
    try {
      const result = await push(store, source, this.progress(), { repair: flags.repair });
      return { ...result, store: store.url };
    } finally {
      await source.close();
    }
  }

  protected override async githubReport(r: PushResult & { store: string }): Promise<GithubReport> {
    return (await import('../../cli/github/reports.js')).pushReport(r);
  }

  protected human(r: PushResult & { store: string }): string {
    const mended = r.repairedBlobs.length > 0 || r.repairedManifest;
    const verb = r.created ? 'Pushed' : mended ? 'Repaired' : 'Already present:';
    const lines = [`${verb} ${r.ref} ${r.digest} ${mended ? 'in' : 'to'} ${r.store}`, `  uploaded ${formatBytes(r.uploadedBytes)}, re-used ${formatBytes(r.reusedBytes)}`];
    if (r.repairedBlobs.length > 0) lines.push(`  re-uploaded ${r.repairedBlobs.length} missing or damaged blob(s): ${r.repairedBlobs.join(', ')}`);
    if (r.repairedManifest) lines.push('  rewrote the missing or damaged manifest');
    for (const w of r.warnings ?? []) lines.push(`warning: ${w}`);
    return lines.join('\n');
  }
}
