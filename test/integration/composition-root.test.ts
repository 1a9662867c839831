import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Config } from '@oclif/core';
import { stringify } from 'yaml';
import Rollback from '../../src/commands/rollback.js';
import { createContext, type Context } from '../../src/services/context.js';
import { rollback } from '../../src/services/rollback.js';
import { deploy } from '../../src/services/rollouts.js';
import { openStore } from '../../src/store/open.js';
import type { BundleStore } from '../../src/store/store.js';
import { meterWindow } from '../fakes/kube/meter-window.js';
import { startFakeKube, type FakeKube } from '../fakes/kube/server.js';
import { bundleYaml, REPO_ROOT, runCli, sampleBundle, useScratch } from '../helpers/fixtures.js';

const MODEL = 'sentiment';

/**
 * The composition root on a Kubernetes world (the fake API server, a file store: the pods of the
 * fake pull nothing, the cluster's store is only named in manifests): one context per
 * invocation reads and validates modelctl.yaml once, whatever the command asks of it (it used to be
 * five times for a deploy); and commands run in process over a context a test gives them.
 */
describe('one context per invocation', { timeout: 180_000 }, () => {
  const scratch = useScratch();
  let fake: FakeKube;
  let store: BundleStore;
  let storeUrl: string;
  let projectDir: string;
  let kubeconfigFile: string;
  let home: string;
  let reads: string[];
  const contextFor = (): Context =>
    createContext({
      cwd: projectDir,
      env: { ...process.env, MODELCTL_HOME: home },
      // The real file, read through a reader that counts.
      readText: async (file) => {
        reads.push(file);
        return readFile(file, 'utf8');
      },
    });

  before(async () => {
    fake = await startFakeKube();
    // Every version's metering sidecar reports a healthy window (0.5% errors); in a shadow, the
    // candidate's meter compares each mirrored answer with stable's (the bundles declare agreementField): all agree.
    fake.onPodProxy(({ path: p }) => (p.replace(/^\//, '').startsWith('v1/window') ? { status: 200, body: meterWindow(0.005, { agreement: 1 }) } : { status: 404, body: { error: `no ${p}` } }));
    home = await scratch.fresh('home');
    storeUrl = `file://${await scratch.fresh('store')}`;
    store = await openStore(storeUrl, { s3PathStyle: false });
    projectDir = await scratch.fresh('project');
    kubeconfigFile = path.join(projectDir, 'kubeconfig');
    await writeFile(kubeconfigFile, fake.kubeconfigYaml('default'));
    const kubernetes = {
      namespace: 'default',
      store: 's3://models/prod', // the store as the cluster sees it
      route: { parentRefs: [{ name: 'public', namespace: 'gateways' }], hostnames: ['models.example.com'], path: '/sentiment' },
      lease: '10s',
      progressDeadline: '20s',
    };
    await writeFile(path.join(projectDir, 'modelctl.yaml'), stringify({ kubernetes }));
    for (const version of ['1.0.0', '1.1.0']) {
      const files = sampleBundle({ version });
      files['bundle.yaml'] = bundleYaml(MODEL, version, 'serve:\n  command: [node, serve.mjs]\n  readinessPath: /healthz\n  scoreField: score\n  agreementField: label\n');
      const r = await runCli(['bundle', 'push', await scratch.bundle(files), '--json'], { env: { MODELCTL_HOME: home, MODELCTL_STORE: storeUrl } });
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(async () => {
    await fake?.close();
    await scratch.cleanup();
  });

  test('a Kubernetes deploy and a dry run each read and validate modelctl.yaml exactly once', async () => {
    const target = { target: 'kubernetes' as const, store, kube: { kubeconfig: kubeconfigFile } };
    reads = [];
    const first = await deploy(contextFor(), { ...target, ref: `${MODEL}@1.0.0`, flags: {}, dryRun: false, resume: false, telemetry: true });
    assert.ok('outcome' in first);
    assert.equal(first.outcome, 'promoted', first.reason);
    // Plan (rollout:), telemetry (telemetry:), gate registry (prometheus:), target (kubernetes:): one read.
    assert.deepEqual(reads, [path.join(projectDir, 'modelctl.yaml')]);

    reads = [];
    const dry = await deploy(contextFor(), { ...target, ref: `${MODEL}@1.1.0`, flags: { canary: '10%' }, dryRun: true, resume: false, telemetry: true });
    assert.ok(!('outcome' in dry));
    assert.deepEqual(reads, [path.join(projectDir, 'modelctl.yaml')]);
  });

  test('rollback --force redeploys with every plan flag deploy takes: --shadow, --shadow-duration, --shadow-only too', async () => {
    // 1.1.0 is promoted over 1.0.0, then rolled back from: it leaves the stable set and is stopped,
    // so it is no longer warm and `rollback --to 1.1.0 --force` deploys it afresh. With the shadow
    // flags it is judged in shadow and never given live traffic (outcome shadow-passed); were they
    // dropped, it would climb the canary steps and be promoted.
    const target = { target: 'kubernetes' as const, store, kube: { kubeconfig: kubeconfigFile } };
    const canary = await deploy(contextFor(), { ...target, ref: `${MODEL}@1.1.0`, flags: { steps: '50,100', interval: '1s', checkEvery: '1s' }, dryRun: false, resume: false });
    assert.ok('outcome' in canary);
    assert.equal(canary.outcome, 'promoted', canary.reason);
    const back = await rollback(contextFor(), target, { model: MODEL, force: false, keepStable: false, plan: {} });
    assert.equal(back.action, 'switched');
    assert.ok(!back.deploy && !back.stableSet.includes('1.1.0'), `1.1.0 left the stable set: ${back.stableSet.join(',')}`);
    reads = [];
    const ctx = contextFor();
    const out: string[] = [];
    class InProcessRollback extends Rollback {
      protected override async createContext(): Promise<Context> {
        return ctx;
      }
      protected override writeOut(text: string): void {
        out.push(text);
      }
    }
    const argv = [MODEL, '--to', '1.1.0', '--force', '--shadow', '30%', '--shadow-duration', '1s', '--shadow-only', '--steps', '50,100', '--interval', '1s'];
    const flags = ['--target', 'kubernetes', '--kubeconfig', kubeconfigFile, '--store', storeUrl, '--json'];
    const savedGithub = process.env.MODELCTL_GITHUB;
    process.env.MODELCTL_GITHUB = 'off'; // the suite may itself run in GitHub Actions
    try {
      await InProcessRollback.run([...argv, ...flags], await Config.load(REPO_ROOT)).catch((err: Error) => assert.fail(`${err.message}: ${out.join('')}`));
    } finally {
      if (savedGithub === undefined) delete process.env.MODELCTL_GITHUB;
      else process.env.MODELCTL_GITHUB = savedGithub;
    }
    assert.equal(out.length, 1, 'one JSON document on stdout');
    const result = JSON.parse(out[0]!);
    assert.equal(result.action, 'redeployed');
    assert.equal(result.deploy.version, '1.1.0');
    assert.equal(result.deploy.outcome, 'shadow-passed', result.deploy.reason);
    assert.equal(result.deploy.serving, '1.0.0', 'a shadow-only rollout never takes live traffic');
    assert.equal(process.exitCode ?? 0, 0);
    assert.deepEqual(reads, [path.join(projectDir, 'modelctl.yaml')], 'the store, the engine and the redeploy share one read');
  });
});
