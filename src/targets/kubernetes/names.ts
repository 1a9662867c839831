import { createHash } from 'node:crypto';

/**
 * Names and labels of everything modelctl creates in a namespace. Pure, so the manifests, the
 * target, RBAC and the tests agree on one spelling.
 *
 * Object names are DNS-1123 labels (≤ 63 chars, [a-z0-9-], alphanumeric at both ends): Service
 * names must be, and using the same rule everywhere keeps `<model>-<version slug>` one name.
 */

export const LABEL_PREFIX = 'modelctl.dev';
export const LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  name: 'app.kubernetes.io/name',
  version: 'app.kubernetes.io/version',
  model: `${LABEL_PREFIX}/model`,
  /** The version slug (label values cannot hold "+"), the exact version is an annotation. */
  versionSlug: `${LABEL_PREFIX}/version`,
  /** sha256 hex of the bundle digest, first 63 chars (a label value is at most 63). */
  digest: `${LABEL_PREFIX}/digest`,
  /** Replica-ratio traffic only: pods of versions that receive live traffic carry "true". */
  inService: `${LABEL_PREFIX}/in-service`,
  /** What an object is for: version (Deployment/Service), route, ledger, lock. */
  component: `${LABEL_PREFIX}/component`,
} as const;

export const ANNOTATIONS = {
  version: `${LABEL_PREFIX}/version`,
  digest: `${LABEL_PREFIX}/digest`,
  /** Lease: pid and host of the holder (a Lease only has holderIdentity). */
  holderPid: `${LABEL_PREFIX}/holder-pid`,
  holderHost: `${LABEL_PREFIX}/holder-host`,
  /** On a version's Deployment once it carried traffic: losing it scales it to the warm size, not away. */
  served: `${LABEL_PREFIX}/served`,
} as const;

export const MANAGED_BY = 'modelctl';
/**
 * The header of an evaluation replay's requests (evaluate.ts): the version's meter forwards them to
 * the model but never records them in its windows — a replay is not live traffic.
 */
export const EVALUATION_HEADER = 'x-modelctl-evaluation';
/**
 * The header of a shadow comparison's own request (shadow-compare.ts, candidate meter → stable
 * Service): the stable's meter forwards it without recording it.
 */
export const COMPARE_HEADER = 'x-modelctl-compare';
/**
 * Headers that keep a request out of the meters' windows. Only modelctl may set them: every
 * HTTPRoute rule modelctl writes removes them from what comes through the Gateway (manifests.ts),
 * else any client of the public route could hide its requests (its errors) from every gate.
 */
export const UNMETERED_HEADERS = [EVALUATION_HEADER, COMPARE_HEADER] as const;
/** The one server-side-apply field manager of every write modelctl makes. */
export const FIELD_MANAGER = 'modelctl';

const MAX_NAME = 63;

/**
 * A version as a DNS-1123 fragment: "1.4.0" → "1-4-0", "2.0.0-rc.1+sha.abc" → "2-0-0-rc-1-sha-abc".
 * Distinct versions can map to one slug ("1.0.0-a.b" vs "1.0.0-a-b"); objectName() adds a hash
 * of the exact version whenever the slug is not the plain dotted form, so names never collide.
 */
export function versionSlug(version: string): string {
  return version
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

function shortHash(text: string, n = 6): string {
  return createHash('sha256').update(text).digest('hex').slice(0, n);
}

/** Fit `base` into a DNS-1123 label, keeping it unique with a hash suffix when it had to be cut. */
function fitName(base: string, exact: string): string {
  if (base.length <= MAX_NAME) return base;
  const suffix = `-${shortHash(exact, 8)}`;
  return base.slice(0, MAX_NAME - suffix.length).replace(/-+$/g, '') + suffix;
}

/**
 * How object names of a model begin: the model name, or `m-<model>` when it starts with a digit —
 * bundle names are DNS-1123 labels (a leading digit is fine) but Service names must be DNS-1035
 * labels (a letter first), and the API server would refuse the Service.
 */
function namePrefix(model: string): string {
  return /^[a-z]/.test(model) ? model : `m-${model}`;
}

/** `<model>-<version slug>`: the Deployment and the Service of one version. */
export function versionObjectName(model: string, version: string): string {
  const slug = versionSlug(version);
  // Only a plain x.y.z is unambiguous after slugging; anything else gets a hash of the exact version.
  const plain = /^\d+\.\d+\.\d+$/.test(version);
  const prefix = namePrefix(model);
  const base = plain ? `${prefix}-${slug}` : `${prefix}-${slug}-${shortHash(version)}`;
  return fitName(base, `${model}@${version}`);
}

/** The model's HTTPRoute (Gateway API) or its Service (replica ratio), unless modelctl.yaml names the route. */
export function modelObjectName(model: string): string {
  return fitName(namePrefix(model), model);
}

export function ledgerConfigMapName(model: string): string {
  return fitName(`modelctl-ledger-${model}`, model);
}

export function leaseName(model: string): string {
  return fitName(`modelctl-lock-${model}`, model);
}

/** A label value: ≤ 63 chars of [A-Za-z0-9._-], alphanumeric at both ends. */
export function labelValue(text: string): string {
  const cleaned = text.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  return cleaned.length <= MAX_NAME ? cleaned : cleaned.slice(0, MAX_NAME).replace(/[^A-Za-z0-9]+$/g, '');
}

/** Labels that select one version's pods (also the Deployment's immutable selector). */
export function versionSelector(model: string, version: string): Record<string, string> {
  return { [LABELS.model]: model, [LABELS.versionSlug]: labelValue(versionObjectName(model, version).slice(namePrefix(model).length + 1)) };
}

/** Every label of one version's objects (selector + descriptive ones). */
export function versionLabels(model: string, version: string, digest: string): Record<string, string> {
  return {
    ...versionSelector(model, version),
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.name]: model,
    [LABELS.version]: labelValue(version),
    [LABELS.digest]: labelValue(digest.replace(/^sha256:/, '')),
    [LABELS.component]: 'version',
  };
}

/** "modelctl.dev/model=sentiment,modelctl.dev/version=1-4-0" */
export function selectorString(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
