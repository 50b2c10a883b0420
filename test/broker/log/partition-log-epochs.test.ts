// The partition log's leader epochs and checksums: epochs recorded by leader and follower appends,
// stale epochs refused, truncation and retention trimming the cache, the checkpoint surviving
// reopen and crash, the cache rebuilt from batch headers when its checkpoint is deleted, damaged
// or stale, and checksumUpTo agreeing between replicas until their logs diverge.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LEADER_EPOCH_CHECKPOINT_FILE, type PartitionLog } from '../../../broker/log/index.js';
import { readLeaderEpochCheckpoint } from '../../../broker/log/leader-epoch-cache.js';
import { RiffleError } from '../../../src/rpc/errors.js';
import { crc32c } from '../../../src/util/crc32c.js';
import { encodeRecordBatch, iterateBatches } from '../../../src/util/record-batch.js';
import { batchOf, makeTempDir, metricValue, openLog, removeDir, segmentFiles, storedBytesBelow } from './helpers.js';

let dir: string;
beforeEach(() => {
  dir = makeTempDir();
});
afterEach(() => removeDir(dir));

const REBUILDS = 'riffle_log_leader_epoch_rebuilds_total';

function pairsOf(log: PartitionLog): Array<[number, number]> {
  return log.leaderEpochEntries().map((entry) => [entry.epoch, entry.startOffset]);
}

function checkpointPath(): string {
  return path.join(dir, LEADER_EPOCH_CHECKPOINT_FILE);
}

/** A batch as a leader would have stored it: offsets and epoch already stamped. */
function leaderBatch(baseOffset: number, count: number, epoch: number, label = 'f'): Buffer {
  return encodeRecordBatch(Array.from({ length: count }, (_, index) => ({ key: null, value: Buffer.from(`${label}-${baseOffset + index}`), timestamp: 1_700_000_000_000 + baseOffset + index })), { baseOffset, partitionLeaderEpoch: epoch });
}

/** Appends `count`-record batches at each epoch: [[epoch, batches], ...]. */
function appendEpochs(log: PartitionLog, plan: Array<[number, number]>, count = 5): void {
  for (const [epoch, batches] of plan) for (let index = 0; index < batches; index++) log.append(batchOf(count, { label: `e${epoch}` }), epoch);
}

/** The epoch entries implied by the stored batches, read through the serving path. */
function epochsOfStoredBatches(log: PartitionLog): Array<[number, number]> {
  const entries: Array<[number, number]> = [];
  for (const batch of iterateBatches(storedBytesBelow(log, log.logEndOffset))) {
    const epoch = batch.header.partitionLeaderEpoch;
    if (epoch >= 0 && (entries.length === 0 || epoch > entries.at(-1)![0])) entries.push([epoch, batch.header.baseOffset]);
  }
  return entries;
}

describe('leader appends', () => {
  it('records the offset where each new epoch starts and keeps it across reopen', async () => {
    const { log } = await openLog(dir);
    expect(log.latestEpoch).toBe(-1);
    appendEpochs(log, [[0, 2], [1, 2], [4, 1]]);
    expect(pairsOf(log)).toEqual([[0, 0], [1, 10], [4, 20]]);
    expect(log.latestEpoch).toBe(4);
    await log.close();
    const reopened = await openLog(dir);
    expect(pairsOf(reopened.log)).toEqual([[0, 0], [1, 10], [4, 20]]);
    expect(await metricValue(reopened.registry, REBUILDS)).toBe(0);
    await reopened.log.close();
  });

  it('rewrites the checkpoint only when the epoch changes', async () => {
    const { log } = await openLog(dir);
    // A new log starts with an empty checkpoint, created when the directory was.
    expect(readLeaderEpochCheckpoint(dir)).toEqual([]);
    log.append(batchOf(1), 3);
    expect(readLeaderEpochCheckpoint(dir)).toEqual([{ epoch: 3, startOffset: 0 }]);
    // Spoil the file's CRC (same length, in place): an append that rewrote it would repair it.
    const text = fs.readFileSync(checkpointPath(), 'utf8');
    const spoiled = text.replace(/crc (.)/, (_, digit: string) => `crc ${digit === '0' ? '1' : '0'}`);
    fs.writeFileSync(checkpointPath(), spoiled);
    for (let index = 0; index < 50; index++) log.append(batchOf(2), 3);
    expect(fs.readFileSync(checkpointPath(), 'utf8')).toBe(spoiled);
    log.append(batchOf(1), 5);
    expect(readLeaderEpochCheckpoint(dir)).toEqual([{ epoch: 3, startOffset: 0 }, { epoch: 5, startOffset: 101 }]);
    await log.close();
  });

  it('refuses an append with an epoch older than the latest and leaves the log unchanged', async () => {
    const { log } = await openLog(dir);
    appendEpochs(log, [[2, 1], [3, 1]]);
    expect(() => log.append(batchOf(1), 2)).toThrow(expect.objectContaining({ errorName: 'FENCED_LEADER_EPOCH' }));
    expect(() => log.append(batchOf(1), -1)).toThrow(RiffleError);
    expect(log.logEndOffset).toBe(10);
    expect(pairsOf(log)).toEqual([[2, 0], [3, 5]]);
    expect(log.append(batchOf(1), 3).baseOffset).toBe(10);
    await log.close();
  });

  it('accepts epoch -1 appends only before any epoch, and records none for them', async () => {
    const { log } = await openLog(dir);
    log.append(batchOf(2), -1);
    expect(log.leaderEpochEntries()).toEqual([]);
    log.append(batchOf(2), 0);
    expect(pairsOf(log)).toEqual([[0, 2]]);
    expect(log.endOffsetForEpoch(0)).toEqual({ epoch: 0, endOffset: 4 });
    await log.close();
  });

  it('begins a leader epoch at the log end before any append, as a new leader does', async () => {
    const { log } = await openLog(dir);
    appendEpochs(log, [[0, 2], [1, 1]]);
    log.beginLeaderEpoch(3);
    expect(pairsOf(log)).toEqual([[0, 0], [1, 10], [3, 15]]);
    // A follower that wrote epoch 2 elsewhere learns that epoch 1 ended where epoch 3 began.
    expect(log.endOffsetForEpoch(2)).toEqual({ epoch: 1, endOffset: 15 });
    log.beginLeaderEpoch(3);
    log.beginLeaderEpoch(4);
    expect(pairsOf(log)).toEqual([[0, 0], [1, 10], [4, 15]]);
    expect(() => log.beginLeaderEpoch(3)).toThrow(expect.objectContaining({ errorName: 'FENCED_LEADER_EPOCH' }));
    log.append(batchOf(5), 4);
    expect(pairsOf(log)).toEqual([[0, 0], [1, 10], [4, 15]]);
    expect(log.endOffsetForEpoch(4)).toEqual({ epoch: 4, endOffset: 20 });
    await log.close();
  });

  it('answers OffsetsForLeaderEpoch from its cache (KIP-101 divergence: follower asks for epoch 1)', async () => {
    const { log } = await openLog(dir);
    appendEpochs(log, [[0, 2], [1, 2], [2, 3]]);
    expect(log.endOffsetForEpoch(1)).toEqual({ epoch: 1, endOffset: 20 });
    expect(log.endOffsetForEpoch(0)).toEqual({ epoch: 0, endOffset: 10 });
    expect(log.endOffsetForEpoch(2)).toEqual({ epoch: 2, endOffset: 35 });
    expect(log.endOffsetForEpoch(7)).toEqual({ epoch: -1, endOffset: -1 });
    expect(log.endOffsetForEpoch(-1)).toEqual({ epoch: -1, endOffset: -1 });
    await log.close();
  });
});

describe('follower appends', () => {
  it('records every epoch change among the batches of one append', async () => {
    const { log } = await openLog(dir);
    const batches = Buffer.concat([leaderBatch(0, 3, 0), leaderBatch(3, 2, 0), leaderBatch(5, 4, 2), leaderBatch(9, 1, 5), leaderBatch(10, 2, 5)]);
    expect(log.appendAsFollower(batches)).toMatchObject({ baseOffset: 0, lastOffset: 11 });
    expect(pairsOf(log)).toEqual([[0, 0], [2, 5], [5, 9]]);
    log.appendAsFollower(leaderBatch(12, 1, 6));
    expect(pairsOf(log)).toEqual([[0, 0], [2, 5], [5, 9], [6, 12]]);
    const stored = [...iterateBatches(log.read(0, 1 << 20).records)].map((batch) => batch.header.partitionLeaderEpoch);
    expect(stored).toEqual([0, 0, 2, 5, 5, 6]);
    await log.close();
  });

  it('refuses batches whose epoch goes below the latest, writing none of the append', async () => {
    const { log } = await openLog(dir);
    log.appendAsFollower(leaderBatch(0, 2, 3));
    expect(() => log.appendAsFollower(Buffer.concat([leaderBatch(2, 1, 3), leaderBatch(3, 1, 2)]))).toThrow(expect.objectContaining({ errorName: 'FENCED_LEADER_EPOCH' }));
    expect(() => log.appendAsFollower(Buffer.concat([leaderBatch(2, 1, 4), leaderBatch(3, 1, 3)]))).toThrow(RiffleError);
    expect(log.logEndOffset).toBe(2);
    expect(pairsOf(log)).toEqual([[3, 0]]);
    await log.close();
  });

  it('replaces an epoch it began as leader without writing, even with older epochs', async () => {
    const { log } = await openLog(dir);
    log.appendAsFollower(leaderBatch(0, 2, 1));
    log.beginLeaderEpoch(3);
    // Deposed before writing; the new leader's log continues with epoch 2, which it led.
    log.appendAsFollower(Buffer.concat([leaderBatch(2, 2, 2), leaderBatch(4, 1, 4)]));
    expect(pairsOf(log)).toEqual([[1, 0], [2, 2], [4, 4]]);
    expect(() => log.appendAsFollower(leaderBatch(5, 1, 3))).toThrow(expect.objectContaining({ errorName: 'FENCED_LEADER_EPOCH' }));
    await log.close();
    const reopened = await openLog(dir);
    expect(pairsOf(reopened.log)).toEqual([[1, 0], [2, 2], [4, 4]]);
    await reopened.log.close();
  });

  it('truncates a divergent tail by leader epoch and then follows the leader (KIP-101 scenario)', async () => {
    // Leader: epoch 0 for 0..9, epoch 2 from 10. Follower: epoch 0 for 0..9, epoch 1 for 10..14.
    const leader = (await openLog(path.join(dir, 'leader'))).log;
    const follower = (await openLog(path.join(dir, 'follower'))).log;
    appendEpochs(leader, [[0, 2]]);
    follower.appendAsFollower(leader.read(0, 1 << 20).records);
    follower.appendAsFollower(leaderBatch(10, 5, 1, 'lost'));
    appendEpochs(leader, [[2, 3]]);
    const answer = leader.endOffsetForEpoch(follower.latestEpoch);
    expect(answer).toEqual({ epoch: 0, endOffset: 10 });
    const own = follower.endOffsetForEpoch(answer.epoch);
    follower.truncateTo(Math.min(answer.endOffset, own.endOffset));
    expect(pairsOf(follower)).toEqual([[0, 0]]);
    while (follower.logEndOffset < leader.logEndOffset) follower.appendAsFollower(leader.read(follower.logEndOffset, 1 << 20).records);
    expect(pairsOf(follower)).toEqual(pairsOf(leader));
    expect(await follower.checksumUpTo(leader.logEndOffset)).toEqual(await leader.checksumUpTo(leader.logEndOffset));
    await leader.close();
    await follower.close();
  });
});

describe('truncateToDivergence (the follower side)', () => {
  it('cuts back to where its own older epoch ends when it never had the leader\'s epoch (KIP-279)', async () => {
    // Leader: epoch 0 for 0..9, epoch 2 from 10. Follower: epoch 0 for 0..4, epoch 1 for 5..14.
    const follower = (await openLog(dir)).log;
    follower.appendAsFollower(Buffer.concat([leaderBatch(0, 5, 0), leaderBatch(5, 10, 1, 'lost')]));
    // The leader answers epoch 0 ending at 10; cutting at 10 would keep 5..9 of epoch 1 and the
    // next check would give the same answer again, for ever.
    expect(follower.truncateToDivergence(0, 10)).toBe(5);
    expect(pairsOf(follower)).toEqual([[0, 0]]);
    await follower.close();
  });

  it('cuts to the leader\'s end when both hold the epoch, and drops an epoch begun without data', async () => {
    const { log } = await openLog(dir);
    log.appendAsFollower(Buffer.concat([leaderBatch(0, 5, 0), leaderBatch(5, 5, 4)]));
    expect(log.truncateToDivergence(4, 7)).toBe(5);
    expect(pairsOf(log)).toEqual([[0, 0]]);
    log.appendAsFollower(leaderBatch(5, 5, 4));
    // A former leader that began epoch 5 and wrote nothing; the new leader never had epoch 5.
    log.beginLeaderEpoch(5);
    expect(log.truncateToDivergence(4, 10)).toBe(10);
    expect(pairsOf(log)).toEqual([[0, 0], [4, 5]]);
    expect(log.latestEpoch).toBe(4);
    // No common epoch at all: the leader's own answer decides.
    expect(log.truncateToDivergence(-1, 0)).toBe(0);
    expect(log.leaderEpochEntries()).toEqual([]);
    await log.close();
  });
});

describe('truncation and retention', () => {
  it('truncation drops the epochs that started at or after the new end, durably', async () => {
    const { log } = await openLog(dir);
    appendEpochs(log, [[0, 2], [1, 2], [2, 2]]);
    log.truncateTo(22);
    expect(log.logEndOffset).toBe(20);
    expect(pairsOf(log)).toEqual([[0, 0], [1, 10]]);
    expect(log.endOffsetForEpoch(1)).toEqual({ epoch: 1, endOffset: 20 });
    log.truncateTo(15);
    expect(pairsOf(log)).toEqual([[0, 0], [1, 10]]);
    // A crash right after: the checkpoint on disk already has the truncation.
    const reopened = await openLog(dir);
    expect(pairsOf(reopened.log)).toEqual([[0, 0], [1, 10]]);
    // Truncating inside the first batch of epoch 1 takes the whole batch, and the epoch.
    reopened.log.truncateTo(12);
    expect(reopened.log.logEndOffset).toBe(10);
    expect(pairsOf(reopened.log)).toEqual([[0, 0]]);
    reopened.log.truncateTo(0);
    expect(reopened.log.leaderEpochEntries()).toEqual([]);
    expect(reopened.log.latestEpoch).toBe(-1);
    reopened.log.append(batchOf(1), 0);
    expect(pairsOf(reopened.log)).toEqual([[0, 0]]);
    await reopened.log.close();
  });

  it('emptying the log clears the cache', async () => {
    const { log } = await openLog(dir, { segmentBytes: 300 });
    appendEpochs(log, [[1, 10], [2, 10]]);
    await log.flush();
    log.truncateTo(log.logStartOffset);
    expect(log.leaderEpochEntries()).toEqual([]);
    await log.close();
  });

  it('retention moves the first epoch up to the new log start', async () => {
    const { log } = await openLog(dir, { segmentBytes: 300 });
    appendEpochs(log, [[0, 6], [1, 6], [2, 6]]);
    await log.flush();
    expect(log.segmentCount).toBeGreaterThan(4);
    await log.close();
    const retained = await openLog(dir, { segmentBytes: 300, retentionBytes: 600 });
    expect(retained.log.applyRetention()).toBeGreaterThan(0);
    const start = retained.log.logStartOffset;
    expect(start).toBeGreaterThan(30);
    expect(pairsOf(retained.log)).toEqual(epochsOfStoredBatches(retained.log));
    expect(retained.log.leaderEpochEntries()[0]!.startOffset).toBe(start);
    expect(retained.log.latestEpoch).toBe(2);
    expect(retained.log.endOffsetForEpoch(0)).toEqual({ epoch: 0, endOffset: start });
    await retained.log.close();
    const reopened = await openLog(dir, { segmentBytes: 300 });
    expect(reopened.log.leaderEpochEntries()[0]!.startOffset).toBe(start);
    expect(await metricValue(reopened.registry, REBUILDS)).toBe(0);
    await reopened.log.close();
  });
});

describe('rebuilding the cache from batch headers', () => {
  async function logWithEpochs(): Promise<Array<[number, number]>> {
    // Epochs change inside segments and at segment boundaries; one epoch spans several segments.
    const { log } = await openLog(dir, { segmentBytes: 300 });
    appendEpochs(log, [[0, 3], [1, 1], [3, 12], [4, 1], [5, 2], [9, 5]]);
    expect(log.segmentCount).toBeGreaterThan(6);
    const entries = pairsOf(log);
    expect(entries).toEqual([[0, 0], [1, 15], [3, 20], [4, 80], [5, 85], [9, 95]]);
    expect(epochsOfStoredBatches(log)).toEqual(entries);
    await log.close();
    return entries;
  }

  it('rebuilds a deleted checkpoint', async () => {
    const entries = await logWithEpochs();
    fs.rmSync(checkpointPath());
    const reopened = await openLog(dir, { segmentBytes: 300 });
    expect(pairsOf(reopened.log)).toEqual(entries);
    expect(await metricValue(reopened.registry, REBUILDS)).toBe(1);
    expect(fs.existsSync(checkpointPath())).toBe(true);
    await reopened.log.close();
    const again = await openLog(dir, { segmentBytes: 300 });
    expect(await metricValue(again.registry, REBUILDS)).toBe(0);
    await again.log.close();
  });

  it('rebuilds a damaged checkpoint', async () => {
    const entries = await logWithEpochs();
    const bytes = fs.readFileSync(checkpointPath());
    bytes[bytes.length - 12] ^= 0x04;
    fs.writeFileSync(checkpointPath(), bytes);
    const reopened = await openLog(dir, { segmentBytes: 300 });
    expect(pairsOf(reopened.log)).toEqual(entries);
    expect(await metricValue(reopened.registry, REBUILDS)).toBe(1);
    await reopened.log.close();
  });

  it('rebuilds a stale checkpoint that disagrees with the last batch', async () => {
    const { log } = await openLog(dir);
    appendEpochs(log, [[0, 2], [1, 2]]);
    const old = fs.readFileSync(checkpointPath());
    appendEpochs(log, [[2, 2]]);
    await log.close();
    fs.writeFileSync(checkpointPath(), old);
    const reopened = await openLog(dir);
    expect(pairsOf(reopened.log)).toEqual([[0, 0], [1, 10], [2, 20]]);
    expect(await metricValue(reopened.registry, REBUILDS)).toBe(1);
    await reopened.log.close();
  });

  it('trims epochs whose batches a crash lost', async () => {
    const { log } = await openLog(dir, { segmentBytes: 1 << 20 });
    appendEpochs(log, [[0, 2], [1, 2], [2, 1]]);
    await log.close();
    // The last batch (epoch 2) never reached the disk, but the checkpoint did.
    const segment = path.join(dir, segmentFiles(dir).at(-1)!);
    fs.truncateSync(segment, fs.statSync(segment).size - 10);
    const reopened = await openLog(dir, { segmentBytes: 1 << 20 });
    expect(reopened.log.logEndOffset).toBe(20);
    expect(pairsOf(reopened.log)).toEqual([[0, 0], [1, 10]]);
    expect(await metricValue(reopened.registry, REBUILDS)).toBe(0);
    await reopened.log.close();
  });
});

describe('checksumUpTo', () => {
  it('is the CRC-32C of the stored bytes of whole batches below the offset', async () => {
    const { log } = await openLog(dir, { segmentBytes: 400 });
    appendEpochs(log, [[0, 8], [1, 8]], 4);
    expect(log.segmentCount).toBeGreaterThan(2);
    for (const bound of [0, 1, 3, 4, 5, 17, 40, 63, 64, 1000]) {
      const expected = storedBytesBelow(log, Math.min(bound, log.logEndOffset));
      const sum = await log.checksumUpTo(bound);
      expect(sum, `bound ${bound}`).toEqual({ startOffset: 0, offset: Math.min(Math.floor(bound / 4) * 4, 64), crc32c: crc32c(expected), bytes: expected.length });
    }
    const middle = await log.checksumUpTo(40, 10);
    const tail = storedBytesBelow(log, 40).subarray(storedBytesBelow(log, 12).length);
    expect(middle).toEqual({ startOffset: 12, offset: 40, crc32c: crc32c(tail), bytes: tail.length });
    await expect(log.checksumUpTo(10, -1)).rejects.toThrow(RiffleError);
    await log.close();
  });

  it('reads on the thread pool: the event loop turns while a checksum of several megabytes is out', async () => {
    const { log } = await openLog(dir, { segmentBytes: 3 * 1024 * 1024 });
    for (let index = 0; index < 8; index++) log.append(batchOf(10, { valueBytes: 100_000 }), 0);
    expect(log.segmentCount).toBeGreaterThan(1);
    let turns = 0;
    let done = false;
    const spin = (): void => {
      turns++;
      if (!done) setImmediate(spin);
    };
    setImmediate(spin);
    const sum = await log.checksumUpTo(log.logEndOffset);
    done = true;
    const expected = storedBytesBelow(log, log.logEndOffset);
    expect(sum).toEqual({ startOffset: 0, offset: 80, crc32c: crc32c(expected), bytes: expected.length });
    // One chunk of 1 MiB per read: about eight reads, with turns of the loop between them.
    expect(turns).toBeGreaterThan(1);
    await log.close();
  });

  it('fails with a retriable error when the log is truncated while its bytes are read, and the next call answers', async () => {
    const { log } = await openLog(dir, { segmentBytes: 2 * 1024 * 1024 });
    for (let index = 0; index < 6; index++) log.append(batchOf(10, { valueBytes: 100_000 }), 0);
    const truncated = log.checksumUpTo(log.logEndOffset);
    log.truncateTo(30);
    const error = await truncated.then(() => null, (failure: unknown) => failure);
    expect(error).toBeInstanceOf(RiffleError);
    expect((error as RiffleError).code).toBe(new RiffleError('OFFSET_NOT_AVAILABLE').code);
    expect((error as RiffleError).retriable).toBe(true);
    const expected = storedBytesBelow(log, 30);
    expect(await log.checksumUpTo(100)).toEqual({ startOffset: 0, offset: 30, crc32c: crc32c(expected), bytes: expected.length });
    await log.close();
    await expect(log.checksumUpTo(10)).rejects.toThrow(RiffleError);
  });

  it('agrees between two replicas fed the same batches and differs after a divergent tail', async () => {
    const leader = (await openLog(path.join(dir, 'a'), { segmentBytes: 800 })).log;
    const follower = (await openLog(path.join(dir, 'b'), { segmentBytes: 3000 })).log;
    appendEpochs(leader, [[0, 5], [1, 5]], 3);
    while (follower.logEndOffset < leader.logEndOffset) follower.appendAsFollower(leader.read(follower.logEndOffset, 500).records);
    // Different segment sizes, same batches: the same bytes.
    expect(leader.segmentCount).not.toBe(follower.segmentCount);
    for (const bound of [3, 15, 29, 30]) expect(await follower.checksumUpTo(bound)).toEqual(await leader.checksumUpTo(bound));
    // The follower's tail diverges (a deposed leader's epoch-2 write); the prefix still agrees.
    follower.appendAsFollower(leaderBatch(30, 3, 2, 'divergent'));
    appendEpochs(leader, [[3, 1]], 3);
    expect(await follower.checksumUpTo(30)).toEqual(await leader.checksumUpTo(30));
    expect((await follower.checksumUpTo(33)).offset).toBe(33);
    expect((await follower.checksumUpTo(33)).crc32c).not.toBe((await leader.checksumUpTo(33)).crc32c);
    await leader.close();
    await follower.close();
  });
});
