import { Args } from '@oclif/core';
import { StoreCommand, storeFlags } from '../../cli/base-command.js';
import { formatBytes } from '../../cli/format.js';
import type { DiffResult } from '../../store/transfer.js';

export default class BundleDiff extends StoreCommand {
  static override summary = 'Show which components, files and tensors changed between two stored versions, and the bytes a deploy would move.';
  static override examples = ['<%= config.bin %> bundle diff sentiment@1.0.0 sentiment@1.1.0', '<%= config.bin %> bundle diff sentiment@1.0.0 sentiment@1.1.0 --json'];
  static override args = {
    from: Args.string({ description: 'The ref already deployed.', required: true }),
    to: Args.string({ description: 'The ref to compare with it.', required: true }),
  };
  static override flags = { ...storeFlags };

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(BundleDiff);
    const { diff } = await import('../../store/transfer.js');
    return diff(await this.openStore(flags), args.from, args.to);
  }

  protected human(r: DiffResult): string {
    if (r.identical) return `${r.from} and ${r.to} are identical (${r.fromDigest})`;
    const lines = [`${r.from} → ${r.to}`];
    for (const c of r.components) {
      lines.push(`${c.status.padEnd(9)} ${c.name}`);
      for (const p of c.added) lines.push(`  + ${p}`);
      for (const p of c.removed) lines.push(`  - ${p}`);
      for (const p of c.changed) {
        lines.push(`  ~ ${p}`);
        for (const t of (c.tensors ?? []).filter((x) => x.file === p)) {
          lines.push(`      ${{ added: '+', removed: '-', changed: '~' }[t.change]} ${t.name}  ${t.dtype} [${t.shape.join(', ')}]  ${formatBytes(t.bytes)}`);
        }
      }
    }
    lines.push(`A deploy of ${r.to} where ${r.from} is present moves ${formatBytes(r.transferBytes)} of ${formatBytes(r.totalBytes)}.`);
    return lines.join('\n');
  }
}
