import { createRequire } from 'node:module';
import type { Browser } from 'playwright-core';

/**
 * A job summary rendered the way GitHub shows it: GitHub-flavoured Markdown to HTML (marked, GFM),
 * each ```mermaid block drawn by mermaid in a real browser — headless Chromium from Debian's
 * `chromium` package (.ci/install-debian.sh), driven by playwright-core (which ships no browser).
 * The page has no network: every request is refused, so nothing renders from the internet.
 *
 * Differences from github.com, on purpose and small: GitHub renders with cmark-gfm and sanitizes
 * the HTML (our summaries use only tables, code, emphasis, links, <br> and <details>, which it
 * keeps); it draws each diagram in a sandboxed iframe with its own mermaid build, here it is the
 * repository's `mermaid` devDependency.
 */

export const CHROMIUM = process.env.MODELCTL_TEST_CHROMIUM ?? '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  const { access } = await import('node:fs/promises');
  await access(CHROMIUM).catch(() => {
    throw new Error(`no Chromium at ${CHROMIUM}: run .ci/install-debian.sh as root (Debian package chromium), or set MODELCTL_TEST_CHROMIUM to a Chromium binary`);
  });
  const { chromium } = await import('playwright-core');
  // playwright gives every launch a fresh temporary profile (--user-data-dir) and, as root, --no-sandbox.
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export interface RenderedSummary {
  png: string;
  /** Uncaught page errors and console errors. */
  pageErrors: string[];
  /** ```mermaid blocks in the Markdown. */
  blocks: number;
  /** Diagrams mermaid drew (an <svg> that is not its error picture). */
  diagrams: number;
  /** Mermaid's error pictures ("Syntax error in text") and the errors mermaid.run reported. */
  mermaidErrors: string[];
  /** Per diagram: its kind (aria-roledescription) and drawn size. */
  svgs: Array<{ kind: string; width: number; height: number; paths: number; rects: number; xLabels: string[]; xLabelOverlaps: number }>;
  /** The rendered page as text (what a reader sees, tables included). */
  text: string;
}

/** GitHub's look, near enough to judge layout: its font stack, table borders, code spans. */
const CSS = `
body { margin: 0; background: #fff; }
.markdown-body { box-sizing: border-box; width: 980px; padding: 24px 32px; color: #1f2328;
  font: 14px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif, "Apple Color Emoji", "Segoe UI Emoji"; }
h3 { font-size: 1.25em; margin: 24px 0 16px; font-weight: 600; }
p, ul, table, details, pre { margin: 0 0 16px; }
table { border-collapse: collapse; display: block; width: max-content; max-width: 100%; overflow: auto; }
th, td { border: 1px solid #d1d9e0; padding: 6px 13px; }
th { font-weight: 600; } tr:nth-child(2n) { background: #f6f8fa; }
code { font: 85% ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace; background: rgba(129,139,152,.12); padding: .2em .4em; border-radius: 6px; }
a { color: #0969da; text-decoration: none; }
pre.mermaid { background: none; text-align: center; }
pre.mermaid svg { max-width: 100%; }
`;

const require = createRequire(import.meta.url);

/** Markdown → the HTML GitHub would show, with mermaid blocks as <pre class="mermaid"> for mermaid.run. */
export async function summaryHtml(markdown: string): Promise<string> {
  const { marked } = await import('marked');
  const html = await marked.parse(markdown, { gfm: true });
  return html.replace(/<pre><code class="language-mermaid">([\s\S]*?)<\/code><\/pre>/g, '<pre class="mermaid">$1</pre>');
}

/** `dark`: GitHub's dark mode (its page colours, mermaid's dark theme). */
export async function renderSummary(browser: Browser, markdown: string, png: string, opts: { dark?: boolean } = {}): Promise<RenderedSummary> {
  const page = await browser.newPage({ viewport: { width: 980, height: 600 }, deviceScaleFactor: 1 });
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`);
  });
  await page.route('**/*', (route) => route.abort());
  try {
    const body = await summaryHtml(markdown);
    const dark = opts.dark ? 'body { background: #0d1117; } .markdown-body { color: #f0f6fc; } th, td { border-color: #3d444d; } tr:nth-child(2n) { background: #151b23; } a { color: #4493f8; }' : '';
    await page.setContent(`<!doctype html><html><head><meta charset="utf-8"><style>${CSS}${dark}</style></head><body><article class="markdown-body">${body}</article></body></html>`);
    await page.addScriptTag({ path: require.resolve('mermaid/dist/mermaid.min.js') });
    const result = (await page.evaluate(`(async () => {
      const errors = [];
      mermaid.initialize({ startOnLoad: false, securityLevel: 'strict', theme: ${opts.dark ? "'dark'" : "'default'"} });
      await mermaid.run({ querySelector: 'pre.mermaid', suppressErrors: true, postRenderCallback: () => {} })
        .catch((e) => errors.push(String(e && e.message || e)));
      const svgs = [...document.querySelectorAll('pre.mermaid svg')];
      for (const s of svgs) {
        const kind = s.getAttribute('aria-roledescription') || '';
        if (kind === 'error' || /Syntax error/.test(s.textContent)) errors.push('mermaid drew its error picture: ' + s.textContent.trim().slice(0, 200));
      }
      return {
        blocks: document.querySelectorAll('pre.mermaid').length,
        errors,
        svgs: svgs.map((s) => {
          const b = s.getBoundingClientRect();
          // The x-axis labels as drawn, and how many of them overlap their neighbour (a smear).
          const labels = [...s.querySelectorAll('g.bottom-axis g.label text')].map((t) => ({ text: t.textContent, r: t.getBoundingClientRect() })).sort((x, y) => x.r.left - y.r.left);
          const overlaps = labels.filter((l, i) => i > 0 && labels[i - 1].r.right > l.r.left + 0.5).length;
          return { kind: s.getAttribute('aria-roledescription') || '', width: Math.round(b.width), height: Math.round(b.height), paths: s.querySelectorAll('path').length, rects: s.querySelectorAll('rect').length, xLabels: labels.map((l) => l.text), xLabelOverlaps: overlaps };
        }),
        text: document.body.innerText,
      };
    })()`)) as { blocks: number; errors: string[]; svgs: RenderedSummary['svgs']; text: string };
    await page.screenshot({ path: png, fullPage: true });
    return {
      png,
      pageErrors,
      blocks: result.blocks,
      diagrams: result.svgs.filter((s) => s.kind !== 'error').length,
      mermaidErrors: result.errors,
      svgs: result.svgs,
      text: result.text,
    };
  } finally {
    await page.close();
  }
}
