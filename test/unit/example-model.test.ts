// Tests for the example bundle in bundles/example (a plain-JS sentiment model).
// Compiled to dist/test/unit/, so the bundle is three levels up from here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';

const run = promisify(execFile);
const bundleDir = fileURLToPath(new URL('../../../bundles/example/', import.meta.url));
const predictScript = join(bundleDir, 'predict.mjs');
const trainScript = join(bundleDir, 'train', 'train.mjs');
const committedWeights = join(bundleDir, 'weights', 'model.safetensors');

interface Prediction {
  label: string;
  confidence: number;
  explanation: string;
}
interface PredictModule {
  loadModel(dir?: string | URL): Promise<unknown>;
  predict(model: unknown, text: string): Prediction;
}

async function loadExample(): Promise<{ lib: PredictModule; model: unknown }> {
  const lib = (await import(pathToFileURL(predictScript).href)) as PredictModule;
  return { lib, model: await lib.loadModel(bundleDir) };
}

async function trainingTexts(): Promise<Set<string>> {
  const tsv = await readFile(join(bundleDir, 'train', 'data.tsv'), 'utf8');
  return new Set(tsv.split('\n').map((line) => (line.split('\t')[1] ?? '').trim().toLowerCase()));
}

// Sentences written for this test; none of them is in train/data.tsv (checked below).
const HELD_OUT: ReadonlyArray<readonly [text: string, label: 'positive' | 'negative']> = [
  ['An absolutely wonderful film, I loved it.', 'positive'],
  ['Excellent quality and great value for money.', 'positive'],
  ['Really enjoyed the show, the actors were great.', 'positive'],
  ['The staff were friendly and the room was very clean.', 'positive'],
  ['The movie was good.', 'positive'],
  ['A terrible, boring movie and a waste of time.', 'negative'],
  ['The worst customer service ever.', 'negative'],
  ['Service was slow and the room was dirty.', 'negative'],
  ['The food was not good and the waiter was rude.', 'negative'],
  ['The movie was not good.', 'negative'], // negation: only the bigram "not good" flips it
];

test('bundle.yaml lists the four components plus serving, all present on disk, and how to serve it', async () => {
  const manifest = parseYaml(await readFile(join(bundleDir, 'bundle.yaml'), 'utf8')) as {
    name: unknown;
    version: unknown;
    components: Record<string, unknown>;
    metadata: Record<string, unknown>;
    serve: { command: string[]; readinessPath: string; scoreField: string; agreementField: string };
  };
  assert.equal(manifest.name, 'sentiment');
  assert.equal(manifest.version, '1.0.0');
  assert.deepEqual(Object.keys(manifest.components).sort(), ['config', 'eval', 'preprocessing', 'prompts', 'serving', 'weights']);
  assert.deepEqual(manifest.serve.command, ['node', 'serve.mjs']);
  assert.ok((manifest.components.serving as string[]).includes(manifest.serve.command[1]!), 'the server is inside the bundle');
  for (const [component, paths] of Object.entries(manifest.components)) {
    assert.ok(Array.isArray(paths) && paths.length > 0, `${component} must be a non-empty list`);
    for (const p of paths) assert.ok(existsSync(join(bundleDir, String(p))), `${component}: ${String(p)} is missing`);
  }
  assert.equal(manifest.metadata.task, 'text-classification');
  assert.equal(manifest.metadata.license, 'Apache-2.0');
});

test('classifies clearly positive and negative held-out sentences', async () => {
  const { lib, model } = await loadExample();
  const seen = await trainingTexts();
  for (const [text, expected] of HELD_OUT) {
    assert.ok(!seen.has(text.toLowerCase()), `"${text}" is in the training data, so it is not held out`);
    const result = lib.predict(model, text);
    assert.equal(result.label, expected, `"${text}" -> ${JSON.stringify(result)}`);
    assert.ok(result.confidence > 0.5 && result.confidence <= 1, `confidence out of range: ${result.confidence}`);
  }
});

test('confidence is in [0, 1] and the explanation is filled from prompts/explain.txt', async () => {
  const { lib, model } = await loadExample();
  const template = (await readFile(join(bundleDir, 'prompts', 'explain.txt'), 'utf8')).trim();
  const literalParts = template.split(/\{\{\s*\w+\s*\}\}/);
  assert.ok(literalParts.length > 3, 'explain.txt should use {{label}}, {{confidence}} and {{top_tokens}}');

  for (const text of ['I loved it', 'It broke after two days, awful.', '', 'zzz qqq', '!!!']) {
    const result = lib.predict(model, text);
    assert.ok(['negative', 'positive'].includes(result.label), `label: ${result.label}`);
    assert.ok(result.confidence >= 0 && result.confidence <= 1, `confidence: ${result.confidence}`);
    assert.ok(result.explanation.length > 0);
    assert.doesNotMatch(result.explanation, /\{\{|\}\}/, 'unrendered placeholder');
    assert.ok(result.explanation.includes(result.label));
  }

  const loved = lib.predict(model, 'I loved it');
  assert.equal(loved.label, 'positive');
  // Every literal piece of the template appears, in order, with the placeholders filled in.
  let from = 0;
  for (const part of literalParts) {
    const at = loved.explanation.indexOf(part, from);
    assert.ok(at >= from, `explanation ${JSON.stringify(loved.explanation)} does not follow the template at ${JSON.stringify(part)}`);
    from = at + part.length;
  }
  assert.match(loved.explanation, /"loved"/, 'top tokens should name the word that drove the decision');
  assert.ok(loved.explanation.includes(`${(loved.confidence * 100).toFixed(1)}%`));
});

test('CLI prints {label, confidence, explanation} as JSON', async () => {
  const { stdout } = await run(process.execPath, [predictScript, 'What a terrible waste of money']);
  const result = JSON.parse(stdout) as Prediction;
  assert.deepEqual(Object.keys(result), ['label', 'confidence', 'explanation']);
  assert.equal(result.label, 'negative');
});

test('weights are a well-formed safetensors file: F32 weight [1, buckets] and bias [1]', async () => {
  const buf = await readFile(committedWeights);
  const config = JSON.parse(await readFile(join(bundleDir, 'config', 'model.json'), 'utf8')) as { hash_buckets: number };
  const headerLength = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.toString('utf8', 8, 8 + headerLength)) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  assert.equal(header.bias?.dtype, 'F32');
  assert.deepEqual(header.bias?.shape, [1]);
  assert.equal(header.weight?.dtype, 'F32');
  assert.deepEqual(header.weight?.shape, [1, config.hash_buckets]);
  // The data section is exactly the tensors, back to back, with no gaps.
  const ranges = [header.bias!.data_offsets, header.weight!.data_offsets].sort((a, b) => a[0] - b[0]);
  assert.equal(ranges[0]![0], 0);
  assert.equal(ranges[0]![1], ranges[1]![0]);
  assert.equal(8 + headerLength + ranges[1]![1], buf.length);
  assert.ok(buf.length < 150_000, `weights should stay small, got ${buf.length} bytes`);
});

test('training is deterministic and reproduces the committed weights', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'modelctl-example-'));
  try {
    const outputs = [join(dir, 'a.safetensors'), join(dir, 'b.safetensors')];
    for (const out of outputs) await run(process.execPath, [trainScript, '--out', out]);
    const [a, b, committed] = await Promise.all([...outputs, committedWeights].map((p) => readFile(p)));
    assert.ok(a!.equals(b!), 'two training runs produced different bytes');
    assert.ok(
      a!.equals(committed!),
      'retrained weights differ from weights/model.safetensors: run `node bundles/example/train/train.mjs` and commit the result',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
