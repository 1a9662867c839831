import type { RolloutEvent } from '../core/events.js';
import { LeftBehind } from '../rollout/left-behind.js';
import { interruptible } from '../core/cleanup.js';

/**
 * Ctrl-C / SIGTERM for a command that drives a rollout of `model` (deploy, rollback --force): the
 * first signal aborts `signal` (the engine aborts the rollout to stable and the command ends with
 * its result, exit 10); a second exits at once saying what is left and how to resolve it — in
 * --json mode also as the one JSON document on stdout. `dispose()` when the rollout is over.
 */
export function rolloutInterruption(model: string, jsonMode: boolean): { signal: AbortSignal; onEvent: (e: RolloutEvent) => void; dispose: () => void } {
  const interrupt = new AbortController();
  const left = new LeftBehind(model);
  const dispose = interruptible({
    onSignal: (signal) => {
      process.stderr.write(`\n${signal}: aborting the rollout of ${model} to stable (send it again to exit at once, leaving the rollout interrupted)\n`);
      interrupt.abort(signal);
    },
    leftBehind: () => left.message(),
    onExit: (signal, code, message) => {
      if (!jsonMode) return;
      const error = { code: 'interrupted', exitCode: code, message: `interrupted again by ${signal} before the rollout of ${model} was aborted`, ...(message ? { hint: message } : {}) };
      process.stdout.write(`${JSON.stringify({ error }, null, 2)}\n`);
    },
  });
  return { signal: interrupt.signal, onEvent: (e) => left.onEvent(e), dispose };
}
