// The driver's promises under faults: three RaftNodes on real timers with an in-memory network
// that delays, drops and partitions, nodes stopped and restarted from their storage, and a
// stream of proposals. Afterwards every acknowledged write must be applied on every node, and
// no write that was definitely refused (NOT_CONTROLLER, LIMIT_EXCEEDED) may be applied anywhere.
import { afterEach, describe, expect, it } from 'vitest';
import { Prng } from '../../src/util/prng.js';
import { silentLogger } from '../../src/util/logger.js';
import { Registry } from '../../src/metrics/index.js';
import { isRiffleError } from '../../src/rpc/errors.js';
import { KvStateMachine, encodeKvCommand } from '../../raft/kv-state-machine.js';
import { RaftNode } from '../../raft/raft-node.js';
import { MemoryStorage } from '../../raft/storage.js';
import type { RaftTransport } from '../../raft/transport.js';
import type { Message, NodeId } from '../../raft/types.js';

const IDS = [1, 2, 3];
const FAST = { tickMs: 10, heartbeatMs: 20, electionMinMs: 100, electionMaxMs: 200 };
const FAULT_PHASE_MS = 3_000;
const IN_FLIGHT_MAX = 20;
const PROPOSALS_MAX = 20_000;

/** A lossy in-memory network shared by the nodes of one test. */
class Network {
  private readonly endpoints = new Map<NodeId, (message: Message) => void>();
  readonly blocked = new Set<string>();
  dropRate = 0;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly prng: Prng) {}

  transport(id: NodeId): RaftTransport {
    return {
      start: async (deliver) => { this.endpoints.set(id, deliver); },
      send: (message) => this.send(message),
      stop: async () => { this.endpoints.delete(id); },
    };
  }

  private send(message: Message): void {
    if (this.blocked.has(`${message.from}>${message.to}`) || this.prng.chance(this.dropRate)) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.endpoints.get(message.to)?.(message);
    }, this.prng.int(0, 4));
    this.timers.add(timer);
  }

  close(): void {
    for (const timer of this.timers) clearTimeout(timer);
  }
}

interface Member {
  node: RaftNode;
  machine: KvStateMachine;
  readonly storage: MemoryStorage;
}

const started: RaftNode[] = [];
const registries: Registry[] = [];
afterEach(async () => {
  for (const node of started.splice(0)) await node.stop();
});

async function startMember(id: NodeId, network: Network, storage: MemoryStorage, seed: number): Promise<Member> {
  const machine = new KvStateMachine();
  const node = new RaftNode({
    id, voters: IDS, storage, stateMachine: machine, transport: network.transport(id), logger: silentLogger,
    registry: registries[registries.push(new Registry()) - 1]!, timing: FAST, snapshotEveryEntries: 50, proposeTimeoutMs: 2_000, seed,
  });
  await node.start();
  started.push(node);
  return { node, machine, storage };
}

async function waitFor(what: string, timeoutMs: number, probe: () => boolean): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (probe()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

describe('raft driver under faults', () => {
  it('applies every acknowledged write everywhere and never a refused one', async () => {
    const seed = Number(process.env.RIFFLE_DRIVER_SEED ?? 77_001);
    console.log(`driver fault test seed ${seed}`);
    const prng = new Prng(seed);
    const network = new Network(new Prng(prng.nextUint32()));
    const members = new Map<NodeId, Member>();
    for (const id of IDS) members.set(id, await startMember(id, network, new MemoryStorage(), prng.nextUint32()));

    const acknowledged: string[] = [];
    const refused: string[] = [];
    let unknown = 0;
    let inFlight = 0;
    let proposed = 0;
    const propose = (): boolean => {
      const running = [...members.values()].filter((m) => started.includes(m.node));
      if (running.length === 0) return false; // Every node is down at the moment.
      const leader = running.find((m) => m.node.status().role === 'leader') ?? prng.pick(running);
      const key = `w${proposed++}`;
      inFlight++;
      leader.node.propose(encodeKvCommand({ key, value: 'x' })).then(
        () => acknowledged.push(key),
        (error: unknown) => {
          if (isRiffleError(error, 'NOT_CONTROLLER') || isRiffleError(error, 'LIMIT_EXCEEDED')) refused.push(key);
          else unknown++;
        },
      ).finally(() => inFlight--);
      return true;
    };

    const faultUntil = performance.now() + FAULT_PHASE_MS;
    let nextFaultMs = performance.now() + 200;
    try {
      while (performance.now() < faultUntil && proposed < PROPOSALS_MAX) {
        while (inFlight < IN_FLIGHT_MAX && proposed < PROPOSALS_MAX && propose());
        if (performance.now() >= nextFaultMs) {
          nextFaultMs = performance.now() + prng.int(100, 400);
          await injectFault(prng, network, members);
        }
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    } finally {
      network.blocked.clear();
      network.dropRate = 0;
    }
    for (const id of IDS) {
      const member = members.get(id)!;
      if (!started.includes(member.node)) members.set(id, await startMember(id, network, member.storage, prng.nextUint32()));
    }
    await waitFor('outstanding proposals to settle', 10_000, () => inFlight === 0);
    const all = [...members.values()];
    await waitFor('every node to apply the same log', 10_000, () => {
      const applied = all.map((m) => m.node.status().applied);
      return applied.every((a) => a === applied[0]) && all.every((m) => m.node.status().commit === applied[0]);
    });
    network.close();

    let superseded = 0;
    for (const registry of registries.splice(0)) {
      const values = (await registry.getSingleMetric('riffle_raft_proposals_total')?.get())?.values ?? [];
      superseded += values.filter((v) => v.labels.outcome === 'superseded').reduce((sum, v) => sum + v.value, 0);
    }
    console.log(`driver fault test: ${proposed} proposed, ${acknowledged.length} acknowledged, ${refused.length} refused (${superseded} after being superseded), ${unknown} unknown`);
    expect(acknowledged.length).toBeGreaterThan(100);
    for (const member of all) {
      for (const key of acknowledged) expect(member.machine.get(key), `acknowledged ${key}`).toBe('x');
      for (const key of refused) expect(member.machine.get(key), `refused ${key}`).toBeUndefined();
      expect(member.machine.stateHash).toBe(all[0]!.machine.stateHash);
    }
  });
});

describe('raft driver with a deposed leader', () => {
  it('rejects the proposals a cut-off leader accepted once another leader overwrites them', async () => {
    const network = new Network(new Prng(6));
    const members = await Promise.all(IDS.map((id) => startMember(id, network, new MemoryStorage(), 10 + id)));
    await waitFor('a leader', 5_000, () => members.some((m) => m.node.status().role === 'leader'));
    const old = members.find((m) => m.node.status().role === 'leader')!;
    const oldId = old.node.status().id;
    for (const other of IDS.filter((id) => id !== oldId)) {
      network.blocked.add(`${oldId}>${other}`);
      network.blocked.add(`${other}>${oldId}`);
    }
    const doomed = Array.from({ length: 5 }, (_, i) => old.node.propose(encodeKvCommand({ key: `doomed${i}`, value: 'x' })).then(() => 'ok', (error: unknown) => error));
    const others = members.filter((m) => m !== old);
    await waitFor('a new leader', 5_000, () => others.some((m) => m.node.status().role === 'leader'));
    const next = others.find((m) => m.node.status().role === 'leader')!;
    for (let i = 0; i < 10; i++) await next.node.propose(encodeKvCommand({ key: `fresh${i}`, value: 'y' }));
    network.blocked.clear();
    const outcomes = await Promise.all(doomed);
    for (const outcome of outcomes) expect(isRiffleError(outcome, 'NOT_CONTROLLER')).toBe(true);
    await waitFor('the old leader to catch up', 5_000, () => old.machine.get('fresh9') === 'y');
    for (let i = 0; i < 5; i++) expect(old.machine.get(`doomed${i}`)).toBeUndefined();
    network.close();
  });
});

async function injectFault(prng: Prng, network: Network, members: Map<NodeId, Member>): Promise<void> {
  const roll = prng.next();
  const id = prng.pick(IDS);
  const member = members.get(id)!;
  if (roll < 0.3) {
    if (started.includes(member.node)) {
      started.splice(started.indexOf(member.node), 1);
      await member.node.stop();
    } else {
      members.set(id, await startMember(id, network, member.storage, prng.nextUint32()));
    }
  } else if (roll < 0.55) {
    network.blocked.clear();
    for (const other of IDS.filter((o) => o !== id)) {
      network.blocked.add(`${id}>${other}`);
      network.blocked.add(`${other}>${id}`);
    }
  } else if (roll < 0.7) {
    network.blocked.add(`${id}>${prng.pick(IDS.filter((o) => o !== id))}`);
  } else if (roll < 0.85) {
    network.dropRate = prng.pick([0, 0.05, 0.2]);
  } else {
    network.blocked.clear();
  }
}
