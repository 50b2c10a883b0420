// Pure decisions about one partition's leader and ISR (KRaft's PartitionChangeBuilder, simplified):
// each function looks at a partition and at who is eligible, and returns the PartitionChangeRecord
// to write, or null when nothing changes. Eligible means an active broker: neither fenced nor in
// controlled shutdown (KIP-841). Unclean leader election is off: a leader always comes from the
// ISR, and when no ISR member is eligible the partition has no leader (-1) until one returns.
// KIP-841's ELR is simplified to one rule: an ISR never shrinks to empty, so the last member of
// an ISR stays in it while fenced, and is the one elected when it comes back.
import { assert } from '../src/util/assert.js';
import type { PartitionChangeRecord } from '../src/rpc/generated/riffle/internal/PartitionChangeRecord.js';
import { NO_LEADER, type PartitionInfo } from './metadata-types.js';

export type Eligibility = (nodeId: number) => boolean;

export interface PartitionTarget {
  readonly leader: number;
  readonly isr: readonly number[];
}

/** The record that takes `current` to `target`, or null when they are the same. */
export function changeTo(current: PartitionInfo, target: PartitionTarget): PartitionChangeRecord | null {
  assert(target.isr.length > 0, () => `empty isr for ${current.topicId}-${current.partition}`);
  assert(target.leader === NO_LEADER || target.isr.includes(target.leader), () => `leader ${target.leader} outside isr ${target.isr}`);
  const leaderChanged = target.leader !== current.leader;
  const isrChanged = !sameMembers(target.isr, current.isr);
  if (!leaderChanged && !isrChanged) return null;
  const record: PartitionChangeRecord = { topicId: current.topicId, partition: current.partition };
  if (leaderChanged) record.leader = target.leader;
  if (isrChanged) {
    record.isr = [...target.isr];
    record.isrChanged = true;
  }
  return record;
}

/** The first replica, in preference order, that is in the ISR and eligible; or NO_LEADER. */
export function electLeader(replicas: readonly number[], isr: readonly number[], eligible: Eligibility): number {
  for (const replica of replicas) if (isr.includes(replica) && eligible(replica)) return replica;
  return NO_LEADER;
}

/**
 * Takes `nodeId` out of the partition's leadership and ISR (it was fenced, re-registered, or is
 * shutting down). The ISR keeps it only when it is the last member.
 */
export function removeReplica(partition: PartitionInfo, nodeId: number, eligible: Eligibility): PartitionChangeRecord | null {
  if (!partition.isr.includes(nodeId) && partition.leader !== nodeId) return null;
  const remaining = partition.isr.filter((member) => member !== nodeId);
  const isr = remaining.length > 0 ? remaining : partition.isr;
  const keepsLeader = partition.leader !== nodeId && partition.leader !== NO_LEADER && eligible(partition.leader);
  const leader = keepsLeader ? partition.leader : electLeader(partition.replicas, isr, (id) => id !== nodeId && eligible(id));
  return changeTo(partition, { leader, isr });
}

/**
 * A leader for a leaderless partition, if an ISR member has become eligible. Closed partitions
 * (a resharded stream's parents) too: they keep their records until retention, and readers and
 * followers reach them through their leader (the chaos suite found closed shards left leaderless,
 * and unreadable, after their last ISR member had been down).
 */
export function electIfLeaderless(partition: PartitionInfo, eligible: Eligibility): PartitionChangeRecord | null {
  if (partition.leader !== NO_LEADER) return null;
  const leader = electLeader(partition.replicas, partition.isr, eligible);
  return leader === NO_LEADER ? null : changeTo(partition, { leader, isr: partition.isr });
}

/** Moves leadership back to the preferred (first) replica once it is eligible and in the ISR. */
export function electPreferred(partition: PartitionInfo, eligible: Eligibility): PartitionChangeRecord | null {
  const preferred = partition.replicas[0]!;
  if (partition.leader === preferred) return null;
  if (!partition.isr.includes(preferred) || !eligible(preferred)) return null;
  return changeTo(partition, { leader: preferred, isr: partition.isr });
}

function sameMembers(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((member) => b.includes(member));
}
