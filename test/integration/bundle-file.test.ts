import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodeManifest } from '../../src/bundle/manifest.js';
import { packDirectory } from '../../src/bundle/source.js';
import { push } from '../../src/store/transfer.js';
import { FsStore } from '../../src/store/fs-store.js';
import { testS3, type TestS3 } from '../infra/ceph-rgw.js';
import { runCli, sampleBundle, useScratch } from '../helpers/fixtures.js';
import { s3CliEnv } from '../helpers/s3-env.js';

/**
 * A pull gives back bundle.yaml as it was pushed — comments, order, quoting — while the digest
 * stays a function of what the file means, not of how it is written.
 */
const { fresh, bundle, cleanup } = useScratch();
after(cleanup);

const DOCUMENTED = `# The sentiment model: answers {label, confidence}.
# Owner: ml-platform (#ml-oncall). Keep this file's comments: they are the bundle's documentation.
name: sentiment
version: 1.0.0   # bumped by CI with --version
components:
  weights: [weights/]        # safetensors only
  prompts: [prompts/]
  preprocessing: [preprocessing/]
  config: [config/]
metadata:
  owner: ml-platform   # who to page
`;

async function documentedBundle(): Promise<string> {
  return bundle({ ...sampleBundle(), 'bundle.yaml': DOCUMENTED });
}

let s3: TestS3;
before(async () => {
  s3 = await testS3();
});

for (const kind of ['file', 's3'] as const) {
  describe(`bundle.yaml round trip (${kind} store)`, () => {
    async function target(): Promise<{ store: string; env: NodeJS.ProcessEnv }> {
      if (kind === 'file') return { store: await fresh('store'), env: {} };
      const bucket = await s3.newBucket('yaml');
      return {
        store: `s3://${bucket}/p`,
        env: s3CliEnv(s3),
      };
    }

    test('pull gives back the bytes pushed; with --version only the version value changes; re-packing gives the same digest', async () => {
      const { store, env } = await target();
      const src = await documentedBundle();
      const pushed = await runCli(['bundle', 'push', src, '--store', store, '--json'], { env });
      assert.equal(pushed.code, 0, pushed.stderr);
      const out = path.join(await fresh('pull'), 'x');
      assert.equal((await runCli(['bundle', 'pull', 'sentiment@1.0.0', '-o', out, '--store', store], { env })).code, 0);
      assert.equal(await readFile(path.join(out, 'bundle.yaml'), 'utf8'), DOCUMENTED);
      assert.equal((await runCli(['bundle', 'verify', out])).code, 0, 'the pulled directory still matches its record');
      assert.equal((await runCli(['bundle', 'verify', 'sentiment@1.0.0', '--store', store], { env })).code, 0);
      assert.equal((await runCli(['bundle', 'pack', out, '--json'])).json().digest, pushed.json().digest);

      const rc = await runCli(['bundle', 'push', src, '--version', '1.1.0-rc.1', '--store', store, '--json'], { env });
      assert.equal(rc.code, 0, rc.stderr);
      const out2 = path.join(await fresh('pull'), 'x');
      assert.equal((await runCli(['bundle', 'pull', 'sentiment@1.1.0-rc.1', '-o', out2, '--store', store], { env })).code, 0);
      assert.equal(await readFile(path.join(out2, 'bundle.yaml'), 'utf8'), DOCUMENTED.replace('version: 1.0.0', 'version: "1.1.0-rc.1"'));
      assert.equal((await runCli(['bundle', 'pack', out2, '--json'])).json().digest, rc.json().digest);
    });
  });
}

describe('bundle.yaml formatting and older bundles', () => {
  test('comments and formatting do not change the digest', async () => {
    const a = await documentedBundle();
    const b = await bundle({ ...sampleBundle(), 'bundle.yaml': `${DOCUMENTED.replace(/ +#.*$/gm, '')}\n# another comment\n` });
    const da = (await runCli(['bundle', 'pack', a, '--json'])).json().digest;
    const db = (await runCli(['bundle', 'pack', b, '--json'])).json().digest;
    assert.equal(da, db);
  });

  test('the archive carries bundle.yaml as written: pack -o, push the archive, pull', async () => {
    const src = await documentedBundle();
    const store = await fresh('store');
    const tar = path.join(await fresh('archive'), 'b.tar');
    assert.equal((await runCli(['bundle', 'pack', src, '-o', tar])).code, 0);
    assert.equal((await runCli(['bundle', 'push', tar, '--store', store])).code, 0);
    const out = path.join(await fresh('pull'), 'x');
    assert.equal((await runCli(['bundle', 'pull', 'sentiment@1.0.0', '-o', out, '--store', store])).code, 0);
    assert.equal(await readFile(path.join(out, 'bundle.yaml'), 'utf8'), DOCUMENTED);
  });

  test('a bundle pushed before bundle.yaml was kept still pulls (regenerated), with the same digest', async () => {
    const src = await documentedBundle();
    const storeDir = await fresh('store');
    const source = await packDirectory(src);
    try {
      const { bundleFile: _kept, ...old } = source.encoded.manifest;
      const encoded = encodeManifest(old);
      assert.equal(encoded.digest, source.encoded.digest);
      await push(new FsStore(storeDir), { ...source, encoded });
    } finally {
      await source.close();
    }
    const out = path.join(await fresh('pull'), 'x');
    const r = await runCli(['bundle', 'pull', 'sentiment@1.0.0', '-o', out, '--store', storeDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(await readFile(path.join(out, 'bundle.yaml'), 'utf8'), /^# Pulled by modelctl: sentiment@1\.0\.0\n/);
    assert.equal((await runCli(['bundle', 'verify', 'sentiment@1.0.0', '--store', storeDir])).code, 0);

    // Pushing it again from the documented source upgrades the stored manifest (same digest).
    assert.equal((await runCli(['bundle', 'push', src, '--store', storeDir])).code, 0);
    const out2 = path.join(await fresh('pull'), 'x');
    assert.equal((await runCli(['bundle', 'pull', 'sentiment@1.0.0', '-o', out2, '--store', storeDir])).code, 0);
    assert.equal(await readFile(path.join(out2, 'bundle.yaml'), 'utf8'), DOCUMENTED);
  });

  test('a stored bundle.yaml that does not describe the manifest is refused on pull (exit 6)', async () => {
    const src = await documentedBundle();
    const store = await fresh('store');
    assert.equal((await runCli(['bundle', 'push', src, '--store', store])).code, 0);
    const source = await packDirectory(src);
    const file = source.encoded.manifest.bundleFile!;
    await source.close();
    const hex = file.digest.slice(7);
    const blob = path.join(store, 'blobs', 'sha256', hex.slice(0, 2), hex);
    // Same size, same hash is impossible to forge; a swapped file is what a tampered store shows.
    await writeFile(blob, DOCUMENTED.replace('owner: ml-platform', 'owner: ml-platfxrm'));
    const r = await runCli(['bundle', 'pull', 'sentiment@1.0.0', '-o', path.join(await fresh('pull'), 'x'), '--store', store, '--json']);
    assert.equal(r.code, 6, r.stdout);
  });
});
