import { Command, Errors, Flags } from '@oclif/core';
import { ExitCode, ModelctlError } from '../core/errors.js';
import type { StoreSettings } from '../config/project.js';
import { githubActive } from './github/commands.js';
import type { GithubReport } from './github/reports.js';
import { createProgress } from './progress.js';
import type { Context } from '../services/context.js';
import type { Progress } from '../core/progress.js';
import type { BundleStore } from '../store/store.js';

/**
 * Every command: `--json` prints exactly one JSON document on stdout (the result, or
 * {"error": …}); otherwise the human result goes to stdout and progress/notes to stderr.
 * Errors map to the documented exit codes; users never see a stack trace unless
 * MODELCTL_DEBUG=1.
 */
export abstract class BaseCommand extends Command {
  static override baseFlags = {
    json: Flags.boolean({ description: 'Print one JSON document on stdout (errors too) and nothing else there.', helpGroup: 'GLOBAL' }),
  };

  protected jsonMode = false;

  private ctx: Promise<Context> | undefined;

  /**
   * This invocation's context (cwd, env, modelctl.yaml read once, the stores it opened, the clock):
   * the one composition root the services take. Made on first use, so `--help`, `--version` and
   * commands that need no setting load none of it.
   */
  protected context(): Promise<Context> {
    this.ctx ??= this.createContext();
    return this.ctx;
  }

  /** Make the context; a test runs a command in process over a context of its own by overriding this. */
  protected async createContext(): Promise<Context> {
    const [{ createContext }, { maskSecret }] = await Promise.all([import('../services/context.js'), import('./github/mask.js')]);
    return createContext({ onSecret: (value) => maskSecret(value) });
  }

  override async init(): Promise<void> {
    this.jsonMode = this.argv.includes('--json');
    // In GitHub Actions, secrets are masked before anything else is printed.
    if (githubActive()) (await import('./github/hook.js')).githubBegin(this.argv);
    await super.init();
  }

  /** Do the work; return the JSON result. Human output comes from `human()`. */
  protected abstract execute(): Promise<unknown>;
  /** Render the result for people (stdout). */
  protected abstract human(result: unknown): string;

  /** The exit code a finished result stands for (e.g. a rollout rolled back by its gates: 3). */
  protected exitCodeOf(_result: unknown): ExitCode {
    return ExitCode.ok;
  }

  /** In GitHub Actions: this command's step outputs, job summary and annotations (`result` is added for all). */
  protected githubReport(_result: unknown): GithubReport | undefined | Promise<GithubReport | undefined> {
    return undefined;
  }

  override async run(): Promise<unknown> {
    const result = await this.execute();
    if (this.jsonMode) this.writeOut(`${JSON.stringify(result, null, 2)}\n`);
    else {
      const text = this.human(result);
      if (text) this.writeOut(`${text}\n`);
    }
    const code = this.exitCodeOf(result);
    if (code !== ExitCode.ok) process.exitCode = code;
    if (githubActive()) await (await import('./github/hook.js')).githubFinish(result, () => this.githubReport(result));
    return result;
  }

  /** stdout: the result (one JSON document with --json). A test running a command in process reads it here. */
  protected writeOut(text: string): void {
    process.stdout.write(text);
  }

  /** A note for people (stderr), silent in --json mode so CI logs stay clean. */
  protected note(message: string): void {
    if (!this.jsonMode) process.stderr.write(`${message}\n`);
  }

  protected progress(): Progress {
    return createProgress({ quiet: false });
  }

  override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number } }): Promise<unknown> {
    const exitCode = exitCodeOf(err);
    if (exitCode === ExitCode.ok) return;
    const payload =
      err instanceof ModelctlError
        ? err.toJSON()
        : { code: exitCode === ExitCode.usage ? 'usage' : 'unexpected', exitCode, message: err.message.split('\n')[0] };
    if (this.jsonMode) {
      this.writeOut(`${JSON.stringify({ error: payload }, null, 2)}\n`);
    } else {
      let text = `Error: ${err.message}`;
      if (err instanceof ModelctlError && err.hint) text += `\nHint: ${err.hint}`;
      if (exitCode === ExitCode.usage && !(err instanceof ModelctlError)) text += `\nSee: modelctl ${this.id?.replaceAll(':', ' ') ?? ''} --help`;
      if (exitCode === ExitCode.unexpected && err.stack && process.env.MODELCTL_DEBUG) text += `\n${err.stack}`;
      else if (exitCode === ExitCode.unexpected) text += '\nThis looks like a bug. Re-run with MODELCTL_DEBUG=1 for a stack trace and report it.';
      process.stderr.write(`${text}\n`);
    }
    if (githubActive()) {
      const hint = err instanceof ModelctlError ? err.hint : undefined;
      await (await import('./github/hook.js')).githubFailure(`modelctl ${this.id?.replaceAll(':', ' ') ?? ''}`.trim(), { message: err.message, hint }, { error: payload });
    }
    const exit = new Errors.ExitError(exitCode);
    (exit as Errors.ExitError & { skipOclifErrorHandling: boolean }).skipOclifErrorHandling = true;
    throw exit;
  }
}

function exitCodeOf(err: Error & { oclif?: { exit?: number }; code?: string }): ExitCode {
  if (err instanceof ModelctlError) return err.exitCode;
  if (err instanceof Errors.ExitError) return (err.oclif.exit ?? 1) as ExitCode;
  // oclif's own parse errors (unknown flag, missing argument, bad option) are bad input.
  if ((err as { parse?: unknown }).parse !== undefined || err.name?.endsWith('FlagError') || err.name === 'FailedFlagValidationError') {
    return ExitCode.usage;
  }
  if (err.oclif?.exit === 2) return ExitCode.usage;
  return ExitCode.unexpected;
}

/** Flags shared by every command that talks to a store. */
export const storeFlags = {
  store: Flags.string({
    description: 'Where bundles live: file://<path> or s3://<bucket>/<prefix>. Default: file://$MODELCTL_HOME/store.',
    env: 'MODELCTL_STORE',
    helpGroup: 'STORE',
  }),
  's3-path-style': Flags.boolean({
    description: 'Use path-style S3 URLs (Ceph RGW, MinIO). Also MODELCTL_S3_PATH_STYLE=true.',
    helpGroup: 'STORE',
  }),
};

export abstract class StoreCommand extends BaseCommand {
  protected async storeSettings(flags: { store?: string | undefined; 's3-path-style'?: boolean | undefined }): Promise<StoreSettings> {
    return (await this.context()).storeSettings(flags);
  }

  /** The store opened by `openStore` (the GitHub job summary reads manifests from it). */
  protected openedStore: BundleStore | undefined;

  protected async openStore(flags: { store?: string | undefined; 's3-path-style'?: boolean | undefined }): Promise<BundleStore> {
    const settings = await this.storeSettings(flags);
    // A store URL from modelctl.yaml was not visible when secrets were masked at start-up.
    if (githubActive()) (await import('./github/mask.js')).maskUrlCredentials(settings.store);
    this.openedStore = await (await this.context()).openStore(settings);
    return this.openedStore;
  }
}
