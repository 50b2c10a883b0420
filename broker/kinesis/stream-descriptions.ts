// The read-only half of the Kinesis API, answered from the broker's metadata image: stream
// summaries and descriptions, ListStreams and ListShards with Kinesis's pagination (NextToken,
// ExclusiveStartShardId, MaxResults) and shard filters, and EFO consumers.
//
// A shard's open interval is [its creation, the creation of its children) - the children of a
// resharding are created in the same metadata batch that closes it - which is what the
// time-based shard filters (AT_TRIM_HORIZON, AT_TIMESTAMP, ...) are evaluated against.
import { openShardsOf, type PartitionInfo, type TopicInfo, type MetadataImage, type StreamConsumerInfo } from '../../controller/index.js';
import { RiffleError } from '../../src/rpc/errors.js';
import { encodeSequenceNumber, endingSequenceNumberOf, partitionOfShardId, shardIdOf, streamArnOf } from '../../src/util/kinesis.js';
import type { Shard } from '../../src/rpc/generated/riffle/v1/Shard.js';
import type { StreamDescriptionSummary } from '../../src/rpc/generated/riffle/v1/StreamDescriptionSummary.js';
import type { Consumer } from '../../src/rpc/generated/riffle/v1/Consumer.js';
import type { ListShardsRequest__Output } from '../../src/rpc/generated/riffle/v1/ListShardsRequest.js';
import type { ListShardsResponse } from '../../src/rpc/generated/riffle/v1/ListShardsResponse.js';

export const LIST_SHARDS_RESULTS_DEFAULT = 1_000;
export const LIST_SHARDS_RESULTS_MAX = 10_000;
export const NEXT_TOKEN_TTL_MS = 300_000;
const HOUR_MS = 3_600_000;

export function shardOf(info: PartitionInfo): Shard {
  return {
    shardId: shardIdOf(info.partition),
    parentShardId: info.parentPartitions[0] === undefined ? undefined : shardIdOf(info.parentPartitions[0]),
    adjacentParentShardId: info.parentPartitions[1] === undefined ? undefined : shardIdOf(info.parentPartitions[1]),
    hashKeyRange: { startingHashKey: info.startingHashKey, endingHashKey: info.endingHashKey },
    sequenceNumberRange: {
      startingSequenceNumber: encodeSequenceNumber(info.partition, 0),
      endingSequenceNumber: info.state === 'closed' ? endingSequenceNumberOf(info.partition) : undefined,
    },
  };
}

export function retentionHoursOf(topic: TopicInfo): number {
  return Math.round(Number(topic.configs['retention.ms'] ?? 24 * HOUR_MS) / HOUR_MS);
}

export function summaryOf(image: MetadataImage, topic: TopicInfo): StreamDescriptionSummary {
  return {
    streamName: topic.name,
    streamArn: streamArnOf(image.cluster?.clusterId ?? '', topic.name),
    streamStatus: 'ACTIVE',
    streamModeDetails: { streamMode: topic.configs['stream.mode'] ?? 'PROVISIONED' },
    retentionPeriodHours: retentionHoursOf(topic),
    streamCreationTimestamp: topic.createdAtMs,
    encryptionType: 'NONE',
    openShardCount: openShardsOf(topic).length,
    consumerCount: topic.consumers.size,
    limitsProfile: topic.configs['stream.limits'] ?? 'off',
  };
}

export function consumerOf(consumer: StreamConsumerInfo): Consumer {
  return { consumerName: consumer.consumerName, consumerArn: consumer.consumerArn, consumerStatus: 'ACTIVE', consumerCreationTimestamp: consumer.createdAtMs };
}

/** When the shard closed: its children's creation time (null while open). */
function closedAtMs(topic: TopicInfo, info: PartitionInfo): number | null {
  if (info.state === 'open') return null;
  const child = topic.partitions.find((candidate) => candidate.parentPartitions.includes(info.partition));
  return child ? child.createdAtMs : info.createdAtMs;
}

function openAt(topic: TopicInfo, info: PartitionInfo, timeMs: number): boolean {
  const closed = closedAtMs(topic, info);
  const created = info.parentPartitions.length === 0 ? Math.min(info.createdAtMs, topic.createdAtMs) : info.createdAtMs;
  // Before the stream existed, the answer is the shards it was created with (as Kinesis does).
  const effectiveTime = Math.max(timeMs, topic.createdAtMs);
  return created <= effectiveTime && (closed === null || closed > effectiveTime);
}

function openFrom(topic: TopicInfo, info: PartitionInfo, timeMs: number): boolean {
  const closed = closedAtMs(topic, info);
  return closed === null || closed > timeMs;
}

interface ShardsToken {
  stream: string;
  after: number;
  filter: ListShardsRequest__Output['shardFilter'];
  issuedAtMs: number;
}

function encodeToken(token: ShardsToken): string {
  return Buffer.from(JSON.stringify(token)).toString('base64url');
}

function decodeToken(text: string, nowMs: number): ShardsToken {
  let token: ShardsToken;
  try {
    token = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as ShardsToken;
  } catch {
    throw new RiffleError('INVALID_ARGUMENT', 'NextToken is not one ListShards issued.');
  }
  if (typeof token?.stream !== 'string' || !Number.isInteger(token.after) || !Number.isFinite(token.issuedAtMs)) {
    throw new RiffleError('INVALID_ARGUMENT', 'NextToken is not one ListShards issued.');
  }
  if (nowMs - token.issuedAtMs > NEXT_TOKEN_TTL_MS) throw new RiffleError('EXPIRED_NEXT_TOKEN', 'NextToken expired; list again from the start.');
  return token;
}

/** ListShards: `streamName` resolved by the caller from StreamName/StreamARN ('' with a NextToken). */
export function listShards(image: MetadataImage, request: ListShardsRequest__Output, streamName: string, nowMs: number): ListShardsResponse {
  if (request.nextToken && (streamName || request.exclusiveStartShardId || request.shardFilter)) {
    throw new RiffleError('INVALID_ARGUMENT', 'NextToken cannot be combined with StreamName, StreamARN, ExclusiveStartShardId or ShardFilter.');
  }
  const token = request.nextToken ? decodeToken(request.nextToken, nowMs) : null;
  const name = token ? token.stream : streamName;
  const topic = image.topicByName(name);
  if (!topic || topic.kind !== 'stream') throw new RiffleError('RESOURCE_NOT_FOUND', `Stream ${name} not found.`);
  const maxResults = request.maxResults || LIST_SHARDS_RESULTS_DEFAULT;
  if (maxResults < 1 || maxResults > LIST_SHARDS_RESULTS_MAX) throw new RiffleError('INVALID_ARGUMENT', `MaxResults must be between 1 and ${LIST_SHARDS_RESULTS_MAX}.`);
  const filter = token ? token.filter : request.shardFilter;
  let after = token ? token.after : -1;
  if (!token && request.exclusiveStartShardId) after = shardNumber(request.exclusiveStartShardId);
  const selected = topic.partitions.filter((info) => info.partition > after && passesFilter(topic, info, filter, retentionHoursOf(topic), nowMs));
  const page = selected.slice(0, maxResults);
  const more = selected.length > page.length;
  return {
    shards: page.map(shardOf),
    nextToken: more ? encodeToken({ stream: topic.name, after: page.at(-1)!.partition, filter: filter ?? null, issuedAtMs: nowMs }) : undefined,
  };
}

function shardNumber(shardId: string): number {
  const partition = partitionOfShardId(shardId);
  if (partition === null) throw new RiffleError('INVALID_ARGUMENT', `'${shardId}' is not a shard id (shardId-000000000000).`);
  return partition;
}

function passesFilter(topic: TopicInfo, info: PartitionInfo, filter: ListShardsRequest__Output['shardFilter'], retentionHours: number, nowMs: number): boolean {
  if (!filter || !filter.type) return true;
  const trimHorizonMs = nowMs - retentionHours * HOUR_MS;
  const timestamp = Number(filter.timestamp ?? 0);
  switch (filter.type) {
    case 'AFTER_SHARD_ID': return info.partition > shardNumber(filter.shardId ?? '');
    case 'AT_TRIM_HORIZON': return openAt(topic, info, trimHorizonMs);
    case 'FROM_TRIM_HORIZON': return openFrom(topic, info, trimHorizonMs);
    case 'AT_LATEST': return info.state === 'open';
    case 'AT_TIMESTAMP': return openAt(topic, info, timestamp);
    case 'FROM_TIMESTAMP': return openFrom(topic, info, timestamp);
    default:
      throw new RiffleError('INVALID_ARGUMENT', `ShardFilter type must be AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP or FROM_TIMESTAMP, not '${filter.type}'.`);
  }
}
