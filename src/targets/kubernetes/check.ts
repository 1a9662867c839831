import { VersionApi } from '@kubernetes/client-node';
import { ExitCode, ModelctlError } from '../../core/errors.js';
import { parseStoreUrl } from '../../store/open.js';
import type { KubeApi, KubeConnection } from './client.js';
import { describeGatewaySupport, gatewayApiSupport } from './gateway-support.js';
import { RBAC_RULES, resourceName } from './rbac.js';
import { settingsIssues } from './render.js';
import { BUNDLE_CACHE_POD_SECURITY, formatIssue } from './validate.js';
import type { KubernetesSettings } from './settings.js';
import type { KubernetesTarget } from './target.js';

/**
 * `modelctl kubernetes check`: everything a rollout will need from a cluster, asked before the
 * first one — the API server answers, every permission of `modelctl kubernetes rbac` is granted
 * (SelfSubjectAccessReview: the cluster's own answer, nothing is written), traffic can be routed
 * (Gateway API and a parent Gateway, or replica ratio), and pods can reach the store.
 */

export interface CheckItem {
  name: 'api-server' | 'permissions' | 'traffic' | 'gateway-api' | 'settings' | 'store' | 'bundle-cache';
  ok: boolean;
  detail: string;
  hint?: string;
  /** What a failure means for a script: 9 cannot reach / not allowed, 2 configuration. */
  exitCode?: ExitCode;
}

export interface CheckReport {
  server: string;
  context: string;
  source: string;
  namespace: string;
  checks: CheckItem[];
  /** What the cluster's Gateway API is (when traffic goes through it): version, channel, mirror percent support. */
  gatewayApi?: { version: string | null; channel: string | null; mirrorPercent: boolean; how: string };
}

function fail(name: CheckItem['name'], err: unknown): CheckItem {
  const e = err instanceof ModelctlError ? err : undefined;
  return {
    name,
    ok: false,
    detail: err instanceof Error ? err.message : String(err),
    ...(e?.hint ? { hint: e.hint } : {}),
    exitCode: e?.exitCode ?? ExitCode.unavailable,
  };
}

export async function checkCluster(deps: {
  api: KubeApi;
  conn: KubeConnection;
  settings: KubernetesSettings;
  target: KubernetesTarget;
  model?: string;
  settingsFile?: string;
  namespaceFrom?: string;
}): Promise<CheckReport> {
  const { api, conn, settings } = deps;
  const ns = settings.namespace;
  const report: CheckReport = { server: conn.server, context: conn.context, source: conn.source, namespace: ns, checks: [] };

  try {
    const v = await api.call({ verb: 'get', kind: 'version', namespace: ns }, () => api.client(VersionApi).getCode());
    report.checks.push({ name: 'api-server', ok: true, detail: `Kubernetes ${v.gitVersion} at ${conn.server}` });
  } catch (err) {
    report.checks.push(fail('api-server', err));
    return report; // nothing else can be asked
  }

  try {
    const denied: string[] = [];
    for (const { rule } of RBAC_RULES) {
      for (const group of rule.apiGroups) {
        for (const res of rule.resources) {
          const [resource, subresource] = res.split('/');
          for (const verb of rule.verbs) {
            const review = await api.call({ verb: 'create', kind: 'SelfSubjectAccessReview', namespace: ns }, () =>
              api.objects.create({
                apiVersion: 'authorization.k8s.io/v1',
                kind: 'SelfSubjectAccessReview',
                metadata: {},
                spec: { resourceAttributes: { namespace: ns, verb, group, resource, ...(subresource ? { subresource } : {}) } },
              } as never),
            );
            if (!(review as { status?: { allowed?: boolean } }).status?.allowed) denied.push(`${verb} ${resourceName(res, group)}`);
          }
        }
      }
    }
    report.checks.push(
      denied.length === 0
        ? { name: 'permissions', ok: true, detail: `every permission of the modelctl Role is granted in ${ns}` }
        : {
            name: 'permissions',
            ok: false,
            detail: `not allowed in ${ns}: ${denied.join(', ')}`,
            hint: `apply the Role: modelctl kubernetes rbac --namespace ${ns} --service-account <who runs modelctl> | kubectl apply -f -`,
            exitCode: ExitCode.unavailable,
          },
    );
  } catch (err) {
    report.checks.push(fail('permissions', err));
  }

  try {
    const mode = await deps.target.trafficMode();
    report.checks.push({
      name: 'traffic',
      ok: true,
      detail:
        mode === 'gateway-api'
          ? `Gateway API: HTTPRoutes attached to ${settings.route.parentRefs.map((p) => `${p.namespace ? `${p.namespace}/` : ''}${p.name}`).join(', ')} (canary weights and shadow mirroring)`
          : 'replica ratio: no Gateway API served; canary shares are approximated by pods, shadow is not possible',
    });
    if (mode === 'gateway-api') await checkGatewayApi(deps, report);
  } catch (err) {
    report.checks.push(fail('traffic', err));
  }

  try {
    const mode = await deps.target.trafficMode().catch(() => 'replicas' as const);
    const issues = await settingsIssues({ settings, settingsFile: deps.settingsFile ?? 'modelctl.yaml', namespaceFrom: deps.namespaceFrom, mode });
    report.checks.push(
      issues.length === 0
        ? { name: 'settings', ok: true, detail: 'the kubernetes: settings pass the API server\'s rules and the upstream schemas (bundles are checked by deploy and deploy --dry-run)' }
        : { name: 'settings', ok: false, detail: issues.map(formatIssue).join('; '), hint: 'fix these in modelctl.yaml before deploying', exitCode: ExitCode.usage },
    );
  } catch (err) {
    report.checks.push(fail('settings', err));
  }

  if (settings.bundleCache) report.checks.push(await checkBundleCache(api, settings));

  const store = parseStoreUrl(settings.storeUrl);
  report.checks.push(
    store.kind === 's3'
      ? {
          name: 'store',
          ok: true,
          detail: `pods pull bundles from ${settings.storeUrl}${settings.storeSecret ? ` with the credentials of Secret ${settings.storeSecret}` : ' (no kubernetes.storeSecret: the node or pod identity must grant access)'}`,
        }
      : {
          name: 'store',
          ok: false,
          detail: `pods cannot read the local store ${settings.storeUrl}`,
          hint: 'push bundles to S3 (--store s3://bucket/prefix) or name the cluster-side store in modelctl.yaml kubernetes.store',
          exitCode: ExitCode.usage,
        },
  );
  return report;
}

const PSA_ENFORCE = 'pod-security.kubernetes.io/enforce';

/** kubernetes.bundleCache: a node directory (Pod Security) or a claim (exists, Bound, access modes). */
async function checkBundleCache(api: KubeApi, settings: KubernetesSettings): Promise<CheckItem> {
  const cache = settings.bundleCache!;
  return 'persistentVolumeClaim' in cache ? checkClaimCache(api, settings, cache.persistentVolumeClaim.claimName, cache.maxBytes) : checkHostPathCache(api, settings, cache.hostPath, cache.maxBytes);
}

/** "forbidden (…)" or the error's message: why something could not be read. */
function unreadable(err: unknown, what: string): string {
  return err instanceof ModelctlError && (err.details as { status?: number }).status === 403 ? `forbidden (${what})` : err instanceof Error ? err.message : String(err);
}

function statusOf(err: unknown): number | undefined {
  return err instanceof ModelctlError ? (err.details as { status?: number }).status : undefined;
}

/**
 * kubernetes.bundleCache is a hostPath volume: Pod Security admission refuses the pods (not the
 * Deployment, which only gets a warning) in a namespace enforcing "baseline" or "restricted". Read
 * the namespace's enforce label when allowed (a namespace is cluster-scoped: the modelctl Role may
 * not read it; then say what to look at). A cluster-wide default level (AdmissionConfiguration) is
 * not visible from here either: the detail says so.
 */
async function checkHostPathCache(api: KubeApi, settings: KubernetesSettings, hostPath: string, maxBytes: string): Promise<CheckItem> {
  const what = `node cache hostPath ${hostPath} (DirectoryOrCreate, at most ${maxBytes}) for the fetch-bundle init container`;
  let level: string | undefined;
  try {
    const ns = await api.call({ verb: 'get', kind: 'Namespace', namespace: '(cluster)', name: settings.namespace }, () =>
      api.objects.read({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: settings.namespace } }),
    );
    level = (ns as { metadata?: { labels?: Record<string, string> } }).metadata?.labels?.[PSA_ENFORCE] ?? '';
  } catch (err) {
    const why = unreadable(err, 'namespaces are cluster-scoped; the modelctl Role is namespaced');
    return { name: 'bundle-cache', ok: true, detail: `${what}; the namespace's Pod Security level could not be read: ${why}`, hint: `check \`kubectl get namespace ${settings.namespace} --show-labels\`: ${BUNDLE_CACHE_POD_SECURITY}` };
  }
  if (level === 'baseline' || level === 'restricted') {
    return {
      name: 'bundle-cache',
      ok: false,
      detail: `${what}: namespace ${settings.namespace} enforces Pod Security "${level}", which refuses hostPath volumes: every new pod would be rejected`,
      hint: BUNDLE_CACHE_POD_SECURITY,
      exitCode: ExitCode.usage,
    };
  }
  return {
    name: 'bundle-cache',
    ok: true,
    detail: `${what}; namespace ${settings.namespace} ${level ? `enforces Pod Security "${level}"` : 'has no pod-security.kubernetes.io/enforce label (the cluster default applies; it must be "privileged")'}`,
  };
}

interface Claim {
  spec?: { accessModes?: string[]; storageClassName?: string; volumeName?: string; resources?: { requests?: { storage?: string } } };
  status?: { phase?: string; accessModes?: string[]; capacity?: { storage?: string } };
}

/**
 * kubernetes.bundleCache is a PersistentVolumeClaim: every Pod Security level admits the volume
 * type and the pods meet "restricted" (manifests.ts), so what can go wrong is the claim itself. A claim that does not exist or is not Bound keeps
 * every new pod Pending (the scheduler's `persistentvolumeclaim "X" not found` / `pod has unbound
 * immediate PersistentVolumeClaims`): a failed check. Its access modes decide where pods may run:
 * ReadWriteMany on any node; ReadWriteOnce on one node only (a pod on another node waits in
 * ContainerCreating, "Multi-Attach error"); ReadWriteOncePod and ReadOnlyMany cannot hold a cache
 * that several pods write (a rollout always runs two pods of a model at once).
 */
async function checkClaimCache(api: KubeApi, settings: KubernetesSettings, claimName: string, maxBytes: string): Promise<CheckItem> {
  const ns = settings.namespace;
  const what = `cache on PersistentVolumeClaim ${claimName} (at most ${maxBytes}) for the fetch-bundle init container`;
  let claim: Claim;
  try {
    claim = (await api.call({ verb: 'get', kind: 'PersistentVolumeClaim', namespace: ns, name: claimName }, () =>
      api.objects.read({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: claimName, namespace: ns } }),
    )) as Claim;
  } catch (err) {
    if (statusOf(err) === 404) {
      return {
        name: 'bundle-cache',
        ok: false,
        detail: `${what}: namespace ${ns} has no PersistentVolumeClaim ${claimName}; every new pod would stay Pending (persistentvolumeclaim "${claimName}" not found)`,
        hint: `create it in namespace ${ns} (accessModes [ReadWriteMany] when pods may run on several nodes, storage ≥ ${maxBytes}), or name an existing claim in kubernetes.bundleCache.persistentVolumeClaim.claimName`,
        exitCode: ExitCode.usage,
      };
    }
    return { name: 'bundle-cache', ok: true, detail: `${what}; the claim could not be read: ${unreadable(err, 'get persistentvolumeclaims is not granted: a modelctl Role applied before it granted that; re-apply `modelctl kubernetes rbac`')}`, hint: `check \`kubectl -n ${ns} get pvc ${claimName}\`: it must exist and be Bound` };
  }
  const phase = claim.status?.phase ?? 'Pending';
  if (phase !== 'Bound') {
    const wanted = `${claim.spec?.storageClassName !== undefined ? `storageClassName "${claim.spec.storageClassName}", ` : ''}accessModes [${(claim.spec?.accessModes ?? []).join(', ')}], ${claim.spec?.resources?.requests?.storage ?? '?'}`;
    const waitsForPod = await bindsAtFirstPod(api, claim.spec?.storageClassName);
    if (waitsForPod) {
      return { name: 'bundle-cache', ok: true, detail: `${what}: Pending until the first pod uses it (StorageClass ${claim.spec!.storageClassName} binds WaitForFirstConsumer)` };
    }
    return {
      name: 'bundle-cache',
      ok: false,
      detail: `${what}: the claim is ${phase}, not Bound (${phase === 'Lost' ? 'its PersistentVolume is gone' : `no PersistentVolume matches ${wanted} and no provisioner made one`}); every new pod would stay Pending (pod has unbound immediate PersistentVolumeClaims)`,
      hint: `see \`kubectl -n ${ns} describe pvc ${claimName}\`: create a PersistentVolume matching its storage class, access modes and size, or fix the claim's storageClassName`,
      exitCode: ExitCode.usage,
    };
  }
  const modes = claim.status?.accessModes ?? claim.spec?.accessModes ?? [];
  const bound = `Bound to ${claim.spec?.volumeName ?? '?'}${claim.status?.capacity?.storage ? ` (${claim.status.capacity.storage})` : ''}, accessModes [${modes.join(', ')}]`;
  // The claim volume and every container modelctl writes (servingSecurity included) meet "restricted".
  const psa = 'a persistentVolumeClaim volume is admitted by every Pod Security level, and these pods pass "restricted"';
  if (modes.includes('ReadWriteMany')) return { name: 'bundle-cache', ok: true, detail: `${what}: ${bound}: pods on any node share it; ${psa}` };
  if (modes.includes('ReadWriteOnce')) {
    return {
      name: 'bundle-cache',
      ok: true,
      detail: `${what}: ${bound}: ReadWriteOnce attaches it to one node at a time, so every pod of every version must run on that node (a pod scheduled elsewhere waits in ContainerCreating with a Multi-Attach error); ${psa}`,
      hint: 'fine on a one-node cluster or with a kubernetes.nodeSelector naming one node; otherwise use a ReadWriteMany claim',
    };
  }
  return {
    name: 'bundle-cache',
    ok: false,
    detail: `${what}: ${bound}: ${modes.includes('ReadWriteOncePod') ? 'ReadWriteOncePod admits a single pod in the whole cluster, and a rollout runs several (the stable version and the candidate)' : 'the cache is written by the pods: a read-only claim cannot hold it'}`,
    hint: 'use a claim with accessModes [ReadWriteMany] (or [ReadWriteOnce] on a one-node cluster)',
    exitCode: ExitCode.usage,
  };
}

/** Whether the claim's StorageClass binds at the first pod (WaitForFirstConsumer); false when unknown. */
async function bindsAtFirstPod(api: KubeApi, storageClassName: string | undefined): Promise<boolean> {
  if (!storageClassName) return false;
  try {
    const sc = (await api.objects.read({ apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: storageClassName } })) as { volumeBindingMode?: string };
    return sc.volumeBindingMode === 'WaitForFirstConsumer';
  } catch {
    // Not readable (cluster-scoped, not in the Role) or absent (a static PV may carry any class name).
    return false;
  }
}

/** Which Gateway API, and whether a shadow can mirror a share (only shadow needs it: never a failure by itself). */
async function checkGatewayApi(deps: { api: KubeApi; settings: KubernetesSettings; model?: string }, report: CheckReport): Promise<void> {
  try {
    const g = await gatewayApiSupport(deps.api, deps.model ?? 'modelctl-check', deps.settings);
    report.gatewayApi = { version: g.crd?.bundleVersion ?? null, channel: g.crd?.channel ?? null, mirrorPercent: g.mirrorPercent, how: g.how };
    report.checks.push({
      name: 'gateway-api',
      ok: true,
      detail: `${describeGatewaySupport(g)}${g.refusal ? ` — --shadow will be refused: ${g.refusal.message}; ${g.refusal.hint ?? ''}` : ''}`,
    });
  } catch (err) {
    report.checks.push(fail('gateway-api', err));
  }
}

/** 0 when every check passed; 9 when the cluster cannot be reached or refuses something; else 2 (configuration). */
export function checkExitCode(report: CheckReport): ExitCode {
  const failed = report.checks.filter((c) => !c.ok);
  if (failed.length === 0) return ExitCode.ok;
  return failed.some((c) => c.exitCode === ExitCode.unavailable) ? ExitCode.unavailable : (failed[0]!.exitCode ?? ExitCode.usage);
}
