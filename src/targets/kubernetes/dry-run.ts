import semver from 'semver';
import { UnavailableError, UsageError } from '../../core/errors.js';
import type { RolloutPlan, VersionRef } from '../../core/model.js';
import { list } from '../../store/transfer.js';
import type { BundleStore } from '../../store/store.js';
import { NoKubeConfigError } from './client.js';
import { assertServiceProxyAllowed } from './evaluate.js';
import { describeGatewaySupport, gatewayApiSupport } from './gateway-support.js';
import { openKubernetes, type KubernetesParts } from './open.js';
import { decideTrafficMode, validateRollout, type RenderedStep, type TrafficMode } from './render.js';
import { serveSpecOf } from './serve-spec.js';
import { resolveKubernetesSettings, type KubernetesConfig, type KubernetesSettings } from './settings.js';

/**
 * `deploy --target kubernetes --dry-run`: the plan and every object of the rollout, validated,
 * with or without a cluster.
 *
 * Without one (no kubeconfig at all: GitOps review, CI lint) everything comes from modelctl.yaml,
 * flags and the store: the namespace from --namespace or kubernetes.namespace, else "default"; the
 * traffic mode from kubernetes.traffic (auto: Gateway API when a parent Gateway is configured); the
 * serving version, which only the cluster's ledger knows, is assumed to be the newest stored version
 * below the candidate (none: a first deploy). Every assumption is listed in `assumed`.
 *
 * With a cluster, it adds what only the cluster knows — the serving version (the ledger), whether the
 * Gateway API is served and supports RequestMirror percent, whether eval gates may use the service
 * proxy (the access review checkPlan asks) — and runs a server-side dry run
 * (dryRun=All, fieldValidation=Strict: nothing persisted) of every object; `fromCluster` lists it.
 * Nothing is written either way.
 */

export interface KubernetesDryRunRequest {
  store: BundleStore;
  /** modelctl.yaml's kubernetes: section, as the context read it. */
  config: KubernetesConfig;
  flags: { kubeconfig?: string | undefined; context?: string | undefined; namespace?: string | undefined };
  ref: VersionRef;
  plan: RolloutPlan;
  note?: ((message: string) => void) | undefined;
}

export interface KubernetesDryRun {
  namespace: string;
  traffic: TrafficMode;
  /** The cluster asked, or null (none configured, or unreachable: see assumed). */
  cluster: { server: string; context: string; source: string } | null;
  /** What the cluster told (empty without one). */
  fromCluster: string[];
  /** What was assumed or defaulted for lack of a cluster (or of an answer). */
  assumed: string[];
  /** Where the namespace and the traffic mode came from. */
  namespaceFrom: string;
  trafficFrom: string;
  /** The serving version the steps are rendered against (null: a first deploy). */
  stable: string | null;
  steps: RenderedStep[];
}

/** Newest stored version of the model below `version` (the likely serving one when no cluster can say). */
async function previousStored(store: BundleStore, ref: VersionRef): Promise<VersionRef | null> {
  const entries = await list(store, ref.model);
  const prev = entries.find((e) => semver.valid(e.version) && semver.lt(e.version, ref.version));
  return prev ? { model: ref.model, version: prev.version, digest: prev.digest } : null;
}

function offlineSettings(req: KubernetesDryRunRequest, file: string): { settings: KubernetesSettings; namespaceFrom: string } {
  const section = req.config.section;
  const namespace = req.flags.namespace ?? section?.namespace ?? 'default';
  const namespaceFrom = req.flags.namespace ? '--namespace' : section?.namespace ? file : 'the default namespace';
  return { settings: resolveKubernetesSettings(section, { namespace, storeUrl: req.store.url, where: file }), namespaceFrom };
}

/** Open the cluster when one is configured; undefined when none is (not an error for a dry run). */
function openCluster(req: KubernetesDryRunRequest): KubernetesParts | undefined {
  try {
    return openKubernetes({ flags: req.flags, config: req.config, store: req.store, ...(req.note ? { note: req.note } : {}) });
  } catch (err) {
    if (err instanceof NoKubeConfigError) return undefined;
    throw err;
  }
}

export async function kubernetesDryRun(req: KubernetesDryRunRequest): Promise<KubernetesDryRun> {
  const file = req.config.file ?? 'modelctl.yaml';
  const assumed: string[] = [];
  const fromCluster: string[] = [];
  let parts = openCluster(req);
  let stableRef: VersionRef | null = null;
  let installed: boolean | undefined;

  if (parts) {
    try {
      const { doc } = await parts.ledger.read(req.ref.model);
      const serving = doc.stableSet[0] ?? null;
      const release = serving ? doc.releases.find((r) => r.version === serving) : undefined;
      stableRef = serving && release ? { model: req.ref.model, version: serving, digest: release.digest } : null;
      fromCluster.push(serving ? `serving version ${serving} (the ledger ConfigMap)` : `no version of ${req.ref.model} serves yet (the ledger ConfigMap): a first deploy`);
      installed = await parts.api.hasGatewayApi();
      fromCluster.push(`the Gateway API is ${installed ? '' : 'not '}served (API discovery)`);
    } catch (err) {
      // Configured but not answering: still render (review and lint need no cluster), and say so.
      if (!(err instanceof UnavailableError) || (err.details as { status?: number }).status !== undefined) throw err;
      assumed.push(`the cluster ${parts.conn.server} did not answer (${err.message}): rendered without it`);
      parts = undefined;
    }
  }

  const { settings, namespaceFrom } = parts ? { settings: parts.settings, namespaceFrom: parts.namespaceFrom } : offlineSettings(req, file);
  if (!parts) {
    if (!fromCluster.length && !assumed.length) assumed.push('no Kubernetes cluster is configured: rendered from modelctl.yaml, flags and the store');
    if (namespaceFrom === 'the default namespace') assumed.push('namespace "default" (no --namespace, no kubernetes.namespace in modelctl.yaml)');
    stableRef = await previousStored(req.store, req.ref);
    assumed.push(
      stableRef
        ? `serving version ${stableRef.version}: only the cluster's ledger knows; assumed the newest stored version below ${req.ref.version}`
        : `a first deploy: only the cluster's ledger knows what serves, and no stored version is below ${req.ref.version}`,
    );
  }
  const traffic = decideTrafficMode(settings, installed, parts?.api.server ?? '(no cluster)');
  if (installed === undefined) assumed.push(traffic.why);

  const candidate = { ref: req.ref, serve: await serveSpecOf(req.store, req.ref) };
  const stable = stableRef && stableRef.version !== req.ref.version ? { ref: stableRef, serve: await serveSpecOf(req.store, stableRef) } : null;
  if (req.plan.shadowPercent > 0 && traffic.mode === 'replicas') {
    throw new UsageError('shadow traffic needs the Gateway API (RequestMirror): replica-ratio traffic cannot copy requests', {
      hint: 'install the Gateway API and an implementation (kubernetes.traffic: gateway-api), or deploy without --shadow',
    });
  }
  // The same validation as a real deploy: every issue at once, exit 2, before anything else is asked.
  const steps = await validateRollout({ candidate, stable, plan: req.plan, settings, mode: traffic.mode, settingsFile: file, namespaceFrom });

  if (parts) {
    if (req.plan.shadowPercent > 0 && traffic.mode === 'gateway-api') {
      const g = await gatewayApiSupport(parts.api, req.ref.model, settings, req.plan.shadowPercent);
      if (g.refusal) throw g.refusal;
      fromCluster.push(describeGatewaySupport(g));
    }
    // Eval gates replay through the service proxy: the same access review checkPlan asks (exit 9 when refused).
    if (req.plan.gates.some((g) => g.kind === 'eval')) {
      await assertServiceProxyAllowed(parts.api, settings.namespace);
      fromCluster.push(`"create" on services/proxy is allowed in ${settings.namespace} (SelfSubjectAccessReview): the evaluation replay can reach the version Services`);
    }
    const objects = steps.flatMap((s) => s.objects) as Array<{ kind: string; metadata: { name: string; namespace: string } }>;
    for (const o of objects) await parts.api.apply(o, { dryRun: true });
    fromCluster.push(`a server-side dry run (dryRun=All, fieldValidation=Strict) accepted all ${objects.length} objects`);
  }

  return {
    namespace: settings.namespace,
    traffic: traffic.mode,
    cluster: parts ? { server: parts.conn.server, context: parts.conn.context, source: parts.conn.source } : null,
    fromCluster,
    assumed,
    namespaceFrom,
    trafficFrom: traffic.why,
    stable: stable?.ref.version ?? null,
    steps,
  };
}
