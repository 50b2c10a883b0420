// The partition log engine: the only surface other areas import from broker/log.
export { DEFAULT_LOG_CONFIG, LOG_CONFIG_KEYS, SEGMENT_BYTES_MAX, parseLogConfig, validateLogConfig, type CleanupPolicy, type FlushPolicy, type LogConfig } from './log-config.js';
export { LogMetrics } from './log-metrics.js';
export { TAIL_CACHE_BYTES_DEFAULT, TailCache, TailCacheMetrics, type LogTail } from './tail-cache.js';
export { APPEND_BYTES_MAX, PartitionLog, READ_BYTES_MAX, type AppendInfo, type LogChecksum, type PartitionLogOptions, type ReadResult } from './partition-log.js';
export { LEADER_EPOCH_CHECKPOINT_FILE, LEADER_EPOCH_ENTRIES_MAX, LeaderEpochCache, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET, type EpochEndOffset, type EpochEntry, type EpochStore } from './leader-epoch-cache.js';
export { DURABILITY_WAITERS_MAX } from './durability-waiters.js';
export { RECOVERY_CHECKPOINT_FILE } from './recovery-checkpoint.js';
