// The recovery checkpoint of a partition directory: the point below which every batch was
// fsynced and is trusted, so recovery re-verifies CRCs only from there (Kafka's recovery point,
// kept per partition rather than per log directory). `clean` marks a checkpoint written by
// close(), after which index files are complete too. The file is one line with its own CRC,
// replaced atomically by rename when durable, else overwritten in place; a missing or damaged
// file means "verify everything".
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32c } from '../../src/util/crc32c.js';

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

/**
 * Replaces the checkpoint. With `durable`, atomically: a temporary file fsynced and renamed over
 * the old one. Without, in place (truncate and write, no rename: a rename costs about a
 * millisecond of blocked event loop on some file systems, and a broker writes one per partition
 * when it starts): a crash mid-write leaves a damaged file, which means "verify everything".
 */
export function writeRecoveryCheckpoint(dir: string, point: RecoveryPoint, durable: boolean): void {
  const body = `${FORMAT_VERSION} ${point.offset} ${point.segmentBaseOffset} ${point.position} ${point.clean ? 1 : 0}`;
  const text = `${body} ${checksum(body)}\n`;
  if (!durable) {
    fs.writeFileSync(path.join(dir, RECOVERY_CHECKPOINT_FILE), text, { mode: 0o644 });
    return;
  }
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
