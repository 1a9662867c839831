import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RolloutEvent } from '../core/events.js';
import type { RolloutResult, HistoryEntry } from '../rollout/results.js';
import type { RolloutPlan } from '../core/model.js';
import { FsStore } from '../store/fs-store.js';
import { packDirectory } from '../bundle/source.js';
import { push } from '../store/transfer.js';
import type { Context } from './context.js';
import { deploy, openEngine } from './rollouts.js';

/** The example bundle shipped with modelctl. */
export const EXAMPLE_BUNDLE = fileURLToPath(new URL('../../../bundles/example/', import.meta.url));

export interface DemoChapter {
  title: string;
  version: string;
  expected: RolloutResult['outcome'];
  result: RolloutResult;
  ok: boolean;
}

export interface DemoReport {
  home: string;
  url: string;
  chapters: DemoChapter[];
  history: HistoryEntry[];
  /** Requests the demo's load generator sent; errors by version show that only the bad canary failed any. */
  load: { sent: number; answered: number; errors: number; errorsByVersion: Record<string, number> } | null;
  ok: boolean;
  durationMs: number;
}

export interface DemoOptions {
  /** Where the demo's store, runtime and ledger live (default: a fresh temp MODELCTL_HOME). */
  home?: string;
  keep: boolean;
  port?: number;
  intervalMs: number;
  onChapter?: (title: string) => void;
  onEvent?: (e: RolloutEvent) => void;
  onPlan?: (plan: RolloutPlan) => void;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** A copy of the example whose config injects faults (the "bad" version), or changes a prompt. */
async function variant(work: string, name: string, edit: (config: Record<string, unknown>) => void, prompt?: string): Promise<string> {
  const dir = path.join(work, name);
  await cp(EXAMPLE_BUNDLE, dir, { recursive: true });
  const configFile = path.join(dir, 'config', 'model.json');
  const config = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>;
  edit(config);
  await writeFile(configFile, `${JSON.stringify(config, null, 2)}\n`);
  if (prompt) await writeFile(path.join(dir, 'prompts', 'explain.txt'), prompt);
  return dir;
}

/**
 * The main job on the embedded defaults, as a story that checks itself: push three versions of the
 * example (1.2.0 injects errors through its config), deploy 1.0.0, canary 1.1.0 under load and
 * promote it, canary 1.2.0 and watch the gates roll it back. `ok` only if it all happened as told.
 */
export async function runDemo(ctx: Context, opts: DemoOptions): Promise<DemoReport> {
  const started = Date.now();
  const home = opts.home ?? (await mkdtemp(path.join(tmpdir(), 'modelctl-demo-')));
  const work = await mkdtemp(path.join(tmpdir(), 'modelctl-demo-src-'));
  const port = opts.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const store = new FsStore(path.join(home, 'store'));
  const chapters: DemoChapter[] = [];
  let load: Promise<NonNullable<DemoReport['load']>> | undefined;
  const stopLoad = new AbortController();
  try {
    opts.onChapter?.('Packing and pushing sentiment 1.0.0, 1.1.0 and a bad 1.2.0 (its config makes 30% of answers fail)');
    const sources: Array<[string, string]> = [
      ['1.0.0', EXAMPLE_BUNDLE],
      ['1.1.0', await variant(work, 'v110', () => {}, 'The review reads as {{label}} ({{confidence}}); it leans on {{top_tokens}}.\n')],
      ['1.2.0', await variant(work, 'v120', (c) => ((c.faults as Record<string, number>).errorRate = 0.3))],
    ];
    for (const [version, dir] of sources) {
      const src = await packDirectory(dir, { version });
      try {
        await push(store, src);
      } finally {
        await src.close();
      }
    }

    const run = async (title: string, version: string, expected: RolloutResult['outcome'], flags: Record<string, string>) => {
      opts.onChapter?.(title);
      const result = (await deploy(ctx, {
        target: 'local',
        store,
        home,
        port,
        ref: `sentiment@${version}`,
        dryRun: false,
        resume: false,
        flags,
        ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
        ...(opts.onPlan ? { onPlan: opts.onPlan } : {}),
      })) as RolloutResult;
      chapters.push({ title, version, expected, result, ok: result.outcome === expected });
      return result;
    };

    await run('Deploying 1.0.0: the first version goes live after a health check', '1.0.0', 'promoted', {});
    const { runLoad } = await import('../targets/local/load.js');
    load = runLoad({ url, model: 'sentiment', rps: 80, durationMs: 5 * 60_000, signal: stopLoad.signal }).then((r) => ({
      sent: r.sent,
      answered: r.answered,
      errors: r.errors,
      errorsByVersion: Object.fromEntries(r.versions.map((v) => [v.version, v.errors])),
    }));
    const interval = `${opts.intervalMs}ms`;
    await run('Canary of 1.1.0 under load: 20% → 50% → 100%, gates checked every second', '1.1.0', 'promoted', { steps: '20,50,100', interval, checkEvery: '1s' });
    await run('Canary of 1.2.0: the error-rate gate fails and traffic goes back to 1.1.0', '1.2.0', 'rolled-back', { steps: '20,50,100', interval, checkEvery: '1s' });
    stopLoad.abort();
    const loadReport = await load;
    const engine = await openEngine(ctx, { target: 'local', store, home, port });
    const history = await engine.history('sentiment');
    return { home, url, chapters, history, load: loadReport, ok: chapters.every((c) => c.ok), durationMs: Date.now() - started };
  } finally {
    stopLoad.abort();
    await load?.catch(() => undefined);
    await rm(work, { recursive: true, force: true });
    if (!opts.keep) {
      const { stopRuntime } = await import('../targets/local/client.js');
      await stopRuntime(home).catch(() => undefined);
      if (!opts.home) await rm(home, { recursive: true, force: true });
    }
  }
}
