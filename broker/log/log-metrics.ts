// Metrics of the partition logs of one node (riffle_log_*). One LogMetrics per node registry;
// each PartitionLog binds its topic/partition children once, so the append path does no label
// lookups. Cardinality is bounded by the partitions a node hosts; a deleted partition removes
// its series.
import { Counter, Gauge, Histogram, LATENCY_BUCKETS_SECONDS, type Registry } from '../../src/metrics/index.js';

const LABELS = ['topic', 'partition'] as const;

export class LogMetrics {
  readonly appendedBytes: Counter<'topic' | 'partition'>;
  readonly appendedBatches: Counter<'topic' | 'partition'>;
  readonly appendedRecords: Counter<'topic' | 'partition'>;
  readonly flushes: Counter<'topic' | 'partition'>;
  readonly fsyncDuration: Histogram;
  readonly fetchReadDuration: Histogram;
  readonly segments: Gauge<'topic' | 'partition'>;
  readonly sizeBytes: Gauge<'topic' | 'partition'>;
  readonly retentionDeletedSegments: Counter<'topic' | 'partition'>;
  readonly compactedRecords: Counter<'topic' | 'partition'>;
  readonly recoveryTruncations: Counter<'topic' | 'partition'>;
  readonly corruptBatches: Counter<'topic' | 'partition'>;
  readonly leaderEpochRebuilds: Counter<'topic' | 'partition'>;
  readonly scrubbedBytes: Counter<'topic' | 'partition'>;
  readonly corruptionRepairs: Counter<'topic' | 'partition'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.appendedBytes = new Counter({ name: 'riffle_log_appended_bytes_total', help: 'Bytes of record batches appended to partition logs.', labelNames: LABELS, registers });
    this.appendedBatches = new Counter({ name: 'riffle_log_appended_batches_total', help: 'Record batches appended to partition logs.', labelNames: LABELS, registers });
    this.appendedRecords = new Counter({ name: 'riffle_log_appended_records_total', help: 'Records appended to partition logs.', labelNames: LABELS, registers });
    this.flushes = new Counter({ name: 'riffle_log_flushes_total', help: 'fdatasync rounds of partition logs (one group commit each).', labelNames: LABELS, registers });
    this.fsyncDuration = new Histogram({ name: 'riffle_log_fsync_duration_seconds', help: 'Duration of one flush round (fdatasync of the dirty segments).', buckets: LATENCY_BUCKETS_SECONDS, registers });
    this.fetchReadDuration = new Histogram({ name: 'riffle_log_fetch_read_duration_seconds', help: 'Duration of one fetch read from segment files on the thread pool (reads the tail cache cannot serve).', buckets: LATENCY_BUCKETS_SECONDS, registers });
    this.segments = new Gauge({ name: 'riffle_log_segments', help: 'Segments in a partition log.', labelNames: LABELS, registers });
    this.sizeBytes = new Gauge({ name: 'riffle_log_size_bytes', help: 'Bytes of all segments of a partition log.', labelNames: LABELS, registers });
    this.retentionDeletedSegments = new Counter({ name: 'riffle_log_retention_deleted_segments_total', help: 'Segments deleted by time or size retention.', labelNames: LABELS, registers });
    this.compactedRecords = new Counter({ name: 'riffle_log_compacted_records_total', help: 'Records removed by key compaction (cleanup.policy=compact) from closed segments.', labelNames: LABELS, registers });
    this.recoveryTruncations = new Counter({ name: 'riffle_log_recovery_truncations_total', help: 'Torn or corrupt log tails cut off during recovery.', labelNames: LABELS, registers });
    this.corruptBatches = new Counter({ name: 'riffle_log_corrupt_batches_total', help: 'Stored record batches that failed their CRC check on read or recovery.', labelNames: LABELS, registers });
    this.scrubbedBytes = new Counter({ name: 'riffle_log_scrubbed_bytes_total', help: 'Bytes of closed, fsynced segments whose batch CRCs the background scrubber verified.', labelNames: LABELS, registers });
    this.corruptionRepairs = new Counter({ name: 'riffle_log_corruption_repairs_total', help: 'Logs cut at a corrupt batch found by the scrubber or a read, to refetch the rest from the leader.', labelNames: LABELS, registers });
    this.leaderEpochRebuilds = new Counter({ name: 'riffle_log_leader_epoch_rebuilds_total', help: 'Leader-epoch caches rebuilt from batch headers at open because their checkpoint was missing, damaged or stale.', labelNames: LABELS, registers });
  }

  /** Children bound to one partition, for the hot path. */
  bind(topic: string, partition: number): PartitionLogMetrics {
    const labels = { topic, partition: String(partition) };
    return {
      appendedBytes: this.appendedBytes.labels(labels),
      appendedBatches: this.appendedBatches.labels(labels),
      appendedRecords: this.appendedRecords.labels(labels),
      flushes: this.flushes.labels(labels),
      fsyncDuration: this.fsyncDuration,
      fetchReadDuration: this.fetchReadDuration,
      segments: this.segments.labels(labels),
      sizeBytes: this.sizeBytes.labels(labels),
      retentionDeletedSegments: this.retentionDeletedSegments.labels(labels),
      compactedRecords: this.compactedRecords.labels(labels),
      recoveryTruncations: this.recoveryTruncations.labels(labels),
      corruptBatches: this.corruptBatches.labels(labels),
      leaderEpochRebuilds: this.leaderEpochRebuilds.labels(labels),
      scrubbedBytes: this.scrubbedBytes.labels(labels),
      corruptionRepairs: this.corruptionRepairs.labels(labels),
      remove: () => {
        for (const metric of [this.appendedBytes, this.appendedBatches, this.appendedRecords, this.flushes, this.retentionDeletedSegments, this.compactedRecords, this.recoveryTruncations, this.corruptBatches, this.leaderEpochRebuilds, this.scrubbedBytes, this.corruptionRepairs]) metric.remove(labels);
        this.segments.remove(labels);
        this.sizeBytes.remove(labels);
      },
    };
  }
}

interface CounterChild {
  inc(value?: number): void;
}
interface GaugeChild {
  set(value: number): void;
}

export interface PartitionLogMetrics {
  appendedBytes: CounterChild;
  appendedBatches: CounterChild;
  appendedRecords: CounterChild;
  flushes: CounterChild;
  fsyncDuration: { observe(value: number): void };
  fetchReadDuration: { observe(value: number): void };
  segments: GaugeChild;
  sizeBytes: GaugeChild;
  retentionDeletedSegments: CounterChild;
  compactedRecords: CounterChild;
  recoveryTruncations: CounterChild;
  corruptBatches: CounterChild;
  leaderEpochRebuilds: CounterChild;
  scrubbedBytes: CounterChild;
  corruptionRepairs: CounterChild;
  remove(): void;
}

/** Metrics that go nowhere, for logs opened without a LogMetrics. */
export const NO_LOG_METRICS: PartitionLogMetrics = (() => {
  const counter = { inc: (): void => {} };
  const gauge = { set: (): void => {} };
  return {
    appendedBytes: counter, appendedBatches: counter, appendedRecords: counter, flushes: counter,
    fsyncDuration: { observe: (): void => {} }, fetchReadDuration: { observe: (): void => {} }, segments: gauge, sizeBytes: gauge,
    retentionDeletedSegments: counter, compactedRecords: counter, recoveryTruncations: counter, corruptBatches: counter, leaderEpochRebuilds: counter, scrubbedBytes: counter, corruptionRepairs: counter, remove: (): void => {},
  };
})();
