// Rack-aware assignment (KIP-881) in the uniform and range assignors: partitions go to members
// in a rack holding one of their replicas where the balance allows, uniform never moves a
// partition for its rack alone, and without usable racks both assign exactly as before.
import { describe, expect, it } from 'vitest';
import { rangeAssignor, uniformAssignor, type AssignmentSpec, type AssignorMember } from '../../../broker/groups/assignors.js';
import { cloneGroup, heartbeat, newGroup, type HeartbeatInput, type TopicCatalog } from '../../../broker/groups/consumer-group.js';
import type { Assignment } from '../../../broker/groups/offsets-records.js';
import { Prng } from '../../../src/util/prng.js';

function member(memberId: string, rackId: string, topics: string[] = ['t']): AssignorMember {
  return { memberId, rackId, topics: new Set(topics) };
}

/** Replicas of partition p in rack racks[p mod racks.length] only (RF 1 per AZ pattern). */
function oneRackEach(count: number, racks: string[]): string[][] {
  return Array.from({ length: count }, (_, partition) => [racks[partition % racks.length]!]);
}

function spec(members: AssignorMember[], counts: Record<string, number>, racks?: Record<string, string[][]>, previous: Map<string, Assignment> = new Map()): AssignmentSpec {
  return {
    members, partitionCounts: new Map(Object.entries(counts)), previous,
    partitionRacks: racks ? new Map(Object.entries(racks)) : undefined,
  };
}

function sizes(result: Map<string, Assignment>): number[] {
  return [...result.values()].map((assignment) => Object.values(assignment).reduce((sum, partitions) => sum + partitions.length, 0));
}

/** Partitions assigned to a member outside every rack of their replicas. */
function outOfRack(result: Map<string, Assignment>, members: AssignorMember[], racks: Record<string, string[][]>): number {
  let count = 0;
  for (const [memberId, assignment] of result) {
    const rack = members.find((candidate) => candidate.memberId === memberId)!.rackId;
    for (const [topic, partitions] of Object.entries(assignment)) for (const partition of partitions) if (!racks[topic]![partition]!.includes(rack)) count += 1;
  }
  return count;
}

function owners(result: Map<string, Assignment>): Map<string, string> {
  const owner = new Map<string, string>();
  for (const [memberId, assignment] of result) {
    for (const [topic, partitions] of Object.entries(assignment)) {
      for (const partition of partitions) {
        expect(owner.has(`${topic}-${partition}`), `${topic}-${partition} assigned twice`).toBe(false);
        owner.set(`${topic}-${partition}`, memberId);
      }
    }
  }
  return owner;
}

function moved(before: Map<string, Assignment>, after: Map<string, Assignment>): number {
  const old = owners(before);
  let count = 0;
  for (const [key, memberId] of owners(after)) if (old.has(key) && old.get(key) !== memberId) count += 1;
  return count;
}

describe('uniform assignor with racks', () => {
  it('gives each member the partitions of its own rack when that is balanced', () => {
    const members = [member('m1', 'a'), member('m2', 'b'), member('m3', 'c')];
    const racks = { t: oneRackEach(12, ['a', 'b', 'c']) };
    const result = uniformAssignor.assign(spec(members, { t: 12 }, racks));
    expect(result.get('m1')).toEqual({ t: [0, 3, 6, 9] });
    expect(result.get('m2')).toEqual({ t: [1, 4, 7, 10] });
    expect(result.get('m3')).toEqual({ t: [2, 5, 8, 11] });
    expect(outOfRack(result, members, racks)).toBe(0);
  });

  it('keeps the balance when the racks are uneven: in-rack as far as the counts allow', () => {
    // Every partition lives in rack a only; the b member still gets its fair half.
    const members = [member('m1', 'a'), member('m2', 'b'), member('m3', 'a')];
    const racks = { t: oneRackEach(10, ['a']) };
    const result = uniformAssignor.assign(spec(members, { t: 10 }, racks));
    expect(sizes(result).sort()).toEqual([3, 3, 4]);
    expect(outOfRack(result, members, racks)).toBe(sizes(new Map([['m2', result.get('m2')!]]))[0]);
    owners(result);
  });

  it('moves a partition for its rack only to a member in that rack, and then stays put (a fixed point)', () => {
    const members = [member('m1', 'a'), member('m2', 'b'), member('m3', 'c')];
    const racks = { t: oneRackEach(12, ['b', 'c', 'a']) };
    const oblivious = uniformAssignor.assign(spec(members.map((entry) => ({ ...entry, rackId: '' })), { t: 12 }));
    expect(outOfRack(oblivious, members, racks)).toBe(12);
    const improved = uniformAssignor.assign(spec(members, { t: 12 }, racks, oblivious));
    expect(outOfRack(improved, members, racks)).toBe(0);
    expect(sizes(improved)).toEqual([4, 4, 4]);
    expect(uniformAssignor.assign(spec(members, { t: 12 }, racks, improved))).toEqual(improved);
  });

  it('keeps every in-rack partition when a member joins, and gives the newcomer partitions of its rack', () => {
    const members = [member('m1', 'a'), member('m2', 'b'), member('m3', 'a'), member('m4', 'b')];
    const racks = { t: oneRackEach(24, ['a', 'b', 'c']) };
    const before = uniformAssignor.assign(spec(members, { t: 24 }, racks));
    const joined = [...members, member('m5', 'c')];
    const after = uniformAssignor.assign(spec(joined, { t: 24 }, racks, before));
    expect(sizes(after).sort()).toEqual([4, 5, 5, 5, 5]);
    const ownerBefore = owners(before);
    const ownerAfter = owners(after);
    for (const [key, memberId] of ownerBefore) {
      const partition = Number(key.split('-')[1]);
      const rack = joined.find((entry) => entry.memberId === memberId)!.rackId;
      // A partition its owner had in its own rack did not move (no member is above its share here).
      if (racks.t[partition]![0] === rack) expect(ownerAfter.get(key), key).toBe(memberId);
    }
    expect(after.get('m5')!.t!.every((partition) => racks.t[partition]![0] === 'c')).toBe(true);
  });

  it('a partition moves for its rack only while the group rebalances anyway; the counts stay balanced', () => {
    // The case the integration test met: joins in the order a, b, c.
    const racks = { t: ['b', 'a', 'c', 'b', 'a', 'c'].map((rack) => [rack]) };
    const a = member('a1', 'a');
    const b = member('b1', 'b');
    const c = member('c1', 'c');
    const one = uniformAssignor.assign(spec([a], { t: 6 }, racks));
    const two = uniformAssignor.assign(spec([a, b], { t: 6 }, racks, one));
    const three = uniformAssignor.assign(spec([a, b, c], { t: 6 }, racks, two));
    expect(three.get('a1')).toEqual({ t: [1, 4] });
    expect(three.get('b1')).toEqual({ t: [0, 3] });
    expect(three.get('c1')).toEqual({ t: [2, 5] });
  });

  it('a member that must give partitions up keeps those in its rack', () => {
    const members = [member('m1', 'a')];
    const racks = { t: oneRackEach(6, ['a', 'b']) };
    const before = new Map<string, Assignment>([['m1', { t: [0, 1, 2, 3, 4, 5] }]]);
    const result = uniformAssignor.assign(spec([...members, member('m2', 'b')], { t: 6 }, racks, before));
    expect(result.get('m1')).toEqual({ t: [0, 2, 4] });
    expect(result.get('m2')).toEqual({ t: [1, 3, 5] });
  });

  it('assigns exactly as without racks when racks cannot matter', () => {
    const members = [member('m1', 'a'), member('m2', 'b'), member('m3', 'c')];
    const plain = uniformAssignor.assign(spec(members.map((entry) => ({ ...entry, rackId: '' })), { t: 10 }));
    // No member racks; no replica racks; every partition in every rack (RF 3 over three AZs).
    expect(uniformAssignor.assign(spec(members.map((entry) => ({ ...entry, rackId: '' })), { t: 10 }, { t: oneRackEach(10, ['a', 'b', 'c']) }))).toEqual(plain);
    expect(uniformAssignor.assign(spec(members, { t: 10 }))).toEqual(plain);
    expect(uniformAssignor.assign(spec(members, { t: 10 }, { t: Array.from({ length: 10 }, () => ['a', 'b', 'c']) }))).toEqual(plain);
    expect(uniformAssignor.assign(spec(members, { t: 10 }, { t: Array.from({ length: 10 }, () => []) }))).toEqual(plain);
  });

  it('stays complete, balanced, at least as in-rack as without racks, and a fixed point, over random groups and joins', () => {
    const seed = Number(process.env.ASSIGNOR_SEED ?? Date.now() % 1_000_000);
    console.log(`rack-aware assignor seed ${seed} (ASSIGNOR_SEED=${seed} reproduces)`);
    const random = new Prng(seed);
    const rackNames = ['a', 'b', 'c'];
    for (let round = 0; round < 200; round++) {
      const count = random.int(1, 60);
      const members = Array.from({ length: random.int(1, 12) }, (_, index) => member(`m${String(index).padStart(2, '0')}`, random.chance(0.9) ? rackNames[random.int(0, 2)]! : ''));
      const racks = { t: Array.from({ length: count }, () => rackNames.filter(() => random.chance(0.4))) };
      const result = uniformAssignor.assign(spec(members, { t: count }, racks));
      const counts = sizes(result);
      expect(owners(result).size, `round ${round} (seed ${seed})`).toBe(count);
      expect(Math.max(...counts) - Math.min(...counts), `round ${round} (seed ${seed})`).toBeLessThanOrEqual(1);
      const oblivious = uniformAssignor.assign(spec(members, { t: count }));
      expect(outOfRack(result, members, racks), `round ${round} (seed ${seed})`).toBeLessThanOrEqual(outOfRack(oblivious, members, racks));
      expect(uniformAssignor.assign(spec(members, { t: count }, racks, result)), `round ${round} (seed ${seed})`).toEqual(result);
      // A member joins: still complete and balanced, and again a fixed point.
      const joined = [...members, member('zz', rackNames[random.int(0, 2)]!)];
      const next = uniformAssignor.assign(spec(joined, { t: count }, racks, result));
      const nextCounts = sizes(next);
      expect(owners(next).size, `round ${round} join (seed ${seed})`).toBe(count);
      expect(Math.max(...nextCounts) - Math.min(...nextCounts), `round ${round} join (seed ${seed})`).toBeLessThanOrEqual(1);
      expect(uniformAssignor.assign(spec(joined, { t: count }, racks, next)), `round ${round} join (seed ${seed})`).toEqual(next);
    }
  });
});

describe('range assignor with racks', () => {
  it('gives each member the partitions in its rack, with the plain counts', () => {
    const members = [member('m1', 'a'), member('m2', 'b')];
    const racks = { t: oneRackEach(4, ['a', 'b']) };
    const result = rangeAssignor.assign(spec(members, { t: 4 }, racks));
    expect(result.get('m1')).toEqual({ t: [0, 2] });
    expect(result.get('m2')).toEqual({ t: [1, 3] });
  });

  it('keeps co-partitioned topics together when their racks agree', () => {
    const members = [member('m1', 'a'), member('m2', 'b'), member('m3', 'c')];
    const racks = { orders: oneRackEach(7, ['a', 'b', 'c']), payments: oneRackEach(7, ['a', 'b', 'c']) };
    const result = rangeAssignor.assign(spec(members.map((entry) => ({ ...entry, topics: new Set(['orders', 'payments']) })), { orders: 7, payments: 7 }, racks));
    for (const assignment of result.values()) expect(assignment.orders).toEqual(assignment.payments);
    expect(sizes(result).sort()).toEqual([4, 4, 6]);
    // The counts are range's (3, 2, 2 per topic); within them, in-rack first.
    expect(result.get('m1')!.orders).toEqual([0, 3, 6]);
  });

  it('falls back to contiguous ranges without racks', () => {
    const members = [member('m1', ''), member('m2', '')];
    expect(rangeAssignor.assign(spec(members, { t: 5 }, { t: oneRackEach(5, ['a', 'b']) })).get('m1')).toEqual({ t: [0, 1, 2] });
    expect(rangeAssignor.assign(spec([member('m1', 'a'), member('m2', 'b')], { t: 5 })).get('m2')).toEqual({ t: [3, 4] });
  });
});

describe('rack-aware assignment through the heartbeat', () => {
  it('uses the racks the catalog reports, and a member changing its rack is a new epoch', () => {
    const catalog: TopicCatalog = { partitionCounts: () => new Map([['t', 6]]), partitionRacks: () => oneRackEach(6, ['a', 'b']) };
    const beat = (overrides: Partial<HeartbeatInput>): HeartbeatInput => ({
      groupId: 'g', memberId: '', memberEpoch: 0, instanceId: '', rackId: '', rebalanceTimeoutMs: 0, subscribedTopicNames: ['t'],
      subscribedTopicRegex: null, serverAssignor: '', ownedPartitions: null, clientId: '', clientHost: '', ...overrides,
    });
    let group = newGroup('g');
    const step = (input: HeartbeatInput): ReturnType<typeof heartbeat> => {
      const next = cloneGroup(group);
      const outcome = heartbeat(next, input, catalog);
      group = next;
      return outcome;
    };
    const a = step(beat({ memberId: 'ma', rackId: 'a' }));
    step(beat({ memberId: 'mb', rackId: 'b' }));
    expect(group.target.get('ma')).toEqual({ t: [0, 2, 4] });
    expect(group.target.get('mb')).toEqual({ t: [1, 3, 5] });
    const epoch = group.epoch;
    step(beat({ memberId: 'ma', memberEpoch: a.memberEpoch, rackId: 'b', subscribedTopicNames: null, ownedPartitions: {} }));
    expect(group.epoch).toBe(epoch + 1);
  });

  it('bumps the epoch when replica racks change for a group with racks, and not for one without', () => {
    let racks = oneRackEach(4, ['a', 'b']);
    const catalog: TopicCatalog = { partitionCounts: () => new Map([['t', 4]]), partitionRacks: () => racks };
    const run = (rackId: string): { before: number; after: number } => {
      racks = oneRackEach(4, ['a', 'b']);
      let group = newGroup('g');
      const step = (input: Partial<HeartbeatInput>): ReturnType<typeof heartbeat> => {
        const next = cloneGroup(group);
        const outcome = heartbeat(next, {
          groupId: 'g', memberId: 'm', memberEpoch: 0, instanceId: '', rackId, rebalanceTimeoutMs: 0, subscribedTopicNames: ['t'],
          subscribedTopicRegex: null, serverAssignor: '', ownedPartitions: null, clientId: '', clientHost: '', ...input,
        }, catalog);
        group = next;
        return outcome;
      };
      const joined = step({});
      const before = group.epoch;
      racks = oneRackEach(4, ['b', 'a']);
      step({ memberEpoch: joined.memberEpoch, subscribedTopicNames: null, ownedPartitions: joined.assignment });
      return { before, after: group.epoch };
    };
    const withRack = run('a');
    expect(withRack.after).toBe(withRack.before + 1);
    const without = run('');
    expect(without.after).toBe(without.before);
  });
});
