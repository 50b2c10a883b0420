// The Kinesis-like API on a broker (riffle.v1.Kinesis, proto/riffle/v1/kinesis.proto). Stream
// administration is forwarded to the active controller (AlterStream), and the broker answers
// once its own image shows the change; descriptions come from the image. Data-plane calls for a
// shard are served by its leader: PutRecord(s) forwards each shard's records to its leader,
// GetShardIterator and GetRecords are forwarded whole, and SubscribeToShard must reach the
// leader itself (the SDK follows the leader hint). Errors carry Kinesis exception names.
import * as grpc from '@grpc/grpc-js';
import type { ClusterView } from '../cluster-view.js';
import type { ControllerClient } from '../controller-client.js';
import type { MetadataCache } from '../metadata-cache.js';
import type { ReplicaManager } from '../replica-manager.js';
import type { MetadataImage, TopicInfo } from '../../controller/index.js';
import { ConnectionPool } from '../../src/rpc/client.js';
import { RiffleError } from '../../src/rpc/errors.js';
import { unary, type HandlerContext } from '../../src/rpc/server.js';
import type { Logger } from '../../src/util/logger.js';
import { decodeSequenceNumber, partitionOfShardId, shardIdOf, streamArnOf, streamNameOfArn, consumerNameOfArn } from '../../src/util/kinesis.js';
import type { KinesisHandlers } from '../../src/rpc/generated/riffle/v1/Kinesis.js';
import type { AlterStreamRequest } from '../../src/rpc/generated/riffle/internal/AlterStreamRequest.js';
import type { AlterStreamResponse__Output } from '../../src/rpc/generated/riffle/internal/AlterStreamResponse.js';
import type { PutRecordsRequestEntry__Output } from '../../src/rpc/generated/riffle/v1/PutRecordsRequestEntry.js';
import type { PutRecordsResponse__Output } from '../../src/rpc/generated/riffle/v1/PutRecordsResponse.js';
import type { GetRecordsResponse } from '../../src/rpc/generated/riffle/v1/GetRecordsResponse.js';
import type { GetRecordsRequest__Output } from '../../src/rpc/generated/riffle/v1/GetRecordsRequest.js';
import type { GetShardIteratorRequest__Output } from '../../src/rpc/generated/riffle/v1/GetShardIteratorRequest.js';
import type { GetShardIteratorResponse } from '../../src/rpc/generated/riffle/v1/GetShardIteratorResponse.js';
import type { Consumer } from '../../src/rpc/generated/riffle/v1/Consumer.js';
import { KinesisMetrics } from './kinesis-metrics.js';
import { ShardIteratorCodec } from './shard-iterators.js';
import { ShardLimits, limitsProfileOf } from './throughput-limits.js';
import { putShardBatches } from './put-shard-batches.js';
import { FORWARDED_METADATA_KEY, isForwarded, putRecords, type PutDeps } from './put-records.js';
import { readShard, startingOffset } from './shard-reader.js';
import { consumerOf, listShards, shardOf, summaryOf } from './stream-descriptions.js';
import { EnhancedFanOut } from './enhanced-fan-out.js';
import { OnDemandScaler } from './on-demand-scaler.js';
import type { Registry } from '../../src/metrics/index.js';

/** Kinesis: GetRecords returns at most 10,000 records and 10 MiB. */
export const GET_RECORDS_LIMIT_MAX = 10_000;
export const GET_RECORDS_BYTES_MAX = 10 * 1024 * 1024;
export const LIST_STREAMS_LIMIT_DEFAULT = 100;
export const LIST_STREAMS_LIMIT_MAX = 10_000;
export const LIST_CONSUMERS_RESULTS_MAX = 10_000;
const ADMIN_TIMEOUT_MS = 30_000;
const FORWARD_TIMEOUT_MS = 30_000;
const METADATA_PROPAGATION_WAIT_MS = 5_000;

export interface KinesisServiceOptions {
  cluster: ClusterView;
  controller: ControllerClient;
  metadata: MetadataCache;
  replicas: ReplicaManager;
  registry: Registry;
  logger: Logger;
  subscriptionMs: number;
  heartbeatMs: number;
  iteratorTtlMs: number;
  /** How often on-demand streams' shard loads are checked. */
  onDemandCheckMs: number;
}

export class KinesisService {
  readonly metrics: KinesisMetrics;
  readonly fanOut: EnhancedFanOut;
  private readonly iterators: ShardIteratorCodec;
  private readonly limits = new ShardLimits();
  private readonly pool = new ConnectionPool();
  private readonly putDeps: PutDeps;
  private readonly scaler: OnDemandScaler;

  constructor(private readonly options: KinesisServiceOptions) {
    this.metrics = new KinesisMetrics(options.registry);
    const image = (): MetadataImage => options.metadata.image;
    this.iterators = new ShardIteratorCodec(() => image().cluster?.clusterSecret ?? new Uint8Array(0), Date.now, options.iteratorTtlMs);
    this.fanOut = new EnhancedFanOut({
      selfId: options.cluster.selfId, image, replicas: options.replicas, metrics: this.metrics, logger: options.logger,
      subscriptionMs: options.subscriptionMs, heartbeatMs: options.heartbeatMs,
    });
    this.scaler = new OnDemandScaler({
      selfId: options.cluster.selfId, image, checkIntervalMs: options.onDemandCheckMs, logger: options.logger,
      split: async (streamName, partition, newStartingHashKey) => {
        await this.alter({ operation: 'split', streamName, partition, newStartingHashKey });
      },
    });
    this.scaler.start();
    this.putDeps = {
      selfId: options.cluster.selfId, image, replicas: options.replicas, limits: this.limits, metrics: this.metrics,
      recordWrite: (topicId, partition, records, bytes) => this.scaler.recordWrite(topicId, partition, records, bytes),
      forward: (leaderId, streamName, entries) => this.forward<PutRecordsResponse__Output>(leaderId, 'PutRecords', { streamName, records: entries }),
    };
  }

  close(): void {
    this.scaler.stop();
    this.fanOut.stopAll();
    this.pool.close();
  }

  handlers(context: HandlerContext): Partial<KinesisHandlers> {
    const h = <Request, Response>(method: string, handler: (request: Request, call: grpc.ServerUnaryCall<Request, Response>) => Promise<Response>) =>
      unary<Request, Response>(context, method, handler);
    return {
      CreateStream: h('CreateStream', async (request) => {
        await this.alter({
          operation: 'create', streamName: request.streamName, shardCount: request.shardCount ?? 0, streamMode: request.streamModeDetails?.streamMode ?? '',
          limitsProfile: request.limitsProfile ?? '', recordBytesMax: request.recordBytesMax ?? 0, replicationFactor: request.replicationFactor ?? 0,
          retentionPeriodHours: request.retentionPeriodHours ?? 0,
        });
        return {};
      }),
      DeleteStream: h('DeleteStream', async (request) => {
        await this.alter({ operation: 'delete', streamName: this.streamName(request), enforceConsumerDeletion: request.enforceConsumerDeletion });
        return {};
      }),
      DescribeStreamSummary: h('DescribeStreamSummary', async (request) => {
        const image = this.image();
        return { streamDescriptionSummary: summaryOf(image, this.stream(image, this.streamName(request))) };
      }),
      DescribeStream: h('DescribeStream', async (request) => this.describeStream(request)),
      ListStreams: h('ListStreams', async (request) => this.listStreams(request)),
      ListShards: h('ListShards', async (request) => {
        const name = request.streamName || request.streamArn ? this.streamName(request) : '';
        return listShards(this.image(), request, name, Date.now());
      }),
      PutRecord: h('PutRecord', async (request, call) => {
        if (request.sequenceNumberForOrdering && !decodeSequenceNumber(request.sequenceNumberForOrdering)) {
          throw new RiffleError('INVALID_ARGUMENT', `SequenceNumberForOrdering '${request.sequenceNumberForOrdering}' is not a sequence number.`);
        }
        const entry = { data: request.data, partitionKey: request.partitionKey, explicitHashKey: request.explicitHashKey } as PutRecordsRequestEntry__Output;
        const response = await putRecords(this.putDeps, this.streamName(request), [entry], isForwarded(call));
        const result = response.records[0]!;
        if (result.errorCode) {
          throw new RiffleError(result.errorCode === 'ProvisionedThroughputExceededException' ? 'PROVISIONED_THROUGHPUT_EXCEEDED' : 'NOT_LEADER_OR_FOLLOWER', result.errorMessage ?? undefined);
        }
        return { shardId: result.shardId!, sequenceNumber: result.sequenceNumber!, encryptionType: 'NONE' };
      }),
      PutRecords: h('PutRecords', async (request, call) => putRecords(this.putDeps, this.streamName(request), request.records, isForwarded(call))),
      PutShardBatches: h('PutShardBatches', async (request) => putShardBatches(this.putDeps, request)),
      GetShardIterator: h('GetShardIterator', async (request, call) => this.getShardIterator(request, isForwarded(call))),
      GetRecords: h('GetRecords', async (request, call) => this.getRecords(request, isForwarded(call))),
      SplitShard: h('SplitShard', async (request) => {
        await this.alter({ operation: 'split', streamName: this.streamName(request), partition: shardPartition(request.shardToSplit), newStartingHashKey: request.newStartingHashKey });
        return {};
      }),
      MergeShards: h('MergeShards', async (request) => {
        await this.alter({
          operation: 'merge', streamName: this.streamName(request), partition: shardPartition(request.shardToMerge), adjacentPartition: shardPartition(request.adjacentShardToMerge),
        });
        return {};
      }),
      UpdateShardCount: h('UpdateShardCount', async (request) => {
        if (request.scalingType && request.scalingType !== 'UNIFORM_SCALING') throw new RiffleError('INVALID_ARGUMENT', 'ScalingType must be UNIFORM_SCALING.');
        const streamName = this.streamName(request);
        const response = await this.alter({ operation: 'update_shard_count', streamName, shardCount: request.targetShardCount });
        return {
          streamName, streamArn: streamArnOf(this.options.cluster.clusterId(), streamName), currentShardCount: response.previousOpenShardCount, targetShardCount: request.targetShardCount,
        };
      }),
      UpdateStreamMode: h('UpdateStreamMode', async (request) => {
        const streamName = this.streamName({ streamArn: request.streamArn, streamName: request.streamName });
        await this.alter({ operation: 'mode', streamName, streamMode: request.streamModeDetails?.streamMode ?? '' });
        return {};
      }),
      UpdateStreamLimits: h('UpdateStreamLimits', async (request) => {
        await this.alter({ operation: 'limits', streamName: this.streamName(request), limitsProfile: request.limitsProfile });
        return {};
      }),
      IncreaseStreamRetentionPeriod: h('IncreaseStreamRetentionPeriod', async (request) => {
        await this.alter({ operation: 'retention', streamName: this.streamName(request), retentionPeriodHours: request.retentionPeriodHours, increase: true });
        return {};
      }),
      DecreaseStreamRetentionPeriod: h('DecreaseStreamRetentionPeriod', async (request) => {
        await this.alter({ operation: 'retention', streamName: this.streamName(request), retentionPeriodHours: request.retentionPeriodHours, increase: false });
        return {};
      }),
      RegisterStreamConsumer: h('RegisterStreamConsumer', async (request) => {
        const streamName = this.streamName({ streamArn: request.streamArn });
        await this.alter({ operation: 'register_consumer', streamName, consumerName: request.consumerName });
        return { consumer: this.consumer(streamName, request.consumerName) };
      }),
      DeregisterStreamConsumer: h('DeregisterStreamConsumer', async (request) => {
        const { streamName, consumerName } = this.consumerRef(request);
        await this.alter({ operation: 'deregister_consumer', streamName, consumerName });
        return {};
      }),
      DescribeStreamConsumer: h('DescribeStreamConsumer', async (request) => {
        const { streamName, consumerName } = this.consumerRef(request);
        return { consumerDescription: this.consumer(streamName, consumerName), streamArn: streamArnOf(this.options.cluster.clusterId(), streamName) };
      }),
      ListStreamConsumers: h('ListStreamConsumers', async (request) => {
        const topic = this.stream(this.image(), this.streamName({ streamArn: request.streamArn }));
        const all = [...topic.consumers.values()].sort((a, b) => a.consumerName.localeCompare(b.consumerName));
        const after = request.nextToken ? Buffer.from(request.nextToken, 'base64url').toString('utf8') : '';
        const remaining = all.filter((consumer) => consumer.consumerName > after);
        const max = Math.min(request.maxResults || 100, LIST_CONSUMERS_RESULTS_MAX);
        const page = remaining.slice(0, max);
        return {
          consumers: page.map(consumerOf),
          nextToken: remaining.length > page.length ? Buffer.from(page.at(-1)!.consumerName).toString('base64url') : undefined,
        };
      }),
      SubscribeToShard: (call) => this.fanOut.subscribe(call),
    };
  }

  private image(): MetadataImage {
    return this.options.metadata.image;
  }

  /** StreamName or StreamARN (Kinesis accepts either; when both, they must agree). */
  private streamName(request: { streamName?: string; streamArn?: string }): string {
    const fromArn = request.streamArn ? streamNameOfArn(request.streamArn) : null;
    if (request.streamArn && fromArn === null) throw new RiffleError('INVALID_ARGUMENT', `StreamARN '${request.streamArn}' is not a stream ARN.`);
    if (request.streamName && fromArn && request.streamName !== fromArn) throw new RiffleError('INVALID_ARGUMENT', 'StreamName and StreamARN name different streams.');
    const name = request.streamName || fromArn;
    if (!name) throw new RiffleError('INVALID_ARGUMENT', 'Either StreamName or StreamARN is required.');
    return name;
  }

  private stream(image: MetadataImage, name: string): TopicInfo {
    const topic = image.topicByName(name);
    if (!topic || topic.kind !== 'stream') throw new RiffleError('RESOURCE_NOT_FOUND', `Stream ${name} not found.`);
    return topic;
  }

  private consumerRef(request: { streamArn?: string; consumerName?: string; consumerArn?: string }): { streamName: string; consumerName: string } {
    if (request.consumerArn) {
      const streamName = streamNameOfArn(request.consumerArn);
      const consumerName = consumerNameOfArn(request.consumerArn);
      if (!streamName || !consumerName) throw new RiffleError('INVALID_ARGUMENT', `ConsumerARN '${request.consumerArn}' is not a consumer ARN.`);
      return { streamName, consumerName };
    }
    if (!request.streamArn || !request.consumerName) throw new RiffleError('INVALID_ARGUMENT', 'Either ConsumerARN or both StreamARN and ConsumerName are required.');
    return { streamName: this.streamName({ streamArn: request.streamArn }), consumerName: request.consumerName };
  }

  private consumer(streamName: string, consumerName: string): Consumer {
    const consumer = this.stream(this.image(), streamName).consumers.get(consumerName);
    if (!consumer) throw new RiffleError('RESOURCE_NOT_FOUND', `Consumer ${consumerName} of stream ${streamName} not found.`);
    return consumerOf(consumer);
  }

  /** Forwards a stream change to the active controller and waits until this broker's image has it. */
  private async alter(request: AlterStreamRequest): Promise<AlterStreamResponse__Output> {
    const response = await this.options.controller.call<AlterStreamResponse__Output>('AlterStream', request, ADMIN_TIMEOUT_MS);
    const offset = Number(response.metadataOffset);
    await this.options.metadata.waitFor((image) => image.offset >= offset, METADATA_PROPAGATION_WAIT_MS);
    await this.options.replicas.whenSynced(offset, METADATA_PROPAGATION_WAIT_MS);
    return response;
  }

  private describeStream(request: { streamName?: string; streamArn?: string; limit?: number; exclusiveStartShardId?: string }) {
    const image = this.image();
    const topic = this.stream(image, this.streamName(request));
    const summary = summaryOf(image, topic);
    const after = request.exclusiveStartShardId ? shardPartition(request.exclusiveStartShardId) : -1;
    const limit = Math.min(request.limit || 100, 10_000);
    const remaining = topic.partitions.filter((info) => info.partition > after);
    return {
      streamDescription: {
        streamName: summary.streamName, streamArn: summary.streamArn, streamStatus: summary.streamStatus, streamModeDetails: summary.streamModeDetails,
        shards: remaining.slice(0, limit).map(shardOf), hasMoreShards: remaining.length > limit, retentionPeriodHours: summary.retentionPeriodHours,
        streamCreationTimestamp: summary.streamCreationTimestamp, encryptionType: 'NONE',
      },
    };
  }

  private listStreams(request: { limit?: number; exclusiveStartStreamName?: string; nextToken?: string }) {
    const image = this.image();
    const limit = request.limit || LIST_STREAMS_LIMIT_DEFAULT;
    if (limit < 1 || limit > LIST_STREAMS_LIMIT_MAX) throw new RiffleError('INVALID_ARGUMENT', `Limit must be between 1 and ${LIST_STREAMS_LIMIT_MAX}.`);
    let after = request.exclusiveStartStreamName ?? '';
    if (request.nextToken) after = Buffer.from(request.nextToken, 'base64url').toString('utf8');
    const streams = [...image.topics.values()].filter((topic) => topic.kind === 'stream' && topic.name > after).sort((a, b) => (a.name < b.name ? -1 : 1));
    const page = streams.slice(0, limit);
    const more = streams.length > page.length;
    return {
      streamNames: page.map((topic) => topic.name),
      hasMoreStreams: more,
      nextToken: more ? Buffer.from(page.at(-1)!.name).toString('base64url') : undefined,
      streamSummaries: page.map((topic) => {
        const summary = summaryOf(image, topic);
        return { streamName: topic.name, streamArn: summary.streamArn, streamStatus: 'ACTIVE', streamModeDetails: summary.streamModeDetails, streamCreationTimestamp: topic.createdAtMs };
      }),
    };
  }

  private async getShardIterator(request: GetShardIteratorRequest__Output, forwarded: boolean): Promise<GetShardIteratorResponse> {
    const image = this.image();
    const topic = this.stream(image, this.streamName(request));
    const index = shardPartition(request.shardId);
    const info = topic.partitions[index];
    if (!info) throw new RiffleError('RESOURCE_NOT_FOUND', `Shard ${request.shardId} in stream ${topic.name} not found.`);
    if (info.leader !== this.options.cluster.selfId) {
      return this.forwardOrFail<GetShardIteratorResponse>(info.leader, 'GetShardIterator', request, forwarded, request.shardId);
    }
    const partition = this.options.replicas.partition(topic.name, index, true);
    partition.requireLeader();
    const offset = startingOffset(info, partition, {
      type: request.shardIteratorType, sequenceNumber: request.startingSequenceNumber, timestampMs: request.timestamp === undefined || request.timestamp === null ? null : Number(request.timestamp),
    });
    return { shardIterator: this.iterators.encode({ topicId: topic.topicId, partition: index, offset }) };
  }

  private async getRecords(request: GetRecordsRequest__Output, forwarded: boolean): Promise<GetRecordsResponse> {
    const limit = request.limit ?? GET_RECORDS_LIMIT_MAX;
    if (!Number.isInteger(limit) || limit < 1 || limit > GET_RECORDS_LIMIT_MAX) throw new RiffleError('INVALID_ARGUMENT', `Limit must be between 1 and ${GET_RECORDS_LIMIT_MAX}, got ${limit}.`);
    const position = this.iterators.decode(request.shardIterator);
    const image = this.image();
    const topic = image.topic(position.topicId);
    if (!topic || topic.kind !== 'stream') throw new RiffleError('RESOURCE_NOT_FOUND', 'The stream of this shard iterator no longer exists.');
    if (request.streamArn && streamNameOfArn(request.streamArn) !== topic.name) throw new RiffleError('INVALID_ARGUMENT', `The shard iterator belongs to stream ${topic.name}, not to ${request.streamArn}.`);
    const info = topic.partitions[position.partition];
    if (!info) throw new RiffleError('INVALID_ARGUMENT', 'The shard iterator names a shard the stream does not have.');
    if (info.leader !== this.options.cluster.selfId) return this.forwardOrFail<GetRecordsResponse>(info.leader, 'GetRecords', request, forwarded, shardIdOf(info.partition));
    const partition = this.options.replicas.partition(topic.name, info.partition, true);
    partition.requireLeader();
    const shardId = shardIdOf(info.partition);
    const shardKey = `${topic.topicId}/${info.partition}`;
    const limited = limitsProfileOf(topic.configs) === 'kinesis';
    if (limited && !this.limits.tryRead(shardKey)) {
      this.metrics.throttled.inc({ stream: topic.name, operation: 'GetRecords' });
      throw new RiffleError('PROVISIONED_THROUGHPUT_EXCEEDED', `Rate exceeded for ${shardId} of stream ${topic.name}: 5 GetRecords calls and 2 MiB a second per shard.`);
    }
    const read = await readShard(topic, info, partition, position.offset, { records: limit, bytes: GET_RECORDS_BYTES_MAX }, Date.now());
    if (limited) this.limits.chargeRead(shardKey, read.dataBytes);
    this.metrics.outgoingRecords.inc({ stream: topic.name, shard: shardId, api: 'get_records' }, read.records.length);
    this.metrics.outgoingBytes.inc({ stream: topic.name, shard: shardId, api: 'get_records' }, read.dataBytes);
    this.metrics.iteratorAge.set({ stream: topic.name, shard: shardId }, read.millisBehindLatest);
    return {
      records: read.records,
      nextShardIterator: read.atShardEnd ? undefined : this.iterators.encode({ topicId: topic.topicId, partition: info.partition, offset: read.nextOffset }),
      millisBehindLatest: read.millisBehindLatest,
      childShards: read.childShards,
    };
  }

  private forwardOrFail<Response>(leaderId: number, method: string, request: object, forwarded: boolean, shardId: string): Promise<Response> {
    if (forwarded || leaderId < 0) {
      throw new RiffleError('NOT_LEADER_OR_FOLLOWER', `Broker ${this.options.cluster.selfId} does not lead ${shardId}${leaderId < 0 ? ', which has no leader right now' : ''}.`);
    }
    return this.forward<Response>(leaderId, method, request);
  }

  /** Calls the same method on the leader, marked as forwarded so it is never forwarded again. */
  private forward<Response>(leaderId: number, method: string, request: object): Promise<Response> {
    const listener = this.image().broker(leaderId)?.listener;
    if (!listener) throw new RiffleError('LEADER_NOT_AVAILABLE', `Broker ${leaderId} has no known address.`);
    const metadata = new grpc.Metadata();
    metadata.set(FORWARDED_METADATA_KEY, String(this.options.cluster.selfId));
    return this.pool.get(`${listener.host}:${listener.port}`).call<Response>('riffle.v1.Kinesis', method, request, FORWARD_TIMEOUT_MS, metadata);
  }
}

function shardPartition(shardId: string): number {
  const partition = partitionOfShardId(shardId ?? '');
  if (partition === null) throw new RiffleError('INVALID_ARGUMENT', `'${shardId}' is not a shard id (shardId-000000000000).`);
  return partition;
}

