import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { UsageError } from '../../src/core/errors.js';
import { DEFAULT_CACHE_MAX_BYTES } from '../../src/store/blob-cache.js';
import { createContext } from '../../src/services/context.js';
import { resolveCacheMaxBytes } from '../../src/targets/local/cache.js';

/** The bound as a command resolves it: modelctl.yaml of `dir`, read by the invocation's context. */
const resolveIn = async (env: NodeJS.ProcessEnv, dir: string) => resolveCacheMaxBytes(env, await createContext({ cwd: dir, env }).localConfig());

test('cache bound: MODELCTL_CACHE_MAX_BYTES, else local.cacheMaxBytes in modelctl.yaml, else 20 GiB; a bad value names where it came from', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cache-config-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.equal(await resolveIn({}, dir), DEFAULT_CACHE_MAX_BYTES);
  assert.equal(DEFAULT_CACHE_MAX_BYTES, 20 * 1024 ** 3);
  await writeFile(path.join(dir, 'modelctl.yaml'), 'local:\n  port: 8700\n  cacheMaxBytes: 1048576\n');
  assert.equal(await resolveIn({}, dir), 1048576);
  assert.equal(await resolveIn({ MODELCTL_CACHE_MAX_BYTES: '42' }, dir), 42, 'the environment wins');
  await assert.rejects(resolveIn({ MODELCTL_CACHE_MAX_BYTES: '20GiB' }, dir), (e: unknown) => e instanceof UsageError && /MODELCTL_CACHE_MAX_BYTES "20GiB" is not a whole number of bytes/.test(e.message));
  await writeFile(path.join(dir, 'modelctl.yaml'), 'local:\n  cacheMaxBytes: lots\n');
  await assert.rejects(resolveIn({}, dir), (e: unknown) => e instanceof UsageError && /local\.cacheMaxBytes: expected a whole number of bytes/.test(e.message));
});
