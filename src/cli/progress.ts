import type cliProgress from 'cli-progress';
import { createRequire } from 'node:module';
import type { Progress } from '../core/progress.js';
import { formatBytes } from './format.js';

/**
 * Progress on stderr: a live bar (bytes, rate, ETA) on a TTY; elsewhere (CI, pipes) a plain line
 * every `intervalMs` and one at the end, so logs stay readable.
 */
export function createProgress(opts: { stream?: NodeJS.WriteStream; quiet?: boolean; intervalMs?: number } = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  if (opts.quiet) return { start() {}, advance() {}, finish() {} };
  return stream.isTTY ? ttyProgress(stream) : lineProgress(stream, opts.intervalMs ?? 5000);
}

function ttyProgress(stream: NodeJS.WriteStream): Progress {
  // Required here, not imported at the top: cli-progress is 16 modules (~10 ms of start-up) that
  // only a terminal needs; CI logs and pipes get lineProgress below without loading them.
  const { SingleBar, Presets } = createRequire(import.meta.url)('cli-progress') as typeof cliProgress;
  let bar: cliProgress.SingleBar | undefined;
  let value = 0;
  let startedAt = 0;
  return {
    start(label, total) {
      if (total <= 0) return;
      value = 0;
      startedAt = Date.now();
      bar = new SingleBar(
        { stream, format: `${label} [{bar}] {percentage}% | {done}/{size} | {rate}/s | ETA {eta_formatted}`, hideCursor: true, etaBuffer: 50 },
        Presets.shades_classic,
      );
      bar.start(total, 0, { done: formatBytes(0), size: formatBytes(total), rate: '-' });
    },
    advance(n) {
      value += n;
      const secs = Math.max((Date.now() - startedAt) / 1000, 0.001);
      bar?.update(value, { done: formatBytes(value), rate: formatBytes(Math.round(value / secs)) });
    },
    finish() {
      bar?.stop();
      bar = undefined;
    },
  };
}

function lineProgress(stream: NodeJS.WriteStream, intervalMs: number): Progress {
  let label = '';
  let total = 0;
  let value = 0;
  let startedAt = 0;
  let lastAt = 0;
  let active = false;
  let printed = false;
  const line = () => {
    printed = true;
    const secs = Math.max((Date.now() - startedAt) / 1000, 0.001);
    const pct = total > 0 ? Math.floor((value / total) * 100) : 100;
    stream.write(`${label}: ${formatBytes(value)} of ${formatBytes(total)} (${pct}%), ${formatBytes(Math.round(value / secs))}/s\n`);
  };
  return {
    start(l, t) {
      label = l;
      total = t;
      value = 0;
      startedAt = lastAt = Date.now();
      active = t > 0;
      printed = false;
    },
    advance(n) {
      value += n;
      if (active && Date.now() - lastAt >= intervalMs) {
        lastAt = Date.now();
        line();
      }
    },
    finish() {
      // Small, quick transfers need no report; anything that printed a line gets its final one.
      if (active && (printed || total >= 64 * 1024 * 1024)) line();
      active = false;
    },
  };
}
