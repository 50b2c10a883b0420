// The read-only shapes of the metadata image: what a broker, topic, partition and stream consumer
// look like once the metadata log's records have been applied. Everything here is frozen; the
// image never hands out anything a caller could mutate.

/** Registration state of a broker, as written by BrokerStateRecord. */
export type BrokerState = 'fenced' | 'active' | 'controlled_shutdown';
export const BROKER_STATES: readonly BrokerState[] = ['fenced', 'active', 'controlled_shutdown'];

export type TopicKind = 'kafka' | 'stream';
export const TOPIC_KINDS: readonly TopicKind[] = ['kafka', 'stream'];

/** A closed partition is a resharded stream shard's parent: it takes no more writes. */
export type PartitionState = 'open' | 'closed';
export const PARTITION_STATES: readonly PartitionState[] = ['open', 'closed'];

/** The leader of a partition that has none (no live member in its ISR). */
export const NO_LEADER = -1;

export interface EndpointInfo {
  readonly host: string;
  readonly port: number;
}

export interface ClusterInfo {
  readonly clusterId: string;
  /** Signs Kinesis shard iterators. */
  readonly clusterSecret: Uint8Array;
  readonly createdAtMs: number;
}

export interface BrokerInfo {
  readonly nodeId: number;
  readonly incarnationId: string;
  /** The metadata offset of the broker's latest registration record. */
  readonly epoch: number;
  /** The availability zone. */
  readonly rack: string;
  readonly listener: EndpointInfo | null;
  readonly http: EndpointInfo | null;
  readonly roles: readonly string[];
  readonly state: BrokerState;
}

export interface PartitionInfo {
  readonly topicId: string;
  readonly partition: number;
  /** The first replica is the preferred leader. */
  readonly replicas: readonly number[];
  readonly isr: readonly number[];
  /** NO_LEADER (-1) when no replica can lead. */
  readonly leader: number;
  /** Bumped by every change of leader. */
  readonly leaderEpoch: number;
  /** Bumped by every change of the partition. */
  readonly partitionEpoch: number;
  /** Streams only: the shard's inclusive hash-key range as decimal strings; '' for Kafka topics. */
  readonly startingHashKey: string;
  readonly endingHashKey: string;
  readonly parentPartitions: readonly number[];
  readonly state: PartitionState;
  readonly createdAtMs: number;
}

export interface StreamConsumerInfo {
  readonly topicId: string;
  readonly consumerName: string;
  readonly consumerArn: string;
  readonly createdAtMs: number;
}

export interface TopicInfo {
  readonly topicId: string;
  readonly name: string;
  readonly kind: TopicKind;
  readonly replicationFactor: number;
  /** Only the configs set on the topic; defaults are the reader's business. */
  readonly configs: Readonly<Record<string, string>>;
  readonly internal: boolean;
  readonly createdAtMs: number;
  /** Indexed by partition number: partitions are numbered densely from 0 and never removed. */
  readonly partitions: readonly PartitionInfo[];
  /** Enhanced fan-out consumers of a stream, by name. */
  readonly consumers: ReadonlyMap<string, StreamConsumerInfo>;
}

/** A partition named by its topic id and number. */
export interface PartitionRef {
  readonly topicId: string;
  readonly partition: number;
}

/** Everything an image holds; MetadataImage wraps one of these. */
export interface ImageState {
  /** The metadata offset of the last applied batch (0 for the empty image). */
  readonly offset: number;
  readonly cluster: ClusterInfo | null;
  readonly brokers: ReadonlyMap<number, BrokerInfo>;
  readonly topics: ReadonlyMap<string, TopicInfo>;
  readonly topicIdsByName: ReadonlyMap<string, string>;
  readonly nextProducerId: number;
}
