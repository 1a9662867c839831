import { UsageError } from '../core/errors.js';
import { isExactSemver } from './semver.js';
import { bundleName } from './spec.js';

export type BundleRef = { name: string; version: string; digest?: undefined } | { name: string; digest: string; version?: undefined };

/** Parse `name@1.4.0` or `name@sha256:<hex>`. */
export function parseRef(ref: string): BundleRef {
  const at = ref.lastIndexOf('@');
  const hint = 'a ref is <name>@<version> (e.g. sentiment@1.4.0) or <name>@sha256:<64 hex digits>';
  if (at <= 0) throw new UsageError(`"${ref}" is not a ref`, { hint });
  const name = ref.slice(0, at);
  const what = ref.slice(at + 1);
  if (!bundleName.safeParse(name).success) throw new UsageError(`"${ref}": "${name}" is not a valid bundle name`, { hint });
  if (what.startsWith('sha256:')) {
    if (!/^sha256:[0-9a-f]{64}$/.test(what)) throw new UsageError(`"${ref}": the digest must be sha256: followed by 64 lower-case hex digits`, { hint });
    return { name, digest: what };
  }
  if (!isExactSemver(what)) throw new UsageError(`"${ref}": "${what}" is not a semver version`, { hint });
  return { name, version: what };
}

export function formatRef(ref: BundleRef): string {
  return `${ref.name}@${ref.version ?? ref.digest}`;
}
