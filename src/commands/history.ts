import { Args } from '@oclif/core';
import { StoreCommand, storeFlags } from '../cli/base-command.js';
import { table } from '../cli/format.js';
import { targetFlags, targetOptionsOf } from '../cli/rollout-flags.js';
import type { HistoryEntry } from '../rollout/results.js';

export default class History extends StoreCommand {
  static override summary = 'Show the release history of a model, newest first.';
  static override examples = ['<%= config.bin %> history sentiment', '<%= config.bin %> history sentiment --json'];
  static override args = { model: Args.string({ description: 'Model name.', required: true }) };
  static override flags = { ...storeFlags, ...targetFlags };

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(History);
    const { openEngine } = await import('../services/rollouts.js');
    const engine = await openEngine(await this.context(), { ...targetOptionsOf(flags), store: await this.openStore(flags) });
    return engine.history(args.model);
  }

  protected human(rows: HistoryEntry[]): string {
    if (rows.length === 0) return 'No releases yet.';
    const t = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19));
    return table(
      ['VERSION', 'STATE', 'STARTED', 'ENDED', 'REASON'],
      rows.map((r) => [r.version, r.state, t(r.startedAt), t(r.endedAt), r.reason ?? '']),
    );
  }
}
