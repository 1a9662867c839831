/**
 * metav1.Status objects, shaped exactly like the ones the real API server returns, and an Error
 * carrying one so that pure logic (store, apply, admission) can fail with the right answer and the
 * HTTP layer only has to serialize it.
 */
import type { ResourceDef } from './resources.js';

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: string;
  details?: StatusDetails;
  /** Absent on Success statuses, like the real ones. */
  code?: number;
}

export class KubeError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(message);
  }

  toStatus(): Status {
    const s: Status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason, code: this.code };
    // An error the apiserver did not turn into a Status (e.g. SSA's typed-patch failure) has no reason.
    if (!this.reason) delete s.reason;
    if (this.details) s.details = this.details;
    return s;
  }
}

/** `deployments.apps` for grouped resources, `configmaps` for core: the apiserver's qualified resource. */
export function qualifiedResource(def: Pick<ResourceDef, 'group' | 'resource'>): string {
  return def.group ? `${def.resource}.${def.group}` : def.resource;
}

/** `Deployment.apps` / `ConfigMap`: the qualified kind used in Invalid errors. */
export function qualifiedKind(def: Pick<ResourceDef, 'group' | 'kind'>): string {
  return def.group ? `${def.kind}.${def.group}` : def.kind;
}

function resourceDetails(def: ResourceDef, name?: string): StatusDetails {
  const d: StatusDetails = {};
  if (name !== undefined) d.name = name;
  if (def.group) d.group = def.group;
  d.kind = def.resource;
  return d;
}

export const errors = {
  notFound(def: ResourceDef, name: string): KubeError {
    return new KubeError(404, 'NotFound', `${qualifiedResource(def)} "${name}" not found`, resourceDetails(def, name));
  },
  alreadyExists(def: ResourceDef, name: string): KubeError {
    return new KubeError(409, 'AlreadyExists', `${qualifiedResource(def)} "${name}" already exists`, resourceDetails(def, name));
  },
  /** Optimistic-concurrency failure (stale metadata.resourceVersion). */
  conflict(def: ResourceDef, name: string): KubeError {
    return new KubeError(
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${qualifiedResource(def)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
      resourceDetails(def, name),
    );
  },
  invalid(def: ResourceDef, name: string, causes: StatusCause[]): KubeError {
    // The real message is `<Kind> "<name>" is invalid: <field>: <message>` for one cause and a
    // bracketed, comma-separated list for several.
    const parts = causes.map((c) => `${c.field}: ${c.message}`);
    const body = parts.length === 1 ? parts[0] : `[${parts.join(', ')}]`;
    const d: StatusDetails = { name };
    if (def.group) d.group = def.group;
    d.kind = def.kind;
    d.causes = causes;
    return new KubeError(422, 'Invalid', `${qualifiedKind(def)} "${name}" is invalid: ${body}`, d);
  },
  badRequest(message: string): KubeError {
    return new KubeError(400, 'BadRequest', message);
  },
  methodNotAllowed(): KubeError {
    return new KubeError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
  },
  unsupportedMediaType(contentType: string): KubeError {
    return new KubeError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got ${contentType})`);
  },
  /** 404 for a URL that matches no route (what the real server says for an unknown group). */
  pageNotFound(): KubeError {
    return new KubeError(404, 'NotFound', 'the server could not find the requested resource', {});
  },
  expired(message: string): KubeError {
    return new KubeError(410, 'Expired', message);
  },
  serviceUnavailable(message = 'the server is currently unable to handle the request'): KubeError {
    return new KubeError(503, 'ServiceUnavailable', message);
  },
};

/** A Status for an arbitrary injected status code, with the reason the apiserver would use for it. */
export function statusForCode(code: number, message?: string): KubeError {
  switch (code) {
    case 400: return new KubeError(code, 'BadRequest', message ?? 'the server rejected our request for an unknown reason');
    case 401: return new KubeError(code, 'Unauthorized', message ?? 'Unauthorized');
    case 403: return new KubeError(code, 'Forbidden', message ?? 'forbidden');
    case 404: return new KubeError(code, 'NotFound', message ?? 'the server could not find the requested resource', {});
    case 409: return new KubeError(code, 'Conflict', message ?? 'the object has been modified; please apply your changes to the latest version and try again');
    case 410: return new KubeError(code, 'Expired', message ?? 'the resource version is too old');
    case 422: return new KubeError(code, 'Invalid', message ?? 'the server rejected our request due to an error in our request');
    case 429: return new KubeError(code, 'TooManyRequests', message ?? 'the server has received too many requests and has asked us to try again later', { retryAfterSeconds: 1 });
    case 500: return new KubeError(code, 'InternalError', message ?? 'Internal error occurred: injected fault', { causes: [{ message: 'injected fault' }] });
    case 503: return new KubeError(code, 'ServiceUnavailable', message ?? 'the server is currently unable to handle the request');
    case 504: return new KubeError(code, 'Timeout', message ?? 'the server was unable to return a response in the time allotted, but may still be processing the request', {});
    default: return new KubeError(code, code >= 500 ? 'InternalError' : 'BadRequest', message ?? `injected status ${code}`);
  }
}

export function successStatus(details: StatusDetails): Status {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details };
}
