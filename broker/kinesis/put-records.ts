// The Kinesis write path on a broker: validates a PutRecords request as a whole (Kinesis rejects
// the request for a bad key or an oversized record), routes every record to the open shard whose
// hash-key range holds MD5(partition key) or its ExplicitHashKey, appends each shard's records as
// ONE RecordBatch through the partition's acks=all path (key = partition key, value = data,
// timestamp = arrival time), and forwards the records of shards led elsewhere to their leader.
// Failures are per record, as in Kinesis: ProvisionedThroughputExceededException (profile
// 'kinesis') or InternalFailure (leader moved, too few replicas, ...), which clients retry.
// A shard closed by a resharding while a write was on its way is re-routed on the newer image.
import type * as grpc from '@grpc/grpc-js';
import { openShardsOf, PUT_RECORDS_BYTES_MAX, RECORD_BYTES_DEFAULT, type MetadataImage, type PartitionInfo, type TopicInfo } from '../../controller/index.js';
import { RiffleError, kinesisNameOf, toRiffleError } from '../../src/rpc/errors.js';
import { RecordBatchBuilder } from '../../src/util/record-batch.js';
import { PARTITION_KEY_LENGTH_MAX, encodeSequenceNumber, hashKeyHex, hashKeyHexOfPartitionKey, parseHashKey, shardIdOf } from '../../src/util/kinesis.js';
import type { PutRecordsRequestEntry__Output } from '../../src/rpc/generated/riffle/v1/PutRecordsRequestEntry.js';
import type { PutRecordsResultEntry } from '../../src/rpc/generated/riffle/v1/PutRecordsResultEntry.js';
import type { PutRecordsResponse__Output } from '../../src/rpc/generated/riffle/v1/PutRecordsResponse.js';
import type { ReplicaManager } from '../replica-manager.js';
import type { KinesisMetrics } from './kinesis-metrics.js';
import { limitsProfileOf, type ShardLimits } from './throughput-limits.js';

/** Kinesis: 1..500 records per PutRecords. */
export const PUT_RECORDS_COUNT_MAX = 500;
export const PUT_TIMEOUT_MS = 30_000;
/** Re-routings of one shard's records after it closed under them. */
const REROUTES_MAX = 3;

export interface PutDeps {
  selfId: number;
  image: () => MetadataImage;
  replicas: ReplicaManager;
  limits: ShardLimits;
  metrics: KinesisMetrics;
  /** Counts a write to a shard led here (on-demand scaling). */
  recordWrite?: (topicId: string, partition: number, records: number, bytes: number) => void;
  /** Sends records to the leader of a shard this broker does not lead (a PutRecords there). */
  forward: (leaderId: number, streamName: string, entries: PutRecordsRequestEntry__Output[]) => Promise<PutRecordsResponse__Output>;
}

interface Routed {
  index: number;
  entry: PutRecordsRequestEntry__Output;
  /** 32 hex digits (see hashKeyHexOfPartitionKey). */
  hashKey: string;
}

/** Checks the whole request as Kinesis does; a bad record fails the request. */
export function validatePutEntries(topic: TopicInfo, entries: readonly PutRecordsRequestEntry__Output[]): string[] {
  if (entries.length < 1 || entries.length > PUT_RECORDS_COUNT_MAX) {
    throw new RiffleError('INVALID_ARGUMENT', `Records must hold 1..${PUT_RECORDS_COUNT_MAX} entries, got ${entries.length}.`);
  }
  const recordBytesMax = Number(topic.configs['stream.record.bytes.max'] ?? RECORD_BYTES_DEFAULT);
  const requestBytesMax = Math.max(PUT_RECORDS_BYTES_MAX, recordBytesMax + PARTITION_KEY_LENGTH_MAX * 4);
  let total = 0;
  return entries.map((entry, index) => {
    const key = entry.partitionKey ?? '';
    if (key.length < 1 || key.length > PARTITION_KEY_LENGTH_MAX) {
      throw new RiffleError('INVALID_ARGUMENT', `Records[${index}].PartitionKey must be 1..${PARTITION_KEY_LENGTH_MAX} characters, got ${key.length}.`);
    }
    const data = entry.data ?? EMPTY;
    if (data.length > recordBytesMax) {
      throw new RiffleError('INVALID_ARGUMENT', `Records[${index}].Data is ${data.length} bytes; stream ${topic.name} accepts at most ${recordBytesMax}.`);
    }
    total += data.length + Buffer.byteLength(key);
    if (total > requestBytesMax) throw new RiffleError('INVALID_ARGUMENT', `The request's records exceed ${requestBytesMax} bytes.`);
    if (entry.explicitHashKey !== undefined && entry.explicitHashKey !== null) {
      const hashKey = parseHashKey(entry.explicitHashKey);
      if (hashKey === null) throw new RiffleError('INVALID_ARGUMENT', `Records[${index}].ExplicitHashKey '${entry.explicitHashKey}' is not a decimal in 0 .. 2^128-1.`);
      return hashKeyHex(hashKey);
    }
    return hashKeyHexOfPartitionKey(key);
  });
}

/** The open shards of a stream sorted by hash key, with their ranges parsed once per topic version. */
export interface ShardRouting {
  shards: readonly PartitionInfo[];
  /** Range bounds as 32 hex digits. */
  starts: readonly string[];
  ends: readonly string[];
}

const routingCache = new WeakMap<TopicInfo, ShardRouting>();

export function routingOf(topic: TopicInfo): ShardRouting {
  let routing = routingCache.get(topic);
  if (!routing) {
    const shards = openShardsOf(topic);
    routing = {
      shards, starts: shards.map((shard) => hashKeyHex(BigInt(shard.startingHashKey))), ends: shards.map((shard) => hashKeyHex(BigInt(shard.endingHashKey))),
    };
    routingCache.set(topic, routing);
  }
  return routing;
}

/** The open shard whose range holds `hashKey` (the open shards partition the hash-key space). */
export function shardForHashKey(routing: ShardRouting, hashKey: string): PartitionInfo {
  let low = 0;
  let high = routing.shards.length - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    if (hashKey < routing.starts[middle]!) high = middle - 1;
    else if (hashKey > routing.ends[middle]!) low = middle + 1;
    else return routing.shards[middle]!;
  }
  throw new RiffleError('UNKNOWN_SERVER_ERROR', `No open shard holds hash key ${hashKey}.`);
}

export async function putRecords(deps: PutDeps, streamName: string, entries: PutRecordsRequestEntry__Output[], forwarded: boolean): Promise<PutRecordsResponse__Output> {
  const topic = streamOf(deps.image(), streamName);
  const hashKeys = validatePutEntries(topic, entries);
  const results: PutRecordsResultEntry[] = new Array(entries.length);
  const routed = entries.map((entry, index): Routed => ({ index, entry, hashKey: hashKeys[index]! }));
  await writeRouted(deps, streamName, routed, results, forwarded, 0);
  const failed = results.filter((result) => result.errorCode).length;
  return { failedRecordCount: failed, records: results as PutRecordsResponse__Output['records'], encryptionType: 'NONE' };
}

function streamOf(image: MetadataImage, name: string): TopicInfo {
  const topic = image.topicByName(name);
  if (!topic || topic.kind !== 'stream') throw new RiffleError('RESOURCE_NOT_FOUND', `Stream ${name} not found.`);
  return topic;
}

async function writeRouted(deps: PutDeps, streamName: string, routed: Routed[], results: PutRecordsResultEntry[], forwarded: boolean, attempt: number): Promise<void> {
  const topic = streamOf(deps.image(), streamName);
  const routing = routingOf(topic);
  const byShard = new Map<number, Routed[]>();
  for (const item of routed) {
    const shard = shardForHashKey(routing, item.hashKey);
    let group = byShard.get(shard.partition);
    if (!group) byShard.set(shard.partition, (group = []));
    group.push(item);
  }
  await Promise.all([...byShard].map(async ([partition, group]) => {
    const info = topic.partitions[partition]!;
    try {
      if (info.leader === deps.selfId) await appendLocally(deps, topic, info, group, results);
      else if (!forwarded && info.leader >= 0) await forwardGroup(deps, streamName, info.leader, group, results);
      else throw new RiffleError('NOT_LEADER_OR_FOLLOWER', `Broker ${deps.selfId} does not lead ${shardIdOf(partition)}; its leader is ${info.leader}.`);
    } catch (error) {
      const riffleError = toRiffleError(error);
      if (riffleError.errorName === 'SHARD_CLOSED' && attempt < REROUTES_MAX) {
        await waitForImageChange(deps, topic, partition);
        await writeRouted(deps, streamName, group, results, forwarded, attempt + 1);
        return;
      }
      for (const item of group) results[item.index] = failure(riffleError);
    }
  }));
}

/** A shard closed under a write: give the image a moment to show the close (bounded). */
async function waitForImageChange(deps: PutDeps, topic: TopicInfo, partition: number): Promise<void> {
  const deadline = Date.now() + 2_000;
  while (Date.now() < deadline && deps.image().topic(topic.topicId)?.partitions[partition]?.state === 'open') {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function failure(error: RiffleError): PutRecordsResultEntry {
  const code = error.errorName === 'PROVISIONED_THROUGHPUT_EXCEEDED' ? kinesisNameOf(error.errorName) : 'InternalFailure';
  return { errorCode: code, errorMessage: error.message };
}

async function appendLocally(deps: PutDeps, topic: TopicInfo, info: PartitionInfo, group: Routed[], results: PutRecordsResultEntry[]): Promise<void> {
  const partition = deps.replicas.partition(topic.name, info.partition);
  const limited = limitsProfileOf(topic.configs) === 'kinesis';
  const shardKey = `${topic.topicId}/${info.partition}`;
  const shardId = shardIdOf(info.partition);
  const builder = new RecordBatchBuilder({ nowMs: Date.now() });
  const admitted: Routed[] = [];
  let bytes = 0;
  for (const item of group) {
    const key = Buffer.from(item.entry.partitionKey, 'utf8');
    const data = item.entry.data ?? EMPTY;
    if (limited && !deps.limits.tryWrite(shardKey, data.length + key.length)) {
      deps.metrics.throttled.inc({ stream: topic.name, operation: 'PutRecords' });
      results[item.index] = { errorCode: 'ProvisionedThroughputExceededException', errorMessage: `Rate exceeded for ${shardId} of stream ${topic.name}.` };
      continue;
    }
    builder.append({ key, value: data });
    admitted.push(item);
    bytes += data.length + key.length;
  }
  if (admitted.length === 0) return;
  const info2 = await withTimeout(partition.append(builder.build(), -1), PUT_TIMEOUT_MS);
  admitted.forEach((item, position) => {
    results[item.index] = { shardId, sequenceNumber: encodeSequenceNumber(info.partition, info2.baseOffset + position) };
  });
  deps.recordWrite?.(topic.topicId, info.partition, admitted.length, bytes);
  deps.metrics.incomingRecords.inc({ stream: topic.name, shard: shardId }, admitted.length);
  deps.metrics.incomingBytes.inc({ stream: topic.name, shard: shardId }, bytes);
}

async function forwardGroup(deps: PutDeps, streamName: string, leaderId: number, group: Routed[], results: PutRecordsResultEntry[]): Promise<void> {
  const response = await deps.forward(leaderId, streamName, group.map((item) => item.entry));
  group.forEach((item, position) => {
    const result = response.records[position];
    results[item.index] = result ? { ...result } : { errorCode: 'InternalFailure', errorMessage: 'The leader answered without this record.' };
  });
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RiffleError('REQUEST_TIMED_OUT', `Not committed within ${timeoutMs} ms.`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Marks a request as forwarded by a broker, so the leader never forwards it again. */
export const FORWARDED_METADATA_KEY = 'riffle-forwarded';
export function isForwarded(call: { metadata: grpc.Metadata }): boolean {
  return call.metadata.get(FORWARDED_METADATA_KEY).length > 0;
}

const EMPTY = Buffer.alloc(0);
