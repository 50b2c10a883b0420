// Key-based compaction of a partition log (Kafka's log cleaner, for cleanup.policy=compact): in
// closed segments, a record is dropped when a later record of the log has the same key, and a
// tombstone (null value) is dropped once it is older than delete.retention.ms. The active
// segment is never touched, so the head of the log is always complete.
//
// Batches are rewritten in place of the old ones with the surviving records' bytes copied
// verbatim (their offset and timestamp deltas are relative to the batch's base, which is kept),
// and every batch is kept, even with no records left, with its base offset and last offset delta
// unchanged: offsets stay where they were, each batch still continues the one before (recovery
// relies on that), and a reader at any offset finds the next surviving record. This is what
// Kafka's cleaner does too (it retains empty batches' offsets for the same reasons).
import { crc32c } from '../../src/util/crc32c.js';
import { BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES, iterateBatches } from '../../src/util/record-batch.js';
import { VarintReader } from '../../src/util/varint.js';

/** Attributes..end is covered by the CRC; these are the positions inside a batch. */
const BATCH_LENGTH_AT = 8;
const CRC_AT = 17;
const ATTRIBUTES_AT = 21;
const RECORDS_COUNT_AT = 57;

export interface StoredRecord {
  offset: number;
  timestamp: number;
  key: Buffer | null;
  isTombstone: boolean;
}

/** Visits every record of whole batches with its key (no copy), for building the key map. */
export function forEachKeyedRecord(batches: Buffer, visit: (record: StoredRecord) => void): void {
  for (const { position, header } of iterateBatches(batches)) {
    const end = position + LOG_OVERHEAD_BYTES + header.batchLength;
    parseRecords(batches, position + BATCH_HEADER_BYTES, end, header.recordsCount, header.baseOffset, header.baseTimestamp, (record) => visit(record));
  }
}

/**
 * Rewrites whole batches keeping the records `keep` accepts; returns the new bytes and how many
 * records were dropped (0: `batches` is returned unchanged).
 */
export function compactBatches(batches: Buffer, keep: (record: StoredRecord) => boolean): { bytes: Buffer; dropped: number } {
  const parts: Buffer[] = [];
  let dropped = 0;
  for (const { position, header } of iterateBatches(batches)) {
    const end = position + LOG_OVERHEAD_BYTES + header.batchLength;
    const kept: Buffer[] = [];
    let keptCount = 0;
    parseRecords(batches, position + BATCH_HEADER_BYTES, end, header.recordsCount, header.baseOffset, header.baseTimestamp, (record, start, recordEnd) => {
      if (keep(record)) {
        kept.push(batches.subarray(start, recordEnd));
        keptCount++;
      }
    });
    if (keptCount === header.recordsCount) {
      parts.push(batches.subarray(position, end));
      continue;
    }
    dropped += header.recordsCount - keptCount;
    const body = Buffer.concat(kept);
    const batch = Buffer.alloc(BATCH_HEADER_BYTES + body.length);
    batches.copy(batch, 0, position, position + BATCH_HEADER_BYTES);
    body.copy(batch, BATCH_HEADER_BYTES);
    batch.writeInt32BE(batch.length - LOG_OVERHEAD_BYTES, BATCH_LENGTH_AT);
    batch.writeInt32BE(keptCount, RECORDS_COUNT_AT);
    batch.writeUInt32BE(crc32c(batch.subarray(ATTRIBUTES_AT)), CRC_AT);
    parts.push(batch);
  }
  return dropped === 0 ? { bytes: batches, dropped } : { bytes: Buffer.concat(parts), dropped };
}

function parseRecords(
  buffer: Buffer, from: number, batchEnd: number, count: number, baseOffset: number, baseTimestamp: number,
  visit: (record: StoredRecord, start: number, end: number) => void,
): void {
  const reader = new VarintReader(buffer, from, batchEnd);
  for (let index = 0; index < count; index++) {
    const start = reader.position;
    reader.end = batchEnd;
    const length = reader.readVarint();
    const recordEnd = reader.position + length;
    reader.end = recordEnd;
    reader.readInt8();
    const timestampDelta = reader.readVarlong();
    const offsetDelta = reader.readVarint();
    const key = reader.readBytesOrNull('key');
    const valueLength = reader.readVarint();
    visit({ offset: baseOffset + offsetDelta, timestamp: baseTimestamp + timestampDelta, key, isTombstone: valueLength < 0 }, start, recordEnd);
    reader.position = recordEnd;
  }
}
