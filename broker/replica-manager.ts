// Owns the partitions this broker hosts: opens their logs at start, creates and deletes them as
// topics come and go, and runs retention. Partition logs live under
// <data-dir>/logs/<topic>-<partition>/, as in Kafka.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DEFAULT_LOG_CONFIG, LogMetrics, PartitionLog, parseLogConfig, type LogConfig } from './log/index.js';
import { Partition } from './partition.js';
import type { TopicRecord } from './topic-store.js';
import { RiffleError } from '../src/rpc/errors.js';
import type { Clock } from '../src/util/clock.js';
import type { Logger } from '../src/util/logger.js';
import { Gauge, type Registry } from '../src/metrics/index.js';

export interface ReplicaManagerOptions {
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

  constructor(private readonly options: ReplicaManagerOptions) {
    this.logMetrics = new LogMetrics(options.registry);
    this.logDefaults = options.logDefaults ?? DEFAULT_LOG_CONFIG;
    const partitions = this.partitions;
    new Gauge({
      name: 'riffle_broker_partitions',
      help: 'Partitions hosted by this broker.',
      registers: [options.registry],
      collect() {
        this.set(partitions.size);
      },
    });
  }

  get logsDir(): string {
    return path.join(this.options.dataDir, 'logs');
  }

  /** The log settings of a topic: its overrides on top of the broker defaults. */
  logConfigOf(topic: TopicRecord): LogConfig {
    const logKeys = Object.fromEntries(Object.entries(topic.configs).filter(([key]) => LOG_CONFIG_KEYS.has(key)));
    return parseLogConfig(logKeys, this.logDefaults);
  }

  async openTopic(topic: TopicRecord, fromPartition = 0): Promise<void> {
    const config = this.logConfigOf(topic);
    for (let index = fromPartition; index < topic.partitions; index++) {
      const log = await PartitionLog.open({
        dir: path.join(this.logsDir, `${topic.name}-${index}`),
        config,
        clock: this.options.clock,
        logger: this.options.logger,
        metrics: this.logMetrics,
        topic: topic.name,
        partition: index,
      });
      this.partitions.set(key(topic.name, index), new Partition(topic.name, index, log, 0));
    }
  }

  async deleteTopic(topic: TopicRecord): Promise<void> {
    for (let index = 0; index < topic.partitions; index++) {
      const partition = this.partitions.get(key(topic.name, index));
      this.partitions.delete(key(topic.name, index));
      if (partition) {
        await partition.close();
        await partition.log.delete();
      } else {
        await fs.rm(path.join(this.logsDir, `${topic.name}-${index}`), { recursive: true, force: true });
      }
    }
  }

  /** The partition, or UNKNOWN_TOPIC_OR_PARTITION. */
  partition(topic: string, index: number): Partition {
    const partition = this.partitions.get(key(topic, index));
    if (!partition) throw new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `This server does not host ${topic}-${index}.`);
    return partition;
  }

  findPartition(topic: string, index: number): Partition | undefined {
    return this.partitions.get(key(topic, index));
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
    const partitions = [...this.partitions.values()];
    this.partitions.clear();
    await Promise.all(partitions.map((partition) => partition.close()));
  }
}

/** Topic configs that belong to the log (the rest are broker-level topic settings). */
export const LOG_CONFIG_KEYS = new Set([
  'segment.bytes', 'segment.ms', 'retention.ms', 'retention.bytes', 'flush.policy', 'flush.interval.ms',
  'index.interval.bytes', 'max.message.bytes',
]);

function key(topic: string, index: number): string {
  return `${topic}\u0000${index}`;
}
