import { Args } from '@oclif/core';
import { StoreCommand, storeFlags } from '../cli/base-command.js';
import { ExitCode } from '../cli/errors.js';
import { targetFlags } from '../cli/rollout-flags.js';
import { createRolloutView } from '../cli/rollout-view.js';
import { OUTCOME_EXIT_CODES, type ResolveResult } from '../rollout/engine.js';
import type { TargetName } from '../services/rollouts.js';

export default class Promote extends StoreCommand {
  static override summary = 'Skip the remaining steps of the rollout in progress and promote the candidate.';
  static override description = 'If a deploy is driving the rollout, it is asked (through the ledger) and does it at its next check; a held or interrupted rollout is promoted here.';
  static override examples = ['<%= config.bin %> promote sentiment', '<%= config.bin %> promote sentiment --json'];
  static override args = { model: Args.string({ description: 'Model name.', required: true }) };
  static override flags = { ...storeFlags, ...targetFlags };

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(Promote);
    const store = await this.openStore(flags);
    const { openEngine } = await import('../services/rollouts.js');
    const view = createRolloutView({});
    try {
      const engine = await openEngine({ target: flags.target as TargetName, store, port: flags.port, onEvent: (e) => view.onEvent(e) });
      return await engine.promote(args.model);
    } finally {
      view.close();
    }
  }

  protected override exitCodeOf(r: ResolveResult): ExitCode {
    // Doing what was asked is success; anything else (e.g. a promotion that turned into a rollback) keeps its code.
    if (r.kind === 'requested' || r.result.outcome === 'promoted' || r.result.outcome === 'shadow-passed') return ExitCode.ok;
    return OUTCOME_EXIT_CODES[r.result.outcome];
  }

  protected human(r: ResolveResult): string {
    if (r.kind === 'requested') return `asked the running deploy of ${r.model}@${r.version} (${r.holder}) to promote`;
    return `${r.result.model}@${r.result.version}: ${r.result.outcome} — ${r.result.reason}`;
  }
}
