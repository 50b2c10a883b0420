// A replica holding a corrupt batch: as a follower it reports the corrupt offset as its fetch
// offset and keeps its copy while the ISR names it (so it is never electable without every
// committed record), and cuts its log only once out of the ISR; a leader drops an ISR follower
// whose fetch offset falls below the high watermark at once.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Partition, type PartitionRole } from '../../broker/partition.js';
import { flipByteInClosedSegment } from '../../chaos/disk-faults.js';
import { batchOf, makeTempDir, openLog, removeDir, waitFor } from './log/helpers.js';

const FOLLOWER_IN_ISR: PartitionRole = { leaderId: 1, leaderEpoch: 3, partitionEpoch: 1, replicas: [1, 2, 3], isr: [1, 2, 3], minInsyncReplicas: 2 };

let dir: string;
beforeEach(() => {
  dir = makeTempDir();
});
afterEach(() => removeDir(dir));

describe('Partition with a corrupt batch', () => {
  it('a follower in the ISR reports the corrupt offset, keeps its copy, and cuts it once out of the ISR', async () => {
    const { log: writer } = await openLog(dir, { segmentBytes: 2000 });
    for (let index = 0; index < 40; index++) writer.append(batchOf(4, { label: `c${index}` }), 0);
    await writer.close();
    let choice = 0;
    const flipped = flipByteInClosedSegment(dir, (count) => Math.min(count - 1, choice++));
    expect(flipped).not.toBeNull();
    const { log } = await openLog(dir, { segmentBytes: 2000 });
    const partition = new Partition('events', 'id', 0, log, 2, FOLLOWER_IN_ISR);
    for (let round = 0; round < 100 && log.corruptOffset === null; round++) await log.scrub(1000);
    expect(log.corruptOffset).toBe(flipped!.batchBaseOffset);
    expect(partition.replicationFetchOffset).toBe(flipped!.batchBaseOffset);
    expect(partition.replicationLastFetchedEpoch).toBe(0);
    // Still in the ISR: nothing is cut.
    expect(partition.repairCorruption()).toBeNull();
    expect(partition.logEndOffset).toBe(160);
    partition.updateRole({ ...FOLLOWER_IN_ISR, partitionEpoch: 2, isr: [1, 3] });
    expect(partition.repairCorruption()).toBe(flipped!.batchBaseOffset);
    expect(partition.logEndOffset).toBe(flipped!.batchBaseOffset);
    expect(log.corruptOffset).toBeNull();
    expect(partition.replicationFetchOffset).toBe(flipped!.batchBaseOffset);
    await partition.close();
  });

  it('a leader drops an ISR follower whose fetch offset falls below the high watermark at its next check', async () => {
    const { log } = await openLog(dir, { flushPolicy: 'ack' });
    let nowMs = 1_000;
    const leader = new Partition('events', 'id', 0, log, 1, { ...FOLLOWER_IN_ISR, leaderId: 1 }, () => nowMs);
    const write = leader.append(batchOf(5), -1);
    await waitFor(() => leader.logEndOffset === 5, 'the write to reach the log');
    leader.recordFollowerFetch(2, 5, 1);
    leader.recordFollowerFetch(3, 5, 1);
    await write;
    expect(leader.highWatermark).toBe(5);
    expect(leader.wantedIsr()).toBeNull();
    nowMs += 100;
    // Follower 3 cut a corrupt batch at 2 (or reports it): it lacks committed records.
    leader.recordFollowerFetch(3, 2, 1);
    expect(leader.wantedIsr()).toEqual([1, 2]);
    await leader.close();
  });
});
