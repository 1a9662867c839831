/**
 * `node --test --test-global-setup=dist/test/infra/global-setup.js ...`
 *
 * Starts ONE Ceph RGW for the whole test run, in the runner's parent process,
 * before any test file process is spawned; the test file processes inherit the
 * MODELCTL_TEST_S3_* env vars set here and `testS3()` / `sharedRgw()` use them.
 * See the comment at the top of ./ceph-rgw.ts.
 *
 * A start-up failure does not abort the run: it is published as
 * MODELCTL_TEST_S3_ERROR, so unit tests still run and every test that asks for
 * S3 fails with the message (the run fails; nothing is skipped).
 */
import { ENV, publishToEnv, startRgw, type RgwHandle } from './ceph-rgw.js';

let handle: RgwHandle | undefined;

export async function globalSetup(): Promise<void> {
  // An S3 endpoint given from outside (or by an outer runner) wins.
  if (process.env[ENV.endpoint] || process.env[ENV.error]) return;
  try {
    handle = await startRgw({ log: (m) => process.stderr.write(`[global-setup] ${m}\n`) });
    publishToEnv(handle);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    process.env[ENV.error] = msg;
    process.stderr.write(`[global-setup] Ceph RGW failed to start; S3 tests will fail:\n${msg}\n`);
  }
}

export async function globalTeardown(): Promise<void> {
  await handle?.stop();
  handle = undefined;
}
