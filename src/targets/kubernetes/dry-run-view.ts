import { stringify } from 'yaml';
import type { KubernetesDryRun } from './dry-run.js';

/**
 * `deploy --target kubernetes --dry-run` for people: ONE multi-document YAML stream on stdout, so it
 * can be reviewed, diffed or piped to a linter (kubeconform, kubectl apply --dry-run=server -f -).
 * The plan, where each fact came from and every assumption are YAML comments; each step's objects
 * follow its comment, one document each; replica counts (merge patches, not objects) are comments.
 */
export function renderKubernetesDryRun(planText: string, k: KubernetesDryRun): string {
  const comment = (text: string) =>
    text
      .split('\n')
      .map((l) => (l ? `# ${l}` : '#'))
      .join('\n');
  const head = [
    comment(planText),
    '#',
    `# namespace ${k.namespace} (from ${k.namespaceFrom}); traffic by ${k.traffic} (${k.trafficFrom})`,
    k.cluster ? `# cluster: ${k.cluster.server} (context ${k.cluster.context}, from ${k.cluster.source})` : '# cluster: none asked',
    ...k.fromCluster.map((f) => `#   from the cluster: ${f}`),
    ...k.assumed.map((a) => `#   assumed: ${a}`),
    '# Server-side apply, field manager modelctl, fieldValidation=Strict.',
  ].join('\n');
  const docs: string[] = [];
  k.steps.forEach((s, i) => {
    const notes = [`# step ${i}: ${s.name}`];
    for (const [v, r] of Object.entries(s.replicas ?? {})) notes.push(`#   ${v}: ${r.replicas} replica(s)${r.inService === undefined ? '' : r.inService ? ', in service' : ', out of service'}`);
    if (s.note) notes.push(`#   ${s.note}`);
    if (s.objects.length === 0) docs.push(`${notes.join('\n')}\n#   (no object: replica counts only)\n`);
    s.objects.forEach((o, j) => docs.push(`${j === 0 ? `${notes.join('\n')}\n` : ''}${stringify(o)}`));
  });
  return `${head}\n---\n${docs.join('---\n')}`.replace(/\n$/, '');
}
