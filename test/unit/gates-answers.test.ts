import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { UsageError } from '../../src/core/errors.js';
import { agreementOf, answerReadable, compareAnswers, normaliseText, parseAnswerComparison, parseJsonPath, valueAt, type AnswerComparison } from '../../src/gates/answers.js';
import { z } from 'zod';
import { serveSpecSchema } from '../../src/bundle/serve.js';
import { parseYamlText } from '../../src/core/yaml-file.js';
import { readAnswer } from '../../src/targets/local/window.js';

const spec = (raw: unknown): AnswerComparison => parseAnswerComparison(raw, 'bundle.yaml: serve.agreement');
const outcome = (raw: unknown, a: unknown, b: unknown) => compareAnswers(spec(raw), a, b).outcome;

describe('JSON paths', () => {
  test('dotted, $-rooted, indexed and quoted paths read nested values', () => {
    const body = { a: { b: [{ c: 1 }, { c: 2 }] }, 'odd key': { x: true }, metrics: { accuracy: 0.93 } };
    assert.deepEqual(parseJsonPath('$.metrics.accuracy'), ['metrics', 'accuracy']);
    assert.deepEqual(parseJsonPath('a.b[1].c'), ['a', 'b', 1, 'c']);
    assert.equal(valueAt(body, 'a.b[1].c'), 2);
    assert.equal(valueAt(body, '$.a.b[0].c'), 1);
    assert.equal(valueAt(body, '$["odd key"].x'), true);
    assert.equal(valueAt(body, "$['odd key'].x"), true);
    assert.equal(valueAt(body, '$.metrics.accuracy'), 0.93);
    assert.deepEqual(valueAt(body, '$'), body);
  });

  test('absent steps are undefined: out of range, a key on a list, inherited properties', () => {
    const body = { a: [1, 2], o: {} };
    assert.equal(valueAt(body, 'a[2]'), undefined);
    assert.equal(valueAt(body, 'a.length'), undefined);
    assert.equal(valueAt(body, 'o.constructor'), undefined);
    assert.equal(valueAt(body, 'o.toString'), undefined);
    assert.equal(valueAt(null, 'a'), undefined);
    assert.equal(valueAt('text', 'a'), undefined);
  });

  test('malformed paths are refused with the position', () => {
    assert.throws(() => parseJsonPath('a..b'), /character 3/);
    assert.throws(() => parseJsonPath('a[x]'), /character 2/);
    assert.throws(() => parseJsonPath('a b'), /character 2/);
  });
});

describe('comparison specs', () => {
  test('bad specs name the field and what was expected', () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ mode: 'fuzzy' }, /mode: exact, fields, numeric, labels, text or topk/],
      [{ mode: 'fields', fields: [] }, /fields: name at least one field/],
      [{ mode: 'fields', fields: ['a..b'] }, /fields\.0: not a JSON path/],
      [{ mode: 'numeric', field: 'score' }, /needs a tolerance/],
      [{ mode: 'numeric', field: 'score', absolute: -1 }, /absolute/],
      [{ mode: 'labels', field: 'labels', minJaccard: 1.5 }, /minJaccard: minJaccard must be <= 1/],
      [{ mode: 'topk', field: 'items', k: 0 }, /k: k must be >= 1/],
      [{ mode: 'exact', extra: 1 }, /extra/],
    ];
    for (const [raw, re] of bad) {
      assert.throws(
        () => spec(raw),
        (err: unknown) => err instanceof UsageError && /^bundle\.yaml: serve\.agreement: /.test(err.message) && re.test(err.message),
        JSON.stringify(raw),
      );
    }
  });

  test('a bad serve.agreement in bundle.yaml names the file, the line and the field', () => {
    const yaml = ['serve:', '  command: [node, serve.mjs]', '  agreement:', '    mode: topk', '    field: items', '    k: 0', ''].join('\n');
    assert.throws(
      () => parseYamlText(yaml, '/b/bundle.yaml', z.object({ serve: serveSpecSchema }), 'bundle file'),
      (err: unknown) => err instanceof UsageError && /\/b\/bundle\.yaml:6: serve\.agreement\.k: k must be >= 1/.test(err.message),
    );
  });

  test('serve: agreementField and agreement are one or the other; agreementField is fields with one path', () => {
    const r = serveSpecSchema.safeParse({ command: ['node', 's.mjs'], agreementField: 'label', agreement: { mode: 'exact' } });
    assert.equal(r.success, false);
    assert.deepEqual(r.error!.issues[0]!.path, ['agreement']);
    const old = serveSpecSchema.parse({ command: ['node', 's.mjs'], agreementField: 'result.label' });
    assert.deepEqual(agreementOf(old), { mode: 'fields', fields: ['result.label'] });
    const rich = serveSpecSchema.parse({ command: ['node', 's.mjs'], agreement: { mode: 'labels', field: 'labels', minJaccard: 0.5 } });
    assert.deepEqual(agreementOf(rich), { mode: 'labels', field: 'labels', minJaccard: 0.5 });
    assert.equal(agreementOf(serveSpecSchema.parse({ command: ['node', 's.mjs'] })), undefined);
  });
});

describe('modes', () => {
  test('exact: deep equality of the whole body, key order free, types strict', () => {
    const s = { mode: 'exact' };
    assert.equal(outcome(s, { a: 1, b: [1, 2] }, { b: [1, 2], a: 1 }), 'agree');
    assert.equal(outcome(s, { a: 1 }, { a: '1' }), 'disagree');
    assert.equal(outcome(s, { a: [1, 2] }, { a: [2, 1] }), 'disagree');
    assert.equal(outcome(s, null, null), 'agree'); // JSON null is an answer
    assert.equal(outcome(s, undefined, { a: 1 }), 'unreadable');
  });

  test('fields: every path must agree; a missing field on either side is unreadable, null is a value', () => {
    const s = { mode: 'fields', fields: ['label', 'meta.lang'] };
    assert.equal(outcome(s, { label: 'cat', meta: { lang: 'en' }, score: 0.9 }, { label: 'cat', meta: { lang: 'en' }, score: 0.1 }), 'agree');
    const c = compareAnswers(spec(s), { label: 'cat', meta: { lang: 'en' } }, { label: 'cat', meta: { lang: 'fr' } });
    assert.equal(c.outcome, 'disagree');
    assert.match(c.detail, /meta\.lang differs/);
    const u = compareAnswers(spec(s), { label: 'cat' }, { label: 'cat', meta: { lang: 'en' } }, { a: 'candidate', b: 'stable' });
    assert.equal(u.outcome, 'unreadable');
    assert.match(u.detail, /candidate: no field meta\.lang/);
    assert.equal(outcome({ mode: 'fields', fields: ['x'] }, { x: null }, { x: null }), 'agree');
    assert.equal(outcome({ mode: 'fields', fields: ['x'] }, { x: null }, { x: 0 }), 'disagree');
  });

  test('fields with one path behaves as the old agreementField equality (nested values compared deeply)', () => {
    const s = { mode: 'fields', fields: ['result'] };
    assert.equal(outcome(s, { result: { top: ['a', 'b'] } }, { result: { top: ['a', 'b'] } }), 'agree');
    assert.equal(outcome(s, { result: { top: ['a', 'b'] } }, { result: { top: ['b', 'a'] } }), 'disagree');
    assert.equal(outcome(s, 'not an object', { result: 1 }), 'unreadable');
  });

  test('numeric: absolute or relative tolerance, the larger wins; NaN, strings and Infinity are unreadable', () => {
    const abs = { mode: 'numeric', field: 'score', absolute: 0.01 };
    assert.equal(outcome(abs, { score: 0.5 }, { score: 0.509 }), 'agree');
    assert.equal(outcome(abs, { score: 0.5 }, { score: 0.52 }), 'disagree');
    assert.equal(outcome({ mode: 'numeric', field: 'score', absolute: 0.5 }, { score: 1 }, { score: 1.5 }), 'agree'); // the bound itself agrees
    const rel = { mode: 'numeric', field: 'y', relative: 0.05 };
    assert.equal(outcome(rel, { y: 100 }, { y: 104 }), 'agree');
    assert.equal(outcome(rel, { y: 100 }, { y: 106 }), 'disagree');
    assert.equal(outcome(rel, { y: 0 }, { y: 0 }), 'agree');
    assert.equal(outcome(rel, { y: -100 }, { y: -97 }), 'agree');
    const both = { mode: 'numeric', field: 'y', absolute: 1, relative: 0.01 };
    assert.equal(outcome(both, { y: 0 }, { y: 0.9 }), 'agree'); // absolute covers near zero
    assert.equal(outcome(both, { y: 1000 }, { y: 1009 }), 'agree'); // relative covers large values
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, '0.5', null, true]) {
      assert.equal(outcome(abs, { score: bad }, { score: 0.5 }), 'unreadable', String(bad));
    }
    assert.equal(outcome(abs, JSON.parse('{"score": 1e400}'), { score: 0.5 }), 'unreadable'); // JSON overflow → Infinity
  });

  test('labels: set equality by default, order and duplicates free; Jaccard threshold; non-strings unreadable', () => {
    const eq = { mode: 'labels', field: 'labels' };
    assert.equal(outcome(eq, { labels: ['a', 'b'] }, { labels: ['b', 'a', 'a'] }), 'agree');
    assert.equal(outcome(eq, { labels: ['a', 'b'] }, { labels: ['a'] }), 'disagree');
    assert.equal(outcome(eq, { labels: [] }, { labels: [] }), 'agree');
    assert.equal(outcome(eq, { labels: [] }, { labels: ['a'] }), 'disagree');
    const j = { mode: 'labels', field: 'out.labels', minJaccard: 0.5 };
    const c = compareAnswers(spec(j), { out: { labels: ['a', 'b', 'c'] } }, { out: { labels: ['a', 'b', 'd'] } });
    assert.equal(c.outcome, 'agree'); // 2 / 4
    assert.equal(c.similarity, 0.5);
    assert.equal(outcome(j, { out: { labels: ['a', 'b', 'c'] } }, { out: { labels: ['a', 'd', 'e'] } }), 'disagree'); // 1 / 5
    assert.equal(outcome(eq, { labels: ['a', 1] }, { labels: ['a'] }), 'unreadable');
    assert.equal(outcome(eq, { labels: 'a' }, { labels: ['a'] }), 'unreadable');
    // Unicode: labels are compared as written (no normalisation in a set of identifiers).
    assert.equal(outcome(eq, { labels: ['café'] }, { labels: ['cafe\u0301'] }), 'disagree');
  });

  test('text: case, whitespace, punctuation and unicode form (NFKC) do not count', () => {
    const t = { mode: 'text', field: 'answer' };
    assert.equal(outcome(t, { answer: 'Paris, France.' }, { answer: '  paris   france ' }), 'agree');
    assert.equal(outcome(t, { answer: 'Paris' }, { answer: 'Lyon' }), 'disagree');
    assert.equal(outcome(t, { answer: 'ｆｉｎｅ' }, { answer: 'fine' }), 'agree'); // full-width
    assert.equal(outcome(t, { answer: 'ﬁne' }, { answer: 'fine' }), 'agree'); // ligature
    assert.equal(outcome(t, { answer: 'café' }, { answer: 'cafe\u0301' }), 'agree'); // composed vs decomposed
    assert.equal(outcome(t, { answer: 'ÉTÉ' }, { answer: 'été' }), 'agree');
    assert.equal(outcome(t, { answer: '«Oui»' }, { answer: 'oui' }), 'agree');
    assert.equal(outcome(t, { answer: 'cafe' }, { answer: 'café' }), 'disagree'); // accents are meaning
    assert.equal(outcome(t, { answer: 42 }, { answer: '42' }), 'unreadable');
    const strict = { mode: 'text', field: 'answer', ignoreCase: false, ignorePunctuation: false };
    assert.equal(outcome(strict, { answer: 'Paris' }, { answer: 'paris' }), 'disagree');
    assert.equal(outcome(strict, { answer: 'Paris.' }, { answer: 'Paris' }), 'disagree');
    assert.equal(outcome(strict, { answer: ' Paris\n' }, { answer: 'Paris' }), 'agree');
    assert.equal(normaliseText('A\u00a0B\t\tC!'), 'a b c');
  });

  test('topk: overlap@k of ranked lists, order inside the top k free, by item id', () => {
    const s = { mode: 'topk', field: 'items', k: 3, minOverlap: 0.6 };
    assert.equal(outcome(s, { items: ['a', 'b', 'c', 'd'] }, { items: ['c', 'a', 'b', 'z'] }), 'agree');
    const c = compareAnswers(spec(s), { items: ['a', 'b', 'c'] }, { items: ['a', 'b', 'x'] });
    assert.equal(c.outcome, 'agree');
    assert.equal(c.similarity, 2 / 3);
    assert.equal(outcome(s, { items: ['a', 'b', 'c'] }, { items: ['a', 'x', 'y'] }), 'disagree');
    // Beyond k does not count.
    assert.equal(outcome({ mode: 'topk', field: 'items', k: 2 }, { items: ['a', 'b', 'c'] }, { items: ['b', 'a', 'z'] }), 'agree');
    // Shorter than k: identical short lists agree; empty lists agree.
    assert.equal(outcome({ mode: 'topk', field: 'items', k: 10 }, { items: ['a', 'b'] }, { items: ['b', 'a'] }), 'agree');
    assert.equal(outcome({ mode: 'topk', field: 'items', k: 10 }, { items: [] }, { items: [] }), 'agree');
    // Objects by key; 1 and "1" are different items.
    const byId = { mode: 'topk', field: 'hits', k: 2, key: 'id' };
    assert.equal(outcome(byId, { hits: [{ id: 1, s: 0.9 }, { id: 2, s: 0.5 }] }, { hits: [{ id: 2, s: 0.8 }, { id: 1, s: 0.7 }] }), 'agree');
    assert.equal(outcome(byId, { hits: [{ id: 1 }, { id: 2 }] }, { hits: [{ id: '1' }, { id: '2' }] }), 'disagree');
    assert.equal(outcome(byId, { hits: [{ id: 1 }, { name: 2 }] }, { hits: [{ id: 1 }] }), 'unreadable');
    assert.equal(outcome(s, { items: [{ id: 1 }] }, { items: ['a'] }), 'unreadable');
  });

  test('an unreadable answer is never agree, whatever the mode', () => {
    const specs = [
      { mode: 'exact' },
      { mode: 'fields', fields: ['x'] },
      { mode: 'numeric', field: 'x', absolute: 1e9 },
      { mode: 'labels', field: 'x', minJaccard: 0 },
      { mode: 'text', field: 'x' },
      { mode: 'topk', field: 'x', k: 1, minOverlap: 0 },
    ];
    for (const s of specs) {
      assert.equal(outcome(s, undefined, undefined), 'unreadable', s.mode);
      assert.equal(answerReadable(spec(s), undefined), false, s.mode);
    }
  });
});

describe('the local runtime reads answers with the comparison', () => {
  test('readAnswer marks an answer without what serve.agreement reads as unreadable', () => {
    const agreement = spec({ mode: 'labels', field: 'labels' });
    const body = (x: unknown) => [Buffer.from(JSON.stringify(x))];
    assert.equal(readAnswer(body({ labels: ['a'] }), { agreement }).unreadable, false);
    assert.equal(readAnswer(body({ label: 'a' }), { agreement }).unreadable, true);
    assert.equal(readAnswer([Buffer.from('not json')], { agreement }).unreadable, true);
    assert.equal(readAnswer(null, { agreement }).unreadable, false); // too large to keep: unknown, not unreadable
  });
});
