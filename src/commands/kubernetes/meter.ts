import { Flags } from '@oclif/core';
import { BaseCommand } from '../../cli/base-command.js';
import { parseDuration } from '../../core/units.js';
import { METER_PORT, SERVING_PORT, TRAFFIC_PORT } from '../../targets/kubernetes/settings.js';

interface MeterRun {
  stoppedBy: string;
  recorded: number;
}

export default class KubernetesMeter extends BaseCommand {
  // The sidecar entry point of modelctl's own pod spec, not something people run by hand.
  static override hidden = true;
  static override summary = 'Run the metering sidecar of a model pod (internal).';
  static override description = `Takes the pod's traffic on --listen, streams it to the model server on --upstream and records
every request (status, latency, score) in memory. modelctl reads per-version windows from --api
(GET /v1/window?since=<ms>, GET /healthz) through the Kubernetes API server's pod proxy. The kubelet
probes the model container through --api too: GET /model-ready[?timeoutMs=<ms>] asks the model's
--readiness-path on --upstream and answers its status (503 when it does not answer).
Runs until SIGTERM or SIGINT, then stops accepting and lets in-flight requests finish (--grace).`;
  static override examples = [
    `<%= config.bin %> kubernetes meter --listen 0.0.0.0:${TRAFFIC_PORT} --upstream 127.0.0.1:${SERVING_PORT} --api 0.0.0.0:${METER_PORT} --readiness-path /healthz`,
  ];
  static override flags = {
    listen: Flags.string({ description: 'host:port taking the pod traffic.', default: `0.0.0.0:${TRAFFIC_PORT}` }),
    upstream: Flags.string({ description: 'host:port of the model server in the pod.', default: `127.0.0.1:${SERVING_PORT}` }),
    api: Flags.string({ description: 'host:port of the windows/health API.', default: `0.0.0.0:${METER_PORT}` }),
    'readiness-path': Flags.string({
      description: "The model's readiness path (serve.readinessPath): GET <api>/model-ready forwards there, for the kubelet's probes of the model container.",
      default: '/healthz',
    }),
    'score-field': Flags.string({ description: "Dotted path of the bundle's numeric answer field (serve.scoreField).", env: 'MODELCTL_SCORE_FIELD' }),
    capacity: Flags.integer({ description: 'Requests kept in memory (the newest).', env: 'MODELCTL_METER_CAPACITY', min: 1, default: 100_000 }),
    'upstream-timeout': Flags.string({ description: 'Idle time after which a request to the model server fails with 504.', default: '60s' }),
    grace: Flags.string({ description: 'How long in-flight requests may finish after SIGTERM.', default: '5s' }),
    'compare-with': Flags.string({
      description: "host:port of the stable version's Service: mirrored requests (Host …-shadow) are asked there again and both answers compared (shadow agreement).",
    }),
    agreement: Flags.string({ description: 'How answers are compared, as JSON (serve.agreement, e.g. {"mode":"fields","fields":["label"]}); needed with --compare-with.' }),
    'compare-concurrency': Flags.integer({ description: 'Comparisons in flight at most; more mirrored requests are left uncompared (counted).', min: 1, default: 16 }),
    'compare-timeout': Flags.string({ description: "How long a comparison waits for the stable's answer.", default: '5s' }),
  };

  protected async execute(): Promise<MeterRun> {
    const { flags } = await this.parse(KubernetesMeter);
    const { parseHostPort, startMeter } = await import('../../targets/kubernetes/meter.js');
    const graceMs = parseDuration(flags.grace, '--grace');
    const compare = flags['compare-with'] ? await compareTarget(flags['compare-with'], flags.agreement, flags['compare-concurrency'], parseDuration(flags['compare-timeout'], '--compare-timeout')) : undefined;
    // A daemon's log line: stderr always (--json only governs stdout), one per start.
    const meter = await startMeter({
      listen: parseHostPort(flags.listen, '--listen'),
      upstream: parseHostPort(flags.upstream, '--upstream'),
      api: parseHostPort(flags.api, '--api'),
      scoreField: flags['score-field'],
      readinessPath: flags['readiness-path'],
      capacity: flags.capacity,
      upstreamTimeoutMs: parseDuration(flags['upstream-timeout'], '--upstream-timeout'),
      compare,
      log: (m) => process.stderr.write(`modelctl ${m}${flags['score-field'] ? `, score field ${flags['score-field']}` : ''}\n`),
    });
    const signal = await new Promise<string>((resolve) => {
      // The kubelet sends SIGTERM, waits terminationGracePeriodSeconds, then SIGKILL: drain in between.
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    await meter.close(graceMs);
    return { stoppedBy: signal, recorded: meter.recorded };
  }

  protected human(r: MeterRun): string {
    return `meter stopped by ${r.stoppedBy} after ${r.recorded} request(s)`;
  }
}

/** --compare-with and --agreement as the meter's CompareTarget; a missing or malformed agreement is a usage error naming the flag. */
async function compareTarget(withText: string, agreementText: string | undefined, concurrency: number, timeoutMs: number) {
  const { UsageError } = await import('../../core/errors.js');
  const { parseAnswerComparison } = await import('../../gates/answers.js');
  const { parseHostPort } = await import('../../targets/kubernetes/meter.js');
  const at = parseHostPort(withText, '--compare-with');
  if (!agreementText) throw new UsageError('--compare-with needs --agreement (how the two answers are compared)', { hint: 'e.g. --agreement \'{"mode":"fields","fields":["label"]}\'' });
  let raw: unknown;
  try {
    raw = JSON.parse(agreementText);
  } catch (err) {
    throw new UsageError(`--agreement is not JSON: ${(err as Error).message}`, { hint: 'e.g. --agreement \'{"mode":"fields","fields":["label"]}\'' });
  }
  return { ...at, agreement: parseAnswerComparison(raw, '--agreement'), concurrency, timeoutMs };
}
