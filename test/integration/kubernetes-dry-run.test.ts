import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Service } from 'kubernetes-models/v1/Service';
import { parseAllDocuments, stringify } from 'yaml';
import { bundleYaml, runCli, sampleBundle, useScratch, type CliResult } from '../helpers/fixtures.js';

/**
 * `deploy --target kubernetes --dry-run` with NO cluster configured (no kubeconfig, no KUBECONFIG,
 * no ~/.kube/config, no in-cluster account): the GitOps review / CI lint case. The real CLI, a
 * file store holding two versions, a project with modelctl.yaml; stdout must be one multi-document
 * YAML stream whose every object passes the upstream schemas.
 */

const { fresh, bundle, cleanup } = useScratch();
after(cleanup);

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  Deployment: Deployment as never,
  Service: Service as never,
  HTTPRoute: HTTPRoute as never,
};

describe('deploy --target kubernetes --dry-run without any cluster', { timeout: 120_000 }, () => {
  let project: string;
  let env: NodeJS.ProcessEnv;
  const cli = (args: string[]): Promise<CliResult> => runCli([...args], { env, cwd: project, timeoutMs: 60_000 });
  const writeConfig = (kubernetes: object) => writeFile(path.join(project, 'modelctl.yaml'), stringify({ kubernetes }));
  const GOOD = {
    store: 's3://models/prod', // where the cluster's pods pull from (the CLI's own store is a folder here)
    route: { parentRefs: [{ name: 'public', namespace: 'gateways' }], hostnames: ['models.example.com'], path: '/sentiment' },
  };

  before(async () => {
    const home = await fresh('home'); // no .kube/config in it
    project = await fresh('project');
    env = { HOME: home, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '', MODELCTL_HOME: await fresh('mh'), MODELCTL_STORE: `file://${await fresh('store')}` };
    for (const version of ['1.0.0', '1.1.0']) {
      const files = sampleBundle({ version });
      files['bundle.yaml'] = bundleYaml('sentiment', version, 'serve:\n  command: [node, serve.mjs]\n  readinessPath: /ready\n  scoreField: score\n');
      const r = await runCli(['bundle', 'push', await bundle(files), '--json'], { env });
      assert.equal(r.code, 0, r.stderr);
    }
    await writeConfig(GOOD);
  });

  test('human: the plan as comments, then every object of every step as YAML documents, all valid upstream', async () => {
    const r = await cli(['deploy', 'sentiment@1.1.0', '--target', 'kubernetes', '--dry-run', '--canary', '10%', '--shadow', '5%']);
    assert.equal(r.code, 0, r.stderr);
    const docs = parseAllDocuments(r.stdout);
    assert.ok(docs.every((d) => d.errors.length === 0), 'stdout is one valid multi-document YAML stream');
    const objects = docs.map((d) => d.toJS()).filter((o) => o !== null);
    assert.deepEqual(
      objects.map((o) => `${o.kind} ${o.metadata.name}`),
      [
        'Deployment sentiment-1-1-0',
        'Service sentiment-1-1-0',
        'Deployment sentiment-1-0-0',
        'Service sentiment-1-0-0',
        'HTTPRoute sentiment', // shadow
        'HTTPRoute sentiment', // canary 10
        'HTTPRoute sentiment', // 25
        'HTTPRoute sentiment', // 50
        'HTTPRoute sentiment', // promote
      ],
    );
    for (const o of objects) new MODELS[o.kind]!(o as never).validate();
    const routes = objects.filter((o) => o.kind === 'HTTPRoute');
    assert.deepEqual(routes[0].spec.rules[0].filters.find((f: any) => f.type === 'RequestMirror').requestMirror, { backendRef: { name: 'sentiment-1-1-0', port: 80 }, percent: 5 });
    assert.deepEqual(routes[1].spec.rules[0].backendRefs.map((b: any) => [b.name, b.weight]), [['sentiment-1-0-0', 90], ['sentiment-1-1-0', 10]]);
    assert.deepEqual(routes[4].spec.rules[0].backendRefs.map((b: any) => [b.name, b.weight]), [['sentiment-1-1-0', 100]]);
    // The probes reach the model through the meter (its readinessPath /ready), on the pod IP.
    const model = objects[0].spec.template.spec.containers.find((c: any) => c.name === 'model');
    assert.equal(model.readinessProbe.httpGet.port, 9090);
    assert.ok(objects.every((o) => o.metadata.namespace === 'default'));
    assert.match(r.stdout, /# namespace default \(from the default namespace\)/);
    assert.match(r.stdout, /#   assumed: no Kubernetes cluster is configured/);
    assert.match(r.stdout, /#   assumed: serving version 1\.0\.0: only the cluster's ledger knows/);
    assert.match(r.stdout, /# step 2: canary 10%/);
  });

  test('--json: one document with the plan, every step, and where each fact came from; --namespace is taken', async () => {
    const r = await cli(['deploy', 'sentiment@1.1.0', '--target', 'kubernetes', '--dry-run', '--steps', '50,100', '--namespace', 'ml-review', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = r.json();
    assert.equal(out.kubernetes.cluster, null);
    assert.deepEqual(out.kubernetes.fromCluster, []);
    assert.equal(out.kubernetes.namespace, 'ml-review');
    assert.equal(out.kubernetes.namespaceFrom, '--namespace');
    assert.equal(out.kubernetes.traffic, 'gateway-api');
    assert.deepEqual(out.kubernetes.steps.map((s: any) => s.phase), ['versions', 'canary', 'promote']);
    assert.equal(out.manifests.length, 6);
    assert.ok(out.manifests.every((m: any) => m.metadata.namespace === 'ml-review'));
    assert.equal(out.stable, '1.0.0');
  });

  test('the first version of a model: a first deploy, said as an assumption', async () => {
    const r = await cli(['deploy', 'sentiment@1.0.0', '--target', 'kubernetes', '--dry-run', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = r.json();
    assert.deepEqual(out.kubernetes.steps.map((s: any) => s.phase), ['versions', 'go-live']);
    assert.ok(out.kubernetes.assumed.some((a: string) => /a first deploy/.test(a)));
  });

  test('settings the API server would refuse: every one named (file, field, value, rule), exit 2', async () => {
    await writeConfig({
      ...GOOD,
      route: { ...GOOD.route, hostnames: ['Models.Example.com'] },
      resources: { requests: { cpu: '2' }, limits: { cpu: '1' } },
      tolerations: [{ operator: 'Exists', value: 'x' }],
    });
    try {
      const r = await cli(['deploy', 'sentiment@1.1.0', '--target', 'kubernetes', '--dry-run', '--json']);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      const err = r.json().error;
      assert.match(err.message, /^3 problems the Kubernetes API server would refuse/);
      const file = path.join(project, 'modelctl.yaml');
      assert.deepEqual(
        err.issues.map((i: any) => [i.file, i.field, i.value]),
        [
          [file, 'kubernetes.route.hostnames[0]', 'Models.Example.com'],
          [file, 'kubernetes.tolerations[0].value', 'x'],
          [file, 'kubernetes.resources.requests.cpu', '2'],
        ],
      );
    } finally {
      await writeConfig(GOOD);
    }
  });
});
