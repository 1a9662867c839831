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
