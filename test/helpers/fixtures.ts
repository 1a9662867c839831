import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (tests run from dist/test/…). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const CLI = path.join(REPO_ROOT, 'bin', 'run.js');

export type FileSpec = string | Buffer | { content: string | Buffer; mode?: number };

/** A temp directory removed by the returned cleanup (register it with t.after). */
export async function tempDir(prefix = 'test'): Promise<string> {
  return mkdtemp(path.join(tmpdir(), `modelctl-${prefix}-`));
}

/** Write a file map into `dir` (changesets-style fixtures), in the order given. */
export async function writeTree(dir: string, files: Record<string, FileSpec>): Promise<string> {
  for (const [rel, spec] of Object.entries(files)) {
    const file = path.join(dir, rel);
    await mkdir(path.dirname(file), { recursive: true });
    const content = typeof spec === 'string' || Buffer.isBuffer(spec) ? spec : spec.content;
    await writeFile(file, content);
    if (typeof spec === 'object' && !Buffer.isBuffer(spec) && spec.mode !== undefined) await chmod(file, spec.mode);
  }
  return dir;
}

export function bundleYaml(name = 'sentiment', version = '1.0.0', extra = ''): string {
  return `name: ${name}
version: ${version}
components:
  weights: [weights/]
  prompts: [prompts/]
  preprocessing: [preprocessing/]
  config: [config/]
${extra}`;
}

/** A small but complete bundle: a large (raw blob) weights file when `largeBytes` > 0. */
export function sampleBundle(opts: { name?: string; version?: string; largeBytes?: number; seed?: Buffer } = {}): Record<string, FileSpec> {
  const files: Record<string, FileSpec> = {
    'bundle.yaml': bundleYaml(opts.name, opts.version, 'metadata:\n  owner: ml-platform\n'),
    'weights/small.bin': opts.seed ?? Buffer.from('tiny weights'),
    'prompts/explain.txt': 'The text is {{label}} ({{confidence}}).\n',
    'prompts/nested/deep.txt': 'deep prompt\n',
    'preprocessing/tokenize.sh': { content: '#!/bin/sh\ntr A-Z a-z\n', mode: 0o755 },
    'config/labels.json': '{"labels":["negative","positive"]}\n',
  };
  if (opts.largeBytes) files['weights/model.safetensors'] = randomBytes(opts.largeBytes);
  return files;
}

export async function makeBundle(files: Record<string, FileSpec>, prefix = 'bundle'): Promise<string> {
  return writeTree(await tempDir(prefix), files);
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  json: () => any;
}

/** Run a command to completion, output captured; SIGKILLed after `timeoutMs`. */
export function runProcess(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? REPO_ROOT, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** Run the real CLI in a child process (black-box: flags, exit codes, stdout/stderr). */
export async function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  // MODELCTL_GITHUB=off: when the suite itself runs in GitHub Actions, the CLIs it drives must
  // not write into the CI step's outputs and summary (the github tests turn it back on).
  const env: NodeJS.ProcessEnv = { ...process.env, MODELCTL_DEBUG: '', MODELCTL_GITHUB: 'off', ...opts.env };
  // A CLI run without its own MODELCTL_HOME would fill the blob cache in the real user's data
  // directory (~/.local/share/modelctl/cache), run after run: tests that give a home use the cache.
  if (!env.MODELCTL_HOME && env.MODELCTL_CACHE === undefined) env.MODELCTL_CACHE = 'off';
  const { code, stdout, stderr } = await runProcess(process.execPath, [CLI, ...args], { ...opts, env });
  return {
    code,
    stdout,
    stderr,
    json: () => {
      try {
        return JSON.parse(stdout);
      } catch {
        throw new Error(`stdout is not one JSON document:\n${stdout}\nstderr:\n${stderr}`);
      }
    },
  };
}

export async function removeAll(...dirs: string[]): Promise<void> {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
}

/**
 * Temp directories and bundles for one test file, all removed by `cleanup` (register it with
 * `after(scratch.cleanup)`).
 */
export function useScratch(): {
  fresh(prefix: string): Promise<string>;
  bundle(files: Record<string, FileSpec>): Promise<string>;
  cleanup(): Promise<void>;
} {
  const dirs: string[] = [];
  return {
    async fresh(prefix) {
      const d = await tempDir(prefix);
      dirs.push(d);
      return d;
    },
    async bundle(files) {
      const d = await makeBundle(files);
      dirs.push(d);
      return d;
    },
    cleanup: () => removeAll(...dirs.splice(0)),
  };
}

/** A copy of the example bundle in `dir` whose config injects `errorRate` (a bad version by config alone). */
export async function faultyExample(dir: string, errorRate: number, more: { scoreShift?: number } = {}): Promise<string> {
  const { cp, readFile } = await import('node:fs/promises');
  const bundle = path.join(dir, 'bundle');
  await cp(path.join(REPO_ROOT, 'bundles/example'), bundle, { recursive: true });
  const configFile = path.join(bundle, 'config/model.json');
  const config = JSON.parse(await readFile(configFile, 'utf8'));
  config.faults.errorRate = errorRate;
  if (more.scoreShift !== undefined) config.faults.scoreShift = more.scoreShift;
  await writeFile(configFile, JSON.stringify(config));
  return bundle;
}

/** Steady traffic through the local router until `stop.abort()`; await `load` afterwards. */
export function steadyLoad(routerUrl: string): { stop: AbortController; load: Promise<void> } {
  const stop = new AbortController();
  const load = (async () => {
    while (!stop.signal.aborted) {
      const res = await fetch(`${routerUrl}/sentiment/predict`, { method: 'POST', body: '{"text":"fine"}', headers: { 'content-type': 'application/json' } }).catch(() => undefined);
      await res?.arrayBuffer();
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return { stop, load };
}
