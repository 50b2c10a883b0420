// The scrubber and the repair of corrupt batches: a flipped byte in a closed, fsynced segment is
// found by scrub() within its byte budget, on its own or on read; the log then names the corrupt
// batch (corruptOffset), and truncateCorruptTail() cuts it and everything after so the replica can
// refetch it. Clean logs scrub without false alarms, in bounded steps, wrapping around. The reads
// run on the thread pool, and a scrub whose read was out when the log changed ends early.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { iterateBatches } from '../../../src/util/record-batch.js';
import { batchOf, makeTempDir, metricValue, openLog, removeDir, segmentFiles } from './helpers.js';

let dir: string;
beforeEach(() => {
  dir = makeTempDir();
});
afterEach(() => removeDir(dir));

/** Flips one byte in the records of batch `batchIndex` of `file`; returns that batch's offsets. */
function flipByteInBatch(file: string, batchIndex: number): { baseOffset: number; lastOffset: number } {
  const bytes = fs.readFileSync(file);
  const target = [...iterateBatches(bytes)][batchIndex]!;
  bytes[target.position + 70]! ^= 0x10;
  fs.writeFileSync(file, bytes);
  return { baseOffset: target.header.baseOffset, lastOffset: target.header.baseOffset + target.header.lastOffsetDelta };
}

async function writtenLog(batches: number): Promise<void> {
  const { log } = await openLog(dir, { segmentBytes: 2000 });
  for (let index = 0; index < batches; index++) log.append(batchOf(4, { label: `s${index}` }), 0);
  await log.close();
}

describe('scrub', () => {
  it('verifies every closed segment of a clean log without flagging anything, and skips the active one', async () => {
    await writtenLog(40);
    const { log, registry } = await openLog(dir, { segmentBytes: 2000 });
    const files = segmentFiles(dir);
    expect(files.length).toBeGreaterThan(2);
    const closedBytes = files.slice(0, -1).reduce((sum, file) => sum + fs.statSync(path.join(dir, file)).size, 0);
    let verified = 0;
    for (let round = 0; round < 100 && verified < closedBytes; round++) verified += await log.scrub(500);
    expect(verified).toBeGreaterThanOrEqual(closedBytes);
    expect(log.corruptOffset).toBeNull();
    expect(await metricValue(registry, 'riffle_log_scrubbed_bytes_total')).toBe(verified);
    expect(await metricValue(registry, 'riffle_log_corrupt_batches_total')).toBe(0);
    await log.close();
  });

  it('keeps each call near its byte budget (one batch over at most)', async () => {
    await writtenLog(40);
    const { log } = await openLog(dir, { segmentBytes: 2000 });
    const batchBytes = batchOf(4, { label: 's10' }).length + 8;
    for (let round = 0; round < 20; round++) expect(await log.scrub(300)).toBeLessThanOrEqual(300 + batchBytes);
    await log.close();
  });

  it('finds a flipped byte in an older segment after a clean restart, which skipped verification', async () => {
    await writtenLog(40);
    const corrupted = flipByteInBatch(path.join(dir, segmentFiles(dir)[1]!), 2);
    const { log, registry } = await openLog(dir, { segmentBytes: 2000 });
    expect(log.logEndOffset).toBe(160);
    for (let round = 0; round < 100 && log.corruptOffset === null; round++) await log.scrub(400);
    expect(log.corruptOffset).toBe(corrupted.baseOffset);
    expect(await metricValue(registry, 'riffle_log_corrupt_batches_total')).toBeGreaterThanOrEqual(1);
    // Still never served.
    expect(() => log.read(corrupted.baseOffset, 1 << 20)).toThrow(/corrupt/);
    await log.close();
  });

  it('records a corrupt batch met by a read, and truncateCorruptTail cuts the log there', async () => {
    await writtenLog(40);
    const corrupted = flipByteInBatch(path.join(dir, segmentFiles(dir)[0]!), 3);
    const { log, registry } = await openLog(dir, { segmentBytes: 2000 });
    expect(() => log.read(corrupted.baseOffset, 1 << 20)).toThrow(/corrupt/);
    expect(log.corruptOffset).toBe(corrupted.baseOffset);
    expect(log.truncateCorruptTail()).toBe(corrupted.baseOffset);
    expect(log.logEndOffset).toBe(corrupted.baseOffset);
    expect(log.corruptOffset).toBeNull();
    expect(await metricValue(registry, 'riffle_log_corruption_repairs_total')).toBe(1);
    // Everything left reads clean, and the log takes the leader's batches again from the cut.
    let offset = 0;
    while (offset < log.logEndOffset) offset = log.read(offset, 1 << 20).nextOffset;
    expect(offset).toBe(corrupted.baseOffset);
    expect(log.truncateCorruptTail()).toBeNull();
    await log.close();
  });

  it('keeps the earliest of two corrupt batches', async () => {
    await writtenLog(40);
    const files = segmentFiles(dir);
    const later = flipByteInBatch(path.join(dir, files[2]!), 1);
    const earlier = flipByteInBatch(path.join(dir, files[0]!), 2);
    const { log } = await openLog(dir, { segmentBytes: 2000 });
    expect(() => log.read(later.baseOffset, 1 << 20)).toThrow(/corrupt/);
    expect(log.corruptOffset).toBe(later.baseOffset);
    for (let round = 0; round < 100 && log.corruptOffset !== earlier.baseOffset; round++) await log.scrub(1000);
    expect(log.corruptOffset).toBe(earlier.baseOffset);
    await log.close();
  });
});

describe('scrub reads on the thread pool', () => {
  it('ends a scrub whose read is out when the log closes meanwhile, verifying and flagging nothing', async () => {
    await writtenLog(40);
    const { log, registry } = await openLog(dir, { segmentBytes: 2000 });
    const scrubbing = log.scrub(10_000);
    await log.close();
    await expect(scrubbing).resolves.toBe(0);
    expect(log.corruptOffset).toBeNull();
    expect(await metricValue(registry, 'riffle_log_scrubbed_bytes_total')).toBe(0);
  });

  it('ends a scrub whose read is out when a truncation cuts the log meanwhile, and the next one scrubs what is left', async () => {
    await writtenLog(40);
    const { log } = await openLog(dir, { segmentBytes: 2000 });
    const scrubbing = log.scrub(10_000);
    log.truncateTo(100);
    await expect(scrubbing).resolves.toBe(0);
    const closedBytes = segmentFiles(dir)
      .slice(0, -1)
      .reduce((sum, file) => sum + fs.statSync(path.join(dir, file)).size, 0);
    expect(closedBytes).toBeGreaterThan(0);
    let verified = 0;
    for (let round = 0; round < 100 && verified < closedBytes; round++) verified += await log.scrub(500);
    expect(verified).toBeGreaterThanOrEqual(closedBytes);
    expect(log.corruptOffset).toBeNull();
    await log.close();
  });
});

describe('scrub of a log without closed segments', () => {
  it('verifies nothing and flags nothing', async () => {
    const { log } = await openLog(dir, { segmentBytes: 1 << 20 });
    log.append(batchOf(3), 0);
    await log.flush();
    expect(await log.scrub(1024)).toBe(0);
    expect(log.corruptOffset).toBeNull();
    await log.close();
  });
});
