/**
 * The data plane of the box's one Gateway: a real HTTP listener on 127.0.0.1 that does what Envoy
 * (or any Gateway API implementation) does with the HTTPRoutes in the store, following them as they
 * are applied (a store subscription marks the table stale; the next request rebuilds it):
 *
 *   match      hostnames (exact or `*.` wildcard) and PathPrefix / Exact path matches; the longest
 *              matching prefix over every route wins
 *   split      one backendRef per request, by weight (share = weight / sum of weights)
 *   headers    RequestHeaderModifier: `set` overwrites, `add` appends to an existing value (comma
 *              separated, as the spec's example), `remove` deletes; header names case-insensitive
 *   rewrite    URLRewrite ReplacePrefixMatch (`/sentiment/predict` with prefix /sentiment → `/predict`)
 *   mirror     RequestMirror: a copy to the mirror backend for `percent` (or `fraction`) of requests,
 *              all of them when neither is set (that is the Gateway API default); fire and forget, the
 *              mirror's answer is discarded; the copy's Host gets Envoy's "-shadow" suffix
 *   order      filters apply in the order the rule lists them (the spec: implementations SHOULD), so
 *              a RequestMirror copies the request as the filters before it left it, and the backend
 *              gets it as all of them left it
 *   backends   Service (port → targetPort, named or numeric) → its ready endpoints: the pods its
 *              selector matches whose Ready condition is True, at podIP:containerPort — real
 *              connections into the pods' network namespaces
 *
 * Like a real Gateway, it serves a route's spec only once the Gateway controller (gateway.ts) has
 * reported that generation Accepted; until then the previously programmed generation keeps serving
 * (and a route nobody accepts is never served).
 *
 * Deliberate differences: weights and mirror shares are applied by deterministic smooth weighted
 * round-robin / an accumulator instead of Envoy's random draws, so that a test can check the share
 * on the wire exactly instead of within a statistical band; header/query/method matches, redirects,
 * response header filters and timeouts are not implemented (modelctl writes none of them).
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resourceDef } from './resources.js';
import type { Store, StoreEvent } from './store.js';

const HTTPROUTES = resourceDef('httproutes');
const SERVICES = resourceDef('services');
const PODS = resourceDef('pods');

/** Body size the data plane buffers to copy a request to the mirror (Envoy buffers too). */
const MAX_BODY = 1024 * 1024;

/** One filter of a rule, in the rule's order. */
type Step =
  | { type: 'headers'; set: Array<{ name: string; value: string }>; add: Array<{ name: string; value: string }>; remove: string[] }
  | { type: 'rewrite'; replacePrefixMatch: string }
  | { type: 'mirror' };

interface Rule {
  key: string;
  namespace: string;
  matches: Array<{ type: string; value: string }>;
  hostnames: string[];
  backends: Array<{ name: string; namespace: string; port: number; weight: number; current: number }>;
  steps: Step[];
  mirror?: { name: string; namespace: string; port: number; percent: number } | undefined;
  mirrorAcc: number;
}

/**
 * RequestHeaderModifier on a Node header object (lower-case keys): names are case-insensitive, `set`
 * replaces every value, `add` appends ("foo" + "bar,baz" → "foo,bar,baz"), `remove` deletes.
 */
export function modifyHeaders(headers: Record<string, string | string[] | undefined>, f: Extract<Step, { type: 'headers' }>): void {
  for (const h of f.set) headers[h.name.toLowerCase()] = h.value;
  for (const h of f.add) {
    const k = h.name.toLowerCase();
    const had = headers[k];
    headers[k] = had === undefined ? h.value : `${Array.isArray(had) ? had.join(',') : had},${h.value}`;
  }
  for (const name of f.remove) delete headers[name.toLowerCase()];
}

export interface DataPlaneStats {
  /** Requests sent to each backend Service (`namespace/name`) as the chosen backend. */
  routed: Map<string, number>;
  /** Copies sent to each mirror Service. */
  mirrored: Map<string, number>;
  /** Requests that matched a rule mirroring to each Service (the base of its mirror share). */
  mirrorable: Map<string, number>;
  /** Requests answered by the data plane itself (no route, no endpoint…), by status. */
  local: Map<number, number>;
}

export class GatewayDataPlane {
  url = '';
  readonly stats: DataPlaneStats = { routed: new Map(), mirrored: new Map(), mirrorable: new Map(), local: new Map() };
  private server?: Server;
  private rules: Rule[] | undefined;
  /** Weighted round-robin state survives table rebuilds, per rule and backend. */
  private readonly wrr = new Map<string, { current: number; mirrorAcc: number }>();
  private readonly rr = new Map<string, number>();
  /** Per route (namespace/name): the last generation the controller accepted, and its rules. */
  private readonly programmed = new Map<string, { generation: number; route: any }>();
  private readonly unsubscribe: () => void;

  constructor(private readonly store: Store) {
    this.unsubscribe = store.subscribe((e: StoreEvent) => {
      if (e.def === HTTPROUTES) this.program(e);
      if (e.def === HTTPROUTES || e.def === SERVICES || e.def === PODS) this.rules = undefined;
    });
  }

  /** A route's generation goes live when the controller reports it Accepted; a deleted route goes away. */
  private program(e: StoreEvent): void {
    const { namespace, name, generation } = e.object.metadata;
    const id = `${namespace}/${name}`;
    if (e.type === 'DELETED') return void this.programmed.delete(id);
    const accepted = (e.object.status?.parents ?? []).some((p: any) => (p.conditions ?? []).some((c: any) => c.type === 'Accepted' && c.status === 'True' && c.observedGeneration === generation));
    if (accepted) this.programmed.set(id, { generation, route: e.object });
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res).catch((err: unknown) => this.local(res, 500, `data plane error: ${(err as Error).message}`)));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async close(): Promise<void> {
    this.unsubscribe();
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }

  private table(): Rule[] {
    if (this.rules) return this.rules;
    const rules: Rule[] = [];
    for (const { route } of this.programmed.values()) {
      const ns = route.metadata.namespace;
      (route.spec?.rules ?? []).forEach((r: any, i: number) => {
        const key = `${ns}/${route.metadata.name}/${i}`;
        const filters: any[] = r.filters ?? [];
        const m = filters.find((f) => f.type === 'RequestMirror')?.requestMirror;
        const steps: Step[] = filters.flatMap((f): Step[] => {
          if (f.type === 'RequestHeaderModifier') {
            const h = f.requestHeaderModifier ?? {};
            return [{ type: 'headers', set: h.set ?? [], add: h.add ?? [], remove: h.remove ?? [] }];
          }
          if (f.type === 'URLRewrite' && f.urlRewrite?.path?.type === 'ReplacePrefixMatch') return [{ type: 'rewrite', replacePrefixMatch: f.urlRewrite.path.replacePrefixMatch }];
          // One mirror backend (the first): modelctl writes one.
          if (f.type === 'RequestMirror' && f.requestMirror === m) return [{ type: 'mirror' }];
          return [];
        });
        const percent = m ? (typeof m.percent === 'number' ? m.percent : m.fraction ? (100 * m.fraction.numerator) / (m.fraction.denominator ?? 100) : 100) : 0;
        rules.push({
          key,
          namespace: ns,
          hostnames: route.spec?.hostnames ?? [],
          matches: (r.matches ?? [{ path: { type: 'PathPrefix', value: '/' } }]).map((x: any) => ({ type: x.path?.type ?? 'PathPrefix', value: x.path?.value ?? '/' })),
          backends: (r.backendRefs ?? []).map((b: any) => ({ name: b.name, namespace: b.namespace ?? ns, port: b.port, weight: b.weight ?? 1, current: 0 })),
          steps,
          mirror: m ? { name: m.backendRef.name, namespace: m.backendRef.namespace ?? ns, port: m.backendRef.port, percent } : undefined,
          mirrorAcc: 0,
        });
      });
    }
    this.rules = rules;
    return rules;
  }

  /** The matching rule and the matched prefix length (longest wins, Exact beats PathPrefix). */
  private match(host: string, path: string): { rule: Rule; prefix: string } | undefined {
    let best: { rule: Rule; prefix: string; score: number } | undefined;
    for (const rule of this.table()) {
      if (rule.hostnames.length && !rule.hostnames.some((h) => h === host || (h.startsWith('*.') && host.endsWith(h.slice(1))))) continue;
      for (const m of rule.matches) {
        const v = m.value;
        const hit = m.type === 'Exact' ? path === v : v === '/' || path === v.replace(/\/$/, '') || path.startsWith(v.endsWith('/') ? v : v + '/');
        if (!hit) continue;
        const score = v.length + (m.type === 'Exact' ? 10_000 : 0);
        if (!best || score > best.score) best = { rule, prefix: v, score };
      }
    }
    return best;
  }

  /** Smooth weighted round-robin (nginx's): exact shares over any window of sum(weights) requests. */
  private pick(rule: Rule): Rule['backends'][number] | undefined {
    const live = rule.backends.filter((b) => b.weight > 0);
    if (live.length === 0) return undefined;
    const total = live.reduce((s, b) => s + b.weight, 0);
    let best: Rule['backends'][number] | undefined;
    let bestCurrent = -Infinity;
    for (const b of live) {
      const k = `${rule.key}/${b.namespace}/${b.name}`;
      const st = this.wrr.get(k) ?? { current: 0, mirrorAcc: 0 };
      st.current += b.weight;
      this.wrr.set(k, st);
      if (st.current > bestCurrent) {
        bestCurrent = st.current;
        best = b;
      }
    }
    this.wrr.get(`${rule.key}/${best!.namespace}/${best!.name}`)!.current -= total;
    return best;
  }

  private mirrorNow(rule: Rule): boolean {
    if (!rule.mirror || rule.mirror.percent <= 0) return false;
    const k = `${rule.key}#mirror`;
    const st = this.wrr.get(k) ?? { current: 0, mirrorAcc: 0 };
    st.mirrorAcc += rule.mirror.percent;
    this.wrr.set(k, st);
    if (st.mirrorAcc >= 100) {
      st.mirrorAcc -= 100;
      return true;
    }
    return false;
  }

  /** Service port → one ready endpoint (round-robin): podIP and the resolved target port. */
  /** Also kube-proxy's (kube-proxy.ts): a Service's ready endpoints are the same for both. */
  endpoint(namespace: string, name: string, port: number): { ip: string; port: number } | { error: number; message: string } {
    const svc = this.store.get(SERVICES, namespace, name);
    if (!svc) return { error: 500, message: `backend Service ${namespace}/${name} not found` };
    const sp = (svc.spec?.ports ?? []).find((p: any) => p.port === port);
    if (!sp) return { error: 500, message: `Service ${namespace}/${name} has no port ${port}` };
    const selector: Record<string, string> = svc.spec?.selector ?? {};
    const pods = this.store
      .list(PODS, namespace, (p) => Object.entries(selector).every(([k, v]) => p.metadata.labels?.[k] === v))
      .filter((p) => p.status?.podIP && !p.metadata.deletionTimestamp && (p.status.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True'));
    const eps = pods.flatMap((p) => {
      const tp = sp.targetPort ?? sp.port;
      if (typeof tp === 'number') return [{ ip: p.status.podIP as string, port: tp }];
      const cp = (p.spec.containers ?? []).flatMap((c: any) => c.ports ?? []).find((x: any) => x.name === tp);
      return cp ? [{ ip: p.status.podIP as string, port: cp.containerPort as number }] : [];
    });
    if (eps.length === 0) return { error: 503, message: 'no healthy upstream' };
    const k = `${namespace}/${name}`;
    const n = this.rr.get(k) ?? 0;
    this.rr.set(k, n + 1);
    return eps[n % eps.length]!;
  }

  private local(res: ServerResponse, status: number, message: string): void {
    this.stats.local.set(status, (this.stats.local.get(status) ?? 0) + 1);
    if (res.headersSent) return void res.destroy();
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(message) });
    res.end(message);
  }

  /** A fire-and-forget copy to the mirror backend (its answer is discarded), as the request is at the mirror filter. */
  private sendMirror(m: NonNullable<Rule['mirror']>, method: string | undefined, target: string, headers: Record<string, string | string[] | undefined>, body: Buffer): void {
    const ep = this.endpoint(m.namespace, m.name, m.port);
    if (!('ip' in ep)) return;
    const key = `${m.namespace}/${m.name}`;
    this.stats.mirrored.set(key, (this.stats.mirrored.get(key) ?? 0) + 1);
    // Envoy sends the copy with "-shadow" appended to the Host / :authority (before any port):
    // how the receiving side tells a mirrored request from live traffic.
    const shadowHost = String(headers.host ?? '').replace(/^([^:]*)(:\d+)?$/, (_m, h: string, port?: string) => `${h}-shadow${port ?? ''}`);
    const copy = request({ host: ep.ip, port: ep.port, method, path: target, headers: { ...headers, host: shadowHost }, timeout: 10_000 }, (r) => r.resume());
    copy.on('error', () => undefined).on('timeout', () => copy.destroy());
    copy.end(body);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway');
    const host = (req.headers.host ?? '').replace(/:\d+$/, '');
    const hit = this.match(host, url.pathname);
    if (!hit) return this.local(res, 404, 'route not found');
    const { rule, prefix } = hit;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > MAX_BODY) return this.local(res, 413, 'request body too large for the data plane');
      chunks.push(c as Buffer);
    }
    const body = Buffer.concat(chunks);
    const headers: Record<string, string | string[] | undefined> = { ...req.headers, 'content-length': String(body.length) };
    delete headers['transfer-encoding'];

    if (rule.mirror) {
      const key = `${rule.mirror.namespace}/${rule.mirror.name}`;
      this.stats.mirrorable.set(key, (this.stats.mirrorable.get(key) ?? 0) + 1);
    }
    // The filters in the rule's order: each one sees the request as the ones before it left it.
    let path = url.pathname;
    for (const step of rule.steps) {
      if (step.type === 'headers') modifyHeaders(headers, step);
      else if (step.type === 'rewrite') {
        // ReplacePrefixMatch replaces the matched prefix; "/" plus the rest never yields "//".
        const rest = path.slice(prefix.replace(/\/$/, '').length);
        path = (step.replacePrefixMatch.replace(/\/$/, '') + rest) || '/';
        if (!path.startsWith('/')) path = '/' + path;
      } else if (rule.mirror && this.mirrorNow(rule)) this.sendMirror(rule.mirror, req.method, path + url.search, { ...headers }, body);
    }
    const target = path + url.search;

    const backend = this.pick(rule);
    if (!backend) return this.local(res, 500, 'no backend with a weight above 0');
    const ep = this.endpoint(backend.namespace, backend.name, backend.port);
    if ('error' in ep) return this.local(res, ep.error, ep.message);
    const key = `${backend.namespace}/${backend.name}`;
    this.stats.routed.set(key, (this.stats.routed.get(key) ?? 0) + 1);
    await new Promise<void>((resolve) => {
      const up = request({ host: ep.ip, port: ep.port, method: req.method, path: target, headers, timeout: 30_000 }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
        r.on('end', resolve).on('error', resolve);
      });
      up.on('timeout', () => up.destroy(new Error('upstream request timeout')));
      up.on('error', (err) => {
        this.local(res, 503, `upstream connect error or disconnect/reset before headers. reset reason: ${err.message}`);
        resolve();
      });
      up.end(body);
    });
  }
}
