// Loading the leader-epoch cache of a partition directory after its segments were recovered. The
// checkpoint is trusted once trimmed to the recovered log (a crash may have lost a tail whose
// epoch the checkpoint already recorded) and checked against the first and last batch headers;
// a missing, damaged or disagreeing checkpoint is rebuilt from the batch headers, which carry
// every batch's leader epoch. Kafka rebuilds the same way when its checkpoint is missing.
//
// The rebuild reads two headers per segment: batch epochs never decrease along the log
// (PartitionLog refuses appends that would make them), so a segment whose first and last batch
// share an epoch holds only that epoch, and only segments where the epoch changes are scanned.
import { assert } from '../../src/util/assert.js';
import type { Logger } from '../../src/util/logger.js';
import { BATCH_HEADER_BYTES, readBatchHeader, type BatchHeader } from '../../src/util/record-batch.js';
import { LeaderEpochCache, readLeaderEpochCheckpoint, UNDEFINED_EPOCH, type EpochEntry } from './leader-epoch-cache.js';
import type { LogSegment } from './log-segment.js';

export interface LoadedEpochs {
  entries: EpochEntry[];
  /** True when the entries differ from the checkpoint file, which must then be rewritten. */
  changed: boolean;
  /** True when the entries came from the batch headers rather than the checkpoint. */
  rebuilt: boolean;
}

/** The leader epochs of recovered segments (oldest first, at least one). */
export function loadLeaderEpochs(dir: string, segments: readonly LogSegment[], logger: Logger): LoadedEpochs {
  assert(segments.length > 0, 'a log has at least one segment');
  const logStartOffset = segments[0]!.baseOffset;
  const logEndOffset = segments[segments.length - 1]!.nextOffset;
  const stored = readLeaderEpochCheckpoint(dir);
  if (stored !== null) {
    const cache = new LeaderEpochCache(stored);
    const trimmedStart = cache.truncateFromStart(logStartOffset);
    const trimmedEnd = cache.truncateFromEnd(logEndOffset);
    const problem = disagreement(cache, segments);
    if (problem === null) return { entries: cache.entries(), changed: trimmedStart || trimmedEnd, rebuilt: false };
    logger.warn({ problem }, 'leader epoch checkpoint disagrees with the log; rebuilding it from batch headers');
  } else if (logEndOffset === logStartOffset) {
    // A new or emptied log: nothing to rebuild, and no file needed until an epoch is assigned.
    return { entries: [], changed: false, rebuilt: false };
  } else {
    logger.info({ dir }, 'no readable leader epoch checkpoint; rebuilding it from batch headers');
  }
  return { entries: epochsFromBatchHeaders(segments), changed: true, rebuilt: true };
}

/** Scans batch headers for the offsets where the leader epoch rises. */
export function epochsFromBatchHeaders(segments: readonly LogSegment[]): EpochEntry[] {
  const cache = new LeaderEpochCache();
  const note = (header: BatchHeader): void => {
    if (header.partitionLeaderEpoch >= 0) cache.assign(header.partitionLeaderEpoch, header.baseOffset);
  };
  for (const segment of segments) {
    if (segment.isEmpty) continue;
    const first = segment.firstBatchHeader();
    const last = lastBatchHeader(segment);
    if (first !== null && last !== null && first.partitionLeaderEpoch === last.partitionLeaderEpoch) {
      note(first);
      continue;
    }
    // A problem string from the scan cannot happen on a recovered segment; if it does, the
    // epochs seen so far are all this function can vouch for.
    segment.scan(0, segment.sizeBytes, false, (header) => {
      note(header);
      return null;
    });
  }
  return cache.entries();
}

/** Why the cache cannot describe these segments, judged by their first and last batch; or null. */
function disagreement(cache: LeaderEpochCache, segments: readonly LogSegment[]): string | null {
  const nonEmpty = segments.filter((segment) => !segment.isEmpty);
  if (nonEmpty.length === 0) return cache.size === 0 ? null : 'entries for an empty log';
  const first = nonEmpty[0]!.firstBatchHeader();
  const last = lastBatchHeader(nonEmpty[nonEmpty.length - 1]!);
  for (const header of [first, last]) {
    if (header === null) return 'a batch header is unreadable';
    const epoch = cache.epochForOffset(header.baseOffset);
    if (epoch !== Math.max(header.partitionLeaderEpoch, UNDEFINED_EPOCH)) return `batch at ${header.baseOffset} has epoch ${header.partitionLeaderEpoch}, the checkpoint says ${epoch}`;
  }
  return null;
}

/** The header of a non-empty segment's last batch, found through its offset index; null if unreadable. */
function lastBatchHeader(segment: LogSegment): BatchHeader | null {
  try {
    const location = segment.findBatch(segment.nextOffset - 1);
    if (location === null || location.sizeBytes < BATCH_HEADER_BYTES) return null;
    return readBatchHeader(segment.read(location.position, BATCH_HEADER_BYTES));
  } catch {
    return null;
  }
}
