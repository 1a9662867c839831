import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { IntegrityError, UsageError } from '../core/errors.js';
import { servedAnswers } from '../bundle/serve.js';
import type { Manifest, ManifestFile } from '../bundle/manifest.js';
import { forEachTarEntry } from '../bundle/tar-io.js';
import type { EvaluationSettings } from '../core/model.js';
import { EVALUATION_DEFAULTS, evaluationSectionSchema, parseEvalSet, type EvalCase, type EvaluationInput } from './evaluation.js';
import type { BundleStore } from '../store/store.js';

/**
 * Evaluation sets as bundles carry them: a component (default `eval`) of JSONL files. Checked
 * when the bundle is packed (from the directory) and again before a rollout starts (from the
 * store, every byte verified against the manifest): a bad set is refused before any traffic.
 */

/** The component and the settings the bundle itself declares (rollout.evaluation of bundle.yaml). */
function bundleEvaluation(spec: Record<string, unknown>, where: string): Pick<EvaluationSettings, 'component' | 'maxLines' | 'maxBytes'> & { path?: string } {
  // Only rollout.evaluation is read here (the whole rollout: section is checked by the deploy's plan).
  const rollout = spec.rollout !== null && typeof spec.rollout === 'object' ? Reflect.get(spec.rollout, 'evaluation') : undefined;
  const r = evaluationSectionSchema.optional().safeParse(rollout);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new UsageError(`${where}: rollout.evaluation.${issue.path.join('.')}: ${issue.message}`, { hint: 'see "Evaluation replay" in the README' });
  }
  const section = r.data ?? {};
  return {
    component: section.component ?? EVALUATION_DEFAULTS.component,
    maxLines: section.maxLines ?? EVALUATION_DEFAULTS.maxLines,
    maxBytes: section.maxBytes ?? EVALUATION_DEFAULTS.maxBytes,
    ...(section.path !== undefined ? { path: section.path } : {}),
  };
}

function componentFiles(manifest: Pick<Manifest, 'components'>, component: string): ManifestFile[] | undefined {
  const c = manifest.components.find((x) => x.name === component);
  return c ? [...c.files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)) : undefined;
}

function checkSize(files: ManifestFile[], maxBytes: number, component: string): void {
  const total = files.reduce((n, f) => n + f.size, 0);
  if (total > maxBytes) {
    throw new UsageError(`evaluation set (component ${component}) is ${total} bytes, more than ${maxBytes}`, {
      hint: 'keep an evaluation set small (a few thousand cases), or raise rollout.evaluation.maxBytes',
      details: { component, bytes: total, limit: maxBytes },
    });
  }
}

/** At pack time: parse the evaluation component of the bundle directory `dir`, if it has one. Returns the case count. */
export async function checkEvaluationSetOnDisk(dir: string, manifest: Pick<Manifest, 'components' | 'spec'>): Promise<number | undefined> {
  // Only a bundle with an evaluation component is checked here (its rollout: section is otherwise the deploy's business).
  const raw = (manifest.spec.rollout as { evaluation?: { component?: unknown } } | undefined)?.evaluation;
  if (!componentFiles(manifest, typeof raw?.component === 'string' ? raw.component : EVALUATION_DEFAULTS.component)) return undefined;
  const s = bundleEvaluation(manifest.spec, path.join(dir, 'bundle.yaml'));
  const files = componentFiles(manifest, s.component);
  if (!files) return undefined;
  checkSize(files, s.maxBytes, s.component);
  const texts = await Promise.all(files.map(async (f) => ({ file: f.path, text: await readFile(path.join(dir, f.path), 'utf8') })));
  return parseEvalSet(texts, { defaultPath: s.path, limits: { maxLines: s.maxLines, maxBytes: s.maxBytes } }).length;
}

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The component's files from the store, each checked against its SHA-256 in the manifest. */
async function readComponent(store: BundleStore, manifest: Manifest, files: ManifestFile[]): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const wanted = new Map(files.map((f) => [f.path, f]));
  const check = (f: ManifestFile, bytes: Buffer) => {
    const hex = createHash('sha256').update(bytes).digest('hex');
    if (hex !== f.sha256) throw new IntegrityError(`evaluation file ${f.path} of ${manifest.name}@${manifest.version} in ${store.url} does not match its manifest`, { details: { path: f.path, expected: f.sha256, actual: hex } });
    out.set(f.path, bytes);
  };
  // Evaluation files are small, whole-file or tar blobs (only large .safetensors are stored in parts).
  for (const digest of new Set(files.flatMap((f) => (f.blob !== undefined ? [f.blob] : [])))) {
    const blob = manifest.blobs.find((b) => b.digest === digest);
    if (blob?.kind === 'tar') {
      await forEachTarEntry(await store.getBlob(digest), `blob ${digest}`, async (entry) => {
        const f = wanted.get(entry.path);
        if (!f || f.blob !== digest) return void entry.resume();
        check(f, await readAll(entry as unknown as Readable));
      });
    } else {
      const bytes = await readAll(await store.getBlob(digest));
      for (const f of files.filter((x) => x.blob === digest)) check(f, bytes);
    }
  }
  const missing = files.find((f) => !out.has(f.path));
  if (missing) throw new IntegrityError(`evaluation file ${missing.path} is missing from its blob ${missing.blob} in ${store.url}`, { details: { path: missing.path, blob: missing.blob } });
  return out;
}

/**
 * Before a rollout: the bundle's evaluation set from the store, parsed (undefined when the bundle
 * has none), with the answer fields and comparison its serve section declares.
 */
export async function loadEvaluationInput(store: BundleStore, manifest: Manifest, settings: EvaluationSettings): Promise<EvaluationInput | undefined> {
  const files = componentFiles(manifest, settings.component);
  if (!files) return undefined;
  checkSize(files, settings.maxBytes, settings.component);
  const bytes = await readComponent(store, manifest, files);
  const cases: EvalCase[] = parseEvalSet(
    files.map((f) => ({ file: f.path, text: bytes.get(f.path)!.toString('utf8') })),
    { defaultPath: settings.path, limits: { maxLines: settings.maxLines, maxBytes: settings.maxBytes } },
  );
  const { serve, agreement } = servedAnswers(manifest.spec.serve);
  const declared = [
    ...(serve?.scoreField ? [serve.scoreField] : []),
    ...(agreement && 'field' in agreement ? [agreement.field] : []),
    ...(agreement && agreement.mode === 'fields' ? agreement.fields : []),
  ];
  return { cases, agreement, declaredFields: declared };
}
