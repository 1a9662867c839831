import { appendFile } from 'node:fs/promises';
import { annotation } from './commands.js';
import { maskKnownSecrets } from './mask.js';
import { formatOutputs } from './outputs.js';
import type { GithubReport } from './reports.js';

/**
 * The one place that touches the runner's files and streams. BaseCommand calls `githubBegin`
 * before anything is printed, `githubFinish` after the result, `githubFailure` on an error — and
 * only when GITHUB_ACTIONS=true. Workflow commands go to stderr: the runner reads commands from
 * stdout and stderr alike, and `--json` keeps stdout one JSON document.
 */

export interface GithubIo {
  env: NodeJS.ProcessEnv;
  write: (text: string) => void;
}

const defaultIo = (): GithubIo => ({ env: process.env, write: (t) => void process.stderr.write(t) });

/** Mask the secrets the CLI can see (environment, --store URL), first thing. */
export function githubBegin(argv: readonly string[], io: GithubIo = defaultIo()): void {
  maskKnownSecrets({ env: io.env, argv }, io.write);
}

/** Over this, the `result` output leaves out the event log (kept in the summary and the job log). */
export const RESULT_OUTPUT_LIMIT = 256 * 1024;

/** The compact JSON result for the `result` output, within RESULT_OUTPUT_LIMIT when possible. */
export function resultOutput(result: unknown): string {
  const full = JSON.stringify(result) ?? 'null';
  if (full.length <= RESULT_OUTPUT_LIMIT) return full;
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v === null || typeof v !== 'object') return v;
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === 'events' && Array.isArray(x)) o.eventsOmitted = x.length;
      else o[k] = strip(x);
    }
    return o;
  };
  return JSON.stringify(strip(result));
}

/**
 * Step outputs (the command's own plus `result`), the job summary and the outcome annotations.
 * A file that cannot be written is reported as an error annotation; the command's exit code
 * stays the one of what it did (a rollback already happened, whatever the summary).
 */
export async function githubFinish(
  result: unknown,
  makeReport: () => GithubReport | undefined | Promise<GithubReport | undefined>,
  io: GithubIo = defaultIo(),
): Promise<void> {
  let report: GithubReport | undefined;
  try {
    report = await makeReport();
  } catch (err) {
    // A bug in a summary must not fail the command it describes: the `result` output still goes out.
    io.write(annotation({ level: 'warning', title: 'modelctl could not build its GitHub report', message: (err as Error).stack ?? String(err) }));
  }
  const outputs = { ...report?.outputs, result: resultOutput(result) };
  const outFile = io.env.GITHUB_OUTPUT;
  if (outFile) {
    try {
      await appendFile(outFile, formatOutputs(outputs), 'utf8');
    } catch (err) {
      io.write(annotation({ level: 'error', title: 'modelctl could not write its step outputs', message: `${outFile}: ${(err as Error).message}` }));
    }
  }
  const summaryFile = io.env.GITHUB_STEP_SUMMARY;
  if (summaryFile && report?.summary) {
    try {
      await appendFile(summaryFile, report.summary, 'utf8');
    } catch (err) {
      io.write(annotation({ level: 'warning', title: 'modelctl could not write the job summary', message: `${summaryFile}: ${(err as Error).message}` }));
    }
  }
  for (const a of report?.annotations ?? []) io.write(annotation(a));
}

/**
 * A command that failed: one error annotation with the message and the hint, and the `result`
 * output holds the error document (what --json prints: {"error": {code, exitCode, message, hint, …}}).
 */
export async function githubFailure(command: string, err: { message: string; hint?: string | undefined }, errorDocument: unknown, io: GithubIo = defaultIo()): Promise<void> {
  io.write(annotation({ level: 'error', title: `${command} failed`, message: err.hint ? `${err.message}\nHint: ${err.hint}` : err.message }));
  const outFile = io.env.GITHUB_OUTPUT;
  if (!outFile) return;
  try {
    await appendFile(outFile, formatOutputs({ result: resultOutput(errorDocument) }), 'utf8');
  } catch {
    // The error itself is what matters here; it was reported above.
  }
}
