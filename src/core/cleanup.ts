import { rmSync } from 'node:fs';

/**
 * What happens on SIGINT/SIGTERM (Ctrl-C, a cancelled CI job: the GitHub runner sends SIGINT, then
 * SIGTERM ~7.5 s later, then kills what is left).
 *
 * Temporary paths to remove if the process is interrupted: normal code paths remove their own temp
 * files in `finally` blocks; an exit on a signal skips those, so this registry is the safety net
 * that keeps "nothing half-written" true. (SIGKILL cannot be caught: what it leaves is never visible
 * — temp names, no refs — and is swept by the next run's own cleanup or the OS temp cleaner.)
 *
 * A long operation that can stop cleanly (a deploy aborts its rollout to stable) registers an
 * `Interruptible`: the FIRST signal is handed to it and the process keeps running while it winds
 * down; a SECOND signal (or a first one when nothing is registered) exits at once with 128+signal,
 * saying what was left behind and how to resolve it — never "nothing was left half-done" while a
 * registered operation says otherwise.
 */
export interface Interruptible {
  /** The first signal: start stopping cleanly (the process exits when the operation is done). */
  onSignal(signal: NodeJS.Signals): void;
  /** On an immediate exit: what is left half-done and how to resolve it (undefined: nothing). */
  leftBehind(): string | undefined;
  /** On an immediate exit, after the message: last words (e.g. the --json error document on stdout). */
  onExit?(signal: NodeJS.Signals, code: number, left: string | undefined): void;
}

const SIGNAL_EXIT: Readonly<Record<string, number>> = { SIGINT: 130, SIGTERM: 143 };

const paths = new Set<string>();
const interruptibles = new Set<Interruptible>();
let installed = false;
let first: NodeJS.Signals | null = null;

export function removeOnInterrupt(p: string): () => void {
  install();
  paths.add(p);
  return () => paths.delete(p);
}

/** Hand the first SIGINT/SIGTERM to `op` (see above); returns the function that unregisters it. */
export function interruptible(op: Interruptible): () => void {
  install();
  interruptibles.add(op);
  return () => interruptibles.delete(op);
}

/** The signal already handed to the registered operations (null: none yet). */
export function firstSignal(): NodeJS.Signals | null {
  return first;
}

function install(): void {
  if (installed) return;
  installed = true;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => onSignal(signal));
}

function onSignal(signal: NodeJS.Signals): void {
  if (first === null && interruptibles.size > 0) {
    first = signal;
    for (const op of interruptibles) op.onSignal(signal);
    return;
  }
  const code = SIGNAL_EXIT[signal] ?? 130;
  for (const p of paths) rmSync(p, { recursive: true, force: true });
  const left = [...interruptibles].map((op) => op.leftBehind()).filter((m): m is string => m !== undefined);
  const again = first !== null ? ' again' : '';
  if (left.length > 0) process.stderr.write(`\nInterrupted${again} (${signal}), exiting at once. ${left.join('\n')}\n`);
  else process.stderr.write(`\nInterrupted${again} (${signal}); nothing was left half-written.\n`);
  for (const op of interruptibles) op.onExit?.(signal, code, left[0]);
  process.exit(code);
}
