// The driver: runs the pure core (core.ts) on real timers, storage and transport. One Ready at a
// time: persist (one synced batch), then send, then apply, then advance(). Proposals and reads
// arriving while a Ready is being persisted accumulate in the core and leave together in the
// next one, which is where batching (group commit) comes from.
//
// propose() resolves once the entry is committed and applied here, with the state machine's
// result; it rejects NOT_CONTROLLER (with a leader hint) on a follower, LIMIT_EXCEEDED when too
// many proposals wait, and REQUEST_TIMED_OUT when the outcome is unknown after the timeout.
// A storage failure stops the node: continuing after a failed fsync could lose acknowledged data.
import { assert } from '../src/util/assert.js';
import type { Logger } from '../src/util/logger.js';
import { Prng } from '../src/util/prng.js';
import type { Registry } from '../src/metrics/index.js';
import { RiffleError } from '../src/rpc/errors.js';
import { makeRaftConfig } from './config.js';
import { RaftCore, type RaftStatus } from './core.js';
import type { StateMachine } from './kv-state-machine.js';
import { RaftMetrics } from './metrics.js';
import type { Storage } from './storage.js';
import type { RaftTransport } from './transport.js';
import { NO_NODE, sendableBeforePersist, type Entry, type Message, type NodeId, type Ready, type Role } from './types.js';

export interface RaftTimingOptions {
  readonly tickMs: number;
  readonly heartbeatMs: number;
  readonly electionMinMs: number;
  readonly electionMaxMs: number;
}

export const DEFAULT_RAFT_TIMING: RaftTimingOptions = { tickMs: 50, heartbeatMs: 100, electionMinMs: 1_000, electionMaxMs: 2_000 };

export interface RaftNodeOptions {
  readonly id: NodeId;
  readonly voters: readonly NodeId[];
  readonly storage: Storage;
  readonly stateMachine: StateMachine;
  readonly transport: RaftTransport;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly timing?: Partial<RaftTimingOptions>;
  /** Take a snapshot and compact once this many entries were applied since the last one. */
  readonly snapshotEveryEntries?: number;
  readonly proposeTimeoutMs?: number;
  readonly pendingProposalsMax?: number;
  /** What to tell clients about where the leader is (default: its node id). */
  readonly leaderHint?: (leader: NodeId) => string;
  /** Seed of the election jitter; defaults to a random one. */
  readonly seed?: number;
  /** Monotonic milliseconds the ticks follow (default performance.now). */
  readonly clock?: () => number;
}

/**
 * The most ticks one timer callback catches up on: past the longest election timeout every Raft
 * timer has expired anyway (a process stopped for minutes does not replay minutes of ticks).
 */
const CATCH_UP_TICKS_MAX_OVER_ELECTION = 1;

interface ProposalWaiter {
  readonly term: number;
  readonly startedMs: number;
  readonly resolve: (result: unknown) => void;
  readonly reject: (error: Error) => void;
}

interface ReadWaiter {
  index: number;
  readonly startedMs: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/** Checks the timing relations (as etcd-io/raft validates its tick counts) and returns ticks. */
export function validateTiming(timing: RaftTimingOptions): { heartbeatTicks: number; electionTicks: number; electionTicksMax: number } {
  const { tickMs, heartbeatMs, electionMinMs, electionMaxMs } = timing;
  for (const [name, value] of Object.entries(timing)) {
    if (!Number.isInteger(value) || value <= 0) throw new RangeError(`raft timing: ${name} ${value} must be a positive integer`);
  }
  if (heartbeatMs % tickMs !== 0 || electionMinMs % tickMs !== 0 || electionMaxMs % tickMs !== 0) throw new RangeError(`raft timing: heartbeat and election timeouts must be multiples of tickMs ${tickMs}`);
  if (electionMinMs < 2 * heartbeatMs) throw new RangeError(`raft timing: electionMinMs ${electionMinMs} must be at least twice heartbeatMs ${heartbeatMs}`);
  if (electionMaxMs <= electionMinMs) throw new RangeError(`raft timing: electionMaxMs ${electionMaxMs} must exceed electionMinMs ${electionMinMs}`);
  return { heartbeatTicks: heartbeatMs / tickMs, electionTicks: electionMinMs / tickMs, electionTicksMax: electionMaxMs / tickMs };
}

export class RaftNode {
  private core: RaftCore | undefined;
  private readonly metrics: RaftMetrics;
  private readonly timing: RaftTimingOptions;
  private readonly proposals = new Map<number, ProposalWaiter>();
  private readonly reads = new Map<number, ReadWaiter>();
  private nextReadId = 1;
  private ticker: NodeJS.Timeout | undefined;
  /** When the last tick counted was due (monotonic ms); ticks are owed for the time since. */
  private tickedUpToMs = 0;
  private tickScheduled = false;
  private catchUpTicksMax = 0;
  private readonly clock: () => number;
  private scheduled = false;
  private busy = false;
  private stopped = false;
  private appliedIndex = 0;
  private lastLeader: NodeId = NO_NODE;
  private lastRole: Role = 'follower';
  private readonly snapshotEveryEntries: number;
  private readonly proposeTimeoutMs: number;
  private readonly pendingProposalsMax: number;

  constructor(private readonly options: RaftNodeOptions) {
    const overrides = Object.entries(options.timing ?? {}).filter(([, value]) => value !== undefined);
    this.timing = { ...DEFAULT_RAFT_TIMING, ...Object.fromEntries(overrides) };
    validateTiming(this.timing);
    this.metrics = new RaftMetrics(options.registry);
    this.snapshotEveryEntries = options.snapshotEveryEntries ?? 10_000;
    this.proposeTimeoutMs = options.proposeTimeoutMs ?? 10_000;
    this.pendingProposalsMax = options.pendingProposalsMax ?? 200_000;
    this.clock = options.clock ?? (() => performance.now());
  }

  async start(): Promise<void> {
    const initial = await this.options.storage.load();
    const ticks = validateTiming(this.timing);
    const config = makeRaftConfig(this.options.id, this.options.voters, ticks);
    const seed = this.options.seed ?? Math.floor(Math.random() * 0x1_0000_0000);
    this.core = new RaftCore(config, new Prng(seed), initial, (line) => this.options.logger.info(line));
    this.options.stateMachine.restore(initial.snapshot.data);
    this.appliedIndex = initial.snapshot.meta.index;
    this.publishStatus();
    await this.options.transport.start((message) => this.receive(message));
    this.catchUpTicksMax = ticks.electionTicksMax + CATCH_UP_TICKS_MAX_OVER_ELECTION;
    this.tickedUpToMs = this.clock();
    this.ticker = setInterval(() => this.scheduleTicks(), this.timing.tickMs);
    this.options.logger.info({ term: initial.hardState.term, snapshot: initial.snapshot.meta.index, entries: initial.entries.length }, `node ${this.options.id} started`);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.ticker);
    // The outcome of what is still waiting is unknown: it may commit on the other nodes.
    const error = new RiffleError('REQUEST_TIMED_OUT', `node ${this.options.id} is stopping; outcome unknown`);
    this.failWaiters(error);
    await this.options.transport.stop();
    // Wait for a Ready being persisted, so storage closes after its last write.
    for (let i = 0; i < 1_000 && this.busy; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    await this.options.storage.close();
  }

  /** Works after stop() too (the last state seen), so callers may report on a stopped node. */
  status(): RaftStatus & { readonly applied: number } {
    assert(this.core !== undefined, 'raft node not started');
    return { ...this.core.status(), applied: this.appliedIndex };
  }

  /** The last other node this one followed as leader, and how long ago it last heard from it; null if none. */
  lastLeaderContact(): { leader: NodeId; msAgo: number } | null {
    const contact = this.core?.lastLeaderContact();
    return contact ? { leader: contact.leader, msAgo: contact.ticksAgo * this.timing.tickMs } : null;
  }

  /** On the leader, each voter's matching log index (for lag reporting); null elsewhere. */
  voterMatches(): ReadonlyMap<NodeId, number> | null {
    return this.core?.voterMatches() ?? null;
  }

  /** Resolves with the state machine's result once `data` is committed and applied here. */
  propose(data: Uint8Array): Promise<unknown> {
    const core = this.requireCore();
    if (this.proposals.size >= this.pendingProposalsMax) {
      this.metrics.proposals.inc({ outcome: 'overloaded' });
      return Promise.reject(new RiffleError('LIMIT_EXCEEDED', `${this.proposals.size} proposals are waiting to commit`));
    }
    const result = core.propose(data);
    if (!result.ok) {
      this.metrics.proposals.inc({ outcome: result.reason });
      if (result.reason === 'overloaded') return Promise.reject(new RiffleError('LIMIT_EXCEEDED', 'too many uncommitted bytes'));
      if (result.reason === 'too-large') return Promise.reject(new RiffleError('MESSAGE_TOO_LARGE', `entry of ${data.byteLength} bytes`));
      return Promise.reject(this.notLeader(result.leader));
    }
    this.kick();
    // A waiter left at this index by an earlier term can never commit now: its entry was replaced.
    this.proposals.get(result.index)?.reject(this.notLeader(NO_NODE));
    this.proposals.delete(result.index);
    return new Promise((resolve, reject) => {
      this.proposals.set(result.index, { term: result.term, startedMs: performance.now(), resolve, reject });
    });
  }

  /** Resolves when the local state machine may serve a linearizable read (ReadIndex). */
  readBarrier(): Promise<void> {
    const core = this.requireCore();
    const requestId = this.nextReadId++;
    const result = core.readIndex(requestId);
    if (!result.ok) {
      return Promise.reject(result.reason === 'overloaded' ? new RiffleError('LIMIT_EXCEEDED', 'too many pending reads') : this.notLeader(result.leader));
    }
    this.kick();
    return new Promise((resolve, reject) => {
      this.reads.set(requestId, { index: 0, startedMs: performance.now(), resolve, reject });
    });
  }

  /** Counts a message the transport dropped (wire it as the transport's onDrop). */
  recordDrop(reason: string): void {
    this.metrics.droppedMessages.inc({ reason });
  }

  transferLeadership(to: NodeId): boolean {
    const started = this.requireCore().transferLeadership(to);
    this.kick();
    return started;
  }

  private requireCore(): RaftCore {
    assert(this.core !== undefined && !this.stopped, 'raft node not running');
    return this.core;
  }

  private notLeader(leader: NodeId): RiffleError {
    const hint = leader === NO_NODE ? undefined : (this.options.leaderHint?.(leader) ?? String(leader));
    return new RiffleError('NOT_CONTROLLER', `node ${this.options.id} is not the Raft leader`, { leaderHint: hint });
  }

  private receive(message: Message): void {
    if (this.stopped || !this.core) return;
    this.core.step(message);
    if (this.busy) this.applyCommittedEarly(this.core);
    this.kick();
  }

  /**
   * While a Ready is being written, a leader applies what the acknowledgement just committed
   * instead of waiting for the write to finish. Only entries persisted by earlier Readies
   * qualify, in order; the next Ready hands them out again and applyEntry() skips them.
   */
  private applyCommittedEarly(core: RaftCore): void {
    if (core.role !== 'leader') return;
    const upTo = Math.min(core.log.committed, core.log.stableIndex);
    for (let index = this.appliedIndex + 1; index <= upTo; index++) this.applyEntry(core.log.entry(index)!);
  }

  /**
   * Raft's timeouts are counted in ticks, so ticks follow the clock, not the timer: a busy event
   * loop fires a 50 ms interval timer only once per turn, and a turn of 200 ms then stretched
   * every election timeout and check-quorum lease fourfold (the chaos suite's controller-kill saw
   * the surviving voter of a killed controller ignore pre-votes for 4-5 s). The ticks owed run
   * after this turn's I/O (setImmediate), so messages that arrived while the process was busy or
   * stopped are stepped first: its own delay does not count against its peers.
   */
  private scheduleTicks(): void {
    if (this.tickScheduled || this.stopped) return;
    this.tickScheduled = true;
    setImmediate(() => {
      this.tickScheduled = false;
      this.tick();
    });
  }

  private tick(): void {
    if (this.stopped || !this.core) return;
    const owed = Math.floor((this.clock() - this.tickedUpToMs) / this.timing.tickMs);
    if (owed <= 0) return;
    this.tickedUpToMs += owed * this.timing.tickMs;
    const ticks = Math.min(owed, this.catchUpTicksMax);
    if (ticks > 1) this.metrics.catchUpTicks.inc(ticks - 1);
    for (let index = 0; index < ticks; index++) this.core.tick();
    this.expireWaiters();
    this.kick();
  }

  /** Schedules Ready handling once per turn of the event loop, so inputs of one turn batch up. */
  private kick(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.handleReady();
    });
  }

  private async handleReady(): Promise<void> {
    const core = this.core;
    if (!core || this.busy || this.stopped || !core.hasReady()) return;
    this.busy = true;
    try {
      const ready = core.ready();
      for (const message of ready.messages) if (sendableBeforePersist(message)) this.options.transport.send(message);
      this.applyPersisted(ready);
      await this.persist(ready);
      for (const message of ready.messages) if (!sendableBeforePersist(message)) this.options.transport.send(message);
      this.apply(ready);
      core.advance();
      await this.maybeSnapshot(core);
      this.publishStatus();
    } catch (error) {
      this.options.logger.error({ err: error instanceof Error ? error.stack : String(error) }, 'raft node stops after a storage or apply failure');
      void this.stop();
    } finally {
      this.busy = false;
    }
    this.kick();
  }

  private async persist(ready: Ready): Promise<void> {
    if (!ready.snapshot && ready.entries.length === 0 && !ready.hardState) return;
    const started = performance.now();
    await this.options.storage.save({ hardState: ready.hardState, entries: ready.entries, snapshot: ready.snapshot });
    this.metrics.appendLatency.observe((performance.now() - started) / 1000);
  }

  /**
   * Applies committed entries this node persisted in earlier Readies while the new ones are
   * being written: a leader's commits do not wait for its next disk write.
   */
  private applyPersisted(ready: Ready): void {
    if (ready.snapshot) return;
    const firstUnpersisted = ready.entries[0]?.index ?? Number.MAX_SAFE_INTEGER;
    for (const entry of ready.committedEntries) {
      if (entry.index >= firstUnpersisted) return;
      this.applyEntry(entry);
    }
  }

  private apply(ready: Ready): void {
    if (ready.snapshot) {
      this.options.stateMachine.restore(ready.snapshot.data);
      this.appliedIndex = ready.snapshot.meta.index;
      this.options.logger.info(`node ${this.options.id} installed snapshot at index ${this.appliedIndex}`);
    }
    for (const entry of ready.committedEntries) this.applyEntry(entry);
    for (const read of ready.readStates) {
      const waiter = this.reads.get(read.requestId);
      if (waiter) waiter.index = read.index;
    }
    this.releaseReads();
  }

  private applyEntry(entry: Entry): void {
    if (entry.index <= this.appliedIndex) return;
    const result = this.options.stateMachine.apply(entry);
    this.appliedIndex = entry.index;
    const waiter = this.proposals.get(entry.index);
    if (!waiter) return;
    this.proposals.delete(entry.index);
    if (waiter.term === entry.term) {
      this.metrics.commitLatency.observe((performance.now() - waiter.startedMs) / 1000);
      this.metrics.proposals.inc({ outcome: 'committed' });
      waiter.resolve(result);
    } else {
      // Another leader's entry took this index: ours was dropped and will never commit.
      this.metrics.proposals.inc({ outcome: 'superseded' });
      waiter.reject(this.notLeader(this.core?.leader ?? NO_NODE));
    }
  }

  private releaseReads(): void {
    for (const [requestId, waiter] of this.reads) {
      if (waiter.index === 0 || waiter.index > this.appliedIndex) continue;
      this.reads.delete(requestId);
      waiter.resolve();
    }
  }

  private async maybeSnapshot(core: RaftCore): Promise<void> {
    const snapshotIndex = core.log.snapshot().meta.index;
    if (this.appliedIndex - snapshotIndex < this.snapshotEveryEntries) return;
    const index = this.appliedIndex;
    const data = this.options.stateMachine.snapshot();
    // Durable first: the log forgets the covered entries only once the snapshot is on disk.
    await this.options.storage.saveSnapshot({ meta: { index, term: core.log.term(index)! }, data });
    core.compact(index, data);
    this.options.logger.info(`node ${this.options.id} compacted its log to index ${index}`);
  }

  private publishStatus(): void {
    const core = this.core!;
    this.metrics.term.set(core.term);
    this.metrics.commitIndex.set(core.log.committed);
    this.metrics.appliedIndex.set(this.appliedIndex);
    this.metrics.recovering.set(core.isRecovering ? 1 : 0);
    if (core.role !== this.lastRole) {
      this.metrics.setRole(core.role);
      if (this.lastRole === 'leader') this.failReads(this.notLeader(core.leader));
      this.lastRole = core.role;
    }
    if (core.leader !== this.lastLeader) {
      this.metrics.leaderChanges.inc();
      this.lastLeader = core.leader;
    }
  }

  /** Proposals and reads past their timeout: their outcome is unknown to the caller. */
  private expireWaiters(): void {
    const deadline = performance.now() - this.proposeTimeoutMs;
    for (const [index, waiter] of this.proposals) {
      if (waiter.startedMs > deadline) break; // Insertion order is proposal order.
      this.proposals.delete(index);
      waiter.reject(new RiffleError('REQUEST_TIMED_OUT', `proposal at index ${index} not committed within ${this.proposeTimeoutMs} ms`));
    }
    for (const [requestId, waiter] of this.reads) {
      if (waiter.startedMs > deadline) break;
      this.reads.delete(requestId);
      waiter.reject(new RiffleError('REQUEST_TIMED_OUT', 'read not confirmed in time'));
    }
  }

  private failReads(error: Error): void {
    for (const waiter of this.reads.values()) waiter.reject(error);
    this.reads.clear();
  }

  private failWaiters(error: Error): void {
    for (const waiter of this.proposals.values()) waiter.reject(error);
    this.proposals.clear();
    this.failReads(error);
  }
}
