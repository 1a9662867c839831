import assert from 'node:assert/strict';
import { ApiException } from '@kubernetes/client-node';
import type { FakeKube } from '../fakes/kube/server.js';

/** Run `fn`, expect an ApiException, return its code and parsed Status body. */
export async function apiError(fn: () => Promise<unknown>): Promise<{ code: number; status: any }> {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof ApiException, `expected ApiException, got ${String(e)}`);
    const body = (e as ApiException<unknown>).body;
    return { code: (e as ApiException<unknown>).code, status: typeof body === 'string' ? JSON.parse(body) : body };
  }
  assert.fail('expected the call to fail');
}

/** Poll `fn` every 10 ms until it returns something truthy; fail naming `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Label (or unlabel, with null) a namespace of the fake with the Pod Security level it enforces. */
export async function enforcePodSecurity(fake: Pick<FakeKube, 'url'>, namespace: string, level: string | null): Promise<void> {
  // Strict like modelctl's own writes: tests that audit every write of a file (fieldValidation=Strict) stay true.
  const r = await fetch(`${fake.url}/api/v1/namespaces/${namespace}?fieldValidation=Strict`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/merge-patch+json' },
    body: JSON.stringify({ metadata: { labels: { 'pod-security.kubernetes.io/enforce': level } } }),
  });
  assert.equal(r.status, 200, await r.text());
}
