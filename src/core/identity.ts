import { hostname, userInfo } from 'node:os';

/**
 * Who is acting, for the ledger and the lock: the GitHub Actions run URL when running in Actions
 * (so a held lock links to the run that holds it), else user@host and the process id.
 */
export function actorIdentity(env: NodeJS.ProcessEnv = process.env, pid = process.pid): string {
  if (env.GITHUB_ACTIONS === 'true' && env.GITHUB_RUN_ID && env.GITHUB_REPOSITORY) {
    const server = env.GITHUB_SERVER_URL ?? 'https://github.com';
    const attempt = env.GITHUB_RUN_ATTEMPT ? `/attempts/${env.GITHUB_RUN_ATTEMPT}` : '';
    return `${server}/${env.GITHUB_REPOSITORY}/actions/runs/${env.GITHUB_RUN_ID}${attempt}`;
  }
  let user = env.USER ?? env.USERNAME;
  if (!user) {
    try {
      user = userInfo().username;
    } catch {
      user = 'unknown';
    }
  }
  return `${user}@${hostname()} pid ${pid}`;
}
