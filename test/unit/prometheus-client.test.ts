import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { parseQueryResponse, parseSampleValue, PrometheusClient, PrometheusError, type PrometheusSettings } from '../../src/gates/prometheus.js';

const ok = (result: unknown, resultType = 'vector') => JSON.stringify({ status: 'success', data: { resultType, result } });
const err = (errorType: string, error: string) => JSON.stringify({ status: 'error', errorType, error });

describe('wire format', () => {
  test('sample values are strings; NaN and ±Inf by hand (Number("+Inf") is NaN)', () => {
    assert.ok(Number.isNaN(parseSampleValue('NaN')));
    assert.equal(parseSampleValue('+Inf'), Number.POSITIVE_INFINITY);
    assert.equal(parseSampleValue('-Inf'), Number.NEGATIVE_INFINITY);
    assert.equal(parseSampleValue('0.0051'), 0.0051);
    assert.equal(parseSampleValue('1e-7'), 1e-7);
    assert.equal(parseSampleValue('-3'), -3);
    assert.throws(() => parseSampleValue('abc'), /unparseable sample value "abc"/);
    assert.throws(() => parseSampleValue(''), /unparseable/);
    assert.throws(() => parseSampleValue(0.5), /Prometheus sends strings/);
  });

  test('vector, scalar, empty; warnings kept', () => {
    const v = parseQueryResponse(200, ok([{ metric: { version: '1' }, value: [1.5, '+Inf'] }]));
    assert.deepEqual(v, { resultType: 'vector', samples: [{ labels: { version: '1' }, raw: '+Inf', value: Infinity }], warnings: [] });
    const s = parseQueryResponse(200, ok([1.5, '-Inf'], 'scalar'));
    assert.deepEqual(s.samples, [{ labels: {}, raw: '-Inf', value: -Infinity }]);
    assert.deepEqual(parseQueryResponse(200, ok([])).samples, []);
    const w = parseQueryResponse(200, JSON.stringify({ status: 'success', warnings: ['partial response'], data: { resultType: 'vector', result: [] } }));
    assert.deepEqual(w.warnings, ['partial response']);
  });

  test('errors: 400/422 are the query; 503 and non-Prometheus answers are unavailable; matrix and string are refused', () => {
    const kind = (status: number, body: string) => {
      try {
        parseQueryResponse(status, body);
        return 'ok';
      } catch (e) {
        assert.ok(e instanceof PrometheusError);
        return `${e.kind}: ${e.message}`;
      }
    };
    assert.equal(kind(400, err('bad_data', '1:5: parse error: unclosed left parenthesis')), 'query: HTTP 400 bad_data: 1:5: parse error: unclosed left parenthesis');
    assert.equal(kind(422, err('execution', 'many-to-many matching not allowed')), 'query: HTTP 422 execution: many-to-many matching not allowed');
    assert.equal(kind(503, err('timeout', 'query timed out in expression evaluation')), 'unavailable: HTTP 503 timeout: query timed out in expression evaluation');
    assert.equal(kind(502, '<html>Bad Gateway</html>'), 'unavailable: HTTP 502 and not a Prometheus API answer: <html>Bad Gateway</html>');
    assert.match(kind(200, ok([[1, '1']], 'matrix')), /^query: the query returned a range vector/);
    assert.match(kind(200, ok([1, 'x'], 'string')), /^query: the query returned a string/);
  });
});

interface Seen {
  url: string;
  headers: IncomingHttpHeaders;
}

/** A fake Prometheus answering from a script of [status, body] (the last one repeats). */
async function fakeServer(script: Array<[number, string] | 'hang'>): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    const step = script[Math.min(seen.length - 1, script.length - 1)]!;
    if (step === 'hang') return; // never answers
    res.writeHead(step[0], { 'content-type': 'application/json' }).end(step[1]);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}
const servers: Server[] = [];
after(() => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

function settings(url: string, over: Partial<PrometheusSettings> = {}): PrometheusSettings {
  return { url, headers: {}, auth: null, timeoutMs: 2_000, retries: 2, backoffMs: 10, minIntervalMs: 60_000, vars: {}, ...over };
}

describe('PrometheusClient', () => {
  test('GET /api/v1/query under the path prefix, with time, bearer token and custom headers', async () => {
    const f = await fakeServer([[200, ok([{ metric: {}, value: [1, '0.5'] }])]]);
    const c = new PrometheusClient(settings(`${f.url}/prometheus/`, { headers: { 'X-Scope-OrgID': 'team-ml' }, auth: { kind: 'bearer', header: 'Bearer s3cret' } }));
    const r = await c.query('sum(up{job="a b"})', 1_700_000_000.5);
    assert.equal(r.samples[0]!.value, 0.5);
    assert.equal(f.seen.length, 1);
    const u = new URL(f.seen[0]!.url, 'http://x');
    assert.equal(u.pathname, '/prometheus/api/v1/query');
    assert.equal(u.searchParams.get('query'), 'sum(up{job="a b"})');
    assert.equal(u.searchParams.get('time'), '1700000000.500');
    assert.equal(u.searchParams.get('timeout'), '2s');
    assert.equal(f.seen[0]!.headers.authorization, 'Bearer s3cret');
    assert.equal(f.seen[0]!.headers['x-scope-orgid'], 'team-ml');
  });

  test('basic auth header', async () => {
    const f = await fakeServer([[200, ok([])]]);
    const header = `Basic ${Buffer.from('alice:pw').toString('base64')}`;
    await new PrometheusClient(settings(f.url, { auth: { kind: 'basic', header } })).query('up');
    assert.equal(f.seen[0]!.headers.authorization, header);
  });

  test('503 is retried with backoff, then the answer counts', async () => {
    const f = await fakeServer([
      [503, 'Service Unavailable'],
      [503, err('unavailable', 'not ready')],
      [200, ok([{ metric: {}, value: [1, '1'] }])],
    ]);
    const r = await new PrometheusClient(settings(f.url)).query('up');
    assert.equal(r.samples[0]!.raw, '1');
    assert.equal(f.seen.length, 3);
  });

  test('503 every time: unavailable after 1 + retries attempts', async () => {
    const f = await fakeServer([[503, 'Service Unavailable']]);
    await assert.rejects(new PrometheusClient(settings(f.url)).query('up'), (e: unknown) => {
      assert.ok(e instanceof PrometheusError);
      assert.equal(e.kind, 'unavailable');
      assert.match(e.message, /HTTP 503 .*\(after 3 attempts\)$/);
      return true;
    });
    assert.equal(f.seen.length, 3);
  });

  test('400/422 and 401/403/404 are not retried; secrets never appear in messages', async () => {
    const f = await fakeServer([[400, err('bad_data', 'parse error')]]);
    await assert.rejects(new PrometheusClient(settings(f.url)).query('sum('), { name: 'PrometheusError', kind: 'query', message: 'HTTP 400 bad_data: parse error' });
    assert.equal(f.seen.length, 1);
    const u = await fakeServer([[401, 'Unauthorized']]);
    const client = new PrometheusClient(settings(u.url, { auth: { kind: 'bearer', header: 'Bearer s3cret' } }));
    await assert.rejects(client.query('up'), (e: unknown) => {
      assert.ok(e instanceof PrometheusError);
      assert.equal(e.kind, 'unavailable');
      assert.match(e.message, /refused access: HTTP 401/);
      assert.doesNotMatch(e.message, /s3cret/);
      return true;
    });
    assert.equal(u.seen.length, 1);
    const n = await fakeServer([[404, 'not found']]);
    await assert.rejects(new PrometheusClient(settings(n.url)).query('up'), /no Prometheus API at .*\/api\/v1\/query \(HTTP 404\)/);
  });

  test('a hanging server times out per attempt; a closed port is a connection error; both retried', async () => {
    const h = await fakeServer(['hang']);
    const t0 = Date.now();
    await assert.rejects(new PrometheusClient(settings(h.url, { timeoutMs: 200, retries: 1 })).query('up'), /no answer within 200 ms \(after 2 attempts\)/);
    assert.equal(h.seen.length, 2);
    assert.ok(Date.now() - t0 < 2_000);

    const closed = await fakeServer([[200, ok([])]]);
    await new Promise<void>((r) => closed.server.close(() => r()));
    await assert.rejects(new PrometheusClient(settings(closed.url, { retries: 1 })).query('up'), /cannot reach Prometheus at http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED.*\(after 2 attempts\)/);
  });
});
