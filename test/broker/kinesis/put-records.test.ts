import { describe, expect, it } from 'vitest';
import { routingOf, shardForHashKey, validatePutEntries } from '../../../broker/kinesis/put-records.js';
import { MetadataImage } from '../../../controller/metadata-image.js';
import type { TopicInfo } from '../../../controller/index.js';
import { RiffleError } from '../../../src/rpc/errors.js';
import { HASH_KEY_MAX, hashKeyHex, hashKeyOfPartitionKey, uniformHashRanges } from '../../../src/util/kinesis.js';
import type { PutRecordsRequestEntry__Output } from '../../../src/rpc/generated/riffle/v1/PutRecordsRequestEntry.js';
import { Prng } from '../../../src/util/prng.js';

function streamWith(shards: number): TopicInfo {
  const records = [
    { registerBroker: { nodeId: 1, incarnationId: 'i', rack: 'a', roles: ['broker'], fenced: false } },
    { topic: { name: 's', topicId: 't', kind: 'stream', replicationFactor: 1, configs: {}, createdAtMs: 1 } },
    ...uniformHashRanges(shards).map((range, partition) => ({
      partition: {
        topicId: 't', partition, replicas: [1], isr: [1], leader: 1, leaderEpoch: 0, partitionEpoch: 0, state: 'open',
        startingHashKey: range.start.toString(), endingHashKey: range.end.toString(), createdAtMs: 1,
      },
    })),
  ];
  return MetadataImage.EMPTY.apply(1, records).topicByName('s')!;
}

function entry(partitionKey: string, data: Buffer | string = 'v', explicitHashKey?: string): PutRecordsRequestEntry__Output {
  return { partitionKey, data: Buffer.from(data), explicitHashKey } as PutRecordsRequestEntry__Output;
}

function errorName(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    return error instanceof RiffleError ? error.errorName : String(error);
  }
  return 'no error';
}

describe('PutRecords routing and validation', () => {
  it('routes every hash key to the one open shard whose range holds it (randomized)', () => {
    const seed = Number(process.env.RIFFLE_TEST_SEED ?? Date.now() % 1_000_000);
    console.log(`routing test seed ${seed}`);
    const prng = new Prng(seed);
    const topic = streamWith(prng.int(1, 50));
    const routing = routingOf(topic);
    for (let round = 0; round < 2_000; round++) {
      const key = `key-${prng.int(0, 1_000_000_000)}`;
      const hashKey = hashKeyOfPartitionKey(key);
      const shard = shardForHashKey(routing, hashKeyHex(hashKey));
      expect(hashKey >= BigInt(shard.startingHashKey) && hashKey <= BigInt(shard.endingHashKey)).toBe(true);
    }
    expect(shardForHashKey(routing, hashKeyHex(0n)).partition).toBe(0);
    expect(shardForHashKey(routing, hashKeyHex(HASH_KEY_MAX)).partition).toBe(topic.partitions.length - 1);
  });

  it('rejects the whole request for a bad key, an oversized record, a bad explicit hash key or too many records', () => {
    const topic = streamWith(2);
    expect(validatePutEntries(topic, [entry('a'), entry('b', 'x', '0')])).toHaveLength(2);
    expect(errorName(() => validatePutEntries(topic, []))).toBe('INVALID_ARGUMENT');
    expect(errorName(() => validatePutEntries(topic, Array.from({ length: 501 }, () => entry('k'))))).toBe('INVALID_ARGUMENT');
    expect(errorName(() => validatePutEntries(topic, [entry('')]))).toBe('INVALID_ARGUMENT');
    expect(errorName(() => validatePutEntries(topic, [entry('k'.repeat(257))]))).toBe('INVALID_ARGUMENT');
    expect(validatePutEntries(topic, [entry('k'.repeat(256))])).toHaveLength(1);
    expect(errorName(() => validatePutEntries(topic, [entry('k', Buffer.alloc(1024 * 1024 + 1))]))).toBe('INVALID_ARGUMENT');
    expect(validatePutEntries(topic, [entry('k', Buffer.alloc(1024 * 1024))])).toHaveLength(1);
    expect(errorName(() => validatePutEntries(topic, [entry('k', 'v', (HASH_KEY_MAX + 1n).toString())]))).toBe('INVALID_ARGUMENT');
    expect(errorName(() => validatePutEntries(topic, [entry('k', 'v', 'abc')]))).toBe('INVALID_ARGUMENT');
    expect(errorName(() => validatePutEntries(topic, Array.from({ length: 6 }, () => entry('k', Buffer.alloc(1024 * 1024)))))).toBe('INVALID_ARGUMENT');
  });
});
