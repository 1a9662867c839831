/**
 * A simulated kube-controller-manager (Deployment controller + GC-owned pods), scheduler and
 * kubelet, all in one: it watches the store and moves Deployments and Pods through the states a
 * real cluster shows, including the failure modes a rollout must detect (image pull errors, crash
 * loops, unschedulable pods, never-ready pods). Real timers; every one is cleared on close().
 *
 * Simplifications: no ReplicaSet objects (pods are owned by the Deployment directly, their names
 * and pod-template-hash label look like the real ones); rolling updates create all new pods at
 * once and delete the old ones when every new pod is ready (maxSurge/maxUnavailable are only used
 * for the Available condition); minReadySeconds and probes are not simulated.
 */
import { randomBytes } from 'node:crypto';
import { clone, deepEqual } from './apply.js';
import { quantityBytes } from './admission.js';
import { type ResourceDef, resourceDef } from './resources.js';
import { nowSeconds, randomSuffix, safeHash, type Store, type StoreEvent } from './store.js';

export type PodFailureMode = 'ok' | 'image-pull' | 'crash-loop' | 'unschedulable' | 'never-ready' | { slowMs: number };

export interface BehaviourMatch {
  model?: string;
  version?: string;
  image?: string;
}

const DEPLOYMENTS = resourceDef('deployments');
const PODS = resourceDef('pods');
const EVENTS = resourceDef('events');
const NAMESPACES = resourceDef('namespaces');
const CLAIMS = resourceDef('persistentvolumeclaims');
const VOLUMES = resourceDef('persistentvolumes');
const BINDER = 'persistent-volume-binder';
/** The default scheduler's PostFilter (preemption) note, after every "0/N nodes are available" of a pod it cannot place. */
const NO_PREEMPTION = 'preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.';

/**
 * Pod Security admission (enforce mode, k8s.io/pod-security-admission policy checks) as far as
 * modelctl's pods can meet it. "baseline": no hostPath volume, no privileged container.
 * "restricted" adds, for every container (init ones included): allowPrivilegeEscalation=false,
 * capabilities.drop ["ALL"] (add at most NET_BIND_SERVICE), runAsNonRoot=true (pod or container,
 * and no container setting it false), no runAsUser 0, a RuntimeDefault/Localhost seccompProfile
 * (pod or container), and only the volume types configMap, csi, downwardAPI, emptyDir, ephemeral,
 * persistentVolumeClaim, projected, secret. Violations are listed in the order of the policy's
 * check IDs, with its texts; the ReplicaSet controller reports the refusal as FailedCreate (here on
 * the Deployment: the fake has no ReplicaSets). Not checked: host namespaces and ports, AppArmor,
 * SELinux, sysctls, procMount, Windows (modelctl sets none of them).
 */
const RESTRICTED_VOLUMES = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']);

function podSecurityRefusal(ns: any, pod: any): string | undefined {
  const level = ns?.metadata?.labels?.['pod-security.kubernetes.io/enforce'];
  if (level !== 'baseline' && level !== 'restricted') return undefined;
  const spec = pod.spec ?? {};
  const containers: any[] = [...(spec.initContainers ?? []), ...(spec.containers ?? [])];
  const names = (cs: any[]) => `${cs.length > 1 ? 'containers' : 'container'} ${cs.map((c) => `"${c.name}"`).join(', ')}`;
  const volumes = (vs: any[]) => `volume${vs.length > 1 ? 's' : ''} ${vs.map((v) => `"${v.name}"`).join(', ')}`;
  const out: string[] = [];
  const restricted = level === 'restricted';
  const sc = (c: any) => c.securityContext ?? {};
  if (restricted) {
    const esc = containers.filter((c) => sc(c).allowPrivilegeEscalation !== false);
    if (esc.length) out.push(`allowPrivilegeEscalation != false (${names(esc)} must set securityContext.allowPrivilegeEscalation=false)`);
  }
  const privileged = containers.filter((c) => sc(c).privileged === true);
  if (restricted) {
    const caps = containers.filter((c) => !(sc(c).capabilities?.drop ?? []).includes('ALL') || (sc(c).capabilities?.add ?? []).some((x: string) => x !== 'NET_BIND_SERVICE'));
    if (caps.length) out.push(`unrestricted capabilities (${names(caps)} must set securityContext.capabilities.drop=["ALL"])`);
  }
  const hostPaths = (spec.volumes ?? []).filter((v: any) => v.hostPath);
  if (hostPaths.length) out.push(`hostPath volumes (${volumes(hostPaths)})`);
  if (privileged.length) out.push(`privileged (${names(privileged)} must not set securityContext.privileged=true)`);
  if (restricted) {
    const other = (spec.volumes ?? []).filter((v: any) => !Object.keys(v).some((k) => RESTRICTED_VOLUMES.has(k)));
    if (other.length) {
      const kinds = [...new Set(other.map((v: any) => Object.keys(v).find((k) => k !== 'name')))];
      out.push(`restricted volume types (${volumes(other)} use${other.length > 1 ? '' : 's'} restricted volume type${kinds.length > 1 ? 's' : ''} ${kinds.map((k) => `"${k}"`).join(', ')})`);
    }
    const podNonRoot = spec.securityContext?.runAsNonRoot === true;
    const setFalse = containers.filter((c) => sc(c).runAsNonRoot === false);
    const unset = podNonRoot ? [] : containers.filter((c) => sc(c).runAsNonRoot === undefined);
    if (setFalse.length || unset.length) {
      const parts = [];
      if (setFalse.length) parts.push(`${names(setFalse)} must not set securityContext.runAsNonRoot=false`);
      if (unset.length) parts.push(`pod or ${names(unset)} must set securityContext.runAsNonRoot=true`);
      out.push(`runAsNonRoot != true (${parts.join('; ')})`);
    }
    const root = containers.filter((c) => sc(c).runAsUser === 0);
    if (root.length || spec.securityContext?.runAsUser === 0) out.push(`runAsUser=0 (${spec.securityContext?.runAsUser === 0 ? 'pod' : names(root)} must not set runAsUser=0)`);
    const seccompOk = (t: unknown) => t === 'RuntimeDefault' || t === 'Localhost';
    const podSeccomp = seccompOk(spec.securityContext?.seccompProfile?.type);
    const noSeccomp = containers.filter((c) => (sc(c).seccompProfile?.type === undefined ? !podSeccomp : !seccompOk(sc(c).seccompProfile.type)));
    if (noSeccomp.length) out.push(`seccompProfile (pod or ${names(noSeccomp)} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`);
  }
  if (out.length === 0) return undefined;
  const version = ns.metadata.labels['pod-security.kubernetes.io/enforce-version'] ?? 'latest';
  return `pods "${pod.metadata.name}" is forbidden: violates PodSecurity "${level}:${version}": ${out.join(', ')}`;
}

const NODE = 'fake-node-1';
const NODE_IP = '10.0.0.11';
const UNSCHEDULABLE_MESSAGE = '0/3 nodes are available: 3 Insufficient nvidia.com/gpu.';

const CONTROLLER_MANAGER = 'kube-controller-manager';
const KUBELET = 'kubelet';
const SCHEDULER = 'kube-scheduler';

function condition(type: string, status: 'True' | 'False', reason?: string, message?: string): Record<string, unknown> {
  const c: Record<string, unknown> = { type, status, lastProbeTime: null, lastTransitionTime: nowSeconds() };
  if (reason) c.reason = reason;
  if (message) c.message = message;
  return c;
}

function isPodReady(pod: any): boolean {
  return (pod.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True');
}

/** Resolve an int-or-percent rollout bound against the replica count (rounding like the real one). */
function resolveBound(v: unknown, replicas: number, roundUp: boolean): number {
  if (typeof v === 'number') return v;
  const m = /^(\d+)%$/.exec(String(v ?? ''));
  if (!m) return 0;
  const x = (Number(m[1]) * replicas) / 100;
  return roundUp ? Math.ceil(x) : Math.floor(x);
}

export class DeploymentController {
  /** How long pods take to become ready in 'ok' mode (and the base tick of the failure modes). */
  readyAfterMs = 50;
  /** A real kubelet (kubelet.ts): scheduled pods are handed to it instead of being simulated. */
  kubelet: { runPod(pod: any): void } | undefined;
  private readonly rules: { match: BehaviourMatch; mode: PodFailureMode }[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly pending = new Set<string>();
  /** Deployment uid → the last pod creation error (the ReplicaSet's ReplicaFailure condition, copied to the Deployment). */
  private readonly createFailure = new Map<string, string>();
  /** Pods the scheduler could not place because of their claims: retried when a claim or a volume changes. */
  private readonly waitingOnClaims = new Map<string, any>();
  /** Deployment uid → when its current generation's rollout started (for progressDeadlineSeconds). */
  private readonly rolloutStart = new Map<string, { generation: number; at: number; deadlineTimer?: boolean }>();
  private readonly unsubscribe: () => void;
  private closed = false;

  constructor(private readonly store: Store) {
    this.unsubscribe = store.subscribe((e) => this.onEvent(e));
  }

  /** Pods matching `match` (later rules win) will follow `mode` from now on. */
  behave(match: BehaviourMatch, mode: PodFailureMode): void {
    this.rules.push({ match, mode });
  }

  close(): void {
    this.closed = true;
    this.unsubscribe();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private later(ms: number, fn: () => void): void {
    if (this.closed) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (this.closed) return;
      try {
        fn();
      } catch {
        // The object was deleted or changed under us: the next event re-drives reconciliation.
      }
    }, ms);
    this.timers.add(t);
  }

  private onEvent(e: StoreEvent): void {
    if (e.def === DEPLOYMENTS && e.type !== 'DELETED') {
      const changed = e.type === 'ADDED' || e.previous?.metadata.generation !== e.object.metadata.generation;
      if (changed) this.enqueue(e.object.metadata.namespace, e.object.metadata.name);
    } else if (e.def === CLAIMS || e.def === VOLUMES) {
      this.enqueueVolumes();
    } else if (e.def === PODS) {
      if (e.type === 'ADDED') this.later(0, () => this.startPod(e.object));
      const owner = (e.object.metadata.ownerReferences ?? []).find((o: any) => o.kind === 'Deployment' && o.controller);
      if (owner) this.enqueue(e.object.metadata.namespace, owner.name);
    }
  }

  /** Debounced reconcile of one deployment (many pod events collapse into one pass). */
  private enqueue(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    if (this.pending.has(key)) return;
    this.pending.add(key);
    this.later(0, () => {
      this.pending.delete(key);
      this.reconcile(namespace, name);
    });
  }

  // ---- deployment controller -------------------------------------------------------------------

  private reconcile(namespace: string, name: string): void {
    const d = this.store.get(DEPLOYMENTS, namespace, name);
    if (!d) return;
    const hash = safeHash(d.spec.template);
    const desired: number = d.spec.replicas ?? 1;
    const rsName = `${name}-${hash}`;
    const owned = this.store.list(PODS, namespace, (p) => (p.metadata.ownerReferences ?? []).some((o: any) => o.uid === d.metadata.uid));
    let current = owned.filter((p) => p.metadata.labels?.['pod-template-hash'] === hash);
    let old = owned.filter((p) => p.metadata.labels?.['pod-template-hash'] !== hash);

    if (current.length < desired) {
      const from = current.length;
      for (let i = current.length; i < desired; i++) {
        const pod = this.createPod(d, hash);
        if (!pod) {
          // Refused by Pod Security admission: FailedCreate recorded; the ReplicaSet controller
          // requeues with a rate-limited back-off (here: a second), so a fixed namespace heals.
          this.later(1000, () => this.enqueue(namespace, name));
          break;
        }
        current.push(pod);
      }
      this.recordEvent(d, 'Normal', 'ScalingReplicaSet', `Scaled up replica set ${rsName} from ${from} to ${desired}`, 'deployment-controller');
    } else if (current.length > desired) {
      // Scale down: unready pods go first, then the newest.
      const victims = [...current].sort((a, b) => Number(isPodReady(a)) - Number(isPodReady(b)) || b.metadata.creationTimestamp.localeCompare(a.metadata.creationTimestamp)).slice(0, current.length - desired);
      for (const v of victims) this.store.delete(PODS, namespace, v.metadata.name);
      this.recordEvent(d, 'Normal', 'ScalingReplicaSet', `Scaled down replica set ${rsName} from ${current.length} to ${desired}`, 'deployment-controller');
      current = current.filter((p) => !victims.includes(p));
    }
    const newReady = current.filter(isPodReady).length;
    if (old.length > 0 && (d.spec.strategy?.type === 'Recreate' || newReady >= desired)) {
      for (const p of old) this.store.delete(PODS, namespace, p.metadata.name);
      old = [];
    }
    this.writeDeploymentStatus(d, rsName, desired, current, old);
  }

  private writeDeploymentStatus(d: any, rsName: string, desired: number, current: any[], old: any[]): void {
    const all = [...current, ...old];
    const ready = all.filter(isPodReady).length;
    const complete = current.length === desired && current.filter(isPodReady).length === desired && old.length === 0;
    const maxUnavailable = resolveBound(d.spec.strategy?.rollingUpdate?.maxUnavailable ?? '25%', desired, false);

    const gen: number = d.metadata.generation;
    let start = this.rolloutStart.get(d.metadata.uid);
    if (!start || start.generation !== gen) this.rolloutStart.set(d.metadata.uid, (start = { generation: gen, at: Date.now() }));
    const deadlineMs = (d.spec.progressDeadlineSeconds ?? 600) * 1000;
    const elapsed = Date.now() - start.at;
    if (!complete && elapsed < deadlineMs && !start.deadlineTimer) {
      // One wake-up per rollout, to flip Progressing to ProgressDeadlineExceeded on time.
      start.deadlineTimer = true;
      this.later(deadlineMs - elapsed + 1, () => this.enqueue(d.metadata.namespace, d.metadata.name));
    }

    const prevConds: any[] = d.status?.conditions ?? [];
    const cond = (type: string, status: 'True' | 'False', reason: string, message: string): any => {
      const prev = prevConds.find((c) => c.type === type);
      const now = nowSeconds();
      const same = prev && prev.status === status && prev.reason === reason && prev.message === message;
      return {
        type,
        status,
        lastUpdateTime: same ? prev.lastUpdateTime : now,
        lastTransitionTime: prev && prev.status === status ? prev.lastTransitionTime : now,
        reason,
        message,
      };
    };
    const available = ready >= desired - maxUnavailable
      ? cond('Available', 'True', 'MinimumReplicasAvailable', 'Deployment has minimum availability.')
      : cond('Available', 'False', 'MinimumReplicasUnavailable', 'Deployment does not have minimum availability.');
    const progressing = complete
      ? cond('Progressing', 'True', 'NewReplicaSetAvailable', `ReplicaSet "${rsName}" has successfully progressed.`)
      : elapsed >= deadlineMs
        ? cond('Progressing', 'False', 'ProgressDeadlineExceeded', `ReplicaSet "${rsName}" has timed out progressing.`)
        : cond('Progressing', 'True', 'ReplicaSetUpdated', `ReplicaSet "${rsName}" is progressing.`);

    // Zero counts are omitted, like the real (omitempty) status.
    const status: Record<string, unknown> = { observedGeneration: gen };
    if (all.length) status.replicas = all.length;
    if (current.length) status.updatedReplicas = current.length;
    if (ready) status.readyReplicas = ready;
    if (ready) status.availableReplicas = ready;
    const unavailable = Math.max(all.length, desired) - ready;
    if (unavailable > 0) status.unavailableReplicas = unavailable;
    // ReplicaSet controller (replica_set_utils.go calculateStatus): a failed create sets ReplicaFailure
    // True / FailedCreate with the API error, a successful sync removes it; the Deployment controller
    // (sync.go) copies the new ReplicaSet's condition (lastUpdateTime = its lastTransitionTime) or removes it.
    const failure = this.createFailure.get(d.metadata.uid);
    status.conditions = failure ? [available, progressing, cond('ReplicaFailure', 'True', 'FailedCreate', failure)] : [available, progressing];
    const rf = (status.conditions as any[])[2];
    if (rf) rf.lastUpdateTime = rf.lastTransitionTime;
    if (!deepEqual(status, d.status)) this.store.writeStatus(DEPLOYMENTS, d.metadata.namespace, d.metadata.name, status, CONTROLLER_MANAGER);
  }

  private createPod(d: any, hash: string): any | undefined {
    const rsName = `${d.metadata.name}-${hash}`;
    const template = clone(d.spec.template ?? {});
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: `${rsName}-${randomSuffix(5)}`,
        generateName: `${rsName}-`,
        namespace: d.metadata.namespace,
        labels: { ...(template.metadata?.labels ?? {}), 'pod-template-hash': hash },
        ...(template.metadata?.annotations ? { annotations: template.metadata.annotations } : {}),
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: d.metadata.name, uid: d.metadata.uid, controller: true, blockOwnerDeletion: true }],
      },
      spec: template.spec ?? {},
    };
    const refusal = podSecurityRefusal(this.store.get(NAMESPACES, undefined, d.metadata.namespace), pod);
    if (refusal) {
      this.recordEvent(d, 'Warning', 'FailedCreate', `Error creating: ${refusal}`, 'replicaset-controller');
      this.createFailure.set(d.metadata.uid, refusal);
      return undefined;
    }
    this.createFailure.delete(d.metadata.uid);
    return this.store.createInternal(PODS, d.metadata.namespace, pod, CONTROLLER_MANAGER);
  }

  // ---- scheduler + kubelet ---------------------------------------------------------------------

  private modeFor(pod: any): PodFailureMode {
    const owner = (pod.metadata.ownerReferences ?? []).find((o: any) => o.kind === 'Deployment');
    const d = owner ? this.store.get(DEPLOYMENTS, pod.metadata.namespace, owner.name) : undefined;
    const metas = [pod.metadata, d?.metadata].filter(Boolean);
    const models = metas.flatMap((m: any) => [m.labels?.['modelctl.dev/model'], m.annotations?.['modelctl.dev/model']]);
    const versions = metas.flatMap((m: any) => [m.labels?.['modelctl.dev/version'], m.annotations?.['modelctl.dev/version'], m.labels?.['app.kubernetes.io/version']]);
    const images = (pod.spec.containers ?? []).map((c: any) => c.image);
    let mode: PodFailureMode = 'ok';
    for (const r of this.rules) {
      if (r.match.model !== undefined && !models.includes(r.match.model)) continue;
      if (r.match.version !== undefined && !versions.includes(r.match.version)) continue;
      if (r.match.image !== undefined && !images.includes(r.match.image)) continue;
      mode = r.mode;
    }
    return mode;
  }

  /** Drive one pod through scheduling and container start according to its mode. */
  private startPod(created: any): void {
    const { namespace, name, uid } = created.metadata;
    const live = (): any | undefined => {
      const p = this.store.get(PODS, namespace, name);
      return p && p.metadata.uid === uid ? p : undefined;
    };
    const pod = live();
    if (!pod || pod.status?.phase !== 'Pending' || pod.spec.nodeName) return;
    const mode = this.modeFor(pod);
    const containers: any[] = pod.spec.containers ?? [];
    const setStatus = (patch: Record<string, unknown>): void => {
      const p = live();
      if (p) this.store.writeStatus(PODS, namespace, name, { ...p.status, ...patch }, KUBELET);
    };

    if (mode === 'unschedulable') {
      setStatus({ phase: 'Pending', conditions: [condition('PodScheduled', 'False', 'Unschedulable', UNSCHEDULABLE_MESSAGE)] });
      this.recordEvent(pod, 'Warning', 'FailedScheduling', UNSCHEDULABLE_MESSAGE, 'default-scheduler');
      return;
    }
    const blocked = this.claimsBlock(pod);
    if (blocked) {
      const message = `0/1 nodes are available: ${blocked}. ${NO_PREEMPTION}`;
      const prev = (pod.status?.conditions ?? []).find((c: any) => c.type === 'PodScheduled');
      if (prev?.message !== message) setStatus({ phase: 'Pending', conditions: [condition('PodScheduled', 'False', 'Unschedulable', message)] });
      this.recordEvent(pod, 'Warning', 'FailedScheduling', message, 'default-scheduler');
      this.waitingOnClaims.set(`${namespace}/${name}`, created);
      return;
    }
    this.waitingOnClaims.delete(`${namespace}/${name}`);

    // Bind to the node (a spec write, like the scheduler's Binding), then the kubelet takes over.
    this.store.patch(PODS, namespace, name, 'merge', { spec: { nodeName: NODE } }, { manager: SCHEDULER });
    this.recordEvent(pod, 'Normal', 'Scheduled', `Successfully assigned ${namespace}/${name} to ${NODE}`, 'default-scheduler');
    if (this.kubelet) {
      const bound = live();
      if (bound) this.kubelet.runPod(bound);
      return;
    }
    const startTime = nowSeconds();
    const waiting = (reason: string, message?: string, extra: Record<string, unknown> = {}) =>
      containers.map((c) => ({ name: c.name, image: c.image, imageID: '', ready: false, restartCount: 0, started: false, state: { waiting: { reason, ...(message ? { message: message.replace('{image}', c.image) } : {}) } }, ...extra }));
    setStatus({
      phase: 'Pending',
      hostIP: NODE_IP,
      hostIPs: [{ ip: NODE_IP }],
      startTime,
      conditions: [condition('PodReadyToStartContainers', 'False'), condition('Initialized', 'True'), condition('Ready', 'False', 'ContainersNotReady', `containers with unready status: [${containers.map((c) => c.name).join(' ')}]`), condition('ContainersReady', 'False', 'ContainersNotReady', `containers with unready status: [${containers.map((c) => c.name).join(' ')}]`), condition('PodScheduled', 'True')],
      containerStatuses: waiting('ContainerCreating'),
    });

    const podIP = `10.244.0.${2 + (parseInt(uid.slice(0, 2), 16) % 250)}`;
    const running = (ready: boolean) =>
      containers.map((c) => ({
        name: c.name,
        image: c.image,
        imageID: `${c.image.split(':')[0]}@sha256:${randomBytes(32).toString('hex')}`,
        containerID: `containerd://${randomBytes(32).toString('hex')}`,
        ready,
        restartCount: 0,
        started: true,
        state: { running: { startedAt: nowSeconds() } },
      }));
    const unready = `containers with unready status: [${containers.map((c) => c.name).join(' ')}]`;
    const runningConditions = (ready: boolean) => [
      condition('PodReadyToStartContainers', 'True'),
      condition('Initialized', 'True'),
      ready ? condition('Ready', 'True') : condition('Ready', 'False', 'ContainersNotReady', unready),
      ready ? condition('ContainersReady', 'True') : condition('ContainersReady', 'False', 'ContainersNotReady', unready),
      condition('PodScheduled', 'True'),
    ];
    const startedEvents = () => {
      for (const c of containers) {
        this.recordEvent(pod, 'Normal', 'Pulled', `Container image "${c.image}" already present on machine`, 'kubelet', `spec.containers{${c.name}}`);
        this.recordEvent(pod, 'Normal', 'Created', `Created container: ${c.name}`, 'kubelet', `spec.containers{${c.name}}`);
        this.recordEvent(pod, 'Normal', 'Started', `Started container ${c.name}`, 'kubelet', `spec.containers{${c.name}}`);
      }
    };
    const tick = this.readyAfterMs;

    if (mode === 'ok' || typeof mode === 'object' || mode === 'never-ready') {
      const ready = mode !== 'never-ready';
      const after = typeof mode === 'object' ? mode.slowMs : tick;
      this.later(after, () => {
        if (!live()) return;
        startedEvents();
        setStatus({ phase: 'Running', podIP, podIPs: [{ ip: podIP }], conditions: runningConditions(ready), containerStatuses: running(ready) });
      });
    } else if (mode === 'image-pull') {
      this.later(Math.min(tick, 20), () => {
        if (!live()) return;
        for (const c of containers) {
          this.recordEvent(pod, 'Normal', 'Pulling', `Pulling image "${c.image}"`, 'kubelet', `spec.containers{${c.name}}`);
          this.recordEvent(pod, 'Warning', 'Failed', `Failed to pull image "${c.image}": not found`, 'kubelet', `spec.containers{${c.name}}`);
          this.recordEvent(pod, 'Warning', 'Failed', 'Error: ErrImagePull', 'kubelet', `spec.containers{${c.name}}`);
        }
        setStatus({ containerStatuses: waiting('ErrImagePull', 'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": not found') });
        this.later(tick, () => {
          if (!live()) return;
          for (const c of containers) {
            this.recordEvent(pod, 'Normal', 'BackOff', `Back-off pulling image "${c.image}"`, 'kubelet', `spec.containers{${c.name}}`);
            this.recordEvent(pod, 'Warning', 'Failed', 'Error: ImagePullBackOff', 'kubelet', `spec.containers{${c.name}}`);
          }
          setStatus({ containerStatuses: waiting('ImagePullBackOff', 'Back-off pulling image "{image}"') });
        });
      });
    } else if (mode === 'crash-loop') {
      const crash = (restarts: number, delay: number): void => {
        this.later(delay, () => {
          const p = live();
          if (!p) return;
          if (restarts === 1) startedEvents();
          const finishedAt = nowSeconds();
          setStatus({
            phase: 'Running',
            podIP,
            podIPs: [{ ip: podIP }],
            conditions: runningConditions(false),
            containerStatuses: containers.map((c) => ({
              name: c.name,
              image: c.image,
              imageID: `${c.image.split(':')[0]}@sha256:${'0'.repeat(64)}`,
              containerID: `containerd://${randomBytes(32).toString('hex')}`,
              ready: false,
              restartCount: restarts,
              started: false,
              state: { waiting: { reason: 'CrashLoopBackOff', message: `back-off ${Math.min(10 * 2 ** (restarts - 1), 300)}s restarting failed container=${c.name} pod=${name}_${namespace}(${uid})` } },
              lastState: { terminated: { exitCode: 1, reason: 'Error', startedAt: startTime, finishedAt, containerID: `containerd://${randomBytes(32).toString('hex')}` } },
            })),
          });
          for (const c of containers) {
            this.recordEvent(p, 'Warning', 'BackOff', `Back-off restarting failed container ${c.name} in pod ${name}_${namespace}(${uid})`, 'kubelet', `spec.containers{${c.name}}`);
          }
          // Restarts keep coming with a growing back-off, like the kubelet's (capped to stay cheap).
          crash(restarts + 1, Math.min(delay * 2, tick * 8));
        });
      };
      crash(1, tick);
    }
  }

  // ---- volumes: the scheduler's VolumeBinding / VolumeRestrictions and the PV controller's binder ----

  /**
   * Why the scheduler cannot place this pod because of its claims (the PreFilter messages of
   * pkg/scheduler/framework/plugins/volumebinding and volumerestrictions), or undefined. Immediate
   * binding only (no StorageClass objects here): an unbound claim blocks the pod until the binder
   * binds it. One node: ReadWriteOnce never blocks (every pod is on the node that has the volume);
   * ReadWriteOncePod blocks a second pod using the claim.
   */
  private claimsBlock(pod: any): string | undefined {
    const ns = pod.metadata.namespace;
    for (const v of pod.spec?.volumes ?? []) {
      const claimName = v.persistentVolumeClaim?.claimName;
      if (!claimName) continue;
      const claim = this.store.get(CLAIMS, ns, claimName);
      if (!claim) return `persistentvolumeclaim "${claimName}" not found`;
      if (claim.metadata.deletionTimestamp) return `persistentvolumeclaim "${claimName}" is being deleted`;
      if (claim.status?.phase !== 'Bound' || !claim.spec?.volumeName) return 'pod has unbound immediate PersistentVolumeClaims';
      if (!this.store.get(VOLUMES, undefined, claim.spec.volumeName)) return `pvc(s) bound to non-existent pv(s)`;
      if ((claim.spec.accessModes ?? []).includes('ReadWriteOncePod')) {
        const other = this.store.list(PODS, ns, (p) => p.metadata.uid !== pod.metadata.uid && !!p.spec.nodeName && !['Succeeded', 'Failed'].includes(p.status?.phase) && (p.spec.volumes ?? []).some((x: any) => x.persistentVolumeClaim?.claimName === claimName));
        if (other.length) return '1 node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode';
      }
    }
    return undefined;
  }

  private volumesQueued = false;

  private enqueueVolumes(): void {
    if (this.volumesQueued) return;
    this.volumesQueued = true;
    this.later(0, () => {
      this.volumesQueued = false;
      this.syncVolumes();
      // The scheduler moves pods that failed on volumes back to its active queue on claim/volume events.
      const waiting = [...this.waitingOnClaims.values()];
      this.waitingOnClaims.clear();
      for (const p of waiting) this.startPod(p);
    });
  }

  /**
   * The PV controller (pkg/controller/volume/persistentvolume): a new volume without a claimRef
   * becomes Available; a Pending claim binds to the smallest Available volume with the same
   * storageClassName ("" when unset: no default class here) and volumeMode, every access mode the
   * claim asks for, and at least its storage request — or to the volume it names (spec.volumeName)
   * or that names it (claimRef); a bound volume whose claim is gone becomes Released (Retain).
   * Not modelled: selectors, dynamic provisioning, WaitForFirstConsumer.
   */
  private syncVolumes(): void {
    const volumes = this.store.list(VOLUMES);
    for (const pv of volumes) {
      const ref = pv.spec?.claimRef;
      let phase = pv.status?.phase;
      if (!ref) phase = 'Available';
      else if (ref.uid) {
        const claim = this.store.get(CLAIMS, ref.namespace, ref.name);
        phase = claim && claim.metadata.uid === ref.uid ? 'Bound' : 'Released';
      } else phase = 'Available'; // pre-bound to a claim by name: waits for it
      if (phase !== pv.status?.phase) this.store.writeStatus(VOLUMES, undefined, pv.metadata.name, { ...pv.status, phase }, BINDER);
    }
    for (const claim of this.store.list(CLAIMS)) {
      if (claim.status?.phase === 'Bound' || claim.metadata.deletionTimestamp) continue;
      const spec = claim.spec ?? {};
      const want = quantityBytes(spec.resources?.requests?.storage);
      const fits = (listed: any) => {
        // The live volume: an earlier claim of this pass may have taken it.
        const pv = this.store.get(VOLUMES, undefined, listed.metadata.name);
        if (!pv) return false;
        const ref = pv.spec?.claimRef;
        if (ref && (ref.namespace !== claim.metadata.namespace || ref.name !== claim.metadata.name || (ref.uid && ref.uid !== claim.metadata.uid))) return false;
        if (pv.status?.phase === 'Released') return false;
        if ((pv.spec.storageClassName ?? '') !== (spec.storageClassName ?? '')) return false;
        if ((pv.spec.volumeMode ?? 'Filesystem') !== (spec.volumeMode ?? 'Filesystem')) return false;
        if (!(spec.accessModes ?? []).every((m: string) => (pv.spec.accessModes ?? []).includes(m))) return false;
        return quantityBytes(pv.spec.capacity?.storage) >= want;
      };
      const candidates = (spec.volumeName ? volumes.filter((v) => v.metadata.name === spec.volumeName) : volumes).filter(fits);
      const pv = candidates.sort((a, b) => quantityBytes(a.spec.capacity?.storage) - quantityBytes(b.spec.capacity?.storage))[0];
      if (!pv) continue;
      const { namespace, name, uid, resourceVersion } = claim.metadata;
      this.store.patch(VOLUMES, undefined, pv.metadata.name, 'merge', { metadata: { annotations: { 'pv.kubernetes.io/bound-by-controller': 'yes' } }, spec: { claimRef: { kind: 'PersistentVolumeClaim', namespace, name, uid, apiVersion: 'v1', resourceVersion } } }, { manager: BINDER });
      const live = this.store.get(VOLUMES, undefined, pv.metadata.name);
      this.store.writeStatus(VOLUMES, undefined, pv.metadata.name, { ...live.status, phase: 'Bound' }, BINDER);
      this.store.patch(CLAIMS, namespace, name, 'merge', { metadata: { annotations: { 'pv.kubernetes.io/bind-completed': 'yes', 'pv.kubernetes.io/bound-by-controller': 'yes' } }, spec: { volumeName: pv.metadata.name } }, { manager: BINDER });
      const c = this.store.get(CLAIMS, namespace, name);
      this.store.writeStatus(CLAIMS, namespace, name, { ...c.status, phase: 'Bound', accessModes: [...pv.spec.accessModes], capacity: { ...pv.spec.capacity } }, BINDER);
    }
  }

  // ---- events ----------------------------------------------------------------------------------

  /** Record a core/v1 Event; repeats of the same (object, reason, message) bump count instead. */
  recordEvent(obj: any, type: 'Normal' | 'Warning', reason: string, message: string, component: string, fieldPath?: string): void {
    const ns = obj.metadata.namespace;
    const existing = this.store.list(EVENTS as ResourceDef, ns, (e) => e.involvedObject?.uid === obj.metadata.uid && e.reason === reason && e.message === message)[0];
    const now = nowSeconds();
    if (existing) {
      this.store.patch(EVENTS, ns, existing.metadata.name, 'merge', { count: (existing.count ?? 1) + 1, lastTimestamp: now }, { manager: component });
      return;
    }
    const involvedObject: Record<string, unknown> = { kind: obj.kind, namespace: ns, name: obj.metadata.name, uid: obj.metadata.uid, apiVersion: obj.apiVersion, resourceVersion: obj.metadata.resourceVersion };
    if (fieldPath) involvedObject.fieldPath = fieldPath;
    this.store.createInternal(EVENTS, ns, {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${obj.metadata.name}.${randomBytes(8).toString('hex')}`, namespace: ns },
      involvedObject,
      reason,
      message,
      source: component === 'kubelet' ? { component, host: NODE } : { component },
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
      type,
      eventTime: null,
      reportingComponent: component,
      reportingInstance: component === 'kubelet' ? NODE : '',
    }, component);
  }
}
