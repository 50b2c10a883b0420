// The core's view of the replicated log: the latest snapshot, the entries after it, and the
// commit, applied and stable (persisted) positions.
//
// Departure from etcd-io/raft: the whole uncompacted tail lives in memory (the metadata log is
// small and compacted by snapshots), so the core never reads storage; storage is the durable
// copy that the driver writes from Ready and reads back only at start-up.
import { assert } from '../src/util/assert.js';
import type { Entry, InitialState, Snapshot } from './types.js';

/** Bytes an entry costs beyond its payload, for message and in-flight limits. */
export const ENTRY_OVERHEAD_BYTES = 24;

export function entryBytes(entry: Entry): number {
  return entry.data.byteLength + ENTRY_OVERHEAD_BYTES;
}

export class RaftLog {
  private snapshotValue: Snapshot;
  /** entries[i].index === snapshot.meta.index + 1 + i */
  private entries: Entry[];
  committed: number;
  applied: number;
  /** Entries up to here have been persisted (handed out in a Ready that was advanced). */
  stableIndex: number;
  /** A snapshot received from the leader and not yet persisted. */
  unstableSnapshot: Snapshot | undefined;

  constructor(initial: InitialState) {
    this.snapshotValue = initial.snapshot;
    this.entries = [...initial.entries];
    initial.entries.forEach((entry, i) => {
      assert(entry.index === initial.snapshot.meta.index + 1 + i, () => `initial entries not contiguous at ${entry.index}`);
    });
    this.stableIndex = this.lastIndex();
    this.committed = Math.max(initial.hardState.commit, initial.snapshot.meta.index);
    assert(this.committed <= this.lastIndex(), () => `commit ${this.committed} beyond last index ${this.lastIndex()}`);
    this.applied = initial.snapshot.meta.index;
    this.unstableSnapshot = undefined;
  }

  snapshot(): Snapshot {
    return this.snapshotValue;
  }

  firstIndex(): number {
    return this.snapshotValue.meta.index + 1;
  }

  lastIndex(): number {
    return this.snapshotValue.meta.index + this.entries.length;
  }

  lastTerm(): number {
    return this.term(this.lastIndex())!;
  }

  /** The term of the entry at `index`, or undefined when it is compacted away or not yet there. */
  term(index: number): number | undefined {
    const snapshotIndex = this.snapshotValue.meta.index;
    if (index === snapshotIndex) return this.snapshotValue.meta.term;
    if (index < snapshotIndex || index > this.lastIndex()) return undefined;
    return this.entries[index - snapshotIndex - 1]!.term;
  }

  entry(index: number): Entry | undefined {
    if (index < this.firstIndex() || index > this.lastIndex()) return undefined;
    return this.entries[index - this.firstIndex()];
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft's election restriction: is a candidate's log at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /** Entries [from, to) limited to `maxBytes`, but always at least one entry when any exist. */
  slice(from: number, to: number, maxBytes: number): Entry[] {
    assert(from >= this.firstIndex() && to <= this.lastIndex() + 1, () => `slice [${from}, ${to}) outside [${this.firstIndex()}, ${this.lastIndex() + 1})`);
    const result: Entry[] = [];
    let bytes = 0;
    for (let index = from; index < to; index++) {
      const entry = this.entries[index - this.firstIndex()]!;
      bytes += entryBytes(entry);
      if (result.length > 0 && bytes > maxBytes) break;
      result.push(entry);
    }
    return result;
  }

  /** A leader appends its own new entries. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    assert(entries[0]!.index === this.lastIndex() + 1, () => `append at ${entries[0]!.index} after last ${this.lastIndex()}`);
    for (const entry of entries) this.entries.push(entry);
  }

  /**
   * A follower accepts the leader's entries after prevIndex if its log matches there: returns the
   * index of the last new entry, or undefined when the logs do not match at prevIndex.
   */
  maybeAppend(prevIndex: number, prevTerm: number, commit: number, entries: readonly Entry[]): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = prevIndex + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      assert(conflict > this.committed, () => `entry ${conflict} conflicts with committed entries up to ${this.committed}`);
      this.truncateAndAppend(entries.slice(conflict - (prevIndex + 1)));
    }
    this.commitTo(Math.min(commit, lastNew));
    return lastNew;
  }

  /** The first entry that is new or differs in term from ours, or 0. */
  private findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  private truncateAndAppend(entries: readonly Entry[]): void {
    const first = entries[0]!.index;
    assert(first > this.snapshotValue.meta.index && first <= this.lastIndex() + 1, () => `truncate at ${first} outside log`);
    this.entries.length = first - this.firstIndex();
    for (const entry of entries) this.entries.push(entry);
    this.stableIndex = Math.min(this.stableIndex, first - 1);
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), () => `commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
  }

  unstableEntries(): Entry[] {
    return this.entries.slice(this.stableIndex + 1 - this.firstIndex());
  }

  /** Committed entries not yet handed out for applying. */
  committedEntriesAfter(applied: number): Entry[] {
    const from = Math.max(applied + 1, this.firstIndex());
    if (from > this.committed) return [];
    return this.entries.slice(from - this.firstIndex(), this.committed + 1 - this.firstIndex());
  }

  /** Marks entries up to `index` persisted, unless they were replaced meanwhile. */
  stableTo(index: number, term: number): void {
    if (this.matchTerm(index, term) && index > this.stableIndex) this.stableIndex = index;
  }

  appliedTo(index: number): void {
    assert(index <= this.committed, () => `applied ${index} beyond commit ${this.committed}`);
    if (index > this.applied) this.applied = index;
  }

  /** Replaces the whole log with a snapshot received from the leader. */
  restore(snapshot: Snapshot): void {
    assert(snapshot.meta.index > this.committed, () => `restore of snapshot ${snapshot.meta.index} at commit ${this.committed}`);
    this.snapshotValue = snapshot;
    this.entries = [];
    this.committed = snapshot.meta.index;
    this.stableIndex = snapshot.meta.index;
    this.unstableSnapshot = snapshot;
  }

  /**
   * Drops entries up to `index`, which the given state-machine snapshot covers. The driver may
   * have applied further than its last advance() reported, so `index` need only be committed.
   */
  compact(index: number, data: Uint8Array): Snapshot {
    assert(index <= this.committed, () => `compact to ${index} beyond commit ${this.committed}`);
    assert(index > this.snapshotValue.meta.index, () => `compact to ${index} at or below snapshot ${this.snapshotValue.meta.index}`);
    assert(index <= this.stableIndex, () => `compact to ${index} beyond stable ${this.stableIndex}`);
    const snapshot: Snapshot = { meta: { index, term: this.term(index)! }, data };
    this.entries = this.entries.slice(index - this.firstIndex() + 1);
    this.snapshotValue = snapshot;
    this.applied = Math.max(this.applied, index);
    return snapshot;
  }
}
