// The pure Raft state machine. Inputs: step(message), tick(), propose(data), readIndex(id),
// transferLeadership(to), compact(index, data). Output: a Ready batch, acknowledged by advance().
// No I/O, timers, clocks or global randomness: the election jitter comes from the Prng passed in,
// so the same inputs always produce the same outputs (the simulator depends on this).
//
// Follows the Raft paper with etcd-io/raft's extensions: pre-vote, check-quorum with leases on
// voters, TimeoutNow leadership transfer, ReadIndex. Departures: proposals on a follower are
// refused with a leader hint instead of forwarded; appends are sent lazily when the driver asks
// for a Ready, so a burst of proposals leaves in one AppendEntries per follower (batching); a
// leader counts its own entries towards commit only after they are persisted.
import { assert, unreachable } from '../src/util/assert.js';
import type { Prng } from '../src/util/prng.js';
import { validateRaftConfig, type RaftConfig } from './config.js';
import { RaftLog, entryBytes } from './raft-log.js';
import { ENTRY_DATA_BYTES_MAX } from './codec.js';
import type { Progress } from './progress.js';
import { CandidateRole, FollowerRole, LeaderRole, PreCandidateRole, assertTransition, type RoleState } from './roles.js';
import {
  NO_NODE,
  startsRecovering,
  type AppendMessage,
  type AppendResponseMessage,
  type Entry,
  type HardState,
  type HeartbeatMessage,
  type HeartbeatResponseMessage,
  type InitialState,
  type Message,
  type NodeId,
  type ProposeResult,
  type ReadIndexResult,
  type ReadState,
  type Ready,
  type Role,
  type Snapshot,
  type SnapshotMessage,
  type SoftState,
  type VoteMessage,
} from './types.js';

/** Messages buffered between two Readies; a driver that never drains them is a bug. */
export const MAX_OUTBOX_MESSAGES = 200_000;

type Outgoing = Message extends infer M ? (M extends Message ? Omit<M, 'from' | 'term'> & { term?: number } : never) : never;

interface PendingReady {
  readonly lastEntry?: { index: number; term: number };
  readonly appliedTo: number;
  readonly hardState?: HardState;
  readonly snapshotIndex: number;
}

export interface RaftStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly vote: NodeId;
  readonly leader: NodeId;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly lastTerm: number;
  readonly snapshotIndex: number;
}

export class RaftCore {
  readonly id: NodeId;
  readonly log: RaftLog;
  term: number;
  vote: NodeId;
  leader: NodeId = NO_NODE;
  private roleState: RoleState = new FollowerRole();
  private electionElapsed = 0;
  /** Ticks since this core started; dates the last message from a leader. */
  private ticks = 0;
  /** The last leader (another node) this node heard from as follower, and at which tick. */
  private lastLeaderMessage: { leader: NodeId; tick: number } | null = null;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private outbox: Message[] = [];
  private readStates: ReadState[] = [];
  private lastHardState: HardState;
  private pendingReady: PendingReady | undefined;
  private readonly peers: readonly NodeId[];
  /**
   * A voter that started on empty storage (no term, no entries, no snapshot) cannot tell a new
   * cluster from one it was part of before its disk was lost; in the latter it may have helped
   * commit entries it no longer has, and its vote could elect a node that lacks them. Until it
   * holds an entry of a leader's term, sent by that leader (which holds everything committed
   * before its term), it votes only for a candidate with an empty log (a new cluster) and
   * campaigns only with an empty log itself. Stored in the hard state. Kafka's KIP-853 solves
   * the same with directory ids.
   */
  private recovering: boolean;

  constructor(
    private readonly config: RaftConfig,
    private readonly prng: Prng,
    initial: InitialState,
    private readonly logLine: (line: string) => void = () => {},
  ) {
    validateRaftConfig(config);
    this.id = config.id;
    this.peers = config.voters.filter((v) => v !== config.id);
    this.log = new RaftLog(initial);
    this.term = initial.hardState.term;
    this.vote = initial.hardState.vote;
    this.recovering = startsRecovering(initial);
    // What storage holds: an empty node's first Ready stores `recovering`.
    this.lastHardState = initial.hardState;
    this.resetTimers();
  }

  /** See the field: this voter started on empty storage and has not caught up with a leader yet. */
  get isRecovering(): boolean {
    return this.recovering;
  }

  get role(): Role {
    return this.roleState.role;
  }

  status(): RaftStatus {
    return {
      id: this.id, role: this.role, term: this.term, vote: this.vote, leader: this.leader,
      commit: this.log.committed, applied: this.log.applied, lastIndex: this.log.lastIndex(),
      lastTerm: this.log.lastTerm(), snapshotIndex: this.log.snapshot().meta.index,
    };
  }

  /**
   * The last other node this one heard from as its leader, and how many ticks ago; null if none.
   * A new leader reads it to date the last sign of life of the leader it replaced.
   */
  lastLeaderContact(): { leader: NodeId; ticksAgo: number } | null {
    if (this.lastLeaderMessage === null) return null;
    return { leader: this.lastLeaderMessage.leader, ticksAgo: this.ticks - this.lastLeaderMessage.tick };
  }

  /** On the leader, how far each voter's log is known to match its own (itself included); else null. */
  voterMatches(): ReadonlyMap<NodeId, number> | null {
    if (!(this.roleState instanceof LeaderRole)) return null;
    const matches = new Map<NodeId, number>([[this.id, this.roleState.selfMatch]]);
    for (const [peer, progress] of this.roleState.progress) matches.set(peer, progress.match);
    return matches;
  }

  // ---- inputs --------------------------------------------------------------------------------

  tick(): void {
    this.ticks++;
    if (this.roleState instanceof LeaderRole) this.tickLeader(this.roleState);
    else this.tickElection();
  }

  propose(data: Uint8Array): ProposeResult {
    const leader = this.roleState;
    if (!(leader instanceof LeaderRole)) return { ok: false, reason: 'not-leader', leader: this.leader };
    if (leader.transferee !== NO_NODE) return { ok: false, reason: 'transferring', leader: this.leader };
    if (data.byteLength > ENTRY_DATA_BYTES_MAX) return { ok: false, reason: 'too-large', leader: this.id };
    const entry: Entry = { index: this.log.lastIndex() + 1, term: this.term, kind: 'normal', data };
    if (leader.uncommittedBytes > 0 && leader.uncommittedBytes + entryBytes(entry) > this.config.maxUncommittedBytes) {
      return { ok: false, reason: 'overloaded', leader: this.id };
    }
    this.appendAsLeader(leader, entry);
    return { ok: true, index: entry.index, term: entry.term };
  }

  /** Asks for a linearizable read; `requestId` comes back in a ReadState once it is safe. */
  readIndex(requestId: number): ReadIndexResult {
    const leader = this.roleState;
    if (!(leader instanceof LeaderRole)) return { ok: false, reason: 'not-leader', leader: this.leader };
    if (leader.pendingReads.length + leader.waitingReads.length >= this.config.maxPendingReads) {
      return { ok: false, reason: 'overloaded', leader: this.id };
    }
    // Until this term commits an entry, the commit index may be behind what earlier leaders
    // acknowledged, so the read waits (Raft thesis, section 6.4).
    if (this.log.term(this.log.committed) !== this.term) leader.waitingReads.push(requestId);
    else this.queueRead(leader, requestId);
    return { ok: true };
  }

  /** Starts handing leadership to `to`; false when this node cannot (not leader, unknown peer). */
  transferLeadership(to: NodeId): boolean {
    const leader = this.roleState;
    if (!(leader instanceof LeaderRole) || to === this.id || !this.peers.includes(to)) return false;
    if (leader.transferee === to) return true;
    leader.transferee = to;
    // The transfer is abandoned if it has not completed within an election timeout.
    this.electionElapsed = 0;
    this.logLine(`node ${this.id} transfers leadership to ${to} at term ${this.term}`);
    const progress = leader.progress.get(to)!;
    if (progress.match === this.log.lastIndex()) this.send({ type: 'timeoutNow', to });
    else this.replicateTo(to, progress, true);
    return true;
  }

  /** Records a state-machine snapshot covering entries up to `index` and drops those entries. */
  compact(index: number, data: Uint8Array): Snapshot {
    assert(this.pendingReady === undefined, 'compact between ready() and advance()');
    return this.log.compact(index, data);
  }

  step(message: Message): void {
    assert(message.to === this.id, () => `node ${this.id} got a message for ${message.to}`);
    assert(this.peers.includes(message.from), () => `node ${this.id} got a message from non-voter ${message.from}`);
    if (message.term > this.term && !this.acceptHigherTerm(message)) return;
    if (message.term < this.term) return this.answerLowerTerm(message);
    if (message.type === 'vote') return this.handleVote(message);
    const role = this.roleState;
    if (role instanceof LeaderRole) this.stepLeader(role, message);
    else if (role instanceof FollowerRole) this.stepFollower(message);
    else this.stepCandidate(role, message);
  }

  // ---- Ready ---------------------------------------------------------------------------------

  hasReady(): boolean {
    this.flushLeader();
    return this.outbox.length > 0 || this.readStates.length > 0 || this.log.unstableSnapshot !== undefined
      || this.log.stableIndex < this.log.lastIndex() || this.log.committed > this.log.applied
      || this.hardStateChanged();
  }

  ready(): Ready {
    assert(this.pendingReady === undefined, 'ready() called twice without advance()');
    this.flushLeader();
    const entries = this.log.unstableEntries();
    const committedEntries = this.log.committedEntriesAfter(this.log.applied);
    const hardState = this.hardStateChanged() ? this.hardState() : undefined;
    const snapshot = this.log.unstableSnapshot;
    const last = entries[entries.length - 1];
    this.pendingReady = {
      lastEntry: last ? { index: last.index, term: last.term } : undefined,
      appliedTo: committedEntries.length > 0 ? committedEntries[committedEntries.length - 1]!.index : this.log.applied,
      hardState,
      snapshotIndex: snapshot?.meta.index ?? 0,
    };
    const ready: Ready = { softState: this.softState(), hardState, entries, snapshot, committedEntries, messages: this.outbox, readStates: this.readStates };
    this.outbox = [];
    this.readStates = [];
    return ready;
  }

  /** The driver has persisted, sent and applied the last Ready. */
  advance(): void {
    const pending = this.pendingReady;
    assert(pending !== undefined, 'advance() without ready()');
    this.pendingReady = undefined;
    if (pending.snapshotIndex > 0 && this.log.unstableSnapshot?.meta.index === pending.snapshotIndex) {
      this.log.unstableSnapshot = undefined;
      this.log.applied = Math.max(this.log.applied, pending.snapshotIndex);
    }
    if (pending.lastEntry) this.log.stableTo(pending.lastEntry.index, pending.lastEntry.term);
    this.log.appliedTo(pending.appliedTo);
    if (pending.hardState) this.lastHardState = pending.hardState;
    const leader = this.roleState;
    if (leader instanceof LeaderRole) {
      leader.selfMatch = Math.max(leader.selfMatch, this.log.stableIndex);
      if (this.maybeCommit(leader)) leader.broadcastPending = true;
    }
  }

  private hardState(): HardState {
    return this.recovering ? { term: this.term, vote: this.vote, commit: this.log.committed, recovering: true } : { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  private hardStateChanged(): boolean {
    const h = this.lastHardState;
    return h.term !== this.term || h.vote !== this.vote || h.commit !== this.log.committed || (h.recovering === true) !== this.recovering;
  }

  private softState(): SoftState {
    return { role: this.role, leader: this.leader, term: this.term };
  }

  private send(message: Outgoing): void {
    assert(this.outbox.length < MAX_OUTBOX_MESSAGES, 'outbox full: the driver is not draining Ready');
    this.outbox.push({ ...message, from: this.id, term: message.term ?? this.term } as Message);
  }

  // ---- term rules ----------------------------------------------------------------------------

  /** Handles a message from a higher term; false when the message is to be ignored. */
  private acceptHigherTerm(message: Message): boolean {
    if (message.type === 'vote') {
      // Check-quorum leases: while we hear from a leader, a disruptive candidate is ignored.
      const inLease = this.config.checkQuorum && this.leader !== NO_NODE && this.electionElapsed < this.config.electionTicks;
      if (inLease && !message.transfer) return false;
      if (message.preVote) return true; // A pre-vote never changes our term.
    }
    // A granted pre-vote carries the term the pre-candidate asked for, which is not ours yet.
    if (message.type === 'voteResponse' && message.preVote && message.granted) return true;
    const fromLeader = message.type === 'append' || message.type === 'heartbeat' || message.type === 'snapshot';
    this.becomeFollower(message.term, fromLeader ? message.from : NO_NODE);
    return true;
  }

  private answerLowerTerm(message: Message): void {
    if ((this.config.checkQuorum || this.config.preVote) && (message.type === 'append' || message.type === 'heartbeat')) {
      // A leader cut off from the quorum would otherwise never learn the newer term (its
      // followers ignore it and, with pre-vote, nobody asks it for votes).
      this.send({ type: 'appendResponse', to: message.from, index: 0, reject: true, rejectHint: 0 });
    } else if (message.type === 'vote' && message.preVote) {
      this.send({ type: 'voteResponse', to: message.from, preVote: true, granted: false });
    }
  }

  private handleVote(message: VoteMessage): void {
    const canVote = this.vote === message.from
      || (this.vote === NO_NODE && this.leader === NO_NODE)
      || (message.preVote && message.term > this.term);
    // A recovering voter may have forgotten entries it helped commit: only an empty candidate
    // (a new cluster) cannot lack any of them.
    const mayElect = !this.recovering || message.lastIndex === 0;
    if (canVote && mayElect && this.log.isUpToDate(message.lastIndex, message.lastTerm)) {
      this.send({ type: 'voteResponse', to: message.from, term: message.term, preVote: message.preVote, granted: true });
      if (!message.preVote) {
        this.electionElapsed = 0;
        this.vote = message.from;
      }
    } else {
      this.send({ type: 'voteResponse', to: message.from, preVote: message.preVote, granted: false });
    }
  }

  // ---- transitions ---------------------------------------------------------------------------

  private transition(to: RoleState): void {
    assertTransition(this.role, to.role);
    this.roleState = to;
  }

  private resetTimers(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.prng.int(this.config.electionTicks, this.config.electionTicksMax);
  }

  private becomeFollower(term: number, leader: NodeId): void {
    this.transition(new FollowerRole());
    if (term !== this.term) {
      this.term = term;
      this.vote = NO_NODE;
    }
    this.leader = leader;
    this.resetTimers();
    this.logLine(`node ${this.id} became follower at term ${term}`);
  }

  private becomePreCandidate(): void {
    this.transition(new PreCandidateRole());
    this.leader = NO_NODE;
    this.resetTimers();
    this.logLine(`node ${this.id} became pre-candidate at term ${this.term}`);
  }

  private becomeCandidate(): void {
    this.transition(new CandidateRole());
    this.term += 1;
    this.vote = this.id;
    this.leader = NO_NODE;
    this.resetTimers();
    this.logLine(`node ${this.id} became candidate at term ${this.term}`);
  }

  private becomeLeader(): void {
    const limits = { maxInflightMessages: this.config.maxInflightMessages, maxInflightBytes: this.config.maxInflightBytes };
    const leader = new LeaderRole(this.peers, this.log.lastIndex(), this.log.stableIndex, limits);
    this.transition(leader);
    this.leader = this.id;
    this.resetTimers();
    this.logLine(`node ${this.id} became leader at term ${this.term}`);
    // Elected with an empty log: a new cluster (see `recovering`).
    this.endRecovery('elected with an empty log');
    // The no-op lets this term commit, and with it every entry of earlier terms before it.
    this.appendAsLeader(leader, { index: this.log.lastIndex() + 1, term: this.term, kind: 'noop', data: new Uint8Array(0) });
  }

  private campaign(kind: 'pre-vote' | 'vote' | 'transfer'): void {
    if (kind === 'pre-vote') this.becomePreCandidate();
    else this.becomeCandidate();
    const role = this.roleState as PreCandidateRole | CandidateRole;
    role.votes.record(this.id, true);
    if (this.tally(role)) return;
    const preVote = kind === 'pre-vote';
    const term = preVote ? this.term + 1 : this.term;
    for (const peer of this.peers) {
      this.send({ type: 'vote', to: peer, term, preVote, lastIndex: this.log.lastIndex(), lastTerm: this.log.lastTerm(), transfer: kind === 'transfer' });
    }
  }

  /** Acts on the election result so far; true when the election is decided. */
  private tally(role: PreCandidateRole | CandidateRole): boolean {
    const result = role.votes.result(this.config.voters.length);
    if (result === 'pending') return false;
    if (result === 'lost') this.becomeFollower(this.term, NO_NODE);
    else if (role instanceof PreCandidateRole) this.campaign('vote');
    else this.becomeLeader();
    return true;
  }

  // ---- followers and candidates --------------------------------------------------------------

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed < this.randomizedElectionTimeout) return;
    this.electionElapsed = 0;
    if (!this.mayCampaign()) return;
    this.campaign(this.config.preVote ? 'pre-vote' : 'vote');
  }

  /** A recovering voter with part of a log could win votes of nodes behind it (see `recovering`). */
  private mayCampaign(): boolean {
    return !this.recovering || this.log.lastIndex() === 0;
  }

  private endRecovery(why: string): void {
    if (!this.recovering) return;
    this.recovering = false;
    this.logLine(`node ${this.id} recovered (${why}): it votes and campaigns again`);
  }

  private stepFollower(message: Message): void {
    switch (message.type) {
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        this.electionElapsed = 0;
        this.leader = message.from;
        this.lastLeaderMessage = { leader: message.from, tick: this.ticks };
        return this.handleFromLeader(message);
      case 'timeoutNow':
        this.logLine(`node ${this.id} got TimeoutNow from ${message.from} at term ${this.term}`);
        if (!this.mayCampaign()) return;
        return this.campaign('transfer');
      case 'appendResponse':
      case 'heartbeatResponse':
      case 'voteResponse':
        return; // Stale answers to a role we no longer hold.
      case 'vote':
        return unreachable(message as never, 'vote in stepFollower');
      default:
        return unreachable(message, 'message type');
    }
  }

  private stepCandidate(role: PreCandidateRole | CandidateRole, message: Message): void {
    switch (message.type) {
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        // A leader of our term exists (for a pre-candidate: of the term we are still in).
        this.becomeFollower(message.term, message.from);
        return this.handleFromLeader(message);
      case 'voteResponse':
        if (message.preVote !== role instanceof PreCandidateRole) return;
        role.votes.record(message.from, message.granted);
        this.tally(role);
        return;
      default:
        return;
    }
  }

  private handleFromLeader(message: AppendMessage | HeartbeatMessage | SnapshotMessage): void {
    if (message.type === 'append') this.handleAppend(message);
    else if (message.type === 'heartbeat') this.handleHeartbeat(message);
    else this.handleSnapshot(message);
  }

  private handleAppend(message: AppendMessage): void {
    if (message.prevIndex < this.log.committed) {
      this.send({ type: 'appendResponse', to: message.from, index: this.log.committed, reject: false, rejectHint: 0 });
      return;
    }
    const lastNew = this.log.maybeAppend(message.prevIndex, message.prevTerm, message.commit, message.entries);
    if (lastNew !== undefined) {
      // Matching the leader up to an entry of its own term: this log holds everything committed before that term.
      if (this.log.term(lastNew) === this.term) this.endRecovery(`holds an entry of leader ${message.from}'s term ${this.term}`);
      this.send({ type: 'appendResponse', to: message.from, index: lastNew, reject: false, rejectHint: 0 });
    } else {
      const hint = Math.min(this.log.lastIndex(), message.prevIndex);
      this.send({ type: 'appendResponse', to: message.from, index: message.prevIndex, reject: true, rejectHint: hint, ...(this.recovering ? { lostLog: true as const } : {}) });
    }
  }

  private handleHeartbeat(message: HeartbeatMessage): void {
    // The leader never sends a commit index beyond what this follower has acknowledged, unless
    // the follower has since lost its log (or this heartbeat left before the leader learned
    // that): then the leader must start over with it.
    if (message.commit > this.log.lastIndex()) {
      this.send({ type: 'appendResponse', to: message.from, index: message.commit, reject: true, rejectHint: this.log.lastIndex(), lostLog: true });
    } else {
      this.log.commitTo(message.commit);
    }
    this.send({ type: 'heartbeatResponse', to: message.from, readRound: message.readRound });
  }

  private handleSnapshot(message: SnapshotMessage): void {
    const meta = message.snapshot.meta;
    if (meta.index <= this.log.committed) {
      // Already covered; answer so the leader moves on from its snapshot state.
    } else if (this.log.matchTerm(meta.index, meta.term)) {
      this.log.commitTo(meta.index);
    } else {
      this.log.restore(message.snapshot);
      this.logLine(`node ${this.id} restored snapshot at index ${meta.index} term ${meta.term}`);
    }
    if (meta.term === this.term && this.log.matchTerm(meta.index, meta.term)) this.endRecovery(`holds a snapshot of leader ${message.from}'s term ${this.term}`);
    this.send({ type: 'appendResponse', to: message.from, index: this.log.committed, reject: false, rejectHint: 0 });
  }

  // ---- leader --------------------------------------------------------------------------------

  private tickLeader(leader: LeaderRole): void {
    this.electionElapsed++;
    this.heartbeatElapsed++;
    if (this.electionElapsed >= this.config.electionTicks) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum && !this.quorumActive(leader)) {
        this.logLine(`node ${this.id} lost contact with the quorum at term ${this.term}`);
        this.becomeFollower(this.term, NO_NODE);
        return;
      }
      if (leader.transferee !== NO_NODE) {
        this.logLine(`node ${this.id} abandons leadership transfer to ${leader.transferee}`);
        leader.transferee = NO_NODE;
      }
    }
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.expireSnapshots(leader);
      this.broadcastHeartbeat(leader);
    }
  }

  /** Counts followers heard from in this window (and resets the window). */
  private quorumActive(leader: LeaderRole): boolean {
    let active = 1;
    for (const progress of leader.progress.values()) {
      if (progress.recentActive) active++;
      progress.recentActive = false;
    }
    return active >= this.quorum();
  }

  /** A snapshot that was lost in transit is sent again after an election timeout. */
  private expireSnapshots(leader: LeaderRole): void {
    for (const progress of leader.progress.values()) {
      if (progress.state !== 'snapshot') continue;
      progress.snapshotTicks += this.config.heartbeatTicks;
      if (progress.snapshotTicks >= this.config.electionTicks) progress.becomeProbe();
    }
  }

  private quorum(): number {
    return Math.floor(this.config.voters.length / 2) + 1;
  }

  private appendAsLeader(leader: LeaderRole, entry: Entry): void {
    this.log.append([entry]);
    leader.uncommittedBytes += entryBytes(entry);
    leader.broadcastPending = true;
    // A single-node group commits as soon as the entry is persisted (see advance()).
  }

  /** Sends what proposals, commits and read requests since the last Ready call for. */
  private flushLeader(): void {
    const leader = this.roleState;
    if (!(leader instanceof LeaderRole)) return;
    if (leader.broadcastPending) {
      leader.broadcastPending = false;
      for (const [peer, progress] of leader.progress) this.replicateTo(peer, progress, true);
    }
    if (leader.heartbeatPending) this.broadcastHeartbeat(leader);
  }

  private broadcastHeartbeat(leader: LeaderRole): void {
    if (leader.heartbeatPending) {
      leader.heartbeatPending = false;
      leader.readRound++;
    }
    for (const [peer, progress] of leader.progress) {
      const commit = Math.min(progress.match, this.log.committed);
      this.send({ type: 'heartbeat', to: peer, commit, readRound: leader.readRound });
    }
  }

  /** Sends appends to one follower as far as its state and in-flight window allow. */
  private replicateTo(peer: NodeId, progress: Progress, sendIfEmpty: boolean): void {
    for (let i = 0; i <= this.config.maxInflightMessages; i++) {
      const sent = this.sendAppend(peer, progress, sendIfEmpty && i === 0);
      if (!sent || progress.state !== 'replicate' || progress.next > this.log.lastIndex()) return;
    }
    assert(progress.isPaused(), 'replication loop ended with the window open');
  }

  /** Sends one append (or a snapshot); true when an append carrying entries went out. */
  private sendAppend(peer: NodeId, progress: Progress, sendIfEmpty: boolean): boolean {
    if (progress.isPaused()) return false;
    const prevIndex = progress.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) {
      this.sendSnapshot(peer, progress);
      return false;
    }
    const entries = progress.next <= this.log.lastIndex()
      ? this.log.slice(progress.next, this.log.lastIndex() + 1, this.config.maxMessageBytes)
      : [];
    if (entries.length === 0 && !sendIfEmpty) return false;
    if (progress.state === 'replicate' && entries.length > 0) {
      const last = entries[entries.length - 1]!.index;
      progress.inflights.add(last, entries.reduce((sum, e) => sum + entryBytes(e), 0));
      progress.next = last + 1;
    } else if (progress.state === 'probe') {
      progress.probeSent = true;
    }
    this.send({ type: 'append', to: peer, prevIndex, prevTerm, entries, commit: this.log.committed });
    return entries.length > 0;
  }

  private sendSnapshot(peer: NodeId, progress: Progress): void {
    const snapshot = this.log.snapshot();
    progress.becomeSnapshot(snapshot.meta.index);
    this.logLine(`node ${this.id} sends snapshot at index ${snapshot.meta.index} to ${peer}`);
    this.send({ type: 'snapshot', to: peer, snapshot });
  }

  private stepLeader(leader: LeaderRole, message: Message): void {
    switch (message.type) {
      case 'appendResponse':
        return this.handleAppendResponse(leader, message);
      case 'heartbeatResponse':
        return this.handleHeartbeatResponse(leader, message);
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        return unreachable(message as never, `second leader ${message.from} in term ${this.term}`);
      default:
        return; // Vote answers and TimeoutNow mean nothing to a leader of this term.
    }
  }

  private handleAppendResponse(leader: LeaderRole, message: AppendResponseMessage): void {
    const progress = leader.progress.get(message.from)!;
    progress.recentActive = true;
    if (message.reject && message.lostLog && message.rejectHint < progress.match) {
      this.logLine(`node ${this.id} starts over with follower ${message.from}, which lost its log (matched to ${progress.match}, now ends at ${message.rejectHint})`);
      progress.restartFrom(message.rejectHint);
      this.replicateTo(message.from, progress, true);
      return;
    }
    if (message.reject) {
      if (progress.maybeDecrease(message.index, message.rejectHint)) {
        if (progress.state === 'replicate') progress.becomeProbe();
        this.replicateTo(message.from, progress, true);
      }
      return;
    }
    assert(message.index <= this.log.lastIndex(), () => `follower ${message.from} acknowledged ${message.index} beyond last ${this.log.lastIndex()}`);
    if (!progress.maybeUpdate(message.index)) return;
    if (progress.state === 'probe') progress.becomeReplicate();
    else if (progress.state === 'snapshot' && progress.match + 1 >= this.log.firstIndex()) progress.becomeReplicate();
    else if (progress.state === 'replicate') progress.inflights.freeTo(message.index);
    if (this.maybeCommit(leader)) leader.broadcastPending = true;
    else this.replicateTo(message.from, progress, false);
    if (message.from === leader.transferee && progress.match === this.log.lastIndex()) {
      this.send({ type: 'timeoutNow', to: message.from });
    }
  }

  private handleHeartbeatResponse(leader: LeaderRole, message: HeartbeatResponseMessage): void {
    const progress = leader.progress.get(message.from)!;
    progress.recentActive = true;
    progress.probeSent = false;
    // Appends in the window may have been lost: free one slot so the next send finds out.
    if (progress.state === 'replicate' && progress.inflights.full()) progress.inflights.freeFirst();
    // An empty append also serves as a probe: if earlier appends were lost, the follower's
    // rejection of this one sends the leader back to probing (as etcd-io/raft does).
    if (progress.match < this.log.lastIndex()) this.replicateTo(message.from, progress, true);
    if (message.readRound > progress.readRoundAcked) {
      progress.readRoundAcked = message.readRound;
      this.releaseReads(leader);
    }
  }

  /** Commits the highest index a quorum has persisted, if it is from this term. */
  private maybeCommit(leader: LeaderRole): boolean {
    const matches = [leader.selfMatch, ...[...leader.progress.values()].map((p) => p.match)].sort((a, b) => b - a);
    const candidate = matches[this.quorum() - 1]!;
    if (candidate <= this.log.committed || this.log.term(candidate) !== this.term) return false;
    const before = this.log.committed;
    this.log.commitTo(candidate);
    for (let index = Math.max(before + 1, leader.termStartIndex); index <= candidate; index++) {
      leader.uncommittedBytes -= entryBytes(this.log.entry(index)!);
    }
    assert(leader.uncommittedBytes >= 0, 'uncommitted bytes went negative');
    if (before < leader.termStartIndex) this.releaseWaitingReads(leader);
    return true;
  }

  private queueRead(leader: LeaderRole, requestId: number): void {
    if (this.peers.length === 0) {
      this.readStates.push({ requestId, index: this.log.committed });
      return;
    }
    leader.pendingReads.push({ requestId, index: this.log.committed, round: leader.readRound + 1 });
    leader.heartbeatPending = true;
  }

  private releaseWaitingReads(leader: LeaderRole): void {
    for (const requestId of leader.waitingReads) this.queueRead(leader, requestId);
    leader.waitingReads.length = 0;
  }

  /** Serves every read whose round a quorum (counting this leader) has confirmed. */
  private releaseReads(leader: LeaderRole): void {
    const rounds = [Number.MAX_SAFE_INTEGER, ...[...leader.progress.values()].map((p) => p.readRoundAcked)].sort((a, b) => b - a);
    const confirmed = rounds[this.quorum() - 1]!;
    let served = 0;
    while (served < leader.pendingReads.length && leader.pendingReads[served]!.round <= confirmed) {
      const read = leader.pendingReads[served]!;
      this.readStates.push({ requestId: read.requestId, index: read.index });
      served++;
    }
    leader.pendingReads.splice(0, served);
  }
}

