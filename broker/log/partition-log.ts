// The log of one partition replica: a directory of segments, offsets assigned on append, reads by
// offset and timestamp, segment roll, retention, flush policies with group commit, recovery and
// truncation. Appends are synchronous (page cache); fdatasync is asynchronous, and one fdatasync
// round covers every append made before it started (group commit). Reads that serve fetches come
// from the tail cache or from the file on the thread pool (readForFetch); read() is synchronous.
//
// Each log keeps a leader-epoch cache (leader-epoch-cache.ts): the offset where each leader epoch
// began, persisted before the first batch of a new epoch is written, trimmed on truncation and
// retention, and rebuilt from batch headers when its checkpoint is lost. Batch epochs never
// decrease along a log: an append with an older epoch than the log's latest is refused
// (FENCED_LEADER_EPOCH), which also keeps a paused, deposed leader from writing.
//
// Departures from Kafka: the recovery checkpoint lives in the partition directory; a read serves
// batches from one segment only (as Kafka does) but CRC-checks every batch it serves; Kafka's log
// does not itself refuse older epochs (its Partition does); the producer-state snapshot is not
// here yet (replication issue).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RiffleError } from '../../src/rpc/errors.js';
import { assert } from '../../src/util/assert.js';
import { systemClock, type Clock } from '../../src/util/clock.js';
import { silentLogger, type Logger } from '../../src/util/logger.js';
import { crc32c } from '../../src/util/crc32c.js';
import { LOG_OVERHEAD_BYTES, decodeRecords, readBatchHeader, stampBatch, validateProducedBatches, verifyBatchCrc, type BatchHeader } from '../../src/util/record-batch.js';
import { LEADER_EPOCH_CHECKPOINT_FILE, LeaderEpochCache, LeaderEpochCheckpointFile, encodeLeaderEpochCheckpoint, type EpochEndOffset, type EpochEntry } from './leader-epoch-cache.js';
import { loadLeaderEpochs, type LoadedEpochs } from './leader-epoch-recovery.js';
import { validateLogConfig, type LogConfig } from './log-config.js';
import { NO_LOG_METRICS, type LogMetrics, type PartitionLogMetrics } from './log-metrics.js';
import { LogSegment, RELATIVE_OFFSET_MAX, type BatchLocation } from './log-segment.js';
import { recoverSegments } from './recovery.js';
import { RECOVERY_CHECKPOINT_FILE, encodeRecoveryCheckpoint, readRecoveryCheckpoint, RecoveryCheckpointFile, type RecoveryPoint } from './recovery-checkpoint.js';
import { INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, removeStrayFiles, segmentBaseOffsetsIn, segmentFileName, segmentPath } from './segment-files.js';
import { DurabilityWaiters } from './durability-waiters.js';
import { compactBatches, forEachKeyedRecord } from './log-compaction.js';
import type { LogTail } from './tail-cache.js';

export interface AppendInfo {
  baseOffset: number;
  lastOffset: number;
  logAppendTimeMs: number;
  maxTimestamp: number;
  bytes: number;
}

/** A CRC-32C over the stored bytes of whole batches, to compare replicas byte for byte. */
export interface LogChecksum {
  /** Base offset of the first batch covered (the log start when nothing is covered). */
  startOffset: number;
  /** Offset after the last batch covered. */
  offset: number;
  crc32c: number;
  bytes: number;
}

export interface PartitionLogOptions {
  dir: string;
  config: LogConfig;
  clock?: Clock;
  logger?: Logger;
  metrics?: LogMetrics;
  topic: string;
  partition: number;
  /** fdatasync of one file; tests substitute it to count or delay syncs. */
  syncFile?: (fd: number) => Promise<void>;
  /** Where this log keeps its last appends for reads at the log end (the broker's TailCache); none by default. */
  tail?: LogTail;
  /** Fetch reads this close to the end of the active segment stay synchronous (RECENT_READ_BYTES by default). */
  recentReadBytes?: number;
}

/** Largest buffer of batches one append takes (a produce request is far smaller). */
export const APPEND_BYTES_MAX = 512 * 1024 * 1024;
/**
 * A fetch read starting within this many bytes of the end of the active segment is synchronous:
 * what was written that recently is in the page cache, where a read costs less than the hop to
 * the thread pool (whose threads may all be busy with fdatasyncs).
 */
export const RECENT_READ_BYTES = 4 * 1024 * 1024;
/** Largest buffer one read returns, unless its first batch alone is larger. */
export const READ_BYTES_MAX = 64 * 1024 * 1024;
/** Largest batch a follower accepts from its leader; the leader already applied its own limit. */
export const FOLLOWER_BATCH_BYTES_MAX = 64 * 1024 * 1024;
/** Least time between two recovery checkpoints written by background syncs. */
export const CHECKPOINT_INTERVAL_MS = 1000;
/** Bytes read at a time by checksumUpTo. */
const CHECKSUM_CHUNK_BYTES = 1024 * 1024;
/** What a scrub reads past its budget, for the batch that crosses it (a bigger one reads the rest itself). */
const SCRUB_READ_AHEAD_BYTES = 256 * 1024;

const EMPTY = Buffer.alloc(0);
const NO_NEW_EPOCHS: readonly EpochEntry[] = [];

export function defaultSyncFile(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (error) => (error ? reject(error) : resolve())));
}

export interface ReadResult {
  records: Buffer;
  /** The offset after the last batch served (the fetch offset when none was). */
  nextOffset: number;
}

/** A read the tail cache could not serve: from the segment holding the fetch offset, below `limit`. */
interface FileRead {
  segment: LogSegment;
  limit: number;
  maxBytesWanted: number;
}

interface SyncTarget {
  point: RecoveryPoint;
  segments: LogSegment[];
  syncEpochCheckpoint: boolean;
  syncDirectory: boolean;
  truncations: number;
}

export class PartitionLog {
  readonly topic: string;
  readonly partition: number;
  readonly dir: string;
  private readonly config: LogConfig;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly metrics: PartitionLogMetrics;
  private readonly syncFile: (fd: number) => Promise<void>;
  private readonly tail: LogTail | null;
  private readonly recentReadBytes: number;
  private segments: LogSegment[];
  private readonly epochs: LeaderEpochCache;
  private nextOffset: number;
  private totalBytes = 0;
  private flushedPoint: RecoveryPoint;
  private readonly dirtySegments = new Set<LogSegment>();
  private directoryDirty = false;
  /** The leader epoch checkpoint was written since the last sync round took it. */
  private epochCheckpointDirty = false;
  private readonly waiters = new DurabilityWaiters();
  private syncRunning = false;
  private syncRequested = false;
  private idleWaiters: Array<() => void> = [];
  private truncations = 0;
  private lastCheckpointMs = -Infinity;
  /** The point and clean flag of the last checkpoint this log wrote. */
  private lastCheckpointWritten = '';
  private readonly checkpointFile: RecoveryCheckpointFile;
  private readonly epochFile: LeaderEpochCheckpointFile;
  private intervalTimer: NodeJS.Timeout | null = null;
  private failure: RiffleError | null = null;
  private closed = false;
  /** Base offset of the earliest batch found corrupt (by the scrubber or a read), until repaired. */
  private corruptFrom: number | null = null;
  /** Where the scrubber resumes: a closed segment's base offset and a batch position in it. */
  private scrubCursor: { segment: LogSegment | null; position: number } = { segment: null, position: 0 };

  private constructor(options: PartitionLogOptions, segments: LogSegment[], epochs: LoadedEpochs) {
    this.topic = options.topic;
    this.partition = options.partition;
    this.dir = options.dir;
    this.checkpointFile = new RecoveryCheckpointFile(options.dir);
    this.epochFile = new LeaderEpochCheckpointFile(options.dir);
    this.config = { ...options.config };
    this.clock = options.clock ?? systemClock;
    this.logger = (options.logger ?? silentLogger).child({ topic: options.topic, partition: options.partition });
    this.metrics = options.metrics?.bind(options.topic, options.partition) ?? NO_LOG_METRICS;
    this.syncFile = options.syncFile ?? defaultSyncFile;
    this.tail = options.tail ?? null;
    this.recentReadBytes = options.recentReadBytes ?? RECENT_READ_BYTES;
    assert(segments.length > 0, 'a log has at least one segment');
    this.segments = segments;
    this.nextOffset = this.active.nextOffset;
    for (const segment of segments) this.totalBytes += segment.sizeBytes;
    this.flushedPoint = { offset: segments[0]!.baseOffset, segmentBaseOffset: segments[0]!.baseOffset, position: 0, clean: false };
    this.epochs = new LeaderEpochCache(epochs.entries, { write: (entries) => this.storeEpochs(entries) });
  }

  /** Opens (creating if needed) and recovers the partition directory. */
  static async open(options: PartitionLogOptions): Promise<PartitionLog> {
    validateLogConfig(options.config);
    const logger = (options.logger ?? silentLogger).child({ topic: options.topic, partition: options.partition });
    const started = performance.now();
    const names = await PartitionLog.prepareDirectory(options.dir);
    const bases = segmentBaseOffsetsIn(names);
    removeStrayFiles(options.dir, names, bases);
    const outcome = recoverSegments(options.dir, bases, readRecoveryCheckpoint(options.dir), options.config.indexIntervalBytes, logger);
    const epochs = loadLeaderEpochs(options.dir, outcome.segments, logger);
    const log = new PartitionLog(options, outcome.segments, epochs);
    // Written before the log is used, so the next open finds a checkpoint that matches the log.
    // Made durable by the flush below, on the thread pool like any epoch change (an fsync here,
    // on the event loop, cost a restart with 1,000 replicas over half a second: an empty
    // partition's epoch is trimmed at every open).
    if (epochs.changed) log.storeEpochs(epochs.entries);
    log.metrics.recoveryTruncations.inc(outcome.truncations);
    log.metrics.corruptBatches.inc(outcome.corruptBatches);
    if (epochs.rebuilt) log.metrics.leaderEpochRebuilds.inc();
    log.restoreRollClock();
    for (const segment of outcome.verifiedSegments) log.dirtySegments.add(segment);
    log.directoryDirty = true;
    await log.flush();
    log.startIntervalFlusher();
    log.updateGauges();
    logger.info({ logStartOffset: log.logStartOffset, logEndOffset: log.logEndOffset, segments: log.segments.length, verifiedBytes: outcome.verifiedBytes, truncations: outcome.truncations, latestEpoch: log.latestEpoch, ms: Math.round(performance.now() - started) }, `partition log ${options.topic}-${options.partition} opened`);
    return log;
  }

  /**
   * Creates the directory if needed and returns its entries. A directory without a segment (a new
   * replica, or one whose creation a crash cut short) first gets the files of an empty log: the
   * first segment and its indexes, an empty epoch checkpoint and a recovery checkpoint at offset
   * 0, all created at once on the thread pool. Creating a file costs about half a millisecond of
   * journal work on a busy disk, and a broker opening a new topic's replicas on its event loop
   * (five files each, created by the first writes) served nobody else meanwhile: 100-150 ms for
   * the 50 partitions of `__consumer_offsets`. The files then open without being created; the
   * directory fsync of the open's flush makes their entries durable.
   */
  private static async prepareDirectory(dir: string): Promise<string[]> {
    await fs.promises.mkdir(dir, { recursive: true });
    const names = await fs.promises.readdir(dir);
    if (segmentBaseOffsetsIn(names).length > 0) return names;
    const empty = Buffer.alloc(0);
    const start: RecoveryPoint = { offset: 0, segmentBaseOffset: 0, position: 0, clean: false };
    const files: [string, Buffer | string][] = [
      [segmentFileName(0, INDEX_SUFFIX), empty],
      [segmentFileName(0, TIME_INDEX_SUFFIX), empty],
      [LEADER_EPOCH_CHECKPOINT_FILE, encodeLeaderEpochCheckpoint([])],
      [RECOVERY_CHECKPOINT_FILE, encodeRecoveryCheckpoint(start)],
    ];
    // The log file last: a crash before it leaves no segment, so the next open starts over.
    await Promise.all(files.map(([name, content]) => fs.promises.writeFile(path.join(dir, name), content)));
    const log = segmentFileName(0, LOG_SUFFIX);
    await fs.promises.writeFile(path.join(dir, log), empty);
    // What the directory now holds, without reading it again: what it had (strays, say) and these.
    return [...new Set([...names, ...files.map(([name]) => name), log])];
  }

  get logStartOffset(): number {
    return this.segments[0]!.baseOffset;
  }

  /** The next offset to assign. */
  get logEndOffset(): number {
    return this.nextOffset;
  }

  /** Every offset below this is fsynced. */
  get flushedOffset(): number {
    return this.flushedPoint.offset;
  }

  get sizeBytes(): number {
    return this.totalBytes;
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  private get active(): LogSegment {
    return this.segments[this.segments.length - 1]!;
  }

  // -------------------------------------------------------------------------------------------
  // Appending

  /**
   * Validates a produce request's batches, assigns their offsets and writes them, stamped with
   * `leaderEpoch`. An epoch newer than the log's latest is recorded in the leader-epoch cache
   * first; an older one is refused with FENCED_LEADER_EPOCH (a deposed leader).
   */
  append(batches: Buffer, leaderEpoch: number): AppendInfo {
    this.throwIfUnusable();
    assert(Number.isInteger(leaderEpoch) && leaderEpoch >= -1 && leaderEpoch <= 0x7fff_ffff, () => `bad leader epoch ${leaderEpoch}`);
    const latestEpoch = this.epochs.latestEpoch();
    if (leaderEpoch < latestEpoch) throw this.fencedEpoch(leaderEpoch, latestEpoch, this.nextOffset);
    if (batches.length > APPEND_BYTES_MAX) throw new RiffleError('RECORD_LIST_TOO_LARGE', `${batches.length} bytes exceed the append limit of ${APPEND_BYTES_MAX}`);
    const summary = validateProducedBatches(batches, { maxBatchBytes: this.config.maxBatchBytes });
    const headers: BatchHeader[] = [];
    let offset = this.nextOffset;
    for (let position = 0; position < batches.length; position += LOG_OVERHEAD_BYTES + headers[headers.length - 1]!.batchLength) {
      stampBatch(batches, position, offset, leaderEpoch);
      const header = readBatchHeader(batches, position);
      headers.push(header);
      offset += header.lastOffsetDelta + 1;
    }
    assert(headers.length === summary.batches, 'batch count changed between validation and stamping');
    const newEpochs = leaderEpoch > latestEpoch ? [{ epoch: leaderEpoch, startOffset: this.nextOffset }] : NO_NEW_EPOCHS;
    const info = this.writeBatches(batches, headers, newEpochs);
    // A leader's appends are what its followers and tailing consumers read next. (A follower's
    // are read only by consumers in its AZ, which is not worth a copy of every append.)
    this.tail?.add(info.baseOffset, info.lastOffset + 1, batches, headers.length);
    return info;
  }

  /**
   * Appends batches whose offsets the leader assigned; they must continue this log exactly, and
   * their leader epochs must not go below the epoch of this log's last batch (truncate the
   * divergent tail first). Each batch that starts a newer epoch is recorded in the leader-epoch
   * cache. An epoch this replica began as leader without writing anything is dropped: it holds
   * no batch, and the leader's batches, whatever their epochs, replace it.
   */
  appendAsFollower(batches: Buffer): AppendInfo {
    this.throwIfUnusable();
    if (batches.length === 0) throw new RiffleError('INVALID_RECORD', 'no record batch to append');
    const headers: BatchHeader[] = [];
    const newEpochs: EpochEntry[] = [];
    const lastBatchEpoch = this.epochs.epochForOffset(this.nextOffset - 1);
    let latestEpoch = lastBatchEpoch;
    let expected = this.nextOffset;
    for (let position = 0; position < batches.length; position += LOG_OVERHEAD_BYTES + headers[headers.length - 1]!.batchLength) {
      const header = readBatchHeader(batches, position);
      if (LOG_OVERHEAD_BYTES + header.batchLength > FOLLOWER_BATCH_BYTES_MAX) throw new RiffleError('MESSAGE_TOO_LARGE', `replicated batch of ${header.batchLength} bytes`);
      verifyBatchCrc(batches, position);
      if (header.baseOffset !== expected || header.lastOffsetDelta < 0) {
        throw new RiffleError('OFFSET_OUT_OF_RANGE', `replicated batch at offset ${header.baseOffset} does not continue the log at ${expected}`);
      }
      const epoch = header.partitionLeaderEpoch;
      if (epoch < latestEpoch) throw this.fencedEpoch(epoch, latestEpoch, header.baseOffset);
      if (epoch > latestEpoch) newEpochs.push({ epoch, startOffset: header.baseOffset });
      latestEpoch = epoch;
      headers.push(header);
      expected = header.baseOffset + header.lastOffsetDelta + 1;
    }
    return this.writeBatches(batches, headers, newEpochs, this.epochs.latestEpoch() !== lastBatchEpoch);
  }

  private fencedEpoch(epoch: number, latestEpoch: number, offset: number): RiffleError {
    return new RiffleError('FENCED_LEADER_EPOCH', `batch at offset ${offset} of ${this.topic}-${this.partition} has leader epoch ${epoch}, older than the log's latest epoch ${latestEpoch}`);
  }

  /**
   * Writes stamped batches at the log end. New epochs are persisted in the leader-epoch
   * checkpoint before the batches are written, so no batch on disk has an epoch the checkpoint
   * lacks; a failed write takes them back out. `dropBegunEpochs` first forgets epochs begun at
   * the log end without data (a follower's).
   */
  private writeBatches(batches: Buffer, headers: BatchHeader[], newEpochs: readonly EpochEntry[], dropBegunEpochs = false): AppendInfo {
    const nowMs = this.clock.nowMs();
    const firstOffset = headers[0]!.baseOffset;
    const last = headers[headers.length - 1]!;
    const lastOffset = last.baseOffset + last.lastOffsetDelta;
    if (this.shouldRoll(batches.length, lastOffset, nowMs)) this.roll();
    const segment = this.active;
    const start = segment.sizeBytes;
    if (dropBegunEpochs) this.epochs.truncateFromEnd(this.nextOffset);
    for (const entry of newEpochs) {
      this.epochs.assign(entry.epoch, entry.startOffset);
      this.logger.info({ epoch: entry.epoch, startOffset: entry.startOffset }, `partition log ${this.topic}-${this.partition} began leader epoch ${entry.epoch} at ${entry.startOffset}`);
    }
    try {
      segment.write(batches);
    } catch (error) {
      const storageError = this.storageError('write', error);
      if (segment.isDamaged) this.fail(storageError);
      if (newEpochs.length > 0) this.forgetEpochsFrom(this.nextOffset);
      throw storageError;
    }
    if (segment.firstAppendMs === null) segment.firstAppendMs = nowMs;
    let position = start;
    let maxTimestamp = -1;
    for (const header of headers) {
      const sizeBytes = LOG_OVERHEAD_BYTES + header.batchLength;
      segment.indexBatch(position, sizeBytes, header.baseOffset, header.baseOffset + header.lastOffsetDelta, header.maxTimestamp, this.config.indexIntervalBytes);
      if (header.maxTimestamp > maxTimestamp) maxTimestamp = header.maxTimestamp;
      position += sizeBytes;
    }
    this.nextOffset = lastOffset + 1;
    this.totalBytes += batches.length;
    this.dirtySegments.add(segment);
    this.countAppend(batches.length, headers);
    return { baseOffset: firstOffset, lastOffset, logAppendTimeMs: nowMs, maxTimestamp, bytes: batches.length };
  }

  private countAppend(bytes: number, headers: BatchHeader[]): void {
    let records = 0;
    for (const header of headers) records += header.recordsCount;
    this.metrics.appendedBytes.inc(bytes);
    this.metrics.appendedBatches.inc(headers.length);
    this.metrics.appendedRecords.inc(records);
    this.metrics.sizeBytes.set(this.totalBytes);
  }

  private shouldRoll(appendBytes: number, lastOffset: number, nowMs: number): boolean {
    const segment = this.active;
    if (segment.isEmpty) return false;
    return (
      segment.sizeBytes + appendBytes > this.config.segmentBytes ||
      (segment.firstAppendMs !== null && nowMs - segment.firstAppendMs >= this.config.segmentMs) ||
      lastOffset - segment.baseOffset > RELATIVE_OFFSET_MAX ||
      segment.isIndexFull
    );
  }

  private roll(): void {
    const previous = this.active;
    previous.seal();
    const next = LogSegment.create(this.dir, this.nextOffset);
    this.segments.push(next);
    this.directoryDirty = true;
    this.logger.info({ baseOffset: next.baseOffset, previousBytes: previous.sizeBytes }, `partition log ${this.topic}-${this.partition} rolled segment ${next.baseOffset}`);
    this.updateGauges();
    // As Kafka does on roll, flush the finished segment in the background so the recovery
    // checkpoint moves past it whatever the flush policy.
    this.requestSync();
  }

  // -------------------------------------------------------------------------------------------
  // Leader epochs (KIP-101)

  /**
   * The newest leader epoch in the cache, or -1: a follower's "last fetched epoch". It is the
   * epoch of the last batch unless beginLeaderEpoch recorded a newer one that wrote nothing yet.
   */
  get latestEpoch(): number {
    return this.epochs.latestEpoch();
  }

  /**
   * The OffsetsForLeaderEpoch answer of this replica: the largest epoch at or below `epoch` and
   * the offset where the next higher epoch starts, or the log end offset for the latest epoch
   * ({ -1, -1 } for -1 or an epoch newer than any known; see LeaderEpochCache.endOffsetFor).
   */
  endOffsetForEpoch(epoch: number): EpochEndOffset {
    this.throwIfUnusable();
    return this.epochs.endOffsetFor(epoch, this.nextOffset);
  }

  /**
   * Records that `epoch` starts at the log end, as a new leader does before its first append
   * (Kafka's makeLeader), so it answers OffsetsForLeaderEpoch for the epochs before it correctly
   * at once. Refuses an epoch older than the latest; the latest again changes nothing.
   */
  beginLeaderEpoch(epoch: number): void {
    this.throwIfUnusable();
    assert(Number.isInteger(epoch) && epoch >= 0 && epoch <= 0x7fff_ffff, () => `bad leader epoch ${epoch}`);
    const latestEpoch = this.epochs.latestEpoch();
    if (epoch < latestEpoch) throw this.fencedEpoch(epoch, latestEpoch, this.nextOffset);
    if (this.epochs.assign(epoch, this.nextOffset)) this.logger.info({ epoch, startOffset: this.nextOffset }, `partition log ${this.topic}-${this.partition} began leader epoch ${epoch} at ${this.nextOffset}`);
  }

  /**
   * The follower's side of leader-epoch truncation. The leader said its log ends epoch
   * `leaderEpoch` at `leaderEndOffset` (OffsetsForLeaderEpoch, or a fetch's diverging epoch).
   * Truncates to the smaller of that and where this log ends the same epoch: when this log never
   * had `leaderEpoch`, its own largest epoch below it may end earlier, and keeping batches past
   * that point would keep a tail the leader does not have (KIP-279). The next fetch, carrying the
   * new latest epoch, checks again, so divergence resolves in rounds. Returns the new log end.
   */
  truncateToDivergence(leaderEpoch: number, leaderEndOffset: number): number {
    this.throwIfUnusable();
    assert(Number.isSafeInteger(leaderEndOffset) && leaderEndOffset >= 0, () => `bad diverging end offset ${leaderEndOffset}`);
    let target = leaderEndOffset;
    if (leaderEpoch >= 0) {
      const own = this.epochs.endOffsetFor(leaderEpoch, this.nextOffset);
      if (own.endOffset >= 0) target = Math.min(target, own.endOffset);
    }
    this.truncateTo(target);
    return this.nextOffset;
  }

  /** The leader-epoch cache's entries, oldest first. */
  leaderEpochEntries(): EpochEntry[] {
    return this.epochs.entries();
  }

  /**
   * The store behind the epoch cache: the checkpoint is rewritten at once, in place, and fsynced
   * by the next sync round, off the event loop, before that round counts any offset as flushed.
   * So every acknowledged batch's epoch is durable, but a leader election does not hold the
   * broker's event loop for fsyncs (about a second per 1,000 partitions changing leader when it
   * did). A crash before the round leaves the previous checkpoint, or a torn one: recovery finds
   * it disagreeing with the last batch's epoch, or failing its CRC, and rebuilds it from the
   * batch headers; only an epoch with no batch yet can be lost that way, and a restarted replica
   * begins a newer one.
   */
  private storeEpochs(entries: readonly EpochEntry[]): void {
    try {
      if (this.epochFile.write(entries)) this.directoryDirty = true;
    } catch (error) {
      // A failed checkpoint write fails the log, like a failed fsync.
      const storageError = this.storageError('leader epoch checkpoint write', error);
      this.fail(storageError);
      throw storageError;
    }
    this.epochCheckpointDirty = true;
  }

  /** Drops epochs starting at or after `offset`; a failed write has already failed the log. */
  private forgetEpochsFrom(offset: number): void {
    try {
      this.epochs.truncateFromEnd(offset);
    } catch (error) {
      this.logger.error({ error: (error as Error).message }, `partition log ${this.topic}-${this.partition} could not take back a leader epoch`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Durability

  /**
   * Resolves once every offset below `offsetExclusive` is fsynced (policy `ack`); at once for
   * the other policies. Waiters share fdatasync rounds.
   */
  waitDurable(offsetExclusive: number): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new RiffleError('NOT_LEADER_OR_FOLLOWER', `partition log ${this.topic}-${this.partition} is closed`));
    if (this.config.flushPolicy !== 'ack' || offsetExclusive <= this.flushedPoint.offset) return Promise.resolve();
    assert(offsetExclusive <= this.nextOffset, () => `waitDurable(${offsetExclusive}) beyond log end ${this.nextOffset}`);
    const promise = this.waiters.add(offsetExclusive);
    this.requestSync();
    return promise;
  }

  /** Fsyncs everything appended so far, persists the indexes and writes the recovery checkpoint. */
  async flush(): Promise<void> {
    this.throwIfFailed();
    const target = this.nextOffset;
    this.requestSync();
    // Wait for the round that covers `target`, not for the sync loop to go idle, which it may
    // never do under a steady stream of acks=all appends.
    if (target > this.flushedPoint.offset) await this.waiters.add(target);
    else await this.whenSyncIdle();
    this.throwIfFailed();
    if (this.closed) return;
    this.active.persistIndexes();
    // Not fsynced: a lost checkpoint only makes the next recovery verify more, and a synchronous
    // fsync here would stall the event loop. close() writes the durable, clean one.
    this.writeCheckpoint(false);
  }

  private requestSync(): void {
    this.syncRequested = true;
    if (!this.syncRunning) void this.runSyncLoop();
  }

  private whenSyncIdle(): Promise<void> {
    if (!this.syncRunning) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async runSyncLoop(): Promise<void> {
    this.syncRunning = true;
    try {
      while (this.syncRequested && this.failure === null) {
        this.syncRequested = false;
        // A request made while a round was out, for offsets that round covered (a second wait on
        // the same batch, a flush), needs no round of its own.
        if (!this.hasUnsyncedWork()) break;
        await this.syncOnce();
        if (this.waiters.hasAbove(this.flushedPoint.offset)) this.syncRequested = true;
      }
    } finally {
      this.syncRunning = false;
      const idle = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of idle) resolve();
    }
  }

  /** Something a sync round would make durable: data, the epoch checkpoint or the directory. */
  private hasUnsyncedWork(): boolean {
    return this.dirtySegments.size > 0 || this.epochCheckpointDirty || this.directoryDirty || this.nextOffset > this.flushedPoint.offset;
  }

  private async syncOnce(): Promise<void> {
    const target: SyncTarget = {
      point: this.endPoint(),
      segments: [...this.dirtySegments].filter((segment) => segment.isOpen),
      syncEpochCheckpoint: this.epochCheckpointDirty,
      syncDirectory: this.directoryDirty,
      truncations: this.truncations,
    };
    this.dirtySegments.clear();
    this.epochCheckpointDirty = false;
    this.directoryDirty = false;
    const started = performance.now();
    // Every fdatasync of the round runs at once on the thread pool: the segments, the epoch
    // checkpoint and the directory (whose entries make new files and renames durable). The
    // directory's fd, opened here, is closed only once every sync returned, so it is not reused
    // while one is still queued.
    let directory: number | null = null;
    let failure: unknown = null;
    try {
      if (target.syncDirectory) directory = fs.openSync(this.dir, 'r');
      const syncs = target.segments.map((segment) => segment.sync(this.syncFile));
      if (target.syncEpochCheckpoint) syncs.push(this.epochFile.sync(this.syncFile));
      if (directory !== null) syncs.push(this.syncFile(directory));
      const results = await Promise.allSettled(syncs);
      failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected')?.reason ?? null;
    } catch (error) {
      failure = error;
    } finally {
      if (directory !== null) fs.closeSync(directory);
    }
    if (failure !== null) {
      this.fail(this.storageError('fdatasync', failure));
      return;
    }
    this.metrics.fsyncDuration.observe((performance.now() - started) / 1000);
    this.metrics.flushes.inc();
    this.advanceFlushed(target);
  }

  private advanceFlushed(target: SyncTarget): void {
    // A truncation during the round may have removed what it synced; the next round decides.
    if (target.truncations === this.truncations && target.point.offset > this.flushedPoint.offset) {
      this.flushedPoint = target.point;
    }
    this.waiters.resolveUpTo(this.flushedPoint.offset);
    const nowMs = this.clock.monotonicMs();
    if (!this.closed && nowMs - this.lastCheckpointMs >= CHECKPOINT_INTERVAL_MS) this.writeCheckpoint(false);
  }

  private endPoint(): RecoveryPoint {
    const active = this.active;
    return { offset: this.nextOffset, segmentBaseOffset: active.baseOffset, position: active.sizeBytes, clean: false };
  }

  private writeCheckpoint(durable: boolean, clean = false): void {
    let point = this.flushedPoint;
    if (!this.segments.some((segment) => segment.baseOffset === point.segmentBaseOffset)) {
      // The segment the point was in is gone (retention); the first segment's start is safe.
      const first = this.segments[0]!;
      point = { offset: first.baseOffset, segmentBaseOffset: first.baseOffset, position: 0, clean: false };
    }
    // The file already says exactly this (a flush right after the sync loop wrote it, say): a
    // rewrite would only cost the event loop an open, a write and a rename.
    const written = `${point.offset} ${point.segmentBaseOffset} ${point.position} ${clean}`;
    if (!durable && written === this.lastCheckpointWritten) return;
    try {
      this.checkpointFile.write({ ...point, clean }, durable);
      this.lastCheckpointWritten = written;
      this.lastCheckpointMs = this.clock.monotonicMs();
    } catch (error) {
      this.fail(this.storageError('checkpoint write', error));
    }
  }

  private startIntervalFlusher(): void {
    if (this.config.flushPolicy !== 'interval') return;
    this.intervalTimer = setInterval(() => {
      if (this.nextOffset > this.flushedPoint.offset) this.requestSync();
    }, this.config.flushIntervalMs);
    this.intervalTimer.unref();
  }

  // -------------------------------------------------------------------------------------------
  // Reading

  /**
   * Whole batches from the one containing `fetchOffset`, up to `maxBytes` (but at least one
   * batch), none reaching `maxOffsetExclusive`. Every batch served has passed its CRC check.
   * Reads the file synchronously: for loading state at startup and for tools. Fetches use
   * readForFetch.
   */
  read(fetchOffset: number, maxBytes: number, maxOffsetExclusive = this.nextOffset): ReadResult {
    const start = this.startRead(fetchOffset, maxBytes, maxOffsetExclusive);
    return 'segment' in start ? this.readFile(fetchOffset, start) : start;
  }

  private readFile(fetchOffset: number, { segment, limit, maxBytesWanted }: FileRead): ReadResult {
    const first = this.locate(segment, fetchOffset);
    if (first === null || first.lastOffset >= limit) return { records: EMPTY, nextOffset: fetchOffset };
    const wanted = Math.max(first.sizeBytes, Math.min(maxBytesWanted, READ_BYTES_MAX, segment.sizeBytes - first.position));
    return this.serve(segment, first, segment.read(first.position, wanted), limit);
  }

  /**
   * What read() returns, for serving fetches (consumers, followers, Kinesis readers): the last
   * appends come from the tail cache at once, and so do reads near the end of the active segment
   * (RECENT_READ_BYTES, in the page cache); older batches are read on the thread pool, as they
   * are seldom in the page cache and a synchronous read from the disk held the event loop, and
   * every request of the broker with it, for as long as the disk took. When the log is
   * truncated, closed or loses the segment while the read is out, the fetch is read again from
   * the log as it is then.
   */
  readForFetch(fetchOffset: number, maxBytes: number, maxOffsetExclusive = this.nextOffset): ReadResult | Promise<ReadResult> {
    const start = this.startRead(fetchOffset, maxBytes, maxOffsetExclusive);
    if (!('segment' in start)) return start;
    const { segment } = start;
    if (segment === this.active && segment.sizeBytes - segment.positionNear(fetchOffset) <= this.recentReadBytes) return this.readFile(fetchOffset, start);
    return this.readFileAsync(fetchOffset, maxBytes, maxOffsetExclusive, start);
  }

  private async readFileAsync(fetchOffset: number, maxBytes: number, maxOffsetExclusive: number, start: FileRead): Promise<ReadResult> {
    const { segment, limit, maxBytesWanted } = start;
    const truncations = this.truncations;
    const changed = (): boolean => this.closed || this.failure !== null || this.truncations !== truncations || !segment.isOpen || !this.segments.includes(segment);
    const started = performance.now();
    let found: { location: BatchLocation; bytes: Buffer } | null;
    try {
      found = await segment.readBatchesAsync(fetchOffset, Math.min(maxBytesWanted, READ_BYTES_MAX));
    } catch (error) {
      if (changed()) return this.readForFetch(fetchOffset, maxBytes, maxOffsetExclusive);
      throw this.corruptSegment(segment, error);
    }
    this.metrics.fetchReadDuration.observe((performance.now() - started) / 1000);
    if (changed()) return this.readForFetch(fetchOffset, maxBytes, maxOffsetExclusive);
    if (found === null || found.location.lastOffset >= limit) return { records: EMPTY, nextOffset: fetchOffset };
    return this.serve(segment, found.location, found.bytes, limit);
  }

  /** Checks a read and serves it from the tail cache when it can; else the segment to read. */
  private startRead(fetchOffset: number, maxBytes: number, maxOffsetExclusive: number): ReadResult | FileRead {
    this.throwIfUnusable();
    if (!Number.isSafeInteger(fetchOffset) || fetchOffset < this.logStartOffset || fetchOffset > this.nextOffset) {
      throw new RiffleError('OFFSET_OUT_OF_RANGE', `offset ${fetchOffset} is outside [${this.logStartOffset}, ${this.nextOffset}] of ${this.topic}-${this.partition}`);
    }
    const limit = Math.min(maxOffsetExclusive, this.nextOffset);
    const maxBytesWanted = Number.isNaN(maxBytes) ? 0 : Math.max(Math.floor(maxBytes), 0);
    if (fetchOffset >= limit) return { records: EMPTY, nextOffset: fetchOffset };
    // The last appends, from memory; never past a corrupt batch, which only the file path may judge.
    if (this.tail !== null && this.corruptFrom === null) {
      const kept = this.tail.read(fetchOffset, Math.min(maxBytesWanted, READ_BYTES_MAX), limit);
      if (kept !== null) return kept;
    }
    const segment = this.segmentFor(fetchOffset);
    if (segment === null) return { records: EMPTY, nextOffset: fetchOffset };
    return { segment, limit, maxBytesWanted };
  }

  /** The leading servable batches of `chunk`, read from `first` on. */
  private serve(segment: LogSegment, first: BatchLocation, chunk: Buffer, limit: number): ReadResult {
    let served: { bytes: number; nextOffset: number };
    try {
      served = this.servableBytes(chunk, limit);
    } catch (error) {
      this.noteCorruption(first.baseOffset);
      throw error;
    }
    segment.rememberReadEnd(served.nextOffset, first.position + served.bytes);
    return { records: chunk.subarray(0, served.bytes), nextOffset: served.nextOffset };
  }

  /**
   * A CRC-32C over the stored bytes of every whole batch from `fromOffset` (default: the log
   * start) up to, not including, `offsetExclusive` (a batch straddling either bound is left out).
   * Base offsets and leader epochs are stamped in the stored bytes, so replicas holding the same
   * batches give the same answer. The bytes are read on the thread pool a chunk at a time: a
   * checksum of a large log read synchronously held the event loop (heartbeats, every request)
   * for as long as the disk took, long enough to get a broker fenced. A log that changes under
   * the read (closed, failed, truncated, or a segment removed or replaced) fails the call with
   * a retriable OFFSET_NOT_AVAILABLE; appends past the bound do not matter.
   */
  async checksumUpTo(offsetExclusive: number, fromOffset = this.logStartOffset): Promise<LogChecksum> {
    this.throwIfUnusable();
    assert(Number.isSafeInteger(offsetExclusive) && offsetExclusive >= 0, () => `bad checksum offset ${offsetExclusive}`);
    if (!Number.isSafeInteger(fromOffset) || fromOffset < this.logStartOffset) {
      throw new RiffleError('OFFSET_OUT_OF_RANGE', `checksum from ${fromOffset} starts below the log start ${this.logStartOffset} of ${this.topic}-${this.partition}`);
    }
    const end = Math.min(offsetExclusive, this.nextOffset);
    const truncations = this.truncations;
    const unchanged = (segment: LogSegment): void => {
      if (this.closed || this.failure !== null || this.truncations !== truncations || !segment.isOpen || !this.segments.includes(segment)) {
        throw new RiffleError('OFFSET_NOT_AVAILABLE', `the log of ${this.topic}-${this.partition} changed while its checksum was read; ask again`);
      }
    };
    const result: LogChecksum = { startOffset: -1, offset: -1, crc32c: 0, bytes: 0 };
    for (const segment of [...this.segments]) {
      unchanged(segment);
      if (segment.isEmpty || segment.nextOffset <= fromOffset || segment.baseOffset >= end) continue;
      const range = this.wholeBatchRange(segment, fromOffset, end);
      if (range.to <= range.from) continue;
      if (result.startOffset < 0) result.startOffset = range.firstOffset;
      result.offset = range.nextOffset;
      for (let position = range.from; position < range.to; position += CHECKSUM_CHUNK_BYTES) {
        const length = Math.min(CHECKSUM_CHUNK_BYTES, range.to - position);
        const chunk = await segment.readAsync(position, length);
        unchanged(segment);
        assert(chunk.length === length, () => `checksum read ${chunk.length} of ${length} bytes at ${position} of ${segment.logPath}`);
        result.crc32c = crc32c(chunk, result.crc32c);
        result.bytes += chunk.length;
      }
    }
    if (result.startOffset < 0) result.startOffset = result.offset = fromOffset;
    assert(result.offset <= end || result.bytes === 0, 'the checksum covers only batches below its bound');
    return result;
  }

  /** File positions and offsets of the whole batches of `segment` within [fromOffset, end). */
  private wholeBatchRange(segment: LogSegment, fromOffset: number, end: number): { from: number; to: number; firstOffset: number; nextOffset: number } {
    let from = 0;
    let firstOffset = segment.baseOffset;
    if (fromOffset > segment.baseOffset) {
      const first = this.locate(segment, fromOffset)!;
      const whole = first.baseOffset === fromOffset;
      from = whole ? first.position : first.position + first.sizeBytes;
      firstOffset = whole ? first.baseOffset : first.lastOffset + 1;
    }
    let to = segment.sizeBytes;
    let nextOffset = segment.nextOffset;
    if (end < segment.nextOffset) {
      // Everything before the batch holding `end` lies wholly below it.
      const cut = this.locate(segment, end)!;
      to = cut.position;
      nextOffset = cut.baseOffset;
    }
    return { from, to, firstOffset, nextOffset };
  }

  /** Bytes of the leading whole, CRC-clean batches of `chunk` below `limit`. */
  private servableBytes(chunk: Buffer, limit: number): { bytes: number; nextOffset: number } {
    let position = 0;
    let nextOffset = -1;
    while (chunk.length - position >= LOG_OVERHEAD_BYTES) {
      const sizeBytes = LOG_OVERHEAD_BYTES + chunk.readInt32BE(position + 8);
      if (position + sizeBytes > chunk.length) break;
      let header: BatchHeader;
      try {
        header = readBatchHeader(chunk, position);
        verifyBatchCrc(chunk, position);
      } catch (error) {
        if (position === 0) throw this.corruptBatch(error);
        break;
      }
      const lastOffset = header.baseOffset + header.lastOffsetDelta;
      if (lastOffset >= limit) break;
      nextOffset = lastOffset + 1;
      position += sizeBytes;
    }
    assert(position > 0, 'a read serves at least one batch');
    return { bytes: position, nextOffset };
  }

  /**
   * The batch holding `offset`; a header that does not parse or fit is a corrupt log. The damage
   * lies somewhere between the index entry and `offset`, so the whole segment counts as corrupt.
   */
  private locate(segment: LogSegment, offset: number): BatchLocation | null {
    let location: BatchLocation | null;
    try {
      location = segment.findBatch(offset);
    } catch (error) {
      throw this.corruptSegment(segment, error);
    }
    if (location !== null && location.position + location.sizeBytes > segment.sizeBytes) {
      this.noteCorruption(segment.baseOffset);
      throw this.corruptBatch(new Error(`batch at position ${location.position} runs past the end of its segment`));
    }
    return location;
  }

  /** A header that does not parse on the way to a batch: the whole segment counts as corrupt. Other errors pass. */
  private corruptSegment(segment: LogSegment, error: unknown): unknown {
    if (!(error instanceof RiffleError) || error.errorName !== 'CORRUPT_MESSAGE') return error;
    this.noteCorruption(segment.baseOffset);
    return this.corruptBatch(error);
  }

  // -------------------------------------------------------------------------------------------
  // Scrubbing and repair of corrupt batches in closed segments

  /**
   * The base offset of the earliest batch known to be corrupt, or null. Nothing from there on
   * may be served or counted as replicated: the partition repairs it (a follower truncates to it
   * and fetches again from the leader; a leader first hands its leadership to another ISR member).
   */
  get corruptOffset(): number | null {
    return this.corruptFrom;
  }

  /** Truncations of this log so far: a reader working across awaits compares it to notice one. */
  get truncationCount(): number {
    return this.truncations;
  }

  /** The leader epoch of the batch holding `offset - 1` (-1 for none): a fetch's last fetched epoch at `offset`. */
  epochBefore(offset: number): number {
    return this.epochs.epochForOffset(offset - 1);
  }

  private noteCorruption(offset: number): void {
    if (this.corruptFrom !== null && this.corruptFrom <= offset) return;
    this.corruptFrom = offset;
    this.logger.error({ offset }, `partition log ${this.topic}-${this.partition} found a corrupt batch at ${offset}; it must be repaired from the leader`);
  }

  /**
   * Verifies the CRC of up to about `budgetBytes` of stored batches in closed, fsynced segments,
   * resuming where the previous call stopped and wrapping around at the end (the active segment
   * and unflushed bytes are left to recovery, which verifies them after a crash). Resolves to the
   * bytes verified. A corrupt batch is recorded (corruptOffset) and the scrub moves on to the
   * next segment. The bytes are read on the thread pool: old segments are seldom in the page
   * cache, and a synchronous read from the disk held the event loop, and every request of the
   * broker with it, for as long as the disk took (a default round reads 1.6 MiB, ten a second).
   * A call ends early when the log changes under its read (closed, failed, truncated, or the
   * segment removed or replaced); the next call starts afresh.
   */
  async scrub(budgetBytes: number): Promise<number> {
    this.throwIfUnusable();
    assert(Number.isSafeInteger(budgetBytes) && budgetBytes > 0, () => `bad scrub budget ${budgetBytes}`);
    // Most logs have only their active segment: the scrubber visits every log ten times a second.
    if (this.segments.length < 2) return 0;
    const closed = this.segments.slice(0, -1).filter((segment) => segment.nextOffset <= this.flushedPoint.offset && !segment.isEmpty);
    const truncations = this.truncations;
    let verified = 0;
    // At most one pass per call: the segment in progress, then each other closed segment once.
    for (let step = 0; closed.length > 0 && step <= closed.length && verified < budgetBytes; step++) {
      const segment = this.scrubTarget(closed);
      if (!this.isScrubbable(segment, truncations)) break;
      const from = this.scrubCursor.position;
      const budgetLeft = budgetBytes - verified;
      // The batch that crosses the budget is read too (the scan stops after it), so read past it.
      const bytes = await segment.readAsync(from, Math.min(segment.sizeBytes - from, budgetLeft + SCRUB_READ_AHEAD_BYTES));
      if (!this.isScrubbable(segment, truncations) || this.scrubCursor.segment !== segment || this.scrubCursor.position !== from) break;
      const result = segment.scan(from, segment.sizeBytes, true, (_header, position) => (position - from >= budgetLeft ? 'budget' : null), bytes);
      verified += result.endPosition - from;
      if (result.problem === null || result.problem === 'budget') {
        this.scrubCursor = { segment, position: result.endPosition };
        continue;
      }
      this.metrics.corruptBatches.inc();
      this.logger.error({ segment: segment.logPath, position: result.endPosition, problem: result.problem }, `scrub of ${this.topic}-${this.partition} found a corrupt batch`);
      this.noteCorruption(result.nextOffset >= 0 ? result.nextOffset : segment.baseOffset);
      this.scrubCursor = { segment, position: segment.sizeBytes };
    }
    if (verified > 0) this.metrics.scrubbedBytes.inc(verified);
    return verified;
  }

  /** `segment` is still a closed segment of this open log, which no truncation cut since the scrub began. */
  private isScrubbable(segment: LogSegment, truncations: number): boolean {
    if (this.closed || this.failure !== null || this.truncations !== truncations || !segment.isOpen) return false;
    const index = this.segments.indexOf(segment);
    return index >= 0 && index < this.segments.length - 1;
  }

  /**
   * The segment the scrubber works on next, with the cursor set in it: the cursor's own segment
   * while it has bytes left, else the next closed one (wrapping around). A segment replaced
   * (compaction) or removed since is started afresh from its successor.
   */
  private scrubTarget(closed: readonly LogSegment[]): LogSegment {
    assert(closed.length > 0, 'scrubbing needs a closed segment');
    const { segment: current, position } = this.scrubCursor;
    const index = current === null ? -1 : closed.indexOf(current);
    if (index >= 0 && position < current!.sizeBytes) return current!;
    let next: number;
    if (index >= 0) next = (index + 1) % closed.length;
    else {
      const after = current === null ? -1 : closed.findIndex((segment) => segment.baseOffset > current.baseOffset);
      next = after < 0 ? 0 : after;
    }
    this.scrubCursor = { segment: closed[next]!, position: 0 };
    return closed[next]!;
  }

  /**
   * Cuts the log at the earliest corrupt batch (everything from it on goes, as in recovery), so
   * a follower fetches it again from its leader. Only a replica that does not lead may do this.
   * Returns the new log end, or null when nothing was corrupt.
   */
  truncateCorruptTail(): number | null {
    const offset = this.corruptFrom;
    if (offset === null) return null;
    const target = Math.max(offset, this.logStartOffset);
    try {
      this.truncateTo(target);
    } catch (error) {
      // The header walk to the batch failed too: the whole segment holding it goes.
      const segment = this.segmentFor(target);
      if (segment === null || segment.baseOffset === target) throw error;
      this.truncateTo(segment.baseOffset);
    }
    this.corruptFrom = null;
    this.scrubCursor = { segment: null, position: 0 };
    this.metrics.corruptionRepairs.inc();
    this.logger.warn({ offset: target, logEndOffset: this.nextOffset }, `partition log ${this.topic}-${this.partition} cut its corrupt tail at ${target}; it refetches from the leader`);
    return this.nextOffset;
  }

  private corruptBatch(error: unknown): RiffleError {
    this.metrics.corruptBatches.inc();
    const message = error instanceof Error ? error.message : String(error);
    this.logger.error({ error: message }, `partition log ${this.topic}-${this.partition} holds a corrupt batch`);
    return new RiffleError('KAFKA_STORAGE_ERROR', `stored record batch is corrupt: ${message}`, { cause: error });
  }

  private segmentFor(offset: number): LogSegment | null {
    let low = 0;
    let high = this.segments.length - 1;
    let found = -1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      if (this.segments[middle]!.baseOffset <= offset) {
        found = middle;
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    return found < 0 ? null : this.segments[found]!;
  }

  /**
   * The first offset whose record timestamp is at or after `timestampMs`, via the time indexes
   * (Kafka's ListOffsets by timestamp); null if every record is older.
   */
  offsetForTimestamp(timestampMs: number, maxOffsetExclusive = this.nextOffset): { offset: number; timestamp: number } | null {
    this.throwIfUnusable();
    for (const segment of this.segments) {
      if (segment.isEmpty || segment.maxTimestamp < timestampMs) continue;
      const found = this.findTimestampInSegment(segment, timestampMs);
      if (found !== null) return found.offset < maxOffsetExclusive ? found : null;
    }
    return null;
  }

  private findTimestampInSegment(segment: LogSegment, timestampMs: number): { offset: number; timestamp: number } | null {
    const entry = segment.timeIndex.lookup(timestampMs);
    let offset = entry === null ? segment.baseOffset : segment.baseOffset + entry.relativeOffset;
    while (offset < segment.nextOffset) {
      const location = this.locate(segment, offset);
      if (location === null) return null;
      if (location.maxTimestamp >= timestampMs) {
        const batch = segment.read(location.position, location.sizeBytes);
        try {
          verifyBatchCrc(batch);
        } catch (error) {
          throw this.corruptBatch(error);
        }
        const record = decodeRecords(batch).find((candidate) => candidate.timestamp >= timestampMs);
        if (record !== undefined) return { offset: record.offset, timestamp: record.timestamp };
      }
      offset = location.lastOffset + 1;
    }
    return null;
  }

  // -------------------------------------------------------------------------------------------
  // Truncation, retention, lifecycle

  /** Drops every batch at or after `offset` (a batch containing `offset` goes whole). */
  truncateTo(offset: number): void {
    this.throwIfUnusable();
    assert(Number.isSafeInteger(offset) && offset >= 0, () => `bad truncation offset ${offset}`);
    if (offset >= this.nextOffset) {
      // No batch to cut, but an epoch begun at `offset` without data goes too: truncation
      // always drops the epochs starting at or after its offset.
      this.epochs.truncateFromEnd(offset);
      return;
    }
    this.truncations++;
    if (offset <= this.logStartOffset) {
      this.truncateFullyAndStartAt(offset);
    } else {
      while (this.active.baseOffset >= offset) this.removeSegment(this.segments.pop()!);
      const segment = this.active;
      const location = segment.findBatch(offset);
      if (location !== null) segment.truncateTo(location.position, location.baseOffset);
      this.nextOffset = segment.nextOffset;
      this.totalBytes = this.segments.reduce((sum, each) => sum + each.sizeBytes, 0);
    }
    this.tail?.truncate(this.nextOffset);
    if (this.flushedPoint.offset >= this.nextOffset) this.flushedPoint = this.endPoint();
    // After the cut: a crash between the two leaves epochs past the log end, which the next
    // open trims, never batches whose epoch the checkpoint lacks. (An emptied log starts at the
    // new end, so this empties the cache too.)
    this.epochs.truncateFromEnd(this.nextOffset);
    this.waiters.rejectAbove(this.nextOffset, new RiffleError('NOT_LEADER_OR_FOLLOWER', `log truncated to ${this.nextOffset}`));
    this.writeCheckpoint(true);
    this.updateGauges();
    this.logger.warn({ offset, logEndOffset: this.nextOffset }, `partition log ${this.topic}-${this.partition} truncated to ${this.nextOffset}`);
  }

  private truncateFullyAndStartAt(offset: number): void {
    for (const segment of this.segments) this.removeSegment(segment);
    this.segments = [LogSegment.create(this.dir, offset)];
    this.directoryDirty = true;
    this.nextOffset = offset;
    this.totalBytes = 0;
    this.flushedPoint = this.endPoint();
  }

  private removeSegment(segment: LogSegment): void {
    this.dirtySegments.delete(segment);
    segment.deleteFiles();
    this.directoryDirty = true;
  }

  /** Deletes whole old segments by time and size, never the active one; returns how many. */
  applyRetention(nowMs = this.clock.nowMs()): number {
    this.throwIfUnusable();
    let deleted = 0;
    while (this.segments.length > 1 && this.isExpired(this.segments[0]!, nowMs)) {
      const segment = this.segments.shift()!;
      this.totalBytes -= segment.sizeBytes;
      this.removeSegment(segment);
      deleted++;
      this.logger.info({ baseOffset: segment.baseOffset, logStartOffset: this.logStartOffset }, `partition log ${this.topic}-${this.partition} deleted segment ${segment.baseOffset} by retention`);
    }
    if (deleted > 0) {
      this.epochs.truncateFromStart(this.logStartOffset);
      this.metrics.retentionDeletedSegments.inc(deleted);
      this.writeCheckpoint(false);
      this.updateGauges();
    }
    return deleted;
  }

  /**
   * cleanup.policy=compact: drops, from closed segments already fsynced, every record a later
   * record of the log supersedes by key, and tombstones older than delete.retention.ms
   * (log-compaction.ts). Returns the records dropped.
   */
  compact(nowMs = this.clock.nowMs()): number {
    this.throwIfUnusable();
    if (this.config.cleanupPolicy !== 'compact' || this.segments.length < 2) return 0;
    const latest = new Map<string, number>();
    for (const segment of this.segments) {
      if (segment.isEmpty) continue;
      forEachKeyedRecord(segment.read(0, segment.sizeBytes), (record) => {
        if (record.key) latest.set(record.key.toString('base64'), record.offset);
      });
    }
    let dropped = 0;
    for (let index = 0; index < this.segments.length - 1; index++) {
      const segment = this.segments[index]!;
      // Only what is on disk for sure: the recovery checkpoint never points into a rewritten file.
      if (segment.nextOffset > this.flushedPoint.offset || segment.baseOffset === this.flushedPoint.segmentBaseOffset) break;
      if (segment.isEmpty) continue;
      const result = compactBatches(segment.read(0, segment.sizeBytes), (record) => record.key === null
        || (latest.get(record.key.toString('base64')) === record.offset && (!record.isTombstone || nowMs - record.timestamp < this.config.deleteRetentionMs)));
      if (result.dropped === 0) continue;
      this.segments[index] = this.replaceSegment(segment, result.bytes);
      dropped += result.dropped;
    }
    if (dropped > 0) {
      this.metrics.compactedRecords.inc(dropped);
      this.updateGauges();
      this.logger.info({ dropped }, `partition log ${this.topic}-${this.partition} compacted`);
    }
    return dropped;
  }

  /** Swaps a closed segment's file for compacted bytes (written and fsynced first, then renamed over it). */
  private replaceSegment(old: LogSegment, bytes: Buffer): LogSegment {
    const temporary = segmentPath(this.dir, old.baseOffset, '.log.compacted.tmp');
    const fd = fs.openSync(temporary, 'w', 0o644);
    try {
      let written = 0;
      while (written < bytes.length) written += fs.writeSync(fd, bytes, written, bytes.length - written);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    const nextOffset = old.nextOffset;
    old.close();
    this.dirtySegments.delete(old);
    // Index files go first: a crash between the two leaves a segment that recovery re-indexes.
    fs.rmSync(segmentPath(this.dir, old.baseOffset, INDEX_SUFFIX), { force: true });
    fs.rmSync(segmentPath(this.dir, old.baseOffset, TIME_INDEX_SUFFIX), { force: true });
    fs.renameSync(temporary, old.logPath);
    this.directoryDirty = true;
    this.requestSync();
    const segment = LogSegment.open(this.dir, old.baseOffset);
    segment.resetIndexes();
    const scan = segment.scan(0, segment.sizeBytes, true, (header, position, sizeBytes) => {
      segment.indexBatch(position, sizeBytes, header.baseOffset, header.baseOffset + header.lastOffsetDelta, header.maxTimestamp, this.config.indexIntervalBytes);
      return null;
    });
    assert(scan.problem === null && segment.nextOffset === nextOffset, () => `compacted segment ${old.baseOffset} ends at ${segment.nextOffset}, not ${nextOffset}: ${scan.problem}`);
    segment.seal();
    this.totalBytes += segment.sizeBytes - old.sizeBytes;
    return segment;
  }

  private isExpired(segment: LogSegment, nowMs: number): boolean {
    // Only segments already fsynced go, so the recovery checkpoint never points into them.
    if (segment.nextOffset > this.flushedPoint.offset) return false;
    const { retentionMs, retentionBytes } = this.config;
    const tooOld = retentionMs >= 0 && segment.maxTimestamp >= 0 && nowMs - segment.maxTimestamp > retentionMs;
    const tooBig = retentionBytes >= 0 && this.totalBytes - segment.sizeBytes >= retentionBytes;
    return tooOld || tooBig;
  }

  /** Flushes everything, writes a clean checkpoint and closes the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.stopIntervalFlusher();
    if (this.failure === null) {
      await this.flush();
      this.active.seal();
      this.writeCheckpoint(true, true);
    }
    this.closed = true;
    this.tail?.clear();
    this.waiters.rejectAll(new RiffleError('NOT_LEADER_OR_FOLLOWER', `partition log ${this.topic}-${this.partition} closed`));
    for (const segment of this.segments) segment.close();
    this.checkpointFile.close();
    this.epochFile.close();
    this.logger.info({ logEndOffset: this.nextOffset }, `partition log ${this.topic}-${this.partition} closed`);
  }

  /** Closes the log without flushing and removes its directory. */
  async delete(): Promise<void> {
    this.stopIntervalFlusher();
    this.closed = true;
    this.tail?.clear();
    await this.whenSyncIdle();
    this.waiters.rejectAll(new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `partition log ${this.topic}-${this.partition} deleted`));
    for (const segment of this.segments) segment.close();
    this.checkpointFile.close();
    this.epochFile.close();
    this.metrics.remove();
    await fs.promises.rm(this.dir, { recursive: true, force: true });
  }

  private stopIntervalFlusher(): void {
    if (this.intervalTimer !== null) clearInterval(this.intervalTimer);
    this.intervalTimer = null;
  }

  private restoreRollClock(): void {
    const active = this.active;
    if (active.isEmpty) return;
    const first = active.firstBatchHeader();
    active.firstAppendMs = Math.min(this.clock.nowMs(), first?.maxTimestamp ?? this.clock.nowMs());
  }

  private updateGauges(): void {
    this.metrics.segments.set(this.segments.length);
    this.metrics.sizeBytes.set(this.totalBytes);
  }

  private fail(error: RiffleError): void {
    if (this.failure !== null) return;
    this.failure = error;
    this.tail?.clear();
    this.logger.error({ error: error.message }, `partition log ${this.topic}-${this.partition} failed; it refuses further work`);
    this.waiters.rejectAll(error);
  }

  private storageError(operation: string, error: unknown): RiffleError {
    const message = error instanceof Error ? error.message : String(error);
    return new RiffleError('KAFKA_STORAGE_ERROR', `${operation} failed for ${this.topic}-${this.partition}: ${message}`, { cause: error });
  }

  private throwIfFailed(): void {
    if (this.failure !== null) throw this.failure;
  }

  private throwIfUnusable(): void {
    this.throwIfFailed();
    if (this.closed) throw new RiffleError('KAFKA_STORAGE_ERROR', `partition log ${this.topic}-${this.partition} is closed`);
  }
}
