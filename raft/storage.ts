// The durable home of a node's Raft state, and the in-memory reference implementation that the
// tests and the simulator use. The core never reads storage: the driver writes each Ready here and
// reads everything back once, at start-up (see raft-log.ts for why).
//
// Contract (every implementation, checked by test/raft/storage.test.ts):
//  - save() is atomic and durable when its promise resolves: after a crash, either all of the
//    update is visible or none of it. Order inside one save: the snapshot (if any) replaces the
//    whole log; then entries replace every stored entry at or after entries[0].index; then the
//    hard state is set.
//  - Entries passed in must continue the stored log: entries[0].index <= lastIndex + 1 and
//    > snapshot index. Violations throw an AssertionError (a driver bug), never corrupt data.
//  - saveSnapshot() durably records a local snapshot and may drop the entries it covers; entries
//    after it stay. It never moves backwards (an older snapshot is ignored).
//  - load() returns the hard state, the latest snapshot, and the entries after the snapshot, in
//    order and contiguous; hardState.commit never exceeds the last index.
//  - Buffers handed to save() are owned by the storage afterwards; callers must not mutate them.
//    Buffers returned by load() belong to the caller.
//  - A storage whose disk is damaged (checksum mismatch) fails load() with a StorageCorruptError
//    naming the file; it never returns damaged data.
import { assert } from '../src/util/assert.js';
import { EMPTY_HARD_STATE, EMPTY_SNAPSHOT, type Entry, type HardState, type InitialState, type Snapshot } from './types.js';

export interface StorageUpdate {
  readonly hardState?: HardState;
  readonly entries: readonly Entry[];
  readonly snapshot?: Snapshot;
}

export interface Storage {
  load(): Promise<InitialState>;
  save(update: StorageUpdate): Promise<void>;
  saveSnapshot(snapshot: Snapshot): Promise<void>;
  close(): Promise<void>;
}

export class StorageCorruptError extends Error {
  override readonly name = 'StorageCorruptError';
}

/** Synchronous in-memory storage: everything saved is "durable" (it survives simulated crashes). */
export class MemoryStorage implements Storage {
  private hardState: HardState = EMPTY_HARD_STATE;
  private snapshot: Snapshot = EMPTY_SNAPSHOT;
  private entries: Entry[] = [];

  async load(): Promise<InitialState> {
    return this.loadSync();
  }

  async save(update: StorageUpdate): Promise<void> {
    this.saveSync(update);
  }

  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    this.saveSnapshotSync(snapshot);
  }

  async close(): Promise<void> {}

  loadSync(): InitialState {
    return { hardState: this.hardState, snapshot: this.snapshot, entries: [...this.entries] };
  }

  saveSync(update: StorageUpdate): void {
    if (update.snapshot) {
      assert(update.snapshot.meta.index > this.snapshot.meta.index, 'received snapshot older than the stored one');
      this.snapshot = update.snapshot;
      this.entries = [];
    }
    if (update.entries.length > 0) this.appendEntries(update.entries);
    if (update.hardState) this.hardState = update.hardState;
    assert(this.hardState.commit <= this.lastIndex(), () => `stored commit ${this.hardState.commit} beyond last index ${this.lastIndex()}`);
  }

  saveSnapshotSync(snapshot: Snapshot): void {
    if (snapshot.meta.index <= this.snapshot.meta.index) return;
    assert(snapshot.meta.index <= this.lastIndex(), 'local snapshot beyond the stored log');
    this.entries = this.entries.filter((e) => e.index > snapshot.meta.index);
    this.snapshot = snapshot;
  }

  lastIndex(): number {
    return this.snapshot.meta.index + this.entries.length;
  }

  /** The stored term at `index` (undefined when compacted or absent); for invariant checks. */
  term(index: number): number | undefined {
    if (index === this.snapshot.meta.index) return this.snapshot.meta.term;
    if (index < this.snapshot.meta.index || index > this.lastIndex()) return undefined;
    return this.entries[index - this.snapshot.meta.index - 1]!.term;
  }

  private appendEntries(entries: readonly Entry[]): void {
    const first = entries[0]!.index;
    assert(first > this.snapshot.meta.index && first <= this.lastIndex() + 1, () => `entries at ${first} do not continue the stored log (snapshot ${this.snapshot.meta.index}, last ${this.lastIndex()})`);
    this.entries.length = first - this.snapshot.meta.index - 1;
    for (const entry of entries) this.entries.push(entry);
  }
}
