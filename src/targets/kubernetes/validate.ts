import type { ServeSpec } from '../../bundle/serve.js';
import { UsageError } from '../../core/errors.js';
import type { VersionRef } from '../../core/model.js';
import type { KubernetesSettings } from './settings.js';

/**
 * Everything modelctl will send to a cluster, checked before anything is written — by a real
 * deploy (KubernetesTarget.checkPlan), `deploy --dry-run` and `kubernetes check`, with this one
 * function. Two layers:
 *
 *  1. the rules the API server applies that a JSON schema does not carry, checked on the INPUTS so
 *     each error names the file and field a user edits (kubernetes/kubernetes
 *     pkg/apis/core/validation: ValidateResourceRequirements, validateTolerations, ValidateNodeSelector
 *     labels, IsEnvVarName; apimachinery util/validation: IsQualifiedName, IsValidLabelValue,
 *     IsDNS1123Label/Subdomain, IsDNS1035Label; resource.Quantity's grammar; Gateway API v1.3 CRD
 *     patterns and CEL rules for hostnames, paths and limits);
 *  2. the upstream schemas (`kubernetes-models`, `@kubernetes-models/gateway-api`) over the rendered
 *     manifests — a net for whatever layer 1 does not name, reported with the manifest's path.
 *
 * Every problem is collected (not just the first), then thrown as one UsageError (exit 2).
 */

export interface ValidationIssue {
  /** "modelctl.yaml", "bundle.yaml of sentiment@1.4.0", "--namespace", or the rendered manifest. */
  file: string;
  /** Field path as the user writes it: kubernetes.tolerations[0].value, serve.env.MY-VAR. */
  field: string;
  value: unknown;
  /** The rule broken, in the API server's words where it has them. */
  rule: string;
}

export interface ValidationInput {
  settings: KubernetesSettings;
  /** Where the kubernetes: section came from (modelctl.yaml's path). */
  settingsFile: string;
  /** Where the namespace came from: a flag, the file, the kube context, or the default. */
  namespaceFrom?: string;
  /** Each version modelctl will run, with its bundle's serve: section. */
  versions: Array<{ ref: VersionRef; serve: ServeSpec }>;
  /** Every object modelctl would send (Deployments, Services, HTTPRoutes, ledger, lease). */
  manifests: object[];
}

// ── apimachinery util/validation ──────────────────────────────────────────────────────────────

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const ENV_VAR_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

export function dns1123Label(v: string): string | undefined {
  if (v.length > 63) return 'must be no more than 63 characters (RFC 1123 label)';
  return DNS1123_LABEL.test(v) ? undefined : "must be an RFC 1123 label: lower case alphanumeric characters or '-', starting and ending with an alphanumeric character";
}

export function dns1123Subdomain(v: string): string | undefined {
  if (v.length > 253) return 'must be no more than 253 characters (RFC 1123 subdomain)';
  return DNS1123_SUBDOMAIN.test(v) ? undefined : "must be an RFC 1123 subdomain: lower case alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character";
}

function dns1035Label(v: string): string | undefined {
  if (v.length > 63) return 'must be no more than 63 characters (RFC 1035 label)';
  return DNS1035_LABEL.test(v) ? undefined : "must be an RFC 1035 label: lower case alphanumeric characters or '-', starting with a letter and ending with an alphanumeric character";
}

/** A label key, annotation key or extended resource name: [prefix/]name. */
export function qualifiedName(v: string): string | undefined {
  const parts = v.split('/');
  if (parts.length > 2) return "must be a qualified name: an optional DNS subdomain prefix and '/', then a name";
  const [prefix, name] = parts.length === 2 ? parts : [undefined, parts[0]!];
  if (prefix !== undefined) {
    if (!prefix) return 'prefix part must be non-empty';
    const p = dns1123Subdomain(prefix);
    if (p) return `prefix part ${p}`;
  }
  if (!name) return 'name part must be non-empty';
  if (name.length > 63) return 'name part must be no more than 63 characters';
  return QUALIFIED_NAME_PART.test(name) ? undefined : "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
}

export function labelValue(v: string): string | undefined {
  if (v.length > 63) return 'must be no more than 63 characters (label value)';
  return LABEL_VALUE.test(v) ? undefined : "a label value must be empty or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
}

// ── resource.Quantity ─────────────────────────────────────────────────────────────────────────

const SUFFIX: Record<string, number> = {
  '': 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/**
 * The value of a Kubernetes quantity (`500m`, `1Gi`, `1e3`, `0.5`), or undefined when it does not
 * follow the grammar of apimachinery's resource.ParseQuantity: a signed decimal number and one
 * suffix — binary (Ki…Ei), decimal SI (n u m "" k M G T P E) or a decimal exponent (e3, E-2).
 */
export function parseQuantity(text: string): number | undefined {
  const m = /^([+-]?(?:\d+\.?\d*|\.\d+))([a-zA-Z]*[-+]?\d*)$/.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]);
  const suffix = m[2]!;
  if (suffix in SUFFIX) return n * SUFFIX[suffix]!;
  const exp = /^[eE]([-+]?\d+)$/.exec(suffix);
  return exp ? n * 10 ** Number(exp[1]) : undefined;
}

/** Resources Kubernetes lets a request stay below its limit for (all of kubernetes.io's own, without hugepages). */
function overcommitAllowed(name: string): boolean {
  const native = !name.includes('/') || name.startsWith('kubernetes.io/') || name.split('/')[0]!.endsWith('.kubernetes.io');
  return native && !name.startsWith('hugepages-');
}

const STANDARD_CONTAINER_RESOURCES = new Set(['cpu', 'memory', 'ephemeral-storage']);

// ── Gateway API v1.3 (CRD patterns and CEL rules of HTTPRoute) ────────────────────────────────

const GW_HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const GW_GROUP = /^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const GW_KIND = /^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;
const GW_PATH_CHARS = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$/;

export function routeHostname(v: string): string | undefined {
  if (v.length > 253) return 'must be no more than 253 characters';
  if (/^\d+(\.\d+){3}$/.test(v) || v.includes(':')) return 'must be a DNS name, not an IP address (Gateway API Hostname)';
  return GW_HOSTNAME.test(v) ? undefined : 'must be a lower-case RFC 1123 hostname, optionally prefixed by a single "*." wildcard label (Gateway API Hostname)';
}

/** The PathPrefix value rules of the HTTPRoute CRD (CEL), in its own words. */
export function routePath(v: string): string[] {
  const out: string[] = [];
  if (v.length > 1024) out.push('must be no more than 1024 characters');
  if (!v.startsWith('/')) out.push("value must be an absolute path and start with '/'");
  for (const bad of ['//', '/./', '/../', '%2f', '%2F', '#']) if (v.includes(bad)) out.push(`must not contain '${bad}'`);
  for (const end of ['/..', '/.']) if (v.endsWith(end)) out.push(`must not end with '${end}'`);
  if (v && !GW_PATH_CHARS.test(v)) out.push("must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$)");
  return out;
}

export const ROUTE_LIMITS = { rules: 16, backendRefs: 16, filters: 16, hostnames: 16, parentRefs: 32, maxWeight: 1_000_000 } as const;

// ── the checks ────────────────────────────────────────────────────────────────────────────────

type Add = (field: string, value: unknown, rule: string | undefined) => void;

/** The field naming the store the pods pull from (kubernetes.store, else the CLI's own store). */
export const STORE_FIELD = 'kubernetes.store (else --store / MODELCTL_STORE)';

function adder(out: ValidationIssue[], file: string): Add {
  return (field, value, rule) => {
    if (rule) out.push({ file, field, value, rule });
  };
}

function checkResourceMap(add: Add, base: string, m: Record<string, string> | undefined): void {
  for (const [name, q] of Object.entries(m ?? {})) {
    const n = qualifiedName(name);
    if (n) add(`${base}.${name}`, name, `resource name ${n}`);
    else if (!name.includes('/') && !STANDARD_CONTAINER_RESOURCES.has(name) && !name.startsWith('hugepages-'))
      add(`${base}.${name}`, name, 'must be a standard resource (cpu, memory, ephemeral-storage, hugepages-<size>) or a qualified name such as nvidia.com/gpu');
    const v = parseQuantity(q);
    if (v === undefined) add(`${base}.${name}`, q, "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' (e.g. 500m, 1Gi, 2)");
    else if (v < 0) add(`${base}.${name}`, q, 'must be greater than or equal to 0');
    else if (!overcommitAllowed(name) && !Number.isInteger(v)) add(`${base}.${name}`, q, 'must be an integer (extended resources are whole units)');
  }
}

/** requests vs limits of the resources one version's model container gets (settings merged with serve.resources). */
function checkMergedResources(out: ValidationIssue[], settingsFile: string, v: { ref: VersionRef; serve: ServeSpec }, settings: KubernetesSettings): void {
  const bundleFile = `bundle.yaml of ${v.ref.model}@${v.ref.version}`;
  const where = (kind: 'requests' | 'limits', name: string) =>
    v.serve.resources?.[kind]?.[name] !== undefined ? { file: bundleFile, field: `serve.resources.${kind}.${name}` } : { file: settingsFile, field: `kubernetes.resources.${kind}.${name}` };
  const requests = { ...(settings.resources.requests ?? {}), ...(v.serve.resources?.requests ?? {}) };
  const limits = { ...(settings.resources.limits ?? {}), ...(v.serve.resources?.limits ?? {}) };
  for (const [name, rq] of Object.entries(requests)) {
    const r = parseQuantity(rq);
    const lq = limits[name];
    const l = lq === undefined ? undefined : parseQuantity(lq);
    if (r === undefined) continue;
    const w = where('requests', name);
    if (l !== undefined && r > l) out.push({ ...w, value: rq, rule: `must be less than or equal to ${name} limit of ${lq} (${where('limits', name).file}: ${where('limits', name).field})` });
    if (!overcommitAllowed(name)) {
      if (lq === undefined) out.push({ ...w, value: rq, rule: `${name} cannot be overcommitted: a limit must be set too, equal to the request` });
      else if (l !== undefined && r !== l) out.push({ ...w, value: rq, rule: `must be equal to ${name} limit of ${lq} (${name} cannot be overcommitted)` });
    }
  }
}

function checkServe(out: ValidationIssue[], v: { ref: VersionRef; serve: ServeSpec }): void {
  const add = adder(out, `bundle.yaml of ${v.ref.model}@${v.ref.version}`);
  for (const name of Object.keys(v.serve.env)) {
    add(`serve.env.${name}`, name, ENV_VAR_NAME.test(name) ? undefined : "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit");
  }
  checkResourceMap(add, 'serve.resources.requests', v.serve.resources?.requests);
  checkResourceMap(add, 'serve.resources.limits', v.serve.resources?.limits);
  // The meter sends it as the request target of the probe; the kubelet sends the meter's own path.
  const p = v.serve.readinessPath;
  add('serve.readinessPath', p, p.length > 2048 ? 'must be no more than 2048 characters' : /[\x00-\x20\x7f]/.test(p) ? 'must not contain spaces or control characters (an HTTP request target)' : undefined);
}

function checkSettings(out: ValidationIssue[], input: ValidationInput): void {
  const s = input.settings;
  const add = adder(out, input.settingsFile);
  const nsFrom = input.namespaceFrom ?? input.settingsFile;
  if (nsFrom === '--namespace') adder(out, 'the command line')('--namespace', s.namespace, dns1123Label(s.namespace));
  else adder(out, nsFrom)(nsFrom === input.settingsFile ? 'kubernetes.namespace' : 'namespace', s.namespace, dns1123Label(s.namespace));
  for (const [field, image] of [['kubernetes.image', s.image], ['kubernetes.servingImage', s.servingImage]] as const) {
    add(field, image, !image ? 'must not be empty' : image.trim() !== image ? 'must not have leading or trailing whitespace' : undefined);
  }
  checkResourceMap(add, 'kubernetes.resources.requests', s.resources.requests);
  checkResourceMap(add, 'kubernetes.resources.limits', s.resources.limits);

  if (s.route.name !== undefined) add('kubernetes.route.name', s.route.name, dns1123Subdomain(s.route.name));
  if (s.route.parentRefs.length > ROUTE_LIMITS.parentRefs) add('kubernetes.route.parentRefs', s.route.parentRefs.length, `must have at most ${ROUTE_LIMITS.parentRefs} items`);
  s.route.parentRefs.forEach((p, i) => {
    const f = `kubernetes.route.parentRefs[${i}]`;
    add(`${f}.name`, p.name, p.name.length > 253 ? 'must be no more than 253 characters' : undefined);
    if (p.namespace !== undefined) add(`${f}.namespace`, p.namespace, dns1123Label(p.namespace));
    if (p.sectionName !== undefined) add(`${f}.sectionName`, p.sectionName, dns1123Subdomain(p.sectionName));
    if (p.group !== undefined) add(`${f}.group`, p.group, p.group.length > 253 || !GW_GROUP.test(p.group) ? 'must be empty or an RFC 1123 subdomain (Gateway API Group)' : undefined);
    if (p.kind !== undefined) add(`${f}.kind`, p.kind, p.kind.length > 63 || !GW_KIND.test(p.kind) ? 'must start with a letter, then letters, digits or "-", at most 63 characters (Gateway API Kind)' : undefined);
  });
  if (s.route.hostnames.length > ROUTE_LIMITS.hostnames) add('kubernetes.route.hostnames', s.route.hostnames.length, `must have at most ${ROUTE_LIMITS.hostnames} items`);
  s.route.hostnames.forEach((h, i) => add(`kubernetes.route.hostnames[${i}]`, h, routeHostname(h)));
  for (const rule of routePath(s.route.path)) add('kubernetes.route.path', s.route.path, rule);

  for (const [k, v] of Object.entries(s.nodeSelector)) {
    add(`kubernetes.nodeSelector.${k}`, k, qualifiedName(k) && `label key ${qualifiedName(k)}`);
    add(`kubernetes.nodeSelector.${k}`, v, labelValue(v));
  }
  s.tolerations.forEach((t, i) => {
    const f = `kubernetes.tolerations[${i}]`;
    if (t.key) add(`${f}.key`, t.key, qualifiedName(t.key));
    const op = t.operator ?? 'Equal';
    if (!t.key && op !== 'Exists') add(`${f}.operator`, t.operator ?? '(Equal)', 'operator must be Exists when `key` is empty, which means "match all values and all keys"');
    if (t.tolerationSeconds !== undefined && t.effect !== 'NoExecute') add(`${f}.effect`, t.effect ?? '(none)', 'effect must be NoExecute when `tolerationSeconds` is set');
    if (op === 'Exists' && t.value) add(`${f}.value`, t.value, 'value must be empty when `operator` is Exists');
    if (op === 'Equal' && t.value) add(`${f}.value`, t.value, labelValue(t.value));
  });
  // The init container pulls from this URL inside the cluster: a folder on this machine is not there.
  if (!s.storeUrl.startsWith('s3://')) add(STORE_FIELD, s.storeUrl, 'pods pull bundles from an s3:// store; a local store is not reachable from the cluster (push to S3 with --store s3://bucket/prefix, or name the cluster-side store in kubernetes.store)');
  if (s.serviceAccountName !== undefined) add('kubernetes.serviceAccountName', s.serviceAccountName, dns1123Subdomain(s.serviceAccountName));
  if (s.storeSecret !== undefined) add('kubernetes.storeSecret', s.storeSecret, dns1123Subdomain(s.storeSecret));
  s.imagePullSecrets.forEach((n, i) => add(`kubernetes.imagePullSecrets[${i}]`, n, dns1123Subdomain(n)));
  if (s.bundleCache) checkBundleCache(add, s.bundleCache);
}

/**
 * kubernetes.bundleCache: what the API server refuses in a hostPath (validateHostPathVolumeSource:
 * path required, no '..' element) plus what makes no sense for a cache (a relative path, the node's
 * root); a claim name as the API server validates PersistentVolumeClaim names (an RFC 1123
 * subdomain: the pod's volume only needs a non-empty claimName, but a claim by any other name can
 * never exist, so the pods would stay Pending forever); and maxBytes as a quantity of whole bytes.
 */
function checkBundleCache(add: Add, c: NonNullable<KubernetesSettings['bundleCache']>): void {
  if ('persistentVolumeClaim' in c) {
    const n = c.persistentVolumeClaim.claimName;
    add(
      'kubernetes.bundleCache.persistentVolumeClaim.claimName',
      n,
      !n ? 'Required value: give the name of a PersistentVolumeClaim of the namespace, e.g. model-cache' : dns1123Subdomain(n) && `${dns1123Subdomain(n)} (a PersistentVolumeClaim name)`,
    );
  } else {
    const p = c.hostPath;
    add(
      'kubernetes.bundleCache.hostPath',
      p,
      !p
        ? 'Required value: give the absolute path of a directory on each node, e.g. /var/cache/modelctl'
        : p.split('/').includes('..')
          ? "must not contain '..' (the API server refuses back-steps in a hostPath)"
          : !p.startsWith('/')
            ? 'must be an absolute path on the node, e.g. /var/cache/modelctl'
            : /^\/+$/.test(p)
              ? "must not be the node's root directory: give a directory of its own, e.g. /var/cache/modelctl"
              : undefined,
    );
  }
  const n = parseQuantity(c.maxBytes);
  add(
    'kubernetes.bundleCache.maxBytes',
    c.maxBytes,
    n === undefined || n < 0 || !Number.isSafeInteger(Math.floor(n))
      ? 'must be a size: a non-negative quantity such as 20Gi, 500Mi or 21474836480 (bytes)'
      : undefined,
  );
}

/**
 * Why a node-level bundle cache may be refused by a real cluster, for `kubernetes check` and the
 * docs: Pod Security "baseline" forbids hostPath volumes (spec.volumes[*].hostPath must be unset),
 * and "restricted" allows only configMap, csi, downwardAPI, emptyDir, ephemeral,
 * persistentVolumeClaim, projected and secret — and runAsNonRoot, which the cache's init container
 * (uid 0, no capabilities) cannot keep. Only "privileged" admits it.
 */
export const BUNDLE_CACHE_POD_SECURITY =
  'a hostPath volume is refused by Pod Security "baseline" and "restricted" (only "privileged" admits it): use a PersistentVolumeClaim instead (kubernetes.bundleCache.persistentVolumeClaim.claimName, admitted at every level), label the namespace pod-security.kubernetes.io/enforce=privileged, or remove kubernetes.bundleCache (each pod then fetches every byte)';

interface Meta {
  kind?: string;
  metadata?: { name?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: { rules?: Array<{ backendRefs?: Array<{ weight?: number }>; filters?: Array<{ type: string; requestMirror?: { percent?: number } }> }> };
}

/** What only the rendered objects show: object names, labels, HTTPRoute limits (for every step's route). */
function checkManifests(out: ValidationIssue[], manifests: object[]): void {
  for (const o of manifests as Meta[]) {
    const name = o.metadata?.name ?? '';
    const add = adder(out, `${o.kind} ${name} (what modelctl renders)`);
    // A Service name is an RFC 1035 label (it becomes a DNS name); other objects a subdomain.
    add('metadata.name', name, o.kind === 'Service' ? dns1035Label(name) : dns1123Subdomain(name));
    for (const [k, v] of Object.entries(o.metadata?.labels ?? {})) {
      add(`metadata.labels.${k}`, k, qualifiedName(k));
      add(`metadata.labels.${k}`, v, labelValue(v));
    }
    if (o.kind !== 'HTTPRoute') continue;
    const rules = o.spec?.rules ?? [];
    if (rules.length > ROUTE_LIMITS.rules) add('spec.rules', rules.length, `must have at most ${ROUTE_LIMITS.rules} items`);
    rules.forEach((r, i) => {
      const refs = r.backendRefs ?? [];
      if (refs.length > ROUTE_LIMITS.backendRefs) add(`spec.rules[${i}].backendRefs`, refs.length, `must have at most ${ROUTE_LIMITS.backendRefs} items`);
      refs.forEach((b, j) => {
        const w = b.weight ?? 1;
        if (!Number.isInteger(w) || w < 0 || w > ROUTE_LIMITS.maxWeight) add(`spec.rules[${i}].backendRefs[${j}].weight`, w, `must be an integer from 0 to ${ROUTE_LIMITS.maxWeight}`);
      });
      if ((r.filters ?? []).length > ROUTE_LIMITS.filters) add(`spec.rules[${i}].filters`, r.filters!.length, `must have at most ${ROUTE_LIMITS.filters} items`);
      (r.filters ?? []).forEach((f, j) => {
        const p = f.requestMirror?.percent;
        if (p !== undefined && (!Number.isInteger(p) || p < 0 || p > 100)) add(`spec.rules[${i}].filters[${j}].requestMirror.percent`, p, 'must be an integer from 0 to 100');
      });
    });
  }
}

/** Layer 1: the rules, on the inputs and the rendered objects. Pure and synchronous. */
export function kubernetesIssues(input: ValidationInput): ValidationIssue[] {
  const out: ValidationIssue[] = [];
  checkSettings(out, input);
  for (const v of input.versions) {
    checkServe(out, v);
    checkMergedResources(out, input.settingsFile, v, input.settings);
  }
  checkManifests(out, input.manifests);
  return dedupe(out);
}

function dedupe(issues: ValidationIssue[]): ValidationIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const k = JSON.stringify([i.file, i.field, i.value, i.rule]);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

type Validating = new (data: never) => { validate(): void };

/** The upstream model class of each kind modelctl sends (loaded on first use: they are large). */
async function modelClasses(): Promise<Record<string, Validating>> {
  const [{ Deployment }, { Service }, { ConfigMap }, { Lease }, { HTTPRoute }] = await Promise.all([
    import('kubernetes-models/apps/v1/Deployment'),
    import('kubernetes-models/v1/Service'),
    import('kubernetes-models/v1/ConfigMap'),
    import('kubernetes-models/coordination.k8s.io/v1/Lease'),
    import('@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute'),
  ]);
  return { Deployment, Service, ConfigMap, Lease, HTTPRoute } as unknown as Record<string, Validating>;
}

/** Layer 2: each rendered object against its upstream schema (kubernetes-models, @kubernetes-models/gateway-api). */
export async function schemaIssues(manifests: object[]): Promise<ValidationIssue[]> {
  const classes = await modelClasses();
  const out: ValidationIssue[] = [];
  for (const o of manifests as Meta[]) {
    const Model = classes[o.kind ?? ''];
    const file = `${o.kind} ${o.metadata?.name ?? ''} (what modelctl renders)`;
    if (!Model) {
      out.push({ file, field: 'kind', value: o.kind, rule: 'modelctl has no upstream schema for this kind' });
      continue;
    }
    try {
      new Model(o as never).validate();
    } catch (err) {
      for (const part of (err instanceof Error ? err.message : String(err)).split(/, (?=data\/)/)) {
        const m = /^data(\S*) (.*)$/.exec(part);
        out.push({ file, field: m ? m[1]!.replace(/^\//, '').replace(/\//g, '.') : '', value: undefined, rule: `${m ? m[2] : part} (upstream schema)` });
      }
    }
  }
  return out;
}

/** Both layers; the schema net runs only when the rules found nothing (so one mistake is not reported twice). */
export async function validationIssues(input: ValidationInput): Promise<ValidationIssue[]> {
  const issues = kubernetesIssues(input);
  return issues.length ? issues : schemaIssues(input.manifests);
}

export function formatIssue(i: ValidationIssue): string {
  return `${i.file}: ${i.field}${i.value === undefined ? '' : ` = ${JSON.stringify(i.value)}`}: ${i.rule}`;
}

/** Throw every issue at once as a usage error (exit 2); nothing has been sent to the cluster. */
export function assertNoIssues(issues: ValidationIssue[]): void {
  if (issues.length === 0) return;
  const files = [...new Set(issues.map((i) => i.file.replace(/ \(what modelctl renders\)$/, '')))];
  throw new UsageError(
    `${issues.length} problem${issues.length === 1 ? '' : 's'} the Kubernetes API server would refuse, found before anything was sent:\n${issues.map((i) => `  - ${formatIssue(i)}`).join('\n')}`,
    {
      hint: `fix ${files.join(', ')} (a bundle.yaml problem needs a new version pushed); \`modelctl kubernetes check\` and \`deploy --dry-run\` run the same checks`,
      details: { issues },
    },
  );
}

/** The one validation entry point: collect everything, throw all of it. */
export async function validateKubernetes(input: ValidationInput): Promise<void> {
  assertNoIssues(await validationIssues(input));
}
