import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { projectConfigSchema, resolveStoreSettings } from '../../src/config/project.js';
import { parseYamlText } from '../../src/core/yaml-file.js';
import { parseStoreUrl } from '../../src/store/open.js';

test('store precedence: default < modelctl.yaml < environment/flag', () => {
  const env = { MODELCTL_HOME: '/h' };
  assert.equal(resolveStoreSettings({}, { config: {} }, env).store, 'file:///h/store');
  assert.equal(resolveStoreSettings({}, { file: '/p/modelctl.yaml', config: { store: 's3://b/p' } }, env).store, 's3://b/p');
  assert.equal(resolveStoreSettings({ store: 's3://flag/x' }, { config: { store: 's3://b/p' } }, env).store, 's3://flag/x');
});

test('a relative file store in modelctl.yaml is relative to that file', () => {
  const s = resolveStoreSettings({}, { file: '/proj/modelctl.yaml', config: { store: 'file://./store' } }, {});
  assert.equal(s.store, 'file:///proj/store');
  assert.equal(parseStoreUrl(s.store).kind, 'file');
});

test('s3 path style: flag > env > modelctl.yaml', () => {
  const yamlOn = { config: { s3: { pathStyle: true } } };
  assert.equal(resolveStoreSettings({}, yamlOn, {}).s3PathStyle, true);
  assert.equal(resolveStoreSettings({}, yamlOn, { MODELCTL_S3_PATH_STYLE: 'false' }).s3PathStyle, false);
  assert.equal(resolveStoreSettings({ 's3-path-style': true }, { config: {} }, { MODELCTL_S3_PATH_STYLE: 'false' }).s3PathStyle, true);
});

test('store URLs', () => {
  assert.deepEqual(parseStoreUrl('s3://models/prod/eu'), { kind: 's3', bucket: 'models', prefix: 'prod/eu' });
  assert.deepEqual(parseStoreUrl('s3://models'), { kind: 's3', bucket: 'models', prefix: '' });
  assert.deepEqual(parseStoreUrl('file:///var/store'), { kind: 'file', root: '/var/store' });
  assert.deepEqual(parseStoreUrl('./st', '/w'), { kind: 'file', root: path.resolve('/w/st') });
  assert.throws(() => parseStoreUrl('gs://x'), /unsupported scheme/);
  assert.throws(() => parseStoreUrl('s3://UPPER/x'), /not a valid S3 bucket name/);
});

test('an unknown top-level key of modelctl.yaml is an error with "did you mean"', () => {
  const parse = (text: string) => parseYamlText(text, '/p/modelctl.yaml', projectConfigSchema, 'project config');
  assert.throws(() => parse('store: file://./s\nrolout:\n  steps: [10, 100]\n'), /modelctl\.yaml:\d+: rolout: unknown setting \(did you mean rollout\?\); known: store, s3/);
  assert.throws(() => parse('colour: blue\n'), (e: Error) => /colour: unknown setting; known/.test(e.message) && !/did you mean/.test(e.message));
  assert.deepEqual(parse('rollout:\n  steps: [10, 100]\nlocal:\n  port: 8700\ntelemetry:\n  pushgateway: http://x\n').rollout, { steps: [10, 100] });
});
