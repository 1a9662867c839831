import type { LedgerStore } from '../../ledger/model.js';
import type { MetricSource, Target } from '../../core/ports.js';
import type { BundleStore } from '../../store/store.js';
import { connectKube, KubeApi, type KubeConnection } from './client.js';
import { KubernetesLedgerStore } from './ledger-store.js';
import { KubernetesMetricSource, podAccessFromKubeConfig } from './metric-source.js';
import { describePermission } from './rbac.js';
import { resolveKubernetesSettings, type KubernetesConfig, type KubernetesSettings } from './settings.js';
import { KubernetesTarget } from './target.js';

export interface OpenKubernetesOptions {
  flags: { kubeconfig?: string | undefined; context?: string | undefined; namespace?: string | undefined };
  /** modelctl.yaml's kubernetes: section, as the context read it. */
  config: KubernetesConfig;
  store: BundleStore;
  note?: (message: string) => void;
  /** Where the API server's Warning headers go (default: stderr, always). */
  warn?: (warning: string) => void;
}

export interface KubernetesParts {
  target: KubernetesTarget & Target;
  metrics: MetricSource;
  ledger: LedgerStore;
  settings: KubernetesSettings;
  api: KubeApi;
  conn: KubeConnection;
  /** Where the namespace came from: --namespace, modelctl.yaml, the kube context, or the default. */
  namespaceFrom: string;
}

/**
 * Everything the engine needs to run on a namespace. Flags override modelctl.yaml's kubernetes:
 * section; the namespace falls back to the kube context's, then "default" (like kubectl).
 */
export function openKubernetes(opts: OpenKubernetesOptions): KubernetesParts {
  const section = opts.config.section;
  const conn = connectKube({ kubeconfig: opts.flags.kubeconfig ?? section?.kubeconfig, context: opts.flags.context ?? section?.context });
  const namespace = opts.flags.namespace ?? section?.namespace ?? conn.contextNamespace ?? 'default';
  const file = opts.config.file ?? 'modelctl.yaml';
  const namespaceFrom = opts.flags.namespace ? '--namespace' : section?.namespace ? file : conn.contextNamespace ? `the namespace of context ${conn.context}` : 'the default namespace';
  const settings = resolveKubernetesSettings(section, { namespace, storeUrl: opts.store.url, where: file });
  // The API server's warnings are never ignored: each distinct one goes to stderr once — in --json
  // mode too (stdout stays one JSON document; notes are silenced there, these must not be).
  const warn = opts.warn ?? ((w: string) => process.stderr.write(`modelctl: the Kubernetes API server warns: ${w}\n`));
  const api = new KubeApi(conn.kc, { explainPermission: describePermission, onWarning: warn });
  return {
    target: new KubernetesTarget({ api, settings, store: opts.store, settingsFile: file, namespaceFrom, ...(opts.note ? { note: opts.note } : {}) }),
    metrics: new KubernetesMetricSource({ core: podAccessFromKubeConfig(conn.kc, warn), namespace }),
    ledger: new KubernetesLedgerStore({ api, namespace }),
    settings,
    api,
    conn,
    namespaceFrom,
  };
}
