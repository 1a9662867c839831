/**
 * Loopback HTTP reverse proxy with fault injection, put between an S3 client
 * and the test RGW to exercise retries and interrupted transfers.
 *
 *   const proxy = await startFaultProxy(s3.endpoint);
 *   const client = s3.client({ endpoint: proxy.endpoint });
 *   proxy.injectStatus(when({ method: 'PUT' }), 503, 2);   // two SlowDown answers, then pass-through
 *   proxy.cutAfterBytes(when({ method: 'PUT', url: /partNumber=2/ }), 1 << 20); // kill that upload part mid-body
 *
 * SigV4: the client signs for the proxy's host:port. The proxy forwards the
 * request headers unchanged (Host included) and RGW verifies the signature
 * against the Host header it receives, not against its own address, so signed
 * requests pass through untouched (verified with @aws-sdk/client-s3).
 * `Expect: 100-continue` is answered by the proxy itself (it is not a signed
 * header) and not forwarded.
 *
 * Bodies are streamed both ways with back-pressure; nothing is buffered.
 * Fault rules are checked in the order they were added; the first matching
 * rule with uses left applies and uses one.
 */
import { createServer, request as httpRequest, Agent, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxiedRequestInfo {
  method: string;
  /** Path and query, as received, e.g. `/bucket/key?partNumber=2&uploadId=...` */
  url: string;
  headers: IncomingHttpHeaders;
}

export type RequestMatcher = (req: ProxiedRequestInfo) => boolean;

export type FaultKind = 'status' | 'cut' | 'delay';

export interface ProxyLogEntry {
  seq: number;
  method: string;
  url: string;
  /** HTTP status sent to the client; 'cut' = connection destroyed by a cut rule; 'error' = upstream/client failure; 'pending' = in flight. */
  status: number | 'cut' | 'error' | 'pending';
  /** The fault applied to this request, if any. */
  fault?: FaultKind;
  /** Request body bytes received from the client / response body bytes sent to it. */
  bytesIn: number;
  bytesOut: number;
  error?: string;
}

export interface FaultRule {
  kind: FaultKind;
  /** Uses left. */
  remaining: number;
}

export interface FaultProxy {
  /** `http://127.0.0.1:PORT` — point the S3 client here. */
  endpoint: string;
  /** Every request seen, in arrival order (mutated in place as requests complete). */
  requests: ProxyLogEntry[];
  /**
   * Answer the next `times` matching requests with `status` (the request body is
   * drained first, upstream is not contacted). Default body: an S3 XML error
   * (503 → SlowDown, 500 → InternalError, else a generic code).
   */
  injectStatus(match: RequestMatcher, status: number, times?: number, body?: string): FaultRule;
  /**
   * For the next `times` matching requests: forward the headers and the first
   * `bytes` bytes of the request body upstream, then destroy both the client
   * and the upstream connections (a killed / interrupted upload). A matching
   * request whose body is shorter is cut at its end, before completing:
   * a matching request never succeeds.
   */
  cutAfterBytes(match: RequestMatcher, bytes: number, times?: number): FaultRule;
  /** Hold the next `times` matching requests for `ms` before forwarding them. */
  delay(match: RequestMatcher, ms: number, times?: number): FaultRule;
  /** Drop all rules that have not been used up. */
  clearFaults(): void;
  /** Clear the request log. */
  clearLog(): void;
  stop(): Promise<void>;
}

/** Build a matcher: all given criteria must hold. `url` substring or RegExp over path+query. */
export function when(c: { method?: string; url?: string | RegExp; header?: [name: string, value: string | RegExp] }): RequestMatcher {
  return (r) => {
    if (c.method && r.method.toUpperCase() !== c.method.toUpperCase()) return false;
    if (c.url !== undefined && !(typeof c.url === 'string' ? r.url.includes(c.url) : c.url.test(r.url))) return false;
    if (c.header) {
      const v = r.headers[c.header[0].toLowerCase()];
      const s = Array.isArray(v) ? v.join(', ') : (v ?? '');
      if (typeof c.header[1] === 'string' ? s !== c.header[1] : !c.header[1].test(s)) return false;
    }
    return true;
  };
}

export function s3ErrorXml(code: string, message: string, resource = ''): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${code}</Code><Message>${message}</Message><Resource>${resource}</Resource>` +
    `<RequestId>fault-proxy</RequestId></Error>`
  );
}

function defaultErrorBody(status: number, resource: string): string {
  const [code, msg] =
    status === 503
      ? ['SlowDown', 'Please reduce your request rate.']
      : status === 500
        ? ['InternalError', 'We encountered an internal error. Please try again.']
        : status === 403
          ? ['AccessDenied', 'Access Denied']
          : status === 404
            ? ['NoSuchKey', 'The specified key does not exist.']
            : ['InjectedError', `Injected HTTP ${status}`];
  return s3ErrorXml(code, msg, resource);
}

// Hop-by-hop headers: never forwarded. (`expect` is handled by the proxy.)
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'upgrade', 'expect']);

function filterRaw(raw: string[], drop: Set<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i]!;
    if (!drop.has(k.toLowerCase())) out.push(k, raw[i + 1]!);
  }
  return out;
}
const RESPONSE_DROP = new Set([...HOP, 'transfer-encoding']);

interface Rule extends FaultRule {
  match: RequestMatcher;
  status?: number;
  body?: string;
  bytes?: number;
  ms?: number;
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const up = new URL(upstream);
  if (up.protocol !== 'http:') throw new Error(`fault proxy: only http:// upstreams are supported, got ${upstream}`);
  const upHost = up.hostname;
  const upPort = Number(up.port || 80);
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const rules: Rule[] = [];
  const requests: ProxyLogEntry[] = [];
  let seq = 0;

  const takeRule = (info: ProxiedRequestInfo): Rule | undefined => {
    for (const r of rules) {
      if (r.remaining > 0 && r.match(info)) {
        r.remaining--;
        return r;
      }
    }
    return undefined;
  };

  const handle = (req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): void => {
    const entry: ProxyLogEntry = { seq: ++seq, method: req.method ?? 'GET', url: req.url ?? '/', status: 'pending', bytesIn: 0, bytesOut: 0 };
    requests.push(entry);
    const info: ProxiedRequestInfo = { method: entry.method, url: entry.url, headers: req.headers };
    let rule: Rule | undefined;
    try {
      rule = takeRule(info);
    } catch (err) {
      rule = undefined;
      entry.error = `matcher threw: ${String(err)}`;
    }
    // Attached only when the body is read (the delay rule must leave it unread and paused).
    const countIn = () =>
      req.on('data', (c: Buffer) => {
        entry.bytesIn += c.length;
      });

    if (rule?.kind === 'status') {
      entry.fault = 'status';
      const status = rule.status!;
      const body = rule.body ?? defaultErrorBody(status, new URL(entry.url, 'http://x').pathname);
      const respond = () => {
        if (res.headersSent || res.destroyed) return;
        entry.status = status;
        entry.bytesOut = Buffer.byteLength(body);
        res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), 'x-amz-request-id': 'fault-proxy' });
        res.end(req.method === 'HEAD' ? undefined : body);
      };
      countIn();
      req.resume(); // drain the body
      // With Expect: 100-continue the client waits for us: answer now (it then skips the body).
      if (expectsContinue || req.readableEnded) respond();
      else req.once('end', respond);
      req.once('error', () => res.destroy());
      return;
    }

    const forward = () => {
      if (res.destroyed || req.socket.destroyed) {
        entry.status = 'error';
        entry.error ??= 'client went away before forwarding';
        return;
      }
      countIn();
      const headers = filterRaw(req.rawHeaders, HOP);
      const upReq = httpRequest({ host: upHost, port: upPort, method: req.method, path: req.url, headers, agent, setHost: false });
      if (expectsContinue) res.writeContinue();

      const fail = (why: string) => {
        if (entry.status === 'pending') entry.status = 'error';
        entry.error ??= why;
        upReq.destroy();
        if (!res.headersSent && !res.destroyed) {
          const msg = `fault proxy: upstream error: ${why}`;
          res.writeHead(502, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(msg) });
          res.end(msg);
        } else res.destroy();
      };
      upReq.on('error', (e) => fail(e.message));
      res.on('close', () => {
        if (!res.writableFinished) {
          if (entry.status === 'pending') {
            entry.status = 'error';
            entry.error ??= 'client closed the connection';
          }
          upReq.destroy();
        }
      });

      upReq.on('response', (upRes) => {
        if (entry.status === 'pending') entry.status = upRes.statusCode ?? 502;
        res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, filterRaw(upRes.rawHeaders, RESPONSE_DROP));
        upRes.on('data', (c: Buffer) => {
          entry.bytesOut += c.length;
        });
        upRes.on('error', () => res.destroy());
        upRes.pipe(res);
      });

      if (rule?.kind === 'cut') {
        entry.fault = 'cut';
        const limit = rule.bytes!;
        let sent = 0;
        const cut = () => {
          entry.status = 'cut';
          // The upstream request is never ended. Kill the client connection now and,
          // after a moment for the written bytes to reach upstream, the upstream one.
          req.socket.destroy();
          setTimeout(() => upReq.destroy(), 50).unref();
        };
        if (limit <= 0) {
          upReq.flushHeaders();
          cut();
          return;
        }
        const onData = (chunk: Buffer) => {
          const room = limit - sent;
          if (chunk.length >= room) {
            req.off('data', onData);
            req.pause();
            upReq.write(chunk.subarray(0, room), () => cut());
            sent = limit;
            return;
          }
          sent += chunk.length;
          if (!upReq.write(chunk)) {
            req.pause();
            upReq.once('drain', () => req.resume());
          }
        };
        req.on('data', onData);
        req.once('end', () => {
          if (sent < limit) {
            upReq.flushHeaders();
            cut();
          }
        });
        req.on('error', (e) => fail(`client request error: ${e.message}`));
        return;
      }

      req.pipe(upReq);
      req.on('error', (e) => fail(`client request error: ${e.message}`));
    };

    if (rule?.kind === 'delay') {
      entry.fault = 'delay';
      setTimeout(forward, rule.ms!);
    } else forward();
  };

  const server = createServer({ keepAlive: true });
  server.on('request', (req, res) => handle(req, res, false));
  server.on('checkContinue', (req, res) => handle(req, res, true));
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  const add = (r: Omit<Rule, 'remaining'>, times: number): FaultRule => {
    if (!Number.isInteger(times) || times < 1) throw new Error(`fault proxy: times must be a positive integer, got ${times}`);
    const rule: Rule = { ...r, remaining: times };
    rules.push(rule);
    return rule;
  };

  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    injectStatus: (match, status, times = 1, body) => add({ kind: 'status', match, status, body }, times),
    cutAfterBytes: (match, bytes, times = 1) => add({ kind: 'cut', match, bytes }, times),
    delay: (match, ms, times = 1) => add({ kind: 'delay', match, ms }, times),
    clearFaults: () => {
      rules.length = 0;
    },
    clearLog: () => {
      requests.length = 0;
    },
    stop: async () => {
      rules.length = 0;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      agent.destroy();
    },
  };
}
