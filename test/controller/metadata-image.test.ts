import { describe, expect, it } from 'vitest';
import { MetadataImage, NO_LEADER } from '../../controller/index.js';
import { AssertionError } from '../../src/util/assert.js';
import { partitionRecord, registerRecord, stateRecord, topicRecord } from './fixtures.js';

/** Three brokers in racks a, b, c registered at offsets 1..3, active from offset 4; topic t1 with 2 partitions. */
function sampleImage(): MetadataImage {
  let image = MetadataImage.EMPTY.apply(1, [{ cluster: { clusterId: 'cid', clusterSecret: Buffer.alloc(32, 7), createdAtMs: 1 } }, registerRecord(1, 'a')]);
  image = image.apply(2, [registerRecord(2, 'b')]).apply(3, [registerRecord(3, 'c')]);
  image = image.apply(4, [stateRecord(1, 1, 'active'), stateRecord(2, 2, 'active'), stateRecord(3, 3, 'active')]);
  return image.apply(5, [topicRecord('orders', 't1'), partitionRecord('t1', 0, [1, 2, 3]), partitionRecord('t1', 1, [2, 3, 1])]);
}

describe('MetadataImage', () => {
  it('gives brokers the offset of their registration as epoch, and starts them fenced', () => {
    const image = MetadataImage.EMPTY.apply(4, [registerRecord(1)]).apply(9, [registerRecord(1, 'a', 'second')]);
    expect(image.broker(1)).toMatchObject({ epoch: 9, incarnationId: 'second', state: 'fenced' });
    expect(image.offset).toBe(9);
    expect(image.liveBrokers()).toEqual([]);
  });

  it('answers the convenience queries', () => {
    const image = sampleImage();
    expect(image.cluster?.clusterId).toBe('cid');
    expect(image.topicByName('orders')?.topicId).toBe('t1');
    expect(image.partitionsOf('t1').map((p) => p.leader)).toEqual([1, 2]);
    expect(image.leaderOf('t1', 1)).toBe(2);
    expect(image.leaderOf('t1', 7)).toBe(NO_LEADER);
    expect(image.liveBrokers().map((b) => b.nodeId)).toEqual([1, 2, 3]);
    expect(image.partitionsLedBy(2).map((p) => p.partition)).toEqual([1]);
    expect(image.underReplicated()).toEqual([]);
    expect(image.offline()).toEqual([]);
  });

  it('bumps the partition epoch on every change and the leader epoch on a leader change', () => {
    const before = sampleImage();
    const shrunk = before.apply(6, [{ partitionChange: { topicId: 't1', partition: 0, isr: [1, 2], isrChanged: true } }]);
    expect(shrunk.partition('t1', 0)).toMatchObject({ isr: [1, 2], leader: 1, leaderEpoch: 0, partitionEpoch: 1 });
    expect(shrunk.underReplicated().map((p) => p.partition)).toEqual([0]);
    const moved = shrunk.apply(7, [{ partitionChange: { topicId: 't1', partition: 0, leader: 2 } }]);
    expect(moved.partition('t1', 0)).toMatchObject({ leader: 2, leaderEpoch: 1, partitionEpoch: 2 });
    const leaderless = moved.apply(8, [{ partitionChange: { topicId: 't1', partition: 0, leader: NO_LEADER, isr: [2], isrChanged: true } }]);
    expect(leaderless.offline().map((p) => p.partition)).toEqual([0]);
  });

  it('never mutates the image it was applied to, and shares what did not change', () => {
    const before = sampleImage();
    const snapshotBefore = JSON.stringify(before.toSnapshot());
    const after = before.apply(6, [
      { partitionChange: { topicId: 't1', partition: 0, leader: 2 } },
      { config: { topicId: 't1', name: 'retention.ms', deleted: true } },
      stateRecord(3, 3, 'fenced'),
    ]);
    expect(JSON.stringify(before.toSnapshot())).toBe(snapshotBefore);
    expect(before.leaderOf('t1', 0)).toBe(1);
    expect(after.leaderOf('t1', 0)).toBe(2);
    expect(after.topic('t1')!.configs).toEqual({});
    expect(before.topic('t1')!.configs).toEqual({ 'retention.ms': '1000' });
    expect(after.partition('t1', 1)).toBe(before.partition('t1', 1));
    expect(after.broker(1)).toBe(before.broker(1));
    expect(Object.isFrozen(after.partition('t1', 0))).toBe(true);
    expect(Object.isFrozen(after.partition('t1', 0)!.isr)).toBe(true);
  });

  it('round-trips through a snapshot', () => {
    let image = sampleImage().apply(6, [
      { producerIds: { nodeId: 1, firstProducerId: 0, size: 1000 } },
      topicRecord('s', 's1', 1, 'stream'),
      { partition: { topicId: 's1', partition: 0, replicas: [3], isr: [3], leader: 3, startingHashKey: '0', endingHashKey: '9', state: 'open' } },
      { streamConsumer: { topicId: 's1', consumerName: 'efo', consumerArn: 'arn:efo', createdAtMs: 3 } },
    ]);
    image = image.apply(7, [stateRecord(2, 2, 'controlled_shutdown')]);
    const restored = MetadataImage.fromSnapshot(image.toSnapshot());
    expect(restored.toSnapshot()).toEqual(image.toSnapshot());
    expect(restored.offset).toBe(7);
    expect(restored.nextProducerId).toBe(1000);
    expect(restored.broker(2)).toEqual(image.broker(2));
    expect(restored.topic('s1')!.consumers.get('efo')?.consumerArn).toBe('arn:efo');
    expect([...restored.cluster!.clusterSecret]).toEqual(new Array(32).fill(7));
  });

  it('treats a repeated cluster record of the same cluster as a no-op', () => {
    const base = sampleImage();
    const image = base.apply(6, [{ cluster: { clusterId: 'cid' } }]);
    expect(image.cluster).toBe(base.cluster);
    expect([...image.cluster!.clusterSecret]).toEqual(new Array(32).fill(7));
    expect(image.cluster!.createdAtMs).toBe(1);
  });

  it('removes a topic with its name', () => {
    const image = sampleImage().apply(6, [{ removeTopic: { topicId: 't1' } }]);
    expect(image.topicByName('orders')).toBeUndefined();
    expect(image.partitionsOf('t1')).toEqual([]);
    expect([...image.allPartitions()]).toEqual([]);
  });

  it('asserts on records that do not fit the image', () => {
    const image = sampleImage();
    const bad = [
      { partitionChange: { topicId: 't1', partition: 5, leader: 1 } },
      { partitionChange: { topicId: 't1', partition: 0, leader: 4 } },
      { partitionChange: { topicId: 't1', partition: 0, isr: [], isrChanged: true } },
      { partitionChange: { topicId: 't1', partition: 0, isr: [1, 4], isrChanged: true } },
      partitionRecord('t1', 3, [1]),
      partitionRecord('t1', 2, [1, 1]),
      partitionRecord('nope', 0, [1]),
      topicRecord('orders', 'other'),
      stateRecord(1, 99, 'active'),
      stateRecord(1, 1, 'sleeping'),
      { producerIds: { nodeId: 1, firstProducerId: 5, size: 1000 } },
      { removeTopic: { topicId: 'nope' } },
    ];
    bad.push({ cluster: { clusterId: 'other', clusterSecret: Buffer.alloc(32), createdAtMs: 1 } });
    for (const record of bad) expect(() => image.apply(6, [record]), JSON.stringify(record)).toThrow(AssertionError);
    expect(() => image.apply(5, [registerRecord(9)])).toThrow(AssertionError);
  });
});
