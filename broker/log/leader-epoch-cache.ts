// The leader-epoch cache of a partition replica (Kafka's LeaderEpochFileCache, KIP-101/279): which
// leader epoch wrote the log from which offset, as entries (epoch, startOffset) strictly
// increasing in both. A follower compares its last epoch with the leader's answer to
// OffsetsForLeaderEpoch (`endOffsetFor`) and truncates only what diverges, instead of truncating
// to the high watermark, which loses acknowledged records after fast failovers (KIP-101).
//
// Every change is written through a small `EpochStore` before the method returns, so a caller
// that assigns an epoch and then writes its batches never leaves batches in the log whose epoch
// the checkpoint does not know; the partition log fsyncs the file in its next sync round, before
// those batches count as flushed, so no fsync holds the event loop (a broker taking over 1,000
// partitions changes 1,000 epochs at once). The append path only compares one number.
//
// Departures from Kafka: the checkpoint file carries a format version and a CRC-32C (Kafka's is a
// bare version, count and lines); `assign` ignores an epoch at or below the latest instead of
// truncating conflicting entries (PartitionLog refuses such appends before they get here).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { assert } from '../../src/util/assert.js';
import { crc32c } from '../../src/util/crc32c.js';
import { RewrittenFile } from './segment-files.js';

export const LEADER_EPOCH_CHECKPOINT_FILE = 'leader-epoch-checkpoint';
/** Epoch and offset meaning "unknown", as in Kafka's OffsetsForLeaderEpoch. */
export const UNDEFINED_EPOCH = -1;
export const UNDEFINED_EPOCH_OFFSET = -1;
/**
 * Most entries a cache holds: one per leader change that wrote data and is still retained. A
 * partition would need a million leader changes for this; past it the log refuses new epochs
 * rather than rewrite an ever larger file on every change.
 */
export const LEADER_EPOCH_ENTRIES_MAX = 1_000_000;
/** Leader epochs are int32 on the wire and in batch headers. */
const EPOCH_MAX = 0x7fff_ffff;
const FORMAT_HEADER = 'riffle-leader-epochs v1';

export interface EpochEntry {
  readonly epoch: number;
  readonly startOffset: number;
}

export interface EpochEndOffset {
  epoch: number;
  endOffset: number;
}

/** Where a cache persists its entries; a write replaces the whole list durably or throws. */
export interface EpochStore {
  write(entries: readonly EpochEntry[]): void;
}

/** A store that keeps nothing, for caches that live in memory only (tests, scratch logs). */
export const NO_EPOCH_STORE: EpochStore = { write: () => {} };

export class LeaderEpochCache {
  private list: EpochEntry[];

  /** `entries` must already be strictly increasing in epoch and start offset. */
  constructor(
    entries: readonly EpochEntry[] = [],
    private readonly store: EpochStore = NO_EPOCH_STORE,
  ) {
    assert(isValidEntryList(entries), () => `leader epoch entries are not strictly increasing: ${formatEntries(entries)}`);
    this.list = entries.map((entry) => ({ epoch: entry.epoch, startOffset: entry.startOffset }));
  }

  /**
   * Records that `epoch` starts at `startOffset`; ignored unless `epoch` is newer than the latest.
   * A newer epoch starting where the latest one starts replaces it (that epoch wrote nothing).
   * Returns whether the cache changed.
   */
  assign(epoch: number, startOffset: number): boolean {
    assert(Number.isInteger(epoch) && epoch >= 0 && epoch <= EPOCH_MAX, () => `bad leader epoch ${epoch}`);
    assert(Number.isSafeInteger(startOffset) && startOffset >= 0, () => `bad epoch start offset ${startOffset}`);
    const latest = this.latestEntry();
    if (latest !== null && epoch <= latest.epoch) return false;
    assert(latest === null || startOffset >= latest.startOffset, () => `epoch ${epoch} at ${startOffset} starts before epoch ${latest!.epoch} at ${latest!.startOffset}`);
    const next = latest !== null && latest.startOffset === startOffset ? this.list.slice(0, -1) : this.list.slice();
    assert(next.length < LEADER_EPOCH_ENTRIES_MAX, () => `leader epoch cache is full (${LEADER_EPOCH_ENTRIES_MAX} entries)`);
    next.push({ epoch, startOffset });
    this.replace(next);
    return true;
  }

  /** The newest epoch, or -1 when the cache is empty. */
  latestEpoch(): number {
    return this.list.length === 0 ? UNDEFINED_EPOCH : this.list[this.list.length - 1]!.epoch;
  }

  latestEntry(): EpochEntry | null {
    return this.list.length === 0 ? null : this.list[this.list.length - 1]!;
  }

  earliestEntry(): EpochEntry | null {
    return this.list.length === 0 ? null : this.list[0]!;
  }

  /** The epoch that wrote `offset` (the last entry starting at or before it), or -1. */
  epochForOffset(offset: number): number {
    const index = this.lastIndexWhere((entry) => entry.startOffset <= offset);
    return index < 0 ? UNDEFINED_EPOCH : this.list[index]!.epoch;
  }

  /**
   * Kafka's OffsetsForLeaderEpoch answer: the largest epoch at or below `requestedEpoch` and the
   * offset where the next higher epoch starts (the log end offset for the latest epoch).
   * - requested -1, newer than the latest, or an empty cache: { -1, -1 };
   * - requested older than the earliest entry (retention removed its data): the requested epoch
   *   with the earliest entry's start, so the follower keeps nothing the leader no longer has
   *   and replicates from the leader's log start (Kafka's behaviour since KIP-279).
   */
  endOffsetFor(requestedEpoch: number, logEndOffset: number): EpochEndOffset {
    assert(Number.isInteger(requestedEpoch) && requestedEpoch >= UNDEFINED_EPOCH, () => `bad requested epoch ${requestedEpoch}`);
    assert(Number.isSafeInteger(logEndOffset) && logEndOffset >= 0, () => `bad log end offset ${logEndOffset}`);
    if (requestedEpoch === UNDEFINED_EPOCH || this.list.length === 0) return { epoch: UNDEFINED_EPOCH, endOffset: UNDEFINED_EPOCH_OFFSET };
    if (requestedEpoch === this.latestEpoch()) return { epoch: requestedEpoch, endOffset: logEndOffset };
    const higher = this.lastIndexWhere((entry) => entry.epoch <= requestedEpoch) + 1;
    if (higher >= this.list.length) return { epoch: UNDEFINED_EPOCH, endOffset: UNDEFINED_EPOCH_OFFSET };
    const endOffset = this.list[higher]!.startOffset;
    if (higher === 0) return { epoch: requestedEpoch, endOffset };
    return { epoch: this.list[higher - 1]!.epoch, endOffset };
  }

  /** Drops entries starting at or after `endOffset` (the log was truncated there). */
  truncateFromEnd(endOffset: number): boolean {
    assert(Number.isSafeInteger(endOffset) && endOffset >= 0, () => `bad truncation offset ${endOffset}`);
    const kept = this.lastIndexWhere((entry) => entry.startOffset < endOffset) + 1;
    if (kept === this.list.length) return false;
    this.replace(this.list.slice(0, kept));
    return true;
  }

  /**
   * Drops entries wholly below `startOffset` (retention removed their data) and moves the start
   * of the entry covering `startOffset` up to it, so the earliest entry never predates the log.
   */
  truncateFromStart(startOffset: number): boolean {
    assert(Number.isSafeInteger(startOffset) && startOffset >= 0, () => `bad log start offset ${startOffset}`);
    const covering = this.lastIndexWhere((entry) => entry.startOffset <= startOffset);
    if (covering < 0 || (covering === 0 && this.list[0]!.startOffset === startOffset)) return false;
    const next = this.list.slice(covering);
    next[0] = { epoch: next[0]!.epoch, startOffset };
    this.replace(next);
    return true;
  }

  /** Forgets every entry (the log was emptied). */
  clear(): boolean {
    if (this.list.length === 0) return false;
    this.replace([]);
    return true;
  }

  /** A copy of the entries, oldest first. */
  entries(): EpochEntry[] {
    return this.list.map((entry) => ({ epoch: entry.epoch, startOffset: entry.startOffset }));
  }

  get size(): number {
    return this.list.length;
  }

  /** Persists first, then switches in memory, so a failed write leaves the cache as it was. */
  private replace(next: EpochEntry[]): void {
    assert(isValidEntryList(next), () => `leader epoch entries would not be strictly increasing: ${formatEntries(next)}`);
    this.store.write(next);
    this.list = next;
  }

  /** Index of the last entry satisfying a predicate that holds for a prefix of the list; -1 if none. */
  private lastIndexWhere(predicate: (entry: EpochEntry) => boolean): number {
    let low = 0;
    let high = this.list.length - 1;
    let found = -1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      if (predicate(this.list[middle]!)) {
        found = middle;
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    return found;
  }
}

export function isValidEntryList(entries: readonly EpochEntry[]): boolean {
  if (entries.length > LEADER_EPOCH_ENTRIES_MAX) return false;
  for (let index = 0; index < entries.length; index++) {
    const entry = entries[index]!;
    if (!Number.isInteger(entry.epoch) || entry.epoch < 0 || entry.epoch > EPOCH_MAX) return false;
    if (!Number.isSafeInteger(entry.startOffset) || entry.startOffset < 0) return false;
    const previous = entries[index - 1];
    if (previous !== undefined && (entry.epoch <= previous.epoch || entry.startOffset <= previous.startOffset)) return false;
  }
  return true;
}

function formatEntries(entries: readonly EpochEntry[]): string {
  const shown = entries.slice(0, 20).map((entry) => `${entry.epoch}@${entry.startOffset}`);
  return `[${shown.join(', ')}${entries.length > shown.length ? ', ...' : ''}]`;
}

// ---------------------------------------------------------------------------------------------
// The checkpoint file

/**
 * Text, so an operator can read it: a header line, the entry count, one "epoch startOffset" line
 * per entry, then "crc <8 hex digits>" over everything before that line.
 */
export function encodeLeaderEpochCheckpoint(entries: readonly EpochEntry[]): string {
  assert(isValidEntryList(entries), 'only a valid entry list is written');
  const lines = [FORMAT_HEADER, String(entries.length), ...entries.map((entry) => `${entry.epoch} ${entry.startOffset}`)];
  const body = `${lines.join('\n')}\n`;
  return `${body}crc ${checksum(body)}\n`;
}

/** The entries of a checkpoint's text, or null when it is damaged in any way. */
export function decodeLeaderEpochCheckpoint(text: string): EpochEntry[] | null {
  const crcAt = text.lastIndexOf('crc ');
  if (crcAt < 0 || text.slice(crcAt) !== `crc ${checksum(text.slice(0, crcAt))}\n`) return null;
  const lines = text.slice(0, crcAt).split('\n');
  // The body ends with a newline, so the split leaves one empty string after the last line.
  if (lines[0] !== FORMAT_HEADER || lines.pop() !== '' || !/^\d+$/.test(lines[1] ?? '')) return null;
  const count = Number(lines[1]);
  if (count > LEADER_EPOCH_ENTRIES_MAX || lines.length !== count + 2) return null;
  const entries: EpochEntry[] = [];
  for (const line of lines.slice(2)) {
    const match = /^(\d+) (\d+)$/.exec(line);
    if (match === null) return null;
    entries.push({ epoch: Number(match[1]), startOffset: Number(match[2]) });
  }
  return isValidEntryList(entries) ? entries : null;
}

function checksum(text: string): string {
  return crc32c(Buffer.from(text, 'utf8')).toString(16).padStart(8, '0');
}

/** The checkpoint in a partition directory: null when missing or damaged (the caller rebuilds). */
export function readLeaderEpochCheckpoint(dir: string): EpochEntry[] | null {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, LEADER_EPOCH_CHECKPOINT_FILE), 'utf8');
  } catch {
    return null;
  }
  return decodeLeaderEpochCheckpoint(text);
}

/**
 * The checkpoint file of one partition directory, rewritten in place (a `RewrittenFile`: one
 * pwrite at offset 0, and an ftruncate only when the text got shorter). Not fsynced here:
 * making it durable is the owner's job (a partition log fsyncs it through `sync` in its next sync
 * round, before any batch of the new epoch counts as flushed). A crash in the middle of a write
 * leaves text whose CRC does not match (the last "crc" line is then the old one, or missing),
 * which recovery rebuilds from the batch headers, as it does for a checkpoint that lags the log.
 * Replacing the file by a renamed temporary one instead cost the event loop a file creation and
 * a rename per epoch change (about 0.5 ms each on a busy disk), and the sync round an fsync of the
 * directory.
 */
export class LeaderEpochCheckpointFile {
  private readonly file: RewrittenFile;

  constructor(dir: string) {
    this.file = new RewrittenFile(path.join(dir, LEADER_EPOCH_CHECKPOINT_FILE));
  }

  /** Writes the entries; true when the file had to be created (its directory entry is new). */
  write(entries: readonly EpochEntry[]): boolean {
    return this.file.write(Buffer.from(encodeLeaderEpochCheckpoint(entries), 'utf8'));
  }

  /** Syncs what the last write left in the file (nothing to do before the first write). */
  sync(syncFile: (fd: number) => Promise<void>): Promise<void> {
    return this.file.sync(syncFile);
  }

  /** Closes the descriptor, once the syncs in flight returned (the fd is never reused under them). */
  close(): void {
    this.file.close();
  }
}
