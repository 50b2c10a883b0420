// The recovery checkpoint of a partition directory: the point below which every batch was
// fsynced and is trusted, so recovery re-verifies CRCs only from there (Kafka's recovery point,
// kept per partition rather than per log directory). `clean` marks a checkpoint written by
// close(), after which index files are complete too. The file is one line with its own CRC,
// replaced atomically by rename when durable, else overwritten in place; a missing or damaged
// file means "verify everything".
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32c } from '../../src/util/crc32c.js';
import { RewrittenFile } from './segment-files.js';

export const RECOVERY_CHECKPOINT_FILE = 'recovery-checkpoint';
const FORMAT_VERSION = 'v1';

export interface RecoveryPoint {
  /** Offset of the first batch not known to be durable. */
  offset: number;
  /** The segment holding that batch, and its position there. */
  segmentBaseOffset: number;
  position: number;
  clean: boolean;
}

function checksum(text: string): string {
  return crc32c(Buffer.from(text, 'utf8')).toString(16).padStart(8, '0');
}

export function readRecoveryCheckpoint(dir: string): RecoveryPoint | null {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, RECOVERY_CHECKPOINT_FILE), 'utf8');
  } catch {
    return null;
  }
  const match = /^(v1 (\d+) (\d+) (\d+) ([01])) ([0-9a-f]{8})\n$/.exec(text);
  if (match === null || checksum(match[1]!) !== match[6]) return null;
  const point = { offset: Number(match[2]), segmentBaseOffset: Number(match[3]), position: Number(match[4]), clean: match[5] === '1' };
  const sane = Number.isSafeInteger(point.offset) && Number.isSafeInteger(point.position) && point.segmentBaseOffset <= point.offset;
  return sane ? point : null;
}

/** The file's text for `point`. */
export function encodeRecoveryCheckpoint(point: RecoveryPoint): string {
  const body = `${FORMAT_VERSION} ${point.offset} ${point.segmentBaseOffset} ${point.position} ${point.clean ? 1 : 0}`;
  return `${body} ${checksum(body)}\n`;
}

/**
 * The checkpoint file of one partition directory, written often (after background syncs) and
 * cheaply. A durable write goes to a temporary file, fsynced and renamed over the old one. Any
 * other write goes in place through a descriptor kept open (a `RewrittenFile`: one pwrite at
 * offset 0, and an ftruncate only when the text got shorter). Opening, truncating and closing the file for every
 * write cost the event loop about half a millisecond per partition and write (up to 9 ms while
 * the journal was busy with the partitions' fdatasyncs). A crash in the middle of an in-place
 * write leaves a damaged file, which means "verify everything".
 */
export class RecoveryCheckpointFile {
  private readonly file: RewrittenFile;

  constructor(private readonly dir: string) {
    this.file = new RewrittenFile(path.join(dir, RECOVERY_CHECKPOINT_FILE));
  }

  write(point: RecoveryPoint, durable: boolean): void {
    const text = Buffer.from(encodeRecoveryCheckpoint(point), 'utf8');
    if (durable) {
      // The rename replaces the file the open descriptor points at.
      this.file.close();
      writeDurably(this.dir, text);
      return;
    }
    this.file.write(text);
  }

  close(): void {
    this.file.close();
  }
}

function writeDurably(dir: string, text: Buffer): void {
  const temporary = path.join(dir, `${RECOVERY_CHECKPOINT_FILE}.tmp`);
  const fd = fs.openSync(temporary, 'w', 0o644);
  try {
    fs.writeSync(fd, text);
    fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temporary, path.join(dir, RECOVERY_CHECKPOINT_FILE));
}
