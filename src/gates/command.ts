import { spawn } from 'node:child_process';
import type { MetricSource } from '../core/ports.js';
import { errorMessage, fmt } from './compare.js';
import type { GateContext, GateEvaluator } from './contracts.js';
import type { GatePhase, GateResult, CommandGate } from '../core/gates.js';
import { CHECK_VALUES, cannotYet, checkValues, failedToMeasure, judged, redact, resolveEnvRefs, tail, validateExternal } from './external.js';

/**
 * kind: command — the user's own check as a process (Argo Rollouts' Job provider, without a
 * cluster): an eval harness, an LLM-as-judge script.
 *
 *   - name: eval-accuracy
 *     kind: command
 *     command: [python, eval.py]        # argv, run from the current directory; never through a shell
 *     env: {JUDGE_TOKEN: {fromEnv: OPENAI_API_KEY}}
 *     timeout: 2m
 *     min: 0.92
 *
 * The command runs with modelctl's environment plus `env`, and MODELCTL_MODEL,
 * MODELCTL_CANDIDATE_VERSION, MODELCTL_STABLE_VERSION, MODELCTL_CANDIDATE_URL, MODELCTL_STABLE_URL
 * (each only when known). Its stdout is the measurement: `{"value": 0.93}` (the whole of stdout, or
 * its last line, so a script may print progress before it), judged by max/min; logs belong on
 * stderr. A gate without limits is judged by the exit code alone (0 pass, anything else fail), and
 * its stdout must then be empty or such a value.
 *
 * It is an error, never a pass: a command that cannot start, is killed by a signal, outlives its
 * timeout (its whole process group gets SIGTERM, then SIGKILL), prints more than MAX_OUTPUT_BYTES
 * or prints something that is not a value; and, for a gate with limits, one that exits non-zero or
 * prints no value.
 */

export const DEFAULT_COMMAND_TIMEOUT_MS = 60_000;
export const MAX_OUTPUT_BYTES = 1024 * 1024;
/** SIGTERM → SIGKILL delay: long enough for a script to flush and exit, short next to any timeout. */
export const KILL_GRACE_MS = 2000;
const STDERR_KEPT = 64 * 1024;

export interface RunResult {
  /** Exit code; null when it ended by a signal, or never started. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Why the run is no measurement at all: timeout, output too large, could not start. */
  failure?: string;
}

/** Run `argv` in its own process group, bounded in time and output. Never rejects. */
export function runBounded(
  argv: string[],
  opts: { env: NodeJS.ProcessEnv; timeoutMs: number; maxOutputBytes?: number; killGraceMs?: number; cwd?: string; signal?: AbortSignal | undefined },
): Promise<RunResult> {
  const maxOut = opts.maxOutputBytes ?? MAX_OUTPUT_BYTES;
  const grace = opts.killGraceMs ?? KILL_GRACE_MS;
  return new Promise((resolve) => {
    const [cmd, ...args] = argv;
    // "node" is modelctl's own Node, as in serve.command: the same version everywhere.
    const program = cmd === 'node' ? process.execPath : cmd!;
    const child = spawn(program, args, { env: opts.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const out: Buffer[] = [];
    let outBytes = 0;
    let err = '';
    let failure: string | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const killGroup = (signal: NodeJS.Signals) => {
      try {
        // The negative pid is the process group: a shell's or a harness's children go too.
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // ESRCH: the group is gone already.
      }
    };
    const stop = (why: string) => {
      if (failure) return;
      failure = why;
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), grace);
    };
    const timer = setTimeout(() => stop(`no result within ${fmt(opts.timeoutMs / 1000)} s: killed`), opts.timeoutMs);
    const interrupted = () => stop('interrupted: the rollout was stopped, the command killed');
    if (opts.signal?.aborted) interrupted();
    opts.signal?.addEventListener('abort', interrupted, { once: true });
    child.stdout.on('data', (c: Buffer) => {
      outBytes += c.length;
      if (outBytes > maxOut) return stop(`printed more than ${maxOut} bytes on stdout: killed`);
      out.push(c);
    });
    child.stderr.on('data', (c: Buffer) => {
      err = (err + c.toString('utf8')).slice(-STDERR_KEPT);
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      failure ??= `cannot run ${JSON.stringify(cmd)}: ${e.code ?? e.message}${e.code === 'ENOENT' ? ' (not found on PATH)' : ''}`;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      opts.signal?.removeEventListener('abort', interrupted);
      // Whatever the command left behind in its group does not outlive the check.
      killGroup('SIGKILL');
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: err, ...(failure ? { failure } : {}) });
    });
  });
}

/** `{"value": n}` from the whole of stdout or its last non-empty line; undefined when stdout says nothing. */
export function valueFromStdout(stdout: string): { value: number } | { garbage: string } | undefined {
  const text = stdout.trim();
  if (text === '') return undefined;
  const lastLine = text.split('\n').at(-1)!.trim();
  for (const candidate of [text, lastLine]) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(candidate);
    } catch {
      continue;
    }
    const v = (parsed as { value?: unknown } | null)?.value;
    if (typeof v === 'number' && Number.isFinite(v)) return { value: v };
  }
  return { garbage: text };
}

function hasLimits(gate: CommandGate): boolean {
  return gate.max !== undefined || gate.min !== undefined;
}

function describeArgv(argv: string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

export class CommandGateEvaluator implements GateEvaluator<CommandGate> {
  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  validate(gate: CommandGate): string[] {
    const errs = validateExternal(gate, { limitOptional: true });
    if (!gate.command || gate.command.length === 0 || gate.command.some((a) => typeof a !== 'string' || a === '')) {
      errs.push(`gate ${JSON.stringify(gate.name)}: kind command needs command: the argv as a list, e.g. [python, eval.py]`);
    }
    for (const k of Object.keys(gate.env ?? {})) {
      if (Object.values(CHECK_VALUES).includes(k as never)) errs.push(`gate ${JSON.stringify(gate.name)}: env.${k} is set by modelctl itself`);
    }
    return errs;
  }

  phasesOf(): GatePhase[] {
    return ['shadow', 'canary'];
  }

  async evaluate(gate: CommandGate, ctx: GateContext, source: MetricSource): Promise<GateResult> {
    const argv = gate.command ?? [];
    const timeoutMs = gate.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    const query = `command: ${describeArgv(argv)} (timeout ${fmt(timeoutMs / 1000)} s)`;
    let env: NodeJS.ProcessEnv;
    let secrets: string[];
    try {
      const resolved = resolveEnvRefs(gate.env, this.env, 'env');
      secrets = resolved.secrets;
      const values = await checkValues(ctx, source);
      const given: Record<string, string> = {};
      for (const [name, variable] of Object.entries(CHECK_VALUES)) {
        const v = values[name as keyof typeof CHECK_VALUES];
        if (v !== null) given[variable] = v;
      }
      env = { ...this.env, ...resolved.values, ...given };
    } catch (err) {
      return cannotYet(gate, ctx, query, err);
    }
    const run = await runBounded(argv, { env, timeoutMs, signal: ctx.signal });
    const stderr = run.stderr.trim() ? `; stderr: ${redact(tail(run.stderr), secrets)}` : '';
    if (run.failure) return failedToMeasure(gate, ctx, query, `${run.failure}${stderr}`);
    if (run.code === null) return failedToMeasure(gate, ctx, query, `killed by ${run.signal}${stderr}`);

    const printed = valueFromStdout(run.stdout);
    if (printed && 'garbage' in printed) {
      return failedToMeasure(gate, ctx, query, `stdout is not {"value": <number>}: ${JSON.stringify(redact(tail(printed.garbage, 200), secrets))}${stderr}`);
    }
    if (!hasLimits(gate)) {
      // An exit-code check: 0 pass, anything else fail.
      const shown = printed ? `, value ${fmt(printed.value)}` : '';
      return judged(gate, ctx, query, run.code, `exit code ${run.code}${shown}${run.code === 0 ? '' : stderr}`, run.code === 0);
    }
    if (run.code !== 0) return failedToMeasure(gate, ctx, query, `exited with ${run.code} before printing a value${stderr}`);
    if (!printed) return failedToMeasure(gate, ctx, query, `printed no {"value": <number>} on stdout (the gate has limits to judge it by)${stderr}`);
    try {
      return judged(gate, ctx, query, printed.value, 'command exit 0');
    } catch (err) {
      return failedToMeasure(gate, ctx, query, errorMessage(err));
    }
  }
}
