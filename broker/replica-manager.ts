// Owns the partition replicas this broker hosts and keeps them in line with the metadata image:
// every partition whose replica set includes this broker gets its log opened (under
// <data-dir>/logs/<topic>-<partition>/, as in Kafka) and the role the image gives it; replicas
// the image no longer assigns here (deleted topics, moved replicas) are closed and removed.
// Image changes are applied one at a time, in order (the replicas of one image several at a
// time: opening a log waits for an fsync). Retention runs here too.
import path from 'node:path';
import { minInsyncReplicasOf, type MetadataImage, type PartitionInfo, type TopicInfo } from '../controller/index.js';
import type { ReplicaFetcherManager } from './replica-fetcher.js';
import { DEFAULT_LOG_CONFIG, LOG_CONFIG_KEYS, LogMetrics, PartitionLog, TAIL_CACHE_BYTES_DEFAULT, TailCache, TailCacheMetrics, parseLogConfig, type LogConfig } from './log/index.js';
import { Partition, REPLICA_LAG_TIME_MS_DEFAULT, type IsrProposal } from './partition.js';
import { RiffleError } from '../src/rpc/errors.js';
import type { Clock } from '../src/util/clock.js';
import { Conditions } from '../src/util/conditions.js';
import type { Logger } from '../src/util/logger.js';
import { Counter, Gauge, type Registry } from '../src/metrics/index.js';

export interface ReplicaManagerOptions {
  selfId: number;
  dataDir: string;
  clock: Clock;
  logger: Logger;
  registry: Registry;
  /** Log settings for topics that do not override them. */
  logDefaults?: LogConfig;
  /** Followers fetch through this; absent in tests that only lead. */
  fetchers?: ReplicaFetcherManager;
  /**
   * Sends an ISR change of a partition this broker leads to the controller (AlterPartition at
   * the proposal's epochs). Resolves with the controller's answer: an error or null, and the
   * partition epoch of its copy of the partition. Rejects when no answer came (outcome unknown).
   */
  alterIsr?: (partition: Partition, proposal: IsrProposal) => Promise<AlterIsrAnswer>;
  /** Bytes per second the scrubber CRC-checks in closed segments, over all partitions (0: off). */
  scrubBytesPerSecond?: number;
  /** A follower not caught up for this long leaves the ISR (replica.lag.time.max.ms; default 10 s). */
  replicaLagTimeMs?: number;
}

/** The controller's answer to an AlterPartition. */
export interface AlterIsrAnswer {
  error: RiffleError | null;
  /** The partition epoch of the controller's copy after handling the request. */
  partitionEpoch: number;
}

/**
 * How often the scrubber runs and corrupt replicas are repaired. A round reads its share on the
 * thread pool and checks the CRCs on the event loop: at the default rate a round a second held the
 * event loop for 17-30 ms (16 MiB) on every broker with closed segments, a stall every request of
 * that second could meet; ten smaller rounds, whose reads no longer hold it, cost a fraction of a
 * millisecond each.
 */
export const SCRUB_INTERVAL_MS = 100;
/** Replicas a sync brings in line before it lets other work run. */
const SYNC_SLICE_PARTITIONS = 100;
/** Replicas opened (or updated) at once by a metadata sync. */
export const REPLICA_SYNCS_IN_FLIGHT_MAX = 16;
/** Default scrub rate: a 1 GiB segment every ~64 s, a small share of a disk's bandwidth. */
export const SCRUB_BYTES_PER_SECOND_DEFAULT = 16 * 1024 * 1024;

/**
 * How often leaders check whether their ISR should shrink or grow: every second, or every half of
 * the lag time when that is shorter (Kafka checks every half), so a follower leaves at most half
 * the lag time late.
 */
export const ISR_CHECK_INTERVAL_MS = 1_000;

export class ReplicaManager {
  private readonly partitions = new Map<string, Partition>();
  private readonly logMetrics: LogMetrics;
  /** The last appends of the logs this broker leads, for followers and tailing consumers. */
  private readonly tailCache: TailCache;
  readonly logDefaults: LogConfig;
  private syncing: Promise<void> = Promise.resolve();
  private latestImage?: MetadataImage;
  private pendingImage?: MetadataImage;
  /**
   * What the replicas already reflect, for incremental syncs: images share every unchanged
   * topic and partition record with their predecessor, so a sync visits only what changed.
   * The brokers map of the last sync (a changed one, say a leader's new address, means a full
   * pass), the topic records synced in full, and the partition record each replica reflects.
   */
  private syncedBrokers?: MetadataImage['brokers'];
  private syncedTopicMap?: MetadataImage['topics'];
  private readonly syncedTopics = new Map<string, TopicInfo>();
  private readonly syncedInfos = new Map<string, PartitionInfo>();
  private isrTimer?: NodeJS.Timeout;
  private readonly isrChangesInFlight = new Set<string>();
  private readonly replicaLagTimeMs: number;
  private readonly isrChanges: Counter<'direction'>;
  private syncedOffset = 0;
  private readonly synced = new Conditions();
  private readonly syncListeners = new Set<() => void>();
  private closed = false;
  private scrubTimer?: NodeJS.Timeout;
  /** A scrub round is running (its reads are on the thread pool). */
  private scrubbing = false;
  /** Round-robin position of the scrubber over the hosted partitions. */
  private scrubNext = 0;
  private readonly corruptResignations: Counter;

  constructor(private readonly options: ReplicaManagerOptions) {
    this.logMetrics = new LogMetrics(options.registry);
    this.tailCache = new TailCache(TAIL_CACHE_BYTES_DEFAULT, new TailCacheMetrics(options.registry));
    this.logDefaults = options.logDefaults ?? DEFAULT_LOG_CONFIG;
    this.replicaLagTimeMs = options.replicaLagTimeMs ?? REPLICA_LAG_TIME_MS_DEFAULT;
    const partitions = this.partitions;
    new Gauge({
      name: 'riffle_broker_partitions',
      help: 'Partition replicas hosted by this broker.',
      registers: [options.registry],
      collect() {
        this.set(partitions.size);
      },
    });
    new Gauge({
      name: 'riffle_broker_under_replicated_partitions',
      help: 'Partitions this broker leads whose ISR is smaller than their replica set.',
      registers: [options.registry],
      collect() {
        let count = 0;
        for (const partition of partitions.values()) if (partition.isLeader && partition.isr.length < partition.replicaCount) count++;
        this.set(count);
      },
    });
    new Gauge({
      name: 'riffle_broker_follower_lag_records_max',
      help: 'The largest number of records any follower is behind, over the partitions this broker leads.',
      registers: [options.registry],
      collect() {
        let lag = 0;
        for (const partition of partitions.values()) if (partition.isLeader) lag = Math.max(lag, partition.maxFollowerLag());
        this.set(lag);
      },
    });
    this.isrChanges = new Counter({
      name: 'riffle_broker_isr_change_proposals_total',
      help: 'ISR changes this broker proposed as a leader, by direction (shrink or expand).',
      labelNames: ['direction'],
      registers: [options.registry],
    });
    // Per-partition series for the partitions this broker leads: bounded by the partitions hosted.
    const perLeaderPartition = (name: string, help: string, valueOf: (partition: Partition) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['topic', 'partition'],
        registers: [options.registry],
        collect() {
          this.reset();
          for (const partition of partitions.values()) {
            if (partition.isLeader) this.set({ topic: partition.topic, partition: String(partition.index) }, valueOf(partition));
          }
        },
      });
    };
    perLeaderPartition('riffle_broker_partition_high_watermark', 'High watermark of each partition this broker leads.', (partition) => partition.highWatermark);
    perLeaderPartition('riffle_broker_partition_replication_lag_records', 'Records the furthest-behind follower lacks, per partition this broker leads.', (partition) => partition.maxFollowerLag());
    perLeaderPartition(
      'riffle_broker_partition_replication_lag_seconds',
      'Time since the least caught-up in-sync follower was last caught up, per partition this broker leads.',
      (partition) => partition.maxFollowerLagMs() / 1000,
    );
    this.corruptResignations = new Counter({
      name: 'riffle_broker_corrupt_leader_resignations_total',
      help: 'Leaderships this broker handed to another ISR member because its own copy held a corrupt batch.',
      registers: [options.registry],
    });
    new Gauge({
      name: 'riffle_broker_leader_partitions',
      help: 'Partitions this broker leads.',
      registers: [options.registry],
      collect() {
        let leaders = 0;
        for (const partition of partitions.values()) if (partition.isLeader) leaders++;
        this.set(leaders);
      },
    });
  }

  get logsDir(): string {
    return path.join(this.options.dataDir, 'logs');
  }

  /** Starts the periodic ISR check of the partitions this broker leads. */
  startIsrMaintenance(intervalMs = Math.min(ISR_CHECK_INTERVAL_MS, Math.ceil(this.replicaLagTimeMs / 2))): void {
    this.isrTimer = setInterval(() => this.maintainIsr(), intervalMs);
    this.isrTimer.unref();
  }

  private maintainIsr(): void {
    if (!this.options.alterIsr) return;
    for (const [key, partition] of this.partitions) {
      if (this.isrChangesInFlight.has(key) || !partition.isLeader) continue;
      const pending = partition.pendingIsrProposal;
      // An unanswered proposal is sent again (at its own epochs) until the controller answers;
      // an answered one waits for the metadata.
      if (pending) {
        if (!pending.answered) this.sendIsrProposal(partition, pending, 'ISR change not committed');
        continue;
      }
      const wanted = partition.wantedIsr((id, brokerEpoch) => this.latestImage?.isActiveBroker(id, brokerEpoch) ?? false, this.replicaLagTimeMs);
      if (!wanted) continue;
      this.isrChanges.inc({ direction: wanted.length < partition.isr.length ? 'shrink' : 'expand' });
      this.options.logger.info(`broker ${this.options.selfId} proposes ISR [${wanted.join(',')}] for ${partition.topic}-${partition.index} (was [${partition.isr.join(',')}])`);
      this.sendIsrProposal(partition, partition.beginIsrProposal(wanted), 'ISR change not committed');
    }
  }

  /** Sends `proposal` to the controller, one at a time per partition, and settles it by the answer. */
  private sendIsrProposal(partition: Partition, proposal: IsrProposal, failure: string): void {
    const alterIsr = this.options.alterIsr!;
    const key = keyOf(partition.topic, partition.index);
    this.isrChangesInFlight.add(key);
    alterIsr(partition, proposal)
      .then(
        (answer) => {
          partition.settleIsrProposal(proposal, answer.partitionEpoch);
          if (answer.error) this.options.logger.debug({ error: answer.error.message, topic: partition.topic, partition: partition.index }, failure);
        },
        (error: unknown) => this.options.logger.debug({ error: error instanceof Error ? error.message : String(error), topic: partition.topic, partition: partition.index }, `${failure}; outcome unknown, will resend`),
      )
      .finally(() => this.isrChangesInFlight.delete(key));
  }

  /**
   * Starts the background scrubber: every SCRUB_INTERVAL_MS it CRC-checks its share of closed
   * segments (partitions in turn) and repairs every replica found corrupt, by the scrubber or by
   * a read. A follower first reports the corrupt offset as its fetch offset, which takes it out of
   * the ISR at once (below the high watermark), and only then cuts its log at the corrupt batch
   * and refetches from the leader: a replica missing committed records is never electable. A leader cannot cut
   * committed records it alone may serve: it asks the controller to take it out of the ISR, which
   * elects another ISR member; as a follower it then repairs itself. A leader with no other ISR
   * member keeps its log and serves nothing past the corrupt batch (reads check every CRC).
   */
  startScrubber(bytesPerSecond = this.options.scrubBytesPerSecond ?? SCRUB_BYTES_PER_SECOND_DEFAULT, intervalMs = SCRUB_INTERVAL_MS): void {
    if (bytesPerSecond <= 0) return;
    const budget = Math.max(1, Math.floor((bytesPerSecond * intervalMs) / 1000));
    this.scrubTimer = setInterval(() => {
      // A round whose reads are still out (a slow disk) is not overlapped: the next tick skips.
      if (this.scrubbing) return;
      this.scrubbing = true;
      void this.scrubAndRepair(budget).finally(() => (this.scrubbing = false));
    }, intervalMs);
    this.scrubTimer.unref();
  }

  /** One scrub round of at most `budgetBytes`, then the repair of every corrupt replica. */
  async scrubAndRepair(budgetBytes: number): Promise<void> {
    const partitions = [...this.partitions.values()];
    const start = partitions.length === 0 ? 0 : this.scrubNext % partitions.length;
    let left = budgetBytes;
    for (let step = 0; step < partitions.length && left > 0; step++) {
      const index = (start + step) % partitions.length;
      const partition = partitions[index]!;
      // The round awaits each log's reads: the manager may have closed, or the replica gone, since it began.
      if (this.closed) return;
      if (this.partitions.get(keyOf(partition.topic, partition.index)) !== partition) continue;
      try {
        left -= await partition.log.scrub(left);
      } catch (error) {
        this.options.logger.error({ err: error, topic: partition.topic, partition: partition.index }, 'scrub failed');
      }
      // A partition that used up the budget is where the next round resumes.
      this.scrubNext = left > 0 ? index + 1 : index;
    }
    // A round that outlived the manager (its reads were out at close) repairs nothing.
    if (this.closed) return;
    for (const partition of partitions) if (partition.log.corruptOffset !== null) this.repair(partition);
  }

  private repair(partition: Partition): void {
    const key = keyOf(partition.topic, partition.index);
    if (!partition.isLeader) {
      // In the ISR it waits: its fetches from the corrupt offset make the leader drop it first.
      const end = partition.repairCorruption();
      if (end !== null) this.options.logger.warn(`broker ${this.options.selfId} cut ${partition.topic}-${partition.index} at its corrupt batch; refetching from ${end}`);
      return;
    }
    const others = partition.isr.filter((id) => id !== this.options.selfId);
    if (others.length === 0 || !this.options.alterIsr || this.isrChangesInFlight.has(key) || partition.pendingIsrProposal) {
      if (others.length === 0) this.options.logger.error(`broker ${this.options.selfId} leads ${partition.topic}-${partition.index} alone with a corrupt batch at ${partition.log.corruptOffset}; it serves nothing from there until another replica catches up`);
      return;
    }
    this.corruptResignations.inc();
    this.options.logger.warn(`broker ${this.options.selfId} resigns leadership of ${partition.topic}-${partition.index}: corrupt batch at ${partition.log.corruptOffset}; proposes ISR [${others.join(',')}]`);
    this.sendIsrProposal(partition, partition.beginIsrProposal(others), 'resignation not committed');
  }

  /** The log settings of a topic: its overrides on top of the broker defaults. */
  logConfigOf(configs: Readonly<Record<string, string>>): LogConfig {
    const logKeys = Object.fromEntries(Object.entries(configs).filter(([key]) => LOG_CONFIG_KEYS.includes(key)));
    return parseLogConfig(logKeys, this.logDefaults);
  }

  /** Brings the hosted replicas in line with `image`; changes are applied in order. */
  sync(image: MetadataImage): Promise<void> {
    // Images that arrive while a sync runs are coalesced: the next run takes only the newest.
    this.pendingImage = image;
    const run = async (): Promise<void> => {
      const next = this.pendingImage;
      this.pendingImage = undefined;
      if (next) await this.syncNow(next);
    };
    this.syncing = this.syncing.then(run, run);
    return this.syncing;
  }

  /** Resolves once the replicas reflect an image at or past `offset` (false after timeoutMs). */
  whenSynced(offset: number, timeoutMs: number): Promise<boolean> {
    return this.synced.waitFor(() => this.syncedOffset >= offset, timeoutMs);
  }

  private async syncNow(image: MetadataImage): Promise<void> {
    if (this.closed) return;
    this.latestImage = image;
    try {
      await this.syncReplicas(image);
    } finally {
      this.syncedOffset = Math.max(this.syncedOffset, image.offset);
      this.synced.changed();
      for (const listener of this.syncListeners) listener();
    }
  }

  /** Called after every sync, once the replicas reflect the image (e.g. to notice new leaderships). */
  onSynced(listener: () => void): () => void {
    this.syncListeners.add(listener);
    return () => this.syncListeners.delete(listener);
  }

  private async syncReplicas(image: MetadataImage): Promise<void> {
    const selfId = this.options.selfId;
    const full = image.brokers !== this.syncedBrokers;
    this.syncedBrokers = image.brokers;
    let visited = 0;
    // Replicas are brought in line several at a time: opening a log waits for an fsync of its
    // directory, and one after another a restart with 1,000 replicas spent 5-8 s there.
    const inFlight = new Set<Promise<void>>();
    const visitedTopics: TopicInfo[] = [];
    const incomplete = new Set<string>();
    for (const topic of image.topics.values()) {
      if (!full && this.syncedTopics.get(topic.topicId) === topic) continue;
      visitedTopics.push(topic);
      for (const partition of topic.partitions) {
        if (!partition.replicas.includes(selfId)) continue;
        const key = keyOf(topic.name, partition.partition);
        if (!full && this.syncedInfos.get(key) === partition && this.partitions.get(key)?.topicId === topic.topicId) continue;
        // A sync of thousands of replicas would otherwise hold the event loop (each await below
        // resolves at once for an open replica): timers, heartbeats and requests run between slices.
        if (++visited % SYNC_SLICE_PARTITIONS === 0) await new Promise((resolve) => setImmediate(resolve));
        const task = this.syncReplica(image, topic, partition, key).catch((error: unknown) => {
          incomplete.add(topic.topicId);
          this.syncedInfos.delete(key);
          this.options.logger.error({ err: error, topic: topic.name, partition: partition.partition }, 'opening a partition replica failed');
        });
        inFlight.add(task);
        void task.then(() => inFlight.delete(task));
        if (inFlight.size >= REPLICA_SYNCS_IN_FLIGHT_MAX) await Promise.race(inFlight);
      }
    }
    await Promise.all(inFlight);
    for (const topic of visitedTopics) {
      if (incomplete.has(topic.topicId)) this.syncedTopics.delete(topic.topicId);
      else this.syncedTopics.set(topic.topicId, topic);
    }
    if (image.topics === this.syncedTopicMap) return;
    this.syncedTopicMap = image.topics;
    for (const topicId of this.syncedTopics.keys()) if (!image.topics.has(topicId)) this.syncedTopics.delete(topicId);
    for (const [key, partition] of this.partitions) {
      if (image.topic(partition.topicId)?.partitions[partition.index]?.replicas.includes(selfId)) continue;
      this.partitions.delete(key);
      this.syncedInfos.delete(key);
      this.options.fetchers?.unfollow(partition);
      await partition.close();
      await partition.log.delete();
      this.options.logger.info(`broker ${selfId} removed replica ${partition.topic}-${partition.index}`);
    }
  }

  private async syncReplica(image: MetadataImage, topic: TopicInfo, partition: PartitionInfo, key: string): Promise<void> {
    const replica = await this.ensureReplica(topic, partition, key);
    this.followOrLead(image, replica, partition);
    this.syncedInfos.set(key, partition);
  }

  /** A follower fetches from its leader; a leader (or a replica without one) does not fetch. */
  private followOrLead(image: MetadataImage, replica: Partition, info: PartitionInfo): void {
    const fetchers = this.options.fetchers;
    if (!fetchers) return;
    const leader = info.leader >= 0 && info.leader !== this.options.selfId ? image.broker(info.leader) : undefined;
    if (leader?.listener) fetchers.follow(replica, info.leader, `${leader.listener.host}:${leader.listener.port}`);
    else fetchers.unfollow(replica);
  }

  private async ensureReplica(topic: TopicInfo, info: PartitionInfo, key: string): Promise<Partition> {
    const role = {
      leaderId: info.leader,
      leaderEpoch: info.leaderEpoch,
      partitionEpoch: info.partitionEpoch,
      replicas: info.replicas,
      isr: info.isr,
      minInsyncReplicas: minInsyncReplicasOf(topic.configs, topic.replicationFactor),
      closed: info.state === 'closed',
    };
    const existing = this.partitions.get(key);
    if (existing && existing.topicId === topic.topicId) {
      if (existing.partitionEpoch !== role.partitionEpoch || existing.leaderEpoch !== role.leaderEpoch) {
        const roleChanged = existing.leaderEpoch !== role.leaderEpoch;
        existing.updateRole(role);
        if (roleChanged) this.options.logger.info(`broker ${this.options.selfId} is ${existing.isLeader ? 'leader' : 'follower'} of ${topic.name}-${info.partition} at leader epoch ${role.leaderEpoch}`);
      }
      return existing;
    }
    if (existing) {
      // A topic of the same name was deleted and created again: the old replica goes first.
      this.partitions.delete(key);
      await existing.close();
      await existing.log.delete();
    }
    const log = await PartitionLog.open({
      dir: path.join(this.logsDir, `${topic.name}-${info.partition}`),
      config: this.logConfigOf(topic.configs),
      clock: this.options.clock,
      logger: this.options.logger,
      metrics: this.logMetrics,
      topic: topic.name,
      partition: info.partition,
      tail: this.tailCache.forLog(),
    });
    const clock = this.options.clock;
    const partition = new Partition(topic.name, topic.topicId, info.partition, log, this.options.selfId, role, () => clock.monotonicMs());
    this.partitions.set(key, partition);
    this.options.logger.info(`broker ${this.options.selfId} is ${partition.isLeader ? 'leader' : 'follower'} of ${topic.name}-${info.partition} at leader epoch ${role.leaderEpoch}`);
    return partition;
  }

  /**
   * The hosted replica. A partition the metadata knows but this broker does not host (yet: its
   * replica is still being opened after a create or a move) is NOT_LEADER_OR_FOLLOWER, which
   * clients retry after a metadata refresh; only a partition unknown to the metadata is
   * UNKNOWN_TOPIC_OR_PARTITION. `knownToCaller` says the caller found the partition in a metadata
   * image of its own, which can be newer than the one this manager applied last (a stream
   * created a moment ago): that is the same not-hosted-yet case.
   */
  partition(topic: string, index: number, knownToCaller = false): Partition {
    const partition = this.partitions.get(keyOf(topic, index));
    if (partition) return partition;
    const known = this.latestImage?.topicByName(topic)?.partitions[index];
    if (knownToCaller && !known) throw new RiffleError('NOT_LEADER_OR_FOLLOWER', `Broker ${this.options.selfId} does not host ${topic}-${index} yet.`);
    if (known) throw new RiffleError('NOT_LEADER_OR_FOLLOWER', `Broker ${this.options.selfId} does not host ${topic}-${index} (yet); its leader is ${known.leader}.`);
    throw new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `This server does not host ${topic}-${index}.`);
  }

  findPartition(topic: string, index: number): Partition | undefined {
    return this.partitions.get(keyOf(topic, index));
  }

  allPartitions(): Partition[] {
    return [...this.partitions.values()];
  }

  applyRetention(): number {
    let deleted = 0;
    const nowMs = this.options.clock.nowMs();
    for (const partition of this.partitions.values()) {
      try {
        deleted += partition.log.applyRetention(nowMs);
        // Compacted topics (the offsets topic) also drop superseded keys from closed segments.
        partition.log.compact(nowMs);
      } catch (error) {
        this.options.logger.error({ err: error, topic: partition.topic, partition: partition.index }, 'retention failed');
      }
    }
    return deleted;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.isrTimer);
    clearInterval(this.scrubTimer);
    this.options.fetchers?.close();
    await this.syncing.catch(() => undefined);
    const partitions = [...this.partitions.values()];
    this.partitions.clear();
    await Promise.all(partitions.map((partition) => partition.close()));
  }
}

function keyOf(topic: string, index: number): string {
  return `${topic}\u0000${index}`;
}
