import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort, startExporter, startPrometheus, type ExporterHandle, type PrometheusHandle } from '../infra/prometheus.js';
import { faultyExample, REPO_ROOT, runCli, steadyLoad, useScratch, type CliResult } from '../helpers/fixtures.js';

/**
 * `modelctl gates check` against a real Prometheus 2.42 (Debian) scraping, every second, an
 * exporter this test controls. Versions of the exporter:
 *
 *   1.1.0  stable   100 req/s, 1% 5xx
 *   1.2.0  good     100 req/s, 0.5% 5xx
 *   1.3.0  bad      100 req/s, 10% 5xx
 *   0.9.0  idle     counters at 0: the error ratio is 0/0 = NaN
 *   1.4.0  missing  no series at all
 *
 * plus a gauge with NaN, +Inf and -Inf. One Prometheus for the file (~6 s to first data: its
 * service discovery hands targets over after 5 s) also scrapes the local runtime's admin /metrics,
 * so a real `deploy` is judged by a query gate at the end. Every check runs the real CLI.
 */

const ISSUE_GATES = `gates:
  - name: error-rate
    query: sum(rate(http_requests_total{version="{{version}}",code=~"5.."}[1m])) / sum(rate(http_requests_total{version="{{version}}"}[1m]))
    max: 0.01
  - name: throughput
    query: sum(rate(http_requests_total{version="{{version}}"}[1m]))
    min: 1
`;

const RELATIVE_GATES = `gates:
  - name: error-rate-vs-stable
    query: sum(rate(http_requests_total{version="{{version}}",code=~"5.."}[{{interval}}])) / sum(rate(http_requests_total{version="{{version}}"}[{{interval}}]))
    relative: { maxRatio: 1.5 }
`;

const SPECIAL_GATES = `gates:
  - name: nan
    query: modelctl_test_value{case="nan"}
    max: 1
  - name: plus-inf
    query: modelctl_test_value{case="inf"}
    max: 1
  - name: minus-inf
    query: modelctl_test_value{case="neginf"}
    min: 0
  - name: minus-inf-under-max
    query: scalar(modelctl_test_value{case="neginf"})
    max: 0
`;

const BAD_QUERIES = `gates:
  - name: syntax
    query: sum(rate(http_requests_total{version="{{version}}"}[1m])
    max: 1
  - name: many-to-many
    query: http_requests_total{version="{{version}}"} + on(version) http_requests_total
    max: 1
  - name: several-series
    query: rate(http_requests_total{version="{{version}}"}[1m])
    max: 1
`;

const REGEX_GATES = `gates:
  - name: throughput
    query: sum(rate(http_requests_total{version=~"{{version}}"}[1m]))
    min: 1
`;

const RATES: Record<string, { ok: number; err: number }> = {
  '1.1.0': { ok: 99, err: 1 },
  '1.2.0': { ok: 99.5, err: 0.5 },
  '1.3.0': { ok: 90, err: 10 },
  '0.9.0': { ok: 0, err: 0 },
};

function exposition(t0: number): string {
  const t = (Date.now() - t0) / 1000;
  const lines = ['# TYPE http_requests_total counter'];
  for (const [v, r] of Object.entries(RATES)) {
    lines.push(`http_requests_total{version="${v}",code="200"} ${r.ok * t}`, `http_requests_total{version="${v}",code="500"} ${r.err * t}`);
  }
  lines.push('# TYPE modelctl_test_value gauge', 'modelctl_test_value{case="nan"} NaN', 'modelctl_test_value{case="inf"} +Inf', 'modelctl_test_value{case="neginf"} -Inf');
  return `${lines.join('\n')}\n`;
}

/** A loopback reverse proxy that demands a bearer token (or basic auth) and a tenant header, like a hosted Prometheus. */
async function authProxy(upstream: string, accept: { authorization: string[]; tenant: string }): Promise<{ url: string; seen: IncomingHttpHeaders[]; server: Server }> {
  const seen: IncomingHttpHeaders[] = [];
  const up = new URL(upstream);
  const server = createServer((req, res) => {
    seen.push(req.headers);
    if (!accept.authorization.includes(req.headers.authorization ?? '') || req.headers['x-scope-orgid'] !== accept.tenant) {
      res.writeHead(401, { 'content-type': 'text/plain' }).end('no valid credentials or tenant');
      return;
    }
    const fwd = httpRequest({ host: up.hostname, port: up.port, path: req.url, method: req.method, headers: { accept: 'application/json' } }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    fwd.on('error', () => res.writeHead(502).end());
    req.pipe(fwd);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

/** The local router's live error rate of the candidate, as a Prometheus query gate sees it. */
const LIVE_ERROR_RATE =
  'sum(rate(modelctl_local_requests_total{model="{{model}}",version="{{version}}",role="live",status_class="5xx"}[{{interval}}]))' +
  ' / sum(rate(modelctl_local_requests_total{model="{{model}}",version="{{version}}",role="live"}[{{interval}}]))';

describe('gates check against a real Prometheus', { timeout: 90_000 }, () => {
  const scratch = useScratch();
  let exporter: ExporterHandle;
  let prom: PrometheusHandle;
  let dir: string;
  const file = (name: string) => path.join(dir, name);
  const servers: Server[] = [];
  let home: string | undefined;
  let routerUrl: string;
  const localEnv = () => ({ MODELCTL_HOME: home, MODELCTL_LOCAL_PORT: '0', MODELCTL_STORE: undefined, MODELCTL_PROMETHEUS_URL: '' }) as unknown as NodeJS.ProcessEnv;
  const local = (args: string[], cwd?: string) => runCli(args, { env: localEnv(), timeoutMs: 120_000, ...(cwd ? { cwd } : {}) });

  before(async () => {
    // The local runtime first (a first deploy starts it), so Prometheus can scrape its admin port too.
    home = await scratch.fresh('prom-home');
    const bad = await faultyExample(await scratch.fresh('prom-bad'), 0.5);
    for (const [src, version] of [[path.join(REPO_ROOT, 'bundles/example'), '1.0.0'], [bad, '1.1.0']] as const) {
      const r = await local(['bundle', 'push', src, '--version', version, '--json']);
      assert.equal(r.code, 0, r.stderr);
    }
    const first = await local(['deploy', 'sentiment@1.0.0', '--json']);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const runtime = JSON.parse(await readFile(path.join(home, 'local', 'runtime.json'), 'utf8')) as { port: number; adminPort: number };
    routerUrl = `http://127.0.0.1:${runtime.port}`;

    const t0 = Date.now();
    exporter = await startExporter(() => exposition(t0));
    prom = await startPrometheus({ targets: [exporter.target, `127.0.0.1:${runtime.adminPort}`] });
    // Two scrapes at least, so rate() has something to say for every version.
    await prom.waitFor('count(rate(http_requests_total[1m]) > 0)', (r) => r.length === 1 && Number(r[0]!.value[1]) === 6);
    dir = await scratch.fresh('prom');
    await writeFile(file('gates.yaml'), ISSUE_GATES);
    await writeFile(file('relative.yaml'), RELATIVE_GATES);
    await writeFile(file('special.yaml'), SPECIAL_GATES);
    await writeFile(file('bad.yaml'), BAD_QUERIES);
    await writeFile(file('regex.yaml'), REGEX_GATES);
  });

  after(async () => {
    if (home) await local(['local', 'down', '--forget']);
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
    await prom?.stop();
    await exporter?.stop();
    await scratch.cleanup();
  });

  const check = (gatesFile: string, vars: string[], extra: string[] = [], opts: { env?: NodeJS.ProcessEnv; cwd?: string; url?: string | null } = {}): Promise<CliResult> =>
    runCli(
      [
        'gates',
        'check',
        '--file',
        file(gatesFile),
        ...vars.flatMap((v) => ['--var', v]),
        ...(opts.url === null ? [] : ['--prometheus-url', opts.url ?? prom.url]),
        '--json',
        ...extra,
      ],
      { env: { MODELCTL_PROMETHEUS_URL: '', MODELCTL_PROMETHEUS_TOKEN: '', ...opts.env }, ...(opts.cwd ? { cwd: opts.cwd } : {}), timeoutMs: 30_000 },
    );
  const byName = (r: CliResult) => Object.fromEntries((r.json().gates as Array<{ name: string }>).map((g) => [g.name, g])) as Record<string, any>;

  test('the issue’s gates file: pass for a good version (exit 0)', async () => {
    const r = await check('gates.yaml', ['version=1.2.0']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const out = r.json();
    assert.equal(out.verdict, 'pass');
    const g = byName(r);
    assert.equal(g['error-rate'].verdict, 'pass');
    assert.ok(Math.abs(g['error-rate'].value - 0.005) < 1e-9, String(g['error-rate'].value));
    assert.equal(g['error-rate'].samples, 1);
    assert.equal(g['error-rate'].query, 'sum(rate(http_requests_total{version="1.2.0",code=~"5.."}[1m])) / sum(rate(http_requests_total{version="1.2.0"}[1m]))');
    // rate() divides by the whole [1m] range: a series a few seconds old reports a fraction of its
    // 100 req/s. Still well above min: 1.
    assert.ok(g.throughput.value > 1 && g.throughput.value <= 110, String(g.throughput.value));
    assert.deepEqual(Object.keys(g.throughput).slice(0, 8), ['name', 'query', 'value', 'raw', 'limit', 'verdict', 'samples', 'reason']);
  });

  test('a bad version fails (exit 3) with the resolved query and the raw value; human output too', async () => {
    const r = await check('gates.yaml', ['version=1.3.0']);
    assert.equal(r.code, 3, r.stdout + r.stderr);
    const g = byName(r)['error-rate'];
    assert.equal(g.verdict, 'fail');
    assert.ok(Math.abs(g.value - 0.1) < 1e-9);
    assert.match(g.raw, /^0\.(1|0999)\d*$/, 'as Prometheus sent it, float noise included');
    assert.match(g.reason, /^0\.1 > 0\.01 — raw "0\.(1|0999)\d*"$/);
    assert.match(g.query, /version="1\.3\.0"/);

    const human = await runCli(['gates', 'check', '-f', file('gates.yaml'), '--var', 'version=1.3.0', '--prometheus-url', prom.url], { env: { MODELCTL_PROMETHEUS_URL: '' } });
    assert.equal(human.code, 3);
    assert.match(human.stdout, /^FAIL {9}error-rate: value 0\.1 \(limit <= 0\.01\)$/m);
    assert.match(human.stdout, /query: sum\(rate\(http_requests_total\{version="1\.3\.0",code=~"5\.\."\}\[1m\]\)\)/);
    assert.match(human.stdout, /^Verdict: FAIL \(1 pass, 1 fail\)/m);
  });

  test('no traffic: 0/0 is NaN → inconclusive, while the throughput gate catches it (exit 3)', async () => {
    const r = await check('gates.yaml', ['version=0.9.0']);
    assert.equal(r.code, 3);
    const g = byName(r);
    assert.equal(g['error-rate'].verdict, 'inconclusive');
    assert.equal(g['error-rate'].raw, 'NaN');
    assert.equal(g['error-rate'].value, null);
    assert.match(g['error-rate'].reason, /^NaN \(e\.g\. 0\/0: no requests\)/);
    assert.equal(g.throughput.verdict, 'fail');
    assert.equal(g.throughput.value, 0);
  });

  test('a version with no series at all: empty results → inconclusive (exit 4)', async () => {
    const r = await check('gates.yaml', ['version=1.4.0']);
    assert.equal(r.code, 4, r.stdout + r.stderr);
    assert.equal(r.json().verdict, 'inconclusive');
    for (const g of Object.values(byName(r))) {
      assert.equal(g.verdict, 'inconclusive');
      assert.equal(g.samples, 0);
      assert.equal(g.raw, null);
      assert.match(g.reason, /no data: the query returned an empty result/);
    }
  });

  test('relative to stable: the same query for stable is the baseline; a missing stable series is inconclusive', async () => {
    const good = await check('relative.yaml', ['version=1.2.0', 'stable=1.1.0']);
    assert.equal(good.code, 0, good.stdout);
    const g = byName(good)['error-rate-vs-stable'];
    assert.equal(g.limit, '<= stable (0.01) × 1.5 = 0.015', 'fmt rounds to 4 significant digits');
    assert.match(g.baseline.raw, /^0\.0(1|0999)\d*$/);
    assert.match(g.baseline.query, /version="1\.1\.0".*\[1m\]/);

    const bad = await check('relative.yaml', ['version=1.3.0', 'stable=1.1.0']);
    assert.equal(bad.code, 3);
    assert.match(byName(bad)['error-rate-vs-stable'].reason, /0\.1 > 0\.015 \(stable 0\.01\) — raw "0\.(1|0999)\d*", stable 1\.1\.0 raw "0\.0(1|0999)\d*"/);

    const noStable = await check('relative.yaml', ['version=1.2.0', 'stable=1.4.0']);
    assert.equal(noStable.code, 4);
    assert.match(byName(noStable)['error-rate-vs-stable'].reason, /no stable data: the query for stable 1\.4\.0 returned an empty result/);

    const forgot = await check('relative.yaml', ['version=1.2.0']);
    assert.equal(forgot.code, 2);
    assert.match(forgot.json().error.message, /compared with stable: give --var stable=/);
  });

  test('NaN, +Inf and -Inf from the wire: NaN inconclusive, ±Inf compared as numbers', async () => {
    const r = await check('special.yaml', []);
    assert.equal(r.code, 3);
    const g = byName(r);
    assert.deepEqual([g.nan.verdict, g.nan.raw], ['inconclusive', 'NaN']);
    assert.deepEqual([g['plus-inf'].verdict, g['plus-inf'].raw, g['plus-inf'].value], ['fail', '+Inf', null]);
    assert.match(g['plus-inf'].reason, /Infinity > 1 — raw "\+Inf"/);
    assert.deepEqual([g['minus-inf'].verdict, g['minus-inf'].raw], ['fail', '-Inf']);
    assert.deepEqual([g['minus-inf-under-max'].verdict, g['minus-inf-under-max'].raw], ['pass', '-Inf']);
  });

  test('queries Prometheus rejects (400, 422) or that return several series: errors with the resolved query (exit 2)', async () => {
    const r = await check('bad.yaml', ['version=1.2.0']);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.equal(r.json().verdict, 'error');
    const g = byName(r);
    assert.equal(g.syntax.error, 'query');
    assert.equal(g.syntax.query, 'sum(rate(http_requests_total{version="1.2.0"}[1m])');
    assert.match(g.syntax.reason, /Prometheus refused the query: HTTP 400 bad_data: .*parse error/);
    assert.match(g['many-to-many'].reason, /HTTP 422 execution: found duplicate series/);
    assert.match(g['many-to-many'].query, /http_requests_total\{version="1\.2\.0"\} \+ on\(version\)/);
    assert.match(g['several-series'].reason, /returned 2 series, a gate needs exactly one number: aggregate it in the query, e\.g\. sum\(…\)/);
  });

  test('template escaping: a version holding " or } cannot change the query', async () => {
    // Unescaped, this would make the throughput query `… or vector(1)`: a pass out of nothing.
    const evil = await check('gates.yaml', ['version=1.2.0"} or vector(1) #']);
    assert.equal(evil.code, 4, evil.stdout + evil.stderr);
    const g = byName(evil).throughput;
    assert.equal(g.query, 'sum(rate(http_requests_total{version="1.2.0\\"} or vector(1) #"}[1m]))');
    assert.equal(g.verdict, 'inconclusive');
    const brace = await check('gates.yaml', ['version=1.2.0}']);
    assert.equal(brace.code, 4);
    // After =~ the value is a literal: "1.2.0|1.3.0" matches no version; "1.2.0" matches itself.
    assert.equal((await check('regex.yaml', ['version=1.2.0|1.3.0'])).code, 4);
    const lit = await check('regex.yaml', ['version=1.2.0']);
    assert.equal(lit.code, 0);
    assert.equal(byName(lit).throughput.query, 'sum(rate(http_requests_total{version=~"1\\\\.2\\\\.0"}[1m]))');
  });

  test('Prometheus down: every gate errors after retries → exit 9 (unavailable)', async () => {
    const port = await freePort();
    const t0 = Date.now();
    const r = await check('gates.yaml', ['version=1.2.0'], [], { url: `http://127.0.0.1:${port}` });
    assert.equal(r.code, 9, r.stdout + r.stderr);
    assert.equal(r.json().verdict, 'error');
    for (const g of Object.values(byName(r))) {
      assert.equal(g.error, 'unavailable');
      assert.match(g.reason, new RegExp(`cannot reach Prometheus at http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED.*\\(after 4 attempts\\)`));
      assert.match(g.query, /version="1\.2\.0"/);
    }
    assert.ok(Date.now() - t0 < 15_000);
  });

  test('bearer token and tenant header are sent (and never printed); basic auth from modelctl.yaml env names', async () => {
    const basic = `Basic ${Buffer.from('alice:pw-secret').toString('base64')}`;
    const proxy = await authProxy(prom.url, { authorization: ['Bearer tok-secret', basic], tenant: 'team-ml' });
    servers.push(proxy.server);
    const ok = await check('gates.yaml', ['version=1.2.0'], ['--prometheus-header', 'X-Scope-OrgID: team-ml'], { url: proxy.url, env: { MODELCTL_PROMETHEUS_TOKEN: 'tok-secret' } });
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.ok(proxy.seen.length >= 2);
    assert.equal(proxy.seen[0]!.authorization, 'Bearer tok-secret');
    assert.equal(proxy.seen[0]!['x-scope-orgid'], 'team-ml');

    const wrong = await check('gates.yaml', ['version=1.2.0'], ['--prometheus-header', 'X-Scope-OrgID: team-ml'], { url: proxy.url, env: { MODELCTL_PROMETHEUS_TOKEN: 'wrong-secret' } });
    assert.equal(wrong.code, 9);
    assert.match(byName(wrong)['error-rate'].reason, /refused access: HTTP 401/);
    assert.doesNotMatch(wrong.stdout + wrong.stderr, /wrong-secret/);

    // The project file names the variables; the secrets stay in the environment.
    const project = await scratch.fresh('prom-project');
    await writeFile(
      path.join(project, 'modelctl.yaml'),
      `prometheus:\n  url: ${proxy.url}\n  headers: { X-Scope-OrgID: team-ml }\n  basicAuth: { usernameEnv: PROM_USER, passwordEnv: PROM_PASSWORD }\n  timeout: 5s\n`,
    );
    const fromYaml = await check('gates.yaml', ['version=1.3.0'], [], { url: null, cwd: project, env: { PROM_USER: 'alice', PROM_PASSWORD: 'pw-secret' } });
    assert.equal(fromYaml.code, 3, fromYaml.stdout + fromYaml.stderr);
    assert.equal(proxy.seen.at(-1)!.authorization, basic);
    assert.doesNotMatch(fromYaml.stdout, /pw-secret|alice/);
    const unset = await check('gates.yaml', ['version=1.2.0'], [], { url: null, cwd: project });
    assert.equal(unset.code, 2);
    assert.match(unset.json().error.message, /prometheus\.basicAuth\.usernameEnv names PROM_USER, which is not set/);
  });

  test('no Prometheus URL anywhere: a usage error saying where to put one', async () => {
    const r = await check('gates.yaml', ['version=1.2.0'], [], { url: null, cwd: dir });
    assert.equal(r.code, 2);
    assert.match(r.json().error.message, /query gates need a Prometheus URL: set MODELCTL_PROMETHEUS_URL or --prometheus-url or prometheus\.url in modelctl\.yaml/);
  });

  test('deploy: a query gate in modelctl.yaml, measured by Prometheus from the runtime’s /metrics, rolls a bad canary back', async () => {
    const project = await scratch.fresh('prom-deploy');
    const errorRate = LIVE_ERROR_RATE;
    await writeFile(
      path.join(project, 'modelctl.yaml'),
      `prometheus:\n  url: ${prom.url}\nrollout:\n  gates:\n    - name: error-rate\n      query: '${errorRate}'\n      max: 0.05\n      critical: true\n`,
    );
    const dry = await local(['deploy', 'sentiment@1.1.0', '--dry-run', '--json'], project);
    assert.equal(dry.code, 0, dry.stdout + dry.stderr);
    assert.equal(dry.json().gates[0].query, `prometheus: ${errorRate}`);
    // Without a Prometheus URL the same plan is refused before anything starts.
    const noUrl = path.join(await scratch.fresh('prom-deploy-nourl'), 'modelctl.yaml');
    await writeFile(noUrl, (await readFile(path.join(project, 'modelctl.yaml'), 'utf8')).replace(/^prometheus:\n  url: .*\n/, ''));
    const refused = await local(['deploy', 'sentiment@1.1.0', '--json'], path.dirname(noUrl));
    assert.equal(refused.code, 2);
    assert.match(refused.json().error.message, /gate "error-rate" has a query: query gates need a Prometheus URL/);

    const { stop, load } = steadyLoad(routerUrl);
    try {
      const r = await local(['deploy', 'sentiment@1.1.0', '--steps', '50,100', '--interval', '25s', '--check-every', '1s', '--json'], project);
      assert.equal(r.code, 3, r.stdout + r.stderr);
      const result = r.json();
      assert.equal(result.outcome, 'rolled-back');
      assert.equal(result.rolledBackTo, '1.0.0');
      const gate = result.steps[0].gates.find((g: { gate?: string; name?: string }) => (g.gate ?? g.name) === 'error-rate');
      assert.equal(gate.verdict, 'fail', JSON.stringify(result.steps[0].gates));
      assert.ok(gate.value > 0.05, String(gate.value));
      assert.match(result.reason, /critical gate error-rate failed: .* > 0\.05 — raw "/);
    } finally {
      stop.abort();
      await load;
    }
  });

  test('Prometheus going down mid-rollout: query errors beyond the limit fail the step, and traffic goes back to stable', async () => {
    // A proxy in front of the real Prometheus that we can take down (503) while the canary bakes.
    let down = false;
    const proxy = createServer(async (req, res) => {
      if (down) {
        res.writeHead(503, { 'content-type': 'text/plain' }).end('Service Unavailable');
        return;
      }
      const upstream = await fetch(`${prom.url}${req.url}`);
      res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' }).end(Buffer.from(await upstream.arrayBuffer()));
    });
    servers.push(proxy);
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;

    const good = await local(['bundle', 'push', path.join(REPO_ROOT, 'bundles/example'), '--version', '1.3.0', '--json']);
    assert.equal(good.code, 0, good.stderr);
    const project = await scratch.fresh('prom-down');
    const errorRate = LIVE_ERROR_RATE;
    await writeFile(
      path.join(project, 'modelctl.yaml'),
      `prometheus:\n  url: ${proxyUrl}\n  retries: 1\n  timeout: 2s\nrollout:\n  gates:\n    - name: error-rate\n      query: '${errorRate}'\n      max: 0.05\n`,
    );
    const { stop, load } = steadyLoad(routerUrl);
    const takeDown = setTimeout(() => (down = true), 4000);
    try {
      const r = await local(['deploy', 'sentiment@1.3.0', '--steps', '50,100', '--interval', '40s', '--check-every', '1s', '--json'], project);
      assert.equal(r.code, 3, r.stdout + r.stderr);
      const result = r.json();
      assert.equal(result.outcome, 'rolled-back');
      assert.match(result.reason, /consecutive query errors, limit 4/);
      const errored = result.events.filter((e: { type: string; verdict?: string }) => e.type === 'gate-evaluated' && e.verdict === 'error');
      assert.ok(errored.length >= 5, `${errored.length} errored evaluations`);
      const s = (await local(['status', 'sentiment', '--json'])).json();
      assert.equal(s.traffic[s.serving], 100, 'all traffic back on the stable version');
    } finally {
      clearTimeout(takeDown);
      stop.abort();
      await load;
    }
  });
});
