import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { leftovers } from '../fakes/kube/netns.js';
import { startFakeKube, type FakeKube } from '../fakes/kube/server.js';

/**
 * The box's kubelet on its own (test/fakes/kube/README.md): what it promises about pods, checked
 * with plain `sh` and `node` containers — no S3, no modelctl. Each claim of the README that the
 * whole-flow tests do not pin down is pinned here.
 */

/** A node one-liner HTTP server bound where `host` says, answering its HOSTNAME. */
const server = (host: string, port: number) => ['node', '-e', `require('http').createServer((q,s)=>s.end(process.env.HOSTNAME)).listen(${port}, '${host}')`];

describe('the box kubelet: pods as processes in their own network namespaces', { timeout: 180_000 }, () => {
  let fake: FakeKube;
  let core: CoreV1Api;
  let runId = '';
  before(async () => {
    fake = await startFakeKube({ kubelet: { backoffBaseMs: 400, backoffMaxMs: 1600, closeGraceMs: 2000 } });
    runId = fake.box!.network.runId;
    core = fake.kubeConfig().makeApiClient(CoreV1Api);
  });
  after(async () => {
    await fake?.close();
    assert.deepEqual(await leftovers(runId), [], 'no namespace, veth or bridge left');
  });

  const pod = (name: string, spec: Record<string, unknown>) => core.createNamespacedPod({ namespace: 'default', body: { metadata: { name }, spec: spec as never } });
  const live = (name: string) => fake.get('v1', 'Pod', 'default', name);
  async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = probe();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(live(what.split(' ')[0]!)?.status)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const ready = (p: any) => p?.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True');
  const warningsOf = (name: string) => fake.list('v1', 'Event', 'default').filter((e) => e.involvedObject.name === name && e.type === 'Warning').map((e) => e.message as string);

  test('127.0.0.1 is the pod\'s own: an httpGet probe (pod IP) misses a loopback server, an exec probe in the pod reaches it', async () => {
    const probeCmd = ['node', '-e', "fetch('http://127.0.0.1:8080').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"];
    await pod('loop-http', { containers: [{ name: 'c', image: 'node:24', command: server('127.0.0.1', 8080), readinessProbe: { httpGet: { port: 8080, path: '/' }, periodSeconds: 1 } }] });
    await pod('loop-exec', { containers: [{ name: 'c', image: 'node:24', command: server('127.0.0.1', 8080), readinessProbe: { exec: { command: probeCmd }, periodSeconds: 1, timeoutSeconds: 5 } }] });
    await pod('any-tcp', { containers: [{ name: 'c', image: 'node:24', command: server('0.0.0.0', 8080), readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 } }] });
    await until('loop-exec ready', () => ready(live('loop-exec')));
    await until('any-tcp ready', () => ready(live('any-tcp')));
    const ip = live('loop-http').status.podIP;
    await until('loop-http probe failures', () => warningsOf('loop-http').find((m) => m.includes('connection refused')));
    assert.ok(!ready(live('loop-http')), 'never ready: nothing listens on the pod IP');
    assert.ok(warningsOf('loop-http').includes(`Readiness probe failed: Get "http://${ip}:8080/": dial tcp ${ip}:8080: connect: connection refused`), warningsOf('loop-http').join('\n'));
    // Two pods bound the same port on their own loopbacks: no conflict. The pod IPs differ.
    const ips = ['loop-http', 'loop-exec', 'any-tcp'].map((n) => live(n).status.podIP);
    assert.equal(new Set(ips).size, 3, ips.join(' '));
    // The node reaches a pod at its IP (the data plane and the pod proxy do exactly that).
    const anyIp = live('any-tcp').status.podIP;
    assert.equal(await (await fetch(`http://${anyIp}:8080/`)).text(), 'any-tcp', 'HOSTNAME is the pod name');
    const proxied = await fetch(`${fake.url}/api/v1/namespaces/default/pods/any-tcp:8080/proxy/`);
    assert.equal(await proxied.text(), 'any-tcp', 'the pod proxy forwards to the pod IP');
    const refused = await fetch(`${fake.url}/api/v1/namespaces/default/pods/loop-http:8080/proxy/`);
    assert.equal(refused.status, 503);
    assert.match(((await refused.json()) as { message: string }).message, /error trying to reach service: dial tcp .*:8080: connect: connection refused/);
  });

  test('a crashing container: restarted with back-off, CrashLoopBackOff, restartCount, lastState', async () => {
    await pod('crash', { containers: [{ name: 'c', image: 'busybox', command: ['sh', '-c', 'echo boom; exit 3'] }] });
    const p = await until('crash in CrashLoopBackOff', () => {
      const c = live('crash')?.status?.containerStatuses?.[0];
      return c?.state?.waiting?.reason === 'CrashLoopBackOff' && c.restartCount >= 2 ? live('crash') : undefined;
    });
    const c = p.status.containerStatuses[0];
    assert.match(c.state.waiting.message, new RegExp(`^back-off \\d+(ms|s) restarting failed container=c pod=crash_default\\(${p.metadata.uid}\\)$`));
    assert.equal(c.lastState.terminated.exitCode, 3);
    assert.equal(c.lastState.terminated.reason, 'Error');
    assert.equal(p.status.phase, 'Running');
    assert.ok(fake.box!.kubelet.logs('default', 'crash', 'c').includes('boom'), 'its output is kept, like kubectl logs');
  });

  test('init containers run first and must succeed; envFrom a missing Secret is CreateContainerConfigError', async () => {
    await pod('init-fails', { initContainers: [{ name: 'i', image: 'busybox', command: ['sh', '-c', 'exit 1'] }], containers: [{ name: 'c', image: 'busybox', command: ['sleep', '600'] }] });
    await pod('no-secret', { containers: [{ name: 'c', image: 'busybox', command: ['sleep', '600'], envFrom: [{ secretRef: { name: 'nope' } }] }] });
    const init = await until('init-fails restarted', () => (live('init-fails')?.status?.initContainerStatuses?.[0]?.restartCount >= 1 ? live('init-fails') : undefined));
    assert.equal(init.status.phase, 'Pending');
    assert.equal(init.status.containerStatuses[0].state.waiting.reason, 'PodInitializing');
    assert.deepEqual(init.status.conditions.find((c: any) => c.type === 'Initialized'), { type: 'Initialized', status: 'False', reason: 'ContainersNotInitialized', message: 'containers with incomplete status: [i]', lastProbeTime: null, lastTransitionTime: init.status.conditions.find((c: any) => c.type === 'Initialized').lastTransitionTime });
    const cfg = await until('no-secret config error', () => live('no-secret')?.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CreateContainerConfigError' ? live('no-secret') : undefined);
    assert.equal(cfg.status.containerStatuses[0].state.waiting.message, 'secret "nope" not found');
    assert.equal(cfg.status.containerStatuses[0].restartCount, 0, 'nothing ran, nothing restarted');
    assert.equal(cfg.status.phase, 'Pending');
  });

  test('volumes: an emptyDir shared by init and main containers, readOnly mounts refuse writes, /tmp is private', async () => {
    const marker = `kube-box-private-${Date.now()}`;
    await core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'env' }, stringData: { GREETING: 'hello' } } });
    await pod('vols', {
      volumes: [{ name: 'data', emptyDir: {} }],
      // Paths inside a shell script are not rewritten (README: only whole values of args, env, workingDir): the script uses its cwd and $RO.
      initContainers: [{ name: 'write', image: 'busybox', command: ['sh', '-c', 'mkdir -p sub && echo "$GREETING" > sub/x'], workingDir: '/work', volumeMounts: [{ name: 'data', mountPath: '/work' }], envFrom: [{ secretRef: { name: 'env' } }] }],
      containers: [
        {
          name: 'read',
          image: 'busybox',
          command: ['sh', '-c', `cat "$RO/x"; touch "$RO/y" 2>&1; echo "touch=$?"; touch z 2>/dev/null; echo "cwd-touch=$?"; echo private > /tmp/${marker}; echo "tmp=$(cat /tmp/${marker})"; echo "cwd=$(pwd)"; sleep 600`],
          workingDir: '/ro',
          env: [{ name: 'RO', value: '/ro' }],
          volumeMounts: [{ name: 'data', mountPath: '/ro', subPath: 'sub', readOnly: true }],
        },
      ],
    });
    const logs = await until('vols output', () => {
      const l = fake.box!.kubelet.logs('default', 'vols', 'read');
      return l.includes('cwd=') ? l : undefined;
    });
    assert.match(logs, /^hello$/m, 'the main container reads what the init container wrote (subPath)');
    assert.match(logs, /Read-only file system/);
    assert.match(logs, /^touch=1$/m);
    assert.match(logs, /^cwd-touch=1$/m, 'a relative write in the read-only working directory fails too');
    assert.match(logs, /^tmp=private$/m);
    assert.equal(existsSync(`/tmp/${marker}`), false, 'the container\'s /tmp is not the host\'s');
  });

  test('hostPath: a failed type check keeps the pod Pending with FailedMount until the path is right; a link across volumes is EXDEV', async () => {
    const host = mkdtempSync('/var/tmp/kube-box-hostpath-');
    try {
      const dir = path.join(host, 'later');
      await pod('hostpath', {
        volumes: [
          { name: 'node', hostPath: { path: dir, type: 'Directory' } },
          { name: 'scratch', emptyDir: {} },
        ],
        containers: [
          {
            name: 'c',
            image: 'busybox',
            // Paths as whole args are rewritten; the shell sees them as $1 and $2.
            command: ['sh', '-c', 'echo x > "$1/f"; ln "$1/f" "$2/f" 2>&1; echo "ln=$?"; sleep 600', 'sh', '/node', '/scratch'],
            volumeMounts: [
              { name: 'node', mountPath: '/node' },
              { name: 'scratch', mountPath: '/scratch' },
            ],
          },
        ],
      });
      const msg = await until('hostpath FailedMount', () => warningsOf('hostpath').find((m) => m.startsWith('MountVolume.SetUp failed')));
      assert.equal(msg, `MountVolume.SetUp failed for volume "node" : hostPath type check failed: ${dir} is not a directory`);
      assert.equal(live('hostpath').status.phase, 'Pending');
      assert.equal(live('hostpath').status.containerStatuses?.[0]?.state?.running, undefined, 'nothing runs while the mount fails');
      mkdirSync(dir);
      const logs = await until('hostpath output', () => {
        const l = fake.box!.kubelet.logs('default', 'hostpath', 'c');
        return l.includes('ln=') ? l : undefined;
      });
      assert.match(logs, /Invalid cross-device link/, 'two volumes are two mounts, as in a container');
      assert.equal(readFileSync(path.join(dir, 'f'), 'utf8'), 'x\n', 'the container wrote into the node directory');
    } finally {
      await core.deleteNamespacedPod({ name: 'hostpath', namespace: 'default' }).catch(() => undefined);
      rmSync(host, { recursive: true, force: true });
    }
  });

  test('deleting a pod: SIGTERM, then SIGKILL after terminationGracePeriodSeconds; its namespace is removed', async () => {
    await pod('stubborn', { terminationGracePeriodSeconds: 1, containers: [{ name: 'c', image: 'busybox', command: ['sh', '-c', 'trap "echo got TERM" TERM; echo trapping; while true; do sleep 0.2; done'] }] });
    const running = await until('stubborn running', () => fake.box!.kubelet.running().find((r) => r.name === 'stubborn' && r.pids.length === 1 && r.netns));
    // Its trap must be in place before the TERM (a loaded machine may take a while to get there).
    await until('stubborn trapping', () => fake.box!.kubelet.logs('default', 'stubborn', 'c').includes('trapping'));
    const pid = running.pids[0]!;
    const t0 = Date.now();
    await core.deleteNamespacedPod({ namespace: 'default', name: 'stubborn' });
    await until('stubborn gone', () => (fake.box!.kubelet.running().some((r) => r.name === 'stubborn') ? undefined : true), 10_000);
    const took = Date.now() - t0;
    assert.ok(took >= 900 && took < 5000, `killed after the 1 s grace period, not before (${took} ms)`);
    assert.throws(() => process.kill(pid, 0), 'the process is gone');
    assert.ok(!(await leftovers(runId)).includes(running.netns!), 'its network namespace is gone');
  });
});
