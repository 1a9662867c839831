import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { versionKey } from './paths.js';
import { SampleRing, windowOf, type LocalWindow, type RequestSample } from './window.js';

export interface VersionReadiness {
  model: string;
  version: string;
  ready: boolean;
  restarts: number;
}

/**
 * Per-version measurements, kept twice on purpose: prom-client series for /metrics (what a
 * Prometheus scrapes; cumulative, for dashboards and the Prometheus metric source), and a bounded
 * ring per version for exact windows (what the engine's LocalMetricSource asks: "since the step
 * began"). A registry per daemon, never prom-client's global one.
 */
export class RuntimeMetrics {
  readonly registry = new Registry();
  private readonly rings = new Map<string, SampleRing>();
  private readonly requests: Counter<'model' | 'version' | 'role' | 'status_class'>;
  private readonly duration: Histogram<'model' | 'version' | 'role'>;
  private readonly score: Histogram<'model' | 'version' | 'role'>;
  private readonly compared: Counter<'model' | 'version'>;
  private readonly agreed: Counter<'model' | 'version'>;
  private readonly mirrorSkipped: Counter<'model' | 'version' | 'reason'>;

  constructor(readiness: () => VersionReadiness[], private readonly ringCapacity = 100_000) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'modelctl_local_requests_total',
      help: 'Requests answered by a version (role=shadow: mirrored copies), by status class (2xx…5xx; "error" = unreachable).',
      labelNames: ['model', 'version', 'role', 'status_class'],
      registers,
    });
    this.duration = new Histogram({
      name: 'modelctl_local_request_duration_seconds',
      help: 'Latency of a version as seen by the router (request received → answer sent).',
      labelNames: ['model', 'version', 'role'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.score = new Histogram({
      name: 'modelctl_local_score',
      help: "Values of the bundle's numeric answer field (serve.scoreField), successful answers only.",
      labelNames: ['model', 'version', 'role'],
      buckets: [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1],
      registers,
    });
    this.compared = new Counter({
      name: 'modelctl_local_shadow_compared_total',
      help: "Mirrored requests whose shadow answer was compared with the live answer (serve.agreementField).",
      labelNames: ['model', 'version'],
      registers,
    });
    this.agreed = new Counter({
      name: 'modelctl_local_shadow_agreed_total',
      help: 'Compared mirrored requests whose shadow answer agreed with the live answer.',
      labelNames: ['model', 'version'],
      registers,
    });
    this.mirrorSkipped = new Counter({
      name: 'modelctl_local_mirror_skipped_total',
      help: 'Requests that should have been mirrored but were not (too many mirrored requests in flight, body too large).',
      labelNames: ['model', 'version', 'reason'],
      registers,
    });
    new Gauge({
      name: 'modelctl_local_version_ready',
      help: '1 when the version answers its readiness probe, else 0.',
      labelNames: ['model', 'version'],
      registers,
      collect() {
        this.reset();
        for (const v of readiness()) this.set({ model: v.model, version: v.version }, v.ready ? 1 : 0);
      },
    });
    new Gauge({
      name: 'modelctl_local_version_restarts',
      help: 'Times the version process was restarted after it exited.',
      labelNames: ['model', 'version'],
      registers,
      collect() {
        this.reset();
        for (const v of readiness()) this.set({ model: v.model, version: v.version }, v.restarts);
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'modelctl_local_daemon_' });
  }

  record(model: string, version: string, s: RequestSample): void {
    const statusClass = s.status === 0 ? 'error' : `${Math.floor(s.status / 100)}xx`;
    this.requests.inc({ model, version, role: s.role, status_class: statusClass });
    this.duration.observe({ model, version, role: s.role }, s.latencyMs / 1000);
    if (s.score !== null && s.status < 400) this.score.observe({ model, version, role: s.role }, s.score);
    if (s.agreed !== null) {
      this.compared.inc({ model, version });
      if (s.agreed) this.agreed.inc({ model, version });
    }
    const key = versionKey(model, version);
    let ring = this.rings.get(key);
    if (!ring) this.rings.set(key, (ring = new SampleRing(this.ringCapacity)));
    ring.push(s);
  }

  mirrorSkip(model: string, version: string, reason: 'busy' | 'body-too-large'): void {
    this.mirrorSkipped.inc({ model, version, reason });
  }

  window(model: string, version: string, sinceMs: number, nowMs = Date.now()): LocalWindow {
    return windowOf(this.rings.get(versionKey(model, version)), sinceMs, nowMs);
  }

  /** modelctl's own rollout metrics per model, as last reported by the deploy that drives it. */
  private readonly rollouts = new Map<string, MetricObjectWithValues<MetricValue<string>>[]>();

  /**
   * Keep the rollout metrics a deploy reported for `model` (its whole registry, as JSON): the
   * deploy process is short-lived, the daemon is not, so this is where Prometheus finds them.
   */
  setRollout(model: string, metrics: MetricObjectWithValues<MetricValue<string>>[]): void {
    if (!Array.isArray(metrics)) throw new Error('expected the JSON of a prom-client registry (an array of metrics)');
    this.rollouts.set(model, metrics);
  }

  async text(): Promise<{ contentType: string; body: string }> {
    let body = await this.registry.metrics();
    if (this.rollouts.size > 0) {
      // One exposition: every model's series merged under one HELP/TYPE per metric (their
      // label sets differ by `model`, so the aggregator's default sum never adds two series).
      const merged = AggregatorRegistry.aggregate([...this.rollouts.values()]);
      body += await merged.metrics();
    }
    return { contentType: this.registry.contentType, body };
  }
}
