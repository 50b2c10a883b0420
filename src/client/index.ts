// The Riffle TypeScript SDK. It depends on the proto contracts and the shared ground floor
// (src/util, src/rpc), never on server code.
export { RiffleClient, DEFAULT_BOOTSTRAP, type RiffleClientOptions, type TopicMetadata, type PartitionMetadata } from './client.js';
export { Producer, type ProducerOptions, type ProducerRecord, type RecordMetadata, type Acks, type SendCallback } from './producer.js';
export { PartitionConsumer, type ConsumerOptions, type ConsumerRecord, type OffsetReset } from './consumer.js';
export { Admin, GroupAdmin, type NewTopic, type TopicDescription, type ListedTopic, type ClusterDescription, type ListedGroup, type GroupDescription, type OffsetResetTarget } from './admin.js';
export {
  GroupConsumer, type GroupConsumerOptions, type SubscribeOptions, type RunOptions, type EachMessagePayload, type EachBatchPayload, type OffsetToCommit, type GroupConsumerEvent,
} from './group-consumer.js';
export type { TopicPartition } from './group-fetcher.js';
export { murmur2, partitionForKey, StickyPartitioner } from './partitioner.js';
export { RiffleError, isRiffleError, type ErrorName } from '../rpc/errors.js';
export {
  KinesisClient, withKinesisRetries, type CreateStreamOptions, type PutRecordsEntry, type StartingPosition, type SubscribeOptions as SubscribeToShardOptions,
  type Shard, type SubscribeToShardEvent, type GetRecordsResult,
} from './kinesis.js';
export {
  decodeSequenceNumber, encodeSequenceNumber, hashKeyOfPartitionKey, partitionOfShardId, shardIdOf, streamArnOf, HASH_KEY_MAX,
} from '../util/kinesis.js';
export {
  KinesisWorker, getCheckpoints, findApplicationCoordinator, SHARD_END, type KinesisWorkerOptions, type ShardRecordProcessor, type RecordProcessorCheckpointer,
  type ShardInfo, type WorkerEvent, type KinesisRecord,
} from './kinesis-worker.js';
