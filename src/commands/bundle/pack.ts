import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../cli/base-command.js';
import { formatBytes } from '../../cli/format.js';
import type { PackSummary } from '../../store/transfer.js';

export default class BundlePack extends BaseCommand {
  static override summary = 'Compute a bundle\'s digest, and optionally write it as one archive for air-gapped transfer.';
  static override description = `Validates bundle.yaml and every component path, hashes every file (large files on all cores) and prints the
bundle's digest: sha256 of its canonical manifest. The same content gives the same digest on any machine:
mtimes, owners, umask and file creation order do not change it.

With --output, also writes a deterministic archive (manifest + blobs) that \`bundle push\`, \`bundle verify\`
and \`bundle inspect\` accept in place of the directory.`;
  static override examples = [
    '<%= config.bin %> bundle pack bundles/example',
    '<%= config.bin %> bundle pack bundles/example --output sentiment-1.0.0.tar',
    '<%= config.bin %> bundle pack . --version 1.4.0-rc.1+$GITHUB_SHA --json',
  ];
  static override args = { dir: Args.string({ description: 'Bundle directory (holding bundle.yaml).', required: true }) };
  static override flags = {
    version: Flags.string({ description: 'Override bundle.yaml\'s version (semver), e.g. 1.4.0-rc.1+<git sha> in CI.' }),
    output: Flags.string({ char: 'o', description: 'Also write the bundle as one self-contained archive to this file.' }),
  };

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(BundlePack);
    const { pack } = await import('../../store/transfer.js');
    return pack(args.dir, { version: flags.version, output: flags.output, progress: this.progress() });
  }

  protected human(r: PackSummary & { output?: string; archiveSize?: number }): string {
    const lines = [`${r.name}@${r.version}  ${r.digest}`, `${r.files} files, ${formatBytes(r.size)}`];
    for (const c of r.components) lines.push(`  ${c.name.padEnd(14)} ${String(c.files).padStart(5)} files  ${formatBytes(c.size)}`);
    if (r.output) lines.push(`Archive: ${r.output} (${formatBytes(r.archiveSize ?? 0)})`);
    for (const w of r.warnings ?? []) lines.push(`warning: ${w}`);
    return lines.join('\n');
  }
}
