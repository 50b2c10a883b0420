// The groups of one __consumer_offsets partition that this broker leads (Kafka's coordinator
// shard). On leadership it replays the partition from its log start to its log end and only then
// serves (COORDINATOR_LOAD_IN_PROGRESS meanwhile). Operations run one at a time: each computes the
// records its change needs against the current state, appends them as one batch with acks=all,
// and makes the change current only once the batch is committed. A failed append changes nothing
// in memory, so memory never holds what a successor would not replay. Losing the leadership (a
// new leader epoch) closes the shard: its appends fail with NOT_COORDINATOR and it answers nothing.
//
// Long-poll heartbeats held by this shard end when a committed change concerns them, and all end
// (NOT_COORDINATOR) when the shard closes.
//
// Sessions (when each member was last heard from) are not written down: a new coordinator gives
// every loaded member a fresh session, as Kafka does.
import type { Partition } from '../partition.js';
import { RiffleError, toRiffleError } from '../../src/rpc/errors.js';
import { assert } from '../../src/util/assert.js';
import type { Logger } from '../../src/util/logger.js';
import { RecordBatchBuilder, forEachRecordOfAll } from '../../src/util/record-batch.js';
import { applyRecord, diffRecords, groupStateOf, type GroupState } from './consumer-group.js';
import { applyAppRecord, isAppRecord, type KinesisApp } from './kinesis-leases.js';
import { decodeRecord, encodeKey, encodeValue, type OffsetsRecord } from './offsets-records.js';
import { ParkedHeartbeats } from './parked-heartbeats.js';

/** Operations waiting for their turn on one shard; beyond this, requests are refused. */
export const SHARD_QUEUE_MAX = 10_000;
/** Bytes read per step while loading. */
const LOAD_READ_BYTES = 4 * 1024 * 1024;
/** Records in one appended batch at most; larger changes are refused (they would not replay in one step). */
export const SHARD_BATCH_RECORDS_MAX = 50_000;

export interface MemberSession {
  /** performance.now() after which the member is removed. */
  deadlineMs: number;
  /** While revoking: performance.now() after which the member is fenced for not revoking. */
  revocationDeadlineMs: number | null;
}

export interface ShardOperationResult<T> {
  records: OffsetsRecord[];
  result: T;
  /** Runs after the records are committed (and applied), before the caller gets `result`. */
  afterCommit?: () => void;
}

export class GroupShard {
  state: 'loading' | 'active' | 'closed' = 'loading';
  readonly groups = new Map<string, GroupState>();
  /** Kinesis-like applications (checkpoints and leases) of this partition, by name. */
  readonly apps = new Map<string, KinesisApp>();
  readonly sessions = new Map<string, Map<string, MemberSession>>();
  /** When each group's current rebalance began (performance.now()), for the duration metric. */
  readonly rebalanceStartedMs = new Map<string, number>();
  /** When each group last became empty (Date.now()), for offsets retention. */
  readonly emptySinceMs = new Map<string, number>();
  /** Long-poll heartbeats held until their member's answer changes (parked-heartbeats.ts). */
  readonly parked = new ParkedHeartbeats();
  private queue: Promise<unknown> = Promise.resolve();
  private queued = 0;
  loadedRecords = 0;
  skippedRecords = 0;

  constructor(
    readonly partition: Partition,
    readonly leaderEpoch: number,
    private readonly logger: Logger,
  ) {}

  get index(): number {
    return this.partition.index;
  }

  /** Replays the partition; resolves once every record up to the log end is applied. */
  async load(): Promise<void> {
    const log = this.partition.log;
    const end = log.logEndOffset;
    let offset = log.logStartOffset;
    while (offset < end && this.state === 'loading') {
      // Old offsets records are seldom in the page cache: read them on the thread pool.
      const pending = log.readForFetch(offset, LOAD_READ_BYTES, end);
      const { records, nextOffset } = pending instanceof Promise ? await pending : pending;
      if (this.state !== 'loading') return;
      assert(nextOffset > offset, () => `offsets load made no progress at ${offset} of ${this.partition.topic}-${this.index}`);
      forEachRecordOfAll(records, (recordOffset, _timestamp, key, value) => {
        if (recordOffset < offset || recordOffset >= end) return;
        this.replay(key, value);
      });
      offset = nextOffset;
      // Long replays must not starve the node's other work.
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (this.state !== 'loading') return;
    const now = performance.now();
    for (const group of this.groups.values()) {
      const sessions = new Map<string, MemberSession>();
      for (const memberId of group.members.keys()) sessions.set(memberId, { deadlineMs: Number.POSITIVE_INFINITY, revocationDeadlineMs: null });
      this.sessions.set(group.groupId, sessions);
      if (group.members.size === 0) this.emptySinceMs.set(group.groupId, Date.now());
      if (groupStateOf(group) !== 'stable' && groupStateOf(group) !== 'empty') this.rebalanceStartedMs.set(group.groupId, now);
    }
    this.state = 'active';
  }

  private replay(key: Buffer | null, value: Buffer | null): void {
    try {
      const record = decodeRecord(key, value);
      if (record) this.apply(record);
      this.loadedRecords += 1;
    } catch (error) {
      // A record this coordinator cannot read is skipped rather than blocking every group of the
      // partition; it is counted and logged.
      this.skippedRecords += 1;
      this.logger.error({ err: error, partition: this.index }, 'skipped an unreadable __consumer_offsets record');
    }
  }

  requireActive(): void {
    if (this.state === 'loading') throw new RiffleError('COORDINATOR_LOAD_IN_PROGRESS', `Partition ${this.index} of the offsets topic is still loading.`);
    if (this.state === 'closed' || !this.partition.isLeader || this.partition.leaderEpoch !== this.leaderEpoch) {
      throw new RiffleError('NOT_COORDINATOR', `This broker no longer coordinates partition ${this.index} of the offsets topic.`);
    }
  }

  /**
   * Runs an operation in turn: `decide` sees the state every earlier operation left, returns the
   * records to write; they are appended (acks=all) and applied, then the result is returned.
   */
  run<T>(decide: () => ShardOperationResult<T>): Promise<T> {
    if (this.queued >= SHARD_QUEUE_MAX) return Promise.reject(new RiffleError('COORDINATOR_NOT_AVAILABLE', `${this.queued} group operations are queued on partition ${this.index}.`));
    this.queued += 1;
    const work = async (): Promise<T> => {
      try {
        this.requireActive();
        const outcome = decide();
        if (outcome.records.length > 0) await this.write(outcome.records);
        outcome.afterCommit?.();
        return outcome.result;
      } finally {
        this.queued -= 1;
      }
    };
    const result = this.queue.then(work, work);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async write(records: OffsetsRecord[]): Promise<void> {
    if (records.length > SHARD_BATCH_RECORDS_MAX) throw new RiffleError('INVALID_REQUEST', `A group change of ${records.length} records is too large.`);
    const builder = new RecordBatchBuilder();
    for (const record of records) builder.append({ key: encodeKey(record), value: encodeValue(record) });
    try {
      await this.partition.append(builder.build(), -1);
    } catch (error) {
      const riffleError = toRiffleError(error);
      // The outcome of a write the partition could not replicate is unknown, and this broker
      // may no longer lead: clients find the coordinator again and retry.
      if (riffleError.errorName === 'NOT_LEADER_OR_FOLLOWER' || riffleError.errorName === 'FENCED_LEADER_EPOCH') {
        this.close();
        throw new RiffleError('NOT_COORDINATOR', riffleError.message);
      }
      if (riffleError.errorName === 'NOT_ENOUGH_REPLICAS' || riffleError.errorName === 'REQUEST_TIMED_OUT') {
        throw new RiffleError('COORDINATOR_NOT_AVAILABLE', riffleError.message);
      }
      throw riffleError;
    }
    const changed = new Set<string>();
    for (const record of records) {
      this.apply(record);
      if (!isAppRecord(record)) changed.add(record.group);
    }
    for (const groupId of changed) this.parked.groupChanged(groupId, this.groups.get(groupId));
  }

  private apply(record: OffsetsRecord): void {
    if (isAppRecord(record)) applyAppRecord(this.apps, record);
    else applyRecord(this.groups, record);
  }

  /** The records that turn the stored `before` into `after` (a changed copy). */
  static changes(groupId: string, before: GroupState | undefined, after: GroupState | undefined): OffsetsRecord[] {
    return diffRecords(groupId, before, after);
  }

  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    // Held heartbeats learn at once that this broker no longer coordinates their group.
    this.parked.closeAll();
  }
}
