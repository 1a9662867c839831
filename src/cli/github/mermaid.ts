/**
 * Mermaid `xychart-beta` line charts for step summaries (GitHub renders Mermaid there), and a
 * strict validator of exactly the subset emitted here. Pure functions.
 *
 * Grammar facts (mermaid's xychart lexer): numbers are `[+-]?(\d+(\.\d+)?|\.\d+)` — no exponent,
 * so every number goes through `chartNumber()`; strings are `"[^"]*"` — no escapes, so text goes
 * through `chartText()`. A `line` holds y values only, spread evenly over the x-axis: with
 * irregular sample times the x-axis is categorical, labelled with the real times.
 */

export interface XyChart {
  title: string;
  xLabel: string;
  /** Category labels, one per point. */
  x: string[];
  yLabel: string;
  yMin: number;
  yMax: number;
  /** Each line has one value per category. */
  lines: number[][];
  /** Line colours, in line order (mermaid's `plotColorPalette`). */
  palette?: string[];
}

/** A number as the xychart lexer reads it: plain decimal, at most 6 significant digits. */
export function chartNumber(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`bug: ${n} cannot be charted`);
  const s = String(Number(n.toPrecision(6)));
  const m = /^(-?)(\d+)(?:\.(\d+))?e([+-]\d+)$/i.exec(s);
  if (!m) return s;
  // Expand the exponent by moving the decimal point in the digit string (no float round-trip).
  const [, sign, int, frac = '', exp] = m;
  const digits = int! + frac;
  const point = int!.length + Number(exp);
  const plain =
    point <= 0 ? `0.${'0'.repeat(-point)}${digits}` : point >= digits.length ? digits + '0'.repeat(point - digits.length) : `${digits.slice(0, point)}.${digits.slice(point)}`;
  return sign + plain.replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
}

/** Text for a quoted chart string: no quotes, no line breaks. */
export function chartText(s: string): string {
  return s.replace(/[\r\n]+/g, ' ').replaceAll('"', "'");
}

export function renderXyChart(c: XyChart): string {
  const lines: string[] = [];
  if (c.palette?.length) {
    lines.push(`%%{init: ${JSON.stringify({ themeVariables: { xyChart: { plotColorPalette: c.palette.join(', ') } } })}}%%`);
  }
  lines.push('xychart-beta');
  lines.push(`    title "${chartText(c.title)}"`);
  lines.push(`    x-axis "${chartText(c.xLabel)}" [${c.x.map((x) => `"${chartText(x)}"`).join(', ')}]`);
  lines.push(`    y-axis "${chartText(c.yLabel)}" ${chartNumber(c.yMin)} --> ${chartNumber(c.yMax)}`);
  for (const l of c.lines) lines.push(`    line [${l.map(chartNumber).join(', ')}]`);
  return lines.join('\n');
}

const NUM = String.raw`[+-]?(?:\d+(?:\.\d+)?|\.\d+)`;
const STR = String.raw`"[^"\r\n]*"`;
const RE = {
  init: /^%%\{init: (\{.*\})\}%%$/,
  header: /^xychart-beta$/,
  title: new RegExp(`^title ${STR}$`),
  xBand: new RegExp(`^x-axis ${STR} \\[(${STR}(?:, ${STR})*)\\]$`),
  xRange: new RegExp(`^x-axis ${STR} (${NUM}) --> (${NUM})$`),
  yRange: new RegExp(`^y-axis ${STR} (${NUM}) --> (${NUM})$`),
  line: new RegExp(`^line \\[(${NUM}(?:, ${NUM})*)\\]$`),
};

/**
 * Problems with a chart (empty when valid), for the subset this module emits: an optional init
 * directive, `xychart-beta`, one title, one x-axis (categories or a numeric range), one y-axis
 * range (min < max), one or more `line`s with as many values as there are categories.
 */
export function validateXyChart(src: string): string[] {
  const problems: string[] = [];
  const rows = src.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  let i = 0;
  if (rows[i]?.startsWith('%%')) {
    const m = RE.init.exec(rows[i]!);
    if (!m) problems.push(`line ${i + 1}: not an init directive: ${rows[i]}`);
    else {
      try {
        JSON.parse(m[1]!);
      } catch {
        problems.push(`line ${i + 1}: init directive is not JSON`);
      }
    }
    i++;
  }
  if (!RE.header.test(rows[i] ?? '')) return [...problems, `line ${i + 1}: expected "xychart-beta", got ${JSON.stringify(rows[i] ?? '')}`];
  i++;
  let title = 0;
  let categories: number | null = null;
  let xAxes = 0;
  let yAxes = 0;
  const lineLengths: number[] = [];
  for (; i < rows.length; i++) {
    const row = rows[i]!;
    const where = `line ${i + 1}`;
    let m: RegExpExecArray | null;
    if (RE.title.test(row)) title++;
    else if ((m = RE.xBand.exec(row))) {
      xAxes++;
      categories = m[1]!.split(/", "/).length;
    } else if ((m = RE.xRange.exec(row))) {
      xAxes++;
      if (!(Number(m[1]) < Number(m[2]))) problems.push(`${where}: x-axis range ${m[1]} --> ${m[2]} is empty`);
    } else if ((m = RE.yRange.exec(row))) {
      yAxes++;
      if (!(Number(m[1]) < Number(m[2]))) problems.push(`${where}: y-axis range ${m[1]} --> ${m[2]} is empty`);
    } else if ((m = RE.line.exec(row))) lineLengths.push(m[1]!.split(',').length);
    else problems.push(`${where}: not in the xychart-beta subset: ${row}`);
  }
  if (title !== 1) problems.push(`expected one title, got ${title}`);
  if (xAxes !== 1) problems.push(`expected one x-axis, got ${xAxes}`);
  if (yAxes !== 1) problems.push(`expected one y-axis, got ${yAxes}`);
  if (lineLengths.length === 0) problems.push('no line');
  lineLengths.forEach((n, k) => {
    if (categories !== null && n !== categories) problems.push(`line ${k + 1} has ${n} values for ${categories} x-axis categories`);
  });
  return problems;
}

/** The ```mermaid blocks of a Markdown text. */
export function mermaidBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```mermaid\n([\s\S]*?)\n```$/gm)].map((m) => m[1]!);
}
