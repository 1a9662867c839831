import { Flags } from '@oclif/core';
import type { RolloutFlags } from '../rollout/plan.js';
import { TARGETS, type TargetName } from '../services/rollouts.js';

/** Flags of every command that acts on a target. */
export const targetFlags = {
  target: Flags.string({
    description: 'Where versions run: local (the embedded runtime, default) or kubernetes.',
    options: [...TARGETS],
    default: 'local',
    env: 'MODELCTL_TARGET',
    helpGroup: 'TARGET',
  }),
  port: Flags.integer({
    description: 'Local router port, if the local runtime has to be started (also MODELCTL_LOCAL_PORT, modelctl.yaml local.port).',
    env: 'MODELCTL_LOCAL_PORT',
    helpGroup: 'TARGET',
  }),
  kubeconfig: Flags.string({
    description: 'Kubernetes: kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then the in-cluster service account).',
    helpGroup: 'TARGET',
  }),
  context: Flags.string({ description: 'Kubernetes: kubeconfig context to use (default: its current context).', env: 'MODELCTL_KUBE_CONTEXT', helpGroup: 'TARGET' }),
  namespace: Flags.string({
    char: 'n',
    description: "Kubernetes: namespace (default: modelctl.yaml kubernetes.namespace, then the context's namespace, then default).",
    env: 'MODELCTL_NAMESPACE',
    helpGroup: 'TARGET',
  }),
};

/** What the target flags say, as openEngine's options. */
export function targetOptionsOf(flags: { target: string; port?: number | undefined; kubeconfig?: string | undefined; context?: string | undefined; namespace?: string | undefined }): {
  target: TargetName;
  port: number | undefined;
  kube: { kubeconfig?: string | undefined; context?: string | undefined; namespace?: string | undefined };
} {
  return { target: flags.target as TargetName, port: flags.port, kube: { kubeconfig: flags.kubeconfig, context: flags.context, namespace: flags.namespace } };
}

/** The rollout plan's flags (each also settable by its MODELCTL_* variable). */
export const planFlags = {
  canary: Flags.string({ description: 'Start the canary at this share and climb the default ladder 5 → 25 → 50 → 100 (e.g. 5%).', helpGroup: 'ROLLOUT' }),
  steps: Flags.string({ description: 'Canary weights, ascending, ending at 100 (e.g. 5,20,50,100).', env: 'MODELCTL_STEPS', helpGroup: 'ROLLOUT' }),
  interval: Flags.string({ description: 'Bake time of each canary step (e.g. 30s, 2m). Default 30s.', env: 'MODELCTL_INTERVAL', helpGroup: 'ROLLOUT' }),
  'check-every': Flags.string({ description: 'How often gates are checked during a bake. Default: interval / 5, 1s–15s.', helpGroup: 'ROLLOUT' }),
  shadow: Flags.string({ description: 'Mirror this share of live requests to the candidate first (e.g. 10%); callers never see its answers.', helpGroup: 'ROLLOUT' }),
  'shadow-duration': Flags.string({ description: 'How long the shadow phase lasts. Default 1m.', helpGroup: 'ROLLOUT' }),
  'shadow-only': Flags.boolean({ description: 'Stop after the shadow phase: judge the candidate, never give it live traffic.', helpGroup: 'ROLLOUT' }),
  'ready-timeout': Flags.string({ description: 'How long a version may take to become ready. Default 2m.', helpGroup: 'ROLLOUT' }),
};

/** What the plan flags say, for the plan resolver: every one of them (a command copying them by hand dropped some). */
export function rolloutFlagsOf(flags: {
  canary?: string | undefined;
  steps?: string | undefined;
  interval?: string | undefined;
  'check-every'?: string | undefined;
  shadow?: string | undefined;
  'shadow-duration'?: string | undefined;
  'shadow-only'?: boolean | undefined;
  'ready-timeout'?: string | undefined;
}): RolloutFlags {
  return {
    canary: flags.canary,
    steps: flags.steps,
    interval: flags.interval,
    checkEvery: flags['check-every'],
    shadow: flags.shadow,
    shadowDuration: flags['shadow-duration'],
    // A boolean flag not given is false: only `true` says anything.
    shadowOnly: flags['shadow-only'] || undefined,
    readyTimeout: flags['ready-timeout'],
  };
}
