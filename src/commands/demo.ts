import { Flags } from '@oclif/core';
import { BaseCommand } from '../cli/base-command.js';
import { ExitCode } from '../core/errors.js';
import { createRolloutView, type RolloutView } from '../cli/rollout-view.js';
import { table } from '../cli/format.js';
import type { DemoReport } from '../services/demo.js';

export default class Demo extends BaseCommand {
  static override summary = 'Watch a whole release story on this machine: deploy, canary and promote, canary and automatic rollback.';
  static override description = `Nothing to install: a private store, runtime and ledger in a temporary MODELCTL_HOME (removed after,
unless --keep). Pushes the example sentiment model as 1.0.0, 1.1.0 and a bad 1.2.0 (its config makes 30% of
answers fail), deploys 1.0.0, canaries 1.1.0 under generated load and promotes it, then canaries 1.2.0 and
rolls it back automatically, and prints the history. Exit 0 only if the story happened as told.`;
  static override examples = ['<%= config.bin %> demo', '<%= config.bin %> demo --keep --json'];
  static override flags = {
    keep: Flags.boolean({ description: 'Keep the demo home and leave its runtime running afterwards (its path is printed).' }),
    interval: Flags.string({ description: 'Bake time of each canary step.', default: '6s' }),
    port: Flags.integer({ description: 'Router port (default: a free one).' }),
  };

  protected async execute(): Promise<unknown> {
    const { flags } = await this.parse(Demo);
    const { parseDuration } = await import('../core/units.js');
    const { runDemo } = await import('../services/demo.js');
    let view: RolloutView | undefined;
    try {
      return await runDemo(await this.context(), {
        keep: flags.keep,
        intervalMs: parseDuration(flags.interval, '--interval'),
        ...(flags.port !== undefined ? { port: flags.port } : {}),
        onChapter: (title) => {
          view?.close();
          view = undefined;
          this.note(`\n== ${title}`);
        },
        onPlan: (plan) => {
          view = createRolloutView({ plan });
        },
        onEvent: (e) => view?.onEvent(e),
      });
    } finally {
      view?.close();
    }
  }

  protected override exitCodeOf(r: DemoReport): ExitCode {
    return r.ok ? ExitCode.ok : ExitCode.unexpected;
  }

  protected human(r: DemoReport): string {
    const t = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString().slice(11, 19));
    const lines = ['', 'History (newest first):', table(['VERSION', 'STATE', 'STARTED', 'ENDED', 'REASON'], r.history.map((h) => [h.version, h.state, t(h.startedAt), t(h.endedAt), h.reason ?? '']))];
    if (r.load) lines.push(`Load: ${r.load.answered} requests answered, ${r.load.errors} errors (the bad canary's share, before the rollback).`);
    for (const c of r.chapters) lines.push(`${c.ok ? 'ok  ' : 'FAIL'} ${c.version}: ${c.result.outcome} (expected ${c.expected})`);
    lines.push(r.ok ? `The story happened as told, in ${(r.durationMs / 1000).toFixed(1)} s.` : 'The story did NOT happen as told.');
    return lines.join('\n');
  }
}
