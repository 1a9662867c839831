import assert from 'node:assert/strict';
import { cp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT, runCli, type useScratch } from './fixtures.js';
import type { KubeBox } from './kube-world.js';

/** What the bundle-cache box tests share: their bundles, and what each pod's init container says it fetched. */

export const CACHE_MODEL = 'sentiment';
export const MiB = 1024 * 1024;
/** Over LARGE_FILE_BYTES (8 MiB): a whole-file blob, what the cache holds. */
export const WEIGHTS = 16 * MiB;

export function podsOf(w: KubeBox, version: string): any[] {
  return w.fake.list('v1', 'Pod', 'default').filter((p) => p.metadata.annotations?.['modelctl.dev/version'] === version);
}

export function warnings(w: KubeBox): string[] {
  return [...new Set(w.fake.list('v1', 'Event', 'default').filter((e) => e.type === 'Warning').map((e) => `${e.reason}: ${e.message}`))];
}

/** What each pod's init container says it fetched from the store vs found in the cache. */
export function pulled(w: KubeBox, version: string, only?: string): Array<{ pod: string; fetched: number; fetchedBlobs: number; cached: number; waited: number }> {
  return podsOf(w, version).filter((p) => only === undefined || p.metadata.name === only).map((p) => {
    const log = w.box.kubelet.logs('default', p.metadata.name, 'fetch-bundle');
    const m = /fetched (\d+) bytes \((\d+) blobs\) from the store, (\d+) bytes .*?(?:\((\d+) of them fetched meanwhile[^\n]*)?$/m.exec(log);
    assert.ok(m, `the init container of ${p.metadata.name} reports what it fetched:\n${log}`);
    return { pod: p.metadata.name, fetched: Number(m[1]), fetchedBlobs: Number(m[2]), cached: Number(m[3]), waited: Number(m[4] ?? 0) };
  });
}

/** Push the example model plus `extra` weights as `version`; `prompt` is prompts/explain.txt (a prompt-only change changes only it). */
export async function pushCacheVersion(w: KubeBox, scratch: ReturnType<typeof useScratch>, version: string, prompt: string, extra: Buffer): Promise<void> {
  const dir = await scratch.fresh('cache-bundle');
  await cp(path.join(REPO_ROOT, 'bundles/example'), dir, { recursive: true });
  await writeFile(path.join(dir, 'weights', 'extra.bin'), extra);
  await writeFile(path.join(dir, 'prompts', 'explain.txt'), prompt);
  const r = await runCli(['bundle', 'push', dir, '--version', version, '--json'], { env: { ...process.env, ...w.env } });
  assert.equal(r.code, 0, r.stderr);
}
