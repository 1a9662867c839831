/**
 * What the API server says about fields it does not know, and what that means for a user.
 *
 * The API server's default field validation is Warn: an unknown field is dropped and the write
 * succeeds with a `Warning: 299 - "unknown field …"` response header. For modelctl that silently
 * turns "mirror 5%" into "mirror 100%" on Gateway API < v1.3 (no RequestMirror.percent there), so
 * every write is sent with fieldValidation=Strict (client.ts) and the 400 it gets instead is
 * explained here: which field, which feature, which version of which API brings it, what to do.
 *
 * The server's wording (kubernetes apiserver, structured-merge-diff):
 *   JSON create/update, Strict:  400 `strict decoding error: unknown field "spec.foo", unknown field "spec.bar"`
 *   server-side apply (any fieldValidation): 500 `failed to create typed patch object (ns/name; gvk):
 *                                .spec.foo: field not declared in schema` — a 500, not a 400, to this day
 *                                (kubernetes#122480, #139253; PR #139255 would make it a 400): both are handled
 *   other writes, Warn (header): `299 - "unknown field \"spec.foo\""`
 */

/** Gateway API facts modelctl depends on (kubernetes-sigs/gateway-api CHANGELOG, GEP-3171). */
export const GATEWAY_API = {
  /** RequestMirror `percent`/`fraction` reached the Standard channel in v1.3.0 (experimental in v1.2). */
  mirrorPercentSince: 'v1.3.0',
  mirrorPercentFeature: 'HTTPRouteRequestPercentageMirror',
  crdName: 'httproutes.gateway.networking.k8s.io',
  bundleVersionAnnotation: 'gateway.networking.k8s.io/bundle-version',
  channelAnnotation: 'gateway.networking.k8s.io/channel',
  installHint:
    'install Gateway API v1.3.0 or later, standard channel: kubectl apply --server-side -f https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.3.0/standard-install.yaml (and a Gateway implementation that supports RequestMirror percent, e.g. Envoy Gateway 1.4+); or deploy without --shadow',
} as const;

/** The warning texts of a `Warning` header (RFC 7234 §5.5: `299 - "text"`, several joined by ", "). */
export function parseWarnings(header: string | undefined): string[] {
  if (!header) return [];
  const out: string[] = [];
  const re = /\d{3}\s+\S+\s+"((?:[^"\\]|\\.)*)"/g;
  for (let m = re.exec(header); m; m = re.exec(header)) out.push(m[1]!.replace(/\\(.)/g, '$1'));
  // Not in the RFC form (a proxy, an old server): keep the text rather than lose it.
  if (out.length === 0 && header.trim()) out.push(header.trim());
  return out;
}

/** The field paths an API message says are unknown (without a leading dot), in order, once each. */
export function unknownFieldsOf(message: string): string[] {
  const fields: string[] = [];
  for (const m of message.matchAll(/unknown field "([^"]+)"/g)) fields.push(m[1]!);
  for (const m of message.matchAll(/(?:^|[\s:;,(])(\.?[\w.[\]-]+): field not declared in schema/g)) fields.push(m[1]!);
  return [...new Set(fields.map((f) => f.replace(/^\./, '')))];
}

/** A field modelctl writes only when a feature is used, and what a cluster needs to know it. */
interface FieldFeature {
  test: RegExp;
  feature: string;
  needs: string;
  hint: string;
}

const FEATURES: FieldFeature[] = [
  {
    test: /requestMirror\.(percent|fraction)$/,
    feature: 'shadow traffic (RequestMirror percent)',
    needs: `RequestMirror percent needs Gateway API ${GATEWAY_API.mirrorPercentSince}+ standard channel (${GATEWAY_API.mirrorPercentFeature})`,
    hint: GATEWAY_API.installHint,
  },
];

export interface UnknownFieldExplanation {
  message: string;
  hint: string;
  fields: string[];
}

/**
 * A Strict refusal (or an unknown-field warning) as words a user can act on; undefined when the
 * message names no unknown field. `target` says what was written, e.g. "HTTPRoute sentiment in namespace ml".
 */
export function explainUnknownFields(target: string, message: string): UnknownFieldExplanation | undefined {
  const fields = unknownFieldsOf(message);
  if (fields.length === 0) return undefined;
  const known = fields.map((f) => ({ f, feature: FEATURES.find((x) => x.test.test(f)) }));
  const feature = known.find((k) => k.feature)?.feature;
  if (feature) {
    return {
      fields,
      message: `the cluster does not know ${fields.map((f) => `.${f}`).join(', ')} of ${target}: ${feature.needs}; nothing was changed by this write`,
      hint: feature.hint,
    };
  }
  return {
    fields,
    message: `the cluster does not know ${fields.map((f) => `.${f}`).join(', ')} of ${target} (refused by fieldValidation=Strict; nothing was changed by this write)`,
    hint: 'the API version installed in the cluster is older than the one modelctl writes: upgrade it (for CRDs, the CRD bundle), or report this to modelctl with `kubectl version` and the CRD versions',
  };
}

/** What the HTTPRoute CRD installed in a cluster says about itself. */
export interface HttpRouteCrdFacts {
  bundleVersion: string | undefined;
  channel: string | undefined;
  /** Whether the served v1 schema has rules[].filters[].requestMirror.percent. */
  mirrorPercent: boolean;
}

type Schema = { properties?: Record<string, Schema>; items?: Schema };

function walk(schema: Schema | undefined, path: string[]): Schema | undefined {
  let s = schema;
  for (const p of path) {
    if (!s) return undefined;
    s = p === '[]' ? s.items : s.properties?.[p];
  }
  return s;
}

/** Read the facts from an apiextensions.k8s.io/v1 CustomResourceDefinition of httproutes. */
export function httpRouteCrdFacts(crd: {
  metadata?: { annotations?: Record<string, string> };
  spec?: { versions?: Array<{ name?: string; served?: boolean; schema?: { openAPIV3Schema?: Schema } }> };
}): HttpRouteCrdFacts {
  const a = crd.metadata?.annotations ?? {};
  const v1 = crd.spec?.versions?.find((v) => v.name === 'v1' && v.served !== false);
  const mirror = walk(v1?.schema?.openAPIV3Schema, ['spec', 'rules', '[]', 'filters', '[]', 'requestMirror']);
  return {
    bundleVersion: a[GATEWAY_API.bundleVersionAnnotation],
    channel: a[GATEWAY_API.channelAnnotation],
    mirrorPercent: mirror?.properties?.percent !== undefined,
  };
}
