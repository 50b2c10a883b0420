// PutShardBatches, the SDK's fast way to PutRecords: the client already routed every record to
// its shard and sends each shard's records as one RecordBatch v2 to the shard's leader. The
// leader checks every record exactly as PutRecords does (partition key 1..256 characters, data
// within the stream's record limit, the hash key - MD5 of the partition key or header "h" - inside
// the shard's range, the request within the size limit; any bad record fails the request with
// InvalidArgumentException), stamps the batch with its arrival time (LOG_APPEND_TIME) and
// appends it with acks=all. A shard it does not lead, a closed shard, or a stream under the
// 'kinesis' limits profile is answered per batch with an error code, and the client resends
// those records with PutRecords, which routes, forwards and throttles per record.
import { PUT_RECORDS_BYTES_MAX, RECORD_BYTES_DEFAULT, type TopicInfo } from '../../controller/index.js';
import { RiffleError, toRiffleError } from '../../src/rpc/errors.js';
import { forEachRecord, iterateBatches, stampLogAppendTime } from '../../src/util/record-batch.js';
import { PARTITION_KEY_LENGTH_MAX, hashKeyHex, hashKeyHexOfPartitionKey, parseHashKey, partitionOfShardId } from '../../src/util/kinesis.js';
import type { PutShardBatchesRequest__Output } from '../../src/rpc/generated/riffle/v1/PutShardBatchesRequest.js';
import type { PutShardBatchesResponse } from '../../src/rpc/generated/riffle/v1/PutShardBatchesResponse.js';
import type { ShardBatchResult } from '../../src/rpc/generated/riffle/v1/ShardBatchResult.js';
import { PUT_TIMEOUT_MS, type PutDeps } from './put-records.js';
import { limitsProfileOf } from './throughput-limits.js';

/** Shard batches in one request: at most one per shard of a 1,000-shard stream. */
export const SHARD_BATCHES_MAX = 1_000;
/**
 * Records in one request. Above PutRecords' 500: the SDK coalesces concurrent putRecords calls
 * (each within Kinesis's limits) into one request per leader; the byte limit stays PutRecords'.
 */
export const SHARD_BATCHES_RECORDS_MAX = 10_000;
const EXPLICIT_HASH_KEY_HEADER = 'h';

export async function putShardBatches(deps: PutDeps, request: PutShardBatchesRequest__Output): Promise<PutShardBatchesResponse> {
  const topic = deps.image().topicByName(request.streamName);
  if (!topic || topic.kind !== 'stream') throw new RiffleError('RESOURCE_NOT_FOUND', `Stream ${request.streamName} not found.`);
  if (request.batches.length < 1 || request.batches.length > SHARD_BATCHES_MAX) {
    throw new RiffleError('INVALID_ARGUMENT', `A request holds 1..${SHARD_BATCHES_MAX} shard batches, got ${request.batches.length}.`);
  }
  const recordBytesMax = Number(topic.configs['stream.record.bytes.max'] ?? RECORD_BYTES_DEFAULT);
  const requestBytesMax = Math.max(PUT_RECORDS_BYTES_MAX, recordBytesMax + PARTITION_KEY_LENGTH_MAX * 4);
  let total = 0;
  const counts = request.batches.map((batch) => {
    const checked = checkBatch(topic, batch.shardId, batch.records, recordBytesMax);
    total += checked.bytes;
    return checked.count;
  });
  if (total > requestBytesMax) throw new RiffleError('INVALID_ARGUMENT', `The request's records exceed ${requestBytesMax} bytes.`);
  if (counts.reduce((sum, count) => sum + count, 0) > SHARD_BATCHES_RECORDS_MAX) {
    throw new RiffleError('INVALID_ARGUMENT', `A request holds at most ${SHARD_BATCHES_RECORDS_MAX} records.`);
  }
  const results = await Promise.all(request.batches.map((batch, index) => appendBatch(deps, topic, batch.shardId, batch.records, counts[index]!)));
  return { results };
}

/** Validates one shard batch record by record; throws INVALID_ARGUMENT for the whole request. */
function checkBatch(topic: TopicInfo, shardId: string, records: Buffer, recordBytesMax: number): { count: number; bytes: number } {
  const partition = partitionOfShardId(shardId);
  const shard = partition === null ? undefined : topic.partitions[partition];
  if (!shard) throw new RiffleError('RESOURCE_NOT_FOUND', `Shard ${shardId} of stream ${topic.name} not found.`);
  const start = hashKeyHex(BigInt(shard.startingHashKey));
  const end = hashKeyHex(BigInt(shard.endingHashKey));
  let batches = 0;
  let count = 0;
  let bytes = 0;
  try {
    for (const { position } of iterateBatches(records)) {
      if (++batches > 1) throw new RiffleError('INVALID_ARGUMENT', `Shard batch for ${shardId} holds more than one record batch.`);
      forEachRecord(records, position, (_offset, _timestamp, key, value, headers) => {
        // Characters never outnumber UTF-8 bytes: only a long key needs decoding to be counted.
        const keyBytes = key?.length ?? 0;
        const characters = keyBytes <= PARTITION_KEY_LENGTH_MAX ? keyBytes : key!.toString('utf8').length;
        if (characters < 1 || characters > PARTITION_KEY_LENGTH_MAX) {
          throw new RiffleError('INVALID_ARGUMENT', `A PartitionKey must be 1..${PARTITION_KEY_LENGTH_MAX} characters, got ${characters}.`);
        }
        const size = value?.length ?? 0;
        if (size > recordBytesMax) throw new RiffleError('INVALID_ARGUMENT', `A record's Data is ${size} bytes; stream ${topic.name} accepts at most ${recordBytesMax}.`);
        const explicit = headers.length === 0 ? undefined : headers.find((header) => header.key === EXPLICIT_HASH_KEY_HEADER)?.value;
        const explicitKey = explicit ? parseHashKey(explicit.toString('utf8')) : null;
        if (explicit && explicitKey === null) throw new RiffleError('INVALID_ARGUMENT', 'An ExplicitHashKey is not a decimal in 0 .. 2^128-1.');
        const hashKey = explicitKey === null ? hashKeyHexOfPartitionKey(key!) : hashKeyHex(explicitKey);
        if (hashKey < start || hashKey > end) throw new RiffleError('INVALID_ARGUMENT', `A record's hash key ${hashKey} is outside ${shardId}: route records by their hash key.`);
        count++;
        bytes += size + key!.length;
      });
    }
  } catch (error) {
    const riffleError = toRiffleError(error);
    if (riffleError.errorName === 'INVALID_ARGUMENT' || riffleError.errorName === 'RESOURCE_NOT_FOUND') throw riffleError;
    throw new RiffleError('INVALID_ARGUMENT', `Shard batch for ${shardId} is not a valid record batch: ${riffleError.message}`);
  }
  if (batches !== 1 || count === 0) throw new RiffleError('INVALID_ARGUMENT', `Shard batch for ${shardId} must be one non-empty record batch.`);
  return { count, bytes };
}

async function appendBatch(deps: PutDeps, topic: TopicInfo, shardId: string, records: Buffer, count: number): Promise<ShardBatchResult> {
  const index = partitionOfShardId(shardId)!;
  const info = topic.partitions[index]!;
  const fail = (errorCode: string, errorMessage: string): ShardBatchResult => ({ shardId, baseOffset: -1, errorCode, errorMessage });
  if (limitsProfileOf(topic.configs) === 'kinesis') return fail('ProvisionedThroughputExceededException', 'Streams under the kinesis limits profile take PutRecords only.');
  if (info.state !== 'open') return fail('ShardClosed', `${shardId} is closed.`);
  if (info.leader !== deps.selfId) return fail('NotLeader', `Broker ${deps.selfId} does not lead ${shardId}.`);
  try {
    const partition = deps.replicas.partition(topic.name, index);
    stampLogAppendTime(records, 0, Date.now());
    const appended = await withTimeout(partition.append(records, -1), PUT_TIMEOUT_MS);
    deps.recordWrite?.(topic.topicId, index, count, records.length);
    deps.metrics.incomingRecords.inc({ stream: topic.name, shard: shardId }, count);
    deps.metrics.incomingBytes.inc({ stream: topic.name, shard: shardId }, records.length);
    return { shardId, baseOffset: appended.baseOffset };
  } catch (error) {
    const riffleError = toRiffleError(error);
    return fail(riffleError.errorName === 'SHARD_CLOSED' ? 'ShardClosed' : riffleError.errorName === 'NOT_LEADER_OR_FOLLOWER' ? 'NotLeader' : 'InternalFailure', riffleError.message);
  }
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RiffleError('REQUEST_TIMED_OUT', `Not committed within ${timeoutMs} ms.`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
