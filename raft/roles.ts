// The four roles of a Raft node, each a class holding only that role's data, and the one table
// of legal transitions between them (Kafka's QuorumState keeps the same kind of table).
//
//   follower      -> follower (higher term), pre-candidate (election timeout with pre-vote),
//                    candidate (timeout without pre-vote, or TimeoutNow from the leader)
//   pre-candidate -> follower (higher term, a leader, or lost pre-vote), candidate (won pre-vote),
//                    pre-candidate (timed out again)
//   candidate     -> follower (higher term, a leader, or lost), leader (won the vote),
//                    candidate / pre-candidate (timed out again)
//   leader        -> follower (higher term, or check-quorum found no majority)
import { assert } from '../src/util/assert.js';
import { Progress } from './progress.js';
import type { NodeId, Role } from './types.js';

export const ROLE_TRANSITIONS: Readonly<Record<Role, readonly Role[]>> = {
  follower: ['follower', 'pre-candidate', 'candidate'],
  'pre-candidate': ['follower', 'candidate', 'pre-candidate'],
  candidate: ['follower', 'leader', 'candidate', 'pre-candidate'],
  leader: ['follower'],
};

export function assertTransition(from: Role, to: Role): void {
  assert(ROLE_TRANSITIONS[from].includes(to), () => `illegal role transition ${from} -> ${to}`);
}

export class FollowerRole {
  readonly role = 'follower' as const;
}

/** Pre-candidates and candidates count answers the same way; only the term they ask for differs. */
class VoteTally {
  private readonly answers = new Map<NodeId, boolean>();

  record(from: NodeId, granted: boolean): void {
    if (!this.answers.has(from)) this.answers.set(from, granted);
  }

  /** 'won' or 'lost' once a majority of `voterCount` has answered one way. */
  result(voterCount: number): 'won' | 'lost' | 'pending' {
    const quorum = Math.floor(voterCount / 2) + 1;
    let granted = 0;
    let rejected = 0;
    for (const answer of this.answers.values()) answer ? granted++ : rejected++;
    if (granted >= quorum) return 'won';
    if (rejected > voterCount - quorum) return 'lost';
    return 'pending';
  }
}

export class PreCandidateRole {
  readonly role = 'pre-candidate' as const;
  readonly votes = new VoteTally();
}

export class CandidateRole {
  readonly role = 'candidate' as const;
  readonly votes = new VoteTally();
}

export interface PendingRead {
  readonly requestId: number;
  readonly index: number;
  readonly round: number;
}

export class LeaderRole {
  readonly role = 'leader' as const;
  readonly progress = new Map<NodeId, Progress>();
  /** Last index this leader itself has persisted; its own vote in the commit count. */
  selfMatch: number;
  /** Index of this term's first entry (the no-op): commits below it are not this term's. */
  readonly termStartIndex: number;
  transferee: NodeId = 0;
  uncommittedBytes = 0;
  /** The commit index or new entries changed since the last broadcast. */
  broadcastPending = false;
  heartbeatPending = false;
  /** ReadIndex rounds: each heartbeat broadcast after a read request starts a new round. */
  readRound = 0;
  readonly pendingReads: PendingRead[] = [];
  /** Reads that arrived before this term's first commit, when the commit index is not yet ours. */
  readonly waitingReads: number[] = [];

  constructor(peers: readonly NodeId[], lastIndex: number, selfMatch: number, limits: { maxInflightMessages: number; maxInflightBytes: number }) {
    for (const peer of peers) this.progress.set(peer, new Progress(lastIndex + 1, limits.maxInflightMessages, limits.maxInflightBytes));
    this.selfMatch = selfMatch;
    this.termStartIndex = lastIndex + 1;
  }
}

export type RoleState = FollowerRole | PreCandidateRole | CandidateRole | LeaderRole;
