import { describe, expect, it } from 'vitest';
import { createHarness, expectRiffleError, startBroker, type Harness } from './controller-harness.js';
import { openShardsCoverHashSpace, openShardsOf, streamNamed } from '../../controller/index.js';
import { Prng } from '../../src/util/prng.js';
import type { AlterStreamRequest } from '../../src/rpc/generated/riffle/internal/AlterStreamRequest.js';
import { MetadataImage } from '../../controller/metadata-image.js';

async function cluster(): Promise<Harness> {
  const harness = createHarness(7);
  await startBroker(harness, 1, 'a');
  await startBroker(harness, 2, 'b');
  await startBroker(harness, 3, 'c');
  return harness;
}

function alter(harness: Harness, request: AlterStreamRequest) {
  return harness.controller.alterStream(request);
}

describe('stream administration in the controller', () => {
  it('creates a stream whose shards cover the hash-key space, with Kinesis defaults', async () => {
    const harness = await cluster();
    await alter(harness, { operation: 'create', streamName: 'orders', shardCount: 3 });
    const topic = streamNamed(harness.controller.image, 'orders');
    expect(topic.kind).toBe('stream');
    expect(topic.partitions).toHaveLength(3);
    expect(topic.configs['retention.ms']).toBe(String(24 * 3_600_000));
    expect(topic.configs['stream.limits']).toBe('off');
    expect(openShardsCoverHashSpace(topic)).toBe(true);
    await expectRiffleError(alter(harness, { operation: 'create', streamName: 'orders', shardCount: 1 }), 'RESOURCE_IN_USE');
    await expectRiffleError(alter(harness, { operation: 'create', streamName: 'bad name', shardCount: 1 }), 'INVALID_ARGUMENT');
    await expectRiffleError(alter(harness, { operation: 'create', streamName: 'x', shardCount: 0 }), 'INVALID_ARGUMENT');
    await expectRiffleError(alter(harness, { operation: 'create', streamName: 'x', shardCount: 1, retentionPeriodHours: 8761 }), 'INVALID_ARGUMENT');
    await alter(harness, { operation: 'create', streamName: 'auto', streamMode: 'ON_DEMAND' });
    expect(streamNamed(harness.controller.image, 'auto').partitions).toHaveLength(4);
  });

  it('splits a shard into two children in one batch and survives a controller failover', async () => {
    const harness = await cluster();
    await alter(harness, { operation: 'create', streamName: 's', shardCount: 1 });
    const before = harness.log.batches.length;
    await alter(harness, { operation: 'split', streamName: 's', partition: 0, newStartingHashKey: '1000' });
    expect(harness.log.batches.length).toBe(before + 1);
    const topic = streamNamed(harness.controller.image, 's');
    expect(topic.partitions.map((shard) => shard.state)).toEqual(['closed', 'open', 'open']);
    expect(topic.partitions[1]!.endingHashKey).toBe('999');
    expect(topic.partitions[2]!.startingHashKey).toBe('1000');
    expect(topic.partitions[1]!.parentPartitions).toEqual([0]);
    expect(openShardsCoverHashSpace(topic)).toBe(true);
    // The standby replayed the same batch; so does an image rebuilt from a snapshot.
    expect(streamNamed(harness.standby.image, 's').partitions.map((shard) => shard.state)).toEqual(['closed', 'open', 'open']);
    const restored = MetadataImage.fromSnapshot(harness.controller.image.toSnapshot());
    expect(streamNamed(restored, 's').partitions[2]!.parentPartitions).toEqual([0]);
    await expectRiffleError(alter(harness, { operation: 'split', streamName: 's', partition: 0, newStartingHashKey: '5' }), 'INVALID_ARGUMENT');
    await expectRiffleError(alter(harness, { operation: 'split', streamName: 's', partition: 1, newStartingHashKey: '0' }), 'INVALID_ARGUMENT');
    await expectRiffleError(alter(harness, { operation: 'split', streamName: 's', partition: 9, newStartingHashKey: '5' }), 'RESOURCE_NOT_FOUND');
    await expectRiffleError(alter(harness, { operation: 'split', streamName: 'nope', partition: 0, newStartingHashKey: '5' }), 'RESOURCE_NOT_FOUND');
  });

  it('merges only adjacent open shards', async () => {
    const harness = await cluster();
    await alter(harness, { operation: 'create', streamName: 's', shardCount: 3 });
    await expectRiffleError(alter(harness, { operation: 'merge', streamName: 's', partition: 0, adjacentPartition: 2 }), 'INVALID_ARGUMENT');
    await alter(harness, { operation: 'merge', streamName: 's', partition: 1, adjacentPartition: 0 });
    const topic = streamNamed(harness.controller.image, 's');
    expect(topic.partitions[3]!.parentPartitions).toEqual([1, 0]);
    expect(topic.partitions[3]!.startingHashKey).toBe('0');
    expect(openShardsCoverHashSpace(topic)).toBe(true);
    await expectRiffleError(alter(harness, { operation: 'merge', streamName: 's', partition: 0, adjacentPartition: 2 }), 'INVALID_ARGUMENT');
  });

  it('scales uniformly through splits and merges with at most two parents per child (randomized)', async () => {
    const seed = Number(process.env.RIFFLE_TEST_SEED ?? Date.now() % 1_000_000);
    console.log(`UpdateShardCount test seed ${seed}`);
    const prng = new Prng(seed);
    const harness = await cluster();
    await alter(harness, { operation: 'create', streamName: 's', shardCount: prng.int(1, 12) });
    for (let round = 0; round < 12; round++) {
      const open = openShardsOf(streamNamed(harness.controller.image, 's')).length;
      const target = prng.int(Math.ceil(open / 2), Math.min(2 * open, 40) + 1);
      const response = await alter(harness, { operation: 'update_shard_count', streamName: 's', shardCount: target });
      expect(response.previousOpenShardCount).toBe(open);
      const topic = streamNamed(harness.controller.image, 's');
      expect(openShardsOf(topic)).toHaveLength(target);
      expect(openShardsCoverHashSpace(topic)).toBe(true);
      for (const shard of topic.partitions) {
        expect(shard.parentPartitions.length).toBeLessThanOrEqual(2);
        for (const parent of shard.parentPartitions) expect(topic.partitions[parent]!.state).toBe('closed');
      }
    }
    const open = openShardsOf(streamNamed(harness.controller.image, 's')).length;
    await expectRiffleError(alter(harness, { operation: 'update_shard_count', streamName: 's', shardCount: 2 * open + 1 }), 'INVALID_ARGUMENT');
  });

  it('keeps retention within 1..8760 hours and in the right direction', async () => {
    const harness = await cluster();
    await alter(harness, { operation: 'create', streamName: 's', shardCount: 1 });
    await alter(harness, { operation: 'retention', streamName: 's', retentionPeriodHours: 48, increase: true });
    expect(streamNamed(harness.controller.image, 's').configs['retention.ms']).toBe(String(48 * 3_600_000));
    await expectRiffleError(alter(harness, { operation: 'retention', streamName: 's', retentionPeriodHours: 24, increase: true }), 'INVALID_ARGUMENT');
    await expectRiffleError(alter(harness, { operation: 'retention', streamName: 's', retentionPeriodHours: 0, increase: false }), 'INVALID_ARGUMENT');
    await alter(harness, { operation: 'retention', streamName: 's', retentionPeriodHours: 1, increase: false });
  });

  it('registers up to 20 EFO consumers and refuses to delete a stream that has some unless forced', async () => {
    const harness = await cluster();
    await alter(harness, { operation: 'create', streamName: 's', shardCount: 1 });
    for (let index = 0; index < 20; index++) {
      const response = await alter(harness, { operation: 'register_consumer', streamName: 's', consumerName: `c${index}` });
      expect(response.consumerArn).toMatch(/stream\/s\/consumer\/c\d+:\d+$/);
    }
    await expectRiffleError(alter(harness, { operation: 'register_consumer', streamName: 's', consumerName: 'c0' }), 'RESOURCE_IN_USE');
    await expectRiffleError(alter(harness, { operation: 'register_consumer', streamName: 's', consumerName: 'c20' }), 'LIMIT_EXCEEDED');
    await expectRiffleError(alter(harness, { operation: 'delete', streamName: 's' }), 'RESOURCE_IN_USE');
    await alter(harness, { operation: 'deregister_consumer', streamName: 's', consumerName: 'c0' });
    await alter(harness, { operation: 'delete', streamName: 's', enforceConsumerDeletion: true });
    expect(harness.controller.image.topicByName('s')).toBeUndefined();
  });
});
