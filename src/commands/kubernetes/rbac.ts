import { Flags } from '@oclif/core';
import { Document, isMap, isSeq } from 'yaml';
import { BaseCommand } from '../../cli/base-command.js';
import { UsageError } from '../../core/errors.js';
import { RBAC_RULES, roleBindingFor, roleFor } from '../../targets/kubernetes/rbac.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export interface RbacList {
  apiVersion: 'v1';
  kind: 'List';
  items: unknown[];
}

export default class KubernetesRbac extends BaseCommand {
  static override summary = 'Print the namespaced Role and RoleBinding modelctl needs (pipe it to kubectl apply).';
  static override description = `Everything modelctl does in a cluster needs only these namespaced permissions: no ClusterRole, no CRD,
no controller. Apply them once per namespace, bound to the ServiceAccount your CI or your users run as:

${RBAC_RULES.map(({ rule, why }) => `  ${rule.resources.join(', ')}${rule.apiGroups[0] ? ` (${rule.apiGroups[0]})` : ''}: ${rule.verbs.join(' ')} — ${why}`).join('\n')}

The namespace defaults to modelctl.yaml's kubernetes.namespace, then "default".
Output is multi-document YAML; with --json, one v1 List.`;
  static override examples = [
    '<%= config.bin %> kubernetes rbac --namespace ml-serving | kubectl apply -f -',
    '<%= config.bin %> kubernetes rbac --namespace ml-serving --service-account github-deployer --json',
  ];
  static override flags = {
    namespace: Flags.string({ char: 'n', env: 'MODELCTL_NAMESPACE', description: 'Namespace of the Role and RoleBinding (default: modelctl.yaml kubernetes.namespace, else "default").' }),
    'service-account': Flags.string({ description: 'ServiceAccount to bind, as <name> or <namespace>:<name>.', default: 'modelctl' }),
    name: Flags.string({ description: 'Name of the Role and the RoleBinding.', default: 'modelctl' }),
  };

  protected async execute(): Promise<RbacList> {
    const { flags } = await this.parse(KubernetesRbac);
    // modelctl.yaml's kubernetes.namespace (the section is checked, with file and line, when the file is read).
    const namespace = flags.namespace ?? (await (await this.context()).kubernetesConfig()).section?.namespace ?? 'default';
    check(namespace, '--namespace');
    check(flags.name, '--name');
    const [saNamespace, saName] = flags['service-account'].includes(':') ? flags['service-account'].split(':', 2) : [namespace, flags['service-account']];
    check(saNamespace!, '--service-account namespace');
    if (!saName || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(saName)) throw new UsageError(`--service-account: "${saName ?? ''}" is not a ServiceAccount name`, { hint: 'lower-case letters, digits, "-" and "."' });
    const opts = { namespace, name: flags.name, serviceAccount: saName, serviceAccountNamespace: saNamespace };
    return { apiVersion: 'v1', kind: 'List', items: [roleFor(opts), roleBindingFor(opts)] };
  }

  protected human(list: RbacList): string {
    return list.items.map((item) => `---\n${toYaml(item)}`).join('').trimEnd();
  }
}

/** YAML of one object; each Role rule carries its reason as a comment. */
function toYaml(item: unknown): string {
  const doc = new Document(item);
  const rules = doc.get('rules');
  if (isSeq(rules)) {
    rules.items.forEach((node, i) => {
      if (isMap(node) && RBAC_RULES[i]) node.commentBefore = ` ${RBAC_RULES[i].why}`;
    });
  }
  return doc.toString({ lineWidth: 0 });
}

function check(value: string, what: string): void {
  if (value.length > 63 || !DNS_LABEL.test(value)) {
    throw new UsageError(`${what}: "${value}" is not a DNS-1123 label`, { hint: 'lower-case letters, digits and "-", at most 63 characters' });
  }
}


