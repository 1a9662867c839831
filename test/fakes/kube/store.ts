/**
 * The fake's etcd + registry layer: objects, the global resourceVersion counter, the watch event
 * history, field ownership, and the write paths (create / replace / patch / apply / delete) with
 * the apiserver's admission, preconditions, no-op detection and owner-reference GC. No HTTP here.
 */
import { randomUUID } from 'node:crypto';
import { applyDefaults, checkDecodable, validate } from './admission.js';
import {
  clone,
  deepEqual,
  isPlainObject,
  jsonPatch,
  mergePatch,
  renderManagedFields,
  serverSideApply,
  strategicMergePatch,
  trackUpdate,
  type Managers,
  type Path,
} from './apply.js';
import { KubeError, errors } from './errors.js';
import { apiVersionOf, type ResourceDef, resourceDef } from './resources.js';
import { schemaOf, unknownFields } from './schema.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  type: EventType;
  rv: number;
  def: ResourceDef;
  object: any;
  /** The object before a MODIFIED/DELETED: lets selector-filtered watches synthesize ADDED/DELETED. */
  previous?: any;
}

export type PatchType = 'merge' | 'strategic' | 'json' | 'apply';

export interface WriteOptions {
  /** fieldManager (or the user-agent derived default for non-apply writes). */
  manager: string;
  dryRun?: boolean;
  /** Writes through /status touch only .status; writes to the main resource never do. */
  subresource?: 'status';
  force?: boolean;
  /**
   * fieldValidation of an API request (the server's default is Warn). Internal writes (the fake's
   * controllers) leave it unset: they write only what the schema has.
   */
  fieldValidation?: FieldValidation;
  /** Collects the Warning texts of this write (unknown fields dropped under Warn). */
  warnings?: string[];
}

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

interface Stored {
  def: ResourceDef;
  obj: any;
  managers: Managers;
}

/** Metadata fields the server owns; never taken from a request body. */
const SYSTEM_METADATA = ['uid', 'resourceVersion', 'creationTimestamp', 'generation', 'managedFields', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'selfLink'];
const USER_METADATA = new Set(['labels', 'annotations', 'finalizers', 'ownerReferences']);

export function nowSeconds(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

function keyOf(def: ResourceDef, namespace: string | undefined, name: string): string {
  return `${def.group}/${def.resource}/${def.namespaced ? namespace ?? '' : ''}/${name}`;
}

/** Everything but metadata/status/apiVersion/kind: what bumps metadata.generation when it changes. */
function specPart(obj: any): unknown {
  const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = obj ?? {};
  return rest;
}

/** Equality that ignores what every write changes anyway (rv, managedFields). */
function sameContent(a: any, b: any): boolean {
  const strip = (o: any) => ({ ...o, metadata: { ...o.metadata, resourceVersion: undefined, managedFields: undefined } });
  return deepEqual(strip(a), strip(b));
}

function sameOwnership(a: Managers, b: Managers): boolean {
  if (a.size !== b.size) return false;
  for (const [k, e] of a) {
    const o = b.get(k);
    if (!o || o.paths.size !== e.paths.size || [...e.paths].some((p) => !o.paths.has(p))) return false;
  }
  return true;
}

export class Store {
  private rv = 1000;
  private readonly objects = new Map<string, Stored>();
  private readonly history: StoreEvent[] = [];
  /** Events with rv ≤ this have been evicted from the history (watching from there is a 410). */
  private compactedRv: number;
  private readonly listeners = new Set<(e: StoreEvent) => void>();

  /** The Gateway API release whose CRD schemas are installed (schema.ts). */
  gatewayApi = 'v1.3.0';
  /** Allocates Service ClusterIPs (the box: from its own pod network, see kube-proxy.ts); default 10.96.x.y. */
  clusterIp: (() => string) | undefined;

  constructor(private readonly historyLimit = 1000) {
    this.compactedRv = this.rv;
  }

  /**
   * Unknown fields, as the real server treats them (schema.ts): dropped with a warning (Warn),
   * dropped silently (Ignore), refused (Strict: 400 for a decoded body, 422 for a patch); and for
   * server-side apply always refused with structured-merge-diff's 500.
   */
  private checkFields(def: ResourceDef, obj: any, opts: WriteOptions, mode: 'decode' | 'patch' | 'apply', where?: { namespace?: string | undefined; name: string }): any {
    if (!opts.fieldValidation || !isPlainObject(obj)) return obj;
    const node = schemaOf(apiVersionOf(def), def.kind, this.gatewayApi);
    if (!node) return obj;
    const { unknown, pruned } = unknownFields(node, obj, { keyedByName: !def.crd });
    if (unknown.length === 0) return obj;
    if (mode === 'apply') {
      const gvk = `${def.group}/${def.version}, Kind=${def.kind}`;
      const errs = unknown.map((u) => `${u.smd}: field not declared in schema`);
      const text = errs.length === 1 ? errs[0] : `errors:\n  ${errs.join('\n  ')}`;
      throw new KubeError(500, '', `failed to create typed patch object (${where?.namespace ?? ''}/${where?.name ?? ''}; ${gvk}): ${text}`);
    }
    const strict = `strict decoding error: ${unknown.map((u) => `unknown field "${u.json}"`).join(', ')}`;
    if (opts.fieldValidation === 'Strict') {
      if (mode === 'decode') throw errors.badRequest(`${def.kind} in version "${def.version}" cannot be handled as a ${def.kind}: ${strict}`);
      const value = JSON.stringify(JSON.stringify(obj));
      throw new KubeError(422, 'Invalid', ` "" is invalid: patch: Invalid value: ${value}: ${strict}`, { causes: [{ reason: 'FieldValueInvalid', message: `Invalid value: ${value}: ${strict}`, field: 'patch' }] });
    }
    if (opts.fieldValidation === 'Warn') for (const u of unknown) opts.warnings?.push(`unknown field "${u.json}"`);
    return pruned;
  }

  currentRv(): number {
    return this.rv;
  }

  oldestWatchableRv(): number {
    return this.compactedRv;
  }

  /** Events with rv > `after`, oldest first (caller checks `after >= oldestWatchableRv()`). */
  eventsSince(after: number): StoreEvent[] {
    return this.history.filter((e) => e.rv > after);
  }

  subscribe(fn: (e: StoreEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  // ---- reads -----------------------------------------------------------------------------------

  get(def: ResourceDef, namespace: string | undefined, name: string): any | undefined {
    return clone(this.objects.get(keyOf(def, namespace, name))?.obj);
  }

  getOrThrow(def: ResourceDef, namespace: string | undefined, name: string): any {
    const o = this.get(def, namespace, name);
    if (!o) throw errors.notFound(def, name);
    return o;
  }

  list(def: ResourceDef, namespace?: string, filter: (o: any) => boolean = () => true): any[] {
    const out: any[] = [];
    for (const s of this.objects.values()) {
      if (s.def !== def) continue;
      if (def.namespaced && namespace !== undefined && s.obj.metadata.namespace !== namespace) continue;
      if (filter(s.obj)) out.push(clone(s.obj));
    }
    // etcd returns keys in order: namespace, then name.
    return out.sort((a, b) => `${a.metadata.namespace ?? ''}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace ?? ''}/${b.metadata.name}`));
  }

  // ---- writes ----------------------------------------------------------------------------------

  create(def: ResourceDef, namespace: string | undefined, body: any, opts: WriteOptions): any {
    checkDecodable(def, body);
    body = this.checkFields(def, body, opts, 'decode');
    const obj = this.prepareNew(def, namespace, body);
    const managers = trackUpdate(new Map(), {}, obj, opts.manager, apiVersionOf(def), this.ownershipFilter(def), nowSeconds());
    return this.insert(def, obj, managers, opts);
  }

  replace(def: ResourceDef, namespace: string | undefined, name: string, body: any, opts: WriteOptions): any {
    checkDecodable(def, body);
    body = this.checkFields(def, body, opts, 'decode');
    const stored = this.objects.get(keyOf(def, namespace, name));
    if (!stored) throw errors.notFound(def, name);
    this.checkIdentity(def, namespace, name, body);
    const rv = body.metadata?.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== stored.obj.metadata.resourceVersion) throw errors.conflict(def, name);
    return this.update(stored, body, opts);
  }

  patch(def: ResourceDef, namespace: string | undefined, name: string, type: PatchType, patch: any, opts: WriteOptions): any {
    if (type !== 'apply' && opts.force) throw errors.badRequest('force may not be specified for non-apply patch');
    const stored = this.objects.get(keyOf(def, namespace, name));
    if (type === 'apply') return this.apply(def, namespace, name, stored, patch, opts);
    if (!stored) throw errors.notFound(def, name);
    let patched: any;
    if (type === 'json') patched = jsonPatch(stored.obj, patch);
    else {
      if (!isPlainObject(patch)) throw errors.badRequest('the body of the request was not a JSON object');
      patched = type === 'merge' ? mergePatch(stored.obj, patch) : strategicMergePatch(stored.obj, patch);
    }
    checkDecodable(def, patched);
    patched = this.checkFields(def, patched, opts, 'patch');
    // A resourceVersion inside the patch is an optimistic-concurrency precondition.
    const rv = patched?.metadata?.resourceVersion;
    if (rv !== undefined && rv !== stored.obj.metadata.resourceVersion) throw errors.conflict(def, name);
    this.checkIdentity(def, namespace, name, patched);
    return this.update(stored, patched, opts);
  }

  /**
   * Delete, then garbage-collect dependents (objects whose ownerReferences point at it) unless
   * propagationPolicy=Orphan. Real GC is asynchronous; immediate is close enough for tests.
   */
  delete(def: ResourceDef, namespace: string | undefined, name: string, opts: { dryRun?: boolean; orphan?: boolean; resourceVersion?: string } = {}): any {
    const key = keyOf(def, namespace, name);
    const stored = this.objects.get(key);
    if (!stored) throw errors.notFound(def, name);
    if (opts.resourceVersion && opts.resourceVersion !== stored.obj.metadata.resourceVersion) throw errors.conflict(def, name);
    if (opts.dryRun) return clone(stored.obj);
    this.objects.delete(key);
    const gone = clone(stored.obj);
    gone.metadata.resourceVersion = String(++this.rv);
    this.emit({ type: 'DELETED', rv: this.rv, def, object: gone, previous: stored.obj });
    if (def.resource === 'namespaces') {
      for (const s of [...this.objects.values()]) {
        if (s.def.namespaced && s.obj.metadata.namespace === name) this.delete(s.def, name, s.obj.metadata.name, { orphan: true });
      }
    }
    if (!opts.orphan) {
      for (const s of [...this.objects.values()]) {
        const owners: any[] = s.obj.metadata.ownerReferences ?? [];
        if (owners.some((o) => o.uid === stored.obj.metadata.uid) && this.objects.has(keyOf(s.def, s.obj.metadata.namespace, s.obj.metadata.name))) {
          this.delete(s.def, s.obj.metadata.namespace, s.obj.metadata.name);
        }
      }
    }
    return gone;
  }

  /** Controller-side status write (as kube-controller-manager / kubelet would via /status). */
  writeStatus(def: ResourceDef, namespace: string | undefined, name: string, status: unknown, manager: string): any | undefined {
    const stored = this.objects.get(keyOf(def, namespace, name));
    if (!stored) return undefined;
    return this.update(stored, { ...stored.obj, status }, { manager, subresource: 'status' });
  }

  /** Controller-side create that skips HTTP (e.g. pods and events made by the fake controllers). */
  createInternal(def: ResourceDef, namespace: string | undefined, body: any, manager: string): any {
    return this.create(def, namespace, body, { manager });
  }

  // ---- internals -------------------------------------------------------------------------------

  private apply(def: ResourceDef, namespace: string | undefined, name: string, stored: Stored | undefined, applied: any, opts: WriteOptions): any {
    if (!opts.manager) {
      throw new KubeError(422, 'Invalid', 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch', {
        group: 'meta.k8s.io',
        kind: 'PatchOptions',
        causes: [{ reason: 'FieldValueRequired', message: 'Required value: is required for apply patch', field: 'fieldManager' }],
      });
    }
    if (!isPlainObject(applied)) throw errors.badRequest('error decoding YAML: the applied configuration must be an object');
    if (!applied.apiVersion || !applied.kind) throw errors.badRequest(`Object 'Kind' is missing in '${JSON.stringify(applied)}'`);
    if (applied.apiVersion !== apiVersionOf(def) || applied.kind !== def.kind) {
      throw errors.badRequest(`the API version in the data (${applied.apiVersion}) does not match the expected API version (${apiVersionOf(def)})`);
    }
    // Applying an object read back from the server is a classic mistake the real server rejects.
    if (applied.metadata?.managedFields !== undefined && applied.metadata.managedFields !== null) throw errors.badRequest('metadata.managedFields must be nil');
    checkDecodable(def, applied);
    this.checkFields(def, applied, opts, 'apply', { namespace, name });
    this.checkIdentity(def, namespace, name, applied);
    const rv = applied.metadata?.resourceVersion;
    if (stored && rv !== undefined && rv !== stored.obj.metadata.resourceVersion) throw errors.conflict(def, name);
    if (!stored && rv !== undefined) throw errors.notFound(def, name);

    const { obj, managers } = serverSideApply({
      live: stored?.obj,
      applied: { ...applied, metadata: { ...applied.metadata, name } },
      manager: opts.manager,
      force: opts.force ?? false,
      apiVersion: apiVersionOf(def),
      managers: stored?.managers ?? new Map(),
      ignore: this.ownershipFilter(def),
      now: nowSeconds(),
    });
    if (!stored) {
      // Apply on a missing object is a create (upsert).
      const fresh = this.prepareNew(def, namespace, { ...obj, metadata: { ...obj.metadata, name } });
      return this.insert(def, fresh, managers, opts);
    }
    return this.commitUpdate(stored, obj, managers, opts);
  }

  private checkIdentity(def: ResourceDef, namespace: string | undefined, name: string, body: any): void {
    const bodyName = body?.metadata?.name;
    if (bodyName !== undefined && bodyName !== name) throw errors.badRequest(`the name of the object (${bodyName}) does not match the name on the URL (${name})`);
    const bodyNs = body?.metadata?.namespace;
    if (def.namespaced && bodyNs !== undefined && bodyNs !== '' && bodyNs !== namespace) {
      throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
  }

  /** Leaves that field ownership ignores: identity, server-set metadata, and status on the main resource. */
  private ownershipFilter(def: ResourceDef): (p: Path) => boolean {
    return (p) =>
      p[0] === 'apiVersion' || p[0] === 'kind' || (p[0] === 'status' && def.hasStatus) || (p[0] === 'metadata' && p.length > 1 && !USER_METADATA.has(p[1]!));
  }

  private prepareNew(def: ResourceDef, namespace: string | undefined, body: any): any {
    const obj = clone(body);
    if (obj.apiVersion !== undefined && obj.apiVersion !== apiVersionOf(def)) {
      throw errors.badRequest(`the API version in the data (${obj.apiVersion}) does not match the expected API version (${apiVersionOf(def)})`);
    }
    if (obj.kind !== undefined && obj.kind !== def.kind) throw errors.badRequest(`the kind in the data (${obj.kind}) does not match the expected kind (${def.kind})`);
    obj.apiVersion = apiVersionOf(def);
    obj.kind = def.kind;
    obj.metadata = isPlainObject(obj.metadata) ? obj.metadata : {};
    for (const f of SYSTEM_METADATA) delete obj.metadata[f];
    if (def.namespaced) {
      const bodyNs = obj.metadata.namespace;
      if (bodyNs && bodyNs !== namespace) throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
      obj.metadata.namespace = namespace;
    } else delete obj.metadata.namespace;
    if (!obj.metadata.name && obj.metadata.generateName) {
      obj.metadata.name = obj.metadata.generateName + randomSuffix(5);
    }
    if (def.hasStatus && def.resource !== 'namespaces') obj.status = def.resource === 'pods' ? { phase: 'Pending', qosClass: 'BestEffort' } : {};
    applyDefaults(def, obj, this.clusterIp);
    validate(def, obj);
    if (def.namespaced) {
      const nsDef = resourceDef('namespaces');
      // The NamespaceLifecycle admission plugin: no objects in namespaces that do not exist.
      if (!this.objects.has(keyOf(nsDef, undefined, namespace ?? ''))) throw errors.notFound(nsDef, namespace ?? '');
    }
    if (this.objects.has(keyOf(def, namespace, obj.metadata.name))) throw errors.alreadyExists(def, obj.metadata.name);
    obj.metadata.uid = randomUUID();
    obj.metadata.creationTimestamp = nowSeconds();
    if (def.hasGeneration) obj.metadata.generation = 1;
    return obj;
  }

  private insert(def: ResourceDef, obj: any, managers: Managers, opts: WriteOptions): any {
    if (opts.dryRun) return clone(obj);
    obj.metadata.resourceVersion = String(++this.rv);
    obj.metadata.managedFields = renderManagedFields(managers);
    if (obj.metadata.managedFields.length === 0) delete obj.metadata.managedFields;
    this.objects.set(keyOf(def, obj.metadata.namespace, obj.metadata.name), { def, obj, managers });
    this.emit({ type: 'ADDED', rv: this.rv, def, object: clone(obj) });
    return clone(obj);
  }

  /** Non-apply update: merge the body with what the server keeps, then track ownership. */
  private update(stored: Stored, body: any, opts: WriteOptions): any {
    const live = stored.obj;
    let next: any;
    if (opts.subresource === 'status') {
      next = { ...clone(live), status: clone(body.status) };
    } else {
      next = clone(body);
      next.apiVersion = live.apiVersion;
      next.kind = live.kind;
      next.metadata = isPlainObject(next.metadata) ? next.metadata : {};
      if (stored.def.hasStatus) next.status = clone(live.status);
    }
    const managers = trackUpdate(stored.managers, live, next, opts.manager, apiVersionOf(stored.def), opts.subresource ? (p) => p[0] !== 'status' : this.ownershipFilter(stored.def), nowSeconds(), opts.subresource);
    return this.commitUpdate(stored, next, managers, opts);
  }

  private commitUpdate(stored: Stored, next: any, managers: Managers, opts: WriteOptions): any {
    const live = stored.obj;
    for (const f of SYSTEM_METADATA) delete next.metadata[f];
    next.metadata.name = live.metadata.name;
    if (stored.def.namespaced) next.metadata.namespace = live.metadata.namespace;
    else delete next.metadata.namespace;
    next.metadata.uid = live.metadata.uid;
    next.metadata.creationTimestamp = live.metadata.creationTimestamp;
    if (stored.def.hasStatus && opts.subresource !== 'status') next.status = clone(live.status);
    if (opts.subresource !== 'status') {
      applyDefaults(stored.def, next, this.clusterIp);
      validate(stored.def, next, live);
    }
    if (stored.def.hasGeneration) {
      const gen = live.metadata.generation ?? 1;
      next.metadata.generation = deepEqual(specPart(live), specPart(next)) ? gen : gen + 1;
    }
    next.metadata.resourceVersion = live.metadata.resourceVersion;
    next.metadata.managedFields = live.metadata.managedFields;
    // The real server skips no-op writes: same content and ownership → no new resourceVersion,
    // no watch event (re-applying an unchanged manifest is free).
    if (sameContent(live, next) && sameOwnership(stored.managers, managers)) return clone(live);
    if (opts.dryRun) return clone(next);
    next.metadata.resourceVersion = String(++this.rv);
    next.metadata.managedFields = renderManagedFields(managers);
    if (next.metadata.managedFields.length === 0) delete next.metadata.managedFields;
    stored.obj = next;
    stored.managers = managers;
    this.emit({ type: 'MODIFIED', rv: this.rv, def: stored.def, object: clone(next), previous: clone(live) });
    return clone(next);
  }

  private emit(e: StoreEvent): void {
    this.history.push(e);
    while (this.history.length > this.historyLimit) this.compactedRv = this.history.shift()!.rv;
    for (const l of [...this.listeners]) l(e);
  }
}

const SAFE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/** Random suffix from the alphabet Kubernetes uses for generated names (no vowels, no 0/1/3). */
export function randomSuffix(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += SAFE_ALPHABET[Math.floor(Math.random() * SAFE_ALPHABET.length)];
  return s;
}

/** Stable short hash of a value, in the same alphabet (like pod-template-hash). */
export function safeHash(value: unknown, n = 10): string {
  const str = JSON.stringify(value);
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < str.length; i++) {
    h1 = Math.imul(h1 ^ str.charCodeAt(i), 16777619) >>> 0;
    h2 = Math.imul(h2 + str.charCodeAt(i), 2246822519) >>> 0;
  }
  let s = '';
  let x = BigInt(h1) * 4294967296n + BigInt(h2);
  for (let i = 0; i < n; i++) {
    s += SAFE_ALPHABET[Number(x % 27n)];
    x /= 27n;
  }
  return s;
}
