import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { leftovers } from '../fakes/kube/netns.js';
import { versionObjectName } from '../../src/targets/kubernetes/names.js';
import { startKubeBox, type KubeBox } from '../helpers/kube-world.js';

/**
 * Live traffic cannot hide from the gates (cluster in a box, test/fakes/kube/README.md): a client of
 * the public route that marks every request `x-modelctl-evaluation: 1` (the header of modelctl's own
 * evaluation replay, which the meters forward without recording) sends them through the Gateway to
 * a canary that fails every second request. The HTTPRoute modelctl writes removes the header before
 * the meters see it, so the candidate's meter counts those failures and the error-rate gate rolls
 * the canary back. Without the route's RequestHeaderModifier the meters recorded nothing of that
 * load and the bad canary was not rolled back.
 */

const MODEL = 'sentiment';
const svc = (v: string): string => versionObjectName(MODEL, v);

describe('cluster in a box: the unmetered headers are removed from live traffic', { timeout: 300_000 }, () => {
  let w: KubeBox;
  let runId = '';
  before(async () => {
    w = await startKubeBox();
    runId = w.box.network.runId;
    await w.push('1.0.0');
    await w.push('1.1.0', { errorRate: 0.5 });
    const r = await w.cli(['deploy', `${MODEL}@1.0.0`, '--ready-timeout', '40s', '--json']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await w?.close();
    assert.deepEqual(await leftovers(runId), [], 'no namespace, veth or bridge of this run is left');
  });

  test('a failing canary whose callers all send x-modelctl-evaluation: 1 is still measured and rolled back', async () => {
    const since = Date.now();
    let candidateRequests = 0;
    let done = false;
    // The candidate's pods are retired by the rollback: read its meter while it runs.
    const sampler = (async () => {
      while (!done) {
        candidateRequests = Math.max(candidateRequests, await w.meterRequests('1.1.0', since).catch(() => 0));
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const load = w.load({ 'X-Modelctl-Evaluation': '1' });
    const r = await w.cli(['deploy', `${MODEL}@1.1.0`, '--steps', '50,100', '--interval', '3s', '--check-every', '1s', '--ready-timeout', '40s', '--json']);
    const seen = await load.stop();
    done = true;
    await sampler;
    const result = r.json();
    console.log(`# evading load: ${JSON.stringify(seen.byVersion)}, ${seen.errors} errors of ${seen.total}; candidate meter recorded ${candidateRequests}; outcome ${result.outcome}: ${result.reason}`);
    assert.ok(seen.errors > 0, 'the canary served the marked requests and failed some of them');
    assert.ok(candidateRequests > 0, "the candidate's meter recorded the marked requests");
    assert.equal(r.code, 3, r.stderr);
    assert.equal(result.outcome, 'rolled-back');
    assert.match(result.reason, /error-rate/);
    assert.ok((w.box.gatewayStats.routed.get(`default/${svc('1.1.0')}`) ?? 0) > 0, 'the Gateway routed live requests to the canary');
    const rule = w.fake.get('gateway.networking.k8s.io/v1', 'HTTPRoute', 'default', MODEL)?.spec?.rules?.[0];
    assert.deepEqual(rule?.filters?.[0], { type: 'RequestHeaderModifier', requestHeaderModifier: { remove: ['x-modelctl-evaluation', 'x-modelctl-compare'] } });
  });
});
