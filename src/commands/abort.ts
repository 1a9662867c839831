import { ResolveRolloutCommand } from '../cli/resolve-command.js';
import type { Outcome } from '../core/model.js';

export default class Abort extends ResolveRolloutCommand {
  static override summary = 'End the rollout in progress: all traffic back on the serving stable version.';
  static override description =
    'If a deploy is driving the rollout, it is asked (through the ledger) and obeys at its next check, within seconds; a held or interrupted rollout (its deploy was killed) is resolved here. The candidate is marked aborted and stays aborted.';
  static override examples = ['<%= config.bin %> abort sentiment', '<%= config.bin %> abort sentiment --json'];
  // oclif reads args and flags as own static properties: restate the shared ones.
  static override args = ResolveRolloutCommand.args;
  static override flags = ResolveRolloutCommand.flags;
  protected readonly action = 'abort';
  protected readonly success: readonly Outcome[] = ['aborted'];
}
