import assert from 'node:assert/strict';

/**
 * The example's equal candidate, deployed with eval gates: promoted, its replay passed with 34 of
 * the 40 cases as expected and full agreement with stable, and the replay ended before the first
 * step gave it live traffic. `result` is `deploy --json`'s document; the same on every target.
 */
export function assertReplayPassedBeforeTraffic(result: { outcome: string; evaluation: { pass: boolean; accuracy: number; agreement: number }; events: Array<{ type: string }> }): void {
  assert.equal(result.outcome, 'promoted');
  assert.equal(result.evaluation.pass, true);
  assert.equal(result.evaluation.accuracy, 34 / 40);
  assert.equal(result.evaluation.agreement, 1);
  const types = result.events.map((e) => e.type);
  assert.ok(types.indexOf('evaluation-passed') < types.indexOf('step-started'), types.join(' '));
}
