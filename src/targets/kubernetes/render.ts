import type { ServeSpec } from '../../bundle/serve.js';
import { UsageError } from '../../core/errors.js';
import type { RolloutPlan, TrafficSplit, VersionRef } from '../../core/model.js';
import { deploymentFor, httpRouteFor, modelServiceFor, SERVICE_PORT, serviceFor } from './manifests.js';
import { versionObjectName } from './names.js';
import { replicaPlan } from './replicas.js';
import type { KubernetesSettings } from './settings.js';
import { assertNoIssues, STORE_FIELD, validationIssues, type ValidationIssue } from './validate.js';

/**
 * Every object a rollout will send, step by step, without a cluster: what `deploy --dry-run`
 * prints and what validation checks before a real deploy writes anything. Pure.
 *
 *   versions  each version's Deployment and Service (the candidate created out of traffic)
 *   go-live   first deploy: all traffic to the candidate
 *   shadow    the live split unchanged, a RequestMirror percent to the candidate
 *   canary    each step's split (HTTPRoute weights, or replica counts in replica-ratio mode)
 *   promote   100% on the candidate; the old stable scaled to its warm size
 *
 * Gateway API mode changes traffic by HTTPRoute (one whole object per step); replica-ratio mode by
 * replica counts and in-service labels (merge patches of fields modelctl alone owns: listed as counts,
 * not as objects). The ledger ConfigMap and the Lease are left out: their content is the rollout's
 * own record, not something a reviewer approves.
 */

export type TrafficMode = 'gateway-api' | 'replicas';

/**
 * How traffic moves: kubernetes.traffic, and for `auto` whether the cluster serves the Gateway API.
 * `installed` undefined = no cluster to ask (deploy --dry-run without one): `auto` then assumes the
 * Gateway API when a parent Gateway is configured. `why` says which, for people.
 */
export function decideTrafficMode(settings: KubernetesSettings, installed: boolean | undefined, server: string): { mode: TrafficMode; why: string } {
  const wanted = settings.traffic;
  if (wanted === 'gateway-api' && installed === false) {
    throw new UsageError(`kubernetes.traffic is gateway-api but ${server} does not serve gateway.networking.k8s.io/v1`, {
      hint: 'install the Gateway API CRDs and an implementation, or set kubernetes.traffic: replicas (canary by replica ratio)',
    });
  }
  const gateway = wanted === 'gateway-api' || (wanted === 'auto' && (installed ?? settings.route.parentRefs.length > 0));
  if (gateway && settings.route.parentRefs.length === 0) {
    throw new UsageError('the HTTPRoute needs a Gateway to attach to: kubernetes.route.parentRefs is empty in modelctl.yaml', {
      hint: 'e.g. kubernetes: {route: {parentRefs: [{name: public-gateway, namespace: gateways}]}} (or kubernetes.traffic: replicas)',
    });
  }
  const mode: TrafficMode = gateway ? 'gateway-api' : 'replicas';
  const why =
    wanted !== 'auto'
      ? `kubernetes.traffic: ${wanted}`
      : installed === undefined
        ? `kubernetes.traffic: auto, assumed ${mode} because kubernetes.route.parentRefs is ${gateway ? 'set' : 'empty'} (no cluster to ask)`
        : `kubernetes.traffic: auto, and ${server} ${installed ? 'serves' : 'does not serve'} the Gateway API`;
  return { mode, why };
}

export interface RenderVersion {
  ref: VersionRef;
  serve: ServeSpec;
}

export interface RenderInput {
  candidate: RenderVersion;
  /** The serving version (null: first deploy, or not known without a cluster). */
  stable: RenderVersion | null;
  plan: RolloutPlan;
  settings: KubernetesSettings;
  mode: TrafficMode;
}

export interface RenderedStep {
  name: string;
  phase: 'versions' | 'go-live' | 'shadow' | 'canary' | 'promote';
  /** The split the step applies (null for the versions step). */
  split: TrafficSplit | null;
  /** Objects applied whole by server-side apply. */
  objects: object[];
  /** Replica-ratio mode, and the promotion: pods and service membership per version after the step. */
  replicas?: Record<string, { replicas: number; inService?: boolean }>;
  note?: string;
}

function splits(input: RenderInput): Array<{ name: string; phase: RenderedStep['phase']; split: TrafficSplit }> {
  const { candidate, stable, plan } = input;
  const c = candidate.ref.version;
  if (!stable || stable.ref.version === c) return [{ name: `go live: all traffic to ${c}`, phase: 'go-live', split: { weights: { [c]: 100 }, mirror: null } }];
  const s = stable.ref.version;
  const out: Array<{ name: string; phase: RenderedStep['phase']; split: TrafficSplit }> = [];
  if (plan.shadowPercent > 0) {
    out.push({ name: `shadow: ${plan.shadowPercent}% of requests mirrored to ${c}`, phase: 'shadow', split: { weights: { [s]: 100 }, mirror: { version: c, percent: plan.shadowPercent } } });
  }
  if (!plan.shadowOnly) {
    for (const w of plan.steps) {
      if (w >= 100) out.push({ name: `promote: all traffic to ${c}`, phase: 'promote', split: { weights: { [c]: 100 }, mirror: null } });
      else out.push({ name: `canary ${w}%`, phase: 'canary', split: { weights: { [s]: 100 - w, [c]: w }, mirror: null } });
    }
  }
  return out;
}

export function renderRollout(input: RenderInput): RenderedStep[] {
  const { candidate, stable, settings, mode } = input;
  const model = candidate.ref.model;
  const versions = [candidate, ...(stable && stable.ref.version !== candidate.ref.version ? [stable] : [])];
  const inService = (v: RenderVersion) => (mode === 'replicas' ? v === stable : undefined);
  // The candidate's meter compares mirrored answers with the stable Service (shadow-compare.ts). The
  // target writes that Service's ClusterIP, which only the cluster knows; a rendering shows its DNS
  // name instead (same Service, same port).
  const compareWith = mode === 'gateway-api' && versions.length > 1 && stable ? `${versionObjectName(model, stable.ref.version)}.${settings.namespace}.svc:${SERVICE_PORT}` : undefined;
  const first: RenderedStep = {
    name: `versions: ${versions.map((v) => `${v.ref.model}@${v.ref.version}`).join(', ')}`,
    phase: 'versions',
    split: null,
    objects: versions.flatMap((v) => [
      deploymentFor({ ref: v.ref, serve: v.serve, settings, replicas: settings.replicas, inService: inService(v), compareWith: v === candidate ? compareWith : undefined }),
      serviceFor({ ref: v.ref, settings }),
    ]),
  };
  if (mode === 'replicas') first.objects.push(modelServiceFor({ model, settings }));
  const steps: RenderedStep[] = [first];
  for (const s of splits(input)) {
    const step: RenderedStep = { ...s, objects: [] };
    if (mode === 'gateway-api') {
      step.objects.push(httpRouteFor({ model, split: s.split, settings }));
      if (s.phase === 'promote' && stable) step.replicas = { [candidate.ref.version]: { replicas: settings.replicas }, [stable.ref.version]: { replicas: settings.warmReplicas } };
    } else {
      // Refuses a mirror (UsageError) as the real target does, before anything is written.
      const rp = replicaPlan(s.split, { servingReplicas: settings.replicas, warmReplicas: settings.warmReplicas, stableSet: stable ? [stable.ref.version] : [] }, model);
      step.replicas = Object.fromEntries(Object.entries(rp.versions).map(([v, r]) => [v, { replicas: r.replicas, inService: r.inService }]));
      if (rp.note) step.note = rp.note;
    }
    steps.push(step);
  }
  return steps;
}

export interface RolloutValidationInput extends RenderInput {
  /** modelctl.yaml's path, for messages. */
  settingsFile: string;
  /** Where the namespace came from, for messages. */
  namespaceFrom?: string | undefined;
}

/**
 * The one validation of a Kubernetes rollout — run by a real deploy (before the ledger or the cluster
 * is written), `deploy --dry-run` and `kubernetes check` (settings alone: no versions).
 */
export async function rolloutIssues(input: RolloutValidationInput): Promise<{ steps: RenderedStep[]; issues: ValidationIssue[] }> {
  const steps = renderRollout(input);
  const versions = [input.candidate, ...(input.stable && input.stable.ref.version !== input.candidate.ref.version ? [input.stable] : [])];
  const issues = await validationIssues({
    settings: input.settings,
    settingsFile: input.settingsFile,
    ...(input.namespaceFrom ? { namespaceFrom: input.namespaceFrom } : {}),
    versions,
    manifests: steps.flatMap((s) => s.objects),
  });
  return { steps, issues };
}

/** rolloutIssues, throwing every issue at once (UsageError, exit 2). */
export async function validateRollout(input: RolloutValidationInput): Promise<RenderedStep[]> {
  const { steps, issues } = await rolloutIssues(input);
  assertNoIssues(issues);
  return steps;
}

/**
 * `kubernetes check`: the settings alone (no version is named), through the same validation — the
 * objects are rendered for a stand-in version whose bundle asks for nothing, so every issue found is
 * in modelctl.yaml (or the namespace's source).
 */
export async function settingsIssues(opts: { settings: KubernetesSettings; settingsFile: string; namespaceFrom?: string | undefined; mode: TrafficMode }): Promise<ValidationIssue[]> {
  const standIn: RenderVersion = { ref: { model: 'modelctl-check', version: '0.0.0', digest: `sha256:${'0'.repeat(64)}` }, serve: { command: ['true'], readinessPath: '/healthz', env: {}, stopGraceMs: 5000 } };
  const plan: RolloutPlan = { steps: [], intervalMs: 0, checkEveryMs: 0, shadowPercent: 0, shadowDurationMs: 0, shadowOnly: false, gates: [], readyTimeoutMs: 0 };
  const { issues } = await rolloutIssues({ candidate: standIn, stable: null, plan, ...opts });
  // The store has its own line in `kubernetes check`.
  return issues.filter((i) => i.field !== STORE_FIELD);
}
