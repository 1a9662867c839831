import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { kubernetesSectionSchema } from '../targets/kubernetes/settings.js';
import { PROMETHEUS_DEFAULTS, type PrometheusAuth, type PrometheusSettings } from '../gates/prometheus.js';
import { parseDuration } from '../core/units.js';
import { UsageError } from '../core/errors.js';
import { parseYamlText } from '../core/yaml-file.js';
import { defaultStoreUrl } from '../util/home.js';

export const PROJECT_CONFIG_FILE = 'modelctl.yaml';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const envName = z.string({ error: 'expected the NAME of an environment variable' }).regex(ENV_NAME, 'expected the NAME of an environment variable (letters, digits, _)');
const durationField = z.union([z.string(), z.number()], { error: 'expected a duration like 10s or 1m' });

/**
 * The `prometheus:` section: where query gates are measured. Secrets never live in the file:
 * `bearerTokenEnv` / `basicAuth.*Env` name environment variables that hold them.
 */
export const prometheusSectionSchema = z
  .object({
    url: z.string({ error: 'expected a URL like http://prometheus:9090' }).optional(),
    headers: z.record(z.string(), z.string({ error: 'expected a header value (a string)' })).optional(),
    bearerTokenEnv: envName.optional(),
    basicAuth: z.object({ usernameEnv: envName, passwordEnv: envName }).strict().optional(),
    timeout: durationField.optional(),
    retries: z.number().int().min(0).max(10).optional(),
    minInterval: durationField.optional(),
    vars: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String)).optional(),
  })
  .strict()
  .refine((p) => !(p.bearerTokenEnv && p.basicAuth), { message: 'use bearerTokenEnv or basicAuth, not both' });
export type PrometheusSection = z.output<typeof prometheusSectionSchema>;

/** The top-level sections of modelctl.yaml; `rollout`, `local` and `telemetry` are checked where they are read. */
export const PROJECT_SECTIONS = ['store', 's3', 'prometheus', 'kubernetes', 'rollout', 'local', 'telemetry'] as const;

/**
 * modelctl.yaml: project settings shared by everyone working in a repository. Sections checked
 * where they are used (rollout, local, telemetry) are free-form maps here; an unknown top-level
 * key is an error (a typo such as `rolout:` would otherwise be silently ignored).
 */
export const projectConfigSchema = z
  .looseObject({
    store: z.string({ error: 'expected a store URL such as s3://bucket/prefix or file://./store' }).optional(),
    s3: z
      .object({ pathStyle: z.boolean({ error: 'expected true or false' }).optional() })
      .strict()
      .optional(),
    prometheus: prometheusSectionSchema.optional(),
    kubernetes: kubernetesSectionSchema.optional(),
  })
  .superRefine((config, ctx) => {
    for (const key of Object.keys(config)) {
      if ((PROJECT_SECTIONS as readonly string[]).includes(key)) continue;
      const near = closest(key, PROJECT_SECTIONS);
      ctx.addIssue({ code: 'custom', path: [key], message: `unknown setting${near ? ` (did you mean ${near}?)` : ''}; known: ${PROJECT_SECTIONS.join(', ')}` });
    }
  });

/** The candidate within edit distance 2 of `word` (a likely typo), if any. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: { c: string; d: number } | undefined;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d <= 2 && (!best || d < best.d)) best = { c, d };
  }
  return best?.c;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}
export type ProjectConfig = z.output<typeof projectConfigSchema>;

/** Find modelctl.yaml by walking up from `cwd` to the filesystem root. */
export function findProjectConfig(cwd: string): string | undefined {
  for (let dir = path.resolve(cwd); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, PROJECT_CONFIG_FILE);
    if (existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) return undefined;
  }
}

/** modelctl.yaml as read and validated: its path (none: no file, every setting defaulted) and its settings. */
export interface LoadedProject {
  file?: string;
  config: ProjectConfig;
}

/** Reads a file as UTF-8 text (injectable: a test counts the reads of modelctl.yaml). */
export type ReadText = (file: string) => Promise<string>;

/**
 * Find, read and validate modelctl.yaml. Called once per invocation, by the context
 * (src/services/context.ts), which hands the result to every part that needs a setting.
 */
export async function loadProjectConfig(cwd: string, readText: ReadText = (f) => readFile(f, 'utf8')): Promise<LoadedProject> {
  const file = findProjectConfig(cwd);
  if (!file) return { config: {} };
  let text: string;
  try {
    text = await readText(file);
  } catch (err) {
    throw new UsageError(`cannot read project config ${file}: ${String(err)}`, { details: { file } });
  }
  return { file, config: parseYamlText(text, file, projectConfigSchema, 'project config') };
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
  project: LoadedProject,
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

/** What `--prometheus-*` flags (and their MODELCTL_* variables, merged by oclif) say. */
export interface PrometheusFlags {
  url?: string | undefined;
  /** "Name: value" */
  headers?: string[] | undefined;
  timeout?: string | undefined;
  vars?: Record<string, string> | undefined;
}

/** The Prometheus URL in force, if any (flag > MODELCTL_PROMETHEUS_URL > modelctl.yaml). */
export function prometheusUrlOf(flags: PrometheusFlags, project: { config: ProjectConfig }, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return flags.url || env.MODELCTL_PROMETHEUS_URL || project.config.prometheus?.url || undefined;
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers that carry secrets or that fetch manages: refused in headers (use the env-var settings). */
const RESERVED_HEADERS = new Set(['authorization', 'host', 'content-length', 'connection', 'transfer-encoding']);

/**
 * Prometheus settings. Precedence: modelctl.yaml < MODELCTL_PROMETHEUS_URL < flags. Undefined when
 * no URL is configured anywhere (query gates then cannot run). Credentials come from environment
 * variables only: `prometheus.bearerTokenEnv` or `prometheus.basicAuth` name them; without either,
 * MODELCTL_PROMETHEUS_TOKEN (if set) is sent as a bearer token.
 */
export function resolvePrometheusSettings(
  flags: PrometheusFlags,
  project: LoadedProject,
  env: NodeJS.ProcessEnv = process.env,
  /** Told each secret read from a variable modelctl.yaml names (the CLI masks it in GitHub Actions logs). */
  onSecret: (value: string) => void = () => {},
): PrometheusSettings | undefined {
  const where = project.file ?? 'modelctl.yaml';
  const section = project.config.prometheus ?? {};
  const raw = prometheusUrlOf(flags, project, env);
  if (!raw) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`Prometheus URL ${JSON.stringify(redactUrl(raw))} is not a URL`, { hint: 'e.g. --prometheus-url http://prometheus:9090' });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`Prometheus URL must be http:// or https://, got ${url.protocol}`, { hint: 'e.g. --prometheus-url http://prometheus:9090' });
  }
  if (url.username || url.password) {
    throw new UsageError('the Prometheus URL holds credentials; modelctl takes them from environment variables only', {
      hint: `set prometheus.basicAuth: {usernameEnv: PROM_USER, passwordEnv: PROM_PASSWORD} in ${where}, or MODELCTL_PROMETHEUS_TOKEN for a bearer token`,
    });
  }
  if (url.search || url.hash) throw new UsageError('the Prometheus URL must not have a ?query or #fragment', { hint: 'give the base URL, e.g. https://host/prometheus' });

  const headers: Record<string, string> = {};
  const addHeader = (name: string, value: string, from: string) => {
    if (!HEADER_NAME.test(name)) throw new UsageError(`${from}: ${JSON.stringify(name)} is not a valid header name`);
    if (/[\r\n\0]/.test(value)) throw new UsageError(`${from}: the value of header ${name} holds a line break`);
    if (RESERVED_HEADERS.has(name.toLowerCase())) {
      throw new UsageError(`${from}: header ${name} cannot be set here`, {
        hint: name.toLowerCase() === 'authorization' ? `name the environment variable holding the secret: prometheus.bearerTokenEnv or prometheus.basicAuth in ${where}, or MODELCTL_PROMETHEUS_TOKEN` : undefined,
      });
    }
    // One spelling per header: a flag replaces modelctl.yaml's whatever its case.
    for (const k of Object.keys(headers)) if (k.toLowerCase() === name.toLowerCase()) delete headers[k];
    headers[name] = value;
  };
  for (const [name, value] of Object.entries(section.headers ?? {})) addHeader(name, value, `${where}: prometheus.headers`);
  for (const h of flags.headers ?? []) {
    const i = h.indexOf(':');
    if (i <= 0) throw new UsageError(`--prometheus-header ${JSON.stringify(h.split(':')[0])}…: expected "Name: value"`, { hint: "e.g. --prometheus-header 'X-Scope-OrgID: team-ml'" });
    addHeader(h.slice(0, i).trim(), h.slice(i + 1).trim(), '--prometheus-header');
  }

  const secret = (name: string, field: string): string => {
    const v = env[name];
    if (!v) throw new UsageError(`${where}: prometheus.${field} names ${name}, which is not set (or empty)`, { hint: `export ${name}=… before running modelctl` });
    onSecret(v); // only known now that modelctl.yaml named it
    return v;
  };
  let auth: PrometheusAuth | null = null;
  if (section.bearerTokenEnv) auth = { kind: 'bearer', header: `Bearer ${secret(section.bearerTokenEnv, 'bearerTokenEnv')}` };
  else if (section.basicAuth) {
    const user = secret(section.basicAuth.usernameEnv, 'basicAuth.usernameEnv');
    const pass = secret(section.basicAuth.passwordEnv, 'basicAuth.passwordEnv');
    auth = { kind: 'basic', header: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` };
  } else if (env.MODELCTL_PROMETHEUS_TOKEN) auth = { kind: 'bearer', header: `Bearer ${env.MODELCTL_PROMETHEUS_TOKEN}` };

  const timeoutMs =
    flags.timeout !== undefined
      ? parseDuration(flags.timeout, '--prometheus-timeout')
      : section.timeout !== undefined
        ? parseDuration(section.timeout, `${where}: prometheus.timeout`)
        : PROMETHEUS_DEFAULTS.timeoutMs;
  if (timeoutMs < 1000) throw new UsageError(`Prometheus timeout must be at least 1s, got ${timeoutMs} ms`);
  const minIntervalMs = section.minInterval !== undefined ? parseDuration(section.minInterval, `${where}: prometheus.minInterval`) : PROMETHEUS_DEFAULTS.minIntervalMs;
  if (minIntervalMs < 1000) throw new UsageError(`${where}: prometheus.minInterval must be at least 1s`);

  return {
    url: url.toString().replace(/\/+$/, ''),
    headers,
    auth,
    timeoutMs,
    retries: section.retries ?? PROMETHEUS_DEFAULTS.retries,
    backoffMs: PROMETHEUS_DEFAULTS.backoffMs,
    minIntervalMs,
    vars: { ...section.vars, ...flags.vars },
  };
}

/** A URL for messages: user and password replaced. */
export function redactUrl(raw: string): string {
  return raw.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1***@');
}
