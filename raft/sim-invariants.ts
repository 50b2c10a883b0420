// The safety properties the simulator checks after every event, from the Raft paper (figure 3)
// plus the ones Kafka's raft simulation adds:
//   - at most one leader per term;
//   - log matching: two entries with the same index and term hold the same data and follow the
//     same previous term (checked on every persisted entry, which by induction covers whole logs);
//   - leader completeness: a new leader holds every entry committed anywhere before it won;
//   - committed entries never differ between nodes, and a node's commit index never decreases;
//   - no two nodes apply different entries at one index, and their state after applying the same
//     prefix is the same (compared through the state machine's rolling hash).
// A violation throws; the simulator reports it with the seed.
import type { RaftCore } from './core.js';
import type { KvStateMachine } from './kv-state-machine.js';
import type { MemoryStorage } from './storage.js';
import type { Entry, NodeId, Ready } from './types.js';

export class InvariantViolation extends Error {
  override readonly name = 'InvariantViolation';
}

interface NodeWatch {
  commitSeen: number;
  leaderTerm: number;
  persistedCommit: number;
}

function dataKey(entry: Entry): string {
  return `${entry.kind}:${Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength).toString('latin1')}`;
}

export class InvariantChecker {
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly committed: ({ term: number; key: string } | undefined)[] = [];
  private committedMax = 0;
  private readonly entries = new Map<string, string>();
  private readonly stateHashes = new Map<number, number>();
  private readonly watches = new Map<NodeId, NodeWatch>();

  committedIndexMax(): number {
    return this.committedMax;
  }

  committedTerm(index: number): number | undefined {
    return this.committed[index]?.term;
  }

  afterStart(id: NodeId, core: RaftCore, machine: KvStateMachine, snapshotIndex: number): void {
    const persistedCommit = this.watches.get(id)?.persistedCommit ?? 0;
    this.watches.set(id, { commitSeen: snapshotIndex, leaderTerm: 0, persistedCommit });
    this.afterRestore(id, machine, snapshotIndex);
    this.afterStep(id, core);
  }

  /** The node's disk is gone: what it persisted is no longer its own history. */
  afterWipe(id: NodeId): void {
    this.watches.delete(id);
  }

  afterCrash(id: NodeId): void {
    const watch = this.watches.get(id);
    if (watch) watch.commitSeen = 0;
  }

  afterStep(id: NodeId, core: RaftCore): void {
    const watch = this.watches.get(id)!;
    if (core.role === 'leader' && watch.leaderTerm !== core.term) {
      const other = this.leaderOfTerm.get(core.term);
      if (other !== undefined && other !== id) this.fail(`two leaders in term ${core.term}: ${other} and ${id}`);
      this.leaderOfTerm.set(core.term, id);
      watch.leaderTerm = core.term;
      this.checkLeaderCompleteness(id, core);
    }
    const commit = core.log.committed;
    if (commit < watch.commitSeen) this.fail(`node ${id} commit index went back from ${watch.commitSeen} to ${commit}`);
    for (let index = watch.commitSeen + 1; index <= commit; index++) {
      const entry = core.log.entry(index);
      if (entry) this.recordCommitted(id, entry);
    }
    watch.commitSeen = commit;
  }

  afterPersist(id: NodeId, storage: MemoryStorage, ready: Ready): void {
    for (const entry of ready.entries) {
      const previousTerm = storage.term(entry.index - 1);
      const identity = `${previousTerm}|${dataKey(entry)}`;
      const key = `${entry.index}/${entry.term}`;
      const known = this.entries.get(key);
      if (known !== undefined && known !== identity) this.fail(`log matching: node ${id} holds a different entry ${key}`);
      this.entries.set(key, identity);
    }
    const watch = this.watches.get(id)!;
    if (ready.hardState) {
      if (ready.hardState.commit < watch.persistedCommit) this.fail(`node ${id} persisted commit went back to ${ready.hardState.commit}`);
      watch.persistedCommit = ready.hardState.commit;
    }
  }

  afterApply(id: NodeId, entry: Entry, stateHash: number): void {
    this.recordCommitted(id, entry);
    this.checkStateHash(id, entry.index, stateHash);
  }

  afterRestore(id: NodeId, machine: KvStateMachine, snapshotIndex: number): void {
    if (machine.appliedIndex !== snapshotIndex) this.fail(`node ${id} restored state at ${machine.appliedIndex}, snapshot says ${snapshotIndex}`);
    if (snapshotIndex > 0) this.checkStateHash(id, snapshotIndex, machine.stateHash);
  }

  private checkStateHash(id: NodeId, index: number, stateHash: number): void {
    const known = this.stateHashes.get(index);
    if (known !== undefined && known !== stateHash) this.fail(`node ${id} state after index ${index} differs from another node's`);
    this.stateHashes.set(index, stateHash);
  }

  private recordCommitted(id: NodeId, entry: Entry): void {
    const key = dataKey(entry);
    const known = this.committed[entry.index];
    if (known && (known.term !== entry.term || known.key !== key)) {
      this.fail(`node ${id} committed entry ${entry.index}/${entry.term}, but ${entry.index}/${known.term} was committed before`);
    }
    this.committed[entry.index] = { term: entry.term, key };
    this.committedMax = Math.max(this.committedMax, entry.index);
  }

  private checkLeaderCompleteness(id: NodeId, core: RaftCore): void {
    const from = core.log.snapshot().meta.index + 1;
    for (let index = from; index <= this.committedMax; index++) {
      const known = this.committed[index];
      if (known && core.log.term(index) !== known.term) {
        this.fail(`leader completeness: node ${id} leads term ${core.term} without committed entry ${index}/${known.term}`);
      }
    }
  }

  private fail(message: string): never {
    throw new InvariantViolation(message);
  }
}
