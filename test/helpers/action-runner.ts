import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cp, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Evaluator, Lexer, Parser, data } from '@actions/expressions';
import { truthy } from '@actions/expressions/result';
import { parse as parseYaml } from 'yaml';
import { parseWorkflowCommand } from '../../src/cli/github/commands.js';
import { parseOutputFile } from '../../src/cli/github/outputs.js';

/**
 * A runner-faithful harness for this repository's GitHub Actions: it runs a composite action.yml,
 * and the jobs of a workflow, the way actions/runner does (read from its source:
 * Runner.Worker/Handlers/ScriptHandler.cs, ScriptHandlerHelpers.cs, FileCommandManager.cs,
 * Runner.Sdk/ProcessInvoker.cs, JobExtension.cs):
 *
 * - each `run:` step is written to `<RUNNER_TEMP>/<uuid>.sh` and run as
 *   `bash --noprofile --norc -e -o pipefail <file>` (`shell: bash`) or `bash -e <file>` (no shell),
 *   in GITHUB_WORKSPACE, its own process (not a process group: signals reach that pid only);
 * - `${{ }}` in `run`, `env`, `with`, `name`, outputs and input defaults is evaluated with GitHub's
 *   own expression engine (@actions/expressions) over the contexts the runner offers there; an
 *   unknown named-value or function throws (nothing is silently left empty);
 * - `if:` without a status function means `success() && (…)`;
 * - composite steps get inputs only through `${{ inputs.x }}` (no INPUT_* variables);
 * - fresh GITHUB_OUTPUT / GITHUB_ENV / GITHUB_PATH / GITHUB_STEP_SUMMARY files per step, read with
 *   the runner's rules (`name=value`, `name<<DELIM` heredoc) and applied to later steps (env and
 *   PATH for the rest of the job; PATH entries prepended, the latest first; NODE_OPTIONS refused);
 * - workflow commands on stdout and stderr (add-mask, annotations) are read with the runner's
 *   parser, and the log it keeps has every mask applied;
 * - cancellation (a job cancelled, or a step's timeout-minutes) as ProcessInvoker does it: SIGINT
 *   to the step's process, SIGTERM 7.5 s later, SIGKILL 2.5 s after that; later steps run only if
 *   their condition calls always() or cancelled(); at the end of the job every process that still
 *   carries the job's RUNNER_TRACKING_ID is killed (the runner's orphan clean-up).
 *
 * `uses:` steps run through handlers the test provides (`uses` map, matched by the part before
 * `@`); a handler may run a real composite action with `runComposite`. A `uses:` without a
 * handler throws.
 */

export const SIGINT_GRACE_MS = 7_500;
export const SIGTERM_GRACE_MS = 2_500;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface StepRecord {
  id: string;
  name: string;
  /** success | failure | cancelled | skipped */
  outcome: 'success' | 'failure' | 'cancelled' | 'skipped';
  exitCode: number | null;
  signals: NodeJS.Signals[];
  outputs: Record<string, string>;
  summary: string;
  /** The step's log as the runner keeps it: stdout and stderr lines, masks applied. */
  log: string[];
  annotations: Array<{ level: string; title?: string | undefined; message: string }>;
  /** For a composite action: its own steps. */
  steps?: StepRecord[];
  durationMs: number;
}

/**
 * What a runner machine's own environment carries for reaching package registries (a proxy, its CA,
 * npm settings): a real runner's steps inherit it. The harness starts steps from a bare environment,
 * so without these a real `npm install` in a step cannot verify the registry's certificate where a
 * proxy with its own CA sits in between — and npm retries that for many minutes instead of failing.
 */
export function registryAccessEnv(from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const names = /^(NODE_EXTRA_CA_CERTS|SSL_CERT_FILE|SSL_CERT_DIR|(HTTPS?|NO|ALL)_PROXY|(https?|no|all)_proxy|npm_config_.+)$/;
  return Object.fromEntries(Object.entries(from).filter((e): e is [string, string] => names.test(e[0]) && e[1] !== undefined));
}

export type UsesHandler = (ctx: {
  job: Job;
  with: Record<string, string>;
  ref: string;
  step: { id: string; env: Record<string, string> };
}) => Promise<{ outcome: 'success' | 'failure'; outputs?: Record<string, string>; steps?: StepRecord[] }>;

export interface JobOptions {
  /** GITHUB_WORKSPACE (the working directory of every step). */
  workspace: string;
  /** RUNNER_TEMP; step scripts and file-command files go there. */
  runnerTemp: string;
  /** Environment of the runner process itself (PATH, HOME…); the job's env goes on top. */
  baseEnv: Record<string, string | undefined>;
  /** The `github` context (event_name, ref, ref_name, sha, run_number, event…). */
  github: Record<string, Json>;
  vars?: Record<string, string>;
  secrets?: Record<string, string>;
  uses?: Record<string, UsesHandler>;
  /** The runner's orphan-process clean-up at the end of the job (default true). */
  processCleanup?: boolean;
}

const STATUS_FUNCTIONS = ['success', 'failure', 'always', 'cancelled'] as const;

/** One `${{ }}` expression, evaluated by GitHub's expression engine over `contexts`. */
export function evaluate(expression: string, contexts: Record<string, unknown>, status?: { failed: boolean; cancelled: boolean }): data.ExpressionData {
  const lexed = new Lexer(expression).lex();
  const funcs = status ? STATUS_FUNCTIONS.map((name) => ({ name, minArgs: 0, maxArgs: 0 })) : [];
  const ast = new Parser(lexed.tokens, Object.keys(contexts), funcs).parse();
  const dict = JSON.parse(JSON.stringify(contexts), data.reviver) as data.Dictionary;
  const bool = (b: boolean) => ({ name: '', minArgs: 0, maxArgs: 0, call: () => new data.BooleanData(b) });
  const functions = status
    ? new Map([
        ['success', bool(!status.failed && !status.cancelled)],
        ['failure', bool(status.failed)],
        ['always', bool(true)],
        ['cancelled', bool(status.cancelled)],
      ])
    : undefined;
  return new Evaluator(ast, dict, functions).evaluate();
}

/**
 * Every `${{ … }}` of a template replaced by its value as a string (null → ''). The scan skips
 * `}}` inside '…' string literals, as GitHub's template reader does.
 */
export function substitute(template: string, contexts: Record<string, unknown>): string {
  let out = '';
  let i = 0;
  while (i < template.length) {
    const start = template.indexOf('${{', i);
    if (start < 0) break;
    out += template.slice(i, start);
    let j = start + 3;
    let inString = false;
    for (; j < template.length; j++) {
      const c = template[j];
      if (c === "'") inString = !inString;
      else if (!inString && c === '}' && template[j + 1] === '}') break;
    }
    if (j >= template.length) throw new Error(`unterminated expression in ${JSON.stringify(template)}`);
    out += evaluate(template.slice(start + 3, j).trim(), contexts).coerceString();
    i = j + 2;
  }
  return out + template.slice(i);
}

/** An `if:` condition: `${{ }}` optional; success() is implied unless a status function is called. */
export function condition(text: string | boolean | undefined, contexts: Record<string, unknown>, status: { failed: boolean; cancelled: boolean }): boolean {
  if (text === undefined) text = 'success()';
  let expr = String(text).trim();
  const wrapped = /^\$\{\{([\s\S]*)\}\}$/.exec(expr);
  if (wrapped) expr = wrapped[1]!.trim();
  if (!/\b(success|failure|always|cancelled)\s*\(/.test(expr)) expr = `success() && (${expr})`;
  return truthy(evaluate(expr, contexts, status));
}

function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries((v ?? {}) as Record<string, unknown>)) out[k] = typeof x === 'string' ? x : JSON.stringify(x);
  return out;
}

function substituteMap(m: unknown, contexts: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(stringMap(m)).map(([k, v]) => [k, substitute(v, contexts)]));
}

/** One job on one machine: its env, PATH additions, masks and cancellation state. */
export class Job {
  readonly env: Record<string, string> = {};
  readonly prependPath: string[] = [];
  readonly masks = new Set<string>();
  readonly trackingId = `github_${randomUUID()}`;
  cancelled = false;
  failed = false;
  /** Post steps (e.g. actions/cache saving), run at the end of the job in reverse order. */
  readonly posts: Array<() => Promise<void>> = [];
  private readonly cancelListeners = new Set<() => void>();
  private readonly timeoutListeners = new Set<() => void>();

  constructor(readonly opts: JobOptions) {}

  /** Cancel the job (the Cancel button, or the job's timeout): the running step gets SIGINT, SIGTERM, SIGKILL. */
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    for (const l of this.cancelListeners) l();
  }

  /** A `uses:` step's timeout-minutes ran out: its running script step is stopped as on cancellation, and fails. */
  timeOutStep(): void {
    for (const l of this.timeoutListeners) l();
  }

  onCancel(l: () => void): () => void {
    this.cancelListeners.add(l);
    return () => this.cancelListeners.delete(l);
  }

  mask(text: string): string {
    let t = text;
    for (const m of [...this.masks].sort((a, b) => b.length - a.length)) t = t.split(m).join('***');
    return t;
  }

  /** PATH as a step sees it: the prepended entries (latest first), then the runner's PATH. */
  pathValue(): string {
    return [...[...this.prependPath].reverse(), this.opts.baseEnv.PATH ?? ''].filter(Boolean).join(path.delimiter);
  }

  /**
   * Run one script step as the runner does. `env` is the step's evaluated env (on top of the job's).
   * Returns when the process has exited (or was killed after a cancellation or its timeout).
   */
  async runScript(script: string, opts: { shell?: string | undefined; env: Record<string, string>; timeoutMinutes?: number | undefined; name: string; id: string; actionPath?: string }): Promise<StepRecord> {
    const started = Date.now();
    const dir = path.join(this.opts.runnerTemp, '_runner_file_commands');
    await mkdir(dir, { recursive: true });
    const uuid = randomUUID();
    const files = {
      output: path.join(dir, `set_output_${uuid}`),
      env: path.join(dir, `set_env_${uuid}`),
      path: path.join(dir, `add_path_${uuid}`),
      summary: path.join(dir, `step_summary_${uuid}`),
      state: path.join(dir, `save_state_${uuid}`),
    };
    for (const f of Object.values(files)) await writeFile(f, '');
    const scriptFile = path.join(this.opts.runnerTemp, `${uuid}.sh`);
    await writeFile(scriptFile, script);
    let args: string[];
    if (opts.shell === undefined || opts.shell === '') args = ['-e', scriptFile];
    else if (opts.shell === 'bash') args = ['--noprofile', '--norc', '-e', '-o', 'pipefail', scriptFile];
    else throw new Error(`harness: shell ${JSON.stringify(opts.shell)} is not supported (bash only)`);
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.opts.baseEnv)) if (v !== undefined) env[k] = v;
    Object.assign(env, this.env, opts.env, {
      PATH: this.pathValue(),
      CI: 'true',
      GITHUB_ACTIONS: 'true',
      GITHUB_WORKSPACE: this.opts.workspace,
      RUNNER_TEMP: this.opts.runnerTemp,
      RUNNER_OS: 'Linux',
      RUNNER_ARCH: 'X64',
      RUNNER_TRACKING_ID: this.trackingId,
      GITHUB_OUTPUT: files.output,
      GITHUB_ENV: files.env,
      GITHUB_PATH: files.path,
      GITHUB_STEP_SUMMARY: files.summary,
      GITHUB_STATE: files.state,
      GITHUB_RUN_ID: String(this.opts.github.run_id ?? '1'),
      GITHUB_RUN_NUMBER: String(this.opts.github.run_number ?? '1'),
      GITHUB_SHA: String(this.opts.github.sha ?? ''),
      GITHUB_REF: String(this.opts.github.ref ?? ''),
      GITHUB_REF_NAME: String(this.opts.github.ref_name ?? ''),
      GITHUB_EVENT_NAME: String(this.opts.github.event_name ?? ''),
      GITHUB_REPOSITORY: String(this.opts.github.repository ?? ''),
      GITHUB_SERVER_URL: 'https://github.com',
      ...(opts.actionPath ? { GITHUB_ACTION_PATH: opts.actionPath } : {}),
    });
    const record: StepRecord = { id: opts.id, name: opts.name, outcome: 'success', exitCode: null, signals: [], outputs: {}, summary: '', log: [], annotations: [], durationMs: 0 };
    const child = spawn('bash', args, { cwd: this.opts.workspace, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const lineReader = () => {
      let buf = '';
      return (chunk: Buffer | null) => {
        buf += chunk === null ? '\n' : chunk.toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (chunk === null && line === '') continue;
          const cmd = parseWorkflowCommand(line);
          if (cmd?.command === 'add-mask' && cmd.data.trim()) this.masks.add(cmd.data);
          if (cmd && ['error', 'warning', 'notice'].includes(cmd.command)) record.annotations.push({ level: cmd.command, title: cmd.properties.title !== undefined ? this.mask(cmd.properties.title) : undefined, message: this.mask(cmd.data) });
          record.log.push(this.mask(line));
        }
      };
    };
    const out = lineReader();
    const err = lineReader();
    child.stdout.on('data', out);
    child.stderr.on('data', err);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
    let hasExited = false;
    void exited.then(() => (hasExited = true));
    let stopping: Promise<void> | undefined;
    // ProcessInvoker.CancelAndKillProcessTree: SIGINT, wait 7.5 s; SIGTERM, wait 2.5 s; Kill().
    const stop = () => {
      stopping ??= (async () => {
        for (const [signal, grace] of [['SIGINT', SIGINT_GRACE_MS], ['SIGTERM', SIGTERM_GRACE_MS]] as const) {
          if (hasExited) return;
          record.signals.push(signal);
          child.kill(signal);
          await Promise.race([exited, new Promise((r) => setTimeout(r, grace))]);
        }
        if (!hasExited) {
          record.signals.push('SIGKILL');
          child.kill('SIGKILL');
        }
      })();
    };
    let timedOut = false;
    const off = this.onCancel(stop);
    const onTimeout = () => {
      timedOut = true;
      stop();
    };
    this.timeoutListeners.add(onTimeout);
    const timer = opts.timeoutMinutes
      ? setTimeout(() => {
          timedOut = true;
          stop();
        }, opts.timeoutMinutes * 60_000)
      : undefined;
    const { code } = await exited;
    out(null);
    err(null);
    off();
    this.timeoutListeners.delete(onTimeout);
    if (timer) clearTimeout(timer);
    await stopping;
    record.exitCode = code;
    // A cancelled job's running step ends cancelled whatever its exit code (the runner rethrows the
    // cancellation); a step's own timeout fails it.
    record.outcome = record.signals.length && this.cancelled ? 'cancelled' : code === 0 && !timedOut ? 'success' : 'failure';
    // The file commands are processed whatever the step's outcome.
    record.outputs = parseOutputFile(await readFile(files.output, 'utf8'));
    for (const [k, v] of Object.entries(parseOutputFile(await readFile(files.env, 'utf8')))) {
      if (k.toUpperCase() === 'NODE_OPTIONS') throw new Error("harness: Can't store NODE_OPTIONS output parameter using '$GITHUB_ENV' command.");
      this.env[k] = v;
    }
    for (const line of (await readFile(files.path, 'utf8')).split('\n').map((l) => l.replace(/\r$/, ''))) {
      if (!line) continue;
      const i = this.prependPath.indexOf(line);
      if (i >= 0) this.prependPath.splice(i, 1);
      this.prependPath.push(line);
    }
    record.summary = this.mask(await readFile(files.summary, 'utf8'));
    record.durationMs = Date.now() - started;
    return record;
  }

  async runPosts(): Promise<void> {
    for (const p of this.posts.splice(0).reverse()) await p();
  }

  /** The runner's orphan clean-up: SIGKILL every process that still carries this job's tracking id. */
  async cleanup(): Promise<number[]> {
    if (this.opts.processCleanup === false) return [];
    const killed: number[] = [];
    for (const pid of await readdir('/proc').catch(() => [] as string[])) {
      if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
      const environ = await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '');
      if (environ.split('\0').includes(`RUNNER_TRACKING_ID=${this.trackingId}`)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
          killed.push(Number(pid));
        } catch {
          /* already gone */
        }
      }
    }
    return killed;
  }
}

interface ActionYaml {
  inputs?: Record<string, { default?: string; required?: boolean }>;
  outputs?: Record<string, { value: string }>;
  runs: { using: string; steps: StepYaml[] };
}

interface StepYaml {
  id?: string;
  name?: string;
  if?: string | boolean;
  run?: string;
  shell?: string;
  uses?: string;
  with?: Record<string, unknown>;
  env?: Record<string, unknown>;
  'timeout-minutes'?: number;
  'continue-on-error'?: boolean;
}

export interface CompositeResult {
  outcome: 'success' | 'failure';
  outputs: Record<string, string>;
  steps: StepRecord[];
  /** Inputs given that the action does not declare (the runner warns about them). */
  unexpectedInputs: string[];
}

function stepsContext(records: StepRecord[]): Record<string, Json> {
  const ctx: Record<string, Json> = {};
  for (const r of records) if (!r.id.startsWith('__')) ctx[r.id] = { outputs: r.outputs, outcome: r.outcome, conclusion: r.outcome };
  return ctx;
}

/**
 * Run a composite action (its directory holds action.yml) as one step of `job`: `with` are the
 * inputs as the calling step wrote them (already evaluated), `actionRef` is what github.action_ref
 * is inside it.
 */
export async function runComposite(job: Job, actionDir: string, withInputs: Record<string, string>, opts: { actionRef?: string } = {}): Promise<CompositeResult> {
  const action = parseYaml(await readFile(path.join(actionDir, 'action.yml'), 'utf8')) as ActionYaml;
  if (action.runs.using !== 'composite') throw new Error(`harness: ${actionDir} is not a composite action`);
  const declared = action.inputs ?? {};
  const unexpectedInputs = Object.keys(withInputs).filter((k) => !(k in declared));
  const github = { ...job.opts.github, action_path: actionDir, action_ref: opts.actionRef ?? '' };
  const inputs: Record<string, string> = {};
  for (const [name, spec] of Object.entries(declared)) {
    // Input names are case-insensitive; a default may hold an expression (github, runner, …).
    const given = Object.entries(withInputs).find(([k]) => k.toLowerCase() === name.toLowerCase());
    inputs[name] = given ? given[1] : substitute(String(spec.default ?? ''), { github, runner: { os: 'Linux', temp: job.opts.runnerTemp }, job: {}, strategy: {}, matrix: {} });
  }
  const records: StepRecord[] = [];
  let failed = false;
  for (const [index, step] of action.runs.steps.entries()) {
    const id = step.id ?? `__${index}`;
    const contexts = { github, inputs, steps: stepsContext(records), env: { ...job.env }, runner: { os: 'Linux', arch: 'X64', temp: job.opts.runnerTemp, tool_cache: job.opts.baseEnv.RUNNER_TOOL_CACHE ?? '' }, job: {}, strategy: {}, matrix: {} };
    const name = step.name !== undefined ? substitute(step.name, contexts) : (step.run ?? step.uses ?? '');
    if (!condition(step.if, contexts, { failed, cancelled: job.cancelled })) {
      records.push({ id, name, outcome: 'skipped', exitCode: null, signals: [], outputs: {}, summary: '', log: [], annotations: [], durationMs: 0 });
      continue;
    }
    const env = substituteMap(step.env, contexts);
    let record: StepRecord;
    if (step.run !== undefined) {
      if (!step.shell) throw new Error(`harness: composite step ${id} has no shell (the runner requires one)`);
      record = await job.runScript(substitute(step.run, contexts), { shell: step.shell, env, name, id, actionPath: actionDir, timeoutMinutes: step['timeout-minutes'] });
    } else if (step.uses !== undefined) {
      record = await runUses(job, step.uses, substituteMap(step.with, contexts), { id, name, env });
    } else throw new Error(`harness: composite step ${id} has neither run nor uses`);
    records.push(record);
    if (record.outcome !== 'success') failed = true;
  }
  const final = { github, inputs, steps: stepsContext(records), env: { ...job.env }, runner: { os: 'Linux' }, job: {}, strategy: {}, matrix: {} };
  const outputs: Record<string, string> = {};
  for (const [name, spec] of Object.entries(action.outputs ?? {})) outputs[name] = substitute(String(spec.value), final);
  return { outcome: failed ? 'failure' : 'success', outputs, steps: records, unexpectedInputs };
}

async function runUses(job: Job, uses: string, withInputs: Record<string, string>, step: { id: string; name: string; env: Record<string, string> }): Promise<StepRecord> {
  const at = uses.lastIndexOf('@');
  const [target, ref] = at > 0 ? [uses.slice(0, at), uses.slice(at + 1)] : [uses, ''];
  const handler = job.opts.uses?.[target];
  if (!handler) throw new Error(`harness: no handler for \`uses: ${uses}\` (give one in JobOptions.uses['${target}'])`);
  const started = Date.now();
  const r = await handler({ job, with: withInputs, ref, step: { id: step.id, env: step.env } });
  const record: StepRecord = { id: step.id, name: step.name, outcome: r.outcome, exitCode: null, signals: [], outputs: r.outputs ?? {}, summary: '', log: [], annotations: [], durationMs: Date.now() - started };
  if (r.steps) record.steps = r.steps;
  if (job.cancelled && r.outcome !== 'success') record.outcome = 'cancelled';
  return record;
}

/** A composite action as a `uses:` handler (for a repository's action used by ref or path). */
export function compositeHandler(actionDir: string, expect: { noUnexpectedInputs?: boolean } = { noUnexpectedInputs: true }): UsesHandler {
  return async ({ job, with: w, ref }) => {
    const r = await runComposite(job, actionDir, w, { actionRef: ref });
    if (expect.noUnexpectedInputs && r.unexpectedInputs.length) throw new Error(`harness: unexpected input(s) ${r.unexpectedInputs.join(', ')} for ${actionDir}`);
    return { outcome: r.outcome, outputs: r.outputs, steps: r.steps };
  };
}

interface WorkflowYaml {
  env?: Record<string, unknown>;
  jobs: Record<string, JobYaml>;
}

interface JobYaml {
  needs?: string | string[];
  if?: string;
  env?: Record<string, unknown>;
  outputs?: Record<string, string>;
  steps?: StepYaml[];
  uses?: string;
  with?: Record<string, unknown>;
  'timeout-minutes'?: number;
}

export interface JobResult {
  id: string;
  result: 'success' | 'failure' | 'cancelled' | 'skipped';
  outputs: Record<string, string>;
  steps: StepRecord[];
  /** Orphans the clean-up killed. */
  killed: number[];
}

export interface WorkflowRun {
  jobs: Record<string, JobResult>;
  /** Cancel the whole run (the Cancel button): the running job's step gets the signals. */
  cancel(): void;
  done: Promise<Record<string, JobResult>>;
}

export interface WorkflowOptions extends Omit<JobOptions, 'github'> {
  github: Record<string, Json>;
  /** The `inputs` context (workflow_dispatch / workflow_call). */
  inputs?: Record<string, Json>;
  /** Replace values of the workflow's top-level env (the deployment's settings) for the test. */
  envOverride?: Record<string, string | undefined>;
  /** Resolves `uses: ./.github/workflows/x.yml` of a job. */
  repoRoot?: string;
  /** Called with each job as it starts (to cancel it, e.g.). */
  onJob?: (id: string, job: Job) => void;
}

/** Run a workflow file's jobs in `needs` order, one machine (one Job) per job. */
export function runWorkflow(file: string, opts: WorkflowOptions): WorkflowRun {
  const results: Record<string, JobResult> = {};
  let cancelled = false;
  let current: Job | undefined;
  let currentInner: WorkflowRun | undefined;
  const done = (async () => {
    const wf = parseYaml(await readFile(file, 'utf8')) as WorkflowYaml;
    const topEnv = stringMap(wf.env);
    for (const [k, v] of Object.entries(opts.envOverride ?? {})) {
      if (v === undefined) delete topEnv[k];
      else topEnv[k] = v;
    }
    const pending = new Set(Object.keys(wf.jobs));
    while (pending.size) {
      const ready = [...pending].find((id) => [wf.jobs[id]!.needs ?? []].flat().every((n) => results[n]));
      if (!ready) throw new Error(`harness: jobs ${[...pending].join(', ')} wait for each other`);
      pending.delete(ready);
      const spec = wf.jobs[ready]!;
      const needsIds = [spec.needs ?? []].flat();
      const needs = Object.fromEntries(needsIds.map((n) => [n, { result: results[n]!.result, outputs: results[n]!.outputs }]));
      const base = { github: opts.github, inputs: opts.inputs ?? {}, needs, vars: opts.vars ?? {}, secrets: opts.secrets ?? {} };
      const needsOk = needsIds.every((n) => results[n]!.result === 'success');
      const run = condition(spec.if, base, { failed: !needsOk, cancelled });
      if (!run) {
        results[ready] = { id: ready, result: 'skipped', outputs: {}, steps: [], killed: [] };
        continue;
      }
      if (spec.uses) {
        if (!spec.uses.startsWith('./') || !opts.repoRoot) throw new Error(`harness: reusable workflow ${spec.uses} needs a local path and repoRoot`);
        const inner = runWorkflow(path.join(opts.repoRoot, spec.uses), { ...opts, envOverride: opts.envOverride ?? {}, inputs: substituteMap(spec.with, base) as Record<string, Json>, github: { ...opts.github, event_name: String(opts.github.event_name ?? '') } });
        currentInner = inner;
        if (cancelled) inner.cancel();
        const innerResults = await inner.done;
        currentInner = undefined;
        const failed = Object.values(innerResults).some((j) => j.result === 'failure' || j.result === 'cancelled');
        results[ready] = { id: ready, result: failed ? 'failure' : 'success', outputs: {}, steps: Object.values(innerResults).flatMap((j) => j.steps), killed: Object.values(innerResults).flatMap((j) => j.killed) };
        Object.assign(results, Object.fromEntries(Object.entries(innerResults).map(([k, v]) => [`${ready}/${k}`, v])));
        continue;
      }
      // A fresh machine per job, as on GitHub-hosted runners: its own RUNNER_TEMP and tool cache
      // (two jobs running at once never share an installation).
      const runnerTemp = path.join(opts.runnerTemp, `${ready.replaceAll('/', '-')}-${randomUUID().slice(0, 8)}`);
      await mkdir(runnerTemp, { recursive: true });
      const job = new Job({ ...opts, runnerTemp, baseEnv: { ...opts.baseEnv, RUNNER_TOOL_CACHE: path.join(runnerTemp, 'toolcache') } });
      current = job;
      if (cancelled) job.cancel();
      opts.onJob?.(ready, job);
      const jobContexts = { ...base, env: topEnv, runner: { os: 'Linux', temp: runnerTemp }, job: {}, strategy: {}, matrix: {} };
      Object.assign(job.env, topEnv, substituteMap(spec.env, jobContexts));
      const jobTimer = spec['timeout-minutes'] ? setTimeout(() => job.cancel(), spec['timeout-minutes'] * 60_000) : undefined;
      const records: StepRecord[] = [];
      for (const [index, step] of (spec.steps ?? []).entries()) {
        const id = step.id ?? `__${index}`;
        const contexts = { ...base, env: { ...job.env }, steps: stepsContext(records), runner: { os: 'Linux', temp: runnerTemp }, job: {}, strategy: {}, matrix: {} };
        const name = step.name !== undefined ? substitute(step.name, contexts) : (step.run ?? step.uses ?? '');
        if (!condition(step.if, contexts, { failed: job.failed, cancelled: job.cancelled })) {
          records.push({ id, name, outcome: 'skipped', exitCode: null, signals: [], outputs: {}, summary: '', log: [], annotations: [], durationMs: 0 });
          continue;
        }
        const env = substituteMap(step.env, contexts);
        let record: StepRecord;
        if (step.run !== undefined) {
          record = await job.runScript(substitute(step.run, contexts), { shell: step.shell, env, name, id, timeoutMinutes: step['timeout-minutes'] });
        } else {
          const stepTimer = step['timeout-minutes'] ? setTimeout(() => job.timeOutStep(), step['timeout-minutes'] * 60_000) : undefined;
          record = await runUses(job, step.uses!, substituteMap(step.with, contexts), { id, name, env });
          if (stepTimer) clearTimeout(stepTimer);
        }
        records.push(record);
        if (record.outcome !== 'success' && !step['continue-on-error']) job.failed = true;
      }
      if (jobTimer) clearTimeout(jobTimer);
      await job.runPosts();
      const killed = await job.cleanup();
      const outContexts = { ...base, env: { ...job.env }, steps: stepsContext(records), runner: { os: 'Linux' }, job: {}, strategy: {}, matrix: {} };
      const outputs = substituteMap(spec.outputs, outContexts);
      results[ready] = { id: ready, result: job.cancelled ? 'cancelled' : job.failed ? 'failure' : 'success', outputs, steps: records, killed };
    }
    return results;
  })();
  return {
    jobs: results,
    cancel() {
      cancelled = true;
      current?.cancel();
      currentInner?.cancel();
    },
    done,
  };
}

/**
 * actions/cache as the harness plays it: restore `path` when `key` was saved in `cacheDir`, else
 * save it in a post step (as the real action does at job end); output `cache-hit`.
 */
export function cacheAction(cacheDir: string): UsesHandler {
  return async ({ job, with: w }) => {
    const saved = path.join(cacheDir, w.key!);
    const hit = await readFile(path.join(saved, '.key'), 'utf8').then(() => true, () => false);
    if (hit) await cp(saved, w.path!, { recursive: true, verbatimSymlinks: true });
    else
      job.posts.push(async () => {
        await cp(w.path!, saved, { recursive: true, verbatimSymlinks: true });
        await writeFile(path.join(saved, '.key'), w.key!);
      });
    return { outcome: 'success', outputs: { 'cache-hit': String(hit) } };
  };
}
