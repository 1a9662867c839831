import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { ApisApi, KubeConfig, KubernetesObjectApi, Observable, PatchStrategy, Watch, type KubernetesObject, type ObservableMiddleware } from '@kubernetes/client-node';
import { ModelctlError, ExitCode, UnavailableError, UsageError } from '../../core/errors.js';
import { withTimeout } from '../../util/timeout.js';
import { explainUnknownFields, parseWarnings, unknownFieldsOf } from './field-validation.js';
import { FIELD_MANAGER } from './names.js';

/**
 * The one door to the API server: loading a KubeConfig the way kubectl users expect, and a thin
 * typed wrapper over @kubernetes/client-node's generic object API that turns the server's answers
 * into modelctl errors (403 → which permission, 5xx/timeouts → retried with backoff, 404 → undefined).
 * Conflicts (409) are NOT retried here: only the caller knows whether to re-read (ledger CAS) or not.
 */

export interface KubeConnectOptions {
  /** --kubeconfig (or modelctl.yaml kubernetes.kubeconfig). */
  kubeconfig?: string | undefined;
  /** --context (or modelctl.yaml kubernetes.context). */
  context?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Home directory holding .kube/config (tests point it elsewhere). */
  home?: string;
}

export interface KubeConnection {
  kc: KubeConfig;
  /** The context's namespace, when it names one. */
  contextNamespace: string | undefined;
  context: string;
  server: string;
  /** Where the configuration came from, for messages: "--kubeconfig /x", "KUBECONFIG", "~/.kube/config", "in-cluster". */
  source: string;
}

/** Nothing names a cluster at all (what `deploy --dry-run` works without). */
export class NoKubeConfigError extends UsageError {
  constructor() {
    super('no Kubernetes configuration found (no --kubeconfig, KUBECONFIG, ~/.kube/config or in-cluster service account)', {
      hint: 'point modelctl at a cluster with --kubeconfig <file> (and --context <name>), or use --target local',
    });
  }
}

const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * kubectl's order: --kubeconfig, then KUBECONFIG, then ~/.kube/config, then the in-cluster service
 * account. client-node's loadFromDefault() silently falls back to http://localhost:8080 when none
 * exists, which turns "you forgot to configure a cluster" into a confusing connection error against
 * a port nobody listens on; we never let that fallback through.
 */
export function connectKube(opts: KubeConnectOptions = {}): KubeConnection {
  const env = opts.env ?? process.env;
  const kc = new KubeConfig();
  let source: string;
  try {
    if (opts.kubeconfig) {
      if (!existsSync(opts.kubeconfig)) {
        throw new UsageError(`kubeconfig ${opts.kubeconfig} does not exist`, { hint: 'pass the path of a kubeconfig file to --kubeconfig' });
      }
      kc.loadFromFile(opts.kubeconfig);
      source = `--kubeconfig ${opts.kubeconfig}`;
    } else if (env.KUBECONFIG) {
      const files = env.KUBECONFIG.split(path.delimiter).filter((f) => f && existsSync(f));
      if (files.length === 0) {
        throw new UsageError(`KUBECONFIG=${env.KUBECONFIG} names no existing file`, { hint: 'fix KUBECONFIG or pass --kubeconfig' });
      }
      kc.loadFromFile(files[0]!);
      for (const f of files.slice(1)) {
        const more = new KubeConfig();
        more.loadFromFile(f);
        kc.mergeConfig(more);
      }
      source = `KUBECONFIG (${files.join(path.delimiter)})`;
    } else if (existsSync(path.join(opts.home ?? homedir(), '.kube', 'config'))) {
      kc.loadFromFile(path.join(opts.home ?? homedir(), '.kube', 'config'));
      source = '~/.kube/config';
    } else if (env.KUBERNETES_SERVICE_HOST && existsSync(IN_CLUSTER_TOKEN)) {
      kc.loadFromCluster();
      source = 'in-cluster service account';
    } else {
      throw new NoKubeConfigError();
    }
  } catch (err) {
    if (err instanceof ModelctlError) throw err;
    throw new UsageError(`cannot read the Kubernetes configuration: ${err instanceof Error ? err.message : String(err)}`, {
      hint: 'check the kubeconfig file (kubectl config view shows what it holds)',
      cause: err,
    });
  }
  if (opts.context) {
    if (!kc.getContexts().some((c) => c.name === opts.context)) {
      throw new UsageError(`context ${JSON.stringify(opts.context)} is not in ${source}`, {
        hint: `known contexts: ${kc.getContexts().map((c) => c.name).join(', ') || 'none'}`,
      });
    }
    kc.setCurrentContext(opts.context);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) {
    throw new UsageError(`the current context of ${source} names no cluster with a server`, { hint: 'pick a context with --context <name>' });
  }
  // The library's own fallback cluster, reached e.g. through an empty kubeconfig: never what the user meant.
  if (cluster.name === 'cluster' && cluster.server === 'http://localhost:8080') {
    throw new UsageError(`${source} resolved to client-node's fallback http://localhost:8080, not a configured cluster`, {
      hint: 'pass --kubeconfig <file> (and --context <name>) naming a real cluster',
    });
  }
  const context = kc.getCurrentContext();
  const contextNamespace = kc.getContextObject(context)?.namespace || undefined;
  reuseConnections(kc);
  return { kc, contextNamespace, context, server: cluster.server, source };
}

const POOLED = Symbol('modelctl.pooledDispatchers');

/**
 * client-node 2.0 builds a new undici Agent for every request whenever the cluster has TLS options
 * (a CA, a client certificate, skip-verify: every real cluster), so each API call pays a fresh
 * TCP + TLS handshake and leaves a connection behind. Reuse one dispatcher per distinct set of
 * options instead (a rotated client certificate is a new set). The method is private in the
 * typings, hence the cast; if a future client-node renames it, this quietly does nothing.
 */
export function reuseConnections(kc: KubeConfig): void {
  const target = kc as unknown as Record<PropertyKey, unknown> & { createDispatcher?: (cluster: unknown, agentOptions: Record<string, unknown>) => unknown };
  if (target[POOLED] || typeof target.createDispatcher !== 'function') return;
  const original = target.createDispatcher.bind(kc);
  const pool = new Map<string, unknown>();
  target.createDispatcher = (cluster, agentOptions) => {
    const c = cluster as { server?: string; proxyUrl?: string } | null;
    const key = JSON.stringify([c?.server, c?.proxyUrl, Object.entries(agentOptions).map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString('base64') : v])]);
    if (!pool.has(key)) pool.set(key, original(cluster, agentOptions));
    return pool.get(key);
  };
  target[POOLED] = true;
}

/** How requests that failed for reasons worth retrying (5xx, 429, timeouts, refused connections) are retried. */
export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** One request longer than this counts as a timeout (and is retried). */
  requestTimeoutMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 6, baseDelayMs: 200, maxDelayMs: 5_000, requestTimeoutMs: 30_000 };

/** A 409 from the API server: a stale resourceVersion (Conflict) or an object that exists (AlreadyExists). */
export class KubeConflictError extends ModelctlError {
  constructor(
    message: string,
    readonly reason: string,
  ) {
    super(ExitCode.conflict, message);
  }
}

/** What an API status body says, as far as it says anything. */
interface StatusBody {
  message?: string;
  reason?: string;
  details?: { causes?: Array<{ message?: string; field?: string }> };
}

function statusOf(err: unknown): { code: number; body: StatusBody } | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err) || typeof (err as { code: unknown }).code !== 'number') return undefined;
  const raw = (err as { body?: unknown }).body;
  let body: StatusBody = {};
  if (typeof raw === 'string') {
    try {
      body = JSON.parse(raw) as StatusBody;
    } catch {
      body = { message: raw };
    }
  } else if (raw && typeof raw === 'object') {
    body = raw as StatusBody;
  }
  return { code: (err as { code: number }).code, body };
}

/** Connection-level failures (no HTTP answer at all): refused, reset, DNS, our own timeout. */
function isTransportError(err: unknown): boolean {
  if (err instanceof RequestTimeoutError) return true;
  const codes = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT']);
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && codes.has(code)) return true;
    if (e instanceof TypeError && /fetch failed/.test(e.message)) return true;
  }
  return false;
}

class RequestTimeoutError extends Error {}

function retryable(err: unknown): boolean {
  const s = statusOf(err);
  // A server-side apply with a field the schema lacks is answered 500 (kubernetes#122480, #139253):
  // deterministic, never worth a retry.
  if (s) return (s.code >= 500 && unknownFieldsOf(s.body.message ?? '').length === 0) || s.code === 429;
  return isTransportError(err);
}

/** Which Role rule grants a verb on a resource; a hook so rbac.ts (the Role we print) stays the one source. */
export type PermissionExplainer = (verb: string, resource: string, group: string) => string | undefined;

export interface KubeApiOptions {
  retry?: Partial<RetryPolicy>;
  sleep?: (ms: number) => Promise<void>;
  explainPermission?: PermissionExplainer;
  /** Server-side apply field manager (one for everything modelctl writes). */
  fieldManager?: string;
  /**
   * Every `Warning` header the API server sends (deprecations, unknown fields a server without Strict
   * support dropped…), once per distinct text: never ignored, the caller shows it (note / log).
   */
  onWarning?: (warning: string, request: { method: string; path: string }) => void;
}

/** The HTTP methods that write: each is sent with fieldValidation=Strict. */
const WRITES = new Set(['POST', 'PUT', 'PATCH']);

/**
 * client-node middleware: fieldValidation=Strict on every write (POST, PUT, PATCH — server-side apply
 * included), so an unknown field is a 400 instead of being silently dropped (the API server's default,
 * Warn), and every Warning header handed to `onWarning`.
 */
export function strictWritesMiddleware(onWarning: (warning: string, request: { method: string; path: string }) => void): ObservableMiddleware {
  const seen = new Set<string>();
  let last = { method: '', path: '' };
  return {
    pre: (ctx) => {
      const method = String(ctx.getHttpMethod()).toUpperCase();
      if (WRITES.has(method)) ctx.setQueryParam('fieldValidation', 'Strict');
      last = { method, path: new URL(ctx.getUrl()).pathname };
      return new Observable(Promise.resolve(ctx));
    },
    post: (rsp) => {
      for (const w of parseWarnings(rsp.headers.warning ?? rsp.headers.Warning)) {
        if (seen.has(w)) continue;
        seen.add(w);
        onWarning(w, last);
      }
      return new Observable(Promise.resolve(rsp));
    },
  };
}

/** Add the Strict/Warning middleware to a client made by KubeConfig.makeApiClient. */
export function withStrictWrites<T>(client: T, onWarning: (warning: string, request: { method: string; path: string }) => void): T {
  // KubernetesObjectApi holds its configuration; the generated Object*Api clients hold it in .api.
  type Holder = { configuration?: { middleware?: unknown[] }; api?: { configuration?: { middleware?: unknown[] } } };
  const holder = client as unknown as Holder;
  const config = holder.configuration ?? holder.api?.configuration;
  if (!config?.middleware) throw new Error('client-node changed: an API client without configuration.middleware cannot send fieldValidation=Strict');
  config.middleware.push(strictWritesMiddleware(onWarning));
  return client;
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

/** The plural resource and group of the kinds modelctl touches (for messages and watch paths). */
const RESOURCES: Record<string, { resource: string; group: string }> = {
  Deployment: { resource: 'deployments', group: 'apps' },
  Service: { resource: 'services', group: '' },
  ConfigMap: { resource: 'configmaps', group: '' },
  Pod: { resource: 'pods', group: '' },
  Event: { resource: 'events', group: '' },
  Lease: { resource: 'leases', group: 'coordination.k8s.io' },
  HTTPRoute: { resource: 'httproutes', group: 'gateway.networking.k8s.io' },
};

export function resourceOf(kind: string): { resource: string; group: string } {
  return RESOURCES[kind] ?? { resource: `${kind.toLowerCase()}s`, group: '' };
}

/** The collection URL of a kind in a namespace: /api/v1/namespaces/ns/pods, /apis/apps/v1/namespaces/ns/deployments. */
export function collectionPath(apiVersion: string, kind: string, namespace: string): string {
  const prefix = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  return `${prefix}/namespaces/${encodeURIComponent(namespace)}/${resourceOf(kind).resource}`;
}

export class KubeApi {
  readonly objects: KubernetesObjectApi;
  private readonly retry: RetryPolicy;
  private readonly sleep: (ms: number) => Promise<void>;
  readonly fieldManager: string;
  private gatewayApi: Promise<boolean> | undefined;
  private readonly onWarning: (warning: string, request: { method: string; path: string }) => void;

  constructor(
    readonly kc: KubeConfig,
    private readonly opts: KubeApiOptions = {},
  ) {
    reuseConnections(kc);
    this.onWarning = (w, r) => (opts.onWarning ?? ((text) => process.stderr.write(`modelctl: the Kubernetes API server warns: ${text}\n`)))(w, r);
    this.objects = withStrictWrites(KubernetesObjectApi.makeApiClient(kc), this.onWarning);
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.fieldManager = opts.fieldManager ?? FIELD_MANAGER;
  }

  /** Another client-node API client on the same connection, with the same Strict writes and Warning handling. */
  client<T>(type: new (...args: never[]) => T): T {
    return withStrictWrites(this.kc.makeApiClient(type as never) as T, this.onWarning);
  }

  get server(): string {
    return this.kc.getCurrentCluster()?.server ?? '(no server)';
  }

  /**
   * Run one request with retries on 5xx/429/timeouts/refused connections (exponential backoff with
   * jitter), then translate what is left into modelctl errors. `what` names the request in messages.
   */
  async call<T>(what: { verb: string; kind: string; namespace: string; name?: string }, op: () => Promise<T>): Promise<T> {
    let lastErr: unknown;
    for (let attempt = 1; attempt <= this.retry.attempts; attempt++) {
      try {
        const ms = this.retry.requestTimeoutMs;
        return await withTimeout(op(), ms, () => new RequestTimeoutError(`no answer within ${ms} ms`));
      } catch (err) {
        lastErr = err;
        if (!retryable(err) || attempt === this.retry.attempts) break;
        const backoff = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1));
        await this.sleep(backoff / 2 + Math.random() * (backoff / 2));
      }
    }
    throw this.translate(what, lastErr);
  }

  /** A failed request as the error a user can act on. */
  translate(what: { verb: string; kind: string; namespace: string; name?: string }, err: unknown): Error {
    if (err instanceof ModelctlError) return err;
    const { resource, group } = resourceOf(what.kind);
    const target = `${what.kind}${what.name ? ` ${what.name}` : 's'} in namespace ${what.namespace}`;
    const s = statusOf(err);
    if (!s) {
      return new UnavailableError(`cannot reach the Kubernetes API server ${this.server} to ${what.verb} ${target}: ${err instanceof Error ? err.message : String(err)}`, {
        hint: 'check the cluster is up and the kubeconfig points at it (kubectl cluster-info); retried with backoff before giving up',
        cause: err,
      });
    }
    const message = s.body.message ?? `HTTP ${s.code}`;
    // A policy of the cluster (an admission webhook such as Kyverno or Gatekeeper, a ValidatingAdmissionPolicy)
    // said no: not a missing permission of modelctl's, and the same write would be refused again.
    if (/admission webhook .* denied the request|ValidatingAdmissionPolicy .* denied request|is forbidden: violates PodSecurity/i.test(message)) {
      return new UsageError(`a policy of the cluster refused to ${what.verb} ${target}: ${message}`, {
        hint: 'change the kubernetes: settings (or the bundle\'s serve: section) to satisfy the policy, or ask the cluster\'s admins for an exception',
        details: { status: s.code, policy: true },
      });
    }
    if (s.code === 403 || s.code === 401) {
      const rule = this.opts.explainPermission?.(what.verb, resource, group);
      return new UnavailableError(`the cluster refused to ${what.verb} ${target}: ${message}`, {
        hint:
          s.code === 401
            ? 'the credentials of the kubeconfig were rejected: log in again or refresh the token'
            : `modelctl needs "${what.verb}" on ${group ? `${resource}.${group}` : resource}${rule ? ` (${rule})` : ''}; apply the Role printed by \`modelctl kubernetes rbac --namespace ${what.namespace}\``,
        details: { status: s.code, verb: what.verb, resource, group, namespace: what.namespace },
      });
    }
    if (s.code === 409) return new KubeConflictError(`${target}: ${message}`, s.body.reason ?? 'Conflict');
    // 400/422: Strict refusals of create/update/patch; 500: server-side apply of a field the schema lacks
    // ("failed to create typed patch object (…): .spec.x: field not declared in schema", whatever fieldValidation says).
    const unknown = s.code === 400 || s.code === 422 || s.code === 500 ? explainUnknownFields(target, `${message} ${(s.body.details?.causes ?? []).map((c) => `${c.field ?? ''}: ${c.message ?? ''}`).join(' ')}`) : undefined;
    if (unknown) return new UsageError(unknown.message, { hint: unknown.hint, details: { status: s.code, unknownFields: unknown.fields, server: message } });
    if (s.code === 422 || s.code === 400) {
      const causes = (s.body.details?.causes ?? []).map((c) => `${c.field ?? ''}: ${c.message ?? ''}`).join('; ');
      return new UsageError(`the cluster rejected ${target}: ${message}${causes && !message.includes(causes) ? ` (${causes})` : ''}`, {
        hint: 'check the kubernetes: section of modelctl.yaml and the serve: section of bundle.yaml',
        details: { status: s.code },
      });
    }
    if (s.code === 404) {
      return new UnavailableError(`${target} not found (${message})`, { hint: 'is the namespace right (--namespace)? is the API (CRD) installed?', details: { status: 404 } });
    }
    return new UnavailableError(`the Kubernetes API server answered ${s.code} to ${what.verb} ${target}: ${message}`, {
      hint: 'retried with backoff before giving up; check the API server health',
      details: { status: s.code },
    });
  }

  /** The object, or undefined when it does not exist. */
  async read<T extends KubernetesObject>(ref: ObjectRef): Promise<T | undefined> {
    try {
      return await this.call({ verb: 'get', ...ref }, () =>
        this.objects.read<T>({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } }),
      );
    } catch (err) {
      if (err instanceof UnavailableError && (err.details as { status?: number }).status === 404) return undefined;
      throw err;
    }
  }

  async list<T extends KubernetesObject>(
    apiVersion: string,
    kind: string,
    namespace: string,
    labelSelector?: string,
    fieldSelector?: string,
  ): Promise<{ items: T[]; resourceVersion: string | undefined }> {
    const list = await this.call({ verb: 'list', kind, namespace }, () =>
      this.objects.list<T>(apiVersion, kind, namespace, undefined, undefined, undefined, fieldSelector, labelSelector),
    );
    return { items: list.items, resourceVersion: list.metadata?.resourceVersion };
  }

  /**
   * Server-side apply with our one field manager. force: modelctl owns what it applies (a human's
   * `kubectl scale` is overridden, like kubectl apply --force-conflicts). `dryRun`: the server runs
   * every check (Strict field validation, defaulting, admission) and persists nothing — a pre-flight.
   */
  async apply<T extends KubernetesObject>(obj: T, opts: { dryRun?: boolean } = {}): Promise<T> {
    const m = obj.metadata!;
    return this.call({ verb: 'patch', kind: obj.kind!, namespace: m.namespace!, name: m.name! }, () =>
      this.objects.patch<T>(obj, undefined, opts.dryRun ? 'All' : undefined, this.fieldManager, true, PatchStrategy.ServerSideApply),
    );
  }

  /** JSON merge patch (RFC 7386) of a few fields, e.g. replicas: no read-modify-write, no resourceVersion needed. */
  async mergePatch<T extends KubernetesObject>(patch: T): Promise<T> {
    const m = patch.metadata!;
    return this.call({ verb: 'patch', kind: patch.kind!, namespace: m.namespace!, name: m.name! }, () =>
      this.objects.patch<T>(patch, undefined, undefined, this.fieldManager, undefined, PatchStrategy.MergePatch),
    );
  }

  /** Create; KubeConflictError (reason AlreadyExists) when it exists. */
  async create<T extends KubernetesObject>(obj: T): Promise<T> {
    const m = obj.metadata!;
    return this.call({ verb: 'create', kind: obj.kind!, namespace: m.namespace!, name: m.name! }, () =>
      this.objects.create<T>(obj, undefined, undefined, this.fieldManager),
    );
  }

  /** Replace with the resourceVersion in obj.metadata as precondition; KubeConflictError when stale. */
  async replace<T extends KubernetesObject>(obj: T): Promise<T> {
    const m = obj.metadata!;
    return this.call({ verb: 'update', kind: obj.kind!, namespace: m.namespace!, name: m.name! }, () =>
      this.objects.replace<T>(obj, undefined, undefined, this.fieldManager),
    );
  }

  /** Delete; a missing object is fine (idempotent). */
  async delete(ref: ObjectRef): Promise<void> {
    try {
      await this.call({ verb: 'delete', ...ref }, () =>
        this.objects.delete({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } }, undefined, undefined, undefined, undefined, 'Background'),
      );
    } catch (err) {
      if (err instanceof UnavailableError && (err.details as { status?: number }).status === 404) return;
      throw err;
    }
  }

  /** Is the Gateway API (HTTPRoute v1) served? Asked once per process. */
  async hasGatewayApi(): Promise<boolean> {
    this.gatewayApi ??= this.call({ verb: 'get', kind: 'APIGroup', namespace: '-' }, () => this.client(ApisApi).getAPIVersions()).then((groups) =>
      groups.groups.some((g) => g.name === 'gateway.networking.k8s.io' && g.versions.some((v) => v.version === 'v1')),
    );
    return this.gatewayApi;
  }

  /**
   * Watch a collection from `resourceVersion` (the list's); `onEvent` returning true stops the watch.
   * Resolves when stopped, rejects when the stream fails (caller decides whether to re-list).
   */
  watch<T>(
    apiVersion: string,
    kind: string,
    namespace: string,
    query: { labelSelector?: string; fieldSelector?: string; resourceVersion?: string; timeoutSeconds?: number },
    onEvent: (e: WatchEvent<T>) => boolean | void,
    signal?: AbortSignal,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let stopped = false;
      let controller: AbortController | undefined;
      const stop = () => {
        stopped = true;
        controller?.abort();
        resolve();
      };
      signal?.addEventListener('abort', stop, { once: true });
      const params: Record<string, string | number | boolean | undefined> = { allowWatchBookmarks: true, ...query };
      new Watch(this.kc)
        .watch(
          collectionPath(apiVersion, kind, namespace),
          params,
          (type, object) => {
            if (stopped) return;
            if (type === 'ERROR') {
              stopped = true;
              controller?.abort();
              const s = object as StatusBody & { code?: number };
              reject(Object.assign(new Error(`watch of ${kind}s failed: ${s.message ?? 'error event'}`), { code: s.code ?? 500, body: s }));
              return;
            }
            if (onEvent({ type: type as WatchEvent<T>['type'], object: object as T }) === true) stop();
          },
          (err: unknown) => {
            signal?.removeEventListener('abort', stop);
            if (stopped) return;
            stopped = true;
            if (err && !(err instanceof Error && err.name === 'AbortError')) reject(err);
            else resolve();
          },
        )
        .then(
          (c) => {
            controller = c;
            if (stopped) c.abort();
          },
          (err: unknown) => {
            if (!stopped) reject(err);
          },
        );
    });
  }
}
