// Per-partition log settings, named as Kafka's topic configs where Kafka has the setting.
// `flush.policy` is Riffle's own: `ack` fsyncs (group-committed) before a produce is acknowledged,
// `interval` fsyncs every flush.interval.ms, `os` leaves it to the page cache (Kafka's default
// behaviour). Kafka's flush.messages has no counterpart.
import { RiffleError } from '../../src/rpc/errors.js';
import { BATCH_HEADER_BYTES } from '../../src/util/record-batch.js';

export type FlushPolicy = 'ack' | 'interval' | 'os';
/** Kafka's cleanup.policy: `delete` (retention only) or `compact` (also keep the last record per key). */
export type CleanupPolicy = 'delete' | 'compact';

export interface LogConfig {
  /** Roll a new segment before the active one would grow past this. */
  segmentBytes: number;
  /** Roll a new segment once the active one's first append is this old. */
  segmentMs: number;
  /** Delete whole segments whose newest record is older than this; -1 = unlimited. */
  retentionMs: number;
  /** Delete the oldest segments while the partition is larger than this; -1 = unlimited. */
  retentionBytes: number;
  flushPolicy: FlushPolicy;
  flushIntervalMs: number;
  /** Bytes of batches between two entries of the sparse offset and time indexes. */
  indexIntervalBytes: number;
  /** Largest record batch a producer may send (Kafka's max.message.bytes). */
  maxBatchBytes: number;
  /** `compact`: closed segments are compacted by key (log-compaction.ts) besides retention. */
  cleanupPolicy: CleanupPolicy;
  /** How long a compacted-away key's tombstone stays readable (Kafka's delete.retention.ms). */
  deleteRetentionMs: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** Segment files are addressed with signed 32-bit positions, as in Kafka. */
export const SEGMENT_BYTES_MAX = 2 ** 31 - 1;

export const DEFAULT_LOG_CONFIG: LogConfig = Object.freeze({
  segmentBytes: 1024 * 1024 * 1024,
  segmentMs: 7 * DAY_MS,
  retentionMs: 7 * DAY_MS,
  retentionBytes: -1,
  flushPolicy: 'ack',
  flushIntervalMs: 1000,
  indexIntervalBytes: 4096,
  maxBatchBytes: 1024 * 1024 + 12,
  cleanupPolicy: 'delete',
  deleteRetentionMs: DAY_MS,
});

type NumericField = Exclude<keyof LogConfig, 'flushPolicy' | 'cleanupPolicy'>;

/** Kafka config name → field, with the smallest accepted value. */
const NUMERIC_KEYS: Record<string, { field: NumericField; min: number; max: number }> = {
  'segment.bytes': { field: 'segmentBytes', min: BATCH_HEADER_BYTES, max: SEGMENT_BYTES_MAX },
  'segment.ms': { field: 'segmentMs', min: 1, max: Number.MAX_SAFE_INTEGER },
  'retention.ms': { field: 'retentionMs', min: -1, max: Number.MAX_SAFE_INTEGER },
  'retention.bytes': { field: 'retentionBytes', min: -1, max: Number.MAX_SAFE_INTEGER },
  'flush.interval.ms': { field: 'flushIntervalMs', min: 1, max: Number.MAX_SAFE_INTEGER },
  'index.interval.bytes': { field: 'indexIntervalBytes', min: 0, max: SEGMENT_BYTES_MAX },
  'max.message.bytes': { field: 'maxBatchBytes', min: BATCH_HEADER_BYTES, max: SEGMENT_BYTES_MAX },
  'delete.retention.ms': { field: 'deleteRetentionMs', min: 0, max: Number.MAX_SAFE_INTEGER },
};

/** Every config name parseLogConfig understands. */
export const LOG_CONFIG_KEYS: readonly string[] = [...Object.keys(NUMERIC_KEYS), 'flush.policy', 'cleanup.policy'];

const FLUSH_POLICIES: readonly FlushPolicy[] = ['ack', 'interval', 'os'];
const CLEANUP_POLICIES: readonly CleanupPolicy[] = ['delete', 'compact'];

/** Applies Kafka-named settings over `base`; an unknown name or a bad value is INVALID_CONFIG. */
export function parseLogConfig(entries: Record<string, string>, base: LogConfig = DEFAULT_LOG_CONFIG): LogConfig {
  const config: LogConfig = { ...base };
  for (const [key, text] of Object.entries(entries)) {
    if (key === 'flush.policy') {
      if (!FLUSH_POLICIES.includes(text as FlushPolicy)) throw new RiffleError('INVALID_CONFIG', `flush.policy must be one of ${FLUSH_POLICIES.join(', ')}, not '${text}'`);
      config.flushPolicy = text as FlushPolicy;
      continue;
    }
    if (key === 'cleanup.policy') {
      if (!CLEANUP_POLICIES.includes(text as CleanupPolicy)) throw new RiffleError('INVALID_CONFIG', `cleanup.policy must be one of ${CLEANUP_POLICIES.join(', ')}, not '${text}'`);
      config.cleanupPolicy = text as CleanupPolicy;
      continue;
    }
    const spec = NUMERIC_KEYS[key];
    if (spec === undefined) throw new RiffleError('INVALID_CONFIG', `unknown log config '${key}'`);
    config[spec.field] = parseInteger(key, text, spec.min, spec.max);
  }
  validateLogConfig(config);
  return config;
}

function parseInteger(key: string, text: string, min: number, max: number): number {
  const value = /^-?\d+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RiffleError('INVALID_CONFIG', `${key} must be an integer in [${min}, ${max}], not '${text}'`);
  }
  return value;
}

/** Checks a whole config, including one built in code rather than parsed. */
export function validateLogConfig(config: LogConfig): void {
  for (const [key, spec] of Object.entries(NUMERIC_KEYS)) {
    const value = config[spec.field];
    if (!Number.isSafeInteger(value) || value < spec.min || value > spec.max) {
      throw new RiffleError('INVALID_CONFIG', `${key} = ${value} is outside [${spec.min}, ${spec.max}]`);
    }
  }
  if (!FLUSH_POLICIES.includes(config.flushPolicy)) throw new RiffleError('INVALID_CONFIG', `unknown flush policy ${String(config.flushPolicy)}`);
  if (!CLEANUP_POLICIES.includes(config.cleanupPolicy)) throw new RiffleError('INVALID_CONFIG', `unknown cleanup policy ${String(config.cleanupPolicy)}`);
}
