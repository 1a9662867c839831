#!/usr/bin/env node
// HTTP server for the `sentiment` example bundle, no dependencies. The modelctl local runtime
// starts it from the bundle directory (bundle.yaml, `serve:`) with PORT and HOST set; you can too:
//
//   PORT=8080 node bundles/example/serve.mjs
//   curl -s localhost:8080/predict -d '{"text": "I loved it"}'
//   {"label":"positive","score":0.9312,"confidence":0.9312,"explanation":"...","version":"1.0.0"}
//
//   GET  /healthz   200 {"status":"ok"} once the model is loaded (the readiness probe)
//   POST /predict   {"text": "..."} → {label, score, confidence, explanation, version}
//                   score = probability of labels[1] ("positive"), the field modelctl records
//
// Fault injection, for trying out rollbacks: config/model.json "faults" makes a bad version out of
// a config change only (the weights are untouched):
//   errorRate   0..1   share of /predict requests answered 500 (exactly: every 1/errorRate-th)
//   latencyMs   ms     added to every /predict answer
//   scoreShift  -1..1  added to the score (clamped to 0..1); the label follows the shifted score
//   exitOnStart code   exit with this code right after loading (a version that crash-loops)
import http from 'node:http';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel, predict } from './predict.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const MAX_BODY = 64 * 1024;

const model = await loadModel(HERE);
const faults = { errorRate: 0, latencyMs: 0, scoreShift: 0, exitOnStart: 0, ...model.config.faults };
const version = process.env.MODELCTL_VERSION ?? 'dev';
if (faults.exitOnStart) {
  console.error(`sentiment ${version}: faults.exitOnStart is ${faults.exitOnStart} in config/model.json: exiting`);
  process.exit(faults.exitOnStart);
}

let requests = 0;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req) {
  let size = 0;
  const chunks = [];
  for await (const c of req) {
    size += c.length;
    if (size > MAX_BODY) throw Object.assign(new Error(`body larger than ${MAX_BODY} bytes`), { status: 413 });
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw Object.assign(new Error('body must be JSON: {"text": "..."}'), { status: 400 });
  }
}

async function handlePredict(req, res) {
  const body = await readJson(req);
  if (typeof body?.text !== 'string') return send(res, 400, { error: 'expected {"text": "<string>"}' });
  const n = requests++;
  if (faults.latencyMs > 0) await sleep(faults.latencyMs);
  // Deterministic error rate: request n fails when it crosses a multiple of 1/errorRate.
  if (faults.errorRate > 0 && Math.floor((n + 1) * faults.errorRate) > Math.floor(n * faults.errorRate)) {
    return send(res, 500, { error: 'injected fault (config/model.json faults.errorRate)' });
  }
  const p = predict(model, body.text);
  const [negative, positive] = model.config.labels;
  const raw = p.label === positive ? p.confidence : 1 - p.confidence;
  const score = Number(Math.min(1, Math.max(0, raw + faults.scoreShift)).toFixed(4));
  const label = score >= model.config.threshold ? positive : negative;
  const confidence = Number((label === positive ? score : 1 - score).toFixed(4));
  send(res, 200, { label, score, confidence, explanation: p.explanation, version });
}

const server = http.createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && path === '/healthz') return send(res, 200, { status: 'ok', version });
  if (req.method === 'POST' && path === '/predict') {
    return void handlePredict(req, res).catch((err) => send(res, err.status ?? 500, { error: err.message }));
  }
  send(res, 404, { error: 'try POST /predict {"text": "..."} or GET /healthz' });
});

server.listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? '127.0.0.1', () => {
  console.log(`sentiment ${version} listening on http://${process.env.HOST ?? '127.0.0.1'}:${server.address().port}`);
});

// Graceful stop: finish the requests in flight, then exit (the runtime SIGKILLs after stopGraceMs).
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
  });
}
