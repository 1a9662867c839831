import { randomBytes } from 'node:crypto';

/**
 * Step outputs in the `$GITHUB_OUTPUT` file format. Every value is written in the heredoc form
 * (`name<<DELIM`, the value, `DELIM`), which carries any text — newlines included — as long as
 * no line of the value equals the delimiter: the delimiter is random and re-drawn until it
 * occurs nowhere in the value. Pure, apart from the random source.
 */

export type OutputValue = string | number | boolean | null | undefined;

/** Output names the runner accepts and expressions can reach: steps.<id>.outputs.<name>. */
const NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

export function outputValue(v: OutputValue): string {
  return v === null || v === undefined ? '' : String(v);
}

export function randomDelimiter(): string {
  return `ghadelimiter_${randomBytes(16).toString('hex')}`;
}

export function formatOutput(name: string, value: OutputValue, delimiter: () => string = randomDelimiter): string {
  if (!NAME.test(name)) throw new Error(`bug: invalid step output name ${JSON.stringify(name)}`);
  const text = outputValue(value);
  let delim = delimiter();
  for (let tries = 0; !delim || text.includes(delim) || name.includes(delim); tries++) {
    if (tries > 100) throw new Error('bug: no usable heredoc delimiter');
    delim = delimiter();
  }
  return `${name}<<${delim}\n${text}\n${delim}\n`;
}

export function formatOutputs(outputs: Record<string, OutputValue>, delimiter?: () => string): string {
  return Object.entries(outputs)
    .map(([k, v]) => formatOutput(k, v, delimiter))
    .join('');
}

/**
 * Read an output (or env/state) file back exactly as the runner does (actions/runner
 * FileCommandManager.cs, EnvFileKeyValuePairs, Linux line endings): lines split on LF; empty
 * lines skipped; `NAME=VALUE` when `=` comes before any `<<`; else `NAME<<DELIM`, then the value
 * is every line up to a line equal to DELIM (the newline before DELIM is not part of it).
 * Throws the runner's errors. Used by the tests to prove the files this CLI writes.
 */
export function parseOutputFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let index = 0;
  const readLine = (): { line: string; newline: string | null } | null => {
    if (index >= text.length) return null;
    const start = index;
    const lf = text.indexOf('\n', index);
    if (lf < 0) {
      index = text.length;
      return { line: text.slice(start), newline: null };
    }
    index = lf + 1;
    return { line: text.slice(start, lf), newline: '\n' };
  };
  for (let l = readLine(); l !== null; l = readLine()) {
    const line = l.line;
    if (line === '') continue;
    const eq = line.indexOf('=');
    const heredoc = line.indexOf('<<');
    if (eq >= 0 && (heredoc < 0 || eq < heredoc)) {
      const [key, value] = [line.slice(0, eq), line.slice(eq + 1)];
      out[key] = value;
    } else if (heredoc >= 0 && (eq < 0 || heredoc < eq)) {
      const key = line.slice(0, heredoc);
      const delim = line.slice(heredoc + 2);
      if (!key || !delim) throw new Error(`Invalid format '${line}'. Name must not be empty and delimiter must not be empty`);
      const startIndex = index;
      let endIndex = index;
      let t = readLine();
      while (t?.line !== delim) {
        if (t === null) throw new Error(`Invalid value. Matching delimiter not found '${delim}'`);
        if (t.newline === null) throw new Error('Invalid value. EOF marker missing new line.');
        endIndex = index - t.newline.length;
        t = readLine();
      }
      out[key] = endIndex > startIndex ? text.slice(startIndex, endIndex) : '';
    } else {
      throw new Error(`Invalid format '${line}'`);
    }
  }
  return out;
}
