import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { meterWindow } from '../test/fakes/kube/meter-window.js';
import { startFakeKube, type FakeKube, type FakeRequest } from '../test/fakes/kube/server.js';

/**
 * The fake API server as measure 9 uses it: pods whose meters report steady, healthy windows (200
 * requests, 0.5% errors), in this process (for exact per-step request attribution) or in a worker
 * thread of its own (for wall-time measures: a real API server does not share the client's CPU).
 * This file is also the worker's entry point.
 */

export interface FakeOptions {
  readyAfterMs: number;
  watchHistory: number;
}

export async function startMeteredFake(o: FakeOptions): Promise<FakeKube> {
  const fake = await startFakeKube(o);
  fake.onPodProxy(({ path: p }) => (p.replace(/^\//, '').startsWith('v1/window') ? { status: 200, body: meterWindow(0.005) } : { status: 404, body: { error: `no ${p}` } }));
  return fake;
}

/** The fake in a worker thread, driven by messages. */
export interface RemoteFake {
  kubeconfigYaml(namespace: string): string;
  requests(): Promise<FakeRequest[]>;
  resetRequests(): Promise<void>;
  close(): Promise<void>;
}

type Reply = { kind: 'ready'; kubeconfig: string } | { kind: 'requests'; requests: FakeRequest[] } | { kind: 'done' };

export async function startFakeInWorker(o: FakeOptions): Promise<RemoteFake> {
  const worker = new Worker(new URL(import.meta.url), { workerData: o });
  const next = () =>
    new Promise<Reply>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      worker.once('error', onError);
      worker.once('message', (m: Reply) => {
        worker.off('error', onError);
        resolve(m);
      });
    });
  const ready = await next();
  if (ready.kind !== 'ready') throw new Error(`fake API server worker: unexpected ${ready.kind}`);
  // One request at a time: replies come back in order.
  const ask = async (kind: 'requests' | 'reset' | 'close'): Promise<Reply> => {
    const reply = next();
    worker.postMessage(kind);
    return reply;
  };
  return {
    kubeconfigYaml: () => ready.kubeconfig,
    async requests() {
      const r = await ask('requests');
      return r.kind === 'requests' ? r.requests : [];
    },
    async resetRequests() {
      await ask('reset');
    },
    async close() {
      await ask('close');
      await worker.terminate();
    },
  };
}

if (!isMainThread && parentPort && (workerData as FakeOptions | undefined)?.readyAfterMs !== undefined) {
  const port = parentPort;
  const fake = await startMeteredFake(workerData as FakeOptions);
  port.postMessage({ kind: 'ready', kubeconfig: fake.kubeconfigYaml('default') } satisfies Reply);
  port.on('message', async (m: 'requests' | 'reset' | 'close') => {
    if (m === 'requests') port.postMessage({ kind: 'requests', requests: fake.requests } satisfies Reply);
    else if (m === 'reset') {
      fake.resetRequests();
      port.postMessage({ kind: 'done' } satisfies Reply);
    } else {
      await fake.close();
      port.postMessage({ kind: 'done' } satisfies Reply);
    }
  });
}
