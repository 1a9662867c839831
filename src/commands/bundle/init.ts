import { Args, Flags } from '@oclif/core';
import path from 'node:path';
import { BaseCommand } from '../../cli/base-command.js';
import { UsageError } from '../../core/errors.js';

export default class BundleInit extends BaseCommand {
  static override summary = 'Scaffold a bundle directory with the four components.';
  static override description = `Creates <dir>/bundle.yaml and one folder per component (weights, prompts, preprocessing, config).
Put your files in place, then \`modelctl bundle pack <dir>\` to see its digest and \`modelctl bundle push <dir>\` to store it.`;
  static override examples = ['<%= config.bin %> bundle init ./sentiment', '<%= config.bin %> bundle init ./models/ranker --name ranker'];
  static override args = { dir: Args.string({ description: 'Directory to create (must be absent or empty).', required: true }) };
  static override flags = {
    name: Flags.string({ description: 'Bundle name (a DNS-1123 label). Default: the directory name.' }),
  };

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(BundleInit);
    const name = flags.name ?? path.basename(path.resolve(args.dir)).toLowerCase();
    const { bundleName } = await import('../../bundle/spec.js');
    const check = bundleName.safeParse(name);
    if (!check.success) throw new UsageError(`bundle name "${name}" ${check.error.issues[0]?.message}`, { hint: 'pass --name <dns-label>' });
    const { init } = await import('../../store/transfer.js');
    return init(args.dir, name);
  }

  protected human(r: { path: string; name: string; files: string[] }): string {
    return `Created bundle "${r.name}" in ${r.path}:\n${r.files.map((f) => `  ${f}`).join('\n')}\nNext: add your files, then \`modelctl bundle pack ${r.path}\`.`;
  }
}
