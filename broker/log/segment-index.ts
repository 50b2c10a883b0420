// The two sparse indexes of a segment, held in memory and persisted to their files in bulk (on
// roll, flush and close) rather than per entry. Recovery rebuilds whatever a crash left unwritten
// by scanning batch headers, so an index file is only ever a shortcut, never the truth.
//
//   .index      8-byte entries: relative offset int32, file position int32 (Kafka's layout)
//   .timeindex 12-byte entries: max timestamp so far int64, relative offset int32 (Kafka's layout)
//
// Departure from Kafka: the offset index maps a batch's base offset (Kafka: its last offset) to
// its position; the time index entry's offset is the base offset of the batch that first reached
// that timestamp. Both are exact starting points for a forward scan.
import * as fs from 'node:fs';
import { assert } from '../../src/util/assert.js';

/** Kafka's default segment.index.bytes (10 MiB) of 8-byte entries; a full index rolls the segment. */
export const INDEX_ENTRIES_MAX = (10 * 1024 * 1024) / 8;
const OFFSET_ENTRY_BYTES = 8;
const TIME_ENTRY_BYTES = 12;
const INITIAL_ENTRIES = 64;
const TWO_POW_32 = 0x1_0000_0000;

/** Appends to a file the entries `from..count`, after cutting it to `from` entries. */
function persistEntries(path: string, entryBytes: number, from: number, encode: (buffer: Buffer) => void, bytes: number): void {
  const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  try {
    fs.ftruncateSync(fd, from * entryBytes);
    if (bytes > 0) {
      const buffer = Buffer.allocUnsafe(bytes);
      encode(buffer);
      let written = 0;
      while (written < bytes) written += fs.writeSync(fd, buffer, written, bytes - written, from * entryBytes + written);
    }
  } finally {
    fs.closeSync(fd);
  }
}

function readFileOrNull(path: string): Buffer | null {
  try {
    return fs.readFileSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Sparse map from relative offset to file position, strictly increasing in both. */
export class OffsetIndex {
  private relativeOffsets = new Int32Array(INITIAL_ENTRIES);
  private positions = new Int32Array(INITIAL_ENTRIES);
  private entries = 0;
  /** Entries already in the file; entries past it are written by persist(). */
  private persisted = 0;
  /** The file holds exactly the `persisted` entries (loaded or written, and not cut since). */
  private fileExact = false;

  constructor(readonly path: string) {}

  get count(): number {
    return this.entries;
  }

  get isFull(): boolean {
    return this.entries >= INDEX_ENTRIES_MAX;
  }

  get lastPosition(): number {
    return this.entries === 0 ? 0 : this.positions[this.entries - 1]!;
  }

  append(relativeOffset: number, position: number): void {
    const last = this.entries - 1;
    assert(last < 0 || (relativeOffset > this.relativeOffsets[last]! && position > this.positions[last]!), () => `offset index entry ${relativeOffset}@${position} is not increasing`);
    assert(this.entries < INDEX_ENTRIES_MAX, 'offset index full');
    if (this.entries === this.positions.length) this.grow();
    this.relativeOffsets[this.entries] = relativeOffset;
    this.positions[this.entries] = position;
    this.entries++;
  }

  /** Position of the last indexed batch starting at or before `relativeOffset`; 0 if none. */
  lookup(relativeOffset: number): number {
    let low = 0;
    let high = this.entries - 1;
    let found = -1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      if (this.relativeOffsets[middle]! <= relativeOffset) {
        found = middle;
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    return found < 0 ? 0 : this.positions[found]!;
  }

  /** Drops entries for batches at or past `position`. */
  truncateToPosition(position: number): void {
    while (this.entries > 0 && this.positions[this.entries - 1]! >= position) this.entries--;
    if (this.entries < this.persisted) this.fileExact = false;
    this.persisted = Math.min(this.persisted, this.entries);
  }

  clear(): void {
    this.entries = 0;
    this.persisted = 0;
    this.fileExact = false;
  }

  /** Writes the entries the file lacks; nothing at all (not even an open) when it has them all. */
  persist(): void {
    if (this.fileExact && this.persisted === this.entries) return;
    const from = this.persisted;
    persistEntries(this.path, OFFSET_ENTRY_BYTES, from, (buffer) => {
      for (let index = from; index < this.entries; index++) {
        buffer.writeInt32BE(this.relativeOffsets[index]!, (index - from) * OFFSET_ENTRY_BYTES);
        buffer.writeInt32BE(this.positions[index]!, (index - from) * OFFSET_ENTRY_BYTES + 4);
      }
    }, (this.entries - from) * OFFSET_ENTRY_BYTES);
    this.persisted = this.entries;
    this.fileExact = true;
  }

  /**
   * Loads the file; false (and an empty index) when it is missing or inconsistent with a segment
   * of `segmentBytes` bytes and `offsetSpan` offsets.
   */
  load(segmentBytes: number, offsetSpan: number): boolean {
    this.clear();
    const file = readFileOrNull(this.path);
    if (file === null || file.length % OFFSET_ENTRY_BYTES !== 0 || file.length / OFFSET_ENTRY_BYTES > INDEX_ENTRIES_MAX) return false;
    for (let at = 0; at < file.length; at += OFFSET_ENTRY_BYTES) {
      const relativeOffset = file.readInt32BE(at);
      const position = file.readInt32BE(at + 4);
      const last = this.entries - 1;
      const increasing = last < 0 || (relativeOffset > this.relativeOffsets[last]! && position > this.positions[last]!);
      if (!increasing || relativeOffset <= 0 || relativeOffset >= offsetSpan || position <= 0 || position >= segmentBytes) {
        this.clear();
        return false;
      }
      this.append(relativeOffset, position);
    }
    this.persisted = this.entries;
    this.fileExact = true;
    return true;
  }

  private grow(): void {
    const capacity = Math.min(INDEX_ENTRIES_MAX, this.positions.length * 2);
    const relativeOffsets = new Int32Array(capacity);
    const positions = new Int32Array(capacity);
    relativeOffsets.set(this.relativeOffsets);
    positions.set(this.positions);
    this.relativeOffsets = relativeOffsets;
    this.positions = positions;
  }
}

/** Sparse map from max timestamp so far to the relative offset of the batch that reached it. */
export class TimeIndex {
  private timestamps: number[] = [];
  private relativeOffsets: number[] = [];
  private persisted = 0;
  /** The file holds exactly the `persisted` entries (loaded or written, and not cut since). */
  private fileExact = false;

  constructor(readonly path: string) {}

  get count(): number {
    return this.timestamps.length;
  }

  get lastTimestamp(): number {
    return this.timestamps.length === 0 ? -1 : this.timestamps[this.timestamps.length - 1]!;
  }

  get lastRelativeOffset(): number {
    return this.relativeOffsets.length === 0 ? -1 : this.relativeOffsets[this.relativeOffsets.length - 1]!;
  }

  /** Adds an entry if the timestamp is newer than the last one (Kafka's maybeAppend). */
  maybeAppend(timestamp: number, relativeOffset: number): void {
    if (this.timestamps.length > 0 && timestamp <= this.lastTimestamp) return;
    assert(relativeOffset >= this.lastRelativeOffset, () => `time index offset ${relativeOffset} goes backwards`);
    assert(this.timestamps.length < INDEX_ENTRIES_MAX, 'time index full');
    this.timestamps.push(timestamp);
    this.relativeOffsets.push(relativeOffset);
  }

  /** The entry with the largest timestamp at or below `timestamp`, or null. */
  lookup(timestamp: number): { timestamp: number; relativeOffset: number } | null {
    let low = 0;
    let high = this.timestamps.length - 1;
    let found = -1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      if (this.timestamps[middle]! <= timestamp) {
        found = middle;
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    return found < 0 ? null : { timestamp: this.timestamps[found]!, relativeOffset: this.relativeOffsets[found]! };
  }

  /** Drops entries pointing at relative offsets at or past `relativeOffset`. */
  truncateToRelativeOffset(relativeOffset: number): void {
    while (this.relativeOffsets.length > 0 && this.lastRelativeOffset >= relativeOffset) {
      this.relativeOffsets.pop();
      this.timestamps.pop();
    }
    if (this.timestamps.length < this.persisted) this.fileExact = false;
    this.persisted = Math.min(this.persisted, this.timestamps.length);
  }

  clear(): void {
    this.timestamps = [];
    this.relativeOffsets = [];
    this.persisted = 0;
    this.fileExact = false;
  }

  /** Writes the entries the file lacks; nothing at all (not even an open) when it has them all. */
  persist(): void {
    if (this.fileExact && this.persisted === this.timestamps.length) return;
    const from = this.persisted;
    persistEntries(this.path, TIME_ENTRY_BYTES, from, (buffer) => {
      for (let index = from; index < this.timestamps.length; index++) {
        const at = (index - from) * TIME_ENTRY_BYTES;
        const timestamp = this.timestamps[index]!;
        const high = Math.floor(timestamp / TWO_POW_32);
        buffer.writeInt32BE(high, at);
        buffer.writeUInt32BE(timestamp - high * TWO_POW_32, at + 4);
        buffer.writeInt32BE(this.relativeOffsets[index]!, at + 8);
      }
    }, (this.timestamps.length - from) * TIME_ENTRY_BYTES);
    this.persisted = this.timestamps.length;
    this.fileExact = true;
  }

  /** Loads the file; false (and an empty index) when it is missing or inconsistent. */
  load(offsetSpan: number): boolean {
    this.clear();
    const file = readFileOrNull(this.path);
    if (file === null || file.length % TIME_ENTRY_BYTES !== 0 || file.length / TIME_ENTRY_BYTES > INDEX_ENTRIES_MAX) return false;
    for (let at = 0; at < file.length; at += TIME_ENTRY_BYTES) {
      const timestamp = file.readInt32BE(at) * TWO_POW_32 + file.readUInt32BE(at + 4);
      const relativeOffset = file.readInt32BE(at + 8);
      const increasing = this.timestamps.length === 0 || (timestamp > this.lastTimestamp && relativeOffset >= this.lastRelativeOffset);
      if (!increasing || relativeOffset < 0 || relativeOffset >= offsetSpan) {
        this.clear();
        return false;
      }
      this.timestamps.push(timestamp);
      this.relativeOffsets.push(relativeOffset);
    }
    this.persisted = this.timestamps.length;
    this.fileExact = true;
    return true;
  }
}
