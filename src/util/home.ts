import path from 'node:path';
import envPaths from 'env-paths';

/**
 * MODELCTL_HOME, else the user's data directory (e.g. ~/.local/share/modelctl). Here, not with the
 * modelctl.yaml parsing, because the local runtime's daemon (a process of its own, started without
 * a project) needs it too, and a backend must not import the configuration layer above it.
 */
export function modelctlHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.MODELCTL_HOME ? path.resolve(env.MODELCTL_HOME) : envPaths('modelctl', { suffix: '' }).data;
}

export function defaultStoreUrl(env: NodeJS.ProcessEnv = process.env): string {
  return `file://${path.join(modelctlHome(env), 'store')}`;
}
