/**
 * Patch semantics (merge, strategic-merge, JSON patch) and a pragmatic server-side apply with
 * per-manager field ownership. Pure functions over plain JSON; no HTTP, no store.
 *
 * SSA model (simplified from structured-merge-diff, see README-style notes in server.ts):
 *  - A field set is the set of *leaf paths* of an object. Every list is treated as atomic (a leaf),
 *    as are scalars and empty maps. Real SSA merges associative lists (containers by name, ...);
 *    here they are replaced wholesale, which equals the real result whenever one manager owns the
 *    whole list (the case for our tool's Deployments and HTTPRoute rules, which really are atomic).
 *  - An Apply by manager M: conflicts = leaves M applies whose live value differs and are owned by
 *    another manager. Without force → 409; with force they move to M. Applied leaves overwrite
 *    live values; leaves M applied last time but not now are removed unless someone else owns them.
 *  - Any other write (create/update/patch) makes its manager own every leaf it changed, taking it
 *    from the others (no conflicts for non-apply writes, like the real server).
 */
import { KubeError, errors } from './errors.js';

export type Path = string[];

export interface ManagerEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  subresource?: string;
  /** Leaf paths as JSON.stringify(Path). */
  paths: Set<string>;
}

/** Keyed by manager + operation (+ subresource): the identity of a managedFields entry. */
export type Managers = Map<string, ManagerEntry>;

export function managerKey(manager: string, operation: 'Apply' | 'Update', subresource?: string): string {
  return `${manager}\u0000${operation}\u0000${subresource ?? ''}`;
}

export function isPlainObject(x: unknown): x is Record<string, any> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isPlainObject(a) && isPlainObject(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => deepEqual(a[k], b[k]));
  }
  return false;
}

export function clone<T>(x: T): T {
  return x === undefined ? x : (JSON.parse(JSON.stringify(x)) as T);
}

// ---- paths ----------------------------------------------------------------------------------------

export function leafPaths(obj: unknown, ignore: (p: Path) => boolean = () => false, prefix: Path = []): Path[] {
  if (!isPlainObject(obj) || (Object.keys(obj).length === 0 && prefix.length > 0)) return prefix.length ? [prefix] : [];
  const out: Path[] = [];
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    const p = [...prefix, k];
    if (ignore(p)) continue;
    out.push(...leafPaths(v, ignore, p));
  }
  return out;
}

export function getAt(obj: unknown, p: Path): unknown {
  let cur: unknown = obj;
  for (const seg of p) {
    if (!isPlainObject(cur)) return undefined;
    cur = cur[seg];
  }
  return cur;
}

export function hasAt(obj: unknown, p: Path): boolean {
  let cur: unknown = obj;
  for (const seg of p) {
    if (!isPlainObject(cur) || !(seg in cur)) return false;
    cur = cur[seg];
  }
  return true;
}

export function setAt(obj: Record<string, any>, p: Path, value: unknown): void {
  let cur = obj;
  for (const seg of p.slice(0, -1)) {
    if (!isPlainObject(cur[seg])) cur[seg] = {};
    cur = cur[seg];
  }
  cur[p[p.length - 1]!] = value;
}

/** Delete a leaf and prune the maps it leaves empty (a removed last label leaves no `labels: {}`). */
export function deleteAt(obj: Record<string, any>, p: Path): void {
  const parents: Record<string, any>[] = [];
  let cur: unknown = obj;
  for (const seg of p.slice(0, -1)) {
    if (!isPlainObject(cur)) return;
    parents.push(cur);
    cur = cur[seg];
  }
  if (!isPlainObject(cur)) return;
  delete cur[p[p.length - 1]!];
  for (let i = parents.length - 1; i >= 0; i--) {
    const child = parents[i]![p[i]!];
    if (isPlainObject(child) && Object.keys(child).length === 0) delete parents[i]![p[i]!];
    else break;
  }
}

export function displayPath(p: Path): string {
  return '.' + p.join('.');
}

// ---- patches --------------------------------------------------------------------------------------

/** RFC 7386 JSON merge patch: maps merge recursively, null deletes, everything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return clone(patch);
  const out: Record<string, any> = isPlainObject(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** Merge keys of the lists strategic merge patch merges by key instead of replacing. */
function strategicMergeKey(field: string, items: unknown[]): string | undefined {
  if (['containers', 'initContainers', 'ephemeralContainers', 'env', 'volumes', 'imagePullSecrets'].includes(field)) return 'name';
  if (field === 'volumeMounts') return 'mountPath';
  if (field === 'ports') return items.some((i) => isPlainObject(i) && 'containerPort' in i) ? 'containerPort' : 'port';
  return undefined;
}

/**
 * Strategic merge patch: merge patch, except the well-known keyed lists (containers by name, ...)
 * are merged item by item, and `$patch: delete` on an item removes it. Other lists are replaced.
 */
export function strategicMergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return clone(patch);
  const out: Record<string, any> = isPlainObject(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$')) continue;
    if (v === null) {
      delete out[k];
    } else if (Array.isArray(v) && Array.isArray(out[k]) && strategicMergeKey(k, v)) {
      const key = strategicMergeKey(k, v)!;
      const merged: any[] = clone(out[k]);
      for (const item of v) {
        if (!isPlainObject(item)) continue;
        const idx = merged.findIndex((m) => isPlainObject(m) && m[key] === item[key]);
        if (item.$patch === 'delete') {
          if (idx >= 0) merged.splice(idx, 1);
        } else if (idx >= 0) merged[idx] = strategicMergePatch(merged[idx], item);
        else merged.push(strategicMergePatch({}, item));
      }
      out[k] = merged;
    } else {
      out[k] = strategicMergePatch(out[k], v);
    }
  }
  return out;
}

interface JsonPatchOp {
  op: string;
  path: string;
  from?: string;
  value?: unknown;
}

function pointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw jsonPatchError(`invalid JSON pointer ${JSON.stringify(p)}`);
  return p.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function jsonPatchError(message: string): KubeError {
  // The apiserver answers failed JSON patches with 422 (and the jsonpatch library's message).
  return new KubeError(422, 'Invalid', `the server rejected our request due to an error in our request: ${message}`);
}

/** RFC 6902 JSON patch (the default content type of the generated typed PATCH methods). */
export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw errors.badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  const doc = { root: clone(target) } as Record<string, any>;
  const resolve = (segs: string[], create: boolean): { parent: any; key: string } => {
    let parent: any = doc;
    let key = 'root';
    for (const seg of segs) {
      let next = parent[key];
      if (next === undefined && create) next = parent[key] = {};
      if (next === null || typeof next !== 'object') throw jsonPatchError(`doc is missing path: ${segs.join('/')}`);
      parent = next;
      key = seg;
    }
    return { parent, key };
  };
  const get = (segs: string[]): unknown => {
    const { parent, key } = resolve(segs, false);
    const v = Array.isArray(parent) ? parent[Number(key)] : parent[key];
    if (v === undefined) throw jsonPatchError(`doc is missing path: "/${segs.join('/')}": missing value`);
    return v;
  };
  const remove = (segs: string[]): unknown => {
    const v = get(segs);
    const { parent, key } = resolve(segs, false);
    if (Array.isArray(parent)) parent.splice(Number(key), 1);
    else delete parent[key];
    return v;
  };
  const add = (segs: string[], value: unknown): void => {
    const { parent, key } = resolve(segs, false);
    if (Array.isArray(parent)) {
      const i = key === '-' ? parent.length : Number(key);
      if (!Number.isInteger(i) || i < 0 || i > parent.length) throw jsonPatchError(`Unable to access invalid index: ${key}`);
      parent.splice(i, 0, clone(value));
    } else parent[key] = clone(value);
  };
  for (const raw of ops as JsonPatchOp[]) {
    const segs = pointer(raw.path);
    switch (raw.op) {
      case 'add': add(segs, raw.value); break;
      case 'remove': remove(segs); break;
      case 'replace': get(segs); remove(segs); add(segs, raw.value); break;
      case 'move': add(segs, remove(pointer(raw.from ?? ''))); break;
      case 'copy': add(segs, get(pointer(raw.from ?? ''))); break;
      case 'test':
        if (!deepEqual(get(segs), raw.value)) throw jsonPatchError(`testing value /${segs.join('/')} failed: test failed`);
        break;
      default: throw jsonPatchError(`Unexpected kind: ${raw.op}`);
    }
  }
  return doc.root;
}

// ---- field ownership ------------------------------------------------------------------------------

/**
 * Record a non-apply write: `manager` now owns every leaf whose value it changed; others lose
 * those leaves; entries drop leaves that no longer exist.
 */
export function trackUpdate(
  managers: Managers,
  before: unknown,
  after: unknown,
  manager: string,
  apiVersion: string,
  ignore: (p: Path) => boolean,
  now: string,
  subresource?: string,
): Managers {
  const out = cloneManagers(managers);
  const changed = leafPaths(after, ignore).filter((p) => !deepEqual(getAt(before, p), getAt(after, p)));
  if (changed.length > 0) {
    const keys = new Set(changed.map((p) => JSON.stringify(p)));
    for (const e of out.values()) for (const k of keys) e.paths.delete(k);
    const key = managerKey(manager, 'Update', subresource);
    const entry = out.get(key) ?? { manager, operation: 'Update' as const, apiVersion, time: now, paths: new Set<string>(), ...(subresource ? { subresource } : {}) };
    for (const k of keys) entry.paths.add(k);
    entry.time = now;
    entry.apiVersion = apiVersion;
    out.set(key, entry);
  }
  return prune(out, after);
}

export interface ApplyRequest {
  live: Record<string, any> | undefined;
  applied: Record<string, any>;
  manager: string;
  force: boolean;
  apiVersion: string;
  managers: Managers;
  ignore: (p: Path) => boolean;
  now: string;
}

/** Server-side apply. Returns the merged object and the new ownership; throws 409 on conflicts. */
export function serverSideApply(req: ApplyRequest): { obj: Record<string, any>; managers: Managers } {
  const managers = cloneManagers(req.managers);
  const selfKey = managerKey(req.manager, 'Apply');
  const applied = leafPaths(req.applied, req.ignore);
  const appliedKeys = new Set(applied.map((p) => JSON.stringify(p)));

  const conflicts: { entry: ManagerEntry; path: Path }[] = [];
  if (req.live) {
    for (const p of applied) {
      const k = JSON.stringify(p);
      for (const e of managers.values()) {
        if (e.manager === req.manager || !e.paths.has(k)) continue;
        if (!deepEqual(getAt(req.live, p), getAt(req.applied, p))) conflicts.push({ entry: e, path: p });
      }
    }
  }
  if (conflicts.length > 0 && !req.force) throw conflictError(conflicts);
  for (const c of conflicts) c.entry.paths.delete(JSON.stringify(c.path));

  const obj: Record<string, any> = clone(req.live) ?? {};
  for (const p of applied) setAt(obj, p, clone(getAt(req.applied, p)));

  // Fields this manager applied before but dropped now are removed, unless someone else owns them.
  const previous = managers.get(selfKey)?.paths ?? new Set<string>();
  for (const k of previous) {
    if (appliedKeys.has(k)) continue;
    const ownedElsewhere = [...managers.entries()].some(([key, e]) => key !== selfKey && e.paths.has(k));
    if (!ownedElsewhere) deleteAt(obj, JSON.parse(k) as Path);
  }
  managers.set(selfKey, { manager: req.manager, operation: 'Apply', apiVersion: req.apiVersion, time: req.now, paths: appliedKeys });
  return { obj, managers: prune(managers, obj) };
}

function conflictError(conflicts: { entry: ManagerEntry; path: Path }[]): KubeError {
  const n = conflicts.length;
  const byManager = new Map<ManagerEntry, Path[]>();
  for (const c of conflicts) byManager.set(c.entry, [...(byManager.get(c.entry) ?? []), c.path]);
  const causes = conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with "${c.entry.manager}" using ${c.entry.apiVersion}`, field: displayPath(c.path) }));
  let message: string;
  const first = [...byManager][0]!;
  if (byManager.size === 1 && n === 1) {
    message = `Apply failed with 1 conflict: conflict with "${first[0].manager}" using ${first[0].apiVersion}: ${displayPath(first[1][0]!)}`;
  } else {
    // The real multi-conflict message lists each manager's fields on their own lines.
    const blocks = [...byManager].map(([e, ps]) =>
      ps.length === 1 ? `conflict with "${e.manager}" using ${e.apiVersion}: ${displayPath(ps[0]!)}` : `conflicts with "${e.manager}" using ${e.apiVersion}:\n${ps.map((p) => `- ${displayPath(p)}`).join('\n')}`,
    );
    message = `Apply failed with ${n} conflicts: ${blocks.join('\n')}`;
  }
  return new KubeError(409, 'Conflict', message, { causes });
}

function cloneManagers(m: Managers): Managers {
  return new Map([...m].map(([k, e]) => [k, { ...e, paths: new Set(e.paths) }]));
}

/** Drop owned leaves that no longer exist in the object, and entries that own nothing. */
function prune(m: Managers, obj: unknown): Managers {
  for (const [k, e] of m) {
    for (const p of e.paths) if (!hasAt(obj, JSON.parse(p) as Path)) e.paths.delete(p);
    if (e.paths.size === 0) m.delete(k);
  }
  return m;
}

/** metadata.managedFields as the real server renders it (FieldsV1: nested `f:<field>` maps). */
export function renderManagedFields(m: Managers): unknown[] {
  return [...m.values()].map((e) => {
    const fields: Record<string, any> = {};
    for (const k of e.paths) {
      let cur = fields;
      for (const seg of JSON.parse(k) as Path) cur = cur[`f:${seg}`] ??= {};
    }
    const out: Record<string, unknown> = { manager: e.manager, operation: e.operation, apiVersion: e.apiVersion, time: e.time, fieldsType: 'FieldsV1', fieldsV1: fields };
    if (e.subresource) out.subresource = e.subresource;
    return out;
  });
}
