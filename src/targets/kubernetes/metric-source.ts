import { CoreV1Api, Observable, type KubeConfig, type ObservableMiddleware } from '@kubernetes/client-node';
import { z } from 'zod';
import { UnavailableError } from '../../core/errors.js';
import type { MetricSource } from '../../core/ports.js';
import type { LocalWindow } from '../local/window.js';
import { withStrictWrites } from './client.js';
import { selectorString, versionSelector } from './names.js';
import { withTimeout } from '../../util/timeout.js';
import { METER_PORT } from './settings.js';
import { meterAnswerSchema } from './window-codec.js';

/**
 * Exact per-version windows on Kubernetes: every pod of a version runs the metering sidecar
 * (meter.ts), which keeps the pod's own request ring; the window of the version is the sum over its
 * running pods, read through the API server's pod proxy (the meter's port is not exposed by any
 * Service). Same numbers, same gates as the local runtime.
 *
 * Limits worth knowing: a pod that was deleted or restarted since `sinceMs` took its samples with
 * it (a rollout step normally does not replace pods); and `sinceMs` is compared with each pod's
 * clock, so node clock skew shifts the window edge by that much.
 */

/** The two cluster calls the metric source needs (a fake API server or the real client in tests). */
export interface PodAccess {
  listPods(namespace: string, labelSelector: string): Promise<Array<{ name: string; ready: boolean; phase: string }>>;
  /** GET `path` (may carry a query) on `port` of `pod` through the API server's proxy; the parsed JSON body. */
  proxyGet(namespace: string, pod: string, port: number, path: string): Promise<unknown>;
}

/** A merged window: which pods it covers and which did not answer (their requests are not in it). */
export interface KubernetesWindow extends LocalWindow {
  pods: string[];
  missing: Array<{ pod: string; error: string }>;
}

/** Sum of per-pod windows: counts add up, samples concatenate, truncated if any pod's is. */
export function mergeWindows(parts: readonly LocalWindow[]): LocalWindow {
  const w: LocalWindow = { requests: 0, errors: 0, latenciesMs: [], scores: [], shadowCompared: 0, shadowAgreed: 0, truncated: false };
  for (const p of parts) {
    w.requests += p.requests;
    w.errors += p.errors;
    // push(...x) overflows the stack on very large arrays (a ring holds up to 100 000 samples).
    for (const v of p.latenciesMs) w.latenciesMs.push(v);
    for (const v of p.scores) w.scores.push(v);
    w.shadowCompared += p.shadowCompared;
    w.shadowAgreed += p.shadowAgreed;
    if (p.unreadable) w.unreadable = (w.unreadable ?? 0) + p.unreadable;
    if (p.shadowDropped) w.shadowDropped = (w.shadowDropped ?? 0) + p.shadowDropped;
    if (p.shadowFailed) w.shadowFailed = (w.shadowFailed ?? 0) + p.shadowFailed;
    w.truncated ||= p.truncated;
  }
  return w;
}

function message(err: unknown): string {
  if (err instanceof z.ZodError) return `unexpected answer from the meter (${err.issues[0]?.path.join('.') || 'body'}: ${err.issues[0]?.message})`;
  return err instanceof Error ? err.message : String(err);
}

export class KubernetesMetricSource implements MetricSource {
  private readonly core: PodAccess;
  private readonly namespace: string;
  private readonly clock: () => number;
  private readonly timeoutMs: number;

  constructor(opts: { core: PodAccess; namespace: string; clock?: () => number; timeoutMs?: number }) {
    this.core = opts.core;
    this.namespace = opts.namespace;
    this.clock = opts.clock ?? Date.now;
    // One hung pod proxy must not stall the gate's whole step.
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  async window(model: string, version: string, sinceMs: number): Promise<KubernetesWindow> {
    const what = `${model}@${version}`;
    const selector = selectorString(versionSelector(model, version));
    const listed = await this.core.listPods(this.namespace, selector);
    // Not only ready pods: a pod that turned unready (overloaded, failing) served requests whose
    // errors the gate must see. Pending pods have no meter yet; finished ones have no ring anymore.
    const pods = listed.filter((p) => p.phase === 'Running').map((p) => p.name);
    if (pods.length === 0) {
      // An empty window would read as "no traffic yet" and let a gate wait or pass on nothing.
      throw new UnavailableError(`no running pods of ${what} in namespace ${this.namespace}: no measurements`, {
        hint: `kubectl get pods -n ${this.namespace} -l ${selector}`,
        details: { model, version, namespace: this.namespace, selector, listed: listed.map((p) => ({ name: p.name, phase: p.phase })) },
      });
    }
    // Runs, not raw arrays: kilobytes instead of up to ~1 MB per pod through the API server (window-codec.ts).
    const path = `/v1/window?since=${encodeURIComponent(String(Math.floor(sinceMs)))}&encoding=runs`;
    const answers = await Promise.allSettled(
      pods.map(async (pod) => meterAnswerSchema.parse(await withTimeout(this.core.proxyGet(this.namespace, pod, METER_PORT, path), this.timeoutMs, () => new Error(`${pod}: no answer within ${this.timeoutMs} ms`)))),
    );
    const parts: LocalWindow[] = [];
    const answered: string[] = [];
    const missing: KubernetesWindow['missing'] = [];
    answers.forEach((a, i) => {
      const pod = pods[i]!;
      if (a.status === 'fulfilled') {
        parts.push(a.value);
        answered.push(pod);
      } else {
        missing.push({ pod, error: message(a.reason) });
      }
    });
    if (parts.length === 0) {
      throw new UnavailableError(
        `no metering sidecar of ${what} answered (${missing.map((m) => `${m.pod}: ${m.error}`).join('; ')})`,
        {
          hint: `check the pods' meter containers: kubectl logs -n ${this.namespace} -l ${selector} -c meter; reading windows needs get on pods/proxy`,
          details: { model, version, namespace: this.namespace, missing, at: this.clock() },
        },
      );
    }
    // Some pods answered: their windows are real measurements; the missing pods are named so a
    // caller can tell the window is partial (VersionWindow consumers ignore the extra fields).
    return { ...mergeWindows(parts), pods: answered, missing };
  }
}

/** The real cluster: list pods and GET through the API server's pod proxy with @kubernetes/client-node. */
export function podAccessFromKubeConfig(kc: KubeConfig, onWarning?: (warning: string) => void): PodAccess {
  // Reads only, but the API server's Warning headers are shown here too (never ignored).
  const core = onWarning ? withStrictWrites(kc.makeApiClient(CoreV1Api), onWarning) : kc.makeApiClient(CoreV1Api);
  return {
    async listPods(namespace, labelSelector) {
      const list = await core.listNamespacedPod({ namespace, labelSelector });
      return list.items.map((p) => ({
        name: p.metadata?.name ?? '',
        phase: p.status?.phase ?? 'Unknown',
        ready: p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
      }));
    },
    async proxyGet(namespace, pod, port, path) {
      const target = new URL(path, 'http://pod');
      const rel = target.pathname.replace(/^\//, '');
      // The generated client percent-encodes the whole path parameter ("v1/window?since=1" →
      // "v1%2Fwindow%3Fsince%3D1"), which would turn the query into part of the path. So the path
      // goes in plain and the query as real query parameters, fixed up just before sending.
      // The object-parameter API takes observable-style middleware (per-call options go straight through).
      const fixUrl: ObservableMiddleware = {
        pre: (ctx) => {
          const url = new URL(ctx.getUrl());
          const encoded = `/${encodeURIComponent(rel)}`;
          if (url.pathname.endsWith(encoded)) url.pathname = url.pathname.slice(0, -encoded.length) + target.pathname;
          url.search = target.search;
          ctx.setUrl(url.toString());
          return new Observable(Promise.resolve(ctx));
        },
        post: (rsp) => new Observable(Promise.resolve(rsp)),
      };
      const body: unknown = await core.connectGetNamespacedPodProxyWithPath(
        { name: `${pod}:${port}`, namespace, path: rel },
        // 'append' keeps whatever middleware the KubeConfig installed (auth is applied separately).
        { middleware: [fixUrl], middlewareMergeStrategy: 'append' },
      );
      // Typed string, but the client already parsed it when the answer said application/json.
      return typeof body === 'string' ? JSON.parse(body) : body;
    },
  };
}
