import { Args, Flags } from '@oclif/core';
import { StoreCommand, storeFlags } from '../../cli/base-command.js';
import type { PullResult } from '../../services/bundles.js';

export default class BundlePull extends StoreCommand {
  static override summary = 'Fetch a bundle into a directory, verifying every byte.';
  static override description = `Downloads into a temporary directory next to --output, checks every blob and file against its SHA-256,
and only then renames it into place: the output appears complete and verified, or not at all.
A mismatch exits with code 6 (integrity) naming the blob. The pulled directory holds a regenerated
bundle.yaml (re-packing it gives the same digest) and .modelctl/manifest.json (used by \`bundle verify <dir>\`).`;
  static override examples = [
    '<%= config.bin %> bundle pull sentiment@1.0.0 --output ./sentiment',
    '<%= config.bin %> bundle pull sentiment@sha256:3f…  --output /models/current --json',
  ];
  static override args = { ref: Args.string({ description: '<name>@<version> or <name>@sha256:<hex>', required: true }) };
  static override flags = {
    ...storeFlags,
    output: Flags.string({ char: 'o', description: 'Directory to create (absent or empty).', required: true }),
  };

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(BundlePull);
    const store = await this.openStore(flags);
    const { pull } = await import('../../services/bundles.js');
    return pull(store, args.ref, flags.output, this.progress());
  }

  protected human(r: PullResult): string {
    return `Pulled ${r.ref} ${r.digest}\n  into ${r.path} (verified)`;
  }
}
