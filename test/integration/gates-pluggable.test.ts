import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { serveSpecSchema } from '../../src/bundle/serve.js';
import { UsageError } from '../../src/core/errors.js';
import { CommandGateEvaluator } from '../../src/gates/command.js';
import type { GateContext } from '../../src/gates/contracts.js';
import type { CommandGate, HttpGate } from '../../src/core/gates.js';
import { HttpGateEvaluator } from '../../src/gates/http.js';
import { PrometheusGateEvaluator } from '../../src/gates/prometheus-evaluator.js';
import { loadGatesFile } from '../../src/gates/prometheus-check.js';
import { defaultGateRegistry } from '../../src/gates/registry.js';
import type { MetricSource } from '../../src/core/ports.js';
import { gateSpecSchema, toGate } from '../../src/gates/schema.js';
import { RuntimeMetrics } from '../../src/targets/local/metrics.js';
import { Router } from '../../src/targets/local/router.js';
import { background, waitFor } from '../helpers/background.js';
import { REPO_ROOT, runCli, useScratch } from '../helpers/fixtures.js';

/**
 * kind: command and kind: http against real processes and a real HTTP server on 127.0.0.1. The
 * metric source is the only stand-in: it tells per-version URLs as LocalMetricSource.endpoint does.
 */
const { fresh, cleanup } = useScratch();
let dir: string;
const T0 = Date.UTC(2026, 0, 1);
const ctx: GateContext = { model: 'sentiment', candidate: '1.1.0', stable: '1.0.0', sinceMs: T0, now: T0 + 60_000, phase: 'canary' };
const SECRET = 's3cr3t-Vä1ue';
const env = { ...process.env, JUDGE_TOKEN: SECRET };

const source: MetricSource = {
  window: async () => {
    throw new Error('command and http gates never read windows');
  },
  endpoint: async (_model, version) => `http://127.0.0.1:9/v/${version}`,
};

async function script(name: string, body: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, body);
  return file;
}

const command = new CommandGateEvaluator(env);
const run = (gate: Partial<CommandGate>, c: GateContext = ctx) => command.evaluate({ name: 'check', kind: 'command', metric: 'command', ...gate }, c, source);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

before(async () => {
  dir = await fresh('gates-pluggable');
});
after(cleanup);

describe('kind: command', () => {
  test('its {"value": n} on stdout is judged by the limits; the rollout values are in its environment', async () => {
    const file = await script(
      'eval.mjs',
      `const e = process.env;
       console.log('progress: 100 of 100 examples');
       const ok = e.MODELCTL_MODEL === 'sentiment' && e.MODELCTL_CANDIDATE_VERSION === '1.1.0' && e.MODELCTL_STABLE_VERSION === '1.0.0'
         && e.MODELCTL_CANDIDATE_URL === 'http://127.0.0.1:9/v/1.1.0' && e.MODELCTL_STABLE_URL === 'http://127.0.0.1:9/v/1.0.0' && e.LITERAL === 'x y';
       console.log(JSON.stringify({ value: ok ? 0.93 : 0.01 }));`,
    );
    const pass = await run({ command: ['node', file], env: { LITERAL: 'x y' }, min: 0.9 });
    assert.equal(pass.verdict, 'pass', pass.reason);
    assert.equal(pass.value, 0.93);
    assert.match(pass.reason, /0\.93 within >= 0\.9/);
    assert.match(pass.query, /^command: \S+ \S+eval\.mjs \(timeout 60 s\)$/);

    const fail = await run({ command: ['node', file], env: { LITERAL: 'x y' }, min: 0.95 });
    assert.equal(fail.verdict, 'fail');
    assert.match(fail.reason, /0\.93 < 0\.95/);
  });

  test('first deploy: no stable, so no MODELCTL_STABLE_* variables', async () => {
    const file = await script('nostable.mjs', `console.log(JSON.stringify({ value: 'MODELCTL_STABLE_URL' in process.env || 'MODELCTL_STABLE_VERSION' in process.env ? 1 : 0 }));`);
    const r = await run({ command: ['node', file], max: 0 }, { ...ctx, stable: null });
    assert.equal(r.verdict, 'pass', r.reason);
  });

  test('without limits the exit code is the measurement: 0 pass, non-zero fail with the stderr tail', async () => {
    const file = await script('exit.mjs', `const code = Number(process.argv[2]); if (code) console.error('accuracy 0.71 is below 0.9'); process.exit(code);`);
    const pass = await run({ command: ['node', file, '0'] });
    assert.equal(pass.verdict, 'pass', pass.reason);
    assert.equal(pass.limit, 'exit code 0');
    const fail = await run({ command: ['node', file, '3'] });
    assert.equal(fail.verdict, 'fail');
    assert.equal(fail.value, 3);
    assert.match(fail.reason, /exit code 3; stderr: accuracy 0\.71 is below 0\.9/);
  });

  test('a hanging command is killed at its timeout with its whole process group: an error, never a pass', async () => {
    const pidFile = path.join(dir, 'grandchild.pid');
    const file = await script(
      'hang.mjs',
      `import { spawn } from 'node:child_process'; import { writeFileSync } from 'node:fs';
       const g = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
       writeFileSync(${JSON.stringify(pidFile)}, String(g.pid));
       process.on('SIGTERM', () => {}); // ignores the polite signal: SIGKILL must follow
       console.error('loading the eval set…');
       setInterval(() => {}, 1000);`,
    );
    const t0 = Date.now();
    const r = await run({ command: ['node', file], timeoutMs: 700, min: 0.9 });
    const took = Date.now() - t0;
    assert.equal(r.verdict, 'error');
    assert.equal(r.value, null);
    assert.match(r.reason, /no result within 0\.7 s: killed; stderr: loading the eval set…/);
    assert.ok(took >= 700 && took < 700 + 2000 + 2000, `killed after SIGTERM grace, took ${took} ms`);
    const grandchild = Number(await readFile(pidFile, 'utf8'));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(alive(grandchild), false, 'the command’s own child was killed with its group');
  });

  test('an interrupted rollout (GateContext.signal) kills the command at once: an error', async () => {
    const t0 = Date.now();
    const r = await run({ command: ['node', '-e', 'setInterval(() => {}, 1000)'], timeoutMs: 30_000 }, { ...ctx, signal: AbortSignal.timeout(300) });
    assert.equal(r.verdict, 'error');
    assert.match(r.reason, /interrupted/);
    assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
  });

  test('an exit-code gate that hangs is an error too', async () => {
    const r = await run({ command: ['node', '-e', 'setInterval(() => {}, 1000)'], timeoutMs: 300 });
    assert.equal(r.verdict, 'error');
  });

  test('garbage on stdout, no value, a crash, a missing program, too much output: errors', async () => {
    const garbage = await run({ command: ['node', '-e', 'console.log("accuracy: great")'], min: 0.5 });
    assert.equal(garbage.verdict, 'error');
    assert.match(garbage.reason, /stdout is not \{"value": <number>\}: "accuracy: great"/);
    const garbageExit = await run({ command: ['node', '-e', 'console.log("{value: 1}")'] });
    assert.equal(garbageExit.verdict, 'error', 'an exit-code gate whose stdout is not a value is an error too');
    const nanValue = await run({ command: ['node', '-e', 'console.log(JSON.stringify({value: "0.9"}))'], min: 0.5 });
    assert.equal(nanValue.verdict, 'error');
    const silent = await run({ command: ['node', '-e', ''], min: 0.5 });
    assert.equal(silent.verdict, 'error');
    assert.match(silent.reason, /printed no \{"value": <number>\}/);
    const crash = await run({ command: ['node', '-e', 'console.log(JSON.stringify({value: 0.99})); throw new Error("boom")'], min: 0.5 });
    assert.equal(crash.verdict, 'error', 'a value followed by a crash is not trusted');
    assert.match(crash.reason, /exited with 1 before printing a value; stderr: .*boom/);
    const missing = await run({ command: ['no-such-program-modelctl'] });
    assert.equal(missing.verdict, 'error');
    assert.match(missing.reason, /cannot run "no-such-program-modelctl": ENOENT/);
    const flood = await run({ command: ['node', '-e', 'const s = "x".repeat(65536); for (let i = 0; i < 40; i++) process.stdout.write(s)'] });
    assert.equal(flood.verdict, 'error');
    assert.match(flood.reason, /printed more than 1048576 bytes on stdout: killed/);
    const signal = await run({ command: ['node', '-e', 'process.kill(process.pid, "SIGSEGV")'] });
    assert.equal(signal.verdict, 'error');
    assert.match(signal.reason, /killed by SIGSEGV/);
  });

  test('a secret goes in by its variable name and never comes out in the reason or the JSON', async () => {
    const file = await script('leak.mjs', `console.error('token is ' + process.env.TOKEN); process.exit(process.env.TOKEN === ${JSON.stringify(SECRET)} ? 4 : 0);`);
    const r = await run({ command: ['node', file], env: { TOKEN: { fromEnv: 'JUDGE_TOKEN' } } });
    assert.equal(r.verdict, 'fail', 'exit 4 proves the script received the secret');
    assert.match(r.reason, /token is \*\*\*/);
    assert.ok(!JSON.stringify(r).includes(SECRET));
    const unset = await run({ command: ['node', file], env: { TOKEN: { fromEnv: 'MODELCTL_TEST_UNSET_VARIABLE' } } });
    assert.equal(unset.verdict, 'error');
    assert.match(unset.reason, /env TOKEN: environment variable MODELCTL_TEST_UNSET_VARIABLE is not set/);
  });
});

describe('kind: http', () => {
  let server: http.Server;
  let base: string;
  const seen: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }> = [];

  before(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() });
        const u = new URL(req.url!, 'http://x');
        if (u.pathname === '/score') return res.end(JSON.stringify({ metrics: { accuracy: 0.91, per: [{ f1: '0.88' }] } }));
        if (u.pathname === '/down') return res.writeHead(503).end('overloaded, auth was ' + req.headers.authorization);
        if (u.pathname === '/html') return res.end('<html>hi</html>');
        if (u.pathname === '/big') return res.end('x'.repeat(2 * 1024 * 1024));
        if (u.pathname === '/slow') return; // never answers
        res.writeHead(404).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  const httpGate = new HttpGateEvaluator(env);
  const call = (gate: Partial<HttpGate>, c: GateContext = ctx) => httpGate.evaluate({ name: 'judge', kind: 'http', metric: 'http', min: 0.9, ...gate }, c, source);

  test('reads a nested value; templated values are URL-encoded in the URL and JSON-escaped in the body', async () => {
    const odd = { ...ctx, candidate: '1.1.0+b&x=1', model: 'sen"ti\\ment' };
    const r = await call(
      {
        url: `${base}/score?v={{version}}&u={{candidate_url}}&m={{model}}`,
        method: 'POST',
        headers: { Authorization: { fromEnv: 'JUDGE_TOKEN' }, 'x-team': 'ml' },
        body: { candidate: '{{candidate_url}}', label: 'model {{model}}', n: 3 },
        valuePath: '$.metrics.accuracy',
      },
      odd,
    );
    assert.equal(r.verdict, 'pass', r.reason);
    assert.equal(r.value, 0.91);
    const req = seen.at(-1)!;
    assert.equal(req.method, 'POST');
    const q = new URL(req.url, 'http://x').searchParams;
    assert.equal(q.get('v'), '1.1.0+b&x=1', 'a value cannot add a query parameter');
    assert.equal(q.get('x'), null);
    assert.equal(q.get('u'), 'http://127.0.0.1:9/v/1.1.0+b&x=1');
    assert.equal(q.get('m'), 'sen"ti\\ment');
    assert.equal(req.headers.authorization, SECRET);
    assert.equal(req.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(req.body), { candidate: 'http://127.0.0.1:9/v/1.1.0+b&x=1', label: 'model sen"ti\\ment', n: 3 });
    assert.ok(!JSON.stringify(r).includes(SECRET));

    const stringBody = await call({ url: `${base}/score`, method: 'POST', body: '{"model": "{{model}}"}', valuePath: 'metrics.per[0].f1', min: 0.85 }, odd);
    assert.equal(stringBody.verdict, 'pass', stringBody.reason);
    assert.equal(stringBody.value, 0.88);
    assert.equal(stringBody.raw, '0.88');
    assert.deepEqual(JSON.parse(seen.at(-1)!.body), { model: 'sen"ti\\ment' });
  });

  test('a {{candidate_url}} base is the version’s own URL', async () => {
    const local: MetricSource = { ...source, endpoint: async () => base };
    const r = await httpGate.evaluate({ name: 'judge', kind: 'http', metric: 'http', url: '{{candidate_url}}/score?m={{model}}', valuePath: '$.metrics.accuracy', min: 0.95 }, ctx, local);
    assert.equal(r.verdict, 'fail');
    assert.match(r.reason, /judge 0\.91 < 0\.95 \(HTTP 200, \$\.metrics\.accuracy = 0\.91\)/);
    assert.equal(seen.at(-1)!.url, '/score?m=sentiment');
  });

  test('non-2xx, not JSON, no number at the path, too large, too slow, unreachable: errors with what went wrong', async () => {
    const down = await call({ url: `${base}/down`, headers: { authorization: { fromEnv: 'JUDGE_TOKEN' } }, valuePath: 'x' });
    assert.equal(down.verdict, 'error');
    assert.match(down.reason, /^HTTP 503: "overloaded, auth was \*\*\*"$/);
    assert.ok(!JSON.stringify(down).includes(SECRET), 'a server echoing the secret does not leak it');
    const html = await call({ url: `${base}/html`, valuePath: 'x' });
    assert.match(html.reason, /HTTP 200, answer is not JSON: "<html>hi<\/html>"/);
    const absent = await call({ url: `${base}/score`, valuePath: '$.metrics.recall' });
    assert.equal(absent.verdict, 'error');
    assert.match(absent.reason, /no number at \$\.metrics\.recall \(absent\)/);
    const notNumber = await call({ url: `${base}/score`, valuePath: '$.metrics' });
    assert.match(notNumber.reason, /no number at \$\.metrics \(got \{"accuracy"/);
    const big = await call({ url: `${base}/big`, valuePath: 'x' });
    assert.equal(big.verdict, 'error');
    assert.match(big.reason, /answer larger than 1048576 bytes/);
    const t0 = Date.now();
    const slow = await call({ url: `${base}/slow`, valuePath: 'x', timeoutMs: 300 });
    assert.equal(slow.verdict, 'error');
    assert.match(slow.reason, /no answer within 0\.3 s/);
    assert.ok(Date.now() - t0 < 2000);
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const interrupted = await call({ url: `${base}/slow`, valuePath: 'x', timeoutMs: 30_000 }, { ...ctx, signal: AbortSignal.timeout(200) });
    assert.equal(interrupted.verdict, 'error');
    assert.match(interrupted.reason, /interrupted: the rollout was stopped/);
    const refused = await call({ url: `http://127.0.0.1:${closedPort}/x`, valuePath: 'x' });
    assert.equal(refused.verdict, 'error');
    assert.match(refused.reason, /ECONNREFUSED/);
  });

  test('a template that needs stable on a first deploy is inconclusive; a URL the target cannot tell is an error', async () => {
    const first = await call({ url: `${base}/score?s={{stable}}`, valuePath: 'x' }, { ...ctx, stable: null });
    assert.equal(first.verdict, 'inconclusive');
    assert.match(first.reason, /no stable version/);
    const noEndpoint = await httpGate.evaluate({ name: 'j', kind: 'http', metric: 'http', min: 1, url: '{{candidate_url}}/x', valuePath: 'x' }, ctx, { window: source.window });
    assert.equal(noEndpoint.verdict, 'error');
    assert.match(noEndpoint.reason, /does not tell the candidate url/);
  });
});

describe('gate specs', () => {
  const where = 'modelctl.yaml';
  const parse = (raw: Record<string, unknown>) => toGate(gateSpecSchema.parse(raw), where);

  test('command and http gates parse from YAML with their timeout; the registry validates them', () => {
    const c = parse({ name: 'eval', kind: 'command', command: ['python', 'eval.py'], env: { T: { fromEnv: 'JUDGE_TOKEN' } }, timeout: '2m', min: 0.9 });
    assert.deepEqual(c, { name: 'eval', kind: 'command', metric: 'command', command: ['python', 'eval.py'], env: { T: { fromEnv: 'JUDGE_TOKEN' } }, timeoutMs: 120_000, min: 0.9 });
    const h = parse({ name: 'judge', kind: 'http', url: 'https://j/{{model}}', valuePath: '$.a.b[0]', headers: { A: { fromEnv: 'X' } }, min: 0.9 });
    assert.equal(h.metric, 'http');
    // The union by kind: what parsed as a command or http gate is typed as one.
    assert.ok(c.kind === 'command' && h.kind === 'http');
    const registry = defaultGateRegistry();
    assert.deepEqual(registry.validate(c), []);
    assert.deepEqual(registry.validate(h), []);
    assert.deepEqual(registry.validate(parse({ name: 'exit', kind: 'command', command: ['./check.sh'] })), [], 'a command gate needs no limit: its exit code decides');
    assert.match(registry.validate({ ...h, min: undefined }).join('\n'), /no limit/);
    assert.match(registry.validate({ ...h, url: 'https://j/{{modle}}' }).join('\n'), /unknown placeholder \{\{modle\}\}/);
    assert.match(registry.validate({ ...h, url: 'file:///etc/passwd' }).join('\n'), /url must start with http/);
    assert.match(registry.validate({ ...c, relative: { maxRatio: 1.1 } }).join('\n'), /measures one value/);
    assert.match(registry.validate({ ...c, env: { MODELCTL_MODEL: 'x' } }).join('\n'), /env\.MODELCTL_MODEL is set by modelctl itself/);
  });

  test('mistakes name the file and the gate', () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ name: 'eval', kind: 'command', min: 1 }, /^modelctl\.yaml: gate "eval" is kind command and needs command$/],
      [{ name: 'judge', kind: 'http', url: 'http://x', min: 1 }, /^modelctl\.yaml: gate "judge" is kind http and needs valuePath$/],
      [{ name: 'e', metric: 'error-rate', max: 1, command: ['x'] }, /^modelctl\.yaml: gate "e" has command, which only kind command takes$/],
      [{ name: 'e', kind: 'command', command: ['x'], url: 'http://x' }, /^modelctl\.yaml: gate "e" has url, which only kind http takes$/],
      [{ name: 'e', kind: 'command', command: ['x'], metric: 'error-rate' }, /gate "e" is kind command: its metric would be ignored/],
      [{ name: 'e', metric: 'error-rate', max: 1, timeout: '5s' }, /gate "e" has timeout, which only kind command or http takes/],
      [{ name: 'e', kind: 'command', command: ['x'], timeout: '5' }, /gate e timeout: "5" has no unit/],
    ];
    for (const [raw, re] of bad) assert.throws(() => parse(raw), (err: unknown) => err instanceof UsageError && re.test(err.message), JSON.stringify(raw));
    const schema = (raw: Record<string, unknown>) => gateSpecSchema.safeParse(raw).error?.issues[0];
    assert.match(schema({ name: 'e', kind: 'command', command: 'python eval.py' })!.message, /argv as a list/);
    assert.match(schema({ name: 'e', kind: 'command', command: ['x'], env: { T: { fromEnv: 'not a name' } } })!.message, /environment variable name/);
    assert.match(schema({ name: 'e', kind: 'http', url: 'http://x', valuePath: 'a..b' })!.message, /not a JSON path/);
  });

  test('gates check (Prometheus only) says a command gate is measured during a rollout', async () => {
    const file = path.join(dir, 'gates.yaml');
    await writeFile(file, 'gates:\n  - {name: eval, kind: command, command: [node, eval.mjs]}\n');
    const never = { query: async () => assert.fail('no query is sent for a file that does not validate') };
    await assert.rejects(loadGatesFile(file, new PrometheusGateEvaluator(never)), (e: unknown) => e instanceof UsageError && /gate "eval" has no query: .*kind command checks are measured during a rollout/.test(e.message));
  });

  test('the default registry runs a command gate', async () => {
    const r = await defaultGateRegistry().evaluate({ name: 'exit', kind: 'command', metric: 'command', command: ['node', '-e', 'process.exit(2)'] }, ctx, source);
    assert.equal(r.verdict, 'fail');
  });
});

describe('a command gate in a real rollout (local runtime, the real CLI)', () => {
  let home: string;
  let project: string;
  let cliEnv: NodeJS.ProcessEnv;
  const cli = (args: string[]) => runCli(args, { env: cliEnv, cwd: project, timeoutMs: 180_000 });

  before(async () => {
    home = await fresh('gates-home');
    project = await fresh('gates-project');
    cliEnv = { MODELCTL_HOME: home, MODELCTL_LOCAL_PORT: '0', MODELCTL_STORE: undefined, MODELCTL_PROMETHEUS_URL: undefined } as unknown as NodeJS.ProcessEnv;
    const example = path.join(REPO_ROOT, 'bundles/example');
    for (const version of ['1.0.0', '1.1.0']) {
      const r = await cli(['bundle', 'push', example, '--version', version, '--json']);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(async () => {
    await cli(['local', 'down', '--forget']);
  });

  test('a bad command gate is refused before anything starts, naming the file and the gate', async () => {
    await writeFile(path.join(project, 'modelctl.yaml'), 'rollout:\n  gates:\n    - {name: eval, kind: command, min: 0.9}\n');
    const r = await cli(['deploy', 'sentiment@1.0.0', '--json']);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.json().error.message, /modelctl\.yaml: gate "eval" is kind command and needs command/);
  });

  test('the eval script reaches each version by its own URL, fails the canary, and the rollout rolls back (exit 3)', async () => {
    // It asks both versions through the URLs modelctl gives it, then reports a failing evaluation.
    await writeFile(
      path.join(project, 'eval.mjs'),
      `const e = process.env;
       const ask = async (url) => (await (await fetch(url + '/predict', { method: 'POST', body: '{"text":"a lovely film"}', headers: { 'content-type': 'application/json' } })).json()).version;
       const cand = await ask(e.MODELCTL_CANDIDATE_URL);
       const stab = await ask(e.MODELCTL_STABLE_URL);
       console.error(\`\${e.MODELCTL_MODEL} candidate \${e.MODELCTL_CANDIDATE_VERSION} answered as \${cand}, stable \${e.MODELCTL_STABLE_VERSION} as \${stab}; accuracy 0.42 is below 0.9\`);
       process.exit(1);`,
    );
    await writeFile(
      path.join(project, 'modelctl.yaml'),
      ['rollout:', '  gates:', '    - name: eval', '      kind: command', '      command: [node, eval.mjs]', '      timeout: 20s', '      critical: true', ''].join('\n'),
    );
    const first = await cli(['deploy', 'sentiment@1.0.0', '--json']);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const dry = await cli(['deploy', 'sentiment@1.1.0', '--steps', '50,100', '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stdout + dry.stderr);
    assert.deepEqual(
      dry.json().gates.map((g: { name: string; query: string; limit: string }) => [g.name, g.query, g.limit]),
      [['eval', 'command: node eval.mjs', 'exit code 0']],
    );
    const r = await cli(['deploy', 'sentiment@1.1.0', '--steps', '50,100', '--interval', '10s', '--check-every', '1s', '--json']);
    assert.equal(r.code, 3, r.stdout + r.stderr);
    const result = r.json();
    assert.equal(result.outcome, 'rolled-back');
    assert.equal(result.rolledBackTo, '1.0.0');
    const gate = result.steps[0].gates.find((g: { name: string }) => g.name === 'eval');
    assert.equal(gate.verdict, 'fail');
    assert.match(gate.reason, /exit code 1; stderr: sentiment candidate 1\.1\.0 answered as 1\.1\.0, stable 1\.0\.0 as 1\.0\.0; accuracy 0\.42 is below 0\.9/);
    assert.match(gate.query, /^command: \S+ eval\.mjs \(timeout 20 s\)$/);
    const s = (await cli(['status', 'sentiment', '--json'])).json();
    assert.deepEqual([s.serving, s.traffic], ['1.0.0', { '1.0.0': 100 }]);
  });

  test('Ctrl-C while a slow command gate runs: the gate is stopped at once and the deploy aborts to stable (exit 10), not after the gate timeout', async () => {
    const started = path.join(project, 'eval-started');
    await writeFile(path.join(project, 'slow-eval.mjs'), `import { writeFileSync } from 'node:fs';
writeFileSync(${JSON.stringify(started)}, String(process.pid));
setTimeout(() => {}, 120_000);
`);
    await writeFile(
      path.join(project, 'modelctl.yaml'),
      ['rollout:', '  gates:', '    - name: eval', '      kind: command', '      command: [node, slow-eval.mjs]', '      timeout: 90s', ''].join('\n'),
    );
    const children: import('node:child_process').ChildProcess[] = [];
    const run = background(['deploy', 'sentiment@1.1.0', '--steps', '50,100', '--interval', '10m', '--check-every', '1s', '--json'], cliEnv, children, project);
    try {
      await waitFor('the command gate to start', async () => ((await readFile(started, 'utf8').catch(() => '')) ? true : undefined));
      const gatePid = Number(await readFile(started, 'utf8'));
      const t0 = Date.now();
      run.child.kill('SIGINT');
      const { code, stdout, stderr } = await run.done;
      assert.equal(code, 10, stdout + stderr);
      assert.ok(Date.now() - t0 < 5000, `the deploy ended ${Date.now() - t0} ms after SIGINT, not at the gate's 90 s timeout`);
      assert.equal(JSON.parse(stdout).outcome, 'aborted');
      assert.throws(() => process.kill(gatePid, 0), 'the gate process was killed with the deploy');
      const s = (await cli(['status', 'sentiment', '--json'])).json();
      assert.deepEqual([s.serving, s.traffic, s.lock], ['1.0.0', { '1.0.0': 100 }, null]);
    } finally {
      for (const c of children) c.kill('SIGKILL');
    }
  });
});

describe('shadow agreement on the local router with serve.agreement', () => {
  /** Two real model servers: stable always says "Paris, France."; the candidate says it differently, or wrongly, or not in JSON. */
  async function backends() {
    const serve = (answer: (n: number) => string) =>
      http.createServer((req, res) => {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(answer((JSON.parse(body) as { n: number }).n)));
      });
    const stable = serve(() => JSON.stringify({ answer: 'Paris, France.' }));
    const candidate = serve((n) => (n % 5 === 0 ? 'not json' : JSON.stringify({ answer: n % 2 === 0 ? '  paris   FRANCE' : 'Lyon' })));
    for (const s of [stable, candidate]) await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return { stable, candidate, ports: [stable, candidate].map((s) => (s.address() as AddressInfo).port) as [number, number] };
  }

  async function measure(serveSection: Record<string, unknown>) {
    const { stable, candidate, ports } = await backends();
    const spec = serveSpecSchema.parse({ command: ['node', 'serve.mjs'], ...serveSection });
    const metrics = new RuntimeMetrics(() => []);
    const router = new Router((_m, v) => ({ port: v === '1.0.0' ? ports[0] : ports[1], spec }), metrics, () => {});
    const port = await router.listen(0);
    try {
      router.setTraffic('m', { weights: { '1.0.0': 100 }, mirror: { version: '1.1.0', percent: 100 } });
      const since = Date.now();
      for (let n = 0; n < 20; n++) {
        const res = await fetch(`http://127.0.0.1:${port}/m/ask`, { method: 'POST', body: JSON.stringify({ n }) });
        assert.deepEqual(await res.json(), { answer: 'Paris, France.' }, 'callers get the live answer');
      }
      const deadline = Date.now() + 5000;
      while (metrics.window('m', '1.1.0', since).requests < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return metrics.window('m', '1.1.0', since);
    } finally {
      await router.close(100);
      for (const s of [stable, candidate]) s.close();
    }
  }

  test('text mode counts "  paris   FRANCE" as agreeing with "Paris, France."; unreadable answers are counted apart, never agreeing', async () => {
    const w = await measure({ agreement: { mode: 'text', field: 'answer' } });
    // n = 0..19: every 5th is not JSON (4); of the other 16, the even ones say Paris (8), the odd ones Lyon (8).
    assert.deepEqual([w.requests, w.unreadable, w.shadowCompared, w.shadowAgreed], [20, 4, 16, 8]);
  });

  test('agreementField keeps its old meaning: equality of the field', async () => {
    const w = await measure({ agreementField: 'answer' });
    assert.deepEqual([w.requests, w.unreadable, w.shadowCompared, w.shadowAgreed], [20, 4, 16, 0]);
  });
});
