// Reads that serve fetches (readForFetch): the last appends come from the tail cache at once, and
// reads near the end of the active segment from the file at once (page cache); anything older is
// read from the segment files on the thread pool, so a fetch of old data that goes to the disk
// does not hold the event loop. Such a read returns exactly what the
// synchronous read returns, and when the log changes while it is out (truncated and rewritten,
// its segment deleted by retention, closed) the answer is that of the log as it is afterwards:
// never bytes a truncation removed. Corrupt batches met on the way are refused and recorded.
// The randomized walk prints its seed; RIFFLE_SEED=<seed> replays it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TailCache } from '../../../broker/log/index.js';
import { Prng } from '../../../src/util/prng.js';
import { iterateBatches } from '../../../src/util/record-batch.js';
import { RiffleError } from '../../../src/rpc/errors.js';
import { batchOf, makeTempDir, metricValue, openLog, removeDir, segmentFiles } from './helpers.js';

let dir: string;
beforeEach(() => {
  dir = makeTempDir();
});
afterEach(() => removeDir(dir));

/**
 * Holds the event loop (not the thread pool) for `ms`, so a file read already handed to the pool
 * completes before the test's next step changes the log: the case where the read's bytes are
 * stale when its continuation runs. A read that completes later sees the changed file instead;
 * the outcome asserted is the same either way.
 */
function holdEventLoop(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

async function errorOf(promise: Promise<unknown>): Promise<RiffleError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(RiffleError);
    return error as RiffleError;
  }
  throw new Error('the read did not fail');
}

describe('readForFetch', () => {
  it('answers the last appends from the tail cache at once and older ones from the file on the thread pool', async () => {
    const { log, registry } = await openLog(dir, { segmentBytes: 2000 }, { tail: new TailCache(600).forLog(), recentReadBytes: 0 });
    // In buffers of their own: a small one is a view of Node's shared pool, and the cache counts the whole pool.
    for (let index = 0; index < 30; index++) {
      const batch = batchOf(4, { label: `b${index}` });
      const own = Buffer.alloc(batch.length);
      batch.copy(own);
      log.append(own, 0);
    }
    const atTail = log.readForFetch(116, 1 << 20);
    expect(atTail).not.toBeInstanceOf(Promise);
    expect((atTail as { nextOffset: number }).nextOffset).toBe(120);
    const old = log.readForFetch(0, 1 << 20);
    expect(old).toBeInstanceOf(Promise);
    const fromFile = await old;
    expect(fromFile.records.equals(log.read(0, 1 << 20).records)).toBe(true);
    expect(fromFile.nextOffset).toBeGreaterThan(0);
    expect(await metricValue(registry, 'riffle_log_fetch_read_duration_seconds')).toBe(1);
    await log.close();
  });

  it('reads synchronously near the end of the active segment, where the page cache has it', async () => {
    const { log } = await openLog(dir, { segmentBytes: 1 << 20 }, { recentReadBytes: 1000 });
    for (let index = 0; index < 60; index++) log.append(batchOf(4, { label: `r${index}` }), 0);
    const recent = log.readForFetch(log.logEndOffset - 8, 1 << 20);
    expect(recent).not.toBeInstanceOf(Promise);
    expect((recent as { records: Buffer }).records.equals(log.read(log.logEndOffset - 8, 1 << 20).records)).toBe(true);
    const older = log.readForFetch(0, 1 << 20);
    expect(older).toBeInstanceOf(Promise);
    expect((await older).records.equals(log.read(0, 1 << 20).records)).toBe(true);
    await log.close();
  });

  it('returns what the synchronous read returns, at any offset and size, across segments', async () => {
    const seed = Number(process.env.RIFFLE_SEED ?? Date.now() % 0x7fffffff);
    console.log(`fetch read walk: RIFFLE_SEED=${seed}`);
    const prng = new Prng(seed);
    // Both paths: the file read on the pool, and the synchronous one near the active segment's end.
    const prngRecent = prng.chance(0.5) ? 0 : 2000;
    const { log } = await openLog(dir, { segmentBytes: 3000, indexIntervalBytes: 256 }, { recentReadBytes: prngRecent });
    for (let index = 0; index < 80; index++) log.append(batchOf(prng.int(1, 12), { label: `w${index}`, valueBytes: prng.int(1, 200) }), 0);
    expect(segmentFiles(dir).length).toBeGreaterThan(3);
    const end = log.logEndOffset;
    for (let step = 0; step < 300; step++) {
      const offset = prng.int(0, end + 1);
      const maxBytes = prng.chance(0.2) ? 0 : prng.int(1, 8000);
      const limit = prng.chance(0.3) ? prng.int(0, end + 1) : end;
      const expected = log.read(offset, maxBytes, limit);
      const got = await log.readForFetch(offset, maxBytes, limit);
      const what = `seed ${seed} step ${step}: offset ${offset} maxBytes ${maxBytes} limit ${limit}`;
      expect(got.nextOffset, what).toBe(expected.nextOffset);
      expect(got.records.equals(expected.records), what).toBe(true);
    }
    await log.close();
  });

  it('never serves bytes a truncation removed while the read was out: the rewritten log answers', async () => {
    const { log } = await openLog(dir, { segmentBytes: 1 << 20 }, { recentReadBytes: 0 });
    for (let index = 0; index < 10; index++) log.append(batchOf(4, { label: `old${index}` }), 0);
    const reading = log.readForFetch(8, 1 << 20);
    holdEventLoop(100);
    log.truncateTo(20);
    for (let index = 0; index < 5; index++) log.append(batchOf(4, { label: `new${index}` }), 1);
    const got = await reading;
    const expected = log.read(8, 1 << 20);
    expect(got.records.equals(expected.records)).toBe(true);
    expect(got.records.toString('latin1')).toContain('new0-0');
    expect(got.records.toString('latin1')).not.toContain('old5-0');
    await log.close();
  });

  it('answers OFFSET_OUT_OF_RANGE when the offset is truncated away while the read is out', async () => {
    const { log } = await openLog(dir, { segmentBytes: 1 << 20 }, { recentReadBytes: 0 });
    for (let index = 0; index < 10; index++) log.append(batchOf(4), 0);
    const reading = log.readForFetch(30, 1 << 20);
    holdEventLoop(100);
    log.truncateTo(12);
    expect((await errorOf(reading)).errorName).toBe('OFFSET_OUT_OF_RANGE');
    expect(log.logEndOffset).toBe(12);
    await log.close();
  });

  it('answers OFFSET_OUT_OF_RANGE when retention deletes the segment while the read is out', async () => {
    let nowMs = 1_000_000;
    const clock = { nowMs: () => nowMs, monotonicMs: () => nowMs };
    const { log } = await openLog(dir, { segmentBytes: 2000, retentionMs: 1000 }, { clock, recentReadBytes: 0 });
    for (let index = 0; index < 30; index++) log.append(batchOf(4, { timestamp: nowMs }), 0);
    await log.flush();
    const reading = log.readForFetch(0, 1 << 20);
    holdEventLoop(100);
    nowMs += 10_000;
    expect(log.applyRetention()).toBeGreaterThan(0);
    expect(log.logStartOffset).toBeGreaterThan(0);
    expect((await errorOf(reading)).errorName).toBe('OFFSET_OUT_OF_RANGE');
    await log.close();
  });

  it('fails with a storage error when the log is deleted while the read is out', async () => {
    const { log } = await openLog(dir, { segmentBytes: 2000 }, { recentReadBytes: 0 });
    for (let index = 0; index < 30; index++) log.append(batchOf(4), 0);
    const reading = log.readForFetch(0, 1 << 20);
    const deleting = log.delete();
    const error = await errorOf(Promise.resolve(reading));
    expect(error.errorName).toBe('KAFKA_STORAGE_ERROR');
    expect(error.message).toMatch(/closed/);
    await deleting;
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('lets a close wait for a read that is out, and leaks no file descriptor', async () => {
    const fdsBefore = fs.readdirSync('/proc/self/fd').length;
    const { log } = await openLog(dir, { segmentBytes: 2000 }, { recentReadBytes: 0 });
    for (let index = 0; index < 30; index++) log.append(batchOf(4), 0);
    const expected = log.read(0, 1 << 20);
    const reading = Promise.resolve(log.readForFetch(0, 1 << 20)).then(
      (read) => read,
      (error: unknown) => error,
    );
    await log.close();
    const outcome = await reading;
    // Done before the close took the log away, or refused because it had.
    if (outcome instanceof Error) expect((outcome as RiffleError).errorName).toBe('KAFKA_STORAGE_ERROR');
    else expect((outcome as { records: Buffer }).records.equals(expected.records)).toBe(true);
    expect(fs.readdirSync('/proc/self/fd').length).toBe(fdsBefore);
  });

  it('refuses a corrupt batch met by a read from the file and records it for repair', async () => {
    {
      const { log } = await openLog(dir, { segmentBytes: 2000 });
      for (let index = 0; index < 30; index++) log.append(batchOf(4), 0);
      await log.close();
    }
    const file = path.join(dir, segmentFiles(dir)[0]!);
    const bytes = fs.readFileSync(file);
    const target = [...iterateBatches(bytes)][2]!;
    bytes[target.position + 70]! ^= 0x10;
    fs.writeFileSync(file, bytes);
    const { log, registry } = await openLog(dir, { segmentBytes: 2000 }, { recentReadBytes: 0 });
    const error = await errorOf(Promise.resolve(log.readForFetch(target.header.baseOffset, 1 << 20)));
    expect(error.errorName).toBe('KAFKA_STORAGE_ERROR');
    expect(error.message).toMatch(/corrupt/);
    expect(log.corruptOffset).toBe(target.header.baseOffset);
    expect(await metricValue(registry, 'riffle_log_corrupt_batches_total')).toBeGreaterThanOrEqual(1);
    // The batches before it still read clean.
    const before = await log.readForFetch(0, 1 << 20);
    expect(before.nextOffset).toBe(target.header.baseOffset);
    await log.close();
  });
});
