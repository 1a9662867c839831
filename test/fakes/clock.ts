import type { Clock } from '../../src/core/ports.js';

/**
 * Virtual time. `sleep(ms)` returns at once with the clock `ms` later, so an hour-long rollout
 * runs in milliseconds. `at(time, fn)` schedules "another process" to act at a virtual instant:
 * it runs (and is awaited) inside whichever sleep crosses that instant, exactly like a second
 * modelctl acting between two checks of the first.
 */
export class FakeClock implements Clock {
  private t: number;
  private timers: Array<{ at: number; seq: number; fn: () => unknown }> = [];
  private seq = 0;
  /** Every sleep asked for, in order. */
  readonly sleeps: number[] = [];

  constructor(start = Date.UTC(2025, 0, 1, 12, 0, 0)) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  async sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
    await this.advance(ms);
  }

  /** Move time forward, running what was scheduled on the way (in time order). */
  async advance(ms: number): Promise<void> {
    const until = this.t + Math.max(0, ms);
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.timers[0];
      if (!next || next.at > until) break;
      this.timers.shift();
      this.t = Math.max(this.t, next.at);
      await next.fn();
    }
    this.t = until;
    // Let other promise chains (another engine waiting on a fake) make progress.
    await new Promise<void>((r) => setImmediate(r));
  }

  at(time: number, fn: () => unknown): void {
    this.timers.push({ at: time, seq: this.seq++, fn });
  }

  after(ms: number, fn: () => unknown): void {
    this.at(this.t + ms, fn);
  }
}
