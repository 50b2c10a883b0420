// A seeded random walk over the partition log's leader epochs, checked against a simple model
// (the epochs implied by the batches the log should hold, plus an epoch begun without data):
// leader appends with rising epochs, follower appends of several epochs at once, stale epochs
// refused, beginLeaderEpoch, truncations, retention, clean reopens, crashes, lost tails, and the
// checkpoint deleted or damaged. OffsetsForLeaderEpoch answers are compared with a naive
// implementation and checksumUpTo with a CRC of the bytes the serving path returns.
// A failure prints the seed; RIFFLE_SEED=<seed> replays it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LEADER_EPOCH_CHECKPOINT_FILE, type EpochEndOffset, type EpochEntry, type PartitionLog } from '../../../broker/log/index.js';
import { crc32c } from '../../../src/util/crc32c.js';
import { Prng } from '../../../src/util/prng.js';
import { encodeRecordBatch, readBatchHeader } from '../../../src/util/record-batch.js';
import { makeTempDir, openLog, removeDir, segmentFiles, storedBytesBelow } from './helpers.js';

interface ModelBatch {
  base: number;
  count: number;
  epoch: number;
}

interface Model {
  batches: ModelBatch[];
  /** An epoch begun at the log end that has written nothing yet. */
  pending: EpochEntry | null;
}

const STEPS = Number(process.env.RIFFLE_MODEL_STEPS ?? 300);

let dir: string;
beforeEach(() => {
  dir = makeTempDir();
});
afterEach(() => removeDir(dir));

function expectedEntries(model: Model): EpochEntry[] {
  const entries: EpochEntry[] = [];
  for (const batch of model.batches) {
    if (batch.epoch >= 0 && (entries.length === 0 || batch.epoch > entries.at(-1)!.epoch)) entries.push({ epoch: batch.epoch, startOffset: batch.base });
  }
  if (model.pending !== null) entries.push(model.pending);
  return entries;
}

function modelLatestEpoch(model: Model): number {
  return expectedEntries(model).at(-1)?.epoch ?? -1;
}

/** The epoch of the last batch: what a follower append must not go below. */
function modelLastBatchEpoch(model: Model): number {
  return expectedEntries({ batches: model.batches, pending: null }).at(-1)?.epoch ?? -1;
}

/** OffsetsForLeaderEpoch by a linear walk, written independently of the cache's binary search. */
function naiveEndOffset(entries: EpochEntry[], requested: number, logEndOffset: number): EpochEndOffset {
  if (requested === -1 || entries.length === 0) return { epoch: -1, endOffset: -1 };
  if (requested === entries.at(-1)!.epoch) return { epoch: requested, endOffset: logEndOffset };
  let floor: EpochEntry | null = null;
  for (const entry of entries) {
    if (entry.epoch > requested) return { epoch: floor === null ? requested : floor.epoch, endOffset: entry.startOffset };
    floor = entry;
  }
  return { epoch: -1, endOffset: -1 };
}

function recordsOf(count: number, step: number): Array<{ key: null; value: Buffer; timestamp: number }> {
  return Array.from({ length: count }, (_, index) => ({ key: null, value: Buffer.from(`s${step}-${index}`), timestamp: 1_000_000 + step }));
}

describe('leader epochs against a model', () => {
  it('agree with the model through a seeded random walk', async () => {
    const seed = Number(process.env.RIFFLE_SEED ?? Date.now() % 0x7fffffff);
    console.log(`leader epoch model walk: RIFFLE_SEED=${seed}`);
    const prng = new Prng(seed);
    const config = { segmentBytes: prng.int(300, 1500), indexIntervalBytes: prng.int(0, 400), retentionBytes: -1, retentionMs: -1, flushPolicy: 'os' as const };
    let { log } = await openLog(dir, config);
    const model: Model = { batches: [], pending: null };
    const reopen = async (options: { clean: boolean } = { clean: true }): Promise<void> => {
      if (options.clean) await log.close();
      else await (log as unknown as { whenSyncIdle(): Promise<void> }).whenSyncIdle();
      ({ log } = await openLog(dir, config));
      // Opening trims every epoch at or past the log end: an epoch begun without data is gone.
      model.pending = null;
    };
    for (let step = 0; step < STEPS; step++) {
      const what = (action: string): string => `seed ${seed} step ${step} ${action}`;
      const action = prng.next();
      if (action < 0.28) {
        leaderAppend(log, model, prng, step, what('leader append'));
      } else if (action < 0.43) {
        followerAppend(log, model, prng, step, what('follower append'));
      } else if (action < 0.5) {
        const epoch = Math.max(0, modelLatestEpoch(model)) + prng.int(0, 3);
        log.beginLeaderEpoch(epoch);
        if (epoch > modelLatestEpoch(model)) model.pending = { epoch, startOffset: log.logEndOffset };
      } else if (action < 0.6) {
        const cut = prng.int(log.logStartOffset, log.logEndOffset + 2);
        log.truncateTo(cut);
        model.batches = model.batches.filter((batch) => batch.base + batch.count <= cut);
        if (model.pending !== null && model.pending.startOffset >= cut) model.pending = null;
      } else if (action < 0.65) {
        await log.flush();
        await log.close();
        ({ log } = await openLog(dir, { ...config, retentionBytes: prng.int(0, 3000) }));
        model.pending = null;
        log.applyRetention();
        model.batches = model.batches.filter((batch) => batch.base >= log.logStartOffset);
        await reopen();
      } else if (action < 0.72) {
        await reopen();
      } else if (action < 0.77) {
        await reopen({ clean: false });
      } else if (action < 0.8) {
        await log.close();
        fs.rmSync(path.join(dir, LEADER_EPOCH_CHECKPOINT_FILE), { force: true });
        await reopen({ clean: false });
      } else if (action < 0.83) {
        await log.close();
        damageCheckpoint(prng);
        await reopen({ clean: false });
      } else if (action < 0.86) {
        await log.close();
        loseTail(prng);
        await reopen({ clean: false });
        model.batches = model.batches.filter((batch) => batch.base + batch.count <= log.logEndOffset);
      } else {
        await checkQueries(log, model, prng, what('queries'));
      }
      if (process.env.RIFFLE_TRACE) console.log(step, action.toFixed(3), log.logStartOffset, log.logEndOffset, JSON.stringify(log.leaderEpochEntries()), JSON.stringify(expectedEntries(model)));
      const expectedEnd = model.batches.length === 0 ? log.logStartOffset : model.batches.at(-1)!.base + model.batches.at(-1)!.count;
      expect(log.logEndOffset, what('log end')).toBe(expectedEnd);
      expect(log.leaderEpochEntries(), what('entries')).toEqual(expectedEntries(model));
      expect(log.latestEpoch, what('latest epoch')).toBe(modelLatestEpoch(model));
    }
    await checkQueries(log, model, prng, `seed ${seed} final queries`);
    await log.close();
  });
});

function leaderAppend(log: PartitionLog, model: Model, prng: Prng, step: number, what: string): void {
  const latest = modelLatestEpoch(model);
  if (latest > 0 && prng.chance(0.1)) {
    const stale = prng.int(-1, latest);
    expect(() => log.append(encodeRecordBatch(recordsOf(1, step)), stale), what).toThrow(expect.objectContaining({ errorName: 'FENCED_LEADER_EPOCH' }));
    return;
  }
  const epoch = latest < 0 && prng.chance(0.3) ? -1 : Math.max(latest, 0) + (prng.chance(0.6) ? 0 : prng.int(1, 4));
  const batches = Array.from({ length: prng.int(1, 4) }, () => encodeRecordBatch(recordsOf(prng.int(1, 6), step)));
  const info = log.append(Buffer.concat(batches), epoch);
  let base = info.baseOffset;
  for (const batch of batches) {
    const count = readBatchHeader(batch).recordsCount;
    model.batches.push({ base, count, epoch });
    base += count;
  }
  expect(base - 1, what).toBe(info.lastOffset);
  // An append writes data for the begun epoch, or replaces it with a newer one.
  if (epoch >= 0) model.pending = null;
}

function followerAppend(log: PartitionLog, model: Model, prng: Prng, step: number, what: string): void {
  // Below an epoch begun without data now and then: the follower append replaces it.
  let epoch = model.pending !== null && prng.chance(0.5) ? modelLastBatchEpoch(model) : modelLatestEpoch(model);
  if (epoch < 0) epoch = prng.int(-1, 2);
  const stale = epoch > 0 && prng.chance(0.1);
  const buffers: Buffer[] = [];
  const appended: ModelBatch[] = [];
  let base = log.logEndOffset;
  const batchCount = prng.int(1, 5);
  for (let index = 0; index < batchCount; index++) {
    if (prng.chance(0.4)) epoch += prng.int(1, 3);
    const batchEpoch = stale && index === batchCount - 1 ? prng.int(-1, epoch) : epoch;
    const count = prng.int(1, 5);
    buffers.push(encodeRecordBatch(recordsOf(count, step), { baseOffset: base, partitionLeaderEpoch: batchEpoch }));
    appended.push({ base, count, epoch: batchEpoch });
    base += count;
  }
  const latestBefore = modelLastBatchEpoch(model);
  if (stale && appended.at(-1)!.epoch < Math.max(latestBefore, appended.at(-2)?.epoch ?? -1)) {
    expect(() => log.appendAsFollower(Buffer.concat(buffers)), what).toThrow(expect.objectContaining({ errorName: 'FENCED_LEADER_EPOCH' }));
    return;
  }
  log.appendAsFollower(Buffer.concat(buffers));
  model.batches.push(...appended);
  model.pending = null;
}

async function checkQueries(log: PartitionLog, model: Model, prng: Prng, what: string): Promise<void> {
  const entries = expectedEntries(model);
  const latest = modelLatestEpoch(model);
  for (let query = 0; query < 5; query++) {
    const epoch = prng.int(-1, latest + 3);
    expect(log.endOffsetForEpoch(epoch), `${what} epoch ${epoch}`).toEqual(naiveEndOffset(entries, epoch, log.logEndOffset));
  }
  const bound = prng.int(log.logStartOffset, log.logEndOffset + 2);
  const bytes = storedBytesBelow(log, Math.min(bound, log.logEndOffset));
  const sum = await log.checksumUpTo(bound);
  expect({ crc32c: sum.crc32c, bytes: sum.bytes }, `${what} checksum below ${bound}`).toEqual({ crc32c: crc32c(bytes), bytes: bytes.length });
  const covered = model.batches.filter((batch) => batch.base + batch.count <= bound).at(-1);
  expect(sum.offset, `${what} checksum offset below ${bound}`).toBe(covered === undefined ? log.logStartOffset : covered.base + covered.count);
}

/** Overwrites a few bytes of the checkpoint, or truncates it, or fills it with noise. */
function damageCheckpoint(prng: Prng): void {
  const file = path.join(dir, LEADER_EPOCH_CHECKPOINT_FILE);
  if (!fs.existsSync(file)) return;
  const bytes = fs.readFileSync(file);
  const choice = prng.int(0, 3);
  if (choice === 0) bytes[prng.int(0, bytes.length)] ^= 1 << prng.int(0, 8);
  const damaged = choice === 1 ? bytes.subarray(0, prng.int(0, bytes.length)) : choice === 2 ? Buffer.from('0\n2\n0 0\n1 10\n') : bytes;
  fs.writeFileSync(file, damaged);
}

/** Cuts the last segment file somewhere, as a crash losing unflushed data would. */
function loseTail(prng: Prng): void {
  const last = path.join(dir, segmentFiles(dir).at(-1)!);
  const sizeBytes = fs.statSync(last).size;
  if (sizeBytes > 0) fs.truncateSync(last, prng.int(0, sizeBytes));
}
