import type { Store, StoreEvent } from './store.js';
import { resourceDef } from './resources.js';

/**
 * A simulated Gateway API implementation (the part of e.g. Envoy Gateway that the API server
 * shows): for every HTTPRoute generation it writes `status.parents` — Accepted, and ResolvedRefs
 * (False with BackendNotFound when a backend Service does not exist) — with observedGeneration, the
 * way real controllers report that they programmed a route.
 *
 * Modes: 'accept' (default), 'reject' (Accepted=False, NotAllowedByListeners: the route is not
 * attached to the Gateway), 'silent' (no controller runs: status never appears).
 */
export type GatewayMode = 'accept' | 'reject' | 'silent';

export const FAKE_GATEWAY_CONTROLLER = 'example.net/fake-gateway-controller';

const HTTPROUTES = resourceDef('httproutes');
const SERVICES = resourceDef('services');

export class GatewayController {
  mode: GatewayMode = 'accept';
  /** How long the controller takes to report a new generation. */
  delayMs = 10;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly unsubscribe: () => void;

  constructor(private readonly store: Store) {
    this.unsubscribe = store.subscribe((e) => this.onEvent(e));
  }

  close(): void {
    this.unsubscribe();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private onEvent(e: StoreEvent): void {
    if (e.def !== HTTPROUTES || e.type === 'DELETED') return;
    if (e.type === 'MODIFIED' && e.previous?.metadata.generation === e.object.metadata.generation) return; // a status write
    if (this.mode === 'silent') return;
    const { namespace, name, generation } = e.object.metadata;
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.report(namespace, name, generation);
    }, this.delayMs);
    this.timers.add(t);
  }

  private report(namespace: string, name: string, generation: number): void {
    const route = this.store.get(HTTPROUTES, namespace, name);
    if (!route || route.metadata.generation !== generation) return; // a newer generation reports itself
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const missing = (route.spec?.rules ?? [])
      .flatMap((r: any) => [...(r.backendRefs ?? []), ...(r.filters ?? []).filter((f: any) => f.type === 'RequestMirror').map((f: any) => f.requestMirror.backendRef)])
      .filter((b: any) => !this.store.get(SERVICES, b.namespace ?? namespace, b.name))
      .map((b: any) => b.name);
    const condition = (type: string, ok: boolean, reason: string, message: string) => ({ type, status: ok ? 'True' : 'False', reason, message, observedGeneration: generation, lastTransitionTime: now });
    const parents = (route.spec?.parentRefs ?? []).map((parentRef: any) => ({
      parentRef,
      controllerName: FAKE_GATEWAY_CONTROLLER,
      conditions: [
        this.mode === 'reject'
          ? condition('Accepted', false, 'NotAllowedByListeners', `no listener of Gateway ${parentRef.name} allows routes from namespace ${namespace}`)
          : condition('Accepted', true, 'Accepted', 'Route is accepted'),
        missing.length ? condition('ResolvedRefs', false, 'BackendNotFound', `Service(s) ${missing.join(', ')} not found`) : condition('ResolvedRefs', true, 'ResolvedRefs', 'Resolved all the Object references for the Route'),
      ],
    }));
    this.store.writeStatus(HTTPROUTES, namespace, name, { parents }, 'fake-gateway-controller');
  }
}
