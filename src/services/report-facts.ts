import type { ComponentDiff } from '../store/transfer.js';
import { isStartEvent } from '../core/events.js';
import type { PlanDescription } from '../rollout/describe.js';
import type { RolloutResult } from '../rollout/results.js';
import type { BundleStore } from '../store/store.js';
import type { Context } from './context.js';

/**
 * The facts a GitHub report needs that only the store or modelctl.yaml hold: what a rollout changed
 * in the bundle, and where the command ran. Looked up here, in the application layer, so that the
 * report builders in src/cli/github/ stay pure rendering of what they are given.
 */

/** What the deploy changed in the bundle, against the version that served before it. */
export type BundleChange =
  | { kind: 'first-deploy'; totalBytes: number | null }
  | { kind: 'diff'; from: string; fromDigest: string; components: ComponentDiff[]; transferBytes: number; totalBytes: number }
  | { kind: 'unavailable'; from: string | null; reason: string }
  | { kind: 'none' };

/** Where a command ran, as far as the command knows it (each part optional). */
export interface RunPlace {
  target?: string | undefined;
  namespace?: string | undefined;
  /** The store's URL (BundleStore.url). */
  store?: string | undefined;
}

/**
 * Where a rollout command ran, from its target flags (oclif has merged MODELCTL_TARGET and
 * MODELCTL_NAMESPACE into them) and the store it opened. On Kubernetes without a namespace flag,
 * modelctl.yaml's kubernetes.namespace; failing that the kube context's, which only the target
 * knows: then it is left out rather than guessed. Never throws (a summary must not fail its command).
 */
export async function runPlace(ctx: Context | undefined, flags: { target?: string | undefined; namespace?: string | undefined }, store: BundleStore | undefined): Promise<RunPlace> {
  let namespace = flags.target === 'kubernetes' ? flags.namespace : undefined;
  if (flags.target === 'kubernetes' && !namespace) {
    try {
      namespace = ctx ? (await ctx.kubernetesConfig()).section?.namespace : undefined;
    } catch {
      namespace = undefined;
    }
  }
  return { target: flags.target, namespace, store: store?.url };
}

/**
 * What the rollout changed in the bundle: the candidate's manifest against the one of the version
 * that served when it started (from the rollout-started event). Never throws: a summary must not
 * fail the command it describes.
 */
export async function bundleChange(store: BundleStore | undefined, r: RolloutResult | PlanDescription | undefined): Promise<BundleChange> {
  if (!r || !('outcome' in r) || r.events.some((e) => e.type === 'already-serving')) return { kind: 'none' };
  const start = r.events.find(isStartEvent);
  // A rollout resolved by promote/abort has no start event here: the previous stable version is
  // the first one of the stable set that is not the candidate.
  const from = start ? (typeof start.stable === 'string' ? start.stable : null) : (r.stableSet.find((v) => v !== r.version) ?? null);
  if (!start && !from) return { kind: 'none' };
  if (!store) return from ? { kind: 'unavailable', from, reason: 'no store' } : { kind: 'first-deploy', totalBytes: null };
  try {
    const { diffManifests, fetchManifest, resolveRef } = await import('../store/transfer.js');
    const candidate = await fetchManifest(store, await resolveRef(store, `${r.model}@${r.digest}`));
    if (!from) return { kind: 'first-deploy', totalBytes: candidate.manifest.blobs.reduce((s, b) => s + b.size, 0) };
    const before = await fetchManifest(store, await resolveRef(store, `${r.model}@${from}`));
    return { kind: 'diff', from, fromDigest: before.digest, ...diffManifests(before.manifest, candidate.manifest) };
  } catch (err) {
    return { kind: 'unavailable', from, reason: err instanceof Error ? err.message.split('\n')[0]! : String(err) };
  }
}
