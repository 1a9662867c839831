import type { GateEvent, RolloutEvent, RolloutEventType } from '../../core/events.js';
import { annotation, endGroup, group, inertLine, type Annotation } from './commands.js';

/**
 * The rollout view's GitHub Actions mode: the same plain log lines, folded into one log group per
 * phase (`starting 1.2.0`, `shadow 10%`, `canary 20%`, `rolling back`), with annotations for what
 * a reviewer must see: a failed gate (error), a gate that stayed without data or whose query
 * failed, a dry-run gate that would have failed (warnings), an unhealthy stable version (error).
 * Outcomes (promoted, rolled back, held) are annotated by the command from its result.
 * Each annotation is raised once per gate and step: GitHub shows at most 10 of each level per step.
 * Pure: `onEvent` returns the text to write.
 */
export class GithubRolloutLog {
  private openGroup = false;
  private label = 'start';
  private step = 0;
  private readonly raised = new Set<string>();
  private readonly warmedUp = new Set<string>();

  onEvent(e: RolloutEvent, line: string): string {
    let out = '';
    const opens = this.groupTitle(e);
    if (opens !== null) {
      out += this.close() + group(opens);
      this.openGroup = true;
    }
    if (FINAL.has(e.type)) out += this.close();
    out += `${inertLine(line)}\n`;
    for (const a of this.annotations(e)) out += annotation(a);
    if (CLOSES_AFTER.has(e.type)) out += this.close();
    return out;
  }

  /** End the open group, if any (call when the view closes). */
  close(): string {
    if (!this.openGroup) return '';
    this.openGroup = false;
    return endGroup();
  }

  private groupTitle(e: RolloutEvent): string | null {
    switch (e.type) {
      case 'rollout-started':
      case 'rollout-resumed':
        this.label = 'start';
        return `${e.type === 'rollout-resumed' ? 'resuming' : 'starting'} ${str(e.version)}${e.stable ? ` (stable ${str(e.stable)})` : ''}`;
      case 'step-started':
        this.step++;
        this.label = e.phase === 'shadow' ? `shadow ${num(e.mirror)}%` : `canary ${num(e.weight)}%`;
        return this.label;
      case 'rollback-started':
        this.label = 'rollback';
        return `rolling back${e.to ? ` to ${str(e.to)}` : ''}`;
      case 'abort-started':
        this.label = 'abort';
        return 'aborting';
      default:
        return null;
    }
  }

  private annotations(e: RolloutEvent): Annotation[] {
    if (e.type === 'stable-unhealthy') {
      return [{ level: 'error', title: `Stable version ${str(e.version)} is not healthy`, message: `${str(e.version)} failed its health check; trying the next version of the stable set` }];
    }
    if (e.type === 'no-healthy-stable') {
      return [{ level: 'error', title: 'No healthy stable version', message: `none of ${list(e.tried)} passed its health check; traffic stays on ${str(e.servingNow)}` }];
    }
    if (e.type === 'retire-failed') return [{ level: 'warning', title: `Could not stop ${str(e.version)}`, message: str(e.reason) }];
    if (e.type !== 'gate-evaluated' && e.type !== 'gate-failed') return [];
    const gate = str(e.gate);
    const key = `${this.step}\u0000${gate}`;
    const verdict = str(e.verdict);
    if (verdict === 'pass' || verdict === 'fail') this.warmedUp.add(key);
    const once = (kind: string, a: Annotation): Annotation[] => {
      if (this.raised.has(`${key}\u0000${kind}`)) return [];
      this.raised.add(`${key}\u0000${kind}`);
      return [a];
    };
    const where = `(${this.label})`;
    const evidence = measured(e);
    if (verdict === 'fail') {
      if (e.dryRun) return once('dry-run', { level: 'warning', title: `Dry-run gate ${gate} would fail ${where}`, message: `${evidence} — reported only, it does not gate` });
      return once('fail', { level: 'error', title: `Gate ${gate} failed ${where}`, message: evidence });
    }
    if (verdict === 'error') return once('error', { level: 'warning', title: `Gate ${gate}: query error ${where}`, message: str(e.reason) });
    // Inconclusive before the gate's first pass/fail in a step is warm-up (too few samples yet): not news.
    if (verdict === 'inconclusive' && this.warmedUp.has(key) && !e.dryRun) {
      return once('inconclusive', { level: 'warning', title: `Gate ${gate} inconclusive ${where}`, message: evidence });
    }
    return [];
  }
}

/** Outcome events: printed outside any group. */
const FINAL: ReadonlySet<RolloutEventType> = new Set<RolloutEventType>(['promoted', 'rolled-back', 'aborted', 'held', 'shadow-finished']);
/** Events that end their phase's group after being printed. */
const CLOSES_AFTER: ReadonlySet<RolloutEventType> = new Set<RolloutEventType>(['version-ready', 'step-passed', 'shadow-passed', 'step-failed']);

function str(v: unknown): string {
  return v === null || v === undefined ? '-' : String(v);
}

function num(v: unknown): string {
  return typeof v === 'number' ? String(v) : str(v);
}

function list(v: unknown): string {
  return Array.isArray(v) ? v.join(', ') : str(v);
}

/** "0.52 against limit <= 0.05 (120 samples): 62 of 120 requests failed" */
export function measured(e: GateEvent): string {
  const value = typeof e.value === 'number' ? String(Number(e.value.toPrecision(4))) : 'no value';
  const limit = e.limit ? ` against limit ${str(e.limit)}` : '';
  const samples = typeof e.samples === 'number' ? ` (${e.samples} samples)` : '';
  const reason = e.reason ? `: ${str(e.reason)}` : '';
  return `${value}${limit}${samples}${reason}`;
}
