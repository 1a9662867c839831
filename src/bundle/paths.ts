import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../core/errors.js';
import { BUNDLE_FILE } from './spec.js';

/** Directory that `bundle pull` writes its verification record into; never part of a bundle. */
export const META_DIR = '.modelctl';

/** A file that belongs to a component, found on disk. */
export interface SourceFile {
  component: string;
  /** Path relative to the bundle root, POSIX separators, as stored in the manifest. */
  path: string;
  /** Where to read the bytes from (a symlink inside the bundle is followed). */
  absPath: string;
  size: number;
  executable: boolean;
}

/** Byte order of UTF-8 paths: the same on every machine and locale. */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Check that a relative path names something inside the bundle: no absolute paths, no "..",
 * no backslashes or NUL. Returns the normalised POSIX form ("./a//b/" → "a/b").
 */
export function safeRelativePath(p: string, where: string): string {
  if (p.includes('\0')) throw new UsageError(`${where}: path contains a NUL byte`);
  if (p.includes('\\')) throw new UsageError(`${where}: "${p}" contains a backslash; use "/" as the separator`);
  if (path.posix.isAbsolute(p) || /^[A-Za-z]:/.test(p)) {
    throw new UsageError(`${where}: "${p}" is absolute; paths must be relative to the bundle root`);
  }
  const normalised = path.posix.normalize(p).replace(/\/+$/, '');
  if (normalised === '..' || normalised.startsWith('../') || p.split('/').includes('..')) {
    throw new UsageError(`${where}: "${p}" leaves the bundle directory ("..")`, { hint: 'move the file inside the bundle directory' });
  }
  return normalised === '' ? '.' : normalised;
}

function isInside(root: string, target: string): boolean {
  const rel = path.relative(root, target);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function kindOf(st: Stats): string {
  if (st.isBlockDevice()) return 'a block device';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isSocket()) return 'a socket';
  if (st.isFIFO()) return 'a named pipe';
  return 'not a regular file';
}

/**
 * Expand each component's declared paths into its files. Refuses anything that could escape the
 * bundle or is not plain data: "..", absolute paths, symlinks resolving outside the root, devices,
 * sockets and pipes. A file may belong to one component only.
 */
export async function collectFiles(root: string, components: Record<string, string[]>): Promise<SourceFile[]> {
  const realRoot = await realpath(root);
  const owner = new Map<string, SourceFile>();

  const addFile = (component: string, rel: string, absPath: string, st: Stats): void => {
    if (rel === BUNDLE_FILE) return; // captured as the manifest's spec, not as a file
    const prior = owner.get(rel);
    if (prior && prior.component !== component) {
      throw new UsageError(`${rel} is listed in two components: "${prior.component}" and "${component}"`, {
        hint: 'a file belongs to one component; narrow one of the two path lists in bundle.yaml',
        details: { path: rel, components: [prior.component, component] },
      });
    }
    owner.set(rel, { component, path: rel, absPath, size: st.size, executable: (st.mode & 0o111) !== 0 });
  };

  const visit = async (component: string, rel: string, where: string, seenDirs: Set<string>): Promise<void> => {
    const abs = path.join(root, rel);
    let st: Stats;
    try {
      st = await lstat(abs);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new UsageError(`${where}: "${rel}" does not exist in ${root}`, { hint: 'fix the path in bundle.yaml or add the file' });
      }
      throw err;
    }
    let target = abs;
    if (st.isSymbolicLink()) {
      let resolved: string;
      try {
        resolved = await realpath(abs);
      } catch {
        throw new UsageError(`${where}: symlink "${rel}" is broken`, { hint: 'remove it or point it at a file inside the bundle' });
      }
      if (!isInside(realRoot, resolved)) {
        throw new UsageError(`${where}: symlink "${rel}" points outside the bundle (${resolved})`, {
          hint: 'copy the file into the bundle directory instead of linking to it',
        });
      }
      target = resolved;
      st = await stat(resolved);
    }
    if (st.isDirectory()) {
      const real = await realpath(target);
      if (seenDirs.has(real)) return; // a symlink loop or a directory listed twice
      const nextSeen = new Set(seenDirs).add(real);
      const names = (await readdir(abs)).sort(compareBytes);
      for (const name of names) {
        if (rel === '.' && name === META_DIR) continue;
        await visit(component, rel === '.' ? name : `${rel}/${name}`, where, nextSeen);
      }
      return;
    }
    if (!st.isFile()) {
      throw new UsageError(`${where}: "${rel}" is ${kindOf(st)}; bundles hold regular files and directories only`, {
        hint: 'remove it from the component paths',
      });
    }
    addFile(component, rel, target, st);
  };

  for (const [component, declared] of Object.entries(components).sort(([a], [b]) => compareBytes(a, b))) {
    for (const [i, p] of declared.entries()) {
      const where = `bundle.yaml: components.${component}[${i}]`;
      await visit(component, safeRelativePath(p, where), where, new Set());
    }
  }
  return [...owner.values()].sort((a, b) => compareBytes(a.path, b.path));
}
