import type { Clock, MetricSource, VersionWindow } from '../../src/core/ports.js';
import type { FakeTarget } from './target.js';

/** How a version behaves; requests follow the share of traffic the FakeTarget gives it. */
export interface Behaviour {
  errorRate?: number;
  latencyMs?: number;
  score?: number;
  /** Shadow: share of compared answers that agree with stable. */
  agreement?: number;
}

export interface WindowQuery {
  model: string;
  version: string;
  sinceMs: number;
  now: number;
  /** The version's current share of live traffic (or of mirrored traffic), percent. */
  share: number;
}

/** Return a window, a Behaviour to synthesise one from, or throw (a query error). */
export type Script = (q: WindowQuery) => VersionWindow | Behaviour;

export function emptyWindow(): VersionWindow {
  return { requests: 0, errors: 0, latenciesMs: [], scores: [], shadowCompared: 0, shadowAgreed: 0 };
}

/**
 * A scripted MetricSource. By default a version's window is synthesised from its Behaviour and
 * the traffic it really gets: `totalRps` × its current weight (or mirror percent) × the window's
 * length — so a 5% canary really has few samples at its first check. `script()` overrides a
 * version with any function (exact windows, sequences, thrown errors).
 */
export class FakeMetricSource implements MetricSource {
  private readonly behaviours = new Map<string, Behaviour>();
  private readonly scripts = new Map<string, Script>();
  readonly queries: WindowQuery[] = [];

  constructor(
    private readonly clock: Clock,
    private readonly target: FakeTarget | null = null,
    public totalRps = 20,
  ) {}

  behave(version: string, b: Behaviour): this {
    this.behaviours.set(version, b);
    return this;
  }

  script(version: string, s: Script | null): this {
    if (s) this.scripts.set(version, s);
    else this.scripts.delete(version);
    return this;
  }

  async window(model: string, version: string, sinceMs: number): Promise<VersionWindow> {
    const q: WindowQuery = { model, version, sinceMs, now: this.clock.now(), share: this.share(model, version) };
    this.queries.push(q);
    const script = this.scripts.get(version);
    const out = script ? script(q) : (this.behaviours.get(version) ?? {});
    return 'requests' in out ? out : synthesise(out, q, this.totalRps);
  }

  private share(model: string, version: string): number {
    if (!this.target) return 100;
    const split = this.target.traffic(model);
    if (split.mirror?.version === version) return split.mirror.percent;
    return split.weights[version] ?? 0;
  }
}

export function synthesise(b: Behaviour, q: WindowQuery, totalRps: number): VersionWindow {
  const requests = Math.floor((totalRps * (q.share / 100) * Math.max(0, q.now - q.sinceMs)) / 1000);
  const errors = Math.round(requests * (b.errorRate ?? 0));
  const n = Math.min(requests, 5000);
  const compared = b.agreement === undefined ? 0 : requests;
  return {
    requests,
    errors,
    latenciesMs: Array.from({ length: n }, (_, i) => (b.latencyMs ?? 20) + (i % 5)),
    scores: b.score === undefined ? [] : Array.from({ length: n }, () => b.score!),
    shadowCompared: compared,
    shadowAgreed: Math.round(compared * (b.agreement ?? 0)),
  };
}
