// `modelctl <words> --help` from the pages rendered at build time (scripts/render-help.mjs), served
// only where oclif would print exactly those bytes; otherwise undefined, and bin/run.js runs oclif.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import path from 'node:path';

/** FNV-1a (32-bit) of a text: a cheap check that the manifest and package.json are the ones rendered. */
export function fnv1a(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16);
}

/** The help page for these words (`[]`: the root), or undefined when oclif must render it. */
export function helpPage(root, words, env = process.env, stdout = process.stdout) {
  // oclif wraps to the terminal's width (and OCLIF_COLUMNS); the pages were rendered at its 80 for a pipe.
  if (stdout.isTTY || Number.parseInt(env.OCLIF_COLUMNS ?? '', 10)) return undefined;
  if (env.DEBUG) return undefined; // oclif's debug lines on stderr
  let cache;
  try {
    cache = JSON.parse(readFileSync(path.join(root, 'dist', 'src', 'vendor', 'help.json'), 'utf8'));
  } catch {
    return undefined; // not built with scripts/render-help.mjs
  }
  const text = cache.pages?.[words.join(':')];
  if (typeof text !== 'string') return undefined;
  try {
    if (fnv1a(readFileSync(path.join(root, 'oclif.manifest.json'), 'utf8')) !== cache.manifest) return undefined;
    if (fnv1a(readFileSync(path.join(root, 'package.json'), 'utf8')) !== cache.packageJson) return undefined;
  } catch {
    return undefined;
  }
  // A user theme (oclif's configDir/theme.json) colours help.
  const configDir = env.MODELCTL_CONFIG_DIR || path.join(env.XDG_CONFIG_HOME || path.join(env.HOME || homedir(), '.config'), 'modelctl');
  if (existsSync(path.join(configDir, 'theme.json'))) return undefined;
  // oclif colours some spans (flag values) wherever its colour library says colour is supported
  // (FORCE_COLOR, CI services…): ask that library, resolved from @oclif/core as oclif does.
  try {
    const fromCore = createRequire(createRequire(path.join(root, 'package.json')).resolve('@oclif/core'));
    if (fromCore('ansis').isSupported()) return undefined;
  } catch {
    return undefined;
  }
  return text;
}
