import { describe, expect, it } from 'vitest';
import {
  MetadataCodecError, MetadataImage, decodeMetadataBatch, decodeMetadataSnapshot, encodeMetadataBatch, encodeMetadataSnapshot,
} from '../../controller/index.js';
import type { MetadataRecord } from '../../src/rpc/generated/riffle/internal/MetadataRecord.js';
import { partitionRecord, registerRecord, stateRecord, topicRecord } from './fixtures.js';

const EVERY_KIND: MetadataRecord[] = [
  { cluster: { clusterId: 'c1', clusterSecret: Buffer.from([1, 2, 3]), createdAtMs: 1_700_000_000_123 } },
  registerRecord(1, 'a'),
  stateRecord(1, 7, 'active'),
  topicRecord('orders', 't1', 1),
  partitionRecord('t1', 0, [1]),
  { partitionChange: { topicId: 't1', partition: 0, leader: 1, isr: [1], isrChanged: true } },
  { removeTopic: { topicId: 't1' } },
  { producerIds: { nodeId: 1, brokerEpoch: 7, firstProducerId: 2 ** 40, size: 1000 } },
  { config: { topicId: 't1', name: 'retention.ms', value: '10', deleted: false } },
  { streamConsumer: { topicId: 't1', consumerName: 'app', consumerArn: 'arn:x', createdAtMs: 9 } },
  { removeStreamConsumer: { topicId: 't1', consumerName: 'app' } },
];

describe('metadata codec', () => {
  it('round-trips a batch holding every record kind', () => {
    const decoded = decodeMetadataBatch(encodeMetadataBatch(EVERY_KIND));
    expect(decoded.map((record) => record.record)).toEqual([
      'cluster', 'registerBroker', 'brokerState', 'topic', 'partition', 'partitionChange', 'removeTopic',
      'producerIds', 'config', 'streamConsumer', 'removeStreamConsumer',
    ]);
    expect(decoded[0]!.cluster).toMatchObject({ clusterId: 'c1', createdAtMs: 1_700_000_000_123 });
    expect([...decoded[0]!.cluster!.clusterSecret]).toEqual([1, 2, 3]);
    expect(decoded[3]!.topic!.configs).toEqual({ 'retention.ms': '1000' });
    expect(decoded[4]!.partition).toMatchObject({ topicId: 't1', replicas: [1], isr: [1], leader: 1 });
    expect(decoded[7]!.producerIds!.firstProducerId).toBe(2 ** 40);
  });

  it('keeps an absent optional leader absent, and a leader of 0 present', () => {
    const [absent, zero] = decodeMetadataBatch(encodeMetadataBatch([
      { partitionChange: { topicId: 't', partition: 0, isr: [2], isrChanged: true } },
      { partitionChange: { topicId: 't', partition: 0, leader: 0 } },
    ]));
    expect(absent!.partitionChange!.leader).toBeUndefined();
    expect(zero!.partitionChange!.leader).toBe(0);
    expect(zero!.partitionChange!.isrChanged).toBe(false);
  });

  it('refuses records with no kind or two kinds when encoding', () => {
    expect(() => encodeMetadataBatch([{}])).toThrow(MetadataCodecError);
    expect(() => encodeMetadataBatch([{ removeTopic: { topicId: 'a' }, config: { topicId: 'a', name: 'x' } }])).toThrow(MetadataCodecError);
  });

  it('gives a MetadataCodecError for garbage, truncated and empty input', () => {
    const good = encodeMetadataBatch(EVERY_KIND);
    expect(() => decodeMetadataBatch(Buffer.from([0xff, 0xff, 0xff, 0x01, 0x02]))).toThrow(MetadataCodecError);
    expect(() => decodeMetadataBatch(good.subarray(0, good.length - 3))).toThrow(MetadataCodecError);
    expect(() => decodeMetadataBatch(new Uint8Array(0))).toThrow(MetadataCodecError);
    // A well-formed message whose record sets no kind (field 1 = an empty MetadataRecord).
    expect(() => decodeMetadataBatch(Buffer.from([0x0a, 0x00]))).toThrow(MetadataCodecError);
    expect(() => decodeMetadataSnapshot(Buffer.from([0x0f, 0xff, 0xff]))).toThrow(MetadataCodecError);
  });

  it('round-trips a snapshot of an image', () => {
    const image = MetadataImage.EMPTY
      .apply(1, [EVERY_KIND[0]!, registerRecord(1, 'a'), registerRecord(2, 'b')])
      .apply(2, [topicRecord('orders', 't1', 2), partitionRecord('t1', 0, [1, 2]), partitionRecord('t1', 1, [2, 1])]);
    const decoded = decodeMetadataSnapshot(encodeMetadataSnapshot(image.toSnapshot()));
    expect(decoded.offset).toBe(2);
    expect(MetadataImage.fromSnapshot(decoded).toSnapshot()).toEqual(MetadataImage.fromSnapshot(image.toSnapshot()).toSnapshot());
  });
});
