/**
 * kube-proxy of the box: a Service's ClusterIP:port reaches one of its ready endpoints. The box has
 * no iptables rules; instead each ClusterIP (from the box's own /24, see PodNetwork.nextServiceIp)
 * is a local address of the node on the pod bridge, and a TCP proxy listens on ClusterIP:port and
 * connects each new connection to a ready endpoint (round-robin, per connection — as kube-proxy's
 * rules pick per connection). Pods reach it over their default route to the node, as they reach a
 * ClusterIP on a real node. Endpoints are the data plane's (Ready pods, resolved targetPort); a
 * Service without one refuses the connection (a real ClusterIP without endpoints REJECTs too).
 * No DNS: clients are given the ClusterIP (modelctl's meter is).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { GatewayDataPlane } from './dataplane.js';
import type { PodNetwork } from './netns.js';
import { resourceDef } from './resources.js';
import type { Store, StoreEvent } from './store.js';

const SERVICES = resourceDef('services');

export class KubeProxy {
  private readonly servers = new Map<string, Server>();
  private readonly addresses = new Set<string>();
  private readonly sockets = new Set<Socket>();
  private readonly unsubscribe: () => void;
  /** Connections proxied per Service (`namespace/name`), and refused for want of an endpoint. */
  readonly stats = { proxied: new Map<string, number>(), refused: new Map<string, number>() };

  constructor(
    private readonly network: PodNetwork,
    private readonly dataPlane: GatewayDataPlane,
    store: Store,
  ) {
    this.unsubscribe = store.subscribe((e: StoreEvent) => {
      if (e.def !== SERVICES) return;
      if (e.type === 'DELETED') this.drop(e.object);
      else void this.ensure(e.object).catch(() => undefined);
    });
  }

  private async ensure(svc: any): Promise<void> {
    const ip: string | undefined = svc.spec?.clusterIP;
    if (!ip || ip === 'None') return;
    if (!this.addresses.has(ip)) {
      this.addresses.add(ip);
      await this.network.addNodeAddress(ip);
    }
    const { namespace, name } = svc.metadata;
    for (const p of svc.spec?.ports ?? []) {
      const key = `${ip}:${p.port}`;
      if (this.servers.has(key)) continue;
      const server = createServer((inbound) => this.connection(inbound, namespace, name, p.port));
      this.servers.set(key, server);
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(p.port, ip, resolve));
    }
  }

  private connection(inbound: Socket, namespace: string, name: string, port: number): void {
    const key = `${namespace}/${name}`;
    const ep = this.dataPlane.endpoint(namespace, name, port);
    if (!('ip' in ep)) {
      this.stats.refused.set(key, (this.stats.refused.get(key) ?? 0) + 1);
      return void inbound.destroy();
    }
    this.stats.proxied.set(key, (this.stats.proxied.get(key) ?? 0) + 1);
    const out = connect(ep.port, ep.ip);
    this.sockets.add(inbound).add(out);
    const drop = () => {
      inbound.destroy();
      out.destroy();
      this.sockets.delete(inbound);
      this.sockets.delete(out);
    };
    inbound.on('error', drop).on('close', drop);
    out.on('error', drop).on('close', drop);
    inbound.pipe(out).pipe(inbound);
  }

  private drop(svc: any): void {
    for (const p of svc.spec?.ports ?? []) {
      const key = `${svc.spec?.clusterIP}:${p.port}`;
      this.servers.get(key)?.close();
      this.servers.delete(key);
    }
  }

  close(): void {
    this.unsubscribe();
    for (const s of this.servers.values()) s.close();
    this.servers.clear();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}
