/**
 * An in-process fake Kubernetes API server for tests: a real HTTP server on 127.0.0.1 that speaks
 * the apiserver's REST protocol closely enough for the real @kubernetes/client-node (discovery,
 * typed APIs, KubernetesObjectApi, Watch) and our Kubernetes target to run against it unchanged.
 *
 *   store.ts      objects, resourceVersions, watch history, write semantics, unknown fields, GC
 *   schema.ts     field trees from the upstream models (fieldValidation Strict/Warn/Ignore, SSA)
 *   apply.ts      merge / strategic-merge / JSON patch, server-side apply and field ownership
 *   admission.ts  decoding checks, defaulting, validation (400 / 422)
 *   controller.ts deployment controller + scheduler (+ a simulated kubelet unless a real one runs)
 *   (here)        pod and service proxies: the service proxy resolves a Service's ready endpoint with the
 *                 real server's rules and errors (serviceProxy())
 *   kubelet.ts, netns.ts, dataplane.ts   the cluster in a box (`kubelet` option): real pods in their
 *                 own network namespaces, probes, restarts, a Gateway data plane (see README.md)
 *   resources.ts  served resource types and discovery documents
 *   selectors.ts  label / field selectors
 *   errors.ts     metav1.Status objects
 *
 * Not simulated (deliberately): authentication/authorization (any token works; RBAC only via
 * forbid()), protobuf/Table/CBOR encodings, list pagination (limit/continue ignored), ReplicaSets,
 * associative-list merging in SSA (all lists are atomic), graceful deletion and finalizers,
 * admission webhooks, resourceVersionMatch, periodic watch bookmarks, API priority & fairness.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { posix } from 'node:path';
import { mkdtemp } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import YAML from 'yaml';
import { clone, jsonPatch, mergePatch } from './apply.js';
import { DeploymentController, type BehaviourMatch, type PodFailureMode } from './controller.js';
import { GatewayController, type GatewayMode } from './gateway.js';
import { GatewayDataPlane, type DataPlaneStats } from './dataplane.js';
import { KubeProxy } from './kube-proxy.js';
import { Kubelet } from './kubelet.js';
import { PodNetwork } from './netns.js';
import { openApiSchema, schemaOf } from './schema.js';
import { KubeError, errors, qualifiedResource, statusForCode, successStatus } from './errors.js';
import { GATEWAY_GROUP, Registry, apiVersionOf, type ResourceDef, resourceDef } from './resources.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import { Store, type FieldValidation, type PatchType, type StoreEvent } from './store.js';

export type { PodFailureMode } from './controller.js';

export interface FakeRequest {
  method: string;
  /** URL path as sent (not decoded). */
  path: string;
  query: Record<string, string>;
  /**
   * get | list | watch | create | update | patch | delete | deletecollection | discovery. A proxy
   * request (subresource `proxy`) carries the verb the real server authorizes it as: the HTTP
   * method's (GET → get, POST → create…; apiserver requestinfo.go).
   */
  verb: string;
  /** Plural resource ('' for discovery and other non-resource URLs). */
  resource: string;
  subresource?: string;
  group: string;
  namespace?: string;
  name?: string;
  /** HTTP status answered (0 while a response is still pending). */
  status: number;
  contentType?: string;
}

export interface PodProxyRequest {
  namespace: string;
  pod: any;
  port: string;
  path: string;
  query: URLSearchParams;
}

export type PodProxyHandler = (req: PodProxyRequest) => { status: number; body: unknown } | Promise<{ status: number; body: unknown }>;

/** A service proxy request that passed the real server's checks, with the endpoint it resolved to. */
export interface ServiceProxyRequest {
  namespace: string;
  service: any;
  /** The ready pod the endpoint belongs to, and the port it resolved to (the Service port's targetPort). */
  pod: any;
  port: number;
  method: string;
  /** The path sent to the endpoint (cleaned as the real server cleans it). */
  path: string;
  query: URLSearchParams;
  /** The headers the endpoint receives (hop-by-hop and Authorization removed, X-Forwarded-* added). */
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export type ServiceProxyHandler = (
  req: ServiceProxyRequest,
) => { status: number; headers?: Record<string, string>; body: unknown } | Promise<{ status: number; headers?: Record<string, string>; body: unknown }>;

export interface FakeKube {
  url: string;
  kubeConfig(namespace?: string): KubeConfig;
  kubeconfigYaml(namespace?: string): string;
  close(): Promise<void>;
  get(apiVersion: string, kind: string, namespace: string, name: string): any | undefined;
  list(apiVersion: string, kind: string, namespace?: string): any[];
  requests: FakeRequest[];
  resetRequests(): void;
  /** TCP connections accepted so far (a client that reuses connections opens few). */
  readonly connections: number;
  failNext(n: number, status: number, match?: (r: { method: string; path: string }) => boolean): void;
  setDown(down: boolean): void;
  forbid(verb: string, resource: string, group?: string): void;
  delayMs(ms: number): void;
  withoutGatewayApi(): void;
  controller: {
    behave(match: { model?: string; version?: string; image?: string }, mode: PodFailureMode): void;
    readyAfterMs: number;
  };
  /** The simulated Gateway API implementation that reports HTTPRoute status (accept / reject / silent). */
  gateway: { mode: GatewayMode; delayMs: number };
  onPodProxy(handler: PodProxyHandler): void;
  /**
   * Without a real kubelet: what a Service's endpoint answers through the service proxy (pods are
   * simulated and have no network). The Service, endpoint and port checks run first, as in box mode.
   */
  onServiceProxy(handler: ServiceProxyHandler): void;
  /** The cluster in a box (present when started with `kubelet`): real pods, pod network, data plane. */
  box?: ClusterBox;
}

/** What the real-pod mode adds: see kubelet.ts, netns.ts, dataplane.ts. */
export interface ClusterBox {
  kubelet: Kubelet;
  network: PodNetwork;
  /** The Gateway's listener, http://127.0.0.1:port (send `Host:` for routes with hostnames). */
  gatewayUrl: string;
  gatewayStats: DataPlaneStats;
  /** Make a 127.0.0.1 port of the host (e.g. the test S3) reachable from pods; returns host:port for them. */
  relay(port: number): Promise<{ host: string; port: number; bytes: import('./netns.js').RelayBytes }>;
  /** Service ClusterIPs reachable from pods (kube-proxy.ts), with per-Service connection counts. */
  kubeProxy: KubeProxy;
}

export interface FakeKubeOptions {
  /** How many watch events are kept for resuming watches (older → 410 Expired). Default 1000. */
  watchHistory?: number;
  /** Initial controller.readyAfterMs. Default 50. */
  readyAfterMs?: number;
  /**
   * Run pods for real (the cluster in a box): a kubelet starting every container as a process in the
   * pod's own network namespace, probes, restarts, and a Gateway data plane on 127.0.0.1. Needs root.
   */
  kubelet?: { backoffBaseMs?: number; backoffMaxMs?: number; closeGraceMs?: number; root?: string };
  /**
   * The Gateway API release whose standard-channel CRDs are installed (default v1.3.0). v1.2.0 has no
   * RequestMirror `percent`/`fraction`: the schema prunes them (Warn) or refuses them (Strict).
   */
  gatewayApiVersion?: GatewayApiVersion;
}

export type GatewayApiVersion = 'v1.2.0' | 'v1.3.0';

/** The identity RBAC denials name (what our CLI runs as in CI). */
const USER = 'system:serviceaccount:ci:modelctl';
const PODS = resourceDef('pods');
const SERVICES = resourceDef('services');
const NAMESPACES = resourceDef('namespaces');

const PATCH_TYPES: Record<string, PatchType> = {
  'application/merge-patch+json': 'merge',
  'application/strategic-merge-patch+json': 'strategic',
  'application/json-patch+json': 'json',
  'application/apply-patch+yaml': 'apply',
};

/** The verb the apiserver authorizes a proxy request as: from its HTTP method (requestinfo.go). */
const PROXY_VERBS: Record<string, string> = { GET: 'get', HEAD: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
/** The methods the pod and service proxies serve (ProxyREST.ConnectMethods); others are 405. */
const PROXY_METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS']);
/** Headers of one connection (RFC 9110 §7.6.1), which Go's ReverseProxy drops both ways. */
const HOP_BY_HOP = new Set(['connection', 'proxy-connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
/** CORS headers of a backend's answer, removed by the apiserver's proxy transport (corsRemovingTransport). */
const CORS = new Set(['access-control-allow-credentials', 'access-control-allow-headers', 'access-control-allow-methods', 'access-control-allow-origin']);

interface Route {
  verb: string;
  def?: ResourceDef;
  group: string;
  namespace?: string;
  name?: string;
  subresource?: string;
  /** Undecoded remainder after /proxy (pod proxy only). */
  proxyPath?: string;
  /** Handler for non-resource URLs (discovery, /version). */
  nonResource?: () => unknown;
  /** A group/version that is not served: the real server answers a plain-text 404 for these. */
  unknownGroupVersion?: boolean;
}

interface Fault {
  remaining: number;
  status: number;
  match?: (r: { method: string; path: string }) => boolean;
}

export async function startFakeKube(opts: FakeKubeOptions = {}): Promise<FakeKube> {
  const registry = new Registry();
  const store = new Store(opts.watchHistory ?? 1000);
  const gatewayApiVersion = opts.gatewayApiVersion ?? 'v1.3.0';
  store.gatewayApi = gatewayApiVersion;
  const controller = new DeploymentController(store);
  controller.readyAfterMs = opts.readyAfterMs ?? 50;
  const gateway = new GatewayController(store);
  let box: ClusterBox | undefined;
  let dataPlane: GatewayDataPlane | undefined;
  let kubeProxy: KubeProxy | undefined;
  if (opts.kubelet) {
    const network = await PodNetwork.create();
    try {
      const root = opts.kubelet.root ?? (await mkdtemp('/var/tmp/kube-box-'));
      const kubelet = new Kubelet({ store, network, root, recordEvent: (...a) => controller.recordEvent(...a), ...opts.kubelet });
      controller.kubelet = kubelet;
      dataPlane = new GatewayDataPlane(store);
      const gatewayUrl = await dataPlane.start();
      store.clusterIp = () => network.nextServiceIp();
      kubeProxy = new KubeProxy(network, dataPlane, store);
      box = { kubelet, network, gatewayUrl, gatewayStats: dataPlane.stats, relay: (port) => network.relay(port), kubeProxy };
    } catch (err) {
      await network.close();
      throw err;
    }
  }
  for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
    store.create(NAMESPACES, undefined, { metadata: { name: ns, labels: { 'kubernetes.io/metadata.name': ns } } }, { manager: 'kube-apiserver' });
  }

  // The Gateway API CRD, as `kubectl apply -f standard-install.yaml` leaves it: the bundle-version
  // and channel annotations and the v1 schema (from the same models the validation uses).
  const CRDS = resourceDef('customresourcedefinitions');
  const crdName = 'httproutes.gateway.networking.k8s.io';
  store.create(CRDS, undefined, httpRouteCrd(gatewayApiVersion), { manager: 'kubectl' });
  store.writeStatus(CRDS, undefined, crdName, {
    acceptedNames: { kind: 'HTTPRoute', listKind: 'HTTPRouteList', plural: 'httproutes', singular: 'httproute', categories: ['gateway-api'] },
    conditions: [
      { type: 'NamesAccepted', status: 'True', reason: 'NoConflicts', message: 'no conflicts found', lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') },
      { type: 'Established', status: 'True', reason: 'InitialNamesAccepted', message: 'the initial names have been accepted', lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') },
    ],
    storedVersions: ['v1'],
  }, 'kube-apiserver');

  const requests: FakeRequest[] = [];
  const faults: Fault[] = [];
  const forbidden: { verb: string; resource: string; group?: string }[] = [];
  const watches = new Set<ServerResponse>();
  let down = false;
  let delay = 0;
  let proxyHandler: PodProxyHandler | undefined;
  let serviceProxyHandler: ServiceProxyHandler | undefined;
  let url = '';

  const server: Server = createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      const e = err instanceof KubeError ? err : new KubeError(500, 'InternalError', `Internal error occurred: ${(err as Error)?.message ?? String(err)}`);
      if (!res.headersSent) sendStatus(res, e);
      else res.destroy();
    });
  });

  // ---- routing ---------------------------------------------------------------------------------

  function route(method: string, rawPath: string, query: URLSearchParams): Route {
    // A trailing slash is the same URL to the apiserver (ApisApi.getAPIVersions asks for /apis/).
    const raw = rawPath.split('/').slice(1);
    if (raw.length > 1 && raw[raw.length - 1] === '') raw.pop();
    const segs = raw.map((s) => decodeURIComponent(s));
    const p = segs.join('/');
    if (p === 'version') return { verb: 'get', group: '', nonResource: () => ({ major: '1', minor: '33', gitVersion: 'v1.33.0-fake', gitCommit: 'fake', gitTreeState: 'clean', buildDate: '2026-01-01T00:00:00Z', goVersion: 'go1.24', compiler: 'gc', platform: 'linux/amd64' }) };
    if (p === 'healthz' || p === 'readyz' || p === 'livez') return { verb: 'get', group: '', nonResource: () => 'ok' };
    if (p === 'api') return { verb: 'get', group: '', nonResource: () => registry.apiVersions(url.replace(/^https?:\/\//, '')) };
    if (p === 'apis') return { verb: 'get', group: '', nonResource: () => registry.apiGroupList() };

    let group: string;
    let version: string;
    let rest: string[];
    let rawRest: string[];
    if (segs[0] === 'api' && segs.length >= 2) {
      group = '';
      version = segs[1]!;
      rest = segs.slice(2);
      rawRest = raw.slice(2);
    } else if (segs[0] === 'apis' && segs.length === 2) {
      const g = segs[1]!;
      const doc = registry.apiGroup(g);
      return doc ? { verb: 'get', group: g, nonResource: () => doc } : { verb: 'get', group: g, unknownGroupVersion: true };
    } else if (segs[0] === 'apis' && segs.length >= 3) {
      group = segs[1]!;
      version = segs[2]!;
      rest = segs.slice(3);
      rawRest = raw.slice(3);
    } else {
      return { verb: 'get', group: '', unknownGroupVersion: true };
    }
    if (!registry.hasGroupVersion(group, version)) return { verb: method.toLowerCase(), group, unknownGroupVersion: true };
    if (rest.length === 0) return { verb: 'get', group, nonResource: () => registry.apiResourceList(group, version) };

    let watchPrefix = false;
    if (rest[0] === 'watch') {
      // Legacy /api/v1/watch/... URLs.
      watchPrefix = true;
      rest = rest.slice(1);
      rawRest = rawRest.slice(1);
    }
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3 && !(rest.length === 3 && (rest[2] === 'status' || rest[2] === 'finalize'))) {
      namespace = rest[1];
      rest = rest.slice(2);
      rawRest = rawRest.slice(2);
    }
    const def = registry.byResource(group, version, rest[0]!);
    if (!def || (def.namespaced && namespace === undefined && rest.length > 1) || (!def.namespaced && namespace !== undefined)) {
      return { verb: method.toLowerCase(), group, unknownGroupVersion: false };
    }
    const name = rest[1];
    const subresource = rest[2];
    const isWatch = watchPrefix || query.get('watch') === 'true' || query.get('watch') === '1';
    let verb: string;
    if (subresource === 'proxy') verb = PROXY_VERBS[method] ?? '';
    else if (name === undefined) verb = method === 'GET' ? (isWatch ? 'watch' : 'list') : method === 'POST' ? 'create' : method === 'DELETE' ? 'deletecollection' : method.toLowerCase();
    else verb = ({ GET: 'get', PUT: 'update', PATCH: 'patch', DELETE: 'delete', POST: 'create' } as Record<string, string>)[method] ?? method.toLowerCase();
    const r: Route = { verb, def, group, namespace, name, subresource };
    if (subresource === 'proxy') r.proxyPath = rawRest.slice(3).join('/');
    return r;
  }

  // ---- request handling ------------------------------------------------------------------------

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://fake');
    const method = req.method ?? 'GET';
    const r = route(method, u.pathname, u.searchParams);
    const record: FakeRequest = { method, path: u.pathname, query: Object.fromEntries(u.searchParams), verb: r.nonResource ? 'discovery' : r.verb, resource: r.def?.resource ?? '', group: r.group, status: 0 };
    if (r.subresource) record.subresource = r.subresource;
    if (r.namespace !== undefined) record.namespace = r.namespace;
    // A proxy's name segment is `name`, `name:port` or `scheme:name:port`: the object's name is recorded.
    if (r.name !== undefined) record.name = r.subresource === 'proxy' && r.name.split(':').length === 3 ? r.name.split(':')[1]! : r.name.split(':')[0]!;
    if (req.headers['content-type']) record.contentType = req.headers['content-type'];
    requests.push(record);
    res.on('finish', () => (record.status = res.statusCode));
    res.on('close', () => (record.status ||= res.statusCode));

    const raw = await readBody(req);
    const body = raw.toString('utf8');
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));

    // Faults first: they model the network/apiserver, not the API's semantics.
    if (down) return sendStatus(res, errors.serviceUnavailable());
    const fault = faults.find((f) => f.remaining > 0 && (!f.match || f.match({ method, path: u.pathname })));
    if (fault) {
      fault.remaining--;
      return sendStatus(res, statusForCode(fault.status));
    }
    if (r.unknownGroupVersion) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('404 page not found\n');
      return;
    }
    if (r.nonResource) return sendJson(res, 200, r.nonResource());
    if (!r.def) return sendStatus(res, errors.pageNotFound());
    const denied = forbidden.find((f) => (f.verb === '*' || f.verb === r.verb) && (f.resource === '*' || f.resource === r.def!.resource || f.resource === `${r.def!.resource}/${r.subresource}`) && (f.group === undefined || f.group === r.group));
    if (denied) return sendStatus(res, forbiddenError(r));
    if (r.def.resource === 'selfsubjectaccessreviews' && r.verb === 'create') return sendJson(res, 201, accessReview(body));
    // Proxies get the body as bytes: it is passed through, never decoded.
    if (r.subresource === 'proxy' && r.def.subresources.includes('proxy')) return proxy(r, req, res, u, raw);

    await dispatch(r, req, res, u.searchParams, body);
    // Watches stay open: record their status as soon as the headers are out.
    if (res.headersSent) record.status ||= res.statusCode;
  }

  /** SelfSubjectAccessReview: "may I?" answered from the same forbid() list the requests obey. */
  function accessReview(body: Buffer | string | undefined): unknown {
    const review = JSON.parse(String(body ?? '{}')) as { spec?: { resourceAttributes?: { verb?: string; group?: string; resource?: string; subresource?: string } } };
    const a = review.spec?.resourceAttributes ?? {};
    const resource = a.subresource ? `${a.resource}/${a.subresource}` : (a.resource ?? '');
    const hit = forbidden.find((f) => (f.verb === '*' || f.verb === a.verb) && (f.resource === '*' || f.resource === resource || f.resource === a.resource) && (f.group === undefined || f.group === (a.group ?? '')));
    return { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', metadata: { creationTimestamp: null }, spec: review.spec ?? {}, status: hit ? { allowed: false, reason: `forbidden by the fake's RBAC (${hit.verb} ${hit.resource})` } : { allowed: true, reason: 'fake: everything not forbidden is allowed' } };
  }

  function forbiddenError(r: Route): KubeError {
    const def = r.def!;
    const resource = r.subresource ? `${def.resource}/${r.subresource}` : def.resource;
    const subject = r.name !== undefined ? `${qualifiedResource(def)} "${r.name}"` : qualifiedResource(def);
    const scope = r.namespace !== undefined ? `in the namespace "${r.namespace}"` : 'at the cluster scope';
    const details: Record<string, string> = {};
    if (r.name !== undefined) details.name = r.name;
    details.group = def.group;
    details.kind = def.resource;
    return new KubeError(403, 'Forbidden', `${subject} is forbidden: User "${USER}" cannot ${r.verb} resource "${resource}" in API group "${def.group}" ${scope}`, details);
  }

  async function dispatch(r: Route, req: IncomingMessage, res: ServerResponse, q: URLSearchParams, rawBody: string): Promise<void> {
    const def = r.def!;
    const ns = def.namespaced ? r.namespace : undefined;
    const dryRun = q.getAll('dryRun').includes('All');
    const manager = q.get('fieldManager') ?? userAgentManager(req);
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    // The apiserver's default since 1.27 (server-side field validation GA) is Warn.
    const fieldValidation = (q.get('fieldValidation') || 'Warn') as FieldValidation;
    const warnings: string[] = [];
    const checked = { fieldValidation, warnings };
    const warn = () => {
      if (warnings.length) res.setHeader('Warning', warnings.map((w) => `299 - ${JSON.stringify(w)}`));
    };

    if (r.subresource && !def.subresources.includes(r.subresource)) return sendStatus(res, errors.pageNotFound());
    if (r.subresource === 'scale') return scale(r, res, q, rawBody, contentType, manager);
    const sub = r.subresource === 'status' ? ('status' as const) : undefined;

    switch (r.verb) {
      case 'get':
        return sendJson(res, 200, store.getOrThrow(def, ns, r.name!));
      case 'list': {
        const match = matcher(def, r, q);
        const items = store.list(def, ns, match).map((o) => (def.crd ? o : stripTypeMeta(o)));
        return sendJson(res, 200, { kind: `${def.kind}List`, apiVersion: apiVersionOf(def), metadata: { resourceVersion: String(store.currentRv()) }, items });
      }
      case 'watch':
        return watch(def, r, q, res);
      case 'create': {
        if (r.subresource) throw errors.methodNotAllowed();
        const obj = store.create(def, ns, parseBody(rawBody, contentType), { manager, dryRun, ...checked });
        warn();
        return sendJson(res, 201, obj);
      }
      case 'update': {
        const out = store.replace(def, ns, r.name!, parseBody(rawBody, contentType), { manager, dryRun, ...checked, ...(sub ? { subresource: sub } : {}) });
        warn();
        return sendJson(res, 200, out);
      }
      case 'patch': {
        const type = PATCH_TYPES[contentType];
        if (!type) throw errors.unsupportedMediaType(contentType);
        const patch = parseBody(rawBody, type === 'apply' ? 'application/yaml' : 'application/json');
        const existed = store.get(def, ns, r.name!) !== undefined;
        const force = q.get('force') === 'true';
        const out = store.patch(def, ns, r.name!, type, patch, { manager: type === 'apply' ? q.get('fieldManager') ?? '' : manager, dryRun, force, ...checked, ...(sub ? { subresource: sub } : {}) });
        warn();
        return sendJson(res, existed ? 200 : 201, out);
      }
      case 'delete': {
        const opts = rawBody ? (parseBody(rawBody, contentType || 'application/json') as any) : {};
        const policy = q.get('propagationPolicy') ?? opts?.propagationPolicy;
        const orphan = policy === 'Orphan' || q.get('orphanDependents') === 'true' || opts?.orphanDependents === true;
        const gone = store.delete(def, ns, r.name!, { dryRun, orphan, resourceVersion: opts?.preconditions?.resourceVersion });
        // Pods answer with the (terminating) object; most other types with a Success Status.
        if (def.resource === 'pods') return sendJson(res, 200, gone);
        return sendJson(res, 200, successStatus({ name: r.name!, ...(def.group ? { group: def.group } : {}), kind: def.resource, uid: gone.metadata.uid }));
      }
      case 'deletecollection': {
        const match = matcher(def, r, q);
        const gone = store.list(def, ns, match).map((o) => store.delete(def, o.metadata.namespace, o.metadata.name, { dryRun }));
        return sendJson(res, 200, { kind: `${def.kind}List`, apiVersion: apiVersionOf(def), metadata: { resourceVersion: String(store.currentRv()) }, items: gone });
      }
      default:
        throw errors.methodNotAllowed();
    }
  }

  function matcher(def: ResourceDef, r: Route, q: URLSearchParams): (o: any) => boolean {
    const labels = parseLabelSelector(q.get('labelSelector'));
    const fields = parseFieldSelector(q.get('fieldSelector'), def);
    return (o) => (!def.namespaced || r.namespace === undefined || o.metadata.namespace === r.namespace) && labels(o) && fields(o);
  }

  /** autoscaling/v1 Scale view of a Deployment (what `kubectl scale` and HPAs use). */
  function scale(r: Route, res: ServerResponse, q: URLSearchParams, rawBody: string, contentType: string, manager: string): void {
    const def = r.def!;
    const toScale = (d: any) => ({
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      metadata: { name: d.metadata.name, namespace: d.metadata.namespace, uid: d.metadata.uid, resourceVersion: d.metadata.resourceVersion, creationTimestamp: d.metadata.creationTimestamp },
      spec: { replicas: d.spec.replicas },
      status: { replicas: d.status?.replicas ?? 0, selector: Object.entries(d.spec.selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(',') },
    });
    const live = store.getOrThrow(def, r.namespace, r.name!);
    if (r.verb === 'get') return sendJson(res, 200, toScale(live));
    // Edit the Scale view with whatever the client sent, then write spec.replicas back.
    let edited: any;
    if (r.verb === 'update') edited = parseBody(rawBody, contentType);
    else if (r.verb === 'patch' && PATCH_TYPES[contentType] === 'json') edited = jsonPatch(toScale(live), parseBody(rawBody, contentType));
    else if (r.verb === 'patch' && (PATCH_TYPES[contentType] === 'merge' || PATCH_TYPES[contentType] === 'strategic')) edited = mergePatch(toScale(live), parseBody(rawBody, contentType));
    else throw errors.unsupportedMediaType(contentType);
    const replicas = edited?.spec?.replicas;
    if (typeof replicas !== 'number' || replicas < 0) {
      throw new KubeError(422, 'Invalid', `Scale.autoscaling "${r.name}" is invalid: spec.replicas: Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`, { name: r.name!, group: 'autoscaling', kind: 'Scale', causes: [{ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`, field: 'spec.replicas' }] });
    }
    const rv = edited?.metadata?.resourceVersion;
    if (r.verb === 'update' && rv && rv !== live.metadata.resourceVersion) throw errors.conflict(def, r.name!);
    const patched = store.patch(def, r.namespace, r.name!, 'merge', { spec: { replicas } }, { manager, dryRun: q.getAll('dryRun').includes('All') });
    sendJson(res, 200, toScale(patched));
  }

  async function proxy(r: Route, req: IncomingMessage, res: ServerResponse, u: URL, body: Buffer): Promise<void> {
    if (!PROXY_METHODS.has(req.method ?? '')) throw errors.methodNotAllowed();
    if (r.def === SERVICES) return serviceProxy(r, req, res, u, body);
    const q = u.searchParams;
    // The name segment may be `pod`, `pod:port` or `scheme:pod:port`.
    const parts = r.name!.split(':');
    const podName = parts.length === 3 ? parts[1]! : parts[0]!;
    const port = parts.length === 3 ? parts[2]! : parts[1] ?? '';
    const pod = store.get(PODS, r.namespace, podName);
    if (!pod) throw errors.notFound(PODS, podName);
    if (box) {
      const ip = pod.status?.podIP;
      if (!ip) throw errors.serviceUnavailable(`address not allowed`);
      if (!/^\d+$/.test(port)) throw errors.badRequest(`invalid port: ${JSON.stringify(port)}`);
      const search = q.toString();
      return forward({ scheme: 'http', ip, port: Number(port) }, '/' + (r.proxyPath ?? '') + (search ? `?${search}` : ''), req, res, u, body);
    }
    if (!proxyHandler) throw errors.serviceUnavailable(`no endpoints available for pod "${podName}"`);
    if (!pod.status?.podIP) throw errors.serviceUnavailable(`error trying to reach service: pod ${podName} has no IP address yet`);
    const path = '/' + decodeURIComponent(r.proxyPath ?? '');
    let out: { status: number; body: unknown };
    try {
      out = await proxyHandler({ namespace: r.namespace!, pod, port, path, query: q });
    } catch (err) {
      throw errors.serviceUnavailable(`error trying to reach service: ${(err as Error)?.message ?? String(err)}`);
    }
    sendAnswer(res, out.status, out.body);
  }

  /**
   * The service proxy, as the real one resolves it (service storage ResourceLocation): the name is
   * `svc`, `svc:port` or `scheme:svc:port` (scheme "", http or https; else 400 invalid service
   * request); a port *number* must be one of the Service's ports (the Service is read: 404 when
   * missing, 503 "no service port N found") and stands for that port's name; then the Service's
   * Endpoints (404 `endpoints "svc" not found` without a Service or a selector; no subsets at all:
   * 503 "no endpoints available for service \"svc\""), and a *ready* address whose port carries that
   * name (none: 503 "no endpoints available for service \"<the whole id>\""). The endpoint is then
   * proxied like any backend (forward()): method, body, query and headers through, answer back.
   */
  async function serviceProxy(r: Route, req: IncomingMessage, res: ServerResponse, u: URL, body: Buffer): Promise<void> {
    const id = r.name!;
    const parts = id.split(':');
    const [scheme, name, port] = parts.length === 1 ? ['', parts[0]!, ''] : parts.length === 2 ? ['', parts[0]!, parts[1]!] : parts.length === 3 ? [parts[0]!, parts[1]!, parts[2]!] : ['', '', ''];
    if (name === '' || !['', 'http', 'https'].includes(scheme)) throw errors.badRequest(`invalid service request ${JSON.stringify(id)}`);
    let portName = port;
    // strconv.ParseInt(portStr, 10, 64): an optional sign and decimal digits.
    if (/^[+-]?\d+$/.test(port)) {
      const svc = store.get(SERVICES, r.namespace, name);
      if (!svc) throw errors.notFound(SERVICES, name);
      const n = Number(port);
      const sp = (svc.spec?.ports ?? []).find((p: any) => p.port === n);
      if (!sp) throw errors.serviceUnavailable(`no service port ${n} found for service ${JSON.stringify(name)}`);
      portName = sp.name ?? '';
    }
    const subsets = endpointsOf(r.namespace!, name);
    if (!subsets) throw new KubeError(404, 'NotFound', `endpoints ${JSON.stringify(name)} not found`, { name, kind: 'endpoints' });
    if (subsets.length === 0) throw errors.serviceUnavailable(`no endpoints available for service ${JSON.stringify(name)}`);
    const candidates = subsets.filter((e) => e.ready && e.portName === portName);
    if (candidates.length === 0) throw errors.serviceUnavailable(`no endpoints available for service ${JSON.stringify(id)}`);
    const key = `${r.namespace}/${name}`;
    const n = serviceRr.get(key) ?? 0;
    serviceRr.set(key, n + 1);
    const ep = candidates[n % candidates.length]!;
    // path.Join(location.Path, proxyOpts.Path): cleaned ("//", ".", ".."), a trailing "/" kept; an
    // empty path of a GET or HEAD is redirected to ".../proxy/" (UpgradeAwareHandler).
    const rawPath = r.proxyPath ?? '';
    const trailing = u.pathname.endsWith('/');
    if (rawPath === '' && !trailing && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(301, { Location: `${u.pathname}/${u.search}` });
      return void res.end();
    }
    let path = posix.join('/', decodeURIComponent(rawPath));
    if (trailing && !path.endsWith('/')) path += '/';
    const target = encodeURI(path) + u.search;
    if (box) return forward({ scheme: scheme === 'https' ? 'https' : 'http', ip: ep.pod.status.podIP, port: ep.port }, target, req, res, u, body);
    if (!serviceProxyHandler) throw errors.serviceUnavailable(`error trying to reach service: dial tcp ${ep.pod.status.podIP}:${ep.port}: connect: no route to host (simulated pods have no network: use onServiceProxy or the kubelet)`);
    let out: { status: number; headers?: Record<string, string>; body: unknown };
    try {
      out = await serviceProxyHandler({ namespace: r.namespace!, service: store.get(SERVICES, r.namespace, name), pod: ep.pod, port: ep.port, method: req.method ?? 'GET', path, query: u.searchParams, headers: forwardedHeaders(req, u), body });
    } catch (err) {
      throw errors.serviceUnavailable(`error trying to reach service: ${(err as Error)?.message ?? String(err)}`);
    }
    if (res.destroyed) return;
    // The answer goes back as forward() passes a real one: without hop-by-hop and CORS headers.
    const back = Object.fromEntries(Object.entries(out.headers ?? {}).filter(([k]) => !HOP_BY_HOP.has(k.toLowerCase()) && !CORS.has(k.toLowerCase())));
    sendAnswer(res, out.status, out.body, back);
  }

  const serviceRr = new Map<string, number>();

  /**
   * The Service's Endpoints as the endpoints controller writes them, flattened: one entry per pod
   * and Service port whose target port the pod resolves (a named targetPort the pod lacks is left
   * out), ready or not (a not-ready pod is a notReadyAddress: the subsets are not empty, but it is
   * never proxied to). Pods without an IP, terminating or finished are not endpoints. Undefined
   * when there is no Endpoints object: no Service, or a Service without a selector.
   */
  function endpointsOf(namespace: string, name: string): Array<{ pod: any; ready: boolean; portName: string; port: number }> | undefined {
    const svc = store.get(SERVICES, namespace, name);
    const selector: Record<string, string> | undefined = svc?.spec?.selector;
    if (!svc || !selector || Object.keys(selector).length === 0) return undefined;
    const pods = store
      .list(PODS, namespace, (p) => Object.entries(selector).every(([k, v]) => p.metadata.labels?.[k] === v))
      .filter((p) => p.status?.podIP && !p.metadata.deletionTimestamp && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
    return pods.flatMap((pod) => {
      const ready = (pod.status.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True');
      return (svc.spec.ports ?? []).flatMap((sp: any) => {
        const tp = sp.targetPort ?? sp.port;
        const port = typeof tp === 'number' ? tp : (pod.spec.containers ?? []).flatMap((c: any) => c.ports ?? []).find((x: any) => x.name === tp)?.containerPort;
        return typeof port === 'number' ? [{ pod, ready, portName: sp.name ?? '', port }] : [];
      });
    });
  }

  /**
   * What a proxied backend receives, as Go's ReverseProxy and the apiserver's proxy transport send
   * it: the client's headers minus hop-by-hop ones and Authorization (the authentication filter
   * removes it once it has authenticated the request), the client's Host, X-Forwarded-For appended,
   * X-Forwarded-Uri the original path.
   */
  function forwardedHeaders(req: IncomingMessage, u: URL): IncomingHttpHeaders {
    const named = new Set(String(req.headers.connection ?? '').split(',').map((h) => h.trim().toLowerCase()).filter(Boolean));
    const out: IncomingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP_BY_HOP.has(k) && !named.has(k) && k !== 'authorization') out[k] = v;
    const client = req.socket.remoteAddress ?? '';
    out['x-forwarded-for'] = out['x-forwarded-for'] ? `${String(out['x-forwarded-for'])}, ${client}` : client;
    // path.Join(pathPrepend, the backend path): cleaned, a trailing slash kept (proxy transport.go).
    out['x-forwarded-uri'] = posix.normalize(u.pathname);
    return out;
  }

  /**
   * The real proxies' round trip to a backend: the request (method, body, headers) to ip:port, the
   * answer's status, headers (minus hop-by-hop and CORS ones) and body passed back as they come; a
   * failed dial is a 503 with the apiserver's "error trying to reach service" text. No timeout of
   * its own (proxy requests are long-running to the apiserver): the client's decides, and a client
   * that goes away cancels the backend request.
   */
  function forward(to: { scheme: 'http' | 'https'; ip: string; port: number }, path: string, req: IncomingMessage, res: ServerResponse, u: URL, body: Buffer): Promise<void> {
    return new Promise((resolve) => {
      const headers: OutgoingHttpHeaders = { ...forwardedHeaders(req, u) };
      if (body.length > 0 || req.headers['content-length'] !== undefined) headers['content-length'] = String(body.length);
      const send = to.scheme === 'https' ? httpsRequest : httpRequest;
      const up = send({ host: to.ip, port: to.port, path, method: req.method, headers, ...(to.scheme === 'https' ? { rejectUnauthorized: false } : {}) }, (r) => {
        const back: OutgoingHttpHeaders = {};
        for (const [k, v] of Object.entries(r.headers)) if (v !== undefined && !HOP_BY_HOP.has(k) && !CORS.has(k)) back[k] = v;
        res.writeHead(r.statusCode ?? 502, back);
        r.pipe(res);
        r.on('end', resolve).on('error', resolve).on('close', resolve);
      });
      res.on('close', () => {
        if (!res.writableFinished) up.destroy();
        resolve();
      });
      up.on('error', (err: NodeJS.ErrnoException) => {
        if (res.headersSent || res.destroyed) return void (res.destroy(), resolve());
        const reason = err.code === 'ECONNREFUSED' ? `dial tcp ${to.ip}:${to.port}: connect: connection refused` : err.message;
        sendStatus(res, errors.serviceUnavailable(`error trying to reach service: ${reason}`));
        resolve();
      });
      up.end(body);
    });
  }

  function watch(def: ResourceDef, r: Route, q: URLSearchParams, res: ServerResponse): void {
    const match = matcher(def, r, q);
    const rvParam = q.get('resourceVersion') ?? '';
    const fromRv = rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    if (fromRv !== undefined && !Number.isInteger(fromRv)) throw errors.badRequest(`resourceVersion: Invalid value: "${rvParam}": strconv.ParseUint: parsing "${rvParam}": invalid syntax`);
    const bookmarks = q.get('allowWatchBookmarks') === 'true';

    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    watches.add(res);
    const send = (type: string, object: unknown) => {
      if (!res.writableEnded && !res.destroyed) res.write(JSON.stringify({ type, object }) + '\n');
    };
    if (fromRv !== undefined && fromRv < store.oldestWatchableRv()) {
      // The real server opens the stream, then sends one ERROR event and closes.
      send('ERROR', new KubeError(410, 'Expired', `too old resource version: ${fromRv} (${store.oldestWatchableRv() + 1})`).toStatus());
      watches.delete(res);
      res.end();
      return;
    }

    /** Selector-aware translation: objects entering/leaving the selection are ADDED/DELETED. */
    const deliver = (e: StoreEvent) => {
      if (e.def !== def) return;
      const now = match(e.object);
      const before = e.previous !== undefined && match(e.previous);
      if (e.type === 'ADDED' && now) send('ADDED', e.object);
      else if (e.type === 'MODIFIED') {
        if (now && before) send('MODIFIED', e.object);
        else if (now) send('ADDED', e.object);
        else if (before) send('DELETED', e.object);
      } else if (e.type === 'DELETED' && (before || now)) send('DELETED', e.object);
    };
    const unsubscribe = store.subscribe(deliver);
    let timer: NodeJS.Timeout | undefined;
    const end = () => {
      unsubscribe();
      if (timer) clearTimeout(timer);
      watches.delete(res);
      if (!res.writableEnded) res.end();
    };
    if (fromRv === undefined) {
      for (const o of store.list(def, def.namespaced ? r.namespace : undefined, match)) send('ADDED', o);
      if (bookmarks && q.get('sendInitialEvents') === 'true') {
        send('BOOKMARK', { kind: def.kind, apiVersion: apiVersionOf(def), metadata: { resourceVersion: String(store.currentRv()), annotations: { 'k8s.io/initial-events-end': 'true' } } });
      }
    } else {
      for (const e of store.eventsSince(fromRv)) deliver(e);
    }
    const timeout = Number(q.get('timeoutSeconds') ?? '');
    if (timeout > 0) {
      timer = setTimeout(() => {
        if (bookmarks) send('BOOKMARK', { kind: def.kind, apiVersion: apiVersionOf(def), metadata: { resourceVersion: String(store.currentRv()) } });
        end();
      }, timeout * 1000);
    }
    res.on('close', end);
  }

  // ---- plumbing --------------------------------------------------------------------------------

  function closeWatches(): void {
    for (const w of [...watches]) w.end();
    watches.clear();
  }

  let connections = 0;
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const kubeconfigObject = (namespace = 'default') => ({
    clusters: [{ name: 'fake', server: url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'u', namespace }],
    currentContext: 'fake',
  });

  const fake: FakeKube = {
    url,
    kubeConfig(namespace) {
      const kc = new KubeConfig();
      kc.loadFromOptions(kubeconfigObject(namespace));
      return kc;
    },
    kubeconfigYaml(namespace = 'default') {
      return YAML.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'fake', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'u', user: { token: 't' } }],
        contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'u', namespace } }],
        'current-context': 'fake',
        preferences: {},
      });
    },
    async close() {
      controller.close();
      gateway.close();
      if (box) {
        kubeProxy?.close();
        await dataPlane!.close();
        await box.kubelet.close();
        await box.network.close();
      }
      closeWatches();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    get(apiVersion, kind, namespace, name) {
      const def = registry.anyByKind(apiVersion, kind);
      if (!def) throw new Error(`fake kube: unknown kind ${apiVersion} ${kind}`);
      return store.get(def, namespace, name);
    },
    list(apiVersion, kind, namespace) {
      const def = registry.anyByKind(apiVersion, kind);
      if (!def) throw new Error(`fake kube: unknown kind ${apiVersion} ${kind}`);
      return store.list(def, namespace);
    },
    requests,
    resetRequests() {
      requests.length = 0;
    },
    failNext(n, status, match) {
      faults.push(match ? { remaining: n, status, match } : { remaining: n, status });
    },
    setDown(d) {
      down = d;
      // An outage also drops the long-running watch connections.
      if (d) closeWatches();
    },
    forbid(verb, resource, group) {
      forbidden.push(group === undefined ? { verb, resource } : { verb, resource, group });
    },
    delayMs(ms) {
      delay = ms;
    },
    withoutGatewayApi() {
      registry.hideGroup(GATEWAY_GROUP);
      if (store.get(CRDS, undefined, crdName)) store.delete(CRDS, undefined, crdName);
    },
    controller: {
      behave(match: BehaviourMatch, mode: PodFailureMode) {
        controller.behave(match, mode);
      },
      get readyAfterMs() {
        return controller.readyAfterMs;
      },
      set readyAfterMs(ms: number) {
        controller.readyAfterMs = ms;
      },
    },
    gateway,
    get connections() {
      return connections;
    },
    onPodProxy(handler) {
      proxyHandler = handler;
    },
    onServiceProxy(handler) {
      serviceProxyHandler = handler;
    },
    ...(box ? { box } : {}),
  };
  return fake;
}

function httpRouteCrd(version: GatewayApiVersion): unknown {
  const schema = schemaOf('gateway.networking.k8s.io/v1', 'HTTPRoute', version)!;
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: 'httproutes.gateway.networking.k8s.io',
      annotations: {
        'api-approved.kubernetes.io': 'https://github.com/kubernetes-sigs/gateway-api/pull/2997',
        'gateway.networking.k8s.io/bundle-version': version,
        'gateway.networking.k8s.io/channel': 'standard',
      },
    },
    spec: {
      group: 'gateway.networking.k8s.io',
      names: { categories: ['gateway-api'], kind: 'HTTPRoute', listKind: 'HTTPRouteList', plural: 'httproutes', singular: 'httproute' },
      scope: 'Namespaced',
      versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: openApiSchema(schema) }, subresources: { status: {} } }],
    },
  };
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseBody(raw: string, contentType: string): unknown {
  if (raw.trim() === '') throw errors.badRequest('the body of the request was empty');
  try {
    return contentType.includes('yaml') ? YAML.parse(raw) : JSON.parse(raw);
  } catch (err) {
    throw errors.badRequest(`error decoding ${contentType.includes('yaml') ? 'YAML' : 'JSON'}: ${(err as Error).message}`);
  }
}

/** Default field manager for non-apply writes: the User-Agent's product token, like the real server. */
function userAgentManager(req: IncomingMessage): string {
  return (req.headers['user-agent'] ?? 'unknown').split('/')[0]!.trim() || 'unknown';
}

/** Built-in list items come without apiVersion/kind (CRD lists keep them), as on the real server. */
function stripTypeMeta(o: any): any {
  const { apiVersion: _a, kind: _k, ...rest } = o;
  return clone(rest);
}

/** A hook's answer: text, bytes or JSON, with the hook's headers. */
function sendAnswer(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (typeof body === 'string') {
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
    res.end(body);
  } else if (body instanceof Uint8Array) {
    res.writeHead(status, { 'Content-Type': 'application/octet-stream', ...headers });
    res.end(body);
  } else {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
    res.end(text);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendStatus(res: ServerResponse, e: KubeError): void {
  const headers: Record<string, string> = {};
  if (e.code === 429 || e.code === 503) headers['Retry-After'] = '1';
  const text = JSON.stringify(e.toStatus());
  res.writeHead(e.code, { ...headers, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(text)) });
  res.end(text);
}
