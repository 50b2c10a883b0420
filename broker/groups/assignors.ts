// Server-side partition assignors (KIP-848's ConsumerGroupPartitionAssignor): given the members,
// the topics each subscribes to (regexes already resolved), the partition count of every
// subscribed topic and the current target assignment, compute the next target assignment. The
// coordinator then reconciles members towards it incrementally.
//
// `uniform` (the default) balances the number of partitions per member to within one and keeps
// every partition where it is when that balance allows (sticky), so a member joining or leaving
// moves only the partitions it must. `range` gives each member contiguous ranges of each topic it
// subscribes to, members in member-id order, so members subscribed to co-partitioned topics get
// the same partition numbers of each.
//
// Rack awareness (as Kafka's KIP-881): when members say their rack (AZ) and the partitions'
// replicas have racks, both prefer giving a partition to a member in a rack that holds a replica
// of it, so the member can fetch from a replica in its own AZ. Balance comes first (the counts per
// member are exactly those of the rack-oblivious assignor). `uniform` then keeps, as Kafka's
// sticky assignors do under KIP-881, every partition a member had in its own rack (up to its
// share); the partitions it had in another rack go first to a member in their rack with room, and
// only then back to it. So a partition moves for its rack only to a member in its rack, a group
// converges to the best locality the balance allows, and then stays put (a fixed point). `range` takes, per
// topic, the rack-matching partitions first, round-robin over the members, then fills each
// member's count in partition order (contiguity is given up where racks disagree). Where racks
// cannot matter (no member rack, no replica racks, or every partition has a replica in every
// member's rack) both assign exactly as without racks.
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
  /** Racks holding a replica of each partition, by topic then partition; absent: unknown. */
  partitionRacks?: ReadonlyMap<string, readonly (readonly string[])[]>;
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
    const racks = new RackMatcher(spec, members);
    // Each member's fair share: how many partitions it could hold if every one it may take were
    // spread evenly over the members that may take it. For a homogeneous group this is
    // floor(P/N) or ceil(P/N); a member may keep at most its share.
    const quota = quotas(members, spec, all.length);
    const owner = new Map<string, string>();
    const keep = (member: AssignorMember, partitions: [string, number][], hasRoom: (memberId: string) => boolean): void => {
      for (const [topic, partition] of partitions) {
        const key = `${topic}\u0000${partition}`;
        if (owner.has(key) || !hasRoom(member.memberId)) continue;
        owner.set(key, member.memberId);
        give(result, load, member.memberId, topic, partition);
      }
    };
    // 1. Sticky: keep what each member had, up to its quota, if it still subscribes. With racks,
    // only what is in the member's rack (or has no rack to match) is kept here.
    const withinQuota = (memberId: string): boolean => load.get(memberId)! < quota.get(memberId)!;
    for (const member of members) keep(member, previousPartitions(spec, member).filter(([topic, partition]) => !racks.outOfRack(member, topic, partition)), withinQuota);
    const byTopic = membersByTopic(members);
    if (racks.enabled) {
      const room = capacity(members, spec, quota, load, all.length);
      // 2. Unowned partitions go to a member in one of their replicas' racks that has room within
      // the balance, the partitions with the fewest such members first.
      assignInRack(all, owner, byTopic, racks, room, result, load);
      // 3. Then members keep, as room allows, what they had out of their rack.
      for (const member of members) keep(member, previousPartitions(spec, member).filter(([topic, partition]) => racks.outOfRack(member, topic, partition)), (memberId) => withinQuota(memberId) && room.hasRoom(memberId));
    }
    // 4. Everything unowned goes to the least-loaded member that subscribes to its topic (one in
    // the partition's rack among equals).
    for (const [topic, partition] of all) {
      const key = `${topic}\u0000${partition}`;
      if (owner.has(key)) continue;
      const candidates = byTopic.get(topic) ?? [];
      const target = leastLoaded(candidates, load, racks.enabled ? (member) => racks.inRack(member, topic, partition) : undefined);
      if (!target) continue;
      owner.set(key, target);
      give(result, load, target, topic, partition);
    }
    // 5. Heterogeneous subscriptions can leave a member two or more above another that could
    // take one of its partitions: move partitions one at a time until none can.
    rebalance(result, load, members, all.length, racks);
    return toAssignments(result);
  },
};

/** A member's previous target partitions that still exist and that it still subscribes to. */
function previousPartitions(spec: AssignmentSpec, member: AssignorMember): [string, number][] {
  const previous = spec.previous.get(member.memberId) ?? {};
  const kept: [string, number][] = [];
  for (const topic of Object.keys(previous).sort(compare)) {
    const count = spec.partitionCounts.get(topic);
    if (count === undefined || !member.topics.has(topic)) continue;
    for (const partition of previous[topic]!) if (partition < count) kept.push([topic, partition]);
  }
  return kept;
}

/**
 * Whether a member may take one more partition without breaking the balance: homogeneous groups
 * end with floor(P/N) or ceil(P/N) each, with exactly P mod N members at the ceiling; otherwise
 * a member stays within its share (the rebalance step evens out the rest).
 */
interface Capacity {
  hasRoom(memberId: string): boolean;
  /** Room only shrinks with load, the same for every member: if the least loaded has none, nobody has. */
  readonly monotone: boolean;
}

function capacity(members: readonly AssignorMember[], spec: AssignmentSpec, quota: ReadonlyMap<string, number>, load: ReadonlyMap<string, number>, total: number): Capacity {
  const homogeneous = members.every((member) => sameSet(member.topics, members[0]!.topics));
  if (!homogeneous) return { hasRoom: (memberId) => load.get(memberId)! < quota.get(memberId)!, monotone: false };
  const base = Math.floor(total / members.length);
  const extra = total % members.length;
  const hasRoom = (memberId: string): boolean => {
    const current = load.get(memberId)!;
    if (current < base) return true;
    if (current > base) return false;
    let atCeiling = 0;
    for (const value of load.values()) if (value > base) atCeiling += 1;
    return atCeiling < extra;
  };
  return { hasRoom, monotone: true };
}

function assignInRack(
  all: readonly [string, number][], owner: Map<string, string>, byTopic: ReadonlyMap<string, AssignorMember[]>, racks: RackMatcher,
  room: Capacity, result: Map<string, Map<string, number[]>>, load: Map<string, number>,
): void {
  const wanted: { topic: string; partition: number; candidates: AssignorMember[] }[] = [];
  for (const [topic, partition] of all) {
    if (owner.has(`${topic}\u0000${partition}`)) continue;
    const candidates = (byTopic.get(topic) ?? []).filter((member) => racks.inRack(member, topic, partition));
    if (candidates.length > 0) wanted.push({ topic, partition, candidates });
  }
  // Stable: equally constrained partitions keep topic and partition order.
  wanted.sort((a, b) => a.candidates.length - b.candidates.length);
  for (const { topic, partition, candidates } of wanted) {
    const least = leastLoaded(candidates, load)!;
    const target = room.hasRoom(least) ? least : room.monotone ? undefined : leastLoaded(candidates.filter((member) => room.hasRoom(member.memberId)), load);
    if (!target) continue;
    owner.set(`${topic}\u0000${partition}`, target);
    give(result, load, target, topic, partition);
  }
}

/**
 * Which partitions are in a member's rack. "In rack" needs both a member rack and replica racks;
 * rack awareness is on only when it can change something: some member with a rack subscribes to
 * a partition with no replica in that rack.
 */
export class RackMatcher {
  readonly enabled: boolean;

  constructor(private readonly spec: AssignmentSpec, members: readonly AssignorMember[]) {
    this.enabled = members.some((member) => member.rackId !== '' && [...member.topics].some((topic) => {
      const racks = spec.partitionRacks?.get(topic);
      if (!racks) return false;
      const count = spec.partitionCounts.get(topic) ?? 0;
      for (let partition = 0; partition < count; partition++) {
        const replicaRacks = racks[partition] ?? [];
        if (replicaRacks.length > 0 && !replicaRacks.includes(member.rackId)) return true;
      }
      return false;
    }));
  }

  inRack(member: AssignorMember, topic: string, partition: number): boolean {
    if (!this.enabled || member.rackId === '') return false;
    return this.spec.partitionRacks?.get(topic)?.[partition]?.includes(member.rackId) ?? false;
  }

  /** Known to be in another rack than the member's. */
  outOfRack(member: AssignorMember, topic: string, partition: number): boolean {
    if (!this.enabled || member.rackId === '') return false;
    const racks = this.spec.partitionRacks?.get(topic)?.[partition] ?? [];
    return racks.length > 0 && !racks.includes(member.rackId);
  }
}

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
      const sizes = subscribers.map((_, index) => base + (index < extra ? 1 : 0));
      const racks = new RackMatcher(spec, subscribers);
      const partitions = racks.enabled ? rangeInRack(topic, count, subscribers, sizes, racks) : rangeContiguous(count, sizes);
      subscribers.forEach((member, index) => {
        for (const partition of partitions[index]!) give(result, load, member.memberId, topic, partition);
      });
      assert(partitions.reduce((sum, list) => sum + list.length, 0) === count, () => `range assignor covered ${partitions.flat().length} of ${count} partitions of ${topic}`);
    }
    return toAssignments(result);
  },
};

/** Contiguous ranges: the first member gets 0..sizes[0]-1, and so on. */
function rangeContiguous(count: number, sizes: readonly number[]): number[][] {
  let next = 0;
  return sizes.map((size) => {
    const range = Array.from({ length: size }, (_, offset) => next + offset);
    next += size;
    assert(next <= count, () => `range of ${next} beyond ${count} partitions`);
    return range;
  });
}

/**
 * KIP-881's rack-aware range: round-robin over the members (in member-id order), each takes its
 * lowest unassigned partition with a replica in its rack while it is below its count; then each
 * member's count is filled with the remaining partitions in order. The counts are the plain
 * range assignor's, so balance is unchanged.
 */
function rangeInRack(topic: string, count: number, subscribers: readonly AssignorMember[], sizes: readonly number[], racks: RackMatcher): number[][] {
  const taken = new Array<boolean>(count).fill(false);
  const lists: number[][] = subscribers.map(() => []);
  for (let progress = true; progress;) {
    progress = false;
    subscribers.forEach((member, index) => {
      if (lists[index]!.length >= sizes[index]!) return;
      for (let partition = 0; partition < count; partition++) {
        if (taken[partition] || !racks.inRack(member, topic, partition)) continue;
        taken[partition] = true;
        lists[index]!.push(partition);
        progress = true;
        return;
      }
    });
  }
  let partition = 0;
  subscribers.forEach((_, index) => {
    while (lists[index]!.length < sizes[index]!) {
      while (taken[partition]) partition += 1;
      taken[partition] = true;
      lists[index]!.push(partition);
    }
  });
  return lists.map((list) => list.sort((a, b) => a - b));
}

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

function rebalance(result: Map<string, Map<string, number[]>>, load: Map<string, number>, members: readonly AssignorMember[], total: number, racks: RackMatcher): void {
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
      const topics = [...result.get(from.memberId)!.keys()].sort(compare).filter((name) => taker.topics.has(name));
      // With racks, the partition moved is one in the taker's rack if there is one.
      const inRack = topics.flatMap((name) => result.get(from.memberId)!.get(name)!.filter((candidate) => racks.inRack(taker, name, candidate)).map((candidate) => [name, candidate] as const))[0];
      const topic = inRack?.[0] ?? topics[0]!;
      const partitions = result.get(from.memberId)!.get(topic)!;
      const partition = inRack ? partitions.splice(partitions.indexOf(inRack[1]), 1)[0]! : partitions.pop()!;
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

/** The least-loaded candidate (the first among equals, or the first `preferred` among equals). */
function leastLoaded(candidates: readonly AssignorMember[], load: ReadonlyMap<string, number>, preferred?: (member: AssignorMember) => boolean): string | undefined {
  let best: AssignorMember | undefined;
  for (const candidate of candidates) {
    const fewer = best !== undefined && load.get(candidate.memberId)! < load.get(best.memberId)!;
    const equalButPreferred = best !== undefined && preferred !== undefined && load.get(candidate.memberId)! === load.get(best.memberId)! && preferred(candidate) && !preferred(best);
    if (!best || fewer || equalButPreferred) best = candidate;
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
