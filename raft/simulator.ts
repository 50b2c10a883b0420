// A seeded, deterministic simulation of a Raft cluster (after TigerBeetle's VOPR and Kafka raft's
// RaftEventSimulationTest). Simulated time, one event queue, a network that drops, delays,
// reorders, duplicates and partitions (symmetric and one-way), disks whose unsynced writes are
// lost when a node crashes, restarts from storage, and disks lost outright (a node restarted on
// empty storage, one at a time: a voter that forgot what it helped commit). Invariants are checked after every event; a
// liveness phase then heals everything and requires progress. The same seed replays exactly.
import { assert } from '../src/util/assert.js';
import { Prng } from '../src/util/prng.js';
import { makeRaftConfig, type RaftConfig } from './config.js';
import { RaftCore } from './core.js';
import { KvStateMachine, decodeKvCommand, encodeKvCommand } from './kv-state-machine.js';
import { checkLinearizable, type KvOperation } from './linearizability.js';
import { MemoryStorage } from './storage.js';
import { sendableBeforePersist, startsRecovering, type Entry, type Message, type NodeId, type Ready } from './types.js';
import { EventQueue } from './sim-event-queue.js';
import { InvariantChecker } from './sim-invariants.js';

export const TICK_MS = 10;
/** Events per simulation: a runaway run is a bug, not a slow test. */
export const SIM_EVENTS_MAX = 3_000_000;
/** Messages in the simulated network at once; more are dropped (a full switch buffer). */
export const NETWORK_MESSAGES_MAX = 20_000;
const CLIENT_COUNT = 3;
const CLIENT_KEYS = ['a', 'b', 'c'];
const OPERATION_TIMEOUT_MS = 1_500;

export interface SimulationOptions {
  readonly seed: number;
  readonly nodeCount: number;
  /** Simulated milliseconds of faults and client load. */
  readonly safetyMs: number;
  /** Bound on the healed phase: a leader and full replication must come within it. */
  readonly livenessMsMax: number;
  readonly snapshotEveryEntries: number;
  readonly log?: (line: string) => void;
}

export interface SimulationResult {
  readonly seed: number;
  readonly nodeCount: number;
  readonly ok: boolean;
  readonly error?: string;
  readonly events: number;
  readonly simulatedMs: number;
  readonly committed: number;
  readonly operations: number;
  readonly crashes: number;
  /** Crashes that also lost the node's whole disk. */
  readonly wipes: number;
  readonly snapshotsInstalled: number;
  /** Simulated milliseconds from healing to a leader with everything replicated. */
  readonly livenessMs: number;
}

type SimEvent =
  | { readonly kind: 'tick'; readonly node: NodeId }
  | { readonly kind: 'deliver'; readonly message: Message }
  | { readonly kind: 'sync'; readonly node: NodeId; readonly incarnation: number }
  | { readonly kind: 'restart'; readonly node: NodeId }
  | { readonly kind: 'fault' }
  | { readonly kind: 'client'; readonly client: number };

interface PendingOperation {
  readonly client: number;
  readonly kind: 'write' | 'read';
  readonly key: string;
  readonly value: string | null;
  readonly invokeMs: number;
  readonly node: NodeId;
  readonly incarnation: number;
  readonly deadlineMs: number;
  /** Writes: where the entry went. Reads: the request id, then the read index once confirmed. */
  index: number;
  term: number;
  requestId: number;
  readIndex: number;
}

interface SimNode {
  readonly id: NodeId;
  storage: MemoryStorage;
  core: RaftCore | undefined;
  machine: KvStateMachine;
  incarnation: number;
  pendingReady: Ready | undefined;
}

export class Simulation {
  private readonly prng: Prng;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly ids: NodeId[];
  private readonly invariants: InvariantChecker;
  private readonly features: { readonly preVote: boolean; readonly checkQuorum: boolean };
  private readonly blocked = new Set<string>();
  private dropRate = 0;
  private duplicateRate = 0;
  private delayMsMax = 5;
  private inFlight = 0;
  private now = 0;
  private events = 0;
  private crashes = 0;
  private wipes = 0;
  private snapshotsInstalled = 0;
  private livenessMs = 0;
  private healed = false;
  private readonly clients: (PendingOperation | undefined)[] = [];
  private readonly history: KvOperation[] = [];
  private nextValue = 0;
  private nextRequestId = 1;
  private ackedIndexMax = 0;

  constructor(private readonly options: SimulationOptions) {
    assert(options.nodeCount >= 1 && options.nodeCount <= 7, 'node count out of range');
    this.prng = new Prng(options.seed);
    // Most runs use both protections; some run without, since safety must not depend on them.
    this.features = { preVote: this.prng.chance(0.8), checkQuorum: this.prng.chance(0.8) };
    this.ids = Array.from({ length: options.nodeCount }, (_, i) => i + 1);
    this.invariants = new InvariantChecker();
    for (const id of this.ids) {
      this.nodes.set(id, { id, storage: new MemoryStorage(), core: undefined, machine: new KvStateMachine(), incarnation: 0, pendingReady: undefined });
      this.startNode(id);
      this.queue.push(this.prng.int(1, TICK_MS + 1), { kind: 'tick', node: id });
    }
    for (let c = 0; c < CLIENT_COUNT; c++) {
      this.clients.push(undefined);
      this.queue.push(this.prng.int(50, 150), { kind: 'client', client: c });
    }
    this.queue.push(this.prng.int(100, 300), { kind: 'fault' });
  }

  run(): SimulationResult {
    try {
      this.runUntil(this.options.safetyMs);
      this.heal();
      this.runLiveness();
      this.checkHistory();
      return this.result(true);
    } catch (error) {
      const message = error instanceof Error ? `${error.message}\n${error.stack ?? ''}` : String(error);
      return this.result(false, message);
    }
  }

  private result(ok: boolean, error?: string): SimulationResult {
    return {
      seed: this.options.seed, nodeCount: this.options.nodeCount, ok, error, snapshotsInstalled: this.snapshotsInstalled, livenessMs: this.livenessMs, events: this.events, simulatedMs: this.now,
      committed: this.invariants.committedIndexMax(), operations: this.history.length, crashes: this.crashes, wipes: this.wipes,
    };
  }

  private log(line: string): void {
    this.options.log?.(`${String(this.now).padStart(7)} ms  ${line}`);
  }

  private runUntil(endMs: number, done?: () => boolean): boolean {
    while (this.queue.size() > 0 && this.queue.peekTime() <= endMs) {
      if (done?.()) return true;
      const { time, item } = this.queue.pop();
      this.now = time;
      this.events++;
      assert(this.events <= SIM_EVENTS_MAX, 'simulation exceeded its event budget');
      this.handle(item);
    }
    if (done?.()) return true;
    this.now = Math.max(this.now, endMs);
    return false;
  }

  private handle(event: SimEvent): void {
    switch (event.kind) {
      case 'tick':
        this.queue.push(this.now + TICK_MS, event);
        return this.withNode(event.node, (node, core) => core.tick());
      case 'deliver':
        this.inFlight--;
        return this.withNode(event.message.to, (node, core) => core.step(event.message));
      case 'sync':
        return this.handleSync(event.node, event.incarnation);
      case 'restart':
        return this.restartNode(event.node);
      case 'fault':
        if (!this.healed) this.injectFault();
        return;
      case 'client':
        return this.handleClient(event.client);
    }
  }

  /** Runs an input on a live node, then checks invariants and hands out its next Ready. */
  private withNode(id: NodeId, input: (node: SimNode, core: RaftCore) => void): void {
    const node = this.nodes.get(id)!;
    if (!node.core) return;
    input(node, node.core);
    this.invariants.afterStep(id, node.core);
    this.drive(node);
  }

  private drive(node: SimNode): void {
    const core = node.core;
    if (!core || node.pendingReady || !core.hasReady()) return;
    node.pendingReady = core.ready();
    for (const message of node.pendingReady.messages) if (sendableBeforePersist(message)) this.send(message);
    // The write reaches the disk (synced) a little later; a crash before then loses it.
    this.queue.push(this.now + this.prng.int(0, 3), { kind: 'sync', node: node.id, incarnation: node.incarnation });
  }

  private handleSync(id: NodeId, incarnation: number): void {
    const node = this.nodes.get(id)!;
    const ready = node.pendingReady;
    if (!node.core || node.incarnation !== incarnation || !ready) return;
    node.storage.saveSync({ hardState: ready.hardState, entries: ready.entries, snapshot: ready.snapshot });
    this.invariants.afterPersist(id, node.storage, ready);
    if (ready.snapshot) {
      node.machine.restore(ready.snapshot.data);
      this.snapshotsInstalled++;
      this.invariants.afterRestore(id, node.machine, ready.snapshot.meta.index);
    }
    for (const message of ready.messages) if (!sendableBeforePersist(message)) this.send(message);
    for (const entry of ready.committedEntries) this.applyEntry(node, entry);
    for (const read of ready.readStates) this.confirmRead(node, read.requestId, read.index);
    node.pendingReady = undefined;
    node.core.advance();
    this.completeReads(node);
    this.maybeCompact(node, node.core);
    this.invariants.afterStep(id, node.core);
    this.drive(node);
  }

  private applyEntry(node: SimNode, entry: Entry): void {
    if (entry.index <= node.machine.appliedIndex) return; // Covered by a restored snapshot.
    node.machine.apply(entry);
    this.invariants.afterApply(node.id, entry, node.machine.stateHash);
    for (let c = 0; c < this.clients.length; c++) {
      const op = this.clients[c];
      if (!op || op.kind !== 'write' || op.node !== node.id || op.incarnation !== node.incarnation || op.index !== entry.index) continue;
      // Our entry committed at this index, or another did and ours never will.
      if (entry.term === op.term) this.finish(c, this.now);
      else this.clients[c] = undefined;
      if (entry.term === op.term) this.ackedIndexMax = Math.max(this.ackedIndexMax, entry.index);
    }
  }

  private maybeCompact(node: SimNode, core: RaftCore): void {
    const applied = node.machine.appliedIndex;
    if (applied - core.log.snapshot().meta.index < this.options.snapshotEveryEntries) return;
    const data = node.machine.snapshot();
    // The snapshot is made durable before the log forgets the entries it covers.
    node.storage.saveSnapshotSync({ meta: { index: applied, term: core.log.term(applied)! }, data });
    core.compact(applied, data);
  }

  private send(message: Message): void {
    const link = `${message.from}>${message.to}`;
    if (this.blocked.has(link) || this.inFlight >= NETWORK_MESSAGES_MAX || this.prng.chance(this.dropRate)) return;
    const copies = this.prng.chance(this.duplicateRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.inFlight++;
      this.queue.push(this.now + this.prng.int(1, this.delayMsMax + 1), { kind: 'deliver', message });
    }
  }

  // ---- crashes and restarts ------------------------------------------------------------------

  private config(id: NodeId): RaftConfig {
    return makeRaftConfig(id, this.ids, {
      heartbeatTicks: 2, electionTicks: 10, electionTicksMax: 20, maxMessageBytes: 4096, maxInflightMessages: 8, maxInflightBytes: 16384,
      preVote: this.features.preVote, checkQuorum: this.features.checkQuorum,
    });
  }

  private startNode(id: NodeId): void {
    const node = this.nodes.get(id)!;
    const initial = node.storage.loadSync();
    node.incarnation++;
    node.core = new RaftCore(this.config(id), new Prng(this.prng.nextUint32()), initial, (line) => this.log(line));
    node.machine = new KvStateMachine();
    node.machine.restore(initial.snapshot.data);
    node.pendingReady = undefined;
    this.invariants.afterStart(id, node.core, node.machine, initial.snapshot.meta.index);
  }

  private crashNode(id: NodeId): void {
    const node = this.nodes.get(id)!;
    if (!node.core) return;
    this.log(`crash node ${id}${node.pendingReady ? ' (losing an unsynced write)' : ''}`);
    this.crashes++;
    node.core = undefined;
    node.pendingReady = undefined;
    this.invariants.afterCrash(id);
    for (let c = 0; c < this.clients.length; c++) {
      const op = this.clients[c];
      if (op && op.node === id) this.finish(c, Infinity);
    }
  }

  /** A crashed node's disk is lost: it restarts on empty storage. */
  private wipeNode(id: NodeId): void {
    const node = this.nodes.get(id)!;
    assert(!node.core, 'only a crashed node loses its disk');
    this.log(`wipe node ${id}'s disk`);
    this.wipes++;
    node.storage = new MemoryStorage();
    this.invariants.afterWipe(id);
  }

  /** Started on empty storage and not caught up with a leader yet, running or not (see RaftCore). */
  private isRecovering(id: NodeId): boolean {
    const node = this.nodes.get(id)!;
    return node.core ? node.core.isRecovering : startsRecovering(node.storage.loadSync());
  }

  private restartNode(id: NodeId): void {
    if (this.nodes.get(id)!.core) return;
    this.log(`restart node ${id}`);
    this.startNode(id);
  }

  // ---- faults --------------------------------------------------------------------------------

  private injectFault(): void {
    this.queue.push(this.now + this.prng.int(30, 250), { kind: 'fault' });
    const roll = this.prng.next();
    if (roll < 0.15) {
      const alive = this.ids.filter((id) => this.nodes.get(id)!.core);
      if (alive.length === 0) return;
      const victim = this.prng.pick(alive);
      // Now and then the disk goes too: one at a time (a second while the first node still
      // recovers is a second failure, beyond what a majority quorum survives).
      const wipe = this.prng.chance(0.2) && !this.ids.some((id) => this.isRecovering(id));
      this.crashNode(victim);
      if (wipe) this.wipeNode(victim);
      this.queue.push(this.now + this.prng.int(50, 1_000), { kind: 'restart', node: victim });
    } else if (roll < 0.3) {
      this.partition(this.prng.shuffle([...this.ids]).slice(0, this.prng.int(1, this.ids.length)));
    } else if (roll < 0.4) {
      const from = this.prng.pick(this.ids);
      const to = this.prng.pick(this.ids.filter((id) => id !== from));
      this.blocked.add(`${from}>${to}`);
      this.log(`cut link ${from} -> ${to}`);
    } else if (roll < 0.6) {
      this.blocked.clear();
      this.log('heal network');
    } else if (roll < 0.75) {
      this.dropRate = this.prng.pick([0, 0.02, 0.1, 0.3]);
      this.duplicateRate = this.prng.pick([0, 0.02, 0.1]);
      this.log(`network drop ${this.dropRate} duplicate ${this.duplicateRate}`);
    } else if (roll < 0.8) {
      this.delayMsMax = this.prng.pick([2, 5, 20, 80]);
      this.log(`network delay up to ${this.delayMsMax} ms`);
    } else if (roll < 0.87) {
      this.transferLeadership();
    } else {
      this.partition([this.prng.pick(this.ids)]);
    }
  }

  private transferLeadership(): void {
    const leader = this.currentLeader();
    if (!leader) return;
    const target = this.prng.pick(this.ids.filter((id) => id !== leader.id));
    this.log(`ask node ${leader.id} to transfer leadership to ${target}`);
    leader.core!.transferLeadership(target);
    this.drive(leader);
  }

  private partition(side: readonly NodeId[]): void {
    this.blocked.clear();
    for (const a of side) {
      for (const b of this.ids) {
        if (side.includes(b)) continue;
        this.blocked.add(`${a}>${b}`);
        this.blocked.add(`${b}>${a}`);
      }
    }
    this.log(`partition {${side.join(',')}} from the rest`);
  }

  private heal(): void {
    this.healed = true;
    this.blocked.clear();
    this.dropRate = 0;
    this.duplicateRate = 0;
    this.delayMsMax = 5;
    this.log('liveness phase: heal everything, restart every node');
    for (const id of this.ids) this.restartNode(id);
  }

  // ---- liveness ------------------------------------------------------------------------------

  private runLiveness(): void {
    const deadline = this.now + this.options.livenessMsMax;
    let marker: { node: NodeId; index: number; term: number } | undefined;
    while (this.now < deadline) {
      const leader = this.currentLeader();
      if (leader && (!marker || !this.markerAlive(marker))) {
        const result = leader.core!.propose(encodeKvCommand({ key: 'liveness', value: String(this.options.seed) }));
        if (result.ok) marker = { node: leader.id, index: result.index, term: result.term };
        this.drive(leader);
      }
      const done = (): boolean => marker !== undefined && this.replicatedEverywhere(marker.index) && this.clients.every((op) => op === undefined);
      if (this.runUntil(this.now + TICK_MS, done)) {
        this.livenessMs = this.now - (deadline - this.options.livenessMsMax);
        return;
      }
    }
    throw new Error(`liveness: no leader with full replication within ${this.options.livenessMsMax} ms (${this.describeNodes()})`);
  }

  /** A marker entry is still worth waiting for while no other entry took its index. */
  private markerAlive(marker: { node: NodeId; index: number; term: number }): boolean {
    const committedTerm = this.invariants.committedTerm(marker.index);
    if (committedTerm !== undefined) return committedTerm === marker.term;
    // Not committed yet: it still may be while its leader leads the same term.
    const core = this.nodes.get(marker.node)!.core;
    return core !== undefined && core.role === 'leader' && core.term === marker.term;
  }

  private currentLeader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const node of this.nodes.values()) {
      if (node.core?.role === 'leader' && (!best || node.core.term > best.core!.term)) best = node;
    }
    return best;
  }

  private replicatedEverywhere(index: number): boolean {
    const target = Math.max(index, this.ackedIndexMax);
    return [...this.nodes.values()].every((node) => node.core && node.machine.appliedIndex >= target);
  }

  private describeNodes(): string {
    return [...this.nodes.values()].map((n) => {
      const s = n.core?.status();
      return s ? `${n.id}:${s.role}/t${s.term}/c${s.commit}/a${n.machine.appliedIndex}/l${s.lastIndex}` : `${n.id}:down`;
    }).join(' ');
  }

  // ---- clients -------------------------------------------------------------------------------

  private handleClient(client: number): void {
    if (this.healed) {
      const op = this.clients[client];
      if (op && this.now >= op.deadlineMs) this.finish(client, Infinity);
      if (this.clients[client]) this.queue.push(this.now + 50, { kind: 'client', client });
      return;
    }
    this.queue.push(this.now + this.prng.int(2, 25), { kind: 'client', client });
    const op = this.clients[client];
    if (op) {
      if (this.now >= op.deadlineMs) this.finish(client, Infinity);
      return;
    }
    this.invoke(client);
  }

  private invoke(client: number): void {
    const alive = [...this.nodes.values()].filter((n) => n.core);
    if (alive.length === 0) return;
    // Clients mostly find the leader, as a real client follows leader hints.
    const leader = this.currentLeader();
    const node = leader && this.prng.chance(0.8) ? leader : this.prng.pick(alive);
    if (!node.core) return;
    const core = node.core!;
    const key = this.prng.pick(CLIENT_KEYS);
    const isWrite = this.prng.chance(0.6);
    const base = { client, key, invokeMs: this.now, node: node.id, incarnation: node.incarnation, deadlineMs: this.now + OPERATION_TIMEOUT_MS, index: 0, term: 0, requestId: 0, readIndex: 0 };
    if (isWrite) {
      const value = `v${this.nextValue++}`;
      const result = core.propose(encodeKvCommand({ key, value }));
      if (!result.ok) return; // Refused outright: it never happened.
      this.clients[client] = { ...base, kind: 'write', value, index: result.index, term: result.term };
    } else {
      const requestId = this.nextRequestId++;
      if (!core.readIndex(requestId).ok) return;
      this.clients[client] = { ...base, kind: 'read', value: null, requestId };
    }
    this.drive(node);
  }

  private confirmRead(node: SimNode, requestId: number, index: number): void {
    for (const op of this.clients) {
      if (op && op.kind === 'read' && op.node === node.id && op.incarnation === node.incarnation && op.requestId === requestId) op.readIndex = index;
    }
  }

  private completeReads(node: SimNode): void {
    for (let c = 0; c < this.clients.length; c++) {
      const op = this.clients[c];
      if (!op || op.kind !== 'read' || op.node !== node.id || op.incarnation !== node.incarnation) continue;
      if (op.readIndex === 0 || node.machine.appliedIndex < op.readIndex) continue;
      this.clients[c] = { ...op, value: node.machine.get(op.key) ?? null };
      this.finish(c, this.now);
    }
  }

  private finish(client: number, completeMs: number): void {
    const op = this.clients[client]!;
    this.clients[client] = undefined;
    this.history.push({ client, kind: op.kind, key: op.key, value: op.value, invokeMs: op.invokeMs, completeMs });
  }

  private checkHistory(): void {
    const result = checkLinearizable(this.history);
    if (!result.ok) throw new Error(`history not linearizable on key ${result.key}: ${result.reason}`);
  }
}

export function runSimulation(options: SimulationOptions): SimulationResult {
  return new Simulation(options).run();
}

export { decodeKvCommand };
