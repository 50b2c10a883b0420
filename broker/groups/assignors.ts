// Server-side partition assignors (KIP-848's ConsumerGroupPartitionAssignor): given the members,
// the topics each subscribes to (regexes already resolved), the partition count of every
// subscribed topic and the current target assignment, compute the next target assignment. The
// coordinator then reconciles members towards it incrementally.
//
// `uniform` (the default) balances the number of partitions per member to within one and keeps
// every partition where it is when that balance allows (sticky), so a member joining or leaving
// moves only the partitions it must. `range` gives each member contiguous ranges of each topic it
// subscribes to, members in member-id order, so members subscribed to co-partitioned topics get
// the same partition numbers of each. Rack-awareness is not implemented: racks are carried for a
// later assignor.
import { assert } from '../../src/util/assert.js';
import type { Assignment } from './offsets-records.js';

export interface AssignorMember {
  memberId: string;
  /** Resolved subscription: topic names that exist. */
  topics: ReadonlySet<string>;
  rackId: string;
}

export interface AssignmentSpec {
  members: readonly AssignorMember[];
  /** Partition count of every topic some member subscribes to. */
  partitionCounts: ReadonlyMap<string, number>;
  /** The target assignment before this change, by member id. */
  previous: ReadonlyMap<string, Assignment>;
}

export interface PartitionAssignor {
  readonly name: string;
  assign(spec: AssignmentSpec): Map<string, Assignment>;
}

/** The most partitions one assignment may cover; a bound on the work per rebalance. */
export const ASSIGNMENT_PARTITIONS_MAX = 100_000;

export const uniformAssignor: PartitionAssignor = {
  name: 'uniform',
  assign(spec) {
    const members = [...spec.members].sort((a, b) => compare(a.memberId, b.memberId));
    const result = new Map<string, Map<string, number[]>>(members.map((member) => [member.memberId, new Map()]));
    const load = new Map<string, number>(members.map((member) => [member.memberId, 0]));
    if (members.length === 0) return new Map();
    const all = allPartitions(spec);
    // Each member's fair share: how many partitions it could hold if every one it may take were
    // spread evenly over the members that may take it. For a homogeneous group this is
    // floor(P/N) or ceil(P/N); a member may keep at most its share.
    const quota = quotas(members, spec, all.length);
    const owner = new Map<string, string>();
    // 1. Sticky: keep what each member had, up to its quota, if it still subscribes.
    for (const member of members) {
      const previous = spec.previous.get(member.memberId) ?? {};
      for (const topic of Object.keys(previous).sort()) {
        const count = spec.partitionCounts.get(topic);
        if (count === undefined || !member.topics.has(topic)) continue;
        for (const partition of previous[topic]!) {
          const key = `${topic}\u0000${partition}`;
          if (partition >= count || owner.has(key) || load.get(member.memberId)! >= quota.get(member.memberId)!) continue;
          owner.set(key, member.memberId);
          give(result, load, member.memberId, topic, partition);
        }
      }
    }
    // 2. Everything unowned goes to the least-loaded member that subscribes to its topic.
    const byTopic = membersByTopic(members);
    for (const [topic, partition] of all) {
      const key = `${topic}\u0000${partition}`;
      if (owner.has(key)) continue;
      const candidates = byTopic.get(topic) ?? [];
      const target = leastLoaded(candidates, load);
      if (!target) continue;
      owner.set(key, target);
      give(result, load, target, topic, partition);
    }
    // 3. Heterogeneous subscriptions can leave a member two or more above another that could
    // take one of its partitions: move partitions one at a time until none can.
    rebalance(result, load, members, all.length);
    return toAssignments(result);
  },
};

export const rangeAssignor: PartitionAssignor = {
  name: 'range',
  assign(spec) {
    const result = new Map<string, Map<string, number[]>>(spec.members.map((member) => [member.memberId, new Map()]));
    const load = new Map<string, number>(spec.members.map((member) => [member.memberId, 0]));
    const byTopic = membersByTopic([...spec.members].sort((a, b) => compare(a.memberId, b.memberId)));
    for (const topic of [...spec.partitionCounts.keys()].sort(compare)) {
      const count = spec.partitionCounts.get(topic)!;
      const subscribers = byTopic.get(topic) ?? [];
      if (subscribers.length === 0) continue;
      const base = Math.floor(count / subscribers.length);
      const extra = count % subscribers.length;
      let next = 0;
      subscribers.forEach((member, index) => {
        const size = base + (index < extra ? 1 : 0);
        for (let partition = next; partition < next + size; partition++) give(result, load, member.memberId, topic, partition);
        next += size;
      });
      assert(next === count, () => `range assignor covered ${next} of ${count} partitions of ${topic}`);
    }
    return toAssignments(result);
  },
};

export const ASSIGNORS: ReadonlyMap<string, PartitionAssignor> = new Map([
  [uniformAssignor.name, uniformAssignor],
  [rangeAssignor.name, rangeAssignor],
]);
export const DEFAULT_ASSIGNOR = uniformAssignor.name;

function allPartitions(spec: AssignmentSpec): [string, number][] {
  const subscribed = new Set<string>();
  for (const member of spec.members) for (const topic of member.topics) subscribed.add(topic);
  const all: [string, number][] = [];
  for (const topic of [...subscribed].sort(compare)) {
    const count = spec.partitionCounts.get(topic) ?? 0;
    for (let partition = 0; partition < count; partition++) all.push([topic, partition]);
  }
  assert(all.length <= ASSIGNMENT_PARTITIONS_MAX, () => `assignment of ${all.length} partitions`);
  return all;
}

function quotas(members: readonly AssignorMember[], spec: AssignmentSpec, total: number): Map<string, number> {
  const homogeneous = members.every((member) => sameSet(member.topics, members[0]!.topics));
  const result = new Map<string, number>();
  if (homogeneous) {
    // floor(P/N) for everyone, and P mod N members may hold one more: hand those extra slots
    // to the members that already held the most, so as few partitions as possible move.
    const base = Math.floor(total / members.length);
    let extra = total % members.length;
    const byPreviousSize = [...members].sort((a, b) => previousSize(spec, b.memberId) - previousSize(spec, a.memberId) || compare(a.memberId, b.memberId));
    for (const member of byPreviousSize) {
      const more = extra > 0 && previousSize(spec, member.memberId) > base ? 1 : 0;
      extra -= more;
      result.set(member.memberId, base + more);
    }
    return result;
  }
  for (const member of members) {
    let share = 0;
    for (const topic of member.topics) {
      const subscribers = members.filter((candidate) => candidate.topics.has(topic)).length;
      share += (spec.partitionCounts.get(topic) ?? 0) / subscribers;
    }
    result.set(member.memberId, Math.ceil(share));
  }
  return result;
}

function previousSize(spec: AssignmentSpec, memberId: string): number {
  let size = 0;
  for (const partitions of Object.values(spec.previous.get(memberId) ?? {})) size += partitions.length;
  return size;
}

function rebalance(result: Map<string, Map<string, number[]>>, load: Map<string, number>, members: readonly AssignorMember[], total: number): void {
  const movesMax = total + members.length;
  for (let move = 0; move < movesMax; move++) {
    let moved = false;
    const byLoad = [...members].sort((a, b) => load.get(b.memberId)! - load.get(a.memberId)! || compare(a.memberId, b.memberId));
    for (const from of byLoad) {
      const taker = [...members]
        .filter((candidate) => load.get(candidate.memberId)! + 1 < load.get(from.memberId)!)
        .sort((a, b) => load.get(a.memberId)! - load.get(b.memberId)! || compare(a.memberId, b.memberId))
        .find((candidate) => [...result.get(from.memberId)!.keys()].some((topic) => candidate.topics.has(topic)));
      if (!taker) continue;
      const topic = [...result.get(from.memberId)!.keys()].sort(compare).find((name) => taker.topics.has(name))!;
      const partitions = result.get(from.memberId)!.get(topic)!;
      const partition = partitions.pop()!;
      if (partitions.length === 0) result.get(from.memberId)!.delete(topic);
      load.set(from.memberId, load.get(from.memberId)! - 1);
      give(result, load, taker.memberId, topic, partition);
      moved = true;
      break;
    }
    if (!moved) return;
  }
}

function membersByTopic(members: readonly AssignorMember[]): Map<string, AssignorMember[]> {
  const byTopic = new Map<string, AssignorMember[]>();
  for (const member of members) {
    for (const topic of member.topics) {
      let list = byTopic.get(topic);
      if (!list) byTopic.set(topic, (list = []));
      list.push(member);
    }
  }
  return byTopic;
}

function leastLoaded(candidates: readonly AssignorMember[], load: ReadonlyMap<string, number>): string | undefined {
  let best: AssignorMember | undefined;
  for (const candidate of candidates) {
    if (!best || load.get(candidate.memberId)! < load.get(best.memberId)!) best = candidate;
  }
  return best?.memberId;
}

function give(result: Map<string, Map<string, number[]>>, load: Map<string, number>, memberId: string, topic: string, partition: number): void {
  const topics = result.get(memberId)!;
  let list = topics.get(topic);
  if (!list) topics.set(topic, (list = []));
  list.push(partition);
  load.set(memberId, load.get(memberId)! + 1);
}

function toAssignments(result: Map<string, Map<string, number[]>>): Map<string, Assignment> {
  const assignments = new Map<string, Assignment>();
  for (const [memberId, topics] of result) {
    const assignment: Assignment = {};
    for (const topic of [...topics.keys()].sort(compare)) assignment[topic] = [...topics.get(topic)!].sort((a, b) => a - b);
    assignments.set(memberId, assignment);
  }
  return assignments;
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const item of a) if (!b.has(item)) return false;
  return true;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
