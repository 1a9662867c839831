import type { V1PolicyRule, V1Role, V1RoleBinding } from '@kubernetes/client-node';
import { LABELS, MANAGED_BY } from './names.js';

/**
 * The least a namespace must grant modelctl (the CLI on a laptop, a GitHub Actions runner): one
 * namespaced Role and its RoleBinding. Nothing cluster-scoped — modelctl installs no CRD and no
 * controller. Each rule says why it exists; `describePermission` maps a 403 back to the rule that
 * would have granted it, so the error can say what to apply.
 */

export interface RbacRule extends V1PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

const CRUD = ['get', 'list', 'watch', 'create', 'patch', 'update', 'delete'];

export const RBAC_RULES: ReadonlyArray<{ rule: RbacRule; why: string }> = [
  {
    rule: { apiGroups: ['apps'], resources: ['deployments'], verbs: CRUD },
    why: 'one Deployment per version (created, scaled, retired)',
  },
  {
    rule: { apiGroups: [''], resources: ['services', 'configmaps'], verbs: CRUD },
    why: 'one Service per version (and the model Service in replica mode); the ledger ConfigMap per model',
  },
  {
    rule: { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
    why: 'readiness and crash reasons of a version\'s pods',
  },
  {
    rule: { apiGroups: [''], resources: ['pods/proxy'], verbs: ['get'] },
    why: 'reading each pod\'s meter (request windows) through the API server',
  },
  {
    // The API server authorizes POST …/services/<name>:<port>/proxy/… as verb "create" on resource
    // "services", subresource "proxy" (apiserver requestinfo.go: the verb comes from the HTTP method).
    rule: { apiGroups: [''], resources: ['services/proxy'], verbs: ['create'] },
    why: 'evaluation replay (kind: eval gates): each case POSTed to one version\'s Service through the API server',
  },
  {
    rule: { apiGroups: [''], resources: ['events'], verbs: ['list', 'watch'] },
    why: 'why a pod does not start (image pull, scheduling, probes)',
  },
  {
    rule: { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update', 'patch', 'delete'] },
    why: 'the per-model rollout lock',
  },
  {
    rule: { apiGroups: ['gateway.networking.k8s.io'], resources: ['httproutes'], verbs: CRUD },
    why: 'the model\'s HTTPRoute: canary weights and shadow mirroring (Gateway API mode)',
  },
  {
    // Read only, one named claim: modelctl never creates a claim (the admin or a provisioner does);
    // `kubernetes check` reads the one kubernetes.bundleCache names, because a missing or unbound
    // claim keeps every new pod Pending. Last, so that the rule numbers above stay as they were.
    rule: { apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['get'] },
    why: 'kubernetes check reads the bundle cache\'s claim (kubernetes.bundleCache.persistentVolumeClaim): exists, Bound, access modes',
  },
];

export interface RbacOptions {
  namespace: string;
  /** The ServiceAccount the CLI runs as (in a pod or via a token); default "modelctl". */
  serviceAccount?: string | undefined;
  /** Namespace of that ServiceAccount (default: the same namespace). */
  serviceAccountNamespace?: string | undefined;
  /** Name of the Role and the RoleBinding; default "modelctl". */
  name?: string | undefined;
}

function labels(): Record<string, string> {
  return { [LABELS.managedBy]: MANAGED_BY, [LABELS.name]: 'modelctl', [LABELS.component]: 'rbac' };
}

export function roleFor(opts: RbacOptions): V1Role {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: opts.name ?? 'modelctl', namespace: opts.namespace, labels: labels() },
    rules: RBAC_RULES.map(({ rule }) => ({ apiGroups: [...rule.apiGroups], resources: [...rule.resources], verbs: [...rule.verbs] })),
  };
}

export function roleBindingFor(opts: RbacOptions): V1RoleBinding {
  const name = opts.name ?? 'modelctl';
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name, namespace: opts.namespace, labels: labels() },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
    subjects: [{ kind: 'ServiceAccount', name: opts.serviceAccount ?? 'modelctl', namespace: opts.serviceAccountNamespace ?? opts.namespace }],
  };
}

/** "deployments.apps", "services", "httproutes.gateway.networking.k8s.io" */
export function resourceName(resource: string, group: string): string {
  return group ? `${resource}.${group}` : resource;
}

/** The rule of modelctl's Role that grants `verb` on `resource` of API `group` ("" = core; subresources as "pods/proxy"), or null. */
export function permissionRule(verb: string, resource: string, group: string): { index: number; rule: RbacRule; why: string } | null {
  const index = RBAC_RULES.findIndex(({ rule }) => rule.apiGroups.includes(group) && rule.resources.includes(resource) && rule.verbs.includes(verb));
  if (index === -1) return null;
  return { index, rule: RBAC_RULES[index]!.rule, why: RBAC_RULES[index]!.why };
}

/**
 * Which rule of modelctl's Role grants a permission, in words, to explain a 403:
 * "granted by rule 6 of the modelctl Role (leases.coordination.k8s.io: get, create, update, patch, delete) — the per-model rollout lock".
 * Undefined when the Role does not grant it (modelctl is not expected to need it).
 */
export function describePermission(verb: string, resource: string, group: string): string | undefined {
  const hit = permissionRule(verb, resource, group);
  if (!hit) return undefined;
  const resources = hit.rule.resources.map((r) => resourceName(r, group)).join(', ');
  return `granted by rule ${hit.index + 1} of the modelctl Role (${resources}: ${hit.rule.verbs.join(', ')}) — ${hit.why}`;
}
