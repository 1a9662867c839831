import { Args } from '@oclif/core';
import { StoreCommand, storeFlags } from '../../cli/base-command.js';
import { formatBytes, shortDigest, table } from '../../cli/format.js';
import type { ListEntry } from '../../store/transfer.js';

export default class BundleList extends StoreCommand {
  static override summary = 'List stored versions, newest first by semver.';
  static override examples = ['<%= config.bin %> bundle list', '<%= config.bin %> bundle list sentiment --json'];
  static override args = { name: Args.string({ description: 'Only this bundle name.' }) };
  static override flags = { ...storeFlags };

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(BundleList);
    const store = await this.openStore(flags);
    const explicitStore = (await this.storeSettings(flags)).store !== (await this.context()).defaultStoreUrl();
    const { list } = await import('../../store/transfer.js');
    // A damaged ref is named on stderr (also with --json, whose stdout stays the list) and skipped:
    // one bad file must not hide every other model.
    const onBadRef = (err: Error & { hint?: string | undefined }) => process.stderr.write(`Warning: ${err.message}\n${err.hint ? `Hint: ${err.hint}\n` : ''}`);
    return list(store, args.name, { explicitStore, onBadRef });
  }

  protected human(rows: ListEntry[]): string {
    if (rows.length === 0) return 'No bundles stored yet. Push one with `modelctl bundle push <dir>`.';
    return table(
      ['NAME', 'VERSION', 'DIGEST', 'SIZE', 'CREATED'],
      rows.map((r) => [r.name, r.version, shortDigest(r.digest), formatBytes(r.size), r.createdAt]),
    );
  }
}
