import { execFileSync } from 'node:child_process';

/** Mount a tmpfs of `size` (e.g. '4m') on `dir`: a real full disk for tests (needs root or CAP_SYS_ADMIN). */
export function mountTmpfs(dir: string, size: string): () => void {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`this test mounts a ${size} tmpfs and needs root (or CAP_SYS_ADMIN): ${(err as Error).message}`);
  }
  return () => execFileSync('umount', [dir], { stdio: 'pipe' });
}
