import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { EXIT_CODES } from '../../src/core/errors.js';
import { REPO_ROOT } from '../helpers/fixtures.js';

test('the README exit-code table matches the code', async () => {
  const readme = await readFile(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Exit codes'));
  const rows = [...section.matchAll(/^\|\s*(\d+)\s*\|\s*([a-z-]+)\s*\|\s*(.+?)\s*\|$/gm)].map((m) => ({ code: Number(m[1]), name: m[2], meaning: m[3] }));
  assert.deepEqual(rows, EXIT_CODES.map((c) => ({ code: c.code, name: c.name, meaning: c.meaning })));
});
