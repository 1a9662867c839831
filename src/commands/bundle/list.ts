import { Args } from '@oclif/core';
import { StoreCommand, storeFlags } from '../../cli/base-command.js';
import { formatBytes, shortDigest, table } from '../../cli/format.js';
import type { ListEntry } from '../../services/bundles.js';

export default class BundleList extends StoreCommand {
  static override summary = 'List stored versions, newest first by semver.';
  static override examples = ['<%= config.bin %> bundle list', '<%= config.bin %> bundle list sentiment --json'];
  static override args = { name: Args.string({ description: 'Only this bundle name.' }) };
  static override flags = { ...storeFlags };

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(BundleList);
    const store = await this.openStore(flags);
    const { list } = await import('../../services/bundles.js');
    return list(store, args.name);
  }

  protected human(rows: ListEntry[]): string {
    if (rows.length === 0) return 'No bundles stored yet. Push one with `modelctl bundle push <dir>`.';
    return table(
      ['NAME', 'VERSION', 'DIGEST', 'SIZE', 'CREATED'],
      rows.map((r) => [r.name, r.version, shortDigest(r.digest), formatBytes(r.size), r.createdAt]),
    );
  }
}
