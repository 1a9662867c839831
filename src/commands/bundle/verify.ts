import { Args, Flags } from '@oclif/core';
import { existsSync } from 'node:fs';
import { StoreCommand, storeFlags } from '../../cli/base-command.js';
import { formatBytes } from '../../cli/format.js';
import type { VerifyResult } from '../../store/transfer.js';

export default class BundleVerify extends StoreCommand {
  static override summary = 'Check every byte of a bundle; exit 0 only if all of it matches.';
  static override description = `For a ref: downloads every blob and checks it (and every file inside it) against the manifest's SHA-256s.
For an archive: checks every blob in it. For a directory: checks bundle.yaml and every path; a directory
written by \`bundle pull\` must still match what was pulled; --digest makes any directory match that digest.
Exit code 6 (integrity) names the first blob or file that does not match.`;
  static override examples = [
    '<%= config.bin %> bundle verify sentiment@1.0.0',
    '<%= config.bin %> bundle verify ./pulled-sentiment',
    '<%= config.bin %> bundle verify sentiment-1.0.0.tar --json',
  ];
  static override args = { target: Args.string({ description: 'Ref, bundle directory or archive.', required: true }) };
  static override flags = {
    ...storeFlags,
    digest: Flags.string({ description: 'Expected digest (sha256:<hex>) for a directory or archive.' }),
  };

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(BundleVerify);
    const svc = await import('../../store/transfer.js');
    if (existsSync(args.target)) return svc.verifyLocal(args.target, flags.digest);
    return svc.verifyRef(await this.openStore(flags), args.target, this.progress());
  }

  protected human(r: VerifyResult): string {
    return `OK ${r.target} ${r.digest}: ${r.blobs} blobs, ${formatBytes(r.bytes)} verified`;
  }
}
