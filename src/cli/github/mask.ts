import { addMask, githubActive } from './commands.js';

/**
 * Secrets the CLI can see, masked (`::add-mask::`) before it prints anything else, so the runner
 * replaces them by *** in the log and in step summaries. A small registry: a new credential
 * (a Kubernetes token, a Prometheus bearer token…) registers one `SecretSource` next to the code
 * that reads it — `registerSecretSource({ name: 'prometheus', env: ['MODELCTL_PROMETHEUS_TOKEN'],
 * urlEnv: ['MODELCTL_PROMETHEUS_URL'] })` — or calls `maskSecret()` the moment it learns one.
 */

export interface SecretContext {
  env: NodeJS.ProcessEnv;
  /** The raw command line (flags are not parsed yet when masks must go out). */
  argv: readonly string[];
}

export interface SecretSource {
  name: string;
  /** Environment variables whose whole value is secret. */
  env?: readonly string[];
  /** Environment variables holding a URL that may carry credentials (user:password@, ?token=…). */
  urlEnv?: readonly string[];
  /** Flags holding such a URL (`--store s3://…`, `--store=…`). */
  urlFlags?: readonly string[];
  /** Anything else: return the secret values found. */
  find?(ctx: SecretContext): string[];
}

const sources: SecretSource[] = [
  { name: 'aws', env: ['AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_SECURITY_TOKEN'], urlEnv: ['AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3'] },
  { name: 'store', urlEnv: ['MODELCTL_STORE'], urlFlags: ['--store'] },
  // Variables named in modelctl.yaml (prometheus.bearerTokenEnv, basicAuth.passwordEnv) are only
  // known once it is read: the code that reads them calls maskSecret().
  { name: 'prometheus', env: ['MODELCTL_PROMETHEUS_TOKEN'], urlEnv: ['MODELCTL_PROMETHEUS_URL'], urlFlags: ['--prometheus-url'] },
];

export function registerSecretSource(source: SecretSource): void {
  const i = sources.findIndex((s) => s.name === source.name);
  if (i >= 0) sources[i] = source;
  else sources.push(source);
}

export function secretSources(): readonly SecretSource[] {
  return sources;
}

/** Query parameters whose values are credentials (pre-signed URLs, tokens). */
const SECRET_PARAM = /^(x-amz-signature|x-amz-credential|x-amz-security-token|signature|sig|token|access_token|api[-_]?key|key|secret|password|passwd|pwd|auth|credential)$/i;

/** The credentials a URL carries: user info and secret-looking query parameters. */
export function urlCredentials(text: string): string[] {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return [];
  }
  const found: string[] = [];
  const dec = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  if (url.password) found.push(url.password, dec(url.password));
  // A lone user name is usually a token (https://TOKEN@host); beside a password it is an id (git, an access key id).
  else if (url.username.length >= 8) found.push(url.username, dec(url.username));
  for (const [k, v] of url.searchParams) if (SECRET_PARAM.test(k) && v) found.push(v, encodeURIComponent(v));
  // Masking a very short value would garble every log line that happens to contain it.
  return [...new Set(found)].filter((v) => v.length >= 6);
}

function flagValues(argv: readonly string[], flag: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a === flag && i + 1 < argv.length) values.push(argv[i + 1]!);
    else if (a.startsWith(`${flag}=`)) values.push(a.slice(flag.length + 1));
  }
  return values;
}

export function collectSecrets(ctx: SecretContext, from: readonly SecretSource[] = sources): string[] {
  const found: string[] = [];
  for (const s of from) {
    for (const name of s.env ?? []) {
      const v = ctx.env[name];
      if (v) found.push(v);
    }
    for (const name of s.urlEnv ?? []) {
      const v = ctx.env[name];
      if (v) found.push(...urlCredentials(v));
    }
    for (const flag of s.urlFlags ?? []) for (const v of flagValues(ctx.argv, flag)) found.push(...urlCredentials(v));
    if (s.find) found.push(...s.find(ctx));
  }
  return found;
}

/**
 * The `::add-mask::` lines for `secrets`: each distinct value once, and each line of a multi-line
 * value on its own too (the runner masks line by line, so a PEM key would otherwise leak in parts).
 * Blank values are skipped: the runner refuses to mask them.
 */
export function maskCommands(secrets: readonly string[], already: Set<string> = new Set()): string {
  let out = '';
  const add = (v: string) => {
    if (!v.trim() || already.has(v)) return;
    already.add(v);
    out += addMask(v);
  };
  for (const s of secrets) {
    add(s);
    if (/[\r\n]/.test(s)) for (const line of s.split(/\r?\n|\r/)) if (line.trim().length >= 4) add(line);
  }
  return out;
}

/** Values masked by this process so far (a value is announced once). */
const masked = new Set<string>();

/** Mask one secret learned at run time (e.g. a token read from a file); a no-op outside Actions. */
export function maskSecret(value: string, env: NodeJS.ProcessEnv = process.env, write: (text: string) => void = (t) => void process.stderr.write(t)): void {
  if (!githubActive(env)) return;
  const text = maskCommands([value], masked);
  if (text) write(text);
}

/** Mask the credentials of a URL resolved at run time (a store from modelctl.yaml); a no-op outside Actions. */
export function maskUrlCredentials(url: string, env: NodeJS.ProcessEnv = process.env, write?: (text: string) => void): void {
  for (const v of urlCredentials(url)) maskSecret(v, env, write);
}

/** Mask everything the registered sources find; returns what was written. */
export function maskKnownSecrets(ctx: SecretContext, write: (text: string) => void): string {
  const text = maskCommands(collectSecrets(ctx), masked);
  if (text) write(text);
  return text;
}
