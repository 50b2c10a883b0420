// The driver and the gRPC transport in one process: three RaftNodes on 127.0.2.1..3 with fast
// timers. Covers propose/apply, leader hints, ReadIndex, metrics, and a follower that returns
// after compaction and must be caught up by a snapshot sent in several chunks.
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/util/logger.js';
import { createNodeRegistry, type Registry } from '../../src/metrics/index.js';
import { isRiffleError } from '../../src/rpc/errors.js';
import { KvStateMachine, encodeKvCommand } from '../../raft/kv-state-machine.js';
import { RaftNode, validateTiming } from '../../raft/raft-node.js';
import { MemoryStorage } from '../../raft/storage.js';
import { GrpcTransport, SNAPSHOT_CHUNK_BYTES } from '../../raft/transport.js';
import type { NodeId } from '../../raft/types.js';

const HOSTS = ['127.0.2.1', '127.0.2.2', '127.0.2.3'];
const PORT = 17410;
const address = (id: NodeId): string => `${HOSTS[id - 1]}:${PORT}`;
// Fast, but with election timeouts long enough that a loaded machine does not flap leaders.
const FAST = { tickMs: 10, heartbeatMs: 50, electionMinMs: 500, electionMaxMs: 1000 };

interface Member {
  node: RaftNode;
  machine: KvStateMachine;
  storage: MemoryStorage;
  registry: Registry;
}

const running: RaftNode[] = [];
afterEach(async () => {
  for (const node of running.splice(0)) await node.stop();
});

async function startMember(id: NodeId, storage = new MemoryStorage(), extra: { timing?: typeof FAST; clock?: () => number } = {}): Promise<Member> {
  const peers = new Map([1, 2, 3].filter((p) => p !== id).map((p) => [p, address(p)] as const));
  const machine = new KvStateMachine();
  const registry = createNodeRegistry({ nodeId: id });
  const node = new RaftNode({
    id, voters: [1, 2, 3], storage, stateMachine: machine, registry, logger: silentLogger, timing: extra.timing ?? FAST, clock: extra.clock,
    transport: new GrpcTransport({ id, listen: address(id), peers, logger: silentLogger }),
    snapshotEveryEntries: 10, leaderHint: address, seed: id,
  });
  await node.start();
  running.push(node);
  return { node, machine, storage, registry };
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const value = probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

const leaderOf = (members: Member[]): Member | undefined => members.find((m) => m.node.status().role === 'leader');

describe('raft node over gRPC', () => {
  it('commits proposals, answers followers with a leader hint, serves linearizable reads', async () => {
    const members = await Promise.all([1, 2, 3].map((id) => startMember(id)));
    const leader = await waitFor('a leader', 10_000, () => leaderOf(members));
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => leader.node.propose(encodeKvCommand({ key: `k${i % 5}`, value: `v${i}` }))));
    expect(results.length).toBe(50);
    await waitFor('every node to apply', 5_000, () => (members.every((m) => m.machine.get('k4') === 'v49') ? true : undefined));

    const follower = members.find((m) => m !== leader)!;
    const refusal = await follower.node.propose(encodeKvCommand({ key: 'x', value: 'y' })).catch((error: unknown) => error);
    expect(isRiffleError(refusal, 'NOT_CONTROLLER')).toBe(true);
    expect((refusal as { leaderHint?: string }).leaderHint).toBe(address(leader.node.status().id));

    await leader.node.readBarrier();
    expect(leader.machine.get('k0')).toBe('v45');
    const metrics = await leader.registry.metrics();
    expect(metrics).toMatch(/riffle_raft_role\{role="leader",node="\d"\} 1/);
    expect(metrics).toMatch(/riffle_raft_append_latency_seconds_count\{node="\d"\} [1-9]/);
  });

  it('catches up a returning follower with a snapshot sent in chunks', async () => {
    const members = await Promise.all([1, 2, 3].map((id) => startMember(id)));
    const leader = await waitFor('a leader', 10_000, () => leaderOf(members));
    const away = members.find((m) => m !== leader)!;
    const awayId = away.node.status().id;
    await away.node.stop();
    running.splice(running.indexOf(away.node), 1);

    // 60 values of 60 KB: the state outgrows several snapshot chunks.
    const big = 'z'.repeat(60 * 1024);
    for (let i = 0; i < 60; i++) await leader.node.propose(encodeKvCommand({ key: `big${i}`, value: `${i}:${big}` }));
    expect(leader.machine.snapshot().byteLength).toBeGreaterThan(2 * SNAPSHOT_CHUNK_BYTES);
    expect(leader.node.status().snapshotIndex).toBeGreaterThan(away.machine.appliedIndex);

    const back = await startMember(awayId, away.storage);
    const target = leader.node.status().commit;
    await waitFor('the returning follower to catch up', 10_000, () => (back.node.status().applied >= target ? true : undefined));
    expect(back.machine.get('big59')?.startsWith('59:')).toBe(true);
    expect(back.machine.stateHash).toBe(leader.machine.stateHash);
  });

  it('hands leadership to a chosen follower with TimeoutNow', async () => {
    const members = await Promise.all([1, 2, 3].map((id) => startMember(id)));
    const leader = await waitFor('a leader', 10_000, () => leaderOf(members));
    await leader.node.propose(encodeKvCommand({ key: 'before', value: '1' }));
    const target = members.find((m) => m !== leader)!;
    const targetId = target.node.status().id;
    const termBefore = leader.node.status().term;
    expect(leader.node.transferLeadership(targetId)).toBe(true);
    await waitFor('the target to lead', 5_000, () => (target.node.status().role === 'leader' ? true : undefined));
    expect(target.node.status().term).toBe(termBefore + 1);
    await target.node.propose(encodeKvCommand({ key: 'after', value: '2' }));
    await waitFor('the old leader to follow', 5_000, () => (leader.machine.get('after') === '2' && leader.node.status().leader === targetId ? true : undefined));
  });

  it('counts its timeouts by the clock, not by how often its timer fires', async () => {
    // A busy event loop fires a 50 ms timer once per turn; with turns of 200 ms a follower took
    // four times its election timeout to campaign. Here the clock jumps past a 10-20 s election
    // timeout at once: the next timer callback catches up, and the lone follower campaigns.
    const clock = { now: 1_000_000 };
    const slow = { tickMs: 50, heartbeatMs: 100, electionMinMs: 10_000, electionMaxMs: 20_000 };
    const member = await startMember(1, new MemoryStorage(), { timing: slow, clock: () => clock.now });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(member.node.status().role).toBe('follower');
    clock.now += 30_000;
    await waitFor('a campaign', 3_000, () => (member.node.status().role === 'pre-candidate' ? true : undefined));
    // 600 ticks were owed; one callback ran 401 of them (past the longest election timeout of
    // 400 ticks every timer has expired; no more are replayed), 400 more than a timer's one.
    const metrics = await member.registry.metrics();
    expect(metrics).toContain('riffle_raft_caught_up_ticks_total{node="1"} 400\n');
  });

  it('validates timing relations', () => {
    expect(validateTiming({ tickMs: 50, heartbeatMs: 100, electionMinMs: 1000, electionMaxMs: 2000 })).toEqual({ heartbeatTicks: 2, electionTicks: 20, electionTicksMax: 40 });
    expect(() => validateTiming({ tickMs: 50, heartbeatMs: 100, electionMinMs: 150, electionMaxMs: 2000 })).toThrow(/at least twice/);
    expect(() => validateTiming({ tickMs: 50, heartbeatMs: 100, electionMinMs: 1000, electionMaxMs: 1000 })).toThrow(/must exceed/);
    expect(() => validateTiming({ tickMs: 30, heartbeatMs: 100, electionMinMs: 1000, electionMaxMs: 2000 })).toThrow(/multiples/);
  });
});
