import { z } from 'zod';
import { UsageError } from '../../core/errors.js';

/**
 * What the configuration layer hands the local target: modelctl.yaml's `local:` section, free-form
 * there and checked here, where it is used (so a typo in it only fails commands that need it, as
 * before), and the file it came from (for messages). The target never reads the file itself.
 */
export interface LocalConfig {
  section?: unknown;
  file?: string | undefined;
}

/** The router port when nothing chooses one (and it is free; otherwise any free port). */
export const DEFAULT_LOCAL_PORT = 8700;

const portSchema = z.number().int().min(0).max(65535);
const localSectionSchema = z.object({ port: portSchema.optional() }).loose();

function parsePort(value: string, where: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !portSchema.safeParse(n).success) {
    throw new UsageError(`${where}: "${value}" is not a TCP port`, { hint: 'use a number from 1 to 65535 (0 = any free port)' });
  }
  return n;
}

/**
 * The router port the user asked for, by precedence: --port < MODELCTL_LOCAL_PORT < `local: {port}`
 * in modelctl.yaml. undefined = not chosen: the daemon re-uses the port it had, else 8700, else
 * any free port (so two homes on one machine never collide). 0 = any free port.
 */
export async function resolveLocalPort(
  flag: number | undefined,
  env: NodeJS.ProcessEnv = process.env,
  settings: LocalConfig | (() => Promise<LocalConfig>) = {},
): Promise<number | undefined> {
  if (flag !== undefined) return parsePort(String(flag), '--port');
  if (env.MODELCTL_LOCAL_PORT) return parsePort(env.MODELCTL_LOCAL_PORT, 'MODELCTL_LOCAL_PORT');
  // Asked for only now: with --port or MODELCTL_LOCAL_PORT, modelctl.yaml is not needed (nor read).
  const config = typeof settings === 'function' ? await settings() : settings;
  const local = config.section;
  if (local === undefined) return undefined;
  const parsed = localSectionSchema.safeParse(local);
  if (!parsed.success) {
    throw new UsageError(`${config.file}: local.port: expected a TCP port number`, { hint: 'e.g. `local: {port: 8700}`' });
  }
  return parsed.data.port;
}
