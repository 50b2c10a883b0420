// Idempotent producers against a real `riffle server` process on 127.0.7.10: a produce request
// sent twice is written once and both answers carry the original offset; a zombie producer is
// fenced after an epoch bump; the SDK producer rides through a restart of the node (SIGTERM)
// with every record in the log exactly once and in order; and it recovers by itself when the
// broker no longer knows its sequences (the topic was deleted and created again).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Admin, Producer, RiffleClient, type RecordMetadata } from '../../src/client/index.js';
import { NodeConnection } from '../../src/rpc/client.js';
import { ERRORS } from '../../src/rpc/errors.js';
import { decodeAllRecords, encodeRecordBatch } from '../../src/util/record-batch.js';
import type { NodeProcess } from '../../src/cli/node-process.js';
import { startNode, temporaryDir, waitFor } from '../helpers/cluster.js';
import type { ProduceResponse__Output } from '../../src/rpc/generated/riffle/v1/ProduceResponse.js';
import type { FetchResponse__Output } from '../../src/rpc/generated/riffle/v1/FetchResponse.js';
import type { InitProducerIdResponse__Output } from '../../src/rpc/generated/riffle/v1/InitProducerIdResponse.js';

const HOST = '127.0.7.10';
const CALL_TIMEOUT_MS = 10_000;
const data = temporaryDir('riffle-idempotence-');
let node: NodeProcess;
let ports: { grpc: number; controller: number; http: number };
let connection: NodeConnection;

beforeAll(async () => {
  node = await startNode({ host: HOST, dataDir: data.dir });
  ports = { grpc: node.options.grpcPort, controller: node.options.controllerPort, http: node.options.httpPort };
  connection = new NodeConnection(node.bootstrap);
});

afterAll(async () => {
  connection?.close();
  await node?.stop();
  data.remove();
});

async function createTopic(name: string): Promise<void> {
  const client = new RiffleClient({ bootstrap: node.bootstrap });
  try {
    await new Admin(client).createTopic({ name, partitions: 1 });
  } finally {
    client.close();
  }
}

async function initProducerId(producerId = -1, producerEpoch = -1, transactionalId = ''): Promise<InitProducerIdResponse__Output> {
  return connection.call<InitProducerIdResponse__Output>('riffle.v1.Kafka', 'InitProducerId', { transactionalId, producerId, producerEpoch }, CALL_TIMEOUT_MS);
}

async function produce(topic: string, records: Buffer): Promise<{ errorCode: number; baseOffset: number }> {
  const response = await connection.call<ProduceResponse__Output>('riffle.v1.Kafka', 'Produce', {
    acks: -1, timeoutMs: 5_000, topicData: [{ name: topic, partitionData: [{ index: 0, records }] }],
  }, CALL_TIMEOUT_MS);
  const result = response.responses[0]!.partitionResponses[0]!;
  return { errorCode: result.errorCode, baseOffset: Number(result.baseOffset) };
}

function batch(values: string[], producer?: { producerId: number; producerEpoch: number; baseSequence: number }): Buffer {
  return encodeRecordBatch(values.map((value) => ({ key: null, value: Buffer.from(value) })), producer ?? {});
}

/** The node's count of retried batches it recognised as written before. */
async function duplicateBatches(): Promise<number> {
  const text = await (await fetch(`${node.httpUrl}/metrics`)).text();
  const line = text.split('\n').find((candidate) => candidate.startsWith('riffle_broker_produce_duplicate_batches'));
  expect(line).toBeDefined();
  return Number(line!.slice(line!.lastIndexOf(' ') + 1));
}

/** Every value in partition 0 of `topic`, read with raw fetches from offset 0. */
async function readAll(topic: string): Promise<string[]> {
  const values: string[] = [];
  for (let offset = 0; ;) {
    const response = await connection.call<FetchResponse__Output>('riffle.v1.Kafka', 'Fetch', {
      maxWaitMs: 0, minBytes: 0, maxBytes: 8 << 20, topics: [{ topic, partitions: [{ partition: 0, fetchOffset: offset, partitionMaxBytes: 8 << 20, currentLeaderEpoch: -1 }] }],
    }, CALL_TIMEOUT_MS);
    const partition = response.responses[0]!.partitions[0]!;
    expect(partition.errorCode).toBe(0);
    const records = [...decodeAllRecords(partition.records)].filter((record) => record.offset >= offset);
    if (records.length === 0) return values;
    for (const record of records) values.push(record.value!.toString());
    offset = records[records.length - 1]!.offset + 1;
  }
}

describe('idempotent produce on the broker', () => {
  it('writes a repeated request once and answers both with the original offset', async () => {
    await createTopic('dedup');
    const id = await initProducerId();
    expect(id).toMatchObject({ errorCode: 0, producerEpoch: 0 });
    const producerId = Number(id.producerId);
    expect(producerId).toBeGreaterThanOrEqual(0);
    const first = batch(['a', 'b', 'c'], { producerId, producerEpoch: 0, baseSequence: 0 });
    expect(await produce('dedup', first)).toEqual({ errorCode: 0, baseOffset: 0 });
    expect(await produce('dedup', first)).toEqual({ errorCode: 0, baseOffset: 0 });
    // Another writer in between does not hide the retry.
    expect(await produce('dedup', batch(['other']))).toEqual({ errorCode: 0, baseOffset: 3 });
    expect(await produce('dedup', first)).toEqual({ errorCode: 0, baseOffset: 0 });
    expect(await produce('dedup', batch(['d'], { producerId, producerEpoch: 0, baseSequence: 3 }))).toEqual({ errorCode: 0, baseOffset: 4 });
    // A gap is refused and writes nothing.
    const gap = await produce('dedup', batch(['x'], { producerId, producerEpoch: 0, baseSequence: 9 }));
    expect(gap.errorCode).toBe(ERRORS.OUT_OF_ORDER_SEQUENCE_NUMBER.code);
    expect(await readAll('dedup')).toEqual(['a', 'b', 'c', 'other', 'd']);
  });

  it('fences a zombie producer once its epoch was bumped', async () => {
    await createTopic('zombie');
    const id = await initProducerId();
    const producerId = Number(id.producerId);
    expect(await produce('zombie', batch(['z0'], { producerId, producerEpoch: 0, baseSequence: 0 }))).toEqual({ errorCode: 0, baseOffset: 0 });
    const bumped = await initProducerId(producerId, 0);
    expect(bumped).toMatchObject({ errorCode: 0, producerEpoch: 1 });
    expect(Number(bumped.producerId)).toBe(producerId);
    expect(await produce('zombie', batch(['n0'], { producerId, producerEpoch: 1, baseSequence: 0 }))).toEqual({ errorCode: 0, baseOffset: 1 });
    const zombie = await produce('zombie', batch(['z1'], { producerId, producerEpoch: 0, baseSequence: 1 }));
    expect(zombie.errorCode).toBe(ERRORS.INVALID_PRODUCER_EPOCH.code);
    expect(await readAll('zombie')).toEqual(['z0', 'n0']);
    // Transactions and ids nobody was given are refused.
    expect((await initProducerId(-1, -1, 'txn')).errorCode).toBe(ERRORS.INVALID_REQUEST.code);
    expect((await initProducerId(10 ** 12, 0)).errorCode).toBe(ERRORS.UNKNOWN_PRODUCER_ID.code);
  });
});

describe('the idempotent SDK producer', () => {
  it('resends across a node restart (SIGTERM) and the log holds every record once, in order', async () => {
    await createTopic('restarts');
    const client = new RiffleClient({ bootstrap: node.bootstrap, retry: { deadlineMs: 60_000 } });
    const producer = new Producer(client, { lingerMs: 1, batchBytesMax: 2 * 1024, deliveryTimeoutMs: 90_000, maxBlockMs: 60_000 });
    expect(producer.idempotent).toBe(true);
    const total = 4_000;
    const sent: Promise<RecordMetadata>[] = [];
    let acknowledged = 0;
    let restart: Promise<void> | undefined;
    try {
      for (let index = 0; index < total; index++) {
        sent.push(producer.send({ topic: 'restarts', partition: 0, value: `r-${index}` }).then((metadata) => {
          acknowledged++;
          return metadata;
        }));
        // Keep a window of outstanding records, so the restart hits the producer mid-stream.
        if (index % 200 === 199) await waitFor(() => acknowledged >= index - 600, { timeoutMs: 60_000, what: 'acknowledgements' });
        if (index === total / 4) {
          restart = (async () => {
            expect(await node.stop(30_000)).toBe(0);
            node = await startNode({ host: HOST, dataDir: data.dir, ports });
          })();
        }
      }
      await restart;
      const metadata = await Promise.all(sent);
      await producer.close();
      const values = await readAll('restarts');
      expect(values.length).toBe(total);
      expect(values).toEqual(Array.from({ length: total }, (_, index) => `r-${index}`));
      // Offsets the producer reported point at the records (duplicates answer -1 only when unknown).
      for (const [index, record] of metadata.entries()) if (record.offset >= 0) expect(record.offset).toBe(index);
    } finally {
      client.close();
    }
  });

  it('retries batches answered REQUEST_TIMED_OUT after they were written, without a second copy', async () => {
    await createTopic('timeouts');
    const client = new RiffleClient({ bootstrap: node.bootstrap });
    // The broker answers REQUEST_TIMED_OUT when the fsync takes longer than 1 ms, after writing:
    // without idempotence each such retry would be a second copy.
    const producer = new Producer(client, { lingerMs: 1, batchBytesMax: 1024, requestTimeoutMs: 1, deliveryTimeoutMs: 60_000 });
    const total = 600;
    try {
      const duplicatesBefore = await duplicateBatches();
      await Promise.all(Array.from({ length: total }, (_, index) => producer.send({ topic: 'timeouts', partition: 0, value: `t-${index}` })));
      await producer.close();
      expect(await readAll('timeouts')).toEqual(Array.from({ length: total }, (_, index) => `t-${index}`));
      expect(await duplicateBatches()).toBeGreaterThan(duplicatesBefore);
    } finally {
      client.close();
    }
  });

  it('recovers by itself when the broker has lost its sequences: bumps the epoch and resends', async () => {
    await createTopic('reborn');
    const client = new RiffleClient({ bootstrap: node.bootstrap });
    const admin = new Admin(client);
    const producer = new Producer(client, { lingerMs: 0, deliveryTimeoutMs: 60_000 });
    try {
      for (let index = 0; index < 5; index++) await producer.send({ topic: 'reborn', partition: 0, value: `old-${index}` });
      const before = producer.producerIdentity!;
      await admin.deleteTopic('reborn');
      await admin.createTopic({ name: 'reborn', partitions: 1 });
      // The new partition has never seen this producer, so sequence 5 is a gap there.
      const results = await Promise.all(Array.from({ length: 5 }, (_, index) => producer.send({ topic: 'reborn', partition: 0, value: `new-${index}` })));
      expect(results.map((result) => result.offset)).toEqual([0, 1, 2, 3, 4]);
      expect(producer.producerIdentity).toEqual({ producerId: before.producerId, epoch: before.epoch + 1 });
      expect(await readAll('reborn')).toEqual(['new-0', 'new-1', 'new-2', 'new-3', 'new-4']);
      await producer.close();
    } finally {
      client.close();
    }
  });

  it('refuses idempotence without acks=all, and turns it off for acks 0 or 1 unless asked', () => {
    const client = new RiffleClient({ bootstrap: node.bootstrap });
    try {
      expect(() => new Producer(client, { acks: 1, idempotent: true })).toThrow(expect.objectContaining({ errorName: 'INVALID_CONFIG' }));
      expect(new Producer(client, { acks: 1 }).idempotent).toBe(false);
      expect(new Producer(client, { acks: 'all', idempotent: false }).idempotent).toBe(false);
      expect(new Producer(client).idempotent).toBe(true);
    } finally {
      client.close();
    }
  });
});
