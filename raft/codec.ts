// Binary encodings shared by the disk (level-storage.ts) and the wire (transport.ts): entries,
// entry batches, hard state and snapshot files. Decoding checks lengths and ranges and throws a
// CodecError; interpreting the decoded values is the caller's business.
//
// Layouts (big-endian; indexes and terms as 48-bit unsigned integers):
//   entry       index:6 term:6 kind:1 dataLength:4 data
//   batch       count:4 entry*
//   hard state  term:6 vote:4 commit:6
//   snapshot    magic "RFSN":4 version:1 index:6 term:6 dataLength:4 data crc32c:4 (over all before)
import { crc32c } from '../src/util/crc32c.js';
import type { Entry, EntryKind, HardState, Snapshot } from './types.js';

export class CodecError extends Error {
  override readonly name = 'CodecError';
}

const ENTRY_HEADER_BYTES = 17;
const KINDS: readonly EntryKind[] = ['normal', 'noop'];
/** One entry's payload; larger proposals are refused before they reach the log. */
export const ENTRY_DATA_BYTES_MAX = 64 * 1024 * 1024;
/** Entries in one encoded batch. */
export const BATCH_ENTRIES_MAX = 1_000_000;
const SNAPSHOT_MAGIC = 0x52_46_53_4e; // "RFSN"
const SNAPSHOT_VERSION = 1;
const SNAPSHOT_HEADER_BYTES = 21;

function toBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

export function encodedEntryBytes(entry: Entry): number {
  return ENTRY_HEADER_BYTES + entry.data.byteLength;
}

function writeEntry(target: Buffer, offset: number, entry: Entry): number {
  target.writeUIntBE(entry.index, offset, 6);
  target.writeUIntBE(entry.term, offset + 6, 6);
  target.writeUInt8(KINDS.indexOf(entry.kind), offset + 12);
  target.writeUInt32BE(entry.data.byteLength, offset + 13);
  toBuffer(entry.data).copy(target, offset + ENTRY_HEADER_BYTES);
  return offset + encodedEntryBytes(entry);
}

function readEntry(source: Buffer, offset: number): { entry: Entry; next: number } {
  if (source.length - offset < ENTRY_HEADER_BYTES) throw new CodecError(`entry header truncated at ${offset}`);
  const index = source.readUIntBE(offset, 6);
  const term = source.readUIntBE(offset + 6, 6);
  const kind = KINDS[source.readUInt8(offset + 12)];
  const length = source.readUInt32BE(offset + 13);
  if (kind === undefined) throw new CodecError(`unknown entry kind at ${offset}`);
  if (length > ENTRY_DATA_BYTES_MAX || source.length - offset - ENTRY_HEADER_BYTES < length) throw new CodecError(`entry data truncated at ${offset}`);
  const start = offset + ENTRY_HEADER_BYTES;
  // The entry shares the source's memory; the caller owns the source buffer from here on.
  return { entry: { index, term, kind, data: source.subarray(start, start + length) }, next: start + length };
}

export function encodeEntry(entry: Entry): Buffer {
  const out = Buffer.allocUnsafe(encodedEntryBytes(entry));
  writeEntry(out, 0, entry);
  return out;
}

export function decodeEntry(source: Buffer): Entry {
  const { entry, next } = readEntry(source, 0);
  if (next !== source.length) throw new CodecError(`${source.length - next} trailing bytes after entry`);
  return entry;
}

export function encodeEntries(entries: readonly Entry[]): Buffer {
  let size = 4;
  for (const entry of entries) size += encodedEntryBytes(entry);
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32BE(entries.length, 0);
  let offset = 4;
  for (const entry of entries) offset = writeEntry(out, offset, entry);
  return out;
}

export function decodeEntries(source: Buffer): Entry[] {
  if (source.length < 4) throw new CodecError('entry batch truncated');
  const count = source.readUInt32BE(0);
  if (count > BATCH_ENTRIES_MAX) throw new CodecError(`entry batch of ${count} entries exceeds ${BATCH_ENTRIES_MAX}`);
  const entries: Entry[] = [];
  let offset = 4;
  for (let i = 0; i < count; i++) {
    const { entry, next } = readEntry(source, offset);
    if (entries.length > 0 && entry.index !== entries[entries.length - 1]!.index + 1) throw new CodecError('entry batch not contiguous');
    entries.push(entry);
    offset = next;
  }
  if (offset !== source.length) throw new CodecError(`${source.length - offset} trailing bytes after entry batch`);
  return entries;
}

/** 16 bytes (term, vote, commit), and a 17th (1) only while the node is recovering. */
export function encodeHardState(state: HardState): Buffer {
  const out = Buffer.allocUnsafe(state.recovering ? 17 : 16);
  out.writeUIntBE(state.term, 0, 6);
  out.writeUInt32BE(state.vote, 6);
  out.writeUIntBE(state.commit, 10, 6);
  if (state.recovering) out.writeUInt8(1, 16);
  return out;
}

export function decodeHardState(source: Buffer): HardState {
  if (source.length !== 16 && source.length !== 17) throw new CodecError(`hard state of ${source.length} bytes, expected 16 or 17`);
  const state = { term: source.readUIntBE(0, 6), vote: source.readUInt32BE(6), commit: source.readUIntBE(10, 6) };
  if (source.length === 16) return state;
  if (source.readUInt8(16) !== 1) throw new CodecError(`hard state flag ${source.readUInt8(16)}, expected 1`);
  return { ...state, recovering: true };
}

export function encodeSnapshotFile(snapshot: Snapshot): Buffer {
  const out = Buffer.allocUnsafe(SNAPSHOT_HEADER_BYTES + snapshot.data.byteLength + 4);
  out.writeUInt32BE(SNAPSHOT_MAGIC, 0);
  out.writeUInt8(SNAPSHOT_VERSION, 4);
  out.writeUIntBE(snapshot.meta.index, 5, 6);
  out.writeUIntBE(snapshot.meta.term, 11, 6);
  out.writeUInt32BE(snapshot.data.byteLength, 17);
  toBuffer(snapshot.data).copy(out, SNAPSHOT_HEADER_BYTES);
  out.writeUInt32BE(crc32c(out.subarray(0, out.length - 4)), out.length - 4);
  return out;
}

export function decodeSnapshotFile(source: Buffer): Snapshot {
  if (source.length < SNAPSHOT_HEADER_BYTES + 4) throw new CodecError('snapshot file truncated');
  if (source.readUInt32BE(0) !== SNAPSHOT_MAGIC) throw new CodecError('snapshot file has a bad magic number');
  if (source.readUInt8(4) !== SNAPSHOT_VERSION) throw new CodecError(`snapshot version ${source.readUInt8(4)} unsupported`);
  const length = source.readUInt32BE(17);
  if (source.length !== SNAPSHOT_HEADER_BYTES + length + 4) throw new CodecError('snapshot file length mismatch');
  const expected = source.readUInt32BE(source.length - 4);
  if (crc32c(source.subarray(0, source.length - 4)) !== expected) throw new CodecError('snapshot file checksum mismatch');
  const meta = { index: source.readUIntBE(5, 6), term: source.readUIntBE(11, 6) };
  return { meta, data: source.subarray(SNAPSHOT_HEADER_BYTES, SNAPSHOT_HEADER_BYTES + length) };
}
