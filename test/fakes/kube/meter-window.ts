import type { VersionWindow } from '../../../src/core/ports.js';

/**
 * What a pod's metering sidecar reports to the fake's pod proxy: 200 requests, errors at
 * `errorRate`, steady latencies of 20–29 ms (the meter's plain /v1/window form). Shared by the test
 * world and the bench so both pods "measure" alike.
 */
export function meterWindow(errorRate: number, opts: { agreement?: number } = {}): VersionWindow & { truncated: boolean; now: number } {
  const requests = 200;
  // A candidate's meter in shadow compares every mirrored answer with stable's (shadow-compare.ts).
  const compared = opts.agreement === undefined ? 0 : requests;
  return {
    requests,
    errors: Math.round(requests * errorRate),
    latenciesMs: Array.from({ length: requests }, (_, i) => 20 + (i % 10)),
    scores: [],
    shadowCompared: compared,
    shadowAgreed: Math.round(compared * (opts.agreement ?? 0)),
    truncated: false,
    now: Date.now(),
  };
}
