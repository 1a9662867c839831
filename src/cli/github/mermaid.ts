/**
 * Mermaid `xychart-beta` charts for step summaries (GitHub renders Mermaid there), and a strict
 * validator of exactly the subset emitted here. Pure functions.
 *
 * Grammar facts (mermaid's xychart lexer): numbers are `[+-]?(\d+(\.\d+)?|\.\d+)` — no exponent,
 * so every number goes through `chartNumber()`; strings are `"[^"]*"` — no escapes, so text goes
 * through `chartText()`. A series (`line` / `bar`) holds y values only, spread evenly over the
 * x-axis (mermaid's transformDataWithoutCategory: x_i = min + i·(max − min)/(n − 1) on a numeric
 * axis). So a numeric x-axis whose series are sampled on an even time grid puts every point at its
 * real time, and mermaid draws readable ticks (d3's nice numbers) instead of one label per point.
 * Series are drawn in order: bars first, so the lines stay on top.
 */

export interface XySeries {
  kind: 'line' | 'bar';
  /** Legend text (mermaid ≥ 11.x with showLegend; older renderers ignore it). */
  title: string;
  values: number[];
  /** Colour of this series (becomes mermaid's plotColorPalette, in series order). */
  colour: string;
}

export interface XyChart {
  title: string;
  xLabel: string;
  /** A numeric axis (the series are sampled evenly from min to max), or category labels, one per point. */
  x: { min: number; max: number } | string[];
  yLabel: string;
  yMin: number;
  yMax: number;
  series: XySeries[];
  /** Pixels; mermaid's default is 700 × 500. */
  width?: number;
  height?: number;
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
  const init = {
    xyChart: { showLegend: true, ...(c.width ? { width: c.width } : {}), ...(c.height ? { height: c.height } : {}) },
    themeVariables: { xyChart: { plotColorPalette: c.series.map((s) => s.colour).join(', ') } },
  };
  const x = Array.isArray(c.x) ? `[${c.x.map((l) => `"${chartText(l)}"`).join(', ')}]` : `${chartNumber(c.x.min)} --> ${chartNumber(c.x.max)}`;
  return [
    `%%{init: ${JSON.stringify(init)}}%%`,
    'xychart-beta',
    `    title "${chartText(c.title)}"`,
    `    x-axis "${chartText(c.xLabel)}" ${x}`,
    `    y-axis "${chartText(c.yLabel)}" ${chartNumber(c.yMin)} --> ${chartNumber(c.yMax)}`,
    // Four significant digits are more than a chart shows, and keep a 241-point series short.
    ...c.series.map((s) => `    ${s.kind} "${chartText(s.title)}" [${s.values.map((v) => chartNumber(Number(v.toPrecision(4)))).join(', ')}]`),
  ].join('\n');
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
  series: new RegExp(`^(?:line|bar)(?: ${STR})? \\[(${NUM}(?:, ${NUM})*)\\]$`),
};

/**
 * Problems with a chart (empty when valid), for the subset this module emits: an optional init
 * directive, `xychart-beta`, one title, one x-axis (categories or a numeric range), one y-axis
 * range (min < max), one or more `line`/`bar` series (optionally titled) with as many values as
 * there are categories, and at least two values on a numeric x-axis (one would sit at its left edge).
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
  const lengths: number[] = [];
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
    } else if ((m = RE.series.exec(row))) lengths.push(m[1]!.split(',').length);
    else problems.push(`${where}: not in the xychart-beta subset: ${row}`);
  }
  if (title !== 1) problems.push(`expected one title, got ${title}`);
  if (xAxes !== 1) problems.push(`expected one x-axis, got ${xAxes}`);
  if (yAxes !== 1) problems.push(`expected one y-axis, got ${yAxes}`);
  if (lengths.length === 0) problems.push('no series');
  lengths.forEach((n, k) => {
    if (categories !== null && n !== categories) problems.push(`series ${k + 1} has ${n} values for ${categories} x-axis categories`);
    if (categories === null && n < 2) problems.push(`series ${k + 1} has ${n} value on a numeric x-axis: it needs two or more`);
  });
  if (new Set(lengths).size > 1) problems.push(`the series have different lengths (${lengths.join(', ')}): they would not line up`);
  return problems;
}

/** The ```mermaid blocks of a Markdown text. */
export function mermaidBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```mermaid\n([\s\S]*?)\n```$/gm)].map((m) => m[1]!);
}
