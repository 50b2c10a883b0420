// Kinesis-like stream administration decided against an image (Kinesis's CreateStream,
// DeleteStream, SplitShard, MergeShards, UpdateShardCount, retention and mode changes, EFO
// consumer registration). A stream is a topic of kind 'stream'; its shards are the topic's
// partitions, each carrying an inclusive hash-key range, its parents and an open/closed state.
// Each function validates one request and returns the records of ONE metadata batch, so a
// resharding closes its parents and opens its children atomically: every broker sees either the
// old shard map or the new one, never a gap in the hash-key space.
//
// UpdateShardCount (uniform scaling) is carried out as Kinesis does it, by splits and merges
// with at most two parents per child: open shards are split at every new boundary inside them,
// then the pieces of each new range are merged left to right. Intermediate shards are created
// closed in the same batch and so never hold a record; a reader walks through them at once.
import { RiffleError } from '../src/rpc/errors.js';
import { assert } from '../src/util/assert.js';
import { HASH_KEY_MAX, isValidStreamName, parseHashKey, uniformHashRanges } from '../src/util/kinesis.js';
import type { MetadataRecord } from '../src/rpc/generated/riffle/internal/MetadataRecord.js';
import type { AlterStreamRequest } from '../src/rpc/generated/riffle/internal/AlterStreamRequest.js';
import type { ControllerConfig } from './controller-config.js';
import type { MetadataImage } from './metadata-image.js';
import type { PartitionInfo, PartitionState, TopicInfo } from './metadata-types.js';
import { placeReplicas } from './placement.js';
import { MIN_INSYNC_REPLICAS_KEY, defaultMinInsyncReplicas, validateTopicConfigs } from './topic-configs.js';

export const STREAM_RETENTION_HOURS_DEFAULT = 24;
export const STREAM_RETENTION_HOURS_MIN = 1;
export const STREAM_RETENTION_HOURS_MAX = 8760;
/** Open shards of one stream (Kinesis's default account quota is lower). */
export const STREAM_OPEN_SHARDS_MAX = 1_000;
/** Shards of one stream, open and closed: partitions are never removed. */
export const STREAM_SHARDS_TOTAL_MAX = 10_000;
/** Kinesis: an on-demand stream starts with 4 shards. */
export const ON_DEMAND_INITIAL_SHARDS = 4;
/** Kinesis: at most 20 Enhanced Fan-Out consumers per stream. */
export const STREAM_CONSUMERS_MAX = 20;
/** Kinesis: record data up to 1 MiB by default; a PutRecords request up to 5 MiB. */
export const RECORD_BYTES_DEFAULT = 1024 * 1024;
export const PUT_RECORDS_BYTES_MAX = 5 * 1024 * 1024;
/** Room for partition keys and RecordBatch framing above the data bytes. */
const BATCH_OVERHEAD_BYTES = 256 * 1024;
const CONSUMER_NAME_PATTERN = /^[a-zA-Z0-9_.-]{1,128}$/;
const HOUR_MS = 3_600_000;

export interface StreamContext {
  readonly topicId: string;
  readonly startIndex: number;
  readonly nowMs: number;
}

export function streamNamed(image: MetadataImage, name: string): TopicInfo {
  const topic = image.topicByName(name);
  if (!topic || topic.kind !== 'stream') throw new RiffleError('RESOURCE_NOT_FOUND', `Stream ${name} not found.`);
  return topic;
}

export function openShardsOf(topic: TopicInfo): PartitionInfo[] {
  return topic.partitions.filter((partition) => partition.state === 'open').sort((a, b) => compareHashKeys(a.startingHashKey, b.startingHashKey));
}

function compareHashKeys(a: string, b: string): number {
  const difference = BigInt(a) - BigInt(b);
  return difference < 0n ? -1 : difference > 0n ? 1 : 0;
}

export function planCreateStream(image: MetadataImage, request: AlterStreamRequest, config: ControllerConfig, context: StreamContext): MetadataRecord[] {
  const name = request.streamName ?? '';
  if (!isValidStreamName(name)) throw new RiffleError('INVALID_ARGUMENT', `Stream name '${name}' must be 1..128 of [a-zA-Z0-9_.-].`);
  if (image.topicByName(name)) throw new RiffleError('RESOURCE_IN_USE', `Stream ${name} already exists (or a topic of that name).`);
  const mode = request.streamMode || 'PROVISIONED';
  if (mode !== 'PROVISIONED' && mode !== 'ON_DEMAND') throw new RiffleError('INVALID_ARGUMENT', `StreamMode must be PROVISIONED or ON_DEMAND, not ${mode}.`);
  const shards = request.shardCount || (mode === 'ON_DEMAND' ? ON_DEMAND_INITIAL_SHARDS : 0);
  if (!Number.isInteger(shards) || shards < 1 || shards > STREAM_OPEN_SHARDS_MAX) {
    throw new RiffleError('INVALID_ARGUMENT', `ShardCount must be between 1 and ${STREAM_OPEN_SHARDS_MAX}, got ${request.shardCount}.`);
  }
  const active = image.activeBrokers().length;
  const replicationFactor = request.replicationFactor || Math.max(1, Math.min(config.defaultReplicationFactor, active));
  const hours = request.retentionPeriodHours || STREAM_RETENTION_HOURS_DEFAULT;
  checkRetentionHours(hours);
  const configs: Record<string, string> = {
    'retention.ms': String(hours * HOUR_MS),
    'stream.mode': mode,
    'stream.limits': request.limitsProfile || 'off',
    [MIN_INSYNC_REPLICAS_KEY]: String(defaultMinInsyncReplicas(replicationFactor)),
  };
  if (request.recordBytesMax) configs['stream.record.bytes.max'] = String(request.recordBytesMax);
  // One PutRecords writes one batch per shard: up to the request limit, or one largest record.
  configs['max.message.bytes'] = String(Math.max(PUT_RECORDS_BYTES_MAX, request.recordBytesMax || RECORD_BYTES_DEFAULT) + BATCH_OVERHEAD_BYTES);
  try {
    validateTopicConfigs(configs, replicationFactor);
  } catch (error) {
    throw new RiffleError('INVALID_ARGUMENT', error instanceof Error ? error.message : String(error));
  }
  const assignments = placeReplicas(image, { partitions: shards, replicationFactor, startIndex: context.startIndex });
  const records: MetadataRecord[] = [{
    topic: { name, topicId: context.topicId, kind: 'stream', replicationFactor, configs, internal: false, createdAtMs: context.nowMs },
  }];
  uniformHashRanges(shards).forEach((range, index) => {
    records.push(shardRecord(context.topicId, index, assignments[index]!, range, [], 'open', context.nowMs));
  });
  return records;
}

function checkRetentionHours(hours: number): void {
  if (!Number.isInteger(hours) || hours < STREAM_RETENTION_HOURS_MIN || hours > STREAM_RETENTION_HOURS_MAX) {
    throw new RiffleError('INVALID_ARGUMENT', `RetentionPeriodHours must be between ${STREAM_RETENTION_HOURS_MIN} and ${STREAM_RETENTION_HOURS_MAX}, got ${hours}.`);
  }
}

function shardRecord(
  topicId: string, partition: number, replicas: number[], range: { start: bigint; end: bigint }, parents: number[], state: PartitionState, nowMs: number,
): MetadataRecord {
  return {
    partition: {
      topicId, partition, replicas, isr: replicas, leader: replicas[0]!, leaderEpoch: 0, partitionEpoch: 0,
      startingHashKey: range.start.toString(), endingHashKey: range.end.toString(), parentPartitions: parents, state, createdAtMs: nowMs,
    },
  };
}

export function planDeleteStream(image: MetadataImage, request: AlterStreamRequest): MetadataRecord[] {
  const topic = streamNamed(image, request.streamName ?? '');
  if (topic.consumers.size > 0 && !request.enforceConsumerDeletion) {
    throw new RiffleError('RESOURCE_IN_USE', `Stream ${topic.name} has ${topic.consumers.size} registered consumers; set EnforceConsumerDeletion to delete it anyway.`);
  }
  return [{ removeTopic: { topicId: topic.topicId } }];
}

/** New shards of one resharding batch, numbered after the stream's existing partitions. */
class ReshardPlan {
  private readonly created: { parents: number[]; range: { start: bigint; end: bigint }; state: PartitionState }[] = [];
  private readonly closedExisting: number[] = [];

  constructor(private readonly topic: TopicInfo) {}

  /** Creates an open child and returns its partition number. */
  child(range: { start: bigint; end: bigint }, parents: number[]): number {
    assert(range.start <= range.end, 'a shard range is not empty');
    this.created.push({ parents, range, state: 'open' });
    return this.topic.partitions.length + this.created.length - 1;
  }

  close(partition: number): void {
    const createdIndex = partition - this.topic.partitions.length;
    if (createdIndex >= 0) this.created[createdIndex]!.state = 'closed';
    else this.closedExisting.push(partition);
  }

  records(image: MetadataImage, context: StreamContext): MetadataRecord[] {
    const total = this.topic.partitions.length + this.created.length;
    if (total > STREAM_SHARDS_TOTAL_MAX) {
      throw new RiffleError('LIMIT_EXCEEDED', `Stream ${this.topic.name} would have ${total} shards (open and closed); the limit is ${STREAM_SHARDS_TOTAL_MAX}.`);
    }
    const records: MetadataRecord[] = this.closedExisting.map((partition) => ({
      partitionChange: { topicId: this.topic.topicId, partition, state: 'closed' },
    }));
    if (this.created.length === 0) return records;
    const assignments = placeReplicas(image, { partitions: this.created.length, replicationFactor: this.topic.replicationFactor, startIndex: context.startIndex });
    this.created.forEach((shard, index) => {
      records.push(shardRecord(this.topic.topicId, this.topic.partitions.length + index, assignments[index]!, shard.range, shard.parents, shard.state, context.nowMs));
    });
    return records;
  }
}

function rangeOf(partition: PartitionInfo): { start: bigint; end: bigint } {
  return { start: BigInt(partition.startingHashKey), end: BigInt(partition.endingHashKey) };
}

function openShard(topic: TopicInfo, partition: number, what: string): PartitionInfo {
  const shard = topic.partitions[partition];
  if (!shard) throw new RiffleError('RESOURCE_NOT_FOUND', `${what} of stream ${topic.name} not found.`);
  if (shard.state !== 'open') throw new RiffleError('INVALID_ARGUMENT', `${what} of stream ${topic.name} is closed.`);
  return shard;
}

export function planSplitShard(image: MetadataImage, request: AlterStreamRequest, context: StreamContext): MetadataRecord[] {
  const topic = streamNamed(image, request.streamName ?? '');
  const parent = openShard(topic, request.partition ?? -1, 'ShardToSplit');
  checkOpenShardRoom(topic, 1);
  const key = parseHashKey(request.newStartingHashKey ?? '');
  const range = rangeOf(parent);
  if (key === null || key <= range.start || key > range.end) {
    throw new RiffleError('INVALID_ARGUMENT', `NewStartingHashKey must be a decimal in (${range.start}, ${range.end}], the range of the shard, got '${request.newStartingHashKey}'.`);
  }
  const plan = new ReshardPlan(topic);
  plan.close(parent.partition);
  plan.child({ start: range.start, end: key - 1n }, [parent.partition]);
  plan.child({ start: key, end: range.end }, [parent.partition]);
  return plan.records(image, context);
}

export function planMergeShards(image: MetadataImage, request: AlterStreamRequest, context: StreamContext): MetadataRecord[] {
  const topic = streamNamed(image, request.streamName ?? '');
  const shard = openShard(topic, request.partition ?? -1, 'ShardToMerge');
  const adjacent = openShard(topic, request.adjacentPartition ?? -1, 'AdjacentShardToMerge');
  if (shard.partition === adjacent.partition) throw new RiffleError('INVALID_ARGUMENT', 'A shard cannot be merged with itself.');
  const a = rangeOf(shard);
  const b = rangeOf(adjacent);
  if (a.end + 1n !== b.start && b.end + 1n !== a.start) {
    throw new RiffleError('INVALID_ARGUMENT', 'Shards must be adjacent to be merged: their hash-key ranges must touch.');
  }
  const plan = new ReshardPlan(topic);
  plan.close(shard.partition);
  plan.close(adjacent.partition);
  plan.child({ start: a.start < b.start ? a.start : b.start, end: a.end > b.end ? a.end : b.end }, [shard.partition, adjacent.partition]);
  return plan.records(image, context);
}

function checkOpenShardRoom(topic: TopicInfo, added: number): void {
  const open = openShardsOf(topic).length;
  if (open + added > STREAM_OPEN_SHARDS_MAX) {
    throw new RiffleError('LIMIT_EXCEEDED', `Stream ${topic.name} has ${open} open shards; the limit is ${STREAM_OPEN_SHARDS_MAX}.`);
  }
}

interface Piece {
  partition: number;
  start: bigint;
  end: bigint;
}

/** UpdateShardCount with UNIFORM_SCALING: target between half and double the open shards. */
export function planUpdateShardCount(image: MetadataImage, request: AlterStreamRequest, context: StreamContext): MetadataRecord[] {
  const topic = streamNamed(image, request.streamName ?? '');
  const open = openShardsOf(topic);
  const target = request.shardCount ?? 0;
  const low = Math.ceil(open.length / 2);
  const high = Math.min(open.length * 2, STREAM_OPEN_SHARDS_MAX);
  if (!Number.isInteger(target) || target < low || target > high) {
    throw new RiffleError('INVALID_ARGUMENT', `TargetShardCount must be between ${low} and ${high} (half to double the ${open.length} open shards), got ${target}.`);
  }
  const ranges = uniformHashRanges(target);
  const boundaries = ranges.slice(1).map((range) => range.start);
  const plan = new ReshardPlan(topic);
  const pieces = splitAtBoundaries(plan, open, boundaries);
  for (const range of ranges) mergePiecesOf(plan, pieces.filter((piece) => piece.start >= range.start && piece.end <= range.end));
  return plan.records(image, context);
}

/** Splits every open shard at each boundary strictly inside it, as a chain of binary splits. */
function splitAtBoundaries(plan: ReshardPlan, open: PartitionInfo[], boundaries: bigint[]): Piece[] {
  const pieces: Piece[] = [];
  for (const shard of open) {
    let current: Piece = { partition: shard.partition, ...rangeOf(shard) };
    for (const boundary of boundaries) {
      if (boundary <= current.start || boundary > current.end) continue;
      plan.close(current.partition);
      const left = plan.child({ start: current.start, end: boundary - 1n }, [current.partition]);
      const right = plan.child({ start: boundary, end: current.end }, [current.partition]);
      pieces.push({ partition: left, start: current.start, end: boundary - 1n });
      current = { partition: right, start: boundary, end: current.end };
    }
    pieces.push(current);
  }
  return pieces;
}

/** Merges the pieces of one new range, left to right; a range of one piece keeps it. */
function mergePiecesOf(plan: ReshardPlan, pieces: Piece[]): void {
  assert(pieces.length > 0, 'every new range is covered by pieces');
  pieces.sort((a, b) => (a.start < b.start ? -1 : 1));
  let accumulated = pieces[0]!;
  for (const piece of pieces.slice(1)) {
    assert(accumulated.end + 1n === piece.start, 'pieces of a range are contiguous');
    plan.close(accumulated.partition);
    plan.close(piece.partition);
    const merged = plan.child({ start: accumulated.start, end: piece.end }, [accumulated.partition, piece.partition]);
    accumulated = { partition: merged, start: accumulated.start, end: piece.end };
  }
}

export function planRetention(image: MetadataImage, request: AlterStreamRequest): MetadataRecord[] {
  const topic = streamNamed(image, request.streamName ?? '');
  const hours = request.retentionPeriodHours ?? 0;
  checkRetentionHours(hours);
  const current = Math.round(Number(topic.configs['retention.ms'] ?? STREAM_RETENTION_HOURS_DEFAULT * HOUR_MS) / HOUR_MS);
  if (request.increase && hours < current) {
    throw new RiffleError('INVALID_ARGUMENT', `IncreaseStreamRetentionPeriod to ${hours} h is below the current ${current} h.`);
  }
  if (!request.increase && hours > current) {
    throw new RiffleError('INVALID_ARGUMENT', `DecreaseStreamRetentionPeriod to ${hours} h is above the current ${current} h.`);
  }
  return configChange(topic, 'retention.ms', String(hours * HOUR_MS));
}

export function planStreamMode(image: MetadataImage, request: AlterStreamRequest): MetadataRecord[] {
  const topic = streamNamed(image, request.streamName ?? '');
  const mode = request.streamMode ?? '';
  if (mode !== 'PROVISIONED' && mode !== 'ON_DEMAND') throw new RiffleError('INVALID_ARGUMENT', `StreamMode must be PROVISIONED or ON_DEMAND, not '${mode}'.`);
  return configChange(topic, 'stream.mode', mode);
}

export function planStreamLimits(image: MetadataImage, request: AlterStreamRequest): MetadataRecord[] {
  const topic = streamNamed(image, request.streamName ?? '');
  const profile = request.limitsProfile ?? '';
  if (profile !== 'kinesis' && profile !== 'off') throw new RiffleError('INVALID_ARGUMENT', `The limits profile must be 'kinesis' or 'off', not '${profile}'.`);
  return configChange(topic, 'stream.limits', profile);
}

function configChange(topic: TopicInfo, name: string, value: string): MetadataRecord[] {
  if (topic.configs[name] === value) return [];
  return [{ config: { topicId: topic.topicId, name, value, deleted: false } }];
}

export function planRegisterConsumer(image: MetadataImage, request: AlterStreamRequest, consumerArn: string, nowMs: number): MetadataRecord[] {
  const topic = streamNamed(image, request.streamName ?? '');
  const name = request.consumerName ?? '';
  if (!CONSUMER_NAME_PATTERN.test(name)) throw new RiffleError('INVALID_ARGUMENT', `ConsumerName '${name}' must be 1..128 of [a-zA-Z0-9_.-].`);
  if (topic.consumers.has(name)) throw new RiffleError('RESOURCE_IN_USE', `Consumer ${name} is already registered with stream ${topic.name}.`);
  if (topic.consumers.size >= STREAM_CONSUMERS_MAX) {
    throw new RiffleError('LIMIT_EXCEEDED', `Stream ${topic.name} has ${topic.consumers.size} consumers; the limit is ${STREAM_CONSUMERS_MAX}.`);
  }
  return [{ streamConsumer: { topicId: topic.topicId, consumerName: name, consumerArn, createdAtMs: nowMs } }];
}

export function planDeregisterConsumer(image: MetadataImage, request: AlterStreamRequest): MetadataRecord[] {
  const topic = streamNamed(image, request.streamName ?? '');
  const name = request.consumerName ?? '';
  if (!topic.consumers.has(name)) throw new RiffleError('RESOURCE_NOT_FOUND', `Consumer ${name} of stream ${topic.name} not found.`);
  return [{ removeStreamConsumer: { topicId: topic.topicId, consumerName: name } }];
}

/** The whole space is covered by the open shards, without overlap (checked after reshardings in tests). */
export function openShardsCoverHashSpace(topic: TopicInfo): boolean {
  let next = 0n;
  for (const shard of openShardsOf(topic)) {
    if (BigInt(shard.startingHashKey) !== next) return false;
    next = BigInt(shard.endingHashKey) + 1n;
  }
  return next === HASH_KEY_MAX + 1n;
}
