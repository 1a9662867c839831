/** The bench's table: one row per measure, the same columns for every measure of `npm run bench`. */

export interface BenchRow {
  measure: string;
  modelctl: string;
  reference: string;
  ratio: string;
  target: string;
  /** undefined: not measured (the measure broke); null: information only, no target. */
  pass: boolean | null | undefined;
}

export function markdownTable(rows: readonly BenchRow[]): string {
  const header = ['measure', 'modelctl', 'reference', 'ratio', 'target', 'pass'];
  const body = rows.map((r) => [r.measure, r.modelctl, r.reference, r.ratio, r.target, r.pass === undefined ? 'ERROR' : r.pass === null ? '—' : r.pass ? 'yes' : 'NO']);
  const esc = (s: string) => s.replaceAll('|', '\\|');
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...body.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

/** What a measure run on its own prints (`node dist/bench/<measure>.js`): its rows, then its notes. */
export function standaloneReport(rows: readonly BenchRow[], notes: readonly string[]): string {
  return [markdownTable(rows), '', ...notes.map((n) => `- ${n}`), ''].join('\n');
}
