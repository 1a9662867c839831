import type { CheckResult } from '../../gates/prometheus-check.js';
import type { PlanDescription } from '../../rollout/describe.js';
import type { ResolveResult, RollbackResult, RolloutResult, StatusView } from '../../rollout/engine.js';
import type { BundleStore } from '../../store/store.js';
import type { Annotation } from './commands.js';
import { code, table, text } from './markdown.js';
import type { OutputValue } from './outputs.js';
import { deploySummary, outcomeWord, planSummary, pushSummary, requestedSummary, rollbackSummary, type BundleChange } from './summary.js';

/**
 * What each command reports to GitHub Actions: its step outputs, its job summary and the
 * annotation of its outcome. Pure builders (the bundle change is looked up by `bundleChange`).
 * The hook adds the `result` output (the compact JSON result) to every command.
 */
export interface GithubReport {
  outputs: Record<string, OutputValue>;
  /** Markdown appended to $GITHUB_STEP_SUMMARY. */
  summary?: string;
  annotations?: Annotation[];
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
  return { outputs: { digest: r.digest, version: r.ref.slice(at + 1), ref: r.ref }, summary: pushSummary(r) };
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

export function deployReport(r: RolloutResult | PlanDescription, change: BundleChange, command: string): GithubReport {
  if (!('outcome' in r)) {
    return { outputs: { digest: r.digest, version: r.version, outcome: 'dry-run', 'rolled-back-to': null, serving: r.stable }, summary: planSummary(r, `${command} --dry-run`) };
  }
  return { outputs: rolloutOutputs(r), summary: deploySummary(r, { command, change }), annotations: [rolloutAnnotation(r)] };
}

export type RollbackCommandResult = (RollbackResult & { deploy?: undefined }) | { action: 'redeployed'; deploy: RolloutResult };

export function rollbackReport(r: RollbackCommandResult, change: BundleChange, command: string): GithubReport {
  if (r.action === 'redeployed') {
    const d = r.deploy;
    return {
      outputs: { ...rolloutOutputs(d), 'rolled-back-to': d.outcome === 'promoted' ? d.version : d.rolledBackTo },
      summary: deploySummary(d, { command, change }),
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
    summary: rollbackSummary(r),
    annotations,
  };
}

export function resolveReport(r: ResolveResult, change: BundleChange, command: string): GithubReport {
  if (r.kind === 'requested') {
    return {
      outputs: { outcome: `${r.action}-requested`, serving: null, version: r.version },
      summary: requestedSummary(r),
      annotations: [{ level: 'notice', title: `${r.action} requested for ${r.model}@${r.version}`, message: `the running deploy (${r.holder}) was asked to ${r.action}; it obeys at its next check` }],
    };
  }
  const d = r.result;
  return { outputs: rolloutOutputs(d), summary: deploySummary(d, { command, change }), annotations: [rolloutAnnotation(d)] };
}

/**
 * What the rollout changed in the bundle: the candidate's manifest against the one of the version
 * that served when it started (from the rollout-started event). Never throws: a summary must not
 * fail the command it describes.
 */
export async function bundleChange(store: BundleStore | undefined, r: RolloutResult | PlanDescription | undefined): Promise<BundleChange> {
  if (!r || !('outcome' in r) || r.events.some((e) => e.type === 'already-serving')) return { kind: 'none' };
  const start = r.events.find((e) => e.type === 'rollout-started' || e.type === 'rollout-resumed');
  // A rollout resolved by promote/abort has no start event here: the previous stable version is
  // the first one of the stable set that is not the candidate.
  const from = start ? (typeof start.stable === 'string' ? start.stable : null) : (r.stableSet.find((v) => v !== r.version) ?? null);
  if (!start && !from) return { kind: 'none' };
  if (!store) return from ? { kind: 'unavailable', from, reason: 'no store' } : { kind: 'first-deploy', totalBytes: null };
  try {
    const { diffManifests, fetchManifest, resolveRef } = await import('../../services/bundles.js');
    const candidate = await fetchManifest(store, await resolveRef(store, `${r.model}@${r.digest}`));
    if (!from) return { kind: 'first-deploy', totalBytes: candidate.manifest.blobs.reduce((s, b) => s + b.size, 0) };
    const before = await fetchManifest(store, await resolveRef(store, `${r.model}@${from}`));
    return { kind: 'diff', from, fromDigest: before.digest, ...diffManifests(before.manifest, candidate.manifest) };
  } catch (err) {
    return { kind: 'unavailable', from, reason: err instanceof Error ? err.message.split('\n')[0]! : String(err) };
  }
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
