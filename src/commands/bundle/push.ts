import { Args, Flags } from '@oclif/core';
import { StoreCommand, storeFlags } from '../../cli/base-command.js';
import { formatBytes } from '../../cli/format.js';
import type { GithubReport } from '../../cli/github/reports.js';
import type { PushResult } from '../../services/bundles.js';

export default class BundlePush extends StoreCommand {
  static override summary = 'Store a bundle (directory or archive) under <name>@<version>.';
  static override description = `Uploads only the blobs the store lacks (a new version that keeps its weights re-uploads none of them),
streaming every byte and checking it against its SHA-256; then the manifest; then the version ref, create-only.
An interrupted push leaves no version behind (run it again to finish); two concurrent pushes of one version
cannot both win. Pushing a version that exists with the same digest succeeds quietly; with a different
digest it fails with exit code 7 (conflict).`;
  static override examples = [
    '<%= config.bin %> bundle push bundles/example',
    '<%= config.bin %> bundle push sentiment-1.0.0.tar --store s3://models/prod',
    '<%= config.bin %> bundle push . --version 1.4.0-rc.1+$GITHUB_SHA --json',
  ];
  static override args = { source: Args.string({ description: 'Bundle directory or archive (from `bundle pack --output`).', required: true }) };
  static override flags = {
    ...storeFlags,
    version: Flags.string({ description: 'Override bundle.yaml\'s version (directories only).' }),
  };

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(BundlePush);
    const store = await this.openStore(flags);
    const { openLocalBundle, push } = await import('../../services/bundles.js');
    const source = await openLocalBundle(args.source, { version: flags.version, progress: this.progress() });
    try {
      const result = await push(store, source, this.progress());
      return { ref: result.ref, digest: result.digest, uploadedBytes: result.uploadedBytes, reusedBytes: result.reusedBytes, store: store.url, created: result.created };
    } finally {
      await source.close();
    }
  }

  protected override async githubReport(r: PushResult & { store: string }): Promise<GithubReport> {
    return (await import('../../cli/github/reports.js')).pushReport(r);
  }

  protected human(r: PushResult & { store: string }): string {
    const verb = r.created ? 'Pushed' : 'Already present:';
    return `${verb} ${r.ref} ${r.digest} to ${r.store}\n  uploaded ${formatBytes(r.uploadedBytes)}, re-used ${formatBytes(r.reusedBytes)}`;
  }
}
