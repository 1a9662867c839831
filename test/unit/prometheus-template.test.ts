import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ExitCode } from '../../src/core/errors.js';
import { checkTemplate, escapePromString, placeholdersOf, promDuration, quoteRegex, resolveTemplate, TemplateError } from '../../src/gates/template.js';

const V = (over: Record<string, string | undefined> = {}) => ({ model: 'sentiment', version: '1.2.0', stable: '1.1.0', namespace: undefined, interval: '1m', ...over });

describe('query templates', () => {
  test('placeholders are filled, with or without inner spaces', () => {
    const q = 'sum(rate(http_requests_total{model="{{model}}",version="{{ version }}"}[{{interval}}]))';
    assert.equal(resolveTemplate(q, V(), 'g'), 'sum(rate(http_requests_total{model="sentiment",version="1.2.0"}[1m]))');
    assert.deepEqual(placeholdersOf(q, 'g'), ['model', 'version', 'interval']);
  });

  test('a value with a quote, brace, backslash or newline stays inside its string literal', () => {
    const q = 'sum(rate(x{version="{{version}}"}[1m]))';
    const evil = '1.2.0"} or vector(1) #';
    assert.equal(resolveTemplate(q, V({ version: evil }), 'g'), 'sum(rate(x{version="1.2.0\\"} or vector(1) #"}[1m]))');
    assert.equal(resolveTemplate(q, V({ version: 'a\\"b\nc}' }), 'g'), 'sum(rate(x{version="a\\\\\\"b\\nc}"}[1m]))');
    assert.equal(escapePromString('tab\there\u0001'), 'tab\\there\\x01');
  });

  test("single-quoted strings escape ' and backticks refuse what they cannot hold", () => {
    assert.equal(resolveTemplate("x{version='{{version}}'}", V({ version: "it's" }), 'g'), "x{version='it\\'s'}");
    assert.equal(resolveTemplate('x{version=`{{version}}`}', V(), 'g'), 'x{version=`1.2.0`}');
    assert.throws(() => resolveTemplate('x{version=`{{version}}`}', V({ version: 'a`b' }), 'g'), /backtick/);
  });

  test('after =~ and !~ values are regex-quoted: literal, even with dots and pipes', () => {
    assert.equal(resolveTemplate('x{version=~"{{version}}"}', V({ version: '1.2.0|.*' }), 'g'), 'x{version=~"1\\\\.2\\\\.0\\\\|\\\\.\\\\*"}');
    assert.equal(resolveTemplate('x{version!~ `{{version}}`}', V(), 'g'), 'x{version!~ `1\\.2\\.0`}');
    assert.equal(quoteRegex('a.b(c)[d]{e}^$|*+?\\'), 'a\\.b\\(c\\)\\[d\\]\\{e\\}\\^\\$\\|\\*\\+\\?\\\\');
    // A plain = matcher is not regex-quoted.
    assert.equal(resolveTemplate('x{version="{{version}}"}', V({ version: '1.2.0' }), 'g'), 'x{version="1.2.0"}');
  });

  test('outside a string only numbers, durations and names are allowed', () => {
    assert.equal(resolveTemplate('x > {{limit}}', { ...V(), limit: '0.5' }, 'g'), 'x > 0.5');
    assert.equal(resolveTemplate('rate(x[{{w}}])', { ...V(), w: '1h30m' }, 'g'), 'rate(x[1h30m])');
    assert.equal(resolveTemplate('{{metric}}{job="a"}', { ...V(), metric: 'http_requests_total' }, 'g'), 'http_requests_total{job="a"}');
    assert.throws(() => resolveTemplate('x > {{limit}}', { ...V(), limit: '0 or vector(1)' }, 'g'), (err: unknown) => {
      assert.ok(err instanceof TemplateError);
      assert.equal(err.exitCode, ExitCode.usage);
      assert.match(err.message, /gate "g": the value of \{\{limit\}\} .* outside a quoted string/);
      return true;
    });
    assert.throws(() => resolveTemplate('x{version={{version}}}', V(), 'g'), /outside a quoted string/);
  });

  test('escaped quotes inside a string do not end it; comments cannot be broken out of', () => {
    assert.equal(resolveTemplate('x{a="q\\"{{version}}"}', V({ version: '"' }), 'g'), 'x{a="q\\"\\""}');
    assert.equal(resolveTemplate('x # for {{version}}\n', V(), 'g'), 'x # for 1.2.0\n');
    assert.throws(() => resolveTemplate('x # for {{version}}\n', V({ version: 'a\nor vector(1)' }), 'g'), /line break/);
  });

  test('values are never expanded again', () => {
    assert.equal(resolveTemplate('x{v="{{version}}"}', V({ version: '{{stable}}' }), 'g'), 'x{v="{{stable}}"}');
  });

  test('unknown, malformed and valueless placeholders are usage errors naming the gate', () => {
    assert.throws(() => resolveTemplate('x{v="{{versoin}}"}', V(), 'error-rate'), /gate "error-rate": unknown placeholder \{\{versoin\}\}.*known: model, version/);
    assert.throws(() => resolveTemplate('x{v="{{ver sion}}"}', V(), 'error-rate'), /gate "error-rate": malformed placeholder/);
    assert.throws(() => resolveTemplate('x{v="{{stable}}"}', V({ stable: undefined }), 'g'), (err: unknown) => {
      assert.ok(err instanceof TemplateError);
      assert.match(err.message, /\{\{stable\}\} has no value/);
      assert.match(err.hint ?? '', /--var stable=/);
      return true;
    });
    assert.deepEqual(checkTemplate('x{v="{{version}}",n="{{ns}}"}', 'g', ['version']), [
      'gate "g": unknown placeholder {{ns}} in its query (known: version; --var ns=… would define it)',
    ]);
    assert.deepEqual(checkTemplate('x{v="{{version}}"}', 'g', ['version']), []);
  });

  test('{{interval}} durations', () => {
    assert.equal(promDuration(45_000), '45s');
    assert.equal(promDuration(44_001), '45s');
    assert.equal(promDuration(60_000), '1m');
    assert.equal(promDuration(90_000), '90s');
    assert.equal(promDuration(7_200_000), '2h');
    assert.equal(promDuration(0), '1s');
  });
});
