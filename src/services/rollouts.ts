import { hostname } from 'node:os';
import path from 'node:path';
import { actorIdentity } from '../cli/identity.js';
import { UsageError } from '../cli/errors.js';
import { loadProjectConfig, modelctlHome, prometheusUrlOf, resolvePrometheusSettings } from '../cli/config.js';
import type { GateContext, GateEvaluator, GateResult, GateSpec } from '../gates/contracts.js';
import { defaultLocalGates } from '../gates/local.js';
import { defaultGateRegistry, type GateRegistry } from '../gates/registry.js';
import { FileLedgerStore } from '../ledger/file-store.js';
import type { RolloutPlan } from '../ledger/model.js';
import { systemClock } from '../rollout/contracts.js';
import { describePlan, type PlanDescription } from '../rollout/describe.js';
import { RolloutEngine, type RolloutEvent, type RolloutResult } from '../rollout/engine.js';
import { parseRolloutSection, resolvePlan, type RolloutFlags } from '../rollout/plan.js';
import type { BundleStore } from '../store/store.js';
import { processAlive } from '../util/process.js';
import { fetchManifest, resolveRef } from './bundles.js';

export const TARGETS = ['local', 'kubernetes'] as const;
export type TargetName = (typeof TARGETS)[number];

export interface RolloutContextOptions {
  target: TargetName;
  store: BundleStore;
  /** MODELCTL_HOME (default: the user's data directory). */
  home?: string;
  /** Local router port, when the runtime has to be started. */
  port?: number | undefined;
  onEvent?: (e: RolloutEvent) => void;
  /** --prometheus-url, where a command has it; else MODELCTL_PROMETHEUS_URL, else modelctl.yaml prometheus.url. */
  prometheusUrl?: string | undefined;
}

/**
 * The gate registry of a rollout: local gates always; Prometheus (query) gates when a URL is
 * configured. A configuration problem (e.g. the token variable is not set) does not stop rollouts
 * with local gates only: it is reported by `validate` for each query gate, before anything starts.
 */
export async function gateRegistryFor(opts: { prometheusUrl?: string | undefined } = {}): Promise<GateRegistry> {
  const registry = defaultGateRegistry();
  const project = await loadProjectConfig(process.cwd());
  if (!prometheusUrlOf({ url: opts.prometheusUrl }, project)) return registry;
  let evaluator: GateEvaluator;
  try {
    const settings = resolvePrometheusSettings({ url: opts.prometheusUrl }, project)!;
    const [{ PrometheusClient }, { PrometheusGateEvaluator }] = await Promise.all([import('../gates/prometheus.js'), import('../gates/prometheus-evaluator.js')]);
    evaluator = new PrometheusGateEvaluator(new PrometheusClient(settings), { vars: settings.vars, minIntervalMs: settings.minIntervalMs });
  } catch (err) {
    const problem = `Prometheus is misconfigured: ${err instanceof Error ? err.message : String(err)}`;
    evaluator = {
      validate: (g: GateSpec) => [`gate ${JSON.stringify(g.name)}: ${problem}`],
      evaluate: async (g: GateSpec, ctx: GateContext): Promise<GateResult> => {
        return { name: g.name, verdict: 'error', value: null, limit: '', samples: 0, reason: problem, query: g.query ?? '', at: ctx.now };
      },
    };
  }
  return registry.register('prometheus', evaluator);
}

/**
 * Wire the engine to a target: the local runtime (target, metric source, file ledger under
 * MODELCTL_HOME) today; Kubernetes plugs in here next. The engine itself never knows which.
 */
export async function openEngine(opts: RolloutContextOptions): Promise<RolloutEngine> {
  if (opts.target !== 'local') {
    throw new UsageError(`--target ${opts.target} is not available yet in this build`, { hint: 'use --target local (the default)' });
  }
  const home = opts.home ?? modelctlHome();
  const [{ LocalTarget }, { LocalMetricSource }] = await Promise.all([import('../targets/local/target.js'), import('../targets/local/metric-source.js')]);
  return new RolloutEngine({
    target: new LocalTarget({ home, store: opts.store, port: opts.port }),
    metrics: new LocalMetricSource({ home }),
    ledger: new FileLedgerStore(path.join(home, 'ledger', opts.target), opts.target),
    clock: systemClock,
    holder: { holder: actorIdentity(), pid: process.pid, host: hostname() },
    holderGone: (lock) => lock.host === hostname() && !processAlive(lock.pid),
    evaluator: await gateRegistryFor({ prometheusUrl: opts.prometheusUrl }),
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
  });
}

export interface DeployRequest {
  ref: string;
  flags: RolloutFlags;
  dryRun: boolean;
  resume: boolean;
}

/** The plan of a deploy, from every layer: defaults < modelctl.yaml < the bundle's rollout: < env < flags. */
export async function planDeploy(
  store: BundleStore,
  refText: string,
  flags: RolloutFlags,
  opts: { prometheusUrl?: string | undefined } = {},
): Promise<{ model: string; version: string; digest: string; plan: RolloutPlan }> {
  const resolved = await resolveRef(store, refText);
  const { manifest, digest } = await fetchManifest(store, resolved);
  const project = await loadProjectConfig(process.cwd());
  const plan = resolvePlan({
    project: parseRolloutSection(project.config.rollout, project.file ?? 'modelctl.yaml'),
    bundle: parseRolloutSection(manifest.spec.rollout, `bundle.yaml of ${manifest.name}@${manifest.version}`),
    flags,
    defaultGates: defaultLocalGates(),
    queryGates: prometheusUrlOf({ url: opts.prometheusUrl }, project) !== undefined,
  });
  return { model: manifest.name, version: manifest.version, digest, plan };
}

export async function deploy(opts: RolloutContextOptions & DeployRequest & { onPlan?: (p: RolloutPlan) => void }): Promise<RolloutResult | PlanDescription> {
  const { model, version, digest, plan } = await planDeploy(opts.store, opts.ref, opts.flags, { prometheusUrl: opts.prometheusUrl });
  opts.onPlan?.(plan);
  const engine = await openEngine(opts);
  if (opts.dryRun) {
    const status = await engine.status(model);
    return describePlan({ model, version, digest, target: opts.target, stable: status.serving, plan });
  }
  return engine.deploy({ model, version, digest }, plan, { resume: opts.resume });
}
