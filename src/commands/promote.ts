import { ResolveRolloutCommand } from '../cli/resolve-command.js';
import type { Outcome } from '../core/model.js';

export default class Promote extends ResolveRolloutCommand {
  static override summary = 'Skip the remaining steps of the rollout in progress and promote the candidate.';
  static override description =
    'If a deploy is driving the rollout, it is asked (through the ledger) and does it at its next check; a held or interrupted rollout is promoted here.';
  static override examples = ['<%= config.bin %> promote sentiment', '<%= config.bin %> promote sentiment --json'];
  // oclif reads args and flags as own static properties: restate the shared ones.
  static override args = ResolveRolloutCommand.args;
  static override flags = ResolveRolloutCommand.flags;
  protected readonly action = 'promote';
  protected readonly success: readonly Outcome[] = ['promoted', 'shadow-passed'];
}
