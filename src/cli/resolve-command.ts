import { Args } from '@oclif/core';
import { OUTCOME_EXIT_CODES, type Outcome } from '../core/model.js';
import { type ResolveResult } from '../rollout/results.js';
import { StoreCommand, storeFlags } from './base-command.js';
import type { GithubReport } from './github/reports.js';
import { ExitCode } from '../core/errors.js';
import { targetFlags, targetOptionsOf } from './rollout-flags.js';
import { createRolloutView } from './rollout-view.js';

/**
 * `promote` and `abort`: resolve the rollout in progress. If a deploy drives it, it is asked
 * through the ledger and obeys at its next check; a held or interrupted rollout is resolved here.
 */
export abstract class ResolveRolloutCommand extends StoreCommand {
  static override args = { model: Args.string({ description: 'Model name.', required: true }) };
  static override flags = { ...storeFlags, ...targetFlags };

  protected abstract readonly action: 'promote' | 'abort';
  /** Outcomes that mean "done as asked" (exit 0). */
  protected abstract readonly success: readonly Outcome[];

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(this.ctor as typeof ResolveRolloutCommand);
    const store = await this.openStore(flags);
    const { openEngine } = await import('../services/rollouts.js');
    const view = createRolloutView({});
    try {
      const engine = await openEngine(await this.context(), { ...targetOptionsOf(flags), store, onEvent: (e) => view.onEvent(e), note: (m) => this.note(m) });
      return await engine[this.action](args.model);
    } finally {
      view.close();
    }
  }

  protected override exitCodeOf(r: ResolveResult): ExitCode {
    // Doing what was asked is success; anything else (e.g. a promotion that turned into a rollback) keeps its code.
    if (r.kind === 'requested' || this.success.includes(r.result.outcome)) return ExitCode.ok;
    return OUTCOME_EXIT_CODES[r.result.outcome];
  }

  protected override async githubReport(r: ResolveResult): Promise<GithubReport> {
    const [{ resolveReport }, { bundleChange, runPlace }] = await Promise.all([import('./github/reports.js'), import('../services/report-facts.js')]);
    const model = r.kind === 'requested' ? r.model : r.result.model;
    const { flags } = await this.parse(this.ctor as typeof ResolveRolloutCommand);
    return resolveReport(r, await bundleChange(this.openedStore, r.kind === 'resolved' ? r.result : undefined), `modelctl ${this.action} ${model}`, await runPlace(await this.context(), flags, this.openedStore));
  }

  protected human(r: ResolveResult): string {
    if (r.kind === 'requested') return `asked the running deploy of ${r.model}@${r.version} (${r.holder}) to ${this.action}`;
    return `${r.result.model}@${r.result.version}: ${r.result.outcome} — ${r.result.reason}`;
  }
}
