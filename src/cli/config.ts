import { existsSync } from 'node:fs';
import path from 'node:path';
import envPaths from 'env-paths';
import { z } from 'zod';
import { loadYamlFile } from './yaml-file.js';

export const PROJECT_CONFIG_FILE = 'modelctl.yaml';

/**
 * modelctl.yaml: project settings shared by everyone working in a repository. Sections owned by
 * later features (local, kubernetes, rollout, gates…) are accepted as free-form maps for now.
 */
export const projectConfigSchema = z.looseObject({
  store: z.string({ error: 'expected a store URL such as s3://bucket/prefix or file://./store' }).optional(),
  s3: z
    .object({ pathStyle: z.boolean({ error: 'expected true or false' }).optional() })
    .strict()
    .optional(),
});
export type ProjectConfig = z.output<typeof projectConfigSchema>;

/** Find modelctl.yaml by walking up from `cwd` to the filesystem root. */
export function findProjectConfig(cwd: string): string | undefined {
  for (let dir = path.resolve(cwd); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, PROJECT_CONFIG_FILE);
    if (existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) return undefined;
  }
}

export async function loadProjectConfig(cwd: string): Promise<{ file?: string; config: ProjectConfig }> {
  const file = findProjectConfig(cwd);
  if (!file) return { config: {} };
  return { file, config: await loadYamlFile(file, projectConfigSchema, 'project config') };
}

/** MODELCTL_HOME, else the user's data directory (e.g. ~/.local/share/modelctl). */
export function modelctlHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.MODELCTL_HOME ? path.resolve(env.MODELCTL_HOME) : envPaths('modelctl', { suffix: '' }).data;
}

export function defaultStoreUrl(env: NodeJS.ProcessEnv = process.env): string {
  return `file://${path.join(modelctlHome(env), 'store')}`;
}

export interface StoreSettings {
  store: string;
  s3PathStyle: boolean;
}

/**
 * Precedence: built-in default < modelctl.yaml < environment (MODELCTL_*) < flags. Flags and
 * environment arrive already merged by oclif (`env:` on the flag).
 */
export function resolveStoreSettings(
  flags: { store?: string | undefined; 's3-path-style'?: boolean | undefined },
  project: { file?: string; config: ProjectConfig },
  env: NodeJS.ProcessEnv = process.env,
): StoreSettings {
  const fromFlagOrEnv = flags.store;
  const store = fromFlagOrEnv ?? relativeTo(project.config.store, project.file) ?? defaultStoreUrl(env);
  const envPathStyle = env.MODELCTL_S3_PATH_STYLE === undefined ? undefined : /^(1|true|yes|on)$/i.test(env.MODELCTL_S3_PATH_STYLE);
  const s3PathStyle = flags['s3-path-style'] ? true : (envPathStyle ?? project.config.s3?.pathStyle ?? false);
  return { store, s3PathStyle };
}

/** A relative file store in modelctl.yaml is relative to that file, not to wherever modelctl runs. */
function relativeTo(store: string | undefined, configFile: string | undefined): string | undefined {
  if (!store || !configFile || /^[a-z][a-z0-9+.-]*:\/\/\//i.test(store) || store.startsWith('s3://')) return store;
  const rel = store.startsWith('file://') ? store.slice('file://'.length) : store;
  return path.isAbsolute(rel) ? store : `file://${path.resolve(path.dirname(configFile), rel)}`;
}
