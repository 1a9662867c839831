import { Args } from '@oclif/core';
import { StoreCommand, storeFlags } from '../cli/base-command.js';
import { targetFlags, targetOptionsOf } from '../cli/rollout-flags.js';
import type { StatusView } from '../rollout/engine.js';

export default class Status extends StoreCommand {
  static override summary = 'Show what serves a model: the stable set, the traffic split and any rollout in progress.';
  static override examples = ['<%= config.bin %> status sentiment', '<%= config.bin %> status sentiment --json'];
  static override args = { model: Args.string({ description: 'Model name.', required: true }) };
  static override flags = { ...storeFlags, ...targetFlags };

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(Status);
    const { openEngine } = await import('../services/rollouts.js');
    const engine = await openEngine({ ...targetOptionsOf(flags), store: await this.openStore(flags) });
    return engine.status(args.model);
  }

  protected human(s: StatusView): string {
    if (!s.serving && !s.rollout) return `${s.model}: nothing deployed on ${s.target} yet. Start with \`modelctl deploy ${s.model}@<version>\`.`;
    const lines = [`${s.model} on ${s.target}: serving ${s.serving ?? '(none)'}`, `stable set: ${s.stableSet.join(', ') || '(none)'}`];
    lines.push(`traffic: ${Object.entries(s.traffic).map(([v, w]) => `${v} ${w}%`).join(', ') || '(none)'}${s.mirror ? `; mirror ${s.mirror.percent}% → ${s.mirror.version}` : ''}`);
    const r = s.rollout;
    if (r) {
      lines.push(`rollout: ${r.version} ${r.phase}${r.phase === 'canary' ? ` ${r.weight}% (step ${r.stepIndex + 1}/${r.steps.length})` : ''}, by ${r.holder} since ${new Date(r.startedAt).toISOString()}`);
      if (r.interrupted) lines.push(`  INTERRUPTED: nobody is driving it. Resolve with \`modelctl abort ${s.model}\` or \`modelctl deploy ${s.model}@${r.version} --resume\`.`);
      if (r.phase === 'held') lines.push(`  HELD for a human: \`modelctl promote ${s.model}\` or \`modelctl abort ${s.model}\`.`);
    }
    return lines.join('\n');
  }
}
