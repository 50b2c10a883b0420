// The idempotent producer's bookkeeping per partition (KIP-98, with KIP-360's recovery): which
// producer id and epoch the partition's sequences count in, the next sequence to give a sealed
// batch, and the batches given sequences but not yet acknowledged, in sequence order.
//
// Rules the Producer follows with it:
//   - A batch may be sent only when every earlier unacknowledged batch of its partition is in
//     flight, and at most IN_FLIGHT_BATCHES_PER_PARTITION_MAX are in flight: the broker keeps the
//     last five batches per producer, so a retry of any in-flight batch is still recognised.
//   - An idempotent producer pipelines: a partition's next request may leave while earlier ones
//     are in flight (up to five batches in all). Kafka gets order from one connection processed
//     in order; gRPC multiplexes calls on HTTP/2, where a later call can overtake an earlier one,
//     so the leader holds a batch that runs ahead of its producer's sequence until the missing
//     ones arrive (briefly; then OUT_OF_ORDER, retried here after the earlier batch).
//   - OUT_OF_ORDER_SEQUENCE_NUMBER or UNKNOWN_PRODUCER_ID on a batch with an earlier batch still
//     unacknowledged is a consequence of that batch's failure: retry after it. On the first
//     unacknowledged batch it means the broker's state and ours disagree: once nothing of the
//     partition is in flight, its sequences restart at 0 under a newer epoch (bumped with
//     InitProducerId when the partition already uses the newest), and the unacknowledged
//     batches are re-stamped and sent again in order. The producer never gets stuck.
//   - A partition moves to a newer epoch only when it has nothing unacknowledged (or in a
//     reset), so it never sends an older epoch after a newer one and fences itself.
// A non-idempotent producer sends a partition's in-flight batches in one request and its next
// request only when that one is answered (no sequences, so no broker would restore the order):
// its records are written in send() order unless retried.
import { assert } from '../util/assert.js';
import { decodeRecords, encodeRecordBatch, readBatchHeader } from '../util/record-batch.js';

/** Batches of one partition in flight at once; the broker recognises retries of its last five. */
export const IN_FLIGHT_BATCHES_PER_PARTITION_MAX = 5;
/** Sequences count modulo 2^31: after int32 max comes 0. */
export const SEQUENCE_MODULUS = 2 ** 31;

export interface ProducerIdentity {
  readonly producerId: number;
  readonly epoch: number;
}

/** What the bookkeeping needs of a sealed batch. */
export interface SequencedBatch {
  records: Buffer;
  recordCount: number;
  inFlight: boolean;
  baseSequence: number;
}

export function sameIdentity(a: ProducerIdentity, b: ProducerIdentity): boolean {
  return a.producerId === b.producerId && a.epoch === b.epoch;
}

export class PartitionSequence<Batch extends SequencedBatch> {
  private nextSequence = 0;
  /** Given sequences, not yet acknowledged or failed, in sequence order. */
  readonly unacked: Batch[] = [];
  inFlightCount = 0;
  /** The broker disagrees with our sequences: restart them once nothing is in flight. */
  needsReset = false;
  /** The drain pass that last sent batches of the partition, and their bytes. */
  private requestPass = -1;
  private requestBytes = 0;

  /** `pipelined`: several requests of the partition in flight at once (idempotent producers). */
  constructor(
    public identity: ProducerIdentity,
    private readonly pipelined = false,
  ) {}

  /** The sequence for a newly sealed batch of `recordCount` records; may move to `current`. */
  assign(batch: Batch, current: ProducerIdentity): { identity: ProducerIdentity; baseSequence: number } {
    if (this.unacked.length === 0 && !sameIdentity(this.identity, current)) {
      this.identity = current;
      this.nextSequence = 0;
    }
    const baseSequence = this.nextSequence;
    this.nextSequence = (this.nextSequence + batch.recordCount) % SEQUENCE_MODULUS;
    batch.baseSequence = baseSequence;
    this.unacked.push(batch);
    return { identity: this.identity, baseSequence };
  }

  /** Queues a batch without sequences (a non-idempotent producer keeps the same order rules). */
  track(batch: Batch): void {
    this.unacked.push(batch);
  }

  /**
   * Whether `batch` may join the request drain pass `pass` builds: all earlier unacknowledged
   * batches are in flight, this pass's share of the partition stays within bytesMax, and (not
   * pipelined) nothing of the partition is in flight from an earlier pass.
   */
  sendable(batch: Batch, pass: number, bytesMax: number): boolean {
    if (this.needsReset || this.inFlightCount >= IN_FLIGHT_BATCHES_PER_PARTITION_MAX) return false;
    const samePass = this.inFlightCount > 0 && this.requestPass === pass;
    if (samePass && this.requestBytes + batch.records.length > bytesMax) return false;
    if (!this.pipelined && this.inFlightCount > 0 && !samePass) return false;
    // In-flight batches lead the list except after a failure, so this loop is short.
    for (const earlier of this.unacked) {
      if (earlier === batch) return true;
      if (!earlier.inFlight) return false;
    }
    return false;
  }

  markSent(batch: Batch, pass: number): void {
    assert(!batch.inFlight, 'batch sent twice at once');
    if (this.inFlightCount === 0 || this.requestPass !== pass) {
      assert(this.pipelined || this.inFlightCount === 0, 'a partition in two requests at once');
      this.requestPass = pass;
      this.requestBytes = 0;
    }
    this.requestBytes += batch.records.length;
    batch.inFlight = true;
    this.inFlightCount++;
    assert(this.inFlightCount <= IN_FLIGHT_BATCHES_PER_PARTITION_MAX, 'too many batches in flight for one partition');
  }

  markAnswered(batch: Batch): void {
    assert(batch.inFlight && this.inFlightCount > 0, 'answer for a batch not in flight');
    batch.inFlight = false;
    this.inFlightCount--;
  }

  /** Whether an earlier batch of the partition is still unacknowledged. */
  hasEarlierUnacked(batch: Batch): boolean {
    return this.unacked.length > 0 && this.unacked[0] !== batch && this.unacked.includes(batch);
  }

  /** The batch is done (acknowledged or failed for good). */
  remove(batch: Batch): void {
    const index = this.unacked.indexOf(batch);
    if (index >= 0) this.unacked.splice(index, 1);
  }

  /**
   * Restarts the sequences at 0 under `identity` and re-stamps every unacknowledged batch in
   * order. Only with nothing in flight: an older copy must not be answered after the reset.
   */
  reset(identity: ProducerIdentity): void {
    assert(this.inFlightCount === 0, 'sequence reset with batches in flight');
    assert(!sameIdentity(identity, this.identity), 'sequence reset without a newer producer epoch');
    this.identity = identity;
    this.nextSequence = 0;
    for (const batch of this.unacked) {
      batch.baseSequence = this.nextSequence;
      batch.records = restampBatch(batch.records, identity, this.nextSequence);
      this.nextSequence = (this.nextSequence + batch.recordCount) % SEQUENCE_MODULUS;
    }
    this.needsReset = false;
  }
}

/**
 * The same records under another producer id, epoch and base sequence. The producer fields are
 * inside the CRC, so the batch is encoded again (rare: only after a sequence reset).
 */
export function restampBatch(records: Buffer, identity: ProducerIdentity, baseSequence: number): Buffer {
  const decoded = decodeRecords(records);
  const rebuilt = encodeRecordBatch(
    decoded.map((record) => ({ key: record.key, value: record.value, headers: record.headers, timestamp: record.timestamp })),
    { producerId: identity.producerId, producerEpoch: identity.epoch, baseSequence },
  );
  const header = readBatchHeader(rebuilt);
  assert(header.recordsCount === decoded.length && header.baseSequence === baseSequence, 'restamped batch differs');
  return rebuilt;
}
