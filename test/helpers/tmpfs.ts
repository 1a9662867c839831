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

/**
 * Mount a ramfs on `dir`: a file system that refuses O_DIRECT (open fails with EINVAL), as some
 * FUSE and overlay mounts do; tmpfs accepts it since Linux 6.6. Needs root (or CAP_SYS_ADMIN).
 */
export function mountRamfs(dir: string): () => void {
  try {
    execFileSync('mount', ['-t', 'ramfs', 'ramfs', dir], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`this test mounts a ramfs and needs root (or CAP_SYS_ADMIN): ${(err as Error).message}`);
  }
  return () => execFileSync('umount', [dir], { stdio: 'pipe' });
}
