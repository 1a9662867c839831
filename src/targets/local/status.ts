import type { TrafficSplit } from '../../core/model.js';
import { connectRuntime, type RuntimeClient } from './client.js';
import { localPaths } from './paths.js';
import { readState } from './state.js';

export interface StatusVersion {
  model: string;
  version: string;
  digest: string;
  pid: number | null;
  port: number | null;
  ready: boolean;
  status: string;
  restarts: number;
  /** Why it is not ready (exit code, last stderr lines…), null when ready. */
  reason: string | null;
  logFile: string | null;
}

export interface LocalStatus {
  running: boolean;
  home: string;
  pid: number | null;
  url: string | null;
  metricsUrl: string | null;
  adminUrl: string | null;
  startedAt: string | null;
  versions: StatusVersion[];
  traffic: Record<string, TrafficSplit>;
}

/** The `local status --json` document. When the daemon is down, the versions and traffic it would restore. */
export async function localStatus(home: string, client?: RuntimeClient): Promise<LocalStatus> {
  const c = client ?? (await connectRuntime(home));
  if (c) {
    const s = await c.state();
    return {
      running: true,
      home,
      pid: s.pid,
      url: c.url,
      metricsUrl: c.metricsUrl,
      adminUrl: c.adminUrl,
      startedAt: s.startedAt,
      versions: s.versions.map((v) => ({
        model: v.model,
        version: v.version,
        digest: v.digest,
        pid: v.pid,
        port: v.port,
        ready: v.ready,
        status: v.status,
        restarts: v.restarts,
        reason: v.reason,
        logFile: v.logFile,
      })),
      traffic: s.traffic,
    };
  }
  const state = await readState(localPaths(home).state).catch(() => undefined);
  return {
    running: false,
    home,
    pid: null,
    url: null,
    metricsUrl: null,
    adminUrl: null,
    startedAt: null,
    versions: (state?.versions ?? []).map((v) => ({
      model: v.model,
      version: v.version,
      digest: v.digest,
      pid: null,
      port: null,
      ready: false,
      status: 'stopped',
      restarts: 0,
      reason: 'the local runtime is not running',
      logFile: null,
    })),
    traffic: state?.traffic ?? {},
  };
}

/** "1.0.0 95%, 1.1.0 5%, mirror 1.2.0 10%" */
export function describeSplit(split: TrafficSplit | undefined): string {
  if (!split) return 'no traffic';
  const parts = Object.entries(split.weights)
    .filter(([, w]) => w > 0)
    .map(([v, w]) => `${v} ${w}%`);
  if (split.mirror) parts.push(`mirror ${split.mirror.version} ${split.mirror.percent}%`);
  return parts.length ? parts.join(', ') : 'no traffic';
}
