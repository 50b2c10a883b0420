// Leader and ISR decisions for one partition: unclean election stays off, the last ISR member is
// kept, and closed partitions (a resharded stream's parents, still holding records until
// retention) get a leader like open ones, so they stay readable after their replicas were down.
import { describe, expect, it } from 'vitest';
import { electIfLeaderless, electPreferred, removeReplica } from '../../controller/partition-changes.js';
import { NO_LEADER, type PartitionInfo, type PartitionState } from '../../controller/metadata-types.js';

function partition(leader: number, isr: number[], state: PartitionState = 'open'): PartitionInfo {
  return {
    topicId: 't', partition: 0, replicas: [1, 2, 3], isr, leader, leaderEpoch: 4, partitionEpoch: 7,
    startingHashKey: '', endingHashKey: '', parentPartitions: [], state, createdAtMs: 0,
  };
}

const all = (): boolean => true;

describe('partition changes', () => {
  it('keeps the last ISR member when it is fenced and leaves the partition leaderless', () => {
    expect(removeReplica(partition(3, [3]), 3, (id) => id !== 3)).toEqual({ topicId: 't', partition: 0, leader: NO_LEADER });
  });

  it('elects no replica outside the ISR (no unclean election)', () => {
    expect(electIfLeaderless(partition(NO_LEADER, [3]), (id) => id !== 3)).toBeNull();
  });

  for (const state of ['open', 'closed'] as const) {
    it(`elects the returning ISR member of a leaderless ${state} partition`, () => {
      expect(electIfLeaderless(partition(NO_LEADER, [3], state), all)).toEqual({ topicId: 't', partition: 0, leader: 3 });
    });

    it(`moves leadership of a ${state} partition back to its preferred replica`, () => {
      expect(electPreferred(partition(2, [1, 2, 3], state), all)).toEqual({ topicId: 't', partition: 0, leader: 1 });
    });
  }
});
