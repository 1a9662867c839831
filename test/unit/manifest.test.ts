import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalJson, decodeManifest, encodeManifest, MANIFEST_MEDIA_TYPE, type Manifest } from '../../src/bundle/manifest.js';
import { parseRef } from '../../src/bundle/ref.js';
import { ExitCode, ModelctlError } from '../../src/core/errors.js';

const h = (c: string) => c.repeat(64);

function manifest(overrides: Partial<Manifest> = {}): Manifest {
  return {
    schemaVersion: 1,
    mediaType: MANIFEST_MEDIA_TYPE,
    name: 'sentiment',
    version: '1.0.0',
    spec: { components: { config: ['config'] } },
    components: [{ name: 'config', size: 3, files: [{ path: 'config/a.json', size: 3, executable: false, sha256: h('a'), blob: `sha256:${h('b')}` }] }],
    blobs: [{ digest: `sha256:${h('b')}`, size: 512, kind: 'tar' }],
    ...overrides,
  };
}

test('canonical JSON sorts keys at every depth and has no whitespace', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: 'x' } }), '{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}');
  assert.equal(canonicalJson({ a: undefined, b: null }), '{"b":null}');
  assert.throws(() => canonicalJson({ a: Number.NaN }));
});

test('the digest ignores key order but not content', () => {
  const a = encodeManifest(manifest());
  const reordered = JSON.parse(JSON.stringify(manifest()), (_k, v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).reverse()) : v));
  assert.equal(encodeManifest(reordered).digest, a.digest);
  assert.match(a.digest, /^sha256:[0-9a-f]{64}$/);
  assert.notEqual(encodeManifest(manifest({ version: '1.0.1' })).digest, a.digest);
});

test('decoding checks the digest, the schema and every path', () => {
  const good = encodeManifest(manifest());
  assert.equal(decodeManifest(good.bytes, good.digest, 'test').digest, good.digest);
  assert.throws(() => decodeManifest(good.bytes, `sha256:${h('0')}`, 'test'), (e: ModelctlError) => e.exitCode === ExitCode.integrity);

  const evil = manifest();
  evil.components[0]!.files[0]!.path = '../etc/passwd';
  assert.throws(() => decodeManifest(encodeManifest(evil).bytes, undefined, 'test'), /leaves the bundle directory/);

  const dangling = manifest();
  dangling.components[0]!.files[0]!.blob = `sha256:${h('c')}`;
  assert.throws(() => decodeManifest(encodeManifest(dangling).bytes, undefined, 'test'), /not listed/);

  assert.throws(() => decodeManifest(Buffer.from('{"schemaVersion":2}'), undefined, 'test'), /not a modelctl manifest of schema 1 or 2/);
});

test('refs are name@semver or name@sha256:<hex>', () => {
  assert.deepEqual(parseRef('sentiment@1.4.0'), { name: 'sentiment', version: '1.4.0' });
  assert.deepEqual(parseRef('sentiment@1.4.0-rc.1+abc'), { name: 'sentiment', version: '1.4.0-rc.1+abc' });
  assert.deepEqual(parseRef(`sentiment@sha256:${h('a')}`), { name: 'sentiment', digest: `sha256:${h('a')}` });
  for (const bad of ['sentiment', '@1.0.0', 'Sentiment@1.0.0', 'sentiment@1.4', 'sentiment@sha256:abc', 'sentiment@latest']) {
    assert.throws(() => parseRef(bad), (e: ModelctlError) => e.exitCode === ExitCode.usage, bad);
  }
});
