import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { packDirectory } from '../../src/bundle/source.js';
import { ExitCode } from '../../src/core/errors.js';
import { blobKey, manifestKey } from '../../src/store/store.js';
import { testS3, type TestS3 } from '../infra/ceph-rgw.js';
import { runCli, sampleBundle, useScratch } from '../helpers/fixtures.js';
import { s3CliEnv } from '../helpers/s3-env.js';

/**
 * A damaged store is mended by pushing the same bundle again: every blob's presence is checked
 * (not just the ref), `--repair` re-hashes what is stored, and the errors on the way say so.
 * Run against the file store and a real Ceph RGW.
 */
const { fresh, bundle, cleanup } = useScratch();
after(cleanup);

interface Damage {
  /** A blob's bytes as stored, or undefined if absent. */
  read(key: string): Promise<Buffer | undefined>;
  write(key: string, bytes: Buffer): Promise<void>;
  remove(key: string): Promise<void>;
}

async function pushed(store: string, env: NodeJS.ProcessEnv): Promise<{ src: string; digest: string; big: string; tar: string }> {
  const src = await bundle(sampleBundle({ largeBytes: 9 * 1024 * 1024 }));
  const r = await runCli(['bundle', 'push', src, '--store', store, '--json'], { env });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const packed = await packDirectory(src);
  const blobs = packed.encoded.manifest.blobs;
  await packed.close();
  return { src, digest: r.json().digest, big: blobs.find((b) => b.kind === 'file')!.digest, tar: blobs.find((b) => b.kind === 'tar')!.digest };
}

function repairScenarios(name: string, setup: () => Promise<{ store: string; env: NodeJS.ProcessEnv; damage: Damage }>): void {
  describe(`store repair: ${name}`, () => {
    test('a deleted blob: verify says how to mend it; push of the same bundle re-uploads it', async () => {
      const { store, env, damage } = await setup();
      const b = await pushed(store, env);
      await damage.remove(blobKey(b.big));

      const broken = await runCli(['bundle', 'verify', 'sentiment@1.0.0', '--store', store, '--json'], { env });
      assert.equal(broken.code, ExitCode.notFound, broken.stdout);
      assert.match(broken.json().error.message, new RegExp(`blob ${b.big} is missing`));
      assert.match(broken.json().error.hint, /bundle push <bundle dir or archive>/);

      const again = await runCli(['bundle', 'push', b.src, '--store', store, '--json'], { env });
      assert.equal(again.code, 0, again.stdout + again.stderr);
      const r = again.json();
      assert.equal(r.created, false);
      assert.deepEqual(r.repairedBlobs, [b.big]);
      assert.equal(r.uploadedBytes, 9 * 1024 * 1024);
      assert.deepEqual(await damage.read(blobKey(b.big)), await readFile(path.join(b.src, 'weights/model.safetensors')));
      const ok = await runCli(['bundle', 'verify', 'sentiment@1.0.0', '--store', store], { env });
      assert.equal(ok.code, 0, ok.stderr);

      const human = await runCli(['bundle', 'push', b.src, '--store', store], { env });
      assert.match(human.stdout, /Already present: sentiment@1\.0\.0/);
    });

    test('a corrupted blob of the same size: verify names it and points at --repair; push --repair mends it', async () => {
      const { store, env, damage } = await setup();
      const b = await pushed(store, env);
      const stored = (await damage.read(blobKey(b.tar)))!;
      const bad = Buffer.from(stored);
      bad[512]! ^= 0xff; // the first byte of the first entry's data: the tar check sees it
      await damage.write(blobKey(b.tar), bad);

      const broken = await runCli(['bundle', 'verify', 'sentiment@1.0.0', '--store', store, '--json'], { env });
      assert.equal(broken.code, ExitCode.integrity, broken.stdout);
      assert.match(broken.json().error.hint, /--repair/);

      // Presence and size are right: a plain push cannot see it and says nothing was repaired.
      const plain = (await runCli(['bundle', 'push', b.src, '--store', store, '--json'], { env })).json();
      assert.deepEqual(plain.repairedBlobs, []);

      const repair = await runCli(['bundle', 'push', b.src, '--repair', '--store', store], { env });
      assert.equal(repair.code, 0, repair.stderr);
      assert.match(repair.stdout, new RegExp(`Repaired sentiment@1\\.0\\.0 .*\\n.*\\n  re-uploaded 1 missing or damaged blob\\(s\\): ${b.tar}`));
      assert.deepEqual(await damage.read(blobKey(b.tar)), stored);
      assert.equal((await runCli(['bundle', 'verify', 'sentiment@1.0.0', '--store', store], { env })).code, 0);
    });

    test('a truncated manifest: verify says it is damaged and how to mend it; push rewrites it', async () => {
      const { store, env, damage } = await setup();
      const b = await pushed(store, env);
      const key = manifestKey(b.digest);
      const bytes = (await damage.read(key))!;
      await damage.write(key, bytes.subarray(0, bytes.length >> 1));

      const broken = await runCli(['bundle', 'pull', 'sentiment@1.0.0', '-o', path.join(await fresh('out'), 'x'), '--store', store, '--json'], { env });
      assert.equal(broken.code, ExitCode.integrity, broken.stdout);
      assert.match(broken.json().error.message, /stored manifest manifests\/sha256\/[0-9a-f]{64}\.json is damaged/);
      assert.match(broken.json().error.hint, /push the bundle again/);

      const again = (await runCli(['bundle', 'push', b.src, '--store', store, '--json'], { env })).json();
      assert.equal(again.repairedManifest, true);
      assert.deepEqual(await damage.read(key), bytes);
      assert.equal((await runCli(['bundle', 'verify', 'sentiment@1.0.0', '--store', store], { env })).code, 0);
    });

    test('a damaged ref: list names it and keeps listing the others; that model alone fails', async () => {
      const { store, env, damage } = await setup();
      await pushed(store, env);
      const other = await bundle(sampleBundle({ name: 'other' }));
      assert.equal((await runCli(['bundle', 'push', other, '--store', store], { env })).code, 0);
      await damage.write('refs/sentiment/1.0.0.json', Buffer.from('{"name":"sentiment","vers'));

      const all = await runCli(['bundle', 'list', '--store', store, '--json'], { env });
      assert.equal(all.code, 0, all.stdout + all.stderr);
      assert.deepEqual(all.json().map((r: { name: string }) => r.name), ['other']);
      assert.match(all.stderr, /Warning: ref .*refs\/sentiment\/1\.0\.0\.json in .* is damaged: it is not valid JSON/);
      assert.match(all.stderr, /Hint: delete .*refs\/sentiment\/1\.0\.0\.json/);

      const one = await runCli(['bundle', 'list', 'sentiment', '--store', store, '--json'], { env });
      assert.equal(one.code, ExitCode.integrity, one.stdout);
      assert.match(one.json().error.message, /refs\/sentiment\/1\.0\.0\.json .*is damaged/);
      const pull = await runCli(['bundle', 'pull', 'sentiment@1.0.0', '-o', path.join(await fresh('out'), 'x'), '--store', store, '--json'], { env });
      assert.equal(pull.code, ExitCode.integrity, pull.stdout);
      assert.doesNotMatch(pull.stdout, /looks like a bug/);
    });
  });
}

repairScenarios('file store', async () => {
  const root = await fresh('store');
  const p = (key: string) => path.join(root, ...key.split('/'));
  return {
    store: root,
    env: {},
    damage: {
      read: (key) => readFile(p(key)).catch(() => undefined),
      write: (key, bytes) => writeFile(p(key), bytes),
      remove: (key) => rm(p(key)),
    },
  };
});

let s3: TestS3;
before(async () => {
  s3 = await testS3();
});
repairScenarios('S3 (Ceph RGW)', async () => {
  const bucket = await s3.newBucket('repair');
  const client = s3.client();
  const key = (k: string) => `p/${k}`;
  return {
    store: `s3://${bucket}/p`,
    env: s3CliEnv(s3),
    damage: {
      read: async (k) => {
        try {
          const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key(k) }));
          return Buffer.from(await r.Body!.transformToByteArray());
        } catch {
          return undefined;
        }
      },
      write: async (k, bytes) => {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: key(k), Body: bytes }));
      },
      remove: async (k) => {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key(k) }));
      },
    },
  };
});

describe('bundle list: what is not there', () => {
  test('an unknown model is not-found (8); a mistyped --store path is an error naming it (8); the default store before any push is empty (0)', async () => {
    const store = await fresh('store');
    const src = await bundle(sampleBundle());
    assert.equal((await runCli(['bundle', 'push', src, '--store', store])).code, 0);

    const nosuch = await runCli(['bundle', 'list', 'nosuch', '--store', store, '--json']);
    assert.equal(nosuch.code, ExitCode.notFound, nosuch.stdout);
    assert.match(nosuch.json().error.message, /no version of "nosuch" is in file:\/\//);

    const typo = `${store}-typo`;
    const mistyped = await runCli(['bundle', 'list', '--store', typo, '--json']);
    assert.equal(mistyped.code, ExitCode.notFound, mistyped.stdout);
    assert.match(mistyped.json().error.message, new RegExp(`store file://${typo} does not exist`));
    const pull = await runCli(['bundle', 'pull', 'sentiment@1.0.0', '-o', path.join(await fresh('out'), 'x'), '--store', typo, '--json']);
    assert.match(pull.json().error.message, /does not exist/);

    const home = await fresh('home');
    const empty = await runCli(['bundle', 'list'], { env: { MODELCTL_HOME: home } });
    assert.equal(empty.code, 0, empty.stderr);
    assert.match(empty.stdout, /No bundles stored yet/);
  });
});
