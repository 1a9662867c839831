import { readFile } from 'node:fs/promises';
import { isNode, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { UsageError } from './errors.js';

/** One problem in a YAML file, located as precisely as the document allows. */
export interface YamlIssue {
  file: string;
  line?: number;
  field: string;
  message: string;
}

export function formatIssue(issue: YamlIssue): string {
  const where = issue.line ? `${issue.file}:${issue.line}` : issue.file;
  return `${where}: ${issue.field ? `${issue.field}: ` : ''}${issue.message}`;
}

/**
 * Parse and validate a YAML file against a zod schema. Every problem (syntax or schema) is reported
 * at once, each naming the file, the line, the field and what was expected, as a UsageError.
 */
export async function loadYamlFile<S extends z.ZodType>(file: string, schema: S, what: string): Promise<z.output<S>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read ${what} ${file}: ${code === 'ENOENT' ? 'no such file' : String(err)}`, {
      hint: code === 'ENOENT' ? `create it (\`modelctl bundle init <dir>\` scaffolds one)` : undefined,
      details: { file },
    });
  }
  return parseYamlText(text, file, schema, what);
}

export function parseYamlText<S extends z.ZodType>(text: string, file: string, schema: S, what: string): z.output<S> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const issues: YamlIssue[] = doc.errors.map((e) => ({
    file,
    line: lineCounter.linePos(e.pos[0]).line,
    field: '',
    message: `invalid YAML: ${e.message.split('\n')[0]}`,
  }));
  if (issues.length === 0) {
    const result = schema.safeParse(doc.toJS());
    if (result.success) return result.data;
    for (const issue of result.error.issues) {
      const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
      issues.push({ file, line: lineOf(doc, path, lineCounter), field: formatPath(path), message: issue.message });
    }
  }
  throw new UsageError(`invalid ${what} ${file}:\n${issues.map((i) => `  ${formatIssue(i)}`).join('\n')}`, {
    hint: `fix the field${issues.length > 1 ? 's' : ''} above and run the command again`,
    details: { file, issues },
  });
}

function formatPath(path: ReadonlyArray<string | number>): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

/** The line of the deepest node of `path` that exists in the document (the parent of a missing key). */
function lineOf(doc: ReturnType<typeof parseDocument>, path: ReadonlyArray<string | number>, lc: LineCounter): number | undefined {
  for (let depth = path.length; depth >= 0; depth--) {
    const node = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth), true);
    if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
  }
  return undefined;
}
