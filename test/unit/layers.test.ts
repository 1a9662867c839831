import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import ts from 'typescript';
import { REPO_ROOT } from '../helpers/fixtures.js';

/**
 * The direction of imports (docs/architecture.md), checked on the source: a file may import its
 * own layer and the layers below it, never one above. Every relative specifier counts — static
 * imports and re-exports, `import type`, dynamic `import()` and `import('…').T` type queries — so a
 * lazy import cannot hide an upward dependency.
 */

/** Top-level folders of src/ by layer, top (5) to bottom (0). */
const LAYERS: Readonly<Record<string, number>> = {
  commands: 5,
  cli: 4,
  services: 3,
  // modelctl.yaml: parsed and resolved below the services that use it, above the backends whose
  // section schemas it assembles (targets/kubernetes/settings.ts); a backend never imports it.
  config: 2.5,
  rollout: 2,
  targets: 2,
  telemetry: 2,
  gates: 1,
  ledger: 1,
  bundle: 1,
  store: 1,
  // util/ holds leaf helpers (local I/O errors, processes, timeouts) that import only core: the bottom layer with it.
  util: 0,
  core: 0,
};

/**
 * Upward imports allowed for now, one by one, so that no new one can slip in. Empty: the
 * composition root (src/services/context.ts) hands targets their settings, and bundle transfer
 * lives in store/, so targets no longer read modelctl.yaml (cli/config) nor import services/bundles.
 */
const ALLOWED_UNTIL_COMPOSITION_ROOT: ReadonlySet<string> = new Set<string>([]);

const SRC = path.join(REPO_ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

/** Every module specifier of a file: static, re-export, type-only, dynamic import() and import('…') types. */
export function specifiersOf(fileName: string, text: string): string[] {
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      out.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      if (arg && ts.isStringLiteralLike(arg)) out.push(arg.text);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      out.push(node.argument.literal.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS));
  return out;
}

interface Edge {
  from: string;
  to: string;
}

/** The project's import edges from `files` (src-relative paths, .ts), resolved from their specifiers. */
function edgesOf(files: string[]): Edge[] {
  return files.flatMap((file) =>
    specifiersOf(file, readFileSync(file, 'utf8'))
      .filter((s) => s.startsWith('.'))
      .map((s) => ({ from: path.relative(SRC, file), to: path.relative(SRC, path.resolve(path.dirname(file), s)).replace(/\.js$/, '.ts') })),
  );
}

function layerOf(rel: string): string {
  return rel.split(path.sep)[0]!;
}

/** Each edge that breaks the rule, as "file -> import: why". */
export function violations(edges: Edge[], allowed: ReadonlySet<string> = new Set()): string[] {
  const out: string[] = [];
  for (const { from, to } of edges) {
    const [a, b] = [layerOf(from), layerOf(to)];
    const key = `${from} -> ${to}`;
    if (LAYERS[a] === undefined) out.push(`${key}: ${a}/ is in no layer (add it to LAYERS in test/unit/layers.test.ts and to docs/architecture.md)`);
    else if (LAYERS[b] === undefined) out.push(`${key}: ${b} is outside src/'s layers`);
    else if (a === 'core' && b !== 'core') out.push(`${key}: core/ imports nothing of the project`);
    else if (LAYERS[b]! > LAYERS[a]! && !allowed.has(key)) out.push(`${key}: ${a}/ (layer ${LAYERS[a]}) must not import ${b}/ (layer ${LAYERS[b]}), a layer above it`);
  }
  return out;
}

describe('layers', () => {
  const edges = edgesOf(sourceFiles(SRC));

  test('no file imports a layer above its own (commands → cli → services → rollout, targets, telemetry → gates, ledger, bundle, store → core, util)', () => {
    assert.ok(edges.length > 300, `read the import graph of src/ (${edges.length} edges)`);
    assert.deepEqual(violations(edges, ALLOWED_UNTIL_COMPOSITION_ROOT), []);
  });

  test('every allowed exception still exists (a fixed one leaves the list)', () => {
    const present = new Set(edges.map((e) => `${e.from} -> ${e.to}`));
    assert.deepEqual([...ALLOWED_UNTIL_COMPOSITION_ROOT].filter((k) => !present.has(k)), []);
  });

  test('MODELCTL_HOME is resolved from the context\'s env: only the composition root, modelctl.yaml\'s resolver and the daemon\'s entry import util/home', () => {
    // Commands and services take the home from Context.home() (and the default store from
    // Context.defaultStoreUrl()), so a test or an embedding that gives the context its own env gets
    // its own home everywhere; a command calling modelctlHome() read process.env behind its back.
    // config/project.ts resolves the store with the env it is handed; the daemon is a process of its own.
    const readers = [...new Set(edges.filter((e) => e.to === path.join('util', 'home.ts')).map((e) => e.from))].sort();
    assert.deepEqual(readers, [path.join('config', 'project.ts'), path.join('services', 'context.ts'), path.join('targets', 'local', 'daemon.ts')]);
  });

  test('the check sees every kind of specifier, and an upward one fails naming file, import and rule', () => {
    const text = [
      "import { a } from '../cli/base-command.js';",
      "import type { B } from '../services/rollouts.js';",
      "export { c } from '../commands/deploy.js';",
      "const d = await import('../cli/config.js');",
      "type E = import('../services/demo.js').Demo;",
      "import { UsageError } from '../core/errors.js';",
    ].join('\n');
    const file = path.join(SRC, 'gates', 'new-gate.ts');
    assert.deepEqual(specifiersOf(file, text), ['../cli/base-command.js', '../services/rollouts.js', '../commands/deploy.js', '../cli/config.js', '../services/demo.js', '../core/errors.js']);
    const found = violations(specifiersOf(file, text).map((s) => ({ from: path.join('gates', 'new-gate.ts'), to: path.join(s.replace(/^\.\.\//, '').replace(/\.js$/, '.ts')) })));
    assert.equal(found.length, 5);
    assert.equal(found[0], 'gates/new-gate.ts -> cli/base-command.ts: gates/ (layer 1) must not import cli/ (layer 4), a layer above it');
    assert.deepEqual(violations([{ from: 'core/model.ts', to: 'util/process.ts' }]), ['core/model.ts -> util/process.ts: core/ imports nothing of the project']);
    assert.deepEqual(violations([{ from: 'rollout/engine.ts', to: 'targets/local/target.ts' }, { from: 'cli/format.ts', to: 'core/errors.ts' }]), [], 'same layer and downward are fine');
  });
});
