#!/usr/bin/env node
// Inference for the `sentiment` example bundle: library + CLI, no dependencies.
//
//   node bundles/example/predict.mjs "I loved it"
//   {"label":"positive","confidence":0.9,"explanation":"Predicted positive with 90.0% confidence. ..."}
//
//   import { loadModel, predict } from './predict.mjs';
//   const model = await loadModel('bundles/example');   // any unpacked bundle directory
//   predict(model, 'I loved it');                      // -> { label, confidence, explanation }
import { readFile } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { decodeSafetensors } from './safetensors.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));

/**
 * Load a bundle directory: config/model.json names everything else (tokenizer,
 * weights, prompt templates). The tokenizer is imported from the bundle itself,
 * so every bundle version is served with the preprocessing it was trained with.
 * @param {string | URL} [dir] bundle directory; defaults to the one next to this file
 */
export async function loadModel(dir = HERE) {
  const root = dir instanceof URL ? fileURLToPath(dir) : resolve(dir);
  const config = JSON.parse(await readFile(join(root, 'config/model.json'), 'utf8'));
  if (!Array.isArray(config.labels) || config.labels.length !== 2) throw new Error('config: labels must list exactly 2 labels');

  const tokenizer = await import(pathToFileURL(join(root, config.tokenizer)).href);
  const { tensors, metadata } = decodeSafetensors(await readFile(join(root, config.weights)));
  const { weight, bias } = tensors;
  if (weight?.shape.join() !== `1,${config.hash_buckets}` || bias?.shape.join() !== '1') {
    throw new Error(`weights: expected weight [1, ${config.hash_buckets}] and bias [1] in ${config.weights}`);
  }

  const { template, no_signal_template, top_k } = config.explanation;
  return {
    config,
    tokenizer,
    weight: weight.data,
    bias: bias.data[0],
    metadata,
    templates: {
      explain: await readFile(join(root, template), 'utf8'),
      noSignal: await readFile(join(root, no_signal_template), 'utf8'),
    },
    topK: top_k,
  };
}

/** Replace {{name}} placeholders; an unknown placeholder is an error, not silently left in. */
export function render(template, vars) {
  return template.trim().replace(/\{\{\s*(\w+)\s*\}\}/g, (_, name) => {
    if (!(name in vars)) throw new Error(`template uses unknown placeholder {{${name}}}`);
    return String(vars[name]);
  });
}

/**
 * Classify one text. Returns { label, confidence, explanation }, where confidence
 * is the model's probability (0..1) for the returned label.
 */
export function predict(model, text) {
  const { config, weight, bias } = model;

  // Logistic regression: z = bias + sum of the weights of the text's hashed terms.
  // Per-term contributions are kept for the explanation.
  let z = bias;
  const contributions = new Map();
  for (const { term, bucket } of model.tokenizer.featurize(text, config.hash_buckets)) {
    z += weight[bucket];
    contributions.set(term, (contributions.get(term) ?? 0) + weight[bucket]);
  }
  const pPositive = 1 / (1 + Math.exp(-z)); // probability of labels[1]
  const isPositive = pPositive >= config.threshold;
  const label = config.labels[isPositive ? 1 : 0];
  const confidence = isPositive ? pPositive : 1 - pPositive;

  // Explanation: the terms that pushed hardest towards the chosen label.
  const direction = isPositive ? 1 : -1;
  const top = [...contributions]
    .filter(([, w]) => w * direction > 0)
    .sort(([ta, wa], [tb, wb]) => wb * direction - wa * direction || (ta < tb ? -1 : 1))
    .slice(0, model.topK);
  const vars = {
    label,
    confidence: `${(confidence * 100).toFixed(1)}%`,
    top_tokens: top.map(([term, w]) => `"${term}" (${w > 0 ? '+' : ''}${w.toFixed(2)})`).join(', '),
  };
  const explanation = render(top.length > 0 ? model.templates.explain : model.templates.noSignal, vars);

  return { label, confidence: Number(confidence.toFixed(4)), explanation };
}

// CLI: run only when executed directly, not when imported.
function isMain() {
  try {
    return realpathSync(process.argv[1] ?? '') === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
if (isMain()) {
  const text = process.argv.slice(2).join(' ');
  if (text.trim() === '') {
    console.error('usage: node predict.mjs "some text to classify"');
    process.exit(2);
  }
  console.log(JSON.stringify(predict(await loadModel(), text)));
}
