import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UsageError } from '../../src/core/errors.js';
import { DEFAULT_TRANSFER, parseByteSize, transferSettings, uploadPartSize } from '../../src/store/s3-transfer.js';

test('transfer settings: defaults, units, and bad values named with the variable', () => {
  assert.deepEqual(transferSettings({}), DEFAULT_TRANSFER);
  assert.deepEqual(transferSettings({ MODELCTL_S3_CONCURRENCY: '16', MODELCTL_S3_PART_SIZE: '16MiB' }), { concurrency: 16, partSize: 16 * 1024 * 1024 });
  assert.equal(parseByteSize('5242880'), 5 * 1024 * 1024);
  assert.equal(parseByteSize('1.5GiB'), 1.5 * 1024 ** 3);
  assert.equal(parseByteSize('8 mb'), 8 * 1024 * 1024);
  assert.equal(parseByteSize('8 parsecs'), undefined);
  for (const c of ['0', '65', '2.5', 'many', '-1']) {
    assert.throws(() => transferSettings({ MODELCTL_S3_CONCURRENCY: c }), (e: UsageError) => e instanceof UsageError && e.message.includes(`MODELCTL_S3_CONCURRENCY="${c}"`));
  }
  for (const p of ['4MiB', '6GiB', 'big', '0']) {
    assert.throws(() => transferSettings({ MODELCTL_S3_PART_SIZE: p }), (e: UsageError) => e instanceof UsageError && e.message.includes(`MODELCTL_S3_PART_SIZE="${p}"`) && /MODELCTL_S3_PART_SIZE=16MiB/.test(e.hint ?? ''));
  }
});

test('upload part size grows so a blob fits in 10,000 parts', () => {
  assert.equal(uploadPartSize(1024 ** 3, 8 * 1024 * 1024), 8 * 1024 * 1024);
  const huge = 200 * 1024 ** 3;
  assert.ok(Math.ceil(huge / uploadPartSize(huge, 8 * 1024 * 1024)) <= 10_000);
});
