// Disk faults the nemesis (and the corruption integration test) apply to a stopped or running
// node's partition directory: a byte flipped inside the records of one batch of an older,
// closed segment (bit rot the CRC must catch). Only record bytes are touched, never the batch
// header, so the damage is what a CRC check finds, not a malformed file.
import { closeSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES, iterateBatches } from '../src/util/record-batch.js';

export interface FlippedByte {
  segment: string;
  /** File position of the flipped byte. */
  position: number;
  batchBaseOffset: number;
  batchLastOffset: number;
}

/** The `.log` files of a partition directory, oldest first. */
export function segmentFilesOf(partitionDir: string): string[] {
  return readdirSync(partitionDir).filter((name) => name.endsWith('.log')).sort();
}

/**
 * Flips one byte (xor `mask`) in the records of a batch of a closed segment (any but the newest)
 * of `partitionDir`. `pick(n)` chooses an index below n (the segment, then the batch, then the
 * byte). Returns null when the partition has no closed segment with a batch in it.
 */
export function flipByteInClosedSegment(partitionDir: string, pick: (count: number) => number, mask = 0x20): FlippedByte | null {
  const closed = segmentFilesOf(partitionDir).slice(0, -1);
  const candidates = closed.map((name) => ({ name, batches: [...iterateBatches(readFileSync(path.join(partitionDir, name)))] })).filter((segment) => segment.batches.length > 0);
  if (candidates.length === 0) return null;
  const segment = candidates[pick(candidates.length)]!;
  const batch = segment.batches[pick(segment.batches.length)]!;
  const batchBytes = LOG_OVERHEAD_BYTES + batch.header.batchLength;
  const recordBytes = batchBytes - BATCH_HEADER_BYTES;
  if (recordBytes <= 0) return null;
  const position = batch.position + BATCH_HEADER_BYTES + pick(recordBytes);
  const file = path.join(partitionDir, segment.name);
  const original = readFileSync(file).subarray(position, position + 1)[0]!;
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, Buffer.from([original ^ mask]), 0, 1, position);
  } finally {
    closeSync(fd);
  }
  return { segment: segment.name, position, batchBaseOffset: batch.header.baseOffset, batchLastOffset: batch.header.baseOffset + batch.header.lastOffsetDelta };
}
