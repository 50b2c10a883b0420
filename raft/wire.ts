// Converts between the core's messages (types.ts) and the riffle.internal.Raft wire messages
// (proto/riffle/internal/raft.proto, loaded with longs as Number and defaults on). Decoding and
// interpreting stay apart: these functions only reshape and range-check fields.
import { decodeEntries, encodeEntries } from './codec.js';
import type {
  AppendMessage,
  AppendResponseMessage,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  TimeoutNowMessage,
  VoteMessage,
  VoteResponseMessage,
} from './types.js';

export interface AppendEntriesRequestWire {
  from: number;
  to: number;
  term: number;
  heartbeat: boolean;
  prevIndex: number;
  prevTerm: number;
  commit: number;
  entries: Buffer;
  readRound: number;
}

export interface AppendEntriesResponseWire {
  from: number;
  to: number;
  term: number;
  heartbeat: boolean;
  index: number;
  reject: boolean;
  rejectHint: number;
  readRound: number;
  lostLog?: boolean;
}

export interface RequestVoteRequestWire {
  from: number;
  to: number;
  term: number;
  preVote: boolean;
  lastIndex: number;
  lastTerm: number;
  transfer: boolean;
}

export interface RequestVoteResponseWire {
  answered: boolean;
  from: number;
  to: number;
  term: number;
  preVote: boolean;
  granted: boolean;
}

export interface InstallSnapshotChunkWire {
  from: number;
  to: number;
  term: number;
  snapshotIndex: number;
  snapshotTerm: number;
  offset: number;
  totalBytes: number;
  data: Buffer;
  last: boolean;
  crc32c: number;
}

export interface TimeoutNowRequestWire {
  from: number;
  to: number;
  term: number;
}

const EMPTY = Buffer.alloc(0);

export function appendToWire(message: AppendMessage | HeartbeatMessage): AppendEntriesRequestWire {
  const base = { from: message.from, to: message.to, term: message.term };
  if (message.type === 'heartbeat') {
    return { ...base, heartbeat: true, prevIndex: 0, prevTerm: 0, commit: message.commit, entries: EMPTY, readRound: message.readRound };
  }
  const entries = message.entries.length > 0 ? encodeEntries(message.entries) : EMPTY;
  return { ...base, heartbeat: false, prevIndex: message.prevIndex, prevTerm: message.prevTerm, commit: message.commit, entries, readRound: 0 };
}

export function appendFromWire(wire: AppendEntriesRequestWire): AppendMessage | HeartbeatMessage {
  const base = { from: wire.from, to: wire.to, term: wire.term };
  if (wire.heartbeat) return { ...base, type: 'heartbeat', commit: wire.commit, readRound: wire.readRound };
  const entries = wire.entries.length > 0 ? decodeEntries(wire.entries) : [];
  return { ...base, type: 'append', prevIndex: wire.prevIndex, prevTerm: wire.prevTerm, commit: wire.commit, entries };
}

export function appendResponseToWire(message: AppendResponseMessage | HeartbeatResponseMessage): AppendEntriesResponseWire {
  const base = { from: message.from, to: message.to, term: message.term };
  if (message.type === 'heartbeatResponse') return { ...base, heartbeat: true, index: 0, reject: false, rejectHint: 0, readRound: message.readRound };
  return { ...base, heartbeat: false, index: message.index, reject: message.reject, rejectHint: message.rejectHint, readRound: 0, lostLog: message.lostLog === true };
}

export function appendResponseFromWire(wire: AppendEntriesResponseWire): AppendResponseMessage | HeartbeatResponseMessage {
  const base = { from: wire.from, to: wire.to, term: wire.term };
  if (wire.heartbeat) return { ...base, type: 'heartbeatResponse', readRound: wire.readRound };
  const response = { ...base, type: 'appendResponse' as const, index: wire.index, reject: wire.reject, rejectHint: wire.rejectHint };
  return wire.reject && wire.lostLog ? { ...response, lostLog: true } : response;
}

export function voteToWire(message: VoteMessage): RequestVoteRequestWire {
  const { from, to, term, preVote, lastIndex, lastTerm, transfer } = message;
  return { from, to, term, preVote, lastIndex, lastTerm, transfer };
}

export function voteFromWire(wire: RequestVoteRequestWire): VoteMessage {
  const { from, to, term, preVote, lastIndex, lastTerm, transfer } = wire;
  return { type: 'vote', from, to, term, preVote, lastIndex, lastTerm, transfer };
}

export function voteResponseToWire(message: VoteResponseMessage): RequestVoteResponseWire {
  const { from, to, term, preVote, granted } = message;
  return { answered: true, from, to, term, preVote, granted };
}

export function voteResponseFromWire(wire: RequestVoteResponseWire): VoteResponseMessage {
  const { from, to, term, preVote, granted } = wire;
  return { type: 'voteResponse', from, to, term, preVote, granted };
}

export function timeoutNowFromWire(wire: TimeoutNowRequestWire): TimeoutNowMessage {
  return { type: 'timeoutNow', from: wire.from, to: wire.to, term: wire.term };
}
