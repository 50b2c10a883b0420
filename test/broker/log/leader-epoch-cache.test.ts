// The leader-epoch cache on its own: assignment rules, Kafka's OffsetsForLeaderEpoch answers
// (including the KIP-101 and KIP-279 divergence scenarios), truncation from both ends, the
// checkpoint file format, and a write-through store that fails.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  LEADER_EPOCH_CHECKPOINT_FILE, LeaderEpochCache, decodeLeaderEpochCheckpoint, encodeLeaderEpochCheckpoint,
  readLeaderEpochCheckpoint, LeaderEpochCheckpointFile, type EpochEntry, type EpochStore,
} from '../../../broker/log/leader-epoch-cache.js';
import { crc32c } from '../../../src/util/crc32c.js';
import { makeTempDir, removeDir } from './helpers.js';

function cacheOf(...pairs: Array<[number, number]>): LeaderEpochCache {
  return new LeaderEpochCache(pairs.map(([epoch, startOffset]) => ({ epoch, startOffset })));
}

function pairsOf(cache: LeaderEpochCache): Array<[number, number]> {
  return cache.entries().map((entry) => [entry.epoch, entry.startOffset]);
}

/** A store that remembers what it was asked to write. */
class RecordingStore implements EpochStore {
  writes: EpochEntry[][] = [];
  failNext = false;

  write(entries: readonly EpochEntry[]): void {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk full');
    }
    this.writes.push(entries.map((entry) => ({ ...entry })));
  }
}

describe('assign', () => {
  it('records only epochs newer than the latest, at offsets not below the latest start', () => {
    const store = new RecordingStore();
    const cache = new LeaderEpochCache([], store);
    expect(cache.latestEpoch()).toBe(-1);
    expect(cache.assign(0, 0)).toBe(true);
    expect(cache.assign(0, 5)).toBe(false);
    expect(cache.assign(2, 10)).toBe(true);
    expect(cache.assign(1, 12)).toBe(false);
    expect(cache.assign(2, 20)).toBe(false);
    expect(pairsOf(cache)).toEqual([[0, 0], [2, 10]]);
    expect(cache.latestEpoch()).toBe(2);
    expect(store.writes).toEqual([[{ epoch: 0, startOffset: 0 }], [{ epoch: 0, startOffset: 0 }, { epoch: 2, startOffset: 10 }]]);
    expect(() => cache.assign(3, 9)).toThrow(/starts before epoch 2/);
    expect(() => cache.assign(-1, 30)).toThrow(/bad leader epoch/);
  });

  it('replaces the latest epoch when a newer one starts at the same offset (it wrote nothing)', () => {
    const cache = cacheOf([0, 0], [1, 10]);
    expect(cache.assign(3, 10)).toBe(true);
    expect(pairsOf(cache)).toEqual([[0, 0], [3, 10]]);
  });

  it('rejects entry lists that are not strictly increasing in both fields', () => {
    expect(() => cacheOf([1, 0], [1, 5])).toThrow(/strictly increasing/);
    expect(() => cacheOf([1, 5], [2, 5])).toThrow(/strictly increasing/);
    expect(() => cacheOf([2, 0], [1, 5])).toThrow(/strictly increasing/);
  });

  it('tells which epoch wrote an offset', () => {
    const cache = cacheOf([0, 0], [1, 10], [2, 20]);
    expect([0, 9, 10, 19, 20, 1000].map((offset) => cache.epochForOffset(offset))).toEqual([0, 0, 1, 1, 2, 2]);
    expect(cacheOf([3, 50]).epochForOffset(49)).toBe(-1);
  });
});

describe('endOffsetFor (OffsetsForLeaderEpoch)', () => {
  const leader = cacheOf([0, 0], [1, 10], [2, 20]);
  const logEndOffset = 35;

  it('answers the start of the next epoch for an older epoch (KIP-101)', () => {
    expect(leader.endOffsetFor(0, logEndOffset)).toEqual({ epoch: 0, endOffset: 10 });
    expect(leader.endOffsetFor(1, logEndOffset)).toEqual({ epoch: 1, endOffset: 20 });
  });

  it('answers the log end offset for the latest epoch', () => {
    expect(leader.endOffsetFor(2, logEndOffset)).toEqual({ epoch: 2, endOffset: 35 });
  });

  it('answers the largest epoch below an epoch the leader never had (KIP-279)', () => {
    // Leader: epochs 0 and 2 (it missed epoch 1, whose leader wrote 10..14 and crashed).
    const skipping = cacheOf([0, 0], [2, 10]);
    expect(skipping.endOffsetFor(1, 30)).toEqual({ epoch: 0, endOffset: 10 });
    const gaps = cacheOf([0, 0], [2, 20], [4, 30]);
    expect(gaps.endOffsetFor(3, 40)).toEqual({ epoch: 2, endOffset: 30 });
  });

  it('answers undefined for -1, an empty cache and an epoch newer than any known', () => {
    expect(leader.endOffsetFor(-1, logEndOffset)).toEqual({ epoch: -1, endOffset: -1 });
    expect(leader.endOffsetFor(3, logEndOffset)).toEqual({ epoch: -1, endOffset: -1 });
    expect(new LeaderEpochCache().endOffsetFor(0, 0)).toEqual({ epoch: -1, endOffset: -1 });
  });

  it('answers the requested epoch and the earliest start for an epoch older than any kept (Kafka)', () => {
    // Retention removed epochs 0 and 1: the follower must keep nothing before the leader's start.
    const trimmed = cacheOf([2, 100], [3, 150]);
    expect(trimmed.endOffsetFor(1, 200)).toEqual({ epoch: 1, endOffset: 100 });
  });

  it('lets a follower find where it diverged: the KIP-101 fast-failover scenario', () => {
    // Follower B wrote 0..9 in epoch 0 and 10..14 in epoch 1 (never replicated); leader A took
    // over in epoch 2 from offset 10. B asks for the end of its epoch 1: A never had epoch 1.
    const leaderA = cacheOf([0, 0], [2, 10]);
    const followerB = cacheOf([0, 0], [1, 10]);
    const answer = leaderA.endOffsetFor(followerB.latestEpoch(), 25);
    expect(answer).toEqual({ epoch: 0, endOffset: 10 });
    // KIP-279: B then truncates to the smaller of that and its own end of the answered epoch.
    const own = followerB.endOffsetFor(answer.epoch, 15);
    const truncation = Math.min(answer.endOffset, own.endOffset);
    expect(truncation).toBe(10);
    followerB.truncateFromEnd(truncation);
    expect(pairsOf(followerB)).toEqual([[0, 0]]);
  });
});

describe('truncation', () => {
  it('truncates from the end: drops entries starting at or after the offset', () => {
    const cache = cacheOf([0, 0], [1, 10], [2, 20]);
    expect(cache.truncateFromEnd(30)).toBe(false);
    expect(cache.truncateFromEnd(20)).toBe(true);
    expect(pairsOf(cache)).toEqual([[0, 0], [1, 10]]);
    expect(cache.truncateFromEnd(11)).toBe(false);
    expect(cache.truncateFromEnd(0)).toBe(true);
    expect(cache.entries()).toEqual([]);
    expect(cache.latestEpoch()).toBe(-1);
  });

  it('truncates from the start: keeps the entry covering the new start, moved up to it', () => {
    const cache = cacheOf([0, 0], [1, 10], [2, 20]);
    expect(cache.truncateFromStart(0)).toBe(false);
    expect(cache.truncateFromStart(15)).toBe(true);
    expect(pairsOf(cache)).toEqual([[1, 15], [2, 20]]);
    expect(cache.truncateFromStart(20)).toBe(true);
    expect(pairsOf(cache)).toEqual([[2, 20]]);
    expect(cache.truncateFromStart(20)).toBe(false);
    expect(cache.truncateFromStart(90)).toBe(true);
    expect(pairsOf(cache)).toEqual([[2, 90]]);
    expect(cacheOf([5, 100]).truncateFromStart(50)).toBe(false);
  });

  it('leaves memory unchanged when the store fails', () => {
    const store = new RecordingStore();
    const cache = new LeaderEpochCache([{ epoch: 0, startOffset: 0 }, { epoch: 1, startOffset: 10 }], store);
    store.failNext = true;
    expect(() => cache.truncateFromEnd(5)).toThrow(/disk full/);
    expect(pairsOf(cache)).toEqual([[0, 0], [1, 10]]);
    store.failNext = true;
    expect(() => cache.assign(2, 20)).toThrow(/disk full/);
    expect(cache.latestEpoch()).toBe(1);
    expect(store.writes).toEqual([]);
  });
});

describe('checkpoint file', () => {
  let dir: string;
  beforeEach(() => {
    dir = makeTempDir();
  });
  afterEach(() => removeDir(dir));

  it('round-trips entries through a readable text file rewritten in place, creating it once', () => {
    const file = new LeaderEpochCheckpointFile(dir);
    const entries = [{ epoch: 0, startOffset: 0 }, { epoch: 3, startOffset: 1234 }, { epoch: 2 ** 31 - 1, startOffset: 2 ** 53 - 1 }];
    expect(file.write(entries)).toBe(true);
    expect(readLeaderEpochCheckpoint(dir)).toEqual(entries);
    const checkpoint = path.join(dir, LEADER_EPOCH_CHECKPOINT_FILE);
    const text = fs.readFileSync(checkpoint, 'utf8');
    expect(text.split('\n').slice(0, 3)).toEqual(['riffle-leader-epochs v1', '3', '0 0']);
    const inode = fs.statSync(checkpoint).ino;
    // Shorter text: the file is cut to it, so no tail of the longer one is left behind.
    expect(file.write([])).toBe(false);
    expect(readLeaderEpochCheckpoint(dir)).toEqual([]);
    expect(fs.statSync(checkpoint).size).toBe(encodeLeaderEpochCheckpoint([]).length);
    expect(file.write(entries.slice(0, 2))).toBe(false);
    expect(readLeaderEpochCheckpoint(dir)).toEqual(entries.slice(0, 2));
    expect(fs.statSync(checkpoint).ino).toBe(inode);
    expect(fs.readdirSync(dir)).toEqual([LEADER_EPOCH_CHECKPOINT_FILE]);
    file.close();
    // A new object opens the existing file (not created) and still cuts what it leaves behind.
    const again = new LeaderEpochCheckpointFile(dir);
    expect(again.write([{ epoch: 9, startOffset: 5 }])).toBe(false);
    expect(readLeaderEpochCheckpoint(dir)).toEqual([{ epoch: 9, startOffset: 5 }]);
    again.close();
  });

  it('reads a write cut short over a longer checkpoint as damaged, never as other entries', () => {
    const file = new LeaderEpochCheckpointFile(dir);
    const long = encodeLeaderEpochCheckpoint([{ epoch: 1, startOffset: 0 }, { epoch: 2, startOffset: 50 }, { epoch: 3, startOffset: 90 }]);
    file.write([{ epoch: 1, startOffset: 0 }, { epoch: 2, startOffset: 50 }, { epoch: 3, startOffset: 90 }]);
    file.close();
    // A crash between the in-place write of a shorter text and the cut leaves the old tail.
    const short = encodeLeaderEpochCheckpoint([{ epoch: 1, startOffset: 0 }]);
    for (let written = 0; written <= short.length; written++) {
      const left = short.slice(0, written) + long.slice(written);
      fs.writeFileSync(path.join(dir, LEADER_EPOCH_CHECKPOINT_FILE), left);
      // Until the new text differs from the old one, the file is the old checkpoint, intact.
      if (left === long) expect(readLeaderEpochCheckpoint(dir)).toEqual(decodeLeaderEpochCheckpoint(long));
      else expect(readLeaderEpochCheckpoint(dir), `${written} bytes written`).toBeNull();
    }
  });

  it('reads a missing file as null', () => {
    expect(readLeaderEpochCheckpoint(dir)).toBeNull();
  });

  it('rejects every single-byte change and every truncation', () => {
    const text = encodeLeaderEpochCheckpoint([{ epoch: 1, startOffset: 10 }, { epoch: 4, startOffset: 77 }]);
    expect(decodeLeaderEpochCheckpoint(text)).not.toBeNull();
    for (let index = 0; index < text.length; index++) {
      const flipped = text.slice(0, index) + String.fromCharCode(text.charCodeAt(index) ^ 0x01) + text.slice(index + 1);
      expect(decodeLeaderEpochCheckpoint(flipped), `byte ${index}`).toBeNull();
      expect(decodeLeaderEpochCheckpoint(text.slice(0, index)), `length ${index}`).toBeNull();
    }
  });

  it('rejects a correctly checksummed file whose entries are not increasing', () => {
    const body = 'riffle-leader-epochs v1\n2\n3 10\n2 20\n';
    const sealed = `${body}crc ${crc32c(Buffer.from(body)).toString(16).padStart(8, '0')}\n`;
    expect(decodeLeaderEpochCheckpoint(sealed)).toBeNull();
    const good = 'riffle-leader-epochs v1\n2\n2 10\n3 20\n';
    expect(decodeLeaderEpochCheckpoint(`${good}crc ${crc32c(Buffer.from(good)).toString(16).padStart(8, '0')}\n`)).toEqual([{ epoch: 2, startOffset: 10 }, { epoch: 3, startOffset: 20 }]);
  });
});
