import { noOtherEvent, type RolloutEvent } from '../core/events.js';

/**
 * What a deploy would leave behind if its process died now, followed from its events: said on an
 * immediate exit (a second Ctrl-C) so that nobody is told "nothing was left half-done" while live
 * traffic sits on an unjudged candidate.
 */
export class LeftBehind {
  private state: 'none' | 'recorded' | 'live' | 'restored' | 'ended' = 'none';
  private version: string | null = null;

  constructor(private readonly model: string) {}

  onEvent(e: RolloutEvent): void {
    switch (e.type) {
      case 'rollout-started':
      case 'rollout-resumed':
        this.version = String(e.version);
        // A resumed rollout past 'starting' may already have traffic on the candidate.
        this.state = e.type === 'rollout-resumed' && e.phase !== 'starting' ? 'live' : 'recorded';
        return;
      case 'traffic-applied': {
        if (this.state === 'none' || this.state === 'ended' || this.version === null) return;
        const onCandidate = (e.weights[this.version] ?? 0) > 0 || e.mirror?.version === this.version;
        this.state = onCandidate ? 'live' : this.state === 'recorded' ? 'recorded' : 'restored';
        return;
      }
      case 'promoted':
      case 'rolled-back':
      case 'aborted':
      case 'shadow-finished':
      case 'held':
      case 'start-failed':
        this.state = 'ended';
        return;
      // Listed so that a new event type must be placed here or above (it may change what is left behind).
      case 'already-serving':
      case 'version-deployed':
      case 'version-ready':
      case 'stable-unhealthy':
      case 'retired':
      case 'version-not-ready':
      case 'retire-failed':
      case 'lock-taken-over':
      case 'promote-requested':
      case 'abort-requested':
      case 'gate-evaluated':
      case 'gate-failed':
      case 'step-started':
      case 'step-passed':
      case 'shadow-passed':
      case 'step-failed':
      case 'rollback-started':
      case 'abort-started':
      case 'cascade':
      case 'no-healthy-stable':
      case 'lock-release-failed':
      // The evaluation replay moves no traffic: nothing of it is left behind.
      case 'evaluation-started':
      case 'evaluation-gate':
      case 'evaluation-passed':
      case 'evaluation-failed':
        return;
      default:
        noOtherEvent(e);
    }
  }

  /** undefined when nothing is half-done (no rollout started, or it ended: promoted, restored, held). */
  message(): string | undefined {
    const m = this.model;
    const ref = `${m}@${this.version}`;
    switch (this.state) {
      case 'none':
      case 'ended':
        return undefined;
      case 'recorded':
        return `The rollout of ${ref} is left recorded as interrupted; no traffic reached it. Clear it: modelctl abort ${m}`;
      case 'live':
        return (
          `The rollout of ${ref} is left INTERRUPTED with live traffic on the unjudged candidate. ` +
          `Resolve it now: modelctl abort ${m} (all traffic back on stable), or modelctl deploy ${ref} --resume (continue it). ` +
          `See modelctl status ${m} (from another machine, that works once this process's lock has expired).`
        );
      case 'restored':
        return `All traffic is back on stable, but the rollout of ${ref} is not closed yet. Finish it: modelctl abort ${m}`;
    }
  }
}
