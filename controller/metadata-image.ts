// The cluster's metadata as of one offset of the metadata log: cluster id and secret, brokers,
// topics with their partitions and configs, the next producer id and stream consumers. An image
// is immutable: apply() returns a new image that shares everything the batch did not change
// (copy-on-write, see image-delta.ts), so readers may keep an image for as long as they like.
// Controllers (active and standby) and brokers build the same image by applying the same
// committed batches in order; snapshots of it compact the metadata log (KRaft's MetadataImage).
import { assert } from '../src/util/assert.js';
import type { MetadataRecord } from '../src/rpc/generated/riffle/internal/MetadataRecord.js';
import type { MetadataSnapshot } from '../src/rpc/generated/riffle/internal/MetadataSnapshot.js';
import type { PartitionRecord__Output } from '../src/rpc/generated/riffle/internal/PartitionRecord.js';
import type { RegisterBrokerRecord } from '../src/rpc/generated/riffle/internal/RegisterBrokerRecord.js';
import type { TopicRecord } from '../src/rpc/generated/riffle/internal/TopicRecord.js';
import { ImageDelta, int64 } from './image-delta.js';
import { METADATA_BATCH_RECORDS_MAX } from './metadata-codec.js';
import {
  NO_LEADER, type BrokerInfo, type ClusterInfo, type ImageState, type PartitionInfo, type TopicInfo,
} from './metadata-types.js';

const EMPTY_STATE: ImageState = Object.freeze({
  offset: 0, cluster: null, brokers: new Map(), topics: new Map(), topicIdsByName: new Map(), nextProducerId: 0,
});

export class MetadataImage {
  static readonly EMPTY = new MetadataImage(EMPTY_STATE);

  private constructor(private readonly state: ImageState) {}

  /** The metadata offset of the last applied batch; 0 for the empty image. */
  get offset(): number {
    return this.state.offset;
  }

  get cluster(): ClusterInfo | null {
    return this.state.cluster;
  }

  get brokers(): ReadonlyMap<number, BrokerInfo> {
    return this.state.brokers;
  }

  get topics(): ReadonlyMap<string, TopicInfo> {
    return this.state.topics;
  }

  get nextProducerId(): number {
    return this.state.nextProducerId;
  }

  /** The image after one committed batch at `offset` (which must be above this image's). */
  apply(offset: number, records: readonly MetadataRecord[]): MetadataImage {
    assert(offset > this.offset, () => `batch at offset ${offset} applied to an image at ${this.offset}`);
    assert(records.length > 0 && records.length <= METADATA_BATCH_RECORDS_MAX, () => `batch of ${records.length} records`);
    const delta = new ImageDelta(this.state, offset);
    for (const record of records) delta.replay(record);
    return new MetadataImage(delta.finish());
  }

  // ---- queries ----

  broker(nodeId: number): BrokerInfo | undefined {
    return this.state.brokers.get(nodeId);
  }

  topic(topicId: string): TopicInfo | undefined {
    return this.state.topics.get(topicId);
  }

  topicByName(name: string): TopicInfo | undefined {
    const topicId = this.state.topicIdsByName.get(name);
    return topicId === undefined ? undefined : this.state.topics.get(topicId);
  }

  partitionsOf(topicId: string): readonly PartitionInfo[] {
    return this.state.topics.get(topicId)?.partitions ?? [];
  }

  partition(topicId: string, partition: number): PartitionInfo | undefined {
    return this.state.topics.get(topicId)?.partitions[partition];
  }

  /** The partition's leader, or NO_LEADER (-1) when it has none or does not exist. */
  leaderOf(topicId: string, partition: number): number {
    return this.partition(topicId, partition)?.leader ?? NO_LEADER;
  }

  /** Registered and not fenced (active or in controlled shutdown), by node id. */
  liveBrokers(): BrokerInfo[] {
    return this.brokersWhere((broker) => broker.state !== 'fenced');
  }

  /** Brokers that may lead and take new replicas: active, neither fenced nor shutting down. */
  activeBrokers(): BrokerInfo[] {
    return this.brokersWhere((broker) => broker.state === 'active');
  }

  fencedBrokers(): BrokerInfo[] {
    return this.brokersWhere((broker) => broker.state === 'fenced');
  }

  /** Active (neither fenced nor shutting down), and registered at `brokerEpoch` when one is given (-1: not known). */
  isActiveBroker(nodeId: number, brokerEpoch = -1): boolean {
    const broker = this.state.brokers.get(nodeId);
    return broker?.state === 'active' && (brokerEpoch < 0 || broker.epoch === brokerEpoch);
  }

  /** Every partition of every topic. */
  *allPartitions(): IterableIterator<PartitionInfo> {
    for (const topic of this.state.topics.values()) yield* topic.partitions;
  }

  partitionsLedBy(nodeId: number): PartitionInfo[] {
    return this.partitionsWhere((partition) => partition.leader === nodeId);
  }

  /** Partitions whose ISR is smaller than their replica set. */
  underReplicated(): PartitionInfo[] {
    return this.partitionsWhere((partition) => partition.isr.length < partition.replicas.length);
  }

  /** Partitions without a leader, open or closed (a closed shard's records are still read). */
  offline(): PartitionInfo[] {
    return this.partitionsWhere((partition) => partition.leader === NO_LEADER);
  }

  private brokersWhere(predicate: (broker: BrokerInfo) => boolean): BrokerInfo[] {
    return [...this.state.brokers.values()].filter(predicate).sort((a, b) => a.nodeId - b.nodeId);
  }

  private partitionsWhere(predicate: (partition: PartitionInfo) => boolean): PartitionInfo[] {
    const result: PartitionInfo[] = [];
    for (const partition of this.allPartitions()) if (predicate(partition)) result.push(partition);
    return result;
  }

  // ---- snapshots ----

  toSnapshot(): MetadataSnapshot {
    const brokers = [...this.state.brokers.values()].sort((a, b) => a.nodeId - b.nodeId);
    const topics = [...this.state.topics.values()];
    return {
      offset: this.offset,
      cluster: this.cluster ? { ...this.cluster, clusterSecret: Buffer.from(this.cluster.clusterSecret) } : null,
      brokers: brokers.map(registrationRecordOf),
      brokerStates: brokers.map((broker) => ({ nodeId: broker.nodeId, brokerEpoch: broker.epoch, state: broker.state })),
      topics: topics.map(topicRecordOf),
      partitions: topics.flatMap((topic) => topic.partitions.map(partitionRecordOf)),
      nextProducerId: this.nextProducerId,
      streamConsumers: topics.flatMap((topic) => [...topic.consumers.values()].map((consumer) => ({ ...consumer }))),
    };
  }

  static fromSnapshot(snapshot: MetadataSnapshot): MetadataImage {
    const offset = int64(snapshot.offset, 'snapshot offset');
    const delta = new ImageDelta(EMPTY_STATE, offset);
    if (snapshot.cluster) delta.applyCluster(snapshot.cluster);
    for (const broker of snapshot.brokers ?? []) {
      const epoch = int64(broker.brokerEpoch, 'broker epoch');
      assert(epoch <= offset, () => `broker ${broker.nodeId} epoch ${epoch} above snapshot offset ${offset}`);
      delta.applyRegisterBroker(broker, epoch);
    }
    for (const state of snapshot.brokerStates ?? []) {
      delta.replay({ brokerState: state });
    }
    for (const topic of snapshot.topics ?? []) delta.applyTopic(topic);
    const partitions = [...(snapshot.partitions ?? [])].sort(
      (a, b) => (a.topicId ?? '').localeCompare(b.topicId ?? '') || (a.partition ?? 0) - (b.partition ?? 0),
    );
    for (const partition of partitions) delta.applyPartition(partition);
    for (const consumer of snapshot.streamConsumers ?? []) delta.applyStreamConsumer(consumer);
    delta.setNextProducerId(int64(snapshot.nextProducerId, 'next producer id'));
    return new MetadataImage(delta.finish());
  }
}

export function registrationRecordOf(broker: BrokerInfo): RegisterBrokerRecord {
  return {
    nodeId: broker.nodeId, incarnationId: broker.incarnationId, brokerEpoch: broker.epoch, rack: broker.rack,
    listener: broker.listener ? { ...broker.listener } : null, http: broker.http ? { ...broker.http } : null,
    roles: [...broker.roles], fenced: broker.state === 'fenced',
  };
}

export function topicRecordOf(topic: TopicInfo): TopicRecord {
  return {
    name: topic.name, topicId: topic.topicId, kind: topic.kind, replicationFactor: topic.replicationFactor,
    configs: { ...topic.configs }, internal: topic.internal, createdAtMs: topic.createdAtMs,
  };
}

/** A partition as the wire record (e.g. for AlterPartitionResponse). */
export function partitionRecordOf(partition: PartitionInfo): PartitionRecord__Output {
  return {
    ...partition,
    replicas: [...partition.replicas], isr: [...partition.isr], parentPartitions: [...partition.parentPartitions],
  };
}
