// Reading a shard the Kinesis way, for GetRecords and SubscribeToShard alike: records below the
// high watermark (committed) from an offset, as KinesisRecords (sequence number, arrival time,
// partition key, data), plus where to continue, how far behind the tip that is, and, once a
// closed shard is read to its end, its child shards. Also where each iterator type starts.
import type { Partition } from '../partition.js';
import type { PartitionInfo, TopicInfo } from '../../controller/index.js';
import { RiffleError } from '../../src/rpc/errors.js';
import { forEachRecordOfAll } from '../../src/util/record-batch.js';
import { decodeSequenceNumber, encodeSequenceNumber, shardIdOf } from '../../src/util/kinesis.js';
import type { KinesisRecord } from '../../src/rpc/generated/riffle/v1/KinesisRecord.js';
import type { ChildShard } from '../../src/rpc/generated/riffle/v1/ChildShard.js';

export const ITERATOR_TYPES = ['AT_SEQUENCE_NUMBER', 'AFTER_SEQUENCE_NUMBER', 'TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP'] as const;
export type IteratorType = (typeof ITERATOR_TYPES)[number];

export interface ShardRead {
  records: KinesisRecord[];
  /** The offset to continue from. */
  nextOffset: number;
  dataBytes: number;
  millisBehindLatest: number;
  /** The shard is closed and everything in it has been read. */
  atShardEnd: boolean;
  childShards: ChildShard[];
  /** Arrival time of the newest record returned (for push latency), -1 with none. */
  newestArrivalMs: number;
}

export interface ReadLimits {
  records: number;
  bytes: number;
}

/**
 * Reads committed records from `offset` on (the leader's view); offsets trimmed by retention are
 * skipped. Old records are read from the files on the thread pool.
 */
export async function readShard(topic: TopicInfo, info: PartitionInfo, partition: Partition, offset: number, limits: ReadLimits, nowMs: number): Promise<ShardRead> {
  const start = Math.max(offset, partition.logStartOffset);
  const highWatermark = partition.highWatermark;
  const records: KinesisRecord[] = [];
  let dataBytes = 0;
  let newestArrivalMs = -1;
  let lastOffset = -1;
  if (start < highWatermark) {
    const buffer = await partition.read(start, limits.bytes);
    forEachRecordOfAll(buffer, (recordOffset, timestamp, key, value) => {
      if (recordOffset < start || records.length >= limits.records) return;
      if (records.length > 0 && dataBytes + (value?.length ?? 0) > limits.bytes) return;
      const data = value ?? EMPTY;
      records.push({
        sequenceNumber: encodeSequenceNumber(info.partition, recordOffset),
        approximateArrivalTimestamp: timestamp,
        data,
        partitionKey: key ? key.toString('utf8') : '',
        encryptionType: 'NONE',
      });
      dataBytes += data.length;
      newestArrivalMs = timestamp;
      lastOffset = recordOffset;
    }, { verifyCrc: false });
  }
  const nextOffset = lastOffset >= 0 ? lastOffset + 1 : start;
  const atShardEnd = partition.isClosed && nextOffset >= highWatermark && highWatermark >= partition.logEndOffset;
  return {
    records,
    nextOffset,
    dataBytes,
    millisBehindLatest: nextOffset >= highWatermark ? 0 : Math.max(0, nowMs - (newestArrivalMs >= 0 ? newestArrivalMs : nowMs)),
    atShardEnd,
    childShards: atShardEnd ? childShardsOf(topic, info.partition) : [],
    newestArrivalMs,
  };
}

export function childShardsOf(topic: TopicInfo, partition: number): ChildShard[] {
  return topic.partitions
    .filter((candidate) => candidate.parentPartitions.includes(partition))
    .map((child) => ({
      shardId: shardIdOf(child.partition),
      parentShards: child.parentPartitions.map(shardIdOf),
      hashKeyRange: { startingHashKey: child.startingHashKey, endingHashKey: child.endingHashKey },
    }));
}

export interface StartingPosition {
  type: string;
  sequenceNumber?: string | null;
  timestampMs?: number | null;
}

/** Where an iterator (or a subscription) of `position.type` starts in the shard. */
export function startingOffset(info: PartitionInfo, partition: Partition, position: StartingPosition): number {
  switch (position.type as IteratorType) {
    case 'TRIM_HORIZON':
      return partition.logStartOffset;
    case 'LATEST':
      return partition.highWatermark;
    case 'AT_SEQUENCE_NUMBER':
    case 'AFTER_SEQUENCE_NUMBER': {
      const decoded = decodeSequenceNumber(position.sequenceNumber ?? '');
      if (!decoded) throw new RiffleError('INVALID_ARGUMENT', `StartingSequenceNumber '${position.sequenceNumber ?? ''}' is not a sequence number of this stream.`);
      if (decoded.partition !== info.partition) {
        throw new RiffleError('INVALID_ARGUMENT', `StartingSequenceNumber ${position.sequenceNumber} belongs to ${shardIdOf(decoded.partition)}, not ${shardIdOf(info.partition)}.`);
      }
      const offset = position.type === 'AT_SEQUENCE_NUMBER' ? decoded.offset : decoded.offset + 1;
      // The log end, not the high watermark: a new leader may not have recomputed its high
      // watermark yet when a client resumes after the last record it was given.
      if (offset < 0 || offset > partition.logEndOffset) {
        throw new RiffleError('INVALID_ARGUMENT', `StartingSequenceNumber ${position.sequenceNumber} is beyond the end of ${shardIdOf(info.partition)}.`);
      }
      return Math.max(offset, partition.logStartOffset);
    }
    case 'AT_TIMESTAMP': {
      const timestamp = position.timestampMs;
      if (timestamp === undefined || timestamp === null || !Number.isFinite(timestamp) || timestamp < 0) {
        throw new RiffleError('INVALID_ARGUMENT', 'AT_TIMESTAMP needs a Timestamp (milliseconds since the epoch).');
      }
      const found = partition.log.offsetForTimestamp(timestamp, partition.highWatermark);
      return found ? found.offset : partition.highWatermark;
    }
    default:
      throw new RiffleError('INVALID_ARGUMENT', `ShardIteratorType must be one of ${ITERATOR_TYPES.join(', ')}, not '${position.type}'.`);
  }
}

const EMPTY = Buffer.alloc(0);
