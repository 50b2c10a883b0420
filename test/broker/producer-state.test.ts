// Idempotent producer state of one partition, against a real partition log: retries within the
// five retained batches return their original offsets without a second copy, older repeats are
// DUPLICATE_SEQUENCE_NUMBER, gaps and bad epochs are refused, sequences wrap at int32 max, state
// rebuilt from the log equals the state built live (seeded random workloads), followers track
// it, and the number of producers stays bounded. Snapshots: a rebuild starts from the newest one
// its log agrees with and equals a rebuild from the whole log; one the log contradicts (past its
// end, rewritten under a newer leader epoch, damaged) is deleted, never believed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProducerStateManager, PRODUCER_BATCHES_RETAINED, PRODUCER_EXPIRATION_CHECK_INTERVAL_MS, PRODUCER_ID_EXPIRATION_MS, SEQUENCE_MODULUS } from '../../broker/producer-state.js';
import type { AppendInfo, PartitionLog } from '../../broker/log/index.js';
import { PRODUCER_SNAPSHOTS_KEPT, ProducerSnapshotFiles, decodeProducerSnapshot, encodeProducerSnapshot, snapshotFileName } from '../../broker/producer-snapshots.js';
import { RiffleError } from '../../src/rpc/errors.js';
import { ManualClock } from '../../src/util/clock.js';
import { Prng } from '../../src/util/prng.js';
import { decodeAllRecords, encodeRecordBatch } from '../../src/util/record-batch.js';
import { makeTempDir, openLog, removeDir } from './log/helpers.js';

let dir: string;
let log: PartitionLog;
let clock: ManualClock;
let state: ProducerStateManager;

beforeEach(async () => {
  dir = makeTempDir();
  clock = new ManualClock();
  log = (await openLog(dir, {}, { clock })).log;
  state = new ProducerStateManager({ clock });
});

afterEach(async () => {
  await log.close();
  removeDir(dir);
});

let labels = 0;

/** A batch of `count` records from producer `id` at `epoch`, starting at sequence `sequence`. */
function batch(id: number, epoch: number, sequence: number, count = 2): Buffer {
  const label = `b${labels++}`;
  const records = Array.from({ length: count }, (_, index) => ({ key: null, value: Buffer.from(`${label}-${index}`), timestamp: clock.nowMs() }));
  return encodeRecordBatch(records, id < 0 ? {} : { producerId: id, producerEpoch: epoch, baseSequence: sequence });
}

/** What Partition.append does: check, write unless a duplicate, record. */
function produce(bytes: Buffer, target = state, targetLog = log): AppendInfo {
  const plan = target.check(bytes, targetLog);
  if (plan.duplicate) return plan.duplicate;
  const info = targetLog.append(bytes, 0);
  target.record(plan, info);
  return info;
}

function produceError(bytes: Buffer, target = state, targetLog = log): string {
  const endBefore = targetLog.logEndOffset;
  try {
    produce(bytes, target, targetLog);
  } catch (error) {
    expect(error).toBeInstanceOf(RiffleError);
    expect(targetLog.logEndOffset).toBe(endBefore);
    return (error as RiffleError).errorName;
  }
  throw new Error('the produce succeeded');
}

/** The producers' entries, without activity times (a rebuild from the log takes them from batch timestamps). */
function withoutTimes(manager: ProducerStateManager): object[] {
  return manager.entries().map(({ lastActivityMs: _, ...entry }) => entry);
}

/** The state a synchronous load of the whole log builds, without snapshots. */
function fromWholeLog(): ProducerStateManager {
  const rebuilt = new ProducerStateManager({ clock });
  rebuilt.loadFromLog(log);
  return rebuilt;
}

function logValues(): string[] {
  return [...decodeAllRecords(log.read(log.logStartOffset, 1 << 24).records)].map((record) => record.value!.toString());
}

describe('sequences of one producer', () => {
  it('accepts a producer starting at 0 and continuing, and records its batches', () => {
    expect(produce(batch(7, 0, 0, 3))).toMatchObject({ baseOffset: 0, lastOffset: 2 });
    expect(produce(batch(7, 0, 3, 2))).toMatchObject({ baseOffset: 3, lastOffset: 4 });
    expect(state.entry(7)).toMatchObject({
      epoch: 0,
      batches: [
        { firstSequence: 0, lastSequence: 2, firstOffset: 0, lastOffset: 2 },
        { firstSequence: 3, lastSequence: 4, firstOffset: 3, lastOffset: 4 },
      ],
    });
  });

  it('answers a retry of any of the last five batches with its original offsets and writes nothing', () => {
    const sent: Buffer[] = [];
    const offsets: number[] = [];
    for (let index = 0; index < 7; index++) {
      sent.push(batch(7, 0, index * 2));
      offsets.push(produce(sent[index]!).baseOffset);
      produce(batch(-1, -1, -1, 1)); // other writers interleave
    }
    const end = log.logEndOffset;
    for (let index = 7 - PRODUCER_BATCHES_RETAINED; index < 7; index++) {
      expect(produce(sent[index]!)).toMatchObject({ baseOffset: offsets[index], lastOffset: offsets[index]! + 1 });
    }
    expect(log.logEndOffset).toBe(end);
    expect(state.stats.duplicates).toBe(PRODUCER_BATCHES_RETAINED);
  });

  it('answers DUPLICATE_SEQUENCE_NUMBER for a repeat older than the retained batches', () => {
    const sent = Array.from({ length: 6 }, (_, index) => batch(7, 0, index * 2));
    for (const bytes of sent) produce(bytes);
    expect(produceError(sent[0]!)).toBe('DUPLICATE_SEQUENCE_NUMBER');
  });

  it('refuses a gap and a batch overlapping the last one with OUT_OF_ORDER_SEQUENCE_NUMBER', () => {
    produce(batch(7, 0, 0, 4));
    expect(produceError(batch(7, 0, 5))).toBe('OUT_OF_ORDER_SEQUENCE_NUMBER');
    expect(produceError(batch(7, 0, 3, 2))).toBe('OUT_OF_ORDER_SEQUENCE_NUMBER');
    expect(produce(batch(7, 0, 4)).baseOffset).toBe(4);
  });

  it('wraps the sequence from int32 max to 0', () => {
    // A producer near the end of the sequence space, written straight into the log.
    const nearMax = SEQUENCE_MODULUS - 3;
    log.append(batch(7, 0, nearMax, 2), 0);
    const wrapping = batch(7, 0, nearMax + 2, 3);
    expect(produce(wrapping).baseOffset).toBe(2);
    expect(state.entry(7)!.batches.at(-1)).toMatchObject({ firstSequence: SEQUENCE_MODULUS - 1, lastSequence: 1 });
    expect(produceError(batch(7, 0, 0))).toBe('DUPLICATE_SEQUENCE_NUMBER');
    expect(produce(wrapping).baseOffset).toBe(2);
    expect(produce(batch(7, 0, 2)).baseOffset).toBe(5);
  });
});

describe('epochs', () => {
  it('fences an older epoch and requires a new epoch to start at sequence 0', () => {
    produce(batch(7, 0, 0));
    expect(produceError(batch(7, 1, 2))).toBe('OUT_OF_ORDER_SEQUENCE_NUMBER');
    expect(produce(batch(7, 1, 0)).baseOffset).toBe(2);
    expect(produceError(batch(7, 0, 2))).toBe('INVALID_PRODUCER_EPOCH');
    // A retry of the old epoch's batch is fenced too, not answered as a duplicate.
    expect(produceError(batch(7, 0, 0))).toBe('INVALID_PRODUCER_EPOCH');
    expect(state.entry(7)).toMatchObject({ epoch: 1, batches: [{ firstSequence: 0, firstOffset: 2 }] });
  });

  it('lets an unknown producer start at sequence 0 in any epoch, and calls another start a gap', () => {
    expect(produceError(batch(8, 3, 4))).toBe('OUT_OF_ORDER_SEQUENCE_NUMBER');
    expect(produce(batch(8, 3, 0)).baseOffset).toBe(0);
  });

  it('answers UNKNOWN_PRODUCER_ID when the log start has moved past data the state could have held', () => {
    // Only records from offset 10 on remain, as after retention.
    const moved = new ProducerStateManager({ clock });
    const view = { logStartOffset: 10, logEndOffset: 10, read: () => ({ records: Buffer.alloc(0), nextOffset: 10 }), offsetForTimestamp: () => null };
    moved.loadFromLog(view);
    expect(() => moved.check(batch(7, 0, 2), view)).toThrow(expect.objectContaining({ errorName: 'UNKNOWN_PRODUCER_ID' }));
    expect(moved.check(batch(7, 0, 0), view).pending).toHaveLength(1);
  });

  it('refuses transactional batches and bad producer fields as INVALID_RECORD', () => {
    expect(produceError(batch(7, -1, 0))).toBe('INVALID_RECORD');
    const transactional = batch(7, 0, 0);
    transactional.writeInt16BE(transactional.readInt16BE(21) | 0x10, 21);
    expect(produceError(transactional)).toBe('INVALID_RECORD');
  });
});

describe('requests with several batches', () => {
  it('checks every batch in order and answers a retry of the whole request with its first offset', () => {
    const request = Buffer.concat([batch(7, 0, 0, 2), batch(-1, -1, -1, 1), batch(9, 0, 0, 1), batch(7, 0, 2, 3)]);
    const copy = Buffer.from(request);
    expect(produce(request)).toMatchObject({ baseOffset: 0, lastOffset: 6 });
    expect(state.entry(7)!.batches).toEqual([
      { firstSequence: 0, lastSequence: 1, firstOffset: 0, lastOffset: 1 },
      { firstSequence: 2, lastSequence: 4, firstOffset: 4, lastOffset: 6 },
    ]);
    // A retry holding an untracked batch cannot be recognised as a whole: it mixes old and new.
    expect(produceError(copy)).toBe('INVALID_REQUEST');
    const retried = Buffer.concat([batch(9, 0, 1, 1), batch(9, 0, 2, 1)]);
    const retriedCopy = Buffer.from(retried);
    expect(produce(retried)).toMatchObject({ baseOffset: 7, lastOffset: 8 });
    expect(produce(retriedCopy)).toMatchObject({ baseOffset: 7, lastOffset: 8 });
  });

  it('refuses the whole request when a later batch leaves a gap, writing none of it', () => {
    expect(produceError(Buffer.concat([batch(7, 0, 0, 2), batch(7, 0, 5, 1)]))).toBe('OUT_OF_ORDER_SEQUENCE_NUMBER');
    expect(produce(batch(7, 0, 0)).baseOffset).toBe(0);
  });

  it('refuses trailing bytes that are not a whole batch, even behind a retry', () => {
    const first = batch(7, 0, 0);
    produce(Buffer.from(first));
    expect(produceError(Buffer.concat([first, Buffer.alloc(20, 1)]))).toBe('CORRUPT_MESSAGE');
  });

  it('refuses a request mixing a retried batch with a new one', () => {
    const first = batch(7, 0, 0);
    produce(Buffer.from(first));
    expect(produceError(Buffer.concat([first, batch(7, 0, 2)]))).toBe('INVALID_REQUEST');
  });
});

describe('rebuilding and following', () => {
  it('rebuilds from the log exactly the state built live (seeded random workloads)', async () => {
    const seed = Number(process.env.RIFFLE_SEED ?? Date.now() % 1_000_000);
    console.log(`producer-state rebuild seed ${seed} (RIFFLE_SEED=${seed} replays it)`);
    const random = new Prng(seed);
    const producers = new Map<number, { epoch: number; next: number; sent: Buffer[] }>();
    for (let step = 0; step < 400; step++) {
      const id = random.int(0, 6);
      const producer = producers.get(id) ?? { epoch: 0, next: 0, sent: [] };
      producers.set(id, producer);
      const roll = random.next();
      if (roll < 0.1) {
        produce(batch(-1, -1, -1, 1 + random.int(0, 2)));
      } else if (roll < 0.2 && producer.sent.length > 0) {
        produce(Buffer.from(producer.sent[producer.sent.length - 1 - random.int(0, Math.min(producer.sent.length, PRODUCER_BATCHES_RETAINED))]!));
      } else if (roll < 0.25) {
        producer.epoch++;
        producer.next = 0;
        producer.sent = [];
      } else {
        const count = 1 + random.int(0, 3);
        const bytes = batch(id, producer.epoch, producer.next, count);
        producer.sent.push(Buffer.from(bytes));
        produce(bytes);
        producer.next += count;
      }
    }
    const rebuilt = new ProducerStateManager({ clock });
    rebuilt.loadFromLog(log);
    expect(withoutTimes(rebuilt)).toEqual(withoutTimes(state));
    expect(rebuilt.reflectedEndOffset).toBe(log.logEndOffset);
  });

  it('rebuilds on a check when the log changed behind its back, e.g. after a truncation', () => {
    produce(batch(7, 0, 0));
    produce(batch(7, 0, 2));
    const rebuildsBefore = state.stats.rebuilds;
    log.truncateTo(2);
    expect(state.reflectedEndOffset).toBe(4);
    // The batch at sequence 2 is gone, so it is new again, not a duplicate.
    expect(produce(batch(7, 0, 2)).baseOffset).toBe(2);
    expect(state.stats.rebuilds).toBe(rebuildsBefore + 1);
    expect(logValues()).toHaveLength(4);
  });

  it('follows a leader as a follower and takes over without rebuilding', async () => {
    const followerDir = makeTempDir();
    const follower = (await openLog(followerDir, {}, { clock })).log;
    try {
      const followerState = new ProducerStateManager({ clock });
      followerState.loadFromLog(follower);
      for (let index = 0; index < 4; index++) produce(batch(7, 0, index * 2));
      const replicated = log.read(0, 1 << 20).records;
      follower.appendAsFollower(Buffer.from(replicated));
      followerState.observeReplicated(replicated);
      expect(followerState.entries()).toEqual(state.entries().map((entry) => ({ ...entry, lastActivityMs: expect.any(Number) })));
      const rebuildsBefore = followerState.stats.rebuilds;
      // The new leader recognises a retry of the old leader's last batch.
      expect(produce(batch(7, 0, 6), followerState, follower)).toMatchObject({ baseOffset: 6, lastOffset: 7 });
      expect(followerState.stats.rebuilds).toBe(rebuildsBefore);
      expect(follower.logEndOffset).toBe(8);
    } finally {
      await follower.close();
      removeDir(followerDir);
    }
  });

  it('drops follower state that stops matching the log and rebuilds it when needed', () => {
    state.loadFromLog(log);
    const written = batch(7, 0, 0);
    log.append(written, 0);
    state.observeReplicated(written);
    expect(state.reflectedEndOffset).toBe(2);
    const stale = batch(7, 0, 2);
    log.truncateTo(0);
    log.append(stale, 0);
    state.observeReplicated(stale); // offset 0 again: a truncation went unobserved
    expect(state.reflectedEndOffset).toBe(-1);
    // Rebuilt from the log as it is now: sequence 4 follows the batch that remains.
    expect(produce(batch(7, 0, 4)).baseOffset).toBe(2);
    expect(state.entry(7)!.batches).toEqual([
      { firstSequence: 2, lastSequence: 3, firstOffset: 0, lastOffset: 1 },
      { firstSequence: 4, lastSequence: 5, firstOffset: 2, lastOffset: 3 },
    ]);
  });
});

describe('bounds', () => {
  it('keeps at most producersMax producers, evicting the one idle longest', () => {
    const bounded = new ProducerStateManager({ clock, producersMax: 3 });
    for (const id of [1, 2, 3]) produce(batch(id, 0, 0), bounded);
    produce(batch(1, 0, 2), bounded);
    produce(batch(4, 0, 0), bounded);
    expect(bounded.producerCount).toBe(3);
    expect(bounded.entries().map((entry) => entry.producerId)).toEqual([1, 3, 4]);
    expect(bounded.stats.evictions).toBe(1);
    expect(produceError(batch(2, 0, 2), bounded)).toBe('UNKNOWN_PRODUCER_ID');
    expect(produce(batch(2, 0, 0), bounded).baseOffset).toBeGreaterThan(0);
  });

  it('forgets producers idle longer than the expiration time', () => {
    produce(batch(1, 0, 0));
    clock.advance(PRODUCER_ID_EXPIRATION_MS - PRODUCER_EXPIRATION_CHECK_INTERVAL_MS);
    produce(batch(2, 0, 0));
    clock.advance(2 * PRODUCER_EXPIRATION_CHECK_INTERVAL_MS);
    produce(batch(2, 0, 2));
    expect(state.entries().map((entry) => entry.producerId)).toEqual([2]);
    expect(state.stats.expirations).toBe(1);
    expect(produceError(batch(1, 0, 2))).toBe('UNKNOWN_PRODUCER_ID');
  });
});

describe('producer-state snapshots', () => {

  it('encodes and decodes a snapshot exactly, and refuses damaged or cut bytes', () => {
    const snapshot = {
      endOffset: 2 ** 40 + 3, lastEpoch: 12, mayHaveForgotten: true,
      entries: [
        { producerId: Number.MAX_SAFE_INTEGER, epoch: 32_767, lastActivityMs: 1_700_000_000_123, batches: [{ firstSequence: SEQUENCE_MODULUS - 2, lastSequence: 1, firstOffset: 2 ** 40, lastOffset: 2 ** 40 + 2 }] },
        { producerId: 5, epoch: 0, lastActivityMs: 1, batches: Array.from({ length: PRODUCER_BATCHES_RETAINED }, (_, index) => ({ firstSequence: index * 2, lastSequence: index * 2 + 1, firstOffset: index * 2, lastOffset: index * 2 + 1 })) },
      ],
    };
    const bytes = encodeProducerSnapshot(snapshot);
    expect(decodeProducerSnapshot(bytes)).toEqual(snapshot);
    for (const position of [0, 7, 30, bytes.length - 1]) {
      const damaged = Buffer.from(bytes);
      damaged[position]! ^= 0x01;
      expect(() => decodeProducerSnapshot(damaged), `flipped byte ${position}`).toThrow();
    }
    expect(() => decodeProducerSnapshot(bytes.subarray(0, bytes.length - 9))).toThrow();
    expect(() => decodeProducerSnapshot(Buffer.alloc(0))).toThrow();
  });

  it('snapshots every interval, keeps the newest few, and a rebuild from the newest equals one from the whole log', () => {
    const seed = Number(process.env.RIFFLE_SEED ?? Date.now() % 0x7fffffff);
    console.log(`producer snapshot walk: RIFFLE_SEED=${seed}`);
    const random = new Prng(seed);
    const files = new ProducerSnapshotFiles(dir);
    const live = new ProducerStateManager({ clock, snapshots: files, snapshotIntervalBytes: 1_000 });
    live.loadFromLog(log);
    const next = new Map<number, number>();
    const last = new Map<number, { bytes: Buffer; info: AppendInfo }>();
    for (let step = 0; step < 120; step++) {
      const id = random.int(1, 6);
      const count = random.int(1, 4);
      const bytes = batch(id, 0, next.get(id) ?? 0, count);
      last.set(id, { bytes: Buffer.from(bytes), info: produce(bytes, live) });
      live.noteAppended(bytes.length, log);
      next.set(id, (next.get(id) ?? 0) + count);
    }
    expect(live.stats.snapshotsWritten, `seed ${seed}`).toBeGreaterThan(PRODUCER_SNAPSHOTS_KEPT);
    const offsets = files.offsets();
    expect(offsets).toHaveLength(PRODUCER_SNAPSHOTS_KEPT);
    expect(offsets.at(-1)!).toBeLessThanOrEqual(log.logEndOffset);

    const restarted = new ProducerStateManager({ clock, snapshots: files });
    restarted.loadFromLog(log);
    expect(restarted.stats.snapshotLoads).toBe(1);
    expect(withoutTimes(restarted), `seed ${seed}`).toEqual(withoutTimes(fromWholeLog()));
    expect(restarted.reflectedEndOffset).toBe(log.logEndOffset);
    // A retry of each producer's last batch is still answered with its offsets, and only the next sequence is accepted.
    const end = log.logEndOffset;
    for (const { bytes, info } of last.values()) expect(produce(bytes, restarted)).toMatchObject({ baseOffset: info.baseOffset, lastOffset: info.lastOffset });
    expect(log.logEndOffset).toBe(end);
    const [id, sequence] = [...next][0]!;
    expect(produceError(batch(id, 0, sequence + 5), restarted)).toBe('OUT_OF_ORDER_SEQUENCE_NUMBER');
    expect(produce(batch(id, 0, sequence), restarted).baseOffset).toBe(end);
  });

  it('never believes a snapshot its log contradicts: past the end, rewritten by a newer leader, or damaged', async () => {
    const files = new ProducerSnapshotFiles(dir);
    const live = new ProducerStateManager({ clock, snapshots: files });
    live.loadFromLog(log);
    for (let index = 0; index < 3; index++) produce(batch(7, 0, index * 2), live);
    live.takeSnapshot(log);
    const kept = log.logEndOffset;
    for (let index = 3; index < 6; index++) produce(batch(7, 0, index * 2), live);
    live.takeSnapshot(log);
    const rewritten = log.logEndOffset;
    expect(files.offsets()).toEqual([kept, rewritten]);

    // A newer leader's log replaced the tail (as a follower's truncation to its divergence does),
    // longer than before: the snapshot at `rewritten` lies inside it but under another epoch.
    log.truncateTo(kept);
    for (let index = 0; index < 4; index++) log.append(batch(7, 1, index * 2), 1);
    expect(log.logEndOffset).toBeGreaterThan(rewritten);
    const afterRewrite = new ProducerStateManager({ clock, snapshots: files });
    afterRewrite.loadFromLog(log);
    expect(afterRewrite.stats.snapshotLoads).toBe(1);
    expect(files.offsets()).toEqual([kept]);
    expect(withoutTimes(afterRewrite)).toEqual(withoutTimes(fromWholeLog()));
    expect(afterRewrite.entry(7)!.epoch).toBe(1);

    // Past the log end (a crash cut the unflushed tail below it): deleted, the older one serves.
    const ahead = { endOffset: log.logEndOffset + 10, lastEpoch: 1, mayHaveForgotten: false, entries: [] };
    fs.writeFileSync(path.join(dir, snapshotFileName(ahead.endOffset)), encodeProducerSnapshot(ahead));
    const afterCrash = new ProducerStateManager({ clock, snapshots: files });
    afterCrash.loadFromLog(log);
    expect(afterCrash.stats.snapshotLoads).toBe(1);
    expect(files.offsets()).toEqual([kept]);

    // Damaged: deleted, and the state comes from the log.
    const file = path.join(dir, snapshotFileName(kept));
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 3]! ^= 0x40;
    fs.writeFileSync(file, bytes);
    const afterDamage = new ProducerStateManager({ clock, snapshots: files });
    afterDamage.loadFromLog(log);
    expect(afterDamage.stats.snapshotLoads).toBe(0);
    expect(files.offsets()).toEqual([]);
    expect(withoutTimes(afterDamage)).toEqual(withoutTimes(fromWholeLog()));
  });

  it('forgets producers of a snapshot idle past the expiration, and then says so', () => {
    const files = new ProducerSnapshotFiles(dir);
    const live = new ProducerStateManager({ clock, snapshots: files });
    live.loadFromLog(log);
    produce(batch(7, 0, 0), live);
    produce(batch(8, 0, 0), live);
    live.takeSnapshot(log);
    clock.advance(PRODUCER_ID_EXPIRATION_MS + 1);
    const later = new ProducerStateManager({ clock, snapshots: files });
    later.loadFromLog(log);
    expect(later.stats.snapshotLoads).toBe(1);
    expect(later.producerCount).toBe(0);
    expect(produceError(batch(7, 0, 2), later)).toBe('UNKNOWN_PRODUCER_ID');
  });
});

describe('building producer state off the event loop', () => {
  const writeProducers = (batches: number): void => {
    for (let index = 0; index < batches; index++) produce(batch(1 + (index % 4), 0, Math.floor(index / 4) * 2));
  };

  it('builds what a synchronous load builds, including appends made while it runs, reading the files on the thread pool', async () => {
    writeProducers(200);
    const built = new ProducerStateManager({ clock });
    const building = built.build(log);
    expect(built.reflects(log)).toBe(false);
    // Appends while the build runs are part of what it reflects once done.
    const late = batch(9, 0, 0);
    log.append(late, 0);
    await building;
    expect(built.reflects(log)).toBe(true);
    expect(withoutTimes(built)).toEqual(withoutTimes(fromWholeLog()));
    expect(built.entry(9)).toBeDefined();
    expect(built.stats.rebuilds).toBe(1);
    // Callers join the build running; once built, there is nothing to do.
    await built.build(log);
    expect(built.stats.rebuilds).toBe(1);
  });

  it('starts again when the log is cut under it, and reflects the cut log', async () => {
    writeProducers(200);
    const built = new ProducerStateManager({ clock });
    const building = built.build(log);
    // Should the test fail before it awaits the build, the build's read of the closed log is no unhandled rejection.
    building.catch(() => undefined);
    // Cut once the build has applied some batches (reads stop at 4 KiB segment ends, so it takes
    // several). Checked after every turn of the event loop, for up to 10 s: with the whole suite
    // running, the thread pool's first reads took longer than 1,000 turns once.
    const deadline = Date.now() + 10_000;
    while (built.producerCount === 0 && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
    expect(built.producerCount).toBeGreaterThan(0);
    expect(built.reflects(log)).toBe(false);
    log.truncateTo(100);
    produce(batch(9, 0, 0));
    await building;
    expect(built.reflects(log)).toBe(true);
    expect(withoutTimes(built)).toEqual(withoutTimes(fromWholeLog()));
    expect(Math.max(...built.entries().flatMap((entry) => entry.batches.map((kept) => kept.lastOffset)))).toBe(log.logEndOffset - 1);
  });

  it('gives way to a synchronous load made while it runs', async () => {
    writeProducers(200);
    const built = new ProducerStateManager({ clock });
    const building = built.build(log);
    built.loadFromLog(log);
    const loaded = withoutTimes(built);
    await building;
    expect(withoutTimes(built)).toEqual(loaded);
    expect(built.reflects(log)).toBe(true);
    expect(built.stats.rebuilds).toBe(1);
  });
});
