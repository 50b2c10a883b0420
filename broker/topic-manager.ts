// Topic administration on a single node: validates create/delete/grow requests, records them in
// the topic catalogue and opens or removes the partition logs. Until the controller quorum
// exists, this node is its own controller, so replication factor 1 is the only one it can honour.
import { LOG_CONFIG_KEYS, type ReplicaManager } from './replica-manager.js';
import { TOPIC_PARTITIONS_MAX, validateTopicName, type TopicRecord, type TopicStore } from './topic-store.js';
import { RiffleError } from '../src/rpc/errors.js';
import type { Clock } from '../src/util/clock.js';
import type { Logger } from '../src/util/logger.js';

export interface TopicSpec {
  name: string;
  /** -1 or absent for the broker default. */
  partitions?: number;
  /** -1 or absent for the broker default. */
  replicationFactor?: number;
  configs?: Record<string, string>;
}

export interface TopicDefaults {
  partitions: number;
  replicationFactor: number;
}

/** Topic configs beyond the log's own (see LOG_CONFIG_KEYS). */
const TOPIC_CONFIG_KEYS = new Set(['min.insync.replicas']);

export class TopicManager {
  /** Only one topic change at a time, so checks and writes cannot interleave. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: TopicStore,
    private readonly replicas: ReplicaManager,
    private readonly defaults: TopicDefaults,
    private readonly brokerCount: () => number,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  async openAll(): Promise<void> {
    for (const topic of this.store.list()) await this.replicas.openTopic(topic);
  }

  get(name: string): TopicRecord | undefined {
    return this.store.get(name);
  }

  list(): TopicRecord[] {
    return this.store.list();
  }

  /** Validates a spec without creating anything; returns the record it would create. */
  validate(spec: TopicSpec): Omit<TopicRecord, 'topicId' | 'createdAtMs'> {
    validateTopicName(spec.name);
    const partitions = spec.partitions === undefined || spec.partitions === -1 ? this.defaults.partitions : spec.partitions;
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > TOPIC_PARTITIONS_MAX) {
      throw new RiffleError('INVALID_PARTITIONS', `Number of partitions must be between 1 and ${TOPIC_PARTITIONS_MAX}, got ${partitions}.`);
    }
    const replicationFactor =
      spec.replicationFactor === undefined || spec.replicationFactor === -1 ? this.defaults.replicationFactor : spec.replicationFactor;
    if (!Number.isInteger(replicationFactor) || replicationFactor < 1 || replicationFactor > this.brokerCount()) {
      throw new RiffleError(
        'INVALID_REPLICATION_FACTOR',
        `Replication factor ${replicationFactor} is larger than the ${this.brokerCount()} available broker(s) or below 1.`,
      );
    }
    const configs = { ...(spec.configs ?? {}) };
    this.validateConfigs(configs, replicationFactor);
    return { name: spec.name, kind: 'kafka', partitions, replicationFactor, configs, internal: spec.name.startsWith('__') };
  }

  private validateConfigs(configs: Record<string, string>, replicationFactor: number): void {
    for (const [name, value] of Object.entries(configs)) {
      if (!LOG_CONFIG_KEYS.has(name) && !TOPIC_CONFIG_KEYS.has(name)) {
        throw new RiffleError('INVALID_CONFIG', `Unknown topic config '${name}'.`);
      }
      if (name === 'min.insync.replicas') {
        const number = Number(value);
        if (!Number.isInteger(number) || number < 1 || number > replicationFactor) {
          throw new RiffleError('INVALID_CONFIG', `min.insync.replicas must be between 1 and the replication factor ${replicationFactor}, got '${value}'.`);
        }
      }
    }
    // Throws INVALID_CONFIG for bad log settings.
    this.replicas.logConfigOf({ configs } as TopicRecord);
  }

  create(spec: TopicSpec): Promise<TopicRecord> {
    return this.serialize(async () => {
      const record = await this.store.create(this.validate(spec), this.clock.nowMs());
      await this.replicas.openTopic(record);
      this.logger.info({ topic: record.name, partitions: record.partitions }, `topic ${record.name} created`);
      return record;
    });
  }

  delete(name: string): Promise<TopicRecord> {
    return this.serialize(async () => {
      const record = this.store.get(name);
      if (!record) throw new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `Topic '${name}' does not exist.`);
      if (record.internal) throw new RiffleError('INVALID_TOPIC_EXCEPTION', `Internal topic '${name}' cannot be deleted.`);
      await this.store.remove(name);
      await this.replicas.deleteTopic(record);
      this.logger.info({ topic: name }, `topic ${name} deleted`);
      return record;
    });
  }

  /** Grows a topic to `count` partitions (partitions are only ever added, as in Kafka). */
  createPartitions(name: string, count: number, validateOnly: boolean): Promise<TopicRecord> {
    return this.serialize(async () => {
      const record = this.store.get(name);
      if (!record) throw new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `Topic '${name}' does not exist.`);
      if (!Number.isInteger(count) || count <= record.partitions || count > TOPIC_PARTITIONS_MAX) {
        throw new RiffleError('INVALID_PARTITIONS', `Topic '${name}' has ${record.partitions} partitions; the new count must be larger, got ${count}.`);
      }
      if (validateOnly) return record;
      const updated = await this.store.update(name, { partitions: count });
      await this.replicas.openTopic(updated, record.partitions);
      return updated;
    });
  }

  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work, work);
    this.queue = result.catch(() => undefined);
    return result;
  }
}
