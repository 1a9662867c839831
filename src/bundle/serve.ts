import { z } from 'zod';
import { agreementOf, answerComparisonSchema } from '../gates/answers.js';
import type { AnswerComparison } from '../core/gates.js';

/**
 * The `serve:` section of bundle.yaml: how the local runtime runs a version.
 *
 *   serve:
 *     command: [node, serve.mjs]   # argv, run with cwd = the bundle directory; "node" = modelctl's own Node
 *     readinessPath: /healthz      # GET → 200 means ready (default /healthz)
 *     env: {LOG_LEVEL: info}       # extra environment (PORT, HOST, MODELCTL_MODEL, MODELCTL_VERSION are set by the runtime)
 *     scoreField: score            # numeric field of JSON answers recorded per request (score histograms, score-mean gates)
 *     agreementField: label        # field compared between a shadow's answer and the live answer (shadow agreement)
 *     agreement: {mode: labels, field: labels, minJaccard: 0.8}   # or a richer comparison (src/gates/answers.ts); not both
 *     stopGraceMs: 5000            # SIGTERM → SIGKILL delay when a version stops
 *     resources:                   # Kubernetes target only (the local runtime ignores it): merged over
 *       requests: {cpu: 500m, memory: 1Gi}   # modelctl.yaml's kubernetes.resources, the bundle winning per key
 *       limits: {nvidia.com/gpu: 1}
 *
 * Fields are dotted paths into the JSON answer (`result.score`). The schema is checked when a
 * version is deployed, so a typo fails the deploy with file, line and field instead of a version
 * that never becomes ready.
 */
const fieldPath = z
  .string({ error: 'expected a field name of the JSON answer, e.g. score or result.score' })
  .regex(/^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$/, 'expected a field name or dotted path, e.g. score or result.score');

const quantity = z
  .union([z.string({ error: 'expected a quantity such as 500m, 1Gi or 1' }).min(1), z.number().nonnegative()], {
    error: 'expected a quantity such as 500m, 1Gi or 1',
  })
  .transform(String);
const resourceMap = z.record(z.string().min(1), quantity, { error: 'expected a map like {cpu: 500m, memory: 1Gi}' });

export const serveSpecSchema = z
  .object({
    command: z
      .array(z.string({ error: 'expected a string' }).min(1, 'cannot be empty'), { error: 'expected the argv as a list, e.g. [node, serve.mjs]' })
      .min(1, 'expected at least the program, e.g. [node, serve.mjs]'),
    readinessPath: z
      .string({ error: 'expected an HTTP path such as /healthz' })
      .regex(/^\/[^\s]*$/, 'expected an HTTP path starting with "/", such as /healthz')
      .default('/healthz'),
    env: z
      .record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String), {
        error: 'expected a map of variable name to value',
      })
      .default({}),
    scoreField: fieldPath.optional(),
    agreementField: fieldPath.optional(),
    agreement: answerComparisonSchema.optional(),
    stopGraceMs: z.number({ error: 'expected milliseconds' }).int().min(0).max(600_000).default(5000),
    resources: z
      .object({ requests: resourceMap.optional(), limits: resourceMap.optional() }, { error: 'expected {requests: {…}, limits: {…}}' })
      .strict()
      .optional(),
  })
  .strict()
  .refine((s) => s.agreementField === undefined || s.agreement === undefined, {
    message: 'agreementField and agreement both say how shadow answers are compared: keep one (agreementField: x is agreement: {mode: fields, fields: [x]})',
    path: ['agreement'],
  });

export type ServeSpec = z.output<typeof serveSpecSchema>;

/**
 * A manifest's `serve:` section as the runtime reads it (undefined when it does not parse) and the
 * answer comparison it asks for (undefined: the bundle does not say how its answers compare).
 */
export function servedAnswers(serveSection: unknown): { serve: ServeSpec | undefined; agreement: AnswerComparison | undefined } {
  const parsed = serveSpecSchema.safeParse(serveSection ?? {});
  const serve = parsed.success ? parsed.data : undefined;
  return { serve, agreement: agreementOf(serve) };
}
