// Follower replication: one fetcher per leader broker, each keeping one bidirectional
// ReplicaFetch stream to that leader and carrying every partition this broker follows from it.
// A round sends each partition's log end, how much of it is durable (only that counts toward the
// leader's high watermark), the epoch of its last record and its high watermark; the answer
// brings records to append, or a divergence point to truncate to (leader-epoch truncation,
// KIP-101/279), and the leader's high watermark, for the partitions where any of that is new
// (the others are left out). The next round starts as soon as the records are appended: the flush
// runs meanwhile, and when it completes while that round is out, a progress report (not
// answered) tells the leader the new durable ends at once. Waiting for the flush before fetching
// again, as this fetcher once did, put a flush and a round trip between most records and their
// acknowledgement, and a second flush when they arrived during one.
//
// A partition that joins a fetcher while a round is parked at the leader (a new leadership, say)
// must not wait out the long poll: the fetcher writes an empty nudge on the stream, which makes
// the leader answer the parked round at once, and the next round carries the new partition.
//
// The stream is a fetch session (replication-service.ts): once the leader's first answer on it
// says it keeps sessions, a round lists only the partitions whose position moved since the
// stream last told the leader (and those no longer fetched from it), not every partition
// followed. A new stream starts a new session, with a whole first round.
import type * as grpc from '@grpc/grpc-js';
import type { Partition } from './partition.js';
import { ConnectionPool } from '../src/rpc/client.js';
import { fromServiceError } from '../src/rpc/errors.js';
import type { Logger } from '../src/util/logger.js';
import type { ReplicaFetchRequest } from '../src/rpc/generated/riffle/internal/ReplicaFetchRequest.js';
import type { ReplicaFetchPartition } from '../src/rpc/generated/riffle/internal/ReplicaFetchPartition.js';
import type { ReplicaFetchResponse__Output } from '../src/rpc/generated/riffle/internal/ReplicaFetchResponse.js';
import type { ReplicaFetchPartitionData__Output } from '../src/rpc/generated/riffle/internal/ReplicaFetchPartitionData.js';
import type { ReplicaFetchForgotten } from '../src/rpc/generated/riffle/internal/ReplicaFetchForgotten.js';

export const REPLICA_FETCH_WAIT_MS = 500;
export const REPLICA_FETCH_BYTES_MAX = 16 * 1024 * 1024;
export const REPLICA_FETCH_PARTITION_BYTES_MAX = 1024 * 1024;
const RECONNECT_BACKOFF_MS = 200;
/** Pause between the fetches of a replica waiting to leave the ISR before cutting a corrupt batch. */
const CORRUPT_REPLICA_BACKOFF_MS = 100;
/** A round that gets no answer for this long is abandoned and the stream reopened. */
const ROUND_TIMEOUT_MS = REPLICA_FETCH_WAIT_MS + 10_000;

export interface FetcherContext {
  selfId: number;
  brokerEpoch: () => number;
  logger: Logger;
  /** The address to dial for a leader's advertised one (--dial-overrides); identity by default. */
  dial?: (address: string) => string;
  /** Counts progress reports written (riffle_broker_replica_progress_reports_total). */
  onProgressReport?: () => void;
  /** Counts rounds sent and the partitions each names (riffle_broker_replica_fetch_round*_total). */
  onRound?: (partitions: number) => void;
}

type FetchStream = grpc.ClientDuplexStream<ReplicaFetchRequest, ReplicaFetchResponse__Output>;

/** What the leader knows of this follower on one stream. */
interface FetchSession {
  /** The leader said it keeps sessions: requests may be incremental. */
  incremental: boolean;
  /** Each partition's last position sent in an incremental request or report on the stream. */
  readonly sent: Map<string, Position>;
}

/** A partition's entry in a request, every field set. */
type Position = Required<ReplicaFetchPartition>;

class ReplicaFetcher {
  readonly partitions = new Map<string, Partition>();
  private stream?: FetchStream;
  /** The session of `stream`; a new stream starts a new one. */
  private session: FetchSession = { incremental: false, sent: new Map() };
  /** Requests written and not yet answered, oldest first (a round, then perhaps a nudge). */
  private readonly pending: { resolve: (response: ReplicaFetchResponse__Output) => void; reject: (error: Error) => void }[] = [];
  private roundInFlight = false;
  /** The durable end each partition's last request (round or report) told the leader. */
  private readonly reportedDurable = new Map<string, number>();
  private reportScheduled = false;
  private running = false;
  private stopped = false;
  private wake?: () => void;

  constructor(
    readonly leaderId: number,
    private address: string,
    private readonly pool: ConnectionPool,
    private readonly context: FetcherContext,
  ) {}

  setAddress(address: string): void {
    if (address === this.address) return;
    this.address = address;
    this.stream?.cancel();
  }

  add(partition: Partition): void {
    const key = keyOf(partition);
    const isNew = this.partitions.get(key) !== partition;
    this.partitions.set(key, partition);
    this.wake?.();
    if (!this.running) void this.run();
    else if (isNew) this.nudge();
  }

  /** Ends a parked round early so the next one includes a partition added meanwhile. */
  private nudge(): void {
    if (!this.roundInFlight || !this.stream) return;
    this.pending.push({ resolve: () => undefined, reject: () => undefined });
    this.stream.write({ replicaId: this.context.selfId, brokerEpoch: this.context.brokerEpoch(), maxWaitMs: 0, maxBytes: 0, partitions: [] } satisfies ReplicaFetchRequest);
  }

  remove(partition: Partition): void {
    this.partitions.delete(keyOf(partition));
    this.reportedDurable.delete(keyOf(partition));
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
    this.stream?.cancel();
  }

  private async run(): Promise<void> {
    this.running = true;
    while (!this.stopped) {
      if (this.partitions.size === 0) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      try {
        await this.round();
      } catch (error) {
        if (this.stopped) break;
        this.context.logger.debug({ err: error, leader: this.leaderId }, 'replica fetch failed; reconnecting');
        this.dropStream(error instanceof Error ? error : new Error(String(error)));
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_BACKOFF_MS));
      }
    }
    this.running = false;
  }

  private async round(): Promise<void> {
    this.openStream();
    const session = this.session;
    const listed = session.incremental ? this.incrementalPart(session) : { partitions: [...this.partitions.values()].map((partition) => this.positionOf(partition)) };
    const request: ReplicaFetchRequest = {
      replicaId: this.context.selfId,
      brokerEpoch: this.context.brokerEpoch(),
      maxWaitMs: REPLICA_FETCH_WAIT_MS,
      maxBytes: REPLICA_FETCH_BYTES_MAX,
      ...listed,
    };
    this.context.onRound?.(listed.partitions.length);
    this.roundInFlight = true;
    let response: ReplicaFetchResponse__Output;
    try {
      response = await this.exchange(request);
    } finally {
      this.roundInFlight = false;
    }
    if (response.incrementalSessions && this.session === session) session.incremental = true;
    const pauses: Promise<void>[] = [];
    for (const data of response.partitions) {
      const partition = this.partitions.get(`${data.topic}\u0000${data.partition}`);
      if (!partition || partition.isLeader) continue;
      const pause = this.apply(partition, data);
      if (pause) pauses.push(pause);
    }
    await Promise.all(pauses);
  }

  /**
   * An incremental round's partitions and forgotten ones: the positions that differ from what the
   * session last sent, and the sent partitions no longer followed. Records them as sent. A
   * partition whose position has not moved costs a comparison, not a new entry.
   */
  private incrementalPart(session: FetchSession): { incremental: true; partitions: Position[]; forgotten: ReplicaFetchForgotten[] } {
    const moved: Position[] = [];
    for (const [key, partition] of this.partitions) {
      if (isUnmoved(session.sent.get(key), partition)) continue;
      const position = this.positionOf(partition);
      session.sent.set(key, position);
      moved.push(position);
    }
    const forgotten: ReplicaFetchForgotten[] = [];
    for (const [key, position] of session.sent) {
      if (this.partitions.has(key)) continue;
      session.sent.delete(key);
      forgotten.push({ topic: position.topic, partition: position.partition });
    }
    return { incremental: true, partitions: moved, forgotten };
  }

  /** A partition's entry in a request: its log end, how much of it is durable, its last epoch. */
  private positionOf(partition: Partition): Position {
    const fetchOffset = partition.replicationFetchOffset;
    const durableEnd = Math.min(partition.replicationDurableOffset, fetchOffset);
    this.reportedDurable.set(keyOf(partition), durableEnd);
    return {
      topic: partition.topic,
      partition: partition.index,
      currentLeaderEpoch: partition.leaderEpoch,
      fetchOffset,
      lastFetchedEpoch: partition.replicationLastFetchedEpoch,
      logStartOffset: partition.logStartOffset,
      partitionMaxBytes: REPLICA_FETCH_PARTITION_BYTES_MAX,
      unflushedRecords: fetchOffset - durableEnd,
      highWatermark: partition.highWatermark,
    };
  }

  /** A flush completed: report it soon, once for every flush that completes in the same turn. */
  private durableProgressed(): void {
    if (this.reportScheduled) return;
    this.reportScheduled = true;
    setImmediate(() => {
      this.reportScheduled = false;
      this.reportProgress();
    });
  }

  /**
   * Tells the leader the durable ends that moved since the last request, while a round is out
   * (parked at the leader, most likely). Between rounds there is nothing to do: the next round,
   * about to leave, carries them.
   */
  private reportProgress(): void {
    if (!this.roundInFlight || !this.stream || this.stopped) return;
    const moved: Partition[] = [];
    for (const [key, partition] of this.partitions) {
      if (partition.isLeader) continue;
      const durableEnd = Math.min(partition.replicationDurableOffset, partition.replicationFetchOffset);
      if (durableEnd > (this.reportedDurable.get(key) ?? -1)) moved.push(partition);
    }
    if (moved.length === 0) return;
    const positions = moved.map((partition) => this.positionOf(partition));
    // In a session the report also moves the positions the leader keeps (its next rounds fetch
    // at them), so they are sent ones.
    const incremental = this.session.incremental;
    if (incremental) for (const position of positions) this.session.sent.set(positionKey(position), position);
    this.stream.write({
      replicaId: this.context.selfId, brokerEpoch: this.context.brokerEpoch(), maxWaitMs: 0, maxBytes: 0, progressOnly: true,
      incremental, partitions: positions,
    } satisfies ReplicaFetchRequest);
    this.context.onProgressReport?.();
  }

  /** Applies one partition's answer; returns a pause to take before the next round, if any. */
  private apply(partition: Partition, data: ReplicaFetchPartitionData__Output): Promise<void> | undefined {
    // A replica with a corrupt batch takes nothing until it has left the ISR and cut its log
    // (ReplicaManager's repair); its fetches only tell the leader where its good copy ends.
    if (partition.log.corruptOffset !== null) return new Promise((resolve) => setTimeout(resolve, CORRUPT_REPLICA_BACKOFF_MS));
    if (data.errorCode !== 0) {
      // The leader moved or does not know the epoch yet: the metadata will catch up.
      return new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (data.diverging) {
      this.context.logger.info(`broker ${this.context.selfId} truncates ${partition.topic}-${partition.index} to ${data.divergingEndOffset} (diverged at epoch ${data.divergingEpoch})`);
      partition.truncateToDivergence(data.divergingEpoch, data.divergingEndOffset);
      return undefined;
    }
    // A failed flush fails the log: the next append throws and the round reconnects.
    partition.appendAsFollower(data.records, data.highWatermark, () => this.durableProgressed());
    return undefined;
  }

  private exchange(request: ReplicaFetchRequest): Promise<ReplicaFetchResponse__Output> {
    const stream = this.openStream();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('replica fetch round timed out')), ROUND_TIMEOUT_MS);
      this.pending.push({
        resolve: (response) => {
          clearTimeout(timer);
          resolve(response);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      stream.write(request);
    });
  }

  /** Abandons the stream; whatever it still owed is failed, so answers never cross streams. */
  private dropStream(error: Error): void {
    const stream = this.stream;
    this.stream = undefined;
    stream?.cancel();
    for (const pending of this.pending.splice(0)) pending.reject(error);
  }

  private openStream(): FetchStream {
    if (this.stream) return this.stream;
    const client = this.pool.get(this.address).client('riffle.internal.Replication') as unknown as {
      ReplicaFetch(): FetchStream;
    };
    const stream = client.ReplicaFetch();
    this.session = { incremental: false, sent: new Map() };
    stream.on('data', (response: ReplicaFetchResponse__Output) => this.pending.shift()?.resolve(response));
    const fail = (error: Error): void => {
      if (this.stream === stream) this.dropStream(error);
    };
    stream.on('error', (error: grpc.ServiceError) => fail(fromServiceError(error)));
    stream.on('end', () => fail(new Error('replica fetch stream ended')));
    this.stream = stream;
    return stream;
  }
}

/** Fetchers by leader; partitions move between them as leaders change. */
export class ReplicaFetcherManager {
  private readonly fetchers = new Map<number, ReplicaFetcher>();
  private readonly pool = new ConnectionPool();
  private readonly following = new Map<string, number>();

  constructor(private readonly context: FetcherContext) {}

  /** Follows `partition` from `leaderId` at `address` (host:port of its broker listener). */
  follow(partition: Partition, leaderId: number, advertised: string): void {
    const address = this.context.dial?.(advertised) ?? advertised;
    const key = keyOf(partition);
    const current = this.following.get(key);
    if (current !== undefined && current !== leaderId) this.fetchers.get(current)?.remove(partition);
    let fetcher = this.fetchers.get(leaderId);
    if (!fetcher) {
      fetcher = new ReplicaFetcher(leaderId, address, this.pool, this.context);
      this.fetchers.set(leaderId, fetcher);
    }
    fetcher.setAddress(address);
    fetcher.add(partition);
    this.following.set(key, leaderId);
  }

  unfollow(partition: Partition): void {
    const key = keyOf(partition);
    const leaderId = this.following.get(key);
    if (leaderId === undefined) return;
    this.fetchers.get(leaderId)?.remove(partition);
    this.following.delete(key);
  }

  close(): void {
    for (const fetcher of this.fetchers.values()) fetcher.stop();
    this.fetchers.clear();
    this.pool.close();
  }
}

function keyOf(partition: Partition): string {
  return `${partition.topic}\u0000${partition.index}`;
}

function positionKey(position: Position): string {
  return `${position.topic}\u0000${position.partition}`;
}

/** `partition` would send what the session last sent for it (positionOf's fields, read in place). */
function isUnmoved(sent: Position | undefined, partition: Partition): boolean {
  if (sent === undefined) return false;
  const fetchOffset = partition.replicationFetchOffset;
  return (
    sent.currentLeaderEpoch === partition.leaderEpoch &&
    Number(sent.fetchOffset) === fetchOffset &&
    sent.lastFetchedEpoch === partition.replicationLastFetchedEpoch &&
    Number(sent.logStartOffset) === partition.logStartOffset &&
    sent.partitionMaxBytes === REPLICA_FETCH_PARTITION_BYTES_MAX &&
    Number(sent.unflushedRecords) === fetchOffset - Math.min(partition.replicationDurableOffset, fetchOffset) &&
    Number(sent.highWatermark) === partition.highWatermark
  );
}
