// Idempotent producers on one partition (Kafka's ProducerStateManager, KIP-98 and KIP-360): for
// every producer id the partition has seen, its current epoch and the sequence ranges and offsets
// of its last five batches. The leader checks each batch that carries a producer id before it is
// written and records it afterwards:
//   - an epoch older than the producer's current one is INVALID_PRODUCER_EPOCH (a fenced zombie);
//   - a batch equal to one of the last five is a retry: it is not written again, and the produce
//     answer carries the offsets of the original;
//   - otherwise the batch must continue the producer's sequence (int32 max wraps to 0), or start
//     at 0 when it opens a newer epoch; anything else is OUT_OF_ORDER_SEQUENCE_NUMBER;
//   - an unknown producer may start at any epoch with sequence 0. With another sequence, the
//     answer is UNKNOWN_PRODUCER_ID when this partition may have forgotten the producer (its
//     batches were below the log start or the rebuild window when the state was built, or it was
//     evicted or expired), else OUT_OF_ORDER_SEQUENCE_NUMBER: a real gap.
// Followers apply what they append (`observeReplicated`) without checks: the leader checked.
//
// The state must describe exactly the log it sits beside. It records the log end it reflects;
// whenever that differs from the log's end at a check (a follower truncated, appends went
// unobserved, the replica just became leader, the process restarted) it is rebuilt from the
// newest snapshot and the batch headers after it before anything is decided: off the event loop
// (`build`, which Partition starts at a follower's first append and at a take-over, and which a
// produce awaits), or synchronously (`loadFromLog`, for an empty log or as the last resort).
//
// Departures from Kafka:
//   - Snapshots (producer-snapshots.ts) are taken every 64 MiB a replica appends and at a clean
//     close, not at every segment roll; a rebuild starts from the newest one the log agrees with.
//     Without one (a new replica of old data, every snapshot contradicted) it reads the log from
//     the first record newer than the producer expiration window (1 day), so a producer whose
//     records carry older timestamps is not rebuilt (its next batch with a non-zero sequence gets
//     UNKNOWN_PRODUCER_ID).
//   - A batch wholly behind the producer's last sequence that is not among the five retained is
//     answered DUPLICATE_SEQUENCE_NUMBER (written before, offsets no longer known), which the
//     SDK treats as success. Kafka answers OUT_OF_ORDER_SEQUENCE_NUMBER there, which makes an
//     epoch-bumping client write the batch twice. Every sequence at or below the last one of the
//     current epoch was accepted in order, so "written before" is certain.
//   - Idle time for eviction and expiration is the broker's clock at the last append (Kafka: the
//     batch's max timestamp), so producers replaying old timestamps are not expired at once.
//   - Several batches per partition in one produce request are allowed; all of them are
//     checked, in order. A request mixing batches written before with new ones is refused.
//   - Transactions are not supported: transactional batches are INVALID_RECORD.
//   - A batch whose sequence runs ahead of the producer's (a gap after the expected sequence, or
//     a non-zero sequence from a producer not seen yet) is a SequenceGapError. Kafka answers
//     OUT_OF_ORDER at once, relying on one TCP connection processed in order; gRPC multiplexes
//     calls over HTTP/2, where a later produce call can overtake an earlier one, so the leader
//     holds such a batch briefly for the missing one (partition.ts) before answering the error.
import type { AppendInfo } from './log/index.js';
import { RiffleError } from '../src/rpc/errors.js';
import { assert } from '../src/util/assert.js';
import { systemClock, type Clock } from '../src/util/clock.js';
import { Gauge, type Registry } from '../src/metrics/index.js';
import { ATTRIBUTE_TRANSACTIONAL, LOG_OVERHEAD_BYTES, iterateBatches, type BatchHeader } from '../src/util/record-batch.js';
import { PRODUCER_SNAPSHOT_INTERVAL_BYTES, type ProducerSnapshotFiles, type SnapshotLog } from './producer-snapshots.js';

/** Batches kept per producer for recognising retries (Kafka's NUM_BATCHES_TO_RETAIN). */
export const PRODUCER_BATCHES_RETAINED = 5;
/** Producers tracked per partition; the one idle longest goes first. */
export const PRODUCERS_PER_PARTITION_MAX = 100_000;
/** Kafka's producer.id.expiration.ms: a producer idle this long is forgotten. */
export const PRODUCER_ID_EXPIRATION_MS = 24 * 60 * 60 * 1000;
/** Kafka's producer.id.expiration.check.interval.ms. */
export const PRODUCER_EXPIRATION_CHECK_INTERVAL_MS = 10 * 60 * 1000;
/** Sequences count modulo 2^31: after int32 max comes 0. */
export const SEQUENCE_MODULUS = 2 ** 31;
/** Batches without idempotence carry producer id -1. */
export const NO_PRODUCER_ID = -1;
/** Bytes read per step while rebuilding from the log. */
export const REBUILD_READ_BYTES = 1024 * 1024;
/** Times an asynchronous build starts again (the log cut under it) before it loads synchronously. */
export const BUILD_ATTEMPTS_MAX = 3;

export interface ProducerBatch {
  readonly firstSequence: number;
  readonly lastSequence: number;
  readonly firstOffset: number;
  readonly lastOffset: number;
}

export interface ProducerEntryView {
  readonly producerId: number;
  readonly epoch: number;
  /** Oldest first, at most PRODUCER_BATCHES_RETAINED. */
  readonly batches: readonly ProducerBatch[];
  readonly lastActivityMs: number;
}

/** The log as producer state reads it when rebuilding: a PartitionLog fits. */
export interface ProducerStateLog extends SnapshotLog {
  read(offset: number, maxBytes: number): { records: Buffer; nextOffset: number };
  offsetForTimestamp(timestampMs: number): { offset: number } | null;
}

/** A log the state can also be built from asynchronously: a PartitionLog fits. */
export interface BuildableLog extends ProducerStateLog {
  readForFetch(offset: number, maxBytes: number): { records: Buffer; nextOffset: number } | Promise<{ records: Buffer; nextOffset: number }>;
  /** Counts the log's truncations, so a build notices one under it. */
  readonly truncationCount: number;
}

/** One checked batch waiting for its offsets; offsets are relative to the request's first. */
interface PendingBatch {
  producerId: number;
  epoch: number;
  firstSequence: number;
  lastSequence: number;
  offsetDelta: number;
  lastOffsetDelta: number;
}

/** What `check` decided for one produce request's batches. */
export interface ProducerAppendPlan {
  /** Every batch was written before: answer with these offsets and write nothing. */
  readonly duplicate: AppendInfo | null;
  /** Batches to record once the append assigned offsets. */
  readonly pending: readonly PendingBatch[];
  readonly records: number;
}

export interface ProducerStateOptions {
  clock?: Clock;
  producersMax?: number;
  expirationMs?: number;
  /** Where snapshots of this state are kept (the partition directory); none without. */
  snapshots?: ProducerSnapshotFiles;
  /** Bytes appended between two snapshots. */
  snapshotIntervalBytes?: number;
}

interface Entry {
  producerId: number;
  epoch: number;
  batches: ProducerBatch[];
  lastActivityMs: number;
}

type Verdict =
  | { kind: 'untracked' }
  | { kind: 'append'; batch: PendingBatch }
  | { kind: 'duplicate'; batch: ProducerBatch }
  | { kind: 'written-before' };

export class ProducerStateManager {
  /** Ordered from least to most recently active: updating an entry moves it to the end. */
  private readonly producers = new Map<number, Entry>();
  private readonly clock: Clock;
  private readonly producersMax: number;
  private readonly expirationMs: number;
  /** The log end offset this state reflects; -1 until built. */
  private endOffset = -1;
  /** Whether some producer's state may be missing (see the module header). */
  private mayHaveForgotten = false;
  private lastExpirationCheckMs: number;
  private readonly snapshots: ProducerSnapshotFiles | null;
  private readonly snapshotIntervalBytes: number;
  /** Bytes appended since the last snapshot, and the offset that snapshot reflects. */
  private bytesSinceSnapshot = 0;
  private lastSnapshotOffset = -1;
  /** Loads begun, so an asynchronous build notices that another load took over. */
  private loads = 0;
  /** The asynchronous build running, if any. */
  private building: Promise<void> | null = null;
  /** Counters for metrics and tests. `rebuilds` counts every load, `snapshotLoads` those that started from a snapshot. */
  readonly stats = { duplicates: 0, rebuilds: 0, snapshotLoads: 0, snapshotsWritten: 0, snapshotWriteFailures: 0, evictions: 0, expirations: 0, gapHoldsWritten: 0, gapHoldsRefused: 0 };

  constructor(options: ProducerStateOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.producersMax = options.producersMax ?? PRODUCERS_PER_PARTITION_MAX;
    this.expirationMs = options.expirationMs ?? PRODUCER_ID_EXPIRATION_MS;
    this.snapshots = options.snapshots ?? null;
    this.snapshotIntervalBytes = options.snapshotIntervalBytes ?? PRODUCER_SNAPSHOT_INTERVAL_BYTES;
    assert(this.snapshotIntervalBytes > 0, () => `snapshotIntervalBytes ${this.snapshotIntervalBytes}`);
    assert(Number.isInteger(this.producersMax) && this.producersMax > 0, () => `producersMax ${this.producersMax}`);
    assert(this.expirationMs > 0, () => `expirationMs ${this.expirationMs}`);
    this.lastExpirationCheckMs = this.clock.nowMs();
  }

  get producerCount(): number {
    return this.producers.size;
  }

  /** The log end this state reflects, -1 before it was built. */
  get reflectedEndOffset(): number {
    return this.endOffset;
  }

  entry(producerId: number): ProducerEntryView | undefined {
    const entry = this.producers.get(producerId);
    return entry && { ...entry, batches: [...entry.batches] };
  }

  entries(): ProducerEntryView[] {
    return [...this.producers.keys()].sort((a, b) => a - b).map((id) => this.entry(id)!);
  }

  /**
   * Checks a produce request's batches against the producers' state, rebuilding the state
   * first when it does not reflect `log`. Throws the produce error; never changes state: call
   * `record` after a successful append, synchronously, with nothing appended in between.
   */
  check(batches: Buffer, log: ProducerStateLog): ProducerAppendPlan {
    if (this.endOffset !== log.logEndOffset) this.loadFromLog(log);
    const verdicts: Verdict[] = [];
    const transient = new Map<number, { epoch: number; lastSequence: number }>();
    let records = 0;
    let end = 0;
    for (const { position, header } of iterateBatches(batches)) {
      const verdict = this.classify(header, records, transient);
      if (verdict.kind === 'append') transient.set(header.producerId, { epoch: verdict.batch.epoch, lastSequence: verdict.batch.lastSequence });
      verdicts.push(verdict);
      records += header.lastOffsetDelta + 1;
      end = position + LOG_OVERHEAD_BYTES + header.batchLength;
    }
    // A duplicate is answered without the log's validation, so the framing is checked here.
    if (end !== batches.length) throw new RiffleError('CORRUPT_MESSAGE', `trailing ${batches.length - end} bytes are not a whole record batch`);
    return this.plan(verdicts, records);
  }

  /** Records the batches of `plan` at the offsets the append gave them. */
  record(plan: ProducerAppendPlan, info: AppendInfo): void {
    assert(plan.duplicate === null, 'a duplicate is not recorded');
    assert(info.baseOffset === this.endOffset, () => `append at ${info.baseOffset} but producer state reflects the log up to ${this.endOffset}`);
    assert(info.lastOffset - info.baseOffset + 1 === plan.records, () => `append of ${info.lastOffset - info.baseOffset + 1} records, checked ${plan.records}`);
    const nowMs = this.clock.nowMs();
    for (const batch of plan.pending) {
      const firstOffset = info.baseOffset + batch.offsetDelta;
      this.apply(batch.producerId, batch.epoch, { firstSequence: batch.firstSequence, lastSequence: batch.lastSequence, firstOffset, lastOffset: firstOffset + batch.lastOffsetDelta }, nowMs);
    }
    this.endOffset = info.lastOffset + 1;
    this.maybeExpire(nowMs);
  }

  /**
   * A follower's appended batches (offsets assigned by the leader). Unchecked: the leader
   * checked them. A gap or overlap with what the state reflects (the log was truncated or an
   * append went unobserved) leaves the state to be rebuilt when it is next needed.
   */
  observeReplicated(batches: Buffer): void {
    if (this.endOffset < 0) return;
    const nowMs = this.clock.nowMs();
    for (const { header } of iterateBatches(batches)) {
      if (header.baseOffset !== this.endOffset) {
        this.forgetAll();
        return;
      }
      if (header.producerId !== NO_PRODUCER_ID) this.apply(header.producerId, header.producerEpoch, batchOf(header), nowMs);
      this.endOffset = header.baseOffset + header.lastOffsetDelta + 1;
    }
    this.maybeExpire(nowMs);
  }

  /**
   * Rebuilds the state for `log`: from the newest snapshot the log agrees with, then the batch
   * headers after it; without one, from the batch headers within the expiration window. Reads
   * the log synchronously: for an empty log, or as the last resort of `build`.
   */
  loadFromLog(log: ProducerStateLog): void {
    const nowMs = this.clock.nowMs();
    let offset = this.beginLoad(log, nowMs);
    while (offset < log.logEndOffset) {
      const { records, nextOffset } = log.read(offset, REBUILD_READ_BYTES);
      assert(nextOffset > offset, () => `rebuilding producer state made no progress at offset ${offset}`);
      this.replay(records, nowMs);
      offset = nextOffset;
    }
    this.finishLoad(log, nowMs);
  }

  /** True when the state reflects exactly `log` as it is now. */
  reflects(log: { readonly logEndOffset: number }): boolean {
    return this.endOffset === log.logEndOffset;
  }

  /**
   * Makes the state reflect `log`, as loadFromLog does, but reading the log on the thread pool
   * (readForFetch) and yielding between reads, so a long replay does not hold the event loop;
   * appends meanwhile are read too, and the state reflects the log's end once it resolves. One
   * build at a time: callers join the one running. A truncation or retention under the build
   * starts it again; after BUILD_ATTEMPTS_MAX such restarts it loads synchronously.
   */
  build(log: BuildableLog): Promise<void> {
    if (this.reflects(log)) return Promise.resolve();
    this.building ??= this.buildAsync(log).finally(() => (this.building = null));
    return this.building;
  }

  private async buildAsync(log: BuildableLog): Promise<void> {
    for (let attempt = 0; attempt < BUILD_ATTEMPTS_MAX; attempt++) {
      const nowMs = this.clock.nowMs();
      const truncations = log.truncationCount;
      let offset = this.beginLoad(log, nowMs);
      const generation = this.loads;
      for (;;) {
        // Another load (a synchronous one) took over: it is what the state reflects now.
        if (this.loads !== generation) return;
        if (log.truncationCount !== truncations) break;
        if (offset >= log.logEndOffset) {
          this.finishLoad(log, nowMs);
          return;
        }
        let read: { records: Buffer; nextOffset: number };
        try {
          const pending = log.readForFetch(offset, REBUILD_READ_BYTES);
          read = pending instanceof Promise ? await pending : pending;
          if (!(pending instanceof Promise)) await new Promise((resolve) => setImmediate(resolve));
        } catch (error) {
          // Retention passed the offset: start again from what the log holds now.
          if (error instanceof RiffleError && error.errorName === 'OFFSET_OUT_OF_RANGE') break;
          throw error;
        }
        if (this.loads !== generation) return;
        assert(read.nextOffset > offset, () => `rebuilding producer state made no progress at offset ${offset}`);
        this.replay(read.records, nowMs);
        offset = read.nextOffset;
      }
    }
    this.loadFromLog(log);
  }

  /** Forgets everything and starts a load: from a snapshot or the expiration window. Returns where the replay starts. */
  private beginLoad(log: ProducerStateLog, nowMs: number): number {
    // Until the load completes the state reflects nothing, so a failed read leaves it unusable.
    this.forgetAll();
    this.loads++;
    const snapshot = this.snapshots?.newestUsable(log) ?? null;
    if (snapshot === null) {
      const windowStart = log.offsetForTimestamp(nowMs - this.expirationMs)?.offset ?? log.logEndOffset;
      const offset = Math.max(log.logStartOffset, windowStart);
      this.mayHaveForgotten = offset > 0;
      return offset;
    }
    for (const entry of snapshot.entries) {
      if (nowMs - entry.lastActivityMs >= this.expirationMs) continue;
      this.producers.set(entry.producerId, { producerId: entry.producerId, epoch: entry.epoch, batches: entry.batches.map((batch) => ({ ...batch })), lastActivityMs: entry.lastActivityMs });
      if (this.producers.size > this.producersMax) this.evictIdlest();
    }
    this.mayHaveForgotten = snapshot.mayHaveForgotten || this.producers.size < snapshot.entries.length;
    this.lastSnapshotOffset = snapshot.endOffset;
    this.stats.snapshotLoads++;
    return snapshot.endOffset;
  }

  /** Applies the producer batches among `records` (read during a load). */
  private replay(records: Buffer, nowMs: number): void {
    for (const { header } of iterateBatches(records)) {
      if (header.producerId === NO_PRODUCER_ID) continue;
      this.apply(header.producerId, header.producerEpoch, batchOf(header), Math.min(header.maxTimestamp, nowMs));
    }
  }

  private finishLoad(log: ProducerStateLog, nowMs: number): void {
    this.endOffset = log.logEndOffset;
    this.lastExpirationCheckMs = nowMs;
    this.stats.rebuilds++;
  }

  /**
   * Counts `bytes` just appended to `log` (and recorded or observed here), and takes a snapshot
   * once PRODUCER_SNAPSHOT_INTERVAL_BYTES have gone by since the last.
   */
  noteAppended(bytes: number, log: SnapshotLog): void {
    if (this.snapshots === null) return;
    this.bytesSinceSnapshot += bytes;
    if (this.bytesSinceSnapshot >= this.snapshotIntervalBytes) this.takeSnapshot(log);
  }

  /**
   * Writes a snapshot of the state, if it reflects exactly `log` and moved since the last one.
   * A failed write is counted and otherwise ignored: snapshots only shorten rebuilds.
   */
  takeSnapshot(log: SnapshotLog): void {
    if (this.snapshots === null || this.endOffset < 0 || this.endOffset !== log.logEndOffset) return;
    this.bytesSinceSnapshot = 0;
    if (this.endOffset === this.lastSnapshotOffset) return;
    const entries = [...this.producers.values()].map((entry) => ({ producerId: entry.producerId, epoch: entry.epoch, lastActivityMs: entry.lastActivityMs, batches: entry.batches }));
    try {
      this.snapshots.write({ endOffset: this.endOffset, lastEpoch: log.epochBefore(this.endOffset), mayHaveForgotten: this.mayHaveForgotten, entries });
      this.lastSnapshotOffset = this.endOffset;
      this.stats.snapshotsWritten++;
    } catch {
      this.stats.snapshotWriteFailures++;
    }
  }

  /** The log was cut at `offset`: snapshots past it describe batches it no longer holds. */
  dropSnapshotsAbove(offset: number): void {
    if (this.snapshots === null) return;
    this.snapshots.deleteAbove(offset);
    if (this.lastSnapshotOffset > offset) this.lastSnapshotOffset = -1;
  }

  private forgetAll(): void {
    this.producers.clear();
    this.endOffset = -1;
  }

  private classify(header: BatchHeader, offsetDelta: number, transient: Map<number, { epoch: number; lastSequence: number }>): Verdict {
    if (header.producerId === NO_PRODUCER_ID) return { kind: 'untracked' };
    validateProducerFields(header);
    const lastSequence = addSequence(header.baseSequence, header.lastOffsetDelta);
    const batch: PendingBatch = {
      producerId: header.producerId, epoch: header.producerEpoch, firstSequence: header.baseSequence, lastSequence, offsetDelta, lastOffsetDelta: header.lastOffsetDelta,
    };
    const entry = this.producers.get(header.producerId);
    const current = transient.get(header.producerId) ?? (entry && { epoch: entry.epoch, lastSequence: entry.batches[entry.batches.length - 1]!.lastSequence });
    if (current === undefined) return this.classifyUnknown(batch);
    if (batch.epoch < current.epoch) {
      throw new RiffleError('INVALID_PRODUCER_EPOCH', `Producer ${batch.producerId} has epoch ${batch.epoch}, older than its current epoch ${current.epoch}.`);
    }
    if (batch.epoch > current.epoch) {
      if (batch.firstSequence !== 0) throw outOfOrder(batch, `the first batch of a new epoch must start at sequence 0`);
      return { kind: 'append', batch };
    }
    const duplicate = entry?.epoch === batch.epoch ? entry.batches.find((kept) => kept.firstSequence === batch.firstSequence && kept.lastSequence === lastSequence) : undefined;
    if (duplicate) return { kind: 'duplicate', batch: duplicate };
    if (batch.firstSequence === addSequence(current.lastSequence, 1)) return { kind: 'append', batch };
    if (isAtOrBefore(lastSequence, current.lastSequence) && isAtOrBefore(batch.firstSequence, lastSequence)) return { kind: 'written-before' };
    const why = `expected sequence ${addSequence(current.lastSequence, 1)}`;
    if (!isAtOrBefore(batch.firstSequence, current.lastSequence)) throw sequenceGap(batch, why);
    throw outOfOrder(batch, why);
  }

  private classifyUnknown(batch: PendingBatch): Verdict {
    if (batch.firstSequence === 0) return { kind: 'append', batch };
    // The producer's first batch may still be on its way (overtaken by this one): a gap.
    if (this.mayHaveForgotten) {
      throw new SequenceGapError('UNKNOWN_PRODUCER_ID', `Producer ${batch.producerId} is not known here (its state may have been removed) and sent sequence ${batch.firstSequence}, not 0.`);
    }
    throw sequenceGap(batch, 'this partition has never seen the producer, so it must start at sequence 0');
  }

  private plan(verdicts: Verdict[], records: number): ProducerAppendPlan {
    const pending = verdicts.flatMap((verdict) => (verdict.kind === 'append' ? [verdict.batch] : []));
    const repeats = verdicts.filter((verdict) => verdict.kind === 'duplicate' || verdict.kind === 'written-before');
    if (repeats.length === 0) return { duplicate: null, pending, records };
    if (repeats.length !== verdicts.length) {
      throw new RiffleError('INVALID_REQUEST', 'The produce request mixes batches written before with new ones; send each batch in its own partition entry.');
    }
    this.stats.duplicates += repeats.length;
    const originals = repeats.flatMap((verdict) => (verdict.kind === 'duplicate' ? [verdict.batch] : []));
    const contiguous = originals.length === repeats.length && originals.every((batch, index) => index === 0 || batch.firstOffset === originals[index - 1]!.lastOffset + 1);
    if (!contiguous) throw new RiffleError('DUPLICATE_SEQUENCE_NUMBER', 'These batches were written before; their offsets are no longer known.');
    const first = originals[0]!;
    const last = originals[originals.length - 1]!;
    return { duplicate: { baseOffset: first.firstOffset, lastOffset: last.lastOffset, logAppendTimeMs: -1, maxTimestamp: -1, bytes: 0 }, pending: [], records };
  }

  private apply(producerId: number, epoch: number, batch: ProducerBatch, activityMs: number): void {
    let entry = this.producers.get(producerId);
    if (entry === undefined) {
      entry = { producerId, epoch, batches: [], lastActivityMs: activityMs };
    } else {
      this.producers.delete(producerId);
    }
    if (entry.epoch !== epoch) {
      entry.epoch = epoch;
      entry.batches = [];
    }
    entry.batches.push(batch);
    if (entry.batches.length > PRODUCER_BATCHES_RETAINED) entry.batches.shift();
    entry.lastActivityMs = Math.max(entry.lastActivityMs, activityMs);
    this.producers.set(producerId, entry);
    if (this.producers.size > this.producersMax) this.evictIdlest();
    assert(this.producers.size <= this.producersMax, 'producer bound exceeded');
  }

  private evictIdlest(): void {
    const idlest = this.producers.keys().next();
    assert(!idlest.done, 'eviction from an empty producer map');
    this.producers.delete(idlest.value);
    this.mayHaveForgotten = true;
    this.stats.evictions++;
  }

  private maybeExpire(nowMs: number): void {
    if (nowMs - this.lastExpirationCheckMs < PRODUCER_EXPIRATION_CHECK_INTERVAL_MS) return;
    this.lastExpirationCheckMs = nowMs;
    for (const [producerId, entry] of this.producers) {
      if (nowMs - entry.lastActivityMs < this.expirationMs) continue;
      this.producers.delete(producerId);
      this.mayHaveForgotten = true;
      this.stats.expirations++;
    }
  }
}

function validateProducerFields(header: BatchHeader): void {
  if (header.producerId < 0) throw new RiffleError('INVALID_RECORD', `producer id ${header.producerId} is invalid`);
  if ((header.attributes & ATTRIBUTE_TRANSACTIONAL) !== 0) throw new RiffleError('INVALID_RECORD', 'Transactions are not supported.');
  if (header.producerEpoch < 0) throw new RiffleError('INVALID_RECORD', `producer ${header.producerId} sent epoch ${header.producerEpoch}`);
  if (header.baseSequence < 0) throw new RiffleError('INVALID_RECORD', `producer ${header.producerId} sent sequence ${header.baseSequence}`);
  if (header.lastOffsetDelta < 0) throw new RiffleError('INVALID_RECORD', `record batch has lastOffsetDelta ${header.lastOffsetDelta}`);
}

function batchOf(header: BatchHeader): ProducerBatch {
  return {
    firstSequence: header.baseSequence,
    lastSequence: addSequence(header.baseSequence, header.lastOffsetDelta),
    firstOffset: header.baseOffset,
    lastOffset: header.baseOffset + header.lastOffsetDelta,
  };
}

/**
 * A batch ahead of its producer's sequence: the missing batches may still be on their way
 * (overtaken by this one), so the leader may wait briefly and check again.
 */
export class SequenceGapError extends RiffleError {}

function outOfOrder(batch: PendingBatch, why: string): RiffleError {
  return new RiffleError('OUT_OF_ORDER_SEQUENCE_NUMBER', `Producer ${batch.producerId} epoch ${batch.epoch} sent sequence ${batch.firstSequence}: ${why}.`);
}

function sequenceGap(batch: PendingBatch, why: string): SequenceGapError {
  return new SequenceGapError('OUT_OF_ORDER_SEQUENCE_NUMBER', `Producer ${batch.producerId} epoch ${batch.epoch} sent sequence ${batch.firstSequence}: ${why}.`);
}

/** `sequence + count` modulo 2^31 (Kafka's wrap from int32 max to 0). */
export function addSequence(sequence: number, count: number): number {
  assert(sequence >= 0 && sequence < SEQUENCE_MODULUS && count >= 0, () => `bad sequence arithmetic ${sequence} + ${count}`);
  return (sequence + count) % SEQUENCE_MODULUS;
}

/** Whether `sequence` lies at or before `reference`, within half the sequence space behind it. */
function isAtOrBefore(sequence: number, reference: number): boolean {
  const behind = (reference - sequence + SEQUENCE_MODULUS) % SEQUENCE_MODULUS;
  return behind < SEQUENCE_MODULUS / 2;
}

/** Gauges over the producer state of the partitions `partitions()` lists. */
export function registerProducerStateGauge(registry: Registry, partitions: () => Iterable<{ producerState: ProducerStateManager }>): void {
  new Gauge({
    name: 'riffle_broker_producer_states',
    help: 'Idempotent producers tracked over the partition replicas this broker hosts.',
    registers: [registry],
    collect() {
      let producers = 0;
      for (const partition of partitions()) producers += partition.producerState.producerCount;
      this.set(producers);
    },
  });
  // A sum over the replicas hosted now, so it can fall when one is closed: a gauge, not a counter.
  new Gauge({
    name: 'riffle_broker_produce_duplicate_batches',
    help: 'Retried batches answered as written before (not written again), over the replicas hosted now.',
    registers: [registry],
    collect() {
      let duplicates = 0;
      for (const partition of partitions()) duplicates += partition.producerState.stats.duplicates;
      this.set(duplicates);
    },
  });
  type Stats = ProducerStateManager['stats'];
  /** A gauge of two sums over the hosted replicas' stats, by one label. */
  const splitGauge = ({ name, help, label, parts }: { name: string; help: string; label: string; parts: Record<string, (stats: Stats) => number> }): void => {
    new Gauge({
      name, help, labelNames: [label], registers: [registry],
      collect() {
        const sums = Object.fromEntries(Object.keys(parts).map((value) => [value, 0]));
        for (const partition of partitions()) for (const [value, pick] of Object.entries(parts)) sums[value]! += pick(partition.producerState.stats);
        for (const [value, sum] of Object.entries(sums)) this.set({ [label]: value }, sum);
      },
    });
  };
  splitGauge({
    name: 'riffle_broker_producer_state_loads',
    help: 'Producer states built for a replica, by where the build started (snapshot, log), over the replicas hosted now.',
    label: 'from',
    parts: {
      snapshot: (stats) => stats.snapshotLoads,
      log: (stats) => stats.rebuilds - stats.snapshotLoads,
    },
  });
  splitGauge({
    name: 'riffle_broker_producer_snapshots',
    help: 'Producer-state snapshots written beside the replicas hosted now, by outcome (written, failed).',
    label: 'outcome',
    parts: {
      written: (stats) => stats.snapshotsWritten,
      failed: (stats) => stats.snapshotWriteFailures,
    },
  });
  splitGauge({
    name: 'riffle_broker_produce_held_batches',
    help: 'Batches ahead of their producer sequence that the leader held for an overtaken earlier call, by outcome (written, refused), over the replicas hosted now.',
    label: 'outcome',
    parts: {
      written: (stats) => stats.gapHoldsWritten,
      refused: (stats) => stats.gapHoldsRefused,
    },
  });
}
