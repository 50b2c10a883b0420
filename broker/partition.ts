// One partition replica hosted by this broker: its log, and its role and leader epoch as the
// metadata image says. Only the leader takes produce requests and serves consumers.
//
// The high watermark is the offset below which records are visible to consumers. Until follower
// replication exists (the replication issue), it is the durable end of the leader's log: with
// flush policy `ack` it moves only once an fdatasync covers the records, so a consumer never
// reads what a crash could take back; with `interval` and `os` it follows the log end at once.
// Replication will make it the minimum log end offset of the ISR.
import type { AppendInfo, PartitionLog } from './log/index.js';
import { RiffleError } from '../src/rpc/errors.js';
import { assert } from '../src/util/assert.js';
import { ProducerStateManager } from './producer-state.js';

export type HighWatermarkListener = (partition: Partition) => void;

export interface PartitionRole {
  leaderId: number;
  leaderEpoch: number;
  partitionEpoch: number;
}

export class Partition {
  private highWatermarkOffset: number;
  private readonly listeners = new Set<HighWatermarkListener>();
  private role: PartitionRole;

  /** [idempotence] Idempotent producers' epochs and last batches (producer-state.ts). */
  readonly producerState = new ProducerStateManager();

  constructor(
    readonly topic: string,
    readonly topicId: string,
    readonly index: number,
    readonly log: PartitionLog,
    readonly selfId: number,
    role: PartitionRole,
  ) {
    this.role = { ...role };
    // [idempotence] An empty log's producer state is known at once, so a follower can track it from
    // the first append; a log with data is read when the state is first needed (producer-state.ts).
    if (log.logEndOffset === log.logStartOffset) this.producerState.loadFromLog(log);
    // Everything recovered from disk survived a restart and is durable now.
    this.highWatermarkOffset = log.logEndOffset;
  }

  get highWatermark(): number {
    return this.highWatermarkOffset;
  }

  get logStartOffset(): number {
    return this.log.logStartOffset;
  }

  get logEndOffset(): number {
    return this.log.logEndOffset;
  }

  get leaderEpoch(): number {
    return this.role.leaderEpoch;
  }

  get leaderId(): number {
    return this.role.leaderId;
  }

  get isLeader(): boolean {
    return this.role.leaderId === this.selfId;
  }

  /** Takes the role the metadata gives; a leader epoch never goes back. */
  updateRole(role: PartitionRole): void {
    assert(role.leaderEpoch >= this.role.leaderEpoch, () => `leader epoch of ${this.topic}-${this.index} went back from ${this.role.leaderEpoch} to ${role.leaderEpoch}`);
    this.role = { ...role };
  }

  /** Only the leader answers clients; anyone else says where the leader is. */
  requireLeader(): void {
    if (this.isLeader) return;
    throw new RiffleError('NOT_LEADER_OR_FOLLOWER', `Broker ${this.selfId} is not the leader of ${this.topic}-${this.index}; the leader is ${this.role.leaderId}.`);
  }

  /** Checks a client's idea of the leader epoch (-1 means the client does not know it). */
  checkLeaderEpoch(clientEpoch: number): void {
    if (clientEpoch < 0 || clientEpoch === this.role.leaderEpoch) return;
    if (clientEpoch < this.role.leaderEpoch) {
      throw new RiffleError('FENCED_LEADER_EPOCH', `Leader epoch ${clientEpoch} is older than ${this.role.leaderEpoch} for ${this.topic}-${this.index}.`);
    }
    throw new RiffleError('UNKNOWN_LEADER_EPOCH', `Leader epoch ${clientEpoch} is newer than ${this.role.leaderEpoch} for ${this.topic}-${this.index}.`);
  }

  /**
   * Appends as leader. The returned promise resolves once the records are as durable as the
   * topic's flush policy promises; `awaitDurable` false (acks=0) skips that wait, not the write.
   */
  async append(batches: Buffer, awaitDurable: boolean): Promise<AppendInfo> {
    this.requireLeader();
    // [idempotence] Sequences are checked before the write and recorded after it, with nothing in
    // between; a retried batch is not written again and answers with its original offsets.
    const producerPlan = this.producerState.check(batches, this.log);
    const info = producerPlan.duplicate ?? this.log.append(batches, this.role.leaderEpoch);
    if (producerPlan.duplicate === null) this.producerState.record(producerPlan, info);
    const durable = this.log.waitDurable(info.lastOffset + 1).then(() => this.advanceHighWatermark(info.lastOffset + 1));
    if (awaitDurable) await durable;
    else durable.catch(() => undefined);
    return info;
  }

  private advanceHighWatermark(offset: number): void {
    if (offset <= this.highWatermarkOffset || offset > this.log.logEndOffset) return;
    this.highWatermarkOffset = offset;
    for (const listener of this.listeners) listener(this);
  }

  /** [idempotence] A follower's appended batches update its producer state; call after each follower append. */
  observeFollowerAppend(batches: Buffer): void {
    this.producerState.observeReplicated(batches);
  }

  /** Reads whole batches from fetchOffset, never past the high watermark. */
  read(fetchOffset: number, maxBytes: number): Buffer {
    this.requireLeader();
    if (fetchOffset < this.log.logStartOffset || fetchOffset > this.highWatermarkOffset) {
      throw new RiffleError(
        'OFFSET_OUT_OF_RANGE',
        `Offset ${fetchOffset} is outside [${this.log.logStartOffset}, ${this.highWatermarkOffset}] of ${this.topic}-${this.index}.`,
      );
    }
    if (fetchOffset === this.highWatermarkOffset) return EMPTY;
    return this.log.read(fetchOffset, maxBytes, this.highWatermarkOffset).records;
  }

  onHighWatermark(listener: HighWatermarkListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.log.close();
  }
}

const EMPTY = Buffer.alloc(0);
