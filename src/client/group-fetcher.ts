// Fetching for the group consumer: positions for any set of topic-partitions (of several topics),
// one long-polling Fetch in flight per leader, records buffered as they arrive. Partitions come
// and go as the group assigns and revokes them; an answer for a partition that was removed,
// paused or moved by a seek while the fetch was out is dropped. With a rack, a partition is
// fetched from the in-sync replica its leader prefers for that rack (KIP-392), as the partition
// consumer does.
import { partitionOf, type RiffleClient } from './client.js';
import type { ConsumerRecord, OffsetReset } from './consumer.js';
import { RiffleError, toRiffleError } from '../rpc/errors.js';
import { ReadReplicas } from './read-replicas.js';
import { collectRecords, failedPartition, sendFetch, type FetchedPartition } from './fetch-answers.js';

export interface TopicPartition {
  topic: string;
  partition: number;
}

export function tpKeyOf(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

export interface GroupFetcherOptions {
  maxWaitMs: number;
  maxBytes: number;
  partitionMaxBytes: number;
  autoOffsetReset: OffsetReset;
  /** The consumer's availability zone: leaders may send it to an in-sync replica there (KIP-392). */
  rack?: string;
}

/** Buffered records at most before fetching pauses (a bound on memory). */
export const BUFFERED_RECORDS_MAX = 500_000;

export class GroupFetcher {
  private readonly positions = new Map<string, TopicPartition & { offset: number }>();
  private readonly paused = new Set<string>();
  /** Fetches in flight, by node (a leader, or a replica a leader preferred). */
  private readonly fetches = new Map<number, Promise<void>>();
  private readonly readReplicas = new ReadReplicas<string>();
  private readonly inFlight = new Set<string>();
  private buffered: ConsumerRecord[] = [];
  private failure?: RiffleError;
  /** Ends the wait of a poll that had nothing to fetch. */
  private wakeIdlePoll?: () => void;
  /** Counts wake() calls: one that comes while a poll is on its way to waiting is not lost. */
  private wakeups = 0;
  readonly highWatermarks = new Map<string, number>();

  constructor(
    private readonly client: RiffleClient,
    readonly options: GroupFetcherOptions,
  ) {}

  add(topic: string, partition: number, offset: number): void {
    this.positions.set(tpKeyOf(topic, partition), { topic, partition, offset });
    this.wake();
  }

  remove(topic: string, partition: number): void {
    const key = tpKeyOf(topic, partition);
    this.positions.delete(key);
    this.paused.delete(key);
    this.dropBuffered(key);
  }

  has(topic: string, partition: number): boolean {
    return this.positions.has(tpKeyOf(topic, partition));
  }

  position(topic: string, partition: number): number | undefined {
    return this.positions.get(tpKeyOf(topic, partition))?.offset;
  }

  /** Moves the fetch position; records already buffered for the partition are dropped. */
  seek(topic: string, partition: number, offset: number): void {
    const entry = this.positions.get(tpKeyOf(topic, partition));
    if (!entry) throw new RiffleError('INVALID_REQUEST', `${topic}-${partition} is not assigned to this consumer.`);
    entry.offset = offset;
    this.dropBuffered(tpKeyOf(topic, partition));
    this.wake();
  }

  pause(topic: string, partition: number): void {
    this.paused.add(tpKeyOf(topic, partition));
  }

  resume(topic: string, partition: number): void {
    this.paused.delete(tpKeyOf(topic, partition));
    this.wake();
  }

  /** Ends the wait of a poll that has nothing to fetch now (a partition came, or the consumer stops). */
  wake(): void {
    this.wakeups++;
    this.wakeIdlePoll?.();
  }

  isPaused(topic: string, partition: number): boolean {
    return this.paused.has(tpKeyOf(topic, partition));
  }

  private dropBuffered(key: string): void {
    this.buffered = this.buffered.filter((record) => tpKeyOf(record.topic, record.partition) !== key);
  }

  /** The records that have arrived, waiting up to about maxWaitMs when none have. */
  async poll(): Promise<ConsumerRecord[]> {
    const wakeups = this.wakeups;
    await this.launchFetches();
    if (this.buffered.length === 0 && this.fetches.size > 0) await Promise.race([...this.fetches.values()]);
    // Nothing to fetch (every partition paused, none added yet, or no leader known): wait as a
    // long poll would. Answering at once would turn the caller's poll loop into a chain of
    // microtasks that never yields to timers or I/O: the process stops heartbeating and the
    // commit or listener it waits for never completes (chaos pause-leader seed 21: a member whose
    // only partition was being revoked hung until killed, while its partition went to another).
    else if (this.buffered.length === 0 && !this.failure && this.wakeups === wakeups) await this.idleWait(this.fetchable() ? Math.min(100, this.options.maxWaitMs) : this.options.maxWaitMs);
    if (this.failure) {
      const failure = this.failure;
      this.failure = undefined;
      throw failure;
    }
    const records = this.buffered;
    this.buffered = [];
    return records;
  }

  /** Whether any partition is there to fetch (not paused), whatever its leader. */
  private fetchable(): boolean {
    for (const key of this.positions.keys()) if (!this.paused.has(key)) return true;
    return false;
  }

  /** Up to `ms`, or until woken. */
  private idleWait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.wakeIdlePoll === done) this.wakeIdlePoll = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeIdlePoll = done;
    });
  }

  private async launchFetches(): Promise<void> {
    if (this.buffered.length >= BUFFERED_RECORDS_MAX) return;
    const idle = [...this.positions.entries()].filter(([key]) => !this.inFlight.has(key) && !this.paused.has(key));
    if (idle.length === 0) return;
    const byNode = new Map<number, (TopicPartition & { offset: number })[]>();
    for (const [key, entry] of idle) {
      let leader = -1;
      try {
        const metadata = await this.client.topicMetadata(entry.topic);
        leader = partitionOf(metadata, entry.partition)?.leaderId ?? -1;
      } catch (error) {
        this.failure ??= toRiffleError(error);
      }
      if (leader < 0) {
        this.client.invalidate(entry.topic);
        continue;
      }
      const node = this.readReplicas.nodeFor(key, leader);
      let list = byNode.get(node);
      if (!list) byNode.set(node, (list = []));
      list.push(entry);
    }
    for (const [node, entries] of byNode) {
      if (this.fetches.has(node)) continue;
      const keys = entries.map((entry) => tpKeyOf(entry.topic, entry.partition));
      for (const key of keys) this.inFlight.add(key);
      const fetch = this.fetchFrom(node, entries.map((entry) => ({ ...entry })))
        .catch((error: unknown) => {
          this.failure ??= toRiffleError(error);
        })
        .finally(() => {
          this.fetches.delete(node);
          for (const key of keys) this.inFlight.delete(key);
        });
      this.fetches.set(node, fetch);
    }
  }

  private async fetchFrom(node: number, entries: (TopicPartition & { offset: number })[]): Promise<void> {
    const topics = new Map<string, { partition: number; currentLeaderEpoch: number; fetchOffset: number; partitionMaxBytes: number }[]>();
    for (const entry of entries) {
      let list = topics.get(entry.topic);
      if (!list) topics.set(entry.topic, (list = []));
      // KIP-320: a broker at another leader epoch answers FENCED_ or UNKNOWN_LEADER_EPOCH
      // (retried after a metadata refresh) rather than serve, or refuse, this offset.
      list.push({ partition: entry.partition, currentLeaderEpoch: this.client.leaderEpochOf(entry.topic, entry.partition), fetchOffset: entry.offset, partitionMaxBytes: this.options.partitionMaxBytes });
    }
    const request = {
      maxWaitMs: this.options.maxWaitMs, minBytes: 1, maxBytes: this.options.maxBytes, rackId: this.options.rack ?? '',
      topics: [...topics].map(([topic, partitions]) => ({ topic, partitions })),
    };
    const response = await sendFetch(this.client, node, request, entries, this.options.maxWaitMs, (target) => this.readReplicas.forget(tpKeyOf(target.topic, target.partition)));
    if (response === undefined) return;
    for (const topic of response.responses) {
      for (const partition of topic.partitions) {
        const sent = entries.find((entry) => entry.topic === topic.topic && entry.partition === partition.partitionIndex);
        const current = this.positions.get(tpKeyOf(topic.topic, partition.partitionIndex));
        // Removed, paused or moved by a seek while the fetch was out: the answer is stale.
        if (!sent || !current || current.offset !== sent.offset || this.paused.has(tpKeyOf(topic.topic, partition.partitionIndex))) continue;
        await this.handlePartition(topic.topic, partition, current);
      }
    }
  }

  private async handlePartition(topic: string, partition: FetchedPartition, position: TopicPartition & { offset: number }): Promise<void> {
    const key = tpKeyOf(topic, position.partition);
    if (partition.errorCode !== 0) {
      const outOfRange = failedPartition(this.client, topic, partition, this.readReplicas.forget(key));
      if (!outOfRange) return;
      if (this.options.autoOffsetReset === 'none') throw outOfRange;
      position.offset = await this.lookupOffset(topic, position.partition, this.options.autoOffsetReset === 'earliest' ? -2 : -1);
      return;
    }
    if (partition.preferredReadReplica >= 0) {
      this.readReplicas.prefer(key, partition.preferredReadReplica);
      return;
    }
    this.highWatermarks.set(key, Number(partition.highWatermark));
    position.offset = collectRecords(topic, partition, position.offset, this.buffered);
  }

  /** ListOffsets on the partition's leader: -1 latest, -2 earliest, or a timestamp. */
  lookupOffset(topic: string, partition: number, timestamp: number): Promise<number> {
    return this.client.listOffset(topic, partition, timestamp);
  }
}
