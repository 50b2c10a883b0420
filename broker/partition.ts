// One partition replica hosted by this broker: its log, the role the metadata gives it (leader
// or follower, leader epoch, ISR), and its high watermark, the offset below which records are
// committed and visible to consumers.
//
// As leader it tracks how far each follower's log goes (from their fetches) and moves the high
// watermark to the smallest durable log end among the maximal ISR (the ISR plus members a pending
// proposal adds), but only while the ISR has at least min.insync.replicas members. acks=all
// waits for the high watermark to pass the batch; acks=all with too small an ISR fails at once
// with NOT_ENOUGH_REPLICAS. It proposes ISR changes (a follower behind for
// replica.lag.time.max.ms leaves; a caught-up one rejoins) and acts on them only once the
// controller has committed them and they arrive in the metadata.
//
// As follower it appends what the leader sends (offsets and epochs already stamped) and takes
// the leader's high watermark, capped at its own log end.
import type { AppendInfo, PartitionLog, ReadResult } from './log/index.js';
import { RiffleError } from '../src/rpc/errors.js';
import { assert } from '../src/util/assert.js';
import { ProducerSnapshotFiles } from './producer-snapshots.js';
import { ProducerStateManager, SequenceGapError, type ProducerAppendPlan } from './producer-state.js';

export type PartitionListener = (partition: Partition) => void;

export interface PartitionRole {
  leaderId: number;
  leaderEpoch: number;
  partitionEpoch: number;
  replicas: readonly number[];
  isr: readonly number[];
  minInsyncReplicas: number;
  /** A stream shard closed by a resharding takes no more writes (absent means open). */
  closed?: boolean;
}

/** What the leader knows of one follower, from its fetches. */
interface FollowerState {
  /**
   * The broker epoch (registration) of the follower process whose fetches this state records;
   * -1 before its first fetch. A fetch from a newer registration starts the state afresh (KIP-903).
   */
  brokerEpoch: number;
  /** The follower's log end (durable per its flush policy); -1 until its first fetch. */
  logEndOffset: number;
  /** Last time the follower was caught up with the leader's log end. */
  lastCaughtUpMs: number;
  /** When its last fetch arrived; -1 before the first. */
  lastFetchMs: number;
  /** The leader's log end when it answered the follower's previous fetch. */
  leaderEndAtLastFetch: number;
}

/**
 * Kafka's replica.lag.time.max.ms by default: a follower not caught up for this long leaves the
 * ISR (a broker sets its own with --replica-lag-time-max-ms).
 */
export const REPLICA_LAG_TIME_MS_DEFAULT = 10_000;
/** How long a leader holds a batch ahead of its producer's sequence for the missing ones. */
export const SEQUENCE_GAP_HOLD_MS = 250;

/**
 * An ISR change this leader sent the controller, at the partition epoch it was based on. It is
 * pending until the metadata shows a newer partition epoch (the change, or one that made it
 * stale, was committed) or the controller refuses it with the partition unchanged.
 */
export interface IsrProposal {
  readonly isr: readonly number[];
  /**
   * KIP-903: the broker epoch of the process whose fetches put each follower of `isr` there; the
   * controller refuses a member whose registration has changed since (a restarted broker may have
   * lost what its previous process reported).
   */
  readonly followerEpochs: ReadonlyMap<number, number>;
  readonly leaderEpoch: number;
  readonly partitionEpoch: number;
  /** The controller answered that the partition moved on: only the metadata is awaited. */
  answered: boolean;
}

/** Why a leader did not record a follower's fetch or progress report (see recordFollowerFetch). */
export type IgnoredFollowerClaim = 'past_log_end';

/** When an append's local part (write and flush per policy) ended, for the produce phase metrics. */
export interface AppendPhases {
  localDoneMs: number;
}

export class Partition {
  private highWatermarkOffset: number;
  private durableEnd: number;
  private readonly hwListeners = new Set<PartitionListener>();
  private readonly appendListeners = new Set<PartitionListener>();
  private role: PartitionRole;
  private followers = new Map<number, FollowerState>();
  /** The log end when this replica last became leader: everything below came from earlier epochs. */
  private leaderEpochStartOffset = 0;
  /** Leader: the ISR change awaiting the controller, if any. */
  private isrProposal: IsrProposal | null = null;

  /** [idempotence] Idempotent producers' epochs and last batches (producer-state.ts), snapshotted beside the log. */
  readonly producerState: ProducerStateManager;

  constructor(
    readonly topic: string,
    readonly topicId: string,
    readonly index: number,
    readonly log: PartitionLog,
    readonly selfId: number,
    role: PartitionRole,
    private readonly nowMs: () => number = Date.now,
  ) {
    this.role = { ...role };
    this.producerState = new ProducerStateManager({ snapshots: new ProducerSnapshotFiles(log.dir) });
    // [idempotence] An empty log's producer state is known at once, so a follower can track it from
    // the first append; a log with data builds it off the event loop at its first follower append
    // or when it takes leadership (producer-state.ts).
    if (log.logEndOffset === log.logStartOffset) this.producerState.loadFromLog(log);
    // Everything recovered from disk is durable. The high watermark is not persisted: it starts
    // at the log start and the leader recomputes it from the ISR's fetches (a single-replica
    // partition's is its own durable end at once).
    this.durableEnd = log.logEndOffset;
    this.highWatermarkOffset = log.logStartOffset;
    if (this.isLeader) this.takeLeadership();
    this.maybeAdvanceHighWatermark();
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

  get partitionEpoch(): number {
    return this.role.partitionEpoch;
  }

  get isr(): readonly number[] {
    return this.role.isr;
  }

  get replicaCount(): number {
    return this.role.replicas.length;
  }

  /** Leader: how long ago the least caught-up ISR follower was last caught up (0 with none). */
  maxFollowerLagMs(): number {
    if (!this.isLeader) return 0;
    const now = this.nowMs();
    let lag = 0;
    for (const [id, follower] of this.followers) if (this.role.isr.includes(id)) lag = Math.max(lag, now - follower.lastCaughtUpMs);
    return lag;
  }

  /** Leader: how many records the furthest-behind follower lacks (0 when none is known). */
  maxFollowerLag(): number {
    let lag = 0;
    for (const follower of this.followers.values()) {
      if (follower.logEndOffset >= 0) lag = Math.max(lag, this.log.logEndOffset - follower.logEndOffset);
    }
    return lag;
  }

  /** A resharded stream shard's parent: no more writes. */
  get isClosed(): boolean {
    return this.role.closed === true;
  }

  get isLeader(): boolean {
    return this.role.leaderId === this.selfId;
  }

  /** Takes the role the metadata gives; a leader epoch never goes back. */
  updateRole(role: PartitionRole): void {
    assert(role.leaderEpoch >= this.role.leaderEpoch, () => `leader epoch of ${this.topic}-${this.index} went back from ${this.role.leaderEpoch} to ${role.leaderEpoch}`);
    const becameLeader = role.leaderId === this.selfId && (!this.isLeader || role.leaderEpoch !== this.role.leaderEpoch);
    // A newer partition epoch settles any proposal: it was committed, or can no longer be.
    if (this.isrProposal && (role.partitionEpoch !== this.isrProposal.partitionEpoch || becameLeader)) this.isrProposal = null;
    this.role = { ...role };
    if (becameLeader) this.takeLeadership();
    this.maybeAdvanceHighWatermark();
    // Writes waiting for replication under an older role learn that it changed.
    for (const listener of [...this.hwListeners]) listener(this);
  }

  /**
   * A new leader records where its epoch begins (as Kafka does on election), so followers from
   * any earlier epoch find their divergence point, and gives every follower a full lag window
   * before it may leave the ISR.
   */
  private takeLeadership(): void {
    this.log.beginLeaderEpoch(this.role.leaderEpoch);
    this.leaderEpochStartOffset = this.log.logEndOffset;
    this.resetFollowers();
    // [idempotence] The first produce waits for the producer state: start building it now.
    this.buildProducerState();
  }

  /** [idempotence] Builds the producer state in the background if it does not reflect the log. */
  private buildProducerState(): void {
    if (this.producerState.reflects(this.log)) return;
    // A failure (the log closed or failed) leaves the state unbuilt; the next need tries again.
    this.producerState.build(this.log).catch(() => undefined);
  }

  /**
   * KIP-207: a new leader's high watermark may trail the one its predecessor exposed, until the
   * ISR's fetches move it past where this leader's epoch began. Until then the end of the log it
   * would report could go backwards, so ListOffsets answers OFFSET_NOT_AVAILABLE meanwhile.
   */
  get highWatermarkSettled(): boolean {
    return this.highWatermarkOffset >= this.leaderEpochStartOffset;
  }

  private resetFollowers(): void {
    const now = this.nowMs();
    this.followers = new Map(
      this.role.replicas
        .filter((id) => id !== this.selfId)
        .map((id) => [id, { brokerEpoch: -1, logEndOffset: -1, lastCaughtUpMs: now, lastFetchMs: -1, leaderEndAtLastFetch: 0 }]),
    );
  }

  /** Only the leader answers clients; anyone else says who leads. */
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
   * Appends as leader and waits as `acks` asks: 0 for nothing, 1 for this replica's durability
   * (per the flush policy), -1 for the high watermark to pass the batch.
   */
  async append(batches: Buffer, acks: number, phases?: AppendPhases): Promise<AppendInfo> {
    this.requireLeader();
    if (this.role.closed) throw new RiffleError('SHARD_CLOSED', `${this.topic}-${this.index} is a closed shard: a resharding replaced it by its children.`);
    if (acks === -1 && this.role.isr.length < this.role.minInsyncReplicas) {
      throw new RiffleError('NOT_ENOUGH_REPLICAS', `${this.topic}-${this.index} has ${this.role.isr.length} in-sync replicas; min.insync.replicas is ${this.role.minInsyncReplicas}.`);
    }
    // [idempotence] Sequences are checked before the write and recorded after it, with nothing in
    // between; a retried batch is not written again and answers with its original offsets.
    const epoch = this.role.leaderEpoch;
    const producerPlan = await this.checkProducers(batches, epoch);
    const info = producerPlan.duplicate ?? this.log.append(batches, this.role.leaderEpoch);
    if (producerPlan.duplicate === null) {
      this.producerState.record(producerPlan, info);
      this.producerState.noteAppended(batches.length, this.log);
    }
    for (const listener of this.appendListeners) listener(this);
    const end = info.lastOffset + 1;
    const durable = this.log.waitDurable(end).then(() => {
      if (end > this.durableEnd) this.durableEnd = end;
      this.maybeAdvanceHighWatermark();
    });
    if (acks === 0) {
      durable.catch(() => undefined);
      return info;
    }
    await this.whileLeading(epoch, durable);
    if (phases) phases.localDoneMs = performance.now();
    if (acks === -1) await this.waitForHighWatermark(end, epoch);
    return info;
  }

  /**
   * [idempotence] The producer-state check, holding a batch that runs ahead of its producer's
   * sequence for up to SEQUENCE_GAP_HOLD_MS while appends may bring the missing batches (a
   * pipelining producer's earlier call overtaken on HTTP/2; see producer-state.ts).
   */
  private async checkProducers(batches: Buffer, epoch: number): Promise<ProducerAppendPlan> {
    if (!this.producerState.reflects(this.log)) {
      // Built off the event loop (a restart or take-over replays the log since the last snapshot).
      await this.producerState.build(this.log);
      if (this.leadershipLost(epoch)) throw new RiffleError('NOT_LEADER_OR_FOLLOWER', `${this.topic}-${this.index} changed leader while its producer state was built; nothing was written.`);
    }
    const deadline = this.nowMs() + SEQUENCE_GAP_HOLD_MS;
    const stats = this.producerState.stats;
    for (let held = false; ; held = true) {
      try {
        const plan = this.producerState.check(batches, this.log);
        if (held) stats.gapHoldsWritten++;
        return plan;
      } catch (error) {
        if (!(error instanceof SequenceGapError)) throw error;
        if (this.nowMs() >= deadline) {
          stats.gapHoldsRefused++;
          throw error;
        }
      }
      await this.nextAppendOrRoleChange(deadline - this.nowMs());
      if (this.leadershipLost(epoch)) throw this.outcomeUnknown();
    }
  }

  /** Resolves at the next append or role change on this partition, or after `waitMs`. */
  private nextAppendOrRoleChange(waitMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.appendListeners.delete(done);
        this.hwListeners.delete(onRole);
        resolve();
      };
      const onRole = (): void => {
        if (!this.isLeader) done();
      };
      const timer = setTimeout(done, Math.max(1, waitMs));
      this.appendListeners.add(done);
      this.hwListeners.add(onRole);
    });
  }

  private leadershipLost(epoch: number): boolean {
    return !this.isLeader || this.role.leaderEpoch !== epoch;
  }

  private outcomeUnknown(): RiffleError {
    return new RiffleError('NOT_LEADER_OR_FOLLOWER', `${this.topic}-${this.index} changed leader before the write was acknowledged; its outcome is unknown.`);
  }

  /**
   * Waits for `work` (the local flush) as leader of `epoch`; a role change while waiting (the log
   * may be truncated under the write) ends the wait at once with an unknown outcome.
   */
  private whileLeading(epoch: number, work: Promise<void>): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!this.leadershipLost(epoch)) return;
        this.hwListeners.delete(check);
        reject(this.outcomeUnknown());
      };
      this.hwListeners.add(check);
      work.then(
        () => {
          this.hwListeners.delete(check);
          if (this.leadershipLost(epoch)) reject(this.outcomeUnknown());
          else resolve();
        },
        (error: unknown) => {
          this.hwListeners.delete(check);
          reject(error);
        },
      );
    });
  }

  /**
   * Resolves once the high watermark reaches `offset` while this replica still leads in `epoch`;
   * rejects as soon as it does not (including when the role changed before the wait began).
   */
  private waitForHighWatermark(offset: number, epoch: number): Promise<void> {
    if (this.leadershipLost(epoch)) return Promise.reject(this.outcomeUnknown());
    if (this.highWatermarkOffset >= offset) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (this.leadershipLost(epoch)) {
          this.hwListeners.delete(check);
          reject(this.outcomeUnknown());
        } else if (this.highWatermarkOffset >= offset) {
          this.hwListeners.delete(check);
          resolve();
        }
      };
      this.hwListeners.add(check);
    });
  }

  /** Leader: the durable log end follower `replicaId` last reported (-1 before its first fetch this epoch). */
  recordedFollowerEnd(replicaId: number): number | undefined {
    return this.followers.get(replicaId)?.logEndOffset;
  }

  /**
   * Leader: records a follower's fetch or progress report (its durable log end, sent by the
   * follower process registered at `brokerEpoch`) and moves the high watermark. A claim past this
   * leader's log end is impossible for a follower that fetched from it (a leader's log only
   * grows), so it is a broken or forged one: it is not recorded, as Kafka records a follower only
   * once its read succeeded (a fetch past the log end is refused). A fetch from another
   * registration than the recorded one comes from another process of that broker, normally a
   * restarted one, which may have lost what the old one reported (a replaced disk, a machine
   * crash under flush policy os): the state starts afresh from it (KIP-903), and the follower
   * rejoins the ISR only if that registration is the broker's current one (wantedIsr's
   * `isEligible`, then the controller). An older registration is not refused here: a forged
   * fetch with a huge epoch would otherwise shut the real process out for good.
   */
  recordFollowerFetch(replicaId: number, fetchOffset: number, brokerEpoch: number): IgnoredFollowerClaim | null {
    if (!this.isLeader) return null;
    const follower = this.followers.get(replicaId);
    if (!follower) return null;
    const now = this.nowMs();
    const leaderEnd = this.log.logEndOffset;
    if (fetchOffset > leaderEnd) return 'past_log_end';
    if (brokerEpoch !== follower.brokerEpoch) {
      follower.brokerEpoch = brokerEpoch;
      follower.lastFetchMs = -1;
    }
    // Kafka's rule: caught up now if it has everything; caught up as of its previous fetch if it
    // has everything the leader had then.
    if (fetchOffset >= leaderEnd) follower.lastCaughtUpMs = now;
    else if (fetchOffset >= follower.leaderEndAtLastFetch && follower.lastFetchMs >= 0) follower.lastCaughtUpMs = Math.max(follower.lastCaughtUpMs, follower.lastFetchMs);
    follower.logEndOffset = fetchOffset;
    follower.lastFetchMs = now;
    follower.leaderEndAtLastFetch = leaderEnd;
    this.maybeAdvanceHighWatermark();
    return null;
  }

  /**
   * The high watermark: the smallest durable log end in the maximal ISR, while the committed ISR
   * is big enough. The maximal ISR (KIP-497) adds the members a pending proposal brings in: once
   * the controller commits them they are electable, so nothing may count as committed that they
   * lack. Otherwise a write acknowledged while an expansion was in flight could be missing from
   * the member it added, and lost if that member is elected next.
   */
  private maybeAdvanceHighWatermark(): void {
    if (!this.isLeader || this.role.isr.length < this.role.minInsyncReplicas) return;
    // A corrupt batch of this replica's own log never counts as replicated.
    let candidate = Math.min(this.durableEnd, this.log.corruptOffset ?? Infinity);
    for (const id of this.maximalIsr) {
      if (id === this.selfId) continue;
      candidate = Math.min(candidate, this.followers.get(id)?.logEndOffset ?? -1);
    }
    this.setHighWatermark(candidate);
  }

  private setHighWatermark(offset: number): void {
    const bounded = Math.min(offset, this.log.logEndOffset);
    if (bounded <= this.highWatermarkOffset) return;
    this.highWatermarkOffset = bounded;
    for (const listener of [...this.hwListeners]) listener(this);
  }

  /** The committed ISR together with the members a pending proposal adds (KIP-497). */
  get maximalIsr(): readonly number[] {
    const proposal = this.isrProposal;
    if (!proposal) return this.role.isr;
    return [...new Set([...this.role.isr, ...proposal.isr])];
  }

  /** Leader: the ISR change awaiting the controller, if any. */
  get pendingIsrProposal(): IsrProposal | null {
    return this.isrProposal;
  }

  /**
   * Leader: records an ISR change about to be sent. Until it is settled the high watermark waits
   * for the members it adds as well.
   */
  beginIsrProposal(isr: readonly number[]): IsrProposal {
    assert(this.isLeader, () => `broker ${this.selfId} does not lead ${this.topic}-${this.index}`);
    assert(this.isrProposal === null, () => `${this.topic}-${this.index} already has an ISR change pending`);
    const followerEpochs = new Map<number, number>();
    for (const id of isr) {
      const follower = this.followers.get(id);
      if (id !== this.selfId && follower) followerEpochs.set(id, follower.brokerEpoch);
    }
    this.isrProposal = { isr: [...isr], followerEpochs, leaderEpoch: this.role.leaderEpoch, partitionEpoch: this.role.partitionEpoch, answered: false };
    return this.isrProposal;
  }

  /**
   * Leader: the controller answered `proposal`; its copy of the partition is at
   * `controllerPartitionEpoch`. At the proposal's own epoch nothing changed (refused), so the
   * proposal is dropped; at a newer one the change or another was committed, and the metadata
   * that brings it settles the proposal. An attempt that got no answer settles nothing: the
   * proposal is sent again.
   */
  settleIsrProposal(proposal: IsrProposal, controllerPartitionEpoch: number): void {
    if (this.isrProposal !== proposal) return;
    if (controllerPartitionEpoch === proposal.partitionEpoch) {
      this.isrProposal = null;
      this.maybeAdvanceHighWatermark();
    } else {
      proposal.answered = true;
    }
  }

  /**
   * Leader: the ISR this partition should have now, or null when it is right. Followers behind
   * for longer than lagMs leave. A follower rejoins once it has reached both the high watermark
   * and the start of this leader's epoch: a new leader's high watermark can trail what its
   * predecessor acknowledged (KIP-207), and a follower holding less than that must not become
   * electable (KAFKA-7128). `isEligible` says whether a broker may join, given the registration
   * whose fetches put it there (KIP-903: not once that broker has registered again).
   */
  wantedIsr(isEligible: (brokerId: number, brokerEpoch: number) => boolean = () => true, lagMs = REPLICA_LAG_TIME_MS_DEFAULT): number[] | null {
    if (!this.isLeader) return null;
    const now = this.nowMs();
    const isr = new Set(this.role.isr);
    let changed = false;
    for (const [id, follower] of this.followers) {
      // An ISR follower fetching from below the high watermark lost committed records (it cut a
      // corrupt batch to refetch it): it leaves the ISR at once, so it cannot be elected leader.
      const lostCommitted = follower.logEndOffset >= 0 && follower.logEndOffset < this.highWatermarkOffset;
      if (isr.has(id) && (now - follower.lastCaughtUpMs > lagMs || lostCommitted)) {
        isr.delete(id);
        changed = true;
      } else if (
        !isr.has(id) &&
        isEligible(id, follower.brokerEpoch) &&
        follower.logEndOffset >= 0 &&
        follower.logEndOffset >= this.highWatermarkOffset &&
        follower.logEndOffset >= this.leaderEpochStartOffset &&
        now - follower.lastCaughtUpMs <= lagMs
      ) {
        isr.add(id);
        changed = true;
      }
    }
    isr.add(this.selfId);
    return changed ? [...isr].sort((a, b) => a - b) : null;
  }

  /** [idempotence] A follower's appended batches update its producer state; call after each follower append. */
  observeFollowerAppend(batches: Buffer): void {
    this.producerState.observeReplicated(batches);
    // A replica opened with data builds its state at its first append, so it can snapshot it
    // and a take-over finds it ready; one that stopped matching the log builds it again.
    if (this.producerState.reflects(this.log)) this.producerState.noteAppended(batches.length, this.log);
    else this.buildProducerState();
  }

  /**
   * Follower: appends batches from the leader and takes its high watermark. `onDurable` runs once
   * the append is flushed (per the flush policy), after the durable end moved: the replica
   * fetcher's progress report rides on this one wait rather than a second waiter of its own.
   */
  appendAsFollower(batches: Buffer, leaderHighWatermark: number, onDurable?: () => void): AppendInfo | null {
    const info = batches.length > 0 ? this.log.appendAsFollower(batches) : null;
    if (info) {
      this.observeFollowerAppend(batches);
      // The durable end counts towards the high watermark once this replica leads; without this a
      // follower promoted during a quiet spell would hold back what its predecessor committed.
      const end = info.lastOffset + 1;
      this.log.waitDurable(end).then(() => {
        if (end > this.durableEnd && end <= this.log.logEndOffset) this.durableEnd = end;
        this.maybeAdvanceHighWatermark();
        onDurable?.();
      }, () => undefined);
    }
    const bounded = Math.min(leaderHighWatermark, this.log.logEndOffset);
    if (bounded > this.highWatermarkOffset) this.setHighWatermark(bounded);
    return info;
  }

  /**
   * Follower: cuts a diverged tail (leader-epoch truncation): the leader's log ends `leaderEpoch`
   * at `leaderEndOffset`; the log keeps what matches and drops the rest.
   */
  truncateToDivergence(leaderEpoch: number, leaderEndOffset: number): void {
    this.log.truncateToDivergence(leaderEpoch, leaderEndOffset);
    this.producerState.dropSnapshotsAbove(this.log.logEndOffset);
    if (this.durableEnd > this.log.logEndOffset) this.durableEnd = this.log.logEndOffset;
    if (this.highWatermarkOffset > this.log.logEndOffset) this.highWatermarkOffset = this.log.logEndOffset;
  }

  /**
   * Follower: where its fetches say its log ends. A replica holding a corrupt batch reports the
   * batch's offset, below the high watermark, so the leader takes it out of the ISR at once and
   * counts nothing from there toward the high watermark; it appends nothing meanwhile.
   */
  get replicationFetchOffset(): number {
    return Math.min(this.log.logEndOffset, this.log.corruptOffset ?? Infinity);
  }

  /**
   * Follower: how much of its log it has durably, per its flush policy (the fsynced end under
   * `ack`, the log end otherwise); never past replicationFetchOffset. Only this counts toward the
   * leader's high watermark and ISR.
   */
  get replicationDurableOffset(): number {
    return Math.min(this.durableEnd, this.replicationFetchOffset);
  }

  /** Follower: the epoch of the last batch before replicationFetchOffset. */
  get replicationLastFetchedEpoch(): number {
    return this.log.corruptOffset === null ? this.log.latestEpoch : this.log.epochBefore(this.replicationFetchOffset);
  }

  /**
   * Follower: cuts the log at a corrupt batch the scrubber or a read found, so the fetcher gets
   * it and everything after it again from the leader. Returns the new log end, or null when
   * nothing was corrupt or this replica is still in the ISR: a replica missing committed records
   * must never be electable, so it cuts only once the ISR no longer names it (its fetches, from
   * the corrupt offset, make the leader drop it). Until then its copy stays as it is: if it is
   * elected meanwhile it still holds every committed record, and as leader it resigns at once.
   * A leader must hand over its leadership first (ReplicaManager).
   */
  repairCorruption(): number | null {
    assert(!this.isLeader, () => `leader of ${this.topic}-${this.index} may not cut its own log`);
    if (this.role.isr.includes(this.selfId)) return null;
    const end = this.log.truncateCorruptTail();
    if (end === null) return null;
    this.producerState.dropSnapshotsAbove(end);
    if (this.durableEnd > end) this.durableEnd = end;
    if (this.highWatermarkOffset > end) this.highWatermarkOffset = end;
    return end;
  }

  /**
   * Reads committed batches for consumers: from fetchOffset, never past the high watermark. The
   * last appends come at once; older batches are read from the files on the thread pool (the
   * answer is then a promise).
   */
  read(fetchOffset: number, maxBytes: number): Buffer | Promise<Buffer> {
    this.requireLeader();
    return this.readUpTo(fetchOffset, maxBytes, this.highWatermarkOffset);
  }

  /** Reads committed batches on a follower for a consumer in its AZ: below this replica's high watermark. */
  readAsFollower(fetchOffset: number, maxBytes: number): Buffer | Promise<Buffer> {
    return this.readUpTo(fetchOffset, maxBytes, this.highWatermarkOffset);
  }

  /** Reads for a follower: everything the leader has, committed or not. */
  readForReplica(fetchOffset: number, maxBytes: number): Buffer | Promise<Buffer> {
    return this.readUpTo(fetchOffset, maxBytes, this.log.logEndOffset);
  }

  private readUpTo(fetchOffset: number, maxBytes: number, limit: number): Buffer | Promise<Buffer> {
    if (fetchOffset < this.log.logStartOffset || fetchOffset > this.log.logEndOffset) {
      throw new RiffleError(
        'OFFSET_OUT_OF_RANGE',
        `Offset ${fetchOffset} is outside [${this.log.logStartOffset}, ${this.log.logEndOffset}] of ${this.topic}-${this.index}.`,
      );
    }
    // Between the high watermark and the log end there is nothing to read yet, which is no error.
    if (fetchOffset >= limit) return EMPTY;
    const read = this.log.readForFetch(fetchOffset, maxBytes, limit);
    return read instanceof Promise ? read.then(recordsOf) : read.records;
  }

  onHighWatermark(listener: PartitionListener): () => void {
    this.hwListeners.add(listener);
    return () => this.hwListeners.delete(listener);
  }

  onAppend(listener: PartitionListener): () => void {
    this.appendListeners.add(listener);
    return () => this.appendListeners.delete(listener);
  }

  async close(): Promise<void> {
    // Anyone waiting for replication learns the outcome is unknown.
    const wasLeader = this.role.leaderId;
    this.role = { ...this.role, leaderId: -1 };
    for (const listener of [...this.hwListeners]) listener(this);
    this.role = { ...this.role, leaderId: wasLeader };
    this.hwListeners.clear();
    this.appendListeners.clear();
    // [idempotence] A restart then starts from the state as of the log end, replaying nothing.
    this.producerState.takeSnapshot(this.log);
    await this.log.close();
  }
}

const EMPTY = Buffer.alloc(0);

function recordsOf(read: ReadResult): Buffer {
  return read.records;
}
