import type { RolloutEvent } from '../core/events.js';
import type { RollbackResult, RolloutResult } from '../rollout/results.js';
import type { RolloutFlags } from '../rollout/plan.js';
import type { Context } from './context.js';
import { deploy, openEngine, openTelemetry, teeEvents, withTelemetry, type RolloutContextOptions } from './rollouts.js';

export interface RollbackRequest {
  model: string;
  /** The version to serve (default: the previous stable version). */
  to?: string | undefined;
  /** A version outside the stable set is deployed afresh (a full rollout) instead of refused. */
  force: boolean;
  /** The version rolled back from stays warm in the stable set. */
  keepStable: boolean;
  /**
   * The plan of that fresh deploy: every plan flag, derived by the same function as deploy's
   * (rolloutFlagsOf). Copied by hand, it once lost --shadow, --shadow-duration and --shadow-only.
   */
  plan: RolloutFlags;
  /** --pushgateway (else MODELCTL_PUSHGATEWAY_URL, else modelctl.yaml telemetry.pushgateway). */
  pushgateway?: string | undefined;
}

/** What arms Ctrl-C for a full rollout (the CLI's signal handling): its signal, its event tap, and its disposal. */
export interface Interruption {
  signal: AbortSignal;
  onEvent(e: RolloutEvent): void;
  dispose(): void;
}

export interface RollbackHooks {
  onEvent?: ((e: RolloutEvent) => void) | undefined;
  note?: ((message: string) => void) | undefined;
  /** Where a failed telemetry push is reported; it never fails the command. */
  warn?: ((message: string) => void) | undefined;
  /** Called when the rollback turns into a full rollout, which Ctrl-C then aborts to stable, as for deploy. */
  interruption?: (() => Interruption) | undefined;
}

export type RollbackOutcome = (RollbackResult & { deploy?: undefined }) | { action: 'redeployed'; deploy: RolloutResult };

/**
 * `rollback`: a traffic switch to a warm version of the stable set, or, with --force for a version
 * no longer warm, a fresh deploy of it through the usual steps and gates.
 */
export async function rollback(
  ctx: Context,
  target: Omit<RolloutContextOptions, 'onEvent' | 'note'>,
  req: RollbackRequest,
  hooks: RollbackHooks = {},
): Promise<RollbackOutcome> {
  const telemetryRequest = { pushgateway: req.pushgateway, telemetry: true, ...(hooks.warn ? { warn: hooks.warn } : {}) };
  const telemetry = await openTelemetry(ctx, req.model, target.target, telemetryRequest);
  const onEvent = teeEvents(hooks.onEvent, telemetry && ((e) => telemetry.onEvent(e)));
  const engine = await openEngine(ctx, { ...target, ...(onEvent ? { onEvent } : {}), note: hooks.note });
  // A switch pushes its own story; needs-deploy pushes nothing here (the deploy below does).
  const r = await withTelemetry(telemetry, () => engine.rollback(req.model, { to: req.to, force: req.force, keepStable: req.keepStable }));
  if (r.action !== 'needs-deploy') return r;
  hooks.note?.(`${req.model}@${r.to} is not warm: deploying it afresh (--force)`);
  const interruption = hooks.interruption?.();
  try {
    const result = (await deploy(ctx, {
      ...target,
      note: hooks.note,
      ref: `${req.model}@${r.to}`,
      dryRun: false,
      resume: false,
      ...telemetryRequest,
      flags: req.plan,
      signal: interruption?.signal,
      onEvent: (e) => {
        interruption?.onEvent(e);
        hooks.onEvent?.(e);
      },
    })) as RolloutResult;
    return { action: 'redeployed', deploy: result };
  } finally {
    interruption?.dispose();
  }
}
