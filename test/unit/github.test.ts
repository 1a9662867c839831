import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { addMask, annotation, escapeData, escapeProperty, githubActive, inertLine, parseWorkflowCommand, workflowCommand } from '../../src/cli/github/commands.js';
import { collectSecrets, maskCommands, registerSecretSource, secretSources, urlCredentials } from '../../src/cli/github/mask.js';
import { formatOutput, formatOutputs, parseOutputFile } from '../../src/cli/github/outputs.js';
import { GithubRolloutLog } from '../../src/cli/github/rollout-log.js';
import { createRolloutView } from '../../src/cli/rollout-view.js';
import type { RolloutEvent } from '../../src/core/events.js';

/**
 * The GitHub Actions formatters, checked against the runner's own parsing rules (actions/runner
 * ActionCommand.TryParseV2 for workflow commands, EnvFileKeyValuePairs for $GITHUB_OUTPUT).
 */

const parseCommand = parseWorkflowCommand;

const NASTY = ['100%', '50%0A not a newline', 'a\r\nb\nc\rd', 'key: value, other: 1', '%3A%2C%25', '::error::inside', 'trailing %', '%%0D%%', 'é ü 漢字 ✓'];

describe('workflow commands', () => {
  test('data and property escaping is exactly the runner\'s', () => {
    assert.equal(escapeData('50% a\rb\nc: d, e'), '50%25 a%0Db%0Ac: d, e');
    assert.equal(escapeProperty('50% a\rb\nc: d, e'), '50%25 a%0Db%0Ac%3A d%2C e');
    assert.equal(escapeData('%0A'), '%250A', 'a literal %0A survives');
    assert.equal(escapeProperty('%3A'), '%253A');
  });

  test('every message and title round-trips through the runner\'s parser', () => {
    for (const title of NASTY) {
      for (const message of NASTY) {
        const line = annotation({ level: 'error', title, message });
        assert.ok(line.endsWith('\n') && !line.slice(0, -1).includes('\n') && !line.includes('\r'), 'one physical line');
        const parsed = parseCommand(line.slice(0, -1));
        assert.deepEqual(parsed, { command: 'error', properties: { title }, data: message }, JSON.stringify({ title, message }));
      }
    }
  });

  test('shapes: annotation levels, groups, masks; empty properties are left out', () => {
    assert.equal(annotation({ level: 'warning', title: 'Gate x: inconclusive', message: 'no data' }), '::warning title=Gate x%3A inconclusive::no data\n');
    assert.equal(annotation({ level: 'notice', title: '', message: 'ok' }), '::notice::ok\n');
    assert.equal(workflowCommand('group', {}, 'canary 20%'), '::group::canary 20%25\n');
    assert.equal(addMask('s3cr3t\nline2'), '::add-mask::s3cr3t%0Aline2\n');
  });

  test('githubActive: only GITHUB_ACTIONS=true, and MODELCTL_GITHUB=off opts out', () => {
    assert.equal(githubActive({}), false);
    assert.equal(githubActive({ GITHUB_ACTIONS: '1' }), false);
    assert.equal(githubActive({ GITHUB_ACTIONS: 'true' }), true);
    assert.equal(githubActive({ GITHUB_ACTIONS: 'true', MODELCTL_GITHUB: 'off' }), false);
    assert.equal(githubActive({ GITHUB_ACTIONS: 'true', MODELCTL_GITHUB: 'false' }), false);
  });

  test('inertLine: text from outside can never become a workflow command', () => {
    for (const evil of ['::error::pwned', '  ::add-mask::x', 'ok\n::set-output name=a::b', 'x ##[error]y', 'a\r::stop-commands::t']) {
      const line = inertLine(evil);
      assert.ok(!/[\r\n]/.test(line));
      assert.equal(parseCommand(line), null, evil);
      assert.ok(!line.includes('##['), evil);
    }
    assert.equal(inertLine('[+  1.0s] canary step 1: 20% of traffic'), '[+  1.0s] canary step 1: 20% of traffic');
  });
});

describe('step outputs ($GITHUB_OUTPUT)', () => {
  test('heredoc form; the runner reads back exactly the values, newlines and all', () => {
    const values = {
      digest: 'sha256:' + 'ab'.repeat(32),
      version: '1.4.0-rc.1+abc123',
      empty: '',
      nl: 'line1\nline2\n',
      crlf: 'a\r\nb',
      eq: 'a=b<<c',
      result: JSON.stringify({ reason: 'gate error-rate failed: 0.52 > 0.05\nsecond line', n: 1 }, null, 2),
      'rolled-back-to': null,
      healthy: false,
    };
    const text = formatOutputs(values);
    assert.deepEqual(parseOutputFile(text), { ...values, 'rolled-back-to': '', healthy: 'false' });
  });

  test('a value containing the delimiter candidate (as a whole line or inside one) gets another delimiter', () => {
    const candidates = ['ghadelimiter_AAA', 'ghadelimiter_AAA', 'ghadelimiter_BBB'];
    const next = () => candidates.shift() ?? 'ghadelimiter_ZZZ';
    const value = 'before\nghadelimiter_AAA\nafter';
    const text = formatOutput('result', value, next);
    assert.match(text, /^result<<ghadelimiter_BBB\n/);
    assert.deepEqual(parseOutputFile(text), { result: value });

    const inside = formatOutput('x', 'xghadelimiter_QQQx', (() => { const d = ['ghadelimiter_QQQ', 'ghadelimiter_R']; return () => d.shift()!; })());
    assert.match(inside, /^x<<ghadelimiter_R\n/);
  });

  test('random delimiters differ per value and appear in no value', () => {
    const text = formatOutputs({ a: 'x', b: 'y' });
    const delims = [...text.matchAll(/^[a-z]+<<(.+)$/gm)].map((m) => m[1]);
    assert.equal(delims.length, 2);
    assert.notEqual(delims[0], delims[1]);
    assert.match(delims[0]!, /^ghadelimiter_[0-9a-f]{32}$/);
  });

  test('the parser enforces the runner\'s errors (so the tests prove what the runner accepts)', () => {
    assert.throws(() => parseOutputFile('a<<EOF\nvalue\n'), /Matching delimiter not found/);
    assert.throws(() => parseOutputFile('<<EOF\nEOF\n'), /Name must not be empty/);
    assert.throws(() => parseOutputFile('just text\n'), /Invalid format/);
    assert.deepEqual(parseOutputFile('a=1\n\nb<<E\n\nE\n'), { a: '1', b: '' });
    assert.throws(() => formatOutput('bad name', 'x'), /invalid step output name/);
  });
});

describe('masking', () => {
  test('AWS secrets from the environment; credentials in store and endpoint URLs, from env and --store', () => {
    const secrets = collectSecrets({
      env: {
        AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
        AWS_SESSION_TOKEN: 'FwoGZXIvYXdzEJr//////////wEaDEXAMPLE',
        AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
        AWS_ENDPOINT_URL: 'https://minio:minio-secret-pw@127.0.0.1:9000',
        MODELCTL_STORE: 's3://models/prod',
        MODELCTL_PROMETHEUS_TOKEN: 'prom-token-abcdef',
      },
      argv: ['bundle', 'push', '.', '--store=https://store.example/x?X-Amz-Signature=deadbeefcafe&region=eu', '--json'],
    });
    assert.ok(secrets.includes('wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'));
    assert.ok(secrets.includes('FwoGZXIvYXdzEJr//////////wEaDEXAMPLE'));
    assert.ok(secrets.includes('minio-secret-pw'));
    assert.ok(secrets.includes('deadbeefcafe'));
    assert.ok(secrets.includes('prom-token-abcdef'));
    assert.ok(!secrets.includes('AKIAIOSFODNN7EXAMPLE'), 'an access key id is an id, not a secret');
    assert.ok(!secrets.includes('minio'), 'a user name beside a password is not masked (too short and not secret)');
    assert.ok(!secrets.some((s) => s.includes('models/prod') || s === 'eu'));
  });

  test('--store VALUE form, a lone token user name, and nothing for plain URLs or paths', () => {
    assert.deepEqual(collectSecrets({ env: {}, argv: ['--store', 'https://ghp_tokentokentoken@host/x'] }), ['ghp_tokentokentoken']);
    assert.deepEqual(urlCredentials('s3://bucket/prefix'), []);
    assert.deepEqual(urlCredentials('/tmp/store'), []);
    assert.deepEqual(urlCredentials('https://git:x@host'), [], 'values shorter than 6 characters are never masked');
  });

  test('the registry is extensible (kube and Prometheus tokens register the same way)', () => {
    registerSecretSource({ name: 'test-prometheus', env: ['TEST_PROM_TOKEN'], urlEnv: ['TEST_PROM_URL'], find: (ctx) => (ctx.env.TEST_KUBE ? ['kube-token-xyz'] : []) });
    try {
      const s = collectSecrets({ env: { TEST_PROM_TOKEN: 'prom-bearer-123', TEST_PROM_URL: 'https://u:prom-basic-pw@prom:9090', TEST_KUBE: '1' }, argv: [] });
      assert.deepEqual(s.slice(-3), ['prom-bearer-123', 'prom-basic-pw', 'kube-token-xyz']);
    } finally {
      const i = secretSources().findIndex((x) => x.name === 'test-prometheus');
      (secretSources() as unknown as unknown[]).splice(i, 1);
    }
  });

  test('mask commands: each value once, each line of a multi-line secret too, blanks skipped', () => {
    const seen = new Set<string>();
    const out = maskCommands(['abc123secret', 'abc123secret', '   ', '-----BEGIN KEY-----\nMIIEvQIBADANBg\n-----END KEY-----'], seen);
    const lines = out.trimEnd().split('\n').map((l) => parseCommand(l)!);
    assert.ok(lines.every((l) => l.command === 'add-mask'));
    assert.deepEqual(lines.map((l) => l.data), ['abc123secret', '-----BEGIN KEY-----\nMIIEvQIBADANBg\n-----END KEY-----', '-----BEGIN KEY-----', 'MIIEvQIBADANBg', '-----END KEY-----']);
    assert.equal(maskCommands(['abc123secret'], seen), '', 'already masked');
  });
});

/** An event from loose parts, as an older or newer modelctl's JSON may hold it (the log must not care). */
function ev(at: number, type: string, fields: Record<string, unknown> = {}): RolloutEvent {
  return { at, type, ...fields } as RolloutEvent;
}

describe('rollout log in GitHub Actions mode', () => {
  const gate = (at: number, verdict: string, value: number | null, extra: Record<string, unknown> = {}) =>
    ev(at, verdict === 'fail' ? 'gate-failed' : 'gate-evaluated', { phase: 'canary', gate: 'error-rate', verdict, value, limit: '<= 0.05', samples: 40, reason: verdict === 'fail' ? '21 of 40 requests failed' : 'ok', dryRun: false, ...extra });

  test('a group per phase, outcome lines outside groups, annotations once per gate and step', () => {
    const log = new GithubRolloutLog();
    const events = [
      ev(0, 'rollout-started', { version: '1.2.0', stable: '1.1.0' }),
      ev(10, 'version-deployed', { version: '1.2.0' }),
      ev(20, 'version-ready', { version: '1.2.0' }),
      ev(30, 'traffic-applied', { weights: { '1.1.0': 80, '1.2.0': 20 }, mirror: null }),
      ev(40, 'step-started', { phase: 'canary', index: 0, weight: 20, mirror: 0 }),
      gate(1000, 'inconclusive', null, { reason: 'not enough data: 3 of 20 requests needed' }),
      gate(2000, 'pass', 0.01),
      ev(2000, 'gate-evaluated', { phase: 'canary', gate: 'latency-p99', verdict: 'fail', value: 900, limit: '<= 500 ms', samples: 40, reason: '900 > 500', dryRun: true }),
      gate(3000, 'inconclusive', null, { reason: 'not enough data: 0 of 20' }),
      gate(4000, 'fail', 0.52),
      gate(5000, 'fail', 0.6),
      ev(5000, 'step-failed', { index: 0, gate: 'error-rate', reason: 'gate error-rate failed' }),
      ev(5000, 'rollback-started', { reason: 'gate error-rate failed' }),
      ev(5010, 'traffic-applied', { weights: { '1.1.0': 100 }, mirror: null }),
      ev(5020, 'rolled-back', { to: '1.1.0', reason: 'gate error-rate failed' }),
    ];
    let out = '';
    for (const e of events) out += log.onEvent(e, `[${e.at}] ${e.type}`);
    out += log.close();
    const cmds = out.trimEnd().split('\n').map((l) => [l, parseCommand(l)] as const);
    const groups = cmds.filter(([, c]) => c?.command === 'group').map(([, c]) => c!.data);
    assert.deepEqual(groups, ['starting 1.2.0 (stable 1.1.0)', 'canary 20%', 'rolling back']);
    // Groups never nest: group / endgroup alternate, and everything is closed.
    const seq = cmds.filter(([, c]) => c?.command === 'group' || c?.command === 'endgroup').map(([, c]) => c!.command);
    assert.deepEqual(seq, ['group', 'endgroup', 'group', 'endgroup', 'group', 'endgroup']);
    const at = (needle: string) => cmds.findIndex(([l]) => l.includes(needle));
    assert.ok(at('rolled-back') > at('rolling back') && cmds.slice(at('rolling back'), at('rolled-back')).some(([, c]) => c?.command === 'endgroup'), 'the outcome line is outside the group');
    assert.ok(at('[30] traffic-applied') < at('::group::canary'), 'traffic moves show at the top level');
    const notes = cmds.filter(([, c]) => c && ['error', 'warning', 'notice'].includes(c.command)).map(([, c]) => [c!.command, c!.properties.title, c!.data]);
    assert.deepEqual(notes, [
      ['warning', 'Dry-run gate latency-p99 would fail (canary 20%)', '900 against limit <= 500 ms (40 samples): 900 > 500 — reported only, it does not gate'],
      ['warning', 'Gate error-rate inconclusive (canary 20%)', 'no value against limit <= 0.05 (40 samples): not enough data: 0 of 20'],
      ['error', 'Gate error-rate failed (canary 20%)', '0.52 against limit <= 0.05 (40 samples): 21 of 40 requests failed'],
    ]);
  });

  test('the first inconclusive checks of a step are warm-up: no warning', () => {
    const log = new GithubRolloutLog();
    let out = log.onEvent(ev(0, 'step-started', { phase: 'shadow', mirror: 10, weight: 0 }), 'x');
    out += log.onEvent(gate(1, 'inconclusive', null), 'y');
    out += log.onEvent(gate(2, 'inconclusive', null), 'y');
    assert.match(out, /^::group::shadow 10%25\n/);
    assert.doesNotMatch(out, /::warning/);
  });

  test('the view: GitHub mode only when asked or when GITHUB_ACTIONS=true; plain lines otherwise', () => {
    const chunks: string[] = [];
    const stream = { isTTY: false, write: (s: string) => (chunks.push(s), true) } as unknown as NodeJS.WriteStream;
    const plain = createRolloutView({ stream, github: false });
    plain.onEvent(ev(0, 'step-started', { phase: 'canary', index: 0, weight: 20 }));
    plain.close();
    assert.deepEqual(chunks, ['[+  0.0s] canary step 1: 20% of traffic\n']);
    chunks.length = 0;
    const gh = createRolloutView({ stream, github: true });
    gh.onEvent(ev(0, 'step-started', { phase: 'canary', index: 0, weight: 20 }));
    gh.close();
    assert.equal(chunks.join(''), '::group::canary 20%25\n[+  0.0s] canary step 1: 20% of traffic\n::endgroup::\n');
  });
});

describe('the hook: files and streams', () => {
  test('outputs (with result) and summary appended; annotations written; the runner reads them back', async () => {
    const { mkdtemp, readFile, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const { githubFinish } = await import('../../src/cli/github/hook.js');
    const dir = await mkdtemp(path.join(tmpdir(), 'modelctl-gh-'));
    const out = path.join(dir, 'out');
    const sum = path.join(dir, 'sum');
    await writeFile(out, 'earlier=step\n');
    await writeFile(sum, '# before\n');
    let written = '';
    const io = { env: { GITHUB_OUTPUT: out, GITHUB_STEP_SUMMARY: sum }, write: (t: string) => void (written += t) };
    const result = { outcome: 'held', reason: 'line1\nline2' };
    await githubFinish(result, () => ({ outputs: { outcome: 'held' }, summary: '### x\n', annotations: [{ level: 'warning', title: 'Held m@1', message: 'why' }] }), io);
    assert.deepEqual(parseOutputFile(await readFile(out, 'utf8')), { earlier: 'step', outcome: 'held', result: JSON.stringify(result) });
    assert.equal(await readFile(sum, 'utf8'), '# before\n### x\n');
    assert.equal(written, '::warning title=Held m@1::why\n');

    // A report that throws still leaves the result output; an unwritable file is an error annotation.
    written = '';
    await githubFinish({ ok: 1 }, () => { throw new Error('summary bug'); }, io);
    assert.match(written, /^::warning title=modelctl could not build its GitHub report::Error: summary bug/);
    assert.equal(parseOutputFile(await readFile(out, 'utf8')).result, '{"ok":1}');
    written = '';
    await githubFinish({ ok: 1 }, () => undefined, { env: { GITHUB_OUTPUT: path.join(dir, 'missing', 'out') }, write: (t) => void (written += t) });
    assert.match(written, /^::error title=modelctl could not write its step outputs::/);
  });

  test('a very large result leaves its event log out of the result output', async () => {
    const { resultOutput, RESULT_OUTPUT_LIMIT } = await import('../../src/cli/github/hook.js');
    const events = Array.from({ length: 5000 }, (_, i) => ({ at: i, type: 'gate-evaluated', reason: 'x'.repeat(80) }));
    const big = { outcome: 'promoted', events, deploy: { events } };
    assert.ok(JSON.stringify(big).length > RESULT_OUTPUT_LIMIT);
    assert.deepEqual(JSON.parse(resultOutput(big)), { outcome: 'promoted', eventsOmitted: 5000, deploy: { eventsOmitted: 5000 } });
    assert.equal(resultOutput({ a: 1 }), '{"a":1}');
  });
});
