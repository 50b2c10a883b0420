// Idempotent producer state survives a leader change: three real nodes on 127.0.7.1-3, a topic
// with three replicas; after the leader stops (SIGTERM, controlled shutdown), the new leader,
// which followed the producer's batches as a follower, recognises a retry of the old leader's
// last batch, answers it with the original offset and does not write it again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Admin, RiffleClient } from '../../src/client/index.js';
import { NodeConnection } from '../../src/rpc/client.js';
import { ERRORS } from '../../src/rpc/errors.js';
import { decodeAllRecords, encodeRecordBatch } from '../../src/util/record-batch.js';
import { startCluster, temporaryDir, waitFor, type TestCluster } from '../helpers/cluster.js';
import type { ProduceResponse__Output } from '../../src/rpc/generated/riffle/v1/ProduceResponse.js';
import type { FetchResponse__Output } from '../../src/rpc/generated/riffle/v1/FetchResponse.js';
import type { InitProducerIdResponse__Output } from '../../src/rpc/generated/riffle/v1/InitProducerIdResponse.js';

const SUBNET = '127.0.7';
const PORT = 19094;
const CALL_TIMEOUT_MS = 10_000;
const data = temporaryDir('riffle-idempotence-failover-');
let cluster: TestCluster;
let client: RiffleClient;

beforeAll(async () => {
  cluster = await startCluster({ subnet: SUBNET, dataDir: data.dir, controllers: 3 });
  client = new RiffleClient({ bootstrap: cluster.bootstrap, retry: { deadlineMs: 30_000 } });
}, 90_000);

afterAll(async () => {
  client?.close();
  await cluster?.stopAll();
  data.remove();
});

async function onNode<Response>(id: number, method: string, request: object): Promise<Response> {
  const connection = new NodeConnection(`${SUBNET}.${id}:${PORT}`);
  try {
    return await connection.call<Response>('riffle.v1.Kafka', method, request, CALL_TIMEOUT_MS);
  } finally {
    connection.close();
  }
}

async function produceTo(id: number, records: Buffer): Promise<{ errorCode: number; baseOffset: number }> {
  const response = await onNode<ProduceResponse__Output>(id, 'Produce', { acks: -1, timeoutMs: 5_000, topicData: [{ name: 'moves', partitionData: [{ index: 0, records }] }] });
  const result = response.responses[0]!.partitionResponses[0]!;
  return { errorCode: result.errorCode, baseOffset: Number(result.baseOffset) };
}

async function leaderOf(topic: string, not?: number): Promise<number> {
  return waitFor(async () => {
    const partition = (await new Admin(client).describeTopic(topic)).partitions[0]!;
    return partition.leaderId >= 0 && partition.leaderId !== not && partition.isrNodes.length >= 2 ? partition.leaderId : undefined;
  }, { timeoutMs: 30_000, what: `a leader of ${topic}` });
}

describe('idempotent produce across a leader change', () => {
  it('the new leader answers a retry of the old leader\'s last batch with its original offset', async () => {
    await new Admin(client).createTopic({ name: 'moves', partitions: 1, replicationFactor: 3 });
    const leader = await leaderOf('moves');
    // Right after start the broker may not have its first producer id block from the controller
    // yet: COORDINATOR_LOAD_IN_PROGRESS is retriable (a Kafka client retries it); nothing else is.
    const init = await waitFor(async () => {
      const answer = await onNode<InitProducerIdResponse__Output>(leader, 'InitProducerId', { transactionalId: '', producerId: -1, producerEpoch: -1 });
      if (answer.errorCode === ERRORS.COORDINATOR_LOAD_IN_PROGRESS.code) return undefined;
      return answer;
    }, { timeoutMs: 10_000, what: 'a producer id from the leader' });
    expect(init.errorCode).toBe(0);
    const producer = { producerId: Number(init.producerId), producerEpoch: init.producerEpoch };
    const batchOf = (label: string, baseSequence: number): Buffer =>
      encodeRecordBatch([0, 1, 2].map((index) => ({ key: null, value: Buffer.from(`${label}${index}`) })), { ...producer, baseSequence });
    // The broker that answered the describe may have applied the election before the leader did:
    // the leader may still say NOT_LEADER_OR_FOLLOWER for a moment (the batch is idempotent).
    const first = await waitFor(async () => {
      const answer = await produceTo(leader, batchOf('a', 0));
      return answer.errorCode === 0 ? answer : undefined;
    }, { timeoutMs: 10_000, what: 'the first batch on the leader' });
    expect(first).toEqual({ errorCode: 0, baseOffset: 0 });
    const last = batchOf('b', 3);
    expect(await produceTo(leader, Buffer.from(last))).toEqual({ errorCode: 0, baseOffset: 3 });

    expect(await cluster.nodes.get(leader)!.stop(30_000)).toBe(0);
    const next = await leaderOf('moves', leader);
    // acks=all answered, so every ISR member has both batches; the retry is not written again.
    const retried = await waitFor(async () => {
      const answer = await produceTo(next, Buffer.from(last));
      return answer.errorCode === 0 ? answer : undefined;
    }, { timeoutMs: 30_000, what: 'the retry on the new leader' });
    expect(retried).toEqual({ errorCode: 0, baseOffset: 3 });
    expect(await produceTo(next, batchOf('c', 6))).toEqual({ errorCode: 0, baseOffset: 6 });

    const fetched = await onNode<FetchResponse__Output>(next, 'Fetch', {
      maxWaitMs: 0, minBytes: 0, maxBytes: 1 << 20, topics: [{ topic: 'moves', partitions: [{ partition: 0, fetchOffset: 0, partitionMaxBytes: 1 << 20, currentLeaderEpoch: -1 }] }],
    });
    const values = [...decodeAllRecords(fetched.responses[0]!.partitions[0]!.records)].map((record) => record.value!.toString());
    expect(values).toEqual(['a0', 'a1', 'a2', 'b0', 'b1', 'b2', 'c0', 'c1', 'c2']);
  }, 120_000);
});
