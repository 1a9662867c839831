import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { resolvePrometheusSettings } from '../../src/config/project.js';
import { ExitCode, UsageError } from '../../src/core/errors.js';
import type { GateContext } from '../../src/gates/contracts.js';
import type { PrometheusGate } from '../../src/core/gates.js';
import { checkExitCode, checkGates, loadGatesFile, overallVerdict, parseVars } from '../../src/gates/prometheus-check.js';
import { PrometheusGateEvaluator } from '../../src/gates/prometheus-evaluator.js';
import { PrometheusError, type PromInstantResult, type PromQuerier } from '../../src/gates/prometheus.js';
import { defaultGateRegistry } from '../../src/gates/registry.js';
import { parseRolloutSection, resolvePlan } from '../../src/rollout/plan.js';
import { describePlan, renderPlan } from '../../src/rollout/describe.js';
import { createContext } from '../../src/services/context.js';
import { gateRegistryFor } from '../../src/services/rollouts.js';
import { useScratch } from '../helpers/fixtures.js';
import { MODEL, plan, ref, World } from '../fakes/world.js';

const T0 = Date.UTC(2025, 0, 1);
const ctx: GateContext = { model: 'sentiment', candidate: '1.2.0', stable: '1.1.0', sinceMs: T0, now: T0 + 30_000, phase: 'canary' };

type Answer = string | string[] | Error | 'scalar-inf';

/** A querier answering by the version="…" label in the query: a raw value, several series, [] (no data) or an error. */
function querier(byVersion: Record<string, Answer>): PromQuerier & { asked: Array<[string, number | undefined]> } {
  const asked: Array<[string, number | undefined]> = [];
  return {
    asked,
    async query(q, time): Promise<PromInstantResult> {
      asked.push([q, time]);
      const v = /version="((?:[^"\\]|\\.)*)"/.exec(q)?.[1] ?? '';
      const a = byVersion[v];
      if (a instanceof Error) throw a;
      if (a === 'scalar-inf') return { resultType: 'scalar', samples: [{ labels: {}, raw: '+Inf', value: Infinity }], warnings: [] };
      const raws = a === undefined ? [] : Array.isArray(a) ? a : [a];
      const num = (r: string) => (r === 'NaN' ? NaN : r === '+Inf' ? Infinity : r === '-Inf' ? -Infinity : Number(r));
      return { resultType: 'vector', samples: raws.map((raw, i) => ({ labels: (raws.length > 1 ? { code: String(200 + i) } : {}) as Record<string, string>, raw, value: num(raw) })), warnings: [] };
    },
  };
}

const ERR_Q = 'sum(rate(http_requests_total{version="{{version}}",code=~"5.."}[{{interval}}])) / sum(rate(http_requests_total{version="{{version}}"}[{{interval}}]))';
const gate = (over: Partial<PrometheusGate> = {}): PrometheusGate => ({ name: 'error-rate', kind: 'prometheus', metric: 'query', query: ERR_Q, max: 0.01, ...over });

describe('PrometheusGateEvaluator', () => {
  test('threshold pass and fail: resolved query, raw value in the reason, queried at ctx.now', async () => {
    const q = querier({ '1.2.0': '0.005' });
    const pass = await new PrometheusGateEvaluator(q).evaluate(gate(), ctx);
    assert.equal(pass.verdict, 'pass');
    assert.equal(pass.value, 0.005);
    assert.equal(pass.raw, '0.005');
    assert.equal(pass.limit, '<= 0.01');
    assert.equal(pass.samples, 1);
    // The window is 30 s; {{interval}} has a 1m floor.
    assert.equal(pass.query, 'sum(rate(http_requests_total{version="1.2.0",code=~"5.."}[1m])) / sum(rate(http_requests_total{version="1.2.0"}[1m]))');
    assert.match(pass.reason, /0\.005 within <= 0\.01 — raw "0\.005"/);
    assert.equal(q.asked[0]![1], (T0 + 30_000) / 1000);

    const fail = await new PrometheusGateEvaluator(querier({ '1.2.0': '0.1' })).evaluate(gate(), ctx);
    assert.deepEqual([fail.verdict, fail.value], ['fail', 0.1]);
    assert.match(fail.reason, /^0\.1 > 0\.01 — raw "0\.1"$/);
  });

  test('{{interval}} is the window, floored at minInterval', async () => {
    const q = querier({ '1.2.0': '0.005' });
    const ev = new PrometheusGateEvaluator(q, { minIntervalMs: 10_000 });
    await ev.evaluate(gate(), { ...ctx, now: T0 + 45_000 });
    assert.match(q.asked[0]![0], /\[45s\]/);
    await ev.evaluate(gate(), { ...ctx, now: T0 + 2_000 });
    assert.match(q.asked[1]![0], /\[10s\]/);
  });

  test('NaN and an empty result are inconclusive, never pass or fail', async () => {
    const nan = await new PrometheusGateEvaluator(querier({ '1.2.0': 'NaN' })).evaluate(gate(), ctx);
    assert.equal(nan.verdict, 'inconclusive');
    assert.equal(nan.value, null);
    assert.equal(nan.raw, 'NaN');
    assert.match(nan.reason, /^NaN \(e\.g\. 0\/0: no requests\)/);
    const empty = await new PrometheusGateEvaluator(querier({})).evaluate(gate({ min: 1, max: undefined }), ctx);
    assert.equal(empty.verdict, 'inconclusive');
    assert.equal(empty.samples, 0);
    assert.match(empty.reason, /no data: the query returned an empty result/);
    assert.match(empty.query, /version="1\.2\.0"/);
  });

  test('±Inf compare as numbers (vector and scalar results)', async () => {
    const ev = (a: Answer) => new PrometheusGateEvaluator(querier({ '1.2.0': a }));
    assert.equal((await ev('+Inf').evaluate(gate(), ctx)).verdict, 'fail');
    assert.equal((await ev('scalar-inf').evaluate(gate(), ctx)).verdict, 'fail');
    assert.equal((await ev('-Inf').evaluate(gate(), ctx)).verdict, 'pass');
    assert.equal((await ev('-Inf').evaluate(gate({ max: undefined, min: 0 }), ctx)).verdict, 'fail');
    const inf = await ev('+Inf').evaluate(gate({ max: undefined, min: 1 }), ctx);
    assert.deepEqual([inf.verdict, inf.value, inf.raw], ['pass', Infinity, '+Inf']);
  });

  test('several series are an error that says how to reduce them', async () => {
    const r = await new PrometheusGateEvaluator(querier({ '1.2.0': ['0.1', '0.2'] })).evaluate(gate(), ctx);
    assert.equal(r.verdict, 'error');
    assert.equal(r.errorCause, 'query');
    assert.match(r.reason, /returned 2 series, a gate needs exactly one number: aggregate it in the query, e\.g\. sum\(…\)/);
    assert.match(r.reason, /\{code="200"\} 0\.1/);
  });

  test('a refused query is an error carrying the resolved query and Prometheus’ message', async () => {
    const q = querier({ '1.2.0': new PrometheusError('query', 'HTTP 400 bad_data: 1:15: parse error: unclosed left parenthesis', 400, 'bad_data') });
    const r = await new PrometheusGateEvaluator(q).evaluate(gate(), ctx);
    assert.equal(r.verdict, 'error');
    assert.equal(r.errorCause, 'query');
    assert.match(r.query, /version="1\.2\.0"/);
    assert.match(r.reason, /Prometheus refused the query: HTTP 400 bad_data: 1:15: parse error/);
    const down = await new PrometheusGateEvaluator(querier({ '1.2.0': new PrometheusError('unavailable', 'cannot reach Prometheus at http://x: ECONNREFUSED (after 4 attempts)') })).evaluate(gate(), ctx);
    assert.deepEqual([down.verdict, down.errorCause], ['error', 'unavailable']);
  });

  test('relative: the same query for stable is the baseline', async () => {
    const rel = gate({ max: undefined, relative: { maxRatio: 1.5, maxDelta: 0.001 } });
    const q = querier({ '1.2.0': '0.012', '1.1.0': '0.01' });
    const pass = await new PrometheusGateEvaluator(q).evaluate(rel, ctx);
    assert.equal(pass.verdict, 'pass');
    assert.equal(pass.limit, '<= stable (0.01) × 1.5 + 0.001 = 0.016');
    assert.match(pass.reason, /raw "0\.012", stable 1\.1\.0 raw "0\.01"/);
    assert.deepEqual(pass.baseline, { query: ERR_Q.replaceAll('{{version}}', '1.1.0').replaceAll('{{interval}}', '1m'), value: 0.01, raw: '0.01' });
    assert.equal(q.asked[0]![1], q.asked[1]![1], 'both at the same instant');
    const fail = await new PrometheusGateEvaluator(querier({ '1.2.0': '0.02', '1.1.0': '0.01' })).evaluate(rel, ctx);
    assert.equal(fail.verdict, 'fail');
    assert.match(fail.reason, /0\.02 > 0\.016 \(stable 0\.01\)/);
  });

  test('relative: a missing or NaN baseline, or no stable version, is inconclusive', async () => {
    const rel = gate({ max: undefined, relative: { maxRatio: 1.5 } });
    const missing = await new PrometheusGateEvaluator(querier({ '1.2.0': '0.01' })).evaluate(rel, ctx);
    assert.equal(missing.verdict, 'inconclusive');
    assert.match(missing.reason, /no stable data: the query for stable 1\.1\.0 returned an empty result/);
    assert.match(missing.baseline!.query, /version="1\.1\.0"/);
    const nan = await new PrometheusGateEvaluator(querier({ '1.2.0': '0.01', '1.1.0': 'NaN' })).evaluate(rel, ctx);
    assert.match(nan.reason, /stable 1\.1\.0 is NaN \(e\.g\. 0\/0: no requests\)/);
    const none = await new PrometheusGateEvaluator(querier({ '1.2.0': '0.01' })).evaluate(rel, { ...ctx, stable: null });
    assert.deepEqual([none.verdict, none.reason], ['inconclusive', 'no stable version to compare with']);
  });

  test('validate: a query, known placeholders, {{version}} for relative bounds, no minSamples', () => {
    const ev = new PrometheusGateEvaluator(querier({}), { vars: { cluster: 'eu' } });
    assert.deepEqual(ev.validate(gate()), []);
    assert.deepEqual(ev.validate(gate({ query: 'x{c="{{cluster}}",v="{{version}}"}' })), []);
    assert.match(ev.validate(gate({ query: 'x{c="{{region}}"}' })).join(), /unknown placeholder \{\{region\}\}/);
    assert.match(ev.validate(gate({ query: 'sum(x)', max: undefined, relative: { maxRatio: 2 } })).join(), /must use \{\{version\}\}/);
    assert.deepEqual(ev.problems(gate({ minSamples: 5 })).map((p) => p.field), ['minSamples']);
    assert.match(ev.validate(gate({ max: undefined })).join(), /no limit/);
    assert.match(ev.validate(gate({ query: undefined })).join(), /needs a query/);
  });
});

describe('registry, plan and config', () => {
  test('a gate with a query is kind prometheus; without Prometheus configured it is refused clearly', () => {
    const reg = defaultGateRegistry();
    assert.equal(reg.kindOf(gate({ kind: undefined })), 'prometheus');
    assert.equal(reg.kindOf({ name: 'e', metric: 'error-rate', max: 1 }), 'local');
    assert.match(reg.validate(gate({ kind: undefined })).join(), /query gates need a Prometheus URL: set MODELCTL_PROMETHEUS_URL/);
    reg.register('prometheus', new PrometheusGateEvaluator(querier({})));
    assert.deepEqual(reg.validate(gate({ kind: undefined })), []);
  });

  test('resolvePlan accepts the issue’s gates when Prometheus is configured, refuses them otherwise', () => {
    const section = parseRolloutSection(
      {
        gates: [
          { name: 'error-rate', query: ERR_Q, max: 0.01 },
          { name: 'throughput', query: 'sum(rate(http_requests_total{version="{{version}}"}[1m]))', min: 1 },
        ],
      },
      'modelctl.yaml',
    );
    const p = resolvePlan({ project: section, bundle: {}, flags: {}, defaultGates: [], queryGates: true });
    assert.deepEqual(p.gates[0], { name: 'error-rate', kind: 'prometheus', metric: 'query', query: ERR_Q, max: 0.01 });
    assert.throws(() => resolvePlan({ project: section, bundle: {}, flags: {}, defaultGates: [] }), (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, /modelctl\.yaml: gate "error-rate" has a query: query gates need a Prometheus URL/);
      assert.match(e.hint!, /MODELCTL_PROMETHEUS_URL or prometheus\.url in modelctl\.yaml/);
      return true;
    });
    const both = parseRolloutSection({ gates: [{ name: 'x', query: 'up', metric: 'error-rate', max: 1 }] }, 'modelctl.yaml');
    assert.throws(() => resolvePlan({ project: both, bundle: {}, flags: {}, defaultGates: [], queryGates: true }), /both a metric and a query/);
  });

  test('dry-run plan shows the query template', () => {
    const d = describePlan({ model: 'm', version: '1.2.0', digest: 'sha256:' + '0'.repeat(64), target: 'local', stable: '1.1.0', plan: plan({ gates: [gate()] }) });
    assert.match(renderPlan(d), /error-rate: query <= 0\.01\n {4}prometheus: sum\(rate\(http_requests_total\{version="\{\{version\}\}"/);
  });

  test('prometheus settings: precedence, headers, credentials from env var names only', () => {
    const project = {
      file: '/p/modelctl.yaml',
      config: { prometheus: { url: 'http://yaml:9090/', headers: { 'X-Scope-OrgID': 'yaml' }, bearerTokenEnv: 'PROM_TOKEN', timeout: '5s', vars: { namespace: 'prod' } } },
    };
    const env = { PROM_TOKEN: 's3cret' };
    const s = resolvePrometheusSettings({}, project, env)!;
    assert.deepEqual(
      { url: s.url, headers: s.headers, auth: s.auth, timeoutMs: s.timeoutMs, vars: s.vars },
      { url: 'http://yaml:9090', headers: { 'X-Scope-OrgID': 'yaml' }, auth: { kind: 'bearer', header: 'Bearer s3cret' }, timeoutMs: 5000, vars: { namespace: 'prod' } },
    );
    assert.equal(resolvePrometheusSettings({}, project, { ...env, MODELCTL_PROMETHEUS_URL: 'http://env:9090' })!.url, 'http://env:9090');
    const f = resolvePrometheusSettings({ url: 'https://flag/prom', headers: ['x-scope-orgid: flag'], timeout: '20s', vars: { namespace: 'dev' } }, project, env)!;
    assert.deepEqual([f.url, f.headers, f.timeoutMs, f.vars.namespace], ['https://flag/prom', { 'x-scope-orgid': 'flag' }, 20_000, 'dev']);
    assert.equal(resolvePrometheusSettings({}, { config: {} }, {}), undefined);
    assert.deepEqual(resolvePrometheusSettings({ url: 'http://p' }, { config: {} }, { MODELCTL_PROMETHEUS_TOKEN: 't' })!.auth, { kind: 'bearer', header: 'Bearer t' });
    const basic = resolvePrometheusSettings({}, { config: { prometheus: { url: 'http://p', basicAuth: { usernameEnv: 'U', passwordEnv: 'P' } } } }, { U: 'alice', P: 'pw' })!;
    assert.equal(basic.auth!.header, `Basic ${Buffer.from('alice:pw').toString('base64')}`);

    const problem = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        assert.ok(e instanceof UsageError);
        return e.message + (e.hint ?? '');
      }
      return 'no error';
    };
    const missing = problem(() => resolvePrometheusSettings({}, project, {}));
    assert.match(missing, /prometheus\.bearerTokenEnv names PROM_TOKEN, which is not set/);
    const inUrl = problem(() => resolvePrometheusSettings({ url: 'http://alice:hunter2@p:9090' }, { config: {} }, {}));
    assert.match(inUrl, /holds credentials/);
    assert.doesNotMatch(inUrl, /hunter2/);
    assert.match(problem(() => resolvePrometheusSettings({ url: 'http://p', headers: ['Authorization: Bearer x'] }, { config: {} }, {})), /header Authorization cannot be set here/);
    assert.match(problem(() => resolvePrometheusSettings({ url: 'ftp://p' }, { config: {} }, {})), /http:\/\/ or https:\/\//);
    assert.match(problem(() => resolvePrometheusSettings({ url: 'http://p', headers: ['novalue'] }, { config: {} }, {})), /expected "Name: value"/);
  });
});

describe('gates check', () => {
  const scratch = useScratch();
  after(scratch.cleanup);

  test('rollouts register the Prometheus evaluator from modelctl.yaml; a misconfiguration only blocks query gates', async () => {
    const dir = await scratch.fresh('registry');
    await writeFile(path.join(dir, 'modelctl.yaml'), 'prometheus:\n  url: http://127.0.0.1:1\n  bearerTokenEnv: MODELCTL_TEST_UNSET_TOKEN\n');
    const cwd = process.cwd();
    const saved = process.env.MODELCTL_PROMETHEUS_URL;
    delete process.env.MODELCTL_PROMETHEUS_URL;
    try {
      process.chdir(dir);
      const reg = await gateRegistryFor(createContext());
      assert.deepEqual(reg.validate({ name: 'e', metric: 'error-rate', max: 0.1 }), []);
      assert.deepEqual(reg.validate(gate({ kind: undefined })), ['gate "error-rate": Prometheus is misconfigured: ' + path.join(dir, 'modelctl.yaml') + ': prometheus.bearerTokenEnv names MODELCTL_TEST_UNSET_TOKEN, which is not set (or empty)']);
      process.env.MODELCTL_TEST_UNSET_TOKEN = 't';
      assert.deepEqual((await gateRegistryFor(createContext())).validate(gate({ kind: undefined })), []);
    } finally {
      process.chdir(cwd);
      delete process.env.MODELCTL_TEST_UNSET_TOKEN;
      if (saved !== undefined) process.env.MODELCTL_PROMETHEUS_URL = saved;
    }
  });

  test('the issue’s gates file loads as written', async () => {
    const dir = await scratch.fresh('gates');
    const file = path.join(dir, 'gates.yaml');
    await writeFile(
      file,
      `gates:
  - name: error-rate
    query: sum(rate(http_requests_total{version="{{version}}",code=~"5.."}[1m])) / sum(rate(http_requests_total{version="{{version}}"}[1m]))
    max: 0.01
  - name: throughput
    query: sum(rate(http_requests_total{version="{{version}}"}[1m]))
    min: 1
`,
    );
    const gates = await loadGatesFile(file, new PrometheusGateEvaluator(querier({})));
    assert.deepEqual(
      gates.map((g) => [g.name, g.kind, g.max ?? g.min]),
      [
        ['error-rate', 'prometheus', 0.01],
        ['throughput', 'prometheus', 1],
      ],
    );
  });

  test('gates file problems name file, line and field', async () => {
    const dir = await scratch.fresh('gates');
    const file = path.join(dir, 'gates.yaml');
    await writeFile(
      file,
      `gates:
  - name: a
    query: x{v="{{versoin}}"}
    max: 1
  - name: b
    query: up
  - name: c
    metric: error-rate
    max: 1
  - name: d
    query: up
    max: "high"
`,
    );
    const ev = new PrometheusGateEvaluator(querier({}));
    await assert.rejects(loadGatesFile(file, ev), (e: unknown) => {
      assert.ok(e instanceof UsageError);
      // Schema errors first (d), all at once.
      assert.match(e.message, new RegExp(`${file.replaceAll('.', '\\.')}:12: gates\\[3\\]\\.max: `));
      return true;
    });
    await writeFile(file, (await import('node:fs')).readFileSync(file, 'utf8').replace('max: "high"', 'max: 2'));
    await assert.rejects(loadGatesFile(file, ev), (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, /gates\.yaml:3: gates\[0\]\.query: gate "a": unknown placeholder \{\{versoin\}\}/);
      assert.match(e.message, /gates\.yaml:5: gates\[1\]: gate "b": no limit/);
      assert.match(e.message, /gates\.yaml:7: gates\[2\]: gate "c" has no query: gates check judges gates Prometheus measures — query, or errorsQuery\/totalQuery/);
      return true;
    });
  });

  test('verdicts and exit codes: fail > error > inconclusive > pass; errors: 9 if the source failed, 2 if the query did', async () => {
    assert.equal(overallVerdict([{ verdict: 'pass' }, { verdict: 'inconclusive' }, { verdict: 'error' }, { verdict: 'fail' }]), 'fail');
    assert.equal(overallVerdict([{ verdict: 'pass' }, { verdict: 'inconclusive' }, { verdict: 'error' }]), 'error');
    assert.equal(overallVerdict([{ verdict: 'pass' }, { verdict: 'inconclusive' }]), 'inconclusive');
    assert.equal(overallVerdict([{ verdict: 'pass' }]), 'pass');
    const g = (verdict: 'error' | 'pass', error?: 'query' | 'unavailable') => ({ verdict, ...(error ? { error } : {}) }) as never;
    assert.equal(checkExitCode({ verdict: 'error', gates: [g('error', 'query'), g('pass')] }), ExitCode.usage);
    assert.equal(checkExitCode({ verdict: 'error', gates: [g('error', 'query'), g('error', 'unavailable')] }), ExitCode.unavailable);
    assert.equal(checkExitCode({ verdict: 'fail', gates: [] }), ExitCode.rolledBack);
    assert.equal(checkExitCode({ verdict: 'inconclusive', gates: [] }), ExitCode.held);
  });

  test('missing template values are usage errors before any query; --var parsing', async () => {
    const q = querier({ '1.2.0': '0' });
    await assert.rejects(
      checkGates({ gates: [gate({ max: undefined, relative: { maxRatio: 1 } })], client: q, prometheus: 'http://p', vars: {}, windowMs: 60_000, minIntervalMs: 60_000 }),
      /gate "error-rate" uses \{\{version\}\}: give --var version=…\n {2}gate "error-rate" is compared with stable: give --var stable=…/,
    );
    assert.equal(q.asked.length, 0);
    assert.deepEqual(parseVars(['version=1.2.0', 'x=a=b', 'e=']), { version: '1.2.0', x: 'a=b', e: '' });
    assert.throws(() => parseVars(['1x=2']), /expected name=value/);
    assert.throws(() => parseVars(['interval=5m']), /--window/);
    const r = await checkGates({ gates: [gate()], client: q, prometheus: 'http://p', vars: { version: '1.2.0' }, windowMs: 60_000, minIntervalMs: 60_000, now: T0 });
    assert.deepEqual([r.verdict, r.at, r.interval, r.gates[0]!.value, r.gates[0]!.raw], ['pass', new Date(T0).toISOString(), '1m', 0, '0']);
  });
});

describe('the engine with query gates', () => {
  test('a failing Prometheus gate rolls the canary back; the ledger keeps the resolved query’s reason', async () => {
    const reg = defaultGateRegistry().register('prometheus', new PrometheusGateEvaluator(querier({ '1.0.0': '0.001', '1.1.0': '0.2' })));
    const w = new World({ evaluator: reg });
    await w.seed('1.0.0');
    const r = await w.engine().deploy(ref('1.1.0'), plan({ gates: [gate({ max: 0.05, relative: { maxRatio: 2 } })] }));
    assert.equal(r.outcome, 'rolled-back');
    assert.equal(r.rolledBackTo, '1.0.0');
    assert.match(r.reason, /gate error-rate .*0\.2 > 0\.05 — raw "0\.2", stable 1\.0\.0 raw "0\.001"/);
    assert.deepEqual(w.ledger(MODEL).stableSet, ['1.0.0']);
    assert.deepEqual(w.violations, []);
  });

  test('passing Prometheus gates promote; NaN holds the rollout for a human', async () => {
    const good = new World({ evaluator: defaultGateRegistry().register('prometheus', new PrometheusGateEvaluator(querier({ '1.1.0': '0.001' }))) });
    await good.seed('1.0.0');
    assert.equal((await good.engine().deploy(ref('1.1.0'), plan({ gates: [gate()] }))).outcome, 'promoted');
    const idle = new World({ evaluator: defaultGateRegistry().register('prometheus', new PrometheusGateEvaluator(querier({ '1.1.0': 'NaN' }))) });
    await idle.seed('1.0.0');
    const held = await idle.engine().deploy(ref('1.1.0'), plan({ gates: [gate()] }));
    assert.equal(held.outcome, 'held');
    assert.match(held.reason, /NaN \(e\.g\. 0\/0: no requests\)/);
  });

  test('without a Prometheus evaluator the engine refuses a plan with query gates before starting', async () => {
    const w = new World();
    await w.seed('1.0.0');
    await assert.rejects(w.engine().deploy(ref('1.1.0'), plan({ gates: [gate({ kind: undefined })] })), /query gates need a Prometheus URL/);
  });
});
