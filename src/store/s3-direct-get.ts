import { AsyncLocalStorage } from 'node:async_hooks';
import net from 'node:net';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { UnavailableError } from '../core/errors.js';

/**
 * Ranged GETs whose body goes from the socket straight into the caller's part buffer.
 *
 * Why: profiled on the 2-core machine (bench/README.md, measure 11), a pull through node:http spent
 * as much CPU around the bytes as on them: every 64 KiB read is a fresh buffer, the HTTP parser
 * copies each body chunk into another fresh buffer (node's parser on_body), the stream machinery
 * emits it, and the part buffer gets a third copy; the garbage collector then marks the whole heap
 * again every few dozen MiB of those buffers. Here the socket reads (net `onread`) into the part
 * buffer itself: no allocation and no copy per chunk in user space.
 *
 * It is a request handler wrapped around the SDK's own, so signing, endpoint resolution, retries
 * and error parsing stay the SDK's: only a GET issued inside `rangeTarget.run()` takes this path;
 * everything else goes to the wrapped handler unchanged.
 *
 * HTTPS too (real S3 is HTTPS): a TLS socket reads into a caller's buffer the same way (`onread`
 * on tls.connect, Node ≥ 15: OpenSSL decrypts straight into the part buffer). Measured on the
 * 2-core machine, a 2 GiB pull through node:https cost ~9 s of user CPU, against ~1.2 s for rclone
 * over the same TLS (bench/README.md). The TLS settings are the wrapped handler's own (its https
 * Agent's ca, cert, key, rejectUnauthorized…), so a custom CA configured for the SDK is trusted
 * here and nothing the SDK would refuse is accepted; until that handler has resolved its settings
 * (its first request), HTTPS GETs go to it.
 */

/** The buffer the body of the GET running in this async context goes to, and how much came. */
export interface RangeTarget {
  into: Buffer;
  /** Body bytes written into `into` (set when the direct path served the request). */
  got: number;
  /** Whether the direct path served it (else the body is the SDK's stream, as usual). */
  direct: boolean;
}

export const rangeTarget = new AsyncLocalStorage<RangeTarget>();

/** The parts of the SDK's HttpRequest / HttpHandler used here (structural: no import of @smithy internals). */
interface SdkRequest {
  method: string;
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  query?: Record<string, string | Array<string | null> | null>;
  headers: Record<string, string>;
  body?: unknown;
}
interface SdkResponse {
  statusCode: number;
  reason?: string;
  headers: Record<string, string>;
  body: Readable;
}
export interface SdkHandler {
  handle(request: SdkRequest, options?: { abortSignal?: AbortSignal; requestTimeout?: number }): Promise<{ response: SdkResponse }>;
  destroy?(): void;
  updateHttpClientConfig?(key: never, value: never): void;
  httpHandlerConfigs?(): unknown;
  metadata?: unknown;
}

export interface DirectGetOptions {
  /** No TCP connection within this: TimeoutError (retried by the SDK). */
  connectMs: number;
  /** Socket silent this long (no answer, or a body that stopped): TimeoutError. */
  idleMs: number;
  /** Keep-alive connections kept idle per endpoint. */
  maxIdle: number;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
/** https.Agent options that shape a TLS session (node's tls.connect options). */
const TLS_OPTION_KEYS = [
  'ca', 'cert', 'key', 'pfx', 'passphrase', 'crl', 'ciphers', 'ecdhCurve', 'minVersion', 'maxVersion', 'secureOptions',
  'secureProtocol', 'secureContext', 'rejectUnauthorized', 'checkServerIdentity', 'servername', 'sigalgs', 'honorCipherOrder',
] as const;
const MAX_HEAD_BYTES = 64 * 1024;

export class DirectRangeHandler implements SdkHandler {
  readonly metadata = { handlerProtocol: 'http/1.1' };
  private readonly idle = new Map<string, Conn[]>();
  /** Requests this handler served itself (the rest went to the wrapped handler): for tests and debugging. */
  served = 0;

  constructor(
    readonly inner: SdkHandler,
    private readonly opts: DirectGetOptions,
  ) {}

  handle(request: SdkRequest, options: { abortSignal?: AbortSignal; requestTimeout?: number } = {}): Promise<{ response: SdkResponse }> {
    const target = rangeTarget.getStore();
    if (!target || request.method !== 'GET' || request.body !== undefined) return this.inner.handle(request, options);
    let secure: tls.ConnectionOptions | undefined;
    if (request.protocol === 'https:') {
      secure = this.tlsOptions();
      if (!secure) return this.inner.handle(request, options);
    } else if (request.protocol !== 'http:') return this.inner.handle(request, options);
    target.direct = true;
    target.got = 0;
    this.served++;
    return this.exchange(request, target, options.abortSignal, secure);
  }

  /**
   * TLS options of the wrapped handler's https Agent (those node:https would use for this request),
   * or undefined while it has none resolved yet. Only options that shape the TLS session are taken.
   */
  private tlsOptions(): tls.ConnectionOptions | undefined {
    const config = this.inner.httpHandlerConfigs?.() as { httpsAgent?: { options?: Record<string, unknown> } } | undefined;
    const agentOptions = config?.httpsAgent?.options;
    if (!agentOptions) return undefined;
    const out: Record<string, unknown> = {};
    for (const k of TLS_OPTION_KEYS) if (agentOptions[k] !== undefined) out[k] = agentOptions[k];
    return out as tls.ConnectionOptions;
  }

  updateHttpClientConfig(key: never, value: never): void {
    this.inner.updateHttpClientConfig?.(key, value);
  }

  httpHandlerConfigs(): unknown {
    return this.inner.httpHandlerConfigs?.() ?? {};
  }

  destroy(): void {
    for (const list of this.idle.values()) for (const c of list) c.socket.destroy();
    this.idle.clear();
    this.inner.destroy?.();
  }

  private take(key: string): Conn | undefined {
    const list = this.idle.get(key);
    for (let c = list?.pop(); c; c = list?.pop()) {
      if (!c.socket.destroyed && c.socket.readyState === 'open') return c;
    }
    return undefined;
  }

  private giveBack(key: string, c: Conn): void {
    const list = this.idle.get(key) ?? [];
    if (list.length >= this.opts.maxIdle || c.socket.destroyed) {
      c.socket.destroy();
      return;
    }
    c.current = undefined;
    c.socket.setTimeout(0);
    c.socket.unref(); // an idle connection never keeps the process alive
    list.push(c);
    this.idle.set(key, list);
  }

  private exchange(req: SdkRequest, t: RangeTarget, signal: AbortSignal | undefined, secure: tls.ConnectionOptions | undefined): Promise<{ response: SdkResponse }> {
    const defaultPort = secure ? 443 : 80;
    const port = req.port ?? defaultPort;
    const key = `${secure ? 'https' : 'http'}://${req.hostname}:${port}`;
    const head = requestHead(req, port, defaultPort);
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortError());
        return;
      }
      let connectTimer: NodeJS.Timeout | undefined;
      const reused = this.take(key);
      const conn = reused ?? new Conn(req.hostname.replace(/^\[(.*)\]$/, '$1'), port, secure);
      const socket = conn.socket;
      socket.ref();
      let settled = false;
      const finish = (err: Error | undefined, response?: SdkResponse, reuse = false): void => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        socket.off('error', onError);
        socket.off('end', onEnd);
        socket.off('close', onEnd);
        socket.off('timeout', onTimeout);
        clearTimeout(connectTimer);
        if (reuse) this.giveBack(key, conn);
        else {
          conn.current = undefined;
          socket.destroy();
        }
        if (err) reject(err);
        else resolve({ response: response! });
      };
      const ex = new Exchange(t, conn.scratch, (err, response, reuse) => finish(err, response, reuse));
      conn.current = ex;
      const onAbort = (): void => finish(abortError());
      const onError = (err: Error): void => finish(err);
      // The connection ended: before the answer it is a hang-up (retried, as node:http's ECONNRESET);
      // mid-body the caller's length check says the range was cut.
      const onEnd = (): void => ex.ended();
      const onTimeout = (): void => finish(timeoutError(`Connection timed out after ${this.opts.idleMs} ms`));
      signal?.addEventListener('abort', onAbort, { once: true });
      socket.on('error', onError);
      socket.on('end', onEnd);
      socket.on('close', onEnd);
      socket.on('timeout', onTimeout);
      socket.setTimeout(this.opts.idleMs);
      if (!reused) {
        connectTimer = setTimeout(() => finish(timeoutError(`Socket timed out without establishing a connection within ${this.opts.connectMs} ms`)), this.opts.connectMs);
        // TLS: connected means the handshake is done (and the certificate checked).
        socket.once(secure ? 'secureConnect' : 'connect', () => clearTimeout(connectTimer));
      }
      socket.write(head);
    });
  }
}

/** One keep-alive connection: its socket reads into whatever the current exchange asks for. */
class Conn {
  readonly socket: net.Socket;
  /** Where the head and error bodies are read (the success body goes to the caller's buffer). */
  readonly scratch = Buffer.allocUnsafe(64 * 1024);
  current: Exchange | undefined;
  constructor(host: string, port: number, secure: tls.ConnectionOptions | undefined) {
    const onread = {
      buffer: () => this.current?.nextBuffer() ?? this.scratch,
      callback: (n: number, buf: Uint8Array) => {
        if (this.current) this.current.onRead(n, buf);
        else this.socket.destroy(); // bytes nobody asked for: the connection is not reusable
        return true;
      },
    };
    this.socket = secure
      ? tls.connect({
          ...secure,
          host,
          port,
          // SNI takes a host name, never an address (RFC 6066); node:https does the same.
          ...(secure.servername === undefined && net.isIP(host) === 0 ? { servername: host } : {}),
          ALPNProtocols: ['http/1.1'],
          // onread on a TLS socket: node ≥ 15 (nodejs/node#35753); @types/node lists it on net only.
          ...({ onread } as Partial<tls.ConnectionOptions>),
        })
      : net.connect({ host, port, noDelay: true, keepAlive: true, onread });
    if (secure) this.socket.setNoDelay(true).setKeepAlive(true);
    // An idle pooled connection the server closes or resets must not crash the process: the
    // exchange in progress (if any) has its own listener and reports it.
    this.socket.on('error', () => undefined);
  }
}

/** One request's answer, read as it comes: head into scratch, a 2xx body straight into the target. */
class Exchange {
  private phase: 'head' | 'body' | 'error' = 'head';
  private head: Buffer[] = [];
  private headLen = 0;
  private status = 0;
  private reason = '';
  private headers: Record<string, string> = {};
  private length = -1;
  private chunked = false;
  private close = false;
  private errorBody: Buffer[] = [];
  private errorLen = 0;

  constructor(
    private readonly t: RangeTarget,
    private readonly scratch: Buffer,
    private readonly done: (err: Error | undefined, response?: SdkResponse, reuse?: boolean) => void,
  ) {}

  nextBuffer(): Buffer {
    return this.phase === 'body' ? this.t.into.subarray(this.t.got, this.length) : this.scratch;
  }

  onRead(n: number, buf: Uint8Array): void {
    if (n <= 0) return;
    if (this.phase === 'body') {
      this.t.got += n;
      if (this.t.got === this.length) this.complete();
      return;
    }
    const bytes = Buffer.from(buf.buffer, buf.byteOffset, n);
    if (this.phase === 'error') {
      this.takeError(Buffer.from(bytes)); // copied: scratch is read into again
      return;
    }
    this.head.push(Buffer.from(bytes));
    this.headLen += n;
    const all = Buffer.concat(this.head, this.headLen);
    const end = all.indexOf(CRLFCRLF);
    if (end < 0) {
      if (this.headLen > MAX_HEAD_BYTES) this.done(new UnavailableError(`the S3 server answered a head of more than ${MAX_HEAD_BYTES} bytes`));
      return;
    }
    this.head = [];
    if (!this.parseHead(all.subarray(0, end).toString('latin1'))) return;
    const rest = all.subarray(end + 4);
    if (this.status >= 200 && this.status < 300) {
      if (this.length < 0) {
        this.done(new UnavailableError(`the S3 server answered a ranged GET without a Content-Length (HTTP ${this.status})`));
        return;
      }
      if (this.length > this.t.into.length) {
        this.done(new UnavailableError(`the S3 server answered ${this.length} bytes for a range of ${this.t.into.length}`));
        return;
      }
      this.phase = 'body';
      const take = Math.min(rest.length, this.length);
      rest.copy(this.t.into, 0, 0, take);
      this.t.got = take;
      if (this.t.got === this.length) this.complete();
      return;
    }
    this.phase = 'error';
    if (rest.length > 0) this.takeError(rest);
    else if (this.length === 0) this.complete();
  }

  /** EOF or close before the answer was complete. */
  ended(): void {
    if (this.phase === 'body') this.complete(false); // cut: the caller's length check reports it
    else if (this.phase === 'error' && (this.length < 0 || this.close) && !this.chunked) this.complete(false);
    else this.done(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
  }

  private takeError(bytes: Buffer): void {
    this.errorBody.push(bytes);
    this.errorLen += bytes.length;
    if (this.length >= 0 && this.errorLen >= this.length) this.complete();
    else if (this.chunked && Buffer.concat(this.errorBody).subarray(-5).toString('latin1') === '0\r\n\r\n') this.complete();
  }

  private parseHead(text: string): boolean {
    const lines = text.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
    if (!m) {
      this.done(new UnavailableError(`the S3 server answered something that is not HTTP/1.1: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`));
      return false;
    }
    this.status = Number(m[1]);
    this.reason = m[2] ?? '';
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      if (i <= 0) continue;
      const k = line.slice(0, i).trim().toLowerCase();
      const v = line.slice(i + 1).trim();
      this.headers[k] = this.headers[k] === undefined ? v : `${this.headers[k]}, ${v}`;
    }
    const len = this.headers['content-length'];
    if (len !== undefined && /^\d+$/.test(len)) this.length = Number(len);
    this.chunked = /chunked/i.test(this.headers['transfer-encoding'] ?? '');
    this.close = /close/i.test(this.headers.connection ?? '');
    return true;
  }

  private complete(reusable = true): void {
    let body: Buffer | undefined;
    if (this.phase === 'error') {
      body = Buffer.concat(this.errorBody);
      if (this.chunked) body = dechunk(body);
    }
    const response: SdkResponse = {
      statusCode: this.status,
      reason: this.reason,
      headers: this.headers,
      // The success body is already in the caller's buffer; an error body is the SDK's to parse.
      body: Readable.from(body && body.length > 0 ? [body] : []),
    };
    this.done(undefined, response, reusable && !this.close && !(this.phase === 'error' && this.length < 0));
  }
}

function dechunk(raw: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = raw.indexOf('\r\n', at);
    if (eol < 0) break;
    const size = parseInt(raw.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isFinite(size) || size <= 0) break;
    out.push(raw.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(out);
}

/** The request line and headers, as the SDK's node:http handler would send them. */
function requestHead(req: SdkRequest, port: number, defaultPort: number): string {
  const qs = buildQuery(req.query ?? {});
  let head = `GET ${req.path}${qs ? `?${qs}` : ''} HTTP/1.1\r\n`;
  let host = false;
  for (const [k, v] of Object.entries(req.headers)) {
    if (/[\r\n]/.test(k) || /[\r\n]/.test(String(v))) throw new Error(`internal: header ${k} holds a line break`);
    if (k.toLowerCase() === 'host') host = true;
    head += `${k}: ${v}\r\n`;
  }
  if (!host) head += `host: ${req.hostname}${port === defaultPort ? '' : `:${port}`}\r\n`;
  return `${head}\r\n`;
}

/** The query string as @smithy/querystring-builder builds it (keys sorted, RFC 3986 escaping). */
function buildQuery(query: Record<string, string | Array<string | null> | null>): string {
  const parts: string[] = [];
  for (const key of Object.keys(query).sort()) {
    const value = query[key];
    const k = escapeUri(key);
    if (Array.isArray(value)) {
      for (const v of value) parts.push(`${k}=${escapeUri(v ?? '')}`);
    } else {
      parts.push(value || typeof value === 'string' ? `${k}=${escapeUri(value)}` : k);
    }
  }
  return parts.join('&');
}

function escapeUri(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function abortError(): Error {
  return Object.assign(new Error('Request aborted'), { name: 'AbortError' });
}

function timeoutError(message: string): Error {
  return Object.assign(new Error(message), { name: 'TimeoutError' });
}
