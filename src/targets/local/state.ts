import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import type { TrafficSplit } from '../../core/model.js';

/** A deployed version as the daemon remembers it across restarts. */
export interface VersionRecord {
  model: string;
  version: string;
  digest: string;
  bundleDir: string;
}

/** state.json: what should run and where traffic goes. The daemon restores exactly this on start. */
export interface RuntimeState {
  schemaVersion: 1;
  /** The router port last used, so a restarted daemon keeps its URL. */
  port: number | null;
  versions: VersionRecord[];
  traffic: Record<string, TrafficSplit>;
}

/** runtime.json: present while a daemon runs; how clients find and authenticate to it. */
export interface RuntimeInfo {
  pid: number;
  port: number;
  adminPort: number;
  startedAt: string;
  /** Bearer token for the admin API; the file is 0600, so only the home's owner can drive the daemon. */
  token: string;
  /**
   * What the router's evaluation route requires in x-modelctl-evaluation (router.ts). Not the admin
   * token: the header travels on the router port. Absent in runtime.json written by older versions.
   */
  evaluationToken?: string;
}

export function emptyState(): RuntimeState {
  return { schemaVersion: 1, port: null, versions: [], traffic: {} };
}

/**
 * Write JSON so that readers see the old or the new document, never half of one: a temp file in
 * the same directory, fsync, then rename over the target.
 */
export async function writeJsonAtomic(file: string, value: unknown, mode = 0o644): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(`${JSON.stringify(value, null, 2)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** The JSON in `file`, or undefined when the file does not exist. A corrupt file throws (never silently reset). */
export async function readJson<T>(file: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new Error(`${file} is not valid JSON (${(err as Error).message}); fix or remove it`);
  }
}

export async function readState(file: string): Promise<RuntimeState> {
  const s = await readJson<Partial<RuntimeState>>(file);
  if (!s) return emptyState();
  if (s.schemaVersion !== 1 || !Array.isArray(s.versions) || typeof s.traffic !== 'object' || s.traffic === null) {
    throw new Error(`${file} is not a modelctl local runtime state (schemaVersion 1); fix or remove it`);
  }
  return { schemaVersion: 1, port: typeof s.port === 'number' ? s.port : null, versions: s.versions, traffic: s.traffic };
}

/** Serializes writes of one JSON file: concurrent admin requests must not reorder state on disk. */
export class JsonFileWriter<T> {
  private chain: Promise<void> = Promise.resolve();
  constructor(private readonly file: string, private readonly mode = 0o644) {}

  write(value: T): Promise<void> {
    const snapshot = structuredClone(value);
    const next = this.chain.then(() => writeJsonAtomic(this.file, snapshot, this.mode));
    this.chain = next.catch(() => {});
    return next;
  }
}

/**
 * The daemon's desired state, in memory and on disk. Every change is applied to a copy, written
 * (atomically), and only then becomes the state: what the daemon acts on is always what a
 * restarted daemon would restore. Changes are serialized so that none is lost.
 */
export class StateStore {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly file: string, private current: RuntimeState) {}

  get state(): RuntimeState {
    return this.current;
  }

  update(change: (draft: RuntimeState) => void): Promise<RuntimeState> {
    const run = this.chain.then(async () => {
      const draft = structuredClone(this.current);
      change(draft);
      await writeJsonAtomic(this.file, draft);
      this.current = draft;
      return draft;
    });
    this.chain = run.catch(() => {});
    return run;
  }

  upsertVersion(rec: VersionRecord): Promise<RuntimeState> {
    return this.update((s) => {
      s.versions = s.versions.filter((v) => !(v.model === rec.model && v.version === rec.version));
      s.versions.push(rec);
      s.versions.sort((a, b) => (a.model + '@' + a.version < b.model + '@' + b.version ? -1 : 1));
    });
  }

  removeVersion(model: string, version: string): Promise<RuntimeState> {
    return this.update((s) => {
      s.versions = s.versions.filter((v) => !(v.model === model && v.version === version));
    });
  }

  setTraffic(model: string, split: TrafficSplit): Promise<RuntimeState> {
    return this.update((s) => {
      s.traffic[model] = split;
    });
  }
}
