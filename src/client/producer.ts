// A batching producer. Records accumulate per partition in a RecordBatch v2 builder; a batch is
// sealed when it reaches batchBytesMax or has lingered lingerMs, and sealed batches are sent to
// their partition's leader, several partitions per Produce request, with a bounded number of
// requests in flight per broker. Retriable errors (leader moved, node down, timeouts) refresh the
// metadata and resend until the delivery timeout; other errors fail the records of that batch.
//
// Idempotent by default (Kafka's enable.idempotence): the producer gets a producer id and epoch
// with InitProducerId from any broker, gives each sealed batch the next sequences of its
// partition, keeps at most five batches per partition in flight and sends a partition's batches
// in sequence order (pipelined: a partition's next request may leave before the previous one is
// answered), so a retry after a lost answer is recognised by the broker (answered with the
// original offsets) and a partition's records are written once and in order. Recovery from
// OUT_OF_ORDER_SEQUENCE_NUMBER / UNKNOWN_PRODUCER_ID (an epoch bump and a sequence reset) is in
// idempotence.ts. Idempotence needs acks=all: asking for it with other acks is INVALID_CONFIG,
// and acks 0 or 1 without asking turn it off (as Kafka does since 3.2). Without idempotence a
// retry after a lost answer may write a batch twice, as with Kafka's non-idempotent producer.
import { partitionOf, type PartitionMetadata, type RiffleClient, type TopicMetadata } from './client.js';
import { StickyPartitioner, partitionForKey } from './partitioner.js';
import { withRetries } from './retry.js';
import { LEADER_CHECK_AFTER_MS, LEADER_CHECK_ATTEMPT_MS } from './leader-check.js';
import { PartitionSequence, sameIdentity, type ProducerIdentity } from './idempotence.js';
import { RiffleError, errorNameOf, toRiffleError } from '../rpc/errors.js';
import { assert } from '../util/assert.js';
import { RecordBatchBuilder, readBatchHeader, type RecordBatchOptions, type RecordHeader } from '../util/record-batch.js';
import type { ProduceRequest } from '../rpc/generated/riffle/v1/ProduceRequest.js';
import type { ProduceResponse__Output } from '../rpc/generated/riffle/v1/ProduceResponse.js';
import type { InitProducerIdResponse__Output } from '../rpc/generated/riffle/v1/InitProducerIdResponse.js';

export type Acks = 0 | 1 | -1;

export interface ProducerOptions {
  acks?: Acks | 'all';
  lingerMs?: number;
  batchBytesMax?: number;
  /** Largest Produce request, in bytes; several batches share a request up to this. */
  requestBytesMax?: number;
  requestTimeoutMs?: number;
  deliveryTimeoutMs?: number;
  inFlightRequestsPerBrokerMax?: number;
  /** Bytes of records accepted but not yet acknowledged; send() waits while this is full. */
  bufferBytesMax?: number;
  /** How long send() waits for topic metadata (an unknown topic fails after this), as Kafka's max.block.ms. */
  maxBlockMs?: number;
  /**
   * Exactly-once writes per partition (default: on unless acks is 0 or 1). Needs acks=all; true
   * with other acks is INVALID_CONFIG.
   */
  idempotent?: boolean;
}

export interface ProducerRecord {
  topic: string;
  key?: Buffer | string | null;
  value: Buffer | string | null;
  headers?: RecordHeader[];
  partition?: number;
  timestamp?: number;
}

export interface RecordMetadata {
  topic: string;
  partition: number;
  /** -1 when acks=0. */
  offset: number;
}

/** Called once per record: with its metadata once acknowledged, or with the error that failed it. */
export type SendCallback = (error: Error | null, metadata?: RecordMetadata) => void;

/**
 * The records of one batch, each with its callback (a promise's settle function for send()
 * without one), in record order; the buffer space of the whole batch is released once, when the
 * batch completes.
 */
interface Waiters {
  callbacks: SendCallback[];
  bytes: number;
}

interface OpenBatch {
  topic: string;
  partition: number;
  builder: RecordBatchBuilder;
  /** Read by the builder at build(): idempotent batches get their producer fields at seal. */
  batchOptions: RecordBatchOptions;
  waiters: Waiters;
  createdAtMs: number;
  /** The topic's partition count when the batch opened (the sticky partitioner moves on within it). */
  partitionCount: number;
}

/** A produce request sent and not yet answered, watched for its partitions' leaders moving. */
interface UnansweredRequest {
  leader: number;
  batches: SealedBatch[];
  /** Each batch's partition's leader epoch in the metadata when the request left. */
  leaderEpochs: number[];
  sentAtMs: number;
  /** Stops waiting for the answer: the batches go to their leaders again. */
  giveUp(): void;
}

interface SealedBatch {
  topic: string;
  partition: number;
  records: Buffer;
  recordCount: number;
  waiters: Waiters;
  firstAttemptMs: number;
  attempts: number;
  retryAtMs: number;
  /** Seal order; a partition's batches are sent in this order. */
  sealIndex: number;
  /** Idempotence: in a request now, and the first sequence of the batch (-1 without). */
  inFlight: boolean;
  baseSequence: number;
  /** Settled for good; a batch left in a list by a late callback is skipped. */
  done: boolean;
}

/** A send reads the clock for its batch's linger once per this many records of the batch. */
const LINGER_CHECK_RECORDS = 16;

const DEFAULTS = {
  lingerMs: 5,
  batchBytesMax: 256 * 1024,
  requestBytesMax: 8 * 1024 * 1024,
  requestTimeoutMs: 30_000,
  deliveryTimeoutMs: 120_000,
  inFlightRequestsPerBrokerMax: 5,
  bufferBytesMax: 64 * 1024 * 1024,
  maxBlockMs: 60_000,
};
const RETRY_BACKOFF_MS = 100;
/** What a request given up on resolves to (see `sendRequest` and leader-check.ts). */
const LEADER_MOVED = Symbol('leader moved');
/** Wait after a failed epoch bump (its request already retried retriable errors). */
const BUMP_RETRY_BACKOFF_MS = 1_000;
/** What one record costs in the buffer beyond its key and value (framing, headers, bookkeeping). */
const RECORD_OVERHEAD_BYTES = 32;
/** InitProducerId's "give me a new producer id". */
const NO_PRODUCER_ID = -1;
/** The identity of a non-idempotent producer's partitions, which still keep their batches in order. */
const NO_IDENTITY: ProducerIdentity = { producerId: NO_PRODUCER_ID, epoch: -1 };
const EMPTY = Buffer.alloc(0);

export class Producer {
  private readonly options: typeof DEFAULTS & { acks: Acks };
  readonly idempotent: boolean;
  /** Open batches by topic, then by partition index (no string key built per record). */
  private readonly open = new Map<string, (OpenBatch | undefined)[]>();
  private openCount = 0;
  private ready: SealedBatch[] = [];
  /** A retried batch went back into `ready` out of seal order. */
  private readyUnsorted = false;
  private sealCount = 0;
  /** Counts drain passes; a partition's batches sent in one pass share one request. */
  private drainPass = 0;
  private readonly inFlight = new Map<number, number>();
  private readonly sticky = new StickyPartitioner();
  private readonly unsettled = new Set<Promise<void>>();
  private bufferedBytes = 0;
  private readonly spaceWaiters: (() => void)[] = [];
  /** Sends waiting on the slow path, and the last of them: later sends queue behind it. */
  private slowSends = 0;
  private slowTail: Promise<void> = Promise.resolve();
  private lingerTimer?: { cancel(): void };
  private retryTimer?: NodeJS.Timeout;
  private readonly unanswered = new Set<UnansweredRequest>();
  private leaderCheckTimer?: NodeJS.Timeout;
  private closed = false;
  // Idempotence.
  private identity: ProducerIdentity | null = null;
  private identityRequest: Promise<void> | null = null;
  /** Batches sealed before the producer id arrived, in seal order. */
  private readonly awaitingIdentity: OpenBatch[] = [];
  private readonly sequences = new Map<string, PartitionSequence<SealedBatch>>();
  /** After a failed epoch bump, the next try waits until this time. */
  private bumpRetryAtMs = 0;
  /** Set when a newer producer fenced this one (INVALID_PRODUCER_EPOCH): nothing more is sent. */
  private fatalError: RiffleError | null = null;

  constructor(
    private readonly client: RiffleClient,
    options: ProducerOptions = {},
  ) {
    const acks = options.acks === 'all' ? -1 : (options.acks ?? -1);
    if (acks !== 0 && acks !== 1 && acks !== -1) throw new RiffleError('INVALID_REQUIRED_ACKS', `acks must be 0, 1 or all, got ${String(options.acks)}.`);
    if (options.idempotent === true && acks !== -1) {
      // Kafka's ConfigException: an acknowledgement from the leader alone can be lost with it.
      throw new RiffleError('INVALID_CONFIG', `An idempotent producer needs acks=all (-1), got ${acks}.`);
    }
    this.idempotent = options.idempotent ?? acks === -1;
    const { idempotent: _, ...rest } = stripUndefined(options);
    this.options = { ...DEFAULTS, ...rest, acks };
  }

  /** The producer id and epoch in use (idempotent producers, once known). */
  get producerIdentity(): ProducerIdentity | null {
    return this.identity;
  }

  /**
   * Queues one record. Without a callback, resolves with its offset once the cluster
   * acknowledged it. With one (Kafka's send(record, callback)), returns nothing and calls it
   * once, with the metadata or the error: no promise per record, which a producer sending
   * hundreds of thousands of records a second notices. A callback that throws does not disturb
   * the producer; its exception is rethrown on a later tick, as an uncaught exception.
   */
  send(record: ProducerRecord): Promise<RecordMetadata>;
  send(record: ProducerRecord, callback: SendCallback): void;
  send(record: ProducerRecord, callback?: SendCallback): Promise<RecordMetadata> | void {
    if (!callback) return new Promise((resolve, reject) => this.sendWith(record, (error, metadata) => (error ? reject(error) : resolve(metadata!))));
    this.sendWith(record, callback);
  }

  private sendWith(record: ProducerRecord, callback: SendCallback): void {
    const refused = this.closed ? new RiffleError('INVALID_REQUEST', 'The producer is closed.') : this.fatalError;
    if (refused) {
      queueMicrotask(() => callback(refused));
      return;
    }
    const key = toBuffer(record.key);
    const value = toBuffer(record.value);
    const size = (key?.length ?? 0) + (value?.length ?? 0) + RECORD_OVERHEAD_BYTES;
    const metadata = this.client.cachedTopic(record.topic);
    // The hot path stays synchronous: known topic, room in the buffer, and no earlier record
    // still on the slow path (records join their batches in the order send() was called).
    if (metadata && this.slowSends === 0 && this.bufferedBytes + size <= this.options.bufferBytesMax) {
      const refusal = this.enqueue(record, key, value, size, metadata, callback);
      if (refusal) queueMicrotask(() => callback(refusal));
      return;
    }
    this.sendSlow(record, key, value, size, callback);
  }

  /** Waits for buffer space and metadata, behind every earlier slow send, then enqueues. */
  private sendSlow(record: ProducerRecord, key: Buffer | null, value: Buffer | null, size: number, callback: SendCallback): void {
    this.slowSends++;
    const previous = this.slowTail;
    const enqueued = (async (): Promise<void> => {
      await previous;
      while (this.bufferedBytes + size > this.options.bufferBytesMax && this.bufferedBytes > 0) {
        await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
      }
      // The cluster may be briefly unreachable (a node restarting): metadata lookups are retried
      // like sends, within the delivery timeout.
      const metadata = await withRetries(() => this.client.topicMetadata(record.topic), {
        ...this.client.retry,
        deadlineMs: this.options.maxBlockMs,
      });
      const refusal = this.enqueue(record, key, value, size, metadata, callback);
      if (refusal) throw refusal;
    })();
    const done = (): void => {
      this.slowSends--;
    };
    this.slowTail = enqueued.then(done, done);
    enqueued.catch((error: unknown) => callback(error instanceof Error ? error : toRiffleError(error)));
  }

  /** Adds the record to its partition's open batch; returns the error instead when it has no partition. */
  private enqueue(record: ProducerRecord, key: Buffer | null, value: Buffer | null, size: number, metadata: TopicMetadata, callback: SendCallback): RiffleError | null {
    const count = metadata.partitions.length;
    let partition = this.partitionFor(record, key, count);
    if (!Number.isInteger(partition) || partition < 0 || partition >= count) {
      return new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `Topic '${record.topic}' has no partition ${partition}.`);
    }
    let batch = this.openBatch(record.topic, partition, count);
    // A batch whose linger is over leaves now, before this record joins it: the linger timer
    // cannot run while the application keeps the event loop busy sending, and the batch would
    // wait for the loop, or fill up, instead (Kafka's sender thread seals on time whatever the
    // application thread does). The clock is read every LINGER_CHECK_RECORDS records of a batch,
    // not on every send. A keyless record then goes where the sticky partitioner moved. (Linger 0
    // seals at the end of the turn instead, so what one turn sends stays one batch.)
    if (this.options.lingerMs > 0 && batch.builder.count > 0 && batch.builder.count % LINGER_CHECK_RECORDS === 0 && performance.now() - batch.createdAtMs >= this.options.lingerMs) {
      this.seal(batch);
      partition = this.partitionFor(record, key, count);
      batch = this.openBatch(record.topic, partition, count);
    }
    // A record that would push a non-empty batch past batchBytesMax starts a new batch, so no
    // batch outgrows the size the broker accepts (max.message.bytes).
    if (batch.builder.count > 0 && batch.builder.sizeBytes + size + headersBytes(record.headers) > this.options.batchBytesMax) {
      this.seal(batch);
      batch = this.openBatch(record.topic, partition, count);
    }
    batch.builder.append({ key, value, headers: record.headers, timestamp: record.timestamp });
    this.bufferedBytes += size;
    batch.waiters.bytes += size;
    batch.waiters.callbacks.push(callback);
    if (batch.builder.sizeBytes >= this.options.batchBytesMax) this.seal(batch);
    else this.scheduleLinger();
    return null;
  }

  /** The record's partition: its own, its key's, or the sticky one of keyless records. */
  private partitionFor(record: ProducerRecord, key: Buffer | null, count: number): number {
    return record.partition ?? (key ? partitionForKey(key, count) : this.sticky.partition(record.topic, count));
  }

  private openBatch(topic: string, partition: number, partitionCount: number): OpenBatch {
    let byPartition = this.open.get(topic);
    if (!byPartition) this.open.set(topic, (byPartition = []));
    let batch = byPartition[partition];
    if (!batch) {
      const batchOptions: RecordBatchOptions = {};
      batch = { topic, partition, builder: new RecordBatchBuilder(batchOptions), batchOptions, waiters: { callbacks: [], bytes: 0 }, createdAtMs: performance.now(), partitionCount };
      byPartition[partition] = batch;
      this.openCount++;
    }
    return batch;
  }

  private openBatches(): OpenBatch[] {
    const batches: OpenBatch[] = [];
    for (const byPartition of this.open.values()) for (const batch of byPartition) if (batch) batches.push(batch);
    return batches;
  }

  /**
   * Seals `batch`; `drainNow` false leaves the send to the caller's drain (several seals, one pass).
   * Whatever sealed it (size, linger, flush), records without a key move to another partition, as
   * with Kafka's sticky partitioner (KIP-480): a batch sealed by linger once kept its partition,
   * so a producer below batchBytesMax per linger sent every keyless record to one partition.
   */
  private seal(batch: OpenBatch, drainNow = true): void {
    this.open.get(batch.topic)![batch.partition] = undefined;
    this.openCount--;
    this.sticky.batchSealed(batch.topic, batch.partition, batch.partitionCount);
    if (this.idempotent && this.identity === null) {
      // Sequences need the producer id: the batch waits for it, in seal order.
      this.awaitingIdentity.push(batch);
      this.requestIdentity();
      return;
    }
    this.ready.push(this.build(batch));
    if (drainNow) this.drain();
  }

  /**
   * Builds a sealed batch and queues it in its partition's order; an idempotent one gets the
   * partition's next sequences.
   */
  private build(batch: OpenBatch): SealedBatch {
    const sealed: SealedBatch = {
      topic: batch.topic, partition: batch.partition, records: EMPTY, recordCount: batch.builder.count, waiters: batch.waiters,
      firstAttemptMs: Date.now(), attempts: 0, retryAtMs: 0, sealIndex: this.sealCount++, inFlight: false, baseSequence: -1, done: false,
    };
    if (!this.idempotent) {
      this.sequenceOf(batch.topic, batch.partition).track(sealed);
      sealed.records = batch.builder.build();
      return sealed;
    }
    assert(this.identity !== null, 'sealing an idempotent batch without a producer id');
    const { identity, baseSequence } = this.sequenceOf(batch.topic, batch.partition).assign(sealed, this.identity);
    Object.assign(batch.batchOptions, { producerId: identity.producerId, producerEpoch: identity.epoch, baseSequence });
    sealed.records = batch.builder.build();
    assert(readBatchHeader(sealed.records).baseSequence === baseSequence, 'the builder did not take the sequence');
    return sealed;
  }

  private sequenceOf(topic: string, partition: number): PartitionSequence<SealedBatch> {
    const key = `${topic}\u0000${partition}`;
    let sequence = this.sequences.get(key);
    if (!sequence) this.sequences.set(key, (sequence = new PartitionSequence<SealedBatch>(this.identity ?? NO_IDENTITY, this.idempotent)));
    return sequence;
  }

  /** Gets the first producer id; batches sealed meanwhile wait in `awaitingIdentity`. */
  private requestIdentity(): void {
    if (this.identityRequest) return;
    this.identityRequest = this.initProducerId(NO_PRODUCER_ID, -1)
      .then(
        (identity) => {
          this.identity = identity;
          for (const batch of this.awaitingIdentity.splice(0)) this.ready.push(this.build(batch));
          this.drain();
        },
        (error: unknown) => {
          const riffleError = toRiffleError(error);
          for (const batch of this.awaitingIdentity.splice(0)) this.settleWaiters(batch.waiters, riffleError);
        },
      )
      .finally(() => {
        this.unsettled.delete(this.identityRequest!);
        this.identityRequest = null;
      });
    this.unsettled.add(this.identityRequest);
  }

  /**
   * A newer epoch for partitions whose sequences must restart (KIP-360's bump). A partition
   * already behind the newest identity restarts under it without another bump.
   */
  private bumpEpoch(): void {
    if (this.identityRequest || this.identity === null || Date.now() < this.bumpRetryAtMs) return;
    const current = this.identity;
    this.identityRequest = this.initProducerId(current.producerId, current.epoch)
      .catch((error: unknown) => {
        // The id is unknown where we asked (never allocated there yet): start over with a new one.
        if (toRiffleError(error).errorName === 'UNKNOWN_PRODUCER_ID') return this.initProducerId(NO_PRODUCER_ID, -1);
        throw error;
      })
      .then(
        (identity) => {
          assert(!sameIdentity(identity, current), 'an epoch bump returned the same epoch');
          this.identity = identity;
        },
        () => {
          // Held batches wait for the next try (drain retries the bump) or their delivery timeout.
          this.bumpRetryAtMs = Date.now() + BUMP_RETRY_BACKOFF_MS;
          this.scheduleRetry();
        },
      )
      .finally(() => {
        this.unsettled.delete(this.identityRequest!);
        this.identityRequest = null;
        this.drain();
      });
    this.unsettled.add(this.identityRequest);
  }

  private async initProducerId(producerId: number, epoch: number): Promise<ProducerIdentity> {
    return withRetries(async () => {
      const response = await this.client.callAny<InitProducerIdResponse__Output>('riffle.v1.Kafka', 'InitProducerId', { transactionalId: '', producerId, producerEpoch: epoch });
      if (response.errorCode !== 0) throw new RiffleError(errorNameOf(response.errorCode), response.errorMessage || undefined);
      assert(response.producerId >= 0 && response.producerEpoch >= 0, () => `InitProducerId answered ${response.producerId}/${response.producerEpoch}`);
      return { producerId: response.producerId, epoch: response.producerEpoch };
    }, { ...this.client.retry, deadlineMs: this.options.deliveryTimeoutMs });
  }

  /**
   * Arms the linger timer for the oldest open batch's deadline. (A timer re-armed for a whole
   * lingerMs after each round made a batch opened just after a round wait almost two lingers.)
   */
  private scheduleLinger(): void {
    if (this.lingerTimer || this.openCount === 0) return;
    let oldest = Infinity;
    for (const batch of this.openBatches()) oldest = Math.min(oldest, batch.createdAtMs);
    const delayMs = Math.max(0, oldest + this.options.lingerMs - performance.now());
    const sealDue = (): void => {
      this.lingerTimer = undefined;
      const now = performance.now();
      // Batches lingering together leave together: one drain pass, one request per leader.
      let sealed = false;
      for (const batch of this.openBatches()) {
        if (now - batch.createdAtMs < this.options.lingerMs) continue;
        this.seal(batch, false);
        sealed = true;
      }
      if (sealed) this.drain();
      this.scheduleLinger();
    };
    // Due now (linger 0, or a linger already over): sealed once the current turn of the event
    // loop is done, so what the application sends in one go leaves as one batch, without the
    // millisecond or more that the shortest timer costs.
    if (delayMs > 0) {
      const timer = setTimeout(sealDue, delayMs);
      this.lingerTimer = { cancel: () => clearTimeout(timer) };
    } else {
      const immediate = setImmediate(sealDue);
      this.lingerTimer = { cancel: () => clearImmediate(immediate) };
    }
  }

  /** Sends ready batches to their leaders while in-flight slots are free. */
  private drain(): void {
    if (this.idempotent) this.resetSequences();
    if (this.readyUnsorted) {
      this.ready.sort((a, b) => a.sealIndex - b.sealIndex);
      this.readyUnsorted = false;
    }
    const now = Date.now();
    const pass = ++this.drainPass;
    const byLeader = new Map<number, SealedBatch[]>();
    const waiting: SealedBatch[] = [];
    for (const batch of this.ready) {
      if (batch.done) continue;
      if (!this.sendableNow(batch, now, pass)) {
        if (!this.expireHeld(batch, now)) waiting.push(batch);
        continue;
      }
      const leader = batch.retryAtMs <= now ? this.leaderOf(batch) : undefined;
      if (leader === undefined || (this.inFlight.get(leader) ?? 0) >= this.options.inFlightRequestsPerBrokerMax) {
        waiting.push(batch);
        continue;
      }
      this.sequenceOf(batch.topic, batch.partition).markSent(batch, pass);
      let list = byLeader.get(leader);
      if (!list) byLeader.set(leader, (list = []));
      list.push(batch);
    }
    this.ready = waiting;
    for (const [leader, batches] of byLeader) {
      // A partition's batches of this pass stay in one request (see idempotence.ts).
      for (const request of chunkByBytes(groupByPartition(batches), this.options.requestBytesMax)) this.sendRequest(leader, request.flat());
    }
    if (this.ready.length > 0) this.scheduleRetry();
  }

  private sendableNow(batch: SealedBatch, now: number, pass: number): boolean {
    return batch.retryAtMs <= now && this.sequenceOf(batch.topic, batch.partition).sendable(batch, pass, this.options.requestBytesMax);
  }

  /** A batch held back (behind a retry, or waiting for a reset) still has a delivery deadline. */
  private expireHeld(batch: SealedBatch, now: number): boolean {
    if (now - batch.firstAttemptMs < this.options.deliveryTimeoutMs) return false;
    this.finish(batch, new RiffleError('REQUEST_TIMED_OUT', `Not delivered within ${this.options.deliveryTimeoutMs} ms.`));
    return true;
  }

  /** Restarts the sequences of partitions that need it, once nothing of theirs is in flight. */
  private resetSequences(): void {
    if (this.identity === null) return;
    for (const sequence of this.sequences.values()) {
      if (!sequence.needsReset || sequence.inFlightCount > 0) continue;
      if (sequence.unacked.length === 0) {
        // Everything held failed meanwhile: the next batch starts under the newest identity.
        sequence.needsReset = false;
        continue;
      }
      if (sameIdentity(sequence.identity, this.identity)) this.bumpEpoch();
      else sequence.reset(this.identity);
    }
  }

  private leaderOf(batch: SealedBatch): number | undefined {
    const cachedLeader = this.cachedLeader(batch.topic, batch.partition);
    if (cachedLeader === undefined || cachedLeader < 0) {
      this.client.topicMetadata(batch.topic, true).then(() => this.drain(), (error: unknown) => this.failOrRetry(batch, toRiffleError(error)));
      batch.retryAtMs = Date.now() + RETRY_BACKOFF_MS;
      return undefined;
    }
    return cachedLeader;
  }

  private cachedLeader(topic: string, partition: number): number | undefined {
    return this.cachedPartition(topic, partition)?.leaderId;
  }

  private cachedPartition(topic: string, partition: number): PartitionMetadata | undefined {
    return partitionOf(this.client.cachedTopic(topic), partition);
  }

  private scheduleRetry(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.drain();
    }, RETRY_BACKOFF_MS);
  }

  private sendRequest(leader: number, batches: SealedBatch[]): void {
    this.inFlight.set(leader, (this.inFlight.get(leader) ?? 0) + 1);
    for (const batch of batches) batch.attempts++;
    // One partition entry per batch: a partition's batches keep their order in the request, and
    // answers are matched to batches by position.
    const topics = new Map<string, SealedBatch[]>();
    for (const batch of batches) {
      let list = topics.get(batch.topic);
      if (!list) topics.set(batch.topic, (list = []));
      list.push(batch);
    }
    const grouped = [...topics];
    const request: ProduceRequest = {
      acks: this.options.acks,
      timeoutMs: this.options.requestTimeoutMs,
      topicData: grouped.map(([name, list]) => ({ name, partitionData: list.map((batch) => ({ index: batch.partition, records: batch.records })) })),
    };
    // Watched until answered: given up on (LEADER_MOVED) once another broker leads one of its
    // partitions at a newer epoch. A late answer of the old leader is then ignored; the batches,
    // sent again with the same sequence numbers, are written once (see idempotence.ts).
    let giveUp!: () => void;
    const givenUp = new Promise<typeof LEADER_MOVED>((resolve) => (giveUp = () => resolve(LEADER_MOVED)));
    const watched: UnansweredRequest = {
      leader, batches, leaderEpochs: batches.map((batch) => this.client.leaderEpochOf(batch.topic, batch.partition)), sentAtMs: performance.now(), giveUp,
    };
    this.unanswered.add(watched);
    this.scheduleLeaderCheck();
    const settled = Promise.race([this.call(leader, request), givenUp])
      .then(
        (response) => (response === LEADER_MOVED ? this.leaderMoved(watched) : this.handleResponse(grouped, response)),
        (error: unknown) => {
          const riffleError = toRiffleError(error);
          for (const batch of batches) this.answered(batch, riffleError);
        },
      )
      .finally(() => {
        this.unanswered.delete(watched);
        this.inFlight.set(leader, (this.inFlight.get(leader) ?? 1) - 1);
        this.unsettled.delete(settled);
        this.drain();
      });
    this.unsettled.add(settled);
  }

  /** Checks the leaders of requests unanswered for LEADER_CHECK_AFTER_MS, while any are out. */
  private scheduleLeaderCheck(): void {
    if (this.leaderCheckTimer || this.unanswered.size === 0 || this.closed) return;
    this.leaderCheckTimer = setTimeout(() => void this.checkLeaders(), LEADER_CHECK_AFTER_MS);
    this.leaderCheckTimer.unref();
  }

  /**
   * Refreshes the metadata of the topics of requests unanswered for LEADER_CHECK_AFTER_MS and
   * gives up on every request one of whose partitions another broker now leads at a newer epoch.
   * An older epoch (metadata from a broker behind the others) or no leader yet changes nothing;
   * nor does a leader that is merely slow: its requests wait for their answer.
   */
  private async checkLeaders(): Promise<void> {
    const now = performance.now();
    const overdue = [...this.unanswered].filter((request) => now - request.sentAtMs >= LEADER_CHECK_AFTER_MS);
    if (overdue.length > 0) {
      const topics = [...new Set(overdue.flatMap((request) => request.batches.map((batch) => batch.topic)))];
      try {
        await this.client.refreshMetadata(topics, LEADER_CHECK_ATTEMPT_MS);
      } catch {
        // No node answered: the next check asks again.
      }
      for (const request of this.unanswered) if (this.leaderMovedFrom(request)) request.giveUp();
    }
    this.leaderCheckTimer = undefined;
    this.scheduleLeaderCheck();
  }

  private leaderMovedFrom(request: UnansweredRequest): boolean {
    return request.batches.some((batch, index) => {
      const current = this.cachedPartition(batch.topic, batch.partition);
      return current !== undefined && current.leaderId >= 0 && current.leaderId !== request.leader && current.leaderEpoch > request.leaderEpochs[index]!;
    });
  }

  /** A request given up on: its batches go to their leaders again at once (outcome unknown, as a lost answer). */
  private leaderMoved(request: UnansweredRequest): void {
    const error = new RiffleError('NOT_LEADER_OR_FOLLOWER', `Broker ${request.leader} did not answer, and another broker now leads a partition of the request.`);
    for (const batch of request.batches) this.answered(batch, error, -1, true);
  }

  private call(leader: number, request: ProduceRequest): Promise<ProduceResponse__Output> {
    // Pipelined on the connection's produce stream, as Kafka pipelines requests on a connection.
    // The timeout leaves room for the broker's own timeout to answer first.
    return this.client
      .connectionTo(leader)
      .pipelined<ProduceRequest, ProduceResponse__Output>('riffle.v1.Kafka', 'ProduceStream')
      .call(request, this.options.requestTimeoutMs + 5_000);
  }

  private handleResponse(grouped: [string, SealedBatch[]][], response: ProduceResponse__Output): void {
    grouped.forEach(([name, batches], topicIndex) => {
      const topic = response.responses[topicIndex];
      batches.forEach((batch, index) => {
        const result = topic?.name === name ? topic.partitionResponses[index] : undefined;
        if (!result || result.index !== batch.partition) {
          this.answered(batch, new RiffleError('UNKNOWN_SERVER_ERROR', `No answer for ${batch.topic}-${batch.partition}.`));
        } else if (result.errorCode !== 0) {
          // KIP-951: a broker that is no longer the leader says who is; resend there at once.
          const movedTo = result.currentLeaderId > 0 && this.client.noteLeader(batch.topic, batch.partition, result.currentLeaderId, result.currentLeaderEpoch);
          this.answered(batch, new RiffleError(errorNameOf(result.errorCode), result.errorMessage || undefined), -1, movedTo);
        } else {
          this.answered(batch, null, this.options.acks === 0 ? -1 : result.baseOffset);
        }
      });
    });
  }

  /** One batch's answer: success (error null), a retry, a sequence reset, or a failure. */
  private answered(batch: SealedBatch, error: RiffleError | null, baseOffset = -1, leaderKnown = false): void {
    this.sequenceOf(batch.topic, batch.partition).markAnswered(batch);
    // DUPLICATE_SEQUENCE_NUMBER: written before; the broker no longer knows the offsets.
    if (error === null || (this.idempotent && error.errorName === 'DUPLICATE_SEQUENCE_NUMBER')) {
      this.finish(batch, null, baseOffset);
    } else if (this.idempotent && (error.errorName === 'OUT_OF_ORDER_SEQUENCE_NUMBER' || error.errorName === 'UNKNOWN_PRODUCER_ID')) {
      this.sequenceRejected(batch, error);
    } else if (this.idempotent && error.errorName === 'INVALID_PRODUCER_EPOCH') {
      this.fenced(error);
      this.finish(batch, error);
    } else {
      this.failOrRetry(batch, error, leaderKnown);
    }
  }

  private sequenceRejected(batch: SealedBatch, error: RiffleError): void {
    const sequence = this.sequenceOf(batch.topic, batch.partition);
    if (Date.now() - batch.firstAttemptMs >= this.options.deliveryTimeoutMs) {
      this.finish(batch, error);
      return;
    }
    // Behind an unacknowledged batch, this is that batch's failure showing: retry after it.
    // First in line, the broker's state and ours disagree: restart the sequences.
    if (!sequence.hasEarlierUnacked(batch)) sequence.needsReset = true;
    batch.retryAtMs = 0;
    this.requeue(batch);
  }

  /** A newer epoch of this producer exists: fail everything not yet acknowledged. */
  private fenced(error: RiffleError): void {
    if (this.fatalError) return;
    this.fatalError = error;
    const held = this.ready.splice(0);
    for (const batch of held) this.finish(batch, error);
    for (const batch of this.awaitingIdentity.splice(0)) this.settleWaiters(batch.waiters, error);
  }

  /** Retries a retriable failure after a backoff (at once when the new leader is already known). */
  private failOrRetry(batch: SealedBatch, error: RiffleError, leaderKnown = false): void {
    const elapsedMs = Date.now() - batch.firstAttemptMs;
    if (error.retriable && !this.closed && !this.fatalError && elapsedMs + RETRY_BACKOFF_MS < this.options.deliveryTimeoutMs) {
      if (!leaderKnown) this.client.invalidate(batch.topic);
      batch.retryAtMs = leaderKnown ? 0 : Date.now() + RETRY_BACKOFF_MS * Math.min(10, batch.attempts);
      this.requeue(batch);
      this.scheduleRetry();
      return;
    }
    this.finish(batch, error);
  }

  private requeue(batch: SealedBatch): void {
    if (batch.done || this.ready.includes(batch)) return;
    this.ready.push(batch);
    this.readyUnsorted = true;
  }

  /** Settles a batch for good: resolves its records (error null) or rejects them. */
  private finish(batch: SealedBatch, error: RiffleError | null, baseOffset = -1): void {
    if (batch.done) return;
    batch.done = true;
    this.sequenceOf(batch.topic, batch.partition).remove(batch);
    if (error) {
      this.settleWaiters(batch.waiters, error);
      return;
    }
    this.releaseBytes(batch.waiters.bytes);
    const { callbacks } = batch.waiters;
    for (let index = 0; index < callbacks.length; index++) {
      notify(callbacks[index]!, null, { topic: batch.topic, partition: batch.partition, offset: baseOffset < 0 ? -1 : baseOffset + index });
    }
    dropCallbacks(batch.waiters);
  }

  private settleWaiters(waiters: Waiters, error: RiffleError): void {
    this.releaseBytes(waiters.bytes);
    for (const callback of waiters.callbacks) notify(callback, error);
    dropCallbacks(waiters);
  }

  private releaseBytes(size: number): void {
    this.bufferedBytes -= size;
    while (this.spaceWaiters.length > 0 && this.bufferedBytes < this.options.bufferBytesMax) this.spaceWaiters.shift()!();
  }

  /** Sends everything queued and waits until each record is acknowledged or has failed. */
  async flush(): Promise<void> {
    for (const batch of this.openBatches()) this.seal(batch);
    while (this.unsettled.size > 0 || this.ready.some((batch) => !batch.done) || this.openCount > 0 || this.awaitingIdentity.length > 0) {
      for (const batch of this.openBatches()) this.seal(batch);
      if (this.unsettled.size > 0) await Promise.race(this.unsettled);
      else await new Promise((resolve) => setTimeout(resolve, RETRY_BACKOFF_MS));
    }
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    this.lingerTimer?.cancel();
    clearTimeout(this.retryTimer);
    clearTimeout(this.leaderCheckTimer);
  }
}

/**
 * Lets go of a settled batch's callbacks. The batch may live in V8's old space (after a spell of
 * records waiting long in the buffer, V8 starts allocating batches there), while the callbacks
 * are young. Young-generation collections treat every old object that points into the young
 * generation as a root, dead or alive, until the next full collection; so a dead batch that
 * still held its callbacks made each scavenge copy and promote every record's callback since the
 * last one (2.5 MB at 100,000 records/s), 10-18 ms a scavenge instead of 1-2 ms.
 */
function dropCallbacks(waiters: Waiters): void {
  waiters.callbacks.length = 0;
}

/** Calls a record's callback; an exception it throws is rethrown later, outside the producer's bookkeeping. */
function notify(callback: SendCallback, error: Error | null, metadata?: RecordMetadata): void {
  try {
    callback(error, metadata);
  } catch (thrown) {
    queueMicrotask(() => {
      throw thrown;
    });
  }
}

/** Requests of at most bytesMax (or one group), never splitting a group. */
function chunkByBytes(groups: SealedBatch[][], bytesMax: number): SealedBatch[][][] {
  const chunks: SealedBatch[][][] = [];
  let current: SealedBatch[][] = [];
  let bytes = 0;
  for (const group of groups) {
    const groupBytes = group.reduce((sum, batch) => sum + batch.records.length, 0);
    if (current.length > 0 && bytes + groupBytes > bytesMax) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(group);
    bytes += groupBytes;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** Batches grouped by partition, groups in order of first appearance, batches in order. */
function groupByPartition(batches: SealedBatch[]): SealedBatch[][] {
  const groups = new Map<string, SealedBatch[]>();
  for (const batch of batches) {
    const key = `${batch.topic}\u0000${batch.partition}`;
    let group = groups.get(key);
    if (!group) groups.set(key, (group = []));
    group.push(batch);
  }
  return [...groups.values()];
}

/** An upper bound of the bytes a record's headers take in a batch. */
function headersBytes(headers: RecordHeader[] | undefined): number {
  if (!headers) return 0;
  let bytes = 0;
  for (const header of headers) bytes += Buffer.byteLength(header.key) + (header.value?.length ?? 0) + 10;
  return bytes;
}

function toBuffer(value: Buffer | string | null | undefined): Buffer | null {
  if (value === null || value === undefined) return null;
  return typeof value === 'string' ? Buffer.from(value) : value;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined)) as Partial<T>;
}
