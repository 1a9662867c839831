/**
 * The resource types the fake serves, and the discovery documents built from them. Discovery
 * matters: KubernetesObjectApi maps kind → plural + namespaced-ness by reading
 * GET /api/v1 and GET /apis/<group>/<version>, exactly like kubectl does.
 */

export interface ResourceDef {
  group: string; // '' for core
  version: string;
  resource: string; // plural, as in URLs
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
  /** Has a status subresource: writes to the main resource ignore .status (and vice versa). */
  hasStatus: boolean;
  /** metadata.generation is maintained and bumped on spec changes. */
  hasGeneration: boolean;
  /** Served as a CRD (list items carry apiVersion/kind, like unstructured lists do). */
  crd: boolean;
  subresources: string[];
}

const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function def(d: Omit<ResourceDef, 'shortNames'> & { shortNames?: string[] }): ResourceDef {
  return d;
}

export const RESOURCES: readonly ResourceDef[] = [
  def({ group: '', version: 'v1', resource: 'namespaces', singular: 'namespace', kind: 'Namespace', namespaced: false, shortNames: ['ns'], hasStatus: true, hasGeneration: false, crd: false, subresources: ['status'] }),
  def({ group: '', version: 'v1', resource: 'configmaps', singular: 'configmap', kind: 'ConfigMap', namespaced: true, shortNames: ['cm'], hasStatus: false, hasGeneration: false, crd: false, subresources: [] }),
  def({ group: '', version: 'v1', resource: 'secrets', singular: 'secret', kind: 'Secret', namespaced: true, hasStatus: false, hasGeneration: false, crd: false, subresources: [] }),
  def({ group: '', version: 'v1', resource: 'services', singular: 'service', kind: 'Service', namespaced: true, shortNames: ['svc'], hasStatus: true, hasGeneration: false, crd: false, subresources: ['status', 'proxy'] }),
  def({ group: '', version: 'v1', resource: 'pods', singular: 'pod', kind: 'Pod', namespaced: true, shortNames: ['po'], hasStatus: true, hasGeneration: false, crd: false, subresources: ['status', 'proxy'] }),
  // The node cache on a claim (kubernetes.bundleCache.persistentVolumeClaim): claims, the volumes
  // they bind to (cluster-scoped), and a binder in controller.ts.
  def({ group: '', version: 'v1', resource: 'persistentvolumeclaims', singular: 'persistentvolumeclaim', kind: 'PersistentVolumeClaim', namespaced: true, shortNames: ['pvc'], hasStatus: true, hasGeneration: false, crd: false, subresources: ['status'] }),
  def({ group: '', version: 'v1', resource: 'persistentvolumes', singular: 'persistentvolume', kind: 'PersistentVolume', namespaced: false, shortNames: ['pv'], hasStatus: true, hasGeneration: false, crd: false, subresources: ['status'] }),
  def({ group: '', version: 'v1', resource: 'events', singular: 'event', kind: 'Event', namespaced: true, shortNames: ['ev'], hasStatus: false, hasGeneration: false, crd: false, subresources: [] }),
  def({ group: 'apps', version: 'v1', resource: 'deployments', singular: 'deployment', kind: 'Deployment', namespaced: true, shortNames: ['deploy'], hasStatus: true, hasGeneration: true, crd: false, subresources: ['status', 'scale'] }),
  def({ group: 'coordination.k8s.io', version: 'v1', resource: 'leases', singular: 'lease', kind: 'Lease', namespaced: true, hasStatus: false, hasGeneration: false, crd: false, subresources: [] }),
  // Create-only and never stored: the server answers whether the caller may do something (see server.ts).
  def({ group: 'authorization.k8s.io', version: 'v1', resource: 'selfsubjectaccessreviews', singular: 'selfsubjectaccessreview', kind: 'SelfSubjectAccessReview', namespaced: false, hasStatus: false, hasGeneration: false, crd: false, subresources: [] }),
  // Read-only here: what a client reads to learn which Gateway API release a cluster has (server.ts seeds it).
  def({ group: 'apiextensions.k8s.io', version: 'v1', resource: 'customresourcedefinitions', singular: 'customresourcedefinition', kind: 'CustomResourceDefinition', namespaced: false, shortNames: ['crd', 'crds'], hasStatus: true, hasGeneration: true, crd: false, subresources: ['status'] }),
  def({ group: 'gateway.networking.k8s.io', version: 'v1', resource: 'httproutes', singular: 'httproute', kind: 'HTTPRoute', namespaced: true, hasStatus: true, hasGeneration: true, crd: true, subresources: ['status'] }),
];

/** One resource's definition by its plural name: a name not in RESOURCES is an error where it is asked for. */
export function resourceDef(resource: string): ResourceDef {
  const def = RESOURCES.find((r) => r.resource === resource);
  if (!def) throw new Error(`internal: no resource "${resource}" in the fake API server's RESOURCES`);
  return def;
}

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

export function apiVersionOf(d: Pick<ResourceDef, 'group' | 'version'>): string {
  return d.group ? `${d.group}/${d.version}` : d.version;
}

export function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.indexOf('/');
  return i < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

/** The set of resource types currently served (a group can be hidden, e.g. no Gateway API CRDs). */
export class Registry {
  private readonly hiddenGroups = new Set<string>();

  hideGroup(group: string): void {
    this.hiddenGroups.add(group);
  }

  served(): ResourceDef[] {
    return RESOURCES.filter((r) => !this.hiddenGroups.has(r.group));
  }

  byResource(group: string, version: string, resource: string): ResourceDef | undefined {
    return this.served().find((r) => r.group === group && r.version === version && r.resource === resource);
  }

  /** Kind lookup ignoring hidden groups: the fake's own inspection helpers must work regardless. */
  anyByKind(apiVersion: string, kind: string): ResourceDef | undefined {
    const { group, version } = splitApiVersion(apiVersion);
    return RESOURCES.find((r) => r.group === group && r.version === version && r.kind === kind);
  }

  hasGroupVersion(group: string, version: string): boolean {
    return this.served().some((r) => r.group === group && r.version === version);
  }

  // ---- discovery documents -------------------------------------------------------------------

  apiVersions(serverAddress: string): unknown {
    return {
      kind: 'APIVersions',
      versions: ['v1'],
      serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
    };
  }

  apiGroupList(): unknown {
    const groups = new Map<string, Set<string>>();
    for (const r of this.served()) {
      if (!r.group) continue;
      let versions = groups.get(r.group);
      if (!versions) groups.set(r.group, (versions = new Set()));
      versions.add(r.version);
    }
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: [...groups].map(([name, versions]) => this.groupDoc(name, [...versions])),
    };
  }

  apiGroup(group: string): unknown | undefined {
    const versions = [...new Set(this.served().filter((r) => r.group === group).map((r) => r.version))];
    if (versions.length === 0) return undefined;
    return { kind: 'APIGroup', apiVersion: 'v1', ...this.groupDoc(group, versions) };
  }

  private groupDoc(name: string, versions: string[]): Record<string, unknown> {
    const vs = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
    return { name, versions: vs, preferredVersion: vs[0] };
  }

  apiResourceList(group: string, version: string): unknown | undefined {
    if (!this.hasGroupVersion(group, version)) return undefined;
    const resources: unknown[] = [];
    for (const r of this.served().filter((x) => x.group === group && x.version === version)) {
      // The main resource comes before its subresources: KubernetesObjectApi takes the first
      // entry whose kind matches, and "deployments/status" has kind Deployment too.
      const main: Record<string, unknown> = { name: r.resource, singularName: r.singular, namespaced: r.namespaced, kind: r.kind, verbs: ALL_VERBS };
      if (r.shortNames) main.shortNames = r.shortNames;
      if (r.resource === 'deployments') main.categories = ['all'];
      resources.push(main);
      for (const sub of r.subresources) {
        if (sub === 'proxy') {
          resources.push({ name: `${r.resource}/proxy`, singularName: '', namespaced: r.namespaced, kind: `${r.kind}ProxyOptions`, verbs: ['create', 'delete', 'get', 'patch', 'update'] });
        } else if (sub === 'scale') {
          resources.push({ name: `${r.resource}/scale`, singularName: '', namespaced: r.namespaced, group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: ['get', 'patch', 'update'] });
        } else {
          resources.push({ name: `${r.resource}/${sub}`, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: ['get', 'patch', 'update'] });
        }
      }
    }
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: apiVersionOf({ group, version }), resources };
  }
}
