import { readFile } from 'node:fs/promises';
import type { LoadedProject, PrometheusFlags, ReadText, StoreSettings } from '../config/project.js';
import { systemClock, type Clock } from '../core/ports.js';
import type { BundleStore } from '../store/store.js';
import type { KubernetesConfig } from '../targets/kubernetes/settings.js';
import type { LocalConfig } from '../targets/local/config.js';
import { defaultStoreUrl, modelctlHome } from '../util/home.js';

export interface ContextOptions {
  /** Where modelctl.yaml is looked for (walking up). Default: process.cwd() when the context is made. */
  cwd?: string;
  /** MODELCTL_* and the rest. Default: process.env. */
  env?: NodeJS.ProcessEnv;
  /** How files are read (a test counts the reads of modelctl.yaml). */
  readText?: ReadText;
  clock?: Clock;
  /**
   * Told each secret learned at run time (a token in a variable modelctl.yaml names): the CLI masks
   * it in GitHub Actions logs. Passed in, because output is the presentation layer's business.
   */
  onSecret?: (value: string) => void;
}

/**
 * The one composition root of an invocation: where it runs (cwd, env), modelctl.yaml read and
 * validated once, the store once opened, the clock, and the settings each target takes. Built by
 * the base command (lazily: `--help` and `--version` never load it) and handed to the services,
 * which take everything from here instead of reading files or process globals themselves.
 *
 * modelctl.yaml is read when something first needs a setting of it, then never again: a
 * Kubernetes deploy used to parse and validate it five times. A command that needs no setting
 * (bundle pack, local status) does not read it at all, so a broken modelctl.yaml only fails the
 * commands it concerns, as before.
 */
export class Context {
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  readonly clock: Clock;
  private readonly readText: ReadText;
  private readonly onSecret: (value: string) => void;
  private loaded: Promise<LoadedProject> | undefined;
  private stores = new Map<string, Promise<BundleStore>>();

  constructor(opts: ContextOptions = {}) {
    this.cwd = opts.cwd ?? process.cwd();
    this.env = opts.env ?? process.env;
    this.clock = opts.clock ?? systemClock;
    this.readText = opts.readText ?? ((f) => readFile(f, 'utf8'));
    this.onSecret = opts.onSecret ?? (() => {});
  }

  /** modelctl.yaml (found walking up from cwd), read and validated on first use; a bad file fails every call alike. */
  project(): Promise<LoadedProject> {
    this.loaded ??= import('../config/project.js').then(({ loadProjectConfig }) => loadProjectConfig(this.cwd, this.readText));
    return this.loaded;
  }

  /** MODELCTL_HOME, else the user's data directory. */
  home(): string {
    return modelctlHome(this.env);
  }

  /** The store used when no flag, variable or modelctl.yaml names one: a folder in the home. */
  defaultStoreUrl(): string {
    return defaultStoreUrl(this.env);
  }

  /** Store URL and S3 addressing: default < modelctl.yaml < MODELCTL_* < flags. */
  async storeSettings(flags: { store?: string | undefined; 's3-path-style'?: boolean | undefined }): Promise<StoreSettings> {
    const { resolveStoreSettings } = await import('../config/project.js');
    return resolveStoreSettings(flags, await this.project(), this.env);
  }

  /** The store of `settings`, opened once per URL and invocation (the GitHub summary reads manifests from the same one). */
  openStore(settings: StoreSettings): Promise<BundleStore> {
    const key = `${settings.s3PathStyle}|${settings.store}`;
    let store = this.stores.get(key);
    if (!store) {
      store = import('../store/open.js').then(({ openStore }) => openStore(settings.store, { s3PathStyle: settings.s3PathStyle }));
      this.stores.set(key, store);
    }
    return store;
  }

  /** The Prometheus URL in force, if any: the flag, else MODELCTL_PROMETHEUS_URL, else modelctl.yaml. */
  async prometheusUrl(flag?: string | undefined): Promise<string | undefined> {
    const { prometheusUrlOf } = await import('../config/project.js');
    return prometheusUrlOf({ url: flag }, await this.project(), this.env);
  }

  /** Prometheus settings (URL, headers, credentials from the variables modelctl.yaml names); undefined without a URL. */
  async prometheusSettings(flags: PrometheusFlags) {
    const { resolvePrometheusSettings } = await import('../config/project.js');
    return resolvePrometheusSettings(flags, await this.project(), this.env, this.onSecret);
  }

  /** What the Kubernetes target takes from modelctl.yaml (its kubernetes: section, validated with the file). */
  async kubernetesConfig(): Promise<KubernetesConfig> {
    const project = await this.project();
    return { section: project.config.kubernetes, file: project.file };
  }

  /** What the local target takes from modelctl.yaml (its local: section, checked where used). */
  async localConfig(): Promise<LocalConfig> {
    const project = await this.project();
    return { section: (project.config as { local?: unknown }).local, file: project.file };
  }
}

export function createContext(opts: ContextOptions = {}): Context {
  return new Context(opts);
}
