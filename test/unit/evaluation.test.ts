import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { UsageError } from '../../src/core/errors.js';
import type { GateSpec } from '../../src/core/gates.js';
import {
  accuracyDropTest,
  binomialUpperTail,
  checkExpectedFields,
  judgeEvaluation,
  meetsExpectations,
  parseEvalSet,
  shown,
  validateEvalGate,
  type EvalAnswer,
  type EvalOutcome,
} from '../../src/gates/evaluation.js';
import { defaultGateRegistry } from '../../src/gates/registry.js';
import type { EvaluationRequest } from '../../src/core/ports.js';
import { replay, runEvaluationPhase, type EvaluationEvent } from '../../src/rollout/evaluation.js';
import { parseRolloutSection, resolvePlan } from '../../src/rollout/plan.js';
import { toGate } from '../../src/gates/schema.js';

const usage = (fn: () => unknown, re: RegExp) =>
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UsageError, `expected a UsageError, got ${String(err)}`);
    assert.match(err.message, re);
    return true;
  });

const jsonl = (...lines: unknown[]) => lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n';

describe('evaluation set parsing', () => {
  test('cases keep file, line, path, expectations (value and range); blank lines are skipped', () => {
    const cases = parseEvalSet(
      [
        { file: 'eval/a.jsonl', text: jsonl({ request: { text: 'good' }, expect: { label: 'positive' } }, '', { request: { text: 'x' }, expect: { score: { min: 0.2, max: 0.4 } }, id: 'r1' }) },
        { file: 'eval/b.jsonl', text: jsonl({ request: { text: 'y' }, path: '/v2/predict' }) },
      ],
      { defaultPath: '/predict' },
    );
    assert.equal(cases.length, 3);
    assert.deepEqual(cases.map((c) => [c.file, c.line, c.path]), [
      ['eval/a.jsonl', 1, '/predict'],
      ['eval/a.jsonl', 3, '/predict'],
      ['eval/b.jsonl', 1, '/v2/predict'],
    ]);
    assert.deepEqual(cases[0]!.expect, [{ field: 'label', equals: 'positive' }]);
    assert.deepEqual(cases[1]!.expect, [{ field: 'score', min: 0.2, max: 0.4 }]);
    assert.equal(cases[1]!.id, 'r1');
    assert.deepEqual(cases[2]!.expect, []);
  });

  test('a line that does not parse is refused with its file and line number', () => {
    usage(() => parseEvalSet([{ file: 'eval/a.jsonl', text: jsonl({ request: {} }, '{"request": {"text": "x"', { request: {} }) }], { defaultPath: '/p' }), /eval\/a\.jsonl:2: not JSON/);
  });

  test('an empty file, an empty set, unknown keys, a missing request or path, bad ranges and paths are refused', () => {
    usage(() => parseEvalSet([{ file: 'eval/empty.jsonl', text: '\n\n' }], { defaultPath: '/p' }), /eval\/empty\.jsonl is empty/);
    usage(() => parseEvalSet([], { defaultPath: '/p' }), /no files/);
    usage(() => parseEvalSet([{ file: 'e.jsonl', text: jsonl({ request: {}, expected: {} }) }], { defaultPath: '/p' }), /e\.jsonl:1: unknown key "expected"/);
    usage(() => parseEvalSet([{ file: 'e.jsonl', text: jsonl({ expect: {} }) }], { defaultPath: '/p' }), /e\.jsonl:1: no "request"/);
    usage(() => parseEvalSet([{ file: 'e.jsonl', text: jsonl({ request: {} }) }]), /e\.jsonl:1: no path/);
    usage(() => parseEvalSet([{ file: 'e.jsonl', text: jsonl({ request: {}, expect: { s: { min: 2, max: 1 } } }) }], { defaultPath: '/p' }), /min 2 > max 1/);
    usage(() => parseEvalSet([{ file: 'e.jsonl', text: jsonl({ request: {}, expect: { 'a..b': 1 } }) }], { defaultPath: '/p' }), /not a JSON path/);
  });

  test('bounded: too many lines or bytes are refused', () => {
    const text = jsonl(...Array.from({ length: 5 }, () => ({ request: {} })));
    usage(() => parseEvalSet([{ file: 'e.jsonl', text }], { defaultPath: '/p', limits: { maxLines: 4, maxBytes: 1e6 } }), /e\.jsonl:5: more than 4 cases/);
    usage(() => parseEvalSet([{ file: 'e.jsonl', text }], { defaultPath: '/p', limits: { maxLines: 100, maxBytes: 10 } }), /larger than 10 bytes/);
  });

  test('expected fields the model never returns are named with file, line and field', () => {
    const cases = parseEvalSet([{ file: 'e.jsonl', text: jsonl({ request: {}, expect: { label: 'a' } }, { request: {}, expect: { lable: 'a' } }) }], { defaultPath: '/p' });
    usage(() => checkExpectedFields(cases, [{ label: 'a', score: 0.4 }]), /e\.jsonl:2: expects field "lable".*do not have/);
    checkExpectedFields(cases, [{ label: 'a' }], ['lable']); // declared by the bundle: accepted
  });
});

const ok = (body: unknown, latencyMs = 5): EvalAnswer => ({ status: 200, body, latencyMs });

function outcomesOf(rows: Array<{ expect?: string; cand: string; stable?: string }>): EvalOutcome[] {
  const text = jsonl(...rows.map((r) => ({ request: { i: 1 }, ...(r.expect ? { expect: { label: r.expect } } : {}) })));
  const cases = parseEvalSet([{ file: 'e.jsonl', text }], { defaultPath: '/p' });
  return rows.map((r, index) => ({ index, case: cases[index]!, candidate: ok({ label: r.cand, score: r.cand === 'pos' ? 0.9 : 0.1 }), stable: r.stable ? ok({ label: r.stable, score: r.stable === 'pos' ? 0.9 : 0.1 }) : null }));
}

describe('judging a replay', () => {
  test('accuracy against expectations, agreement with stable, the worst disagreements first', () => {
    const outcomes = outcomesOf([
      { expect: 'pos', cand: 'pos', stable: 'pos' },
      { expect: 'pos', cand: 'neg', stable: 'pos' }, // a regression: stable right, candidate wrong
      { expect: 'neg', cand: 'neg', stable: 'pos' },
      { cand: 'pos', stable: 'neg' }, // no expectation: compared with stable only
    ]);
    const gates: GateSpec[] = [
      { name: 'acc', kind: 'eval', metric: 'accuracy', min: 0.9 },
      { name: 'agree', kind: 'eval', metric: 'agreement', min: 0.5, compare: { mode: 'fields', fields: ['label'] } },
    ];
    const j = judgeEvaluation(outcomes, gates);
    assert.equal(j.accuracy, 2 / 3);
    assert.equal(j.stableAccuracy, 2 / 3);
    assert.equal(j.agreement, 1 / 4);
    assert.deepEqual(j.gates.map((g) => [g.name, g.verdict]), [
      ['acc', 'fail'],
      ['agree', 'fail'],
    ]);
    assert.equal(j.pass, false);
    assert.equal(j.failed?.name, 'acc');
    assert.equal(j.worst[0]!.line, 2, 'the regression against stable comes first');
    assert.match(j.worst[0]!.why, /stable right, candidate wrong/);
    assert.equal(j.worst[0]!.expected, '{"label":"pos"}');
  });

  test('numeric ranges and the gate comparison (normalised text) decide correctness', () => {
    const [c] = parseEvalSet([{ file: 'e', text: jsonl({ request: {}, expect: { score: { min: 0.5 }, answer: 'Paris' } }) }], { defaultPath: '/p' });
    assert.equal(meetsExpectations(c!, ok({ score: 0.7, answer: 'paris.' }), { mode: 'text', field: 'answer', ignoreCase: true, ignoreWhitespace: true, ignorePunctuation: true }).correct, true);
    assert.equal(meetsExpectations(c!, ok({ score: 0.7, answer: 'paris.' })).correct, false, 'without the gate comparison: exact JSON equality');
    assert.equal(meetsExpectations(c!, ok({ score: 0.4, answer: 'Paris' })).correct, false);
    assert.equal(meetsExpectations(c!, { status: 0, body: undefined, latencyMs: 1, error: 'no answer within 10 ms' }).correct, false);
  });

  test('a first deploy (no stable answers) is not blocked by gates that compare with stable', () => {
    const outcomes = outcomesOf([{ expect: 'pos', cand: 'pos' }]);
    const j = judgeEvaluation(outcomes, [
      { name: 'acc', kind: 'eval', metric: 'accuracy', min: 0.5 },
      { name: 'agree', kind: 'eval', metric: 'agreement', min: 0.9 },
    ]);
    assert.equal(j.pass, true);
  });

  test('secrets in requests are never shown, long values are cut', () => {
    assert.equal(shown({ text: 'hi', api_key: 'sk-123', nested: { Authorization: 'Bearer x' } }), '{"text":"hi","api_key":"***","nested":{"Authorization":"***"}}');
    assert.ok(shown({ text: 'x'.repeat(1000) }).length <= 200);
  });
});

describe('the one-sided paired test of an accuracy drop', () => {
  test('exact McNemar: P(X >= b) for X ~ Bin(b + c, 1/2)', () => {
    assert.ok(Math.abs(binomialUpperTail(6, 6) - 1 / 64) < 1e-12);
    assert.ok(Math.abs(binomialUpperTail(10, 8) - 56 / 1024) < 1e-12);
    assert.equal(accuracyDropTest(6, 0, 100, 0, 0.99).drop, false, 'p = 1/64 > 0.01');
    assert.equal(accuracyDropTest(7, 0, 100, 0, 0.99).drop, true, 'p = 1/128 < 0.01');
    assert.equal(accuracyDropTest(0, 0, 100, 0, 0.99).drop, false, 'identical answers: no drop');
    assert.equal(accuracyDropTest(20, 20, 100, 0, 0.99).drop, false, 'as many gained as lost');
  });

  test('with a tolerated drop: the upper bound of the difference must stay above -maxDrop', () => {
    assert.equal(accuracyDropTest(30, 0, 1000, 0.02, 0.99).drop, false, 'a 3-point drop is not shown to exceed 2 points at n=1000');
    assert.equal(accuracyDropTest(80, 0, 1000, 0.02, 0.99).drop, true);
  });
});

describe('eval gates in the plan', () => {
  test('kind eval gates parse from a rollout section and never run during a bake', () => {
    const section = parseRolloutSection(
      { gates: [{ name: 'acc', kind: 'eval', metric: 'accuracy', min: 0.8, maxDrop: 0, compare: { mode: 'fields', fields: ['label'] } }], evaluation: { path: '/predict', concurrency: 2, timeout: '2s' } },
      'bundle.yaml',
    );
    const plan = resolvePlan({ project: {}, bundle: section, flags: {}, defaultGates: [] });
    assert.deepEqual(plan.evaluation, { component: 'eval', path: '/predict', concurrency: 2, timeoutMs: 2000, maxLines: 10_000, maxBytes: 16 * 1024 * 1024 });
    const registry = defaultGateRegistry();
    assert.deepEqual(registry.validate(plan.gates[0]!), []);
    assert.deepEqual(registry.phasesOf(plan.gates[0]!), []);
  });

  test('bad eval gates are refused', () => {
    assert.match(validateEvalGate({ name: 'a', kind: 'eval', metric: 'f1', min: 1 })[0]!, /accuracy, agreement/);
    assert.match(validateEvalGate({ name: 'a', kind: 'eval', metric: 'accuracy' })[0]!, /needs a limit/);
    assert.match(validateEvalGate({ name: 'a', kind: 'eval', metric: 'score-drift', max: 0.1 })[0]!, /scoreField/);
    usage(() => toGate({ name: 'a', metric: 'error-rate', max: 0.1, maxDrop: 0.1 }, 'modelctl.yaml'), /maxDrop, which only kind eval takes/);
  });
});

describe('replay', () => {
  test('bounded concurrency, results in file order whatever the order answers arrive', async () => {
    const cases = parseEvalSet([{ file: 'e', text: jsonl(...Array.from({ length: 20 }, (_, i) => ({ request: { i } }))) }], { defaultPath: '/p' });
    let inFlight = 0;
    let peak = 0;
    const target = {
      async evaluate(_m: string, _v: string, r: EvaluationRequest) {
        inFlight++;
        peak = Math.max(peak, inFlight);
        const i = (r.body as { i: number }).i;
        // Later cases answer first.
        await new Promise((res) => setTimeout(res, (20 - i) * 2));
        inFlight--;
        if (i === 7) throw Object.assign(new Error('timed out'), { name: 'TimeoutError' });
        return { status: 200, body: Buffer.from(JSON.stringify({ echo: i })), latencyMs: 1 };
      },
    };
    const out = await replay(target, 'm', 'v', cases, { concurrency: 3, timeoutMs: 50 });
    assert.equal(peak, 3);
    assert.deepEqual(out.map((a) => (a.body as { echo?: number } | undefined)?.echo ?? null), Array.from({ length: 20 }, (_, i) => (i === 7 ? null : i)));
    assert.equal(out[7]!.status, 0);
    assert.match(out[7]!.error!, /no answer within 50 ms/);
  });

  test('the phase replays candidate and stable, judges, and emits plain events', async () => {
    const cases = parseEvalSet([{ file: 'e', text: jsonl({ request: { t: 'a' }, expect: { label: 'pos' } }, { request: { t: 'b' }, expect: { label: 'neg' } }) }], { defaultPath: '/p' });
    const sent: string[] = [];
    const target = {
      async evaluate(_m: string, v: string, r: EvaluationRequest) {
        sent.push(v);
        const t = (r.body as { t: string }).t;
        const label = v === 'bad' ? 'pos' : t === 'a' ? 'pos' : 'neg';
        return { status: 200, body: Buffer.from(JSON.stringify({ label })), latencyMs: 1 };
      },
    };
    const events: EvaluationEvent[] = [];
    const report = await runEvaluationPhase({
      target,
      model: 'm',
      candidate: 'bad',
      stable: 'good',
      gates: [{ name: 'acc', kind: 'eval', metric: 'accuracy', min: 1 }, { name: 'agree', kind: 'eval', metric: 'agreement', min: 1 }, { name: 'errors', metric: 'error-rate', max: 0.01 }],
      settings: { component: 'eval', concurrency: 2, timeoutMs: 1000, maxLines: 10, maxBytes: 1000 },
      input: { cases },
      emit: (e) => events.push(e),
    });
    assert.equal(report.pass, false);
    assert.equal(report.accuracy, 0.5);
    assert.deepEqual(sent.sort(), ['bad', 'bad', 'good', 'good']);
    assert.deepEqual(events.map((e) => e.type), ['evaluation-started', 'evaluation-gate', 'evaluation-gate', 'evaluation-failed']);
    assert.match(report.reason, /gate acc failed/);
    assert.equal(report.worst[0]!.line, 2);
  });
});

describe('showing the replay', () => {
  test('the GitHub summary section and the log lines carry the gates and the worst disagreements', async () => {
    const { evaluationSection } = await import('../../src/cli/github/summary.js');
    const { describeEvent } = await import('../../src/cli/rollout-view.js');
    const outcomes = outcomesOf([
      { expect: 'pos', cand: 'neg', stable: 'pos' },
      { expect: 'neg', cand: 'neg', stable: 'neg' },
    ]);
    const j = judgeEvaluation(outcomes, [{ name: 'acc', kind: 'eval', metric: 'accuracy', min: 0.9 }]);
    const md = evaluationSection({ ...j, candidate: '1.1.0', stable: '1.0.0', ms: 12, candidateRequests: 2, reason: 'x' });
    assert.match(md, /\*\*Evaluation replay\*\* ❌ failed · 2 cases/);
    assert.match(md, /accuracy 50\.0% \(stable 100\.0%\)/);
    assert.match(md, /`e\.jsonl:1`/);
    assert.match(md, /stable right, candidate wrong/);
    const line = describeEvent({ at: 0, type: 'evaluation-failed', cases: 2, gate: 'acc', ms: 12, reason: 'evaluation replay: gate acc failed', worst: j.worst });
    assert.match(line, /gate acc failed\n  worst disagreements:\n    e\.jsonl:1 stable right, candidate wrong/);
    assert.match(line, /candidate \{"label":"neg","score":0\.1\}/);
  });
});
