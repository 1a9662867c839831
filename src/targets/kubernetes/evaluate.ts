import { HttpMethod, IsomorphicFetchHttpLibrary, RequestContext, type KubeConfig } from '@kubernetes/client-node';
import { UnavailableError } from '../../core/errors.js';
import type { EvaluationAnswer, EvaluationRequest } from '../../core/ports.js';
import type { KubeApi } from './client.js';
import { MAX_PARSE_BYTES, readBounded } from '../local/http-util.js';
import { EVALUATION_HEADER } from './names.js';
import { describePermission } from './rbac.js';

/**
 * Evaluation replay on Kubernetes: one case POSTed to one version alone, through the API server's
 * service proxy — `POST /api/v1/namespaces/{ns}/services/{version Service}:http/proxy/{path}`.
 *
 * Why the Service proxy (and not the pod proxy, nor the Gateway):
 * - It is the path the target serves, minus the split: the API server resolves the version's own
 *   Service to one of its *ready* endpoints (as the Gateway resolves a backendRef) and dials the
 *   pod's traffic port, so the case goes through the meter to the model exactly like a live
 *   request. The Gateway cannot be asked for one version alone without changing the route.
 * - One request per case: the pod proxy would need a pod list and a choice of ready pod first.
 * - The least permission: `create services/proxy` reaches only the ports a Service exposes (the
 *   meter's traffic port), where `create pods/proxy` would open every port of every pod.
 * - The CLI needs no network path to the cluster's pods or ClusterIPs (a laptop, a CI runner).
 *
 * Not live traffic: every request carries EVALUATION_HEADER, which the meter forwards to the model
 * but never records in its windows, so gates never count a replay and the candidate's windows stay
 * empty until the first live request.
 *
 * Bounded: the request's timeout and AbortSignal cover the whole exchange (headers and body); the
 * answer is read up to MAX_EVALUATION_ANSWER_BYTES — the bound the meter and the local router read
 * answers within (MAX_PARSE_BYTES, 1 MiB) — and a larger one is an error, not a truncated answer
 * judged as if it were whole. At most `concurrency` (≤ 64) answers are in memory at once.
 *
 * Errors: an answer of the version (any status, the meter's own 502/504 included) is returned as is;
 * an error of the API server itself (a metav1.Status: no Service, no ready endpoint, forbidden…) and
 * a timeout are thrown, which the replay records as an answer with status 0 and the message.
 * Nothing is retried: a replay measures the version, and a retry would hide its errors.
 */

export const MAX_EVALUATION_ANSWER_BYTES = MAX_PARSE_BYTES;

export interface ServiceAddress {
  namespace: string;
  /** The version's Service. */
  service: string;
  /** The Service port's name (or number), as the service proxy takes it. */
  port: string;
}

/**
 * Evaluation replay POSTs through the service proxy (`create services/proxy`), a permission a Role
 * written before eval gates existed lacks: asked (SelfSubjectAccessReview, nothing written) before
 * the rollout starts — by checkPlan and by `deploy --dry-run` alike — so a missing permission is
 * refused up front (UnavailableError, exit 9) rather than turned, case by case, into error answers
 * that would roll a good candidate back.
 */
export async function assertServiceProxyAllowed(api: KubeApi, namespace: string): Promise<void> {
  const review = await api.call({ verb: 'create', kind: 'SelfSubjectAccessReview', namespace }, () =>
    api.objects.create({
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SelfSubjectAccessReview',
      metadata: {},
      spec: { resourceAttributes: { namespace, verb: 'create', group: '', resource: 'services', subresource: 'proxy' } },
    } as never),
  );
  const status = (review as { status?: { allowed?: boolean; reason?: string } }).status;
  if (status?.allowed) return;
  throw new UnavailableError(`kind eval gates replay their cases through the API server's service proxy, and the cluster does not allow "create" on services/proxy in namespace ${namespace}${status?.reason ? ` (${status.reason})` : ''}`, {
    hint: `apply the Role printed by \`modelctl kubernetes rbac --namespace ${namespace}\` (it grants create on services/proxy), or drop the eval gates`,
    details: { verb: 'create', resource: 'services/proxy', namespace },
  });
}

/** The service proxy URL of `path` (which may carry a query) on `a`, under the cluster's server URL (which may have a path prefix). */
export function serviceProxyUrl(server: string, a: ServiceAddress, path: string): string {
  const rel = path.startsWith('/') ? path : `/${path}`;
  return `${server.replace(/\/+$/, '')}/api/v1/namespaces/${encodeURIComponent(a.namespace)}/services/${encodeURIComponent(a.service)}:${encodeURIComponent(a.port)}/proxy${rel}`;
}

/** An answer that is the API server's own error (a metav1.Status), not the version's. */
function apiServerStatus(status: number, headers: Record<string, string>, body: Buffer): { message: string; reason?: string } | undefined {
  if (status < 400 || !(headers['content-type'] ?? '').includes('application/json')) return undefined;
  try {
    const s = JSON.parse(body.toString('utf8')) as { kind?: unknown; apiVersion?: unknown; status?: unknown; message?: unknown; reason?: unknown };
    if (s.kind !== 'Status' || s.apiVersion !== 'v1' || s.status !== 'Failure') return undefined;
    return { message: typeof s.message === 'string' ? s.message : `HTTP ${status}`, ...(typeof s.reason === 'string' ? { reason: s.reason } : {}) };
  } catch {
    return undefined;
  }
}

/**
 * POST one evaluation case to `address` through the API server's service proxy. Resolves with the
 * version's answer (status, body, latency); throws on a timeout, an abort, an answer too large, or
 * an error of the API server (see above).
 */
export async function evaluateThroughService(kc: KubeConfig, address: ServiceAddress, request: EvaluationRequest, opts: { maxBytes?: number } = {}): Promise<EvaluationAnswer> {
  const max = opts.maxBytes ?? MAX_EVALUATION_ANSWER_BYTES;
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('the current kube context names no cluster server');
  const what = `${request.what ? `${request.what} from ` : ''}Service ${address.namespace}/${address.service}`;
  const timeout = AbortSignal.timeout(request.timeoutMs);
  const signal = request.signal ? AbortSignal.any([request.signal, timeout]) : timeout;
  const t0 = performance.now();
  const ctx = new RequestContext(serviceProxyUrl(server, address, request.path), HttpMethod.POST);
  ctx.setHeaderParam('Content-Type', 'application/json');
  ctx.setHeaderParam('Accept', 'application/json, */*');
  ctx.setHeaderParam(EVALUATION_HEADER, '1');
  ctx.setBody(JSON.stringify(request.body));
  ctx.setSignal(signal);
  // The kubeconfig's credentials and TLS settings (its pooled dispatcher, see client.ts reuseConnections).
  await kc.applySecurityAuthentication(ctx);
  const res = await new IsomorphicFetchHttpLibrary().send(ctx).toPromise();
  const body = await readBounded(res.body.stream(), max, what);
  const latencyMs = performance.now() - t0;
  const status = apiServerStatus(res.httpStatusCode, res.headers, body);
  if (status) {
    const rule = res.httpStatusCode === 403 ? describePermission('create', 'services/proxy', '') : undefined;
    const hint =
      res.httpStatusCode === 403
        ? `; modelctl needs "create" on services/proxy${rule ? ` (${rule})` : ''}: apply the Role printed by \`modelctl kubernetes rbac --namespace ${address.namespace}\``
        : '';
    throw new Error(`the API server could not proxy to ${what} (HTTP ${res.httpStatusCode}${status.reason ? ` ${status.reason}` : ''}): ${status.message}${hint}`);
  }
  return { status: res.httpStatusCode, body, latencyMs };
}
