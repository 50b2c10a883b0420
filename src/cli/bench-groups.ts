// `riffle bench groups` (npm run bench:groups): the consumer group targets of issue 6 on a
// three-node cluster of its own (127.0.12.1-3), printed as JSON:
// - rebalance time: a stable group of 10 members over 100 partitions gains an 11th member, then
//   loses one (graceful leave, timed from its acknowledgment); the time from the membership change until every partition is
//   owned by the member the new target gives it. The same for 100 members over 1,000 partitions.
//   Also counted: partitions revoked that did not have to move (0 means unmoved partitions never
//   paused).
// - group consume throughput: 3 members (in this process) over 12 partitions consume records
//   produced beforehand; records per second from the first join until all are processed.
import type { Command } from 'commander';
import { Admin, GroupConsumer, Producer, RiffleClient, type TopicPartition } from '../client/index.js';
import { BenchCluster } from './bench-cluster.js';
import { parseIntegerOption, printJson, reportError } from './output.js';

const SUBNET = '127.0.12';
const WAIT_MS_MAX = 120_000;

interface Tracked {
  consumer: GroupConsumer;
  revoked: string[];
}

export function registerGroupsBench(bench: Command): void {
  bench
    .command('groups')
    .description('Consumer group rebalance times (10/100 and 100/1,000 members/partitions) and group consume throughput; prints JSON.')
    .option('--records <n>', 'records for the throughput run', parseIntegerOption, 1_000_000)
    .option('--record-size <bytes>', 'value size of each record', parseIntegerOption, 100)
    .option('--skip-large', 'skip the 100 members / 1,000 partitions rebalance')
    .option('--heartbeat-interval-ms <ms>', 'the cluster\'s --group-heartbeat-interval-ms', parseIntegerOption, 1_000)
    .action(async (options: { records: number; recordSize: number; skipLarge?: boolean; heartbeatIntervalMs: number }) => {
      let cluster: BenchCluster | undefined;
      try {
        cluster = await BenchCluster.start(3, { subnet: SUBNET, extraArgs: ['--group-heartbeat-interval-ms', String(options.heartbeatIntervalMs)] });
        const client = new RiffleClient({ bootstrap: cluster.bootstrap, retry: { deadlineMs: 60_000 } });
        try {
          await waitUntil(async () => (await client.refreshMetadata(['__consumer_offsets'])).topics[0]?.partitions.every((partition) => partition.leaderId >= 0) ?? false, 'the offsets topic');
          const small = await rebalance(client, 10, 100);
          const large = options.skipLarge ? null : await rebalance(client, 100, 1_000);
          const throughput = await consume(client, options.records, options.recordSize);
          printJson({ benchmark: 'bench groups', heartbeatIntervalMs: options.heartbeatIntervalMs, rebalance10x100: small, rebalance100x1000: large, consume3x12: throughput });
        } finally {
          client.close();
        }
      } catch (error) {
        reportError('bench groups', error);
      } finally {
        await cluster?.stop();
      }
    });
}

async function waitUntil(condition: () => Promise<boolean> | boolean, what: string, timeoutMs = WAIT_MS_MAX): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function join(client: RiffleClient, groupId: string, topic: string, tracked: Tracked[]): Tracked {
  const entry: Tracked = { consumer: undefined as unknown as GroupConsumer, revoked: [] };
  entry.consumer = new GroupConsumer(client, {
    groupId, maxWaitMs: 500, autoCommitIntervalMs: 5_000,
    onPartitionsRevoked: (partitions: TopicPartition[]) => {
      for (const partition of partitions) entry.revoked.push(`${partition.topic}-${partition.partition}`);
    },
  });
  entry.consumer.subscribe({ topics: [topic] });
  void entry.consumer.run({ eachMessage: async () => undefined });
  tracked.push(entry);
  return entry;
}

/** Every partition owned by exactly one member and the counts balanced to within one. */
function settled(members: Tracked[], partitions: number): boolean {
  const sizes = members.map((member) => member.consumer.assignment().length);
  const total = sizes.reduce((sum, size) => sum + size, 0);
  const distinct = new Set(members.flatMap((member) => member.consumer.assignment().map((tp) => `${tp.topic}-${tp.partition}`))).size;
  return total === partitions && distinct === partitions && Math.max(...sizes) - Math.min(...sizes) <= 1;
}

async function rebalance(client: RiffleClient, memberCount: number, partitions: number): Promise<object> {
  const topic = `rebalance-${memberCount}x${partitions}`;
  const groupId = `bench-${topic}`;
  await new Admin(client).createTopic({ name: topic, partitions, replicationFactor: 1 });
  await client.topicMetadata(topic, true);
  const members: Tracked[] = [];
  const joinStarted = performance.now();
  for (let index = 0; index < memberCount; index++) join(client, groupId, topic, members);
  await waitUntil(() => settled(members, partitions), `${memberCount} members to settle`);
  const initialMs = performance.now() - joinStarted;
  for (const member of members) member.revoked.length = 0;

  const before = new Map(members.map((member) => [member, new Set(member.consumer.assignment().map((tp) => `${tp.topic}-${tp.partition}`))]));
  const gainStarted = performance.now();
  const newcomer = join(client, groupId, topic, members);
  await waitUntil(() => settled(members, partitions), 'the group to take in a new member');
  const gainMs = performance.now() - gainStarted;
  const moved = newcomer.consumer.assignment().length;
  const revokedNeedlessly = members.filter((member) => member !== newcomer).reduce((sum, member) =>
    sum + member.revoked.filter((key) => member.consumer.assignment().some((tp) => `${tp.topic}-${tp.partition}` === key) || !before.get(member)!.has(key)).length, 0);
  const revoked = members.reduce((sum, member) => sum + member.revoked.length, 0);

  // The membership change is the coordinator's acknowledgment of the leave (the last step of
  // stop(), after the leaver finished its poll and committed).
  const leaver = members.shift()!;
  await leaver.consumer.stop();
  const loseStarted = performance.now();
  await waitUntil(() => settled(members, partitions), 'the group to absorb a leaving member');
  const loseMs = performance.now() - loseStarted;
  await Promise.all(members.map((member) => member.consumer.stop()));
  return {
    members: memberCount, partitions, initialJoinMs: Math.round(initialMs), gainMemberMs: Math.round(gainMs), loseMemberMs: Math.round(loseMs),
    partitionsMovedOnGain: moved, partitionsRevokedOnGain: revoked, partitionsRevokedThatDidNotMove: revokedNeedlessly,
  };
}

async function consume(client: RiffleClient, records: number, recordSize: number): Promise<object> {
  const topic = 'group-throughput';
  await new Admin(client).createTopic({ name: topic, partitions: 12, replicationFactor: 3, configs: { 'flush.policy': 'os' } });
  const producer = new Producer(client, { acks: 1, lingerMs: 5, batchBytesMax: 256 * 1024 });
  const value = Buffer.alloc(recordSize, 'x');
  const produceStarted = performance.now();
  const window: Promise<unknown>[] = [];
  for (let index = 0; index < records; index++) {
    window.push(producer.send({ topic, key: null, value }));
    if (window.length >= 50_000) await Promise.all(window.splice(0));
  }
  await Promise.all(window);
  await producer.close();
  const produceMs = performance.now() - produceStarted;
  let consumed = 0;
  const members: GroupConsumer[] = [];
  const started = performance.now();
  for (let index = 0; index < 3; index++) {
    const consumer = new GroupConsumer(client, { groupId: 'bench-throughput', autoOffsetReset: 'earliest', maxWaitMs: 100, partitionMaxBytes: 1024 * 1024 });
    consumer.subscribe({ topics: [topic] });
    await consumer.run({ eachBatch: async ({ batch }) => void (consumed += batch.messages.length) });
    members.push(consumer);
  }
  await waitUntil(() => consumed >= records, 'every record to be consumed', 600_000);
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(members.map((member) => member.stop()));
  return {
    members: 3, partitions: 12, records, recordSize, produceRecordsPerSecond: Math.round(records / (produceMs / 1000)),
    consumeSeconds: Number(seconds.toFixed(3)), consumeRecordsPerSecond: Math.round(consumed / seconds), consumeMegabytesPerSecond: Number(((consumed * recordSize) / seconds / 1e6).toFixed(1)),
  };
}
