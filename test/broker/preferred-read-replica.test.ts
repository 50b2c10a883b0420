// KIP-392 on the leader: a consumer that names its AZ goes to an in-sync replica there, but only
// to one whose log reaches the consumer's fetch offset (Kafka's rule). A replica that is behind,
// or that truncated after a leader change, would answer OFFSET_OUT_OF_RANGE: chaos az-partition
// seed 64 once sent a group member there, and the member reset its position to the earliest.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Partition } from '../../broker/partition.js';
import { preferredReadReplica, type KafkaServiceDeps } from '../../broker/kafka-service.js';
import { batchOf, makeTempDir, openLog, removeDir, waitFor } from './log/helpers.js';

let dir: string;
beforeEach(() => {
  dir = makeTempDir();
});
afterEach(() => removeDir(dir));

const RACKS = new Map([[1, 'a'], [2, 'b'], [3, 'c']]);

function depsOf(active: (id: number) => boolean = () => true): KafkaServiceDeps {
  const image = { broker: (id: number) => ({ rack: RACKS.get(id) }), isActiveBroker: active };
  return { cluster: { selfId: 1, image: () => image } } as unknown as KafkaServiceDeps;
}

describe('preferred read replica (KIP-392)', () => {
  it('is an in-sync replica in the consumer\'s AZ whose log reaches the fetch offset, else the leader', async () => {
    const { log } = await openLog(dir, { flushPolicy: 'ack' });
    const leader = new Partition('events', 'id', 0, log, 1, { leaderId: 1, leaderEpoch: 1, partitionEpoch: 1, replicas: [1, 2, 3], isr: [1, 2, 3], minInsyncReplicas: 2 });
    const appended = leader.append(batchOf(10), 1);
    await waitFor(() => leader.logEndOffset === 10, 'the write to reach the log');
    leader.recordFollowerFetch(2, 10, 1);
    leader.recordFollowerFetch(3, 4, 1);
    await appended;
    const deps = depsOf();
    expect(preferredReadReplica(deps, leader, 'b', 8)).toBe(2);
    expect(preferredReadReplica(deps, leader, 'b', 10)).toBe(2);
    // Replica 3 has only offsets below 4: a consumer at 8 stays with the leader.
    expect(preferredReadReplica(deps, leader, 'c', 8)).toBe(-1);
    expect(preferredReadReplica(deps, leader, 'c', 3)).toBe(3);
    // The leader's own AZ, no AZ, or a replica that is not live: the leader serves.
    expect(preferredReadReplica(deps, leader, 'a', 3)).toBe(-1);
    expect(preferredReadReplica(deps, leader, '', 3)).toBe(-1);
    expect(preferredReadReplica(depsOf((id) => id !== 2), leader, 'b', 8)).toBe(-1);
    await log.close();
  });
});
