// Topic administration decided against an image: CreateTopics, DeleteTopics, CreatePartitions and
// IncrementalAlterConfigs (riffle.v1 admin shapes, as forwarded by any broker). Each function
// validates one topic or resource and returns the records that carry out the change, or throws
// the typed RiffleError that becomes that item's error code. Nothing here writes: the controller
// appends the records (one batch per topic) and answers once they are committed.
import { RiffleError } from '../src/rpc/errors.js';
import { assert } from '../src/util/assert.js';
import type { MetadataRecord } from '../src/rpc/generated/riffle/internal/MetadataRecord.js';
import type { CreatableTopic } from '../src/rpc/generated/riffle/v1/CreatableTopic.js';
import type { AlterConfigsResource } from '../src/rpc/generated/riffle/v1/AlterConfigsResource.js';
import { TOPIC_PARTITIONS_MAX, type ControllerConfig } from './controller-config.js';
import { METADATA_BATCH_RECORDS_MAX } from './metadata-codec.js';
import type { MetadataImage } from './metadata-image.js';
import type { TopicInfo } from './metadata-types.js';
import { placeReplicas } from './placement.js';
import { MIN_INSYNC_REPLICAS_KEY, defaultMinInsyncReplicas, validateTopicConfig, validateTopicConfigs } from './topic-configs.js';

/** Kafka's topic name limit. */
export const TOPIC_NAME_LENGTH_MAX = 249;
/**
 * Partitions in the whole cluster. Fencing a broker rewrites every partition it holds in one
 * atomic batch, and this keeps that batch well under METADATA_BATCH_RECORDS_MAX.
 */
export const CLUSTER_PARTITIONS_MAX = 50_000;
assert(CLUSTER_PARTITIONS_MAX < METADATA_BATCH_RECORDS_MAX, 'a fencing batch must fit every partition');
/** Config entries in one topic creation or one alter-configs resource. */
export const CONFIG_ENTRIES_MAX = 100;

/** Kafka's topic name rule: 1..249 of [a-zA-Z0-9._-], and neither '.' nor '..'. */
export function validateTopicName(name: string): void {
  if (name.length === 0) throw new RiffleError('INVALID_TOPIC_EXCEPTION', 'Topic name is empty.');
  if (name.length > TOPIC_NAME_LENGTH_MAX) {
    throw new RiffleError('INVALID_TOPIC_EXCEPTION', `Topic name is longer than ${TOPIC_NAME_LENGTH_MAX} characters.`);
  }
  if (name === '.' || name === '..') throw new RiffleError('INVALID_TOPIC_EXCEPTION', `Topic name cannot be '${name}'.`);
  if (!/^[a-zA-Z0-9._-]+$/.test(name)) {
    throw new RiffleError('INVALID_TOPIC_EXCEPTION', `Topic name '${name}' has characters other than ASCII letters, digits, '.', '_' and '-'.`);
  }
}

export interface NewTopic {
  readonly name: string;
  readonly topicId: string;
  readonly partitions: number;
  readonly replicationFactor: number;
  readonly configs: Readonly<Record<string, string>>;
  readonly records: MetadataRecord[];
}

export interface NewTopicContext {
  readonly topicId: string;
  readonly startIndex: number;
  readonly nowMs: number;
}

/** Validates one topic of a CreateTopics request and builds its TopicRecord and PartitionRecords. */
export function planCreateTopic(image: MetadataImage, request: CreatableTopic, config: ControllerConfig, context: NewTopicContext): NewTopic {
  const name = request.name ?? '';
  validateTopicName(name);
  if (image.topicByName(name)) throw new RiffleError('TOPIC_ALREADY_EXISTS', `Topic '${name}' already exists.`);
  const collision = collidingTopic(image, name);
  if (collision) throw new RiffleError('INVALID_TOPIC_EXCEPTION', `Topic '${name}' collides with '${collision}': '.' and '_' are interchangeable in metric names.`);
  const partitions = request.numPartitions === undefined || request.numPartitions === -1 ? config.defaultPartitions : request.numPartitions;
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > TOPIC_PARTITIONS_MAX) {
    throw new RiffleError('INVALID_PARTITIONS', `Number of partitions must be between 1 and ${TOPIC_PARTITIONS_MAX}, got ${partitions}.`);
  }
  requireClusterRoom(image, partitions);
  const active = image.activeBrokers().length;
  const replicationFactor = request.replicationFactor === undefined || request.replicationFactor === -1
    ? Math.max(1, Math.min(config.defaultReplicationFactor, active)) : request.replicationFactor;
  if (!Number.isInteger(replicationFactor) || replicationFactor < 1 || replicationFactor > active) {
    throw new RiffleError('INVALID_REPLICATION_FACTOR', `Replication factor ${replicationFactor} is below 1 or larger than the ${active} available broker(s).`);
  }
  const configs = topicConfigsOf(request, replicationFactor);
  const assignments = placeReplicas(image, { partitions, replicationFactor, startIndex: context.startIndex });
  const records: MetadataRecord[] = [{
    topic: { name, topicId: context.topicId, kind: 'kafka', replicationFactor, configs, internal: name.startsWith('__'), createdAtMs: context.nowMs },
  }];
  assignments.forEach((replicas, partition) => records.push(newPartitionRecord(context.topicId, partition, replicas, context.nowMs)));
  return { name, topicId: context.topicId, partitions, replicationFactor, configs, records };
}

function topicConfigsOf(request: CreatableTopic, replicationFactor: number): Record<string, string> {
  const entries = request.configs ?? [];
  if (entries.length > CONFIG_ENTRIES_MAX) throw new RiffleError('INVALID_CONFIG', `More than ${CONFIG_ENTRIES_MAX} configs.`);
  const configs: Record<string, string> = {};
  for (const entry of entries) {
    const name = entry.name ?? '';
    if (name in configs) throw new RiffleError('INVALID_CONFIG', `Config '${name}' is given twice.`);
    configs[name] = entry.value ?? '';
  }
  validateTopicConfigs(configs, replicationFactor);
  configs[MIN_INSYNC_REPLICAS_KEY] ??= String(defaultMinInsyncReplicas(replicationFactor));
  return configs;
}

function newPartitionRecord(topicId: string, partition: number, replicas: number[], nowMs: number): MetadataRecord {
  return {
    partition: {
      topicId, partition, replicas, isr: replicas, leader: replicas[0]!, leaderEpoch: 0, partitionEpoch: 0,
      state: 'open', createdAtMs: nowMs,
    },
  };
}

function requireClusterRoom(image: MetadataImage, added: number): void {
  let total = 0;
  for (const topic of image.topics.values()) total += topic.partitions.length;
  if (total + added > CLUSTER_PARTITIONS_MAX) {
    throw new RiffleError('INVALID_PARTITIONS', `The cluster has ${total} partitions; ${added} more would pass the limit of ${CLUSTER_PARTITIONS_MAX}.`);
  }
}

/** Kafka refuses names that differ only in '.' versus '_', because metric names cannot tell them apart. */
function collidingTopic(image: MetadataImage, name: string): string | undefined {
  if (!name.includes('.') && !name.includes('_')) return undefined;
  const folded = name.replaceAll('.', '_');
  for (const topic of image.topics.values()) {
    if (topic.name !== name && topic.name.replaceAll('.', '_') === folded) return topic.name;
  }
  return undefined;
}

export function topicNamed(image: MetadataImage, name: string): TopicInfo {
  const topic = image.topicByName(name);
  if (!topic) throw new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `Topic '${name}' does not exist.`);
  return topic;
}

export function planDeleteTopic(image: MetadataImage, name: string): { topic: TopicInfo; record: MetadataRecord } {
  const topic = topicNamed(image, name);
  if (topic.internal) throw new RiffleError('INVALID_TOPIC_EXCEPTION', `Internal topic '${name}' cannot be deleted.`);
  return { topic, record: { removeTopic: { topicId: topic.topicId } } };
}

/** Grows a Kafka topic to `count` partitions (partitions are only ever added, as in Kafka). */
export function planCreatePartitions(image: MetadataImage, name: string, count: number, context: Omit<NewTopicContext, 'topicId'>): MetadataRecord[] {
  const topic = topicNamed(image, name);
  if (topic.kind !== 'kafka') throw new RiffleError('INVALID_REQUEST', `'${name}' is a stream: reshard it instead.`);
  const current = topic.partitions.length;
  if (!Number.isInteger(count) || count <= current || count > TOPIC_PARTITIONS_MAX) {
    throw new RiffleError('INVALID_PARTITIONS', `Topic '${name}' has ${current} partitions; the new count must be larger and at most ${TOPIC_PARTITIONS_MAX}, got ${count}.`);
  }
  requireClusterRoom(image, count - current);
  const assignments = placeReplicas(image, { partitions: count - current, replicationFactor: topic.replicationFactor, startIndex: context.startIndex });
  return assignments.map((replicas, index) => newPartitionRecord(topic.topicId, current + index, replicas, context.nowMs));
}

/** One resource of IncrementalAlterConfigs: the ConfigRecords that change something. */
export function planAlterConfigs(image: MetadataImage, resource: AlterConfigsResource): MetadataRecord[] {
  const type = (resource.resourceType ?? '').toLowerCase();
  if (type !== 'topic' && type !== '2') throw new RiffleError('INVALID_REQUEST', `Unsupported resource type '${resource.resourceType}'.`);
  const topic = topicNamed(image, resource.resourceName ?? '');
  const operations = resource.configs ?? [];
  if (operations.length > CONFIG_ENTRIES_MAX) throw new RiffleError('INVALID_CONFIG', `More than ${CONFIG_ENTRIES_MAX} configs.`);
  const next: Record<string, string> = { ...topic.configs };
  const seen = new Set<string>();
  for (const operation of operations) {
    const name = operation.name ?? '';
    if (seen.has(name)) throw new RiffleError('INVALID_REQUEST', `Config '${name}' appears twice.`);
    seen.add(name);
    applyConfigOperation(next, name, operation.configOperation ?? 'set', operation.value ?? '', topic.replicationFactor);
  }
  validateTopicConfigs(next, topic.replicationFactor);
  return configRecords(topic, next);
}

function applyConfigOperation(configs: Record<string, string>, name: string, operation: string, value: string, replicationFactor: number): void {
  switch (operation.toLowerCase()) {
    case 'set':
      validateTopicConfig(name, value, replicationFactor);
      configs[name] = value;
      return;
    case 'delete':
      validateTopicConfig(name, configs[name] ?? defaultFor(name, replicationFactor), replicationFactor);
      delete configs[name];
      return;
    case 'append':
    case 'subtract':
      throw new RiffleError('INVALID_CONFIG', `Config '${name}' is not a list; '${operation}' does not apply.`);
    default:
      throw new RiffleError('INVALID_REQUEST', `Unknown config operation '${operation}'.`);
  }
}

/** A value that passes validation for a known name, so 'delete' of an unset known key is accepted. */
function defaultFor(name: string, replicationFactor: number): string {
  if (name === MIN_INSYNC_REPLICAS_KEY) return String(defaultMinInsyncReplicas(replicationFactor));
  if (name === 'cleanup.policy') return 'delete';
  return name === 'flush.policy' ? 'ack' : '1';
}

function configRecords(topic: TopicInfo, next: Readonly<Record<string, string>>): MetadataRecord[] {
  const records: MetadataRecord[] = [];
  for (const [name, value] of Object.entries(next)) {
    if (topic.configs[name] !== value) records.push({ config: { topicId: topic.topicId, name, value, deleted: false } });
  }
  for (const name of Object.keys(topic.configs)) {
    if (!(name in next)) records.push({ config: { topicId: topic.topicId, name, value: '', deleted: true } });
  }
  assert(records.length <= 2 * CONFIG_ENTRIES_MAX, () => `${records.length} config records`);
  return records;
}
