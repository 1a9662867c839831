import { ModelctlError, UsageError } from '../../core/errors.js';
import type { KubeApi } from './client.js';
import { GATEWAY_API, httpRouteCrdFacts, type HttpRouteCrdFacts } from './field-validation.js';
import { httpRouteFor, type HTTPRouteManifest } from './manifests.js';
import type { KubernetesSettings } from './settings.js';

/**
 * Which Gateway API a cluster has, and whether its HTTPRoute knows RequestMirror.percent — asked
 * before a shadow moves any traffic, and by `modelctl kubernetes check`.
 *
 * Two sources, both read-only:
 *  1. the HTTPRoute CRD (apiextensions.k8s.io/v1 customresourcedefinitions/httproutes.gateway.networking.k8s.io):
 *     its bundle-version and channel annotations and whether its v1 schema has requestMirror.percent.
 *     CRDs are cluster-scoped and modelctl's Role is namespaced, so this read is often forbidden; that is fine:
 *  2. a server-side dry run (dryRun=All, fieldValidation=Strict) of the model's HTTPRoute with a mirror
 *     filter: the API server checks it exactly as it would check the real write and persists nothing.
 *     It needs only the Role's own `patch httproutes`. A Strict refusal of `.requestMirror.percent`
 *     is the authoritative "not supported".
 */

export interface GatewayApiSupport {
  /** gateway.networking.k8s.io/v1 is served. */
  served: boolean;
  /** From the CRD, when it could be read. */
  crd: HttpRouteCrdFacts | undefined;
  /** Why the CRD could not be read (forbidden: the Role is namespaced), when it could not. */
  crdUnreadable: string | undefined;
  /** Does the cluster accept RequestMirror percent? (When neither source can tell, gatewayApiSupport throws why.) */
  mirrorPercent: boolean;
  /** How mirrorPercent was decided, in words. */
  how: string;
  /** When the cluster refused percent: the error to show (which feature needs which version, what to do). */
  refusal: UsageError | undefined;
}

/** The route the pre-flight dry-runs: the model's own route (same name, parents, hostnames), mirroring `percent`. */
export function preflightRoute(model: string, settings: KubernetesSettings, percent: number): HTTPRouteManifest {
  return httpRouteFor({ model, settings, split: { weights: { 'preflight-live': 100 }, mirror: { version: 'preflight-shadow', percent: Math.max(1, percent) } } });
}

async function readCrd(api: KubeApi): Promise<{ facts?: HttpRouteCrdFacts; unreadable?: string }> {
  try {
    const crd = await api.call({ verb: 'get', kind: 'CustomResourceDefinition', namespace: '(cluster)', name: GATEWAY_API.crdName }, () =>
      api.objects.read({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: GATEWAY_API.crdName } }),
    );
    return { facts: httpRouteCrdFacts(crd as Parameters<typeof httpRouteCrdFacts>[0]) };
  } catch (err) {
    const status = err instanceof ModelctlError ? (err.details as { status?: number }).status : undefined;
    const why = status === 403 ? 'forbidden (CRDs are cluster-scoped; the modelctl Role is namespaced)' : err instanceof Error ? err.message : String(err);
    return { unreadable: why };
  }
}

export async function gatewayApiSupport(api: KubeApi, model: string, settings: KubernetesSettings, percent = 10): Promise<GatewayApiSupport> {
  const served = await api.hasGatewayApi();
  if (!served) {
    return { served, crd: undefined, crdUnreadable: undefined, mirrorPercent: false, how: 'gateway.networking.k8s.io/v1 is not served', refusal: undefined };
  }
  const { facts, unreadable } = await readCrd(api);
  const route = preflightRoute(model, settings, percent);
  try {
    await api.apply(route, { dryRun: true });
  } catch (err) {
    const unknown = err instanceof UsageError ? (err.details as { unknownFields?: string[] }).unknownFields : undefined;
    if (unknown?.some((f) => /requestMirror\.percent$/.test(f))) {
      return { served, crd: facts, crdUnreadable: unreadable, mirrorPercent: false, how: `a server-side dry run of HTTPRoute ${route.metadata.name} was refused`, refusal: err as UsageError };
    }
    if (facts) return decideFromCrd(served, facts, `the HTTPRoute CRD (the dry run failed: ${err instanceof Error ? err.message : String(err)})`);
    throw err;
  }
  // The dry run passed. A server too old for fieldValidation (< 1.25) drops unknown fields without
  // refusing them: when the CRD could be read, its schema has the last word.
  if (facts && !facts.mirrorPercent) return decideFromCrd(served, facts, 'the HTTPRoute CRD (its schema has no requestMirror.percent)');
  return {
    served,
    crd: facts,
    crdUnreadable: unreadable,
    mirrorPercent: true,
    how: `a server-side dry run (fieldValidation=Strict) of HTTPRoute ${route.metadata.name} with a RequestMirror percent passed${facts ? ' and the CRD schema has it' : ''}`,
    refusal: undefined,
  };
}

function decideFromCrd(served: boolean, facts: HttpRouteCrdFacts, how: string): GatewayApiSupport {
  const version = `Gateway API ${facts.bundleVersion ?? '(unknown version)'}${facts.channel ? ` ${facts.channel} channel` : ''}`;
  return {
    served,
    crd: facts,
    crdUnreadable: undefined,
    mirrorPercent: facts.mirrorPercent,
    how,
    refusal: facts.mirrorPercent
      ? undefined
      : new UsageError(
          `the cluster's HTTPRoute CRD (${version}) has no requestMirror.percent: RequestMirror percent needs Gateway API ${GATEWAY_API.mirrorPercentSince}+ standard channel (${GATEWAY_API.mirrorPercentFeature}); without it a shadow would mirror 100% of requests`,
          { hint: GATEWAY_API.installHint, details: { gatewayApi: facts.bundleVersion ?? null, channel: facts.channel ?? null } },
        ),
  };
}

/** One line for people: "Gateway API v1.3.0 standard channel; RequestMirror percent supported (…how…)". */
export function describeGatewaySupport(s: GatewayApiSupport): string {
  if (!s.served) return 'no Gateway API (gateway.networking.k8s.io/v1 is not served)';
  const version = s.crd ? `Gateway API ${s.crd.bundleVersion ?? '(no bundle-version annotation)'}${s.crd.channel ? ` ${s.crd.channel} channel` : ''}` : `Gateway API (version unknown: reading the CRD was ${s.crdUnreadable ?? 'not possible'})`;
  const mirror = s.mirrorPercent ? 'RequestMirror percent supported' : 'RequestMirror percent NOT supported';
  return `${version}; ${mirror} (${s.how})`;
}
