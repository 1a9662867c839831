import { stat } from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from '../core/errors.js';
import { z } from 'zod';
import { loadYamlFile } from '../core/yaml-file.js';
import { isExactSemver } from './semver.js';
import { serveSpecSchema } from './serve.js';

/** The file at the root of every bundle directory. */
export const BUNDLE_FILE = 'bundle.yaml';

/** Components every bundle declares (possibly as empty lists); more may be added by name. */
export const REQUIRED_COMPONENTS = ['weights', 'prompts', 'preprocessing', 'config'] as const;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export const bundleName = z
  .string({ error: 'expected a string' })
  .max(63, 'must be at most 63 characters (a DNS-1123 label)')
  .regex(DNS_LABEL, 'must be a DNS-1123 label: lower-case letters, digits and "-", starting and ending with a letter or digit');

export const bundleVersion = z
  .string({ error: 'expected a semver version as a string, e.g. "1.4.0" (quote it in YAML)' })
  .refine(isExactSemver, { message: 'must be a full semver version like 1.4.0 or 1.4.0-rc.1+build.7' });

const componentPaths = z.array(z.string({ error: 'expected a path (string) relative to the bundle root' }).min(1, 'a path cannot be empty'), {
  error: 'expected a list of paths relative to the bundle root, e.g. [weights/]',
});

/**
 * bundle.yaml. `serve` and `rollout` are owned by later features: accepted here as free-form objects
 * so that adding their schemas later changes no bundle's meaning.
 */
export const bundleSpecSchema = z
  .object({
    name: bundleName,
    version: bundleVersion,
    components: z
      .record(z.string().regex(DNS_LABEL, 'component names must be DNS-1123 labels (e.g. weights, eval-data)'), componentPaths, {
        error: 'expected a map of component name to a list of paths',
      })
      .superRefine((components, ctx) => {
        for (const required of REQUIRED_COMPONENTS) {
          if (!(required in components)) {
            ctx.addIssue({
              code: 'custom',
              path: [required],
              message: `missing component "${required}": every bundle declares ${REQUIRED_COMPONENTS.join(', ')} (use [] when there is nothing)`,
            });
          }
        }
      }),
    metadata: z.record(z.string(), z.unknown(), { error: 'expected a map of free-form keys' }).optional(),
    // Checked here (so `bundle pack` catches a typo) but stored as written: defaults are the runtime's business.
    serve: z
      .record(z.string(), z.unknown(), { error: 'expected a map' })
      .superRefine((serve, ctx) => {
        const r = serveSpecSchema.safeParse(serve);
        if (!r.success) for (const issue of r.error.issues) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
      })
      .optional(),
    rollout: z.record(z.string(), z.unknown(), { error: 'expected a map' }).optional(),
  })
  .strict();

export type BundleSpec = z.output<typeof bundleSpecSchema>;

/**
 * bundle.yaml describes a bundle; data belongs in its components. Bounded because the file is
 * parsed, validated, canonicalised and stored (in the manifest and as written) several times over:
 * a 20 MiB metadata value took about 1 GB of memory. 1 MiB leaves room for a long model card.
 */
export const MAX_BUNDLE_FILE_BYTES = 1024 * 1024;

export async function loadBundleSpec(dir: string): Promise<BundleSpec> {
  const file = path.join(dir, BUNDLE_FILE);
  const size = await stat(file).then((st) => st.size, () => 0); // a missing file is loadYamlFile's to explain
  if (size > MAX_BUNDLE_FILE_BYTES) {
    throw new UsageError(`${file} is ${(size / 1024 / 1024).toFixed(1)} MiB; bundle.yaml may be at most ${MAX_BUNDLE_FILE_BYTES / 1024 / 1024} MiB`, {
      hint: 'bundle.yaml describes the bundle: put large data (model cards, vocabularies, tables) in a component file, e.g. config/, and name that file in metadata',
      details: { file, size, limit: MAX_BUNDLE_FILE_BYTES },
    });
  }
  return loadYamlFile(file, bundleSpecSchema, 'bundle file');
}
