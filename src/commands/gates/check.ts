import { Flags } from '@oclif/core';
import { BaseCommand } from '../../cli/base-command.js';
import { UsageError, type ExitCode } from '../../core/errors.js';
import { checkExitCode, checkGates, loadGatesFile, parseVars, renderCheck, type CheckResult } from '../../gates/prometheus-check.js';
import { PrometheusGateEvaluator } from '../../gates/prometheus-evaluator.js';
import { PrometheusClient } from '../../gates/prometheus.js';
import { PROMETHEUS_NOT_CONFIGURED } from '../../gates/registry.js';
import { parseDuration } from '../../core/units.js';
import type { GithubReport } from '../../cli/github/reports.js';

export default class GatesCheck extends BaseCommand {
  static override summary = 'Evaluate every gate of a gates file once, now, against Prometheus.';
  static override description = `Each gate's query is resolved (placeholders filled and escaped), sent to Prometheus as an instant query at this moment, and judged by its limits: max/min, and relative bounds against the same query resolved for --var stable. Use it to calibrate thresholds before a rollout, or as a CI step after a deploy.

Placeholders: {{version}} and {{stable}} (from --var), {{model}}, {{namespace}} and any other --var name (also prometheus.vars in modelctl.yaml); {{interval}} is --window as a PromQL duration, at least prometheus.minInterval (default 1m). A value can never change a query: it is escaped for the string literal it stands in (and regex-quoted after =~ and !~), and refused outside one unless it is a plain number, duration or name.

Gates file: YAML with a top-level gates: list (or rollout.gates, so modelctl.yaml works too); each gate is {name, query} with max, min and/or relative: {maxRatio, maxDelta, minRatio, minDelta}, e.g. name: error-rate, query: sum(rate(http_requests_total{version="{{version}}",code=~"5.."}[1m])) / sum(rate(http_requests_total{version="{{version}}"}[1m])), max: 0.01. Problems are reported with file, line and field.

A query must return one series or a scalar: aggregate it, e.g. sum(…). An empty result and NaN (e.g. 0/0: no requests) are inconclusive, never a pass and never a failure; +Inf and -Inf compare as numbers. Every gate that did not pass is shown with its resolved query and the raw value Prometheus returned.

Prometheus: --prometheus-url, else MODELCTL_PROMETHEUS_URL, else prometheus.url in modelctl.yaml, which also takes headers, timeout, retries, minInterval, vars, and credentials by environment-variable NAME: bearerTokenEnv, or basicAuth: {usernameEnv, passwordEnv}; otherwise MODELCTL_PROMETHEUS_TOKEN, if set, is sent as a bearer token. Credentials are never printed. 503s, other 5xx, timeouts and connection errors are retried with backoff (prometheus.retries, default 3).

Verdict, worst first: fail > error > inconclusive > pass. Exit codes:
0  pass: every gate passed
3  fail: a value broke its limits (wins over gates that could not be measured)
4  inconclusive: no data or NaN for some gate, none failed
9  unavailable: Prometheus unreachable, timing out or refusing access (after retries)
2  usage: a query Prometheus rejected (400/422) or that returned several series; a bad gates file or flag`;
  static override examples = [
    '<%= config.bin %> gates check --file gates.yaml --var version=1.2.0 --prometheus-url http://prometheus:9090',
    '<%= config.bin %> gates check -f gates.yaml --var version=1.2.0 --var stable=1.1.0 --window 5m --json',
    "<%= config.bin %> gates check -f modelctl.yaml --var version=1.2.0 --var namespace=prod --prometheus-header 'X-Scope-OrgID: team-ml'",
  ];
  static override flags = {
    file: Flags.string({ char: 'f', description: 'The gates file (YAML: gates: [...] or rollout.gates).', required: true }),
    var: Flags.string({ description: 'A template value, name=value (repeatable): version, stable, model, namespace or your own.', multiple: true, default: [] }),
    window: Flags.string({ description: 'The window {{interval}} stands for, ending now (e.g. 45s, 5m); at least prometheus.minInterval.', default: '1m' }),
    'prometheus-url': Flags.string({ description: 'Prometheus base URL (path prefix kept, e.g. https://host/prometheus).', env: 'MODELCTL_PROMETHEUS_URL', helpGroup: 'PROMETHEUS' }),
    'prometheus-header': Flags.string({ description: "Extra request header, 'Name: value' (repeatable), e.g. X-Scope-OrgID.", multiple: true, default: [], helpGroup: 'PROMETHEUS' }),
    'prometheus-timeout': Flags.string({ description: 'Timeout of each attempt (default 10s, or prometheus.timeout).', helpGroup: 'PROMETHEUS' }),
  };

  protected async execute(): Promise<CheckResult> {
    const { flags } = await this.parse(GatesCheck);
    const vars = parseVars(flags.var);
    const windowMs = parseDuration(flags.window, '--window');
    if (windowMs <= 0) throw new UsageError('--window must be longer than 0');
    const settings = await (await this.context()).prometheusSettings({ url: flags['prometheus-url'], headers: flags['prometheus-header'], timeout: flags['prometheus-timeout'], vars });
    if (!settings) throw new UsageError(PROMETHEUS_NOT_CONFIGURED.replace('(or --prometheus-url where a command has it)', 'or --prometheus-url'));
    const client = new PrometheusClient(settings);
    const gates = await loadGatesFile(flags.file, new PrometheusGateEvaluator(client, { vars: settings.vars }));
    return checkGates({ gates, client, prometheus: settings.url, vars: settings.vars, windowMs, minIntervalMs: settings.minIntervalMs });
  }

  protected override exitCodeOf(r: CheckResult): ExitCode {
    return checkExitCode(r);
  }

  protected override async githubReport(r: CheckResult): Promise<GithubReport> {
    const { gatesCheckReport } = await import('../../cli/github/reports.js');
    return gatesCheckReport(r);
  }

  protected human(r: CheckResult): string {
    return renderCheck(r);
  }
}
