// Enhanced Fan-Out on the shard's leader: SubscribeToShard is a gRPC server stream that pushes
// records as soon as they are committed (the partition's high-watermark listener wakes the
// subscription; there is no polling loop), each event carrying ContinuationSequenceNumber,
// MillisBehindLatest and, at the end of a closed shard, ChildShards (the last event).
//
// Kinesis's rules: a subscription lasts 5 minutes (configurable), then the stream ends normally
// and the client resubscribes AFTER_SEQUENCE_NUMBER its last continuation; a second
// subscription for the same consumer and shard within 5 s of the first is ResourceInUseException,
// later it takes over (the older stream fails with ResourceInUseException). Beyond Kinesis: an idle subscription gets a
// heartbeat event (no records) every heartbeat interval, so a client can tell a quiet shard from
// a dead stream, and a leader change ends the stream at once with a retriable
// NOT_LEADER_OR_FOLLOWER (the SDK resubscribes from the continuation on the new leader).
// Under profile 'kinesis' each subscription is held to 2 MiB/s by delaying pushes, and a consumer
// may call SubscribeToShard once a second per shard (LimitExceededException otherwise).
import type * as grpc from '@grpc/grpc-js';
import type { MetadataImage, PartitionInfo, TopicInfo } from '../../controller/index.js';
import type { Partition } from '../partition.js';
import type { ReplicaManager } from '../replica-manager.js';
import { RiffleError, toRiffleError } from '../../src/rpc/errors.js';
import { consumerNameOfArn, encodeSequenceNumber, partitionOfShardId, shardIdOf, streamNameOfArn } from '../../src/util/kinesis.js';
import type { Logger } from '../../src/util/logger.js';
import type { SubscribeToShardRequest__Output } from '../../src/rpc/generated/riffle/v1/SubscribeToShardRequest.js';
import type { SubscribeToShardEvent } from '../../src/rpc/generated/riffle/v1/SubscribeToShardEvent.js';
import type { KinesisMetrics } from './kinesis-metrics.js';
import { readShard, startingOffset } from './shard-reader.js';
import { EFO_BYTES_PER_SECOND, SUBSCRIBE_INTERVAL_MS_MIN, SubscribeRateLimiter, TokenBucket, limitsProfileOf } from './throughput-limits.js';

/** Kinesis: a second subscription within this time of the first is refused. */
export const SUBSCRIPTION_TAKEOVER_MS = 5_000;
const SUBSCRIPTION_INTERVAL_TEXT = `${SUBSCRIBE_INTERVAL_MS_MIN / 1000} s`;
/** Subscriptions one broker serves at once. */
export const SUBSCRIPTIONS_MAX = 10_000;
/** One event carries at most this much record data (and at most EVENT_RECORDS_MAX records). */
export const EVENT_BYTES_MAX = 1024 * 1024;
export const EVENT_RECORDS_MAX = 10_000;

export interface FanOutOptions {
  selfId: number;
  image: () => MetadataImage;
  replicas: ReplicaManager;
  metrics: KinesisMetrics;
  logger: Logger;
  subscriptionMs: number;
  heartbeatMs: number;
}

type EventStream = grpc.ServerWritableStream<SubscribeToShardRequest__Output, SubscribeToShardEvent>;

export class EnhancedFanOut {
  private readonly active = new Map<string, Subscription>();
  private readonly subscribeRate = new SubscribeRateLimiter();

  constructor(private readonly options: FanOutOptions) {}

  get subscriptionCount(): number {
    return this.active.size;
  }

  subscribe(call: EventStream): void {
    let subscription: Subscription;
    try {
      subscription = this.open(call);
    } catch (error) {
      call.emit('error', toRiffleError(error).toServiceError());
      return;
    }
    this.options.metrics.subscriptions.set(this.active.size);
    subscription.run().finally(() => {
      if (this.active.get(subscription.key) === subscription) this.active.delete(subscription.key);
      this.options.metrics.subscriptions.set(this.active.size);
    });
  }

  private open(call: EventStream): Subscription {
    const request = call.request;
    const image = this.options.image();
    const arn = request.consumerArn ?? '';
    const streamName = streamNameOfArn(arn);
    const consumerName = consumerNameOfArn(arn);
    if (!streamName || !consumerName) throw new RiffleError('INVALID_ARGUMENT', `ConsumerARN '${arn}' is not a consumer ARN.`);
    const topic = image.topicByName(streamName);
    const consumer = topic?.kind === 'stream' ? topic.consumers.get(consumerName) : undefined;
    if (!topic || !consumer || consumer.consumerArn !== arn) throw new RiffleError('RESOURCE_NOT_FOUND', `Consumer ${arn} not found.`);
    const index = partitionOfShardId(request.shardId ?? '');
    const info = index === null ? undefined : topic.partitions[index];
    if (!info) throw new RiffleError('RESOURCE_NOT_FOUND', `Shard ${request.shardId} of stream ${streamName} not found.`);
    if (info.leader !== this.options.selfId) {
      const leader = image.broker(info.leader)?.listener;
      throw new RiffleError('NOT_LEADER_OR_FOLLOWER', `Broker ${this.options.selfId} does not lead ${request.shardId}; subscribe at its leader ${info.leader}.`, {
        leaderHint: leader ? `${leader.host}:${leader.port}` : undefined,
      });
    }
    const partition = this.options.replicas.partition(topic.name, info.partition, true);
    partition.requireLeader();
    const position = request.startingPosition;
    if (!position) throw new RiffleError('INVALID_ARGUMENT', 'StartingPosition is required.');
    const offset = startingOffset(info, partition, { type: position.type, sequenceNumber: position.sequenceNumber, timestampMs: position.timestamp === undefined || position.timestamp === null ? null : Number(position.timestamp) });
    const key = `${arn}|${info.partition}`;
    if (limitsProfileOf(topic.configs) === 'kinesis') {
      const waitMs = this.subscribeRate.tryAdmit(key);
      if (waitMs > 0) {
        this.options.metrics.throttled.inc({ stream: topic.name, operation: 'SubscribeToShard' });
        throw new RiffleError('LIMIT_EXCEEDED', `Consumer ${consumerName} subscribed to ${request.shardId} less than ${SUBSCRIPTION_INTERVAL_TEXT} ago: at most one SubscribeToShard a second per consumer and shard (retry in ${waitMs} ms).`);
      }
    }
    const existing = this.active.get(key);
    if (existing) {
      if (Date.now() - existing.startedAtMs < SUBSCRIPTION_TAKEOVER_MS) {
        throw new RiffleError('RESOURCE_IN_USE', `Consumer ${consumerName} already has a subscription to ${request.shardId}, started less than ${SUBSCRIPTION_TAKEOVER_MS / 1000} s ago.`);
      }
      // Kinesis: the takeover succeeds and the older connection fails with ResourceInUseException.
      existing.stop(new RiffleError('RESOURCE_IN_USE', `Another subscription of consumer ${consumerName} to ${request.shardId} took over.`));
    }
    if (this.active.size >= SUBSCRIPTIONS_MAX) throw new RiffleError('LIMIT_EXCEEDED', `${this.active.size} subscriptions are open on this broker.`);
    const subscription = new Subscription(key, call, topic, info, partition, offset, this.options);
    this.active.set(key, subscription);
    return subscription;
  }

  /** Ends every subscription (broker shutdown); clients resubscribe elsewhere. */
  stopAll(): void {
    for (const subscription of this.active.values()) subscription.stop(new RiffleError('NOT_LEADER_OR_FOLLOWER', 'The broker is shutting down.'));
  }
}

class Subscription {
  readonly startedAtMs = Date.now();
  private stopped = false;
  private endError: RiffleError | null = null;
  private wake: (() => void) | null = null;
  private readonly bucket: TokenBucket | null;

  constructor(
    readonly key: string,
    private readonly call: EventStream,
    private readonly topic: TopicInfo,
    private readonly info: PartitionInfo,
    private readonly partition: Partition,
    private offset: number,
    private readonly options: FanOutOptions,
  ) {
    this.bucket = limitsProfileOf(topic.configs) === 'kinesis' ? new TokenBucket(EFO_BYTES_PER_SECOND, EFO_BYTES_PER_SECOND, Date.now) : null;
  }

  /** Ends the stream: normally (takeover) or with `error` (leader change, shutdown). */
  stop(error?: RiffleError): void {
    this.stopped = true;
    this.endError = error ?? null;
    this.wake?.();
  }

  async run(): Promise<void> {
    const leaderEpoch = this.partition.leaderEpoch;
    const unsubscribe = this.partition.onHighWatermark(() => this.wake?.());
    const onCancel = (): void => this.stop();
    this.call.once('cancelled', onCancel);
    const deadline = this.startedAtMs + this.options.subscriptionMs;
    let lastEventMs = 0;
    const shardId = shardIdOf(this.info.partition);
    try {
      while (!this.stopped) {
        if (!this.partition.isLeader || this.partition.leaderEpoch !== leaderEpoch) {
          throw new RiffleError('NOT_LEADER_OR_FOLLOWER', `The leader of ${shardId} changed; resubscribe from the last continuation sequence number.`);
        }
        const now = Date.now();
        if (now >= deadline) break;
        const topic = this.options.image().topic(this.topic.topicId) ?? this.topic;
        const info = topic.partitions[this.info.partition] ?? this.info;
        if (this.offset < this.partition.highWatermark || (this.partition.isClosed && this.offset >= this.partition.highWatermark)) {
          const delayMs = this.bucket?.msUntilPositive() ?? 0;
          if (delayMs > 0) {
            await this.sleep(Math.min(delayMs, deadline - now));
            continue;
          }
          const read = await readShard(topic, info, this.partition, this.offset, { records: EVENT_RECORDS_MAX, bytes: EVENT_BYTES_MAX }, now);
          // Taken over or ended while the read was out: the records are the next subscriber's.
          if (this.stopped) continue;
          if (read.records.length > 0 || read.atShardEnd) {
            this.offset = read.nextOffset;
            this.bucket?.charge(read.dataBytes);
            await this.send({
              records: read.records, continuationSequenceNumber: encodeSequenceNumber(this.info.partition, this.offset - 1),
              millisBehindLatest: read.millisBehindLatest, childShards: read.childShards,
            });
            lastEventMs = Date.now();
            this.count(topic, shardId, read.records.length, read.dataBytes, read.newestArrivalMs, read.millisBehindLatest);
            if (read.atShardEnd) break;
            continue;
          }
        }
        if (Date.now() - lastEventMs >= this.options.heartbeatMs) {
          await this.send({ records: [], continuationSequenceNumber: encodeSequenceNumber(this.info.partition, this.offset - 1), millisBehindLatest: 0, childShards: [] });
          lastEventMs = Date.now();
          continue;
        }
        await this.sleep(Math.min(this.options.heartbeatMs - (Date.now() - lastEventMs), deadline - Date.now()));
      }
      if (this.endError) throw this.endError;
      if (!this.call.cancelled) this.call.end();
    } catch (error) {
      const riffleError = toRiffleError(error);
      if (riffleError.errorName === 'UNKNOWN_SERVER_ERROR') this.options.logger.error({ err: error }, 'subscription failed');
      if (!this.call.cancelled) this.call.emit('error', riffleError.toServiceError());
    } finally {
      unsubscribe();
      this.call.removeListener('cancelled', onCancel);
    }
  }

  private count(topic: TopicInfo, shardId: string, records: number, bytes: number, newestArrivalMs: number, millisBehind: number): void {
    const metrics = this.options.metrics;
    if (records > 0) {
      metrics.outgoingRecords.inc({ stream: topic.name, shard: shardId, api: 'subscribe' }, records);
      metrics.outgoingBytes.inc({ stream: topic.name, shard: shardId, api: 'subscribe' }, bytes);
      if (newestArrivalMs > 0) metrics.pushLatency.observe(Math.max(0, Date.now() - newestArrivalMs) / 1000);
    }
    metrics.iteratorAge.set({ stream: topic.name, shard: shardId }, millisBehind);
  }

  /** Writes one event, waiting for the transport to drain when its buffer is full. */
  private async send(event: SubscribeToShardEvent): Promise<void> {
    if (this.call.cancelled) {
      this.stopped = true;
      return;
    }
    if (!this.call.write(event)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.call.removeListener('drain', done);
          this.call.removeListener('cancelled', done);
          this.wake = null;
          resolve();
        };
        this.wake = done;
        this.call.once('drain', done);
        this.call.once('cancelled', done);
      });
    }
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(finish, ms);
      function finish(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        finish();
      };
    });
  }
}
