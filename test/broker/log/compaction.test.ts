import { afterEach, describe, expect, it } from 'vitest';
import { encodeRecordBatch, forEachRecordOfAll } from '../../../src/util/record-batch.js';
import { makeTempDir, openLog, removeDir, segmentFiles } from './helpers.js';
import type { PartitionLog } from '../../../broker/log/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) removeDir(dir);
});

function keyed(entries: [string, string | null][]): Buffer {
  return encodeRecordBatch(entries.map(([key, value]) => ({ key: Buffer.from(key), value: value === null ? null : Buffer.from(value) })));
}

function readAll(log: PartitionLog): { offset: number; key: string; value: string | null }[] {
  const result: { offset: number; key: string; value: string | null }[] = [];
  let offset = log.logStartOffset;
  while (offset < log.logEndOffset) {
    const { records, nextOffset } = log.read(offset, 1024 * 1024);
    forEachRecordOfAll(records, (recordOffset, _timestamp, key, value) => {
      if (recordOffset >= offset) result.push({ offset: recordOffset, key: key!.toString(), value: value?.toString() ?? null });
    });
    expect(nextOffset).toBeGreaterThan(offset);
    offset = nextOffset;
  }
  return result;
}

describe('log compaction (cleanup.policy=compact)', () => {
  it('keeps only the latest record per key in closed segments, at their original offsets, and survives a reopen', async () => {
    const dir = makeTempDir();
    dirs.push(dir);
    const config = { cleanupPolicy: 'compact' as const, segmentBytes: 400, indexIntervalBytes: 64, flushPolicy: 'os' as const, deleteRetentionMs: 60_000 };
    const { log } = await openLog(dir, config);
    for (let round = 0; round < 20; round++) log.append(keyed([[`k${round % 3}`, `v${round}`], ['gone', round === 19 ? null : `g${round}`]]), 0);
    log.append(keyed([['tail', 'x']]), 0);
    await log.flush();
    expect(segmentFiles(dir).length).toBeGreaterThan(2);
    const before = readAll(log);
    const end = log.logEndOffset;
    const dropped = log.compact(Date.now());
    expect(dropped).toBeGreaterThan(0);
    const after = readAll(log);
    expect(log.logEndOffset).toBe(end);
    // For every key, the latest value is still there at the same offset.
    const latest = new Map(before.map((record) => [record.key, record]));
    for (const record of latest.values()) expect(after).toContainEqual(record);
    // Every surviving record was in the log at the same offset, and nothing superseded remains in a closed segment.
    for (const record of after) expect(before).toContainEqual(record);
    expect(after.length).toBeLessThan(before.length);
    await log.close();
    const reopened = await openLog(dir, config);
    expect(readAll(reopened.log)).toEqual(after);
    expect(reopened.log.logEndOffset).toBe(end);
    await reopened.log.close();
  });

  it('leaves a log with cleanup.policy=delete alone', async () => {
    const dir = makeTempDir();
    dirs.push(dir);
    const { log } = await openLog(dir, { segmentBytes: 300, flushPolicy: 'os' });
    for (let round = 0; round < 10; round++) log.append(keyed([['same', `v${round}`]]), 0);
    await log.flush();
    expect(log.compact(Date.now())).toBe(0);
    await log.close();
  });
});
