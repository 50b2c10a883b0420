import { describe, expect, it } from 'vitest';
import { ERRORS } from '../../src/rpc/errors.js';
import { Registry } from '../../src/metrics/index.js';
import { NO_LEADER } from '../../controller/index.js';
import { ControllerConfigError, resolveControllerConfig } from '../../controller/controller-config.js';
import { createHarness, createTopic, expectRiffleError, heartbeat, startBroker, type Harness } from './controller-harness.js';

/** Three active brokers in racks a, b, c; returns their epochs by node id. */
async function threeBrokers(harness: Harness): Promise<Map<number, number>> {
  const epochs = new Map<number, number>();
  for (const [nodeId, rack] of [[1, 'a'], [2, 'b'], [3, 'c']] as const) epochs.set(nodeId, await startBroker(harness, nodeId, rack));
  return epochs;
}

/** Heartbeats the given brokers, advancing the clock by `stepMs` before each round, `rounds` times. */
async function keepAlive(harness: Harness, epochs: Map<number, number>, nodeIds: number[], rounds: number, stepMs = 500): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    harness.clock.advance(stepMs);
    for (const nodeId of nodeIds) await heartbeat(harness, nodeId, epochs.get(nodeId)!);
    await harness.controller.tick();
  }
}

function isrInvariants(harness: Harness): void {
  for (const partition of harness.controller.image.allPartitions()) {
    expect(partition.isr.length).toBeGreaterThan(0);
    if (partition.leader !== NO_LEADER) expect(partition.isr).toContain(partition.leader);
  }
}

describe('QuorumController: bootstrap and standby', () => {
  it('writes one cluster record with a 16-byte id and a 32-byte secret', async () => {
    const harness = createHarness();
    await harness.controller.bootstrap();
    await harness.controller.bootstrap();
    const cluster = harness.controller.image.cluster!;
    expect(Buffer.from(cluster.clusterId, 'base64url')).toHaveLength(16);
    expect(cluster.clusterSecret).toHaveLength(32);
    expect(harness.log.batches).toHaveLength(1);
    expect(harness.standby.image.toSnapshot()).toEqual(harness.controller.image.toSnapshot());
  });

  it('answers NOT_CONTROLLER with a leader hint when not active', async () => {
    const harness = createHarness();
    const error = await expectRiffleError(harness.standby.createTopics({ topics: [{ name: 't' }] }), 'NOT_CONTROLLER');
    expect(error.leaderHint).toBe('127.0.0.1:9093');
    harness.log.active = false;
    await expectRiffleError(harness.controller.registerBroker({ nodeId: 1, incarnationId: 'x' }), 'NOT_CONTROLLER');
    await harness.controller.tick();
  });
});

describe('QuorumController: failover', () => {
  it('hands over to a standby with the same image, fresh sessions, and fencing that still works', async () => {
    const harness = createHarness();
    const epochs = await threeBrokers(harness);
    const topicId = await createTopic(harness, 'orders', 3, 3);
    const [first, second] = harness.controllers;
    await keepAlive(harness, epochs, [1, 2, 3], 2);
    harness.clock.advance(2_500); // long silence just before the handover
    harness.log.activeIndex = 1;
    await first.tick();
    await second.tick();
    expect(second.image.toSnapshot()).toEqual(first.image.toSnapshot());
    expect(second.image.broker(1)!.state).toBe('active'); // its session restarted on takeover
    await expectRiffleError(first.createTopics({ topics: [{ name: 'x' }] }), 'NOT_CONTROLLER');

    await keepAlive(harness, epochs, [2, 3], 7);
    expect(second.image.broker(1)!.state).toBe('fenced');
    expect(second.image.partitionsLedBy(1)).toEqual([]);
    expect(first.image.partition(topicId, 0)).toEqual(second.image.partition(topicId, 0));
  });

  it('dates the session of the broker that ran with the replaced controller from that controller\'s last message', async () => {
    for (const { roles, handoverMsAgo, fenced } of [
      // kill -9 of combined node 1: the standby last heard from it 1.5 s before it took over.
      { roles: ['controller', 'broker'], handoverMsAgo: 1_500, fenced: true },
      // A handover (TimeoutNow): the old controller spoke a moment ago; a full session.
      { roles: ['controller', 'broker'], handoverMsAgo: 0, fenced: false },
      // Broker 1 only shares the node id, not the process: a full session.
      { roles: ['broker'], handoverMsAgo: 1_500, fenced: false },
    ]) {
      const harness = createHarness();
      const epochs = new Map<number, number>();
      epochs.set(1, await startBroker(harness, 1, 'a', 'inc-1', roles));
      for (const [nodeId, rack] of [[2, 'b'], [3, 'c']] as const) epochs.set(nodeId, await startBroker(harness, nodeId, rack));
      await keepAlive(harness, epochs, [1, 2, 3], 2);
      harness.clock.advance(handoverMsAgo);
      harness.log.previousLeader = { nodeId: 1, msAgo: handoverMsAgo };
      harness.log.activeIndex = 1;
      await harness.controllers[0].tick();
      await harness.controllers[1].tick(); // the takeover
      // 2 s after the takeover, less than a session timeout (3 s) of its own.
      await keepAlive(harness, epochs, [2, 3], 4);
      expect(harness.controllers[1].image.broker(1)!.state, `roles ${roles}, last message ${handoverMsAgo} ms before`).toBe(fenced ? 'fenced' : 'active');
      expect(harness.controllers[1].image.broker(2)!.state).toBe('active');
    }
  });
});

describe('QuorumController: appends with an unknown outcome', () => {
  it('waits behind a barrier, so a batch that commits late is seen before the next decision', async () => {
    const harness = createHarness();
    await threeBrokers(harness);
    harness.log.timeOutNextAppend = true;
    const first = await harness.controller.createTopics({ topics: [{ name: 'late', numPartitions: 1 }] });
    expect(first.topics[0]!.errorCode).toBe(ERRORS.REQUEST_TIMED_OUT.code);
    expect(harness.controller.image.topicByName('late')).toBeUndefined();
    // The retry must see the first attempt once it commits, not write a second TopicRecord.
    const { topics } = await harness.controller.createTopics({ topics: [{ name: 'late', numPartitions: 1 }] });
    expect(topics[0]!.errorCode).toBe(ERRORS.TOPIC_ALREADY_EXISTS.code);
    expect(harness.controller.image.topicByName('late')).toBeDefined();
  });

  it('retries bootstrap with the same cluster id', async () => {
    const harness = createHarness();
    harness.log.timeOutNextAppend = true;
    await expectRiffleError(harness.controller.bootstrap(), 'REQUEST_TIMED_OUT');
    await harness.controller.bootstrap();
    expect(harness.log.batches).toHaveLength(2);
    expect(harness.log.batches[1]!.records[0]!.cluster!.clusterId).toBe(harness.log.batches[0]!.records[0]!.cluster!.clusterId);
  });
});

describe('QuorumController: registration and heartbeats', () => {
  it('gives growing epochs, keeps a retried registration, and rejects an old incarnation', async () => {
    const harness = createHarness();
    const first = await startBroker(harness, 1, 'a', 'one');
    const second = await startBroker(harness, 2, 'b');
    expect(second).toBeGreaterThan(first);
    const batches = harness.log.batches.length;
    expect((await harness.controller.registerBroker({ nodeId: 1, incarnationId: 'one', rack: 'a' })).brokerEpoch).toBe(first);
    expect(harness.log.batches).toHaveLength(batches);

    const restarted = await harness.controller.registerBroker({ nodeId: 1, incarnationId: 'two', rack: 'a' });
    expect(restarted.brokerEpoch).toBeGreaterThan(second);
    expect(harness.controller.image.broker(1)).toMatchObject({ state: 'fenced', epoch: restarted.brokerEpoch, incarnationId: 'two' });
    await expectRiffleError(heartbeat(harness, 1, first), 'STALE_BROKER_EPOCH');
    await expectRiffleError(harness.controller.allocateProducerIds({ brokerId: 1, brokerEpoch: first }), 'STALE_BROKER_EPOCH');
    await expectRiffleError(heartbeat(harness, 9, 1), 'STALE_BROKER_EPOCH');
    await expectRiffleError(harness.controller.brokerHeartbeat({ nodeId: 2, brokerEpoch: 'twelve', metadataOffset: 1 }), 'INVALID_REQUEST');
  });

  it('keeps a broker fenced until its metadata offset reaches its registration', async () => {
    const harness = createHarness();
    const { brokerEpoch, clusterId } = await harness.controller.registerBroker({ nodeId: 4, incarnationId: 'x', rack: 'a' });
    expect(clusterId).toBe(harness.controller.image.cluster!.clusterId);
    const behind = await harness.controller.brokerHeartbeat({ nodeId: 4, brokerEpoch, metadataOffset: brokerEpoch - 1 });
    // The answer carries the terms of the broker's standing: the session timeout and the
    // controller's metadata offset (here its registration record, whose offset is its epoch).
    expect(behind).toEqual({ isCaughtUp: false, isFenced: true, shouldShutDown: false, sessionTimeoutMs: 3_000, metadataOffset: brokerEpoch });
    const caughtUp = await harness.controller.brokerHeartbeat({ nodeId: 4, brokerEpoch, metadataOffset: brokerEpoch });
    // Unfencing wrote a record: the broker's standing waits for its image to include it.
    expect(caughtUp).toEqual({ isCaughtUp: true, isFenced: false, shouldShutDown: false, sessionTimeoutMs: 3_000, metadataOffset: harness.controller.image.offset });
    expect(caughtUp.metadataOffset).toBeGreaterThan(brokerEpoch);
    expect(harness.controller.image.broker(4)!.state).toBe('active');
  });

  it('refuses a registration for another cluster', async () => {
    const harness = createHarness();
    await harness.controller.bootstrap();
    await expectRiffleError(harness.controller.registerBroker({ nodeId: 1, incarnationId: 'x', clusterId: 'other' }), 'INVALID_REQUEST');
    await expectRiffleError(harness.controller.registerBroker({ nodeId: -1, incarnationId: 'x' }), 'INVALID_REQUEST');
  });

  it('hands out consecutive producer id blocks of 1000', async () => {
    const harness = createHarness();
    const epoch = await startBroker(harness, 1, 'a');
    const first = await harness.controller.allocateProducerIds({ brokerId: 1, brokerEpoch: epoch });
    const second = await harness.controller.allocateProducerIds({ brokerId: 1, brokerEpoch: epoch });
    expect(first).toEqual({ firstProducerId: 0, size: 1000 });
    expect(second).toEqual({ firstProducerId: 1000, size: 1000 });
  });
});

describe('QuorumController: failures and elections', () => {
  it('fences a broker whose session expires and re-elects its partitions from the ISR', async () => {
    const harness = createHarness();
    const epochs = await threeBrokers(harness);
    const topicId = await createTopic(harness, 'orders', 6, 3);
    const led = harness.controller.image.partitionsLedBy(1);
    expect(led.length).toBeGreaterThan(0);

    await keepAlive(harness, epochs, [1, 2, 3], 2);
    await keepAlive(harness, epochs, [2, 3], 5); // 2.5 s without broker 1: not yet expired
    expect(harness.controller.image.broker(1)!.state).toBe('active');
    await keepAlive(harness, epochs, [2, 3], 2); // 3.5 s: expired
    const image = harness.controller.image;
    expect(image.broker(1)!.state).toBe('fenced');
    expect(image.partitionsLedBy(1)).toEqual([]);
    for (const before of led) {
      const after = image.partition(topicId, before.partition)!;
      expect([2, 3]).toContain(after.leader);
      expect(after.leaderEpoch).toBe(before.leaderEpoch + 1);
    }
    for (const partition of image.partitionsOf(topicId)) expect(partition.isr).not.toContain(1);
    expect(image.underReplicated()).toHaveLength(6);
    isrInvariants(harness);
  });

  it('leaves a partition leaderless when no ISR member is live, never empties an ISR, and elects the last member on return', async () => {
    const harness = createHarness();
    const epochs = await threeBrokers(harness);
    const topicId = await createTopic(harness, 'solo', 1, 1);
    const owner = harness.controller.image.partition(topicId, 0)!.leader;
    const others = [1, 2, 3].filter((id) => id !== owner);
    await keepAlive(harness, epochs, others, 8);
    const offline = harness.controller.image.partition(topicId, 0)!;
    expect(offline).toMatchObject({ leader: NO_LEADER, isr: [owner] });
    expect(harness.controller.image.offline()).toHaveLength(1);

    // The last ISR member comes back: it is unfenced and elected in the same batch.
    const response = await heartbeat(harness, owner, epochs.get(owner)!);
    expect(response.isFenced).toBe(false);
    expect(harness.controller.image.partition(topicId, 0)).toMatchObject({ leader: owner, isr: [owner] });
    isrInvariants(harness);
  });

  it('does not expire a broker whose heartbeat waits in its own queue behind a slow commit', async () => {
    const harness = createHarness();
    const epochs = await threeBrokers(harness);
    await keepAlive(harness, epochs, [1, 2, 3], 1);
    let openGate = (): void => undefined;
    harness.log.gate = new Promise<void>((resolve) => (openGate = resolve));
    // A mutation stuck on the quorum holds the queue; every broker's heartbeat arrives and waits.
    const stuck = createTopic(harness, 'slow', 1, 1);
    const beats = [1, 2, 3].map((nodeId) => heartbeat(harness, nodeId, epochs.get(nodeId)!));
    harness.clock.advance(30_000);
    const tick = harness.controller.tick();
    openGate();
    harness.log.gate = null;
    await Promise.all([stuck, ...beats, tick]);
    for (const nodeId of [1, 2, 3]) expect(harness.controller.image.broker(nodeId)?.state).toBe('active');
    // A broker that really went silent still expires.
    await keepAlive(harness, epochs, [1, 2], 8);
    expect(harness.controller.image.broker(3)?.state).toBe('fenced');
  });

  it('does not count its own stall against broker sessions', async () => {
    const harness = createHarness();
    const epochs = await threeBrokers(harness);
    await keepAlive(harness, epochs, [1, 2, 3], 1);
    // The controller's process did not run for 20 s: its next tick must not fence everyone.
    harness.clock.advance(20_000);
    await harness.controller.tick();
    for (const nodeId of [1, 2, 3]) expect(harness.controller.image.broker(nodeId)?.state).toBe('active');
    await keepAlive(harness, epochs, [1, 2], 8);
    expect(harness.controller.image.broker(3)?.state).toBe('fenced');
    expect(harness.controller.image.broker(1)?.state).toBe('active');
  });

  it('elects the returning last ISR member of a closed stream shard too (its records are still read)', async () => {
    const harness = createHarness();
    const epochs = await threeBrokers(harness);
    await harness.controller.alterStream({ operation: 'create', streamName: 'solo', shardCount: 1, replicationFactor: 1 });
    await harness.controller.alterStream({ operation: 'split', streamName: 'solo', partition: 0, newStartingHashKey: '1000' });
    const topicId = harness.controller.image.topicByName('solo')!.topicId;
    const parent = harness.controller.image.partition(topicId, 0)!;
    expect(parent.state).toBe('closed');
    const others = [1, 2, 3].filter((id) => id !== parent.leader);
    await keepAlive(harness, epochs, others, 8);
    expect(harness.controller.image.partition(topicId, 0)).toMatchObject({ leader: NO_LEADER, isr: [parent.leader] });
    expect(harness.controller.image.offline().map((partition) => partition.partition)).toContain(0);

    await heartbeat(harness, parent.leader, epochs.get(parent.leader)!);
    expect(harness.controller.image.partition(topicId, 0)).toMatchObject({ leader: parent.leader, state: 'closed' });
    isrInvariants(harness);
  });

  it('does not elect a returning broker that was dropped from the ISR (no unclean election)', async () => {
    const harness = createHarness();
    const epochs = await threeBrokers(harness);
    const topicId = await createTopic(harness, 'pair', 1, 2);
    const [first, second] = harness.controller.image.partition(topicId, 0)!.replicas;
    const bystander = [1, 2, 3].find((id) => id !== first && id !== second)!;
    await keepAlive(harness, epochs, [second!, bystander], 8); // first expires: isr [second]
    await keepAlive(harness, epochs, [bystander], 8); // second expires: stays as last member
    expect(harness.controller.image.partition(topicId, 0)).toMatchObject({ leader: NO_LEADER, isr: [second] });
    await keepAlive(harness, epochs, [first!, bystander], 2);
    expect(harness.controller.image.broker(first!)!.state).toBe('active');
    expect(harness.controller.image.partition(topicId, 0)!.leader).toBe(NO_LEADER);
  });

  it('moves leaderships away on controlled shutdown, then says should_shut_down', async () => {
    const harness = createHarness();
    const epochs = await threeBrokers(harness);
    const topicId = await createTopic(harness, 'orders', 9, 3);
    expect(harness.controller.image.partitionsLedBy(2).length).toBeGreaterThan(0);
    const first = await heartbeat(harness, 2, epochs.get(2)!, true);
    expect(first.shouldShutDown).toBe(false);
    const image = harness.controller.image;
    expect(image.broker(2)!.state).toBe('controlled_shutdown');
    expect(image.partitionsLedBy(2)).toEqual([]);
    for (const partition of image.partitionsOf(topicId)) expect(partition.isr).not.toContain(2);
    const second = await heartbeat(harness, 2, epochs.get(2)!, true);
    expect(second).toMatchObject({ shouldShutDown: true, isFenced: false });
    isrInvariants(harness);
  });

  it('moves leadership back to the preferred replica once it is in the ISR again', async () => {
    const harness = createHarness(1, { config: { preferredLeaderCheckIntervalMs: 1000 } });
    const epochs = await threeBrokers(harness);
    const topicId = await createTopic(harness, 'orders', 3, 3);
    const partition = harness.controller.image.partitionsOf(topicId).find((p) => p.replicas[0] === 1)!;
    await keepAlive(harness, epochs, [2, 3], 8);
    await keepAlive(harness, epochs, [1, 2, 3], 1); // broker 1 heartbeats again: unfenced
    const moved = harness.controller.image.partition(topicId, partition.partition)!;
    expect(moved.leader).not.toBe(1);
    expect(moved.isr).not.toContain(1);

    // The leader adds broker 1 back to the ISR; the next preferred-leader check moves leadership.
    const leaderEpoch = harness.controller.image.broker(moved.leader)!.epoch;
    const altered = await harness.controller.alterPartition({
      brokerId: moved.leader, brokerEpoch: leaderEpoch, topicId, partition: moved.partition,
      leaderEpoch: moved.leaderEpoch, partitionEpoch: moved.partitionEpoch, newIsr: [...moved.isr, 1],
    });
    expect(altered.errorCode).toBe(0);
    await keepAlive(harness, epochs, [1, 2, 3], 3);
    expect(harness.controller.image.partition(topicId, partition.partition)!.leader).toBe(1);
  });
});

/** For every partition of the topic, its leader's AlterPartition shrinking the ISR to itself. */
function shrinkToLeaderRequests(harness: Harness, epochs: Map<number, number>, topicId: string) {
  return harness.controller.image.partitionsOf(topicId).map((partition) => ({
    brokerId: partition.leader, brokerEpoch: epochs.get(partition.leader)!, topicId, partition: partition.partition,
    leaderEpoch: partition.leaderEpoch, partitionEpoch: partition.partitionEpoch, newIsr: [partition.leader],
  }));
}

describe('QuorumController: AlterPartition', () => {
  async function setUp() {
    const harness = createHarness();
    const epochs = await threeBrokers(harness);
    const topicId = await createTopic(harness, 'orders', 1, 3);
    const partition = harness.controller.image.partition(topicId, 0)!;
    const leader = partition.leader;
    const base = {
      brokerId: leader, brokerEpoch: epochs.get(leader)!, topicId, partition: 0,
      leaderEpoch: partition.leaderEpoch, partitionEpoch: partition.partitionEpoch, newIsr: [leader],
    };
    return { harness, epochs, partition, base };
  }

  it('shrinks the ISR and bumps the partition epoch', async () => {
    const { harness, partition, base } = await setUp();
    const response = await harness.controller.alterPartition(base);
    expect(response.errorCode).toBe(0);
    expect(response.partition).toMatchObject({ isr: [base.brokerId], partitionEpoch: partition.partitionEpoch + 1, leaderEpoch: partition.leaderEpoch });
  });

  it('answers a repeated request whose first attempt committed with the newer partition, so the leader keeps waiting for the metadata', async () => {
    const { harness, partition, base } = await setUp();
    expect((await harness.controller.alterPartition(base)).errorCode).toBe(0);
    // The leader never heard the first answer and sends the same proposal again.
    const again = await harness.controller.alterPartition(base);
    expect(again.errorCode).toBe(ERRORS.INVALID_UPDATE_VERSION.code);
    expect(again.partition).toMatchObject({ isr: [base.brokerId], partitionEpoch: partition.partitionEpoch + 1 });
  });

  it('lets a leader with a corrupt copy resign: an ISR without it elects another member (new leader epoch)', async () => {
    const { harness, partition, base } = await setUp();
    const others = partition.isr.filter((id) => id !== base.brokerId);
    const response = await harness.controller.alterPartition({ ...base, newIsr: others });
    expect(response.errorCode).toBe(0);
    const after = harness.controller.image.partition(base.topicId, 0)!;
    expect(others).toContain(after.leader);
    expect(after.isr).not.toContain(base.brokerId);
    expect(after.leaderEpoch).toBe(partition.leaderEpoch + 1);
  });

  it('refuses a resignation that would add replicas to the ISR', async () => {
    const { harness, base } = await setUp();
    await harness.controller.alterPartition(base);
    const shrunk = harness.controller.image.partition(base.topicId, 0)!;
    const follower = shrunk.replicas.find((id) => id !== base.brokerId)!;
    const response = await harness.controller.alterPartition({ ...base, partitionEpoch: shrunk.partitionEpoch, newIsr: [follower] });
    expect(response.errorCode).toBe(ERRORS.INVALID_REQUEST.code);
    expect(harness.controller.image.partition(base.topicId, 0)!.leader).toBe(base.brokerId);
  });

  it('rejects stale partition epoch, stale leader epoch, stale broker epoch, a non-leader and ineligible replicas', async () => {
    const { harness, epochs, base } = await setUp();
    const follower = [1, 2, 3].find((id) => id !== base.brokerId)!;
    const cases: [object, number][] = [
      [{ partitionEpoch: base.partitionEpoch - 1 }, ERRORS.INVALID_UPDATE_VERSION.code],
      [{ leaderEpoch: base.leaderEpoch - 1 }, ERRORS.FENCED_LEADER_EPOCH.code],
      [{ leaderEpoch: base.leaderEpoch + 1 }, ERRORS.UNKNOWN_LEADER_EPOCH.code],
      [{ brokerEpoch: base.brokerEpoch - 1 }, ERRORS.STALE_BROKER_EPOCH.code],
      [{ brokerId: follower, brokerEpoch: epochs.get(follower)! }, ERRORS.NOT_LEADER_OR_FOLLOWER.code],
      [{ newIsr: [follower, 9] }, ERRORS.INVALID_REQUEST.code],
      [{ newIsr: [base.brokerId, base.brokerId] }, ERRORS.INVALID_REQUEST.code],
      [{ newIsr: [base.brokerId, 9] }, ERRORS.INVALID_REQUEST.code],
      [{ partition: 5 }, ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code],
    ];
    for (const [override, code] of cases) {
      const response = await harness.controller.alterPartition({ ...base, ...override });
      expect(response.errorCode, JSON.stringify(override)).toBe(code);
    }
    // Shrink to the leader, fence the follower, then try to add it back.
    await harness.controller.alterPartition(base);
    const shrunk = harness.controller.image.partition(base.topicId, 0)!;
    const alive = [1, 2, 3].filter((id) => id !== follower);
    await keepAlive(harness, epochs, alive, 8);
    const current = harness.controller.image.partition(base.topicId, 0)!;
    expect(current.partitionEpoch).toBe(shrunk.partitionEpoch);
    const response = await harness.controller.alterPartition({ ...base, partitionEpoch: current.partitionEpoch, newIsr: [base.brokerId, follower] });
    expect(response.errorCode).toBe(ERRORS.INELIGIBLE_REPLICA.code);
    expect(response.partition).toMatchObject({ isr: [base.brokerId] });
  });

  it('refuses a member whose fetches came from an earlier registration (KIP-903), and takes it at its current one', async () => {
    const { harness, epochs, base } = await setUp();
    const follower = [1, 2, 3].find((id) => id !== base.brokerId)!;
    await harness.controller.alterPartition(base);
    const shrunk = harness.controller.image.partition(base.topicId, 0)!;
    // The follower restarts (a new process, perhaps on a new disk): it registers again.
    const oldEpoch = epochs.get(follower)!;
    const newEpoch = await startBroker(harness, follower, 'x', `inc-${follower}-again`);
    expect(newEpoch).toBeGreaterThan(oldEpoch);
    const current = harness.controller.image.partition(base.topicId, 0)!;
    const proposal = (followerEpoch: number) => ({
      ...base, newIsr: [], partitionEpoch: current.partitionEpoch,
      newIsrWithEpochs: [{ brokerId: base.brokerId, brokerEpoch: base.brokerEpoch }, { brokerId: follower, brokerEpoch: followerEpoch }],
    });
    // The leader's record of the follower is its old process's: refused, nothing changes.
    const refused = await harness.controller.alterPartition(proposal(oldEpoch));
    expect(refused.errorCode).toBe(ERRORS.INELIGIBLE_REPLICA.code);
    expect(refused.errorMessage).toMatch(new RegExp(`${follower} at epoch ${oldEpoch} \\(registered at ${newEpoch}\\)`));
    expect(harness.controller.image.partition(base.topicId, 0)!.isr).toEqual(shrunk.isr);
    // Both forms of the ISR at once are malformed.
    expect((await harness.controller.alterPartition({ ...proposal(newEpoch), newIsr: [base.brokerId, follower] })).errorCode).toBe(ERRORS.INVALID_REQUEST.code);
    // Fetches from the new process: accepted.
    const accepted = await harness.controller.alterPartition(proposal(newEpoch));
    expect(accepted.errorCode).toBe(0);
    expect([...harness.controller.image.partition(base.topicId, 0)!.isr].sort((a, b) => a - b)).toEqual([base.brokerId, follower].sort((a, b) => a - b));
  });

  it('commits concurrent requests in one metadata batch, refusing bad ones and answering a repeat from the next', async () => {
    const harness = createHarness();
    const epochs = await threeBrokers(harness);
    const topicId = await createTopic(harness, 'orders', 12, 3);
    const requests = shrinkToLeaderRequests(harness, epochs, topicId);
    const batchesBefore = harness.log.batches.length;
    const answers = await Promise.all([
      ...requests.slice(1).map((request) => harness.controller.alterPartition(request)),
      // A stale leader epoch is refused without holding up the others.
      harness.controller.alterPartition({ ...requests[0]!, leaderEpoch: requests[0]!.leaderEpoch - 1 }),
      // The same proposal twice: the repeat is answered after the first committed.
      harness.controller.alterPartition(requests[1]!),
    ]);
    expect(answers.slice(0, 11).map((answer) => answer.errorCode)).toEqual(new Array(11).fill(0));
    expect(answers[11]!.errorCode).toBe(ERRORS.FENCED_LEADER_EPOCH.code);
    expect(answers[12]!.errorCode).toBe(ERRORS.INVALID_UPDATE_VERSION.code);
    expect(answers[12]!.partition).toMatchObject({ isr: [requests[1]!.brokerId], partitionEpoch: requests[1]!.partitionEpoch + 1 });
    expect(harness.log.batches.length - batchesBefore).toBe(1);
    expect(harness.log.batches.at(-1)!.records).toHaveLength(11);
    for (const partition of harness.controller.image.partitionsOf(topicId).slice(1)) expect(partition.isr).toEqual([partition.leader]);
    expect(harness.controller.image.partition(topicId, 0)!.isr).toHaveLength(3);
  });

  it('fails every request of a batch whose commit failed, so their leaders ask again', async () => {
    const harness = createHarness();
    const epochs = await threeBrokers(harness);
    const topicId = await createTopic(harness, 'orders', 3, 3);
    const requests = shrinkToLeaderRequests(harness, epochs, topicId);
    harness.log.timeOutNextAppend = true;
    const outcomes = await Promise.allSettled(requests.map((request) => harness.controller.alterPartition(request)));
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'rejected', 'rejected']);
    // The batch did commit late: the retries find the newer partitions.
    const retries = await Promise.all(requests.map((request) => harness.controller.alterPartition(request)));
    expect(retries.map((answer) => answer.errorCode)).toEqual(new Array(3).fill(ERRORS.INVALID_UPDATE_VERSION.code));
    for (const partition of harness.controller.image.partitionsOf(topicId)) expect(partition.isr).toEqual([partition.leader]);
  });
});

describe('QuorumController: topics', () => {
  it('creates a topic with placement, defaults and min.insync.replicas 2 for RF 3', async () => {
    const harness = createHarness();
    await threeBrokers(harness);
    const { topics } = await harness.controller.createTopics({ topics: [{ name: 'orders', numPartitions: -1, replicationFactor: -1 }] });
    expect(topics[0]).toMatchObject({ name: 'orders', errorCode: 0, numPartitions: 1, replicationFactor: 3 });
    const topic = harness.controller.image.topicByName('orders')!;
    expect(topic.topicId).toBe(topics[0]!.topicId);
    expect(topic.configs).toEqual({ 'min.insync.replicas': '2' });
    expect(harness.controller.image.partition(topic.topicId, 0)).toMatchObject({ isr: topic.partitions[0]!.replicas, leaderEpoch: 0 });
  });

  it('validates without writing when validate_only is set', async () => {
    const harness = createHarness();
    await threeBrokers(harness);
    const batches = harness.log.batches.length;
    const { topics } = await harness.controller.createTopics({ topics: [{ name: 'dry', numPartitions: 3, replicationFactor: 2 }], validateOnly: true });
    expect(topics[0]).toMatchObject({ errorCode: 0, topicId: '', numPartitions: 3 });
    expect(harness.log.batches).toHaveLength(batches);
  });

  it('gives each bad topic its typed error', async () => {
    const harness = createHarness();
    await threeBrokers(harness);
    await createTopic(harness, 'exists', 1, 1);
    const cases: [object, number][] = [
      [{ name: 'exists', numPartitions: 1, replicationFactor: 1 }, ERRORS.TOPIC_ALREADY_EXISTS.code],
      [{ name: '', numPartitions: 1, replicationFactor: 1 }, ERRORS.INVALID_TOPIC_EXCEPTION.code],
      [{ name: 'has space', numPartitions: 1, replicationFactor: 1 }, ERRORS.INVALID_TOPIC_EXCEPTION.code],
      [{ name: '..', numPartitions: 1, replicationFactor: 1 }, ERRORS.INVALID_TOPIC_EXCEPTION.code],
      [{ name: 'x'.repeat(250), numPartitions: 1, replicationFactor: 1 }, ERRORS.INVALID_TOPIC_EXCEPTION.code],
      [{ name: 'zero', numPartitions: 0, replicationFactor: 1 }, ERRORS.INVALID_PARTITIONS.code],
      [{ name: 'many', numPartitions: 10_001, replicationFactor: 1 }, ERRORS.INVALID_PARTITIONS.code],
      [{ name: 'wide', numPartitions: 1, replicationFactor: 4 }, ERRORS.INVALID_REPLICATION_FACTOR.code],
      [{ name: 'cfg', numPartitions: 1, replicationFactor: 1, configs: [{ name: 'no.such', value: '1' }] }, ERRORS.INVALID_CONFIG.code],
      [{ name: 'cfg2', numPartitions: 1, replicationFactor: 1, configs: [{ name: 'retention.ms', value: 'soon' }] }, ERRORS.INVALID_CONFIG.code],
      [{ name: 'cfg3', numPartitions: 1, replicationFactor: 2, configs: [{ name: 'min.insync.replicas', value: '3' }] }, ERRORS.INVALID_CONFIG.code],
      [{ name: 'cfg4', numPartitions: 1, replicationFactor: 1, configs: [{ name: 'flush.policy', value: 'never' }] }, ERRORS.INVALID_CONFIG.code],
    ];
    for (const [topic, code] of cases) {
      const { topics } = await harness.controller.createTopics({ topics: [topic] });
      expect(topics[0]!.errorCode, JSON.stringify(topic).slice(0, 80)).toBe(code);
      expect(topics[0]!.errorMessage).not.toBe('');
    }
    const { topics } = await harness.controller.createTopics({ topics: [{ name: 'twice', numPartitions: 1 }, { name: 'twice', numPartitions: 1 }] });
    expect(topics.map((topic) => topic.errorCode)).toEqual([ERRORS.INVALID_REQUEST.code, ERRORS.INVALID_REQUEST.code]);
    expect(harness.controller.image.topics.size).toBe(1);
  });

  it('deletes topics and reports unknown ones', async () => {
    const harness = createHarness();
    await threeBrokers(harness);
    await createTopic(harness, 'orders', 2, 2);
    const { responses } = await harness.controller.deleteTopics({ topicNames: ['orders', 'missing'] });
    expect(responses.map((response) => response.errorCode)).toEqual([0, ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code]);
    expect(harness.controller.image.topicByName('orders')).toBeUndefined();
  });

  it('adds partitions and refuses to shrink', async () => {
    const harness = createHarness();
    await threeBrokers(harness);
    const topicId = await createTopic(harness, 'orders', 2, 2);
    const { results } = await harness.controller.createPartitions({ topics: [{ name: 'orders', count: 5 }, { name: 'missing', count: 2 }] });
    expect(results.map((result) => result.errorCode)).toEqual([0, ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code]);
    expect(harness.controller.image.partitionsOf(topicId).map((p) => p.replicas.length)).toEqual([2, 2, 2, 2, 2]);
    const shrink = await harness.controller.createPartitions({ topics: [{ name: 'orders', count: 3 }] });
    expect(shrink.results[0]!.errorCode).toBe(ERRORS.INVALID_PARTITIONS.code);
  });

  it('alters topic configs incrementally', async () => {
    const harness = createHarness();
    await threeBrokers(harness);
    const topicId = await createTopic(harness, 'orders', 1, 3);
    const { responses } = await harness.controller.incrementalAlterConfigs({
      resources: [
        { resourceType: 'topic', resourceName: 'orders', configs: [{ name: 'retention.ms', configOperation: 'set', value: '60000' }, { name: 'min.insync.replicas', configOperation: 'delete' }] },
        { resourceType: 'topic', resourceName: 'orders', configs: [{ name: 'bogus', configOperation: 'set', value: '1' }] },
        { resourceType: 'topic', resourceName: 'orders', configs: [{ name: 'min.insync.replicas', configOperation: 'set', value: '4' }] },
        { resourceType: 'topic', resourceName: 'missing', configs: [] },
        { resourceType: 'broker', resourceName: '1', configs: [] },
      ],
    });
    expect(responses.map((response) => response.errorCode)).toEqual([
      0, ERRORS.INVALID_CONFIG.code, ERRORS.INVALID_CONFIG.code, ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code, ERRORS.INVALID_REQUEST.code,
    ]);
    expect(harness.controller.image.topic(topicId)!.configs).toEqual({ 'retention.ms': '60000' });
  });
});

describe('QuorumController: config and metrics', () => {
  it('validates session timeout against the heartbeat interval', () => {
    expect(() => resolveControllerConfig({ heartbeatIntervalMs: 500, sessionTimeoutMs: 1000 })).toThrow(ControllerConfigError);
    expect(() => resolveControllerConfig({ heartbeatIntervalMs: 0 })).toThrow(ControllerConfigError);
    expect(resolveControllerConfig()).toMatchObject({ heartbeatIntervalMs: 500, sessionTimeoutMs: 3000 });
  });

  it('exports the controller gauges and request latency', async () => {
    const registry = new Registry();
    const harness = createHarness(1, { registry });
    const epochs = await threeBrokers(harness);
    await createTopic(harness, 'solo', 1, 1);
    const owner = harness.controller.image.partitionsOf(harness.controller.image.topicByName('solo')!.topicId)[0]!.leader;
    await keepAlive(harness, epochs, [1, 2, 3].filter((id) => id !== owner), 8);
    const text = await registry.metrics();
    expect(text).toContain('riffle_controller_active 1');
    expect(text).toContain('riffle_controller_fenced_brokers 1');
    expect(text).toContain('riffle_controller_offline_partitions 1');
    expect(text).toContain(`riffle_controller_metadata_offset ${harness.controller.image.offset}`);
    expect(text).toMatch(/riffle_controller_request_duration_seconds_count\{method="CreateTopics"\} 1/);
    expect(text).toMatch(/riffle_controller_broker_metadata_lag\{broker="\d"\} \d+/);
  });
});

describe('the __consumer_offsets topic', () => {
  it('is created compacted with 50 partitions, RF 3 and min.insync.replicas 2 once three brokers are active', async () => {
    const harness = createHarness(3, { config: { offsetsTopicPartitions: 50 } });
    const epochs = await threeBrokers(harness);
    await keepAlive(harness, epochs, [1, 2, 3], 2);
    const topic = harness.controller.image.topicByName('__consumer_offsets')!;
    expect(topic.partitions).toHaveLength(50);
    expect(topic.replicationFactor).toBe(3);
    expect(topic.internal).toBe(true);
    expect(topic.configs).toMatchObject({ 'cleanup.policy': 'compact', 'min.insync.replicas': '2' });
    isrInvariants(harness);
  });
});
