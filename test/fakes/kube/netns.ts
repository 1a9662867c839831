import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** `ip` from iproute2: absolute, so the tests do not depend on root's PATH. */
export const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p)) ?? 'ip';

/** Host numbers from here up in the box's /24 are Service ClusterIPs; pods take those below. */
const SERVICE_HOST_MIN = 200;

/** Thrown when this machine cannot make network namespaces: the box needs root and iproute2. */
export class NetnsUnavailableError extends Error {}

async function ip(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run(IP, args, { timeout: 10_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

/** A pod's sandbox: its own network namespace, one veth end in it as eth0 with the pod IP. */
export interface PodSandbox {
  netns: string;
  ip: string;
}

/**
 * The node's pod network, made of real kernel objects: a Linux bridge with a private /24 (the node
 * side holds .1, the pods' default gateway) and, per pod, a network namespace joined to the bridge
 * by a veth pair. Exactly the shape of a kind node's bridge CNI: each pod has its own loopback and
 * its own IP, pods reach each other and the node over the bridge, nothing reaches outside (no NAT,
 * no forwarding is enabled). Every name carries a per-run id so parallel runs do not collide, and
 * close() removes everything it made even when pods are still up.
 */
/** Byte counts through a relay, and an optional bandwidth (bytes per second, 0 = unlimited) towards the pods. */
export interface RelayBytes {
  toPods: number;
  fromPods: number;
  toPodsPerSecond: number;
}

export class PodNetwork {
  readonly runId: string;
  readonly bridge: string;
  /** The node's address on the bridge: what pods reach the host at (see `relay`). */
  readonly gateway: string;
  private readonly prefix: string;
  private readonly used = new Set<number>();
  private readonly sandboxes = new Map<string, { netns: string; hostVeth: string; host: number }>();
  private readonly relays = new Set<Server>();
  private closed = false;
  private nextService = SERVICE_HOST_MIN;

  private constructor(runId: string, prefix: string) {
    this.runId = runId;
    this.prefix = prefix;
    this.bridge = `kb${runId}`;
    this.gateway = `${prefix}.1`;
  }

  /** Make the bridge and its /24. Fails with NetnsUnavailableError (why, and what to do) when not allowed. */
  static async create(): Promise<PodNetwork> {
    if (process.getuid?.() !== 0) {
      throw new NetnsUnavailableError(
        `the cluster in a box runs every pod in its own network namespace (ip netns, veth, a bridge), which needs root; this test runs as uid ${process.getuid?.()}. Run the tests as root (.ci/run does), with iproute2 installed (.ci/install-debian.sh).`,
      );
    }
    const runId = randomBytes(3).toString('hex');
    const taken = await ip('-4', '-o', 'addr', 'show').catch((err: Error) => {
      throw new NetnsUnavailableError(`cannot run iproute2 (${err.message}): install it (apt-get install iproute2, see .ci/install-debian.sh)`);
    });
    // A private /24 nobody on this machine uses yet (10.200.0.0 – 10.254.255.0).
    let prefix = '';
    for (let i = 0; i < 50 && !prefix; i++) {
      const p = `10.${200 + (randomBytes(1)[0]! % 55)}.${randomBytes(1)[0]!}`;
      if (!taken.includes(` ${p}.`)) prefix = p;
    }
    if (!prefix) throw new NetnsUnavailableError('no free private /24 under 10.200.0.0/11 for the pod network');
    const net = new PodNetwork(runId, prefix);
    try {
      await ip('link', 'add', net.bridge, 'type', 'bridge');
    } catch (err) {
      throw new NetnsUnavailableError(`cannot create a bridge for the pod network (${(err as Error).message}): the cluster in a box needs root with CAP_NET_ADMIN`);
    }
    try {
      await ip('addr', 'add', `${net.gateway}/24`, 'dev', net.bridge);
      await ip('link', 'set', net.bridge, 'up');
    } catch (err) {
      await net.close();
      throw err;
    }
    return net;
  }

  /** A sandbox for one pod: netns `kb<run>-<n>`, eth0 with the next free address, lo up, default route via the node. */
  async sandbox(podUid: string): Promise<PodSandbox> {
    if (this.closed) throw new Error('pod network closed');
    let host = 2;
    while (this.used.has(host)) host++;
    if (host >= SERVICE_HOST_MIN) throw new Error(`pod network ${this.prefix}.0/24 is full (pods take .2–.${SERVICE_HOST_MIN - 1})`);
    this.used.add(host);
    const netns = `kb${this.runId}-${host}`;
    const hostVeth = `kv${this.runId}${host.toString(16).padStart(2, '0')}`;
    const peer = `kp${this.runId}${host.toString(16).padStart(2, '0')}`;
    const podIp = `${this.prefix}.${host}`;
    this.sandboxes.set(podUid, { netns, hostVeth, host });
    try {
      await ip('netns', 'add', netns);
      await ip('link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', peer);
      await ip('link', 'set', peer, 'netns', netns);
      await ip('link', 'set', hostVeth, 'master', this.bridge);
      await ip('link', 'set', hostVeth, 'up');
      await ip('-n', netns, 'link', 'set', peer, 'name', 'eth0');
      await ip('-n', netns, 'addr', 'add', `${podIp}/24`, 'dev', 'eth0');
      await ip('-n', netns, 'link', 'set', 'eth0', 'up');
      await ip('-n', netns, 'link', 'set', 'lo', 'up');
      await ip('-n', netns, 'route', 'add', 'default', 'via', this.gateway);
    } catch (err) {
      await this.release(podUid);
      throw err;
    }
    return { netns, ip: podIp };
  }

  /** Remove a pod's namespace (its veth goes with it) and free its address. */
  async release(podUid: string): Promise<void> {
    const s = this.sandboxes.get(podUid);
    if (!s) return;
    this.sandboxes.delete(podUid);
    await ip('netns', 'delete', s.netns).catch(() => undefined);
    await ip('link', 'delete', s.hostVeth).catch(() => undefined);
    this.used.delete(s.host);
  }

  /**
   * Make a service the host runs on 127.0.0.1:`port` (e.g. the test's S3) reachable from the pods
   * at `gateway:<port returned>`: a plain TCP relay bound to the bridge address only. In a real
   * cluster the store is an external address the pods reach; here it is the node's bridge address.
   */
  async relay(port: number): Promise<{ host: string; port: number; bytes: RelayBytes }> {
    const sockets = new Set<Socket>();
    // What crossed the relay (the bytes pods fetched from the store, headers included): a test
    // measures what a pod downloads on the wire, independently of what the pod reports. A test may
    // also slow the store down (toPodsPerSecond, per connection), as a remote S3 is slow next to a
    // local one: a download then lasts long enough for two pods' pulls to overlap for sure.
    const bytes: RelayBytes = { toPods: 0, fromPods: 0, toPodsPerSecond: 0 };
    const server = createServer((inbound) => {
      const out = connect(port, '127.0.0.1');
      out.on('data', (c: Buffer) => {
        bytes.toPods += c.length;
        if (bytes.toPodsPerSecond > 0) {
          out.pause();
          setTimeout(() => out.resume(), (c.length / bytes.toPodsPerSecond) * 1000);
        }
      });
      inbound.on('data', (c: Buffer) => (bytes.fromPods += c.length));
      sockets.add(inbound).add(out);
      const drop = () => {
        inbound.destroy();
        out.destroy();
        sockets.delete(inbound);
        sockets.delete(out);
      };
      inbound.on('error', drop).on('close', drop);
      out.on('error', drop).on('close', drop);
      inbound.pipe(out).pipe(inbound);
    });
    server.on('close', () => sockets.forEach((s) => s.destroy()));
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, this.gateway, resolve));
    this.relays.add(server);
    const addr = server.address();
    return { host: this.gateway, port: typeof addr === 'object' && addr ? addr.port : 0, bytes };
  }

  /**
   * The next Service ClusterIP, from the top of this box's /24 (.200–.254): inside the box's own
   * range, so parallel boxes on one machine never bind the same address (the real 10.96.0.0/12 is
   * one range per cluster; here every box is a cluster on the same host).
   */
  nextServiceIp(): string {
    if (this.nextService > 254) throw new Error(`no Service ClusterIP left in ${this.prefix}.${SERVICE_HOST_MIN}–.254`);
    return `${this.prefix}.${this.nextService++}`;
  }

  /** Make `ip` a local address of the node on the bridge (a ClusterIP kube-proxy answers on). Removed with the bridge. */
  async addNodeAddress(address: string): Promise<void> {
    await ip('addr', 'add', `${address}/32`, 'dev', this.bridge);
  }

  /** The synchronous last resort (a signal is killing the process): namespaces and the bridge. */
  closeSync(): void {
    this.closed = true;
    for (const s of this.sandboxes.values()) {
      try {
        execFileSync(IP, ['netns', 'delete', s.netns], { stdio: 'ignore', timeout: 5000 });
      } catch {
        // gone
      }
    }
    this.sandboxes.clear();
    try {
      execFileSync(IP, ['link', 'delete', this.bridge], { stdio: 'ignore', timeout: 5000 });
    } catch {
      // gone
    }
  }

  /** Everything this network made: relays, every pod namespace, the bridge. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    for (const r of this.relays) {
      r.close();
      r.emit('close');
    }
    this.relays.clear();
    for (const uid of [...this.sandboxes.keys()]) await this.release(uid);
    await ip('link', 'delete', this.bridge).catch(() => undefined);
  }
}

/** Every namespace and bridge of this box's naming scheme that a crashed run left behind, by run id. */
export async function leftovers(runId: string): Promise<string[]> {
  const ns = (await ip('netns', 'list').catch(() => '')).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(`kb${runId}-`));
  const links = (await ip('-o', 'link', 'show').catch(() => '')).split('\n').map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '').filter((n) => n.includes(runId));
  return [...ns, ...links];
}
