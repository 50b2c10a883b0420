// Raft storage on classic-level (LevelDB): one database per node under <dir>/raft-db, and
// snapshot files under <dir>/snapshots. Implements the contract in storage.ts.
//
// Keys: "h" hard state; "s" pointer to the current snapshot file (index, term, crc32c of the
// file); "e" + 8-byte big-endian index for each entry. Every save() is one LevelDB batch written
// with sync: true, so entries and hard state land together or not at all. A snapshot file is
// written to a temporary name, fsynced, renamed and its directory fsynced BEFORE the batch that
// points at it; a crash in between leaves an unreferenced file that the next open removes.
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { assert } from '../src/util/assert.js';
import { crc32c } from '../src/util/crc32c.js';
import { CodecError, decodeEntry, decodeHardState, decodeSnapshotFile, encodeEntry, encodeHardState, encodeSnapshotFile } from './codec.js';
import { StorageCorruptError, type Storage, type StorageUpdate } from './storage.js';
import { EMPTY_HARD_STATE, EMPTY_SNAPSHOT, type Entry, type HardState, type InitialState, type Snapshot, type SnapshotMeta } from './types.js';

const HARD_STATE_KEY = Buffer.from('h');
const SNAPSHOT_KEY = Buffer.from('s');
const ENTRY_PREFIX = 0x65; // "e"
/** Entries a single load() reads; a longer log means compaction is not running. */
export const LOAD_ENTRIES_MAX = 10_000_000;

type BatchOperation = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

function entryKey(index: number): Buffer {
  const key = Buffer.allocUnsafe(9);
  key[0] = ENTRY_PREFIX;
  key.writeBigUInt64BE(BigInt(index), 1);
  return key;
}

interface SnapshotPointer extends SnapshotMeta {
  readonly file: string;
  readonly crc: number;
}

function encodePointer(pointer: SnapshotPointer): Buffer {
  return Buffer.from(JSON.stringify(pointer));
}

function snapshotFileName(meta: SnapshotMeta): string {
  return `snapshot-${meta.index}-${meta.term}.snap`;
}

export class LevelStorage implements Storage {
  private readonly db: ClassicLevel<Buffer, Buffer>;
  private readonly snapshotDir: string;
  private snapshotMeta: SnapshotMeta = EMPTY_SNAPSHOT.meta;
  private lastIndex = 0;
  private loaded = false;
  private backgroundClear: Promise<void> = Promise.resolve();

  private constructor(dir: string) {
    this.db = new ClassicLevel<Buffer, Buffer>(path.join(dir, 'raft-db'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    this.snapshotDir = path.join(dir, 'snapshots');
  }

  static async open(dir: string): Promise<LevelStorage> {
    const storage = new LevelStorage(dir);
    await mkdir(storage.snapshotDir, { recursive: true });
    await storage.db.open();
    return storage;
  }

  async load(): Promise<InitialState> {
    const hardStateBytes = await this.db.get(HARD_STATE_KEY);
    const hardState: HardState = hardStateBytes ? this.decode(() => decodeHardState(hardStateBytes), 'hard state') : EMPTY_HARD_STATE;
    const snapshot = await this.loadSnapshot();
    const entries = await this.loadEntries(snapshot.meta.index);
    this.snapshotMeta = snapshot.meta;
    this.lastIndex = snapshot.meta.index + entries.length;
    if (hardState.commit > this.lastIndex) throw new StorageCorruptError(`stored commit ${hardState.commit} beyond last index ${this.lastIndex}`);
    this.loaded = true;
    await this.removeStaleSnapshotFiles();
    return { hardState, snapshot, entries };
  }

  async save(update: StorageUpdate): Promise<void> {
    assert(this.loaded, 'save() before load()');
    const operations: BatchOperation[] = [];
    let lastIndex = this.lastIndex;
    if (update.snapshot) {
      assert(update.snapshot.meta.index > this.snapshotMeta.index, 'received snapshot older than the stored one');
      operations.push(await this.writeSnapshotFile(update.snapshot));
      this.deleteEntries(operations, this.snapshotMeta.index + 1, lastIndex);
      lastIndex = update.snapshot.meta.index;
    }
    if (update.entries.length > 0) {
      const first = update.entries[0]!.index;
      const snapshotIndex = update.snapshot?.meta.index ?? this.snapshotMeta.index;
      assert(first > snapshotIndex && first <= lastIndex + 1, () => `entries at ${first} do not continue the stored log (snapshot ${snapshotIndex}, last ${lastIndex})`);
      this.deleteEntries(operations, first, lastIndex);
      for (const entry of update.entries) operations.push({ type: 'put', key: entryKey(entry.index), value: encodeEntry(entry) });
      lastIndex = update.entries[update.entries.length - 1]!.index;
    }
    if (update.hardState) {
      assert(update.hardState.commit <= lastIndex, () => `commit ${update.hardState!.commit} beyond last index ${lastIndex}`);
      operations.push({ type: 'put', key: HARD_STATE_KEY, value: encodeHardState(update.hardState) });
    }
    if (operations.length > 0) await this.db.batch(operations, { sync: true });
    this.lastIndex = lastIndex;
    if (update.snapshot) {
      this.snapshotMeta = update.snapshot.meta;
      await this.removeStaleSnapshotFiles();
    }
  }

  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    assert(this.loaded, 'saveSnapshot() before load()');
    if (snapshot.meta.index <= this.snapshotMeta.index) return;
    assert(snapshot.meta.index <= this.lastIndex, 'local snapshot beyond the stored log');
    await this.db.batch([await this.writeSnapshotFile(snapshot)], { sync: true });
    const coveredFrom = this.snapshotMeta.index + 1;
    this.snapshotMeta = snapshot.meta;
    await this.removeStaleSnapshotFiles();
    // The covered entries are dead once the pointer moved (load() reads only after it), so they
    // are cleared in the background instead of in one huge batch that would stall the log.
    const clearing = this.db.clear({ gte: entryKey(coveredFrom), lte: entryKey(snapshot.meta.index) });
    this.backgroundClear = this.backgroundClear.then(() => clearing).catch(() => {});
  }

  async close(): Promise<void> {
    await this.backgroundClear;
    await this.db.close();
  }

  private deleteEntries(operations: BatchOperation[], from: number, to: number): void {
    for (let index = from; index <= to; index++) operations.push({ type: 'del', key: entryKey(index) });
  }

  private decode<T>(decode: () => T, what: string): T {
    try {
      return decode();
    } catch (error) {
      if (error instanceof CodecError) throw new StorageCorruptError(`${what}: ${error.message}`);
      throw error;
    }
  }

  private async loadSnapshot(): Promise<Snapshot> {
    const pointerBytes = await this.db.get(SNAPSHOT_KEY);
    if (!pointerBytes) return EMPTY_SNAPSHOT;
    const pointer = JSON.parse(pointerBytes.toString('utf8')) as SnapshotPointer;
    const file = path.join(this.snapshotDir, pointer.file);
    const bytes = await readFile(file);
    if (crc32c(bytes) !== pointer.crc) throw new StorageCorruptError(`snapshot file ${file} does not match its recorded checksum`);
    const snapshot = this.decode(() => decodeSnapshotFile(bytes), `snapshot file ${file}`);
    if (snapshot.meta.index !== pointer.index || snapshot.meta.term !== pointer.term) throw new StorageCorruptError(`snapshot file ${file} holds the wrong snapshot`);
    return snapshot;
  }

  private async loadEntries(snapshotIndex: number): Promise<Entry[]> {
    const entries: Entry[] = [];
    const range = { gt: entryKey(snapshotIndex), lt: entryKey(Number.MAX_SAFE_INTEGER), limit: LOAD_ENTRIES_MAX };
    for await (const [key, value] of this.db.iterator(range)) {
      const entry = this.decode(() => decodeEntry(value), `entry ${key.toString('hex')}`);
      const expected = snapshotIndex + entries.length + 1;
      if (entry.index !== expected) throw new StorageCorruptError(`log has entry ${entry.index} where ${expected} was expected`);
      entries.push(entry);
    }
    return entries;
  }

  /** Writes a snapshot file durably; returns the batch operation that makes it current. */
  private async writeSnapshotFile(snapshot: Snapshot): Promise<BatchOperation> {
    const bytes = encodeSnapshotFile(snapshot);
    const name = snapshotFileName(snapshot.meta);
    const temporary = path.join(this.snapshotDir, `${name}.tmp`);
    const handle = await open(temporary, 'w');
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path.join(this.snapshotDir, name));
    const dir = await open(this.snapshotDir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    const pointer: SnapshotPointer = { index: snapshot.meta.index, term: snapshot.meta.term, file: name, crc: crc32c(bytes) };
    return { type: 'put', key: SNAPSHOT_KEY, value: encodePointer(pointer) };
  }

  /** Removes snapshot files other than the current one (older ones, and orphans of a crash). */
  private async removeStaleSnapshotFiles(): Promise<void> {
    const current = this.snapshotMeta.index > 0 ? snapshotFileName(this.snapshotMeta) : '';
    for (const name of await readdir(this.snapshotDir)) {
      if (name !== current) await rm(path.join(this.snapshotDir, name), { force: true });
    }
  }
}
