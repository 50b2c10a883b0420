// The Kinesis-like API against three real combined nodes on 127.0.30.1-3 and a broker-only node
// on 127.0.30.4 (RF 3): every iterator
// type, forged/expired/wrong-shard iterators, PutRecords validation and partial failure under
// the 'kinesis' limits profile, resharding (split, merge, uniform scaling) under load with
// per-key order kept for a reader that finishes parents first, sequence numbers across a leader
// kill -9, and Enhanced Fan-Out across subscription renewals and a leader kill -9. Subscriptions
// last 2 s and iterators 4 s here, so renewals and expiry happen within the test.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { KinesisClient, RiffleClient, type Shard } from '../../src/client/index.js';
import { RiffleError, fromServiceError } from '../../src/rpc/errors.js';
import { decodeSequenceNumber, hashKeyOfPartitionKey, partitionOfShardId, shardIdOf, streamArnOf } from '../../src/util/kinesis.js';
import { encodeRecordBatch } from '../../src/util/record-batch.js';
import type { PutShardBatchesResponse__Output } from '../../src/rpc/generated/riffle/v1/PutShardBatchesResponse.js';
import { spawn } from 'node:child_process';
import { REPO_ROOT, runCli, startCluster, startNode, temporaryDir, waitFor, type TestCluster } from '../helpers/cluster.js';
import { putAll as putAllRecords, type PutEntry } from '../helpers/kinesis.js';

const SUBNET = '127.0.30';
const data = temporaryDir('riffle-kinesis-');
let cluster: TestCluster;
let client: RiffleClient;
let kinesis: KinesisClient;

beforeAll(async () => {
  cluster = await startCluster({
    subnet: SUBNET, dataDir: data.dir, controllers: 3, brokers: 1,
    extraArgs: ['--default-replication-factor', '3', '--kinesis-subscription-ms', '2000', '--kinesis-heartbeat-ms', '300', '--kinesis-iterator-ttl-ms', '4000', '--kinesis-on-demand-check-ms', '500'],
  });
  client = new RiffleClient({ bootstrap: cluster.bootstrap, retry: { deadlineMs: 30_000 } });
  kinesis = new KinesisClient(client);
}, 90_000);

afterAll(async () => {
  client?.close();
  await cluster?.stopAll();
  data.remove();
});

async function errorOf(promise: Promise<unknown>): Promise<RiffleError> {
  const error = await promise.then(() => undefined, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(RiffleError);
  return error as RiffleError;
}

async function bringAllBack(): Promise<void> {
  for (const [id, node] of cluster.nodes) {
    if (!node.running) await (await cluster.start(id)).waitReady(30_000);
  }
}

interface ReadRecord {
  sequenceNumber: string;
  partitionKey: string;
  data: string;
  arrival: number;
}

/** Reads a shard from TRIM_HORIZON: to its end if closed, else until a call returns nothing. */
async function readShard(stream: string, shardId: string): Promise<{ records: ReadRecord[]; ended: boolean; children: string[] }> {
  let iterator: string | undefined = await kinesis.getShardIterator(stream, shardId, { type: 'TRIM_HORIZON' });
  const records: ReadRecord[] = [];
  for (let call = 0; call < 1_000 && iterator; call++) {
    const response = await kinesis.getRecords(iterator);
    records.push(...response.records.map((record) => ({
      sequenceNumber: record.sequenceNumber, partitionKey: record.partitionKey, data: record.data.toString('utf8'), arrival: Number(record.approximateArrivalTimestamp),
    })));
    if (!response.nextShardIterator) return { records, ended: true, children: response.childShards.map((child) => child.shardId) };
    iterator = response.nextShardIterator;
    if (response.records.length === 0 && Number(response.millisBehindLatest) === 0) break;
  }
  return { records, ended: false, children: [] };
}

async function putAll(stream: string, entries: PutEntry[]): Promise<string[]> {
  return putAllRecords(kinesis, stream, entries);
}

function leaderOf(stream: string, shardId: string): Promise<number> {
  return waitFor(async () => {
    const metadata = await client.topicMetadata(stream, true);
    const leader = metadata.partitions.find((partition) => partition.partition === partitionOfShardId(shardId))?.leaderId ?? -1;
    return leader >= 0 ? leader : undefined;
  }, { timeoutMs: 20_000, what: `a leader for ${stream}/${shardId}` });
}

describe('iterators and GetRecords', () => {
  it('serves every iterator type with Kinesis semantics', async () => {
    await kinesis.createStream('iters', { shardCount: 1 });
    const shardId = shardIdOf(0);
    const sequenceNumbers: string[] = [];
    for (let index = 0; index < 6; index++) {
      const result = await kinesis.putRecord('iters', { partitionKey: `key-${index}`, data: `value-${index}` });
      expect(result.shardId).toBe(shardId);
      sequenceNumbers.push(result.sequenceNumber);
    }
    for (let index = 1; index < sequenceNumbers.length; index++) expect(BigInt(sequenceNumbers[index]!) > BigInt(sequenceNumbers[index - 1]!)).toBe(true);

    const all = await readShard('iters', shardId);
    expect(all.records.map((record) => record.data)).toEqual(sequenceNumbers.map((_, index) => `value-${index}`));
    expect(all.records.map((record) => record.sequenceNumber)).toEqual(sequenceNumbers);

    const at = await kinesis.getRecords(await kinesis.getShardIterator('iters', shardId, { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: sequenceNumbers[2] }), 2);
    expect(at.records.map((record) => record.data.toString())).toEqual(['value-2', 'value-3']);
    expect(Number(at.millisBehindLatest)).toBeGreaterThanOrEqual(0);
    const after = await kinesis.getRecords(await kinesis.getShardIterator('iters', shardId, { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: sequenceNumbers[2] }));
    expect(after.records.map((record) => record.data.toString())).toEqual(['value-3', 'value-4', 'value-5']);
    expect(Number(after.millisBehindLatest)).toBe(0);
    expect(after.nextShardIterator).toBeTruthy();

    const timestamp = all.records[4]!.arrival;
    const expectedFrom = all.records.findIndex((record) => record.arrival >= timestamp);
    const atTime = await kinesis.getRecords(await kinesis.getShardIterator('iters', shardId, { type: 'AT_TIMESTAMP', timestamp }));
    expect(atTime.records.map((record) => record.data.toString())).toEqual(all.records.slice(expectedFrom).map((record) => record.data));

    const latest = await kinesis.getShardIterator('iters', shardId, { type: 'LATEST' });
    expect((await kinesis.getRecords(latest)).records).toEqual([]);
    await kinesis.putRecord('iters', { partitionKey: 'later', data: 'after-latest' });
    const fromLatest = await kinesis.getRecords(latest);
    expect(fromLatest.records.map((record) => record.data.toString())).toEqual(['after-latest']);
  }, 60_000);

  it('rejects forged, expired and wrong-shard iterators with typed errors and stays up', async () => {
    await kinesis.createStream('iters2', { shardCount: 2 });
    const iterator = await kinesis.getShardIterator('iters2', shardIdOf(0), { type: 'TRIM_HORIZON' });
    const bytes = Buffer.from(iterator, 'base64url');
    bytes[bytes.length - 20] = bytes[bytes.length - 20]! ^ 0x40;
    expect((await errorOf(kinesis.getRecords(bytes.toString('base64url')))).errorName).toBe('INVALID_ARGUMENT');
    expect((await errorOf(kinesis.getRecords('garbage'))).errorName).toBe('INVALID_ARGUMENT');
    // A sequence number of shard 1 does not position an iterator in shard 0.
    const other = await putAll('iters2', Array.from({ length: 20 }, (_, index) => ({ partitionKey: `k${index}`, data: 'x' })));
    const inShard1 = other.find((sequenceNumber) => decodeSequenceNumber(sequenceNumber)!.partition === 1)!;
    expect((await errorOf(kinesis.getShardIterator('iters2', shardIdOf(0), { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: inShard1 }))).errorName).toBe('INVALID_ARGUMENT');
    expect((await errorOf(kinesis.getShardIterator('iters2', shardIdOf(0), { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: 'abc' }))).errorName).toBe('INVALID_ARGUMENT');
    expect((await errorOf(kinesis.getShardIterator('iters2', shardIdOf(7), { type: 'TRIM_HORIZON' }))).errorName).toBe('RESOURCE_NOT_FOUND');
    expect((await errorOf(kinesis.getShardIterator('iters2', 'shard-7', { type: 'TRIM_HORIZON' }))).errorName).toBe('INVALID_ARGUMENT');
    expect((await errorOf(kinesis.getShardIterator('missing', shardIdOf(0), { type: 'TRIM_HORIZON' }))).errorName).toBe('RESOURCE_NOT_FOUND');
    expect((await errorOf(kinesis.getShardIterator('iters2', shardIdOf(0), { type: 'SOMEWHERE' as 'LATEST' }))).errorName).toBe('INVALID_ARGUMENT');
    // Iterators live 4 s in this cluster.
    const expired = await waitFor(async () => {
      const error = await kinesis.getRecords(iterator).then(() => undefined, (caught: unknown) => caught);
      return error instanceof RiffleError && error.errorName === 'EXPIRED_ITERATOR' ? error : undefined;
    }, { timeoutMs: 15_000, intervalMs: 500, what: 'the iterator to expire' });
    expect(expired.retriable).toBe(false);
    for (const node of cluster.nodes.values()) expect(node.running).toBe(true);
  }, 60_000);

  it('lists shards with pagination and filters', async () => {
    await kinesis.createStream('listing', { shardCount: 5 });
    const first = await kinesis.listShardsPage({ streamName: 'listing', maxResults: 2 });
    expect(first.shards.map((shard) => shard.shardId)).toEqual([shardIdOf(0), shardIdOf(1)]);
    const second = await kinesis.listShardsPage({ nextToken: first.nextToken! , maxResults: 2 });
    expect(second.shards.map((shard) => shard.shardId)).toEqual([shardIdOf(2), shardIdOf(3)]);
    expect((await errorOf(kinesis.listShardsPage({ streamName: 'listing', nextToken: first.nextToken! }))).errorName).toBe('INVALID_ARGUMENT');
    const after = await kinesis.listShardsPage({ streamName: 'listing', exclusiveStartShardId: shardIdOf(3) });
    expect(after.shards.map((shard) => shard.shardId)).toEqual([shardIdOf(4)]);
    await kinesis.splitShard('listing', shardIdOf(4), (BigInt((await kinesis.listShards('listing'))[4]!.hashKeyRange!.startingHashKey) + 10n).toString());
    const latest = await kinesis.listShards('listing', { type: 'AT_LATEST' });
    expect(latest.map((shard) => shard.shardId)).toEqual([0, 1, 2, 3, 5, 6].map(shardIdOf));
    const horizon = await kinesis.listShards('listing', { type: 'AT_TRIM_HORIZON' });
    expect(horizon.map((shard) => shard.shardId)).toEqual([0, 1, 2, 3, 4].map(shardIdOf));
    const closed = (await kinesis.listShards('listing')).find((shard) => shard.shardId === shardIdOf(4))!;
    expect(closed.sequenceNumberRange?.endingSequenceNumber).toBeTruthy();
    expect((await kinesis.describeStreamSummary('listing')).openShardCount).toBe(6);
    expect(await kinesis.listStreams()).toContain('listing');
  }, 60_000);
});

describe('PutRecords', () => {
  it('reports per-record throttling under the kinesis profile and rejects bad input as a whole', async () => {
    await kinesis.createStream('limited', { shardCount: 1, limitsProfile: 'kinesis' });
    const batch = Array.from({ length: 500 }, (_, index) => ({ partitionKey: `k${index}`, data: Buffer.alloc(100, 1) }));
    const responses = await Promise.all([0, 1, 2].map(() => kinesis.putRecords('limited', batch)));
    const failed = responses.reduce((sum, response) => sum + response.failedRecordCount, 0);
    const succeeded = responses.flatMap((response) => response.records.filter((record) => !record.errorCode));
    expect(failed).toBeGreaterThan(0);
    expect(succeeded.length).toBeGreaterThan(0);
    expect(succeeded.length + failed).toBe(1500);
    for (const response of responses) {
      expect(response.records).toHaveLength(500);
      for (const record of response.records) {
        if (record.errorCode) expect(record.errorCode).toBe('ProvisionedThroughputExceededException');
        else expect(record.sequenceNumber).toMatch(/^\d+$/);
      }
    }
    const stored = await readShard('limited', shardIdOf(0));
    expect(stored.records.length).toBe(succeeded.length);
    // GetRecords: 5 calls a second per shard.
    const iterator = await kinesis.getShardIterator('limited', shardIdOf(0), { type: 'LATEST' });
    const outcomes = await Promise.all(Array.from({ length: 8 }, () => kinesis.getRecords(iterator).then(() => 'ok', (error: RiffleError) => error.errorName)));
    expect(outcomes).toContain('PROVISIONED_THROUGHPUT_EXCEEDED');

    await kinesis.createStream('strict', { shardCount: 2 });
    const bad = async (entries: { partitionKey: string; data: Buffer | string; explicitHashKey?: string }[]): Promise<string> => (await errorOf(kinesis.putRecords('strict', entries))).errorName;
    expect(await bad([{ partitionKey: 'k', data: Buffer.alloc(1024 * 1024 + 1) }])).toBe('INVALID_ARGUMENT');
    expect(await bad([{ partitionKey: 'x'.repeat(257), data: 'v' }])).toBe('INVALID_ARGUMENT');
    expect(await bad([{ partitionKey: '', data: 'v' }])).toBe('INVALID_ARGUMENT');
    expect(await bad(Array.from({ length: 501 }, () => ({ partitionKey: 'k', data: 'v' })))).toBe('INVALID_ARGUMENT');
    expect(await bad([{ partitionKey: 'k', data: 'v', explicitHashKey: (2n ** 128n).toString() }])).toBe('INVALID_ARGUMENT');
    expect((await errorOf(kinesis.putRecords('nope', [{ partitionKey: 'k', data: 'v' }]))).errorName).toBe('RESOURCE_NOT_FOUND');
    // ExplicitHashKey routes past MD5: the top of the space is the last shard.
    const routed = await kinesis.putRecord('strict', { partitionKey: 'k', data: 'v', explicitHashKey: (2n ** 128n - 1n).toString() });
    expect(routed.shardId).toBe(shardIdOf(1));
    // A 10 MiB record fits a stream configured for it.
    await kinesis.createStream('big', { shardCount: 1, recordBytesMax: 10 * 1024 * 1024 });
    const big = await kinesis.putRecord('big', { partitionKey: 'k', data: Buffer.alloc(10 * 1024 * 1024, 2) });
    expect(big.shardId).toBe(shardIdOf(0));
    for (const node of cluster.nodes.values()) expect(node.running).toBe(true);
  }, 60_000);
});

describe('PutShardBatches (the SDK fast path)', () => {
  it('checks every record as PutRecords does and stamps arrival time', async () => {
    await kinesis.createStream('batches', { shardCount: 2 });
    const shards = await kinesis.listShards('batches');
    const keyFor = (shard: number): string => {
      for (let index = 0; index < 1_000; index++) {
        const hashKey = hashKeyOfPartitionKey(`k${index}`);
        const range = shards[shard]!.hashKeyRange!;
        if (hashKey >= BigInt(range.startingHashKey) && hashKey <= BigInt(range.endingHashKey)) return `k${index}`;
      }
      throw new Error('no key found');
    };
    const leader = await leaderOf('batches', shardIdOf(0));
    const send = (batches: { shardId: string; records: Buffer }[]): Promise<PutShardBatchesResponse__Output> =>
      client.connectionTo(leader).call<PutShardBatchesResponse__Output>('riffle.v1.Kinesis', 'PutShardBatches', { streamName: 'batches', batches }, 10_000);
    const batch = (key: string, timestamp = 0): Buffer => encodeRecordBatch([{ key: Buffer.from(key), value: Buffer.from('v'), timestamp }]);
    expect((await errorOf(send([{ shardId: shardIdOf(0), records: batch(keyFor(1)) }]))).errorName).toBe('INVALID_ARGUMENT');
    expect((await errorOf(send([{ shardId: shardIdOf(0), records: batch('') }]))).errorName).toBe('INVALID_ARGUMENT');
    expect((await errorOf(send([{ shardId: shardIdOf(0), records: Buffer.from('not a batch at all, not at all') }]))).errorName).toBe('INVALID_ARGUMENT');
    expect((await errorOf(send([{ shardId: shardIdOf(0), records: Buffer.concat([batch(keyFor(0)), batch(keyFor(0))]) }]))).errorName).toBe('INVALID_ARGUMENT');
    expect((await errorOf(send([{ shardId: shardIdOf(9), records: batch(keyFor(0)) }]))).errorName).toBe('RESOURCE_NOT_FOUND');
    const before = Date.now();
    const response = await send([{ shardId: shardIdOf(0), records: batch(keyFor(0), 1) }]);
    expect(response.results[0]!.errorCode ?? null).toBeNull();
    const read = await readShard('batches', shardIdOf(0));
    expect(read.records).toHaveLength(1);
    // The client's timestamp (1 ms after the epoch) is replaced by the arrival time.
    expect(read.records[0]!.arrival).toBeGreaterThanOrEqual(before - 5_000);
    for (const node of cluster.nodes.values()) expect(node.running).toBe(true);
  }, 60_000);
});

describe('SDK putRecords coalescing', () => {
  it('shares requests between concurrent calls without losing, duplicating or reordering a call\'s records', async () => {
    await kinesis.createStream('coalesce', { shardCount: 4 });
    const requests = async (): Promise<number> => {
      let total = 0;
      for (const node of cluster.nodes.values()) {
        const text = await (await fetch(`${node.httpUrl}/metrics`)).text();
        for (const match of text.matchAll(/^riffle_rpc_requests_total\{[^}]*method="PutShardBatches"[^}]*\} (\d+)/gm)) total += Number(match[1]);
      }
      return total;
    };
    await putAll('coalesce', [{ partitionKey: 'warm-up', data: 'x' }]);
    const before = await requests();
    const calls = 40;
    const perCall = 50;
    const responses = await Promise.all(Array.from({ length: calls }, (_, call) =>
      kinesis.putRecords('coalesce', Array.from({ length: perCall }, (_, index) => ({ partitionKey: `c${call}-k${index % 5}`, data: `${call}:${index}` })))));
    for (const response of responses) expect(response.failedRecordCount).toBe(0);
    expect((await requests()) - before).toBeLessThan((calls * 3) / 2);
    const seen = new Map<string, number[]>();
    for (const shard of await kinesis.listShards('coalesce')) {
      for (const record of (await readShard('coalesce', shard.shardId)).records) {
        if (record.partitionKey === 'warm-up') continue;
        seen.set(record.partitionKey, [...(seen.get(record.partitionKey) ?? []), Number(record.data.split(':')[1])]);
      }
    }
    expect([...seen.values()].reduce((sum, values) => sum + values.length, 0)).toBe(calls * perCall);
    for (let call = 0; call < calls; call++) {
      for (let key = 0; key < 5; key++) {
        expect(seen.get(`c${call}-k${key}`)).toEqual(Array.from({ length: perCall / 5 }, (_, round) => round * 5 + key));
      }
    }
    // The sequence numbers the SDK computed are the ones stored.
    const stored = new Set<string>();
    for (const shard of await kinesis.listShards('coalesce')) for (const record of (await readShard('coalesce', shard.shardId)).records) stored.add(record.sequenceNumber);
    for (const response of responses) for (const record of response.records) expect(stored.has(record.sequenceNumber!)).toBe(true);
  }, 60_000);
});

describe('resharding', () => {
  it('loses nothing and keeps per-key order across split, merge and scaling under load', async () => {
    await kinesis.createStream('reshard', { shardCount: 2 });
    const keys = Array.from({ length: 16 }, (_, index) => `key-${index}`);
    const batches = 120;
    let written = 0;
    const writer = (async () => {
      for (let round = 0; round < batches; round++) {
        await putAll('reshard', keys.map((partitionKey) => ({ partitionKey, data: `${partitionKey}:${round}` })));
        written = round + 1;
      }
    })();
    const shards = async (): Promise<Shard[]> => kinesis.listShards('reshard');
    await waitFor(() => written >= 10, { timeoutMs: 30_000, what: 'writes before the split' });
    const zero = (await shards())[0]!;
    const middle = (BigInt(zero.hashKeyRange!.startingHashKey) + BigInt(zero.hashKeyRange!.endingHashKey)) / 2n;
    await kinesis.splitShard('reshard', shardIdOf(0), middle.toString());
    await waitFor(() => written >= 40, { timeoutMs: 30_000, what: 'writes before the merge' });
    await kinesis.mergeShards('reshard', shardIdOf(2), shardIdOf(3));
    await waitFor(() => written >= 70, { timeoutMs: 30_000, what: 'writes before the scaling' });
    await kinesis.updateShardCount('reshard', 3);
    await writer;

    // Parents first: a shard is read only after every parent was read to its end.
    const all = await shards();
    const done = new Set<string>();
    const perKey = new Map<string, number[]>();
    for (let pass = 0; pass < all.length && done.size < all.length; pass++) {
      for (const shard of all) {
        const parents = [shard.parentShardId, shard.adjacentParentShardId].filter((id): id is string => Boolean(id));
        if (done.has(shard.shardId) || !parents.every((parent) => done.has(parent))) continue;
        const read = await readShard('reshard', shard.shardId);
        if (shard.sequenceNumberRange?.endingSequenceNumber) expect(read.ended).toBe(true);
        for (const record of read.records) {
          const [key, round] = record.data.split(':');
          expect(record.partitionKey).toBe(key);
          perKey.set(key!, [...(perKey.get(key!) ?? []), Number(round)]);
        }
        done.add(shard.shardId);
      }
    }
    expect(done.size).toBe(all.length);
    expect((await kinesis.listShards('reshard', { type: 'AT_LATEST' })).length).toBe(3);
    const expected = Array.from({ length: batches }, (_, round) => round);
    for (const key of keys) expect(perKey.get(key)).toEqual(expected);
  }, 120_000);
});

describe('on-demand mode', () => {
  it('splits a shard kept over its write budget by itself', async () => {
    await kinesis.createStream('auto', { streamMode: 'ON_DEMAND', shardCount: 1 });
    expect((await kinesis.describeStreamSummary('auto')).streamModeDetails?.streamMode).toBe('ON_DEMAND');
    const payload = Buffer.alloc(100, 3);
    let split = false;
    const deadline = Date.now() + 30_000;
    let written = 0;
    while (!split && Date.now() < deadline) {
      // 500 records per call, far above 1,000 records/s while the calls keep coming.
      await putAll('auto', Array.from({ length: 500 }, (_, index) => ({ partitionKey: `k${written + index}`, data: payload.toString('base64') })));
      written += 500;
      split = (await kinesis.describeStreamSummary('auto')).openShardCount >= 2;
    }
    expect(split).toBe(true);
    const shards = await kinesis.listShards('auto');
    expect(shards[0]!.sequenceNumberRange?.endingSequenceNumber).toBeTruthy();
    expect(shards.filter((shard) => shard.parentShardId === shardIdOf(0))).toHaveLength(2);
  }, 60_000);
});

describe('failover', () => {
  it('keeps sequence numbers strictly increasing per shard across a kill -9 of the leader', async () => {
    await kinesis.createStream('failover', { shardCount: 1 });
    const shardId = shardIdOf(0);
    const before = await putAll('failover', Array.from({ length: 50 }, (_, index) => ({ partitionKey: 'p', data: `a${index}` })));
    const leader = await leaderOf('failover', shardId);
    await cluster.nodes.get(leader)!.kill();
    await waitFor(async () => (await leaderOf('failover', shardId)) !== leader, { timeoutMs: 30_000, what: 'a new leader' });
    const after: string[] = [];
    for (let index = 0; index < 50; index++) after.push(...(await putAll('failover', [{ partitionKey: 'p', data: `b${index}` }])));
    const acknowledged = [...before, ...after];
    for (let index = 1; index < acknowledged.length; index++) expect(BigInt(acknowledged[index]!) > BigInt(acknowledged[index - 1]!)).toBe(true);
    const stored = (await readShard('failover', shardId)).records.map((record) => record.sequenceNumber);
    for (let index = 1; index < stored.length; index++) expect(BigInt(stored[index]!) > BigInt(stored[index - 1]!)).toBe(true);
    expect(stored).toEqual(expect.arrayContaining(acknowledged));
    await bringAllBack();
  }, 120_000);

  it('delivers every record in order over EFO across subscription renewals and a kill -9 of the leader', async () => {
    await kinesis.createStream('efo', { shardCount: 1 });
    await client.refreshMetadata([]);
    const consumer = await kinesis.registerStreamConsumer(streamArnOf(client.clusterId, 'efo'), 'reader');
    const shardId = shardIdOf(0);

    // A second subscription for the same consumer and shard within 5 s is refused.
    const leader = await leaderOf('efo', shardId);
    const stop = new AbortController();
    const received: string[] = [];
    const renewals: string[] = [];
    let events = 0;
    const reader = (async () => {
      for await (const event of kinesis.subscribeToShard(consumer.consumerArn, shardId, { type: 'TRIM_HORIZON' }, {
        signal: stop.signal, onResubscribe: (reason) => renewals.push(reason), idleTimeoutMs: 3_000,
      })) {
        events++;
        for (const record of event.records) received.push(record.sequenceNumber);
      }
    })();
    await waitFor(() => events > 0 || undefined, { timeoutMs: 10_000, what: 'the first (heartbeat) event' });
    const duplicate = await new Promise<RiffleError>((resolve) => {
      const raw = client.connectionTo(leader).client('riffle.v1.Kinesis') as unknown as { SubscribeToShard(request: object): grpc.ClientReadableStream<unknown> };
      const stream = raw.SubscribeToShard({ consumerArn: consumer.consumerArn, shardId, startingPosition: { type: 'LATEST' } });
      stream.on('data', () => undefined);
      stream.on('error', (error: grpc.ServiceError) => resolve(fromServiceError(error)));
      stream.on('end', () => resolve(new RiffleError('UNKNOWN_SERVER_ERROR', 'the duplicate subscription was accepted')));
    });
    expect(duplicate.errorName).toBe('RESOURCE_IN_USE');

    const acknowledged: string[] = [];
    for (let round = 0; round < 30; round++) acknowledged.push(...(await putAll('efo', Array.from({ length: 5 }, (_, index) => ({ partitionKey: `k${index}`, data: `r${round}-${index}` })))));
    await waitFor(() => renewals.length >= 1 || undefined, { timeoutMs: 10_000, what: 'a subscription renewal' });
    await cluster.nodes.get(leader)!.kill();
    for (let round = 30; round < 60; round++) acknowledged.push(...(await putAll('efo', Array.from({ length: 5 }, (_, index) => ({ partitionKey: `k${index}`, data: `r${round}-${index}` })))));
    await waitFor(() => acknowledged.every((sequenceNumber) => received.includes(sequenceNumber)) || undefined, { timeoutMs: 30_000, what: 'every acknowledged record over EFO' });
    stop.abort();
    await reader;
    for (let index = 1; index < received.length; index++) expect(BigInt(received[index]!) > BigInt(received[index - 1]!)).toBe(true);
    expect(renewals.length).toBeGreaterThanOrEqual(2);
    await bringAllBack();
  }, 120_000);
});

describe('half-open subscriptions', () => {
  it('the SDK abandons a subscription to a paused leader within 10 s and resumes on the new leader', async () => {
    // Pause a shard leader on the broker-only node: this test is about the subscription noticing
    // silence, not about controllers (a paused controller also silences the metadata streams
    // brokers follow from it).
    const brokerOnly = 4;
    let stream = '';
    let shard = -1;
    for (let attempt = 0; attempt < 6 && shard < 0; attempt++) {
      stream = `halfopen-${attempt}`;
      await kinesis.createStream(stream, { shardCount: 4 });
      const leaders = await Promise.all([0, 1, 2, 3].map((index) => leaderOf(stream, shardIdOf(index))));
      shard = leaders.indexOf(brokerOnly);
    }
    expect(shard).toBeGreaterThanOrEqual(0);
    await client.refreshMetadata([]);
    const consumer = await kinesis.registerStreamConsumer(streamArnOf(client.clusterId, stream), 'watcher');
    const shardId = shardIdOf(shard);
    const leader = brokerOnly;
    const explicitHashKey = (BigInt((await kinesis.listShards(stream))[shard]!.hashKeyRange!.startingHashKey) + 1n).toString();
    const stop = new AbortController();
    const received: string[] = [];
    const renewals: { reason: string; atMs: number }[] = [];
    let events = 0;
    const reader = (async () => {
      for await (const event of kinesis.subscribeToShard(consumer.consumerArn, shardId, { type: 'TRIM_HORIZON' }, {
        signal: stop.signal, onResubscribe: (reason) => renewals.push({ reason, atMs: Date.now() }),
      })) {
        events++;
        for (const record of event.records) received.push(record.data.toString());
      }
    })();
    let readerError: unknown;
    const readerDone = reader.catch((error: unknown) => (readerError = error));
    try {
      await waitFor(() => events > 0 || undefined, { timeoutMs: 10_000, what: 'the first event' });
      const paused = cluster.nodes.get(leader)!;
      paused.child.kill('SIGSTOP');
      const pausedAtMs = Date.now();
      try {
        const renewal = await waitFor(() => renewals.find((entry) => entry.atMs >= pausedAtMs && entry.reason !== 'subscription lifetime ended'), { timeoutMs: 15_000, what: 'the SDK to give up on the silent subscription' });
        expect(renewal.atMs - pausedAtMs).toBeLessThanOrEqual(10_000);
        await putAll(stream, [{ partitionKey: 'k', data: 'after-pause', explicitHashKey }]);
        await waitFor(() => received.includes('after-pause') || undefined, { timeoutMs: 30_000, what: 'the record from the new leader' });
      } finally {
        paused.child.kill('SIGCONT');
      }
    } finally {
      stop.abort();
      await readerDone;
    }
    expect(readerError).toBeUndefined();
  }, 90_000);

  it('the broker drops the subscription of a client that stopped answering within about 10 s', async () => {
    // A node of its own, with the default 5-minute subscription lifetime, so only the broker's
    // keepalive can end the subscription of the stopped client.
    const dir = temporaryDir('riffle-kinesis-vanish-');
    const node = await startNode({ host: `${SUBNET}.50`, dataDir: dir.dir });
    const single = new RiffleClient({ bootstrap: node.bootstrap, retry: { deadlineMs: 30_000 } });
    let child: ReturnType<typeof spawn> | undefined;
    try {
      const local = new KinesisClient(single);
      await local.createStream('vanish', { shardCount: 1, replicationFactor: 1 });
      await single.refreshMetadata([]);
      const consumer = await local.registerStreamConsumer(streamArnOf(single.clusterId, 'vanish'), 'ghost');
      const script = `
        import { KinesisClient, RiffleClient } from ${JSON.stringify(`${REPO_ROOT}/dist/src/client/index.js`)};
        const kinesis = new KinesisClient(new RiffleClient({ bootstrap: ${JSON.stringify(node.bootstrap)} }));
        for await (const event of kinesis.subscribeToShard(${JSON.stringify(consumer.consumerArn)}, 'shardId-000000000000', { type: 'LATEST' })) {
          process.stdout.write('event\\n');
        }`;
      child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let output = '';
      child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const subscriptions = async (): Promise<number> => {
        const text = await (await fetch(`${node.httpUrl}/metrics`)).text();
        return Number(/^riffle_kinesis_efo_subscriptions\{[^}]*\} (\d+)/m.exec(text)?.[1] ?? '0');
      };
      await waitFor(() => output.includes('event') || undefined, { timeoutMs: 20_000, what: 'the child subscriber to get a (heartbeat) event' });
      expect(await subscriptions()).toBe(1);
      child.kill('SIGSTOP');
      const stoppedAtMs = Date.now();
      await waitFor(async () => (await subscriptions()) === 0 || undefined, { timeoutMs: 25_000, intervalMs: 250, what: 'the broker to drop the subscription' });
      const detectedMs = Date.now() - stoppedAtMs;
      console.log(`broker dropped the stopped subscriber's subscription after ${detectedMs} ms`);
      // Keepalive: a ping at most 4 s after the stop, unanswered for 4 s; slack for a loaded machine.
      expect(detectedMs).toBeLessThanOrEqual(12_000);
    } finally {
      child?.kill('SIGKILL');
      single.close();
      await node.stop();
      dir.remove();
    }
  }, 90_000);
});

describe('CLI', () => {
  it('creates, writes, reads, reshards, subscribes and deletes streams', async () => {
    const bootstrap = ['--bootstrap', cluster.bootstrap];
    expect((await runCli(['stream', 'create', 'cli', '--shard-count', '2', ...bootstrap])).stdout).toContain('created stream cli (2 shards');
    expect((await runCli(['stream', 'list', ...bootstrap])).stdout).toContain('cli');
    const put = await runCli(['put-record', 'cli', '--partition-key', 'order-1', '--data', 'placed', '--json', ...bootstrap]);
    expect(put.code).toBe(0);
    const { ShardId, SequenceNumber } = JSON.parse(put.stdout) as { ShardId: string; SequenceNumber: string };
    const read = await runCli(['get-records', 'cli', '--shard-id', ShardId, '--iterator-type', 'AT_SEQUENCE_NUMBER', '--sequence-number', SequenceNumber, '--json', ...bootstrap]);
    expect(read.code).toBe(0);
    const records = (JSON.parse(read.stdout) as { Records: { SequenceNumber: string; Data: string; PartitionKey: string }[] }).Records;
    expect(records[0]).toMatchObject({ SequenceNumber, PartitionKey: 'order-1', Data: Buffer.from('placed').toString('base64') });
    expect((await runCli(['stream', 'register-consumer', 'cli', '--consumer', 'tail', ...bootstrap])).code).toBe(0);
    const subscribed = await runCli(['subscribe', 'cli', '--consumer', 'tail', '--shard-id', ShardId, '--starting-position', 'TRIM_HORIZON', '--max-records', '1', ...bootstrap]);
    expect(subscribed.code).toBe(0);
    expect(JSON.parse(subscribed.stdout.trim().split('\n')[0]!)).toMatchObject({ SequenceNumber, PartitionKey: 'order-1' });
    expect((await runCli(['stream', 'split', 'cli', '--shard-id', '0', ...bootstrap])).code).toBe(0);
    expect((await runCli(['stream', 'merge', 'cli', '--shard-id', '2', '--adjacent-shard-id', '3', ...bootstrap])).code).toBe(0);
    expect((await runCli(['stream', 'scale', 'cli', '--shard-count', '4', ...bootstrap])).stdout).toContain('to 4 open shards');
    const described = await runCli(['stream', 'describe', 'cli', '--json', ...bootstrap]);
    expect((JSON.parse(described.stdout) as { StreamDescriptionSummary: { openShardCount: number } }).StreamDescriptionSummary.openShardCount).toBe(4);
    const missing = await runCli(['get-records', 'nope', '--shard-id', '0', ...bootstrap]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('ResourceNotFoundException');
    expect((await runCli(['stream', 'delete', 'cli', ...bootstrap])).code).toBe(1);
    expect((await runCli(['stream', 'delete', 'cli', '--enforce-consumer-deletion', ...bootstrap])).stdout).toContain('deleted stream cli');
  }, 90_000);
});
