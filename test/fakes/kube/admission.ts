/**
 * What the apiserver does to an object between decoding and storing it: decode-level type checks
 * (400, like a JSON unmarshal failure), defaulting, and validation (422 Invalid with causes).
 * Only the checks cheap enough to be worth simulating; see server.ts for what is not.
 */
import { deepEqual, isPlainObject } from './apply.js';
import { KubeError, errors, type StatusCause } from './errors.js';
import type { ResourceDef } from './resources.js';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;
/** metav1.MicroTime is parsed with Go layout RFC3339Micro: exactly six fractional digits. */
const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/;

const MSG_SUBDOMAIN = `a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`;
const MSG_LABEL = `a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`;
const MSG_1035 = `a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`;
const MSG_LABEL_VALUE = `a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`;
const MSG_QUALIFIED = `name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`;

function invalidValue(field: string, value: unknown, detail: string): StatusCause {
  return { reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(value)}: ${detail}`, field };
}

function required(field: string, detail = ''): StatusCause {
  return { reason: 'FieldValueRequired', message: `Required value${detail ? ': ' + detail : ''}`, field };
}

// ---- decoding ----------------------------------------------------------------------------------

/** Type errors the real server hits while unmarshalling the body: 400, not 422. */
export function checkDecodable(def: ResourceDef, obj: any): void {
  const fail = (detail: string): never => {
    throw new KubeError(400, 'BadRequest', `${def.kind} in version "${def.version}" cannot be handled as a ${def.kind}: ${detail}`);
  };
  if (!isPlainObject(obj)) fail('json: cannot unmarshal into Go value of type struct');
  if (obj.metadata !== undefined && !isPlainObject(obj.metadata)) fail(`json: cannot unmarshal ${typeof obj.metadata} into Go struct field ${def.kind}.metadata of type v1.ObjectMeta`);
  for (const f of ['labels', 'annotations'] as const) {
    const m = obj.metadata?.[f];
    if (m === undefined || m === null) continue;
    if (!isPlainObject(m)) fail(`json: cannot unmarshal ${typeof m} into Go struct field ObjectMeta.metadata.${f} of type map[string]string`);
    for (const v of Object.values(m)) if (typeof v !== 'string') fail(`json: cannot unmarshal ${typeof v} into Go struct field ObjectMeta.metadata.${f} of type string`);
  }
  if (def.resource === 'configmaps' && isPlainObject(obj.data)) {
    for (const v of Object.values(obj.data)) if (typeof v !== 'string') fail(`json: cannot unmarshal ${typeof v} into Go struct field ConfigMap.data of type string`);
  }
  if (def.resource === 'leases' && isPlainObject(obj.spec)) {
    for (const f of ['acquireTime', 'renewTime'] as const) {
      const v = obj.spec[f];
      if (v === undefined || v === null) continue;
      if (typeof v !== 'string' || !MICRO_TIME.test(v)) {
        fail(`parsing time ${JSON.stringify(String(v))} as "2006-01-02T15:04:05.000000Z07:00": cannot parse ${JSON.stringify(String(v))} as RFC3339Micro`);
      }
    }
  }
}

// ---- defaulting --------------------------------------------------------------------------------

function defaultPodSpec(spec: any): void {
  if (!isPlainObject(spec)) return;
  spec.restartPolicy ??= 'Always';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.securityContext ??= {};
  spec.schedulerName ??= 'default-scheduler';
  for (const c of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) {
    if (!isPlainObject(c)) continue;
    const image = String(c.image ?? '');
    c.imagePullPolicy ??= image.endsWith(':latest') || !/:[^/]+$/.test(image) ? 'Always' : 'IfNotPresent';
    c.terminationMessagePath ??= '/dev/termination-log';
    c.terminationMessagePolicy ??= 'File';
    c.resources ??= {};
    for (const p of c.ports ?? []) if (isPlainObject(p)) p.protocol ??= 'TCP';
    // Probe defaults (core/v1 SetDefaults_Probe, SetDefaults_HTTPGetAction): what a client reads back.
    for (const k of ['readinessProbe', 'livenessProbe', 'startupProbe'] as const) {
      const probe = c[k];
      if (!isPlainObject(probe)) continue;
      probe.timeoutSeconds ??= 1;
      probe.periodSeconds ??= 10;
      probe.successThreshold ??= 1;
      probe.failureThreshold ??= 3;
      if (isPlainObject(probe.httpGet)) {
        probe.httpGet.path ??= '/';
        probe.httpGet.scheme ??= 'HTTP';
      }
    }
  }
}

let nextClusterIp = 10;

/** The defaults the real apiserver fills in (a subset: enough that diffs against live look real). */
export function applyDefaults(def: ResourceDef, obj: any, clusterIp?: () => string): void {
  switch (def.resource) {
    case 'deployments': {
      const spec = (obj.spec ??= {});
      spec.replicas ??= 1;
      spec.revisionHistoryLimit ??= 10;
      spec.progressDeadlineSeconds ??= 600;
      spec.strategy ??= {};
      spec.strategy.type ??= 'RollingUpdate';
      if (spec.strategy.type === 'RollingUpdate') {
        // Each bound on its own (apps/v1 SetDefaults_Deployment): maxSurge 1 alone keeps maxUnavailable 25%.
        spec.strategy.rollingUpdate ??= {};
        spec.strategy.rollingUpdate.maxUnavailable ??= '25%';
        spec.strategy.rollingUpdate.maxSurge ??= '25%';
      }
      defaultPodSpec(spec.template?.spec);
      break;
    }
    case 'pods':
      defaultPodSpec(obj.spec);
      break;
    case 'services': {
      const spec = (obj.spec ??= {});
      spec.type ??= 'ClusterIP';
      spec.sessionAffinity ??= 'None';
      if (spec.clusterIP === undefined) {
        if (clusterIp) spec.clusterIP = clusterIp();
        else {
          spec.clusterIP = `10.96.${Math.floor(nextClusterIp / 250)}.${(nextClusterIp % 250) + 1}`;
          nextClusterIp++;
        }
      }
      spec.clusterIPs ??= [spec.clusterIP];
      spec.ipFamilies ??= ['IPv4'];
      spec.ipFamilyPolicy ??= 'SingleStack';
      spec.internalTrafficPolicy ??= 'Cluster';
      for (const p of spec.ports ?? []) if (isPlainObject(p)) {
        p.protocol ??= 'TCP';
        p.targetPort ??= p.port;
      }
      break;
    }
    case 'secrets':
      obj.type ??= 'Opaque';
      // stringData is write-only: merged into data (base64) and never stored.
      if (isPlainObject(obj.stringData)) {
        obj.data = { ...(obj.data ?? {}) };
        for (const [k, v] of Object.entries(obj.stringData)) obj.data[k] = Buffer.from(String(v)).toString('base64');
        delete obj.stringData;
      }
      break;
    case 'persistentvolumeclaims':
      // SetDefaults_PersistentVolumeClaim(Spec): Filesystem, and a new claim is Pending (the binder moves it).
      (obj.spec ??= {}).volumeMode ??= 'Filesystem';
      if (obj.status && !obj.status.phase) obj.status.phase = 'Pending';
      break;
    case 'persistentvolumes':
      // SetDefaults_PersistentVolume: Retain, Filesystem, Pending until the binder makes it Available.
      obj.spec ??= {};
      obj.spec.persistentVolumeReclaimPolicy ??= 'Retain';
      obj.spec.volumeMode ??= 'Filesystem';
      if (obj.status && !obj.status.phase) obj.status.phase = 'Pending';
      break;
    case 'namespaces':
      obj.spec ??= { finalizers: ['kubernetes'] };
      obj.status ??= { phase: 'Active' };
      break;
    case 'httproutes':
      // CRD schema defaults (gateway-api standard-install.yaml).
      for (const p of obj.spec?.parentRefs ?? []) if (isPlainObject(p)) {
        p.group ??= 'gateway.networking.k8s.io';
        p.kind ??= 'Gateway';
      }
      for (const r of obj.spec?.rules ?? []) {
        if (!isPlainObject(r)) continue;
        r.matches ??= [{ path: { type: 'PathPrefix', value: '/' } }];
        for (const b of r.backendRefs ?? []) if (isPlainObject(b)) {
          b.group ??= '';
          b.kind ??= 'Service';
          b.weight ??= 1;
        }
      }
      break;
  }
}

// ---- validation --------------------------------------------------------------------------------

function validateLabels(field: string, labels: unknown, causes: StatusCause[]): void {
  if (!isPlainObject(labels)) return;
  for (const [k, v] of Object.entries(labels)) {
    const slash = k.lastIndexOf('/');
    const prefix = slash >= 0 ? k.slice(0, slash) : undefined;
    const name = slash >= 0 ? k.slice(slash + 1) : k;
    if (prefix !== undefined && (prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))) causes.push(invalidValue(field, k, `prefix part ${MSG_SUBDOMAIN}`));
    if (name.length > 63) causes.push(invalidValue(field, k, 'name part must be no more than 63 characters'));
    else if (!QUALIFIED_NAME.test(name)) causes.push(invalidValue(field, k, MSG_QUALIFIED));
    const value = String(v);
    if (value.length > 63) causes.push(invalidValue(`${field}`, value, 'must be no more than 63 characters'));
    else if (!LABEL_VALUE.test(value)) causes.push(invalidValue(`${field}`, value, MSG_LABEL_VALUE));
  }
}

function validateName(def: ResourceDef, name: string, causes: StatusCause[]): void {
  // Namespaces and Services are DNS labels (Services: RFC 1035); everything else a subdomain.
  if (def.resource === 'namespaces') {
    if (name.length > 63) causes.push(invalidValue('metadata.name', name, 'must be no more than 63 characters'));
    else if (!DNS1123_LABEL.test(name)) causes.push(invalidValue('metadata.name', name, MSG_LABEL));
  } else if (def.resource === 'services') {
    if (name.length > 63) causes.push(invalidValue('metadata.name', name, 'must be no more than 63 characters'));
    else if (!DNS1035_LABEL.test(name)) causes.push(invalidValue('metadata.name', name, MSG_1035));
  } else if (name.length > 253) causes.push(invalidValue('metadata.name', name, 'must be no more than 253 characters'));
  else if (!DNS1123_SUBDOMAIN.test(name)) causes.push(invalidValue('metadata.name', name, MSG_SUBDOMAIN));
}

function validateContainers(field: string, containers: unknown, causes: StatusCause[]): void {
  if (!Array.isArray(containers) || containers.length === 0) {
    causes.push(required(field));
    return;
  }
  const seen = new Set<string>();
  containers.forEach((c: any, i) => {
    const f = `${field}[${i}]`;
    if (!c?.name) causes.push(required(`${f}.name`));
    else if (!DNS1123_LABEL.test(c.name) || c.name.length > 63) causes.push(invalidValue(`${f}.name`, c.name, MSG_LABEL));
    else if (seen.has(c.name)) causes.push({ reason: 'FieldValueDuplicate', message: `Duplicate value: ${JSON.stringify(c.name)}`, field: `${f}.name` });
    if (c?.name) seen.add(c.name);
    if (!c?.image) causes.push(required(`${f}.image`));
  });
}

const HOST_PATH_TYPES = ['', 'DirectoryOrCreate', 'Directory', 'FileOrCreate', 'File', 'Socket', 'CharDevice', 'BlockDevice'];

/**
 * Volumes as pkg/apis/core/validation (ValidateVolumes, validateHostPathVolumeSource): unique names,
 * a hostPath needs a path without '..' elements (validatePathNoBacksteps) and a supported type
 * (validateHostPathType); a mount must name a declared volume.
 */
function validateVolumes(field: string, spec: any, causes: StatusCause[]): void {
  const names = new Set<string>();
  (spec?.volumes ?? []).forEach((v: any, i: number) => {
    const f = `${field}.volumes[${i}]`;
    if (!v?.name) causes.push(required(`${f}.name`));
    else if (names.has(v.name)) causes.push({ reason: 'FieldValueDuplicate', message: `Duplicate value: ${JSON.stringify(v.name)}`, field: `${f}.name` });
    if (v?.name) names.add(v.name);
    // validatePersistentClaimVolumeSource: only a non-empty claimName (a missing claim is the scheduler's business).
    if (v?.persistentVolumeClaim && !v.persistentVolumeClaim.claimName) causes.push(required(`${f}.persistentVolumeClaim.claimName`));
    if (v?.hostPath) {
      const p = v.hostPath.path;
      if (!p) causes.push(required(`${f}.hostPath.path`));
      else {
        if (String(p).split('/').includes('..')) causes.push(invalidValue(`${f}.hostPath.path`, p, "must not contain '..'"));
        const t = v.hostPath.type;
        if (t !== undefined && t !== null && !HOST_PATH_TYPES.includes(t)) {
          causes.push({ reason: 'FieldValueNotSupported', message: `Unsupported value: ${JSON.stringify(t)}: supported values: ${HOST_PATH_TYPES.map((x) => JSON.stringify(x)).join(', ')}`, field: `${f}.hostPath.type` });
        }
      }
    }
  });
  for (const kind of ['initContainers', 'containers'] as const) {
    (spec?.[kind] ?? []).forEach((c: any, i: number) => {
      (c?.volumeMounts ?? []).forEach((m: any, j: number) => {
        if (m?.name && !names.has(m.name)) causes.push({ reason: 'FieldValueNotFound', message: `Not found: ${JSON.stringify(m.name)}`, field: `${field}.${kind}[${i}].volumeMounts[${j}].name` });
      });
    });
  }
}

function selectorMatches(selector: any, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector?.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector?.matchExpressions ?? []) {
    const has = e.key in labels;
    const ok = e.operator === 'In' ? has && e.values.includes(labels[e.key]) : e.operator === 'NotIn' ? !has || !e.values.includes(labels[e.key]) : e.operator === 'Exists' ? has : !has;
    if (!ok) return false;
  }
  return true;
}

const ACCESS_MODES = ['ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOnce', 'ReadWriteOncePod'];
/** resource.Quantity's syntax (a quantity that does not parse is a 400 in the real server; here a 422 of the field is close enough). */
const QUANTITY = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|[numkKMGTPE]|[KMGTPE]i)?$/;

function quantityBytes(q: unknown): number {
  const m = /^([+-]?(?:\d+\.?\d*|\.\d+))([eE][+-]?\d+|[numkKMGTPE]|[KMGTPE]i)?$/.exec(String(q));
  if (!m) return NaN;
  const n = Number(m[1]);
  const suffix = m[2] ?? '';
  if (/^[eE]/.test(suffix)) return n * 10 ** Number(suffix.slice(1));
  const bin: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
  const dec: Record<string, number> = { n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };
  return n * (bin[suffix] ?? dec[suffix] ?? NaN);
}
export { quantityBytes };

function validateAccessModes(field: string, modes: unknown, causes: StatusCause[], requiredDetail: string): void {
  const list = Array.isArray(modes) ? modes : [];
  if (list.length === 0) causes.push(required(field, requiredDetail));
  for (const m of list) {
    if (!ACCESS_MODES.includes(m)) causes.push({ reason: 'FieldValueNotSupported', message: `Unsupported value: ${JSON.stringify(m)}: supported values: ${ACCESS_MODES.map((x) => JSON.stringify(x)).join(', ')}`, field });
  }
  if (list.includes('ReadWriteOncePod') && list.length > 1) causes.push({ reason: 'FieldValueForbidden', message: 'Forbidden: may not use ReadWriteOncePod with other access modes', field });
}

/**
 * ValidatePersistentVolumeClaimSpec / ValidatePersistentVolumeClaimUpdate (pkg/apis/core/validation):
 * at least one supported access mode (ReadWriteOncePod alone), a positive storage request, and a
 * spec that is immutable once created except the storage request (expansion) and a volumeName
 * still unset (the binder's).
 */
function validateClaim(spec: any, oldSpec: any, causes: StatusCause[]): void {
  validateAccessModes('spec.accessModes', spec.accessModes, causes, 'at least 1 access mode is required');
  const storage = spec.resources?.requests?.storage;
  if (storage === undefined) causes.push(required('spec.resources[storage]'));
  else if (!QUANTITY.test(String(storage))) causes.push(invalidValue('spec.resources[storage]', storage, "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"));
  else if (!(quantityBytes(storage) > 0)) causes.push(invalidValue('spec.resources[storage]', storage, 'must be greater than zero'));
  if (spec.storageClassName) {
    if (!DNS1123_SUBDOMAIN.test(spec.storageClassName)) causes.push(invalidValue('spec.storageClassName', spec.storageClassName, MSG_SUBDOMAIN));
  }
  if (oldSpec) {
    const strip = (x: any) => {
      const { resources: _r, volumeName, ...rest } = x ?? {};
      return { ...rest, volumeName: oldSpec.volumeName ? volumeName : undefined };
    };
    if (!deepEqual(strip(spec), strip(oldSpec))) {
      causes.push({ reason: 'FieldValueForbidden', message: 'Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims', field: 'spec' });
    }
  }
}

/** The volume types a PersistentVolume may name (those the fake knows; the real list is longer). */
const PV_SOURCES = ['hostPath', 'local', 'nfs', 'csi', 'iscsi', 'fc', 'rbd', 'cephfs', 'awsElasticBlockStore', 'gcePersistentDisk', 'azureDisk', 'azureFile'];

/** ValidatePersistentVolumeSpec: capacity storage, access modes, exactly one volume type; hostPath/local paths. */
function validatePersistentVolume(spec: any, causes: StatusCause[]): void {
  const storage = spec.capacity?.storage;
  if (storage === undefined) causes.push(required('spec.capacity'));
  else if (!QUANTITY.test(String(storage)) || !(quantityBytes(storage) > 0)) causes.push(invalidValue('spec.capacity[storage]', storage, 'must be greater than zero'));
  validateAccessModes('spec.accessModes', spec.accessModes, causes, '');
  const sources = PV_SOURCES.filter((k) => spec[k] !== undefined && spec[k] !== null);
  if (sources.length === 0) causes.push(required('spec', 'must specify a volume type'));
  if (sources.length > 1) causes.push({ reason: 'FieldValueForbidden', message: 'Forbidden: may not specify more than 1 volume type', field: `spec.${sources[1]}` });
  if (spec.hostPath) {
    if (!spec.hostPath.path) causes.push(required('spec.hostPath.path'));
    else if (String(spec.hostPath.path).split('/').includes('..')) causes.push(invalidValue('spec.hostPath.path', spec.hostPath.path, "must not contain '..'"));
    else if (String(spec.hostPath.path) === '/') causes.push({ reason: 'FieldValueForbidden', message: "Forbidden: may not be '/'", field: 'spec.hostPath.path' });
  }
  if (spec.local) {
    if (!spec.local.path) causes.push(required('spec.local.path'));
    else if (String(spec.local.path).split('/').includes('..')) causes.push(invalidValue('spec.local.path', spec.local.path, "must not contain '..'"));
    // A local volume must say on which node(s) it is (ValidatePersistentVolumeSpec: "Local volumes require node affinity").
    if (!spec.nodeAffinity?.required) causes.push(required('spec.nodeAffinity', 'Local volumes require node affinity'));
  }
}

/** Validate an object about to be stored (`old` set for updates). Throws 422 Invalid. */
/** gateway-api v1.3.0 standard CRD: HTTPHeaderName (set/add names). */
const HTTP_HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
/** The filter types and the one field each must carry (and no other may). */
const FILTER_FIELDS: Record<string, string> = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestMirror: 'requestMirror',
  RequestRedirect: 'requestRedirect',
  URLRewrite: 'urlRewrite',
  ExtensionRef: 'extensionRef',
};

/** "Too many" the way the apiserver's OpenAPI validation words maxItems. */
function tooMany(field: string, n: number, max: number): StatusCause {
  return { reason: 'FieldValueTooMany', message: `Too many: ${n}: must have at most ${max} items`, field };
}

/**
 * What the HTTPRoute CRD (gateway-api v1.3.0 standard, config/crd/standard/…httproutes.yaml)
 * refuses in a rule's `filters`: maxItems 16, its x-kubernetes-validations (CEL: one
 * RequestHeaderModifier / ResponseHeaderModifier / RequestRedirect / URLRewrite per rule, no
 * RequestRedirect with URLRewrite, a filter's field present exactly for its type), and the
 * HTTPHeaderFilter schema: set/add ≤ 16 items keyed by name (listType=map: a name once), names
 * matching HTTPHeaderName (≤ 256), values 1–4096 characters; remove ≤ 16 items, a set (listType=set:
 * no duplicate). CEL failures read `Invalid value: "array": <message>` / `"object"` as on a real server.
 */
function validateRouteFilters(field: string, filters: unknown, causes: StatusCause[]): void {
  if (!Array.isArray(filters)) return;
  if (filters.length > 16) causes.push(tooMany(field, filters.length, 16));
  const cel = (at: string, kind: 'array' | 'object', message: string) => causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: "${kind}": ${message}`, field: at });
  const count = (type: string) => filters.filter((f) => f?.type === type).length;
  if (count('RequestRedirect') > 0 && count('URLRewrite') > 0) cel(field, 'array', 'May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both');
  for (const type of ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite']) {
    if (count(type) > 1) cel(field, 'array', `${type} filter cannot be repeated`);
  }
  filters.forEach((f: any, j: number) => {
    const at = `${field}[${j}]`;
    if (!(f?.type in FILTER_FIELDS)) {
      causes.push({ reason: 'FieldValueNotSupported', message: `Unsupported value: ${JSON.stringify(f?.type)}: supported values: ${Object.keys(FILTER_FIELDS).map((t) => `"${t}"`).join(', ')}`, field: `${at}.type` });
      return;
    }
    for (const [type, key] of Object.entries(FILTER_FIELDS)) {
      if (f[key] !== undefined && f.type !== type) cel(at, 'object', `filter.${key} must be nil if the filter.type is not ${type}`);
      if (f[key] === undefined && f.type === type) cel(at, 'object', `filter.${key} must be specified for ${type} filter.type`);
    }
    for (const key of ['requestHeaderModifier', 'responseHeaderModifier']) {
      const h = f[key];
      if (!isPlainObject(h)) continue;
      for (const list of ['set', 'add'] as const) {
        const items: unknown = h[list];
        if (!Array.isArray(items)) continue;
        if (items.length > 16) causes.push(tooMany(`${at}.${key}.${list}`, items.length, 16));
        const seen = new Set<string>();
        items.forEach((x: any, k: number) => {
          const here = `${at}.${key}.${list}[${k}]`;
          if (typeof x?.name !== 'string' || x.name === '') causes.push(required(`${here}.name`));
          else if (x.name.length > 256 || !HTTP_HEADER_NAME.test(x.name)) causes.push(invalidValue(`${here}.name`, x.name, `${here}.name in body should match '^[A-Za-z0-9!#$%&'*+\\-.^_\\x60|~]+$'`));
          else if (seen.has(x.name)) causes.push({ reason: 'FieldValueDuplicate', message: `Duplicate value: map[string]interface {}{"name":${JSON.stringify(x.name)}}`, field: here });
          else seen.add(x.name);
          if (typeof x?.value !== 'string') causes.push(required(`${here}.value`));
          else if (x.value.length < 1 || x.value.length > 4096) causes.push(invalidValue(`${here}.value`, x.value, 'must be 1 to 4096 characters'));
        });
      }
      const remove: unknown = h.remove;
      if (Array.isArray(remove)) {
        if (remove.length > 16) causes.push(tooMany(`${at}.${key}.remove`, remove.length, 16));
        remove.forEach((name: unknown, k: number) => {
          if (remove.indexOf(name) !== k) causes.push({ reason: 'FieldValueDuplicate', message: `Duplicate value: ${JSON.stringify(name)}`, field: `${at}.${key}.remove[${k}]` });
        });
      }
    }
  });
}

export function validate(def: ResourceDef, obj: any, old?: any): void {
  const causes: StatusCause[] = [];
  const name: string = obj.metadata?.name ?? '';
  if (!name) causes.push(required('metadata.name', 'name or generateName is required'));
  else validateName(def, name, causes);
  validateLabels('metadata.labels', obj.metadata?.labels, causes);

  switch (def.resource) {
    case 'configmaps':
    case 'secrets':
      for (const k of Object.keys({ ...(obj.data ?? {}), ...(obj.binaryData ?? obj.stringData ?? {}) })) {
        if (!CONFIG_KEY.test(k)) causes.push(invalidValue(`data[${k}]`, k, `a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')`));
      }
      break;
    case 'deployments': {
      const spec = obj.spec ?? {};
      if (typeof spec.replicas === 'number' && spec.replicas < 0) causes.push(invalidValue('spec.replicas', spec.replicas, 'must be greater than or equal to 0'));
      if (!spec.selector || (Object.keys(spec.selector.matchLabels ?? {}).length === 0 && (spec.selector.matchExpressions ?? []).length === 0)) {
        causes.push(required('spec.selector'));
      } else {
        validateLabels('spec.selector.matchLabels', spec.selector.matchLabels, causes);
        const tl = spec.template?.metadata?.labels ?? {};
        if (!selectorMatches(spec.selector, tl)) causes.push(invalidValue('spec.template.metadata.labels', tl, '`selector` does not match template `labels`'));
      }
      validateLabels('spec.template.metadata.labels', spec.template?.metadata?.labels, causes);
      validateContainers('spec.template.spec.containers', spec.template?.spec?.containers, causes);
      validateVolumes('spec.template.spec', spec.template?.spec, causes);
      if (spec.template?.spec?.restartPolicy && spec.template.spec.restartPolicy !== 'Always') {
        causes.push({ reason: 'FieldValueNotSupported', message: `Unsupported value: ${JSON.stringify(spec.template.spec.restartPolicy)}: supported values: "Always"`, field: 'spec.template.spec.restartPolicy' });
      }
      if (old && !deepEqual(old.spec?.selector, spec.selector)) causes.push(invalidValue('spec.selector', spec.selector, 'field is immutable'));
      break;
    }
    case 'pods':
      validateContainers('spec.containers', obj.spec?.containers, causes);
      validateVolumes('spec', obj.spec, causes);
      break;
    case 'persistentvolumeclaims':
      validateClaim(obj.spec ?? {}, old?.spec, causes);
      break;
    case 'persistentvolumes':
      validatePersistentVolume(obj.spec ?? {}, causes);
      break;
    case 'services':
      for (const [i, p] of (obj.spec?.ports ?? []).entries()) {
        if (typeof p?.port !== 'number' || p.port < 1 || p.port > 65535) causes.push(invalidValue(`spec.ports[${i}].port`, p?.port, 'must be between 1 and 65535, inclusive'));
      }
      break;
    case 'leases': {
      const d = obj.spec?.leaseDurationSeconds;
      if (d !== undefined && (typeof d !== 'number' || d <= 0)) causes.push(invalidValue('spec.leaseDurationSeconds', d, 'must be greater than 0'));
      break;
    }
    case 'httproutes':
      if ((obj.spec?.rules ?? []).length > 16) causes.push({ reason: 'FieldValueTooMany', message: 'Too many: must have at most 16 items', field: 'spec.rules' });
      for (const [i, r] of (obj.spec?.rules ?? []).entries()) {
        for (const [j, b] of (r?.backendRefs ?? []).entries()) {
          if (typeof b?.weight === 'number' && (b.weight < 0 || b.weight > 1000000)) causes.push(invalidValue(`spec.rules[${i}].backendRefs[${j}].weight`, b.weight, 'spec.rules.backendRefs.weight in body should be less than or equal to 1000000'));
        }
        validateRouteFilters(`spec.rules[${i}].filters`, r?.filters, causes);
      }
      break;
  }
  if (causes.length > 0) throw errors.invalid(def, name, causes);
}
