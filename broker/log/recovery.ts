// Opening a partition directory after a clean shutdown or a crash. Segments wholly below the
// recovery checkpoint are trusted: their index files are loaded (or rebuilt from batch headers
// when missing or inconsistent). From the checkpoint on, every batch is CRC-checked and must
// continue the offsets of the one before; the first torn, corrupt or out-of-place batch and
// everything after it (later segments included) is cut off, as Kafka's recovery does.
import { assert } from '../../src/util/assert.js';
import type { Logger } from '../../src/util/logger.js';
import type { BatchHeader } from '../../src/util/record-batch.js';
import { LogSegment, RELATIVE_OFFSET_MAX } from './log-segment.js';
import type { RecoveryPoint } from './recovery-checkpoint.js';

export interface RecoveryOutcome {
  segments: LogSegment[];
  /** Segments whose contents were CRC-verified (possibly unsynced after a crash). */
  verifiedSegments: LogSegment[];
  truncations: number;
  corruptBatches: number;
  verifiedBytes: number;
}

interface RecoveryContext {
  indexIntervalBytes: number;
  logger: Logger;
  outcome: RecoveryOutcome;
}

export function recoverSegments(dir: string, bases: readonly number[], checkpoint: RecoveryPoint | null, indexIntervalBytes: number, logger: Logger): RecoveryOutcome {
  assert(bases.length > 0, 'recovery needs at least one segment');
  const segments = bases.map((base) => LogSegment.open(dir, base));
  const outcome: RecoveryOutcome = { segments, verifiedSegments: [], truncations: 0, corruptBatches: 0, verifiedBytes: 0 };
  const context: RecoveryContext = { indexIntervalBytes, logger, outcome };
  const start = recoveryStart(segments, checkpoint);
  const last = segments.length - 1;
  // Clean only when the checkpoint names the last segment at exactly its size: a file cut
  // shorter since (to zero, say) must not pass because the fallback start happens to match.
  const clean = checkpoint !== null && checkpoint.clean && checkpoint.segmentBaseOffset === segments[last]!.baseOffset && checkpoint.position === segments[last]!.sizeBytes && checkpoint.offset >= segments[last]!.baseOffset;
  for (let index = 0; index < start.index; index++) {
    if (!loadTrusted(segments[index]!, segments[index + 1]!.baseOffset, context)) return finish(context, index);
  }
  if (clean && loadTrusted(segments[last]!, checkpoint.offset, context)) return finish(context, last);
  for (let index = start.index; index < segments.length; index++) {
    const from = index === start.index ? start.position : 0;
    const expectedBase = index === 0 ? segments[0]!.baseOffset : segments[index - 1]!.nextOffset;
    if (!verifySegment(segments[index]!, from, expectedBase, context)) return finish(context, index);
  }
  return finish(context, last);
}

function recoveryStart(segments: LogSegment[], checkpoint: RecoveryPoint | null): { index: number; position: number } {
  if (checkpoint === null) return { index: 0, position: 0 };
  const index = segments.findIndex((segment) => segment.baseOffset === checkpoint.segmentBaseOffset);
  if (index < 0 || checkpoint.position > segments[index]!.sizeBytes) return { index: 0, position: 0 };
  return { index, position: checkpoint.position };
}

/** Drops the segments after `lastKept`; returns the outcome. */
function finish(context: RecoveryContext, lastKept: number): RecoveryOutcome {
  const { outcome } = context;
  for (const segment of outcome.segments.slice(lastKept + 1)) {
    context.logger.warn({ segment: segment.logPath }, 'recovery deletes a segment after a cut-off tail');
    segment.deleteFiles();
  }
  outcome.segments = outcome.segments.slice(0, lastKept + 1);
  outcome.verifiedSegments = outcome.verifiedSegments.filter((segment) => segment.isOpen);
  return outcome;
}

/** Loads or rebuilds the indexes of a segment below the checkpoint; false if it had to be cut. */
function loadTrusted(segment: LogSegment, nextOffset: number, context: RecoveryContext): boolean {
  const span = nextOffset - segment.baseOffset;
  const loaded = span >= 0 && segment.offsetIndex.load(segment.sizeBytes, span) && segment.timeIndex.load(span) && (segment.isEmpty || segment.timeIndex.count > 0);
  if (loaded) {
    segment.adoptLoadedIndexes(nextOffset);
    return true;
  }
  segment.resetIndexes();
  if (!rebuild(segment, 0, segment.sizeBytes, false, context)) return false;
  segment.seal();
  return segment.nextOffset === nextOffset;
}

/** Rebuilds indexes from headers up to `from`, then CRC-verifies the rest; false if cut. */
function verifySegment(segment: LogSegment, from: number, expectedBase: number, context: RecoveryContext): boolean {
  segment.resetIndexes();
  if (segment.baseOffset !== expectedBase) {
    context.logger.warn({ segment: segment.logPath, expectedBase }, 'segment does not continue the offsets of the one before it');
    segment.truncateTo(0, segment.baseOffset);
    context.outcome.truncations++;
    return false;
  }
  context.outcome.verifiedSegments.push(segment);
  if (from > 0 && !rebuild(segment, 0, from, false, context)) return false;
  context.outcome.verifiedBytes += segment.sizeBytes - from;
  return rebuild(segment, from, segment.sizeBytes, true, context);
}

/**
 * Scans [from, to) of a segment, indexing every good batch (each must continue the segment's
 * offsets); on a bad batch cuts the segment there and returns false.
 */
function rebuild(segment: LogSegment, from: number, to: number, verifyCrc: boolean, context: RecoveryContext): boolean {
  const visit = (header: BatchHeader, position: number, sizeBytes: number): string | null => {
    if (header.baseOffset !== segment.nextOffset) return `batch at ${position} has base offset ${header.baseOffset}, expected ${segment.nextOffset}`;
    const lastOffset = header.baseOffset + header.lastOffsetDelta;
    if (lastOffset - segment.baseOffset > RELATIVE_OFFSET_MAX) return `batch at ${position} overflows the segment's relative offsets`;
    segment.indexBatch(position, sizeBytes, header.baseOffset, lastOffset, header.maxTimestamp, context.indexIntervalBytes);
    return null;
  };
  const result = segment.scan(from, to, verifyCrc, visit);
  if (result.problem === null) return true;
  if (!result.problem.startsWith('torn')) context.outcome.corruptBatches++;
  context.logger.warn({ segment: segment.logPath, position: result.endPosition, problem: result.problem }, 'recovery truncates the log');
  segment.truncateTo(result.endPosition, segment.nextOffset);
  context.outcome.truncations++;
  return false;
}
