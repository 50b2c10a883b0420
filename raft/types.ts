// The vocabulary of the Raft core: log entries, persistent state, snapshots, the messages nodes
// exchange and the Ready batch the core hands to its driver. Plain data only; no behaviour.
//
// Departures from etcd-io/raft: node ids are small positive integers (0 means "nobody"), the
// membership is static (no configuration changes), and a snapshot travels as one message in the
// core; the transport cuts it into chunks on the wire.

export type NodeId = number;

/** "No node": no vote cast, no leader known. */
export const NO_NODE: NodeId = 0;

/** `noop` is the empty entry a new leader appends so it can commit entries of earlier terms. */
export type EntryKind = 'normal' | 'noop';

export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly kind: EntryKind;
  readonly data: Uint8Array;
}

/** What must survive a crash besides the log: the term, the vote cast in it, the commit index. */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
  /**
   * Set while a voter that started on empty storage has not yet caught up with a leader (see
   * RaftCore.recovering); absent otherwise. Stored, so a restart in the middle keeps it.
   */
  readonly recovering?: true;
}

export const EMPTY_HARD_STATE: HardState = { term: 0, vote: NO_NODE, commit: 0 };

/** Whether a node's stored state is empty storage's (no term, no entries, no snapshot), or says it is still recovering from it. */
export function startsRecovering(initial: InitialState): boolean {
  return initial.hardState.recovering === true || (initial.hardState.term === 0 && initial.snapshot.meta.index === 0 && initial.entries.length === 0);
}

export interface SnapshotMeta {
  /** Index and term of the last entry the snapshot covers. */
  readonly index: number;
  readonly term: number;
}

export interface Snapshot {
  readonly meta: SnapshotMeta;
  /** The state machine's serialized state; opaque to Raft. */
  readonly data: Uint8Array;
}

export const EMPTY_SNAPSHOT: Snapshot = { meta: { index: 0, term: 0 }, data: new Uint8Array(0) };

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

export interface AppendMessage extends MessageBase {
  readonly type: 'append';
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
}

export interface AppendResponseMessage extends MessageBase {
  readonly type: 'appendResponse';
  /** On success the follower's last index matching the leader; on reject the rejected prevIndex. */
  readonly index: number;
  readonly reject: boolean;
  /** On reject: the follower's last index, so the leader can skip back in one step. */
  readonly rejectHint: number;
  /**
   * On reject, from a follower that started on empty storage and has not caught up (see
   * RaftCore's `recovering`): it may hold less than it once acknowledged to this leader, so the
   * leader starts over from `rejectHint` instead of trusting what it matched before.
   */
  readonly lostLog?: true;
}

export interface HeartbeatMessage extends MessageBase {
  readonly type: 'heartbeat';
  /** min(follower's match, leader's commit): never beyond what the follower is known to hold. */
  readonly commit: number;
  /** Highest ReadIndex round the leader wants confirmed (0: none). */
  readonly readRound: number;
}

export interface HeartbeatResponseMessage extends MessageBase {
  readonly type: 'heartbeatResponse';
  readonly readRound: number;
}

export interface VoteMessage extends MessageBase {
  readonly type: 'vote';
  readonly preVote: boolean;
  readonly lastIndex: number;
  readonly lastTerm: number;
  /** Set by a leadership transfer: voters grant even while they still hear from a leader. */
  readonly transfer: boolean;
}

export interface VoteResponseMessage extends MessageBase {
  readonly type: 'voteResponse';
  readonly preVote: boolean;
  readonly granted: boolean;
}

export interface SnapshotMessage extends MessageBase {
  readonly type: 'snapshot';
  readonly snapshot: Snapshot;
}

export interface TimeoutNowMessage extends MessageBase {
  readonly type: 'timeoutNow';
}

export type Message =
  | AppendMessage
  | AppendResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | VoteMessage
  | VoteResponseMessage
  | SnapshotMessage
  | TimeoutNowMessage;

export type MessageType = Message['type'];

/** A linearizable read may be served once the state machine has applied `index`. */
export interface ReadState {
  readonly requestId: number;
  readonly index: number;
}

export interface SoftState {
  readonly role: Role;
  readonly leader: NodeId;
  readonly term: number;
}

/**
 * One batch of work for the driver. The order of handling is part of the contract:
 *  1. persist `snapshot` (if any), then `entries` and `hardState` in one synced write;
 *  2. only then send `messages` (votes and acknowledgements promise what was just persisted),
 *     except those `sendableBeforePersist()` accepts: a leader's appends, heartbeats, snapshots
 *     and TimeoutNow may go out while it persists (Raft thesis 10.2.1), because a leader counts
 *     its own entries towards commit only once they are persisted;
 *  3. restore the state machine from `snapshot` (if any), then apply `committedEntries` in order;
 *  4. serve `readStates` once the applied index reaches their index;
 *  5. call `advance()`.
 */
export interface Ready {
  readonly softState: SoftState;
  /** Present when term, vote or commit changed since the last Ready. */
  readonly hardState?: HardState;
  /** Entries to append; any stored entry at or after entries[0].index must be replaced. */
  readonly entries: readonly Entry[];
  /** A snapshot received from the leader; replaces the whole stored log. */
  readonly snapshot?: Snapshot;
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly readStates: readonly ReadState[];
}

export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly reason: 'not-leader' | 'transferring' | 'overloaded' | 'too-large'; readonly leader: NodeId };

export type ReadIndexResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'not-leader' | 'overloaded'; readonly leader: NodeId };

/** What a node starts from: the contents of its storage. */
export interface InitialState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot;
  /** Entries after the snapshot, contiguous. */
  readonly entries: readonly Entry[];
}

/** Messages that promise nothing about the sender's disk, so they may leave before the Ready is persisted. */
export function sendableBeforePersist(message: Message): boolean {
  return message.type === 'append' || message.type === 'heartbeat' || message.type === 'snapshot' || message.type === 'timeoutNow';
}
