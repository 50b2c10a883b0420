// A real `riffle server` process on 127.0.1.1: the CLI and the SDK against it, restarts (clean
// and kill -9), long-polling fetches, and bad input that must get typed errors without taking
// the node down.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Admin, PartitionConsumer, Producer, RiffleClient } from '../../src/client/index.js';
import { NodeConnection } from '../../src/rpc/client.js';
import { ERRORS, RiffleError } from '../../src/rpc/errors.js';
import { encodeRecordBatch } from '../../src/util/record-batch.js';
import type { NodeProcess } from '../../src/cli/node-process.js';
import { runCli, startNode, temporaryDir, waitFor } from '../helpers/cluster.js';
import type { ProduceResponse__Output } from '../../src/rpc/generated/riffle/v1/ProduceResponse.js';
import type { FetchResponse__Output } from '../../src/rpc/generated/riffle/v1/FetchResponse.js';
import type { ListOffsetsResponse__Output } from '../../src/rpc/generated/riffle/v1/ListOffsetsResponse.js';

const HOST = '127.0.1.1';
const data = temporaryDir('riffle-single-node-');
let node: NodeProcess;
let ports: { grpc: number; controller: number; http: number };

async function restart(how: 'sigterm' | 'sigkill'): Promise<void> {
  if (how === 'sigterm') expect(await node.stop()).toBe(0);
  else await node.kill();
  node = await startNode({ host: HOST, dataDir: data.dir, ports });
}

beforeAll(async () => {
  node = await startNode({ host: HOST, dataDir: data.dir });
  ports = { grpc: node.options.grpcPort, controller: node.options.controllerPort, http: node.options.httpPort };
});

afterAll(async () => {
  await node?.stop();
  data.remove();
});

describe('single node through the CLI', () => {
  it('creates a topic, produces lines, consumes them, and reads them back after a restart', async () => {
    const bootstrap = ['--bootstrap', node.bootstrap];
    const created = await runCli(['topic', 'create', 'lines', '--partitions', '3', ...bootstrap]);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const lines = Array.from({ length: 50 }, (_, index) => `key-${index % 7}:value ${index}`);
    const produced = await runCli(['produce', 'lines', '--key-separator', ':', '--json', ...bootstrap], { input: `${lines.join('\n')}\n` });
    expect(produced.code).toBe(0);
    expect(JSON.parse(produced.stdout)).toMatchObject({ records: 50, acknowledged: 50, failed: 0 });

    const expected = lines.map((line) => line.slice(line.indexOf(':') + 1)).sort();
    const consumed = await runCli(['consume', 'lines', '--from-beginning', '--max-messages', '50', ...bootstrap]);
    expect(consumed.code).toBe(0);
    expect(consumed.stdout.trim().split('\n').sort()).toEqual(expected);

    await restart('sigterm');
    const again = await runCli(['consume', 'lines', '--from-beginning', '--max-messages', '50', '--json', ...bootstrap]);
    expect(again.code).toBe(0);
    const records = again.stdout.trim().split('\n').map((line) => JSON.parse(line) as { key: string; value: string; partition: number });
    expect(records.map((record) => record.value).sort()).toEqual(expected);
    // The same key always went to the same partition.
    const partitionOfKey = new Map<string, number>();
    for (const record of records) {
      expect(partitionOfKey.get(record.key) ?? record.partition).toBe(record.partition);
      partitionOfKey.set(record.key, record.partition);
    }
  });

  it('lists, describes and deletes topics, and reports the cluster', async () => {
    const bootstrap = ['--bootstrap', node.bootstrap];
    expect((await runCli(['topic', 'create', 'doomed', '--config', 'retention.ms=60000', ...bootstrap])).code).toBe(0);
    const listed = await runCli(['topic', 'list', '--json', ...bootstrap]);
    expect((JSON.parse(listed.stdout) as { name: string }[]).map((topic) => topic.name)).toContain('doomed');
    const described = await runCli(['topic', 'describe', 'doomed', '--json', ...bootstrap]);
    const description = JSON.parse(described.stdout) as { partitions: { leaderId: number }[]; configs: { name: string; value: string }[] };
    expect(description.partitions).toHaveLength(1);
    expect(description.partitions[0]!.leaderId).toBe(1);
    expect(description.configs).toContainEqual({ name: 'retention.ms', value: '60000' });
    const status = await runCli(['cluster', 'status', '--json', ...bootstrap]);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ controllerId: 1, brokers: [{ brokerId: 1, rack: 'a', state: 'active' }] });
    expect((await runCli(['topic', 'delete', 'doomed', ...bootstrap])).code).toBe(0);
    const missing = await runCli(['topic', 'describe', 'doomed', ...bootstrap]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('UNKNOWN_TOPIC_OR_PARTITION');
  });

  it('exits non-zero with a clear message when the cluster cannot be reached', async () => {
    const result = await runCli(['cluster', 'status', '--bootstrap', '127.0.1.1:1']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/NETWORK_EXCEPTION/);
  });

  it('exits non-zero from produce when records are not acknowledged', async () => {
    const result = await runCli(['produce', 'no-such-topic', '--bootstrap', node.bootstrap], { input: 'one\ntwo\n' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('UNKNOWN_TOPIC_OR_PARTITION');
  });

  it('refuses bad topic requests with typed errors', async () => {
    const bootstrap = ['--bootstrap', node.bootstrap];
    const badName = await runCli(['topic', 'create', 'bad/name', ...bootstrap]);
    expect(badName.stderr).toContain('INVALID_TOPIC_EXCEPTION');
    const replication = await runCli(['topic', 'create', 'replicated', '--replication-factor', '3', ...bootstrap]);
    expect(replication.stderr).toContain('INVALID_REPLICATION_FACTOR');
    const config = await runCli(['topic', 'create', 'configured', '--config', 'no.such.config=1', ...bootstrap]);
    expect(config.stderr).toContain('INVALID_CONFIG');
    const partitions = await runCli(['topic', 'create', 'zero', '--partitions', '0', ...bootstrap]);
    expect(partitions.stderr).toContain('INVALID_PARTITIONS');
    expect((await runCli(['topic', 'create', 'once', ...bootstrap])).code).toBe(0);
    const duplicate = await runCli(['topic', 'create', 'once', ...bootstrap]);
    expect(duplicate.stderr).toContain('TOPIC_ALREADY_EXISTS');
  });
});

describe('single node through the SDK', () => {
  it('long-polls: a waiting fetch returns as soon as a record is produced', async () => {
    const client = new RiffleClient({ bootstrap: node.bootstrap });
    try {
      await new Admin(client).createTopic({ name: 'long-poll', partitions: 1 });
      // The topic is empty, so offset 0 is its end: the first poll has nothing to return yet.
      const consumer = new PartitionConsumer(client, { topic: 'long-poll', from: 0, maxWaitMs: 10_000 });
      const pollStarted = Date.now();
      const polled = consumer.poll();
      const producer = new Producer(client, { acks: 1, lingerMs: 0 });
      await new Promise((resolve) => setTimeout(resolve, 200));
      const sent = await producer.send({ topic: 'long-poll', key: 'k', value: 'hello' });
      const records = await polled;
      expect(records.map((record) => record.value?.toString())).toEqual(['hello']);
      expect(records[0]!.offset).toBe(sent.offset);
      // It answered on the produce, long before its 10 s max wait.
      expect(Date.now() - pollStarted).toBeLessThan(5_000);
      await producer.close();
    } finally {
      client.close();
    }
  });

  it("pipelines the SDK's produce and fetch requests on streams; a bad request on one is a typed error", async () => {
    const client = new RiffleClient({ bootstrap: node.bootstrap });
    const connection = new NodeConnection(node.bootstrap);
    try {
      await new Admin(client).createTopic({ name: 'pipelined', partitions: 1 });
      const producer = new Producer(client, { acks: 1, lingerMs: 0 });
      for (let index = 0; index < 20; index++) await producer.send({ topic: 'pipelined', key: null, value: `v${index}` });
      await producer.close();
      const consumer = new PartitionConsumer(client, { topic: 'pipelined', from: 0, maxWaitMs: 500 });
      const values: string[] = [];
      await waitFor(async () => {
        for (const record of await consumer.poll()) values.push(record.value!.toString());
        return values.length >= 20;
      }, { timeoutMs: 10_000, what: '20 records' });
      expect(values).toEqual(Array.from({ length: 20 }, (_, index) => `v${index}`));
      const metrics = await (await fetch(`${node.httpUrl}/metrics`)).text();
      const served = (method: string): number => Number(metrics.match(new RegExp(`^riffle_rpc_requests_total\\{service="kafka",method="${method}",outcome="ok"[^}]*\\} (\\d+)`, 'm'))?.[1] ?? 0);
      expect(served('ProduceStream')).toBeGreaterThanOrEqual(20);
      expect(served('FetchStream')).toBeGreaterThanOrEqual(1);

      const stream = connection.pipelined<object, ProduceResponse__Output>('riffle.v1.Kafka', 'ProduceStream');
      const badAcks = await stream.call({ acks: 7, timeoutMs: 1_000, topicData: [] }, 5_000).then(() => undefined, (error: unknown) => error);
      expect(badAcks).toBeInstanceOf(RiffleError);
      expect((badAcks as RiffleError).errorName).toBe('INVALID_REQUIRED_ACKS');
      const unknown = await stream.call({ acks: 1, timeoutMs: 1_000, topicData: [{ name: 'no-such-topic', partitionData: [{ index: 0, records: encodeRecordBatch([{ key: null, value: Buffer.from('x') }]) }] }] }, 5_000);
      expect(unknown.responses[0]!.partitionResponses[0]!.errorCode).toBe(ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code);
      // The same stream goes on serving.
      const good = await stream.call({ acks: 1, timeoutMs: 1_000, topicData: [{ name: 'pipelined', partitionData: [{ index: 0, records: encodeRecordBatch([{ key: null, value: Buffer.from('after') }]) }] }] }, 5_000);
      expect(good.responses[0]!.partitionResponses[0]!.errorCode).toBe(0);
      expect(Number(good.responses[0]!.partitionResponses[0]!.baseOffset)).toBe(20);
      expect(node.running).toBe(true);
    } finally {
      connection.close();
      client.close();
    }
  });

  it('keeps every acknowledged record across kill -9 with flush policy ack', async () => {
    const client = new RiffleClient({ bootstrap: node.bootstrap });
    const count = 2_000;
    try {
      await new Admin(client).createTopic({ name: 'durable', partitions: 2, configs: { 'flush.policy': 'ack' } });
      const producer = new Producer(client, { acks: -1, lingerMs: 2, batchBytesMax: 16 * 1024 });
      const results = await Promise.all(Array.from({ length: count }, (_, index) => producer.send({ topic: 'durable', key: `k${index}`, value: `v${index}` })));
      await producer.close();
      expect(new Set(results.map((result) => `${result.partition}/${result.offset}`)).size).toBe(count);
    } finally {
      client.close();
    }
    await restart('sigkill');
    const reader = new RiffleClient({ bootstrap: node.bootstrap });
    try {
      const consumer = new PartitionConsumer(reader, { topic: 'durable', from: 'earliest', maxWaitMs: 200 });
      const values = new Set<string>();
      await waitFor(async () => {
        for (const record of await consumer.poll()) values.add(record.value!.toString());
        return values.size >= count;
      }, { timeoutMs: 20_000, what: 'all acknowledged records after kill -9' });
      expect(values.size).toBe(count);
    } finally {
      reader.close();
    }
  });

  it('retries through a node restart: every send resolves and every record is readable', async () => {
    const client = new RiffleClient({ bootstrap: node.bootstrap });
    const count = 300;
    try {
      await new Admin(client).createTopic({ name: 'restarts', partitions: 2 });
      const producer = new Producer(client, { acks: -1, lingerMs: 1, batchBytesMax: 1024, deliveryTimeoutMs: 60_000 });
      const sends: Promise<unknown>[] = [];
      for (let index = 0; index < count / 2; index++) sends.push(producer.send({ topic: 'restarts', key: `k${index}`, value: `v${index}` }));
      const restarted = restart('sigterm');
      for (let index = count / 2; index < count; index++) sends.push(producer.send({ topic: 'restarts', key: `k${index}`, value: `v${index}` }));
      await restarted;
      await Promise.all(sends);
      await producer.close();
      const consumer = new PartitionConsumer(client, { topic: 'restarts', from: 'earliest', maxWaitMs: 200 });
      const values = new Set<string>();
      await waitFor(async () => {
        for (const record of await consumer.poll()) values.add(record.value!.toString());
        return values.size >= count;
      }, { timeoutMs: 20_000, what: 'every record sent across the restart' });
      // Without idempotence a resend may duplicate, but nothing acknowledged is missing.
      expect(values.size).toBe(count);
    } finally {
      client.close();
    }
  });

  it('serves a backlog older than the tail cache from the segment files, every record once and in order', async () => {
    const client = new RiffleClient({ bootstrap: node.bootstrap });
    const count = 3_000;
    const fetchReads = async (): Promise<number> => {
      const text = await (await fetch(`${node.httpUrl}/metrics`)).text();
      const line = text.split('\n').find((candidate) => candidate.startsWith('riffle_log_fetch_read_duration_seconds_count'));
      return line === undefined ? 0 : Number(line.split(' ').at(-1));
    };
    try {
      // 3 MB over 256 KiB segments: most of it is past the broker's 1 MiB tail cache.
      await new Admin(client).createTopic({ name: 'backlog', partitions: 1, configs: { 'segment.bytes': String(256 * 1024) } });
      const producer = new Producer(client, { acks: -1, lingerMs: 2, batchBytesMax: 64 * 1024 });
      await Promise.all(Array.from({ length: count }, (_, index) => producer.send({ topic: 'backlog', value: `${index}:${'b'.repeat(1000)}` })));
      await producer.close();
      const readsBefore = await fetchReads();
      const consumer = new PartitionConsumer(client, { topic: 'backlog', from: 'earliest', maxWaitMs: 200 });
      const indexes: number[] = [];
      await waitFor(async () => {
        for (const record of await consumer.poll()) {
          expect(record.offset).toBe(indexes.length);
          indexes.push(Number(record.value!.toString().split(':')[0]));
        }
        return indexes.length >= count;
      }, { timeoutMs: 30_000, what: 'the whole backlog' });
      expect(indexes).toEqual(Array.from({ length: count }, (_, index) => index));
      expect(await fetchReads()).toBeGreaterThan(readsBefore);
    } finally {
      client.close();
    }
  });

  it('answers ListOffsets for earliest, latest and by timestamp', async () => {
    const client = new RiffleClient({ bootstrap: node.bootstrap });
    try {
      await new Admin(client).createTopic({ name: 'timed', partitions: 1 });
      const producer = new Producer(client, { acks: 1, lingerMs: 0 });
      const base = Date.now() - 60_000;
      for (let index = 0; index < 10; index++) await producer.send({ topic: 'timed', value: `v${index}`, timestamp: base + index * 1_000 });
      await producer.close();
      const connection = new NodeConnection(node.bootstrap);
      const ask = (timestamp: number): Promise<ListOffsetsResponse__Output> =>
        connection.call('riffle.v1.Kafka', 'ListOffsets', { topics: [{ name: 'timed', partitions: [{ partitionIndex: 0, currentLeaderEpoch: -1, timestamp }] }] }, 5_000);
      expect((await ask(-2)).topics[0]!.partitions[0]!.offset).toBe(0);
      expect((await ask(-1)).topics[0]!.partitions[0]!.offset).toBe(10);
      expect((await ask(base + 4_500)).topics[0]!.partitions[0]).toMatchObject({ offset: 5, timestamp: base + 5_000 });
      expect((await ask(base + 100_000)).topics[0]!.partitions[0]!.offset).toBe(-1);
      connection.close();
    } finally {
      client.close();
    }
  });
});

describe('bad input never takes the node down', () => {
  let connection: NodeConnection;
  beforeAll(async () => {
    connection = new NodeConnection(node.bootstrap);
    const client = new RiffleClient({ bootstrap: node.bootstrap });
    await new Admin(client).createTopic({ name: 'guarded', partitions: 1 });
    client.close();
  });
  afterAll(() => connection.close());

  const produce = (records: Buffer, options: { topic?: string; partition?: number; acks?: number } = {}): Promise<ProduceResponse__Output> =>
    connection.call('riffle.v1.Kafka', 'Produce', {
      acks: options.acks ?? 1,
      timeoutMs: 5_000,
      topicData: [{ name: options.topic ?? 'guarded', partitionData: [{ index: options.partition ?? 0, records }] }],
    }, 10_000);
  const errorOf = (response: ProduceResponse__Output): number => response.responses[0]!.partitionResponses[0]!.errorCode;

  it('rejects garbage, a flipped CRC, a truncated batch and an oversized batch, and keeps serving', async () => {
    expect(errorOf(await produce(Buffer.from('definitely not a record batch, but long enough to parse a header from it at all')))).toBe(ERRORS.CORRUPT_MESSAGE.code);
    const good = encodeRecordBatch([{ key: null, value: Buffer.from('fine') }]);
    const flipped = Buffer.from(good);
    flipped[flipped.length - 1]! ^= 0x01;
    expect(errorOf(await produce(flipped))).toBe(ERRORS.CORRUPT_MESSAGE.code);
    expect(errorOf(await produce(good.subarray(0, good.length - 3)))).toBe(ERRORS.CORRUPT_MESSAGE.code);
    const huge = encodeRecordBatch([{ key: null, value: Buffer.alloc(2 * 1024 * 1024) }]);
    expect(errorOf(await produce(huge))).toBe(ERRORS.MESSAGE_TOO_LARGE.code);
    expect(errorOf(await produce(Buffer.alloc(0)))).not.toBe(0);
    // Nothing of the above was stored; the good batch still lands at offset 0.
    const accepted = await produce(good);
    expect(accepted.responses[0]!.partitionResponses[0]).toMatchObject({ errorCode: 0, baseOffset: 0 });
  });

  it('answers unknown topics and partitions, bad acks and wrong epochs with typed errors', async () => {
    const good = encodeRecordBatch([{ key: null, value: Buffer.from('x') }]);
    expect(errorOf(await produce(good, { topic: 'no-such-topic' }))).toBe(ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code);
    expect(errorOf(await produce(good, { partition: 9 }))).toBe(ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code);
    await expect(produce(good, { acks: 2 })).rejects.toMatchObject({ errorName: 'INVALID_REQUIRED_ACKS' } satisfies Partial<RiffleError>);
    const fetch = (fetchOffset: number, currentLeaderEpoch = -1, maxWaitMs = 0): Promise<FetchResponse__Output> =>
      connection.call('riffle.v1.Kafka', 'Fetch', {
        maxWaitMs,
        minBytes: 1,
        maxBytes: 1024 * 1024,
        topics: [{ topic: 'guarded', partitions: [{ partition: 0, currentLeaderEpoch, fetchOffset, partitionMaxBytes: 1024 * 1024 }] }],
      }, 10_000);
    expect((await fetch(1_000_000)).responses[0]!.partitions[0]!.errorCode).toBe(ERRORS.OFFSET_OUT_OF_RANGE.code);
    expect((await fetch(-5)).responses[0]!.partitions[0]!.errorCode).toBe(ERRORS.OFFSET_OUT_OF_RANGE.code);
    expect((await fetch(0, 7)).responses[0]!.partitions[0]!.errorCode).toBe(ERRORS.UNKNOWN_LEADER_EPOCH.code);
    await expect(fetch(0, -1, 10_000_000)).rejects.toMatchObject({ errorName: 'INVALID_REQUEST' });
    expect(node.running).toBe(true);
    const health = await fetch(0);
    expect(health.responses[0]!.partitions[0]!.errorCode).toBe(0);
  });

  it('serves /healthz, /readyz and Prometheus /metrics', async () => {
    expect((await fetch(`${node.httpUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${node.httpUrl}/readyz`)).status).toBe(200);
    // One acks=all produce: its local part (append, flush) and its remote part (the high
    // watermark passing it; at once with a single replica) are both timed.
    const acknowledged = await produce(encodeRecordBatch([{ key: null, value: Buffer.from('timed') }]), { acks: -1 });
    expect(errorOf(acknowledged)).toBe(0);
    const metrics = await (await fetch(`${node.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/riffle_broker_produce_bytes_total\{topic="guarded",node="1"\} \d+/);
    expect(metrics).toMatch(/riffle_broker_produce_local_seconds_count\{node="1"\} [1-9]\d*/);
    expect(metrics).toMatch(/riffle_broker_produce_remote_seconds_count\{node="1"\} [1-9]\d*/);
    expect(metrics).toContain('riffle_rpc_requests_total');
    expect(metrics).toContain('riffle_broker_partitions');
  });
});
