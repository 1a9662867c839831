import { Flags } from '@oclif/core';

/** `--pushgateway` (deploy, rollback): modelctl's own rollout metrics, pushed per model and target. */
export const telemetryFlags = {
  pushgateway: Flags.string({
    description:
      "Push modelctl's rollout metrics to this Prometheus Pushgateway (group job=modelctl, model, target) at each phase change and at the end; a failed push only warns. Also modelctl.yaml telemetry.pushgateway.",
    env: 'MODELCTL_PUSHGATEWAY_URL',
    helpGroup: 'TELEMETRY',
  }),
};

/** Push failures are warnings on stderr (also in --json mode: stdout stays one JSON document). */
export function warnOnStderr(message: string): void {
  process.stderr.write(`${message}\n`);
}
