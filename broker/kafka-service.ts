// The Kafka-like data plane on one broker: Metadata, Produce, Fetch (long poll) and ListOffsets.
// Per-partition failures go into the response with Kafka's error codes, as Kafka does; a request
// that is wrong as a whole (bad acks, bad sizes) fails with a typed gRPC status.
import type * as grpc from '@grpc/grpc-js';
import type { FetchPurgatory } from './fetch-purgatory.js';
import type { AppendPhases, Partition } from './partition.js';
import type { ReplicaManager } from './replica-manager.js';
import type { ClusterView } from './cluster-view.js';
import { ERRORS, RiffleError, toRiffleError } from '../src/rpc/errors.js';
import { callCancelSignal, pipelined, unary, type CancelSignal, type HandlerContext, type OpenStreams } from '../src/rpc/server.js';
import { Counter, Histogram, LATENCY_BUCKETS_SECONDS, type Registry } from '../src/metrics/index.js';
import type { Logger } from '../src/util/logger.js';
import type { MetadataRequest__Output } from '../src/rpc/generated/riffle/v1/MetadataRequest.js';
import type { MetadataResponse } from '../src/rpc/generated/riffle/v1/MetadataResponse.js';
import type { ProduceRequest__Output } from '../src/rpc/generated/riffle/v1/ProduceRequest.js';
import type { ProduceResponse } from '../src/rpc/generated/riffle/v1/ProduceResponse.js';
import type { PartitionProduceResponse } from '../src/rpc/generated/riffle/v1/PartitionProduceResponse.js';
import type { FetchRequest__Output } from '../src/rpc/generated/riffle/v1/FetchRequest.js';
import type { FetchResponse } from '../src/rpc/generated/riffle/v1/FetchResponse.js';
import type { FetchPartitionData } from '../src/rpc/generated/riffle/v1/FetchPartitionData.js';
import type { FetchableTopicResponse } from '../src/rpc/generated/riffle/v1/FetchableTopicResponse.js';
import type { ListOffsetsRequest__Output } from '../src/rpc/generated/riffle/v1/ListOffsetsRequest.js';
import type { ListOffsetsResponse } from '../src/rpc/generated/riffle/v1/ListOffsetsResponse.js';
import type { ListOffsetsPartitionResponse } from '../src/rpc/generated/riffle/v1/ListOffsetsPartitionResponse.js';
import type { KafkaHandlers } from '../src/rpc/generated/riffle/v1/Kafka.js';
import type { InitProducerIdRequest__Output } from '../src/rpc/generated/riffle/v1/InitProducerIdRequest.js';
import { initProducerId, type InitProducerIdDeps } from './producer-ids.js';

export const FETCH_WAIT_MS_MAX = 60_000;
export const FETCH_PARTITION_BYTES_DEFAULT = 1024 * 1024;
export const FETCH_BYTES_DEFAULT = 50 * 1024 * 1024;
export const PRODUCE_TIMEOUT_MS_DEFAULT = 30_000;
export const LATEST_TIMESTAMP = -1;
export const EARLIEST_TIMESTAMP = -2;

export class DataPlaneMetrics {
  readonly producedBytes: Counter<'topic'>;
  readonly producedBatches: Counter<'topic'>;
  readonly fetchedBytes: Counter<'topic'>;
  readonly produceLocal: Histogram;
  readonly produceRemote: Histogram;
  readonly refusedWithoutStanding: Counter<'answer'>;

  constructor(registry: Registry) {
    // Kafka's LocalTimeMs and RemoteTimeMs: where a produce's time goes on the leader.
    this.produceLocal = new Histogram({
      name: 'riffle_broker_produce_local_seconds', help: 'Produce, per partition: append on the leader and its flush (per flush.policy), until acks=1 could answer.',
      buckets: LATENCY_BUCKETS_SECONDS, registers: [registry],
    });
    this.produceRemote = new Histogram({
      name: 'riffle_broker_produce_remote_seconds', help: 'Produce with acks=all, per partition: from the local flush until the high watermark passed the batch (the followers\' fetch, write, flush and report).',
      buckets: LATENCY_BUCKETS_SECONDS, registers: [registry],
    });
    this.producedBytes = new Counter({ name: 'riffle_broker_produce_bytes_total', help: 'Record batch bytes accepted by Produce, by topic.', labelNames: ['topic'], registers: [registry] });
    this.producedBatches = new Counter({ name: 'riffle_broker_produce_batches_total', help: 'Produce partition requests accepted (each carries one or more batches), by topic.', labelNames: ['topic'], registers: [registry] });
    this.fetchedBytes = new Counter({ name: 'riffle_broker_fetch_bytes_total', help: 'Record batch bytes returned by Fetch, by topic.', labelNames: ['topic'], registers: [registry] });
    this.refusedWithoutStanding = new Counter({
      name: 'riffle_broker_refused_without_standing_total',
      help: 'Answers withheld while the broker was not in good standing with the controller (it may have been deposed), by the answer: offset_out_of_range (a fetch) or produce_ack (acks=0/1).',
      labelNames: ['answer'], registers: [registry],
    });
  }
}

/**
 * The broker's standing with the controller (BrokerLifecycle): out of it, the broker may have
 * been fenced and its leaderships moved without knowing yet.
 */
export interface BrokerStanding {
  readonly inGoodStanding: boolean;
  /** Milliseconds since the heartbeat behind the controller's last unfenced answer left. */
  readonly standingAgeMs: number;
}

export interface KafkaServiceDeps {
  cluster: ClusterView;
  replicas: ReplicaManager;
  purgatory: FetchPurgatory;
  metrics: DataPlaneMetrics;
  logger: Logger;
  requestBytesMax: number;
  /** Producer ids for InitProducerId (idempotent producers). */
  producerIds: InitProducerIdDeps;
  /** Open streams of the node: a stopping broker ends produce streams once they are answered. */
  streams: OpenStreams;
  standing: BrokerStanding;
}

export function kafkaHandlers(context: HandlerContext, deps: KafkaServiceDeps): Partial<KafkaHandlers> {
  return {
    Metadata: unary(context, 'Metadata', async (request: MetadataRequest__Output) => metadata(deps, request)),
    Produce: unary(context, 'Produce', async (request: ProduceRequest__Output) => produce(deps, request)),
    ProduceStream: pipelined(context, 'ProduceStream', async (request: ProduceRequest__Output) => produce(deps, request), deps.streams),
    Fetch: unary(context, 'Fetch', async (request: FetchRequest__Output, call: grpc.ServerUnaryCall<FetchRequest__Output, FetchResponse>) =>
      fetch(deps, request, callCancelSignal(call)),
    ),
    FetchStream: pipelined(context, 'FetchStream', async (request: FetchRequest__Output, signal: CancelSignal) => fetch(deps, request, signal), deps.streams),
    ListOffsets: unary(context, 'ListOffsets', async (request: ListOffsetsRequest__Output) => listOffsets(deps, request)),
    InitProducerId: unary(context, 'InitProducerId', (request: InitProducerIdRequest__Output) => initProducerId(deps.producerIds, request)),
  };
}

function metadata(deps: KafkaServiceDeps, request: MetadataRequest__Output): MetadataResponse {
  const image = deps.cluster.image();
  const all = [...image.topics.values()].filter((topic) => request.includeInternal || !topic.internal);
  const names = request.topics.length > 0 ? request.topics : all.map((topic) => topic.name).sort();
  return {
    clusterId: deps.cluster.clusterId(),
    controllerId: deps.cluster.controllerId(),
    brokers: deps.cluster.liveBrokers().map((broker) => ({ nodeId: broker.nodeId, host: broker.host, port: broker.port, rack: broker.rack })),
    topics: names.map((name) => {
      const topic = image.topicByName(name);
      if (!topic) {
        const error = new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `Topic '${name}' does not exist.`);
        return { name, errorCode: error.code, errorMessage: error.message, partitions: [] };
      }
      const partitions = topic.partitions.map((partition) => ({
        partitionIndex: partition.partition,
        errorCode: partition.leader < 0 ? ERRORS.LEADER_NOT_AVAILABLE.code : 0,
        leaderId: partition.leader,
        leaderEpoch: partition.leaderEpoch,
        replicaNodes: [...partition.replicas],
        isrNodes: [...partition.isr],
        offlineReplicas: partition.replicas.filter((id) => !image.isActiveBroker(id)),
      }));
      return { name, topicId: topic.topicId, isInternal: topic.internal, kind: topic.kind, partitions };
    }),
  };
}

async function produce(deps: KafkaServiceDeps, request: ProduceRequest__Output): Promise<ProduceResponse> {
  if (request.acks !== 0 && request.acks !== 1 && request.acks !== -1) {
    throw new RiffleError('INVALID_REQUIRED_ACKS', `acks must be 0, 1 or -1 (all), got ${request.acks}.`);
  }
  if (request.transactionalId) throw new RiffleError('INVALID_REQUEST', 'Transactions are not supported.');
  const timeoutMs = request.timeoutMs > 0 ? request.timeoutMs : PRODUCE_TIMEOUT_MS_DEFAULT;
  const responses = await Promise.all(
    request.topicData.map(async (topicData) => ({
      name: topicData.name,
      partitionResponses: await Promise.all(
        topicData.partitionData.map((data) => produceToPartition(deps, topicData.name, data.index, data.records, request.acks, timeoutMs)),
      ),
    })),
  );
  return { responses, throttleTimeMs: 0 };
}

async function produceToPartition(
  deps: KafkaServiceDeps,
  topic: string,
  index: number,
  records: Buffer,
  acks: number,
  timeoutMs: number,
): Promise<PartitionProduceResponse> {
  try {
    const partition = deps.replicas.partition(topic, index);
    const started = performance.now();
    const phases: AppendPhases = { localDoneMs: NaN };
    // acks=all needs the ISR, which a deposed leader no longer has; acks=0/1 needs the broker's
    // standing, before the write and again before the answer (it may have been paused meanwhile).
    if (acks !== -1) requireStanding(deps, topic, index, 'nothing was written');
    const info = await withTimeout(partition.append(records, acks, phases), timeoutMs);
    if (acks === 1) requireStanding(deps, topic, index, 'the outcome of the write is unknown');
    if (acks !== 0) deps.metrics.produceLocal.observe((phases.localDoneMs - started) / 1000);
    if (acks === -1) deps.metrics.produceRemote.observe((performance.now() - phases.localDoneMs) / 1000);
    deps.metrics.producedBytes.inc({ topic }, info.bytes);
    deps.metrics.producedBatches.inc({ topic });
    return { index, errorCode: 0, baseOffset: info.baseOffset, logAppendTimeMs: -1, logStartOffset: partition.logStartOffset };
  } catch (error) {
    const riffleError = toRiffleError(error);
    if (riffleError.errorName === 'UNKNOWN_SERVER_ERROR') deps.logger.error({ err: error, topic, partition: index }, 'produce failed');
    // KIP-951: say who leads now, so the client can re-route without a metadata round trip.
    const leader = riffleError.errorName === 'NOT_LEADER_OR_FOLLOWER' ? deps.cluster.image().topicByName(topic)?.partitions[index] : undefined;
    return {
      index, errorCode: riffleError.code, errorMessage: riffleError.message, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1,
      currentLeaderId: leader?.leader ?? -1, currentLeaderEpoch: leader?.leaderEpoch ?? -1,
    };
  }
}

/** Refuses an acks=0/1 write (NOT_LEADER_OR_FOLLOWER, retriable) while the broker's standing has lapsed. */
function requireStanding(deps: KafkaServiceDeps, topic: string, index: number, outcome: string): void {
  if (deps.standing.inGoodStanding) return;
  deps.metrics.refusedWithoutStanding.inc({ answer: 'produce_ack' });
  throw new RiffleError('NOT_LEADER_OR_FOLLOWER', `${lapsedStanding(deps)}; it may no longer lead ${topic}-${index}, so ${outcome}. Refresh the metadata and retry.`);
}

/**
 * OFFSET_OUT_OF_RANGE makes a consumer reset its position (auto.offset.reset). A broker out of
 * good standing may be a deposed leader whose log ends below the new leader's (a paused one that
 * has just resumed): it answers NOT_LEADER_OR_FOLLOWER instead, so the consumer asks again
 * where the partition is led and keeps its position.
 */
function withheldOutOfRange(deps: KafkaServiceDeps, error: RiffleError, topic: string, index: number, fetchOffset: number): RiffleError {
  if (error.errorName !== 'OFFSET_OUT_OF_RANGE' || deps.standing.inGoodStanding) return error;
  deps.metrics.refusedWithoutStanding.inc({ answer: 'offset_out_of_range' });
  return new RiffleError('NOT_LEADER_OR_FOLLOWER', `${lapsedStanding(deps)}; it may no longer lead ${topic}-${index}, so it does not say whether offset ${fetchOffset} is out of range. Refresh the metadata and retry.`);
}

function lapsedStanding(deps: KafkaServiceDeps): string {
  const age = deps.standing.standingAgeMs;
  const since = Number.isFinite(age) ? `its last was sent ${Math.round(age)} ms ago` : 'it has had none yet';
  return `Broker ${deps.cluster.selfId} is not in good standing with the controller (no current unfenced heartbeat answer: ${since})`;
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RiffleError('REQUEST_TIMED_OUT', `Not durable within ${timeoutMs} ms.`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

interface FetchRound {
  response: FetchResponse;
  bytes: number;
  partitions: Partition[];
  failed: boolean;
}

async function fetch(
  deps: KafkaServiceDeps,
  request: FetchRequest__Output,
  signal: CancelSignal,
): Promise<FetchResponse> {
  const maxWaitMs = request.maxWaitMs;
  if (maxWaitMs < 0 || maxWaitMs > FETCH_WAIT_MS_MAX) {
    throw new RiffleError('INVALID_REQUEST', `max_wait_ms must be between 0 and ${FETCH_WAIT_MS_MAX}, got ${maxWaitMs}.`);
  }
  if (request.minBytes < 0 || request.maxBytes < 0) throw new RiffleError('INVALID_FETCH_SIZE', 'min_bytes and max_bytes must not be negative.');
  const maxBytes = Math.min(request.maxBytes || FETCH_BYTES_DEFAULT, deps.requestBytesMax);
  const deadline = performance.now() + maxWaitMs;
  for (;;) {
    const round = await fetchRound(deps, request, maxBytes);
    const remainingMs = deadline - performance.now();
    if (round.failed || round.bytes >= Math.max(request.minBytes, 1) || remainingMs <= 0 || signal.cancelled) {
      countFetched(deps, round.response);
      return round.response;
    }
    await deps.purgatory.wait(round.partitions, Math.ceil(remainingMs), signal);
    if (signal.cancelled || performance.now() >= deadline) {
      const last = await fetchRound(deps, request, maxBytes);
      countFetched(deps, last.response);
      return last.response;
    }
  }
}

/**
 * One pass over the request's partitions, in order. Reads the tail cache cannot serve go to the
 * thread pool and are awaited one after another, so the response's byte budget is spent in
 * partition order as Kafka spends it.
 */
async function fetchRound(deps: KafkaServiceDeps, request: FetchRequest__Output, maxBytes: number): Promise<FetchRound> {
  let bytes = 0;
  let failed = false;
  const partitions: Partition[] = [];
  const responses: FetchableTopicResponse[] = [];
  for (const fetchTopic of request.topics) {
    const answered: FetchPartitionData[] = [];
    responses.push({ topic: fetchTopic.topic, partitions: answered });
    for (const wanted of fetchTopic.partitions) {
      const partition = deps.replicas.findPartition(fetchTopic.topic, wanted.partition);
      try {
        if (!partition) throw new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `This server does not host ${fetchTopic.topic}-${wanted.partition}.`);
        partition.checkLeaderEpoch(wanted.currentLeaderEpoch);
        const preferred = preferredReadReplica(deps, partition, request.rackId, wanted.fetchOffset);
        if (preferred >= 0) {
          answered.push({ ...fetchedPartition(partition, wanted.partition, EMPTY), preferredReadReplica: preferred });
          continue;
        }
        partitions.push(partition);
        const partitionMaxBytes = wanted.partitionMaxBytes > 0 ? wanted.partitionMaxBytes : FETCH_PARTITION_BYTES_DEFAULT;
        // Kafka's rule: once the response is full, later partitions return no records, but the
        // first partition with data returns at least one whole batch whatever its size.
        const limit = Math.min(partitionMaxBytes, maxBytes - bytes);
        const read = bytes >= maxBytes ? EMPTY : partition.isLeader ? partition.read(wanted.fetchOffset, limit) : readFromFollower(deps, partition, wanted.fetchOffset, limit);
        const records = read instanceof Promise ? await read : read;
        bytes += records.length;
        answered.push(fetchedPartition(partition, wanted.partition, records));
      } catch (error) {
        failed = true;
        const riffleError = withheldOutOfRange(deps, toRiffleError(error), fetchTopic.topic, wanted.partition, wanted.fetchOffset);
        if (riffleError.errorName === 'UNKNOWN_SERVER_ERROR') deps.logger.error({ err: error }, 'fetch failed');
        answered.push({
          partitionIndex: wanted.partition,
          errorCode: riffleError.code,
          errorMessage: riffleError.message,
          highWatermark: partition?.highWatermark ?? -1,
          lastStableOffset: partition?.highWatermark ?? -1,
          logStartOffset: partition?.logStartOffset ?? -1,
          preferredReadReplica: -1,
          records: EMPTY,
        });
      }
    }
  }
  return { response: { throttleTimeMs: 0, errorCode: 0, responses }, bytes, partitions, failed };
}

/**
 * KIP-392: a leader sends a consumer that names its AZ (rack) to an in-sync replica in that AZ,
 * so the bytes do not cross zones; -1 when the leader is in that AZ or no such replica is live.
 * As in Kafka, only to a replica whose log (as last reported) reaches the fetch offset: one that
 * is behind, or truncated after a leader change, would answer OFFSET_OUT_OF_RANGE.
 */
export function preferredReadReplica(deps: KafkaServiceDeps, partition: Partition, rack: string, fetchOffset: number): number {
  if (!rack || !partition.isLeader) return -1;
  const image = deps.cluster.image();
  if (image.broker(deps.cluster.selfId)?.rack === rack) return -1;
  const candidate = partition.isr.find(
    (id) => id !== deps.cluster.selfId && image.isActiveBroker(id) && image.broker(id)?.rack === rack && (partition.recordedFollowerEnd(id) ?? -1) >= fetchOffset,
  );
  return candidate ?? -1;
}

/** A follower in the ISR serves consumers below its own high watermark (KIP-392). */
function readFromFollower(deps: KafkaServiceDeps, partition: Partition, fetchOffset: number, maxBytes: number): Buffer | Promise<Buffer> {
  if (!partition.isr.includes(deps.cluster.selfId)) partition.requireLeader();
  return partition.readAsFollower(fetchOffset, maxBytes);
}

function fetchedPartition(partition: Partition, index: number, records: Buffer): FetchPartitionData {
  return {
    partitionIndex: index,
    errorCode: 0,
    highWatermark: partition.highWatermark,
    lastStableOffset: partition.highWatermark,
    logStartOffset: partition.logStartOffset,
    preferredReadReplica: -1,
    records,
  };
}

function countFetched(deps: KafkaServiceDeps, response: FetchResponse): void {
  for (const topic of response.responses ?? []) {
    let bytes = 0;
    for (const partition of topic.partitions ?? []) bytes += (partition.records as Buffer | undefined)?.length ?? 0;
    if (bytes > 0) deps.metrics.fetchedBytes.inc({ topic: topic.topic ?? '' }, bytes);
  }
}

function listOffsets(deps: KafkaServiceDeps, request: ListOffsetsRequest__Output): ListOffsetsResponse {
  return {
    topics: request.topics.map((topic) => ({
      name: topic.name,
      partitions: topic.partitions.map((wanted): ListOffsetsPartitionResponse => {
        try {
          const partition = deps.replicas.partition(topic.name, wanted.partitionIndex);
          partition.checkLeaderEpoch(wanted.currentLeaderEpoch);
          return { partitionIndex: wanted.partitionIndex, errorCode: 0, leaderEpoch: partition.leaderEpoch, ...offsetFor(partition, wanted.timestamp) };
        } catch (error) {
          const riffleError = toRiffleError(error);
          return { partitionIndex: wanted.partitionIndex, errorCode: riffleError.code, errorMessage: riffleError.message, timestamp: -1, offset: -1, leaderEpoch: -1 };
        }
      }),
    })),
  };
}

function offsetFor(partition: Partition, timestamp: number): { timestamp: number; offset: number } {
  if (timestamp !== EARLIEST_TIMESTAMP && !partition.highWatermarkSettled) {
    throw new RiffleError('OFFSET_NOT_AVAILABLE', `${partition.topic}-${partition.index} has a new leader whose high watermark has not yet caught up; retry shortly.`);
  }
  if (timestamp === LATEST_TIMESTAMP) return { timestamp: -1, offset: partition.highWatermark };
  if (timestamp === EARLIEST_TIMESTAMP) return { timestamp: -1, offset: partition.logStartOffset };
  if (timestamp < 0) throw new RiffleError('INVALID_REQUEST', `timestamp must be -1 (latest), -2 (earliest) or a time in ms, got ${timestamp}.`);
  const found = partition.log.offsetForTimestamp(timestamp);
  if (!found || found.offset >= partition.highWatermark) return { timestamp: -1, offset: -1 };
  return found;
}

const EMPTY = Buffer.alloc(0);
