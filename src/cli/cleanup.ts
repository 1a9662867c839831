import { rmSync } from 'node:fs';

/**
 * Temporary paths to remove if the process is interrupted (Ctrl-C, SIGTERM from CI or a
 * supervisor). Normal code paths remove their own temp files in `finally` blocks; signals skip
 * those, so this registry is the safety net that keeps "nothing half-written" true on a Ctrl-C.
 * (SIGKILL cannot be caught: what it leaves is never visible — temp names, no refs — and is swept
 * by the next run's own cleanup or the OS temp cleaner.)
 */
const paths = new Set<string>();
let installed = false;

export function removeOnInterrupt(p: string): () => void {
  install();
  paths.add(p);
  return () => paths.delete(p);
}

function install(): void {
  if (installed) return;
  installed = true;
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      for (const p of paths) rmSync(p, { recursive: true, force: true });
      process.stderr.write(`\nInterrupted (${signal}); nothing was left half-written.\n`);
      process.exit(code);
    });
  }
}
