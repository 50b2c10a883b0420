// File names and small file helpers of a partition directory. A segment is named by
// its base offset as 20 zero-padded digits (Kafka's naming), so names sort in offset order.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { assert } from '../../src/util/assert.js';

export const LOG_SUFFIX = '.log';
export const INDEX_SUFFIX = '.index';
export const TIME_INDEX_SUFFIX = '.timeindex';
const NAME_DIGITS = 20;
const SEGMENT_NAME = /^(\d{20})\.log$/;

export function segmentFileName(baseOffset: number, suffix: string): string {
  assert(Number.isSafeInteger(baseOffset) && baseOffset >= 0, () => `bad segment base offset ${baseOffset}`);
  return String(baseOffset).padStart(NAME_DIGITS, '0') + suffix;
}

export function segmentPath(dir: string, baseOffset: number, suffix: string): string {
  return path.join(dir, segmentFileName(baseOffset, suffix));
}

/** Base offsets of the segments among a directory's entry names, ascending. */
export function segmentBaseOffsetsIn(names: readonly string[]): number[] {
  const bases: number[] = [];
  for (const name of names) {
    const match = SEGMENT_NAME.exec(name);
    if (match !== null) bases.push(Number(match[1]));
  }
  return bases.sort((left, right) => left - right);
}

/** Removes, among the entries `names` of `dir`, index files without a log file and temporary files left by a crash. */
export function removeStrayFiles(dir: string, names: readonly string[], bases: readonly number[]): void {
  const known = new Set(bases.map((base) => String(base).padStart(NAME_DIGITS, '0')));
  for (const name of names) {
    const isIndex = name.endsWith(INDEX_SUFFIX) || name.endsWith(TIME_INDEX_SUFFIX);
    const stem = name.slice(0, NAME_DIGITS);
    if ((isIndex && !known.has(stem)) || name.endsWith('.tmp')) fs.rmSync(path.join(dir, name), { force: true });
  }
}

/**
 * A descriptor that sync rounds fdatasync on the thread pool (and the scrubber reads there),
 * closed only once no such call of it is in flight: the number of a closed fd goes to the next
 * file opened, and a sync or read still queued would then flush, read (or fail on) that file
 * instead.
 */
export class SyncedDescriptor {
  private callsInFlight = 0;
  private closeRequested = false;
  private open = true;

  constructor(readonly fd: number) {}

  /** Open and not asked to close. */
  get isOpen(): boolean {
    return this.open && !this.closeRequested;
  }

  get isClosed(): boolean {
    return !this.open;
  }

  /** Runs `operation` (an fdatasync, a read) on the fd on the thread pool; a close meanwhile waits for it. */
  async use<T>(operation: (fd: number) => Promise<T>): Promise<T> {
    this.callsInFlight++;
    try {
      return await operation(this.fd);
    } finally {
      this.callsInFlight--;
      if (this.closeRequested && this.callsInFlight === 0) this.closeNow();
    }
  }

  /** Closes the fd now, or once the syncs in flight returned. */
  close(): void {
    this.closeRequested = true;
    if (this.callsInFlight === 0) this.closeNow();
  }

  private closeNow(): void {
    if (!this.open) return;
    this.open = false;
    fs.closeSync(this.fd);
  }
}

/**
 * A small file rewritten whole and in place through a descriptor kept open: one positioned write
 * at offset 0, and an ftruncate only when the text got shorter (the length is tracked, read once
 * when the file is opened). No open, creation or rename per write, which is what keeps the
 * checkpoints that use it cheap for the event loop. A crash in the middle of a write leaves the
 * new text's beginning over the old text's end, so the format must detect that (both checkpoint
 * files carry a CRC). Its owner makes it durable, when it wants to, through `sync`.
 */
export class RewrittenFile {
  private file: SyncedDescriptor | null = null;
  /** Bytes in the file as this object last left it. */
  private length = 0;

  constructor(readonly path: string) {}

  /** Writes `text` as the whole file; true when the file had to be created (its directory entry is new). */
  write(text: Buffer): boolean {
    let created = false;
    if (this.file === null) created = this.openFile();
    const fd = this.file!.fd;
    writeFully(fd, text, 0);
    if (this.length > text.length) fs.ftruncateSync(fd, text.length);
    this.length = text.length;
    return created;
  }

  /** Syncs what the last write left in the file (nothing to do before the first write). */
  sync(syncFile: (fd: number) => Promise<void>): Promise<void> {
    return this.file?.use(syncFile) ?? Promise.resolve();
  }

  /** Closes the descriptor, once the syncs in flight returned; the next write opens the file again. */
  close(): void {
    this.file?.close();
    this.file = null;
  }

  private openFile(): boolean {
    let fd: number;
    let created = false;
    try {
      fd = fs.openSync(this.path, fs.constants.O_WRONLY);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      fd = fs.openSync(this.path, fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o644);
      created = true;
    }
    this.file = new SyncedDescriptor(fd);
    this.length = fs.fstatSync(fd).size;
    return created;
  }
}

export function unlinkIfExists(file: string): void {
  fs.rmSync(file, { force: true });
}

/** Reads exactly `length` bytes at `position`, or fewer only at the end of the file. */
export function readFully(fd: number, buffer: Buffer, offset: number, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const bytes = fs.readSync(fd, buffer, offset + done, length - done, position + done);
    if (bytes === 0) break;
    done += bytes;
  }
  return done;
}

export function writeFully(fd: number, buffer: Buffer, position: number): void {
  let done = 0;
  while (done < buffer.length) done += fs.writeSync(fd, buffer, done, buffer.length - done, position + done);
}
