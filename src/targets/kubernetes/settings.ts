import { z } from 'zod';
import { UsageError } from '../../core/errors.js';
import { parseDuration } from '../../core/units.js';

/**
 * The `kubernetes:` section of modelctl.yaml: where and how versions run on a cluster. Everything
 * has a default except what only the user knows (the Gateway to attach the route to).
 *
 *   kubernetes:
 *     namespace: ml-serving
 *     image: ghcr.io/modelctl/modelctl:0.1.0   # init container (pull + verify) and metering sidecar
 *     servingImage: ghcr.io/modelctl/modelctl:0.1.0  # runs serve.command (default: image; it has Node)
 *     servingUser: 1000           # uid of the model container (default 1000, the modelctl image's; `image`: the image's own non-root USER)
 *     replicas: 2                 # pods of the serving version
 *     warmReplicas: 1             # pods of each warm version of the stable set (never 0 unless you say so)
 *     traffic: auto               # gateway-api | replicas | auto (Gateway API when installed)
 *     route:
 *       name: sentiment           # default: the model name
 *       parentRefs: [{name: public-gateway, namespace: gateways}]
 *       hostnames: [models.example.com]
 *       path: /sentiment          # PathPrefix match (default /)
 *     resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {nvidia.com/gpu: 1}}
 *     nodeSelector: {cloud.google.com/gke-accelerator: nvidia-l4}
 *     tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
 *     serviceAccountName: model-runner
 *     imagePullSecrets: [regcred]
 *     storeSecret: modelctl-store    # Secret with AWS_* variables for the init container
 *     store: s3://models/prod        # the store as the cluster sees it (default: the CLI's store)
 *     progressDeadline: 10m          # how long a version may take to become ready
 *     routeTimeout: 10s              # how long to wait for the Gateway to report a route change Accepted
 *     lease: 60s                     # Lease duration; renewed while a rollout runs
 *     bundleCache:                   # opt-in blob cache for the fetch-bundle init container: exactly one of
 *       hostPath: /var/cache/modelctl  #   a directory on each node (DirectoryOrCreate); needs Pod Security "privileged"
 *       # persistentVolumeClaim: {claimName: model-cache}  # or a claim (ReadWriteMany when pods land on several nodes); any Pod Security level, restricted included
 *       maxBytes: 20Gi               # evicted by size (least recently used, never a blob in use)
 */

const SERVING_USER_ERROR = { error: 'expected a non-root uid (an integer from 1 to 2147483647) or `image` (the serving image\'s own numeric, non-root USER)' };
const quantity = z.union([z.string(), z.number()]).transform(String);
const resourceMap = z.record(z.string(), quantity, { error: 'expected a map like {cpu: 500m, memory: 1Gi}' });

export const kubernetesSectionSchema = z
  .object({
    namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'expected a namespace name (DNS-1123 label)').max(63).optional(),
    context: z.string().optional(),
    kubeconfig: z.string().optional(),
    image: z.string().min(1).optional(),
    servingImage: z.string().min(1).optional(),
    // uid 0 is refused here: the container runs with runAsNonRoot (Pod Security "restricted").
    servingUser: z
      .union([z.number().int().min(1, SERVING_USER_ERROR).max(2147483647, SERVING_USER_ERROR), z.literal('image')], SERVING_USER_ERROR)
      .optional(),
    imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional(),
    replicas: z.number().int().min(1).max(1000).optional(),
    warmReplicas: z.number().int().min(0).max(1000).optional(),
    traffic: z.enum(['auto', 'gateway-api', 'replicas'], { error: 'expected auto, gateway-api or replicas' }).optional(),
    route: z
      .object({
        name: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'expected an object name').max(253).optional(),
        parentRefs: z
          .array(
            z
              .object({
                name: z.string().min(1),
                namespace: z.string().optional(),
                sectionName: z.string().optional(),
                port: z.number().int().min(1).max(65535).optional(),
                group: z.string().optional(),
                kind: z.string().optional(),
              })
              .strict(),
          )
          .optional(),
        hostnames: z.array(z.string().min(1)).optional(),
        path: z.string().regex(/^\//, 'expected a path starting with /').optional(),
      })
      .strict()
      .optional(),
    resources: z.object({ requests: resourceMap.optional(), limits: resourceMap.optional() }).strict().optional(),
    nodeSelector: z.record(z.string(), z.string()).optional(),
    tolerations: z
      .array(
        z
          .object({
            key: z.string().optional(),
            operator: z.enum(['Exists', 'Equal']).optional(),
            value: z.string().optional(),
            effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
            tolerationSeconds: z.number().int().optional(),
          })
          .strict(),
      )
      .optional(),
    serviceAccountName: z.string().optional(),
    imagePullSecrets: z.array(z.string().min(1)).optional(),
    storeSecret: z.string().optional(),
    store: z.string().regex(/^s3:\/\//, 'expected the s3:// URL the cluster pulls bundles from').optional(),
    progressDeadline: z.union([z.string(), z.number()]).optional(),
    routeTimeout: z.union([z.string(), z.number()]).optional(),
    lease: z.union([z.string(), z.number()]).optional(),
    bundleCache: z
      .object({
        hostPath: z.string({ error: 'expected the absolute path of a directory on each node, e.g. /var/cache/modelctl' }).optional(),
        persistentVolumeClaim: z
          .object({ claimName: z.string({ error: 'expected the name of a PersistentVolumeClaim in the namespace, e.g. model-cache' }) }, { error: 'expected {claimName: <a PersistentVolumeClaim of the namespace>}' })
          .strict()
          .optional(),
        maxBytes: quantity.optional(),
      })
      .strict()
      // One volume holds the cache: two would split it (and which one a pod uses would be a guess).
      .refine((c) => (c.hostPath === undefined) !== (c.persistentVolumeClaim === undefined), {
        error: 'give exactly one of hostPath (a directory on each node) or persistentVolumeClaim: {claimName: …} (a claim of the namespace, admitted by every Pod Security level)',
      })
      .optional(),
  })
  .strict();

export type KubernetesSection = z.output<typeof kubernetesSectionSchema>;

/**
 * What the configuration layer hands the Kubernetes target: modelctl.yaml's kubernetes: section
 * (already validated) and the file it came from (for messages). The target never reads the file.
 */
export interface KubernetesConfig {
  section?: KubernetesSection | undefined;
  /** modelctl.yaml's path; absent when there is none. */
  file?: string | undefined;
}

/** The port the metering sidecar takes traffic on (the Service's target port). */
export const TRAFFIC_PORT = 8080;
/** The port the bundle's server listens on inside the pod (PORT env), behind the meter. */
export const SERVING_PORT = 8081;
/** The meter's own API (windows, health): reached only through the API server's pod proxy. */
export const METER_PORT = 9090;
/** The meter's API path the serving container's probes use; it forwards to the model's serve.readinessPath. */
export const MODEL_PROBE_PATH = '/model-ready';

export const DEFAULT_IMAGE = 'ghcr.io/modelctl/modelctl:latest';
/**
 * The model container's uid when kubernetes.servingUser gives none: the modelctl image's own user
 * (USER 1000:1000 in the Dockerfile), which also owns the bundle files fetch-bundle pulled.
 */
export const DEFAULT_SERVING_USER = 1000;

export interface KubernetesSettings {
  namespace: string;
  image: string;
  servingImage: string;
  /** runAsUser of the model container, or 'image' (none: the image's USER, which the kubelet must verify is non-root). */
  servingUser: number | 'image';
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never' | undefined;
  replicas: number;
  warmReplicas: number;
  traffic: 'auto' | 'gateway-api' | 'replicas';
  route: {
    name: string | undefined;
    parentRefs: NonNullable<NonNullable<KubernetesSection['route']>['parentRefs']>;
    hostnames: string[];
    path: string;
  };
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  nodeSelector: Record<string, string>;
  tolerations: NonNullable<KubernetesSection['tolerations']>;
  serviceAccountName: string | undefined;
  imagePullSecrets: string[];
  storeSecret: string | undefined;
  progressDeadlineMs: number;
  /** How long applyTraffic waits for the Gateway controller to accept a new route generation. */
  routeTimeoutMs: number;
  leaseMs: number;
  /** Store URL the init container pulls from (the same store the CLI uses). */
  storeUrl: string;
  /**
   * The blob cache of the init container (kubernetes.bundleCache), or undefined (each pod fetches
   * every byte). maxBytes stays the text written (a quantity: 20Gi); validate.ts checks it.
   */
  bundleCache: BundleCacheSettings | undefined;
}

/** kubernetes.bundleCache resolved: a node directory, or a PersistentVolumeClaim of the namespace. */
export type BundleCacheSettings = { hostPath: string; maxBytes: string } | { persistentVolumeClaim: { claimName: string }; maxBytes: string };

function resolveBundleCache(c: NonNullable<KubernetesSection['bundleCache']>): BundleCacheSettings {
  const maxBytes = c.maxBytes ?? DEFAULT_BUNDLE_CACHE_MAX;
  // The schema let exactly one of the two through.
  return c.persistentVolumeClaim ? { persistentVolumeClaim: { claimName: c.persistentVolumeClaim.claimName }, maxBytes } : { hostPath: c.hostPath ?? '', maxBytes };
}

/** Size bound of the node cache when kubernetes.bundleCache gives none (the local cache's default). */
export const DEFAULT_BUNDLE_CACHE_MAX = '20Gi';

/** modelctl.yaml section (already parsed) + flags → settings with defaults. */
export function resolveKubernetesSettings(
  section: KubernetesSection | undefined,
  opts: { namespace?: string | undefined; storeUrl: string; where?: string },
): KubernetesSettings {
  const s = section ?? {};
  const where = opts.where ?? 'modelctl.yaml';
  const image = s.image ?? DEFAULT_IMAGE;
  const leaseMs = s.lease !== undefined ? parseDuration(s.lease, `${where}: kubernetes.lease`) : 60_000;
  if (leaseMs < 5_000) throw new UsageError(`${where}: kubernetes.lease must be at least 5s`);
  return {
    namespace: opts.namespace ?? s.namespace ?? 'default',
    image,
    servingImage: s.servingImage ?? image,
    servingUser: s.servingUser ?? DEFAULT_SERVING_USER,
    imagePullPolicy: s.imagePullPolicy,
    replicas: s.replicas ?? 1,
    warmReplicas: s.warmReplicas ?? 1,
    traffic: s.traffic ?? 'auto',
    route: { name: s.route?.name, parentRefs: s.route?.parentRefs ?? [], hostnames: s.route?.hostnames ?? [], path: s.route?.path ?? '/' },
    resources: s.resources ?? {},
    nodeSelector: s.nodeSelector ?? {},
    tolerations: s.tolerations ?? [],
    serviceAccountName: s.serviceAccountName,
    imagePullSecrets: s.imagePullSecrets ?? [],
    storeSecret: s.storeSecret,
    progressDeadlineMs: s.progressDeadline !== undefined ? parseDuration(s.progressDeadline, `${where}: kubernetes.progressDeadline`) : 600_000,
    routeTimeoutMs: s.routeTimeout !== undefined ? parseDuration(s.routeTimeout, `${where}: kubernetes.routeTimeout`) : 10_000,
    leaseMs,
    storeUrl: s.store ?? opts.storeUrl,
    bundleCache: s.bundleCache ? resolveBundleCache(s.bundleCache) : undefined,
  };
}
