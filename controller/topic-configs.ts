// The topic configs the controller accepts, with their value rules. The broker's log owns the
// meaning of most of them (broker/log/log-config.ts); the controller may not import broker code,
// so the names and ranges are repeated here and a test keeps both lists in step. Validation here
// is what makes a bad config an INVALID_CONFIG answer to CreateTopics or IncrementalAlterConfigs
// rather than a broker that cannot open its log later.
import { RiffleError } from '../src/rpc/errors.js';

/** The RecordBatch v2 header (61 bytes): the smallest batch and so the smallest segment. */
const BATCH_HEADER_BYTES = 61;
/** Segment files are addressed with signed 32-bit positions, as in Kafka. */
const SEGMENT_BYTES_MAX = 2 ** 31 - 1;

interface IntegerRule {
  readonly min: number;
  readonly max: number;
}

/** Integer-valued configs with their inclusive ranges (min.insync.replicas is checked against RF). */
const INTEGER_CONFIGS: Readonly<Record<string, IntegerRule>> = {
  'segment.bytes': { min: BATCH_HEADER_BYTES, max: SEGMENT_BYTES_MAX },
  'segment.ms': { min: 1, max: Number.MAX_SAFE_INTEGER },
  'retention.ms': { min: -1, max: Number.MAX_SAFE_INTEGER },
  'retention.bytes': { min: -1, max: Number.MAX_SAFE_INTEGER },
  'flush.interval.ms': { min: 1, max: Number.MAX_SAFE_INTEGER },
  'index.interval.bytes': { min: 0, max: SEGMENT_BYTES_MAX },
  'max.message.bytes': { min: BATCH_HEADER_BYTES, max: SEGMENT_BYTES_MAX },
  'min.insync.replicas': { min: 1, max: Number.MAX_SAFE_INTEGER },
  'delete.retention.ms': { min: 0, max: Number.MAX_SAFE_INTEGER },
};

const FLUSH_POLICIES: readonly string[] = ['ack', 'interval', 'os'];
const CLEANUP_POLICIES: readonly string[] = ['delete', 'compact'];

/**
 * Configs of Kinesis-like streams (topics of kind 'stream'), with their allowed values:
 * stream.mode (PROVISIONED or ON_DEMAND), stream.limits (the throughput profile: 'kinesis' for
 * Kinesis's per-shard limits, 'off' for full speed) and stream.record.bytes.max (largest record
 * data, 1 MiB by default, up to 10 MiB).
 */
const CHOICE_CONFIGS: Readonly<Record<string, readonly string[]>> = {
  'stream.mode': ['PROVISIONED', 'ON_DEMAND'],
  'stream.limits': ['kinesis', 'off'],
};
const STREAM_RECORD_BYTES_KEY = 'stream.record.bytes.max';
const STREAM_RECORD_BYTES_LIMIT = 10 * 1024 * 1024;

/** Every log config name the controller accepts (the broker's log config keys and min.insync.replicas). */
export const TOPIC_CONFIG_KEYS: readonly string[] = Object.freeze([...Object.keys(INTEGER_CONFIGS), 'flush.policy', 'cleanup.policy']);
/** The configs only streams use; accepted on any topic, meaningful on streams. */
export const STREAM_CONFIG_KEYS: readonly string[] = Object.freeze([...Object.keys(CHOICE_CONFIGS), STREAM_RECORD_BYTES_KEY]);

export const MIN_INSYNC_REPLICAS_KEY = 'min.insync.replicas';

/** Kafka's own default is 1; Riffle defaults to 2 where the replication factor allows losing one. */
export function defaultMinInsyncReplicas(replicationFactor: number): number {
  return replicationFactor >= 3 ? 2 : 1;
}

/** A topic's effective min.insync.replicas: its own setting or the default for its RF. */
export function minInsyncReplicasOf(configs: Readonly<Record<string, string>>, replicationFactor: number): number {
  const value = configs[MIN_INSYNC_REPLICAS_KEY];
  return value === undefined ? defaultMinInsyncReplicas(replicationFactor) : Number(value);
}

/** Throws INVALID_CONFIG for an unknown name or a bad value in a topic's whole config set. */
export function validateTopicConfigs(configs: Readonly<Record<string, string>>, replicationFactor: number): void {
  for (const [name, value] of Object.entries(configs)) validateTopicConfig(name, value, replicationFactor);
}

export function validateTopicConfig(name: string, value: string, replicationFactor: number): void {
  if (name === 'flush.policy') {
    if (!FLUSH_POLICIES.includes(value)) {
      throw new RiffleError('INVALID_CONFIG', `flush.policy must be one of ${FLUSH_POLICIES.join(', ')}, not '${value}'.`);
    }
    return;
  }
  if (name === 'cleanup.policy') {
    if (!CLEANUP_POLICIES.includes(value)) {
      throw new RiffleError('INVALID_CONFIG', `cleanup.policy must be one of ${CLEANUP_POLICIES.join(', ')}, not '${value}'.`);
    }
    return;
  }
  const choices = CHOICE_CONFIGS[name];
  if (choices !== undefined) {
    if (!choices.includes(value)) throw new RiffleError('INVALID_CONFIG', `${name} must be one of ${choices.join(', ')}, not '${value}'.`);
    return;
  }
  const rule = name === STREAM_RECORD_BYTES_KEY ? { min: 1, max: STREAM_RECORD_BYTES_LIMIT } : INTEGER_CONFIGS[name];
  if (rule === undefined) throw new RiffleError('INVALID_CONFIG', `Unknown topic config '${name}'.`);
  const max = name === MIN_INSYNC_REPLICAS_KEY ? replicationFactor : rule.max;
  const number = /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
  if (!Number.isSafeInteger(number) || number < rule.min || number > max) {
    throw new RiffleError('INVALID_CONFIG', `${name} must be an integer in [${rule.min}, ${max}], not '${value}'.`);
  }
}
