import { StoreCommand, storeFlags } from '../../cli/base-command.js';
import type { ExitCode } from '../../core/errors.js';
import { targetFlags } from '../../cli/rollout-flags.js';
import { checkCluster, checkExitCode, type CheckReport } from '../../targets/kubernetes/check.js';

export default class KubernetesCheck extends StoreCommand {
  static override summary = 'Check a cluster before the first rollout: API server, permissions, traffic routing, store.';
  static override description = `Asks the cluster, without writing anything:
  api-server   it answers (and which Kubernetes it runs);
  permissions  every permission of \`modelctl kubernetes rbac\` is granted in the namespace (SelfSubjectAccessReview);
  traffic      how canary weights will move: Gateway API with a parent Gateway, or replica ratio;
  gateway-api  which Gateway API version (the HTTPRoute CRD, when the CRDs can be read) and whether it
               supports RequestMirror percent (v1.3.0+ standard channel; checked by a server-side dry run);
  settings     the kubernetes: section of modelctl.yaml against the API server's rules and the upstream
               schemas (the same checks deploy and deploy --dry-run run, which also check the bundle);
  store        pods can pull bundles (an s3:// store, and the Secret holding its credentials).

Exit codes: 0 all good; 9 the cluster cannot be reached or refuses a permission; 2 a configuration problem.`;
  static override examples = [
    '<%= config.bin %> kubernetes check --context prod -n ml-serving --store s3://models/prod',
    '<%= config.bin %> kubernetes check --json | jq \'.checks[] | select(.ok == false)\'',
  ];
  static override flags = {
    ...storeFlags,
    kubeconfig: targetFlags.kubeconfig,
    context: targetFlags.context,
    namespace: targetFlags.namespace,
  };

  protected async execute(): Promise<CheckReport> {
    const { flags } = await this.parse(KubernetesCheck);
    const store = await this.openStore(flags);
    const { openKubernetes } = await import('../../targets/kubernetes/open.js');
    const config = await (await this.context()).kubernetesConfig();
    const parts = openKubernetes({ flags, config, store, note: (m) => this.note(m) });
    return checkCluster({ ...parts, settingsFile: config.file ?? 'modelctl.yaml' });
  }

  protected override exitCodeOf(r: CheckReport): ExitCode {
    return checkExitCode(r);
  }

  protected human(r: CheckReport): string {
    const lines = [`${r.server} (context ${r.context}, from ${r.source}), namespace ${r.namespace}:`];
    for (const c of r.checks) {
      lines.push(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(11)} ${c.detail}`);
      if (!c.ok && c.hint) lines.push(`       ${''.padEnd(11)} → ${c.hint}`);
    }
    return lines.join('\n');
  }
}
