#!/usr/bin/env node
// Train the `sentiment` example model: logistic regression over hashed
// unigrams + bigrams, full-batch gradient descent with L2 regularisation.
//
//   node bundles/example/train/train.mjs                       # rewrites weights/model.safetensors
//   node bundles/example/train/train.mjs --out /tmp/x.safetensors [--data other.tsv]
//
// Deterministic by construction: weights start at zero, every step uses the
// whole dataset in file order, and there is no randomness at all, so two runs
// produce byte-identical files (the unit test checks this). The problem is
// convex, so a random init or shuffling would not buy anything here.
//
// This directory is NOT a bundle component: it documents how the weights were made.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { featurize } from '../preprocessing/tokenizer.mjs';
import { encodeSafetensors } from '../safetensors.mjs';

const EPOCHS = 2000; // full passes over the data (one gradient step each)
const LEARNING_RATE = 1.0;
const L2 = 0.001; // strength of (L2 / 2) * ||weight||^2; keeps rare-word weights small

const bundleDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const config = JSON.parse(readFileSync(resolve(bundleDir, 'config/model.json'), 'utf8'));
const { values: args } = parseArgs({
  options: {
    data: { type: 'string', default: resolve(bundleDir, 'train/data.tsv') },
    out: { type: 'string', default: resolve(bundleDir, config.weights) },
  },
});

// data.tsv: a header line, then "<label>\t<text>" per line.
const raw = readFileSync(args.data);
const examples = raw
  .toString('utf8')
  .split('\n')
  .slice(1)
  .filter((line) => line.trim() !== '')
  .map((line, i) => {
    const [label, text] = line.split('\t');
    const y = config.labels.indexOf(label); // labels[0] -> 0, labels[1] -> 1
    if (y < 0 || !text) throw new Error(`${args.data}:${i + 2}: expected "<${config.labels.join('|')}>\\t<text>"`);
    return { y, buckets: featurize(text, config.hash_buckets).map((f) => f.bucket) };
  });

const sigmoid = (z) => 1 / (1 + Math.exp(-z));
const n = examples.length;
const weight = new Float64Array(config.hash_buckets); // train in float64, store as float32
let bias = 0;

function forward(ex) {
  let z = bias;
  for (const j of ex.buckets) z += weight[j];
  return sigmoid(z);
}

for (let epoch = 0; epoch < EPOCHS; epoch++) {
  // Gradient of  mean(log loss) + (L2 / 2) * ||weight||^2  (the bias is not regularised).
  const gradW = new Float64Array(weight.length);
  let gradB = 0;
  for (const ex of examples) {
    const err = forward(ex) - ex.y;
    gradB += err / n;
    for (const j of ex.buckets) gradW[j] += err / n;
  }
  for (let j = 0; j < weight.length; j++) weight[j] -= LEARNING_RATE * (gradW[j] + L2 * weight[j]);
  bias -= LEARNING_RATE * gradB;
}

let correct = 0;
let loss = 0;
for (const ex of examples) {
  const p = forward(ex);
  if ((p >= config.threshold ? 1 : 0) === ex.y) correct++;
  loss -= Math.log(ex.y === 1 ? p : 1 - p) / n;
}

const file = encodeSafetensors(
  {
    // Shaped like torch.nn.Linear(hash_buckets, 1): weight [out, in], bias [out].
    bias: { shape: [1], data: Float32Array.of(bias) },
    weight: { shape: [1, config.hash_buckets], data: Float32Array.from(weight) },
  },
  {
    // safetensors metadata values must be strings.
    format: 'pt',
    model: 'sentiment',
    architecture: 'logistic regression: p(labels[1]) = sigmoid(weight . x + bias)',
    features: `term counts of unigrams+bigrams, bucket = fnv1a32(utf8(term)) mod ${config.hash_buckets}`,
    labels: config.labels.join(','),
    optimizer: `full-batch gradient descent, epochs=${EPOCHS}, learning_rate=${LEARNING_RATE}, l2=${L2}`,
    train_data_sha256: createHash('sha256').update(raw).digest('hex'),
    train_examples: String(n),
    train_accuracy: (correct / n).toFixed(4),
    train_loss: loss.toFixed(4),
  },
);
mkdirSync(dirname(resolve(args.out)), { recursive: true });
writeFileSync(args.out, file);
console.log(
  `trained on ${n} examples: accuracy ${(correct / n).toFixed(4)}, log loss ${loss.toFixed(4)}\n` +
    `wrote ${args.out} (${file.length} bytes, sha256 ${createHash('sha256').update(file).digest('hex')})`,
);
