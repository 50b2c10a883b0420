// The controller's public surface: the metadata image and codec, placement, and the active
// controller's decisions. Other areas (the node wiring in src/cli, the broker's metadata cache)
// import only from here.
export {
  MetadataCodecError, METADATA_BATCH_RECORDS_MAX, METADATA_RECORD_KINDS, METADATA_SNAPSHOT_BYTES_MAX,
  decodeMetadataBatch, decodeMetadataSnapshot, encodeMetadataBatch, encodeMetadataSnapshot, recordKindOf,
  type MetadataRecordKind,
} from './metadata-codec.js';
export { MetadataImage, partitionRecordOf, registrationRecordOf, topicRecordOf } from './metadata-image.js';
export {
  BROKER_STATES, NO_LEADER, PARTITION_STATES, TOPIC_KINDS,
  type BrokerInfo, type BrokerState, type ClusterInfo, type EndpointInfo, type PartitionInfo, type PartitionRef,
  type PartitionState, type StreamConsumerInfo, type TopicInfo, type TopicKind,
} from './metadata-types.js';
export { PLACEMENT_PARTITIONS_MAX, placeReplicas, type PlacementRequest } from './placement.js';
export {
  QuorumController, OFFSETS_TOPIC, OFFSETS_TOPIC_CONFIGS, ADMIN_ITEMS_PER_REQUEST_MAX, PARTITION_CHANGES_PER_BATCH_MAX, MUTATIONS_QUEUED_MAX,
  type MetadataLog, type QuorumControllerOptions,
} from './quorum-controller.js';
export {
  ControllerConfigError, DEFAULT_CONTROLLER_CONFIG, TOPIC_PARTITIONS_MAX, resolveControllerConfig, type ControllerConfig,
} from './controller-config.js';
export { ControllerMetrics, type ControllerMetricsSource } from './controller-metrics.js';
export {
  MIN_INSYNC_REPLICAS_KEY, STREAM_CONFIG_KEYS, TOPIC_CONFIG_KEYS, defaultMinInsyncReplicas, minInsyncReplicasOf, validateTopicConfig, validateTopicConfigs,
} from './topic-configs.js';
export { CLUSTER_PARTITIONS_MAX, TOPIC_NAME_LENGTH_MAX, validateTopicName } from './topic-requests.js';
export { changeTo, electIfLeaderless, electLeader, electPreferred, removeReplica, type Eligibility } from './partition-changes.js';
export {
  ON_DEMAND_INITIAL_SHARDS, PUT_RECORDS_BYTES_MAX, RECORD_BYTES_DEFAULT, STREAM_CONSUMERS_MAX, STREAM_OPEN_SHARDS_MAX, STREAM_RETENTION_HOURS_DEFAULT, STREAM_RETENTION_HOURS_MAX,
  STREAM_RETENTION_HOURS_MIN, STREAM_SHARDS_TOTAL_MAX, openShardsCoverHashSpace, openShardsOf, streamNamed,
} from './stream-requests.js';
