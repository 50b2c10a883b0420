// The active controller's decisions (KRaft's QuorumController, ClusterControlManager and
// ReplicationControlManager in one class). Every controller, active or standby, replays every
// committed metadata batch in order (replay, loadSnapshot) and so holds the same image. Only the
// active one answers requests: it validates a request against its image, appends the records
// that carry it out to the metadata log, and answers once they are committed and applied.
// Mutations run one at a time, so each is validated against an image that includes every
// earlier append. Broker sessions (last heartbeat) live in memory on the active controller only:
// a newly active controller gives every broker a fresh session, as Kafka does.
//
// Broker lifecycle: RegisterBroker -> fenced; caught up (its metadata offset has reached its own
// registration offset) -> active; want_shutdown -> controlled_shutdown (leaderships moved away,
// ISRs shrunk) -> told should_shut_down once it leads nothing and has seen that; session expiry
// (from active or controlled_shutdown) -> fenced, with its partitions' leaders re-elected from
// their ISRs. A new incarnation of a node id re-registers fenced with a new, larger epoch.
import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import type { Long } from '@grpc/proto-loader';
import { RiffleError } from '../src/rpc/errors.js';
import { AssertionError, assert } from '../src/util/assert.js';
import type { Clock } from '../src/util/clock.js';
import type { Logger } from '../src/util/logger.js';
import type { Registry } from '../src/metrics/index.js';
import type { MetadataRecord } from '../src/rpc/generated/riffle/internal/MetadataRecord.js';
import type { MetadataSnapshot } from '../src/rpc/generated/riffle/internal/MetadataSnapshot.js';
import type { RegisterBrokerRequest } from '../src/rpc/generated/riffle/internal/RegisterBrokerRequest.js';
import type { RegisterBrokerResponse__Output } from '../src/rpc/generated/riffle/internal/RegisterBrokerResponse.js';
import type { BrokerHeartbeatRequest } from '../src/rpc/generated/riffle/internal/BrokerHeartbeatRequest.js';
import type { BrokerHeartbeatResponse__Output } from '../src/rpc/generated/riffle/internal/BrokerHeartbeatResponse.js';
import type { AlterPartitionRequest } from '../src/rpc/generated/riffle/internal/AlterPartitionRequest.js';
import type { AlterPartitionResponse__Output } from '../src/rpc/generated/riffle/internal/AlterPartitionResponse.js';
import type { AllocateProducerIdsRequest } from '../src/rpc/generated/riffle/internal/AllocateProducerIdsRequest.js';
import type { AllocateProducerIdsResponse__Output } from '../src/rpc/generated/riffle/internal/AllocateProducerIdsResponse.js';
import type { CreateTopicsRequest } from '../src/rpc/generated/riffle/v1/CreateTopicsRequest.js';
import type { CreateTopicsResponse__Output } from '../src/rpc/generated/riffle/v1/CreateTopicsResponse.js';
import type { CreatableTopic } from '../src/rpc/generated/riffle/v1/CreatableTopic.js';
import type { CreatableTopicResult__Output } from '../src/rpc/generated/riffle/v1/CreatableTopicResult.js';
import type { DeleteTopicsRequest } from '../src/rpc/generated/riffle/v1/DeleteTopicsRequest.js';
import type { DeleteTopicsResponse__Output } from '../src/rpc/generated/riffle/v1/DeleteTopicsResponse.js';
import type { CreatePartitionsRequest } from '../src/rpc/generated/riffle/v1/CreatePartitionsRequest.js';
import type { CreatePartitionsResponse__Output } from '../src/rpc/generated/riffle/v1/CreatePartitionsResponse.js';
import type { IncrementalAlterConfigsRequest } from '../src/rpc/generated/riffle/v1/IncrementalAlterConfigsRequest.js';
import type { IncrementalAlterConfigsResponse__Output } from '../src/rpc/generated/riffle/v1/IncrementalAlterConfigsResponse.js';
import { BatchBuilder } from './batch-builder.js';
import { resolveControllerConfig, type ControllerConfig } from './controller-config.js';
import { ControllerMetrics } from './controller-metrics.js';
import { MetadataImage, partitionRecordOf } from './metadata-image.js';
import { NO_LEADER, type BrokerInfo, type PartitionInfo } from './metadata-types.js';
import { changeTo, electIfLeaderless, electLeader, electPreferred, removeReplica } from './partition-changes.js';
import { planAlterConfigs, planCreatePartitions, planCreateTopic, planDeleteTopic } from './topic-requests.js';
import type { AlterStreamRequest } from '../src/rpc/generated/riffle/internal/AlterStreamRequest.js';
import type { AlterStreamResponse__Output } from '../src/rpc/generated/riffle/internal/AlterStreamResponse.js';
import { consumerArnOf, streamArnOf } from '../src/util/kinesis.js';
import {
  openShardsOf, planCreateStream, planDeleteStream, planDeregisterConsumer, planMergeShards, planRegisterConsumer, planRetention,
  planSplitShard, planStreamLimits, planStreamMode, planUpdateShardCount, type StreamContext,
} from './stream-requests.js';

/**
 * The metadata log as the controller sees it (the Raft driver implements it; tests use a fake).
 * `append` resolves with the batch's offset once it is committed AND replayed into this
 * controller (replay() has been called for it). It may reject with the outcome unknown (a
 * timeout: the batch may still commit later); the controller then appends a barrier batch before
 * deciding anything else, so no decision is validated against an image missing that batch.
 * `isActive` is true only while this node leads and has replayed everything committed before its
 * term began.
 */
export interface MetadataLog {
  append(records: MetadataRecord[]): Promise<number>;
  isActive(): boolean;
  /** The active controller's address (host:port) for NOT_CONTROLLER answers, when known. */
  leaderHint?(): string | undefined;
  /**
   * The controller this one followed before it became active, and how long ago it last heard
   * from it; null when it followed none.
   */
  previousLeaderContact?(): { nodeId: number; msAgo: number } | null;
}

export interface QuorumControllerOptions {
  readonly log: MetadataLog;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly config?: Partial<ControllerConfig>;
  /** Where to register the controller's metrics; none when absent. */
  readonly registry?: Registry;
  /** Random bytes for cluster ids, secrets, topic ids and placement; crypto's by default. */
  readonly randomBytes?: (size: number) => Uint8Array;
}

/** Mutations waiting for their turn; beyond this, requests are refused rather than queued. */
export const MUTATIONS_QUEUED_MAX = 10_000;
/** Partition changes (leader elections, batched ISR changes) per metadata batch, so one batch stays a modest Raft entry. */
export const PARTITION_CHANGES_PER_BATCH_MAX = 1_000;
/** Topics (or resources) in one admin request. */
export const ADMIN_ITEMS_PER_REQUEST_MAX = 1_000;
const CLUSTER_ID_BYTES = 16;
const CLUSTER_SECRET_BYTES = 32;
const TOPIC_ID_BYTES = 16;
const NODE_ID_MAX = 2 ** 31 - 1;
/** The internal topic of consumer group offsets and state (broker/groups). */
export const OFFSETS_TOPIC = '__consumer_offsets';
/**
 * Its topic configs: compacted (the coordinator replays it on takeover, so only the latest record
 * per key matters), smaller segments than data topics so closed segments get compacted early,
 * and no time retention (group offsets expire by the coordinator's own rule, not by age).
 */
export const OFFSETS_TOPIC_CONFIGS: Readonly<Record<string, string>> = Object.freeze({
  'cleanup.policy': 'compact',
  'segment.bytes': String(16 * 1024 * 1024),
  'retention.ms': '-1',
});

/** A gap between two active ticks up to this is normal scheduling, beyond it a stall of ours. */
export const TICK_GAP_ALLOWED_MS = 1_000;

interface PendingAlterPartition {
  readonly request: AlterPartitionRequest;
  readonly resolve: (response: AlterPartitionResponse__Output) => void;
  readonly reject: (error: unknown) => void;
}

interface BrokerSession {
  epoch: number;
  lastContactMs: number;
  /** The metadata offset of the last heartbeat; -1 before the first. */
  metadataOffset: number;
  /** The offset of the batch that began the broker's controlled shutdown, once known. */
  shutdownOffset: number | null;
  /**
   * Heartbeats received and not answered yet (queued behind other mutations here). A broker
   * sends its next heartbeat only after an answer, so while one waits in this controller's queue
   * the broker is alive however long the wait: its session does not expire meanwhile.
   */
  pendingHeartbeats: number;
}

export class QuorumController {
  readonly config: ControllerConfig;
  private current = MetadataImage.EMPTY;
  private readonly sessions = new Map<number, BrokerSession>();
  private queue: Promise<unknown> = Promise.resolve();
  private queued = 0;
  /** AlterPartition requests waiting for the next batch, and whether one is in the queue. */
  private alterQueue: PendingAlterPartition[] = [];
  private alterScheduled = false;
  private wasActive = false;
  /** The broker sharing a process with the controller this one replaced, and its last sign of life. */
  private inheritedContact: { nodeId: number; lastContactMs: number } | null = null;
  private tickRunning = false;
  private lastPreferredCheckMs = 0;
  /** When the last active tick ran; -1 before the first. */
  private lastTickMs = -1;
  /** An append failed: it may still commit, so the next mutation first waits behind a barrier. */
  private appendOutcomeUnknown = false;
  /** The id this controller bootstraps with; reused on retry so a late commit is harmless. */
  private bootstrapClusterId: string | null = null;
  /** When this controller first saw an active broker (for the offsets topic's creation). */
  private firstActiveBrokerSeenMs: number | undefined;
  private readonly metrics?: ControllerMetrics;
  private readonly randomBytes: (size: number) => Uint8Array;

  constructor(private readonly options: QuorumControllerOptions) {
    this.config = resolveControllerConfig(options.config);
    this.randomBytes = options.randomBytes ?? ((size) => cryptoRandomBytes(size));
    if (options.registry) {
      this.metrics = new ControllerMetrics(options.registry, {
        image: () => this.current, isActive: () => this.isActive(), brokerMetadataLags: () => this.brokerMetadataLags(),
      });
    }
  }

  /** The image of every batch replayed so far. */
  get image(): MetadataImage {
    return this.current;
  }

  isActive(): boolean {
    return this.options.log.isActive();
  }

  /** Applies one committed batch; called for every batch, in order, on every controller. */
  replay(offset: number, records: readonly MetadataRecord[]): void {
    this.current = this.current.apply(offset, records);
  }

  /** Replaces the image with a snapshot's (at start-up, or when Raft installs a snapshot). */
  loadSnapshot(snapshot: MetadataSnapshot | MetadataImage): void {
    const image = snapshot instanceof MetadataImage ? snapshot : MetadataImage.fromSnapshot(snapshot);
    assert(image.offset >= this.current.offset, () => `snapshot at ${image.offset} behind the image at ${this.current.offset}`);
    this.current = image;
  }

  // ---- brokers ----

  registerBroker(request: RegisterBrokerRequest): Promise<RegisterBrokerResponse__Output> {
    return this.handle('RegisterBroker', () => {
      const nodeId = request.nodeId ?? -1;
      if (!Number.isInteger(nodeId) || nodeId < 0 || nodeId > NODE_ID_MAX) throw new RiffleError('INVALID_REQUEST', `Invalid node id ${nodeId}.`);
      if (!request.incarnationId) throw new RiffleError('INVALID_REQUEST', 'RegisterBroker without an incarnation id.');
      return this.serialize(() => this.register(nodeId, request));
    });
  }

  private async register(nodeId: number, request: RegisterBrokerRequest): Promise<RegisterBrokerResponse__Output> {
    await this.bootstrapIfNeeded();
    const clusterId = this.current.cluster!.clusterId;
    if (request.clusterId && request.clusterId !== clusterId) {
      throw new RiffleError('INVALID_REQUEST', `Broker ${nodeId} belongs to cluster ${request.clusterId}, this is cluster ${clusterId}.`);
    }
    const existing = this.current.broker(nodeId);
    if (existing && existing.incarnationId === request.incarnationId) {
      // A retried registration of the same process: same epoch, nothing to write.
      return { brokerEpoch: existing.epoch, clusterId };
    }
    const batch = new BatchBuilder(this.current);
    batch.add({
      registerBroker: {
        nodeId, incarnationId: request.incarnationId, brokerEpoch: 0, rack: request.rack ?? '', listener: request.listener ?? null,
        http: request.http ?? null, roles: request.roles ?? [], fenced: true,
      },
    });
    // A new incarnation lost whatever the old one had in memory: it leads nothing and is in no ISR.
    this.addRemovals(batch, nodeId);
    const epoch = await this.commit(batch.records);
    assert(this.current.broker(nodeId)?.epoch === epoch, () => `broker ${nodeId} registered at ${epoch}`);
    this.sessions.set(nodeId, { epoch, lastContactMs: this.nowMs(), metadataOffset: -1, shutdownOffset: null, pendingHeartbeats: 0 });
    this.options.logger.info(`broker ${nodeId} registered at epoch ${epoch} in rack '${request.rack ?? ''}'`);
    return { brokerEpoch: epoch, clusterId };
  }

  brokerHeartbeat(request: BrokerHeartbeatRequest): Promise<BrokerHeartbeatResponse__Output> {
    return this.handle('BrokerHeartbeat', () => {
      const nodeId = request.nodeId ?? -1;
      const epoch = requestInt64(request.brokerEpoch, 'broker epoch');
      const metadataOffset = requestInt64(request.metadataOffset, 'metadata offset');
      this.brokerWithEpoch(nodeId, epoch);
      // Contact counts on arrival, and the session holds while the heartbeat waits for its turn
      // (the chaos suite saw a controller whose queue was held up for seconds fence every broker,
      // each of them waiting for the answer to a heartbeat it had sent in time).
      const session = this.recordContact(nodeId, epoch, metadataOffset);
      session.pendingHeartbeats++;
      return this.serialize(() => this.heartbeat(nodeId, epoch, metadataOffset, request.wantShutdown ?? false)).finally(() => {
        session.pendingHeartbeats--;
        session.lastContactMs = Math.max(session.lastContactMs, this.nowMs());
      });
    });
  }

  private async heartbeat(nodeId: number, epoch: number, metadataOffset: number, wantShutdown: boolean): Promise<BrokerHeartbeatResponse__Output> {
    const broker = this.brokerWithEpoch(nodeId, epoch);
    // Kafka's rule: caught up once the broker has applied its own registration record.
    const isCaughtUp = metadataOffset >= broker.epoch;
    if (broker.state === 'fenced') {
      if (wantShutdown) return { isCaughtUp, isFenced: true, shouldShutDown: true, ...this.standingTerms() };
      if (isCaughtUp) await this.unfence(broker);
    } else if (wantShutdown) {
      await this.moveLeadershipsAway(broker);
    }
    const after = this.current.broker(nodeId)!;
    return { isCaughtUp, isFenced: after.state === 'fenced', shouldShutDown: this.shutdownComplete(after, metadataOffset), ...this.standingTerms() };
  }

  /** What a heartbeat's answer grants: a session timeout's standing once the broker has this image. */
  private standingTerms(): { sessionTimeoutMs: number; metadataOffset: number } {
    return { sessionTimeoutMs: this.config.sessionTimeoutMs, metadataOffset: this.current.offset };
  }

  private async unfence(broker: BrokerInfo): Promise<void> {
    const batch = new BatchBuilder(this.current);
    batch.add({ brokerState: { nodeId: broker.nodeId, brokerEpoch: broker.epoch, state: 'active' } });
    // Partitions whose last ISR member was this broker can have a leader again.
    const image = batch.image;
    for (const partition of image.offline()) {
      const change = partition.isr.includes(broker.nodeId) ? electIfLeaderless(partition, (id) => image.isActiveBroker(id)) : null;
      if (change) batch.add({ partitionChange: change });
    }
    await this.commit(batch.records);
    this.options.logger.info(`broker ${broker.nodeId} unfenced at epoch ${broker.epoch}`);
  }

  /** Controlled shutdown: leaderships move to other ISR members and the broker leaves every ISR. */
  private async moveLeadershipsAway(broker: BrokerInfo): Promise<void> {
    const batch = new BatchBuilder(this.current);
    if (broker.state === 'active') {
      batch.add({ brokerState: { nodeId: broker.nodeId, brokerEpoch: broker.epoch, state: 'controlled_shutdown' } });
    }
    this.addRemovals(batch, broker.nodeId);
    if (batch.size === 0) return;
    const offset = await this.commit(batch.records);
    const session = this.sessions.get(broker.nodeId);
    if (session) session.shutdownOffset = offset;
    this.options.logger.info(`broker ${broker.nodeId} in controlled shutdown at epoch ${broker.epoch}, ${batch.size - 1} partition changes`);
  }

  /** Shutdown may proceed once the broker leads nothing and has applied the batch that said so. */
  private shutdownComplete(broker: BrokerInfo, metadataOffset: number): boolean {
    if (broker.state !== 'controlled_shutdown') return false;
    if (this.current.partitionsLedBy(broker.nodeId).length > 0) return false;
    const session = this.sessionOf(broker);
    // After a controller failover the offset that began the shutdown is unknown: use today's.
    session.shutdownOffset ??= this.current.offset;
    return metadataOffset >= session.shutdownOffset;
  }

  private async fence(broker: BrokerInfo, reason: string): Promise<void> {
    const batch = new BatchBuilder(this.current);
    batch.add({ brokerState: { nodeId: broker.nodeId, brokerEpoch: broker.epoch, state: 'fenced' } });
    this.addRemovals(batch, broker.nodeId);
    await this.commit(batch.records);
    this.options.logger.info(`broker ${broker.nodeId} fenced at epoch ${broker.epoch} (${reason}), ${batch.size - 1} partition changes`);
  }

  /** Adds the changes that take `nodeId` out of every leadership and ISR, given the batch so far. */
  private addRemovals(batch: BatchBuilder, nodeId: number): void {
    const image = batch.image;
    const eligible = (id: number): boolean => id !== nodeId && image.isActiveBroker(id);
    const changes: MetadataRecord[] = [];
    for (const partition of image.allPartitions()) {
      const change = removeReplica(partition, nodeId, eligible);
      if (change) changes.push({ partitionChange: change });
    }
    for (const change of changes) batch.add(change);
  }

  allocateProducerIds(request: AllocateProducerIdsRequest): Promise<AllocateProducerIdsResponse__Output> {
    return this.handle('AllocateProducerIds', () => {
      const nodeId = request.brokerId ?? -1;
      const epoch = requestInt64(request.brokerEpoch, 'broker epoch');
      this.brokerWithEpoch(nodeId, epoch);
      return this.serialize(async () => {
        this.brokerWithEpoch(nodeId, epoch);
        const first = this.current.nextProducerId;
        const size = this.config.producerIdBlockSize;
        assert(Number.isSafeInteger(first + size), () => `producer ids exhausted at ${first}`);
        await this.commit([{ producerIds: { nodeId, brokerEpoch: epoch, firstProducerId: first, size } }]);
        return { firstProducerId: first, size };
      });
    });
  }

  // ---- partitions ----

  /**
   * AlterPartition requests are answered in batches: every request waiting when the queue reaches
   * them is validated in arrival order and all their changes go into one metadata batch (like
   * Kafka's AlterPartition, which carries many partitions per request). A restarted broker's
   * return to a thousand ISRs is then a few commits, not a thousand, and heartbeats and ticks do
   * not wait behind them.
   */
  alterPartition(request: AlterPartitionRequest): Promise<AlterPartitionResponse__Output> {
    return this.handle('AlterPartition', () => new Promise<AlterPartitionResponse__Output>((resolve, reject) => {
      if (this.alterQueue.length >= MUTATIONS_QUEUED_MAX) {
        reject(new RiffleError('THROTTLING_QUOTA_EXCEEDED', `${this.alterQueue.length} AlterPartition requests are queued.`));
        return;
      }
      this.alterQueue.push({ request, resolve, reject });
      if (!this.alterScheduled) this.scheduleAlterPartitions();
    }));
  }

  private scheduleAlterPartitions(): void {
    this.alterScheduled = true;
    let batch: PendingAlterPartition[] | undefined;
    this.serialize(async () => {
      this.alterScheduled = false;
      batch = this.takeAlterPartitionBatch();
      if (this.alterQueue.length > 0) this.scheduleAlterPartitions();
      await this.alterPartitions(batch);
    }).catch((error: unknown) => {
      // Refused before the batch was taken (not the controller, queue full): so is every waiting
      // request. Otherwise the requests of the batch not answered yet fail with the error.
      if (!batch) {
        this.alterScheduled = false;
        batch = this.alterQueue.splice(0);
      }
      for (const pending of batch) pending.reject(error);
    });
  }

  /** Waiting requests in order, at most one per partition (a second one waits for the next batch). */
  private takeAlterPartitionBatch(): PendingAlterPartition[] {
    const batch: PendingAlterPartition[] = [];
    const later: PendingAlterPartition[] = [];
    const partitions = new Set<string>();
    for (const pending of this.alterQueue) {
      const key = `${pending.request.topicId}:${pending.request.partition}`;
      if (partitions.has(key) || batch.length >= PARTITION_CHANGES_PER_BATCH_MAX) later.push(pending);
      else {
        partitions.add(key);
        batch.push(pending);
      }
    }
    this.alterQueue = later;
    return batch;
  }

  private async alterPartitions(batch: readonly PendingAlterPartition[]): Promise<void> {
    const changed: PendingAlterPartition[] = [];
    const records: MetadataRecord[] = [];
    for (const pending of batch) {
      const { request } = pending;
      try {
        const change = this.validateAlterPartition(request);
        if (change) {
          records.push({ partitionChange: change });
          changed.push(pending);
        } else {
          pending.resolve(this.partitionAnswer(request));
        }
      } catch (error) {
        if (!(error instanceof RiffleError) || error.errorName === 'NOT_CONTROLLER') pending.reject(error);
        // A refusal: nothing was written, and the answer says where the partition stands.
        else pending.resolve(this.partitionAnswer(request, error));
      }
    }
    if (records.length === 0) return;
    // A failed commit is an error of the calls, not an answer: the changes may still commit, so
    // their leaders keep them pending and ask again (the caller rejects what is unanswered).
    await this.commit(records);
    for (const { request, resolve } of changed) resolve(this.partitionAnswer(request));
  }

  /** An AlterPartition answer: the error (none: success) and the partition as it stands now. */
  private partitionAnswer(request: AlterPartitionRequest, error?: RiffleError): AlterPartitionResponse__Output {
    const current = this.current.partition(request.topicId ?? '', request.partition ?? -1);
    return { errorCode: error?.code ?? 0, errorMessage: error?.message ?? '', partition: current ? partitionRecordOf(current) : null };
  }

  /** Kafka's AlterPartition checks, in Kafka's order; returns the change, or null for none. */
  private validateAlterPartition(request: AlterPartitionRequest): ReturnType<typeof changeTo> {
    const brokerId = request.brokerId ?? -1;
    this.brokerWithEpoch(brokerId, requestInt64(request.brokerEpoch, 'broker epoch'));
    const partition = this.current.partition(request.topicId ?? '', request.partition ?? -1);
    if (!partition) throw new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `Unknown partition ${request.topicId}-${request.partition}.`);
    if (partition.leader !== brokerId) throw new RiffleError('NOT_LEADER_OR_FOLLOWER', `Broker ${brokerId} does not lead ${partitionName(partition)}.`);
    const leaderEpoch = request.leaderEpoch ?? -1;
    if (leaderEpoch < partition.leaderEpoch) throw new RiffleError('FENCED_LEADER_EPOCH', `Leader epoch ${leaderEpoch} < ${partition.leaderEpoch}.`);
    if (leaderEpoch > partition.leaderEpoch) throw new RiffleError('UNKNOWN_LEADER_EPOCH', `Leader epoch ${leaderEpoch} > ${partition.leaderEpoch}.`);
    if (request.partitionEpoch !== partition.partitionEpoch) {
      throw new RiffleError('INVALID_UPDATE_VERSION', `Partition epoch ${request.partitionEpoch}, current ${partition.partitionEpoch}.`);
    }
    const withEpochs = request.newIsrWithEpochs ?? [];
    if (withEpochs.length > 0 && (request.newIsr ?? []).length > 0) throw new RiffleError('INVALID_REQUEST', 'AlterPartition gives both new_isr and new_isr_with_epochs.');
    const isr = withEpochs.length > 0 ? withEpochs.map((member) => member.brokerId ?? -1) : request.newIsr ?? [];
    if (isr.length > 0 && !isr.includes(brokerId)) return this.resignation(partition, brokerId, isr);
    const valid = isr.length > 0 && new Set(isr).size === isr.length && isr.includes(brokerId) && isr.every((id) => partition.replicas.includes(id));
    if (!valid) throw new RiffleError('INVALID_REQUEST', `ISR [${isr}] must be distinct replicas of [${partition.replicas}] including the leader.`);
    // KIP-841: a fenced or shutting-down broker may not join an ISR.
    const ineligible = isr.filter((id) => !partition.isr.includes(id) && !this.current.isActiveBroker(id));
    if (ineligible.length > 0) throw new RiffleError('INELIGIBLE_REPLICA', `Replicas [${ineligible}] are fenced or shutting down.`);
    // KIP-903: nor one whose fetches came from an earlier registration (it restarted since, and
    // may have lost what that process had).
    const stale = withEpochs.filter((member) => {
      const epoch = requestInt64(member.brokerEpoch ?? -1, 'broker epoch');
      return epoch >= 0 && this.current.broker(member.brokerId ?? -1)?.epoch !== epoch;
    });
    if (stale.length > 0) {
      const described = stale.map((member) => `${member.brokerId} at epoch ${member.brokerEpoch} (registered at ${this.current.broker(member.brokerId ?? -1)?.epoch ?? 'none'})`);
      throw new RiffleError('INELIGIBLE_REPLICA', `Replicas [${described.join(', ')}] fetched under an earlier registration.`);
    }
    return changeTo(partition, { leader: partition.leader, isr });
  }

  /**
   * A departure from Kafka: a leader whose own copy holds a corrupt batch proposes an ISR without
   * itself. Only members of the current ISR may remain, and one of them must be eligible to lead;
   * the controller elects it (a new leader epoch) and the old leader repairs as a follower.
   */
  private resignation(partition: PartitionInfo, brokerId: number, isr: readonly number[]): ReturnType<typeof changeTo> {
    const valid = new Set(isr).size === isr.length && isr.every((id) => partition.isr.includes(id));
    if (!valid) throw new RiffleError('INVALID_REQUEST', `A resigning leader's ISR [${isr}] must be distinct members of the ISR [${partition.isr}].`);
    const leader = electLeader(partition.replicas, isr, (id) => id !== brokerId && this.current.isActiveBroker(id));
    if (leader === NO_LEADER) throw new RiffleError('INELIGIBLE_REPLICA', `No member of [${isr}] can lead ${partitionName(partition)}.`);
    return changeTo(partition, { leader, isr });
  }

  // ---- periodic work ----

  /**
   * Called periodically (every ~100-250 ms) on every controller: on the active one it fences
   * brokers whose session expired, elects leaders for leaderless partitions and, every
   * preferredLeaderCheckIntervalMs, moves leaders back to preferred replicas.
   */
  async tick(): Promise<void> {
    if (!this.isActive()) {
      if (this.wasActive) this.options.logger.info(`controller became standby at offset ${this.current.offset}`);
      this.wasActive = false;
      this.sessions.clear();
      return;
    }
    if (this.tickRunning) return;
    this.tickRunning = true;
    try {
      await this.serialize(() => this.tickActive());
    } catch (error) {
      // A lost leadership or a slow commit is retried by the next tick; anything else is a bug.
      if (!(error instanceof RiffleError)) throw error;
      if (error.errorName !== 'NOT_CONTROLLER') this.options.logger.warn({ err: error }, 'controller tick failed');
    } finally {
      this.tickRunning = false;
    }
  }

  private async tickActive(): Promise<void> {
    const now = this.nowMs();
    if (!this.wasActive) {
      this.wasActive = true;
      this.sessions.clear();
      this.inheritedContact = this.previousLeaderContact(now);
      this.lastTickMs = -1;
      this.lastPreferredCheckMs = now;
      this.options.logger.info(`controller became active at offset ${this.current.offset}`);
    }
    await this.bootstrapIfNeeded();
    await this.createOffsetsTopicIfDue(now);
    this.discountOwnStall(now);
    for (const broker of this.current.liveBrokers()) {
      const session = this.sessionOf(broker);
      if (now - session.lastContactMs > this.config.sessionTimeoutMs) await this.fence(broker, 'session expired');
    }
    await this.commitChanges((image) => image.offline().map((p) => electIfLeaderless(p, (id) => image.isActiveBroker(id))));
    if (now - this.lastPreferredCheckMs >= this.config.preferredLeaderCheckIntervalMs) {
      this.lastPreferredCheckMs = now;
      await this.electPreferredLeaders();
    }
  }

  /**
   * Ticks come every CONTROLLER_TICK_MS or so. A longer gap means this controller could not run
   * (its process stalled, or its queue was held): brokers were not heard meanwhile through no
   * fault of theirs, so the gap beyond TICK_GAP_ALLOWED_MS does not count against their sessions.
   * The chaos suite saw a stalled controller wake up and fence every broker, its own included,
   * before it read the heartbeats waiting on its sockets.
   */
  private discountOwnStall(now: number): void {
    const stalledMs = this.lastTickMs < 0 ? 0 : now - this.lastTickMs - TICK_GAP_ALLOWED_MS;
    this.lastTickMs = now;
    if (stalledMs <= 0) return;
    for (const session of this.sessions.values()) session.lastContactMs = Math.min(now, session.lastContactMs + stalledMs);
    this.options.logger.warn(`controller did not run for ${stalledMs + TICK_GAP_ALLOWED_MS} ms; broker sessions extended by ${stalledMs} ms`);
  }

  /** Moves leadership back to every preferred replica that is active and in its ISR. */
  async electPreferredLeaders(): Promise<number> {
    return this.commitChanges((image) => [...image.allPartitions()].map((p) => electPreferred(p, (id) => image.isActiveBroker(id))));
  }

  /** Commits the non-null changes in batches of PARTITION_CHANGES_PER_BATCH_MAX; returns how many. */
  private async commitChanges(decide: (image: MetadataImage) => (ReturnType<typeof changeTo>)[]): Promise<number> {
    const changes = decide(this.current).filter((change) => change !== null);
    for (let start = 0; start < changes.length; start += PARTITION_CHANGES_PER_BATCH_MAX) {
      const chunk = changes.slice(start, start + PARTITION_CHANGES_PER_BATCH_MAX);
      await this.commit(chunk.map((change) => ({ partitionChange: change })));
    }
    if (changes.length > 0) this.options.logger.info(`controller elected ${changes.length} partition leaders`);
    return changes.length;
  }

  // ---- cluster bootstrap ----

  /** Writes the ClusterRecord of a new cluster (once, by the first active controller). */
  bootstrap(): Promise<void> {
    return this.handle('Bootstrap', () => this.serialize(() => this.bootstrapIfNeeded()));
  }

  private async bootstrapIfNeeded(): Promise<void> {
    if (this.current.cluster) return;
    const clusterId = (this.bootstrapClusterId ??= Buffer.from(this.randomBytes(CLUSTER_ID_BYTES)).toString('base64url'));
    const clusterSecret = Buffer.from(this.randomBytes(CLUSTER_SECRET_BYTES));
    await this.commit([{ cluster: { clusterId, clusterSecret, createdAtMs: this.options.clock.nowMs() } }]);
    this.options.logger.info(`cluster ${clusterId} bootstrapped`);
  }

  /**
   * Creates the internal __consumer_offsets topic once the cluster can hold it: as soon as the
   * active brokers reach its replication factor, or with the brokers there are (RF capped, like
   * every default) once offsetsTopicCreateWaitMs has passed since this controller first saw an
   * active broker. Kafka creates it on the first FindCoordinator instead; creating it up front
   * means the first consumer group does not wait for 50 partitions to be placed and elected.
   */
  private async createOffsetsTopicIfDue(nowMs: number): Promise<void> {
    if (this.config.offsetsTopicPartitions === 0 || this.current.topicByName(OFFSETS_TOPIC)) return;
    const active = this.current.activeBrokers().length;
    if (active === 0) return;
    this.firstActiveBrokerSeenMs ??= nowMs;
    const wanted = this.config.offsetsTopicReplicationFactor;
    if (active < wanted && nowMs - this.firstActiveBrokerSeenMs < this.config.offsetsTopicCreateWaitMs) return;
    const replicationFactor = Math.min(wanted, active);
    const topicId = Buffer.from(this.randomBytes(TOPIC_ID_BYTES)).toString('base64url');
    const plan = planCreateTopic(this.current, {
      name: OFFSETS_TOPIC, numPartitions: this.config.offsetsTopicPartitions, replicationFactor,
      configs: Object.entries(OFFSETS_TOPIC_CONFIGS).map(([name, value]) => ({ name, value })),
    }, this.config, { topicId, startIndex: this.randomIndex(), nowMs: this.options.clock.nowMs() });
    await this.commit(plan.records);
    this.options.logger.info(`topic ${OFFSETS_TOPIC} created with ${plan.partitions} partitions, replication factor ${plan.replicationFactor}`);
  }

  // ---- topics ----

  createTopics(request: CreateTopicsRequest): Promise<CreateTopicsResponse__Output> {
    return this.handle('CreateTopics', async () => {
      const topics = limitItems(request.topics ?? []);
      const duplicates = duplicatesOf(topics.map((topic) => topic.name ?? ''));
      const results: CreatableTopicResult__Output[] = [];
      for (const topic of topics) {
        const name = topic.name ?? '';
        const result = duplicates.has(name)
          ? itemError(new RiffleError('INVALID_REQUEST', `Topic '${name}' appears more than once in the request.`))
          : await perItem(() => this.serialize(() => this.createTopic(topic, request.validateOnly ?? false)));
        results.push({ name, topicId: '', numPartitions: -1, replicationFactor: -1, configs: [], ...result });
      }
      return { topics: results };
    });
  }

  private async createTopic(request: CreatableTopic, validateOnly: boolean): Promise<Partial<CreatableTopicResult__Output>> {
    const topicId = Buffer.from(this.randomBytes(TOPIC_ID_BYTES)).toString('base64url');
    const plan = planCreateTopic(this.current, request, this.config, { topicId, startIndex: this.randomIndex(), nowMs: this.options.clock.nowMs() });
    if (!validateOnly) {
      await this.commit(plan.records);
      this.options.logger.info(`topic ${plan.name} created with ${plan.partitions} partitions, replication factor ${plan.replicationFactor}`);
    }
    return {
      errorCode: 0, errorMessage: '', topicId: validateOnly ? '' : topicId, numPartitions: plan.partitions,
      replicationFactor: plan.replicationFactor, configs: Object.entries(plan.configs).map(([name, value]) => ({ name, value })),
    };
  }

  deleteTopics(request: DeleteTopicsRequest): Promise<DeleteTopicsResponse__Output> {
    return this.handle('DeleteTopics', async () => {
      const names = limitItems(request.topicNames ?? []);
      const duplicates = duplicatesOf(names);
      const responses = [];
      for (const name of names) {
        const result = duplicates.has(name)
          ? itemError(new RiffleError('INVALID_REQUEST', `Topic '${name}' appears more than once in the request.`))
          : await perItem(() => this.serialize(async () => {
            const { topic, record } = planDeleteTopic(this.current, name);
            await this.commit([record]);
            this.options.logger.info(`topic ${name} deleted`);
            return { topicId: topic.topicId };
          }));
        responses.push({ name, topicId: '', ...result });
      }
      return { responses };
    });
  }

  createPartitions(request: CreatePartitionsRequest): Promise<CreatePartitionsResponse__Output> {
    return this.handle('CreatePartitions', async () => {
      const topics = limitItems(request.topics ?? []);
      const duplicates = duplicatesOf(topics.map((topic) => topic.name ?? ''));
      const results = [];
      for (const topic of topics) {
        const name = topic.name ?? '';
        const result = duplicates.has(name)
          ? itemError(new RiffleError('INVALID_REQUEST', `Topic '${name}' appears more than once in the request.`))
          : await perItem(() => this.serialize(async () => {
            const records = planCreatePartitions(this.current, name, topic.count ?? 0, { startIndex: this.randomIndex(), nowMs: this.options.clock.nowMs() });
            if (!request.validateOnly) await this.commit(records);
            return {};
          }));
        results.push({ name, ...result });
      }
      return { results };
    });
  }

  incrementalAlterConfigs(request: IncrementalAlterConfigsRequest): Promise<IncrementalAlterConfigsResponse__Output> {
    return this.handle('IncrementalAlterConfigs', async () => {
      const responses = [];
      for (const resource of limitItems(request.resources ?? [])) {
        const result = await perItem(() => this.serialize(async () => {
          const records = planAlterConfigs(this.current, resource);
          if (!request.validateOnly && records.length > 0) await this.commit(records);
          return {};
        }));
        responses.push({ resourceType: resource.resourceType ?? '', resourceName: resource.resourceName ?? '', ...result });
      }
      return { responses };
    });
  }

  // ---- streams (Kinesis-like) ----

  /** One stream administration operation, committed as one metadata batch. */
  alterStream(request: AlterStreamRequest): Promise<AlterStreamResponse__Output> {
    return this.handle('AlterStream', () => this.serialize(async () => {
      const name = request.streamName ?? '';
      const previousOpen = this.current.topicByName(name)?.kind === 'stream' ? openShardsOf(this.current.topicByName(name)!).length : 0;
      const context: StreamContext = {
        topicId: Buffer.from(this.randomBytes(TOPIC_ID_BYTES)).toString('base64url'), startIndex: this.randomIndex(), nowMs: this.options.clock.nowMs(),
      };
      let consumerArn = '';
      const records = ((): MetadataRecord[] => {
        switch (request.operation) {
          case 'create': return planCreateStream(this.current, request, this.config, context);
          case 'delete': return planDeleteStream(this.current, request);
          case 'split': return planSplitShard(this.current, request, context);
          case 'merge': return planMergeShards(this.current, request, context);
          case 'update_shard_count': return planUpdateShardCount(this.current, request, context);
          case 'retention': return planRetention(this.current, request);
          case 'mode': return planStreamMode(this.current, request);
          case 'limits': return planStreamLimits(this.current, request);
          case 'register_consumer':
            consumerArn = consumerArnOf(streamArnOf(this.current.cluster?.clusterId ?? '', name), request.consumerName ?? '', context.nowMs);
            return planRegisterConsumer(this.current, request, consumerArn, context.nowMs);
          case 'deregister_consumer': return planDeregisterConsumer(this.current, request);
          default: throw new RiffleError('INVALID_ARGUMENT', `Unknown stream operation '${request.operation}'.`);
        }
      })();
      const offset = records.length > 0 ? await this.commit(records) : 0;
      if (records.length > 0) this.options.logger.info(`stream ${name}: ${request.operation} committed at offset ${offset} (${records.length} records)`);
      const topicId = this.current.topicByName(name)?.topicId ?? '';
      return { metadataOffset: offset, topicId, previousOpenShardCount: previousOpen, consumerArn };
    }));
  }

  // ---- plumbing ----

  /** Runs a request on the active controller, timing it; a standby answers NOT_CONTROLLER. */
  private async handle<T>(method: string, work: () => Promise<T>): Promise<T> {
    const startedMs = this.nowMs();
    try {
      this.requireActive();
      return await work();
    } catch (error) {
      // An append that failed because leadership was lost is NOT_CONTROLLER to the caller.
      if (error instanceof RiffleError || error instanceof AssertionError || this.isActive()) throw error;
      throw this.notController();
    } finally {
      this.metrics?.observeRequest(method, (this.nowMs() - startedMs) / 1000);
    }
  }

  /** Runs mutations one at a time, each against the image every earlier one produced. */
  private serialize<T>(work: () => Promise<T>): Promise<T> {
    if (this.queued >= MUTATIONS_QUEUED_MAX) {
      return Promise.reject(new RiffleError('THROTTLING_QUOTA_EXCEEDED', `${this.queued} controller mutations are queued.`));
    }
    this.queued += 1;
    const run = async (): Promise<T> => {
      try {
        this.requireActive();
        if (this.appendOutcomeUnknown) await this.barrier();
        return await work();
      } finally {
        this.queued -= 1;
      }
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Appends one batch and waits until it is committed and replayed here. */
  private async commit(records: MetadataRecord[]): Promise<number> {
    assert(records.length > 0, 'empty metadata batch');
    let offset: number;
    try {
      offset = await this.options.log.append(records);
    } catch (error) {
      this.appendOutcomeUnknown = true;
      throw error;
    }
    assert(this.current.offset >= offset, () => `append resolved at ${offset} before replay reached it (${this.current.offset})`);
    return offset;
  }

  /**
   * Waits until every earlier append has either committed (and been replayed) or been lost: the
   * log commits in order, so once a later batch commits, nothing earlier is still pending.
   */
  private async barrier(): Promise<void> {
    const cluster = this.current.cluster;
    // Before bootstrap the only possible pending batch is the ClusterRecord, which is retried as is.
    if (cluster) await this.commit([{ cluster: { clusterId: cluster.clusterId } }]);
    this.appendOutcomeUnknown = false;
  }

  private requireActive(): void {
    if (!this.isActive()) throw this.notController();
  }

  private notController(): RiffleError {
    return new RiffleError('NOT_CONTROLLER', undefined, { leaderHint: this.options.log.leaderHint?.() });
  }

  /** The broker if it is registered with exactly this epoch; STALE_BROKER_EPOCH otherwise. */
  private brokerWithEpoch(nodeId: number, epoch: number): BrokerInfo {
    const broker = this.current.broker(nodeId);
    if (!broker) throw new RiffleError('STALE_BROKER_EPOCH', `Broker ${nodeId} is not registered.`);
    if (broker.epoch !== epoch) throw new RiffleError('STALE_BROKER_EPOCH', `Broker ${nodeId} epoch ${epoch} is not the current ${broker.epoch}.`);
    return broker;
  }

  private recordContact(nodeId: number, epoch: number, metadataOffset: number): BrokerSession {
    const session = this.sessions.get(nodeId);
    if (session && session.epoch === epoch) {
      session.lastContactMs = this.nowMs();
      session.metadataOffset = Math.max(session.metadataOffset, metadataOffset);
      return session;
    }
    const fresh: BrokerSession = { epoch, lastContactMs: this.nowMs(), metadataOffset, shutdownOffset: null, pendingHeartbeats: 0 };
    this.sessions.set(nodeId, fresh);
    return fresh;
  }

  /**
   * The broker's session; a broker this controller has not heard from gets one starting now,
   * except the broker that shared a process with the controller this one replaced (see
   * previousLeaderContact).
   */
  private sessionOf(broker: BrokerInfo): BrokerSession {
    let session = this.sessions.get(broker.nodeId);
    if (!session || session.epoch !== broker.epoch) {
      const inherited = this.inheritedContact?.nodeId === broker.nodeId && broker.roles.includes('controller') ? this.inheritedContact.lastContactMs : null;
      session = { epoch: broker.epoch, lastContactMs: inherited ?? this.nowMs(), metadataOffset: -1, shutdownOffset: null, pendingHeartbeats: 0 };
      this.sessions.set(broker.nodeId, session);
    }
    return session;
  }

  /**
   * When the previous active controller was last heard from. Sessions live in the active
   * controller's memory, so a new one starts every broker's session afresh, and a broker would
   * get a whole session timeout from the takeover. But a broker running in the same process as
   * that controller (combined roles) most likely stopped when the controller's messages stopped:
   * its session is dated from the last of them, so a kill -9 of that node fences its broker a
   * Raft election sooner. A handover (TimeoutNow) or a live broker loses nothing: the last
   * message was a moment ago, or the broker's next heartbeat renews its session.
   */
  private previousLeaderContact(now: number): { nodeId: number; lastContactMs: number } | null {
    const contact = this.options.log.previousLeaderContact?.();
    return contact ? { nodeId: contact.nodeId, lastContactMs: now - contact.msAgo } : null;
  }

  private brokerMetadataLags(): Map<number, number> {
    const lags = new Map<number, number>();
    if (!this.isActive()) return lags;
    for (const [nodeId, session] of this.sessions) {
      if (session.metadataOffset >= 0) lags.set(nodeId, Math.max(0, this.current.offset - session.metadataOffset));
    }
    return lags;
  }

  private randomIndex(): number {
    return Buffer.from(this.randomBytes(4)).readUInt32BE(0);
  }

  private nowMs(): number {
    return this.options.clock.monotonicMs();
  }
}

interface ItemOutcome {
  errorCode: number;
  errorMessage: string;
}

function itemError(error: RiffleError): ItemOutcome {
  return { errorCode: error.code, errorMessage: error.message };
}

/** Runs one item of an admin request; its typed error becomes the item's error code. */
async function perItem<T extends object>(work: () => Promise<T>): Promise<Partial<T> & ItemOutcome> {
  try {
    return { errorCode: 0, errorMessage: '', ...(await work()) };
  } catch (error) {
    if (!(error instanceof RiffleError) || error.errorName === 'NOT_CONTROLLER') throw error;
    return itemError(error) as Partial<T> & ItemOutcome;
  }
}

/** An int64 field of a request: a bad one is the caller's mistake (INVALID_REQUEST), not a bug. */
function requestInt64(value: number | string | Long | null | undefined, what: string): number {
  if (value === undefined || value === null) return 0;
  const number = typeof value === 'number' ? value : Number(typeof value === 'string' ? value : value.toString());
  if (!Number.isSafeInteger(number)) throw new RiffleError('INVALID_REQUEST', `Invalid ${what} ${String(value)}.`);
  return number;
}

function limitItems<T>(items: T[]): T[] {
  if (items.length > ADMIN_ITEMS_PER_REQUEST_MAX) {
    throw new RiffleError('INVALID_REQUEST', `At most ${ADMIN_ITEMS_PER_REQUEST_MAX} items per request, got ${items.length}.`);
  }
  return items;
}

function duplicatesOf(names: readonly string[]): Set<string> {
  const seen = new Set<string>();
  const duplicates = new Set<string>();
  for (const name of names) (seen.has(name) ? duplicates : seen).add(name);
  return duplicates;
}

function partitionName(partition: PartitionInfo): string {
  return `${partition.topicId}-${partition.partition}`;
}
