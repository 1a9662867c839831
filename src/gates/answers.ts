import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { UsageError } from '../core/errors.js';
import type { AnswerComparison } from '../core/gates.js';

/**
 * Answer comparison: do two JSON answers (a candidate's and stable's, or an answer and what was
 * expected of it) say the same thing? Pure: no I/O, no clock. One spec language for every place
 * that compares answers (the local runtime's shadow agreement today, evaluation replay next).
 *
 * Equality of one field (the old `serve.agreementField`) is the `fields` mode with one path; the
 * other modes fit the answers real models give: a score within a tolerance, a set of labels in any
 * order, free text that differs only in case, spacing, punctuation or unicode form, a ranking whose
 * top k mostly overlap.
 *
 * An answer that cannot be read (not JSON, the field missing or of the wrong type) is `unreadable`:
 * counted apart and never `agree` — a model that broke its answer contract must not look like one
 * that agrees.
 */

// ---------------------------------------------------------------------------------------------
// JSON paths: `score`, `result.score`, `$.metrics.accuracy`, `a.b[0].c`, `$["odd key"]`.

export type PathSegment = string | number;

const IDENT = /[A-Za-z_$][\w$-]*/y;

/** Parse a JSON path into its segments; throws Error with the position of the first bad character. */
export function parseJsonPath(path: string): PathSegment[] {
  const segs: PathSegment[] = [];
  let i = 0;
  if (path.startsWith('$')) {
    i = 1;
    if (path.length === 1) return segs; // `$`: the whole answer
  }
  let first = i === 0;
  while (i < path.length) {
    const c = path[i];
    if (c === '[') {
      const num = /\[(\d+)\]/y;
      num.lastIndex = i;
      const n = num.exec(path);
      if (n) {
        segs.push(Number(n[1]));
        i = num.lastIndex;
      } else {
        const quoted = /\[("(?:[^"\\]|\\.)*"|'[^']*')\]/y;
        quoted.lastIndex = i;
        const q = quoted.exec(path);
        if (!q) throw new Error(`at character ${i + 1}: expected [<index>] or ["<key>"]`);
        segs.push(q[1]!.startsWith('"') ? (JSON.parse(q[1]!) as string) : q[1]!.slice(1, -1));
        i = quoted.lastIndex;
      }
    } else {
      if (c === '.') i++;
      else if (!first) throw new Error(`at character ${i + 1}: expected "." or "["`);
      IDENT.lastIndex = i;
      const m = IDENT.exec(path);
      if (!m) throw new Error(`at character ${i + 1}: expected a field name`);
      segs.push(m[0]);
      i = IDENT.lastIndex;
    }
    first = false;
  }
  return segs;
}

/** The value at `path` in a parsed JSON value; undefined when any step is absent. */
export function valueAt(root: unknown, path: string | readonly PathSegment[]): unknown {
  const segs = typeof path === 'string' ? parseJsonPath(path) : path;
  let v: unknown = root;
  for (const s of segs) {
    if (typeof s === 'number') {
      if (!Array.isArray(v)) return undefined;
      v = v[s];
    } else {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.hasOwn(v, s)) return undefined;
      v = (v as Record<string, unknown>)[s];
    }
  }
  return v;
}

/** A zod field that holds a JSON path (checked when the spec is read, not when an answer arrives). */
export const jsonPathField = z.string({ error: 'expected a JSON path such as score, result.labels or $.items[0].id' }).superRefine((p, ctx) => {
  try {
    parseJsonPath(p);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `not a JSON path (${(err as Error).message}), e.g. score, result.labels or $.items[0].id` });
  }
});

// ---------------------------------------------------------------------------------------------
// The spec.

const fraction = (what: string) => z.number({ error: `expected ${what} between 0 and 1` }).min(0, `${what} must be >= 0`).max(1, `${what} must be <= 1`);

export const answerComparisonSchema = z.discriminatedUnion(
  'mode',
  [
    z.object({ mode: z.literal('exact') }).strict(),
    z.object({ mode: z.literal('fields'), fields: z.array(jsonPathField, { error: 'expected a list of JSON paths' }).min(1, 'name at least one field') }).strict(),
    z
      .object({
        mode: z.literal('numeric'),
        field: jsonPathField,
        /** |a − b| <= absolute … */
        absolute: z.number().nonnegative().optional(),
        /** … or |a − b| <= relative × max(|a|, |b|). */
        relative: z.number().nonnegative().optional(),
      })
      .strict()
      .refine((s) => s.absolute !== undefined || s.relative !== undefined, { message: 'numeric needs a tolerance: absolute, relative or both' }),
    z
      .object({
        mode: z.literal('labels'),
        field: jsonPathField,
        /** Jaccard similarity (|A ∩ B| / |A ∪ B|) needed to agree; 1 (the default) is set equality. */
        minJaccard: fraction('minJaccard').default(1),
      })
      .strict(),
    z
      .object({
        mode: z.literal('text'),
        field: jsonPathField,
        /** Each normalisation can be turned off; all on by default. NFKC is always applied. */
        ignoreCase: z.boolean().default(true),
        ignoreWhitespace: z.boolean().default(true),
        ignorePunctuation: z.boolean().default(true),
      })
      .strict(),
    z
      .object({
        mode: z.literal('topk'),
        field: jsonPathField,
        k: z.number().int().min(1, 'k must be >= 1'),
        /** Overlap@k needed to agree (default 1: the same top k, in any order). */
        minOverlap: fraction('minOverlap').default(1),
        /** Items are objects: the path of their identity inside each (e.g. id). */
        key: jsonPathField.optional(),
      })
      .strict(),
  ],
  { error: 'expected mode: exact, fields, numeric, labels, text or topk' },
);

export type { AnswerComparison };

/** Compile-time: what the schema produces is exactly the vocabulary's AnswerComparison (core/gates.ts). */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const schemaIsVocabulary: Same<z.output<typeof answerComparisonSchema>, AnswerComparison> = true;
void schemaIsVocabulary;

/** Check a comparison spec from YAML; UsageError naming `where` and the field. */
export function parseAnswerComparison(raw: unknown, where: string): AnswerComparison {
  const r = answerComparisonSchema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const field = issue.path.length ? `${issue.path.join('.')}: ` : '';
  throw new UsageError(`${where}: ${field}${issue.message}`, { hint: 'see "Answer comparison" in the README' });
}

// ---------------------------------------------------------------------------------------------
// Comparing.

export type Outcome = 'agree' | 'disagree' | 'unreadable';

export interface Comparison {
  outcome: Outcome;
  /** How alike, 0..1, where the mode has a degree (labels: Jaccard, topk: overlap); 1/0 otherwise; null when unreadable. */
  similarity: number | null;
  /** In words, for people: "labels Jaccard 0.5 < 0.8", "candidate: no field result.score". */
  detail: string;
}

type Side = 'a' | 'b';

/** What `spec` reads from one answer, or why it cannot (the answer is then unreadable). */
type Read<T> = { ok: true; value: T } | { ok: false; why: string };

function fieldRead(answer: unknown, field: string): Read<unknown> {
  if (answer === undefined) return { ok: false, why: 'not JSON' };
  const v = valueAt(answer, field);
  return v === undefined ? { ok: false, why: `no field ${field}` } : { ok: true, value: v };
}

function numberRead(answer: unknown, field: string): Read<number> {
  const r = fieldRead(answer, field);
  if (!r.ok) return r;
  // JSON has no NaN or Infinity; a string "NaN" or a null is not a number either.
  return typeof r.value === 'number' && Number.isFinite(r.value) ? { ok: true, value: r.value } : { ok: false, why: `${field} is not a finite number` };
}

function stringsRead(answer: unknown, field: string): Read<string[]> {
  const r = fieldRead(answer, field);
  if (!r.ok) return r;
  if (!Array.isArray(r.value) || !r.value.every((x) => typeof x === 'string')) return { ok: false, why: `${field} is not a list of strings` };
  return { ok: true, value: r.value as string[] };
}

function textRead(answer: unknown, field: string): Read<string> {
  const r = fieldRead(answer, field);
  if (!r.ok) return r;
  return typeof r.value === 'string' ? { ok: true, value: r.value } : { ok: false, why: `${field} is not a string` };
}

/** A ranked list's item identities: primitives as they are, objects by `key`. */
function rankedRead(answer: unknown, field: string, key: string | undefined): Read<string[]> {
  const r = fieldRead(answer, field);
  if (!r.ok) return r;
  if (!Array.isArray(r.value)) return { ok: false, why: `${field} is not a list` };
  const ids: string[] = [];
  for (const [i, item] of r.value.entries()) {
    const id = key === undefined ? item : valueAt(item, key);
    if (typeof id !== 'string' && typeof id !== 'number') {
      return { ok: false, why: key === undefined ? `${field}[${i}] is not a string or number (set key: to the items' id)` : `${field}[${i}] has no string or number ${key}` };
    }
    // Typed so that 1 and "1" stay different items.
    ids.push(JSON.stringify(id));
  }
  return { ok: true, value: ids };
}

/** Case, whitespace, punctuation and unicode form (NFKC: "ﬁ" = "fi", full-width = ASCII) do not count. */
export function normaliseText(s: string, opts: { ignoreCase?: boolean; ignoreWhitespace?: boolean; ignorePunctuation?: boolean } = {}): string {
  let t = s.normalize('NFKC');
  if (opts.ignoreCase ?? true) t = t.toLowerCase();
  if (opts.ignorePunctuation ?? true) t = t.replace(/\p{P}+/gu, ' ');
  if (opts.ignoreWhitespace ?? true) t = t.replace(/\s+/gu, ' ').trim();
  return t;
}

function readBoth<T>(read: (x: unknown) => Read<T>, a: unknown, b: unknown, names: Record<Side, string>): { a: T; b: T } | Comparison {
  const ra = read(a);
  const rb = read(b);
  if (!ra.ok || !rb.ok) {
    const why = [!ra.ok ? `${names.a}: ${ra.why}` : '', !rb.ok ? `${names.b}: ${rb.why}` : ''].filter(Boolean).join('; ');
    return { outcome: 'unreadable', similarity: null, detail: why };
  }
  return { a: ra.value, b: rb.value };
}

function verdict(ok: boolean, similarity: number, detail: string): Comparison {
  return { outcome: ok ? 'agree' : 'disagree', similarity, detail };
}

const r3 = (x: number) => String(Number(x.toPrecision(3)));

/**
 * Compare answer `a` with answer `b` (parsed JSON; undefined = the body was not JSON). `names`
 * label the two sides in the detail ("candidate"/"stable", "answer"/"expected").
 */
export function compareAnswers(spec: AnswerComparison, a: unknown, b: unknown, names: Record<Side, string> = { a: 'a', b: 'b' }): Comparison {
  switch (spec.mode) {
    case 'exact': {
      const both = readBoth((x) => (x === undefined ? { ok: false, why: 'not JSON' } : { ok: true, value: x }), a, b, names);
      if ('outcome' in both) return both;
      const same = isDeepStrictEqual(both.a, both.b);
      return verdict(same, same ? 1 : 0, same ? 'same answer' : 'answers differ');
    }
    case 'fields': {
      for (const f of spec.fields) {
        const both = readBoth((x) => fieldRead(x, f), a, b, names);
        if ('outcome' in both) return both;
      }
      const differ = spec.fields.find((f) => !isDeepStrictEqual(valueAt(a, f), valueAt(b, f)));
      return verdict(differ === undefined, differ === undefined ? 1 : 0, differ === undefined ? `same ${spec.fields.join(', ')}` : `${differ} differs`);
    }
    case 'numeric': {
      const both = readBoth((x) => numberRead(x, spec.field), a, b, names);
      if ('outcome' in both) return both;
      const diff = Math.abs(both.a - both.b);
      const bound = Math.max(spec.absolute ?? 0, (spec.relative ?? 0) * Math.max(Math.abs(both.a), Math.abs(both.b)));
      return verdict(diff <= bound, diff <= bound ? 1 : 0, `${spec.field} differs by ${r3(diff)} (tolerance ${r3(bound)})`);
    }
    case 'labels': {
      const both = readBoth((x) => stringsRead(x, spec.field), a, b, names);
      if ('outcome' in both) return both;
      const A = new Set(both.a);
      const B = new Set(both.b);
      const inter = [...A].filter((x) => B.has(x)).length;
      const union = new Set([...A, ...B]).size;
      // Two empty sets say the same thing: no label.
      const j = union === 0 ? 1 : inter / union;
      return verdict(j >= spec.minJaccard, j, `${spec.field} Jaccard ${r3(j)} ${j >= spec.minJaccard ? '>=' : '<'} ${spec.minJaccard}`);
    }
    case 'text': {
      const both = readBoth((x) => textRead(x, spec.field), a, b, names);
      if ('outcome' in both) return both;
      const same = normaliseText(both.a, spec) === normaliseText(both.b, spec);
      return verdict(same, same ? 1 : 0, same ? `same ${spec.field} (normalised)` : `${spec.field} differs (normalised)`);
    }
    case 'topk': {
      const both = readBoth((x) => rankedRead(x, spec.field, spec.key), a, b, names);
      if ('outcome' in both) return both;
      const A = new Set(both.a.slice(0, spec.k));
      const B = new Set(both.b.slice(0, spec.k));
      // Overlap@k over k items; when both lists are shorter than k, over the longer one (two identical short lists agree).
      const denom = Math.max(A.size, B.size);
      const overlap = denom === 0 ? 1 : [...A].filter((x) => B.has(x)).length / denom;
      return verdict(overlap >= spec.minOverlap, overlap, `${spec.field} overlap@${spec.k} ${r3(overlap)} ${overlap >= spec.minOverlap ? '>=' : '<'} ${spec.minOverlap}`);
    }
  }
}

/** Whether one answer carries what `spec` reads (used to count a version's unreadable answers on their own). */
export function answerReadable(spec: AnswerComparison, answer: unknown): boolean {
  return compareAnswers(spec, answer, answer).outcome !== 'unreadable';
}

/** The comparison a bundle's serve section asks for: `agreement:`, else `agreementField` as one-field equality. */
export function agreementOf(serve: { agreement?: AnswerComparison | undefined; agreementField?: string | undefined } | undefined): AnswerComparison | undefined {
  if (serve?.agreement) return serve.agreement;
  return serve?.agreementField !== undefined ? { mode: 'fields', fields: [serve.agreementField] } : undefined;
}
