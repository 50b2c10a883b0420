// One segment of a partition log: a .log file of record batches plus its sparse offset and time
// indexes. The segment knows positions and offsets; policy (when to roll, what to delete, what is
// durable) belongs to PartitionLog. Files are written and read with synchronous calls (they hit
// the page cache); fdatasync and the reads that serve fetches and the scrubber (old segments are
// seldom cached) are asynchronous, and a segment with any of them in flight is closed only once
// it returns, so a recycled fd number can never be synced or read by mistake.
import * as fs from 'node:fs';
import { assert } from '../../src/util/assert.js';
import { RiffleError } from '../../src/rpc/errors.js';
import { BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES, readBatchHeader, verifyBatchCrc, type BatchHeader } from '../../src/util/record-batch.js';
import { INDEX_SUFFIX, LOG_SUFFIX, SyncedDescriptor, TIME_INDEX_SUFFIX, readFully, segmentPath, unlinkIfExists, writeFully } from './segment-files.js';
import { INDEX_ENTRIES_MAX, OffsetIndex, TimeIndex } from './segment-index.js';

/** Bytes read at a time when scanning batch headers. */
const SCAN_CHUNK_BYTES = 1024 * 1024;
/** Bytes read at a time when stepping from an index entry to a batch. */
const FIND_CHUNK_BYTES = 16 * 1024;
/** Relative offsets are int32 in the indexes. */
export const RELATIVE_OFFSET_MAX = 2 ** 31 - 1;

export interface BatchLocation {
  position: number;
  sizeBytes: number;
  baseOffset: number;
  lastOffset: number;
  maxTimestamp: number;
}

export interface ScanResult {
  /** Position after the last good batch. */
  endPosition: number;
  /** Offset after the last good batch. */
  nextOffset: number;
  /** Why the scan stopped before `to`, or null. */
  problem: string | null;
}

export class LogSegment {
  readonly logPath: string;
  sizeBytes = 0;
  /** Offset after the last batch in this segment. */
  nextOffset: number;
  maxTimestamp = -1;
  /** Base offset of the batch that first reached maxTimestamp. */
  offsetOfMaxTimestamp: number;
  /** Wall-clock ms of the first append (or the first batch's timestamp after a reopen); drives segment.ms. */
  firstAppendMs: number | null = null;
  readonly offsetIndex: OffsetIndex;
  readonly timeIndex: TimeIndex;
  private bytesSinceLastIndexEntry = 0;
  private damaged = false;
  private readonly descriptor: SyncedDescriptor;
  /** Where the last read ended, so a sequential reader skips the index walk. */
  private readHint = { offset: -1, position: 0 };

  private constructor(
    readonly dir: string,
    readonly baseOffset: number,
    readonly fd: number,
  ) {
    this.logPath = segmentPath(dir, baseOffset, LOG_SUFFIX);
    this.descriptor = new SyncedDescriptor(fd);
    this.nextOffset = baseOffset;
    this.offsetOfMaxTimestamp = baseOffset;
    this.offsetIndex = new OffsetIndex(segmentPath(dir, baseOffset, INDEX_SUFFIX));
    this.timeIndex = new TimeIndex(segmentPath(dir, baseOffset, TIME_INDEX_SUFFIX));
  }

  /** A new, empty segment; an existing file of the same name is emptied. */
  static create(dir: string, baseOffset: number): LogSegment {
    const fd = fs.openSync(segmentPath(dir, baseOffset, LOG_SUFFIX), fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o644);
    unlinkIfExists(segmentPath(dir, baseOffset, INDEX_SUFFIX));
    unlinkIfExists(segmentPath(dir, baseOffset, TIME_INDEX_SUFFIX));
    return new LogSegment(dir, baseOffset, fd);
  }

  /** An existing segment, with its size taken from the file; indexes are not loaded yet. */
  static open(dir: string, baseOffset: number): LogSegment {
    const fd = fs.openSync(segmentPath(dir, baseOffset, LOG_SUFFIX), fs.constants.O_RDWR);
    const segment = new LogSegment(dir, baseOffset, fd);
    segment.sizeBytes = fs.fstatSync(fd).size;
    return segment;
  }

  /** True when a failed write could not be undone; the file may end in a partial batch. */
  get isDamaged(): boolean {
    return this.damaged;
  }

  get isEmpty(): boolean {
    return this.sizeBytes === 0;
  }

  get isIndexFull(): boolean {
    return this.offsetIndex.isFull || this.timeIndex.count >= INDEX_ENTRIES_MAX;
  }

  // -------------------------------------------------------------------------------------------
  // Appending

  /** Writes stamped batches at the end of the file; throws (file unchanged) on an I/O error. */
  write(batches: Buffer): void {
    const start = this.sizeBytes;
    try {
      writeFully(this.fd, batches, start);
    } catch (error) {
      // Leave no partial batch behind: cut the file back to where the append began.
      try {
        fs.ftruncateSync(this.fd, start);
      } catch {
        this.damaged = true;
      }
      throw error;
    }
    this.sizeBytes = start + batches.length;
  }

  /** Records a batch just written at `position` in the indexes and the segment's bounds. */
  indexBatch(position: number, sizeBytes: number, baseOffset: number, lastOffset: number, maxTimestamp: number, indexIntervalBytes: number): void {
    assert(baseOffset === this.nextOffset, () => `batch at ${baseOffset} is not contiguous with segment end ${this.nextOffset}`);
    assert(lastOffset - this.baseOffset <= RELATIVE_OFFSET_MAX, 'relative offset overflow');
    if (maxTimestamp > this.maxTimestamp) {
      this.maxTimestamp = maxTimestamp;
      this.offsetOfMaxTimestamp = baseOffset;
    }
    if (this.bytesSinceLastIndexEntry > indexIntervalBytes && position > 0) {
      this.offsetIndex.append(baseOffset - this.baseOffset, position);
      this.timeIndex.maybeAppend(this.maxTimestamp, this.offsetOfMaxTimestamp - this.baseOffset);
      this.bytesSinceLastIndexEntry = 0;
    }
    this.bytesSinceLastIndexEntry += sizeBytes;
    this.nextOffset = lastOffset + 1;
  }

  /** Called when the segment stops being active: the final time entry, and indexes to disk. */
  seal(): void {
    if (!this.isEmpty) this.timeIndex.maybeAppend(this.maxTimestamp, this.offsetOfMaxTimestamp - this.baseOffset);
    this.persistIndexes();
  }

  persistIndexes(): void {
    this.offsetIndex.persist();
    this.timeIndex.persist();
  }

  // -------------------------------------------------------------------------------------------
  // Reading

  read(position: number, length: number): Buffer {
    assert(position >= 0 && position + length <= this.sizeBytes, () => `read [${position}, ${position + length}) outside segment of ${this.sizeBytes} bytes`);
    const buffer = Buffer.allocUnsafe(length);
    const bytes = readFully(this.fd, buffer, 0, length, position);
    assert(bytes === length, () => `short read: ${bytes} of ${length} bytes at ${position} of ${this.logPath}`);
    return buffer;
  }

  /** The batch containing `offset`, found from the nearest index entry; null past the end. */
  findBatch(offset: number): BatchLocation | null {
    if (offset < this.baseOffset || offset >= this.nextOffset) return null;
    let position = this.positionNear(offset);
    while (position < this.sizeBytes) {
      const length = Math.min(FIND_CHUNK_BYTES, this.sizeBytes - position);
      if (length < BATCH_HEADER_BYTES) return null;
      const step = walkToBatch(this.read(position, length), position, offset);
      if (typeof step !== 'number') return step;
      position = step;
    }
    return null;
  }

  /**
   * The batch containing `offset` and the file's bytes from its start: up to `maxBytes` of the
   * segment as it is now, but at least the whole batch. Null past the end. Both the walk from the
   * index entry to the batch and the bytes are read on the thread pool, as a fetch of old data
   * goes to the disk (the file's bytes as of the call; appends meanwhile are not included).
   * Throws CORRUPT_MESSAGE when a header on the way does not parse.
   */
  async readBatchesAsync(offset: number, maxBytes: number): Promise<{ location: BatchLocation; bytes: Buffer } | null> {
    if (offset < this.baseOffset || offset >= this.nextOffset) return null;
    const end = this.sizeBytes;
    let position = this.positionNear(offset);
    // The first read covers the way from the index entry (about index.interval.bytes) and the answer.
    let length = Math.min(end - position, Math.max(maxBytes, 0) + FIND_CHUNK_BYTES);
    while (length >= BATCH_HEADER_BYTES) {
      const chunk = await this.readAsync(position, length);
      // The file was cut under the read: the caller sees the truncation and reads again.
      if (chunk.length < length) return null;
      const step = walkToBatch(chunk, position, offset);
      if (typeof step === 'number') {
        position = step;
        length = Math.min(end - position, FIND_CHUNK_BYTES + Math.max(maxBytes, 0));
        continue;
      }
      if (step.position + step.sizeBytes > end) throw new RiffleError('CORRUPT_MESSAGE', `batch at position ${step.position} runs past the end of its segment`);
      const wanted = Math.min(end - step.position, Math.max(step.sizeBytes, maxBytes));
      const from = step.position - position;
      if (from + wanted <= chunk.length) return { location: step, bytes: chunk.subarray(from, from + wanted) };
      return { location: step, bytes: await this.readAsync(step.position, wanted) };
    }
    return null;
  }

  /**
   * A file position at or before the batch holding `offset`, from memory (no read): where the
   * last read ended, if it ended there, else the index entry. A walk to the batch starts there.
   */
  positionNear(offset: number): number {
    return this.readHint.offset === offset ? this.readHint.position : this.offsetIndex.lookup(offset - this.baseOffset);
  }

  rememberReadEnd(offset: number, position: number): void {
    this.readHint = { offset, position };
  }

  /**
   * Walks batches in [from, to), reading big chunks. With `verifyCrc` every batch's CRC is
   * checked. `visit` may return a problem string to stop. Stops at the first batch that is torn,
   * corrupt or rejected, and says why. `preloaded` (the file's bytes from `from` on, read
   * beforehand) serves what it covers without a read.
   */
  scan(from: number, to: number, verifyCrc: boolean, visit: (header: BatchHeader, position: number, sizeBytes: number) => string | null, preloaded?: Buffer): ScanResult {
    const reader = new ChunkReader(this.fd, to, preloaded === undefined ? undefined : { chunk: preloaded, start: from });
    let position = from;
    let nextOffset = -1;
    while (position < to) {
      const checked = checkBatchAt(reader, position, verifyCrc);
      const problem = typeof checked === 'string' ? checked : visit(checked.header, position, checked.sizeBytes);
      if (problem !== null) return { endPosition: position, nextOffset, problem };
      const { header, sizeBytes } = checked as { header: BatchHeader; sizeBytes: number };
      nextOffset = header.baseOffset + header.lastOffsetDelta + 1;
      position += sizeBytes;
    }
    return { endPosition: position, nextOffset, problem: null };
  }

  /** Reads the first batch's header, or null when the segment is empty or unreadable. */
  firstBatchHeader(): BatchHeader | null {
    if (this.sizeBytes < BATCH_HEADER_BYTES) return null;
    try {
      return readBatchHeader(this.read(0, BATCH_HEADER_BYTES));
    } catch {
      return null;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Recovery and truncation

  /** Forgets the in-memory indexes and bounds, before a rebuild by scanning. */
  resetIndexes(): void {
    this.offsetIndex.clear();
    this.timeIndex.clear();
    this.maxTimestamp = -1;
    this.offsetOfMaxTimestamp = this.baseOffset;
    this.bytesSinceLastIndexEntry = 0;
    this.nextOffset = this.baseOffset;
    this.readHint = { offset: -1, position: 0 };
  }

  /** Bounds after loading trusted index files of a sealed segment ending at `nextOffset`. */
  adoptLoadedIndexes(nextOffset: number): void {
    this.nextOffset = nextOffset;
    this.maxTimestamp = this.timeIndex.lastTimestamp;
    this.offsetOfMaxTimestamp = this.baseOffset + Math.max(0, this.timeIndex.lastRelativeOffset);
    this.bytesSinceLastIndexEntry = this.sizeBytes - this.offsetIndex.lastPosition;
  }

  /** Cuts the file at `position` (a batch boundary) whose batch starts at offset `nextOffset`. */
  truncateTo(position: number, nextOffset: number): void {
    assert(position >= 0 && position <= this.sizeBytes, () => `truncate to ${position} outside ${this.sizeBytes}`);
    fs.ftruncateSync(this.fd, position);
    fs.fdatasyncSync(this.fd);
    this.sizeBytes = position;
    this.nextOffset = nextOffset;
    this.offsetIndex.truncateToPosition(position);
    this.timeIndex.truncateToRelativeOffset(nextOffset - this.baseOffset);
    this.bytesSinceLastIndexEntry = position - this.offsetIndex.lastPosition;
    this.readHint = { offset: -1, position: 0 };
    this.recomputeMaxTimestamp();
    this.persistIndexes();
  }

  /**
   * The exact maximum timestamp after a truncation: the last time index entry, then the batch
   * headers after it (the sparse index alone would underestimate, and lookups by timestamp would
   * skip the segment).
   */
  private recomputeMaxTimestamp(): void {
    const lastRelativeOffset = this.timeIndex.lastRelativeOffset;
    this.maxTimestamp = this.timeIndex.lastTimestamp;
    this.offsetOfMaxTimestamp = this.baseOffset + Math.max(0, lastRelativeOffset);
    const from = lastRelativeOffset < 0 ? 0 : this.offsetIndex.lookup(lastRelativeOffset);
    this.scan(from, this.sizeBytes, false, (header) => {
      if (header.maxTimestamp > this.maxTimestamp) {
        this.maxTimestamp = header.maxTimestamp;
        this.offsetOfMaxTimestamp = header.baseOffset;
      }
      return null;
    });
  }

  // -------------------------------------------------------------------------------------------
  // Syncing and closing

  sync(syncFile: (fd: number) => Promise<void>): Promise<void> {
    assert(!this.descriptor.isClosed, () => `sync of closed segment ${this.logPath}`);
    return this.descriptor.use(syncFile);
  }

  /**
   * Reads [position, position + length) on the thread pool, so a read that goes to the disk does
   * not hold the event loop (fetches of old data and the scrubber's reads, seldom cached).
   * Returns fewer bytes where the file ends first.
   */
  readAsync(position: number, length: number): Promise<Buffer> {
    assert(!this.descriptor.isClosed, () => `read of closed segment ${this.logPath}`);
    const buffer = Buffer.allocUnsafe(length);
    return this.descriptor.use(async (fd) => {
      let done = 0;
      while (done < length) {
        const bytes = await new Promise<number>((resolve, reject) => fs.read(fd, buffer, done, length - done, position + done, (error, read) => (error ? reject(error) : resolve(read))));
        if (bytes === 0) break;
        done += bytes;
      }
      return buffer.subarray(0, done);
    });
  }

  get isOpen(): boolean {
    return this.descriptor.isOpen;
  }

  /** Closes the fd now, or after the syncs in flight return. */
  close(): void {
    this.descriptor.close();
  }

  /** Removes the segment's files and closes it. */
  deleteFiles(): void {
    unlinkIfExists(this.logPath);
    unlinkIfExists(this.offsetIndex.path);
    unlinkIfExists(this.timeIndex.path);
    this.close();
  }
}

/** Serves byte ranges of a file below `end` from one reusable chunk, reading ahead. */
class ChunkReader {
  private chunk: Buffer = Buffer.alloc(0);
  private chunkStart = 0;

  constructor(
    private readonly fd: number,
    readonly end: number,
    preloaded?: { chunk: Buffer; start: number },
  ) {
    if (preloaded) {
      this.chunk = preloaded.chunk;
      this.chunkStart = preloaded.start;
    }
  }

  /** The chunk holding [position, position + length), and where in it `position` is; null past the end. */
  view(position: number, length: number): { buffer: Buffer; at: number } | null {
    if (position + length > this.end) return null;
    if (position < this.chunkStart || position + length > this.chunkStart + this.chunk.length) {
      const wanted = Math.min(Math.max(length, SCAN_CHUNK_BYTES), this.end - position);
      const buffer = this.chunk.length >= wanted ? this.chunk : Buffer.allocUnsafe(wanted);
      const bytes = readFully(this.fd, buffer, 0, wanted, position);
      this.chunk = buffer.subarray(0, bytes);
      this.chunkStart = position;
      if (bytes < length) return null;
    }
    return { buffer: this.chunk, at: position - this.chunkStart };
  }
}

/** Parses (and optionally CRC-checks) the batch at `position`; a string says what is wrong. */
function checkBatchAt(reader: ChunkReader, position: number, verifyCrc: boolean): { header: BatchHeader; sizeBytes: number } | string {
  const headerView = reader.view(position, BATCH_HEADER_BYTES);
  if (headerView === null) return `torn batch header at ${position}`;
  let header: BatchHeader;
  try {
    header = readBatchHeader(headerView.buffer, headerView.at);
  } catch (error) {
    return `unreadable batch header at ${position}: ${(error as Error).message}`;
  }
  if (header.lastOffsetDelta < 0) return `batch at ${position} has negative lastOffsetDelta ${header.lastOffsetDelta}`;
  const sizeBytes = LOG_OVERHEAD_BYTES + header.batchLength;
  if (position + sizeBytes > reader.end) return `torn batch at ${position}: ${sizeBytes} bytes do not fit`;
  if (!verifyCrc) return { header, sizeBytes };
  const batchView = reader.view(position, sizeBytes);
  if (batchView === null) return `torn batch at ${position}: ${sizeBytes} bytes do not fit`;
  try {
    verifyBatchCrc(batchView.buffer, batchView.at);
  } catch (error) {
    return (error as Error).message;
  }
  return { header, sizeBytes };
}

/**
 * Walks the batch headers in `chunk` (the file's bytes from `chunkStart`) to the batch holding
 * `offset`: its location, or, when the chunk ends first (a header cut off, or a batch below
 * `offset` passing the chunk's end), the file position of the next header to read.
 */
function walkToBatch(chunk: Buffer, chunkStart: number, offset: number): BatchLocation | number {
  let at = 0;
  while (at + BATCH_HEADER_BYTES <= chunk.length) {
    const header = readBatchHeader(chunk, at);
    const sizeBytes = LOG_OVERHEAD_BYTES + header.batchLength;
    const lastOffset = header.baseOffset + header.lastOffsetDelta;
    if (lastOffset >= offset) return { position: chunkStart + at, sizeBytes, baseOffset: header.baseOffset, lastOffset, maxTimestamp: header.maxTimestamp };
    at += sizeBytes;
  }
  return chunkStart + at;
}
