/**
 * The fields each served kind has, read from the upstream models (npm `kubernetes-models` for the
 * built-in kinds, `@kubernetes-models/gateway-api` for HTTPRoute): their TypeScript declarations are
 * generated from the Kubernetes OpenAPI document and the Gateway API CRDs, so walking them gives the
 * same field tree the API server decodes against. Used for what the real server does with a field
 * it does not know (admission-side: see `unknownFields` and store.ts):
 *
 *   create / update / merge, JSON and strategic patches: dropped (pruned); fieldValidation=Warn (the
 *     default) adds a `Warning: 299 - "unknown field \"spec.x\""` header, Strict refuses the write
 *     (400 "strict decoding error: unknown field …"; 422 on `patch` for patches), Ignore says nothing;
 *   server-side apply: always refused, whatever fieldValidation says — structured-merge-diff cannot
 *     type the patch: 500 "failed to create typed patch object (ns/name; gvk): .spec.x: field not
 *     declared in schema" (kubernetes#122480, #139253: a 500, not a 400, to this day).
 *
 * Gateway API versions: the package carries the newest schema. A v1.2 cluster (standard channel) is
 * that schema without RequestMirror `percent` and `fraction` (Standard only since v1.3.0): the fields
 * modelctl writes. Other fields newer than v1.2 are still accepted here (modelctl writes none).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './kubelet.js';

export type FieldNode =
  | { kind: 'object'; fields: () => Map<string, FieldNode>; open?: boolean }
  | { kind: 'list'; item: FieldNode }
  | { kind: 'map'; value: FieldNode }
  | { kind: 'leaf'; type: 'string' | 'integer' | 'boolean' | 'any' };

const MODELS = path.join(REPO_ROOT, 'node_modules');

/** Kind → its declaration file (relative to node_modules). */
const KINDS: Record<string, string> = {
  'v1/Namespace': 'kubernetes-models/v1/Namespace.d.ts',
  'v1/ConfigMap': 'kubernetes-models/v1/ConfigMap.d.ts',
  'v1/Secret': 'kubernetes-models/v1/Secret.d.ts',
  'v1/Service': 'kubernetes-models/v1/Service.d.ts',
  'v1/Pod': 'kubernetes-models/v1/Pod.d.ts',
  'v1/Event': 'kubernetes-models/v1/Event.d.ts',
  'v1/PersistentVolumeClaim': 'kubernetes-models/v1/PersistentVolumeClaim.d.ts',
  'v1/PersistentVolume': 'kubernetes-models/v1/PersistentVolume.d.ts',
  'apps/v1/Deployment': 'kubernetes-models/apps/v1/Deployment.d.ts',
  'coordination.k8s.io/v1/Lease': 'kubernetes-models/coordination.k8s.io/v1/Lease.d.ts',
  'authorization.k8s.io/v1/SelfSubjectAccessReview': 'kubernetes-models/authorization.k8s.io/v1/SelfSubjectAccessReview.d.ts',
  'apiextensions.k8s.io/v1/CustomResourceDefinition': 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition.d.ts',
  'gateway.networking.k8s.io/v1/HTTPRoute': '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute.d.ts',
};

/** Fields a Gateway API release does not have yet, by declaration file name. */
const NOT_IN: Record<string, Record<string, string[]>> = {
  'v1.2.0': { 'HTTPRequestMirrorFilter.d.ts': ['percent', 'fraction'] },
  'v1.3.0': {},
};

const parsed = new Map<string, FieldNode>();

/** The interface declared in `file`, as a field tree (lazily: the models are recursive in places). */
function fromFile(file: string, without: Record<string, string[]>): FieldNode {
  const key = `${file}#${JSON.stringify(without)}`;
  const hit = parsed.get(key);
  if (hit) return hit;
  const src = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
  const imports = new Map<string, string>();
  for (const m of src.matchAll(/import \{ (\w+) \} from "([^"]+)";/g)) imports.set(m[1]!, m[2]!);
  // The class declaration repeats every property, inherited ones included (interfaces use `extends`).
  const cls = src.search(/export declare class \w+ extends Model<\w+> implements \w+ \{/);
  const start = cls >= 0 ? cls : src.search(/export interface \w+(?: extends [\w, ]+)? \{/);
  if (start < 0) {
    // A type alias (IntOrString, Quantity, a string enum): a leaf.
    const alias = /export type \w+ = ([^;]+);/.exec(src)?.[1] ?? '';
    const node: FieldNode = { kind: 'leaf', type: /\bnumber\b/.test(alias) && !/\bstring\b/.test(alias) ? 'integer' : /^\s*boolean\s*$/.test(alias) ? 'boolean' : /\bstring\b|"/.test(alias) && !/\bnumber\b/.test(alias) ? 'string' : 'any' };
    parsed.set(key, node);
    return node;
  }
  const open = src.indexOf('{', start);
  let depth = 0;
  let end = open;
  for (; end < src.length; end++) {
    if (src[end] === '{') depth++;
    else if (src[end] === '}' && --depth === 0) break;
  }
  const body = src.slice(open + 1, end);
  const drop = new Set(without[path.basename(file)] ?? []);
  let fields: Map<string, FieldNode> | undefined;
  const node: FieldNode = {
    kind: 'object',
    fields: () => {
      if (fields) return fields;
      fields = new Map();
      // `"name"?: Type;` at depth 0 of the interface body.
      let i = 0;
      while (i < body.length) {
        const m = /"([^"]+)"\??:\s*/y;
        m.lastIndex = body.indexOf('"', i);
        if (m.lastIndex < 0) break;
        const hitProp = m.exec(body);
        if (!hitProp) break;
        let j = m.lastIndex;
        let d = 0;
        for (; j < body.length; j++) {
          const c = body[j];
          if (c === '{' || c === '<' || c === '(') d++;
          else if (c === '}' || c === '>' || c === ')') d--;
          else if (c === ';' && d === 0) break;
        }
        const type = body.slice(m.lastIndex, j).replace(/\s+/g, '');
        if (!drop.has(hitProp[1]!)) fields.set(hitProp[1]!, typeNode(type, file, imports, without));
        i = j + 1;
      }
      return fields;
    },
  };
  parsed.set(key, node);
  return node;
}

function typeNode(type: string, file: string, imports: Map<string, string>, without: Record<string, string[]>): FieldNode {
  const arr = /^Array<(.+)>$/.exec(type);
  if (arr) return { kind: 'list', item: typeNode(arr[1]!, file, imports, without) };
  const map = /^\{\[key:string\]:(.+)\}$/.exec(type);
  if (map) return { kind: 'map', value: typeNode(map[1]!, file, imports, without) };
  if (type === 'string' || /^"[^"]*"(\|"[^"]*")*$/.test(type)) return { kind: 'leaf', type: 'string' };
  if (type === 'number') return { kind: 'leaf', type: 'integer' };
  if (type === 'boolean') return { kind: 'leaf', type: 'boolean' };
  const from = imports.get(type);
  if (!from) return { kind: 'leaf', type: 'any' };
  const target = from.startsWith('.') ? path.resolve(path.dirname(file), from.replace(/\.js$/, '.d.ts')) : path.join(MODELS, `${from.replace(/\.js$/, '')}.d.ts`);
  return fromFile(target, without);
}

/** The field tree of a kind, for a cluster with Gateway API `gatewayApi`. */
export function schemaOf(apiVersion: string, kind: string, gatewayApi = 'v1.3.0'): FieldNode | undefined {
  const file = KINDS[`${apiVersion}/${kind}`];
  if (!file) return undefined;
  return fromFile(path.join(MODELS, file), NOT_IN[gatewayApi] ?? {});
}

export interface UnknownField {
  /** JSON decoder form: `spec.template.spec.containers[0].foo`. */
  json: string;
  /** structured-merge-diff form: `.spec.template.spec.containers[name="model"].foo`. */
  smd: string;
}

/**
 * Every field of `obj` the schema does not declare, and `obj` without them (the pruned object the
 * server would store). Maps (labels, data…) and `any` leaves (RawExtension, JSON) take anything.
 */
export function unknownFields(node: FieldNode, obj: unknown, opts: { keyedByName?: boolean } = {}): { unknown: UnknownField[]; pruned: unknown } {
  const unknown: UnknownField[] = [];
  const walk = (n: FieldNode, v: unknown, json: string, smd: string): unknown => {
    if (v === null || v === undefined) return v;
    if (n.kind === 'object' && typeof v === 'object' && !Array.isArray(v)) {
      const fields = n.fields();
      // A type without declared properties (FieldsV1, RawExtension, JSON) is free-form.
      if (fields.size === 0) return v;
      const out: Record<string, unknown> = {};
      for (const [k, child] of Object.entries(v as Record<string, unknown>)) {
        const f = fields.get(k);
        const j = json ? `${json}.${k}` : k;
        if (!f) {
          unknown.push({ json: j, smd: `${smd}.${k}` });
          continue;
        }
        out[k] = walk(f, child, j, `${smd}.${k}`);
      }
      return out;
    }
    if (n.kind === 'list' && Array.isArray(v)) {
      return v.map((item, i) => {
        // Built-in associative lists (containers, env, volumes…) are keyed by name in SMD paths; CRD lists here are atomic.
        const key = opts.keyedByName && item && typeof item === 'object' && typeof (item as { name?: unknown }).name === 'string' ? `[name="${(item as { name: string }).name}"]` : `[${i}]`;
        return walk(n.item, item, `${json}[${i}]`, `${smd}${key}`);
      });
    }
    if (n.kind === 'map' && v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, walk(n.value, x, `${json}.${k}`, `${smd}.${k}`)]));
    }
    return v;
  };
  const pruned = walk(node, obj, '', '');
  return { unknown, pruned };
}

/** A structural openAPIV3Schema from a field tree (what a CRD carries), `depth` levels deep. */
export function openApiSchema(node: FieldNode, depth = 12): Record<string, unknown> {
  if (depth <= 0) return { 'x-kubernetes-preserve-unknown-fields': true };
  switch (node.kind) {
    case 'object':
      if (node.fields().size === 0) return { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
      return { type: 'object', properties: Object.fromEntries([...node.fields()].map(([k, v]) => [k, openApiSchema(v, depth - 1)])) };
    case 'list':
      return { type: 'array', items: openApiSchema(node.item, depth - 1) };
    case 'map':
      return { type: 'object', additionalProperties: openApiSchema(node.value, depth - 1) };
    default:
      return node.type === 'any' ? { 'x-kubernetes-preserve-unknown-fields': true } : { type: node.type };
  }
}
