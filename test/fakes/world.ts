import { createHash } from 'node:crypto';
import type { GateEvaluator } from '../../src/gates/contracts.js';
import type { GateSpec } from '../../src/core/gates.js';
import { MemoryLedgerStore } from '../../src/ledger/memory-store.js';
import type { LedgerStore, ModelLedger } from '../../src/ledger/model.js';
import type { RolloutPlan, TrafficSplit, VersionRef } from '../../src/core/model.js';
import { RolloutEngine } from '../../src/rollout/engine.js';
import { type RolloutEvent } from '../../src/core/events.js';
import { FakeClock } from './clock.js';
import { FakeMetricSource } from './metrics.js';
import { FakeTarget, type TargetCall } from './target.js';

/**
 * One simulated world — a clock, a target, a metric source and a ledger store — shared by any
 * number of engines ("processes") with different holders. Every Target call is checked against
 * the ledger at the moment it is made, so each test also proves the write-ahead rule:
 * traffic is recorded before it moves, a version is recorded before it is started, and a
 * version is retired only once the ledger no longer counts on it.
 */

export const MODEL = 'sentiment';
export const HOUR = 3_600_000;

export function ref(version: string, model = MODEL): VersionRef {
  return { model, version, digest: `sha256:${createHash('sha256').update(`${model}@${version}`).digest('hex')}` };
}

export const ERROR_GATE: GateSpec = { name: 'error-rate', metric: 'error-rate', max: 0.05 };

export function plan(over: Partial<RolloutPlan> = {}): RolloutPlan {
  return {
    steps: [5, 25, 50, 100],
    intervalMs: 60_000,
    checkEveryMs: 20_000,
    shadowPercent: 0,
    shadowDurationMs: 0,
    shadowOnly: false,
    gates: [ERROR_GATE],
    readyTimeoutMs: 30_000,
    ...over,
  };
}

/** "1.0.0:95 1.1.0:5" or "1.0.0:100 mirror 1.1.0:10" — splits in one readable string. */
export function show(split: TrafficSplit): string {
  const w = Object.entries(split.weights)
    .map(([v, p]) => `${v}:${p}`)
    .join(' ');
  return split.mirror ? `${w} mirror ${split.mirror.version}:${split.mirror.percent}` : w || '(none)';
}

export interface WorldOptions {
  /** Wrap the memory store (contention, failures). */
  wrapStore?: (inner: MemoryLedgerStore) => LedgerStore;
  lockTtlMs?: number;
  evaluator?: GateEvaluator;
  totalRps?: number;
}

export class World {
  readonly clock = new FakeClock();
  readonly target = new FakeTarget(this.clock);
  readonly metrics: FakeMetricSource;
  readonly memory = new MemoryLedgerStore('fake');
  readonly store: LedgerStore;
  /** Broken write-ahead rules, in words; tests assert it stays empty. */
  readonly violations: string[] = [];
  readonly events: RolloutEvent[] = [];

  constructor(private readonly opts: WorldOptions = {}) {
    this.metrics = new FakeMetricSource(this.clock, this.target, opts.totalRps ?? 20);
    this.store = opts.wrapStore ? opts.wrapStore(this.memory) : this.memory;
    this.target.beforeCall = (call) => this.checkWriteAhead(call);
  }

  /** An engine acting as `holder` (a separate modelctl process sharing this world). */
  engine(holder = 'alice', pid = 100): RolloutEngine {
    return new RolloutEngine({
      target: this.target,
      metrics: this.metrics,
      ledger: this.store,
      clock: this.clock,
      holder: { holder, pid, host: 'laptop' },
      ...(this.opts.evaluator ? { evaluator: this.opts.evaluator } : {}),
      ...(this.opts.lockTtlMs ? { lockTtlMs: this.opts.lockTtlMs } : {}),
      onEvent: (e) => this.events.push(e),
    });
  }

  ledger(model = MODEL): ModelLedger {
    const doc = this.memory.peek(model);
    if (!doc) throw new Error(`no ledger for ${model}`);
    return doc;
  }

  release(version: string, model = MODEL) {
    const r = this.ledger(model).releases.findLast((x) => x.version === version);
    if (!r) throw new Error(`no release ${version}`);
    return r;
  }

  /** Splits applied since call index `mark` (see `mark()`), as readable strings. */
  splitsSince(mark: number, model = MODEL): string[] {
    return this.target.calls
      .slice(mark)
      .filter((c) => c.method === 'applyTraffic' && c.model === model && !c.crashed)
      .map((c) => show(c.split!));
  }

  /** Let other "processes" (pending promise chains) run until `cond` holds. */
  async until(cond: () => boolean, maxTurns = 10_000): Promise<void> {
    for (let i = 0; i < maxTurns; i++) {
      if (cond()) return;
      await new Promise<void>((r) => setImmediate(r));
    }
    throw new Error('until(): condition never held');
  }

  mark(): number {
    return this.target.calls.length;
  }

  /** Make `versions` the stable set the quick way (a first deploy, then one judged 50% step each: no plan promotes unjudged). */
  async seed(...versions: string[]): Promise<void> {
    const e = this.engine('seeder', 1);
    for (const v of versions) {
      const r = await e.deploy(ref(v), plan({ steps: [50, 100], intervalMs: 20_000, checkEveryMs: 20_000 }));
      if (r.outcome !== 'promoted') throw new Error(`seeding ${v}: ${r.outcome} (${r.reason})`);
    }
  }

  private checkWriteAhead(call: TargetCall): void {
    const doc = this.memory.peek(call.model);
    const where = `call ${call.n} ${call.method}(${call.version ?? show(call.split!)})`;
    if (!doc) return void this.violations.push(`${where}: no ledger yet`);
    if (call.method === 'applyTraffic' && show(doc.traffic) !== show(call.split!)) {
      this.violations.push(`${where}: ledger records ${show(doc.traffic)}`);
    }
    // Starting a version is recorded first: either a rollout of it, or it is a (warm) stable version being reconciled.
    const recorded = doc.releases.some((r) => r.version === call.version && r.state === 'deploying') || doc.stableSet.includes(call.version!);
    if (call.method === 'deploy' && !recorded) {
      this.violations.push(`${where}: no release of it is recorded as deploying or stable`);
    }
    if (call.method === 'retire') {
      const r = doc.releases.findLast((x) => x.version === call.version);
      if (doc.stableSet.includes(call.version!)) this.violations.push(`${where}: still in the stable set ${doc.stableSet.join(',')}`);
      if (!r || !['retired', 'failed', 'aborted', 'shadowed'].includes(r.state)) this.violations.push(`${where}: its release is ${r?.state}`);
      if (doc.rollout?.version === call.version && doc.rollout.phase !== 'rolling-back') this.violations.push(`${where}: its rollout is still ${doc.rollout.phase}`);
    }
  }
}
