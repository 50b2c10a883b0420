// The recovery checkpoint file: in-place writes through a kept descriptor (no open, truncate or
// rename per write), shrinking when the text gets shorter; a durable write replaces the file and
// the in-place writes after it land in the new file, not in the unlinked old one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RECOVERY_CHECKPOINT_FILE, RecoveryCheckpointFile, readRecoveryCheckpoint, type RecoveryPoint } from '../../../broker/log/recovery-checkpoint.js';
import { makeTempDir, removeDir } from './helpers.js';

let dir: string;
let file: RecoveryCheckpointFile;
beforeEach(() => {
  dir = makeTempDir();
  file = new RecoveryCheckpointFile(dir);
});
afterEach(() => {
  file.close();
  removeDir(dir);
});

const point = (offset: number, position: number, clean = false): RecoveryPoint => ({ offset, segmentBaseOffset: 0, position, clean });
const inode = (): number => fs.statSync(path.join(dir, RECOVERY_CHECKPOINT_FILE)).ino;

describe('RecoveryCheckpointFile', () => {
  it('overwrites one file in place and reads back exactly the last point, also after it got shorter', () => {
    file.write(point(1_000_000, 123_456_789), false);
    const first = inode();
    expect(readRecoveryCheckpoint(dir)).toEqual(point(1_000_000, 123_456_789));
    file.write(point(1_000_001, 123_456_900), false);
    expect(readRecoveryCheckpoint(dir)).toEqual(point(1_000_001, 123_456_900));
    // Shorter text (offsets move back after a truncation): no stale bytes left behind it.
    file.write(point(7, 80), false);
    expect(readRecoveryCheckpoint(dir)).toEqual(point(7, 80));
    expect(inode()).toBe(first);
  });

  it('replaces the file on a durable write, and later in-place writes go to the new file', () => {
    file.write(point(10, 100), false);
    const before = inode();
    file.write(point(20, 200, true), true);
    expect(inode()).not.toBe(before);
    expect(readRecoveryCheckpoint(dir)).toEqual(point(20, 200, true));
    file.write(point(30, 300), false);
    expect(readRecoveryCheckpoint(dir)).toEqual(point(30, 300));
    expect(fs.readdirSync(dir)).toEqual([RECOVERY_CHECKPOINT_FILE]);
  });

  it('takes over a longer file left by someone else without keeping its tail', () => {
    fs.writeFileSync(path.join(dir, RECOVERY_CHECKPOINT_FILE), 'x'.repeat(200));
    expect(readRecoveryCheckpoint(dir)).toBeNull();
    file.write(point(5, 50), false);
    expect(readRecoveryCheckpoint(dir)).toEqual(point(5, 50));
  });
});
