/** Label and field selectors, parsed the way the apiserver parses ?labelSelector= / ?fieldSelector=. */
import { errors } from './errors.js';
import type { ResourceDef } from './resources.js';

type LabelReq =
  | { op: 'eq' | 'neq'; key: string; value: string }
  | { op: 'in' | 'notin'; key: string; values: string[] }
  | { op: 'exists' | 'notexists'; key: string };

export type Selector = (obj: any) => boolean;

/** Split on commas that are not inside `in (a,b)` parentheses. */
function splitTopLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((x) => x.trim()).filter((x) => x !== '');
}

function parseLabelReq(s: string): LabelReq {
  let m = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(s);
  if (m) return { op: m[2] as 'in' | 'notin', key: m[1]!, values: m[3]!.split(',').map((v) => v.trim()) };
  m = /^([^=!\s]+)\s*!=\s*(\S*)$/.exec(s);
  if (m) return { op: 'neq', key: m[1]!, value: m[2]! };
  m = /^([^=!\s]+)\s*==?\s*(\S*)$/.exec(s);
  if (m) return { op: 'eq', key: m[1]!, value: m[2]! };
  m = /^!\s*([^=!\s]+)$/.exec(s);
  if (m) return { op: 'notexists', key: m[1]! };
  m = /^([^=!\s()]+)$/.exec(s);
  if (m) return { op: 'exists', key: m[1]! };
  throw errors.badRequest(`unable to parse requirement: ${JSON.stringify(s)}`);
}

export function parseLabelSelector(raw: string | null): Selector {
  if (!raw) return () => true;
  const reqs = splitTopLevel(raw).map(parseLabelReq);
  return (obj) => {
    const labels: Record<string, string> = obj?.metadata?.labels ?? {};
    return reqs.every((r) => {
      const has = Object.prototype.hasOwnProperty.call(labels, r.key);
      const v = labels[r.key];
      switch (r.op) {
        case 'eq': return has && v === r.value;
        case 'neq': return !has || v !== r.value;
        case 'in': return has && r.values.includes(v!);
        case 'notin': return !has || !r.values.includes(v!);
        case 'exists': return has;
        case 'notexists': return !has;
      }
    });
  };
}

/** Field selectors the real apiserver supports per resource (others are a 400). */
const FIELD_LABELS: Record<string, string[]> = {
  pods: ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'spec.hostNetwork', 'status.phase', 'status.podIP', 'status.podIPs', 'status.nominatedNodeName'],
  events: ['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid', 'involvedObject.apiVersion', 'involvedObject.resourceVersion', 'involvedObject.fieldPath', 'reason', 'reportingComponent', 'source', 'type'],
  secrets: ['type'],
  namespaces: ['status.phase'],
};

function fieldValue(obj: any, path: string): string {
  if (path === 'source') return obj?.source?.component ?? '';
  let cur = obj;
  for (const seg of path.split('.')) cur = cur?.[seg];
  return cur === undefined || cur === null ? '' : String(cur);
}

export function parseFieldSelector(raw: string | null, def: ResourceDef): Selector {
  if (!raw) return () => true;
  const reqs = splitTopLevel(raw).map((s) => {
    const m = /^([^=!]+?)\s*(==|=|!=)\s*(.*)$/.exec(s);
    if (!m) throw errors.badRequest(`invalid selector: '${raw}'; can't understand '${s}'`);
    const field = m[1]!.trim();
    const allowed = ['metadata.name', 'metadata.namespace', ...(FIELD_LABELS[def.resource] ?? [])];
    if (!allowed.includes(field)) throw errors.badRequest(`field label not supported: ${field}`);
    return { field, neq: m[2] === '!=', value: m[3]!.trim() };
  });
  return (obj) => reqs.every((r) => (fieldValue(obj, r.field) === r.value) !== r.neq);
}
