import http from 'node:http';
import { compareAnswers, type AnswerComparison } from '../../gates/answers.js';
import { copyUpTo, parseJson } from '../local/http-util.js';
import { COMPARE_HEADER } from './names.js';

/**
 * Shadow comparison on Kubernetes, done by the candidate's meter. The Gateway mirrors the asked
 * share of live requests to the candidate (RequestMirror percent) and discards the candidate's
 * answer; so the candidate's meter, once its model has answered a mirrored request (Host
 * "…-shadow"), asks the stable version's Service the same request and compares both answers with
 * the bundle's serve.agreement (src/gates/answers.ts, as the local router does). The verdict goes on
 * the candidate's own sample, so it travels in the window (shadowCompared / shadowAgreed) and the
 * shadow-agreement gate judges it unchanged.
 *
 * Why on the candidate and not in the stable pods' meter: nothing runs on the users' path (the
 * stable meter stays a plain pass-through: zero added latency by construction), no pod has to be
 * reconfigured at run time (the stable Service's address is known when the candidate is created,
 * and is in its pod spec), and no new RBAC verb is needed. The price: the stable answer compared is
 * the stable's answer to the same request asked again, not the very bytes the user got — the same
 * for a deterministic model; for a sampling model (LLM at temperature > 0) compare with a mode that
 * tolerates it (labels, text, tolerance). It also costs the stable version one extra request per
 * mirrored request (the shadow share), bounded by `concurrency`.
 *
 * Bounded: at most `concurrency` comparisons in flight (more are dropped, counted), each with a
 * timeout; a request body or answer too large to keep is not compared. A dropped or failed
 * comparison leaves the sample uncompared (never counted as agreeing), as on the local runtime.
 */

export interface CompareTarget {
  /** The stable version's Service (its ClusterIP and port), where the same request is asked again. */
  host: string;
  port: number;
  /** How answers are compared (the candidate bundle's serve.agreement / agreementField). */
  agreement: AnswerComparison;
  concurrency?: number | undefined;
  timeoutMs?: number | undefined;
}

/** The header of the comparison's own request: the stable's meter forwards it without recording it (it is not traffic). */
export { COMPARE_HEADER };

export const DEFAULT_COMPARE_CONCURRENCY = 16;
export const DEFAULT_COMPARE_TIMEOUT_MS = 5_000;

export interface CompareStats {
  compared: number;
  dropped: number;
  failed: number;
}

/** A comparison's outcome: agreed true / false, or null when not compared — and then why, when it was dropped or failed (unreadable answers: no reason). */
export interface Comparison {
  agreed: boolean | null;
  uncompared?: 'dropped' | 'failed';
}

export interface ShadowComparer {
  /** Ask stable and compare (see Comparison). */
  compare(req: { method: string; path: string; headers: http.OutgoingHttpHeaders; body: Buffer }, candidateAnswer: unknown): Promise<Comparison>;
  readonly stats: CompareStats;
  close(): void;
}

export function shadowComparer(t: CompareTarget): ShadowComparer {
  const max = t.concurrency ?? DEFAULT_COMPARE_CONCURRENCY;
  const timeoutMs = t.timeoutMs ?? DEFAULT_COMPARE_TIMEOUT_MS;
  const agent = new http.Agent({ keepAlive: true, maxSockets: max });
  const stats: CompareStats = { compared: 0, dropped: 0, failed: 0 };
  let inFlight = 0;
  const stableAnswer = (req: { method: string; path: string; headers: http.OutgoingHttpHeaders; body: Buffer }): Promise<unknown> =>
    new Promise((resolve) => {
      let done = false;
      const finish = (v: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(v);
      };
      const out = http.request({ host: t.host, port: t.port, method: req.method, path: req.path, headers: { ...req.headers, 'content-length': req.body.length, [COMPARE_HEADER]: '1' }, agent }, (res) => {
        const copy = copyUpTo(res);
        res.on('end', () => finish((res.statusCode ?? 500) < 400 ? parseJson(copy()) : undefined));
        res.on('error', () => finish(undefined));
      });
      const timer = setTimeout(() => {
        out.destroy();
        finish(undefined);
      }, timeoutMs);
      out.on('error', () => finish(undefined));
      out.end(req.body);
    });
  return {
    stats,
    async compare(req, candidateAnswer) {
      if (inFlight >= max) {
        stats.dropped++;
        return { agreed: null, uncompared: 'dropped' };
      }
      inFlight++;
      try {
        const stable = await stableAnswer(req);
        if (stable === undefined) {
          stats.failed++;
          return { agreed: null, uncompared: 'failed' };
        }
        const c = compareAnswers(t.agreement, candidateAnswer, stable, { a: 'candidate', b: 'stable' });
        if (c.outcome === 'unreadable') return { agreed: null };
        stats.compared++;
        return { agreed: c.outcome === 'agree' };
      } finally {
        inFlight--;
      }
    },
    close: () => agent.destroy(),
  };
}
