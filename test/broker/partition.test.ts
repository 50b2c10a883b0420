// The leader side of a partition replica: when acks are answered, and that a write caught by a
// leadership change (during its flush or while it waits for the ISR) is answered at once with an
// unknown outcome instead of hanging until the request times out.
import * as fs from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { snapshotFileName } from '../../broker/producer-snapshots.js';
import { Partition, SEQUENCE_GAP_HOLD_MS, type PartitionRole } from '../../broker/partition.js';
import { decodeAllRecords, encodeRecordBatch } from '../../src/util/record-batch.js';
import { RiffleError } from '../../src/rpc/errors.js';
import { batchOf, makeTempDir, metricValue, openLog, removeDir, waitFor } from './log/helpers.js';

const LEADER: PartitionRole = { leaderId: 1, leaderEpoch: 3, partitionEpoch: 1, replicas: [1, 2, 3], isr: [1, 2, 3], minInsyncReplicas: 2 };
const MOVED: PartitionRole = { ...LEADER, leaderId: 2, leaderEpoch: 4, partitionEpoch: 2, isr: [2, 3] };

/** Settles within `ms` or reports that it hung. */
function settledWithin<T>(promise: Promise<T>, ms: number): Promise<{ value?: T; error?: unknown; hung?: true }> {
  return Promise.race([
    promise.then((value) => ({ value }), (error: unknown) => ({ error })),
    new Promise<{ hung: true }>((resolve) => setTimeout(() => resolve({ hung: true }), ms)),
  ]);
}

describe('Partition acks', () => {
  let dir: string;
  beforeEach(() => {
    dir = makeTempDir();
  });
  afterEach(() => removeDir(dir));

  it('answers acks=all once every ISR member has the batch durably', async () => {
    const { log } = await openLog(dir, { flushPolicy: 'ack' });
    const partition = new Partition('events', 'id', 0, log, 1, LEADER);
    const write = partition.append(batchOf(3), -1);
    // Followers report log ends in their fetches (never past the leader's, which the write
    // reaches after its producer check); the high watermark is the ISR's minimum.
    await waitFor(() => partition.logEndOffset === 3, 'the write to reach the log');
    partition.recordFollowerFetch(2, 3, 1);
    expect((await settledWithin(write, 200)).hung).toBe(true);
    partition.recordFollowerFetch(3, 3, 1);
    const outcome = await settledWithin(write, 2_000);
    expect(outcome.value?.baseOffset).toBe(0);
    expect(partition.highWatermark).toBe(3);
    await partition.close();
  });

  it('fails acks=all at once with NOT_ENOUGH_REPLICAS when the ISR is below min.insync.replicas', async () => {
    const { log } = await openLog(dir, { flushPolicy: 'ack' });
    const partition = new Partition('events', 'id', 0, log, 1, { ...LEADER, isr: [1] });
    await expect(partition.append(batchOf(1), -1)).rejects.toMatchObject({ errorName: 'NOT_ENOUGH_REPLICAS' });
    expect(partition.logEndOffset).toBe(0);
    await partition.close();
  });

  it('keeps a new leader high watermark unsettled until the ISR has what earlier epochs wrote (KIP-207)', async () => {
    const { log } = await openLog(dir, { flushPolicy: 'ack' });
    const follower = new Partition('events', 'id', 0, log, 1, { ...LEADER, leaderId: 2 });
    follower.appendAsFollower(batchOf(3), 1);
    await log.waitDurable(3);
    follower.updateRole({ ...LEADER, leaderEpoch: 5, partitionEpoch: 2 });
    expect(follower.highWatermark).toBe(1);
    expect(follower.highWatermarkSettled).toBe(false);
    follower.recordFollowerFetch(2, 3, 1);
    follower.recordFollowerFetch(3, 3, 1);
    expect(follower.highWatermark).toBe(3);
    expect(follower.highWatermarkSettled).toBe(true);
    await follower.close();
  });

  it('tells a follower append its flush once, with the durable end already moved, in one sync round', async () => {
    // Syncs pass while the log opens, then are held until released.
    const held: (() => void)[] = [];
    let holding = false;
    const syncFile = (): Promise<void> => (holding ? new Promise((resolve) => held.push(resolve)) : Promise.resolve());
    const { log, registry } = await openLog(dir, { flushPolicy: 'ack' }, { syncFile });
    const follower = new Partition('events', 'id', 0, log, 1, { ...LEADER, leaderId: 2 });
    const flushesBefore = await metricValue(registry, 'riffle_log_flushes_total');
    holding = true;
    const durableEnds: number[] = [];
    follower.appendAsFollower(batchOf(3), 0, () => durableEnds.push(follower.replicationDurableOffset));
    for (let turn = 0; turn < 20 && held.length === 0; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(held.length).toBeGreaterThan(0);
    expect(durableEnds).toEqual([]);
    holding = false;
    for (const resolve of held.splice(0)) resolve();
    for (let turn = 0; turn < 20 && durableEnds.length === 0; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(durableEnds).toEqual([3]);
    expect(await metricValue(registry, 'riffle_log_flushes_total') - flushesBefore).toBe(1);
    await follower.close();
  });

  it('answers a write whose leadership moved while it waited for the ISR', async () => {
    const { log } = await openLog(dir, { flushPolicy: 'ack' });
    const partition = new Partition('events', 'id', 0, log, 1, LEADER);
    const write = partition.append(batchOf(2), -1);
    partition.recordFollowerFetch(2, 0, 1);
    partition.updateRole(MOVED);
    const outcome = await settledWithin(write, 2_000);
    expect(outcome.hung).toBeUndefined();
    expect(outcome.error).toBeInstanceOf(RiffleError);
    expect((outcome.error as RiffleError).errorName).toBe('NOT_LEADER_OR_FOLLOWER');
    await partition.close();
  });

  it('answers a write whose leadership moved while its flush was still running', async () => {
    // The flush is held until the role has changed: the write must not then wait for a high
    // watermark that this replica, no longer leader, will never move.
    const held: (() => void)[] = [];
    let holding = false;
    let syncStarted: () => void = () => undefined;
    const syncFile = async (): Promise<void> => {
      if (!holding) return;
      syncStarted();
      await new Promise<void>((resolve) => held.push(resolve));
    };
    const release = (): void => {
      holding = false;
      for (const resolve of held.splice(0)) resolve();
    };
    const nextSync = (): Promise<void> => {
      holding = true;
      return new Promise<void>((resolve) => (syncStarted = resolve));
    };
    const { log } = await openLog(dir, { flushPolicy: 'ack' }, { syncFile });
    const partition = new Partition('events', 'id', 0, log, 1, LEADER);
    for (const acks of [1, -1]) {
      const started = nextSync();
      const write = partition.append(batchOf(2, { label: `acks${acks}` }), acks);
      await started;
      partition.updateRole(acks === 1 ? MOVED : { ...MOVED, leaderId: 1, leaderEpoch: 6, partitionEpoch: 4 });
      release();
      const outcome = await settledWithin(write, 2_000);
      expect(outcome.hung, `acks=${acks}`).toBeUndefined();
      expect((outcome.error as RiffleError).errorName, `acks=${acks}`).toBe('NOT_LEADER_OR_FOLLOWER');
      if (acks === 1) partition.updateRole({ ...MOVED, leaderId: 1, leaderEpoch: 5, partitionEpoch: 3 });
    }
    await partition.close();
  });
});

describe('Partition: a batch ahead of its producer sequence (a pipelined call overtaken)', () => {
  let dir: string;
  beforeEach(() => {
    dir = makeTempDir();
  });
  afterEach(() => removeDir(dir));

  const idempotent = (baseSequence: number, label: string): Buffer =>
    encodeRecordBatch([0, 1].map((index) => ({ key: null, value: Buffer.from(`${label}-${index}`), timestamp: 1_700_000_000_000 + index })), {
      producerId: 7, producerEpoch: 0, baseSequence,
    });

  it('is held until the missing batch arrives, then written after it', async () => {
    const { log } = await openLog(dir, { flushPolicy: 'ack' });
    const partition = new Partition('events', 'id', 0, log, 1, { ...LEADER, isr: [1], minInsyncReplicas: 1 });
    await partition.append(idempotent(0, 'a'), 1);
    // Sequence 4 arrives before sequence 2: held, not refused.
    const overtaking = partition.append(idempotent(4, 'c'), 1);
    expect((await settledWithin(overtaking, 50)).hung).toBe(true);
    const overtaken = await partition.append(idempotent(2, 'b'), 1);
    expect(overtaken.baseOffset).toBe(2);
    expect((await settledWithin(overtaking, 2_000)).value?.baseOffset).toBe(4);
    expect([...decodeAllRecords(log.read(0, 1 << 20).records)].map((record) => record.value!.toString())).toEqual(['a-0', 'a-1', 'b-0', 'b-1', 'c-0', 'c-1']);
    expect(partition.producerState.stats).toMatchObject({ gapHoldsWritten: 1, gapHoldsRefused: 0 });
    await partition.close();
  });

  it('is refused with OUT_OF_ORDER_SEQUENCE_NUMBER when the missing batch does not come in time', async () => {
    const { log } = await openLog(dir, { flushPolicy: 'ack' });
    const partition = new Partition('events', 'id', 0, log, 1, { ...LEADER, isr: [1], minInsyncReplicas: 1 });
    await partition.append(idempotent(0, 'a'), 1);
    const startedMs = Date.now();
    const outcome = await settledWithin(partition.append(idempotent(4, 'c'), 1), SEQUENCE_GAP_HOLD_MS + 2_000);
    expect((outcome.error as RiffleError).errorName).toBe('OUT_OF_ORDER_SEQUENCE_NUMBER');
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(SEQUENCE_GAP_HOLD_MS - 5);
    expect(partition.logEndOffset).toBe(2);
    expect(partition.producerState.stats).toMatchObject({ gapHoldsWritten: 0, gapHoldsRefused: 1 });
    await partition.close();
  });

  it('is answered at once with an unknown outcome when leadership moves while it is held', async () => {
    const { log } = await openLog(dir, { flushPolicy: 'ack' });
    const partition = new Partition('events', 'id', 0, log, 1, { ...LEADER, isr: [1], minInsyncReplicas: 1 });
    await partition.append(idempotent(0, 'a'), 1);
    const held = partition.append(idempotent(4, 'c'), 1);
    partition.updateRole(MOVED);
    const outcome = await settledWithin(held, SEQUENCE_GAP_HOLD_MS / 2);
    expect((outcome.error as RiffleError).errorName).toBe('NOT_LEADER_OR_FOLLOWER');
    await partition.close();
  });

  it('snapshots its producers at a clean close; reopened, it starts from the snapshot and still knows a retry', async () => {
    const { log } = await openLog(dir, { flushPolicy: 'ack' });
    const partition = new Partition('events', 'id', 0, log, 1, { ...LEADER, isr: [1], minInsyncReplicas: 1 });
    const batches = [0, 2, 4, 6].map((sequence) => idempotent(sequence, `s${sequence}`));
    for (const bytes of batches) await partition.append(Buffer.from(bytes), 1);
    await partition.close();
    expect(fs.readdirSync(dir).filter((name) => name.endsWith('.snapshot'))).toEqual([snapshotFileName(8)]);
    const { log: reopened } = await openLog(dir, { flushPolicy: 'ack' });
    const again = new Partition('events', 'id', 0, reopened, 1, { ...LEADER, isr: [1], minInsyncReplicas: 1 });
    // The records carry 2023 timestamps, outside the 24 h window a rebuild from the log would read:
    // only the snapshot knows the producer. Its retry gets the original offsets, nothing is written.
    expect(await again.append(Buffer.from(batches[3]!), 1)).toMatchObject({ baseOffset: 6, lastOffset: 7 });
    expect(again.logEndOffset).toBe(8);
    expect(again.producerState.stats).toMatchObject({ rebuilds: 1, snapshotLoads: 1, duplicates: 1 });
    expect((await again.append(idempotent(8, 's8'), 1)).baseOffset).toBe(8);
    await again.close();
  });

  it('a replica opened with data builds its producer state at its first follower append, so a take-over finds it ready', async () => {
    const leaderDir = makeTempDir();
    try {
      const { log } = await openLog(dir, { flushPolicy: 'ack' });
      const first = new Partition('events', 'id', 0, log, 1, { ...LEADER, isr: [1], minInsyncReplicas: 1 });
      for (const sequence of [0, 2, 4, 6]) await first.append(idempotent(sequence, `s${sequence}`), 1);
      await first.close();
      // The other replica has the same log and writes the next batch as leader.
      fs.cpSync(dir, leaderDir, { recursive: true });
      const leader = new Partition('events', 'id', 0, (await openLog(leaderDir, { flushPolicy: 'ack' })).log, 2, { ...MOVED, isr: [2], minInsyncReplicas: 1 });
      const next = idempotent(8, 's8');
      await leader.append(Buffer.from(next), 1);
      const follower = new Partition('events', 'id', 0, (await openLog(dir, { flushPolicy: 'ack' })).log, 1, { ...MOVED, isr: [1, 2] });
      expect(follower.producerState.reflects(follower.log)).toBe(false);
      follower.appendAsFollower(leader.log.read(8, 1 << 20).records, 8);
      for (let turn = 0; turn < 1_000 && !follower.producerState.reflects(follower.log); turn++) await new Promise((resolve) => setImmediate(resolve));
      expect(follower.producerState.reflects(follower.log)).toBe(true);
      expect(follower.producerState.stats).toMatchObject({ rebuilds: 1, snapshotLoads: 1 });
      // Leader now: a retry of the batch it only replicated is answered with its offsets, without a rebuild.
      follower.updateRole({ ...MOVED, leaderId: 1, leaderEpoch: 5, partitionEpoch: 3, isr: [1], minInsyncReplicas: 1 });
      expect(await follower.append(next, 1)).toMatchObject({ baseOffset: 8, lastOffset: 9 });
      expect(follower.logEndOffset).toBe(10);
      expect(follower.producerState.stats).toMatchObject({ rebuilds: 1, duplicates: 1 });
      await leader.close();
      await follower.close();
    } finally {
      removeDir(leaderDir);
    }
  });

  it('refuses at once a sequence behind the producer that was never written (not a gap)', async () => {
    const { log } = await openLog(dir, { flushPolicy: 'ack' });
    const partition = new Partition('events', 'id', 0, log, 1, { ...LEADER, isr: [1], minInsyncReplicas: 1 });
    await partition.append(idempotent(0, 'a'), 1);
    // A new epoch must start at 0: nothing can fill that, so no hold.
    const wrongEpochStart = encodeRecordBatch([{ key: null, value: Buffer.from('x'), timestamp: 1 }], { producerId: 7, producerEpoch: 1, baseSequence: 3 });
    const outcome = await settledWithin(partition.append(wrongEpochStart, 1), SEQUENCE_GAP_HOLD_MS / 2);
    expect((outcome.error as RiffleError).errorName).toBe('OUT_OF_ORDER_SEQUENCE_NUMBER');
    await partition.close();
  });
});
