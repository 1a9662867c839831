import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RolloutPhase } from '../core/model.js';
import type { RolloutEvent, RolloutEventType } from '../core/events.js';

/**
 * modelctl's own telemetry: what a rollout (or a rollback) did, as Prometheus series, fed only
 * from the engine's event stream. A dedicated Registry (never prom-client's global one).
 *
 * Label policy: `model` and `target` on every series (they are also the Pushgateway grouping key),
 * `gate`/`verdict`/`reason`/`outcome`/`phase` where they apply — all bounded by configuration or
 * by a fixed enum. Nothing per run: no run id, no version, no digest. A version is bounded per
 * model but grows forever; on a Pushgateway group that persists between runs, and in the TSDB,
 * it would turn every release into a new set of series (churn, broken continuity of the gauges
 * dashboards watch). Which version a rollout is about lives in the ledger (`modelctl status`).
 */

/** Every value of the phase label: the ledger's rollout phases, plus `idle` (no rollout in progress). */
export const PHASES = ['idle', 'starting', 'shadow', 'canary', 'held', 'promoting', 'rolling-back'] as const satisfies readonly (RolloutPhase | 'idle')[];
export type TelemetryPhase = (typeof PHASES)[number];

/** Why traffic left the candidate (or the serving version, for `modelctl rollback`). */
export const ROLLBACK_REASONS = ['gate', 'abort', 'not-ready', 'manual'] as const;
export type RollbackReason = (typeof ROLLBACK_REASONS)[number];

/** How a rollout ended; `interrupted`: the command stopped with an error and the ledger keeps the rollout. */
export type TelemetryOutcome = 'promoted' | 'rolled-back' | 'aborted' | 'held' | 'shadow-passed' | 'interrupted';

const END_EVENTS: Readonly<Partial<Record<RolloutEventType, TelemetryOutcome>>> = {
  promoted: 'promoted',
  'rolled-back': 'rolled-back',
  aborted: 'aborted',
  held: 'held',
  'shadow-finished': 'shadow-passed',
};

/** Rollouts last from seconds (a first deploy) to hours (long bakes). */
export const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400];
/** A failing gate to all traffic on stable: should be around a second. */
export const GATE_TO_ROLLBACK_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

type Base = 'model' | 'target';

export interface RolloutMetricsOptions {
  model: string;
  target: string;
}

export class RolloutMetrics {
  readonly registry = new Registry();
  private readonly phaseGauge: Gauge<Base | 'phase'>;
  private readonly weight: Gauge<Base>;
  private readonly gateValue: Gauge<Base | 'gate'>;
  private readonly verdicts: Counter<Base | 'gate' | 'verdict'>;
  private readonly rollbacks: Counter<Base | 'reason'>;
  private readonly duration: Histogram<Base | 'outcome'>;
  private readonly gateToRollback: Histogram<Base>;
  private readonly labels: Record<Base, string>;

  /** The run as the events tell it. */
  private phase: TelemetryPhase = 'idle';
  private candidate: string | null = null;
  private startedAt: number | null = null;
  private ended = false;
  private lastGateFailAt: number | null = null;
  private gateFailedAt: number | null = null;
  private notReady = false;
  private touched = false;

  constructor(opts: RolloutMetricsOptions) {
    this.labels = { model: opts.model, target: opts.target };
    const registers = [this.registry];
    this.phaseGauge = new Gauge({
      name: 'modelctl_rollout_phase',
      help: 'Phase of the rollout of the model on the target, as a state set: 1 for the current phase, 0 for the others (idle: no rollout in progress).',
      labelNames: ['model', 'target', 'phase'],
      registers,
    });
    this.weight = new Gauge({
      name: 'modelctl_rollout_candidate_weight_percent',
      help: 'Percent of live traffic on the candidate version (0 in shadow and after it left; 100 once promoting).',
      labelNames: ['model', 'target'],
      registers,
    });
    this.gateValue = new Gauge({
      name: 'modelctl_rollout_gate_value',
      help: 'Last measured value of each gate (gates that measured no value are absent).',
      labelNames: ['model', 'target', 'gate'],
      registers,
    });
    this.verdicts = new Counter({
      name: 'modelctl_rollout_gate_verdicts_total',
      help: 'Gate evaluations by verdict (pass, fail, inconclusive, error…).',
      labelNames: ['model', 'target', 'gate', 'verdict'],
      registers,
    });
    this.rollbacks = new Counter({
      name: 'modelctl_rollbacks_total',
      help: 'Rollbacks started, by reason: gate (a gate failed), abort (a human aborted), not-ready (the candidate never became ready), manual (modelctl rollback).',
      labelNames: ['model', 'target', 'reason'],
      registers,
    });
    this.duration = new Histogram({
      name: 'modelctl_rollout_duration_seconds',
      help: 'Rollout duration (started or resumed by this command → its outcome), by outcome.',
      labelNames: ['model', 'target', 'outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.gateToRollback = new Histogram({
      name: 'modelctl_rollout_gate_to_rollback_seconds',
      help: 'Time from the failing gate evaluation to the rollback completed (all traffic back on a stable version).',
      labelNames: ['model', 'target'],
      buckets: GATE_TO_ROLLBACK_BUCKETS,
      registers,
    });
    // Series that exist from the start (so a scrape/push shows zeros rather than nothing).
    this.setPhase('idle');
    for (const reason of ROLLBACK_REASONS) this.rollbacks.inc({ ...this.labels, reason }, 0);
    this.gateToRollback.zero(this.labels);
  }

  get currentPhase(): TelemetryPhase {
    return this.phase;
  }

  /** Something happened worth reporting: a rollout started or resumed, or a rollback started. */
  get active(): boolean {
    return this.touched;
  }

  /**
   * Apply one engine event. Returns true when the phase changed (a moment worth pushing).
   * Unknown event types are ignored.
   */
  onEvent(e: RolloutEvent): boolean {
    const before = this.phase;
    if (e.type === 'rollout-started' || e.type === 'rollout-resumed' || e.type === 'rollback-started' || e.type === 'abort-started') this.touched = true;
    const at = typeof e.at === 'number' ? e.at : Date.now();
    switch (e.type) {
      case 'rollout-started':
      case 'rollout-resumed': {
        this.candidate = str(e.version);
        this.startedAt = at;
        this.ended = false;
        this.gateFailedAt = null;
        this.lastGateFailAt = null;
        this.notReady = false;
        const phase = str(e.phase);
        this.setPhase(isPhase(phase) ? phase : 'starting');
        break;
      }
      case 'step-started':
        this.setPhase(e.phase === 'shadow' ? 'shadow' : 'canary');
        if (typeof e.weight === 'number') this.weight.set(this.labels, e.weight);
        break;
      case 'traffic-applied': {
        const weights = e.weights ?? {};
        const w = this.candidate ? (weights[this.candidate] ?? 0) : 0;
        this.weight.set(this.labels, w);
        // The engine announces no event when it enters promotion: all traffic on the candidate is it.
        if (w >= 100 && !this.ended && this.phase !== 'rolling-back' && this.phase !== 'idle') this.setPhase('promoting');
        break;
      }
      case 'gate-evaluated':
      case 'gate-failed': {
        const gate = str(e.gate) ?? 'unknown';
        const verdict = str(e.verdict) ?? (e.type === 'gate-failed' ? 'fail' : 'unknown');
        this.verdicts.inc({ ...this.labels, gate, verdict });
        if (typeof e.value === 'number' && Number.isFinite(e.value)) this.gateValue.set({ ...this.labels, gate }, e.value);
        if (verdict === 'fail') this.lastGateFailAt = at;
        break;
      }
      case 'version-not-ready':
        this.notReady = true;
        break;
      case 'rollback-started':
        if (this.startedAt === null) {
          // `modelctl rollback`: a switch between stable versions, no rollout around it.
          this.startRollback('manual', null);
        } else {
          this.startRollback(this.notReady ? 'not-ready' : 'gate', this.notReady ? null : this.lastGateFailAt);
        }
        break;
      case 'abort-started':
        this.startRollback('abort', null);
        break;
      case 'rolled-back':
        if (this.gateFailedAt !== null) this.gateToRollback.observe(this.labels, Math.max(0, at - this.gateFailedAt) / 1000);
        this.gateFailedAt = null;
        this.finish(at, 'rolled-back');
        break;
      default: {
        const outcome = END_EVENTS[e.type];
        if (outcome) this.finish(at, outcome);
      }
    }
    return this.phase !== before;
  }

  /** The command stopped with an error: the ledger keeps the rollout in its phase (the gauge says which). */
  interrupted(at: number): void {
    if (this.startedAt === null || this.ended) return;
    this.ended = true;
    this.duration.observe({ ...this.labels, outcome: 'interrupted' }, Math.max(0, at - this.startedAt) / 1000);
  }

  private startRollback(reason: RollbackReason, gateFailedAt: number | null): void {
    this.gateFailedAt = gateFailedAt;
    this.rollbacks.inc({ ...this.labels, reason });
    this.setPhase('rolling-back');
  }

  private finish(at: number, outcome: TelemetryOutcome): void {
    if (outcome === 'held') {
      this.setPhase('held');
    } else {
      this.setPhase('idle');
      // Promoted: the candidate now IS the serving version; otherwise it left.
      this.weight.set(this.labels, outcome === 'promoted' ? 100 : 0);
    }
    if (this.startedAt !== null && !this.ended) {
      this.duration.observe({ ...this.labels, outcome }, Math.max(0, at - this.startedAt) / 1000);
    }
    this.ended = true;
  }

  private setPhase(phase: TelemetryPhase): void {
    this.phase = phase;
    for (const p of PHASES) this.phaseGauge.set({ ...this.labels, phase: p }, p === phase ? 1 : 0);
  }
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v !== '' ? v : null;
}

function isPhase(v: string | null): v is TelemetryPhase {
  return v !== null && (PHASES as readonly string[]).includes(v);
}
