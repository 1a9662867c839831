import type { RolloutPlan } from '../core/model.js';
import { noOtherEvent, type RolloutEvent } from '../core/events.js';
import { gateValueWords } from '../rollout/candidate-ready.js';
import { githubActive } from './github/commands.js';
import { GithubRolloutLog } from './github/rollout-log.js';

/**
 * How a rollout looks while it runs (stderr, so `--json` stdout stays one document).
 * - CI / pipes: one plain line per event, timestamped from the start.
 * - TTY: the same log lines scroll above a live block that is redrawn in place every second:
 *   phase and weight, time left in the bake, and each gate's latest value against its limit.
 */
export interface RolloutView {
  onEvent(e: RolloutEvent): void;
  close(): void;
}

interface GateLine {
  value: unknown;
  limit: unknown;
  verdict: unknown;
  samples: unknown;
  reason: unknown;
}

function fmt(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toPrecision(3);
  return v === null || v === undefined ? '-' : String(v);
}

/** One human line for an event (shared by both modes). */
export function describeEvent(e: RolloutEvent): string {
  switch (e.type) {
    case 'rollout-started':
    case 'rollout-resumed':
      return `${e.type === 'rollout-resumed' ? 'resuming' : 'starting'} ${fmt(e.version)}${e.stable ? ` (stable: ${fmt(e.stable)})` : ''}`;
    case 'version-deployed':
      return `${fmt(e.version)} started`;
    case 'version-ready':
      return `${fmt(e.version)} is ready`;
    case 'step-started':
      return e.phase === 'shadow' ? `shadow: mirroring ${fmt(e.mirror)}% of requests` : `canary step ${Number(e.index) + 1}: ${fmt(e.weight)}% of traffic`;
    case 'traffic-applied':
      return `traffic now ${Object.entries(e.weights ?? {})
        .map(([v, w]) => `${v} ${w}%`)
        .join(', ')}${e.mirror ? ` (+ mirror ${e.mirror.percent}% → ${e.mirror.version})` : ''}`;
    case 'gate-evaluated':
    case 'gate-failed': {
      const words = gateValueWords(e.gate, e.value);
      if (words) return `gate ${fmt(e.gate)}: ${words} → ${fmt(e.verdict)}${e.verdict !== 'pass' && e.reason ? `: ${fmt(e.reason)}` : ''}`;
      if (e.value === null || e.value === undefined) return `gate ${fmt(e.gate)} → ${fmt(e.verdict)}${e.reason ? `: ${fmt(e.reason)}` : ''}`;
      return `gate ${fmt(e.gate)}: ${fmt(e.value)} (limit ${fmt(e.limit)}, ${fmt(e.samples)} samples) → ${fmt(e.verdict)}${e.verdict !== 'pass' && e.reason ? `: ${fmt(e.reason)}` : ''}${e.dryRun ? ' [dry-run]' : ''}`;
    }
    case 'step-passed':
      return `step ${Number(e.index) + 1} passed`;
    case 'step-failed':
      return `step ${Number(e.index) + 1} FAILED: ${fmt(e.reason)}`;
    case 'promoted':
      return `${fmt(e.version)} promoted; stable set ${e.stableSet?.join(', ') ?? ''}`;
    case 'rollback-started':
      return `rolling back${e.to ? ` to ${fmt(e.to)}` : ''}${e.reason ? `: ${fmt(e.reason)}` : ''}`;
    case 'rolled-back':
      return `rolled back: all traffic on ${fmt(e.to)}${e.healthy === false ? ' (NOT healthy)' : ''}`;
    case 'held':
      return `HELD for a human: ${fmt(e.reason)} (then \`modelctl promote\` or \`modelctl abort\`)`;
    case 'shadow-passed':
      return 'shadow phase passed';
    case 'shadow-finished':
      return `shadow-only rollout done: the candidate stopped, all traffic on ${fmt(e.to)}`;
    case 'version-not-ready':
      return `${fmt(e.version)} did NOT become ready: ${fmt(e.reason)}`;
    case 'start-failed':
      return `${fmt(e.version)} could not be started, nothing changed: ${fmt(e.reason)}`;
    case 'abort-started':
      return `aborting: ${fmt(e.reason)}`;
    case 'aborted':
      return `aborted: all traffic on ${e.to ? fmt(e.to) : 'no version'}`;
    case 'already-serving':
      return `${fmt(e.version)} is already serving: traffic re-applied`;
    case 'cascade':
      return `${fmt(e.from)} is not healthy: trying ${fmt(e.to)}`;
    case 'stable-unhealthy':
      return `${fmt(e.version)} is NOT healthy`;
    case 'no-healthy-stable':
      return `no healthy stable version (tried ${(e.tried ?? []).join(', ')}): all traffic back on ${fmt(e.servingNow)}`;
    case 'retired':
      return `${fmt(e.version)} stopped (left the stable set)`;
    case 'retire-failed':
      return `could not stop ${fmt(e.version)} (housekeeping, the result stands): ${fmt(e.reason)}`;
    case 'lock-taken-over':
      return `took over the lock${e.previous?.holder ? ` of ${e.previous.holder}` : ''} (its holder is gone or its lock expired)`;
    case 'lock-release-failed':
      return `could not free the lock (it expires by itself): ${fmt(e.reason)}`;
    case 'evaluation-started':
      return `evaluation replay: ${fmt(e.cases)} cases to ${(e.versions as string[] | undefined)?.join(' and ') ?? '-'} (${fmt(e.concurrency)} at once, ${fmt(e.timeoutMs)} ms timeout each; not live traffic)`;
    case 'evaluation-gate':
      return `evaluation gate ${fmt(e.gate)}: ${fmt(e.verdict)} ${fmt(e.metric)} ${fmt(e.value)} (limit ${fmt(e.limit)}, ${fmt(e.samples)} cases)${e.dryRun ? ' [dry run]' : ''}: ${fmt(e.reason)}`;
    case 'evaluation-passed':
      return `evaluation replay passed in ${fmt(e.ms)} ms (accuracy ${fmt(e.accuracy)}, agreement ${fmt(e.agreement)})`;
    case 'evaluation-failed': {
      const worst = (e.worst as Array<{ file: string; line: number; request: string; candidate: string; stable: string | null; expected: string | null; why: string }> | undefined) ?? [];
      const lines = worst.map((w) => `\n    ${w.file}:${w.line} ${w.why}\n      request ${w.request}\n      candidate ${w.candidate}${w.stable !== null ? `\n      stable ${w.stable}` : ''}${w.expected !== null ? `\n      expected ${w.expected}` : ''}`);
      return `${fmt(e.reason)}${lines.length ? `\n  worst disagreements:${lines.join('')}` : ''}`;
    }
    case 'promote-requested':
    case 'abort-requested':
      return `${e.type === 'promote-requested' ? 'promotion' : 'abort'} requested by ${fmt(e.by)}`;
    default:
      // Every type is listed above (a new one fails to compile here); one from another modelctl's JSON is printed as it is.
      noOtherEvent(e);
      return describeUnknown(e);
  }
}

function describeUnknown(e: object): string {
  const fields = Object.entries(e);
  const type = fields.find(([k]) => k === 'type')?.[1];
  const extra = fields
    .filter(([k, v]) => k !== 'at' && k !== 'type' && v !== undefined && typeof v !== 'object')
    .map(([k, v]) => `${k}=${fmt(v)}`)
    .join(' ');
  return `${fmt(type)}${extra ? ` ${extra}` : ''}`;
}

export function createRolloutView(opts: { stream?: NodeJS.WriteStream; plan?: RolloutPlan; now?: () => number; github?: boolean }): RolloutView {
  const stream = opts.stream ?? process.stderr;
  const now = opts.now ?? Date.now;
  let startedAt: number | undefined;
  const stamp = (at: number) => {
    startedAt ??= at;
    return `[+${((at - startedAt) / 1000).toFixed(1).padStart(5)}s]`;
  };
  // GitHub Actions: the plain lines, folded into a log group per phase, with annotations.
  if (opts.github ?? githubActive()) {
    const log = new GithubRolloutLog();
    return {
      onEvent: (e) => stream.write(log.onEvent(e, `${stamp(e.at)} ${describeEvent(e)}`)),
      close: () => {
        const end = log.close();
        if (end) stream.write(end);
      },
    };
  }
  if (!stream.isTTY) {
    return {
      onEvent: (e) => stream.write(`${stamp(e.at)} ${describeEvent(e)}\n`),
      close: () => {},
    };
  }

  let phase = 'starting';
  let weight = 0;
  let stepEndsAt: number | null = null;
  const gates = new Map<string, GateLine>();
  let blockLines = 0;
  const render = (logLine?: string) => {
    let out = blockLines > 0 ? `\x1b[${blockLines}F\x1b[J` : '';
    if (logLine) out += `${logLine}\n`;
    const left = stepEndsAt === null ? '' : ` · ${Math.max(0, Math.ceil((stepEndsAt - now()) / 1000))}s left in this step`;
    const block = [`\x1b[1m${phase}${phase === 'canary' ? ` ${weight}%` : ''}\x1b[0m${left}`];
    for (const [name, g] of gates) {
      const mark = g.verdict === 'pass' ? '\x1b[32m✔\x1b[0m' : g.verdict === 'fail' ? '\x1b[31m✖\x1b[0m' : '\x1b[33m?\x1b[0m';
      const words = gateValueWords(name, g.value);
      block.push(words ? `  ${mark} ${name.padEnd(18)} ${words.padStart(8)}` : `  ${mark} ${name.padEnd(18)} ${fmt(g.value).padStart(8)}  limit ${fmt(g.limit)}  (${fmt(g.samples)} samples)`);
    }
    out += `${block.join('\n')}\n`;
    blockLines = block.length;
    stream.write(out);
  };
  const timer = setInterval(() => render(), 1000);
  timer.unref();
  return {
    onEvent(e) {
      if (e.type === 'step-started') {
        phase = String(e.phase);
        weight = Number(e.weight ?? 0);
        const bake = phase === 'shadow' ? opts.plan?.shadowDurationMs : weight === 100 ? 0 : opts.plan?.intervalMs;
        stepEndsAt = bake ? e.at + bake : null;
        gates.clear();
      } else if (e.type === 'gate-evaluated' || e.type === 'gate-failed') {
        gates.set(String(e.gate), { value: e.value, limit: e.limit, verdict: e.verdict, samples: e.samples, reason: e.reason });
      } else if (['promoted', 'rolled-back', 'held', 'rollback-started'].includes(e.type)) {
        phase = e.type;
        stepEndsAt = null;
      }
      // Gate evaluations update the live block; everything else is also logged above it.
      render(e.type === 'gate-evaluated' ? undefined : `${stamp(e.at)} ${describeEvent(e)}`);
    },
    close() {
      clearInterval(timer);
    },
  };
}
