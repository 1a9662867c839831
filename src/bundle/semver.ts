import parse from 'semver/functions/parse.js';

/**
 * True for a full, strict semver string, build metadata included. (`semver.valid` drops build
 * metadata and accepts a leading "v", so it cannot tell "1.4.0+abc" from "1.4.0" or "v1.4.0".)
 */
export function isExactSemver(v: string): boolean {
  const parsed = parse(v);
  if (!parsed) return false;
  const canonical = parsed.build.length > 0 ? `${parsed.version}+${parsed.build.join('.')}` : parsed.version;
  return canonical === v;
}
