// Bit rot in an old segment, between real broker processes on 127.0.43.1-3: a byte flipped in a
// closed segment of a follower (while it is stopped cleanly, so its restart verifies nothing, and
// while it runs in the ISR) and of the leader (while it runs) is found by the scrubber, never served, and repaired from another
// replica: the follower cuts its log at the corrupt batch and refetches it; the leader first hands
// its leadership to another ISR member. Afterwards every replica holds byte-identical logs and a
// consumer reads every record once, in order.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Admin, PartitionConsumer, Producer, RiffleClient } from '../../src/client/index.js';
import { NodeConnection } from '../../src/rpc/client.js';
import type { DescribeLogChecksumsResponse__Output } from '../../src/rpc/generated/riffle/internal/DescribeLogChecksumsResponse.js';
import { Prng } from '../../src/util/prng.js';
import { flipByteInClosedSegment, segmentFilesOf } from '../../chaos/disk-faults.js';
import { startCluster, temporaryDir, waitFor, type TestCluster } from '../helpers/cluster.js';

const SUBNET = '127.0.43';
const SEED = Number(process.env.RIFFLE_TEST_SEED ?? Date.now() % 100_000);
const data = temporaryDir('riffle-corruption-');
let cluster: TestCluster;
let client: RiffleClient;
const random = new Prng(SEED);
const pick = (count: number): number => random.int(0, count);

beforeAll(async () => {
  process.stderr.write(`corruption-repair seed ${SEED} (RIFFLE_TEST_SEED to repeat)\n`);
  cluster = await startCluster({ subnet: SUBNET, dataDir: data.dir, controllers: 3, extraArgs: ['--log-scrub-bytes-per-second', String(4 * 1024 * 1024)] });
  client = new RiffleClient({ bootstrap: cluster.bootstrap, retry: { deadlineMs: 30_000 } });
}, 90_000);

afterAll(async () => {
  client?.close();
  await cluster?.stopAll();
  data.remove();
});

async function metric(id: number, name: string): Promise<number> {
  const text = await (await fetch(`http://${SUBNET}.${id}:19644/metrics`, { signal: AbortSignal.timeout(3_000) })).text();
  return text.split('\n').filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `)).reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

async function describe0(topic: string) {
  return (await new Admin(client).describeTopic(topic)).partitions[0]!;
}

async function produce(topic: string, from: number, count: number): Promise<void> {
  const producer = new Producer(client, { acks: 'all', lingerMs: 2, batchBytesMax: 2 * 1024, deliveryTimeoutMs: 60_000 });
  await Promise.all(Array.from({ length: count }, (_, index) => producer.send({ topic, value: `v${from + index}-${'x'.repeat(40)}` })));
  await producer.close();
}

/** Full ISR, then every replica's checksum below the high watermark is the same. */
async function expectIdenticalReplicas(topic: string): Promise<void> {
  const partition = await waitFor(async () => {
    const current = await describe0(topic);
    return current.isrNodes.length === current.replicaNodes.length ? current : undefined;
  }, { timeoutMs: 60_000, what: `full ISR of ${topic}` });
  const leader = new RiffleClient({ bootstrap: `${SUBNET}.${partition.leaderId}:19094` });
  const highWatermark = (await new Admin(leader).describeTopic(topic)).partitions[0]!.highWatermark;
  leader.close();
  const checksums = await waitFor(async () => {
    const all = await Promise.all(partition.replicaNodes.map(async (id) => {
      const connection = new NodeConnection(`${SUBNET}.${id}:19094`);
      try {
        const response = await connection.call<DescribeLogChecksumsResponse__Output>('riffle.internal.Replication', 'DescribeLogChecksums', { partitions: [{ topic, partition: 0, offset: highWatermark }] }, 5_000);
        return response.partitions[0]!;
      } finally {
        connection.close();
      }
    }));
    // A replica still refetching reports a shorter range: wait until all cover the same one.
    return all.every((checksum) => checksum.errorCode === 0 && checksum.offset === all[0]!.offset) ? all : undefined;
  }, { timeoutMs: 30_000, what: `equal checksum ranges of ${topic}` });
  expect(checksums[0]!.offset).toBeGreaterThan(0);
  for (const checksum of checksums) expect({ offset: checksum.offset, crc: checksum.crc32c, bytes: checksum.bytes }).toEqual({ offset: checksums[0]!.offset, crc: checksums[0]!.crc32c, bytes: checksums[0]!.bytes });
}

/** Reads the partition from the start: every value once, offsets without gaps. */
async function expectReadableOnce(topic: string, expected: number): Promise<void> {
  const consumer = new PartitionConsumer(client, { topic, from: 'earliest', maxWaitMs: 200 });
  const values: string[] = [];
  const offsets: number[] = [];
  await waitFor(async () => {
    for (const record of await consumer.poll()) {
      values.push(record.value!.toString());
      offsets.push(record.offset);
    }
    return values.length >= expected;
  }, { timeoutMs: 30_000, what: `${expected} records of ${topic}` });
  expect(new Set(values).size).toBe(values.length);
  offsets.forEach((offset, index) => expect(offset).toBe(index));
}

function partitionDir(id: number, topic: string): string {
  return path.join(data.dir, `node-${id}`, 'logs', `${topic}-0`);
}

describe('corrupt batch repair', () => {
  it('a follower stopped cleanly with a flipped byte in an old segment finds it after restart and refetches it', async () => {
    const topic = 'rot-follower';
    await new Admin(client).createTopic({ name: topic, partitions: 1, replicationFactor: 3, configs: { 'min.insync.replicas': '2', 'segment.bytes': '8192' } });
    await produce(topic, 0, 1_500);
    const partition = await describe0(topic);
    const followerId = partition.replicaNodes.find((id) => id !== partition.leaderId)!;
    const repairsBefore = await metric(followerId, 'riffle_log_corruption_repairs_total');
    await cluster.nodes.get(followerId)!.stop();
    expect(segmentFilesOf(partitionDir(followerId, topic)).length).toBeGreaterThan(2);
    const flipped = flipByteInClosedSegment(partitionDir(followerId, topic), pick);
    expect(flipped).not.toBeNull();
    process.stderr.write(`flipped byte ${flipped!.position} of ${flipped!.segment} (batch ${flipped!.batchBaseOffset}-${flipped!.batchLastOffset}) on follower ${followerId}\n`);
    await (await cluster.start(followerId)).waitReady(30_000);
    await waitFor(async () => (await metric(followerId, 'riffle_log_corruption_repairs_total')) > repairsBefore, { timeoutMs: 60_000, what: 'the follower to repair its log' });
    expect(await metric(followerId, 'riffle_log_corrupt_batches_total')).toBeGreaterThan(0);
    await produce(topic, 1_500, 200);
    await expectIdenticalReplicas(topic);
    await expectReadableOnce(topic, 1_700);
  }, 180_000);

  it('a follower in the ISR whose old segment rots while it runs leaves the ISR before it cuts, losing nothing committed', async () => {
    const topic = 'rot-isr-follower';
    await new Admin(client).createTopic({ name: topic, partitions: 1, replicationFactor: 3, configs: { 'min.insync.replicas': '2', 'segment.bytes': '8192' } });
    await produce(topic, 0, 1_500);
    const partition = await describe0(topic);
    expect(partition.isrNodes.length).toBe(3);
    const followerId = partition.replicaNodes.find((id) => id !== partition.leaderId)!;
    const repairsBefore = await metric(followerId, 'riffle_log_corruption_repairs_total');
    const flipped = flipByteInClosedSegment(partitionDir(followerId, topic), pick);
    expect(flipped).not.toBeNull();
    process.stderr.write(`flipped byte ${flipped!.position} of ${flipped!.segment} (batch ${flipped!.batchBaseOffset}-${flipped!.batchLastOffset}) on running follower ${followerId}\n`);
    await waitFor(async () => (await metric(followerId, 'riffle_log_corruption_repairs_total')) > repairsBefore, { timeoutMs: 60_000, what: 'the follower to repair its log' });
    await produce(topic, 1_500, 200);
    await expectIdenticalReplicas(topic);
    await expectReadableOnce(topic, 1_700);
  }, 180_000);

  it('a leader whose old segment rots while it runs resigns, repairs as a follower, and serves nothing corrupt', async () => {
    const topic = 'rot-leader';
    await new Admin(client).createTopic({ name: topic, partitions: 1, replicationFactor: 3, configs: { 'min.insync.replicas': '2', 'segment.bytes': '8192' } });
    await produce(topic, 0, 1_500);
    const before = await describe0(topic);
    const leaderId = before.leaderId;
    const resignationsBefore = await metric(leaderId, 'riffle_broker_corrupt_leader_resignations_total');
    const repairsBefore = await metric(leaderId, 'riffle_log_corruption_repairs_total');
    // Written under the running process: the page cache it reads from is the file's.
    const flipped = flipByteInClosedSegment(partitionDir(leaderId, topic), pick);
    expect(flipped).not.toBeNull();
    process.stderr.write(`flipped byte ${flipped!.position} of ${flipped!.segment} (batch ${flipped!.batchBaseOffset}-${flipped!.batchLastOffset}) on leader ${leaderId}\n`);
    await waitFor(async () => (await metric(leaderId, 'riffle_broker_corrupt_leader_resignations_total')) > resignationsBefore, { timeoutMs: 30_000, what: 'the leader to resign' });
    await waitFor(async () => (await metric(leaderId, 'riffle_log_corruption_repairs_total')) > repairsBefore, { timeoutMs: 30_000, what: 'the old leader to repair its log' });
    const after = await describe0(topic);
    expect(after.leaderEpoch).toBeGreaterThan(before.leaderEpoch);
    await produce(topic, 1_500, 200);
    await expectIdenticalReplicas(topic);
    await expectReadableOnce(topic, 1_700);
  }, 180_000);
});
