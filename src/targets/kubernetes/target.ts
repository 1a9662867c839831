import type { CoreV1Event, KubernetesObject, V1Deployment, V1Pod, V1Service } from '@kubernetes/client-node';
import { UsageError, UnavailableError } from '../../core/errors.js';
import type { ServeSpec } from '../../bundle/serve.js';
import { LockedError } from '../../ledger/lock.js';
import type { RolloutPlan, TrafficSplit, VersionRef } from '../../core/model.js';
import type { DeployOptions, EvaluationAnswer, EvaluationRequest, ObservedState, Target } from '../../core/ports.js';
import { parseStoreUrl } from '../../store/open.js';
import type { BundleStore } from '../../store/store.js';
import { KubeConflictError, type KubeApi } from './client.js';
import { gatewayApiSupport } from './gateway-support.js';
import { decideTrafficMode, validateRollout, type TrafficMode } from './render.js';
import { serveSpecOf } from './serve-spec.js';
import { assertServiceProxyAllowed, evaluateThroughService } from './evaluate.js';
import { deploymentFor, httpRouteFor, METER_CONTAINER, modelServiceFor, routeName, SERVICE_PORT_NAME, serviceFor } from './manifests.js';
import { ANNOTATIONS, LABELS, MANAGED_BY, selectorString, versionObjectName, versionSelector } from './names.js';
import { deploymentReady, describeProblems, diagnosePods, giveUpAfterMs, problemHint, progressDeadlineExceeded, replicaFailure } from './readiness.js';
import { replicaPlan } from './replicas.js';
import type { KubernetesSettings } from './settings.js';

/**
 * Kubernetes as a Target: a Deployment + Service per version, traffic through a Gateway API
 * HTTPRoute (weights, RequestMirror percent) or, without Gateway API, by replica ratio behind one
 * model Service. Every write is server-side apply (one field manager) or a merge patch of fields
 * modelctl alone owns (replicas, the in-service label), so every method is idempotent: the engine
 * may repeat any step after a crash.
 *
 * Requests per call are constant in the number of versions and steps except where a call touches
 * each version by nature (scaling in replica mode); readiness is watched, never polled.
 */

export type { TrafficMode } from './render.js';

export interface KubernetesTargetOptions {
  api: KubeApi;
  settings: KubernetesSettings;
  store: BundleStore;
  /** Progress lines (e.g. the replica-ratio approximation). */
  note?: (message: string) => void;
  /** Where the settings came from (modelctl.yaml's path) and the namespace (flag, file, context, default): named in validation errors. */
  settingsFile?: string | undefined;
  namespaceFrom?: string | undefined;
}

const SERVED = ANNOTATIONS.served;

export class KubernetesTarget implements Target {
  readonly name = 'kubernetes';
  private mode: Promise<TrafficMode> | undefined;
  /** Per HTTPRoute: the resourceVersion and generation this target last wrote or saw. */
  private readonly routeSeen = new Map<string, { rv: string; generation: number }>();

  constructor(private readonly opts: KubernetesTargetOptions) {}

  private get ns(): string {
    return this.opts.settings.namespace;
  }

  /** gateway-api or replicas, as configured; `auto` asks discovery once. */
  trafficMode(): Promise<TrafficMode> {
    this.mode ??= (async () => decideTrafficMode(this.opts.settings, await this.opts.api.hasGatewayApi(), this.opts.api.server).mode)();
    return this.mode;
  }

  /**
   * Shadow needs a router that mirrors a share: the Gateway API with RequestMirror percent (v1.3.0+
   * standard channel). Replica ratio cannot copy requests; an older Gateway API would mirror 100%.
   * Both are refused here, before anything is written or any traffic moves.
   */
  async checkPlan(model: string, plan: RolloutPlan, ref?: VersionRef): Promise<void> {
    // Everything the rollout will send, checked against the API server's rules and the upstream
    // schemas before the ledger or the cluster is written (the same function as deploy --dry-run).
    if (ref) {
      const [versions] = await validateRollout({
        candidate: { ref, serve: await this.serveSpec(ref) },
        stable: null,
        plan,
        settings: this.opts.settings,
        mode: await this.trafficMode(),
        settingsFile: this.opts.settingsFile ?? 'modelctl.yaml',
        namespaceFrom: this.opts.namespaceFrom,
      });
      // Then the server's own checks (Strict field validation, defaulting, admission webhooks and
      // policies), persisting nothing: a refusal here leaves no release in the ledger, no object behind.
      for (const o of versions!.objects as KubernetesObject[]) await this.opts.api.apply(o, { dryRun: true });
    }
    if (plan.gates.some((g) => g.kind === 'eval')) await assertServiceProxyAllowed(this.opts.api, this.ns);
    if (plan.shadowPercent <= 0) return;
    if ((await this.trafficMode()) === 'replicas') {
      throw new UsageError('shadow traffic needs the Gateway API (RequestMirror): replica-ratio traffic cannot copy requests', {
        hint: 'install the Gateway API and an implementation (kubernetes.traffic: gateway-api), or deploy without --shadow',
      });
    }
    const support = await gatewayApiSupport(this.opts.api, model, this.opts.settings, plan.shadowPercent);
    if (support.refusal) throw support.refusal;
  }

  /**
   * One evaluation case to `version` alone, through its own Service via the API server's service
   * proxy (evaluate.ts: why that path, the bounds, what is thrown). Marked as a replay, so the
   * version's meter forwards it without recording it: no gate window ever counts it.
   */
  evaluate(model: string, version: string, request: EvaluationRequest): Promise<EvaluationAnswer> {
    return evaluateThroughService(this.opts.api.kc, { namespace: this.ns, service: versionObjectName(model, version), port: SERVICE_PORT_NAME }, request);
  }

  private deploymentRef(model: string, version: string) {
    return { apiVersion: 'apps/v1', kind: 'Deployment', namespace: this.ns, name: versionObjectName(model, version) };
  }

  /** The serve section of the bundle (checked like the local runtime does), read from the store's manifest. */
  private serveSpec(ref: VersionRef): Promise<ServeSpec> {
    return serveSpecOf(this.opts.store, ref);
  }

  /**
   * What the namespace really holds for `model`: each version's Deployment (ready/desired) and the
   * split its route (or, in replica mode, its in-service pods) carries. Read-only: two lists and a get.
   */
  async observe(model: string): Promise<ObservedState> {
    const mode = await this.trafficMode();
    const { items } = await this.opts.api.list<V1Deployment>('apps/v1', 'Deployment', this.ns, `${LABELS.model}=${model},${LABELS.managedBy}=${MANAGED_BY}`);
    const versions: ObservedState['versions'] = {};
    const byName = new Map<string, string>();
    for (const d of items) {
      const version = d.metadata?.annotations?.[ANNOTATIONS.version];
      if (!version) continue;
      versions[version] = { ready: d.status?.readyReplicas ?? 0, desired: d.spec?.replicas ?? 0 };
      byName.set(versionObjectName(model, version), version);
    }
    if (mode === 'replicas') {
      const serving = items.filter((d) => d.spec?.template?.metadata?.labels?.[LABELS.inService] === 'true');
      const total = serving.reduce((n, d) => n + (d.status?.readyReplicas ?? 0), 0);
      const weights: Record<string, number> = {};
      for (const d of serving) weights[d.metadata?.annotations?.[ANNOTATIONS.version] ?? '?'] = total ? Math.round(((d.status?.readyReplicas ?? 0) * 100) / total) : 0;
      return { versions, traffic: serving.length ? { weights, mirror: null } : null };
    }
    const route = await this.opts.api.read<KubernetesObject & { spec?: { rules?: RouteRule[] } }>({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      namespace: this.ns,
      name: routeName(model, this.opts.settings),
    });
    if (!route) return { versions, traffic: null };
    const rule = route.spec?.rules?.[0];
    const refs = rule?.backendRefs ?? [];
    const sum = refs.reduce((n, b) => n + (b.weight ?? 1), 0);
    const weights: Record<string, number> = {};
    for (const b of refs) weights[byName.get(b.name) ?? b.name] = sum ? Math.round(((b.weight ?? 1) * 100) / sum) : 0;
    const mirror = rule?.filters?.find((f) => f.type === 'RequestMirror')?.requestMirror;
    return {
      versions,
      traffic: { weights, mirror: mirror ? { version: byName.get(mirror.backendRef.name) ?? mirror.backendRef.name, percent: mirror.percent ?? 100 } : null },
    };
  }

  /** Apply the version's Deployment and Service (created without traffic: not in any route, out of service). */
  async deploy(ref: VersionRef, opts: DeployOptions = {}): Promise<void> {
    if (parseStoreUrl(this.opts.settings.storeUrl).kind === 'file') {
      throw new UsageError(`pods cannot pull ${ref.model}@${ref.version} from the local store ${this.opts.settings.storeUrl}`, {
        hint: 'push bundles to an S3 store the cluster can reach (--store s3://bucket/prefix), or name it in modelctl.yaml kubernetes.store',
      });
    }
    const serve = await this.serveSpec(ref);
    const mode = await this.trafficMode();
    const existing = await this.opts.api.read<V1Deployment>(this.deploymentRef(ref.model, ref.version));
    // A re-deploy (resume, rollback to a warm version) keeps its current size and service membership.
    const replicas = existing?.spec?.replicas ?? this.opts.settings.replicas;
    const inService = mode === 'replicas' ? existing?.spec?.template?.metadata?.labels?.[LABELS.inService] === 'true' : undefined;
    // A new version compares mirrored answers with the version serving now (shadow-compare.ts). A
    // re-deploy keeps what its meter compares with: a new value rolls its pods, and a warm version
    // made to run again for a rollback must not wait for that. Except a rollout's candidate that
    // already runs (left behind when its retirement after an earlier rollout failed): it compares
    // with what serves now, not with whatever served when it was first deployed.
    const serving = mode === 'gateway-api' && (!existing || opts.candidate) ? await this.servingServiceAddress(ref) : undefined;
    const compareWith = existing ? ((opts.candidate ? serving : undefined) ?? compareWithOf(existing)) : serving;
    await this.opts.api.apply(deploymentFor({ ref, serve, settings: this.opts.settings, replicas, inService, compareWith }));
    await this.opts.api.apply(serviceFor({ ref, settings: this.opts.settings }));
  }

  /** ClusterIP:port of the Service of the version that serves most of `ref.model`'s traffic now (not `ref` itself); none on a first deploy. */
  private async servingServiceAddress(ref: VersionRef): Promise<string | undefined> {
    const traffic = (await this.observe(ref.model)).traffic;
    const serving = Object.entries(traffic?.weights ?? {})
      .filter(([v, w]) => v !== ref.version && w > 0)
      .sort((a, b) => b[1] - a[1])[0]?.[0];
    if (!serving) return undefined;
    const svc = await this.opts.api.read<V1Service>({ apiVersion: 'v1', kind: 'Service', namespace: this.ns, name: versionObjectName(ref.model, serving) });
    const ip = svc?.spec?.clusterIP;
    const port = svc?.spec?.ports?.[0]?.port;
    return ip && ip !== 'None' && port ? `${ip}:${port}` : undefined;
  }

  /**
   * Resolve when every replica of the version is ready. Watches the Deployment (for readiness) and
   * its pods (to fail at once on states that do not heal: ImagePullBackOff, CrashLoopBackOff…);
   * at the deadline the error names what the pods report (e.g. Unschedulable: Insufficient nvidia.com/gpu).
   */
  async waitReady(model: string, version: string, timeoutMs: number): Promise<void> {
    const ref = this.deploymentRef(model, version);
    const first = await this.opts.api.read<V1Deployment>(ref);
    if (!first) throw new UnavailableError(`${model}@${version} is not deployed in namespace ${this.ns} (no Deployment ${ref.name})`);
    if (deploymentReady(first)) return;
    const selector = selectorString(versionSelector(model, version));
    const deadline = Math.min(timeoutMs, this.opts.settings.progressDeadlineMs);
    const controller = new AbortController();
    const fail = (why: string, hint?: string) =>
      new UnavailableError(`${model}@${version} did not become ready in namespace ${this.ns}: ${why}`, {
        hint: hint ?? `see \`kubectl -n ${this.ns} describe deployment ${ref.name}\`; nothing was routed to it`,
        details: { model, version, deployment: ref.name },
      });
    const pods = new Map<string, V1Pod>();
    let settled = false;
    // Problems that do not heal by waiting the whole deadline (readiness.ts giveUpAfterMs): pods the
    // API server refuses to create (ReplicaFailure), pods the scheduler cannot place. Key → timer.
    type Problem = { pod?: string; reason: string; message: string };
    const stuck = new Map<string, { timer: NodeJS.Timeout | undefined; latest: Problem }>();
    return new Promise<void>((resolve, reject) => {
      const finish = (err?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        for (const s of stuck.values()) clearTimeout(s.timer);
        controller.abort();
        if (err) reject(err);
        else resolve();
      };
      const giveUp = (p: Problem, afterMs: number) => {
        const who = p.pod ? `pod ${p.pod} of Deployment ${ref.name}` : `Deployment ${ref.name} cannot create its pods:`;
        const lasted = afterMs > 0 ? ` for ${Math.round(afterMs / 1000)} s` : '';
        // What to do goes into the message too: a rollout reports the message as its reason (the hint is lost there).
        const hint = problemHint(p, this.ns, ref.name);
        finish(fail(`${who} ${p.reason}${lasted}: ${p.message} — ${hint}`, hint));
      };
      /** Start (or keep) the clock of a problem that gives up after a bound; 0 gives up at once. */
      const watchStuck = (key: string, p: Problem) => {
        const bound = giveUpAfterMs(p);
        const running = stuck.get(key);
        if (running) running.latest = p; // the error names what the cluster says last (not found → unbound…)
        if (bound === undefined || running) return;
        if (bound === 0) return giveUp(p, 0);
        const entry = { timer: setTimeout(() => giveUp(entry.latest, bound), bound), latest: p };
        stuck.set(key, entry);
      };
      const drop = (key: string) => {
        clearTimeout(stuck.get(key)?.timer);
        stuck.delete(key);
      };
      const diagnoseAll = async (fatalOnly: boolean) => {
        const problems = diagnosePods([...pods.values()], await this.podEvents([...pods.keys()]).catch(() => []));
        const fatal = problems.find((p) => p.fatal);
        if (fatal) finish(fail(describeProblems(problems.filter((p) => p.fatal))));
        else if (!fatalOnly) finish(fail(`not ready after ${Math.round(deadline / 1000)}s: ${describeProblems(problems)}`));
      };
      const timer = setTimeout(() => void diagnoseAll(false), deadline);
      const onDeployment = (d: V1Deployment): void => {
        const failure = replicaFailure(d);
        if (!failure) {
          for (const k of stuck.keys()) if (k.startsWith('deployment/')) drop(k);
          return;
        }
        if (!stuck.has(`deployment/${failure.reason}`)) {
          const bound = giveUpAfterMs(failure);
          this.opts.note?.(`${model}@${version}: Deployment ${ref.name} cannot create pods (${failure.reason}): ${failure.message}${bound ? ` (giving up in ${Math.round(bound / 1000)} s unless it clears)` : ''}`);
        }
        watchStuck(`deployment/${failure.reason}`, failure);
      };
      onDeployment(first);
      void this.follow<V1Deployment>('apps/v1', 'Deployment', { fieldSelector: `metadata.name=${ref.name}` }, first.metadata?.resourceVersion, controller.signal, (d, type) => {
        if (type === 'DELETED') return finish(fail('its Deployment was deleted'));
        if (deploymentReady(d)) return finish();
        onDeployment(d);
        const exceeded = progressDeadlineExceeded(d);
        if (exceeded) void diagnoseAll(true).then(() => finish(fail(exceeded)));
      }).catch((err: unknown) => finish(err instanceof Error ? err : new Error(String(err))));
      const told = new Set<string>();
      void this.follow<V1Pod>('v1', 'Pod', { labelSelector: selector }, undefined, controller.signal, (p, type) => {
        const name = p.metadata?.name ?? '';
        if (type === 'DELETED') pods.delete(name);
        else pods.set(name, p);
        const problems = type === 'DELETED' ? [] : diagnosePods([p]);
        if (problems.some((x) => x.fatal)) return void diagnoseAll(true);
        // A problem that went away stops its clock (the pod got scheduled, or was deleted).
        for (const k of stuck.keys()) if (k.startsWith(`pod/${name}/`) && !problems.some((x) => k === `pod/${name}/${x.reason}`)) drop(k);
        // Long waits say why (Unschedulable: Insufficient nvidia.com/gpu…), once per pod and reason.
        for (const x of problems) {
          if (x.reason === 'NotReady') continue;
          if (!told.has(`${x.pod}/${x.reason}`)) {
            told.add(`${x.pod}/${x.reason}`);
            const bound = giveUpAfterMs(x);
            const wait = bound !== undefined && bound < deadline ? `giving up in ${Math.round(bound / 1000)} s unless it clears` : `still waiting, up to ${Math.round(deadline / 1000)} s`;
            this.opts.note?.(`${model}@${version}: pod ${x.pod} ${x.reason}: ${x.message} (${wait})`);
          }
          watchStuck(`pod/${name}/${x.reason}`, x);
        }
      }).catch((err: unknown) => finish(err instanceof Error ? err : new Error(String(err))));
    });
  }

  /** Warning events of these pods (for the messages), one list call. */
  private async podEvents(podNames: string[]): Promise<CoreV1Event[]> {
    if (podNames.length === 0) return [];
    // One pod: the server filters by name; several: by kind (a field selector cannot OR names).
    const selector = podNames.length === 1 ? `involvedObject.kind=Pod,involvedObject.name=${podNames[0]}` : 'involvedObject.kind=Pod';
    const { items } = await this.opts.api.list<CoreV1Event>('v1', 'Event', this.ns, undefined, selector);
    const wanted = new Set(podNames);
    return items.filter((e) => e.involvedObject?.kind === 'Pod' && wanted.has(e.involvedObject.name ?? ''));
  }

  /**
   * Follow a collection: a watch from `resourceVersion` (or a fresh one, which starts with ADDED
   * events for what exists), re-opened when the server ends it (watches time out) and re-listed
   * when the version expired (410). Runs until `signal` aborts.
   */
  private async follow<T extends KubernetesObject>(
    apiVersion: string,
    kind: string,
    query: { labelSelector?: string; fieldSelector?: string },
    resourceVersion: string | undefined,
    signal: AbortSignal,
    onObject: (o: T, type: string) => void,
  ): Promise<void> {
    let rv = resourceVersion;
    let failures = 0;
    while (!signal.aborted) {
      try {
        await this.opts.api.watch<T>(
          apiVersion,
          kind,
          this.ns,
          { ...query, ...(rv ? { resourceVersion: rv } : {}), timeoutSeconds: 300 },
          (e) => {
            failures = 0;
            if (e.object?.metadata?.resourceVersion) rv = e.object.metadata.resourceVersion;
            if (e.type !== 'BOOKMARK') onObject(e.object, e.type);
          },
          signal,
        );
      } catch (err) {
        if (signal.aborted) return;
        const code = (err as { code?: number; statusCode?: number }).code ?? (err as { statusCode?: number }).statusCode;
        if (code === 410) rv = undefined; // too old: start over (the fresh watch lists first)
        else if (++failures >= 5) throw this.opts.api.translate({ verb: 'watch', kind, namespace: this.ns }, err);
        await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** failures)));
      }
    }
  }

  /**
   * Ready = the Deployment exists and has a ready replica (the Gateway has an endpoint for it).
   * An API error the client could not get past with its retries (5xx, 429, timeouts) is thrown,
   * not answered "false": "cannot tell" is not "unhealthy" — the candidate-ready gate counts it as
   * an error, and a rollback cascade stops (resumable) rather than skip a good version.
   */
  async healthy(model: string, version: string): Promise<boolean> {
    const d = await this.opts.api.read<V1Deployment>(this.deploymentRef(model, version));
    return !!d && (d.status?.readyReplicas ?? 0) > 0;
  }

  /**
   * Gateway API: one server-side apply of the whole HTTPRoute (its rules list is atomic), then
   * versions with traffic scaled to `replicas` and versions that lost it back to the warm size.
   * Replica ratio: sizes and service membership from replicaPlan, then wait until the pods that
   * should serve are ready.
   */
  async applyTraffic(model: string, split: TrafficSplit): Promise<void> {
    const mode = await this.trafficMode();
    const { items } = await this.opts.api.list<V1Deployment>('apps/v1', 'Deployment', this.ns, `${LABELS.model}=${model},${LABELS.managedBy}=${MANAGED_BY}`);
    const deployments = new Map(items.map((d) => [d.metadata?.annotations?.[ANNOTATIONS.version] ?? '', d]));
    const withTraffic = Object.entries(split.weights).filter(([, w]) => w > 0).map(([v]) => v);
    if (withTraffic.length === 0 && !split.mirror) return this.serveNothing(model, mode, deployments);
    // A version without a Deployment is still routed to: the engine switches first and then asks
    // healthy(), which says no, and cascades to the next stable version (refusing here would stop that).
    if (mode === 'gateway-api') {
      const route = await this.applyRoute(model, split);
      await this.routeAccepted(route);
      for (const [version, d] of deployments) {
        const served = withTraffic.includes(version) || split.mirror?.version === version;
        const wasServed = d.metadata?.annotations?.[SERVED] === 'true';
        const want = served ? this.opts.settings.replicas : wasServed ? this.opts.settings.warmReplicas : (d.spec?.replicas ?? 0);
        if (want !== d.spec?.replicas || (served && !wasServed)) await this.scale(d, want, { served: served || wasServed });
      }
      return;
    }
    // replicaPlan refuses a mirror (no router to copy requests), before anything is written.
    const plan = replicaPlan(split, {
      servingReplicas: this.opts.settings.replicas,
      warmReplicas: this.opts.settings.warmReplicas,
      stableSet: [...deployments.keys()].filter((v) => !withTraffic.includes(v)),
    });
    await this.opts.api.apply(modelServiceFor({ model, settings: this.opts.settings }));
    for (const [version, d] of deployments) {
      const want = plan.versions[version] ?? { replicas: d.spec?.replicas ?? 0, inService: false };
      const inServiceNow = d.spec?.template?.metadata?.labels?.[LABELS.inService] === 'true';
      if (want.replicas !== d.spec?.replicas || want.inService !== inServiceNow) await this.scale(d, want.replicas, { inService: want.inService });
    }
    if (plan.note) this.opts.note?.(plan.note);
    for (const v of withTraffic) await this.waitReady(model, v, this.opts.settings.progressDeadlineMs);
  }

  /**
   * The empty split: a first deploy that failed has no version to fall back to, so the model goes
   * back to how it was before that deploy — no HTTPRoute (the Gateway answers 404 for its path, as
   * it did), or in replica-ratio mode no pod behind the model Service. Versions that served go
   * back to their warm size. A route someone else changed since this modelctl last set it is not
   * deleted (the same fencing as applyRoute).
   */
  private async serveNothing(model: string, mode: TrafficMode, deployments: Map<string, V1Deployment>): Promise<void> {
    if (mode === 'gateway-api') {
      const ref = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', namespace: this.ns, name: routeName(model, this.opts.settings) };
      const current = await this.opts.api.read(ref);
      const seen = this.routeSeen.get(ref.name);
      if (current && seen && (current.metadata?.generation ?? 0) !== seen.generation) throw this.routeChangedError(model, ref.name, seen.generation, current.metadata?.generation ?? 0);
      if (current) await this.opts.api.delete(ref);
      this.routeSeen.delete(ref.name);
    }
    for (const d of deployments.values()) {
      const wasServed = d.metadata?.annotations?.[SERVED] === 'true';
      const inService = d.spec?.template?.metadata?.labels?.[LABELS.inService] === 'true';
      if (mode === 'gateway-api' ? wasServed : inService) {
        await this.scale(d, Math.min(d.spec?.replicas ?? 0, this.opts.settings.warmReplicas), mode === 'gateway-api' ? { served: false } : { inService: false });
      }
    }
  }

  /**
   * Apply the whole route with the resourceVersion this target last wrote or saw as a precondition:
   * the fencing token of traffic. A driver that stalled (longer than its Lease) while another
   * modelctl took over finds the route changed and stops instead of applying a stale split. Status
   * writes by the Gateway controller also change the resourceVersion, but not the generation: a
   * conflict with an unchanged generation is retried at the current version.
   */
  private async applyRoute(model: string, split: TrafficSplit): Promise<KubernetesObject & { status?: RouteStatus }> {
    const desired = httpRouteFor({ model, split, settings: this.opts.settings });
    const name = desired.metadata.name;
    let rv = this.routeSeen.get(name)?.rv;
    for (let attempt = 0; ; attempt++) {
      try {
        const applied = await this.opts.api.apply<KubernetesObject & { status?: RouteStatus }>(rv ? { ...desired, metadata: { ...desired.metadata, resourceVersion: rv } } : desired);
        this.remember(applied);
        return applied;
      } catch (err) {
        const seen = this.routeSeen.get(name);
        if (!(err instanceof KubeConflictError) || !seen || attempt >= 3) throw err;
        const current = await this.opts.api.read({ apiVersion: desired.apiVersion, kind: desired.kind, namespace: this.ns, name });
        const generation = current?.metadata?.generation ?? 0;
        if (current && generation !== seen.generation) throw this.routeChangedError(model, name, seen.generation, generation);
        rv = current?.metadata?.resourceVersion;
      }
    }
  }

  /** The fence tripped: the route's generation is not the one this target last set or saw. */
  private routeChangedError(model: string, route: string, seen: number, now: number): LockedError {
    return new LockedError(
      `HTTPRoute ${route} was changed by someone else since this modelctl last set it (generation ${seen} → ${now}): another modelctl, or a person, is moving traffic of ${model}; this one stopped without touching it`,
      { hint: `see \`modelctl status ${model}\` and \`kubectl -n ${this.ns} get httproute ${route} -o yaml\``, details: { model, route } },
    );
  }

  /** The route's resourceVersion and generation as last written or watched (the fencing token). */
  private remember(route: KubernetesObject): void {
    const m = route.metadata;
    if (m?.name && m.resourceVersion) this.routeSeen.set(m.name, { rv: m.resourceVersion, generation: m.generation ?? 0 });
  }

  /**
   * Wait (watch, bounded by kubernetes.routeTimeout) until the Gateway controller reports the route's
   * new generation Accepted by every parent, so a bake measures the split it is meant to. A route
   * that is rejected, refers to missing Services, or gets no answer is reported, not fatal: failing
   * here would also block an abort or a rollback, which must always be able to move traffic.
   */
  private async routeAccepted(route: KubernetesObject & { status?: RouteStatus }): Promise<void> {
    const name = route.metadata?.name ?? '';
    const generation = route.metadata?.generation ?? 0;
    let verdict = routeVerdict(route, generation);
    if (verdict.kind === 'pending') {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), this.opts.settings.routeTimeoutMs);
      try {
        await this.follow<KubernetesObject & { status?: RouteStatus }>(
          'gateway.networking.k8s.io/v1',
          'HTTPRoute',
          { fieldSelector: `metadata.name=${name}` },
          route.metadata?.resourceVersion,
          controller.signal,
          (r) => {
            if ((r.metadata?.generation ?? 0) === generation) this.remember(r); // a status write: same spec, new resourceVersion
            verdict = routeVerdict(r, generation);
            if (verdict.kind !== 'pending') controller.abort();
          },
        );
      } finally {
        clearTimeout(timer);
      }
    }
    if (verdict.kind === 'pending') {
      this.opts.note?.(
        `HTTPRoute ${name}: no Gateway controller reported generation ${generation} Accepted within ${duration(this.opts.settings.routeTimeoutMs)}; traffic may not follow yet (kubectl -n ${this.ns} describe httproute ${name})`,
      );
    } else if (verdict.kind === 'problem') {
      this.opts.note?.(`HTTPRoute ${name}: ${verdict.message} (kubectl -n ${this.ns} describe httproute ${name})`);
    }
  }

  /** Merge-patch only the fields modelctl alone decides after deploy: replica count, served marker, service membership. */
  private async scale(d: V1Deployment, replicas: number, marks: { served?: boolean; inService?: boolean }): Promise<void> {
    const patch: Record<string, unknown> = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: d.metadata!.name, namespace: this.ns } };
    const spec: Record<string, unknown> = { replicas };
    if (marks.served !== undefined) (patch.metadata as Record<string, unknown>).annotations = { [SERVED]: String(marks.served) };
    if (marks.inService !== undefined) spec.template = { metadata: { labels: { [LABELS.inService]: String(marks.inService) } } };
    patch.spec = spec;
    await this.opts.api.mergePatch(patch as KubernetesObject);
  }

  /** Delete the version's Deployment (its pods go with it) and Service. */
  async retire(model: string, version: string): Promise<void> {
    const name = versionObjectName(model, version);
    await this.opts.api.delete({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: this.ns, name });
    await this.opts.api.delete({ apiVersion: 'v1', kind: 'Service', namespace: this.ns, name });
  }
}

function duration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`;
}

/** The parts of an HTTPRoute rule that observe() reads. */
interface RouteRule {
  backendRefs?: Array<{ name: string; weight?: number }>;
  filters?: Array<{ type: string; requestMirror?: { backendRef: { name: string }; percent?: number } }>;
}

interface RouteCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  observedGeneration?: number;
}

interface RouteStatus {
  parents?: Array<{ parentRef?: { name?: string }; controllerName?: string; conditions?: RouteCondition[] }>;
}

/** Has every parent Gateway reported on `generation` of the route, and how? */
export function routeVerdict(route: { status?: RouteStatus }, generation: number): { kind: 'pending' } | { kind: 'accepted' } | { kind: 'problem'; message: string } {
  const parents = route.status?.parents ?? [];
  if (parents.length === 0) return { kind: 'pending' };
  const problems: string[] = [];
  for (const p of parents) {
    const conditions = p.conditions ?? [];
    const accepted = conditions.find((c) => c.type === 'Accepted');
    if (!accepted || (accepted.observedGeneration ?? 0) < generation) return { kind: 'pending' };
    const gw = p.parentRef?.name ?? '?';
    if (accepted.status !== 'True') problems.push(`not accepted by Gateway ${gw}: ${accepted.reason ?? ''} ${accepted.message ?? ''}`.trim());
    const refs = conditions.find((c) => c.type === 'ResolvedRefs');
    if (refs && refs.status !== 'True' && (refs.observedGeneration ?? 0) >= generation) problems.push(`backends not resolved by Gateway ${gw}: ${refs.reason ?? ''} ${refs.message ?? ''}`.trim());
  }
  return problems.length ? { kind: 'problem', message: problems.join('; ') } : { kind: 'accepted' };
}

/** The --compare-with of a Deployment's meter container (what it was created with), if any. */
function compareWithOf(d: V1Deployment): string | undefined {
  const args = d.spec?.template?.spec?.containers?.find((c) => c.name === METER_CONTAINER)?.args ?? [];
  const i = args.indexOf('--compare-with');
  return i >= 0 ? args[i + 1] : undefined;
}
