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

/**
 * kubernetes.bundleCache is a hostPath volume: Pod Security admission refuses the pods (not the
 * Deployment, which only gets a warning) in a namespace enforcing "baseline" or "restricted". Read
 * the namespace's enforce label when allowed (a namespace is cluster-scoped: the modelctl Role may
 * not read it; then say what to look at). A cluster-wide default level (AdmissionConfiguration) is
 * not visible from here either: the detail says so.
 */
async function checkBundleCache(api: KubeApi, settings: KubernetesSettings): Promise<CheckItem> {
  const cache = settings.bundleCache!;
  const what = `node cache hostPath ${cache.hostPath} (DirectoryOrCreate, at most ${cache.maxBytes}) for the fetch-bundle init container`;
  let level: string | undefined;
  try {
    const ns = await api.call({ verb: 'get', kind: 'Namespace', namespace: '(cluster)', name: settings.namespace }, () =>
      api.objects.read({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: settings.namespace } }),
    );
    level = (ns as { metadata?: { labels?: Record<string, string> } }).metadata?.labels?.[PSA_ENFORCE] ?? '';
  } catch (err) {
    const why = err instanceof ModelctlError && (err.details as { status?: number }).status === 403 ? 'forbidden (namespaces are cluster-scoped; the modelctl Role is namespaced)' : err instanceof Error ? err.message : String(err);
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
