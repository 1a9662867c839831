/**
 * GitHub Actions workflow commands (`::name key=value,…::message`), escaped exactly as the runner
 * unescapes them (actions/runner src/Runner.Common/ActionCommand.cs): message data `%`→`%25`,
 * CR→`%0D`, LF→`%0A`; property values additionally `:`→`%3A` and `,`→`%2C`. `%` is escaped first
 * so that the runner's sequential unescaping gives back the original text. Pure functions.
 */

/** True when running as a GitHub Actions step (and not opted out with MODELCTL_GITHUB=off). */
export function githubActive(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.GITHUB_ACTIONS === 'true' && !/^(0|false|no|off)$/i.test(env.MODELCTL_GITHUB ?? '');
}

export function escapeData(s: string): string {
  return s.replaceAll('%', '%25').replaceAll('\r', '%0D').replaceAll('\n', '%0A');
}

export function escapeProperty(s: string): string {
  return escapeData(s).replaceAll(':', '%3A').replaceAll(',', '%2C');
}

/** One workflow command line (with its trailing newline). Undefined/empty properties are left out. */
export function workflowCommand(name: string, properties: Record<string, string | number | undefined>, message: string): string {
  const props = Object.entries(properties)
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${escapeProperty(String(v))}`)
    .join(',');
  return `::${name}${props ? ` ${props}` : ''}::${escapeData(message)}\n`;
}

export type AnnotationLevel = 'error' | 'warning' | 'notice';

export interface Annotation {
  level: AnnotationLevel;
  title: string;
  message: string;
}

export function annotation(a: Annotation): string {
  return workflowCommand(a.level, { title: a.title }, a.message);
}

/** A collapsible log group; groups do not nest, so a new group must follow an `endGroup()`. */
export function group(title: string): string {
  return workflowCommand('group', {}, title);
}

export function endGroup(): string {
  return '::endgroup::\n';
}

/** Ask the runner to replace `secret` by *** in every later log line (and in step summaries). */
export function addMask(secret: string): string {
  return workflowCommand('add-mask', {}, secret);
}

/**
 * A log line that is never read as a workflow command: the runner parses any line that starts
 * with `::` (after leading blanks) and any line containing `##[`. Text from bundles, gates or
 * errors goes through this before it reaches the log, one line per call.
 */
export function inertLine(text: string): string {
  const one = text.replace(/\r\n|\r|\n/g, ' ⏎ ');
  const safe = one.replaceAll('##[', '#\u200b#[');
  return /^\s*::/.test(safe) ? `\u200b${safe}` : safe;
}

export interface ParsedCommand {
  command: string;
  properties: Record<string, string>;
  data: string;
}

// The runner unescapes with sequential String.Replace calls, in this order.
const UNESCAPE_DATA: ReadonlyArray<[string, string]> = [['%0D', '\r'], ['%0A', '\n'], ['%25', '%']];
const UNESCAPE_PROPERTY: ReadonlyArray<[string, string]> = [['%0D', '\r'], ['%0A', '\n'], ['%3A', ':'], ['%2C', ','], ['%25', '%']];

function unescapeWith(s: string, map: ReadonlyArray<[string, string]>): string {
  return map.reduce((acc, [from, to]) => acc.replaceAll(from, to), s);
}

/**
 * Read one log line as the runner does (actions/runner ActionCommand.TryParseV2, transcribed):
 * after leading blanks, `::name[ k=v,…]::data`; properties split on `,` then on the first `=`.
 * Null when the line is not a `::` command. Used by the tests to prove what this CLI prints.
 */
export function parseWorkflowCommand(line: string): ParsedCommand | null {
  const message = line.trimStart();
  if (!message.startsWith('::')) return null;
  const end = message.indexOf('::', 2);
  if (end < 0) return null;
  const info = message.slice(2, end);
  const space = info.indexOf(' ');
  const command = space < 0 ? info : info.slice(0, space);
  const properties: Record<string, string> = {};
  if (space > 0) {
    for (const p of info.slice(space + 1).trim().split(',').filter(Boolean)) {
      const [k, ...v] = p.split('=');
      if (k && v.length && v.join('=')) properties[k] = unescapeWith(v.join('='), UNESCAPE_PROPERTY);
    }
  }
  return { command, properties, data: unescapeWith(message.slice(end + 2), UNESCAPE_DATA) };
}
