import { registerHooks } from 'node:module';
registerHooks({ load(url, context, nextLoad) {
  if (url.includes('/@actions/workflow-parser/') && url.endsWith('.json')) return nextLoad(url, { ...context, importAttributes: { ...context.importAttributes, type: 'json' } });
  return nextLoad(url, context);
}});
const { parseAction } = await import('@actions/workflow-parser/actions/index');
const { parseWorkflow, NoOperationTraceWriter, convertWorkflowTemplate } = await import('@actions/workflow-parser');
const { readFileSync } = await import('node:fs');
for (const f of process.argv.slice(2)) {
const content = readFileSync(f, 'utf8');
const isAction = f.includes('actions/');
const r = isAction ? parseAction({ name: f, content }, new NoOperationTraceWriter()) : parseWorkflow({ name: f, content }, new NoOperationTraceWriter());
console.log(f, r.context.errors.getErrors().map(e => e.message));
if (!isAction) { const t = await convertWorkflowTemplate(r.context, r.value); console.log(t.errors?.map(e=>e.Message)); }
}
