import { Args, Flags } from '@oclif/core';
import { stringify as stringifyYaml } from 'yaml';
import { StoreCommand, storeFlags } from '../cli/base-command.js';
import { ExitCode } from '../core/errors.js';
import { planFlags, rolloutFlagsOf, targetFlags, targetOptionsOf } from '../cli/rollout-flags.js';
import type { GithubReport } from '../cli/github/reports.js';
import { createRolloutView, type RolloutView } from '../cli/rollout-view.js';
import { renderPlan, type PlanDescription } from '../rollout/describe.js';
import { OUTCOME_EXIT_CODES } from '../core/model.js';
import { type RolloutResult } from '../rollout/results.js';
import type { KubernetesDryRun } from '../targets/kubernetes/dry-run.js';
import { renderKubernetesDryRun } from '../targets/kubernetes/dry-run-view.js';
import { telemetryFlags, warnOnStderr } from '../telemetry/flags.js';

export default class Deploy extends StoreCommand {
  static override summary = 'Roll a stored version out: shadow, canary steps judged by gates, then promotion — or automatic rollback.';
  static override description = `Blocks until the outcome. The candidate is pulled (verified), started and awaited; then, when a stable
version serves, it gets the shadow share (--shadow) and the canary steps (--canary / --steps), each baked for
--interval while the gates are checked. A failed gate puts 100% of traffic back on the serving stable version
at once (cascading through the stable set if that one is unhealthy). Inconclusive gates (no data, too few
samples) HOLD the rollout for a human: \`modelctl promote\` or \`modelctl abort\`.

The first deploy of a model goes live after readiness and a health check and becomes the first stable version.
Gates come from the bundle's rollout: section or modelctl.yaml (built-in defaults otherwise).

SIGINT or SIGTERM (Ctrl-C, a cancelled CI job) aborts the rollout to stable, frees the lock, prints the result
(outcome aborted) and exits 10; a second signal exits at once (130/143), leaving the rollout interrupted for
\`modelctl abort\` or \`deploy --resume\`.

Exit codes: 0 promoted, 3 rolled back by gates (or aborted), 4 held, 5 another rollout holds the lock, 2 bad input,
10 interrupted by a signal (aborted to stable).`;
  static override examples = [
    '<%= config.bin %> deploy sentiment@1.0.0',
    '<%= config.bin %> deploy sentiment@1.4.0 --canary 5%',
    '<%= config.bin %> deploy sentiment@1.4.0 --steps 10,50,100 --interval 2m --shadow 10% --shadow-duration 5m',
    '<%= config.bin %> deploy sentiment@1.4.0 --dry-run',
    '<%= config.bin %> deploy sentiment@1.4.0 --json > result.json',
    '<%= config.bin %> deploy sentiment@1.4.0 --pushgateway http://pushgateway:9091',
    '<%= config.bin %> deploy sentiment@1.4.0 --target kubernetes --context prod -n ml-serving --canary 5%',
    '<%= config.bin %> deploy sentiment@1.4.0 --target kubernetes --dry-run   # plan + every manifest of every step, as YAML; no cluster needed',
  ];
  static override args = { ref: Args.string({ description: '<name>@<version> or <name>@sha256:<hex> in the store.', required: true }) };
  static override flags = {
    ...storeFlags,
    ...targetFlags,
    ...planFlags,
    ...telemetryFlags,
    'dry-run': Flags.boolean({ description: 'Print the plan (steps, timings, gates and their queries) and change nothing.' }),
    resume: Flags.boolean({ description: 'Continue an interrupted rollout of this same version from where the ledger says it stopped.' }),
  };

  private view: RolloutView | undefined;

  protected async execute(): Promise<unknown> {
    const { args, flags } = await this.parse(Deploy);
    // From here on the first SIGINT/SIGTERM aborts the rollout to stable (see cleanup.ts).
    const { rolloutInterruption } = await import('../cli/rollout-interrupt.js');
    const interruption = rolloutInterruption(args.ref.split('@')[0]!, this.jsonMode);
    const store = await this.openStore(flags);
    const { deploy } = await import('../services/rollouts.js');
    try {
      return await deploy(await this.context(), {
        ...targetOptionsOf(flags),
        store,
        note: (m) => this.note(m),
        ref: args.ref,
        dryRun: flags['dry-run'],
        resume: flags.resume,
        signal: interruption.signal,
        pushgateway: flags.pushgateway,
        telemetry: true,
        warn: warnOnStderr,
        flags: rolloutFlagsOf(flags),
        onPlan: (plan) => {
          if (!flags['dry-run']) this.view = createRolloutView({ plan });
        },
        onEvent: (e) => {
          interruption.onEvent(e);
          this.view?.onEvent(e);
        },
      });
    } finally {
      interruption.dispose();
      this.view?.close();
    }
  }

  protected override exitCodeOf(r: RolloutResult | PlanDescription): ExitCode {
    if (!('outcome' in r)) return ExitCode.ok;
    return r.interrupted ? ExitCode.interrupted : OUTCOME_EXIT_CODES[r.outcome];
  }

  protected override async githubReport(r: RolloutResult | PlanDescription): Promise<GithubReport> {
    const [{ deployReport }, { bundleChange, runPlace }] = await Promise.all([import('../cli/github/reports.js'), import('../services/report-facts.js')]);
    const { flags } = await this.parse(Deploy);
    return deployReport(r, await bundleChange(this.openedStore, r), `modelctl deploy ${r.model}@${r.version}`, await runPlace(await this.context(), flags, this.openedStore));
  }

  protected human(r: RolloutResult | PlanDescription): string {
    if (!('outcome' in r)) {
      const k = (r as PlanDescription & { kubernetes?: KubernetesDryRun }).kubernetes;
      if (k) return renderKubernetesDryRun(renderPlan(r), k);
      if (!r.manifests) return renderPlan(r);
      const docs = r.manifests.map((m) => stringifyYaml(m)).join('---\n');
      return `${renderPlan(r)}\nManifests of the first step (server-side apply, field manager modelctl):\n---\n${docs}`;
    }
    const head = `${r.model}@${r.version}: ${r.outcome.toUpperCase()}`;
    const lines = [`${head} — ${r.reason}`];
    if (r.rolledBackTo) lines.push(`serving ${r.rolledBackTo}`);
    lines.push(`stable set: ${r.stableSet.join(', ') || '(none)'}`);
    return lines.join('\n');
  }
}
