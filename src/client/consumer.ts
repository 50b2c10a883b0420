// A partition consumer: reads chosen partitions of one topic from positions it keeps itself
// (the group consumer with server-kept offsets comes with consumer groups). Each poll sends one
// long-polling Fetch per leader, in parallel, and returns the records in offset order per
// partition. Leader moves and unknown partitions refresh the metadata; an offset outside the log
// is reset by autoOffsetReset, as Kafka's auto.offset.reset does.
import { partitionOf, type RiffleClient } from './client.js';
import { RiffleError, errorNameOf, toRiffleError } from '../rpc/errors.js';
import type { RecordHeader } from '../util/record-batch.js';
import { withRetries } from './retry.js';
import { ReadReplicas } from './read-replicas.js';
import { collectRecords, failedPartition, sendFetch, type FetchedPartition } from './fetch-answers.js';
import type { ListOffsetsResponse__Output } from '../rpc/generated/riffle/v1/ListOffsetsResponse.js';

export type OffsetReset = 'earliest' | 'latest' | 'none';

export interface ConsumerOptions {
  topic: string;
  /** Partitions to read; all of the topic's when absent. */
  partitions?: number[];
  /** Where to start: earliest, latest, one offset for every partition, or offsets by partition. */
  from?: 'earliest' | 'latest' | number | Record<number, number>;
  autoOffsetReset?: OffsetReset;
  maxWaitMs?: number;
  minBytes?: number;
  maxBytes?: number;
  partitionMaxBytes?: number;
  /** The consumer's availability zone: the leader may send it to an in-sync replica there (KIP-392). */
  rack?: string;
}

export interface ConsumerRecord {
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: RecordHeader[];
}

const EARLIEST = -2;
const LATEST = -1;

export class PartitionConsumer {
  private readonly positions = new Map<number, number>();
  private readonly highWatermarks = new Map<number, number>();
  /** Fetches in flight by node, the partitions they carry, and what they brought back. */
  private readonly fetches = new Map<number, Promise<void>>();
  private readonly partitionsInFlight = new Set<number>();
  private buffered: ConsumerRecord[] = [];
  private failure?: RiffleError;
  /** Replicas the leaders sent us to, by partition (KIP-392). */
  private readonly readReplicas = new ReadReplicas<number>();
  private started = false;
  readonly topic: string;

  constructor(
    private readonly client: RiffleClient,
    private readonly options: ConsumerOptions,
  ) {
    this.topic = options.topic;
  }

  /** The next offset to read of a partition, once started. */
  position(partition: number): number | undefined {
    return this.positions.get(partition);
  }

  /** The last high watermark seen for a partition. */
  highWatermark(partition: number): number | undefined {
    return this.highWatermarks.get(partition);
  }

  /** Records behind the high watermark over all partitions, from the last fetch. */
  lag(): number {
    let lag = 0;
    for (const [partition, position] of this.positions) lag += Math.max(0, (this.highWatermarks.get(partition) ?? position) - position);
    return lag;
  }

  seek(partition: number, offset: number): void {
    this.positions.set(partition, offset);
  }

  private async start(): Promise<void> {
    const metadata = await this.client.topicMetadata(this.topic);
    const partitions = this.options.partitions ?? metadata.partitions.map((partition) => partition.partition);
    for (const partition of partitions) {
      if (!metadata.partitions.some((candidate) => candidate.partition === partition)) {
        throw new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `Topic '${this.topic}' has no partition ${partition}.`);
      }
    }
    const from = this.options.from ?? 'latest';
    const needLookup: { partition: number; timestamp: number }[] = [];
    for (const partition of partitions) {
      if (typeof from === 'number') this.positions.set(partition, from);
      else if (typeof from === 'object' && from[partition] !== undefined) this.positions.set(partition, from[partition]!);
      else needLookup.push({ partition, timestamp: from === 'earliest' ? EARLIEST : LATEST });
    }
    // A new leader answers OFFSET_NOT_AVAILABLE until its high watermark settles (KIP-207): retried.
    await withRetries(() => this.lookupOffsets(needLookup), this.client.retry);
    this.started = true;
  }

  /** Asks each partition's leader for an offset by ListOffsets timestamp (-1 latest, -2 earliest). */
  private async lookupOffsets(wanted: { partition: number; timestamp: number }[]): Promise<void> {
    if (wanted.length === 0) return;
    const byLeader = await this.groupByLeader(wanted.map((entry) => entry.partition));
    await Promise.all(
      [...byLeader].map(async ([leader, partitions]) => {
        const request = {
          topics: [{ name: this.topic, partitions: partitions.map((partition) => ({ partitionIndex: partition, currentLeaderEpoch: -1, timestamp: wanted.find((entry) => entry.partition === partition)!.timestamp })) }],
        };
        const response = await this.client.connectionTo(leader).call<ListOffsetsResponse__Output>('riffle.v1.Kafka', 'ListOffsets', request, this.client.requestTimeoutMs);
        for (const partition of response.topics[0]?.partitions ?? []) {
          if (partition.errorCode !== 0) {
            this.client.invalidate(this.topic);
            throw new RiffleError(errorNameOf(partition.errorCode), partition.errorMessage || undefined);
          }
          this.positions.set(partition.partitionIndex, partition.offset);
        }
      }),
    );
  }

  private async groupByLeader(partitions: number[]): Promise<Map<number, number[]>> {
    const metadata = await this.client.topicMetadata(this.topic);
    const byLeader = new Map<number, number[]>();
    for (const partition of partitions) {
      const leader = partitionOf(metadata, partition)?.leaderId ?? -1;
      if (leader < 0) {
        this.client.invalidate(this.topic);
        throw new RiffleError('LEADER_NOT_AVAILABLE', `No leader for ${this.topic}-${partition}.`);
      }
      let list = byLeader.get(leader);
      if (!list) byLeader.set(leader, (list = []));
      list.push(partition);
    }
    return byLeader;
  }

  /**
   * Returns the records that have arrived, waiting up to about maxWaitMs when none have. Each
   * node (leader or preferred replica) has its own fetch in flight, as in Kafka's consumer: a
   * node with data answers at once and its records are returned without waiting for the nodes
   * that are still long-polling.
   */
  async poll(): Promise<ConsumerRecord[]> {
    if (!this.started) await this.start();
    await this.launchFetches();
    if (this.buffered.length === 0 && this.fetches.size > 0) await Promise.race([...this.fetches.values()]);
    // No partitions to read: wait as a long poll would, so a poll loop does not spin on microtasks
    // and starve the process's timers and I/O.
    else if (this.buffered.length === 0 && !this.failure) await new Promise((resolve) => setTimeout(resolve, this.options.maxWaitMs ?? 500));
    if (this.failure) {
      const failure = this.failure;
      this.failure = undefined;
      throw failure;
    }
    const records = this.buffered;
    this.buffered = [];
    return records;
  }

  /** Starts a fetch for every node that has partitions to read and no fetch in flight. */
  private async launchFetches(): Promise<void> {
    const idle = [...this.positions.keys()].filter((partition) => !this.partitionsInFlight.has(partition));
    if (idle.length === 0) return;
    const byNode = await this.groupByReadNode(idle);
    for (const [node, partitions] of byNode) {
      if (this.fetches.has(node)) continue;
      for (const partition of partitions) this.partitionsInFlight.add(partition);
      const fetch = this.fetchFrom(node, partitions)
        .then((records) => {
          for (const record of records) this.buffered.push(record);
        })
        .catch((error: unknown) => {
          this.failure ??= toRiffleError(error);
        })
        .finally(() => {
          this.fetches.delete(node);
          for (const partition of partitions) this.partitionsInFlight.delete(partition);
        });
      this.fetches.set(node, fetch);
    }
  }

  /** The leader of each partition, or the replica the leader preferred for this consumer. */
  private async groupByReadNode(partitions: number[]): Promise<Map<number, number[]>> {
    const byLeader = await this.groupByLeader(partitions);
    const byNode = new Map<number, number[]>();
    for (const [leader, led] of byLeader) {
      for (const partition of led) {
        const node = this.readReplicas.nodeFor(partition, leader);
        let list = byNode.get(node);
        if (!list) byNode.set(node, (list = []));
        list.push(partition);
      }
    }
    return byNode;
  }

  private async fetchFrom(leader: number, partitions: number[]): Promise<ConsumerRecord[]> {
    const maxWaitMs = this.options.maxWaitMs ?? 500;
    const request = {
      maxWaitMs,
      minBytes: this.options.minBytes ?? 1,
      maxBytes: this.options.maxBytes ?? 50 * 1024 * 1024,
      rackId: this.options.rack ?? '',
      topics: [
        {
          topic: this.topic,
          partitions: partitions.map((partition) => ({
            partition,
            // KIP-320: a broker at another leader epoch answers FENCED_ or UNKNOWN_LEADER_EPOCH
            // (retried after a metadata refresh) rather than serve, or refuse, this offset.
            currentLeaderEpoch: this.client.leaderEpochOf(this.topic, partition),
            fetchOffset: this.positions.get(partition)!,
            partitionMaxBytes: this.options.partitionMaxBytes ?? 1024 * 1024,
          })),
        },
      ],
    };
    const sentPositions = new Map(partitions.map((partition) => [partition, this.positions.get(partition)!]));
    const targets = partitions.map((partition) => ({ topic: this.topic, partition }));
    const response = await sendFetch(this.client, leader, request, targets, maxWaitMs, (target) => this.readReplicas.forget(target.partition));
    if (response === undefined) return [];
    const records: ConsumerRecord[] = [];
    for (const partition of response.responses[0]?.partitions ?? []) {
      // A seek while the fetch was out makes its answer for that partition stale.
      if (this.positions.get(partition.partitionIndex) !== sentPositions.get(partition.partitionIndex)) continue;
      await this.handlePartition(partition, records);
    }
    return records;
  }

  private async handlePartition(partition: FetchedPartition, out: ConsumerRecord[]): Promise<void> {
    const index = partition.partitionIndex;
    if (partition.errorCode !== 0) {
      const outOfRange = failedPartition(this.client, this.topic, partition, this.readReplicas.forget(index));
      if (outOfRange) await this.resetOffset(index, outOfRange);
      return;
    }
    if (partition.preferredReadReplica >= 0) {
      this.readReplicas.prefer(index, partition.preferredReadReplica);
      return;
    }
    this.highWatermarks.set(index, partition.highWatermark);
    this.positions.set(index, collectRecords(this.topic, partition, this.positions.get(index)!, out));
  }

  private async resetOffset(partition: number, error: RiffleError): Promise<void> {
    const policy = this.options.autoOffsetReset ?? 'latest';
    if (policy === 'none') throw error;
    await this.lookupOffsets([{ partition, timestamp: policy === 'earliest' ? EARLIEST : LATEST }]);
  }

  /** Polls forever (until the signal aborts), yielding records one by one. */
  async *records(signal?: AbortSignal): AsyncGenerator<ConsumerRecord> {
    while (!signal?.aborted) {
      for (const record of await this.poll()) yield record;
    }
  }
}
