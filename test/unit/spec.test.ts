import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bundleSpecSchema } from '../../src/bundle/spec.js';
import { UsageError } from '../../src/core/errors.js';
import { parseYamlText } from '../../src/core/yaml-file.js';

function errorOf(yaml: string): UsageError {
  try {
    parseYamlText(yaml, '/b/bundle.yaml', bundleSpecSchema, 'bundle file');
  } catch (err) {
    assert.ok(err instanceof UsageError, `expected a UsageError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the bundle file to be rejected');
}

const ok = `name: sentiment
version: 1.4.0
components:
  weights: [weights/]
  prompts: []
  preprocessing: [pre/]
  config: [config.json]
  eval-data: [eval/]
metadata:
  anything: [1, 2]
serve:
  command: [node, serve.mjs]
`;

test('a valid bundle.yaml parses, with extra components and free-form sections', () => {
  const spec = parseYamlText(ok, 'bundle.yaml', bundleSpecSchema, 'bundle file');
  assert.equal(spec.name, 'sentiment');
  assert.deepEqual(spec.components['eval-data'], ['eval/']);
  assert.deepEqual(spec.serve, { command: ['node', 'serve.mjs'] });
});

test('errors name the file, the line, the field and what is expected', () => {
  const e = errorOf(ok.replace('version: 1.4.0', 'version: "1.4"'));
  assert.match(e.message, /\/b\/bundle\.yaml:2: version: must be a full semver version like 1\.4\.0/);

  const n = errorOf(ok.replace('name: sentiment', 'name: Sentiment_Model'));
  assert.match(n.message, /bundle\.yaml:1: name: must be a DNS-1123 label/);

  const m = errorOf(ok.replace('  prompts: []\n', ''));
  assert.match(m.message, /bundle\.yaml:\d+: components\.prompts: missing component "prompts"/);

  const t = errorOf(ok.replace('weights: [weights/]', 'weights: weights/'));
  assert.match(t.message, /bundle\.yaml:4: components\.weights: expected a list of paths/);

  const u = errorOf(`${ok}colour: blue\n`);
  assert.match(u.message, /colour/);

  const number = errorOf(ok.replace('version: 1.4.0', 'version: 1.4'));
  assert.match(number.message, /version: expected a semver version as a string/);
});

test('every problem is reported at once, and YAML syntax errors carry a line', () => {
  const e = errorOf(ok.replace('name: sentiment', 'name: BAD').replace('version: 1.4.0', 'version: x'));
  assert.equal((e.details.issues as unknown[]).length, 2);
  const s = errorOf('name: a\nversion: [1.0.0\n');
  assert.match(s.message, /bundle\.yaml:\d+: invalid YAML/);
});

test('the serve section is checked at pack time but kept as written', () => {
  const good = parseYamlText(ok, 'bundle.yaml', bundleSpecSchema, 'bundle file');
  assert.deepEqual(good.serve, { command: ['node', 'serve.mjs'] }, 'no defaults materialised into the manifest');
  const e = errorOf(ok.replace('  command: [node, serve.mjs]\n', '  command: node serve.mjs\n  readinessPath: healthz\n'));
  assert.match(e.message, /serve\.command: expected the argv as a list/);
  assert.match(e.message, /serve\.readinessPath: expected an HTTP path starting with "\/"/);
});
