// Long-poll heartbeats end to end, through gRPC: one real node on 127.0.14.1 whose heartbeat
// interval is 30 s, so anything that waited for an interval would blow the deadlines below.
// A heartbeat that does not ask for long-poll (an older client) is answered at once; one that does
// is held and answered when another member joins; SDK members rebalance well within one interval;
// stop() does not wait for a held heartbeat.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Admin, GroupConsumer, RiffleClient } from '../../src/client/index.js';
import type { NodeProcess } from '../../src/cli/node-process.js';
import type { ConsumerGroupHeartbeatResponse__Output } from '../../src/rpc/generated/riffle/v1/ConsumerGroupHeartbeatResponse.js';
import type { FindCoordinatorResponse__Output } from '../../src/rpc/generated/riffle/v1/FindCoordinatorResponse.js';
import { startNode, temporaryDir, waitFor } from '../helpers/cluster.js';

const INTERVAL_MS = 30_000;
/** Well below the interval: reaching it means a held heartbeat was answered by a change. */
const WELL_WITHIN_MS = 10_000;
const data = temporaryDir('riffle-groups-long-poll-');
let node: NodeProcess;
let client: RiffleClient;

beforeAll(async () => {
  node = await startNode({ host: '127.0.14.1', dataDir: data.dir, extraArgs: ['--group-heartbeat-interval-ms', String(INTERVAL_MS), '--group-session-timeout-ms', '60000', '--offsets-topic-partitions', '2'] });
  client = new RiffleClient({ bootstrap: node.bootstrap, retry: { deadlineMs: 30_000 } });
  await waitFor(async () => (await client.refreshMetadata(['__consumer_offsets'])).topics[0]?.partitions.every((partition) => partition.leaderId >= 0), { timeoutMs: 30_000, what: 'the offsets topic' });
  await new Admin(client).createTopic({ name: 'lp', partitions: 4 });
}, 60_000);

afterAll(async () => {
  client?.close();
  await node?.stop();
  data.remove();
});

async function heartbeat(groupId: string, request: Record<string, unknown>): Promise<ConsumerGroupHeartbeatResponse__Output> {
  // The coordinator may still be loading its offsets partition (a retriable error): wait for it.
  const coordinator = await waitFor(async () => {
    const found = (await client.callAny<FindCoordinatorResponse__Output>('riffle.v1.Kafka', 'FindCoordinator', { keyType: 0, coordinatorKeys: [groupId] })).coordinators[0]!;
    return found.errorCode === 0 ? found : undefined;
  }, { timeoutMs: 30_000, what: 'the coordinator' });
  return client.connection(`${coordinator.host}:${coordinator.port}`).call<ConsumerGroupHeartbeatResponse__Output>('riffle.v1.Kafka', 'ConsumerGroupHeartbeat', { groupId, ...request }, INTERVAL_MS + 5_000);
}

function count(response: ConsumerGroupHeartbeatResponse__Output): number {
  return (response.assignment?.topicPartitions ?? []).reduce((sum, topic) => sum + topic.partitions.length, 0);
}

describe('long-poll heartbeats', () => {
  it('answers a heartbeat without long-poll at once, and holds one with it until another member joins', async () => {
    const joined = await waitFor(async () => {
      const response = await heartbeat('raw', { memberEpoch: 0, subscribedTopicNames: ['lp'], hasSubscription: true });
      return response.errorCode === 0 ? response : undefined;
    }, { timeoutMs: 30_000, what: 'the coordinator to accept a join' });
    const owned = joined.assignment!.topicPartitions;
    expect(count(joined)).toBe(4);
    const again = { memberId: joined.memberId, memberEpoch: joined.memberEpoch, topicPartitions: owned, hasOwnedPartitions: true };
    // An older client: no long_poll_max_wait_ms, answered at once, long_poll false.
    const plain = await heartbeat('raw', again);
    expect(plain.errorCode).toBe(0);
    expect(plain.longPoll).toBe(false);
    expect(plain.assignment).toBeNull();
    // A long-poll heartbeat is held; a second member joining answers it with a revocation.
    let answered: ConsumerGroupHeartbeatResponse__Output | undefined;
    const held = heartbeat('raw', { ...again, longPollMaxWaitMs: INTERVAL_MS }).then((response) => (answered = response));
    await waitFor(async () => {
      const metrics = await (await fetch(`http://${node.options.host}:${node.options.httpPort}/metrics`)).text();
      return metrics.split('\n').some((line) => line.startsWith('riffle_group_heartbeats_parked') && line.endsWith(' 1'));
    }, { timeoutMs: WELL_WITHIN_MS, what: 'the heartbeat to be held' });
    expect(answered).toBeUndefined();
    const second = await heartbeat('raw', { memberEpoch: 0, subscribedTopicNames: ['lp'], hasSubscription: true });
    expect(second.errorCode).toBe(0);
    await waitFor(() => answered, { timeoutMs: WELL_WITHIN_MS, what: 'the held heartbeat to be answered' });
    await held;
    expect(answered!.errorCode).toBe(0);
    expect(answered!.longPoll).toBe(true);
    expect(count(answered!)).toBe(2);
  }, 60_000);

  it('moves partitions to a new SDK member well within one heartbeat interval, and stops members without waiting for held heartbeats', async () => {
    const first = new GroupConsumer(client, { groupId: 'sdk' });
    const second = new GroupConsumer(client, { groupId: 'sdk' });
    first.subscribe({ topics: ['lp'] });
    await first.run({ eachMessage: async () => undefined });
    await waitFor(() => first.assignment().length === 4, { timeoutMs: WELL_WITHIN_MS, what: 'the first member to own every partition' });
    second.subscribe({ topics: ['lp'] });
    await second.run({ eachMessage: async () => undefined });
    await waitFor(() => first.assignment().length === 2 && second.assignment().length === 2, { timeoutMs: WELL_WITHIN_MS, what: 'the partitions to be shared' });
    const owners = new Set([...first.assignment(), ...second.assignment()].map(({ partition }) => partition));
    expect(owners.size).toBe(4);
    let stopped = false;
    const stopping = Promise.all([first.stop(), second.stop()]).then(() => (stopped = true));
    await waitFor(() => stopped, { timeoutMs: WELL_WITHIN_MS, what: 'both members to stop' });
    await stopping;
  }, 60_000);
});
