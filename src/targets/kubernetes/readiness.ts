import type { CoreV1Event, V1ContainerStatus, V1Deployment, V1Pod } from '@kubernetes/client-node';

/**
 * Pure readiness logic: is a Deployment serving all its replicas, and if not, why not — in the
 * words `kubectl describe` would use (image pull errors, crash loops, unschedulable pods), so a
 * failed rollout says what to fix instead of "timed out".
 */

export function deploymentReady(d: V1Deployment): boolean {
  const want = d.spec?.replicas ?? 1;
  const s = d.status ?? {};
  const observed = (s.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0);
  return observed && (s.updatedReplicas ?? 0) >= want && (s.readyReplicas ?? 0) >= want && (s.availableReplicas ?? s.readyReplicas ?? 0) >= want;
}

/** The Deployment controller gave up (progressDeadlineSeconds passed without progress). */
export function progressDeadlineExceeded(d: V1Deployment): string | undefined {
  const c = d.status?.conditions?.find((x) => x.type === 'Progressing');
  return c?.status === 'False' && c.reason === 'ProgressDeadlineExceeded' ? c.message ?? 'progress deadline exceeded' : undefined;
}

/**
 * The Deployment's ReplicaFailure condition (copied by the Deployment controller from its new
 * ReplicaSet, sync.go): pods could not be created — reason FailedCreate and the API server's
 * refusal (Pod Security admission, a quota, a LimitRange, a webhook). Undefined when pods are created.
 */
export function replicaFailure(d: V1Deployment): { reason: string; message: string } | undefined {
  const c = d.status?.conditions?.find((x) => x.type === 'ReplicaFailure');
  return c?.status === 'True' ? { reason: c.reason ?? 'FailedCreate', message: c.message ?? 'pods could not be created' } : undefined;
}

/**
 * How long a problem may last before the wait gives up on it (ms), or undefined when only the
 * readiness deadline bounds it (containers starting, probes failing for a while).
 *
 * - A refusal by admission (`is forbidden`: Pod Security, a quota, a LimitRange) or an invalid pod:
 *   0. Nothing in the cluster changes its mind by itself; someone must relabel the namespace or
 *   raise the quota, and the rollout should not hold a lock meanwhile.
 * - Other create failures (a webhook timing out, an API server error): 30 s. The ReplicaSet
 *   controller retries with back-off; a transient failure clears in seconds.
 * - Unschedulable because of a claim (missing, unbound, being deleted, bound to a gone volume): 30 s.
 *   A cluster autoscaler does not create claims or volumes, and a dynamic provisioner binds a new
 *   claim within seconds; 30 s covers a claim applied together with the deploy.
 * - Unschedulable for resources (Insufficient cpu / nvidia.com/gpu, taints, affinity): 5 min. A
 *   cluster autoscaler adds a node in about 1–4 minutes on the big clouds (GPU nodes the slowest),
 *   so failing earlier would abort rollouts a cluster was about to serve; it is still far below the
 *   default 10 min progress deadline, so a cluster without an autoscaler is told in 5 min, not 10.
 */
export function giveUpAfterMs(p: Pick<PodProblem, 'reason' | 'message'>): number | undefined {
  if (p.reason === 'FailedCreate' || p.reason === 'FailedDelete') return /\bis forbidden\b|exceeded quota|\bis invalid\b/.test(p.message) ? 0 : 30_000;
  if (p.reason !== 'Unschedulable') return undefined;
  return CLAIM_UNSCHEDULABLE.test(p.message) ? 30_000 : 300_000;
}

/** The scheduler's messages for a pod held back by its PersistentVolumeClaims (volumebinding plugin). */
const CLAIM_UNSCHEDULABLE = /persistentvolumeclaim "[^"]*" (not found|is being deleted)|unbound immediate PersistentVolumeClaims|bound to non-existent pv|didn't find available persistent volumes to bind/;

/** What to do about a problem that made the wait give up (the error's hint). */
export function problemHint(p: Pick<PodProblem, 'reason' | 'message'>, ns: string, deployment: string): string {
  if (/violates PodSecurity/.test(p.message)) {
    return `the namespace's Pod Security level refuses these pods: see \`modelctl kubernetes check\` (a hostPath kubernetes.bundleCache needs "privileged"; a persistentVolumeClaim cache is admitted at every level), or \`kubectl get namespace ${ns} --show-labels\`; nothing was routed to it`;
  }
  if (/exceeded quota/.test(p.message)) return `raise the namespace's ResourceQuota or lower kubernetes.resources (see \`kubectl -n ${ns} describe quota\`); nothing was routed to it`;
  if (CLAIM_UNSCHEDULABLE.test(p.message)) {
    return `the bundle cache's PersistentVolumeClaim must exist in namespace ${ns} and be Bound: see \`modelctl kubernetes check\` and \`kubectl -n ${ns} get pvc\`; nothing was routed to it`;
  }
  return `see \`kubectl -n ${ns} describe deployment ${deployment}\` and its pods' events; nothing was routed to it`;
}

export interface PodProblem {
  pod: string;
  /** The Kubernetes reason: ImagePullBackOff, CrashLoopBackOff, Unschedulable… */
  reason: string;
  message: string;
  /** No point waiting longer: it will not fix itself (a bad image, a crashing server). */
  fatal: boolean;
}

/** Waiting reasons that do not heal by waiting (kubelet keeps backing off). */
const FATAL_WAITING = new Set(['ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull', 'CreateContainerConfigError', 'CreateContainerError', 'CrashLoopBackOff', 'RunContainerError']);

function containerProblem(pod: string, c: V1ContainerStatus, init: boolean): PodProblem | undefined {
  const waiting = c.state?.waiting;
  if (!waiting?.reason || waiting.reason === 'ContainerCreating' || waiting.reason === 'PodInitializing') return undefined;
  const where = init ? `init container ${c.name}` : `container ${c.name}`;
  const last = c.lastState?.terminated;
  const exit = last ? ` (last exit code ${last.exitCode}${last.reason ? `, ${last.reason}` : ''}; ${c.restartCount} restarts)` : '';
  return { pod, reason: waiting.reason, message: `${where}: ${waiting.message ?? waiting.reason}${exit}`, fatal: FATAL_WAITING.has(waiting.reason) };
}

/** What is wrong with each pod, most telling first (a fatal container state over a pending condition). */
export function diagnosePods(pods: V1Pod[], events: CoreV1Event[] = []): PodProblem[] {
  const problems: PodProblem[] = [];
  for (const p of pods) {
    const name = p.metadata?.name ?? '?';
    if (p.metadata?.deletionTimestamp) continue;
    const found = [
      ...(p.status?.initContainerStatuses ?? []).map((c) => containerProblem(name, c, true)),
      ...(p.status?.containerStatuses ?? []).map((c) => containerProblem(name, c, false)),
    ].filter((x): x is PodProblem => x !== undefined);
    const scheduled = p.status?.conditions?.find((c) => c.type === 'PodScheduled');
    if (scheduled?.status === 'False') {
      found.push({ pod: name, reason: scheduled.reason ?? 'Unschedulable', message: scheduled.message ?? 'the pod cannot be scheduled', fatal: false });
    }
    if (found.length === 0) {
      const ready = p.status?.conditions?.find((c) => c.type === 'Ready');
      if (p.status?.phase === 'Running' && ready?.status === 'False') {
        found.push({ pod: name, reason: 'NotReady', message: `running but failing its readiness probe${ready.message ? ` (${ready.message})` : ''}`, fatal: false });
      }
    }
    // Warning events add what the status leaves out (e.g. "Failed to pull image …: not found").
    const warnings = events.filter((e) => e.involvedObject?.name === name && e.type === 'Warning');
    for (const f of found) {
      const telling = warnings.find((e) => e.message && !f.message.includes(e.message));
      if (telling) f.message += `; event ${telling.reason}: ${telling.message}`;
    }
    problems.push(...found);
  }
  return problems.sort((a, b) => Number(b.fatal) - Number(a.fatal));
}

/** "2 pods: ImagePullBackOff (sentiment-1-4-0-abc: container model: Back-off pulling image …)". */
export function describeProblems(problems: PodProblem[]): string {
  if (problems.length === 0) return 'no pod reported a problem';
  const byReason = new Map<string, PodProblem[]>();
  for (const p of problems) byReason.set(p.reason, [...(byReason.get(p.reason) ?? []), p]);
  return [...byReason.entries()].map(([reason, ps]) => `${reason} on ${ps.length} pod${ps.length > 1 ? 's' : ''} (${ps[0]!.pod}: ${ps[0]!.message})`).join('; ');
}
