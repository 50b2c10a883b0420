// The SDK's Kinesis-like client: Kinesis Data Streams operations (field names as in the Kinesis
// API, camelCase) over a RiffleClient's connections. Writes are routed by the client: it keeps a
// map of the open shards (hash-key ranges) and their leaders, splits a PutRecords by leader and
// merges the per-record results back in request order (a broker would forward them anyway; this
// saves the hop). SubscribeToShard is an async iterator that resubscribes by itself - after the
// subscription's lifetime, a leader change, or a stream silent for longer than the idle timeout
// (the server sends heartbeats) - from the last ContinuationSequenceNumber, so the caller sees
// every record once, in order, until the shard ends.
import type * as grpc from '@grpc/grpc-js';
import { RiffleError, fromServiceError, toRiffleError } from '../rpc/errors.js';
import { encodeSequenceNumber, hashKeyHex, hashKeyHexOfPartitionKey, parseHashKey, partitionOfShardId, shardIdOf, streamNameOfArn } from '../util/kinesis.js';
import { RecordBatchBuilder } from '../util/record-batch.js';
import type { PutShardBatchesResponse__Output } from '../rpc/generated/riffle/v1/PutShardBatchesResponse.js';
import { partitionOf, type RiffleClient } from './client.js';
import { withRetries } from './retry.js';
import type { Shard__Output } from '../rpc/generated/riffle/v1/Shard.js';
import type { ListShardsResponse__Output } from '../rpc/generated/riffle/v1/ListShardsResponse.js';
import type { ListStreamsResponse__Output } from '../rpc/generated/riffle/v1/ListStreamsResponse.js';
import type { PutRecordsResponse__Output } from '../rpc/generated/riffle/v1/PutRecordsResponse.js';
import type { PutRecordsResultEntry__Output } from '../rpc/generated/riffle/v1/PutRecordsResultEntry.js';
import type { PutRecordResponse__Output } from '../rpc/generated/riffle/v1/PutRecordResponse.js';
import type { GetRecordsResponse__Output } from '../rpc/generated/riffle/v1/GetRecordsResponse.js';
import type { GetShardIteratorResponse__Output } from '../rpc/generated/riffle/v1/GetShardIteratorResponse.js';
import type { StreamDescriptionSummary__Output } from '../rpc/generated/riffle/v1/StreamDescriptionSummary.js';
import type { Consumer__Output } from '../rpc/generated/riffle/v1/Consumer.js';
import type { UpdateShardCountResponse__Output } from '../rpc/generated/riffle/v1/UpdateShardCountResponse.js';
import type { SubscribeToShardEvent__Output } from '../rpc/generated/riffle/v1/SubscribeToShardEvent.js';
import type { ShardFilter } from '../rpc/generated/riffle/v1/ShardFilter.js';

export type { Shard__Output as Shard, SubscribeToShardEvent__Output as SubscribeToShardEvent, GetRecordsResponse__Output as GetRecordsResult };

const SERVICE = 'riffle.v1.Kinesis';
/** Errors of a moment between leaders: worth retrying a data-plane call for. */
const LEADERSHIP_ERRORS = new Set<string>(['NOT_LEADER_OR_FOLLOWER', 'LEADER_NOT_AVAILABLE', 'NETWORK_EXCEPTION', 'REQUEST_TIMED_OUT', 'BROKER_NOT_AVAILABLE']);
/** The client's shard map is refreshed at least this often. */
export const SHARD_MAP_MAX_AGE_MS = 30_000;
/** A subscription silent for this long (heartbeats come every 2 s) is given up and renewed. */
export const SUBSCRIPTION_IDLE_MS_DEFAULT = 6_000;
/** Resubscribing stops after this long without a successful (re)subscription. */
export const RESUBSCRIBE_DEADLINE_MS_DEFAULT = 60_000;
const RESUBSCRIBE_BACKOFF_MS_MAX = 1_000;

export interface CreateStreamOptions {
  shardCount?: number;
  streamMode?: 'PROVISIONED' | 'ON_DEMAND';
  limitsProfile?: 'kinesis' | 'off';
  recordBytesMax?: number;
  replicationFactor?: number;
  retentionPeriodHours?: number;
}

export interface PutRecordsEntry {
  data: Buffer | Uint8Array | string;
  partitionKey: string;
  explicitHashKey?: string;
}

export interface StartingPosition {
  type: 'AT_SEQUENCE_NUMBER' | 'AFTER_SEQUENCE_NUMBER' | 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP';
  sequenceNumber?: string;
  /** Milliseconds since the epoch, for AT_TIMESTAMP. */
  timestamp?: number;
}

export interface SubscribeOptions {
  idleTimeoutMs?: number;
  resubscribeDeadlineMs?: number;
  signal?: AbortSignal;
  /** Called when the iterator renews its subscription (for tests and logs). */
  onResubscribe?: (reason: string) => void;
}

interface ShardMap {
  /** Open shards with their ranges as 32 hex digits (string order is numeric order). */
  open: { partition: number; start: string; end: string; leaderId: number }[];
  fetchedAtMs: number;
  /** Streams under the 'kinesis' limits profile take PutRecords only (throttling is per record). */
  batchesAllowed: boolean;
}

/** One putRecords call on its way through the fast path. */
interface PendingPut {
  records: WireRecord[];
  keys: Buffer[];
  /** The shard (partition) of each record. */
  partitions: number[];
  results: (PutRecordsResultEntry__Output | undefined)[];
  /** Some of its records were refused and go through PutRecords again. */
  refused: boolean;
}

/** The records of one call that go to one leader. */
interface QueuedPart {
  put: PendingPut;
  indexes: number[];
  bytes: number;
  done: () => void;
}

interface LeaderQueue {
  streamName: string;
  leaderId: number;
  pending: QueuedPart[];
  inFlight: number;
}

/** PutShardBatches requests one client keeps in flight per leader and stream. */
export const BATCH_REQUESTS_IN_FLIGHT_MAX = 5;
/** Records and bytes of one PutShardBatches request (the server's limits). */
export const SHARD_BATCHES_RECORDS_MAX = 10_000;
export const PUT_BYTES_MAX = 5 * 1024 * 1024;

interface WireRecord {
  data: Buffer;
  partitionKey: string;
  explicitHashKey?: string;
}

export class KinesisClient {
  private readonly shardMaps = new Map<string, ShardMap>();
  private readonly leaderQueues = new Map<string, LeaderQueue>();

  constructor(readonly client: RiffleClient) {}

  private admin<Response>(method: string, request: object): Promise<Response> {
    return this.client.callAnyWithRetries<Response>(SERVICE, method, request);
  }

  /**
   * A data-plane call, retried through leader changes (a shard between leaders, a node gone)
   * within the client's retry deadline. Throttling (ProvisionedThroughputExceededException) is
   * not retried here: the caller decides how to back off, as with Kinesis.
   */
  private call<Response>(method: string, request: object): Promise<Response> {
    return withRetries(() => this.client.callAny<Response>(SERVICE, method, request), {
      ...this.client.retry,
      retryIf: (error) => LEADERSHIP_ERRORS.has(error.errorName),
    });
  }

  async createStream(streamName: string, options: CreateStreamOptions = {}): Promise<void> {
    await this.admin('CreateStream', {
      streamName, shardCount: options.shardCount, streamModeDetails: { streamMode: options.streamMode ?? 'PROVISIONED' },
      limitsProfile: options.limitsProfile, recordBytesMax: options.recordBytesMax, replicationFactor: options.replicationFactor,
      retentionPeriodHours: options.retentionPeriodHours,
    });
  }

  async deleteStream(streamName: string, enforceConsumerDeletion = false): Promise<void> {
    await this.admin('DeleteStream', { streamName, enforceConsumerDeletion });
    this.shardMaps.delete(streamName);
  }

  async describeStreamSummary(streamName: string): Promise<StreamDescriptionSummary__Output> {
    const response = await this.admin<{ streamDescriptionSummary: StreamDescriptionSummary__Output }>('DescribeStreamSummary', { streamName });
    return response.streamDescriptionSummary;
  }

  /** Every stream name, following NextToken. */
  async listStreams(): Promise<string[]> {
    const names: string[] = [];
    let nextToken: string | undefined;
    for (let page = 0; page < 10_000; page++) {
      const response = await this.admin<ListStreamsResponse__Output>('ListStreams', nextToken ? { nextToken } : {});
      names.push(...response.streamNames);
      if (!response.hasMoreStreams || !response.nextToken) break;
      nextToken = response.nextToken;
    }
    return names;
  }

  /** One ListShards page. */
  listShardsPage(request: { streamName?: string; nextToken?: string; exclusiveStartShardId?: string; maxResults?: number; shardFilter?: ShardFilter }): Promise<ListShardsResponse__Output> {
    return this.admin<ListShardsResponse__Output>('ListShards', request);
  }

  /** Every shard of the stream (open and closed), or those passing `shardFilter`, following NextToken. */
  async listShards(streamName: string, shardFilter?: ShardFilter): Promise<Shard__Output[]> {
    const shards: Shard__Output[] = [];
    let response = await this.listShardsPage({ streamName, shardFilter });
    shards.push(...response.shards);
    for (let page = 0; page < 10_000 && response.nextToken; page++) {
      response = await this.listShardsPage({ nextToken: response.nextToken });
      shards.push(...response.shards);
    }
    return shards;
  }

  async putRecord(streamName: string, entry: PutRecordsEntry & { sequenceNumberForOrdering?: string }): Promise<PutRecordResponse__Output> {
    return this.call<PutRecordResponse__Output>('PutRecord', {
      streamName, data: toBuffer(entry.data), partitionKey: entry.partitionKey, explicitHashKey: entry.explicitHashKey,
      sequenceNumberForOrdering: entry.sequenceNumberForOrdering,
    });
  }

  /**
   * PutRecords with per-record results in request order. Records are sent straight to their
   * shard's leader; failed records (ErrorCode set) are the caller's to retry, as with Kinesis.
   */
  async putRecords(streamName: string, entries: PutRecordsEntry[]): Promise<PutRecordsResponse__Output> {
    const records = entries.map((entry): WireRecord => ({ data: toBuffer(entry.data), partitionKey: entry.partitionKey, explicitHashKey: entry.explicitHashKey }));
    const results = await this.putShardBatches(streamName, records);
    if (results === null) return this.putRecordsRouted(streamName, records);
    const resend = records.map((_, index) => index).filter((index) => results[index] === undefined);
    if (resend.length > 0) {
      const response = await this.putRecordsRouted(streamName, resend.map((index) => records[index]!));
      resend.forEach((index, position) => (results[index] = response.records[position]!));
    }
    const failed = results.filter((result) => result!.errorCode).length;
    return { failedRecordCount: failed, records: results as PutRecordsResultEntry__Output[], encryptionType: 'NONE' };
  }

  /**
   * The fast path: records grouped by shard and sent to each shard's leader as RecordBatches
   * (PutShardBatches). Returns per-record results with holes where a batch was refused (to be
   * resent with PutRecords), or null when the path does not apply (unknown shard map, a bad
   * explicit hash key or partition key, an oversized request - PutRecords reports those
   * properly - or a limited stream).
   */
  private async putShardBatches(streamName: string, records: WireRecord[]): Promise<(PutRecordsResultEntry__Output | undefined)[] | null> {
    if (records.length === 0 || records.length > 500) return null;
    let map: ShardMap;
    try {
      map = await this.shardMap(streamName);
    } catch {
      return null;
    }
    if (!map.batchesAllowed) return null;
    const keys: Buffer[] = new Array(records.length);
    const partitions: number[] = new Array(records.length);
    const byLeader = new Map<number, number[]>();
    let bytes = 0;
    for (let index = 0; index < records.length; index++) {
      const record = records[index]!;
      if (record.partitionKey.length < 1 || record.partitionKey.length > 256) return null;
      const explicit = record.explicitHashKey === undefined ? null : parseHashKey(record.explicitHashKey);
      if (record.explicitHashKey !== undefined && explicit === null) return null;
      const key = Buffer.from(record.partitionKey, 'utf8');
      const hashKey = explicit === null ? hashKeyHexOfPartitionKey(key) : hashKeyHex(explicit);
      const shard = map.open.find((candidate) => hashKey >= candidate.start && hashKey <= candidate.end);
      if (!shard || shard.leaderId < 0) return null;
      keys[index] = key;
      partitions[index] = shard.partition;
      bytes += key.length + record.data.length;
      let group = byLeader.get(shard.leaderId);
      if (!group) byLeader.set(shard.leaderId, (group = []));
      group.push(index);
    }
    if (bytes > PUT_BYTES_MAX) return null;
    const put: PendingPut = { records, keys, partitions, results: new Array(records.length), refused: false };
    await Promise.all([...byLeader].map(([leaderId, indexes]) => new Promise<void>((resolve) => {
      const queue = this.leaderQueue(streamName, leaderId);
      queue.pending.push({ put, indexes, bytes: indexes.reduce((sum, index) => sum + keys[index]!.length + records[index]!.data.length, 0), done: resolve });
      this.drain(queue);
    })));
    if (put.refused) this.shardMaps.delete(streamName);
    return put.results;
  }

  private leaderQueue(streamName: string, leaderId: number): LeaderQueue {
    const key = `${streamName}/${leaderId}`;
    let queue = this.leaderQueues.get(key);
    if (!queue) this.leaderQueues.set(key, (queue = { streamName, leaderId, pending: [], inFlight: 0 }));
    return queue;
  }

  /**
   * Sends what is waiting for a leader while fewer than BATCH_REQUESTS_IN_FLIGHT_MAX requests
   * are out: the calls that arrive meanwhile share the next request and its per-shard batches
   * (as Kafka's producer batches while requests are in flight), within the request limits.
   */
  private drain(queue: LeaderQueue): void {
    while (queue.inFlight < BATCH_REQUESTS_IN_FLIGHT_MAX && queue.pending.length > 0) {
      const parts: QueuedPart[] = [];
      let records = 0;
      let bytes = 0;
      while (queue.pending.length > 0) {
        const next = queue.pending[0]!;
        if (parts.length > 0 && (records + next.indexes.length > SHARD_BATCHES_RECORDS_MAX || bytes + next.bytes > PUT_BYTES_MAX)) break;
        parts.push(queue.pending.shift()!);
        records += next.indexes.length;
        bytes += next.bytes;
      }
      queue.inFlight++;
      void this.sendParts(queue, parts).catch(() => {
        for (const part of parts) part.put.refused = true;
      }).finally(() => {
        queue.inFlight--;
        for (const part of parts) part.done();
        this.drain(queue);
      });
    }
  }

  /** One PutShardBatches request: a RecordBatch per shard, records in call order. */
  private async sendParts(queue: LeaderQueue, parts: QueuedPart[]): Promise<void> {
    const byShard = new Map<number, { part: QueuedPart; index: number }[]>();
    for (const part of parts) {
      for (const index of part.indexes) {
        const partition = part.put.partitions[index]!;
        let shard = byShard.get(partition);
        if (!shard) byShard.set(partition, (shard = []));
        shard.push({ part, index });
      }
    }
    const nowMs = Date.now();
    const batches = [...byShard].map(([partition, items]) => {
      const builder = new RecordBatchBuilder({ nowMs });
      for (const { part, index } of items) {
        const record = part.put.records[index]!;
        builder.append({
          key: part.put.keys[index]!, value: record.data,
          headers: record.explicitHashKey === undefined ? undefined : [{ key: 'h', value: Buffer.from(record.explicitHashKey) }],
        });
      }
      return { partition, items, records: builder.build() };
    });
    let response: PutShardBatchesResponse__Output;
    try {
      response = await this.client.connectionTo(queue.leaderId).call<PutShardBatchesResponse__Output>(SERVICE, 'PutShardBatches', {
        streamName: queue.streamName, batches: batches.map((batch) => ({ shardId: shardIdOf(batch.partition), records: batch.records })),
      }, this.client.requestTimeoutMs);
    } catch {
      // Whatever went wrong (a leader gone, a record the server refuses), each call's records are
      // resent with PutRecords, which reports per call and per record.
      for (const part of parts) part.put.refused = true;
      return;
    }
    batches.forEach((batch, position) => {
      const result = response.results[position];
      const base = result ? Number(result.baseOffset) : -1;
      if (!result || result.errorCode || base < 0) {
        for (const { part } of batch.items) part.put.refused = true;
        return;
      }
      const shardId = shardIdOf(batch.partition);
      batch.items.forEach(({ part, index }, offsetInBatch) => {
        part.put.results[index] = { shardId, sequenceNumber: encodeSequenceNumber(batch.partition, base + offsetInBatch) };
      });
    });
  }

  private async putRecordsRouted(streamName: string, records: WireRecord[]): Promise<PutRecordsResponse__Output> {
    const byLeader = await this.groupByLeader(streamName, records);
    if (byLeader === null) return this.call<PutRecordsResponse__Output>('PutRecords', { streamName, records });
    const results: PutRecordsResultEntry__Output[] = new Array(records.length);
    await Promise.all([...byLeader].map(async ([leaderId, indexes]) => {
      let response: PutRecordsResponse__Output;
      try {
        response = await this.client.connectionTo(leaderId).call<PutRecordsResponse__Output>(SERVICE, 'PutRecords', { streamName, records: indexes.map((index) => records[index]) }, this.client.requestTimeoutMs);
      } catch (error) {
        const riffleError = toRiffleError(error);
        if (!riffleError.retriable) throw riffleError;
        this.shardMaps.delete(streamName);
        for (const index of indexes) results[index] = { errorCode: 'InternalFailure', errorMessage: riffleError.message };
        return;
      }
      indexes.forEach((index, position) => (results[index] = response.records[position]!));
    }));
    const failed = results.filter((result) => result.errorCode).length;
    if (failed > 0) this.shardMaps.delete(streamName);
    return { failedRecordCount: failed, records: results, encryptionType: 'NONE' };
  }

  private async groupByLeader(streamName: string, records: { partitionKey: string; explicitHashKey?: string }[]): Promise<Map<number, number[]> | null> {
    let map: ShardMap;
    try {
      map = await this.shardMap(streamName);
    } catch {
      return null;
    }
    const groups = new Map<number, number[]>();
    for (let index = 0; index < records.length; index++) {
      const record = records[index]!;
      const explicit = record.explicitHashKey === undefined ? null : parseHashKey(record.explicitHashKey);
      if (record.explicitHashKey !== undefined && explicit === null) return null;
      const hashKey = explicit === null ? hashKeyHexOfPartitionKey(record.partitionKey) : hashKeyHex(explicit);
      const shard = map.open.find((candidate) => hashKey >= candidate.start && hashKey <= candidate.end);
      if (!shard || shard.leaderId < 0) return null;
      let group = groups.get(shard.leaderId);
      if (!group) groups.set(shard.leaderId, (group = []));
      group.push(index);
    }
    return groups;
  }

  private async shardMap(streamName: string): Promise<ShardMap> {
    const cached = this.shardMaps.get(streamName);
    if (cached && Date.now() - cached.fetchedAtMs < SHARD_MAP_MAX_AGE_MS) return cached;
    const shards = await this.listShards(streamName, { type: 'AT_LATEST' });
    const metadata = await this.client.topicMetadata(streamName, true);
    const open = shards.map((shard) => {
      const partition = partitionOfShardId(shard.shardId)!;
      return {
        partition, start: hashKeyHex(BigInt(shard.hashKeyRange!.startingHashKey)), end: hashKeyHex(BigInt(shard.hashKeyRange!.endingHashKey)),
        leaderId: partitionOf(metadata, partition)?.leaderId ?? -1,
      };
    });
    const summary = await this.describeStreamSummary(streamName);
    const map = { open, fetchedAtMs: Date.now(), batchesAllowed: summary.limitsProfile !== 'kinesis' };
    this.shardMaps.set(streamName, map);
    return map;
  }

  async getShardIterator(streamName: string, shardId: string, position: StartingPosition): Promise<string> {
    const response = await this.call<GetShardIteratorResponse__Output>('GetShardIterator', {
      streamName, shardId, shardIteratorType: position.type, startingSequenceNumber: position.sequenceNumber, timestamp: position.timestamp,
    });
    return response.shardIterator;
  }

  getRecords(shardIterator: string, limit?: number): Promise<GetRecordsResponse__Output> {
    return this.call<GetRecordsResponse__Output>('GetRecords', { shardIterator, limit });
  }

  async splitShard(streamName: string, shardToSplit: string, newStartingHashKey: string): Promise<void> {
    await this.admin('SplitShard', { streamName, shardToSplit, newStartingHashKey });
    this.shardMaps.delete(streamName);
  }

  async mergeShards(streamName: string, shardToMerge: string, adjacentShardToMerge: string): Promise<void> {
    await this.admin('MergeShards', { streamName, shardToMerge, adjacentShardToMerge });
    this.shardMaps.delete(streamName);
  }

  async updateShardCount(streamName: string, targetShardCount: number): Promise<UpdateShardCountResponse__Output> {
    const response = await this.admin<UpdateShardCountResponse__Output>('UpdateShardCount', { streamName, targetShardCount, scalingType: 'UNIFORM_SCALING' });
    this.shardMaps.delete(streamName);
    return response;
  }

  async updateStreamMode(streamName: string, streamMode: 'PROVISIONED' | 'ON_DEMAND'): Promise<void> {
    await this.admin('UpdateStreamMode', { streamName, streamModeDetails: { streamMode } });
  }

  async updateStreamLimits(streamName: string, limitsProfile: 'kinesis' | 'off'): Promise<void> {
    await this.admin('UpdateStreamLimits', { streamName, limitsProfile });
  }

  async changeRetentionPeriod(streamName: string, retentionPeriodHours: number): Promise<void> {
    const current = (await this.describeStreamSummary(streamName)).retentionPeriodHours;
    await this.admin(retentionPeriodHours >= current ? 'IncreaseStreamRetentionPeriod' : 'DecreaseStreamRetentionPeriod', { streamName, retentionPeriodHours });
  }

  async registerStreamConsumer(streamArn: string, consumerName: string): Promise<Consumer__Output> {
    const response = await this.admin<{ consumer: Consumer__Output }>('RegisterStreamConsumer', { streamArn, consumerName });
    return response.consumer;
  }

  async deregisterStreamConsumer(consumerArn: string): Promise<void> {
    await this.admin('DeregisterStreamConsumer', { consumerArn });
  }

  async listStreamConsumers(streamArn: string): Promise<Consumer__Output[]> {
    const response = await this.admin<{ consumers: Consumer__Output[] }>('ListStreamConsumers', { streamArn });
    return response.consumers;
  }

  /**
   * Enhanced Fan-Out: yields every event of the shard from `startingPosition` on, renewing the
   * subscription as needed, until the shard ends (the last event has ChildShards), the signal
   * aborts, or resubscribing fails for resubscribeDeadlineMs.
   */
  async *subscribeToShard(consumerArn: string, shardId: string, startingPosition: StartingPosition, options: SubscribeOptions = {}): AsyncGenerator<SubscribeToShardEvent__Output> {
    const streamName = streamNameOfArn(consumerArn);
    const partition = partitionOfShardId(shardId);
    if (!streamName || partition === null) throw new RiffleError('INVALID_ARGUMENT', `'${consumerArn}' / '${shardId}' is not a consumer ARN and shard id.`);
    let position: StartingPosition = startingPosition;
    let lastSuccessMs = Date.now();
    let forceRefresh = false;
    for (let attempt = 0; !options.signal?.aborted; attempt++) {
      const outcome = { ended: false, error: null as RiffleError | null };
      try {
        const metadata = await this.client.topicMetadata(streamName, forceRefresh);
        const leaderId = partitionOf(metadata, partition)?.leaderId ?? -1;
        if (leaderId < 0) throw new RiffleError('LEADER_NOT_AVAILABLE', `${shardId} has no leader right now.`);
        const stream = this.openSubscription(leaderId, { consumerArn, shardId, startingPosition: position });
        for await (const event of watchIdle(stream, options.idleTimeoutMs ?? SUBSCRIPTION_IDLE_MS_DEFAULT, options.signal)) {
          lastSuccessMs = Date.now();
          attempt = 0;
          position = { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: event.continuationSequenceNumber };
          yield event;
          if (event.childShards.length > 0) outcome.ended = true;
        }
      } catch (error) {
        outcome.error = toRiffleError(error);
      }
      if (outcome.ended || options.signal?.aborted) return;
      const error = outcome.error;
      if (error && !error.retriable && error.errorName !== 'RESOURCE_IN_USE') throw error;
      if (Date.now() - lastSuccessMs > (options.resubscribeDeadlineMs ?? RESUBSCRIBE_DEADLINE_MS_DEFAULT)) throw error ?? new RiffleError('REQUEST_TIMED_OUT', 'Resubscribing kept failing.');
      forceRefresh = error !== null;
      options.onResubscribe?.(error ? error.errorName : 'subscription lifetime ended');
      if (error) await new Promise((resolve) => setTimeout(resolve, Math.min(RESUBSCRIBE_BACKOFF_MS_MAX, 50 * 2 ** Math.min(attempt, 5))));
    }
  }

  private openSubscription(leaderId: number, request: object): grpc.ClientReadableStream<SubscribeToShardEvent__Output> {
    const client = this.client.connectionTo(leaderId).client(SERVICE) as unknown as {
      SubscribeToShard(request: object): grpc.ClientReadableStream<SubscribeToShardEvent__Output>;
    };
    return client.SubscribeToShard(request);
  }
}

/** The stream's events; cancels it (and ends with a retriable error) when silent for idleMs. */
async function* watchIdle(stream: grpc.ClientReadableStream<SubscribeToShardEvent__Output>, idleMs: number, signal?: AbortSignal): AsyncGenerator<SubscribeToShardEvent__Output> {
  let idle = false;
  let timer = setTimeout(onIdle, idleMs);
  function onIdle(): void {
    idle = true;
    stream.cancel();
  }
  const onAbort = (): void => stream.cancel();
  signal?.addEventListener('abort', onAbort);
  try {
    for await (const event of stream as AsyncIterable<SubscribeToShardEvent__Output>) {
      clearTimeout(timer);
      timer = setTimeout(onIdle, idleMs);
      yield event;
    }
  } catch (error) {
    if (idle) throw new RiffleError('NETWORK_EXCEPTION', `No event (not even a heartbeat) for ${idleMs} ms; resubscribing.`);
    if (signal?.aborted) return;
    throw isServiceError(error) ? fromServiceError(error) : toRiffleError(error);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    stream.cancel();
  }
}

function isServiceError(error: unknown): error is grpc.ServiceError {
  return typeof error === 'object' && error !== null && 'code' in error && 'metadata' in error;
}

function toBuffer(data: Buffer | Uint8Array | string): Buffer {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.isBuffer(data) ? data : Buffer.from(data);
}

/** Retries a Kinesis call on retriable errors (throttling included) within the client's retry deadline. */
export function withKinesisRetries<T>(client: RiffleClient, attempt: () => Promise<T>): Promise<T> {
  return withRetries(attempt, client.retry);
}
