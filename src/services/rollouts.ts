import { hostname } from 'node:os';
import path from 'node:path';
import { actorIdentity } from '../core/identity.js';
import type { Context } from './context.js';
import type { GateContext, GateEvaluator } from '../gates/contracts.js';
import type { GateResult, GateSpec } from '../core/gates.js';
import { defaultLocalGates } from '../gates/local.js';
import { servedAnswers } from '../bundle/serve.js';
import { UsageError } from '../core/errors.js';
import { defaultGateRegistry, PROMETHEUS_STATS_KIND, type GateRegistry } from '../gates/registry.js';
import { FileLedgerStore } from '../ledger/file-store.js';
import type { LedgerStore } from '../ledger/model.js';
import type { RolloutPlan } from '../core/model.js';
import { systemClock, type MetricSource, type ObservedState, type Target } from '../core/ports.js';
import { describePlan, type PlanDescription } from '../rollout/describe.js';
import { RolloutEngine } from '../rollout/engine.js';
import { type DeployOptions, type RolloutResult, type StatusView } from '../rollout/results.js';
import { type RolloutEvent } from '../core/events.js';
import { differences } from '../rollout/reality.js';
import { firstSplit } from '../rollout/splits.js';
import { parseRolloutSection, resolvePlan, type RolloutFlags } from '../rollout/plan.js';
import { EVALUATION_DEFAULTS, type EvaluationInput } from '../gates/evaluation.js';
import type { Manifest } from '../bundle/manifest.js';
import type { BundleStore } from '../store/store.js';
import type { RolloutTelemetry, TelemetrySink } from '../telemetry/index.js';
import { processAlive } from '../util/process.js';
import { fetchManifest, resolveRef } from '../store/transfer.js';

export const TARGETS = ['local', 'kubernetes'] as const;
export type TargetName = (typeof TARGETS)[number];

export interface RolloutContextOptions {
  target: TargetName;
  store: BundleStore;
  /** MODELCTL_HOME (default: the context's). */
  home?: string;
  /** Local router port, when the runtime has to be started. */
  port?: number | undefined;
  onEvent?: (e: RolloutEvent) => void;
  /** --prometheus-url, where a command has it; else MODELCTL_PROMETHEUS_URL, else modelctl.yaml prometheus.url. */
  prometheusUrl?: string | undefined;
  /** --kubeconfig, --context, --namespace (target kubernetes); each overrides modelctl.yaml kubernetes:. */
  kube?: KubeFlags | undefined;
  /** Progress notes a target has for the user (stderr). */
  note?: ((message: string) => void) | undefined;
}

export interface KubeFlags {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  namespace?: string | undefined;
}

export interface TelemetryRequest {
  /** --pushgateway (oclif merges MODELCTL_PUSHGATEWAY_URL into it); else, with `telemetry`, modelctl.yaml telemetry.pushgateway. None: no telemetry. */
  pushgateway?: string | undefined;
  /**
   * A command the user ran (deploy, rollback): also consult MODELCTL_PUSHGATEWAY_URL and
   * modelctl.yaml. Other callers (the demo, on its private home) push only when given a URL.
   */
  telemetry?: boolean;
  /** Where a failed push is reported (stderr); it never fails the command. */
  warn?: (message: string) => void;
}

/**
 * modelctl's own metrics for one command on `model`, pushed to the Pushgateway configured (by
 * flag, env or modelctl.yaml); undefined when none is. A malformed URL is bad input (exit 2).
 */
export async function openTelemetry(
  ctx: Context,
  model: string,
  target: string,
  req: TelemetryRequest & { home?: string | undefined },
): Promise<RolloutTelemetry | undefined> {
  const { pushgatewayUrlOf, parsePushgateway, RolloutTelemetry } = await import('../telemetry/index.js');
  const url = req.telemetry ? pushgatewayUrlOf(req.pushgateway, await ctx.project(), ctx.env) : req.pushgateway;
  // On the local target the long-lived daemon also exposes the rollout metrics at its /metrics.
  const sinks = req.telemetry && target === 'local' ? [localRuntimeSink(model, req.home ?? ctx.home())] : [];
  if (!url && sinks.length === 0) return undefined;
  return new RolloutTelemetry({ model, target, pushgateway: url ? parsePushgateway(url) : undefined, sinks, ...(req.warn ? { warn: req.warn } : {}) });
}

/** Report the rollout metrics to the local runtime (skipped quietly while it is not running). */
function localRuntimeSink(model: string, home: string): TelemetrySink {
  return {
    name: 'the local runtime',
    push: async (registry) => {
      const { connectRuntime } = await import('../targets/local/client.js');
      const client = await connectRuntime(home);
      if (client) await client.call('PUT', `/v1/telemetry/${encodeURIComponent(model)}`, await registry.getMetricsAsJSON(), 5000);
    },
  };
}

/** Run `body` with its events also fed to `telemetry`; an error records the rollout as interrupted; always pushes last. */
export async function withTelemetry<T>(telemetry: RolloutTelemetry | undefined, body: () => Promise<T>): Promise<T> {
  if (!telemetry) return body();
  try {
    return await body();
  } catch (err) {
    telemetry.interrupted();
    throw err;
  } finally {
    await telemetry.flush();
  }
}

/** One onEvent out of two (either may be absent). */
export function teeEvents(...sinks: (((e: RolloutEvent) => void) | undefined)[]): ((e: RolloutEvent) => void) | undefined {
  const live = sinks.filter((s): s is (e: RolloutEvent) => void => s !== undefined);
  if (live.length === 0) return undefined;
  return (e) => {
    for (const s of live) s(e);
  };
}

/**
 * The gate registry of a rollout: local gates always; Prometheus (query) gates when a URL is
 * configured. A configuration problem (e.g. the token variable is not set) does not stop rollouts
 * with local gates only: it is reported by `validate` for each query gate, before anything starts.
 */
export async function gateRegistryFor(ctx: Context, opts: { prometheusUrl?: string | undefined } = {}): Promise<GateRegistry> {
  const registry = defaultGateRegistry();
  if (!(await ctx.prometheusUrl(opts.prometheusUrl))) return registry;
  let evaluator: GateEvaluator;
  let statsEvaluator: GateEvaluator;
  try {
    const settings = (await ctx.prometheusSettings({ url: opts.prometheusUrl }))!;
    const [{ PrometheusClient }, { PrometheusGateEvaluator }, { PrometheusStatsGateEvaluator }] = await Promise.all([
      import('../gates/prometheus.js'),
      import('../gates/prometheus-evaluator.js'),
      import('../gates/prometheus-stats.js'),
    ]);
    // One client (one connection pool, one retry policy) for query gates and statistical/drift gates fed by Prometheus.
    const client = new PrometheusClient(settings);
    const templating = { vars: settings.vars, minIntervalMs: settings.minIntervalMs };
    evaluator = new PrometheusGateEvaluator(client, templating);
    statsEvaluator = new PrometheusStatsGateEvaluator(client, templating);
  } catch (err) {
    const problem = `Prometheus is misconfigured: ${err instanceof Error ? err.message : String(err)}`;
    evaluator = {
      validate: (g: GateSpec) => [`gate ${JSON.stringify(g.name)}: ${problem}`],
      evaluate: async (g: GateSpec, ctx: GateContext): Promise<GateResult> => {
        return { name: g.name, verdict: 'error', value: null, limit: '', samples: 0, reason: problem, query: g.kind === 'prometheus' ? (g.query ?? '') : '', at: ctx.now };
      },
    };
    statsEvaluator = evaluator;
  }
  return registry.register('prometheus', evaluator).register(PROMETHEUS_STATS_KIND, statsEvaluator);
}

/**
 * Wire the engine to a target: the local runtime (target, metric source, file ledger under
 * MODELCTL_HOME) or a Kubernetes namespace (Deployments, HTTPRoute, ledger ConfigMap + Lease,
 * metering sidecars). The engine itself never knows which.
 */
export async function openEngine(ctx: Context, opts: RolloutContextOptions): Promise<RolloutEngine> {
  return engineOf(ctx, await openTargetParts(ctx, opts), opts);
}

/** The ledger's status of `model` and, where the target can tell, what it really runs and routes, with every difference. */
export async function statusWithReality(ctx: Context, opts: RolloutContextOptions, model: string): Promise<StatusView & { observed?: ObservedState; differences?: string[] }> {
  const parts = await openTargetParts(ctx, opts);
  const status = await (await engineOf(ctx, parts, opts)).status(model);
  if (!parts.target.observe) return status;
  const observed = await parts.target.observe(model);
  return { ...status, observed, differences: differences(status, observed) };
}

/** The target, metric source and ledger of `opts.target`. */
export async function openTargetParts(ctx: Context, opts: RolloutContextOptions): Promise<TargetParts> {
  return opts.target === 'kubernetes' ? kubernetesParts(ctx, opts) : localParts(ctx, opts);
}

/** What a target brings to the engine; `lockTtlMs` when the target has its own lock lifetime (a Lease duration). */
interface TargetParts {
  target: Target;
  metrics: MetricSource;
  ledger: LedgerStore;
  lockTtlMs?: number;
}

async function engineOf(ctx: Context, parts: TargetParts, opts: RolloutContextOptions): Promise<RolloutEngine> {
  return new RolloutEngine({
    target: parts.target,
    metrics: parts.metrics,
    ledger: parts.ledger,
    ...(parts.lockTtlMs !== undefined ? { lockTtlMs: parts.lockTtlMs } : {}),
    clock: ctx.clock,
    holder: { holder: actorIdentity(ctx.env), pid: process.pid, host: hostname() },
    holderGone: (lock) => lock.host === hostname() && !processAlive(lock.pid),
    evaluator: await gateRegistryFor(ctx, { prometheusUrl: opts.prometheusUrl }),
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
  });
}

async function localParts(ctx: Context, opts: RolloutContextOptions) {
  const home = opts.home ?? ctx.home();
  const [{ LocalTarget }, { LocalMetricSource }] = await Promise.all([import('../targets/local/target.js'), import('../targets/local/metric-source.js')]);
  return {
    target: new LocalTarget({ home, store: opts.store, port: opts.port, config: await ctx.localConfig(), env: ctx.env, note: opts.note }),
    metrics: new LocalMetricSource({ home }),
    ledger: new FileLedgerStore(path.join(home, 'ledger', opts.target), opts.target),
  };
}

/** Target, metric source and ledger of a namespace; the kubernetes modules load only here (startup stays light). */
async function kubernetesParts(ctx: Context, opts: RolloutContextOptions) {
  const { openKubernetes } = await import('../targets/kubernetes/open.js');
  const parts = openKubernetes({ flags: opts.kube ?? {}, config: await ctx.kubernetesConfig(), store: opts.store, ...(opts.note ? { note: opts.note } : {}) });
  return { ...parts, lockTtlMs: parts.settings.leaseMs };
}

export interface DeployRequest {
  ref: string;
  flags: RolloutFlags;
  dryRun: boolean;
  resume: boolean;
  /** Aborted (SIGINT/SIGTERM, with the signal's name as reason): abort the rollout to stable. */
  signal?: AbortSignal | undefined;
}

/** The plan of a deploy, from every layer: defaults < modelctl.yaml < the bundle's rollout: < env < flags. */
export async function planDeploy(
  ctx: Context,
  store: BundleStore,
  refText: string,
  flags: RolloutFlags,
  opts: { prometheusUrl?: string | undefined; target?: TargetName; warn?: ((message: string) => void) | undefined } = {},
): Promise<{ model: string; version: string; digest: string; plan: RolloutPlan; manifest: Manifest }> {
  const resolved = await resolveRef(store, refText);
  const { manifest, digest } = await fetchManifest(store, resolved);
  const project = await ctx.project();
  const comparable = answersComparable(manifest);
  const plan = resolvePlan({
    project: parseRolloutSection(project.config.rollout, project.file ?? 'modelctl.yaml'),
    bundle: parseRolloutSection(manifest.spec.rollout, `bundle.yaml of ${manifest.name}@${manifest.version}`),
    flags,
    // Shadow agreement is measured on Kubernetes too: the candidate's meter compares (shadow-compare.ts).
    defaultGates: comparable ? defaultLocalGates() : defaultLocalGates().filter((g) => !measuresShadowAgreement(g)),
    queryGates: (await ctx.prometheusUrl(opts.prometheusUrl)) !== undefined,
  });
  if (plan.shadowPercent > 0 && !comparable) checkShadowWithoutComparison(plan, `${manifest.name}@${manifest.version}`, opts.warn);
  return { model: manifest.name, version: manifest.version, digest, plan, manifest };
}

/** Whether the bundle says how its answers compare (serve.agreement / agreementField): shadow agreement needs it. */
function answersComparable(manifest: Manifest): boolean {
  return servedAnswers(manifest.spec.serve).agreement !== undefined;
}

const measuresShadowAgreement = (g: GateSpec) => (g.kind === undefined || g.kind === 'local') && g.metric === 'shadow-agreement';

/**
 * A shadow of a bundle that does not say how its answers compare has nothing for shadow agreement
 * to count: before, the gate stayed inconclusive and every such shadow ended held for a human.
 * The default gate is left out (the shadow still judges errors and latency of the mirrored
 * requests) and the user is told; a shadow-agreement gate the user asked for is refused (exit 2),
 * since it could never pass.
 */
function checkShadowWithoutComparison(plan: RolloutPlan, ref: string, warn: ((message: string) => void) | undefined): void {
  const asked = plan.gates.filter(measuresShadowAgreement);
  const hint = 'add serve.agreementField (one answer field compared for equality) or serve.agreement (a comparison mode) to bundle.yaml and push a new version';
  if (asked.length > 0) {
    throw new UsageError(`gate ${JSON.stringify(asked[0]!.name)} measures shadow-agreement, but ${ref} does not say how its answers compare (no serve.agreement or serve.agreementField in its bundle.yaml): the shadow could never pass it`, {
      hint: `${hint}; or drop that gate from rollout.gates`,
    });
  }
  warn?.(`${ref} does not say how its answers compare (no serve.agreement or serve.agreementField): the shadow is judged on errors and latency only, without shadow-agreement. To compare answers, ${hint}.`);
}

export async function deploy(
  ctx: Context,
  opts: RolloutContextOptions & DeployRequest & TelemetryRequest & { onPlan?: (p: RolloutPlan) => void },
): Promise<RolloutResult | PlanDescription> {
  const { model, version, digest, plan, manifest } = await planDeploy(ctx, opts.store, opts.ref, opts.flags, { prometheusUrl: opts.prometheusUrl, target: opts.target, warn: opts.warn });
  // Checked before anything starts (a bad URL is exit 2), but a dry run pushes nothing.
  const telemetry = await openTelemetry(ctx, model, opts.target, opts);
  opts.onPlan?.(plan);
  if (opts.dryRun && opts.target === 'kubernetes') {
    // The same checks as the real run: the evaluation set is read and checked (the target replays it).
    const { KubernetesTarget } = await import('../targets/kubernetes/target.js');
    await evaluationOf(opts.store, manifest, plan, { name: 'kubernetes', evaluate: KubernetesTarget.prototype.evaluate });
    // Works without a cluster (GitOps review, CI lint); adds what a configured cluster knows.
    const { kubernetesDryRun } = await import('../targets/kubernetes/dry-run.js');
    const k = await kubernetesDryRun({ store: opts.store, config: await ctx.kubernetesConfig(), flags: opts.kube ?? {}, ref: { model, version, digest }, plan, note: opts.note });
    const description = describePlan({ model, version, digest, target: opts.target, stable: k.stable, plan });
    const withCluster: PlanDescription & { kubernetes: typeof k } = { ...description, manifests: k.steps.flatMap((s) => s.objects), kubernetes: k };
    return withCluster;
  }
  if (opts.dryRun) {
    const parts = await openTargetParts(ctx, opts);
    const dryEngine = await engineOf(ctx, parts, opts);
    // The same checks as the real run (a dry run must refuse what the deploy would refuse).
    await dryEngine.checkPlan({ model, version, digest }, plan);
    await evaluationOf(opts.store, manifest, plan, parts.target);
    const status = await dryEngine.status(model);
    const description = describePlan({ model, version, digest, target: opts.target, stable: status.serving, plan });
    if (parts.target.manifests) description.manifests = await parts.target.manifests({ model, version, digest }, firstSplit(version, status.serving, plan));
    return description;
  }
  const resumeChanges = opts.resume ? resumeChangesOf(opts.flags, plan) : {};
  const onEvent = teeEvents(opts.onEvent, telemetry && ((e) => telemetry.onEvent(e)));
  const parts = await openTargetParts(ctx, opts);
  const engine = await engineOf(ctx, parts, { ...opts, ...(onEvent ? { onEvent } : {}) });
  // The evaluation set, read and checked before anything starts (a bad one is exit 2, nothing changed).
  const evaluation = await evaluationOf(opts.store, manifest, plan, parts.target);
  return withTelemetry(telemetry, () =>
    engine.deploy({ model, version, digest }, plan, { resume: opts.resume, ...(opts.signal ? { signal: opts.signal } : {}), ...resumeChanges, ...(evaluation ? { evaluation } : {}) }),
  );
}

/** The bundle's evaluation set when the plan has kind eval gates; refused (exit 2) when they cannot run. */
async function evaluationOf(store: BundleStore, manifest: Manifest, plan: RolloutPlan, target: Pick<Target, 'name' | 'evaluate'>): Promise<EvaluationInput | undefined> {
  const { evaluationGates, checkEvaluationPlan } = await import('../rollout/evaluation.js');
  if (evaluationGates(plan.gates).length === 0) return undefined;
  const { loadEvaluationInput } = await import('../gates/evaluation-set.js');
  const input = await loadEvaluationInput(store, manifest, plan.evaluation ?? { ...EVALUATION_DEFAULTS });
  checkEvaluationPlan(plan.gates, input, target, `${manifest.name}@${manifest.version}`);
  return input;
}

/**
 * `deploy --resume` continues the recorded plan. Timing flags given again apply from the resumed
 * step on; flags (or MODELCTL_* variables) that would change the plan's shape mid-way (which step
 * is "step 2"?) are refused by the engine when they differ from the recorded plan — never ignored.
 */
function resumeChangesOf(flags: RolloutFlags, plan: RolloutPlan): Pick<DeployOptions, 'resumeTimings' | 'resumeShape'> {
  const shape: NonNullable<DeployOptions['resumeShape']> = {};
  if (flags.steps !== undefined || flags.canary !== undefined) shape.steps = plan.steps;
  if (flags.shadow !== undefined) shape.shadowPercent = plan.shadowPercent;
  if (flags.shadowOnly !== undefined) shape.shadowOnly = plan.shadowOnly;
  const timings: NonNullable<DeployOptions['resumeTimings']> = {};
  if (flags.interval !== undefined || flags.checkEvery !== undefined) Object.assign(timings, { intervalMs: plan.intervalMs, checkEveryMs: plan.checkEveryMs });
  if (flags.shadowDuration !== undefined) timings.shadowDurationMs = plan.shadowDurationMs;
  if (flags.readyTimeout !== undefined) timings.readyTimeoutMs = plan.readyTimeoutMs;
  return { ...(Object.keys(timings).length > 0 ? { resumeTimings: timings } : {}), ...(Object.keys(shape).length > 0 ? { resumeShape: shape } : {}) };
}

/**
 * Rollouts on the local runtime of `home` that a living modelctl drives right now (lock live):
 * what `local down` must not pull the runtime from under. Held or interrupted rollouts have no
 * driver and are not listed (their state survives a restart of the runtime). A ledger that cannot
 * be read is skipped here: its own commands report it.
 */
export async function liveLocalRollouts(home: string): Promise<Array<{ model: string; version: string; phase: string; holder: string }>> {
  const ledger = new FileLedgerStore(path.join(home, 'ledger', 'local'), 'local');
  const engine = new RolloutEngine({
    target: { name: 'local' } as Target, // status() reads the ledger only
    metrics: { window: () => Promise.reject(new Error('unused')) },
    ledger,
    clock: systemClock,
    holder: { holder: actorIdentity(), pid: process.pid, host: hostname() },
    holderGone: (lock) => lock.host === hostname() && !processAlive(lock.pid),
  });
  const live = [];
  for (const model of await ledger.list().catch(() => [] as string[])) {
    const s = await engine.status(model).catch(() => undefined);
    const r = s?.rollout;
    if (r && !r.interrupted && r.phase !== 'held') live.push({ model, version: r.version, phase: r.phase === 'canary' ? `canary step ${r.stepIndex + 1}/${r.steps.length}` : r.phase, holder: s.lock?.holder ?? r.holder });
  }
  return live;
}
