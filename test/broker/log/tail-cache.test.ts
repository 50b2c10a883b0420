// The tail cache: a leader's last appends are read back from memory, byte for byte what the file
// holds; whole appends only, within maxBytes and the limit (the high watermark for consumers);
// anything else goes to the file. One budget covers every log of the broker, the oldest appends
// of any log going first, and counts what an append holds (the whole buffer it is a small view
// of); a truncation drops what it reaches, so re-appended offsets are read anew; a follower's
// appends are not kept.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Registry } from '../../../src/metrics/index.js';
import { TailCache, TailCacheMetrics, type PartitionLog } from '../../../broker/log/index.js';
import { encodeRecordBatch, decodeAllRecords } from '../../../src/util/record-batch.js';
import { batchOf, makeTempDir, openLog, removeDir } from './helpers.js';

let dirs: string[] = [];
const logs: PartitionLog[] = [];
beforeEach(() => {
  dirs = [makeTempDir(), makeTempDir()];
});
afterEach(async () => {
  for (const log of logs.splice(0)) await log.close();
  for (const dir of dirs) removeDir(dir);
});

/** The bytes in a buffer of their own (small ones are views of Node's shared 8 KiB pool). */
function standalone(bytes: Buffer): Buffer {
  const own = Buffer.alloc(bytes.length);
  bytes.copy(own);
  return own;
}

async function reads(registry: Registry): Promise<{ hit: number; miss: number }> {
  const values = (await registry.getSingleMetric('riffle_log_tail_cache_reads_total')!.get()).values;
  const of = (result: string): number => values.find((value) => value.labels.result === result)?.value ?? 0;
  return { hit: of('hit'), miss: of('miss') };
}

async function cachedLog(cache: TailCache, dir = dirs[0]!): Promise<PartitionLog> {
  const { log } = await openLog(dir, { segmentBytes: 1 << 20 }, { tail: cache.forLog() });
  logs.push(log);
  return log;
}

/** What the file holds from `offset` (a log without a cache over the same directory would read it so). */
function fromFile(log: PartitionLog, offset: number, maxBytes: number, limit: number): { records: Buffer; nextOffset: number } {
  const tail = (log as unknown as { tail: unknown }).tail;
  (log as unknown as { tail: unknown }).tail = null;
  try {
    return log.read(offset, maxBytes, limit);
  } finally {
    (log as unknown as { tail: unknown }).tail = tail;
  }
}

describe('tail cache', () => {
  it('serves the last appends from memory, as the file holds them, within maxBytes and the limit', async () => {
    const registry = new Registry();
    const log = await cachedLog(new TailCache(1 << 20, new TailCacheMetrics(registry)));
    for (let index = 0; index < 4; index++) log.append(batchOf(5, { label: `a${index}` }), 3);
    const end = log.logEndOffset;
    // Whole appends from an append's first offset, as many as fit.
    for (const [offset, maxBytes] of [[5, 1 << 20], [0, 1 << 20], [10, 1], [15, 0]] as const) {
      const served = log.read(offset, maxBytes, end);
      expect(served).toEqual(fromFile(log, offset, maxBytes, end));
    }
    expect(await reads(registry)).toEqual({ hit: 4, miss: 0 });
    const oneAppend = log.read(5, batchOf(5, { label: 'a1' }).length + 10, end);
    expect(oneAppend.nextOffset).toBe(10);
    // The high watermark inside the third append: the first two whole, the rest not at all.
    expect(log.read(0, 1 << 20, 12)).toEqual({ records: fromFile(log, 0, 1 << 20, 10).records, nextOffset: 10 });
    expect(await reads(registry)).toEqual({ hit: 6, miss: 0 });
    // Inside an append, or from an append that crosses the limit: the file answers.
    expect(log.read(7, 1 << 20, end)).toEqual(fromFile(log, 7, 1 << 20, end));
    expect(log.read(10, 1 << 20, 12)).toEqual({ records: Buffer.alloc(0), nextOffset: 10 });
    expect(await reads(registry)).toEqual({ hit: 6, miss: 2 });
  });

  it('sends an append of several batches that exceeds maxBytes to the file, which splits it', async () => {
    const registry = new Registry();
    const log = await cachedLog(new TailCache(1 << 20, new TailCacheMetrics(registry)));
    const two = Buffer.concat([batchOf(3, { label: 'x' }), batchOf(3, { label: 'y' })]);
    log.append(two, 0);
    const served = log.read(0, batchOf(3, { label: 'x' }).length, 6);
    expect(served.nextOffset).toBe(3);
    expect([...decodeAllRecords(served.records)].map((record) => record.value!.toString())).toEqual(['x-0', 'x-1', 'x-2']);
    expect(await reads(registry)).toEqual({ hit: 0, miss: 1 });
  });

  it('keeps one budget for all logs, evicting the oldest appends of any log first', async () => {
    const registry = new Registry();
    const batch = (label: string): Buffer => standalone(batchOf(4, { label, valueBytes: 200 }));
    const size = batch('p0').length;
    const cache = new TailCache(size * 3, new TailCacheMetrics(registry));
    const first = await cachedLog(cache, dirs[0]);
    const second = await cachedLog(cache, dirs[1]);
    first.append(batch('f0'), 0);
    second.append(batch('s0'), 0);
    first.append(batch('f1'), 0);
    second.append(batch('s1'), 0);
    expect(cache.bytes).toBe(size * 3);
    expect((await registry.getSingleMetric('riffle_log_tail_cache_bytes')!.get()).values[0]!.value).toBe(size * 3);
    // first's oldest append went: read from the file, still right.
    expect(first.read(0, 1 << 20, 8)).toEqual(fromFile(first, 0, 1 << 20, 8));
    expect(await reads(registry)).toEqual({ hit: 0, miss: 1 });
    expect(first.read(4, 1 << 20, 8).nextOffset).toBe(8);
    expect(second.read(0, 1 << 20, 8)).toEqual(fromFile(second, 0, 1 << 20, 8));
    expect(await reads(registry)).toEqual({ hit: 2, miss: 1 });
    // Closing a log gives its bytes back.
    await first.close();
    logs.splice(logs.indexOf(first), 1);
    expect(cache.bytes).toBe(size * 2);
  });

  it('counts a small view of a large buffer as the whole buffer', async () => {
    const cache = new TailCache(64 * 1024);
    const log = await cachedLog(cache);
    const small = batchOf(2, { label: 'v' });
    const request = Buffer.alloc(48 * 1024);
    small.copy(request, 1000);
    log.append(request.subarray(1000, 1000 + small.length), 0);
    expect(cache.bytes).toBe(48 * 1024);
    // A second one does not fit beside it: the first goes.
    const other = Buffer.alloc(48 * 1024);
    batchOf(2, { label: 'w' }).copy(other, 0);
    log.append(other.subarray(0, small.length), 0);
    expect(cache.bytes).toBe(48 * 1024);
    expect([...decodeAllRecords(log.read(2, 1 << 20, 4).records)].map((record) => record.value!.toString())).toEqual(['w-0', 'w-1']);
  });

  it('lets go of what truncations and closed logs drop, whatever the budget', async () => {
    const cache = new TailCache(64 * 1024 * 1024);
    const log = await cachedLog(cache);
    for (let round = 0; round < 500; round++) {
      log.append(standalone(batchOf(2, { label: `t${round}` })), 0);
      log.truncateTo(0);
    }
    expect(cache.bytes).toBe(0);
    const queued = cache as unknown as { queue: unknown[]; head: number };
    expect(queued.queue.length - queued.head).toBeLessThanOrEqual(130);
  });

  it('drops what a truncation reaches, so offsets written again are read anew', async () => {
    const log = await cachedLog(new TailCache(1 << 20));
    log.append(batchOf(3, { label: 'old-a' }), 1);
    log.append(batchOf(3, { label: 'old-b' }), 1);
    log.truncateTo(3);
    log.append(batchOf(3, { label: 'new-b' }), 2);
    const values = [...decodeAllRecords(log.read(3, 1 << 20, 6).records)].map((record) => record.value!.toString());
    expect(values).toEqual(['new-b-0', 'new-b-1', 'new-b-2']);
    expect(log.read(0, 1 << 20, 6)).toEqual(fromFile(log, 0, 1 << 20, 6));
  });

  it('keeps nothing of a follower\'s appends', async () => {
    const registry = new Registry();
    const cache = new TailCache(1 << 20, new TailCacheMetrics(registry));
    const log = await cachedLog(cache);
    const batch = encodeRecordBatch([{ key: null, value: Buffer.from('replicated') }], { baseOffset: 0, partitionLeaderEpoch: 4 });
    log.appendAsFollower(batch);
    expect(cache.bytes).toBe(0);
    expect(log.read(0, 1 << 20, 1).records.equals(batch)).toBe(true);
    expect(await reads(registry)).toEqual({ hit: 0, miss: 1 });
  });
});
