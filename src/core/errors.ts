/**
 * Typed errors and the exit-code table. Every failure a user can act on is a ModelctlError with a
 * stable exit code, a message saying what is wrong and where, and a hint saying what to do.
 * The README's exit-code table is generated from EXIT_CODES below — keep them together.
 */

export const ExitCode = {
  ok: 0,
  unexpected: 1,
  usage: 2,
  rolledBack: 3,
  held: 4,
  locked: 5,
  integrity: 6,
  conflict: 7,
  notFound: 8,
  unavailable: 9,
  interrupted: 10,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Human meaning of each code, in the order of the table (used by README and `--help`). */
export const EXIT_CODES: ReadonlyArray<{ code: ExitCode; name: string; meaning: string }> = [
  { code: ExitCode.ok, name: 'ok', meaning: 'success' },
  { code: ExitCode.unexpected, name: 'unexpected', meaning: 'unexpected error (a bug: please report it with the output of --json)' },
  { code: ExitCode.usage, name: 'usage', meaning: 'bad input: unknown flag, invalid bundle.yaml, bad ref, unsafe path; or a local disk that is full, read-only or not permitted (never retried)' },
  { code: ExitCode.rolledBack, name: 'rolled-back', meaning: 'a rollout was rolled back by its gates' },
  { code: ExitCode.held, name: 'held', meaning: 'a rollout is held: gates were inconclusive, a human must decide' },
  { code: ExitCode.locked, name: 'locked', meaning: 'another rollout holds the lock for this model' },
  { code: ExitCode.integrity, name: 'integrity', meaning: 'integrity failure: bytes do not match their digest' },
  { code: ExitCode.conflict, name: 'conflict', meaning: 'conflict: the same version exists with different content' },
  { code: ExitCode.notFound, name: 'not-found', meaning: 'the ref, version or digest does not exist in the store' },
  { code: ExitCode.unavailable, name: 'unavailable', meaning: 'the store or cluster could not be reached or refused access (after retries)' },
  { code: ExitCode.interrupted, name: 'interrupted', meaning: 'interrupted by SIGINT/SIGTERM: the rollout was aborted back to stable (a second signal exits 130/143 at once)' },
];

export interface ErrorDetails {
  [key: string]: unknown;
}

export class ModelctlError extends Error {
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;
  readonly details: ErrorDetails;

  constructor(exitCode: ExitCode, message: string, opts: { hint?: string; details?: ErrorDetails; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.exitCode = exitCode;
    this.hint = opts.hint;
    this.details = opts.details ?? {};
  }

  /** The machine-readable shape printed under "error" with --json. */
  toJSON(): Record<string, unknown> {
    const code = EXIT_CODES.find((c) => c.code === this.exitCode)?.name ?? 'unexpected';
    return { code, exitCode: this.exitCode, message: this.message, ...(this.hint ? { hint: this.hint } : {}), ...this.details };
  }
}

export class UsageError extends ModelctlError {
  constructor(message: string, opts: { hint?: string; details?: ErrorDetails; cause?: unknown } = {}) {
    super(ExitCode.usage, message, opts);
  }
}

export class IntegrityError extends ModelctlError {
  constructor(message: string, opts: { hint?: string; details?: ErrorDetails; cause?: unknown } = {}) {
    super(ExitCode.integrity, message, opts);
  }
}

export class ConflictError extends ModelctlError {
  constructor(message: string, opts: { hint?: string; details?: ErrorDetails; cause?: unknown } = {}) {
    super(ExitCode.conflict, message, opts);
  }
}

export class NotFoundError extends ModelctlError {
  constructor(message: string, opts: { hint?: string; details?: ErrorDetails; cause?: unknown } = {}) {
    super(ExitCode.notFound, message, opts);
  }
}

export class UnavailableError extends ModelctlError {
  constructor(message: string, opts: { hint?: string; details?: ErrorDetails; cause?: unknown } = {}) {
    super(ExitCode.unavailable, message, opts);
  }
}

export function isModelctlError(err: unknown): err is ModelctlError {
  return err instanceof ModelctlError;
}
