import { Args } from '@oclif/core';
import { StoreCommand, storeFlags } from '../cli/base-command.js';
import { targetFlags, targetOptionsOf } from '../cli/rollout-flags.js';
import type { GithubReport } from '../cli/github/reports.js';
import type { ObservedState } from '../core/ports.js';
import type { StatusView } from '../rollout/results.js';

export default class Status extends StoreCommand {
  static override summary = 'Show what serves a model: the stable set, the traffic split and any rollout in progress.';
  static override description = `What the ledger says (stable set, traffic, rollout in progress, lock) and, on Kubernetes, what the
cluster really runs and routes: each version's ready replicas and the HTTPRoute's split, with every difference
spelled out (traffic moved by hand, a warm version that is gone).`;
  static override examples = ['<%= config.bin %> status sentiment', '<%= config.bin %> status sentiment --json'];
  static override args = { model: Args.string({ description: 'Model name.', required: true }) };
  static override flags = { ...storeFlags, ...targetFlags };

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(Status);
    const { statusWithReality } = await import('../services/rollouts.js');
    return statusWithReality(await this.context(), { ...targetOptionsOf(flags), store: await this.openStore(flags) }, args.model);
  }

  protected override async githubReport(s: StatusView): Promise<GithubReport> {
    return (await import('../cli/github/reports.js')).statusReport(s);
  }

  protected human(s: StatusView & { observed?: ObservedState; differences?: string[] }): string {
    if (!s.serving && !s.rollout) return `${s.model}: nothing deployed on ${s.target} yet. Start with \`modelctl deploy ${s.model}@<version>\`.`;
    const lines = [`${s.model} on ${s.target}: serving ${s.serving ?? '(none)'}`, `stable set: ${s.stableSet.join(', ') || '(none)'}`];
    lines.push(`traffic: ${Object.entries(s.traffic).map(([v, w]) => `${v} ${w}%`).join(', ') || '(none)'}${s.mirror ? `; mirror ${s.mirror.percent}% → ${s.mirror.version}` : ''}`);
    const r = s.rollout;
    if (r) {
      lines.push(`rollout: ${r.version} ${r.phase}${r.phase === 'canary' ? ` ${r.weight}% (step ${r.stepIndex + 1}/${r.steps.length})` : ''}, by ${r.holder} since ${new Date(r.startedAt).toISOString()}`);
      if (r.interrupted) lines.push(`  INTERRUPTED: nobody is driving it. Resolve with \`modelctl abort ${s.model}\` or \`modelctl deploy ${s.model}@${r.version} --resume\`.`);
      if (r.phase === 'held') lines.push(`  HELD for a human: \`modelctl promote ${s.model}\` or \`modelctl abort ${s.model}\`.`);
    }
    if (s.observed) {
      const running = Object.entries(s.observed.versions).map(([v, o]) => `${v} ${o.ready}/${o.desired} ready`);
      lines.push(`on ${s.target}: ${running.join(', ') || 'no versions running'}`);
      for (const d of s.differences ?? []) lines.push(`  DIFFERS: ${d}`);
      if (s.differences?.length && s.serving && !s.rollout) {
        lines.push(`  modelctl acts on the ledger: \`modelctl deploy ${s.model}@${s.serving}\` re-applies what it says (versions and traffic).`);
      }
    }
    return lines.join('\n');
  }
}
