/**
 * Progress on stderr (src/cli/progress.ts): a line every interval when stderr is a pipe or a CI log,
 * a live bar on a terminal; cli-progress is loaded only for the bar.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { createProgress } from '../../src/cli/progress.js';

/** A writable stream that records what was written; `isTTY` makes it look like a terminal to cli-progress. */
function capture(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  const chunks: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (c: Buffer) => chunks.push(c.toString('utf8')));
  Object.assign(stream, { isTTY, columns: 100 });
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => chunks.join('') };
}

const loadedCliProgress = () => Object.keys(createRequire(import.meta.url).cache).some((p) => p.includes(`${'/'}cli-progress${'/'}`));

test('a pipe gets plain progress lines and cli-progress is never loaded; a terminal gets the live bar', async () => {
  const pipe = capture(false);
  const lines = createProgress({ stream: pipe.stream, intervalMs: 0 });
  lines.start('hashing m', 128 * 1024 * 1024);
  lines.advance(64 * 1024 * 1024);
  lines.advance(64 * 1024 * 1024);
  lines.finish();
  await new Promise((r) => setImmediate(r));
  assert.match(pipe.text(), /^hashing m: 64 MiB of 128 MiB \(50%\), .*\/s\nhashing m: 128 MiB of 128 MiB \(100%\), .*\/s\n/);
  assert.doesNotMatch(pipe.text(), /\x1b/, 'no escape codes in a log');
  assert.equal(loadedCliProgress(), false, 'cli-progress was loaded for a pipe');

  const tty = capture(true);
  const bar = createProgress({ stream: tty.stream });
  bar.start('hashing m', 1000);
  bar.advance(250);
  bar.finish();
  await new Promise((r) => setImmediate(r));
  assert.equal(loadedCliProgress(), true);
  assert.match(tty.text(), /hashing m \[[█░]+\] 25% \| 250 B\/1000 B \|/);
  assert.match(tty.text(), /\x1b\[\?25l/, 'the cursor is hidden while the bar runs');
});
