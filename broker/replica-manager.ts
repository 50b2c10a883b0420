// Owns the partition replicas this broker hosts and keeps them in line with the metadata image:
// every partition whose replica set includes this broker gets its log opened (under
// <data-dir>/logs/<topic>-<partition>/, as in Kafka) and the role the image gives it; replicas
// the image no longer assigns here (deleted topics, moved replicas) are closed and removed.
// Image changes are applied one at a time, in order. Retention runs here too.
import path from 'node:path';
import type { MetadataImage, PartitionInfo, TopicInfo } from '../controller/index.js';
import { DEFAULT_LOG_CONFIG, LOG_CONFIG_KEYS, LogMetrics, PartitionLog, parseLogConfig, type LogConfig } from './log/index.js';
import { Partition } from './partition.js';
import { RiffleError } from '../src/rpc/errors.js';
import type { Clock } from '../src/util/clock.js';
import type { Logger } from '../src/util/logger.js';
import { Gauge, type Registry } from '../src/metrics/index.js';

export interface ReplicaManagerOptions {
  selfId: number;
  dataDir: string;
  clock: Clock;
  logger: Logger;
  registry: Registry;
  /** Log settings for topics that do not override them. */
  logDefaults?: LogConfig;
}

export class ReplicaManager {
  private readonly partitions = new Map<string, Partition>();
  private readonly logMetrics: LogMetrics;
  readonly logDefaults: LogConfig;
  private syncing: Promise<void> = Promise.resolve();
  private syncedOffset = 0;
  private readonly syncWaiters = new Set<() => void>();
  private closed = false;

  constructor(private readonly options: ReplicaManagerOptions) {
    this.logMetrics = new LogMetrics(options.registry);
    this.logDefaults = options.logDefaults ?? DEFAULT_LOG_CONFIG;
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

  /** The log settings of a topic: its overrides on top of the broker defaults. */
  logConfigOf(configs: Readonly<Record<string, string>>): LogConfig {
    const logKeys = Object.fromEntries(Object.entries(configs).filter(([key]) => LOG_CONFIG_KEYS.includes(key)));
    return parseLogConfig(logKeys, this.logDefaults);
  }

  /** Brings the hosted replicas in line with `image`; changes are applied in order. */
  sync(image: MetadataImage): Promise<void> {
    const run = (): Promise<void> => this.syncNow(image);
    this.syncing = this.syncing.then(run, run);
    return this.syncing;
  }

  /** Resolves once the replicas reflect an image at or past `offset` (false after timeoutMs). */
  whenSynced(offset: number, timeoutMs: number): Promise<boolean> {
    if (this.syncedOffset >= offset) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.syncedOffset < offset) return;
        clearTimeout(timer);
        this.syncWaiters.delete(check);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.syncWaiters.delete(check);
        resolve(false);
      }, timeoutMs);
      this.syncWaiters.add(check);
    });
  }

  private async syncNow(image: MetadataImage): Promise<void> {
    if (this.closed) return;
    try {
      await this.syncReplicas(image);
    } finally {
      this.syncedOffset = Math.max(this.syncedOffset, image.offset);
      for (const waiter of [...this.syncWaiters]) waiter();
    }
  }

  private async syncReplicas(image: MetadataImage): Promise<void> {
    const wanted = new Set<string>();
    for (const topic of image.topics.values()) {
      for (const partition of topic.partitions) {
        if (!partition.replicas.includes(this.options.selfId)) continue;
        const key = keyOf(topic.name, partition.partition);
        wanted.add(key);
        try {
          await this.ensureReplica(topic, partition, key);
        } catch (error) {
          this.options.logger.error({ err: error, topic: topic.name, partition: partition.partition }, 'opening a partition replica failed');
        }
      }
    }
    for (const [key, partition] of this.partitions) {
      if (wanted.has(key)) continue;
      this.partitions.delete(key);
      await partition.close();
      await partition.log.delete();
      this.options.logger.info(`broker ${this.options.selfId} removed replica ${partition.topic}-${partition.index}`);
    }
  }

  private async ensureReplica(topic: TopicInfo, info: PartitionInfo, key: string): Promise<void> {
    const role = { leaderId: info.leader, leaderEpoch: info.leaderEpoch, partitionEpoch: info.partitionEpoch };
    const existing = this.partitions.get(key);
    if (existing && existing.topicId === topic.topicId) {
      if (existing.leaderEpoch !== role.leaderEpoch || existing.leaderId !== role.leaderId) {
        existing.updateRole(role);
        this.options.logger.info(`broker ${this.options.selfId} is ${existing.isLeader ? 'leader' : 'follower'} of ${topic.name}-${info.partition} at leader epoch ${role.leaderEpoch}`);
      }
      return;
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
    });
    const partition = new Partition(topic.name, topic.topicId, info.partition, log, this.options.selfId, role);
    this.partitions.set(key, partition);
    this.options.logger.info(`broker ${this.options.selfId} is ${partition.isLeader ? 'leader' : 'follower'} of ${topic.name}-${info.partition} at leader epoch ${role.leaderEpoch}`);
  }

  /** The hosted replica, or UNKNOWN_TOPIC_OR_PARTITION. */
  partition(topic: string, index: number): Partition {
    const partition = this.partitions.get(keyOf(topic, index));
    if (!partition) throw new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `This server does not host ${topic}-${index}.`);
    return partition;
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
      } catch (error) {
        this.options.logger.error({ err: error, topic: partition.topic, partition: partition.index }, 'retention failed');
      }
    }
    return deleted;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.syncing.catch(() => undefined);
    const partitions = [...this.partitions.values()];
    this.partitions.clear();
    await Promise.all(partitions.map((partition) => partition.close()));
  }
}

function keyOf(topic: string, index: number): string {
  return `${topic}\u0000${index}`;
}
