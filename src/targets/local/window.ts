import { answerReadable, type AnswerComparison } from '../../gates/answers.js';
import type { VersionWindow } from '../../core/ports.js';
import { numericField, parseJson } from './http-util.js';
import { fieldOf } from './serve-spec.js';

/**
 * Pure per-version request history (no I/O, unit-testable): a bounded ring of recent requests and
 * its aggregation into the engine's VersionWindow. Prometheus histograms answer "how was it since
 * the daemon started"; gates need "exactly the requests since the step began", hence this ring.
 */

export type Role = 'live' | 'shadow';

export interface RequestSample {
  /** When the request ended (ms since the epoch); samples are pushed in this order. */
  at: number;
  /** HTTP status the version answered; 502/504 when the router could not reach it. */
  status: number;
  latencyMs: number;
  /** The bundle's numeric answer field (`serve.scoreField`), when present and numeric. */
  score: number | null;
  /** Shadow only: did its answer agree with the live answer? null when not compared. */
  agreed: boolean | null;
  role: Role;
  /** A field the bundle declares could not be read from this (status < 400) answer: see readAnswer. */
  unreadable?: boolean;
  /** Shadow only: why it was not compared — dropped at the comparer's bound, or the comparison failed. */
  uncompared?: 'dropped' | 'failed';
}

const ROLE_SHADOW = 1;
const AGREED = 2;
const DISAGREED = 4;
const UNREADABLE = 8;
const DROPPED = 16;
const FAILED = 32;

/** The fields a bundle declares in its answers (serve.scoreField / agreementField). */
export interface AnswerFields {
  scoreField?: string | undefined;
  agreementField?: string | undefined;
  /** A richer comparison (serve.agreement): an answer without what it reads is unreadable too. */
  agreement?: AnswerComparison | undefined;
}

/**
 * What one answer's body (a bounded copy: null when it was too large to keep) says, for a bundle
 * that declares fields: the parsed answer, its score, and whether a declared field could not be
 * read (not JSON, or the field missing / not a number) — an answer the gates cannot judge, which
 * must count against the version rather than pass unseen. Shared by the local router and the
 * Kubernetes meter.
 */
export function readAnswer(chunks: Buffer[] | null, fields: AnswerFields | undefined): { answer: unknown; score: number | null; unreadable: boolean } {
  const answer = parseJson(chunks);
  const declared = fields?.scoreField !== undefined || fields?.agreementField !== undefined || fields?.agreement !== undefined;
  // Too large to keep a copy of: unknown, not unreadable.
  if (!declared || chunks === null) return { answer, score: numericField(answer, fields?.scoreField), unreadable: false };
  const score = numericField(answer, fields?.scoreField);
  const unreadable =
    answer === undefined || (fields?.scoreField !== undefined && score === null) || (fields?.agreementField !== undefined && fieldOf(answer, fields.agreementField) === undefined) ||
    (fields?.agreement !== undefined && !answerReadable(fields.agreement, answer));
  return { answer, score, unreadable };
}

/**
 * A fixed-capacity ring in struct-of-arrays form: 100 000 samples cost ~2.7 MB per version and no
 * garbage per request, so a long bake at high rps cannot grow the daemon without bound.
 */
export class SampleRing {
  private readonly at: Float64Array;
  private readonly latency: Float64Array;
  private readonly score: Float64Array;
  private readonly status: Uint16Array;
  private readonly flags: Uint8Array;
  private next = 0;
  private count = 0;

  constructor(readonly capacity = 100_000) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`ring capacity must be a positive integer, got ${capacity}`);
    this.at = new Float64Array(capacity);
    this.latency = new Float64Array(capacity);
    this.score = new Float64Array(capacity);
    this.status = new Uint16Array(capacity);
    this.flags = new Uint8Array(capacity);
  }

  get size(): number {
    return this.count;
  }

  push(s: RequestSample): void {
    const i = this.next;
    this.at[i] = s.at;
    this.latency[i] = s.latencyMs;
    this.score[i] = s.score ?? Number.NaN;
    this.status[i] = s.status;
    this.flags[i] = (s.role === 'shadow' ? ROLE_SHADOW : 0) | (s.agreed === true ? AGREED : s.agreed === false ? DISAGREED : 0) | (s.unreadable ? UNREADABLE : 0) | (s.uncompared === 'dropped' ? DROPPED : s.uncompared === 'failed' ? FAILED : 0);
    this.next = (i + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
  }

  /** Samples from newest to oldest. */
  *newestFirst(): Generator<RequestSample> {
    for (let k = 0; k < this.count; k++) {
      const i = (this.next - 1 - k + this.capacity) % this.capacity;
      const f = this.flags[i]!;
      const score = this.score[i]!;
      yield {
        at: this.at[i]!,
        status: this.status[i]!,
        latencyMs: this.latency[i]!,
        score: Number.isNaN(score) ? null : score,
        agreed: f & AGREED ? true : f & DISAGREED ? false : null,
        role: f & ROLE_SHADOW ? 'shadow' : 'live',
        unreadable: (f & UNREADABLE) !== 0,
        ...(f & DROPPED ? { uncompared: 'dropped' as const } : f & FAILED ? { uncompared: 'failed' as const } : {}),
      };
    }
  }

  /** True when the ring has dropped samples at or after `sinceMs` (the window is then the newest `capacity` only). */
  lostSince(sinceMs: number): boolean {
    if (this.count < this.capacity) return false;
    return this.at[this.next]! >= sinceMs; // the oldest kept sample is inside the window: older ones were dropped
  }
}

/** 5xx answers and failed connections count as errors (the contract of VersionWindow). */
export function isError(status: number): boolean {
  return status >= 500 || status === 0;
}

export interface LocalWindow extends VersionWindow {
  /** True when the ring overflowed inside the window: the numbers cover its newest `capacity` requests only. */
  truncated: boolean;
}

/** Aggregate the requests that ended in [sinceMs, nowMs]. */
export function windowOf(ring: SampleRing | undefined, sinceMs: number, nowMs: number): LocalWindow {
  const w: LocalWindow = { requests: 0, errors: 0, latenciesMs: [], scores: [], shadowCompared: 0, shadowAgreed: 0, unreadable: 0, truncated: false };
  if (!ring) return w;
  for (const s of ring.newestFirst()) {
    if (s.at > nowMs) continue;
    if (s.at < sinceMs) break; // pushed in end-time order: everything older is outside too
    w.requests++;
    if (isError(s.status)) w.errors++;
    else if (s.unreadable && s.status < 400) w.unreadable!++;
    w.latenciesMs.push(s.latencyMs);
    if (s.score !== null && s.status < 400) w.scores.push(s.score);
    if (s.agreed !== null) {
      w.shadowCompared++;
      if (s.agreed) w.shadowAgreed++;
    }
    // Only samples that say so (the Kubernetes meter's comparisons): absent otherwise.
    if (s.uncompared === 'dropped') w.shadowDropped = (w.shadowDropped ?? 0) + 1;
    if (s.uncompared === 'failed') w.shadowFailed = (w.shadowFailed ?? 0) + 1;
  }
  // Oldest first reads naturally and matches the order requests happened in.
  w.latenciesMs.reverse();
  w.scores.reverse();
  w.truncated = ring.lostSince(sinceMs);
  return w;
}

/** The q-quantile (0..1) of ascending-sorted values by the nearest-rank method; NaN when empty. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}
