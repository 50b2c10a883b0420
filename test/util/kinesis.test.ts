import { describe, expect, it } from 'vitest';
import {
  HASH_KEY_MAX, consumerArnOf, hashKeyHex, hashKeyHexOfPartitionKey, consumerNameOfArn, decodeSequenceNumber, encodeSequenceNumber, endingSequenceNumberOf, hashKeyOfPartitionKey,
  parseHashKey, partitionOfShardId, shardIdOf, streamArnOf, streamNameOfArn, uniformHashRanges,
} from '../../src/util/kinesis.js';
import { Prng } from '../../src/util/prng.js';

describe('Kinesis arithmetic', () => {
  it('formats and parses shard ids as Kinesis does', () => {
    expect(shardIdOf(0)).toBe('shardId-000000000000');
    expect(shardIdOf(17)).toBe('shardId-000000000017');
    expect(partitionOfShardId('shardId-000000000017')).toBe(17);
    expect(partitionOfShardId('shardId-17')).toBeNull();
    expect(partitionOfShardId('shard-000000000017')).toBeNull();
    expect(partitionOfShardId('shardId-999999999999')).toBeNull();
  });

  it('routes a partition key by the MD5 of its UTF-8 bytes as a 128-bit integer', () => {
    // md5("a") = 0cc175b9c0f1b6a831c399e269772661
    expect(hashKeyOfPartitionKey('a')).toBe(BigInt('0x0cc175b9c0f1b6a831c399e269772661'));
    expect(hashKeyOfPartitionKey('é') <= HASH_KEY_MAX).toBe(true);
  });

  it('compares hex hash keys in numeric order, and hex MD5 equals the numeric hash key', () => {
    const prng = new Prng(11);
    for (let round = 0; round < 300; round++) {
      const key = `key-${prng.int(0, 1_000_000)}`;
      expect(hashKeyHexOfPartitionKey(key)).toBe(hashKeyHex(hashKeyOfPartitionKey(key)));
      const a = BigInt(prng.int(0, 2 ** 30)) * BigInt(prng.int(0, 2 ** 30)) * BigInt(prng.int(1, 2 ** 30));
      const b = BigInt(prng.int(0, 2 ** 30)) * BigInt(prng.int(0, 2 ** 30));
      expect(hashKeyHex(a) < hashKeyHex(b)).toBe(a < b);
    }
    expect(hashKeyHex(HASH_KEY_MAX)).toBe('f'.repeat(32));
    expect(hashKeyHex(0n)).toBe('0'.repeat(32));
  });

  it('parses hash keys only inside 0 .. 2^128-1', () => {
    expect(parseHashKey('0')).toBe(0n);
    expect(parseHashKey(HASH_KEY_MAX.toString())).toBe(HASH_KEY_MAX);
    expect(parseHashKey((HASH_KEY_MAX + 1n).toString())).toBeNull();
    expect(parseHashKey('-1')).toBeNull();
    expect(parseHashKey('01')).toBeNull();
    expect(parseHashKey('12a')).toBeNull();
  });

  it('splits the hash-key space into contiguous uniform ranges that cover it', () => {
    for (const count of [1, 2, 3, 7, 8, 1000]) {
      const ranges = uniformHashRanges(count);
      expect(ranges[0]!.start).toBe(0n);
      expect(ranges.at(-1)!.end).toBe(HASH_KEY_MAX);
      for (let index = 1; index < ranges.length; index++) expect(ranges[index]!.start).toBe(ranges[index - 1]!.end + 1n);
    }
  });

  it('encodes sequence numbers that decode to (partition, offset) and grow strictly within a shard', () => {
    const seed = Number(process.env.RIFFLE_TEST_SEED ?? Date.now() % 1_000_000);
    console.log(`sequence-number test seed ${seed}`);
    const prng = new Prng(seed);
    for (let round = 0; round < 500; round++) {
      const partition = prng.int(0, 100_000);
      const offset = prng.int(0, 2 ** 40);
      const text = encodeSequenceNumber(partition, offset);
      expect(text).toMatch(/^[1-9]\d*$/);
      expect(decodeSequenceNumber(text)).toEqual({ partition, offset });
      expect(BigInt(encodeSequenceNumber(partition, offset + 1)) > BigInt(text)).toBe(true);
      expect(BigInt(endingSequenceNumberOf(partition)) > BigInt(text)).toBe(true);
      // A child shard (higher partition number) sorts after its parent's last possible record.
      expect(BigInt(encodeSequenceNumber(partition + 1, 0)) > BigInt(endingSequenceNumberOf(partition))).toBe(true);
    }
    expect(decodeSequenceNumber(encodeSequenceNumber(3, -1))).toEqual({ partition: 3, offset: -1 });
    expect(decodeSequenceNumber('12')).toBeNull();
    expect(decodeSequenceNumber('abc')).toBeNull();
    expect(decodeSequenceNumber('')).toBeNull();
  });

  it('spells every sequence number as SEQUENCE_BASE + partition * 2^64 + offset + 1, across the nine-digit tail boundaries', () => {
    const reference = (partition: number, offset: number): string => ((1n << 124n) + BigInt(partition) * (1n << 64n) + BigInt(offset + 1)).toString();
    const partitions = [0, 1, 7, 4095, 4096, 100_000, 2 ** 31 - 1];
    for (const partition of partitions) {
      // Where the last nine digits of the value wrap, the head changes: offsets on both sides.
      const tailOfFirst = Number(BigInt(reference(partition, -1)) % 1_000_000_000n);
      const wrap = 1_000_000_000 - tailOfFirst - 1;
      const offsets = [-1, 0, 1, 999, wrap - 2, wrap - 1, wrap, wrap + 1, wrap + 1_000_000_000, 2 ** 40, 2 ** 52 - 2, 2 ** 52 - 1, 2 ** 52, Number.MAX_SAFE_INTEGER - 1];
      for (const offset of offsets) expect(encodeSequenceNumber(partition, offset), `partition ${partition} offset ${offset}`).toBe(reference(partition, offset));
      // Back and forth between blocks, as readers of different positions do.
      for (const offset of [wrap + 5, 3, wrap + 5, 2 ** 45, 0]) expect(encodeSequenceNumber(partition, offset)).toBe(reference(partition, offset));
    }
    // More partitions than the memo keeps still spell correctly.
    for (let partition = 0; partition < 5000; partition += 1) expect(encodeSequenceNumber(partition, partition * 3)).toBe(reference(partition, partition * 3));
  });

  it('builds and reads stream and consumer ARNs', () => {
    const streamArn = streamArnOf('cluster1', 'orders');
    expect(streamNameOfArn(streamArn)).toBe('orders');
    const consumerArn = consumerArnOf(streamArn, 'notifier', 1_700_000_000_123);
    expect(consumerArn).toBe(`${streamArn}/consumer/notifier:1700000000`);
    expect(streamNameOfArn(consumerArn)).toBe('orders');
    expect(consumerNameOfArn(consumerArn)).toBe('notifier');
    expect(streamNameOfArn('arn:aws:kinesis:us-east-1:1:stream/x')).toBeNull();
  });
});
