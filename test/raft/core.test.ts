// Unit tests of the pure core: configuration checks, the role transition table, and behaviours
// best pinned down one message at a time.
import { describe, expect, it } from 'vitest';
import { Prng } from '../../src/util/prng.js';
import { makeRaftConfig } from '../../raft/config.js';
import { RaftCore } from '../../raft/core.js';
import { ROLE_TRANSITIONS, assertTransition } from '../../raft/roles.js';
import { EMPTY_HARD_STATE, EMPTY_SNAPSHOT, type Message, type Ready } from '../../raft/types.js';

const empty = { hardState: EMPTY_HARD_STATE, snapshot: EMPTY_SNAPSHOT, entries: [] };
const core = (id: number, voters = [1, 2, 3], seed = id) => new RaftCore(makeRaftConfig(id, voters), new Prng(seed), empty);

/** Handles a Ready the way a driver must: persist (nothing to do here), send, advance. */
function drain(node: RaftCore): Ready {
  const ready = node.ready();
  node.advance();
  return ready;
}

function electLeader(nodes: RaftCore[]): void {
  const queue: Message[] = [];
  for (let i = 0; i < 100 && nodes[0]!.role === 'follower'; i++) nodes[0]!.tick();
  for (let round = 0; round < 50; round++) {
    for (const node of nodes) if (node.hasReady()) queue.push(...drain(node).messages);
    if (queue.length === 0) return;
    for (const message of queue.splice(0)) nodes[message.to - 1]!.step(message);
  }
}

describe('raft config', () => {
  it('accepts the defaults and rejects broken relations', () => {
    expect(makeRaftConfig(1, [1, 2, 3]).electionTicks).toBe(10);
    expect(() => makeRaftConfig(4, [1, 2, 3])).toThrow(/not among the voters/);
    expect(() => makeRaftConfig(1, [1, 2, 3], { electionTicks: 1, heartbeatTicks: 1 })).toThrow(/must exceed heartbeatTicks/);
    expect(() => makeRaftConfig(1, [1, 2, 3], { electionTicksMax: 10 })).toThrow(/electionTicksMax/);
    expect(() => makeRaftConfig(1, [1, 1, 2])).toThrow(/duplicates/);
    expect(() => makeRaftConfig(1, [1, 2], { maxInflightBytes: 10, maxMessageBytes: 100 })).toThrow(/maxInflightBytes/);
  });
});

describe('role transitions', () => {
  it('allow only the listed changes and name both roles when refusing', () => {
    expect(ROLE_TRANSITIONS.leader).toEqual(['follower']);
    expect(() => assertTransition('leader', 'candidate')).toThrow('illegal role transition leader -> candidate');
    expect(() => assertTransition('pre-candidate', 'leader')).toThrow('illegal role transition pre-candidate -> leader');
    expect(() => assertTransition('follower', 'pre-candidate')).not.toThrow();
  });
});

describe('raft core', () => {
  it('remembers the last leader a follower heard from, and how many ticks ago', () => {
    const nodes = [core(1), core(2), core(3)];
    expect(nodes[1]!.lastLeaderContact()).toBeNull();
    electLeader(nodes);
    expect(nodes[0]!.role).toBe('leader');
    expect(nodes[1]!.lastLeaderContact()).toEqual({ leader: 1, ticksAgo: 0 });
    // The leader falls silent: the follower counts the ticks since its last message.
    for (let i = 0; i < 5; i++) nodes[1]!.tick();
    expect(nodes[1]!.lastLeaderContact()).toEqual({ leader: 1, ticksAgo: 5 });
    // The leader itself never heard from another leader.
    expect(nodes[0]!.lastLeaderContact()).toBeNull();
  });

  it('keeps a voter that started on empty storage from electing a node behind, until it holds an entry of a leader\'s term', () => {
    const entry = (index: number, term: number) => ({ index, term, kind: 'normal' as const, data: new Uint8Array([index]) });
    const voteFor = (node: RaftCore, from: number, term: number, lastIndex: number, lastTerm: number): boolean | undefined => {
      node.step({ type: 'vote', from, to: node.id, term, preVote: false, lastIndex, lastTerm, transfer: false });
      const answer = drain(node).messages.find((message) => message.type === 'voteResponse');
      return answer?.type === 'voteResponse' ? answer.granted : undefined;
    };
    // Node 2 lost its disk: it cannot tell this cluster from a new one. Its first Ready stores that.
    const wiped = core(2);
    expect(wiped.isRecovering).toBe(true);
    expect(drain(wiped).hardState).toEqual({ term: 0, vote: 0, commit: 0, recovering: true });
    // Node 3 has a log, maybe without entries node 2 helped commit: refused. An empty
    // candidate (a new cluster) cannot lack any: granted.
    expect(voteFor(wiped, 3, 5, 7, 4)).toBe(false);
    expect(voteFor(wiped, 1, 6, 0, 0)).toBe(true);

    // Restarted in the middle of catching up (the flag is stored), with part of a log: it
    // neither votes for a node with a log nor campaigns itself.
    const restarted = new RaftCore(makeRaftConfig(2, [1, 2, 3]), new Prng(2), { hardState: { term: 6, vote: 0, commit: 1, recovering: true }, snapshot: EMPTY_SNAPSHOT, entries: [entry(1, 4), entry(2, 4)] });
    expect(restarted.isRecovering).toBe(true);
    expect(voteFor(restarted, 3, 7, 9, 6)).toBe(false);
    for (let i = 0; i < 100; i++) restarted.tick();
    expect(restarted.role).toBe('follower');
    expect(restarted.hasReady() ? drain(restarted).messages.filter((message) => message.type === 'vote') : []).toEqual([]);

    // The leader of term 8 sends what follows, up to its own first entry: recovered, stored as such.
    restarted.step({ type: 'append', from: 1, to: 2, term: 8, prevIndex: 2, prevTerm: 4, entries: [entry(3, 6), entry(4, 8)], commit: 3 });
    expect(restarted.isRecovering).toBe(false);
    expect(drain(restarted).hardState).toEqual({ term: 8, vote: 0, commit: 3 });
    // From now on it votes by the usual rules alone (once the leader's lease has run out).
    for (let i = 0; i < 100; i++) restarted.tick();
    expect(voteFor(restarted, 3, 10, 4, 8)).toBe(true);
  });

  it('starts over with a follower that lost its log, where a heartbeat for its old log failed an assertion', () => {
    const nodes = [core(1), core(2), core(3)];
    electLeader(nodes);
    const leader = nodes[0]!;
    expect(leader.role).toBe('leader');
    const pump = (): void => {
      for (let round = 0; round < 100; round++) {
        const queue: Message[] = [];
        for (const node of nodes) if (node.hasReady()) queue.push(...drain(node).messages);
        if (queue.length === 0) return;
        for (const message of queue) nodes[message.to - 1]!.step(message);
      }
    };
    for (let i = 0; i < 5; i++) expect(leader.propose(new Uint8Array([i])).ok).toBe(true);
    pump();
    const end = leader.log.lastIndex();
    expect(nodes[1]!.log.committed).toBe(end);
    // Node 2 comes back on an empty disk; the leader still thinks it holds everything.
    nodes[1] = core(2);
    expect(nodes[1].isRecovering).toBe(true);
    // A heartbeat round: its commit (the old match) lies beyond the new log's end. The follower
    // says it lost its log instead of failing an assertion, and the leader sends it all again.
    for (let i = 0; i < 3; i++) leader.tick();
    pump();
    expect(nodes[1].log.lastIndex()).toBe(end);
    expect(nodes[1].log.committed).toBe(end);
    expect(nodes[1].isRecovering).toBe(false);
  });

  it('elects a single node leader on its own and commits after persisting', () => {
    const node = core(1, [1]);
    for (let i = 0; i < 25 && node.role !== 'leader'; i++) node.tick();
    expect(node.role).toBe('leader');
    const first = drain(node);
    expect(first.hardState).toEqual({ term: 1, vote: 1, commit: 0 });
    expect(first.entries.map((e) => e.kind)).toEqual(['noop']);
    // Counted towards commit only after advance() said the no-op is persisted.
    const second = drain(node);
    expect(second.committedEntries.map((e) => e.index)).toEqual([1]);
  });

  it('refuses proposals and reads on a follower with the leader as hint', () => {
    const nodes = [core(1), core(2), core(3)];
    electLeader(nodes);
    expect(nodes[0]!.role).toBe('leader');
    expect(nodes[1]!.propose(new Uint8Array([1]))).toEqual({ ok: false, reason: 'not-leader', leader: 1 });
    expect(nodes[2]!.readIndex(5)).toEqual({ ok: false, reason: 'not-leader', leader: 1 });
  });

  it('batches a burst of proposals into one append per follower', () => {
    const nodes = [core(1), core(2), core(3)];
    electLeader(nodes);
    for (let i = 0; i < 100; i++) expect(nodes[0]!.propose(new Uint8Array([i])).ok).toBe(true);
    const appends = drain(nodes[0]!).messages.filter((m) => m.type === 'append');
    expect(appends.map((m) => m.to)).toEqual([2, 3]);
    expect(appends.every((m) => m.type === 'append' && m.entries.length === 100)).toBe(true);
  });

  it('bounds pipelined appends by the in-flight window', () => {
    const leader = new RaftCore(makeRaftConfig(1, [1, 2], { maxInflightMessages: 3, maxMessageBytes: 100, maxInflightBytes: 1000 }), new Prng(1), empty);
    const follower = core(2, [1, 2]);
    electLeader([leader, follower]);
    let appends = 0;
    for (let round = 0; round < 10; round++) {
      expect(leader.propose(new Uint8Array(80)).ok).toBe(true);
      appends += drain(leader).messages.filter((m) => m.type === 'append').length;
    }
    // Nobody acknowledges: three appends are out, whatever else is proposed.
    expect(appends).toBe(3);
    expect(leader.status().lastIndex).toBe(11);
  });

  it('replays identically from the same seed and inputs', () => {
    const run = (): string[] => {
      const nodes = [core(1, [1, 2, 3], 9), core(2, [1, 2, 3], 9), core(3, [1, 2, 3], 9)];
      electLeader(nodes);
      nodes[0]!.propose(new Uint8Array([7]));
      return nodes.map((n) => JSON.stringify(n.status()));
    };
    expect(run()).toEqual(run());
  });
});
