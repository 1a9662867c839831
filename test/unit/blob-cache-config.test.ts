import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { UsageError } from '../../src/core/errors.js';
import { DEFAULT_CACHE_MAX_BYTES } from '../../src/store/blob-cache.js';
import { resolveCacheMaxBytes } from '../../src/targets/local/cache.js';

test('cache bound: MODELCTL_CACHE_MAX_BYTES, else local.cacheMaxBytes in modelctl.yaml, else 20 GiB; a bad value names where it came from', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cache-config-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.equal(await resolveCacheMaxBytes({}, dir), DEFAULT_CACHE_MAX_BYTES);
  assert.equal(DEFAULT_CACHE_MAX_BYTES, 20 * 1024 ** 3);
  await writeFile(path.join(dir, 'modelctl.yaml'), 'local:\n  port: 8700\n  cacheMaxBytes: 1048576\n');
  assert.equal(await resolveCacheMaxBytes({}, dir), 1048576);
  assert.equal(await resolveCacheMaxBytes({ MODELCTL_CACHE_MAX_BYTES: '42' }, dir), 42, 'the environment wins');
  await assert.rejects(resolveCacheMaxBytes({ MODELCTL_CACHE_MAX_BYTES: '20GiB' }, dir), (e: unknown) => e instanceof UsageError && /MODELCTL_CACHE_MAX_BYTES "20GiB" is not a whole number of bytes/.test(e.message));
  await writeFile(path.join(dir, 'modelctl.yaml'), 'local:\n  cacheMaxBytes: lots\n');
  await assert.rejects(resolveCacheMaxBytes({}, dir), (e: unknown) => e instanceof UsageError && /local\.cacheMaxBytes: expected a whole number of bytes/.test(e.message));
});
