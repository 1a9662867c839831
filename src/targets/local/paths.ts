import { renameSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * Where the local runtime keeps everything: one directory per MODELCTL_HOME, so two homes (two
 * users, two test runs) never share a daemon, a state file, logs or pulled bundles.
 *
 *   $MODELCTL_HOME/local/
 *     runtime.json        {pid, port, adminPort, startedAt, token}: present while a daemon runs
 *     state.json          desired state: versions and traffic (written atomically)
 *     children.json       pids of running version processes (to reap orphans after a daemon crash)
 *     daemon.lock         one daemon per home
 *     logs/daemon.log     the daemon's own log
 *     logs/<model>-<version>.log
 *     bundles/<model>/<version>-<digest hex 12>/
 */
export interface LocalPaths {
  root: string;
  runtime: string;
  state: string;
  children: string;
  lock: string;
  logs: string;
  daemonLog: string;
  bundles: string;
}

export function localPaths(home: string): LocalPaths {
  const root = path.join(path.resolve(home), 'local');
  return {
    root,
    runtime: path.join(root, 'runtime.json'),
    state: path.join(root, 'state.json'),
    children: path.join(root, 'children.json'),
    lock: path.join(root, 'daemon.lock'),
    logs: path.join(root, 'logs'),
    daemonLog: path.join(root, 'logs', 'daemon.log'),
    bundles: path.join(root, 'bundles'),
  };
}

/** The directory a version's verified bundle is pulled into (the digest keeps a re-pushed tag apart). */
export function bundleDirFor(paths: LocalPaths, model: string, version: string, digest: string): string {
  return path.join(paths.bundles, model, `${version}-${digest.slice('sha256:'.length, 'sha256:'.length + 12)}`);
}

export function versionLogFile(paths: LocalPaths, model: string, version: string): string {
  return path.join(paths.logs, `${model}-${version}.log`);
}

/** Key of a version in maps: model names are DNS labels and cannot contain "@". */
export function versionKey(model: string, version: string): string {
  return `${model}@${version}`;
}

/** Logs are appended across restarts; past this size the old part moves to <file>.1 (one generation kept). */
const MAX_LOG_BYTES = 10 * 1024 * 1024;

export function rotateIfLarge(file: string): void {
  try {
    if (statSync(file).size > MAX_LOG_BYTES) renameSync(file, `${file}.1`);
  } catch {
    /* absent: nothing to rotate */
  }
}
