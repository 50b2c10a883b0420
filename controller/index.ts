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
