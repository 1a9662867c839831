import type { Registry } from 'prom-client';
import { z } from 'zod';
import { UsageError } from '../core/errors.js';

/** A push never blocks a command longer than this. */
export const DEFAULT_PUSH_TIMEOUT_MS = 5_000;

export interface PushGateway {
  /** Base URL without credentials, e.g. http://pushgateway:9091 (shown in warnings). */
  url: string;
  /** From user:password@ in the URL (fetch refuses URLs with credentials). */
  authorization?: string;
  timeoutMs: number;
}

/** `telemetry:` in modelctl.yaml (the project schema accepts it as a free-form section). */
const telemetrySectionSchema = z
  .object({ pushgateway: z.string({ error: 'expected a URL like http://pushgateway:9091' }).optional() })
  .loose()
  .optional();

/** The Pushgateway URL in force: flag > MODELCTL_PUSHGATEWAY_URL > modelctl.yaml telemetry.pushgateway. */
export function pushgatewayUrlOf(
  flag: string | undefined,
  project: { file?: string; config: Record<string, unknown> },
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  if (flag) return flag;
  if (env.MODELCTL_PUSHGATEWAY_URL) return env.MODELCTL_PUSHGATEWAY_URL;
  const parsed = telemetrySectionSchema.safeParse(project.config.telemetry);
  if (!parsed.success) {
    throw new UsageError(`${project.file ?? 'modelctl.yaml'}: telemetry: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'section'}: ${i.message}`).join('; ')}`);
  }
  return parsed.data?.pushgateway || undefined;
}

/** Validate a Pushgateway URL (a bad one is bad input: exit 2 before anything starts). */
export function parsePushgateway(raw: string, timeoutMs = DEFAULT_PUSH_TIMEOUT_MS): PushGateway {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`Pushgateway URL ${JSON.stringify(raw.replace(/\/\/[^@/]*@/, '//***@'))} is not a URL`, { hint: 'e.g. --pushgateway http://pushgateway:9091' });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`Pushgateway URL must be http:// or https://, got ${url.protocol}`, { hint: 'e.g. --pushgateway http://pushgateway:9091' });
  }
  if (url.search || url.hash) throw new UsageError('the Pushgateway URL must not have a ?query or #fragment', { hint: 'give the base URL, e.g. http://pushgateway:9091' });
  let authorization: string | undefined;
  if (url.username || url.password) {
    authorization = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
    url.username = '';
    url.password = '';
  }
  return { url: url.toString().replace(/\/+$/, ''), ...(authorization ? { authorization } : {}), timeoutMs };
}

/**
 * One grouping-key segment. Values with a `/` (or empty ones) use the Pushgateway's base64 form,
 * `<label>@base64/<base64url>`; others are percent-encoded.
 */
export function groupingSegment(label: string, value: string): string {
  if (value === '' || value.includes('/')) return `${label}@base64/${Buffer.from(value).toString('base64url') || '='}`;
  return `${label}/${encodeURIComponent(value)}`;
}

/** `<base>/metrics/job/<job>/<label>/<value>…` */
export function groupUrl(gw: PushGateway, job: string, grouping: Record<string, string>): string {
  return [`${gw.url}/metrics`, groupingSegment('job', job), ...Object.entries(grouping).map(([k, v]) => groupingSegment(k, v))].join('/');
}

/**
 * PUT the registry to its group: the group's metrics are REPLACED by these (the last state of
 * the model on the target, not an accumulation). Throws on a non-2xx answer or a timeout.
 */
export async function pushRegistry(gw: PushGateway, registry: Registry, job: string, grouping: Record<string, string>): Promise<void> {
  const body = await registry.metrics();
  const headers: Record<string, string> = { 'content-type': registry.contentType };
  if (gw.authorization) headers.authorization = gw.authorization;
  const res = await fetch(groupUrl(gw, job, grouping), { method: 'PUT', body, headers, signal: AbortSignal.timeout(gw.timeoutMs) });
  const text = await res.text().catch(() => '');
  if (!res.ok) throw new Error(`HTTP ${res.status}${text ? `: ${text.trim().slice(0, 300)}` : ''}`);
}
