// The coordinator's long-poll heartbeats (a Riffle extension): a heartbeat whose answer would be
// "no change" is held and answered as soon as that member has news, after the wait, when a newer
// heartbeat or the client's cancellation ends it, and with NOT_COORDINATOR when the shard unloads
// or the coordinator shuts down. A real GroupCoordinator over an in-memory offsets partition.
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import type { MetadataImage } from '../../../controller/index.js';
import type { ReplicaManager } from '../../../broker/replica-manager.js';
import { GroupCoordinator, type HeartbeatAnswer } from '../../../broker/groups/group-coordinator.js';
import { GroupMetrics } from '../../../broker/groups/group-metrics.js';
import { LagSampler } from '../../../broker/groups/lag-sampler.js';
import { cloneGroup, type HeartbeatInput } from '../../../broker/groups/consumer-group.js';
import { ParkedHeartbeats, type CancelSignal } from '../../../broker/groups/parked-heartbeats.js';
import type { Assignment } from '../../../broker/groups/offsets-records.js';
import { createLogger } from '../../../src/util/logger.js';
import { isRiffleError } from '../../../src/rpc/errors.js';
import { waitFor } from '../../helpers/cluster.js';

/** The one __consumer_offsets partition, in memory: appends commit at once. */
class MemoryOffsetsPartition {
  readonly index = 0;
  readonly topic = '__consumer_offsets';
  isLeader = true;
  leaderEpoch = 1;
  appends = 0;
  readonly log = { logStartOffset: 0, logEndOffset: 0, read: (): never => { throw new Error('nothing to load'); } };
  async append(): Promise<{ baseOffset: number }> {
    await Promise.resolve();
    this.appends += 1;
    return { baseOffset: this.appends - 1 };
  }
}

interface Setup {
  coordinator: GroupCoordinator;
  partition: MemoryOffsetsPartition;
  registry: Registry;
}

let open: GroupCoordinator | undefined;
afterEach(() => {
  open?.close();
  open = undefined;
});

async function setup(config: { heartbeatIntervalMs: number; sessionTimeoutMs?: number; partitions?: number }): Promise<Setup> {
  const partition = new MemoryOffsetsPartition();
  const offsetsTopic = { name: '__consumer_offsets', internal: true, partitions: [{ partition: 0, leader: 1, replicas: [1] }] };
  const topic = { name: 't', internal: false, partitions: Array.from({ length: config.partitions ?? 4 }, (_, index) => ({ partition: index, leader: 1, replicas: [1] })) };
  const image = {
    topicByName: (name: string) => (name === offsetsTopic.name ? offsetsTopic : name === topic.name ? topic : undefined),
    topics: new Map([['o', offsetsTopic], ['t', topic]]),
    broker: () => ({ rack: '' }),
  } as unknown as MetadataImage;
  const replicas = { findPartition: (name: string, index: number) => (name === offsetsTopic.name && index === 0 ? partition : undefined) } as unknown as ReplicaManager;
  const logger = createLogger({ level: 'silent' });
  const registry = new Registry();
  const coordinator = new GroupCoordinator({
    selfId: 1, replicas, image: () => image, logger, metrics: new GroupMetrics(registry), lag: new LagSampler(1, replicas, () => image, logger),
    config: { heartbeatIntervalMs: config.heartbeatIntervalMs, sessionTimeoutMs: config.sessionTimeoutMs ?? 10_000, offsetsRetentionMs: 86_400_000 },
  });
  open = coordinator;
  coordinator.syncLeadership();
  await waitFor(() => coordinator.loadedShards().length === 1, { timeoutMs: 5_000, what: 'the offsets partition to load' });
  return { coordinator, partition, registry };
}

function beat(overrides: Partial<HeartbeatInput>): HeartbeatInput {
  return {
    groupId: 'g', memberId: '', memberEpoch: 0, instanceId: '', rackId: '', rebalanceTimeoutMs: 60_000, subscribedTopicNames: ['t'],
    subscribedTopicRegex: null, serverAssignor: '', ownedPartitions: null, clientId: '', clientHost: '', ...overrides,
  };
}

function count(assignment: Assignment | null): number {
  return Object.values(assignment ?? {}).reduce((sum, partitions) => sum + partitions.length, 0);
}

/** A member that joins and reconciles until it owns its whole target, as a client would. */
async function joinSettled(coordinator: GroupCoordinator, memberId = ''): Promise<{ memberId: string; memberEpoch: number; owned: Assignment }> {
  const joined = await coordinator.heartbeat(beat({ memberId }));
  let owned = joined.assignment ?? {};
  let memberEpoch = joined.memberEpoch;
  for (let round = 0; round < 10; round++) {
    const answer = await coordinator.heartbeat(beat({ memberId: joined.memberId, memberEpoch, ownedPartitions: owned, subscribedTopicNames: null }));
    memberEpoch = answer.memberEpoch;
    if (answer.assignment === null) break;
    owned = answer.assignment;
  }
  return { memberId: joined.memberId, memberEpoch, owned };
}

function held(coordinator: GroupCoordinator, member: { memberId: string; memberEpoch: number; owned: Assignment }, waitMs: number, cancel?: CancelSignal): Promise<{ answer: HeartbeatAnswer; elapsedMs: number }> {
  const started = performance.now();
  return coordinator.heartbeat(beat({ memberId: member.memberId, memberEpoch: member.memberEpoch, ownedPartitions: member.owned, subscribedTopicNames: null }), waitMs, cancel)
    .then((answer) => ({ answer, elapsedMs: performance.now() - started }));
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

function parkedGauge(coordinator: GroupCoordinator): number {
  return [...coordinator.loadedShards()].reduce((sum, shard) => sum + shard.parked.size, 0);
}

describe('long-poll heartbeats', () => {
  it('holds a no-change heartbeat and answers it as soon as a new member makes it revoke', async () => {
    const { coordinator } = await setup({ heartbeatIntervalMs: 30_000 });
    const first = await joinSettled(coordinator);
    expect(count(first.owned)).toBe(4);
    const pending = held(coordinator, first, 30_000);
    await waitFor(() => parkedGauge(coordinator) === 1, { timeoutMs: 5_000, what: 'the heartbeat to be held' });
    const second = await coordinator.heartbeat(beat({}));
    const { answer, elapsedMs } = await pending;
    // Told to give up half at once, not after the 30 s wait.
    expect(answer.longPoll).toBe(true);
    expect(count(answer.assignment)).toBe(2);
    expect(elapsedMs).toBeLessThan(5_000);
    expect(second.memberEpoch).toBeGreaterThan(first.memberEpoch);
  });

  it('answers the newcomer held in unreleased_partitions as soon as the old owner revokes', async () => {
    const { coordinator } = await setup({ heartbeatIntervalMs: 30_000 });
    const first = await joinSettled(coordinator);
    const joined = await coordinator.heartbeat(beat({}));
    expect(count(joined.assignment)).toBe(0);
    const newcomer = held(coordinator, { memberId: joined.memberId, memberEpoch: joined.memberEpoch, owned: {} }, 30_000);
    // The old owner hears of the revocation, then revokes.
    const told = await coordinator.heartbeat(beat({ memberId: first.memberId, memberEpoch: first.memberEpoch, ownedPartitions: first.owned, subscribedTopicNames: null }));
    expect(count(told.assignment)).toBe(2);
    await coordinator.heartbeat(beat({ memberId: first.memberId, memberEpoch: told.memberEpoch, ownedPartitions: told.assignment!, subscribedTopicNames: null }));
    const { answer, elapsedMs } = await newcomer;
    expect(count(answer.assignment)).toBe(2);
    expect(elapsedMs).toBeLessThan(5_000);
  });

  it('answers all held members at once when a member leaves', async () => {
    const { coordinator } = await setup({ heartbeatIntervalMs: 30_000, partitions: 6 });
    const members = [await joinSettled(coordinator), await joinSettled(coordinator), await joinSettled(coordinator)];
    const settled = await settleAll(coordinator, members);
    expect(settled.map((member) => count(member.owned))).toEqual([2, 2, 2]);
    const heldA = held(coordinator, settled[0]!, 30_000);
    const heldB = held(coordinator, settled[1]!, 30_000);
    await waitFor(() => parkedGauge(coordinator) === 2, { timeoutMs: 5_000, what: 'two held heartbeats' });
    await coordinator.heartbeat(beat({ memberId: settled[2]!.memberId, memberEpoch: -1, subscribedTopicNames: null }));
    const answers = await Promise.all([heldA, heldB]);
    // Each takes one of the leaver's partitions, told at once rather than after the 30 s wait.
    expect(answers.map(({ answer }) => count(answer.assignment))).toEqual([3, 3]);
    for (const { elapsedMs } of answers) expect(elapsedMs).toBeLessThan(5_000);
  });

  it('wakes only the members whose partitions move; one that keeps its partitions takes the new epoch when its hold ends', async () => {
    const { coordinator } = await setup({ heartbeatIntervalMs: 1_000, partitions: 4 });
    // Two members with two partitions each; a third member subscribing to another topic bumps the
    // epoch without moving any partition of topic t.
    const settled = await settleAll(coordinator, [await joinSettled(coordinator), await joinSettled(coordinator)]);
    expect(settled.map((member) => count(member.owned))).toEqual([2, 2]);
    const holds = settled.map((member) => held(coordinator, member, 1_000));
    await waitFor(() => parkedGauge(coordinator) === 2, { timeoutMs: 5_000, what: 'two held heartbeats' });
    const epoch = coordinator.group('g').epoch;
    await coordinator.heartbeat(beat({ subscribedTopicNames: ['other-topic-that-does-not-exist'] }));
    expect(coordinator.group('g').epoch).toBe(epoch + 1);
    const answers = await Promise.all(holds);
    for (const { answer, elapsedMs } of answers) {
      // Not woken: answered at the end of the hold, and then told the new epoch.
      expect(elapsedMs).toBeGreaterThanOrEqual(900);
      expect(answer.assignment).toBeNull();
    }
    const next = await coordinator.heartbeat(beat({ memberId: settled[0]!.memberId, memberEpoch: settled[0]!.memberEpoch, ownedPartitions: settled[0]!.owned, subscribedTopicNames: null }));
    expect(next.memberEpoch).toBe(epoch + 1);
    expect(count(next.assignment)).toBe(2);
  });

  it('answers "no change" after the wait, capped at the heartbeat interval, and the member stays', async () => {
    const { coordinator } = await setup({ heartbeatIntervalMs: 300 });
    const member = await joinSettled(coordinator);
    // Asks for 60 s; the coordinator holds it for its 300 ms interval at most.
    const { answer, elapsedMs } = await held(coordinator, member, 60_000);
    expect(answer.assignment).toBeNull();
    expect(answer.longPoll).toBe(true);
    expect(answer.memberEpoch).toBe(member.memberEpoch);
    expect(elapsedMs).toBeGreaterThanOrEqual(290);
    expect(elapsedMs).toBeLessThan(5_000);
    expect(coordinator.group('g').members.has(member.memberId)).toBe(true);
  });

  it('answers at once when the request does not ask for long-poll (older clients)', async () => {
    const { coordinator } = await setup({ heartbeatIntervalMs: 30_000 });
    const member = await joinSettled(coordinator);
    const { answer, elapsedMs } = await held(coordinator, member, 0);
    expect(answer.longPoll).toBe(false);
    expect(answer.assignment).toBeNull();
    expect(elapsedMs).toBeLessThan(5_000);
    expect(parkedGauge(coordinator)).toBe(0);
  });

  it('ends a held heartbeat when a newer heartbeat of the same member arrives, or the client cancels', async () => {
    const { coordinator } = await setup({ heartbeatIntervalMs: 30_000 });
    const member = await joinSettled(coordinator);
    const older = held(coordinator, member, 30_000);
    await waitFor(() => parkedGauge(coordinator) === 1, { timeoutMs: 5_000, what: 'the heartbeat to be held' });
    const listeners: (() => void)[] = [];
    const cancel = { cancelled: false, onCancel: (listener: () => void) => void listeners.push(listener) };
    const newer = held(coordinator, member, 30_000, cancel);
    const { answer, elapsedMs } = await older;
    expect(answer.assignment).toBeNull();
    expect(elapsedMs).toBeLessThan(5_000);
    await waitFor(() => parkedGauge(coordinator) === 1 && listeners.length === 1, { timeoutMs: 5_000, what: 'the newer heartbeat to be held' });
    cancel.cancelled = true;
    for (const listener of listeners) listener();
    expect((await newer).elapsedMs).toBeLessThan(5_000);
    expect(parkedGauge(coordinator)).toBe(0);
  });

  it('answers held heartbeats NOT_COORDINATOR at once when the shard unloads', async () => {
    const { coordinator, partition } = await setup({ heartbeatIntervalMs: 30_000 });
    const member = await joinSettled(coordinator);
    const pending = held(coordinator, member, 30_000);
    await waitFor(() => parkedGauge(coordinator) === 1, { timeoutMs: 5_000, what: 'the heartbeat to be held' });
    const started = performance.now();
    partition.isLeader = false;
    coordinator.syncLeadership();
    const error = await rejection(pending);
    expect(isRiffleError(error) && error.errorName).toBe('NOT_COORDINATOR');
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('answers held heartbeats NOT_COORDINATOR at once when the coordinator shuts down', async () => {
    const { coordinator } = await setup({ heartbeatIntervalMs: 30_000 });
    const member = await joinSettled(coordinator);
    const pending = held(coordinator, member, 30_000);
    await waitFor(() => parkedGauge(coordinator) === 1, { timeoutMs: 5_000, what: 'the heartbeat to be held' });
    coordinator.close();
    const error = await rejection(pending);
    expect(isRiffleError(error) && error.errorName).toBe('NOT_COORDINATOR');
  });

  it('keeps a member whose heartbeat is held past its session deadline', async () => {
    // An interval longer than the session (not a sensible configuration) shows that the hold
    // itself is liveness: the member is not expired while its heartbeat is held.
    const { coordinator, registry } = await setup({ heartbeatIntervalMs: 1_500, sessionTimeoutMs: 400 });
    coordinator.start();
    const member = await joinSettled(coordinator);
    const { answer, elapsedMs } = await held(coordinator, member, 1_500);
    expect(elapsedMs).toBeGreaterThanOrEqual(1_400);
    expect(answer.assignment).toBeNull();
    expect(coordinator.group('g').members.has(member.memberId)).toBe(true);
    const ends = await registry.getSingleMetric('riffle_group_parked_heartbeats_total')!.get();
    expect(ends.values.find((value) => value.labels.end === 'timeout')?.value).toBe(1);
    // Without heartbeats, the session does expire.
    await waitFor(() => !coordinator.group('g').members.has(member.memberId), { timeoutMs: 5_000, what: 'the silent member to expire' });
  });

  it('is answered at once rather than held while the member still owns partitions it must revoke', async () => {
    const { coordinator } = await setup({ heartbeatIntervalMs: 30_000 });
    const owner = await joinSettled(coordinator);
    await coordinator.heartbeat(beat({}));
    const told = await held(coordinator, owner, 30_000);
    expect(count(told.answer.assignment)).toBe(2);
    // Still owning all four, it is told again what to keep: nothing for it to wait for.
    const again = await held(coordinator, { ...owner, memberEpoch: told.answer.memberEpoch }, 30_000);
    expect(count(again.answer.assignment)).toBe(2);
    expect(again.elapsedMs).toBeLessThan(5_000);
  });
});

describe('heartbeat group commit', () => {
  it('writes heartbeats of one group that arrive together as one batch, and a failing one changes nothing', async () => {
    const { coordinator, partition } = await setup({ heartbeatIntervalMs: 30_000, partitions: 20 });
    const before = partition.appends;
    const answers = await Promise.allSettled([
      ...Array.from({ length: 10 }, () => coordinator.heartbeat(beat({}))),
      coordinator.heartbeat(beat({ serverAssignor: 'no-such-assignor' })),
    ]);
    const joined = answers.filter((answer) => answer.status === 'fulfilled');
    expect(joined).toHaveLength(10);
    const failed = answers[10]!;
    expect(failed.status === 'rejected' && isRiffleError(failed.reason) && failed.reason.errorName).toBe('UNSUPPORTED_ASSIGNOR');
    expect(coordinator.group('g').members.size).toBe(10);
    // The first join goes alone (the shard was idle); the other nine wait for it and go together.
    expect(partition.appends - before).toBeLessThanOrEqual(2);
    const ids = new Set(joined.map((answer) => (answer as PromiseFulfilledResult<HeartbeatAnswer>).value.memberId));
    expect(ids.size).toBe(10);
  });
});

describe('ParkedHeartbeats', () => {
  it('ends a held heartbeat as changed when its member is gone from the group', async () => {
    const { coordinator } = await setup({ heartbeatIntervalMs: 30_000 });
    const member = await joinSettled(coordinator);
    const group = coordinator.group('g');
    const parked = new ParkedHeartbeats();
    const end = parked.park(group, member.memberId, 30_000);
    expect(parked.isParked('g', member.memberId)).toBe(true);
    // Unrelated changes (same state) do not end it.
    parked.groupChanged('g', group);
    expect(parked.isParked('g', member.memberId)).toBe(true);
    const without = cloneGroup(group);
    without.members.delete(member.memberId);
    without.current.delete(member.memberId);
    parked.groupChanged('g', without);
    expect(await end).toBe('changed');
    expect(parked.size).toBe(0);
    parked.closeAll();
    expect(await parked.park(group, member.memberId, 30_000)).toBe('unloaded');
  });
});

/** Heartbeats every member (without holding) until none is told anything new. */
async function settleAll(coordinator: GroupCoordinator, members: { memberId: string; memberEpoch: number; owned: Assignment }[]): Promise<{ memberId: string; memberEpoch: number; owned: Assignment }[]> {
  const states = members.map((member) => ({ ...member }));
  for (let round = 0; round < 20; round++) {
    let news = false;
    for (const state of states) {
      const answer = await coordinator.heartbeat(beat({ memberId: state.memberId, memberEpoch: state.memberEpoch, ownedPartitions: state.owned, subscribedTopicNames: null }));
      state.memberEpoch = answer.memberEpoch;
      if (answer.assignment !== null) {
        news = true;
        state.owned = answer.assignment;
      }
    }
    if (!news) return states;
  }
  throw new Error('the group did not settle');
}
