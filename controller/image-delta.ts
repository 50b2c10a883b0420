// Applies metadata records to an image state, copy-on-write: a delta starts from an immutable
// ImageState, copies a map or a topic's partition list only the first time a record of the batch
// changes it, and finish() freezes the result. The base state is never touched, so every image
// handed out stays valid forever. Records are validated with assertions: the active controller
// validated every request before writing, so a record that does not fit the image is a bug in
// the controller (or a corrupt log), never bad user input.
import type { Long } from '@grpc/proto-loader';
import { assert, unreachable } from '../src/util/assert.js';
import type { MetadataRecord } from '../src/rpc/generated/riffle/internal/MetadataRecord.js';
import type { PartitionChangeRecord } from '../src/rpc/generated/riffle/internal/PartitionChangeRecord.js';
import type { PartitionRecord } from '../src/rpc/generated/riffle/internal/PartitionRecord.js';
import type { RegisterBrokerRecord } from '../src/rpc/generated/riffle/internal/RegisterBrokerRecord.js';
import type { TopicRecord } from '../src/rpc/generated/riffle/internal/TopicRecord.js';
import type { StreamConsumerRecord } from '../src/rpc/generated/riffle/internal/StreamConsumerRecord.js';
import type { Endpoint } from '../src/rpc/generated/riffle/internal/Endpoint.js';
import type { ClusterRecord } from '../src/rpc/generated/riffle/internal/ClusterRecord.js';
import { recordKindOf } from './metadata-codec.js';
import {
  BROKER_STATES, NO_LEADER, PARTITION_STATES, TOPIC_KINDS,
  type BrokerInfo, type BrokerState, type ClusterInfo, type EndpointInfo, type ImageState, type PartitionInfo,
  type PartitionState, type StreamConsumerInfo, type TopicInfo, type TopicKind,
} from './metadata-types.js';

interface TopicDraft {
  topic: TopicInfo;
  partitions: PartitionInfo[] | null;
  configs: Record<string, string> | null;
  consumers: Map<string, StreamConsumerInfo> | null;
}

export class ImageDelta {
  private cluster: ClusterInfo | null;
  private nextProducerId: number;
  private brokers: Map<number, BrokerInfo> | null = null;
  private topics: Map<string, TopicInfo> | null = null;
  private names: Map<string, string> | null = null;
  private readonly drafts = new Map<string, TopicDraft>();

  /** `offset` is the metadata offset of the batch being applied (broker epochs come from it). */
  constructor(private readonly base: ImageState, private readonly offset: number) {
    assert(Number.isSafeInteger(offset) && offset >= base.offset, () => `apply offset ${offset} below image offset ${base.offset}`);
    this.cluster = base.cluster;
    this.nextProducerId = base.nextProducerId;
  }

  replay(record: MetadataRecord): void {
    const kind = recordKindOf(record);
    switch (kind) {
      case 'cluster': return this.applyCluster(record.cluster!);
      case 'registerBroker': return this.applyRegisterBroker(record.registerBroker!, this.offset);
      case 'brokerState': {
        const change = record.brokerState!;
        return this.setBrokerState(change.nodeId ?? -1, int64(change.brokerEpoch, 'broker epoch'), brokerStateOf(change.state));
      }
      case 'topic': return this.applyTopic(record.topic!);
      case 'partition': return this.applyPartition(record.partition!);
      case 'partitionChange': return this.applyPartitionChange(record.partitionChange!);
      case 'removeTopic': return this.removeTopic(record.removeTopic!.topicId ?? '');
      case 'producerIds': {
        const block = record.producerIds!;
        const first = int64(block.firstProducerId, 'first producer id');
        assert(first === this.nextProducerId, () => `producer id block starts at ${first}, expected ${this.nextProducerId}`);
        assert(Number.isInteger(block.size) && block.size! > 0, () => `producer id block of size ${block.size}`);
        assert(this.brokerMap().has(block.nodeId ?? -1), () => `producer ids for unknown broker ${block.nodeId}`);
        this.nextProducerId = first + block.size!;
        return;
      }
      case 'config': {
        const config = record.config!;
        return this.setConfig(config.topicId ?? '', config.name ?? '', config.deleted ? null : config.value ?? '');
      }
      case 'streamConsumer': return this.applyStreamConsumer(record.streamConsumer!);
      case 'removeStreamConsumer': {
        const removal = record.removeStreamConsumer!;
        return this.removeStreamConsumer(removal.topicId ?? '', removal.consumerName ?? '');
      }
      default: return unreachable(kind, 'metadata record kind');
    }
  }

  applyCluster(record: ClusterRecord): void {
    const clusterId = record.clusterId ?? '';
    assert(clusterId.length > 0, 'cluster record without a cluster id');
    if (this.cluster !== null) {
      // A repeated ClusterRecord of the same cluster changes nothing: the controller appends one
      // as a barrier after an append whose outcome it does not know (metadata.proto has no no-op).
      assert(this.cluster.clusterId === clusterId, () => `cluster record ${clusterId} for cluster ${this.cluster?.clusterId}`);
      return;
    }
    const secret = record.clusterSecret ?? new Uint8Array(0);
    assert(typeof secret !== 'string', 'cluster secret as a string');
    this.cluster = Object.freeze({ clusterId, clusterSecret: Uint8Array.from(secret), createdAtMs: int64(record.createdAtMs, 'created at') });
  }

  /** Registers (or re-registers) a broker; its epoch is `epoch` (the record's offset). */
  applyRegisterBroker(record: RegisterBrokerRecord, epoch: number): void {
    const nodeId = record.nodeId ?? -1;
    assert(Number.isInteger(nodeId) && nodeId >= 0, () => `register broker ${nodeId}`);
    assert(record.incarnationId, () => `broker ${nodeId} registered without an incarnation id`);
    const written = int64(record.brokerEpoch, 'broker epoch');
    assert(written === 0 || written === epoch, () => `broker ${nodeId} record epoch ${written} at offset ${epoch}`);
    const previous = this.brokerMap().get(nodeId);
    assert(previous === undefined || previous.epoch < epoch, () => `broker ${nodeId} epoch ${epoch} not above ${previous?.epoch}`);
    const broker: BrokerInfo = Object.freeze({
      nodeId, incarnationId: record.incarnationId, epoch, rack: record.rack ?? '',
      listener: endpointOf(record.listener), http: endpointOf(record.http),
      roles: Object.freeze([...(record.roles ?? [])]), state: record.fenced ? 'fenced' : 'active',
    });
    this.brokersForWrite().set(nodeId, broker);
  }

  setBrokerState(nodeId: number, epoch: number, state: BrokerState): void {
    const broker = this.brokerMap().get(nodeId);
    assert(broker, () => `state ${state} for unknown broker ${nodeId}`);
    assert(broker.epoch === epoch, () => `state ${state} for broker ${nodeId} epoch ${epoch}, registered at ${broker.epoch}`);
    this.brokersForWrite().set(nodeId, Object.freeze({ ...broker, state }));
  }

  applyTopic(record: TopicRecord): void {
    const topicId = record.topicId ?? '';
    const name = record.name ?? '';
    assert(topicId.length > 0 && name.length > 0, () => `topic record '${name}' / '${topicId}'`);
    assert(!this.topicMap().has(topicId), () => `topic id ${topicId} exists`);
    assert(!this.nameMap().has(name), () => `topic name ${name} exists`);
    assert(TOPIC_KINDS.includes(record.kind as TopicKind), () => `topic ${name} of kind ${record.kind}`);
    const replicationFactor = record.replicationFactor ?? 0;
    assert(Number.isInteger(replicationFactor) && replicationFactor >= 1, () => `topic ${name} replication factor ${replicationFactor}`);
    const topic: TopicInfo = Object.freeze({
      topicId, name, kind: record.kind as TopicKind, replicationFactor, configs: Object.freeze({ ...(record.configs ?? {}) }),
      internal: record.internal ?? false, createdAtMs: int64(record.createdAtMs, 'created at'),
      partitions: Object.freeze([]), consumers: new Map(),
    });
    this.topicsForWrite().set(topicId, topic);
    this.namesForWrite().set(name, topicId);
  }

  applyPartition(record: PartitionRecord): void {
    const draft = this.draft(record.topicId ?? '');
    const partitions = this.partitionsForWrite(draft);
    assert(record.partition === partitions.length, () => `partition ${record.partition} of ${draft.topic.name} after ${partitions.length}`);
    const info = freezePartition({
      topicId: draft.topic.topicId, partition: record.partition, replicas: record.replicas ?? [], isr: record.isr ?? [],
      leader: record.leader ?? NO_LEADER, leaderEpoch: record.leaderEpoch ?? 0, partitionEpoch: record.partitionEpoch ?? 0,
      startingHashKey: record.startingHashKey ?? '', endingHashKey: record.endingHashKey ?? '',
      parentPartitions: record.parentPartitions ?? [], state: partitionStateOf(record.state), createdAtMs: int64(record.createdAtMs, 'created at'),
    });
    this.checkPartition(info);
    partitions.push(info);
  }

  /** Every change bumps the partition epoch; a change of leader also bumps the leader epoch. */
  applyPartitionChange(change: PartitionChangeRecord): void {
    const draft = this.draft(change.topicId ?? '');
    const partitions = this.partitionsForWrite(draft);
    const index = change.partition ?? -1;
    const current = partitions[index];
    assert(current, () => `change of unknown partition ${draft.topic.name}-${index}`);
    const leader = change.leader ?? current.leader;
    const next = freezePartition({
      ...current,
      leader,
      leaderEpoch: leader === current.leader ? current.leaderEpoch : current.leaderEpoch + 1,
      partitionEpoch: current.partitionEpoch + 1,
      isr: change.isrChanged ? change.isr ?? [] : current.isr,
      replicas: change.replicasChanged ? change.replicas ?? [] : current.replicas,
      state: change.state === undefined ? current.state : partitionStateOf(change.state),
    });
    this.checkPartition(next);
    partitions[index] = next;
  }

  removeTopic(topicId: string): void {
    const topic = this.topicMap().get(topicId);
    assert(topic, () => `removal of unknown topic ${topicId}`);
    this.drafts.delete(topicId);
    this.topicsForWrite().delete(topicId);
    this.namesForWrite().delete(topic.name);
  }

  setConfig(topicId: string, name: string, value: string | null): void {
    assert(name.length > 0, () => `config without a name on topic ${topicId}`);
    const draft = this.draft(topicId);
    draft.configs ??= { ...draft.topic.configs };
    if (value === null) delete draft.configs[name];
    else draft.configs[name] = value;
  }

  applyStreamConsumer(record: StreamConsumerRecord): void {
    const draft = this.draft(record.topicId ?? '');
    assert(draft.topic.kind === 'stream', () => `stream consumer on ${draft.topic.kind} topic ${draft.topic.name}`);
    const consumerName = record.consumerName ?? '';
    assert(consumerName.length > 0, 'stream consumer without a name');
    draft.consumers ??= new Map(draft.topic.consumers);
    assert(!draft.consumers.has(consumerName), () => `stream consumer ${consumerName} exists`);
    draft.consumers.set(consumerName, Object.freeze({
      topicId: draft.topic.topicId, consumerName, consumerArn: record.consumerArn ?? '', createdAtMs: int64(record.createdAtMs, 'created at'),
    }));
  }

  removeStreamConsumer(topicId: string, consumerName: string): void {
    const draft = this.draft(topicId);
    draft.consumers ??= new Map(draft.topic.consumers);
    assert(draft.consumers.delete(consumerName), () => `removal of unknown stream consumer ${consumerName}`);
  }

  setNextProducerId(value: number): void {
    assert(Number.isSafeInteger(value) && value >= this.nextProducerId, () => `next producer id ${value}`);
    this.nextProducerId = value;
  }

  finish(): ImageState {
    for (const [topicId, draft] of this.drafts) {
      this.topicsForWrite().set(topicId, Object.freeze({
        ...draft.topic,
        partitions: draft.partitions ? Object.freeze(draft.partitions) : draft.topic.partitions,
        configs: draft.configs ? Object.freeze(draft.configs) : draft.topic.configs,
        consumers: draft.consumers ?? draft.topic.consumers,
      }));
    }
    this.drafts.clear();
    return Object.freeze({
      offset: this.offset, cluster: this.cluster, nextProducerId: this.nextProducerId,
      brokers: this.brokerMap(), topics: this.topicMap(), topicIdsByName: this.nameMap(),
    });
  }

  /** Replicas distinct and registered, ISR a non-empty subset, leader in the ISR or none. */
  private checkPartition(info: PartitionInfo): void {
    const what = `${info.topicId}-${info.partition}`;
    assert(info.replicas.length > 0 && new Set(info.replicas).size === info.replicas.length, () => `${what} replicas ${info.replicas}`);
    for (const replica of info.replicas) assert(this.brokerMap().has(replica), () => `${what} replica ${replica} not registered`);
    assert(info.isr.length > 0 && new Set(info.isr).size === info.isr.length, () => `${what} isr ${info.isr}`);
    for (const member of info.isr) assert(info.replicas.includes(member), () => `${what} isr ${info.isr} not within ${info.replicas}`);
    assert(info.leader === NO_LEADER || info.isr.includes(info.leader), () => `${what} leader ${info.leader} not in isr ${info.isr}`);
    assert(info.leaderEpoch >= 0 && info.partitionEpoch >= 0, () => `${what} epochs ${info.leaderEpoch}/${info.partitionEpoch}`);
  }

  private brokerMap(): ReadonlyMap<number, BrokerInfo> {
    return this.brokers ?? this.base.brokers;
  }

  private brokersForWrite(): Map<number, BrokerInfo> {
    return (this.brokers ??= new Map(this.base.brokers));
  }

  private topicMap(): ReadonlyMap<string, TopicInfo> {
    return this.topics ?? this.base.topics;
  }

  private topicsForWrite(): Map<string, TopicInfo> {
    return (this.topics ??= new Map(this.base.topics));
  }

  private nameMap(): ReadonlyMap<string, string> {
    return this.names ?? this.base.topicIdsByName;
  }

  private namesForWrite(): Map<string, string> {
    return (this.names ??= new Map(this.base.topicIdsByName));
  }

  private draft(topicId: string): TopicDraft {
    const existing = this.drafts.get(topicId);
    if (existing) return existing;
    const topic = this.topicMap().get(topicId);
    assert(topic, () => `record for unknown topic ${topicId}`);
    const draft: TopicDraft = { topic, partitions: null, configs: null, consumers: null };
    this.drafts.set(topicId, draft);
    return draft;
  }

  private partitionsForWrite(draft: TopicDraft): PartitionInfo[] {
    return (draft.partitions ??= [...draft.topic.partitions]);
  }
}

function freezePartition(info: PartitionInfo): PartitionInfo {
  return Object.freeze({
    ...info,
    replicas: Object.freeze([...info.replicas]),
    isr: Object.freeze([...info.isr]),
    parentPartitions: Object.freeze([...info.parentPartitions]),
  });
}

function endpointOf(endpoint: Endpoint | null | undefined): EndpointInfo | null {
  if (!endpoint) return null;
  return Object.freeze({ host: endpoint.host ?? '', port: endpoint.port ?? 0 });
}

function brokerStateOf(state: string | undefined): BrokerState {
  assert(BROKER_STATES.includes(state as BrokerState), () => `broker state '${state}'`);
  return state as BrokerState;
}

function partitionStateOf(state: string | undefined): PartitionState {
  const value = state === undefined || state === '' ? 'open' : state;
  assert(PARTITION_STATES.includes(value as PartitionState), () => `partition state '${state}'`);
  return value as PartitionState;
}

/** An int64 field as a JavaScript number (exact below 2^53, which offsets and ids stay under). */
export function int64(value: number | string | Long | null | undefined, what: string): number {
  if (value === undefined || value === null) return 0;
  const number = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : value.toNumber();
  assert(Number.isSafeInteger(number), () => `${what} ${String(value)} is not a safe integer`);
  return number;
}
