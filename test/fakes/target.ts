import type { Clock, Target } from '../../src/core/ports.js';
import type { TrafficSplit, VersionRef } from '../../src/core/model.js';

export type TargetMethod = 'deploy' | 'waitReady' | 'healthy' | 'applyTraffic' | 'retire';

export interface TargetCall {
  /** 1-based, across all methods: the N of "crash at call N". */
  n: number;
  method: TargetMethod;
  model: string;
  version: string | null;
  split: TrafficSplit | null;
  at: number;
  /** This call was the injected crash: it had no effect. */
  crashed: boolean;
}

/**
 * A Target that records every call and the split it applied, runs nothing, and fails on demand:
 * a version can be made never-ready or unhealthy, and call N can be made to throw (an exception
 * mid-rollout), hang forever (`kill -9`: nothing after it ever runs) or pause until released.
 * It also refuses what a real router would: routing to a version that is not running.
 */
export class FakeTarget implements Target {
  readonly name = 'fake';
  readonly calls: TargetCall[] = [];
  /** Versions running, per model. */
  private readonly runningSet = new Map<string, Set<string>>();
  private readonly current = new Map<string, TrafficSplit>();
  /** version → why waitReady rejects. */
  readonly notReady = new Map<string, string>();
  readonly unhealthy = new Set<string>();
  readonly retireFails = new Set<string>();
  /** Inject a failure at the N-th call (counting from now on, see `failAt`). */
  private fault: { n: number; mode: 'throw' | 'hang' | 'pause' } | null = null;
  private unpause: (() => void) | null = null;
  /** Called before a call takes effect (tests assert the ledger was written first). */
  beforeCall: ((call: TargetCall) => void) | null = null;

  constructor(private readonly clock: Clock) {}

  /** Make the N-th call from now on (1 = the next call) throw, hang forever, or pause until `resume()`. */
  failAt(n: number, mode: 'throw' | 'hang' | 'pause' = 'throw'): void {
    this.fault = { n: this.calls.length + n, mode };
  }

  resume(): void {
    this.unpause?.();
  }

  running(model: string): string[] {
    return [...(this.runningSet.get(model) ?? [])].sort();
  }

  traffic(model: string): TrafficSplit {
    return this.current.get(model) ?? { weights: {}, mirror: null };
  }

  /** The splits applied to `model`, in order (crashed attempts excluded). */
  splits(model: string): TrafficSplit[] {
    return this.calls.filter((c) => c.method === 'applyTraffic' && c.model === model && !c.crashed).map((c) => c.split!);
  }

  callsOf(method: TargetMethod, model?: string): TargetCall[] {
    return this.calls.filter((c) => c.method === method && (model === undefined || c.model === model));
  }

  async deploy(ref: VersionRef): Promise<void> {
    await this.enter('deploy', ref.model, ref.version);
    this.set(ref.model).add(ref.version);
  }

  async waitReady(model: string, version: string, timeoutMs: number): Promise<void> {
    await this.enter('waitReady', model, version);
    const why = this.notReady.get(version);
    if (why !== undefined) {
      await this.clock.sleep(timeoutMs);
      throw new Error(why);
    }
    if (!this.set(model).has(version)) throw new Error(`${model}@${version} is not running`);
  }

  async healthy(model: string, version: string): Promise<boolean> {
    await this.enter('healthy', model, version);
    return this.set(model).has(version) && !this.unhealthy.has(version);
  }

  async applyTraffic(model: string, split: TrafficSplit): Promise<void> {
    await this.enter('applyTraffic', model, null, split);
    const targets = [...Object.entries(split.weights).filter(([, w]) => w > 0).map(([v]) => v), ...(split.mirror ? [split.mirror.version] : [])];
    for (const v of targets) {
      if (!this.set(model).has(v)) throw new Error(`cannot route to ${model}@${v}: it is not running`);
    }
    const sum = Object.values(split.weights).reduce((a, b) => a + b, 0);
    if (Object.keys(split.weights).length > 0 && sum !== 100) throw new Error(`weights sum to ${sum}`);
    this.current.set(model, structuredClone(split));
  }

  async retire(model: string, version: string): Promise<void> {
    await this.enter('retire', model, version);
    if (this.retireFails.has(version)) throw new Error(`could not stop ${version}`);
    const split = this.traffic(model);
    if ((split.weights[version] ?? 0) > 0 || split.mirror?.version === version) throw new Error(`retiring ${version} while it has traffic`);
    this.set(model).delete(version);
  }

  private set(model: string): Set<string> {
    let s = this.runningSet.get(model);
    if (!s) this.runningSet.set(model, (s = new Set()));
    return s;
  }

  private async enter(method: TargetMethod, model: string, version: string | null, split: TrafficSplit | null = null): Promise<void> {
    const call: TargetCall = { n: this.calls.length + 1, method, model, version, split: split && structuredClone(split), at: this.clock.now(), crashed: false };
    this.calls.push(call);
    if (this.fault && this.fault.n === call.n) {
      const { mode } = this.fault;
      this.fault = null;
      call.crashed = mode !== 'pause';
      if (mode === 'throw') throw new Error(`injected failure at target call ${call.n} (${method})`);
      if (mode === 'hang') await new Promise<never>(() => {});
      await new Promise<void>((r) => (this.unpause = r));
    }
    this.beforeCall?.(call);
  }
}
