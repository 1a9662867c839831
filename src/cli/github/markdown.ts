/**
 * Markdown for step summaries (GitHub Flavored Markdown). Pure functions. Every piece of text that
 * did not come from this file (versions, gate names, reasons, queries) goes through `text()` or
 * `code()`, so a `|` cannot split a table cell, a newline cannot end a table row, and `<tag>` or
 * `*` cannot turn into markup.
 */

/** Plain text, safe anywhere (a table cell, a list item, a heading). */
export function text(s: string): string {
  return s
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replace(/[\\`*_[\]|#~]/g, (c) => `\\${c}`)
    .replace(/\r\n|\r|\n/g, '<br>');
}

/** An inline code span, safe in a table cell: `|` is escaped (GFM splits cells before inline parsing). */
export function code(s: string): string {
  const flat = s.replace(/\r\n|\r|\n/g, ' ').replaceAll('|', '\\|');
  const longest = Math.max(0, ...[...flat.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  const pad = flat.startsWith('`') || flat.endsWith('`') || flat === '' ? ' ' : '';
  return `${fence}${pad}${flat}${pad}${fence}`;
}

/** A table; cells are Markdown already (build them with text()/code()). */
export function table(headers: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.map((c) => c || ' ').join(' | ')} |`;
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n');
}

/** A run URL or other link as an autolink; anything else as text. */
export function link(s: string): string {
  return /^https?:\/\/[^\s<>]+$/.test(s) ? `<${s}>` : text(s);
}

/** A link with words: `[label](url)` for an http(s) URL (parentheses and spaces encoded), else the label as text. */
export function a(label: string, url: string): string {
  if (!/^https?:\/\/[^\s<>]+$/.test(url)) return text(label);
  return `[${text(label)}](${url.replaceAll('(', '%28').replaceAll(')', '%29')})`;
}
