// The segment indexes' files: persist() writes only what the file lacks, and touches nothing at
// all when the file already holds every entry (each flush of every partition calls it).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OffsetIndex, TimeIndex } from '../../../broker/log/segment-index.js';
import { makeTempDir, removeDir } from './helpers.js';

let dir: string;
beforeEach(() => {
  dir = makeTempDir();
});
afterEach(() => removeDir(dir));

describe('offset index file', () => {
  it('is written once per change: a persist with nothing new does not even open it', () => {
    const file = path.join(dir, 'a.index');
    const index = new OffsetIndex(file);
    index.persist();
    expect(fs.statSync(file).size).toBe(0);
    index.append(1, 100);
    index.append(5, 300);
    index.persist();
    expect(fs.statSync(file).size).toBe(16);
    fs.rmSync(file);
    index.persist();
    expect(fs.existsSync(file)).toBe(false);
  });

  it('cuts the file after entries were dropped, and appends after it', () => {
    const file = path.join(dir, 'b.index');
    const index = new OffsetIndex(file);
    for (let entry = 1; entry <= 4; entry++) index.append(entry * 10, entry * 1000);
    index.persist();
    index.truncateToPosition(3000);
    index.persist();
    expect(fs.statSync(file).size).toBe(16);
    index.append(30, 3500);
    index.persist();
    const reloaded = new OffsetIndex(file);
    expect(reloaded.load(10_000, 100)).toBe(true);
    expect(reloaded.count).toBe(3);
    expect(reloaded.lookup(35)).toBe(3500);
    expect(reloaded.lookup(29)).toBe(2000);
  });

  it('trusts a loaded file as complete, and rewrites a damaged one', () => {
    const file = path.join(dir, 'c.index');
    const written = new OffsetIndex(file);
    written.append(2, 200);
    written.persist();
    const loaded = new OffsetIndex(file);
    expect(loaded.load(10_000, 100)).toBe(true);
    fs.rmSync(file);
    loaded.persist();
    expect(fs.existsSync(file)).toBe(false);
    fs.writeFileSync(file, Buffer.alloc(5));
    const damaged = new OffsetIndex(file);
    expect(damaged.load(10_000, 100)).toBe(false);
    damaged.persist();
    expect(fs.statSync(file).size).toBe(0);
  });
});

describe('time index file', () => {
  it('is written once per change and cut after entries were dropped', () => {
    const file = path.join(dir, 'a.timeindex');
    const index = new TimeIndex(file);
    index.maybeAppend(1_000, 1);
    index.maybeAppend(2_000, 7);
    index.persist();
    expect(fs.statSync(file).size).toBe(24);
    index.truncateToRelativeOffset(7);
    index.persist();
    expect(fs.statSync(file).size).toBe(12);
    const reloaded = new TimeIndex(file);
    expect(reloaded.load(100)).toBe(true);
    expect(reloaded.lookup(1_500)).toEqual({ timestamp: 1_000, relativeOffset: 1 });
    expect(reloaded.lookup(2_500)).toEqual({ timestamp: 1_000, relativeOffset: 1 });
    fs.rmSync(file);
    index.persist();
    reloaded.persist();
    expect(fs.existsSync(file)).toBe(false);
  });
});
