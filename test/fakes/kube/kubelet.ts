/**
 * A kubelet that runs pods for real: each pod's init containers one after the other, then its
 * containers, as host processes, inside the pod's own network namespace (netns.ts), with the
 * kubelet's probe, restart and termination semantics, writing pod status the way the real one does
 * (phase, conditions, init/containerStatuses with restartCount and waiting reasons, podIP).
 *
 * What a container is here: its `command` + `args` (with `$(VAR)` expansion) run from the host,
 * `modelctl` mapped to this repository's bin/run.js and `node` to the current node binary. The image
 * is recorded in the status, never pulled. The environment is the container's alone (env, envFrom
 * secretRef/configMapRef, valueFrom secretKeyRef/configMapKeyRef/fieldRef, resolved from the fake's
 * store; nothing inherited from the test process) plus PATH, HOSTNAME and HOME.
 *
 * Filesystem, and why path rewriting: a container has no root filesystem of its own here (no image
 * is unpacked), so a volume cannot be mounted at its mountPath without creating that path on the
 * host's root (a leak, and a race between pods). Instead every mountPath (and subPath) is rewritten
 * to the volume's host directory in the container's command, args, env values and workingDir.
 * What the rewriting cannot give, a mount namespace does: `ip netns exec` already runs the process
 * in a private mount namespace, in which the wrapper bind-mounts the container's own directory over
 * /tmp (so two pods never share /tmp, as two containers never do) and re-mounts every readOnly
 * mount read-only (writes there fail with EROFS, as in Kubernetes). Nothing of it is visible outside.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deepEqual } from './apply.js';
import { IP, type PodNetwork } from './netns.js';
import { resourceDef } from './resources.js';
import { nowSeconds, type Store, type StoreEvent } from './store.js';

const PODS = resourceDef('pods');
const SECRETS = resourceDef('secrets');
const CONFIGMAPS = resourceDef('configmaps');
const CLAIMS = resourceDef('persistentvolumeclaims');
const VOLUMES = resourceDef('persistentvolumes');

/** This repository (dist/test/fakes/kube → 4 up; test/fakes/kube under ts-node would be 3: bin/run.js decides). */
export const REPO_ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      readFileSync(path.join(dir, 'bin', 'run.js'));
      return dir;
    } catch {
      dir = path.dirname(dir);
    }
  }
  throw new Error('kubelet: cannot find bin/run.js above ' + fileURLToPath(import.meta.url));
})();

export type RecordEvent = (obj: any, type: 'Normal' | 'Warning', reason: string, message: string, component: string, fieldPath?: string) => void;

export interface KubeletOptions {
  store: Store;
  network: PodNetwork;
  /** Where pod directories (volumes, logs, each container's /tmp) live; must not be under /tmp. */
  root: string;
  recordEvent: RecordEvent;
  /** First crash-loop back-off (the kubelet's is 10 s, doubling up to 5 min). */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Upper bound on a pod's grace period when the whole box closes (teardown should not take 30 s). */
  closeGraceMs?: number;
}

type State =
  | { waiting: { reason: string; message?: string } }
  | { running: { startedAt: string } }
  | { terminated: { exitCode: number; signal?: number; reason: string; message?: string; startedAt: string; finishedAt: string; containerID: string } };

interface Ctr {
  spec: any;
  init: boolean;
  state: State;
  lastState: State | Record<string, never>;
  restartCount: number;
  ready: boolean;
  started: boolean;
  containerID?: string;
  proc?: ChildProcess | undefined;
  /** Bumped at every start: probe loops and exit handlers of an older run stop. */
  run: number;
  /** Current back-off (ms) once the container has crashed twice. */
  backoffMs: number;
  crashes: number;
  /** Consecutive probe results, per probe kind. */
  probe: Record<'startup' | 'readiness' | 'liveness', { ok: number; fail: number }>;
}

interface PodRun {
  uid: string;
  namespace: string;
  name: string;
  pod: any;
  ip?: string;
  netns?: string;
  dir: string;
  volumes: Map<string, string>;
  /** Volumes every mount of which is read-only (persistentVolumeClaim.readOnly). */
  readOnlyVolumes: Set<string>;
  init: Ctr[];
  main: Ctr[];
  initialized: boolean;
  stopping: boolean;
  startTime: string;
  conditions: Map<string, any>;
  timers: Set<NodeJS.Timeout>;
}

const BASE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Runs in the container's private mount namespace (from `ip netns exec`): private /tmp, read-only mounts, then the command. */
// `cd "$(pwd -P)"` after the mounts: a working directory under a mount made after the process
// started still points at the directory underneath (writable); re-entering it resolves the new mount.
const WRAPPER = 'set -e; mount --bind "$1" /tmp; shift; while [ "$1" != "--" ]; do mount --bind "$1" "$1"; shift; done; shift; while [ "$1" != "--" ]; do mount --bind "$1" "$1"; mount -o remount,bind,ro "$1" "$1"; shift; done; shift; cd "$(pwd -P)"; exec "$@"';

/**
 * The kubelet's hostPath type check (pkg/volume/hostpath/host_path.go checkTypeInternal): the error
 * text, or undefined when the path may be mounted. DirectoryOrCreate / FileOrCreate create what is
 * missing (a directory 0755, a file 0644, owned by the kubelet's user: root).
 */
export function checkHostPathType(p: string, type: string): string | undefined {
  const st = () => {
    try {
      return statSync(p);
    } catch {
      return undefined;
    }
  };
  switch (type) {
    case '':
      return undefined;
    case 'DirectoryOrCreate':
      if (!st()) {
        mkdirSync(p, { recursive: true, mode: 0o755 });
        return undefined;
      }
    // falls through
    case 'Directory':
      return st()?.isDirectory() ? undefined : `hostPath type check failed: ${p} is not a directory`;
    case 'FileOrCreate':
      if (!st()) {
        closeSync(openSync(p, 'a', 0o644));
        return undefined;
      }
    // falls through
    case 'File':
      return st()?.isFile() ? undefined : `hostPath type check failed: ${p} is not a file`;
    case 'Socket':
      return st()?.isSocket() ? undefined : `hostPath type check failed: ${p} is not a socket file`;
    case 'CharDevice':
      return st()?.isCharacterDevice() ? undefined : `hostPath type check failed: ${p} is not a character device`;
    case 'BlockDevice':
      return st()?.isBlockDevice() ? undefined : `hostPath type check failed: ${p} is not a block device`;
    default:
      return `${type} is an invalid volume type`;
  }
}

export class Kubelet {
  private readonly pods = new Map<string, PodRun>();
  private readonly unsubscribe: () => void;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private closed = false;
  private readonly exitHook = () => this.killAllSync();
  private readonly signalHook = (sig: NodeJS.Signals) => {
    this.killAllSync();
    this.opts.network.closeSync();
    process.kill(process.pid, sig);
  };

  constructor(private readonly opts: KubeletOptions) {
    // Every container gets a private /tmp (see WRAPPER): what it runs must live elsewhere.
    for (const [what, p] of [['this repository', REPO_ROOT], ['node', process.execPath], ['the kubelet root', opts.root]] as const) {
      if (p === '/tmp' || p.startsWith('/tmp/')) throw new Error(`kubelet: ${what} is under /tmp (${p}), which each container sees as its own empty /tmp; move it (e.g. to /var/tmp)`);
    }
    this.backoffBaseMs = opts.backoffBaseMs ?? 10_000;
    this.backoffMaxMs = opts.backoffMaxMs ?? 300_000;
    mkdirSync(opts.root, { recursive: true });
    this.unsubscribe = opts.store.subscribe((e) => this.onEvent(e));
    // A test process that dies without closing the box must not leave pods running: on exit, and on
    // the signals a test runner sends a timed-out or cancelled test (then die of the signal anyway).
    process.once('exit', this.exitHook);
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, this.signalHook);
  }

  private get store(): Store {
    return this.opts.store;
  }

  private onEvent(e: StoreEvent): void {
    if (e.def === PODS && e.type === 'DELETED') {
      const run = this.pods.get(e.object.metadata.uid);
      if (run) void this.stopPod(run, (e.previous?.spec?.terminationGracePeriodSeconds ?? 30) * 1000);
    }
  }

  /** Take a pod the scheduler bound to this node: sandbox, volumes, init containers, containers. */
  runPod(pod: any): void {
    if (this.closed || this.pods.has(pod.metadata.uid)) return;
    const spec = pod.spec ?? {};
    const dir = path.join(this.opts.root, pod.metadata.uid);
    const ctr = (spec: any, init: boolean): Ctr => ({
      spec,
      init,
      state: { waiting: { reason: init ? 'PodInitializing' : (spec.initContainers?.length ? 'PodInitializing' : 'ContainerCreating') } },
      lastState: {},
      restartCount: 0,
      ready: false,
      started: false,
      run: 0,
      backoffMs: 0,
      crashes: 0,
      probe: { startup: { ok: 0, fail: 0 }, readiness: { ok: 0, fail: 0 }, liveness: { ok: 0, fail: 0 } },
    });
    const run: PodRun = {
      uid: pod.metadata.uid,
      namespace: pod.metadata.namespace,
      name: pod.metadata.name,
      pod,
      dir,
      volumes: new Map(),
      readOnlyVolumes: new Set(),
      init: (spec.initContainers ?? []).map((c: any) => ctr(c, true)),
      main: (spec.containers ?? []).map((c: any) => ({ ...ctr(c, false), state: { waiting: { reason: spec.initContainers?.length ? 'PodInitializing' : 'ContainerCreating' } } })),
      initialized: false,
      stopping: false,
      startTime: nowSeconds(),
      conditions: new Map(),
      timers: new Set(),
    };
    for (const c of run.init) c.state = { waiting: { reason: 'PodInitializing' } };
    this.pods.set(run.uid, run);
    void this.startPod(run).catch((err: unknown) => {
      if (run.stopping) return;
      this.opts.recordEvent(run.pod, 'Warning', 'FailedCreatePodSandBox', `Failed to create pod sandbox: ${(err as Error).message}`, 'kubelet');
    });
  }

  private async startPod(run: PodRun): Promise<void> {
    this.writeStatus(run);
    const sandbox = await this.opts.network.sandbox(run.uid);
    if (run.stopping) return;
    run.ip = sandbox.ip;
    run.netns = sandbox.netns;
    for (const v of run.pod.spec.volumes ?? []) {
      if (v.hostPath) {
        // The kubelet's MountVolume.SetUp: the type check fails the mount (event FailedMount), the
        // pod stays Pending (init containers waiting PodInitializing) and the kubelet retries.
        for (;;) {
          const failed = checkHostPathType(v.hostPath.path, v.hostPath.type ?? '');
          if (!failed) break;
          this.opts.recordEvent(run.pod, 'Warning', 'FailedMount', `MountVolume.SetUp failed for volume "${v.name}" : ${failed}`, 'kubelet');
          await this.sleep(run, this.backoffBaseMs);
          if (run.stopping) return;
        }
        run.volumes.set(v.name, v.hostPath.path);
        continue;
      }
      if (v.persistentVolumeClaim) {
        // The claim's PersistentVolume (bound before the scheduler placed the pod): a hostPath or
        // local volume is a directory of the node, mounted as a mount of its own (EXDEV across
        // volumes, as everywhere here). A missing local path fails the mount and is retried.
        for (;;) {
          const failed = this.claimDirectory(run, v);
          if (typeof failed === 'object') {
            run.volumes.set(v.name, failed.dir);
            if (v.persistentVolumeClaim.readOnly) run.readOnlyVolumes.add(v.name);
            break;
          }
          this.opts.recordEvent(run.pod, 'Warning', 'FailedMount', failed, 'kubelet');
          await this.sleep(run, this.backoffBaseMs);
          if (run.stopping) return;
        }
        continue;
      }
      if (!v.emptyDir) throw new Error(`volume ${v.name}: only emptyDir, hostPath and persistentVolumeClaim (on a hostPath or local PersistentVolume) volumes are supported by the cluster in a box`);
      const d = path.join(run.dir, 'volumes', v.name);
      mkdirSync(d, { recursive: true, mode: 0o777 });
      run.volumes.set(v.name, d);
    }
    this.writeStatus(run);
    for (const c of run.init) {
      // Each init container must exit 0 before the next starts; a failing one is retried with back-off.
      while (!run.stopping) {
        const code = await this.runToCompletion(run, c);
        if (code === 0 || run.stopping) break;
        await this.backoff(run, c);
      }
      if (run.stopping) return;
    }
    run.initialized = true;
    for (const c of run.main) c.state = { waiting: { reason: 'ContainerCreating' } };
    this.writeStatus(run);
    for (const c of run.main) this.startContainer(run, c);
  }

  /** Run an init container; resolves with its exit code. */
  private runToCompletion(run: PodRun, c: Ctr): Promise<number> {
    return new Promise((resolve) => {
      const proc = this.launch(run, c);
      if (!proc) return resolve(1);
      proc.once('exit', (code, signal) => resolve(this.exited(run, c, code, signal)));
    });
  }

  private startContainer(run: PodRun, c: Ctr): void {
    if (run.stopping || this.closed) return;
    const proc = this.launch(run, c);
    if (!proc) {
      // CreateContainerConfigError / RunContainerError: no restart (nothing ran), the waiting reason
      // stays, the kubelet retries at its sync period (its source may appear).
      void this.sleep(run, this.backoffBaseMs).then(() => this.startContainer(run, c));
      return;
    }
    const myRun = c.run;
    this.startProbes(run, c, myRun);
    proc.once('exit', (code, signal) => {
      this.exited(run, c, code, signal);
      if (run.stopping || this.closed || c.run !== myRun) return;
      // restartPolicy Always (what Deployments allow): back off, then start again.
      void this.backoff(run, c).then(() => this.startContainer(run, c));
    });
  }

  /** Spawn the container's process in the pod's namespaces; undefined when its config cannot be resolved. */
  private launch(run: PodRun, c: Ctr): ChildProcess | undefined {
    const spec = c.spec;
    const fieldPath = `spec.${c.init ? 'initContainers' : 'containers'}{${spec.name}}`;
    let env: Record<string, string>;
    try {
      env = this.resolveEnv(run, spec);
    } catch (err) {
      c.state = { waiting: { reason: 'CreateContainerConfigError', message: (err as Error).message } };
      this.opts.recordEvent(run.pod, 'Warning', 'Failed', `Error: ${(err as Error).message}`, 'kubelet', fieldPath);
      this.writeStatus(run);
      return undefined;
    }
    const rewrite = this.pathRewriter(run, spec);
    const expand = (s: string) => s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n: string) => (n in env ? env[n]! : m));
    const argv = [...(spec.command ?? []), ...(spec.args ?? [])].map((a: string) => rewrite(expand(String(a))));
    if (argv.length === 0) {
      c.state = { waiting: { reason: 'RunContainerError', message: `container ${spec.name} has no command: the cluster in a box does not know image ${spec.image}'s entrypoint` } };
      this.writeStatus(run);
      return undefined;
    }
    for (const k of Object.keys(env)) env[k] = rewrite(env[k]!);
    const exe = argv[0] === 'modelctl' ? [process.execPath, path.join(REPO_ROOT, 'bin', 'run.js')] : argv[0] === 'node' ? [process.execPath] : [argv[0]!];
    const ctrDir = path.join(run.dir, 'containers', spec.name);
    const tmp = path.join(ctrDir, 'tmp');
    mkdirSync(tmp, { recursive: true, mode: 0o1777 });
    const cwd = spec.workingDir ? rewrite(spec.workingDir) : '/';
    mkdirSync(cwd, { recursive: true });
    const readOnly = (spec.volumeMounts ?? []).filter((m: any) => m.readOnly || run.readOnlyVolumes.has(m.name)).map((m: any) => this.hostPath(run, m));
    for (const p of readOnly) mkdirSync(p, { recursive: true });
    // Every other mount is a mount of its own too (bind-mounted onto itself), as in a container: a
    // hard link from one volume to another fails with EXDEV even when both live on one file system.
    const readWrite = (spec.volumeMounts ?? []).filter((m: any) => !m.readOnly && !run.readOnlyVolumes.has(m.name)).map((m: any) => this.hostPath(run, m));
    for (const p of readWrite) mkdirSync(p, { recursive: true });
    const logFile = path.join(ctrDir, 'log');
    const fd = openSync(logFile, 'a');
    c.run++;
    c.containerID = `containerd://${createHash('sha256').update(`${run.uid}/${spec.name}/${c.run}`).digest('hex')}`;
    const proc = spawn(IP, ['netns', 'exec', run.netns!, '/bin/sh', '-c', WRAPPER, 'sh', tmp, ...readWrite, '--', ...readOnly, '--', ...exe, ...argv.slice(1)], {
      cwd,
      env: { PATH: `${path.dirname(process.execPath)}:${BASE_PATH}`, HOSTNAME: run.name, HOME: '/tmp', ...env },
      stdio: ['ignore', fd, fd],
      detached: true,
    });
    closeSync(fd);
    proc.on('error', () => undefined);
    c.proc = proc;
    c.started = false;
    c.ready = false;
    c.probe = { startup: { ok: 0, fail: 0 }, readiness: { ok: 0, fail: 0 }, liveness: { ok: 0, fail: 0 } };
    c.state = { running: { startedAt: nowSeconds() } };
    if (c.run === 1) this.opts.recordEvent(run.pod, 'Normal', 'Pulled', `Container image "${spec.image}" already present on machine`, 'kubelet', fieldPath);
    this.opts.recordEvent(run.pod, 'Normal', 'Created', `Created container: ${spec.name}`, 'kubelet', fieldPath);
    this.opts.recordEvent(run.pod, 'Normal', 'Started', `Started container ${spec.name}`, 'kubelet', fieldPath);
    // Without a startup probe a container counts as started as soon as it runs.
    if (!spec.startupProbe) c.started = true;
    if (!c.init && !spec.readinessProbe) c.ready = true;
    this.writeStatus(run);
    return proc;
  }

  /** Record an exit; returns the exit code (128 + signal for a killed process, like a container runtime). */
  private exited(run: PodRun, c: Ctr, code: number | null, signal: NodeJS.Signals | null): number {
    const exitCode = code ?? 128 + (signal ? SIGNALS[signal] ?? 9 : 9);
    const startedAt = 'running' in c.state ? c.state.running.startedAt : nowSeconds();
    const terminated = {
      exitCode,
      ...(signal ? { signal: SIGNALS[signal] ?? 9 } : {}),
      reason: exitCode === 0 ? 'Completed' : 'Error',
      startedAt,
      finishedAt: nowSeconds(),
      containerID: c.containerID ?? '',
    };
    c.proc = undefined;
    c.ready = false;
    c.state = { terminated };
    if (!run.stopping) this.writeStatus(run);
    return exitCode;
  }

  /** The kubelet's crash-loop back-off: the first restart at once, then base, 2×base, … up to the max. */
  private async backoff(run: PodRun, c: Ctr): Promise<void> {
    c.crashes++;
    const delay = c.crashes === 1 ? 0 : (c.backoffMs = c.backoffMs ? Math.min(c.backoffMs * 2, this.backoffMaxMs) : this.backoffBaseMs);
    if ('terminated' in c.state) c.lastState = c.state;
    c.restartCount++;
    if (delay > 0) {
      const seconds = delay >= 1000 ? `${Math.round(delay / 1000)}s` : `${delay}ms`;
      c.state = { waiting: { reason: 'CrashLoopBackOff', message: `back-off ${seconds} restarting failed container=${c.spec.name} pod=${run.name}_${run.namespace}(${run.uid})` } };
      this.opts.recordEvent(run.pod, 'Warning', 'BackOff', `Back-off restarting failed container ${c.spec.name} in pod ${run.name}_${run.namespace}(${run.uid})`, 'kubelet', `spec.${c.init ? 'initContainers' : 'containers'}{${c.spec.name}}`);
      this.writeStatus(run);
      await this.sleep(run, delay);
    }
  }

  private sleep(run: PodRun, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        run.timers.delete(t);
        resolve();
      }, ms);
      run.timers.add(t);
    });
  }

  // ---- probes --------------------------------------------------------------------------------

  /**
   * One worker per probe, like the kubelet's prober: the first run after initialDelaySeconds, then
   * every periodSeconds; each run bounded by timeoutSeconds; the result flips only after
   * successThreshold / failureThreshold consecutive results. Liveness and readiness wait for the
   * startup probe to succeed; a failed startup or liveness probe kills the container (restart).
   */
  private startProbes(run: PodRun, c: Ctr, myRun: number): void {
    const spec = c.spec;
    const loop = (kind: 'startup' | 'readiness' | 'liveness', probe: any): void => {
      const period = (probe.periodSeconds ?? 10) * 1000;
      const tick = async (): Promise<void> => {
        if (run.stopping || this.closed || c.run !== myRun || !c.proc) return;
        if (kind !== 'startup' && !c.started) return void this.after(run, period, tick);
        if (kind === 'startup' && c.started) return;
        const result = await this.probeOnce(run, c, probe);
        if (run.stopping || this.closed || c.run !== myRun || !c.proc) return;
        const counts = c.probe[kind];
        if (result.ok) {
          counts.ok++;
          counts.fail = 0;
        } else {
          counts.fail++;
          counts.ok = 0;
          const what = kind[0]!.toUpperCase() + kind.slice(1);
          this.opts.recordEvent(run.pod, 'Warning', 'Unhealthy', `${what} probe failed: ${result.message}`, 'kubelet', `spec.containers{${spec.name}}`);
        }
        const success = probe.successThreshold ?? 1;
        const failure = probe.failureThreshold ?? 3;
        if (kind === 'startup') {
          if (counts.ok >= 1) {
            c.started = true;
            this.writeStatus(run);
            return;
          }
          if (counts.fail >= failure) return this.killForProbe(run, c, `Container ${spec.name} failed startup probe, will be restarted`);
        } else if (kind === 'readiness') {
          const ready = counts.ok >= success ? true : counts.fail >= failure ? false : c.ready;
          if (ready !== c.ready) {
            c.ready = ready;
            this.writeStatus(run);
          }
        } else if (counts.fail >= failure) {
          return this.killForProbe(run, c, `Container ${spec.name} failed liveness probe, will be restarted`);
        }
        this.after(run, period, tick);
      };
      this.after(run, (probe.initialDelaySeconds ?? 0) * 1000, tick);
    };
    if (spec.startupProbe) loop('startup', spec.startupProbe);
    if (spec.readinessProbe) loop('readiness', spec.readinessProbe);
    if (spec.livenessProbe) loop('liveness', spec.livenessProbe);
  }

  private after(run: PodRun, ms: number, fn: () => void | Promise<void>): void {
    const t = setTimeout(() => {
      run.timers.delete(t);
      void fn();
    }, ms);
    run.timers.add(t);
  }

  private killForProbe(run: PodRun, c: Ctr, message: string): void {
    this.opts.recordEvent(run.pod, 'Normal', 'Killing', message, 'kubelet', `spec.containers{${c.spec.name}}`);
    void this.terminate(c, (run.pod.spec.terminationGracePeriodSeconds ?? 30) * 1000);
  }

  /** One probe run against the pod IP, with the messages the kubelet puts in its Unhealthy events. */
  private probeOnce(run: PodRun, c: Ctr, probe: any): Promise<{ ok: boolean; message: string }> {
    const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
    const port = (p: unknown): number => {
      if (typeof p === 'number') return p;
      const named = [...run.main, ...run.init].flatMap((x) => x.spec.ports ?? []).find((x: any) => x.name === p);
      return named?.containerPort ?? Number(p);
    };
    if (probe.httpGet) {
      const g = probe.httpGet;
      const host = g.host || run.ip!;
      const p = port(g.port);
      const url = `${(g.scheme ?? 'HTTP').toLowerCase()}://${host}:${p}${g.path ?? '/'}`;
      return new Promise((resolve) => {
        const headers: Record<string, string> = { 'User-Agent': 'kube-probe/1.33', Accept: '*/*' };
        for (const h of g.httpHeaders ?? []) headers[h.name] = h.value;
        const req = request({ host, port: p, path: g.path ?? '/', method: 'GET', headers, timeout: timeoutMs }, (res) => {
          res.resume();
          const s = res.statusCode ?? 0;
          resolve(s >= 200 && s < 400 ? { ok: true, message: '' } : { ok: false, message: `HTTP probe failed with statuscode: ${s}` });
        });
        req.on('timeout', () => {
          req.destroy();
          resolve({ ok: false, message: `Get "${url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)` });
        });
        req.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, message: `Get "${url}": ${dialError(host, p, err)}` }));
        req.end();
      });
    }
    if (probe.tcpSocket) {
      const host = probe.tcpSocket.host || run.ip!;
      const p = port(probe.tcpSocket.port);
      return new Promise((resolve) => {
        const s = connect({ host, port: p, timeout: timeoutMs });
        s.once('connect', () => {
          s.destroy();
          resolve({ ok: true, message: '' });
        });
        s.once('timeout', () => {
          s.destroy();
          resolve({ ok: false, message: `dial tcp ${host}:${p}: i/o timeout` });
        });
        s.once('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, message: dialError(host, p, err) }));
      });
    }
    if (probe.exec) {
      const env = this.resolveEnv(run, c.spec);
      const rewrite = this.pathRewriter(run, c.spec);
      const argv = (probe.exec.command ?? []).map((a: string) => rewrite(String(a)));
      return new Promise((resolve) => {
        const proc = spawn(IP, ['netns', 'exec', run.netns!, ...argv], { env: { PATH: `${path.dirname(process.execPath)}:${BASE_PATH}`, ...env }, stdio: 'ignore', timeout: timeoutMs, killSignal: 'SIGKILL' });
        proc.once('error', (err) => resolve({ ok: false, message: err.message }));
        proc.once('exit', (code, signal) => resolve(code === 0 ? { ok: true, message: '' } : signal ? { ok: false, message: `command timed out: "${argv.join(' ')}" timed out after ${timeoutMs / 1000}s` } : { ok: false, message: `command "${argv.join(' ')}" exited with ${code}` }));
      });
    }
    return Promise.resolve({ ok: true, message: '' });
  }

  // ---- environment and paths -----------------------------------------------------------------

  /** env + envFrom as the kubelet builds them; a missing non-optional source is CreateContainerConfigError. */
  private resolveEnv(run: PodRun, spec: any): Record<string, string> {
    const ns = run.namespace;
    const out: Record<string, string> = {};
    const source = (kind: 'secret' | 'configmap', name: string): Record<string, string> | undefined => {
      const obj = this.store.get(kind === 'secret' ? SECRETS : CONFIGMAPS, ns, name);
      if (!obj) return undefined;
      if (kind === 'configmap') return { ...(obj.data ?? {}) };
      return Object.fromEntries(Object.entries(obj.data ?? {}).map(([k, v]) => [k, Buffer.from(String(v), 'base64').toString('utf8')]));
    };
    for (const f of spec.envFrom ?? []) {
      const ref = f.secretRef ?? f.configMapRef;
      const kind = f.secretRef ? 'secret' : 'configmap';
      const data = source(kind, ref.name);
      if (!data) {
        if (ref.optional) continue;
        throw new Error(`${kind} "${ref.name}" not found`);
      }
      for (const [k, v] of Object.entries(data)) out[(f.prefix ?? '') + k] = v;
    }
    for (const e of spec.env ?? []) {
      if (e.value !== undefined) out[e.name] = String(e.value).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n: string) => (n in out ? out[n]! : m));
      else if (e.valueFrom?.secretKeyRef || e.valueFrom?.configMapKeyRef) {
        const ref = e.valueFrom.secretKeyRef ?? e.valueFrom.configMapKeyRef;
        const kind = e.valueFrom.secretKeyRef ? 'secret' : 'configmap';
        const data = source(kind, ref.name);
        if (!data || !(ref.key in data)) {
          if (ref.optional) continue;
          throw new Error(data ? `couldn't find key ${ref.key} in ${kind === 'secret' ? 'Secret' : 'ConfigMap'} ${ns}/${ref.name}` : `${kind} "${ref.name}" not found`);
        }
        out[e.name] = data[ref.key]!;
      } else if (e.valueFrom?.fieldRef) {
        const f = e.valueFrom.fieldRef.fieldPath;
        out[e.name] = f === 'metadata.name' ? run.name : f === 'metadata.namespace' ? run.namespace : f === 'status.podIP' ? run.ip ?? '' : f === 'metadata.uid' ? run.uid : '';
      } else out[e.name] = '';
    }
    return out;
  }

  /** The node directory behind a claim's volume, or the kubelet's FailedMount text. */
  private claimDirectory(run: PodRun, v: any): { dir: string } | string {
    const claimName = v.persistentVolumeClaim.claimName;
    const claim = this.opts.store.get(CLAIMS, run.namespace, claimName);
    const pvName = claim?.spec?.volumeName;
    const pv = pvName ? this.opts.store.get(VOLUMES, undefined, pvName) : undefined;
    if (!claim || !pv || claim.status?.phase !== 'Bound') return `Unable to attach or mount volumes: unmounted volumes=[${v.name}]: error processing PVC ${run.namespace}/${claimName}: PVC is not bound`;
    if (pv.spec.hostPath) {
      const failed = checkHostPathType(pv.spec.hostPath.path, pv.spec.hostPath.type ?? '');
      return failed ? `MountVolume.SetUp failed for volume "${pvName}" : ${failed}` : { dir: pv.spec.hostPath.path };
    }
    if (pv.spec.local) {
      return checkHostPathType(pv.spec.local.path, 'Directory') ? `MountVolume.NewMounter initialization failed for volume "${pvName}" : path "${pv.spec.local.path}" does not exist` : { dir: pv.spec.local.path };
    }
    throw new Error(`PersistentVolume ${pvName}: only hostPath and local volumes can be mounted by the cluster in a box`);
  }

  private hostPath(run: PodRun, m: any): string {
    const base = run.volumes.get(m.name);
    if (!base) throw new Error(`volumeMount ${m.name}: no such volume in the pod`);
    return m.subPath ? path.join(base, m.subPath) : base;
  }

  /** mountPath → host directory, for any value that is a mountPath or a path below one (longest mount first). */
  private pathRewriter(run: PodRun, spec: any): (s: string) => string {
    const mounts = (spec.volumeMounts ?? []).map((m: any) => ({ at: String(m.mountPath).replace(/\/+$/, ''), host: this.hostPath(run, m) })).sort((a: any, b: any) => b.at.length - a.at.length);
    return (s) => {
      for (const m of mounts) {
        if (s === m.at) return m.host;
        if (s.startsWith(m.at + '/')) return m.host + s.slice(m.at.length);
        const eq = s.indexOf('=' + m.at);
        if (eq >= 0 && (s.length === eq + 1 + m.at.length || s[eq + 1 + m.at.length] === '/')) return s.slice(0, eq + 1) + m.host + s.slice(eq + 1 + m.at.length);
      }
      return s;
    };
  }

  // ---- status --------------------------------------------------------------------------------

  private condition(run: PodRun, type: string, ok: boolean, reason?: string, message?: string): any {
    const prev = run.conditions.get(type);
    const status = ok ? 'True' : 'False';
    const c: any = { type, status, lastProbeTime: null, lastTransitionTime: prev && prev.status === status ? prev.lastTransitionTime : nowSeconds() };
    if (!ok && reason) c.reason = reason;
    if (!ok && message) c.message = message;
    run.conditions.set(type, c);
    return c;
  }

  private ctrStatus(c: Ctr): any {
    const image = c.spec.image;
    const s: any = {
      name: c.spec.name,
      state: c.state,
      lastState: c.lastState,
      ready: c.ready,
      restartCount: c.restartCount,
      image,
      imageID: `${String(image).split(':')[0]}@sha256:${createHash('sha256').update(String(image)).digest('hex')}`,
      started: 'running' in c.state ? c.started : false,
    };
    if (c.containerID) s.containerID = c.containerID;
    return s;
  }

  private writeStatus(run: PodRun): void {
    if (run.stopping || this.closed) return;
    const live = this.store.get(PODS, run.namespace, run.name);
    if (!live || live.metadata.uid !== run.uid) return;
    const notReady = run.main.filter((c) => !c.ready).map((c) => c.spec.name);
    const incomplete = run.init.filter((c) => !('terminated' in c.state && c.state.terminated.exitCode === 0)).map((c) => c.spec.name);
    const initialized = run.initialized;
    const ready = initialized && notReady.length === 0;
    const anyRunning = run.main.some((c) => 'running' in c.state || c.restartCount > 0);
    const status: any = {
      phase: initialized && anyRunning ? 'Running' : 'Pending',
      conditions: [
        this.condition(run, 'PodReadyToStartContainers', run.ip !== undefined),
        this.condition(run, 'Initialized', initialized, 'ContainersNotInitialized', `containers with incomplete status: [${incomplete.join(' ')}]`),
        this.condition(run, 'Ready', ready, 'ContainersNotReady', `containers with unready status: [${notReady.join(' ')}]`),
        this.condition(run, 'ContainersReady', ready, 'ContainersNotReady', `containers with unready status: [${notReady.join(' ')}]`),
        this.condition(run, 'PodScheduled', true),
      ],
      hostIP: this.opts.network.gateway,
      hostIPs: [{ ip: this.opts.network.gateway }],
      startTime: run.startTime,
      qosClass: live.status?.qosClass ?? 'BestEffort',
    };
    if (run.ip) {
      status.podIP = run.ip;
      status.podIPs = [{ ip: run.ip }];
    }
    if (run.init.length) status.initContainerStatuses = run.init.map((c) => this.ctrStatus(c));
    status.containerStatuses = run.main.map((c) => this.ctrStatus(c));
    // Transition times are the only thing that moves in an unchanged status: compare without them.
    if (deepEqual(status, live.status)) return;
    this.store.writeStatus(PODS, run.namespace, run.name, status, 'kubelet');
  }

  // ---- stopping ------------------------------------------------------------------------------

  /** SIGTERM to the container's process group, SIGKILL after the grace period. */
  private terminate(c: Ctr, graceMs: number): Promise<void> {
    const proc = c.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const kill = (sig: NodeJS.Signals) => {
        try {
          process.kill(-proc.pid!, sig);
        } catch {
          // already gone
        }
      };
      const t = setTimeout(() => kill('SIGKILL'), graceMs);
      proc.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      kill('SIGTERM');
    });
  }

  private async stopPod(run: PodRun, graceMs: number): Promise<void> {
    if (run.stopping) return;
    run.stopping = true;
    for (const t of run.timers) clearTimeout(t);
    run.timers.clear();
    for (const c of [...run.init, ...run.main]) {
      const fieldPath = `spec.${c.init ? 'initContainers' : 'containers'}{${c.spec.name}}`;
      if (c.proc) this.opts.recordEvent(run.pod, 'Normal', 'Killing', `Stopping container ${c.spec.name}`, 'kubelet', fieldPath);
    }
    await Promise.all([...run.init, ...run.main].map((c) => this.terminate(c, graceMs)));
    await this.opts.network.release(run.uid);
    rmSync(run.dir, { recursive: true, force: true });
    this.pods.delete(run.uid);
  }

  // ---- test hooks ----------------------------------------------------------------------------

  /** Send a signal to a container's process (e.g. SIGKILL: a crash the kubelet must notice and restart). */
  signal(namespace: string, pod: string, container: string, sig: NodeJS.Signals): void {
    const run = [...this.pods.values()].find((r) => r.namespace === namespace && r.name === pod);
    const c = run && [...run.init, ...run.main].find((x) => x.spec.name === container);
    if (!c?.proc?.pid) throw new Error(`no running container ${container} in pod ${namespace}/${pod}`);
    process.kill(-c.proc.pid, sig);
  }

  /** What a container wrote to stdout/stderr (all its runs), like `kubectl logs`. */
  logs(namespace: string, pod: string, container: string): string {
    const run = [...this.pods.values()].find((r) => r.namespace === namespace && r.name === pod);
    if (!run) return '';
    try {
      return readFileSync(path.join(run.dir, 'containers', container, 'log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** Pods this kubelet runs now (uid → netns), for leak checks. */
  running(): Array<{ namespace: string; name: string; netns?: string | undefined; pids: number[] }> {
    return [...this.pods.values()].map((r) => ({ namespace: r.namespace, name: r.name, netns: r.netns, pids: [...r.init, ...r.main].flatMap((c) => (c.proc?.pid ? [c.proc.pid] : [])) }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.unsubscribe();
    const grace = this.opts.closeGraceMs ?? 5000;
    await Promise.all([...this.pods.values()].map((r) => this.stopPod(r, Math.min(grace, (r.pod.spec.terminationGracePeriodSeconds ?? 30) * 1000))));
    this.closed = true;
    process.removeListener('exit', this.exitHook);
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.removeListener(sig, this.signalHook);
    rmSync(this.opts.root, { recursive: true, force: true });
  }

  /** Last resort on process exit: kill every container and remove every namespace, synchronously. */
  private killAllSync(): void {
    for (const r of this.pods.values()) {
      for (const c of [...r.init, ...r.main]) {
        if (c.proc?.pid) {
          try {
            process.kill(-c.proc.pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
      if (r.netns) {
        try {
          execFileSync(IP, ['netns', 'delete', r.netns], { stdio: 'ignore', timeout: 5000 });
        } catch {
          // gone
        }
      }
    }
    rmSync(this.opts.root, { recursive: true, force: true });
  }
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 };

/** Go's net.Dial error text, which the kubelet's probe messages carry. */
function dialError(host: string, port: number, err: NodeJS.ErrnoException): string {
  if (err.code === 'ECONNREFUSED') return `dial tcp ${host}:${port}: connect: connection refused`;
  if (err.code === 'EHOSTUNREACH') return `dial tcp ${host}:${port}: connect: no route to host`;
  if (err.code === 'ECONNRESET') return `read tcp ${host}:${port}: read: connection reset by peer`;
  return `dial tcp ${host}:${port}: ${err.message}`;
}
