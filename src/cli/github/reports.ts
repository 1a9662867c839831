import type { CheckResult } from '../../gates/prometheus-check.js';
import type { PlanDescription } from '../../rollout/describe.js';
import type { ResolveResult, RollbackResult, RolloutResult, StatusView } from '../../rollout/results.js';
import type { BundleChange, RunPlace } from '../../services/report-facts.js';
import type { Annotation } from './commands.js';
import { code, table, text } from './markdown.js';
import type { OutputValue } from './outputs.js';
import { deploySummary, outcomeWord, planSummary, pushSummary, requestedSummary, rollbackSummary, type SummaryContext } from './summary.js';

/**
 * What each command reports to GitHub Actions: its step outputs, its job summary and the
 * annotation of its outcome. Pure builders: what they need from the store or modelctl.yaml (the
 * bundle change, where the command ran) is looked up by the application (src/services/report-facts.ts).
 * The hook adds the `result` output (the compact JSON result) to every command.
 */
export interface GithubReport {
  outputs: Record<string, OutputValue>;
  /** Markdown appended to $GITHUB_STEP_SUMMARY. */
  summary?: string;
  annotations?: Annotation[];
}

/**
 * The summary's context: where the command ran, and the links of the job from the runner's
 * default variables (GITHUB_SERVER_URL, GITHUB_REPOSITORY, GITHUB_RUN_ID, GITHUB_RUN_ATTEMPT,
 * GITHUB_SHA); no link when one of them is missing.
 */
export function summaryContext(place: RunPlace = {}, env: NodeJS.ProcessEnv = process.env, model?: string): SummaryContext {
  const server = env.GITHUB_SERVER_URL || 'https://github.com';
  const repo = env.GITHUB_REPOSITORY;
  const run = env.GITHUB_RUN_ID;
  const attempt = Number(env.GITHUB_RUN_ATTEMPT ?? '1');
  const sha = env.GITHUB_SHA;
  const ctx: SummaryContext = { ...place };
  if (repo && run) {
    ctx.runUrl = `${server}/${repo}/actions/runs/${run}${attempt > 1 ? `/attempts/${attempt}` : ''}`;
    ctx.runLabel = `run ${run}${attempt > 1 ? ` (attempt ${attempt})` : ''}`;
  }
  if (repo && sha && /^[0-9a-f]{7,64}$/i.test(sha)) {
    ctx.commitUrl = `${server}/${repo}/commit/${sha}`;
    ctx.sha = sha;
  }
  const refs = model && place.store ? s3ConsoleRefsUrl(place.store, model, env) : undefined;
  if (refs) ctx.refsUrl = refs;
  return ctx;
}

/**
 * The AWS console's view of a model's refs (`<prefix>/refs/<model>/`) in an S3 store on AWS; none
 * for other stores, or when AWS_ENDPOINT_URL(_S3) points at an S3-compatible server (RGW, MinIO),
 * whose consoles have no common address.
 */
export function s3ConsoleRefsUrl(store: string, model: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*?))?\/*$/.exec(store);
  if (!m || env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL) return undefined;
  const prefix = `${m[2] ? `${m[2]}/` : ''}refs/${model}/`;
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION;
  return `https://s3.console.aws.amazon.com/s3/buckets/${m[1]}?${region ? `region=${encodeURIComponent(region)}&` : ''}prefix=${encodeURIComponent(prefix)}`;
}

export interface PushReportInput {
  ref: string;
  digest: string;
  uploadedBytes: number;
  reusedBytes: number;
  store: string;
  created: boolean;
}

export function pushReport(r: PushReportInput): GithubReport {
  const at = r.ref.indexOf('@');
  return { outputs: { digest: r.digest, version: r.ref.slice(at + 1), ref: r.ref }, summary: pushSummary(r, summaryContext({ store: r.store })) };
}

/** The outcome of a rollout as an annotation: error for a rollback, warning when held or aborted, notice when promoted. */
export function rolloutAnnotation(r: RolloutResult): Annotation {
  const ref = `${r.model}@${r.version}`;
  const stable = r.stableSet.length ? ` Stable set: ${r.stableSet.join(', ')}.` : '';
  switch (outcomeWord(r)) {
    case 'PROMOTED':
      return { level: 'notice', title: `Promoted ${ref}`, message: `${ref} serves 100% of traffic (${r.reason}).${stable}` };
    case 'ALREADY SERVING':
      return { level: 'notice', title: `${ref} already serving`, message: `${ref} was already serving: nothing changed.` };
    case 'ROLLED BACK':
      return { level: 'error', title: `Rolled back ${ref}`, message: `${r.reason}. ${r.rolledBackTo ? `All traffic is back on ${r.rolledBackTo}.` : 'No version serves this model.'}` };
    case 'ABORTED':
      return { level: 'warning', title: `Aborted ${ref}`, message: `${r.reason}.${r.rolledBackTo ? ` All traffic is back on ${r.rolledBackTo}.` : ''}` };
    case 'HELD':
      return { level: 'warning', title: `Held ${ref}`, message: `${r.reason}. Traffic stays where it is until a human decides: modelctl promote ${r.model}, or modelctl abort ${r.model}.` };
    default:
      return { level: 'notice', title: `Shadow passed ${ref}`, message: `${r.reason}.` };
  }
}

function rolloutOutputs(r: RolloutResult): Record<string, OutputValue> {
  return { digest: r.digest, version: r.version, outcome: r.outcome, 'rolled-back-to': r.rolledBackTo, serving: r.serving };
}

export function deployReport(r: RolloutResult | PlanDescription, change: BundleChange, command: string, place?: RunPlace): GithubReport {
  const context = summaryContext(place, process.env, r.model);
  if (!('outcome' in r)) {
    return { outputs: { digest: r.digest, version: r.version, outcome: 'dry-run', 'rolled-back-to': null, serving: r.stable }, summary: planSummary(r, `${command} --dry-run`, context) };
  }
  return { outputs: rolloutOutputs(r), summary: deploySummary(r, { command, change, context }), annotations: [rolloutAnnotation(r)] };
}

export type RollbackCommandResult = (RollbackResult & { deploy?: undefined }) | { action: 'redeployed'; deploy: RolloutResult };

export function rollbackReport(r: RollbackCommandResult, change: BundleChange, command: string, place?: RunPlace): GithubReport {
  const context = summaryContext(place, process.env, r.action === 'redeployed' ? r.deploy.model : r.model);
  if (r.action === 'redeployed') {
    const d = r.deploy;
    return {
      outputs: { ...rolloutOutputs(d), 'rolled-back-to': d.outcome === 'promoted' ? d.version : d.rolledBackTo },
      summary: deploySummary(d, { command, change, context, manualRollback: true }),
      annotations: [rolloutAnnotation(d)],
    };
  }
  const switched = r.action === 'switched';
  const annotations: Annotation[] = !switched
    ? []
    : r.healthy === false
      ? [{ level: 'error', title: `Rolled back ${r.model} to ${r.to}: NOT healthy`, message: `all traffic is on ${r.model}@${r.to} (was ${r.from ?? 'none'}), which failed its health check` }]
      : [{ level: 'notice', title: `Rolled back ${r.model} to ${r.to}`, message: `all traffic is on ${r.model}@${r.to} (was ${r.from ?? 'none'}); health check passed` }];
  return {
    outputs: { outcome: r.action, serving: r.stableSet[0] ?? r.to, 'rolled-back-to': switched ? r.to : null, healthy: r.healthy },
    summary: rollbackSummary(r, context),
    annotations,
  };
}

export function resolveReport(r: ResolveResult, change: BundleChange, command: string, place?: RunPlace): GithubReport {
  const context = summaryContext(place, process.env, r.kind === 'requested' ? r.model : r.result.model);
  if (r.kind === 'requested') {
    return {
      outputs: { outcome: `${r.action}-requested`, serving: null, version: r.version },
      summary: requestedSummary(r, context),
      annotations: [{ level: 'notice', title: `${r.action} requested for ${r.model}@${r.version}`, message: `the running deploy (${r.holder}) was asked to ${r.action}; it obeys at its next check` }],
    };
  }
  const d = r.result;
  return { outputs: rolloutOutputs(d), summary: deploySummary(d, { command, change, context }), annotations: [rolloutAnnotation(d)] };
}

/**
 * `status` in Actions: what serves, as outputs a later step can act on (a manual rollback picks a
 * version of the stable set). No summary: status changes nothing.
 */
export function statusReport(s: Pick<StatusView, 'serving' | 'stableSet'>): GithubReport {
  return { outputs: { serving: s.serving, 'stable-set': s.stableSet.join(',') } };
}

/** `gates check` in Actions: the verdict as an output, a table of every gate, an annotation per gate that did not pass. */
export function gatesCheckReport(r: CheckResult): GithubReport {
  const rows = r.gates.map((g) => [text(g.name), code(g.query), text(g.raw ?? (g.value === null ? '-' : String(g.value))), text(g.limit), text(g.verdict), text(g.reason)]);
  const summary = [
    `### modelctl gates check: ${r.verdict.toUpperCase()}`,
    '',
    `Prometheus ${code(r.prometheus)} at ${text(r.at)}, \`{{interval}}\` = ${text(r.interval)}.`,
    '',
    table(['Gate', 'Resolved query', 'Value', 'Limit', 'Verdict', 'Reason'], rows),
    '',
  ].join('\n');
  const annotations: Annotation[] = r.gates
    .filter((g) => g.verdict !== 'pass')
    .map((g) => ({
      level: g.verdict === 'fail' || g.verdict === 'error' ? 'error' : 'warning',
      title: `Gate ${g.name} ${g.verdict === 'inconclusive' ? 'inconclusive' : g.verdict === 'error' ? 'could not be measured' : 'failed'}`,
      message: `${g.reason} (query: ${g.query})`,
    }));
  return { outputs: { outcome: r.verdict }, summary, annotations };
}
