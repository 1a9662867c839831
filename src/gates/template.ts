import { UsageError } from '../core/errors.js';

/**
 * Query templates: `{{model}}`, `{{version}}`, `{{stable}}`, `{{namespace}}`, `{{interval}}` and any
 * `--var k=v` name, written `{{name}}` or `{{ name }}` (Flagger's spelling).
 *
 * No value can change the shape of a query. The template is lexed like PromQL (strings in "…",
 * '…' and `…`, `#` comments) and each placeholder is encoded for where it stands:
 *
 * - inside a "…" or '…' string: backslash, the quote, newlines and other control characters are
 *   escaped; after `=~` / `!~` the value is also regex-quoted (a version `1.2.0` matches itself,
 *   not `1x2y0`: values are literals, even in regex matchers);
 * - inside a `…` raw string (no escapes exist): regex-quoted after `=~`/`!~`; a value holding a
 *   backtick is refused;
 * - outside any string: only a number, a duration (`45s`, `1h30m`) or a metric/label name can go
 *   there safely, anything else is refused (quote the placeholder instead);
 * - inside a `#` comment: refused if it holds a line break (it would end the comment).
 *
 * Unknown placeholders and malformed `{{…}}` are usage errors naming the gate.
 */

export const BUILTIN_PLACEHOLDERS = ['model', 'version', 'stable', 'namespace', 'interval'] as const;

export class TemplateError extends UsageError {}

type Where = 'code' | 'dq' | 'sq' | 'bt' | 'comment';

interface Slot {
  name: string;
  start: number;
  end: number;
  where: Where;
  /** Inside the string operand of a `=~` / `!~` matcher. */
  regex: boolean;
}

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/y;
/** A number, a PromQL duration, or a metric/label name: what may stand outside a string. */
const SAFE_BARE = /^(?:[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|(?:[0-9]+(?:ms|s|m|h|d|w|y))+|[A-Za-z_:][A-Za-z0-9_:]*)$/;

function scan(template: string, gate: string): Slot[] {
  const slots: Slot[] = [];
  let where: Where = 'code';
  let regex = false;
  for (let i = 0; i < template.length; ) {
    if (template.startsWith('{{', i)) {
      PLACEHOLDER.lastIndex = i;
      const m = PLACEHOLDER.exec(template);
      if (!m) {
        const snippet = template.slice(i, i + 24);
        throw new TemplateError(`gate ${JSON.stringify(gate)}: malformed placeholder ${JSON.stringify(snippet)} in its query`, {
          hint: 'placeholders look like {{version}} or {{ version }}',
          details: { gate },
        });
      }
      slots.push({ name: m[1]!, start: i, end: i + m[0].length, where, regex });
      i += m[0].length;
      continue;
    }
    const c = template[i]!;
    switch (where) {
      case 'code':
        if (c === '"' || c === "'" || c === '`') {
          where = c === '"' ? 'dq' : c === "'" ? 'sq' : 'bt';
          regex = /[=!]~\s*$/.test(template.slice(0, i));
        } else if (c === '#') where = 'comment';
        break;
      case 'dq':
      case 'sq':
        if (c === '\\') {
          // Skip the escaped character, unless a placeholder starts there.
          if (template[i + 1] !== '{') i++;
        } else if (c === (where === 'dq' ? '"' : "'")) where = 'code';
        break;
      case 'bt':
        if (c === '`') where = 'code';
        break;
      case 'comment':
        if (c === '\n') where = 'code';
        break;
    }
    i++;
  }
  return slots;
}

/** The placeholder names a template uses, in order of first use. Throws TemplateError if malformed. */
export function placeholdersOf(template: string, gate: string): string[] {
  return [...new Set(scan(template, gate).map((s) => s.name))];
}

/** Problems with a template given the names that will have values (unknown or malformed placeholders). */
export function checkTemplate(template: string, gate: string, known: Iterable<string>): string[] {
  let names: string[];
  try {
    names = placeholdersOf(template, gate);
  } catch (err) {
    return [(err as Error).message];
  }
  const knownSet = new Set(known);
  return names.filter((n) => !knownSet.has(n)).map((n) => unknownMessage(gate, n, knownSet));
}

function unknownMessage(gate: string, name: string, known: Set<string>): string {
  return `gate ${JSON.stringify(gate)}: unknown placeholder {{${name}}} in its query (known: ${[...known].join(', ')}; --var ${name}=… would define it)`;
}

/** Go/PromQL string escaping for a "…" or '…' literal. */
export function escapePromString(value: string, quote: '"' | "'" = '"'): string {
  let out = '';
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out;
}

/** RE2 QuoteMeta: the value matches itself only. */
export function quoteRegex(value: string): string {
  return value.replace(/[\\.+*?()|[\]{}^$]/g, '\\$&');
}

/** A PromQL duration for a span: whole seconds rounded up, as `45s`, `2m` or `1h` when exact. */
export function promDuration(ms: number): string {
  const s = Math.max(1, Math.ceil(ms / 1000));
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}

function encode(slot: Slot, value: string, gate: string): string {
  const refuse = (why: string, hint: string): never => {
    throw new TemplateError(`gate ${JSON.stringify(gate)}: the value of {{${slot.name}}} ${JSON.stringify(value)} ${why}`, { hint, details: { gate, placeholder: slot.name } });
  };
  switch (slot.where) {
    case 'dq':
    case 'sq':
      return escapePromString(slot.regex ? quoteRegex(value) : value, slot.where === 'dq' ? '"' : "'");
    case 'bt':
      if (value.includes('`')) refuse('holds a backtick, which a `raw string` cannot contain', `quote the placeholder with "…" instead: "{{${slot.name}}}"`);
      return slot.regex ? quoteRegex(value) : value;
    case 'comment':
      if (/[\r\n\u2028\u2029]/.test(value)) refuse('holds a line break, which would end the comment it stands in', 'remove the placeholder from the comment');
      return value;
    case 'code':
      if (!SAFE_BARE.test(value)) {
        refuse(
          'stands outside a quoted string, where only a number, a duration (45s) or a metric/label name can go safely',
          `quote the placeholder, e.g. version="{{${slot.name}}}"`,
        );
      }
      return value;
  }
}

/**
 * Resolve `template`. `values` has one key per known name: a string, or undefined when the name is
 * known but has no value here (e.g. {{stable}} on a first deploy) — both are TemplateErrors when used.
 */
export function resolveTemplate(template: string, values: Readonly<Record<string, string | undefined>>, gate: string): string {
  const slots = scan(template, gate);
  let out = '';
  let at = 0;
  for (const slot of slots) {
    if (!Object.hasOwn(values, slot.name)) {
      throw new TemplateError(unknownMessage(gate, slot.name, new Set(Object.keys(values))), { details: { gate, placeholder: slot.name } });
    }
    const value = values[slot.name];
    if (value === undefined) {
      throw new TemplateError(`gate ${JSON.stringify(gate)}: {{${slot.name}}} has no value here`, {
        hint: slot.name === 'stable' ? 'there is no stable version yet (give one with --var stable=…)' : `give one with --var ${slot.name}=…`,
        details: { gate, placeholder: slot.name },
      });
    }
    out += template.slice(at, slot.start) + encode(slot, value, gate);
    at = slot.end;
  }
  return out + template.slice(at);
}
