// Producer-state snapshots (Kafka's <offset>.snapshot files): the idempotent producers of one
// partition replica as of a log offset, so a restarted broker (or a replica whose state was
// forgotten) replays only the batches after the newest snapshot instead of a day of its log.
// Without them, the first produce after a restart read every batch of the producer expiration
// window (24 h) synchronously: 260 MB of log held the event loop for 0.5-0.8 s, per partition.
//
// A snapshot holds the offset it reflects (every batch below it), the leader epoch of the batch
// just below that offset, whether the state may have forgotten producers, and each producer's
// epoch, last activity and last five batches, in least recently active order. Binary, big-endian,
// ending in a CRC-32C of everything before it. Files are written beside the segments, to a
// temporary name and renamed, and not fsynced: a snapshot lost or torn in a crash is only a
// longer replay. A snapshot is used only when the log still holds its offset and has the same
// leader epoch just below it (KIP-101: logs that agree on the epoch of a batch agree up to it),
// so one that outlived a truncation of its log, or a crash that cut the unflushed tail, is
// never believed; such a snapshot is deleted when met. The newest few are kept.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32c } from '../src/util/crc32c.js';

export const PRODUCER_SNAPSHOT_SUFFIX = '.snapshot';
/** Snapshots kept per partition: the newest, and older ones for when a truncation makes it unusable. */
export const PRODUCER_SNAPSHOTS_KEPT = 3;
/** Bytes appended to a replica between two snapshots: what a rebuild replays at most (about 0.15 s of cold reads here). */
export const PRODUCER_SNAPSHOT_INTERVAL_BYTES = 64 * 1024 * 1024;

const MAGIC = 0x52505353; // "RPSS"
const VERSION = 1;
const HEADER_BYTES = 4 + 2 + 8 + 4 + 1 + 4;
const BATCH_BYTES = 4 + 4 + 8 + 8;
const ENTRY_FIXED_BYTES = 8 + 4 + 8 + 1;
const CRC_BYTES = 4;
const NAME_DIGITS = 20;

export interface SnapshotBatch {
  firstSequence: number;
  lastSequence: number;
  firstOffset: number;
  lastOffset: number;
}

export interface SnapshotEntry {
  producerId: number;
  epoch: number;
  lastActivityMs: number;
  batches: SnapshotBatch[];
}

export interface ProducerSnapshot {
  /** The state reflects every batch below this offset. */
  endOffset: number;
  /** Leader epoch of the batch holding endOffset - 1 (-1 for none). */
  lastEpoch: number;
  mayHaveForgotten: boolean;
  /** Least recently active first. */
  entries: SnapshotEntry[];
}

/** What snapshots check a log against. */
export interface SnapshotLog {
  readonly logStartOffset: number;
  readonly logEndOffset: number;
  /** The leader epoch of the batch holding `offset - 1`, -1 for none. */
  epochBefore(offset: number): number;
}

export function encodeProducerSnapshot(snapshot: ProducerSnapshot): Buffer {
  let size = HEADER_BYTES + CRC_BYTES;
  for (const entry of snapshot.entries) size += ENTRY_FIXED_BYTES + entry.batches.length * BATCH_BYTES;
  const buffer = Buffer.alloc(size);
  let at = buffer.writeUInt32BE(MAGIC, 0);
  at = buffer.writeUInt16BE(VERSION, at);
  at = buffer.writeBigInt64BE(BigInt(snapshot.endOffset), at);
  at = buffer.writeInt32BE(snapshot.lastEpoch, at);
  at = buffer.writeUInt8(snapshot.mayHaveForgotten ? 1 : 0, at);
  at = buffer.writeUInt32BE(snapshot.entries.length, at);
  for (const entry of snapshot.entries) {
    at = buffer.writeBigInt64BE(BigInt(entry.producerId), at);
    at = buffer.writeInt32BE(entry.epoch, at);
    at = buffer.writeBigInt64BE(BigInt(Math.trunc(entry.lastActivityMs)), at);
    at = buffer.writeUInt8(entry.batches.length, at);
    for (const batch of entry.batches) {
      at = buffer.writeInt32BE(batch.firstSequence, at);
      at = buffer.writeInt32BE(batch.lastSequence, at);
      at = buffer.writeBigInt64BE(BigInt(batch.firstOffset), at);
      at = buffer.writeBigInt64BE(BigInt(batch.lastOffset), at);
    }
  }
  buffer.writeUInt32BE(crc32c(buffer.subarray(0, at)), at);
  return buffer;
}

/** The snapshot in `bytes`; throws when they are not a whole, intact snapshot of this version. */
export function decodeProducerSnapshot(bytes: Buffer): ProducerSnapshot {
  if (bytes.length < HEADER_BYTES + CRC_BYTES) throw new Error(`snapshot of ${bytes.length} bytes is too short`);
  const body = bytes.subarray(0, bytes.length - CRC_BYTES);
  if (crc32c(body) !== bytes.readUInt32BE(body.length)) throw new Error('snapshot CRC mismatch');
  if (body.readUInt32BE(0) !== MAGIC) throw new Error('not a producer snapshot');
  const version = body.readUInt16BE(4);
  if (version !== VERSION) throw new Error(`snapshot version ${version} is not ${VERSION}`);
  const endOffset = safe(body.readBigInt64BE(6));
  const lastEpoch = body.readInt32BE(14);
  const mayHaveForgotten = body.readUInt8(18) === 1;
  const count = body.readUInt32BE(19);
  const entries: SnapshotEntry[] = [];
  let at = HEADER_BYTES;
  for (let index = 0; index < count; index++) {
    if (at + ENTRY_FIXED_BYTES > body.length) throw new Error('snapshot entries run past its end');
    const producerId = safe(body.readBigInt64BE(at));
    const epoch = body.readInt32BE(at + 8);
    const lastActivityMs = safe(body.readBigInt64BE(at + 12));
    const batchCount = body.readUInt8(at + 20);
    at += ENTRY_FIXED_BYTES;
    if (batchCount === 0 || at + batchCount * BATCH_BYTES > body.length) throw new Error('snapshot entry batches are missing or run past its end');
    const batches: SnapshotBatch[] = [];
    for (let batch = 0; batch < batchCount; batch++, at += BATCH_BYTES) {
      batches.push({ firstSequence: body.readInt32BE(at), lastSequence: body.readInt32BE(at + 4), firstOffset: safe(body.readBigInt64BE(at + 8)), lastOffset: safe(body.readBigInt64BE(at + 16)) });
    }
    entries.push({ producerId, epoch, lastActivityMs, batches });
  }
  if (at !== body.length) throw new Error(`snapshot has ${body.length - at} trailing bytes`);
  return { endOffset, lastEpoch, mayHaveForgotten, entries };
}

function safe(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) throw new Error(`snapshot value ${value} is out of range`);
  return Number(value);
}

export function snapshotFileName(endOffset: number): string {
  return `${String(endOffset).padStart(NAME_DIGITS, '0')}${PRODUCER_SNAPSHOT_SUFFIX}`;
}

/** The snapshot files of one partition directory. */
export class ProducerSnapshotFiles {
  constructor(readonly dir: string) {}

  /** Offsets of the snapshots present, ascending. */
  offsets(): number[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    return names
      .filter((name) => name.length === NAME_DIGITS + PRODUCER_SNAPSHOT_SUFFIX.length && name.endsWith(PRODUCER_SNAPSHOT_SUFFIX))
      .map((name) => Number(name.slice(0, NAME_DIGITS)))
      .filter((offset) => Number.isSafeInteger(offset))
      .sort((a, b) => a - b);
  }

  /** Writes `snapshot` (temporary file, then rename) and deletes all but the newest PRODUCER_SNAPSHOTS_KEPT. */
  write(snapshot: ProducerSnapshot): void {
    const file = path.join(this.dir, snapshotFileName(snapshot.endOffset));
    const temporary = `${file}.tmp`;
    fs.writeFileSync(temporary, encodeProducerSnapshot(snapshot));
    fs.renameSync(temporary, file);
    const offsets = this.offsets();
    for (const offset of offsets.slice(0, Math.max(0, offsets.length - PRODUCER_SNAPSHOTS_KEPT))) this.delete(offset);
  }

  /**
   * The newest snapshot `log` can start from: at or below its end and at or above its start,
   * intact, with the log's leader epoch just below its offset. Snapshots met on the way that
   * the log contradicts (past its end, damaged, another epoch) are deleted.
   */
  newestUsable(log: SnapshotLog): ProducerSnapshot | null {
    for (const offset of this.offsets().reverse()) {
      if (offset < log.logStartOffset) return null;
      if (offset > log.logEndOffset) {
        this.delete(offset);
        continue;
      }
      let snapshot: ProducerSnapshot;
      try {
        snapshot = decodeProducerSnapshot(fs.readFileSync(path.join(this.dir, snapshotFileName(offset))));
      } catch {
        this.delete(offset);
        continue;
      }
      if (snapshot.endOffset !== offset || snapshot.lastEpoch !== log.epochBefore(offset)) {
        this.delete(offset);
        continue;
      }
      return snapshot;
    }
    return null;
  }

  /** Deletes every snapshot past `offset` (a truncation cut the log there). */
  deleteAbove(offset: number): void {
    for (const kept of this.offsets()) if (kept > offset) this.delete(kept);
  }

  private delete(offset: number): void {
    fs.rmSync(path.join(this.dir, snapshotFileName(offset)), { force: true });
  }
}
