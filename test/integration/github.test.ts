import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseWorkflowCommand, type ParsedCommand } from '../../src/cli/github/commands.js';
import { mermaidBlocks, validateXyChart } from '../../src/cli/github/mermaid.js';
import { parseOutputFile } from '../../src/cli/github/outputs.js';
import { CLI, REPO_ROOT, runCli, useScratch, type CliResult, steadyLoad } from '../helpers/fixtures.js';

/**
 * The real CLI as a GitHub Actions step: GITHUB_ACTIONS=true, a fresh $GITHUB_OUTPUT and
 * $GITHUB_STEP_SUMMARY per step, read back with the runner's rules; workflow commands read from
 * stderr with the runner's parser (stdout stays one JSON document with --json). On the embedded
 * local runtime: push, a first deploy, a bad canary rolled back under load, a canary promoted
 * from a second step, a rollback.
 */
const { fresh, cleanup } = useScratch();
let home: string;
let steps: string;
let base: NodeJS.ProcessEnv;
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

interface Step extends CliResult {
  outputs: Record<string, string>;
  summary: string;
  commands: ParsedCommand[];
}

let n = 0;
async function stepEnv(): Promise<{ env: NodeJS.ProcessEnv; files: { out: string; summary: string } }> {
  n++;
  const files = { out: path.join(steps, `output_${n}`), summary: path.join(steps, `summary_${n}`) };
  // The runner creates both files empty before the step.
  await writeFile(files.out, '');
  await writeFile(files.summary, '');
  return { env: { ...base, GITHUB_OUTPUT: files.out, GITHUB_STEP_SUMMARY: files.summary }, files };
}

async function readStep(r: CliResult, files: { out: string; summary: string }): Promise<Step> {
  const outputs = parseOutputFile(await readFile(files.out, 'utf8'));
  const summary = await readFile(files.summary, 'utf8');
  const commands = r.stderr.split('\n').flatMap((l) => parseWorkflowCommand(l) ?? []);
  return { ...r, outputs, summary, commands };
}

/** One step: the CLI with --json; stdout must be exactly one JSON document, free of workflow commands. */
async function step(args: string[]): Promise<Step> {
  const { env, files } = await stepEnv();
  const r = await runCli([...args, '--json'], { env, timeoutMs: 180_000 });
  const s = await readStep(r, files);
  assert.doesNotThrow(() => r.json(), r.stdout + r.stderr);
  assert.ok(!r.stdout.split('\n').some((l) => parseWorkflowCommand(l)), 'no workflow command on stdout in --json mode');
  assert.deepEqual(JSON.parse(s.outputs.result!), r.json(), 'the result output is the JSON result (or the error document)');
  // Secrets are masked before anything else, and never printed.
  assert.deepEqual(s.commands[0], { command: 'add-mask', properties: {}, data: SECRET }, r.stderr.slice(0, 500));
  for (const text of [r.stdout, r.stderr.replace(`::add-mask::${SECRET.replaceAll('%', '%25')}`, ''), s.summary, JSON.stringify(s.outputs)]) {
    assert.ok(!text.includes(SECRET), 'the secret leaks nowhere');
  }
  return s;
}

function annotations(s: Step): Array<[string, string | undefined, string]> {
  return s.commands.filter((c) => ['error', 'warning', 'notice'].includes(c.command)).map((c) => [c.command, c.properties.title, c.data]);
}

/** Every Mermaid block passes the strict validator and mermaid's own parser (headless: DOMPurify stubbed). */
async function assertValidCharts(summary: string): Promise<number> {
  const { default: DOMPurify } = await import('dompurify');
  Object.assign(DOMPurify, { sanitize: (s: unknown) => String(s), addHook: () => {} });
  const { default: mermaid } = await import('mermaid');
  const blocks = mermaidBlocks(summary);
  for (const b of blocks) {
    assert.deepEqual(validateXyChart(b), [], b);
    assert.equal(((await mermaid.parse(b)) as { diagramType: string }).diagramType, 'xychart', b);
  }
  return blocks.length;
}

/** Steady traffic through the router until the returned stop() is called. */
async function startLoad(): Promise<() => Promise<void>> {
  const url = (await runCli(['local', 'status', '--json'], { env: { ...base, GITHUB_ACTIONS: undefined } as unknown as NodeJS.ProcessEnv })).json().url;
  const { stop, load } = steadyLoad(url);
  return async () => {
    stop.abort();
    await load;
  };
}

before(async () => {
  home = await fresh('github-home');
  steps = await fresh('github-steps');
  base = {
    MODELCTL_HOME: home,
    MODELCTL_LOCAL_PORT: '0',
    MODELCTL_STORE: undefined,
    MODELCTL_GITHUB: undefined,
    GITHUB_ACTIONS: 'true',
    GITHUB_RUN_ID: '4242',
    GITHUB_REPOSITORY: 'acme/models',
    GITHUB_SERVER_URL: 'https://github.com',
    AWS_SECRET_ACCESS_KEY: SECRET,
  } as unknown as NodeJS.ProcessEnv;
});

after(async () => {
  await runCli(['local', 'down', '--forget'], { env: { ...base, GITHUB_ACTIONS: undefined } as unknown as NodeJS.ProcessEnv });
  await cleanup();
});

describe('modelctl as GitHub Actions steps', () => {
  const example = path.join(REPO_ROOT, 'bundles/example');
  let bad: string;

  test('bundle push: digest, version and ref outputs; a short summary', async () => {
    bad = path.join(await fresh('bad'), 'bundle');
    await cp(example, bad, { recursive: true });
    const config = JSON.parse(await readFile(path.join(bad, 'config/model.json'), 'utf8'));
    config.faults.errorRate = 0.5;
    await writeFile(path.join(bad, 'config/model.json'), JSON.stringify(config));

    const s = await step(['bundle', 'push', example, '--version', '1.0.0']);
    assert.equal(s.code, 0, s.stderr);
    const r = s.json();
    assert.deepEqual({ ...s.outputs, result: undefined }, { digest: r.digest, version: '1.0.0', ref: 'sentiment@1.0.0', result: undefined });
    assert.match(s.summary, /^### 📦 PUSHED · `sentiment@1\.0\.0`\n\n\*\*PUSHED\*\* — `sentiment@1\.0\.0` · `sha256:[0-9a-f]{64}` in `file:\/\//);
    for (const [dir, version] of [[bad, '1.1.0'], [example, '1.2.0']] as const) {
      const p = await step(['bundle', 'push', dir, '--version', version]);
      assert.equal(p.code, 0, p.stderr);
    }
  });

  test('first deploy: promoted; the summary says first deploy and how much moved', async () => {
    const s = await step(['deploy', 'sentiment@1.0.0']);
    assert.equal(s.code, 0, s.stderr);
    assert.deepEqual({ ...s.outputs, result: undefined }, { digest: s.json().digest, version: '1.0.0', outcome: 'promoted', 'rolled-back-to': '', serving: '1.0.0', result: undefined });
    assert.match(s.summary, /^### ✅ PROMOTED · `sentiment@1\.0\.0` serves 100%\n\n\*\*PROMOTED\*\* — `sentiment@1\.0\.0` serves 100% of traffic/);
    assert.match(s.summary, /- \*\*Against\*\* nothing: first deploy of `sentiment` on this target\n- \*\*Moved\*\* [\d.]+ (KiB|MiB) \(the whole bundle\)/);
    assert.deepEqual(annotations(s), [['notice', 'Promoted sentiment@1.0.0', 'sentiment@1.0.0 serves 100% of traffic (first version of the model: health check passed). Stable set: 1.0.0.']]);
    const groups = s.commands.filter((c) => c.command === 'group').map((c) => c.data);
    assert.deepEqual(groups, ['starting 1.0.0']);
  });

  test('a bad canary under load: rolled back (exit 3); outputs, groups, annotations and a summary with valid charts', async () => {
    const stopLoad = await startLoad();
    const s = await step(['deploy', 'sentiment@1.1.0', '--steps', '30,100', '--interval', '20s', '--check-every', '1s']);
    await stopLoad();
    assert.equal(s.code, 3, s.stderr);
    const r = s.json();
    assert.deepEqual({ ...s.outputs, result: undefined }, { digest: r.digest, version: '1.1.0', outcome: 'rolled-back', 'rolled-back-to': '1.0.0', serving: '1.0.0', result: undefined });

    // Log groups per phase, never nested, all closed.
    const seq = s.commands.filter((c) => c.command === 'group' || c.command === 'endgroup').map((c) => (c.command === 'group' ? c.data : 'end'));
    assert.deepEqual(seq, ['starting 1.1.0 (stable 1.0.0)', 'end', 'canary 30%', 'end', 'rolling back', 'end']);
    const notes = annotations(s);
    assert.deepEqual(notes.map(([level, title]) => [level, title]), [
      ['error', 'Gate error-rate failed (canary 30%)'],
      ['error', 'Rolled back sentiment@1.1.0'],
    ]);
    assert.match(notes[0]![2], /^0\.\d+ against limit <= 0\.05 and <= stable .* \(\d+ samples\): .*\d+ of \d+ requests failed/);
    assert.match(notes[1]![2], /gate error-rate failed.*\. All traffic is back on 1\.0\.0\.$/);

    const md = s.summary;
    assert.match(md, /^### ❌ ROLLED BACK · `sentiment@1\.1\.0` → back on `1\.0\.0`\n\n\*\*ROLLED BACK\*\* — `sentiment@1\.1\.0`: (critical )?gate error-rate failed/);
    assert.match(md, /\n`modelctl deploy sentiment@1\.1\.0` on \*\*local\*\* · store `file:\/\/\/[^`]+` · \[run 4242\]\(https:\/\/github\.com\/acme\/models\/actions\/runs\/4242\)\n/, 'where it ran, and the run');
    assert.match(md, /\n\| error-rate \| \*\*0\.\d+\*\* \| 0 \| ≤ 0\.05 and ≤ 0\.01 \(stable × 1\.5 \+ 0\.01\) \| ❌ \*\*fail\*\* \| canary 30% \|\n/);
    assert.match(md, /- \*\*Against\*\* `sentiment@1\.0\.0` \(serving before this deploy\) · `sha256:[0-9a-f]{64}`/);
    assert.match(md, /- \*\*Changed\*\* `config` \(1 changed file: `config\/model\.json`\) · unchanged: `eval`, `preprocessing`, `prompts`, `serving`, `weights`/);
    assert.match(md, /- \*\*Moved\*\* [\d.]+ (B|KiB) of [\d.]+ (KiB|MiB) \(\d+%\): the blobs `1\.0\.0` lacks/);
    assert.match(md, /\| canary 30% · \*\*fail\*\* \| error-rate \| 0\.\d+ \| &lt;= 0\.05 and &lt;= stable \(0\) × 1\.5 \+ 0\.01 = 0\.01 \| \*\*fail\*\* \| \d+ \| `local:error-rate\{model=sentiment,version=1\.1\.0\}/);
    // A critical gate fails at its first check: one measurement per gate — charted all the same
    // (before, this rollback had no chart at all), the failed gate first.
    assert.ok((await assertValidCharts(md)) >= 1, md);
    // (One measurement as bars, or two or more over time: how many checks ran before the verdict depends on timing.)
    assert.match(md, /\n\*\*error-rate\*\* — (one measurement with a value, at [\d.]+ s, then rollback at [\d.]+ s: candidate 1\.1\.0 and stable 1\.0\.0 \(blue bars\) against the limit \(red line\)|candidate `1\.1\.0` \(blue\) vs stable `1\.0\.0` \(grey\) vs limit \(red\)[^\n]*)\.\n\n```mermaid\n/);
    assert.match(md, /\*\*Stable set after the run\*\* `1\.0\.0` \(serving\)\n/);
  });

  test('promote from a second step: the deploy is asked, then reports promoted with charts; rollback switches back', async () => {
    const { env, files } = await stepEnv();
    const stopLoad = await startLoad();
    const child = spawn(process.execPath, [CLI, 'deploy', 'sentiment@1.2.0', '--steps', '50,100', '--interval', '60s', '--check-every', '1s'], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const done = new Promise<number | null>((resolve) => child.on('close', resolve));
    const deadline = Date.now() + 60_000;
    // Let the gates measure a few times (pass) before a human promotes.
    while ((stderr.match(/gate error-rate: [\d.]+ .*→ pass/g) ?? []).length < 3) {
      assert.ok(Date.now() < deadline, `the canary never passed three checks:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const promote = await step(['promote', 'sentiment']);
    assert.equal(promote.code, 0, promote.stderr);
    assert.deepEqual({ ...promote.outputs, result: undefined }, { outcome: 'promote-requested', serving: '', version: '1.2.0', result: undefined });
    assert.match(promote.summary, /REQUESTED\*\* — the running deploy of `sentiment@1\.2\.0` \(<https:\/\/github\.com\/acme\/models\/actions\/runs\/4242>\) was asked to promote/);

    assert.equal(await done, 0, stderr);
    await stopLoad();
    const deploy = await readStep({ code: 0, stdout, stderr, json: () => undefined }, files);
    // Without --json: people's text on stdout, workflow commands on stderr.
    assert.match(stdout, /^sentiment@1\.2\.0: PROMOTED — promoted by https:\/\/github\.com\/acme\/models\/actions\/runs\/4242/);
    assert.equal(deploy.outputs.outcome, 'promoted');
    assert.equal(deploy.outputs.serving, '1.2.0');
    assert.deepEqual(annotations(deploy).map(([l, t]) => [l, t]), [['notice', 'Promoted sentiment@1.2.0']]);
    assert.match(deploy.summary, /^### ✅ PROMOTED · `sentiment@1\.2\.0` serves 100%\n/);
    assert.match(deploy.summary, /- \*\*Changed\*\* no component \(same files, new version\)/, '1.2.0 has the same files as 1.0.0');
    assert.ok((await assertValidCharts(deploy.summary)) >= 2, deploy.summary);

    const back = await step(['rollback', 'sentiment']);
    assert.equal(back.code, 0, back.stderr);
    assert.deepEqual({ ...back.outputs, result: undefined }, { outcome: 'switched', serving: '1.0.0', 'rolled-back-to': '1.0.0', healthy: 'true', result: undefined });
    assert.match(back.summary, /^### ↩️ MANUAL ROLLBACK · `sentiment` → `1\.0\.0` \(was `1\.2\.0`\)\n\n\*\*MANUAL ROLLBACK\*\* — all traffic switched by hand to `sentiment@1\.0\.0` \(was `1\.2\.0`\); its health check passed\./);
    assert.deepEqual(annotations(back).map(([l, t]) => [l, t]), [['notice', 'Rolled back sentiment to 1.0.0']]);
  });

  test('a failing command: one error annotation with message and hint; MODELCTL_GITHUB=off turns it all off', async () => {
    const s = await step(['deploy', 'sentiment@9.9.9']);
    assert.equal(s.code, 8);
    assert.deepEqual(annotations(s).map(([l, t]) => [l, t]), [['error', 'modelctl deploy failed']]);
    assert.match(annotations(s)[0]![2], /sentiment@9\.9\.9 is not in .*\nHint: list what is there/);
    assert.deepEqual(Object.keys(s.outputs), ['result'], 'only the result output: the error document');
    assert.equal(JSON.parse(s.outputs.result!).error.code, 'not-found');

    const { env, files } = await stepEnv();
    const off = await runCli(['bundle', 'list', '--json'], { env: { ...env, MODELCTL_GITHUB: 'off' } });
    assert.equal(off.code, 0);
    assert.equal(off.stderr, '');
    assert.equal(await readFile(files.out, 'utf8'), '');
  });
});
