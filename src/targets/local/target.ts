import { rm, stat } from 'node:fs/promises';
import { IntegrityError } from '../../core/errors.js';
import type { EvaluationAnswer, EvaluationRequest, ObservedState, Target } from '../../core/ports.js';
import type { TrafficSplit, VersionRef } from '../../core/model.js';
import { pull, verifyLocal } from '../../store/transfer.js';
import type { BundleStore } from '../../store/store.js';
import { connectRuntime, ensureRuntime, type RuntimeClient } from './client.js';
import { resolveLocalPort, type LocalConfig } from './config.js';
import { BlobCache } from '../../store/blob-cache.js';
import { resolveCacheMaxBytes, trimCache } from './cache.js';
import { bundleDirFor, localPaths } from './paths.js';
import { loadServeSpec } from './serve-spec.js';
import { MAX_PARSE_BYTES, readBounded } from './http-util.js';
import { EVALUATION_HEADER } from '../kubernetes/names.js';

/** Evaluation answers are read up to this (the bound answers are parsed within, as on Kubernetes). */
const MAX_EVALUATION_ANSWER_BYTES = MAX_PARSE_BYTES;

export interface LocalTargetOptions {
  /** MODELCTL_HOME: the runtime lives in <home>/local. */
  home: string;
  store: BundleStore;
  /**
   * Router port if the daemon has to be started. undefined: MODELCTL_LOCAL_PORT, else `local.port`
   * in modelctl.yaml, else the port it had, else 8700, else any free port. 0: any free port.
   */
  port?: number | undefined;
  /** modelctl.yaml's local: section (port, cacheMaxBytes), as the context read it; checked when used. */
  config?: LocalConfig | undefined;
  /** The invocation's environment (the context's): MODELCTL_LOCAL_PORT, MODELCTL_CACHE, MODELCTL_CACHE_MAX_BYTES. */
  env: NodeJS.ProcessEnv;
  /** Progress for people while waiting (stderr): what a readiness wait is waiting on. */
  note?: ((message: string) => void) | undefined;
}

/**
 * The embedded local runtime as a Target: a thin client of the daemon's admin API (the daemon
 * does the work, so a rollout survives the modelctl process that drives it). Every method is
 * idempotent, and every one but healthy() starts the daemon when it is not running: its state
 * comes back with it, so a rollback after a reboot just works.
 */
export class LocalTarget implements Target {
  readonly name = 'local';

  constructor(private readonly opts: LocalTargetOptions) {}

  private port: Promise<number | undefined> | undefined;

  private async client(): Promise<RuntimeClient> {
    // Same precedence as `local up`: the option (a --port flag), else MODELCTL_LOCAL_PORT, else modelctl.yaml.
    this.port ??= this.opts.port !== undefined ? Promise.resolve(this.opts.port) : resolveLocalPort(undefined, this.opts.env, this.opts.config);
    return (await ensureRuntime({ home: this.opts.home, port: await this.port })).client;
  }

  /** Pull `ref` verified into <home>/local/bundles/<model>/<version>-<hex12>/ (kept if it still verifies), then start it. */
  async deploy(ref: VersionRef): Promise<void> {
    const client = await this.client();
    const dir = bundleDirFor(localPaths(this.opts.home), ref.model, ref.version, ref.digest);
    let restart = false;
    // Through the blob cache of this home: weights already held are hard-linked, not fetched again.
    // MODELCTL_CACHE=off: every byte fetched and copied again (as before the cache; for comparison).
    const cache = this.opts.env.MODELCTL_CACHE === 'off' ? undefined : BlobCache.forHome(this.opts.home);
    if (await stat(dir).catch(() => undefined)) {
      try {
        await verifyLocal(dir, ref.digest);
      } catch {
        // Changed on disk since it was pulled: fetch a clean copy, and restart a version that runs from it.
        await rm(dir, { recursive: true, force: true });
        restart = true;
      }
    }
    if (restart || !(await stat(dir).catch(() => undefined))) {
      const pulled = await pull(this.opts.store, `${ref.model}@${ref.digest}`, dir, undefined, cache).catch(async (err: unknown) => {
        // Another deploy of the same version may have renamed its pull into place first.
        if (await verifyLocal(dir, ref.digest).then(() => true, () => false)) return undefined;
        throw err;
      });
      if (pulled && pulled.ref !== `${ref.model}@${ref.version}`) {
        await rm(dir, { recursive: true, force: true });
        throw new IntegrityError(`${ref.model}@${ref.digest} is ${pulled.ref} in ${this.opts.store.url}, not ${ref.model}@${ref.version}`, {
          details: { digest: ref.digest, expected: ref.version, actual: pulled.ref },
        });
      }
    }
    await loadServeSpec(dir); // a bad serve section fails here, with file, line and field
    await client.startVersion({ model: ref.model, version: ref.version, digest: ref.digest, bundleDir: dir, restart });
    // After the start, so this version is in state.json and pinned; a failed trim never fails a deploy.
    if (cache) await Promise.resolve().then(() => trimCache(this.opts.home, resolveCacheMaxBytes(this.opts.env, this.opts.config), cache)).catch((err: unknown) => this.opts.note?.(`blob cache not trimmed: ${(err as Error).message}`));
  }

  async waitReady(model: string, version: string, timeoutMs: number): Promise<void> {
    await (await this.client()).waitReady(model, version, timeoutMs, this.opts.note);
  }

  /** A live probe of the version's readiness path; false when it or the runtime is not running. */
  async healthy(model: string, version: string): Promise<boolean> {
    const client = await connectRuntime(this.opts.home);
    if (!client) return false;
    try {
      return (await client.health(model, version)).healthy;
    } catch {
      return false;
    }
  }

  /** Resolves once the router serves `split` (the admin API answers after the swap). */
  async applyTraffic(model: string, split: TrafficSplit): Promise<void> {
    await (await this.client()).setTraffic(model, split);
  }

  /**
   * One evaluation request through the router's per-version route (/<model>@<version>/<path>):
   * the path callers use, minus the split, and not counted as live traffic (router.ts). It carries
   * the runtime's evaluation token (runtime.json), without which the router refuses that route.
   * The answer is read up to 1 MiB, as on Kubernetes (evaluate.ts): a larger one is an error naming
   * the case, not a truncated answer judged as if it were whole.
   */
  async evaluate(model: string, version: string, request: EvaluationRequest): Promise<EvaluationAnswer> {
    const { port, evaluationToken } = (await this.client()).info;
    const t0 = performance.now();
    const signal = request.signal ? AbortSignal.any([request.signal, AbortSignal.timeout(request.timeoutMs)]) : AbortSignal.timeout(request.timeoutMs);
    const res = await fetch(`http://127.0.0.1:${port}/${model}@${encodeURIComponent(version)}${request.path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(evaluationToken ? { [EVALUATION_HEADER]: evaluationToken } : {}) },
      body: JSON.stringify(request.body),
      signal,
    });
    const body = await readBounded(res.body, MAX_EVALUATION_ANSWER_BYTES, `${request.what ? `${request.what} from ` : ''}${model}@${version} (local runtime)`);
    return { status: res.status, body, latencyMs: performance.now() - t0 };
  }

  /** What the runtime really runs and routes for `model` (nothing when it is not running; never starts it). */
  async observe(model: string): Promise<ObservedState> {
    const client = await connectRuntime(this.opts.home);
    if (!client) return { versions: {}, traffic: null };
    const state = await client.state();
    const versions: ObservedState['versions'] = {};
    for (const v of state.versions) if (v.model === model) versions[v.version] = { ready: v.ready ? 1 : 0, desired: 1 };
    return { versions, traffic: state.traffic[model] ?? null };
  }

  /** Stop a version after its in-flight requests drained. Refused (ConflictError) while it still has traffic. */
  async retire(model: string, version: string): Promise<void> {
    await (await this.client()).retire(model, version);
  }
}
