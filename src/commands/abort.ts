import { Args } from '@oclif/core';
import { StoreCommand, storeFlags } from '../cli/base-command.js';
import { ExitCode } from '../cli/errors.js';
import { targetFlags } from '../cli/rollout-flags.js';
import { createRolloutView } from '../cli/rollout-view.js';
import { OUTCOME_EXIT_CODES, type ResolveResult } from '../rollout/engine.js';
import type { TargetName } from '../services/rollouts.js';

export default class Abort extends StoreCommand {
  static override summary = 'End the rollout in progress: all traffic back on the serving stable version.';
  static override description = 'If a deploy is driving the rollout, it is asked (through the ledger) and obeys at its next check, within seconds; a held or interrupted rollout (its deploy was killed) is resolved here. The candidate is marked aborted and stays aborted.';
  static override examples = ['<%= config.bin %> abort sentiment', '<%= config.bin %> abort sentiment --json'];
  static override args = { model: Args.string({ description: 'Model name.', required: true }) };
  static override flags = { ...storeFlags, ...targetFlags };

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(Abort);
    const store = await this.openStore(flags);
    const { openEngine } = await import('../services/rollouts.js');
    const view = createRolloutView({});
    try {
      const engine = await openEngine({ target: flags.target as TargetName, store, port: flags.port, onEvent: (e) => view.onEvent(e) });
      return await engine.abort(args.model);
    } finally {
      view.close();
    }
  }

  protected override exitCodeOf(r: ResolveResult): ExitCode {
    // Doing what was asked is success; anything else (e.g. a promotion that turned into a rollback) keeps its code.
    if (r.kind === 'requested' || r.result.outcome === 'aborted') return ExitCode.ok;
    return OUTCOME_EXIT_CODES[r.result.outcome];
  }

  protected human(r: ResolveResult): string {
    if (r.kind === 'requested') return `asked the running deploy of ${r.model}@${r.version} (${r.holder}) to abort`;
    return `${r.result.model}@${r.result.version}: ${r.result.outcome} — ${r.result.reason}`;
  }
}
