// A batching producer. Records accumulate per partition in a RecordBatch v2 builder; a batch is
// sealed when it reaches batchBytesMax or has lingered lingerMs, and sealed batches are sent to
// their partition's leader, several partitions per Produce request, with a bounded number of
// requests in flight per broker. Retriable errors (leader moved, node down, timeouts) refresh the
// metadata and resend until the delivery timeout; other errors fail the records of that batch.
// Without idempotence (a later issue) a retry after a lost answer may write a batch twice, as
// with Kafka's non-idempotent producer.
import type { RiffleClient, TopicMetadata } from './client.js';
import { StickyPartitioner, partitionForKey } from './partitioner.js';
import { withRetries } from './retry.js';
import { RiffleError, errorNameOf, toRiffleError } from '../rpc/errors.js';
import { RecordBatchBuilder, type RecordHeader } from '../util/record-batch.js';
import type { ProduceResponse__Output } from '../rpc/generated/riffle/v1/ProduceResponse.js';

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

/**
 * The records of one batch wait on their own promises; their settle functions are kept in two
 * parallel arrays (no object per record), and the buffer space of the whole batch is released
 * once, when the batch completes.
 */
interface Waiters {
  resolvers: ((metadata: RecordMetadata) => void)[];
  rejecters: ((error: Error) => void)[];
  bytes: number;
}

interface OpenBatch {
  topic: string;
  partition: number;
  builder: RecordBatchBuilder;
  waiters: Waiters;
  createdAtMs: number;
}

interface SealedBatch {
  topic: string;
  partition: number;
  records: Buffer;
  waiters: Waiters;
  firstAttemptMs: number;
  attempts: number;
  retryAtMs: number;
}

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
/** What one record costs in the buffer beyond its key and value (framing, headers, bookkeeping). */
const RECORD_OVERHEAD_BYTES = 32;

export class Producer {
  private readonly options: typeof DEFAULTS & { acks: Acks };
  /** Open batches by topic, then by partition index (no string key built per record). */
  private readonly open = new Map<string, (OpenBatch | undefined)[]>();
  private openCount = 0;
  private ready: SealedBatch[] = [];
  private readonly inFlight = new Map<number, number>();
  private readonly sticky = new StickyPartitioner();
  private readonly unsettled = new Set<Promise<void>>();
  private bufferedBytes = 0;
  private readonly spaceWaiters: (() => void)[] = [];
  private lingerTimer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly client: RiffleClient,
    options: ProducerOptions = {},
  ) {
    const acks = options.acks === 'all' ? -1 : (options.acks ?? -1);
    if (acks !== 0 && acks !== 1 && acks !== -1) throw new RiffleError('INVALID_REQUIRED_ACKS', `acks must be 0, 1 or all, got ${String(options.acks)}.`);
    this.options = { ...DEFAULTS, ...stripUndefined(options), acks };
  }

  /** Queues one record; resolves with its offset once the cluster acknowledged it. */
  send(record: ProducerRecord): Promise<RecordMetadata> {
    if (this.closed) return Promise.reject(new RiffleError('INVALID_REQUEST', 'The producer is closed.'));
    const key = toBuffer(record.key);
    const value = toBuffer(record.value);
    const size = (key?.length ?? 0) + (value?.length ?? 0) + RECORD_OVERHEAD_BYTES;
    const metadata = this.client.cachedTopic(record.topic);
    // The hot path stays synchronous: known topic and room in the buffer.
    if (metadata && this.bufferedBytes + size <= this.options.bufferBytesMax) return this.enqueue(record, key, value, size, metadata);
    return this.sendSlow(record, key, value, size);
  }

  private async sendSlow(record: ProducerRecord, key: Buffer | null, value: Buffer | null, size: number): Promise<RecordMetadata> {
    while (this.bufferedBytes + size > this.options.bufferBytesMax && this.bufferedBytes > 0) {
      await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
    }
    // The cluster may be briefly unreachable (a node restarting): metadata lookups are retried
    // like sends, within the delivery timeout.
    const metadata = await withRetries(() => this.client.topicMetadata(record.topic), {
      ...this.client.retry,
      deadlineMs: this.options.maxBlockMs,
    });
    return this.enqueue(record, key, value, size, metadata);
  }

  private enqueue(record: ProducerRecord, key: Buffer | null, value: Buffer | null, size: number, metadata: TopicMetadata): Promise<RecordMetadata> {
    const count = metadata.partitions.length;
    const partition = record.partition ?? (key ? partitionForKey(key, count) : this.sticky.partition(record.topic, count));
    if (!Number.isInteger(partition) || partition < 0 || partition >= count) {
      return Promise.reject(new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `Topic '${record.topic}' has no partition ${partition}.`));
    }
    let batch = this.openBatch(record.topic, partition);
    // A record that would push a non-empty batch past batchBytesMax starts a new batch, so no
    // batch outgrows the size the broker accepts (max.message.bytes).
    if (batch.builder.count > 0 && batch.builder.sizeBytes + size + headersBytes(record.headers) > this.options.batchBytesMax) {
      this.seal(batch, count);
      batch = this.openBatch(record.topic, partition);
    }
    batch.builder.append({ key, value, headers: record.headers, timestamp: record.timestamp });
    this.bufferedBytes += size;
    batch.waiters.bytes += size;
    const promise = new Promise<RecordMetadata>((resolve, reject) => {
      batch.waiters.resolvers.push(resolve);
      batch.waiters.rejecters.push(reject);
    });
    if (batch.builder.sizeBytes >= this.options.batchBytesMax) this.seal(batch, count);
    else this.scheduleLinger();
    return promise;
  }

  private openBatch(topic: string, partition: number): OpenBatch {
    let byPartition = this.open.get(topic);
    if (!byPartition) this.open.set(topic, (byPartition = []));
    let batch = byPartition[partition];
    if (!batch) {
      batch = { topic, partition, builder: new RecordBatchBuilder(), waiters: { resolvers: [], rejecters: [], bytes: 0 }, createdAtMs: Date.now() };
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

  private seal(batch: OpenBatch, partitionCount?: number): void {
    this.open.get(batch.topic)![batch.partition] = undefined;
    this.openCount--;
    if (partitionCount !== undefined) this.sticky.batchSealed(batch.topic, batch.partition, partitionCount);
    const now = Date.now();
    this.ready.push({ topic: batch.topic, partition: batch.partition, records: batch.builder.build(), waiters: batch.waiters, firstAttemptMs: now, attempts: 0, retryAtMs: 0 });
    this.drain();
  }

  private scheduleLinger(): void {
    if (this.lingerTimer) return;
    this.lingerTimer = setTimeout(() => {
      this.lingerTimer = undefined;
      const now = Date.now();
      for (const batch of this.openBatches()) {
        if (now - batch.createdAtMs >= this.options.lingerMs) this.seal(batch);
      }
      if (this.openCount > 0) this.scheduleLinger();
    }, this.options.lingerMs);
  }

  /** Sends ready batches to their leaders while in-flight slots are free. */
  private drain(): void {
    const now = Date.now();
    const byLeader = new Map<number, SealedBatch[]>();
    const waiting: SealedBatch[] = [];
    for (const batch of this.ready) {
      const leader = batch.retryAtMs <= now ? this.leaderOf(batch) : undefined;
      if (leader === undefined || (this.inFlight.get(leader) ?? 0) >= this.options.inFlightRequestsPerBrokerMax) {
        waiting.push(batch);
        continue;
      }
      let list = byLeader.get(leader);
      if (!list) byLeader.set(leader, (list = []));
      list.push(batch);
    }
    this.ready = waiting;
    for (const [leader, batches] of byLeader) {
      for (const request of chunkByBytes(batches, this.options.requestBytesMax)) this.sendRequest(leader, request);
    }
    if (this.ready.length > 0) this.scheduleRetry();
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
    return this.client.cachedTopic(topic)?.partitions.find((candidate) => candidate.partition === partition)?.leaderId;
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
    const topics = new Map<string, { index: number; records: Buffer }[]>();
    for (const batch of batches) {
      let list = topics.get(batch.topic);
      if (!list) topics.set(batch.topic, (list = []));
      list.push({ index: batch.partition, records: batch.records });
    }
    const request = {
      acks: this.options.acks,
      timeoutMs: this.options.requestTimeoutMs,
      topicData: [...topics].map(([name, partitionData]) => ({ name, partitionData })),
    };
    const settled = this.call(leader, request)
      .then(
        (response) => this.handleResponse(batches, response),
        (error: unknown) => {
          const riffleError = toRiffleError(error);
          for (const batch of batches) this.failOrRetry(batch, riffleError);
        },
      )
      .finally(() => {
        this.inFlight.set(leader, (this.inFlight.get(leader) ?? 1) - 1);
        this.unsettled.delete(settled);
        this.drain();
      });
    this.unsettled.add(settled);
  }

  private call(leader: number, request: object): Promise<ProduceResponse__Output> {
    // The deadline leaves room for the broker's own timeout to answer first.
    return this.client.connectionTo(leader).call<ProduceResponse__Output>('riffle.v1.Kafka', 'Produce', request, this.options.requestTimeoutMs + 5_000);
  }

  private handleResponse(batches: SealedBatch[], response: ProduceResponse__Output): void {
    for (const batch of batches) {
      const result = response.responses
        .find((topic) => topic.name === batch.topic)
        ?.partitionResponses.find((partition) => partition.index === batch.partition);
      if (!result) {
        this.failOrRetry(batch, new RiffleError('UNKNOWN_SERVER_ERROR', `No answer for ${batch.topic}-${batch.partition}.`));
      } else if (result.errorCode !== 0) {
        this.failOrRetry(batch, new RiffleError(errorNameOf(result.errorCode), result.errorMessage || undefined));
      } else {
        const base = this.options.acks === 0 ? -1 : result.baseOffset;
        this.releaseBytes(batch.waiters.bytes);
        const { resolvers } = batch.waiters;
        for (let index = 0; index < resolvers.length; index++) {
          resolvers[index]!({ topic: batch.topic, partition: batch.partition, offset: base < 0 ? -1 : base + index });
        }
      }
    }
  }

  private failOrRetry(batch: SealedBatch, error: RiffleError): void {
    const elapsedMs = Date.now() - batch.firstAttemptMs;
    if (error.retriable && !this.closed && elapsedMs + RETRY_BACKOFF_MS < this.options.deliveryTimeoutMs) {
      this.client.invalidate(batch.topic);
      batch.retryAtMs = Date.now() + RETRY_BACKOFF_MS * Math.min(10, batch.attempts);
      if (!this.ready.includes(batch)) this.ready.push(batch);
      this.scheduleRetry();
      return;
    }
    this.releaseBytes(batch.waiters.bytes);
    for (const reject of batch.waiters.rejecters) reject(error);
  }

  private releaseBytes(size: number): void {
    this.bufferedBytes -= size;
    while (this.spaceWaiters.length > 0 && this.bufferedBytes < this.options.bufferBytesMax) this.spaceWaiters.shift()!();
  }

  /** Sends everything queued and waits until each record is acknowledged or has failed. */
  async flush(): Promise<void> {
    for (const batch of this.openBatches()) this.seal(batch);
    while (this.unsettled.size > 0 || this.ready.length > 0 || this.openCount > 0) {
      for (const batch of this.openBatches()) this.seal(batch);
      if (this.unsettled.size > 0) await Promise.race(this.unsettled);
      else await new Promise((resolve) => setTimeout(resolve, RETRY_BACKOFF_MS));
    }
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    clearTimeout(this.lingerTimer);
    clearTimeout(this.retryTimer);
  }
}

function chunkByBytes(batches: SealedBatch[], bytesMax: number): SealedBatch[][] {
  const chunks: SealedBatch[][] = [];
  let current: SealedBatch[] = [];
  let bytes = 0;
  for (const batch of batches) {
    if (current.length > 0 && bytes + batch.records.length > bytesMax) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(batch);
    bytes += batch.records.length;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
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
