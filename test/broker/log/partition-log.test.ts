// The partition log's data path: offsets, reads by offset and timestamp across many segments,
// segment roll by size and age, retention, truncation, reopening, and rejection of bad input.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RiffleError } from '../../../src/rpc/errors.js';
import { ManualClock } from '../../../src/util/clock.js';
import { decodeAllRecords, encodeRecordBatch, iterateBatches } from '../../../src/util/record-batch.js';
import { batchOf, makeTempDir, metricValue, openLog, removeDir, segmentFiles } from './helpers.js';

let dir: string;
beforeEach(() => {
  dir = makeTempDir();
});
afterEach(() => removeDir(dir));

function offsetsOf(records: Buffer): number[] {
  return [...decodeAllRecords(records)].map((record) => record.offset);
}

function valuesOf(records: Buffer): string[] {
  return [...decodeAllRecords(records)].map((record) => record.value!.toString());
}

describe('appending and reading', () => {
  it('assigns consecutive offsets and stamps the leader epoch', async () => {
    const { log, registry } = await openLog(dir);
    expect(log.logEndOffset).toBe(0);
    const first = log.append(batchOf(3, { label: 'a' }), 7);
    const second = log.append(Buffer.concat([batchOf(2, { label: 'b' }), batchOf(1, { label: 'c' })]), 7);
    expect(first).toMatchObject({ baseOffset: 0, lastOffset: 2 });
    expect(second).toMatchObject({ baseOffset: 3, lastOffset: 5 });
    expect(log.logEndOffset).toBe(6);
    const { records, nextOffset } = log.read(0, 1 << 20);
    expect(nextOffset).toBe(6);
    expect(valuesOf(records)).toEqual(['a-0', 'a-1', 'a-2', 'b-0', 'b-1', 'c-0']);
    expect([...iterateBatches(records)].map((batch) => batch.header.partitionLeaderEpoch)).toEqual([7, 7, 7]);
    expect(await metricValue(registry, 'riffle_log_appended_records_total')).toBe(6);
    expect(await metricValue(registry, 'riffle_log_appended_batches_total')).toBe(3);
    await log.close();
  });

  it('reads from the batch containing the fetch offset, at least one batch, below the limit', async () => {
    const { log } = await openLog(dir, { segmentBytes: 1 << 20 });
    for (let index = 0; index < 10; index++) log.append(batchOf(10, { label: `b${index}` }), 0);
    const middle = log.read(35, 1);
    expect(offsetsOf(middle.records)).toEqual([30, 31, 32, 33, 34, 35, 36, 37, 38, 39]);
    expect(middle.nextOffset).toBe(40);
    const limited = log.read(35, 1 << 20, 60);
    expect(offsetsOf(limited.records).at(-1)).toBe(59);
    expect(limited.nextOffset).toBe(60);
    expect(log.read(55, 1 << 20, 55)).toEqual({ records: Buffer.alloc(0), nextOffset: 55 });
    expect(log.read(100, 1 << 20)).toEqual({ records: Buffer.alloc(0), nextOffset: 100 });
    const sized = log.read(0, middle.records.length * 2 + 1);
    expect(offsetsOf(sized.records).length).toBe(20);
    expect(() => log.read(101, 100)).toThrow(RiffleError);
    expect(() => log.read(-1, 100)).toThrow(/outside/);
    await log.close();
  });

  it('finds every offset through the sparse indexes across many segments', async () => {
    const { log } = await openLog(dir, { segmentBytes: 1024, indexIntervalBytes: 100 });
    for (let index = 0; index < 200; index++) log.append(batchOf(1 + (index % 4), { label: `x${index}` }), 0);
    expect(log.segmentCount).toBeGreaterThan(15);
    expect(segmentFiles(dir).length).toBe(log.segmentCount);
    for (let offset = 0; offset < log.logEndOffset; offset++) {
      const { records } = log.read(offset, 1);
      const offsets = offsetsOf(records);
      expect(offsets[0]!, `offset ${offset}`).toBeLessThanOrEqual(offset);
      expect(offsets.at(-1)!).toBeGreaterThanOrEqual(offset);
    }
    await log.close();
  });

  it('serves a sequential consumer everything in order', async () => {
    const { log } = await openLog(dir, { segmentBytes: 3000 });
    for (let index = 0; index < 100; index++) log.append(batchOf(5, { label: `s${index}` }), 0);
    const seen: number[] = [];
    let offset = 0;
    for (let round = 0; round < 1000 && offset < log.logEndOffset; round++) {
      const { records, nextOffset } = log.read(offset, 700);
      seen.push(...offsetsOf(records));
      offset = nextOffset;
    }
    expect(seen).toEqual(Array.from({ length: 500 }, (_, index) => index));
    await log.close();
  });

  it('finds offsets by timestamp through the time indexes', async () => {
    const { log } = await openLog(dir, { segmentBytes: 2048, indexIntervalBytes: 200 });
    const base = 1_800_000_000_000;
    for (let index = 0; index < 100; index++) log.append(batchOf(3, { timestamp: base + index * 10 }), 0);
    expect(log.offsetForTimestamp(0)).toEqual({ offset: 0, timestamp: base });
    expect(log.offsetForTimestamp(base + 500)).toEqual({ offset: 150, timestamp: base + 500 });
    expect(log.offsetForTimestamp(base + 501)).toEqual({ offset: 151, timestamp: base + 501 });
    expect(log.offsetForTimestamp(base + 503)).toEqual({ offset: 153, timestamp: base + 510 });
    expect(log.offsetForTimestamp(base + 992)).toEqual({ offset: 299, timestamp: base + 992 });
    expect(log.offsetForTimestamp(base + 993)).toBeNull();
    expect(log.offsetForTimestamp(base + 500, 100)).toBeNull();
    await log.close();
    const reopened = await openLog(dir, { segmentBytes: 2048, indexIntervalBytes: 200 });
    expect(reopened.log.offsetForTimestamp(base + 777)).toEqual({ offset: 234, timestamp: base + 780 });
    await reopened.log.close();
  });
});

describe('segment roll', () => {
  it('rolls by size, never splitting an append, and places an oversized batch alone', async () => {
    const { log, registry } = await openLog(dir, { segmentBytes: 1000 });
    for (let index = 0; index < 20; index++) log.append(batchOf(2, { valueBytes: 100 }), 0);
    const sizes = segmentFiles(dir).map((name) => fs.statSync(path.join(dir, name)).size);
    expect(sizes.slice(0, -1).every((size) => size <= 1000 && size > 500)).toBe(true);
    const big = log.append(batchOf(1, { valueBytes: 3000 }), 0);
    expect(segmentFiles(dir).at(-1)).toBe(`${String(big.baseOffset).padStart(20, '0')}.log`);
    expect(await metricValue(registry, 'riffle_log_segments')).toBe(log.segmentCount);
    await log.close();
  });

  it('rolls by age with a manual clock', async () => {
    const clock = new ManualClock();
    const { log } = await openLog(dir, { segmentBytes: 1 << 20, segmentMs: 60_000 }, { clock });
    log.append(batchOf(1), 0);
    clock.advance(59_999);
    log.append(batchOf(1), 0);
    expect(log.segmentCount).toBe(1);
    clock.advance(1);
    log.append(batchOf(1), 0);
    expect(log.segmentCount).toBe(2);
    expect(segmentFiles(dir)).toEqual(['00000000000000000000.log', '00000000000000000002.log']);
    clock.advance(3_600_000);
    expect(log.segmentCount).toBe(2);
    await log.close();
  });
});

describe('retention', () => {
  it('deletes whole segments older than retention.ms, never the active one', async () => {
    const clock = new ManualClock(2_000_000_000_000);
    const { log, registry } = await openLog(dir, { segmentBytes: 600, retentionMs: 10_000 }, { clock });
    const now = clock.nowMs();
    for (let index = 0; index < 6; index++) log.append(batchOf(2, { timestamp: now - 60_000 + index, valueBytes: 200 }), 0);
    for (let index = 0; index < 4; index++) log.append(batchOf(2, { timestamp: now, valueBytes: 200 }), 0);
    await log.flush();
    const segmentsBefore = log.segmentCount;
    const deleted = log.applyRetention();
    expect(deleted).toBe(6);
    expect(log.segmentCount).toBe(segmentsBefore - 6);
    expect(log.logStartOffset).toBe(12);
    expect(() => log.read(0, 100)).toThrow(/outside/);
    expect(offsetsOf(log.read(12, 100).records)[0]).toBe(12);
    expect(await metricValue(registry, 'riffle_log_retention_deleted_segments_total')).toBe(6);
    clock.advance(1_000_000);
    expect(log.applyRetention()).toBe(3);
    expect(log.segmentCount).toBe(1);
    await log.close();
    const reopened = await openLog(dir, { segmentBytes: 600 });
    expect(reopened.log.logStartOffset).toBe(18);
    expect(reopened.log.logEndOffset).toBe(20);
    await reopened.log.close();
  });

  it('deletes the oldest segments while the log exceeds retention.bytes', async () => {
    const { log } = await openLog(dir, { segmentBytes: 1000, retentionBytes: 2500 });
    for (let index = 0; index < 30; index++) log.append(batchOf(1, { valueBytes: 200, timestamp: Date.now() }), 0);
    await log.flush();
    const before = log.sizeBytes;
    expect(before).toBeGreaterThan(2500);
    expect(log.applyRetention()).toBeGreaterThan(0);
    expect(log.sizeBytes).toBeLessThanOrEqual(2500 + 1000);
    expect(log.sizeBytes).toBeGreaterThan(2500 - 1000);
    expect(log.logEndOffset).toBe(30);
    await log.close();
  });
});

describe('truncation', () => {
  it('drops everything at and after an offset, in and across segments', async () => {
    const { log } = await openLog(dir, { segmentBytes: 800 });
    for (let index = 0; index < 40; index++) log.append(batchOf(2, { label: `t${index}` }), 0);
    const segments = log.segmentCount;
    log.truncateTo(50);
    expect(log.logEndOffset).toBe(50);
    expect(log.segmentCount).toBeLessThan(segments);
    expect(offsetsOf(log.read(48, 1 << 20).records)).toEqual([48, 49]);
    // Truncating inside a batch drops the whole batch.
    log.truncateTo(31);
    expect(log.logEndOffset).toBe(30);
    const next = log.append(batchOf(2, { label: 'new' }), 1);
    expect(next.baseOffset).toBe(30);
    expect(valuesOf(log.read(30, 1 << 20).records)).toEqual(['new-0', 'new-1']);
    await log.close();
    const reopened = await openLog(dir, { segmentBytes: 800 });
    expect(reopened.log.logEndOffset).toBe(32);
    expect(valuesOf(reopened.log.read(28, 1 << 20).records)).toEqual(['t14-0', 't14-1', 'new-0', 'new-1']);
    reopened.log.truncateTo(0);
    expect(reopened.log.logEndOffset).toBe(0);
    expect(reopened.log.append(batchOf(1), 2).baseOffset).toBe(0);
    await reopened.log.close();
  });

  it('appends as a follower only at the log end', async () => {
    const { log } = await openLog(dir);
    const leaderBatch = encodeRecordBatch([{ key: null, value: Buffer.from('f') }], { baseOffset: 0, partitionLeaderEpoch: 3 });
    expect(log.appendAsFollower(leaderBatch)).toMatchObject({ baseOffset: 0, lastOffset: 0 });
    const gap = encodeRecordBatch([{ key: null, value: Buffer.from('g') }], { baseOffset: 5 });
    expect(() => log.appendAsFollower(gap)).toThrow(RiffleError);
    expect(log.logEndOffset).toBe(1);
    await log.close();
  });
});

describe('bad input', () => {
  it('rejects malformed and oversized batches with typed errors and leaves the log intact', async () => {
    const { log } = await openLog(dir, { maxBatchBytes: 2000 });
    log.append(batchOf(2), 0);
    const before = log.read(0, 1 << 20).records.toString('hex');
    const corrupt = batchOf(2);
    corrupt[corrupt.length - 1]! ^= 0xff;
    const cases: Array<[Buffer, string]> = [
      [Buffer.alloc(0), 'INVALID_RECORD'],
      [Buffer.from('not a batch at all, just text that is long enough to look like a header.....'), 'CORRUPT_MESSAGE'],
      [corrupt, 'CORRUPT_MESSAGE'],
      [Buffer.concat([batchOf(1), batchOf(1).subarray(0, 40)]), 'CORRUPT_MESSAGE'],
      [batchOf(1, { valueBytes: 3000 }), 'MESSAGE_TOO_LARGE'],
    ];
    for (const [input, errorName] of cases) {
      try {
        log.append(input, 0);
        throw new Error(`accepted ${errorName} input`);
      } catch (error) {
        expect(error).toBeInstanceOf(RiffleError);
        expect((error as RiffleError).errorName).toBe(errorName);
      }
    }
    expect(log.logEndOffset).toBe(2);
    expect(log.read(0, 1 << 20).records.toString('hex')).toBe(before);
    expect(log.append(batchOf(1), 0).baseOffset).toBe(2);
    await log.close();
  });

  it('rejects bad log configs', async () => {
    await expect(openLog(dir, { segmentBytes: 10 })).rejects.toMatchObject({ errorName: 'INVALID_CONFIG' });
  });
});

describe('reopening', () => {
  it('reopens after a clean close with the same contents, indexes and offsets', async () => {
    const { log } = await openLog(dir, { segmentBytes: 1500, indexIntervalBytes: 100 });
    for (let index = 0; index < 50; index++) log.append(batchOf(3, { label: `o${index}` }), 0);
    const everything = (target: typeof log): string[] => {
      const values: string[] = [];
      for (let offset = target.logStartOffset, round = 0; offset < target.logEndOffset && round < 1000; round++) {
        const { records, nextOffset } = target.read(offset, 4096);
        values.push(...valuesOf(records));
        offset = nextOffset;
      }
      return values;
    };
    const before = everything(log);
    const segments = log.segmentCount;
    await log.close();
    expect(() => log.append(batchOf(1), 0)).toThrow(/closed/);
    const indexFiles = segmentFiles(dir, '.index').map((name) => fs.readFileSync(path.join(dir, name)).toString('hex'));
    const reopened = await openLog(dir, { segmentBytes: 1500, indexIntervalBytes: 100 });
    expect(reopened.log.logEndOffset).toBe(150);
    expect(reopened.log.flushedOffset).toBe(150);
    expect(reopened.log.segmentCount).toBe(segments);
    expect(everything(reopened.log)).toEqual(before);
    expect(segmentFiles(dir, '.index').map((name) => fs.readFileSync(path.join(dir, name)).toString('hex'))).toEqual(indexFiles);
    expect(reopened.log.append(batchOf(1), 0).baseOffset).toBe(150);
    await reopened.log.close();
  });

  it('rebuilds missing or damaged index files', async () => {
    const { log } = await openLog(dir, { segmentBytes: 1500, indexIntervalBytes: 100 });
    for (let index = 0; index < 50; index++) log.append(batchOf(3, { timestamp: 1_900_000_000_000 + index * 3 }), 0);
    await log.close();
    const indexes = segmentFiles(dir, '.index');
    fs.rmSync(path.join(dir, indexes[0]!));
    fs.writeFileSync(path.join(dir, indexes[1]!), Buffer.from('garbage!garbage!'));
    fs.rmSync(path.join(dir, segmentFiles(dir, '.timeindex')[2]!));
    const reopened = await openLog(dir, { segmentBytes: 1500, indexIntervalBytes: 100 });
    for (let offset = 0; offset < 150; offset += 7) expect(offsetsOf(reopened.log.read(offset, 1).records)).toContain(offset);
    expect(reopened.log.offsetForTimestamp(1_900_000_000_000 + 100)).toEqual({ offset: 100, timestamp: 1_900_000_000_100 });
    await reopened.log.close();
  });

  it('deletes its directory', async () => {
    const { log } = await openLog(dir);
    log.append(batchOf(1), 0);
    await log.delete();
    expect(fs.existsSync(dir)).toBe(false);
  });
});
