import type {
  V1ConfigMap,
  V1Container,
  V1Deployment,
  V1EnvVar,
  V1PodSecurityContext,
  V1ResourceRequirements,
  V1Service,
} from '@kubernetes/client-node';
import type { ServeSpec } from '../../bundle/serve.js';
import { agreementOf } from '../../gates/answers.js';
import { UsageError } from '../../core/errors.js';
import type { TrafficSplit, VersionRef } from '../../core/model.js';
import {
  ANNOTATIONS,
  LABELS,
  MANAGED_BY,
  labelValue,
  ledgerConfigMapName,
  leaseName,
  modelObjectName,
  versionLabels,
  versionObjectName,
  versionSelector,
  UNMETERED_HEADERS,
} from './names.js';
import { parseQuantity } from './validate.js';
import { METER_PORT, MODEL_PROBE_PATH, SERVING_PORT, TRAFFIC_PORT, type KubernetesSettings } from './settings.js';

/**
 * Pure builders of every object modelctl applies to a namespace. No I/O, no clock: the target
 * (server-side apply with one field manager) decides when; these decide what. Every output is
 * a complete object (apiVersion, kind, metadata, spec) so that an apply never relies on merging
 * with what is already there — in particular HTTPRoute `rules` (an atomic list) is always whole.
 *
 * Pod layout of one version:
 *
 *   init  fetch-bundle  (settings.image)         modelctl bundle pull <model>@<digest> --output /pull/bundle
 *                                                 verifies every byte, then renames the temp dir into place
 *   main  model         (settings.servingImage)  serve.command, workingDir /bundle, PORT=8081 on 127.0.0.1
 *                                                 probes: GET :9090/model-ready (the meter forwards to readinessPath)
 *   main  meter         (settings.image)         modelctl kubernetes meter: :8080 (traffic) → 127.0.0.1:8081,
 *                                                 :9090 its API (windows, /healthz, /model-ready)
 *
 * Why the init container mounts the volume at /pull and pulls into /pull/bundle instead of into
 * /bundle itself: `bundle pull` lands in `<output>.partial-*` next to the output and renames it
 * into place (nothing half-pulled is ever visible). A volume's mount point cannot be removed or
 * renamed over (EBUSY), so the output is a directory *inside* the volume, and the serving
 * container mounts exactly that directory (subPath `bundle`) at /bundle, read-only.
 */

export const BUNDLE_VOLUME = 'bundle';
/** kubernetes.bundleCache: the node-level blob cache volume, mounted into the init container only. */
export const CACHE_VOLUME = 'bundle-cache';
export const CACHE_MOUNT = '/modelctl-cache';
export const PULL_MOUNT = '/pull';
export const BUNDLE_SUBPATH = 'bundle';
export const BUNDLE_DIR = '/bundle';
export const INIT_CONTAINER = 'fetch-bundle';
export const SERVING_CONTAINER = 'model';
export const METER_CONTAINER = 'meter';
/** Service port of every version Service and of the model Service (replica mode). */
export const SERVICE_PORT = 80;
/** The name of that port: what the service proxy of an evaluation replay names (evaluate.ts). */
export const SERVICE_PORT_NAME = 'http';
/** Where modelctl (init container, meter) keeps its own files inside a pod. */
export const POD_MODELCTL_HOME = '/tmp/modelctl';

/** A version and how it runs: what the per-container builders need. */
export interface VersionInput extends VersionRef {
  /** The bundle's `serve:` section (from its manifest). */
  serve: ServeSpec;
}

export interface DeploymentInput {
  ref: VersionRef;
  /** The bundle's `serve:` section (from its manifest). */
  serve: ServeSpec;
  settings: KubernetesSettings;
  replicas: number;
  /**
   * Replica-ratio traffic only: the pod template's LABELS.inService label ("true" / "false").
   * Leave undefined in Gateway API mode (no such label: changing it would roll the pods).
   */
  inService?: boolean | undefined;
  /** The stable version's Service (ClusterIP:port) the meter compares mirrored answers with (shadow agreement). */
  compareWith?: string | undefined;
}

function versionAnnotations(v: { version: string; digest: string }): Record<string, string> {
  return { [ANNOTATIONS.version]: v.version, [ANNOTATIONS.digest]: v.digest };
}

/** settings.resources merged with the bundle's serve.resources, the bundle winning per key. */
export function mergeResources(
  base: KubernetesSettings['resources'],
  bundle: ServeSpec['resources'],
): V1ResourceRequirements {
  const out: V1ResourceRequirements = {};
  const requests = { ...(base.requests ?? {}), ...(bundle?.requests ?? {}) };
  const limits = { ...(base.limits ?? {}), ...(bundle?.limits ?? {}) };
  if (Object.keys(requests).length) out.requests = sortKeys(requests);
  if (Object.keys(limits).length) out.limits = sortKeys(limits);
  return out;
}

function sortKeys(m: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Environment of the serving container: serve.env, then what the runtime sets (which wins, as locally). */
function servingEnv(v: VersionInput): V1EnvVar[] {
  const runtime: Record<string, string> = {
    PORT: String(SERVING_PORT),
    HOST: '127.0.0.1',
    MODELCTL_MODEL: v.model,
    MODELCTL_VERSION: v.version,
    MODELCTL_DIGEST: v.digest,
  };
  const env = { ...v.serve.env, ...runtime };
  return Object.entries(env).map(([name, value]) => ({ name, value }));
}

/**
 * Every container of a version's pod meets Pod Security "restricted" (most production namespaces
 * enforce baseline or restricted; an admission refusal leaves a version with no pod at all).
 * modelctl's own containers (init, meter) never need root or extra privileges; the modelctl image
 * runs as uid 1000, numeric so that the kubelet can verify runAsNonRoot. The serving container gets
 * the same (see servingSecurity): a model server answers HTTP on an unprivileged port and reads a
 * read-only bundle, nothing that needs root or a capability.
 */
const MODELCTL_SECURITY: NonNullable<V1Container['securityContext']> = {
  runAsNonRoot: true,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

function withPullPolicy<T extends V1Container>(c: T, settings: KubernetesSettings): T {
  return settings.imagePullPolicy ? { ...c, imagePullPolicy: settings.imagePullPolicy } : c;
}

/** The init container: pull the bundle by digest (every byte verified) into the shared volume. */
export function fetchBundleContainer(v: VersionInput, settings: KubernetesSettings): V1Container {
  const env: V1EnvVar[] = [
    { name: 'MODELCTL_STORE', value: settings.storeUrl },
    { name: 'MODELCTL_HOME', value: POD_MODELCTL_HOME },
  ];
  const volumeMounts: V1Container['volumeMounts'] = [{ name: BUNDLE_VOLUME, mountPath: PULL_MOUNT }];
  const securityContext = structuredClone(MODELCTL_SECURITY);
  if (settings.bundleCache) {
    // The node's cache: blobs it holds are copied into the pod's volume, not fetched again; new ones
    // are fetched once (under a per-blob lock) for every pod of the node. Copied, not linked: the
    // cache and the emptyDir are different mounts (link() gives EXDEV even on one file system), and
    // the model container must not see the cache (every model's blobs on the node) nor depend on
    // it after start (eviction would pull files from under a running model). Every cached byte is
    // re-hashed before use (VERIFY=full): the directory is shared by pods, a flipped byte there must
    // never reach a model.
    env.push(
      { name: 'MODELCTL_CACHE_DIR', value: CACHE_MOUNT },
      { name: 'MODELCTL_CACHE_MAX_BYTES', value: quantityBytes(settings.bundleCache.maxBytes) },
      { name: 'MODELCTL_CACHE_VERIFY', value: 'full' },
    );
    volumeMounts.push({ name: CACHE_VOLUME, mountPath: CACHE_MOUNT });
    if ('hostPath' in settings.bundleCache) {
      // The kubelet creates a DirectoryOrCreate hostPath as root, mode 0755 (and hostPath volumes have
      // no fsGroup ownership management): only uid 0 can write it. Still no capability (no
      // DAC_OVERRIDE: root writes only what root owns), no privilege escalation. A hostPath already
      // needs the namespace's Pod Security level "privileged" (baseline forbids hostPath), so this
      // lowers no admission level further.
      Object.assign(securityContext, { runAsNonRoot: false, runAsUser: 0 });
    }
    // A claim keeps the init container non-root (restricted admits it): the pod's fsGroup (see
    // podSecurityContext) makes the claim's volume group-writable for the image's uid 1000.
  } else {
    // The pod's MODELCTL_HOME dies with the pod: a blob cache there would only write every blob
    // twice (cache, then a copy into the volume). kubernetes.bundleCache gives a node-level one.
    env.push({ name: 'MODELCTL_CACHE', value: 'off' });
  }
  const c: V1Container = {
    name: INIT_CONTAINER,
    image: settings.image,
    command: ['modelctl'],
    args: ['bundle', 'pull', `${v.model}@${v.digest}`, '--output', `${PULL_MOUNT}/${BUNDLE_SUBPATH}`],
    workingDir: PULL_MOUNT,
    env,
    volumeMounts,
    securityContext,
  };
  // AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION / AWS_ENDPOINT_URL_S3 / MODELCTL_S3_PATH_STYLE.
  if (settings.storeSecret) c.envFrom = [{ secretRef: { name: settings.storeSecret, optional: true } }];
  return withPullPolicy(c, settings);
}

/** The cache volume of kubernetes.bundleCache (none without it): a node directory or a claim of the namespace. */
function cacheVolumes(settings: KubernetesSettings): NonNullable<NonNullable<V1Deployment['spec']>['template']['spec']>['volumes'] & object {
  const c = settings.bundleCache;
  if (!c) return [];
  if ('persistentVolumeClaim' in c) return [{ name: CACHE_VOLUME, persistentVolumeClaim: { claimName: c.persistentVolumeClaim.claimName } }];
  return [{ name: CACHE_VOLUME, hostPath: { path: c.hostPath, type: 'DirectoryOrCreate' } }];
}

/** The group of modelctl's image (USER 1000:1000 in the Dockerfile). */
export const MODELCTL_GID = 1000;

/**
 * With a claim as the cache: a freshly provisioned volume's root is owned by root, mode 0755, and
 * the init container runs as uid 1000. fsGroup makes the kubelet give the volume to that group
 * (group-writable, setgid) for every volume type that supports ownership management (most block and
 * CSI volumes; NFS-like ones are left as they are: the claim's own permissions must then allow uid
 * 1000). OnRootMismatch: only when the root's group is not already right — a recursive chown of a
 * cache of many GiB at every pod start would cost what the cache saves. Without a claim, none (the
 * serving container's groups stay the image's). Pod Security "restricted" is met per container
 * (MODELCTL_SECURITY, servingSecurity), not here: the hostPath form's init container must differ.
 */
function podSecurityContext(settings: KubernetesSettings): V1PodSecurityContext | undefined {
  const c = settings.bundleCache;
  if (!c || !('persistentVolumeClaim' in c)) return undefined;
  return { fsGroup: MODELCTL_GID, fsGroupChangePolicy: 'OnRootMismatch' };
}

/** A quantity (20Gi) as whole bytes for MODELCTL_CACHE_MAX_BYTES; validate.ts has refused a bad one before. */
function quantityBytes(q: string): string {
  const n = parseQuantity(q);
  return n === undefined || n < 0 ? q : String(Math.floor(n));
}

/**
 * Probes of the serving container. The kubelet sends httpGet probes to the POD IP, where the model
 * does not listen (it binds 127.0.0.1:8081 so that every request goes through the meter); so they go
 * to the meter's API port (0.0.0.0:9090), whose GET /model-ready forwards to the model's
 * serve.readinessPath on 127.0.0.1 with the timeout named in the query and answers the model's status.
 * Nothing but that one GET reaches the model this way: no path around the meter.
 *
 * What each probe's verdict means, and why a sidecar outage cannot kill the model (nor the reverse):
 * - readiness and startup through the meter: the pod is routable only when the model answers AND
 *   the meter (which carries all traffic) is up — exactly what "ready to serve" means here.
 * - liveness through the meter would also fail while the meter itself is down. The meter has its own
 *   liveness probe (GET /healthz, the meter alone: a dead model never restarts the meter), so a hung
 *   meter is restarted within ~30 s, and a crashed one at once or, crash-looping, after the kubelet's
 *   back-off, which is capped at 5 minutes. The model's liveness window is therefore longer than that
 *   cap (15 s × 24 = 6 min): only a model that stays unanswering through a whole meter back-off is
 *   restarted. A hung model still leaves the Service within 6 s (readiness); liveness only decides
 *   when to restart it, and restarting a model means reloading its weights, so patience is cheap.
 */
export const MODEL_LIVENESS = { periodSeconds: 15, timeoutSeconds: 5, failureThreshold: 24 } as const;
/** The meter's own liveness: period × threshold well under MODEL_LIVENESS's window. */
export const METER_LIVENESS = { periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 } as const;

/** The httpGet of a model probe: the meter's /model-ready, asking the model with a timeout under the probe's. */
function modelProbe(timeoutSeconds: number): { path: string; port: number } {
  const upstreamMs = Math.max(500, timeoutSeconds * 1000 - 500);
  return { path: `${MODEL_PROBE_PATH}?timeoutMs=${upstreamMs}`, port: METER_PORT };
}

/**
 * The serving container's securityContext: restricted's controls, and a uid. runAsNonRoot alone
 * would make the kubelet refuse to start an image whose USER is root or a name
 * (CreateContainerConfigError "container has runAsNonRoot and image will run as root"), which most
 * Python/CUDA serving images are; so the uid is set explicitly: kubernetes.servingUser, by default
 * 1000 — the modelctl image's own user (the default servingImage) and the owner of the bundle files
 * fetch-bundle pulled. `servingUser: image` sets none and keeps the image's own USER (e.g. 65532 of
 * a distroless "nonroot" image, whose files belong to it); the kubelet then checks it is non-root.
 */
function servingSecurity(settings: KubernetesSettings): NonNullable<V1Container['securityContext']> {
  const sc = structuredClone(MODELCTL_SECURITY);
  if (settings.servingUser !== 'image') sc.runAsUser = settings.servingUser;
  return sc;
}

/** The container that runs the bundle's serve.command from the pulled bundle. */
export function servingContainer(v: VersionInput, settings: KubernetesSettings): V1Container {
  const resources = mergeResources(settings.resources, v.serve.resources);
  const c: V1Container = {
    name: SERVING_CONTAINER,
    image: settings.servingImage,
    command: [...v.serve.command],
    workingDir: BUNDLE_DIR,
    env: servingEnv(v),
    volumeMounts: [{ name: BUNDLE_VOLUME, mountPath: BUNDLE_DIR, subPath: BUNDLE_SUBPATH, readOnly: true }],
    readinessProbe: {
      httpGet: modelProbe(2),
      periodSeconds: 2,
      timeoutSeconds: 2,
      failureThreshold: 3,
      successThreshold: 1,
    },
    // A startup probe keeps liveness from judging a model that is still loading its weights.
    startupProbe: {
      httpGet: modelProbe(2),
      periodSeconds: 2,
      timeoutSeconds: 2,
      failureThreshold: startupFailureThreshold(settings),
    },
    livenessProbe: { httpGet: modelProbe(MODEL_LIVENESS.timeoutSeconds), ...MODEL_LIVENESS },
    securityContext: servingSecurity(settings),
  };
  if (Object.keys(resources).length) c.resources = resources;
  return withPullPolicy(c, settings);
}

/** The startup probe allows the whole progress deadline (a version failing to load fails the deadline, not a restart loop first). */
function startupFailureThreshold(settings: KubernetesSettings): number {
  return Math.max(3, Math.ceil(settings.progressDeadlineMs / 2000));
}

/** The metering sidecar: takes the Service's traffic, forwards to the model, records requests per version. */
export function meterContainer(v: VersionInput, settings: KubernetesSettings, compareWith?: string): V1Container {
  const env: V1EnvVar[] = [
    { name: 'MODELCTL_MODEL', value: v.model },
    { name: 'MODELCTL_VERSION', value: v.version },
    { name: 'MODELCTL_HOME', value: POD_MODELCTL_HOME },
  ];
  if (v.serve.scoreField) env.push({ name: 'MODELCTL_SCORE_FIELD', value: v.serve.scoreField });
  const c: V1Container = {
    name: METER_CONTAINER,
    image: settings.image,
    command: ['modelctl'],
    args: [
      'kubernetes',
      'meter',
      '--listen',
      `0.0.0.0:${TRAFFIC_PORT}`,
      '--upstream',
      `127.0.0.1:${SERVING_PORT}`,
      '--api',
      `0.0.0.0:${METER_PORT}`,
      '--readiness-path',
      v.serve.readinessPath,
      ...compareArgs(v, compareWith),
    ],
    env,
    ports: [
      { name: 'http', containerPort: TRAFFIC_PORT, protocol: 'TCP' },
      { name: 'meter', containerPort: METER_PORT, protocol: 'TCP' },
    ],
    readinessProbe: { httpGet: { path: '/healthz', port: METER_PORT }, periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 3 },
    livenessProbe: { httpGet: { path: '/healthz', port: METER_PORT }, ...METER_LIVENESS },
    resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } },
    securityContext: structuredClone(MODELCTL_SECURITY),
  };
  return withPullPolicy(c, settings);
}

/**
 * The meter's shadow comparison (shadow-compare.ts): with a stable version to compare with and a
 * bundle that says how answers compare (serve.agreement / agreementField), mirrored requests are
 * asked again at the stable's Service and both answers compared. Nothing otherwise.
 */
function compareArgs(v: VersionInput, compareWith: string | undefined): string[] {
  const agreement = agreementOf(v.serve);
  if (!compareWith || !agreement) return [];
  return ['--compare-with', compareWith, '--agreement', JSON.stringify(agreement)];
}

/** One version's Deployment. */
export function deploymentFor(input: DeploymentInput): V1Deployment {
  const { settings } = input;
  const v: VersionInput = { model: input.ref.model, version: input.ref.version, digest: input.ref.digest, serve: input.serve };
  const opts = input;
  if (!Number.isInteger(opts.replicas) || opts.replicas < 0) throw new RangeError(`replicas must be a non-negative integer, got ${opts.replicas}`);
  const name = versionObjectName(v.model, v.version);
  const labels = versionLabels(v.model, v.version, v.digest);
  const podLabels = opts.inService === undefined ? { ...labels } : { ...labels, [LABELS.inService]: String(opts.inService) };
  const podSpec: NonNullable<NonNullable<V1Deployment['spec']>['template']['spec']> = {
    initContainers: [fetchBundleContainer(v, settings)],
    containers: [servingContainer(v, settings), meterContainer(v, settings, input.compareWith)],
    volumes: [{ name: BUNDLE_VOLUME, emptyDir: {} }, ...cacheVolumes(settings)],
    terminationGracePeriodSeconds: Math.max(30, Math.ceil(v.serve.stopGraceMs / 1000) + 5),
  };
  const securityContext = podSecurityContext(settings);
  if (securityContext) podSpec.securityContext = securityContext;
  // The pod never talks to the API server itself: no token unless a service account is asked for.
  if (settings.serviceAccountName) podSpec.serviceAccountName = settings.serviceAccountName;
  else podSpec.automountServiceAccountToken = false;
  if (Object.keys(settings.nodeSelector).length) podSpec.nodeSelector = { ...settings.nodeSelector };
  if (settings.tolerations.length) podSpec.tolerations = settings.tolerations.map((t) => ({ ...t }));
  if (settings.imagePullSecrets.length) podSpec.imagePullSecrets = settings.imagePullSecrets.map((n) => ({ name: n }));
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: settings.namespace, labels, annotations: versionAnnotations(v) },
    spec: {
      replicas: opts.replicas,
      selector: { matchLabels: versionSelector(v.model, v.version) },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      progressDeadlineSeconds: Math.max(1, Math.ceil(settings.progressDeadlineMs / 1000)),
      revisionHistoryLimit: 2,
      template: {
        metadata: { labels: podLabels, annotations: versionAnnotations(v) },
        spec: podSpec,
      },
    },
  };
}

/** One version's Service: port 80 → the meter's `http` port. */
export function serviceFor({ ref: v, settings }: { ref: VersionRef; settings: KubernetesSettings }): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: versionObjectName(v.model, v.version),
      namespace: settings.namespace,
      labels: versionLabels(v.model, v.version, v.digest),
      annotations: versionAnnotations(v),
    },
    spec: {
      type: 'ClusterIP',
      selector: versionSelector(v.model, v.version),
      ports: [{ name: SERVICE_PORT_NAME, port: SERVICE_PORT, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}

function modelLabels(model: string, component: string): Record<string, string> {
  return {
    [LABELS.model]: model,
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.name]: model,
    [LABELS.component]: component,
  };
}

/** Replica-ratio traffic: the model's one Service, selecting every in-service pod of the model. */
export function modelServiceFor({ model, settings }: { model: string; settings: KubernetesSettings }): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: modelObjectName(model), namespace: settings.namespace, labels: modelLabels(model, 'route') },
    spec: {
      type: 'ClusterIP',
      selector: { [LABELS.model]: model, [LABELS.inService]: 'true' },
      ports: [{ name: SERVICE_PORT_NAME, port: SERVICE_PORT, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}

// ── Gateway API ───────────────────────────────────────────────────────────────────────────────

export interface HTTPBackendRefManifest {
  group?: string;
  kind?: string;
  name: string;
  port: number;
  weight: number;
}

export type HTTPRouteFilterManifest =
  | { type: 'RequestHeaderModifier'; requestHeaderModifier: { remove: string[] } }
  | { type: 'RequestMirror'; requestMirror: { backendRef: { name: string; port: number }; percent: number } }
  | { type: 'URLRewrite'; urlRewrite: { path: { type: 'ReplacePrefixMatch'; replacePrefixMatch: string } } };

/**
 * The first filter of every rule modelctl writes: remove the headers that keep a request out of the
 * meters' windows (names.ts UNMETERED_HEADERS), so no client of the public route can hide its
 * requests from the gates. RequestHeaderModifier is a Core filter (every implementation supports
 * it); the CRD allows one per rule and at most 16 names in `remove` (we write 2), and names are
 * case-insensitive (the lower-case spelling matches any). First in the list because the spec asks
 * implementations to apply filters in the order given ("SHOULD"), so the RequestMirror after it copies
 * the cleaned request; whether a given implementation mirrors the modified headers is not checked
 * by the conformance suite, which is why the meter also never exempts a mirrored copy (meter.ts).
 */
export function stripUnmetered(): HTTPRouteFilterManifest {
  return { type: 'RequestHeaderModifier', requestHeaderModifier: { remove: [...UNMETERED_HEADERS] } };
}

export interface HTTPRouteRuleManifest {
  matches: Array<{ path: { type: 'PathPrefix'; value: string } }>;
  backendRefs: HTTPBackendRefManifest[];
  filters?: HTTPRouteFilterManifest[];
}

export interface HTTPRouteManifest {
  apiVersion: 'gateway.networking.k8s.io/v1';
  kind: 'HTTPRoute';
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    parentRefs: KubernetesSettings['route']['parentRefs'];
    hostnames?: string[];
    rules: HTTPRouteRuleManifest[];
  };
}

export function routeName(model: string, settings: KubernetesSettings): string {
  return settings.route.name ?? modelObjectName(model);
}

function checkSplit(model: string, split: TrafficSplit): Array<[string, number]> {
  const entries = Object.entries(split.weights).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [version, w] of entries) {
    if (!Number.isInteger(w) || w < 0 || w > 100) throw new RangeError(`${model}@${version}: weight ${w} is not an integer percentage`);
  }
  const live = entries.filter(([, w]) => w > 0);
  if (live.length === 0) throw new RangeError(`${model}: a traffic split needs at least one version with a weight above 0`);
  if (split.mirror && (!Number.isInteger(split.mirror.percent) || split.mirror.percent < 0 || split.mirror.percent > 100)) {
    throw new RangeError(`${model}@${split.mirror.version}: mirror percent ${split.mirror.percent} is not an integer percentage`);
  }
  return live;
}

/**
 * The model's HTTPRoute for one traffic split: one rule, PathPrefix settings.route.path, weighted
 * backendRefs (the engine's integer percentages are the weights: share = weight / sum), a
 * RequestHeaderModifier removing the unmetered headers first (stripUnmetered), plus a
 * RequestMirror filter when the split mirrors. The whole `rules` list every time (it is atomic).
 * When the path is not "/", a URLRewrite filter strips it (ReplacePrefixMatch "/"): the bundle
 * serves the same paths as on the local runtime (`/sentiment/predict` → `/predict`).
 * Versions at 0% are left out (a weight-0 backend is legal, but leaving it out keeps the route
 * readable and does not need the Service to exist).
 */
export function httpRouteFor({ model, split, settings }: { model: string; split: TrafficSplit; settings: KubernetesSettings }): HTTPRouteManifest {
  const live = checkSplit(model, split);
  const rule: HTTPRouteRuleManifest = {
    matches: [{ path: { type: 'PathPrefix', value: settings.route.path } }],
    backendRefs: live.map(([version, weight]) => ({ group: '', kind: 'Service', name: versionObjectName(model, version), port: SERVICE_PORT, weight })),
  };
  const filters: HTTPRouteFilterManifest[] = [stripUnmetered()];
  if (settings.route.path !== '/') filters.push({ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } } });
  if (split.mirror && split.mirror.percent > 0) {
    filters.push({
      type: 'RequestMirror',
      requestMirror: { backendRef: { name: versionObjectName(model, split.mirror.version), port: SERVICE_PORT }, percent: split.mirror.percent },
    });
  }
  rule.filters = filters;
  const spec: HTTPRouteManifest['spec'] = { parentRefs: settings.route.parentRefs.map((p) => ({ ...p })), rules: [rule] };
  if (settings.route.hostnames.length) spec.hostnames = [...settings.route.hostnames];
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: routeName(model, settings), namespace: settings.namespace, labels: modelLabels(model, 'route') },
    spec,
  };
}

/** Replica-ratio mode cannot copy requests: say so before anything is applied. */
export function assertNoMirrorWithoutGateway(model: string, split: TrafficSplit): void {
  if (split.mirror && split.mirror.percent > 0) {
    throw new UsageError(`${model}: shadow traffic (mirroring ${split.mirror.percent}% to ${split.mirror.version}) needs the Gateway API; this target uses replica-ratio traffic`, {
      hint: 'install Gateway API CRDs and an implementation that supports RequestMirror percent (e.g. Envoy Gateway), set kubernetes.traffic: gateway-api and kubernetes.route.parentRefs in modelctl.yaml — or deploy without --shadow',
    });
  }
}

// ── Ledger and lock ───────────────────────────────────────────────────────────────────────────

export const LEDGER_KEY = 'ledger.json';

/**
 * The model's ledger ConfigMap: `data["ledger.json"]` holds the document as compact JSON — exactly
 * the bytes fitLedger (ledger-store.ts) measures against the ConfigMap size limit; indentation would
 * add a third or more on top of what was measured. The caller adds metadata.resourceVersion for a
 * compare-and-swap replace.
 */
export function ledgerConfigMapFor(model: string, namespace: string, ledger: unknown): V1ConfigMap {
  const json = JSON.stringify(ledger);
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: ledgerConfigMapName(model), namespace, labels: modelLabels(model, 'ledger') },
    data: { [LEDGER_KEY]: json },
  };
}

/** Who holds a model's lock and until when (the ledger's LockRecord). */
export interface LeaseLock {
  holder: string;
  pid: number;
  host: string;
  acquiredAt: number;
  expiresAt: number;
}

export interface LeaseManifest {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    resourceVersion?: string;
  };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/**
 * The model's rollout lock as a Lease. `lock` null = released: no holderIdentity (what `kubectl
 * get lease` shows as free), renewTime kept as the release time. Otherwise holderIdentity = holder,
 * acquireTime = acquiredAt, renewTime = opts.renewedAt, leaseDurationSeconds = the time left until
 * expiresAt rounded up to whole seconds (so renewTime + duration ≥ expiresAt), pid and host as
 * annotations. The caller adds metadata.resourceVersion for a compare-and-swap replace.
 */
export function leaseFor(
  model: string,
  namespace: string,
  lock: LeaseLock | null,
  opts: { renewedAt: number; transitions?: number | undefined },
): LeaseManifest {
  const metadata: LeaseManifest['metadata'] = { name: leaseName(model), namespace, labels: modelLabels(model, 'lock'), annotations: {} };
  const spec: LeaseManifest['spec'] = {};
  if (lock) {
    metadata.annotations = { [ANNOTATIONS.holderPid]: String(lock.pid), [ANNOTATIONS.holderHost]: lock.host };
    spec.holderIdentity = lock.holder;
    spec.leaseDurationSeconds = Math.max(1, Math.ceil((lock.expiresAt - opts.renewedAt) / 1000));
    spec.acquireTime = microTime(lock.acquiredAt);
  }
  spec.renewTime = microTime(opts.renewedAt);
  if (opts.transitions !== undefined) spec.leaseTransitions = opts.transitions;
  return { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata, spec };
}

/**
 * A Kubernetes MicroTime: RFC 3339 in UTC with exactly six fractional digits,
 * `2026-11-22T13:41:19.123456Z`. `ms` may carry a fraction (microseconds are kept, rounded).
 */
export function microTime(ms: number): string {
  if (!Number.isFinite(ms)) throw new RangeError(`not a time: ${ms}`);
  const totalMicros = Math.round(ms * 1000);
  const wholeMs = Math.floor(totalMicros / 1000);
  const micros = totalMicros - wholeMs * 1000;
  const iso = new Date(wholeMs).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, 23)}${String(micros).padStart(3, '0')}Z`;
}

/**
 * Parse a MicroTime (or any RFC 3339 time the API server returns: fewer or more fraction digits,
 * a numeric offset) into milliseconds since the epoch, keeping microseconds as the fraction.
 */
export function parseMicroTime(value: string | Date): number {
  // @kubernetes/client-node may hand back a Date (V1MicroTime): it has milliseconds only.
  if (value instanceof Date) return value.getTime();
  const text = value;
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/i.exec(text.trim());
  if (!m) throw new RangeError(`not an RFC 3339 time: "${text}"`);
  const base = Date.parse(`${m[1]}${m[3]!.toUpperCase()}`);
  if (Number.isNaN(base)) throw new RangeError(`not an RFC 3339 time: "${text}"`);
  const micros = Number((m[2] ?? '').padEnd(6, '0').slice(0, 6));
  return base + micros / 1000;
}

/** Labels of the objects modelctl creates for a model as a whole (route, model Service, ledger, lease). */
export function modelObjectLabels(model: string, component: 'route' | 'ledger' | 'lock'): Record<string, string> {
  return modelLabels(model, component);
}

/** Label value of the pod template's in-service label (exported for the target's selectors). */
export function inServiceLabel(inService: boolean): Record<string, string> {
  return { [LABELS.inService]: labelValue(String(inService)) };
}
