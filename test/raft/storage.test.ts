// The storage contract (raft/storage.ts), run against the in-memory reference and classic-level,
// plus what only a disk can show: reopening, checksums, and torn snapshot writes.
import { mkdtemp, readdir, rm, writeFile, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LevelStorage } from '../../raft/level-storage.js';
import { MemoryStorage, StorageCorruptError, type Storage } from '../../raft/storage.js';
import type { Entry } from '../../raft/types.js';

const entry = (index: number, term: number, text = `e${index}`): Entry => ({ index, term, kind: 'normal', data: Buffer.from(text) });
const range = (from: number, to: number, term: number): Entry[] => Array.from({ length: to - from + 1 }, (_, i) => entry(from + i, term));
const text = (entries: readonly Entry[]): string[] => entries.map((e) => `${e.index}/${e.term}/${Buffer.from(e.data).toString()}`);

const directories: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'riffle-raft-storage-'));
  directories.push(dir);
  return dir;
}
afterEach(async () => {
  for (const dir of directories.splice(0)) await rm(dir, { recursive: true, force: true });
});

const implementations: [string, () => Promise<Storage>][] = [
  ['memory', async () => new MemoryStorage()],
  ['classic-level', async () => LevelStorage.open(await tempDir())],
];

describe.each(implementations)('%s storage contract', (_name, create) => {
  it('starts empty', async () => {
    const storage = await create();
    const state = await storage.load();
    expect(state.hardState).toEqual({ term: 0, vote: 0, commit: 0 });
    expect(state.snapshot.meta).toEqual({ index: 0, term: 0 });
    expect(state.entries).toEqual([]);
    await storage.close();
  });

  it('appends, replaces a conflicting suffix and keeps the hard state', async () => {
    const storage = await create();
    await storage.load();
    await storage.save({ entries: range(1, 5, 1), hardState: { term: 1, vote: 1, commit: 2 } });
    await storage.save({ entries: [entry(4, 2, 'new4')], hardState: { term: 2, vote: 3, commit: 3 } });
    const state = await storage.load();
    expect(text(state.entries)).toEqual(['1/1/e1', '2/1/e2', '3/1/e3', '4/2/new4']);
    expect(state.hardState).toEqual({ term: 2, vote: 3, commit: 3 });
    await storage.close();
  });

  it('refuses entries that leave a gap', async () => {
    const storage = await create();
    await storage.load();
    await storage.save({ entries: range(1, 3, 1) });
    await expect(storage.save({ entries: [entry(5, 1)] })).rejects.toThrow(/do not continue/);
    await storage.close();
  });

  it('compacts to a local snapshot and keeps the entries after it', async () => {
    const storage = await create();
    await storage.load();
    await storage.save({ entries: range(1, 10, 1), hardState: { term: 1, vote: 1, commit: 10 } });
    await storage.saveSnapshot({ meta: { index: 6, term: 1 }, data: Buffer.from('state@6') });
    await storage.saveSnapshot({ meta: { index: 4, term: 1 }, data: Buffer.from('older') });
    const state = await storage.load();
    expect(state.snapshot.meta).toEqual({ index: 6, term: 1 });
    expect(Buffer.from(state.snapshot.data).toString()).toBe('state@6');
    expect(text(state.entries)).toEqual(['7/1/e7', '8/1/e8', '9/1/e9', '10/1/e10']);
    await storage.close();
  });

  it('replaces the whole log with a received snapshot', async () => {
    const storage = await create();
    await storage.load();
    await storage.save({ entries: range(1, 5, 1) });
    await storage.save({ snapshot: { meta: { index: 20, term: 3 }, data: Buffer.from('s20') }, entries: [entry(21, 3)], hardState: { term: 3, vote: 0, commit: 20 } });
    const state = await storage.load();
    expect(state.snapshot.meta).toEqual({ index: 20, term: 3 });
    expect(text(state.entries)).toEqual(['21/3/e21']);
    expect(state.hardState.commit).toBe(20);
    await storage.close();
  });
});

describe('classic-level storage on disk', () => {
  it('keeps everything across close and reopen', async () => {
    const dir = await tempDir();
    const first = await LevelStorage.open(dir);
    await first.load();
    await first.save({ entries: range(1, 100, 2), hardState: { term: 2, vote: 2, commit: 90 } });
    await first.saveSnapshot({ meta: { index: 50, term: 2 }, data: Buffer.from('fifty') });
    await first.close();
    const second = await LevelStorage.open(dir);
    const state = await second.load();
    expect(state.hardState).toEqual({ term: 2, vote: 2, commit: 90 });
    expect(state.snapshot.meta.index).toBe(50);
    expect(state.entries.map((e) => e.index)).toEqual(Array.from({ length: 50 }, (_, i) => 51 + i));
    await second.close();
  });

  it('refuses to load a snapshot file whose checksum does not match', async () => {
    const dir = await tempDir();
    const storage = await LevelStorage.open(dir);
    await storage.load();
    await storage.save({ entries: range(1, 3, 1), hardState: { term: 1, vote: 1, commit: 3 } });
    await storage.saveSnapshot({ meta: { index: 3, term: 1 }, data: Buffer.from('precious state') });
    await storage.close();
    const [file] = await readdir(path.join(dir, 'snapshots'));
    const bytes = await readFile(path.join(dir, 'snapshots', file!));
    bytes[25] = bytes[25]! ^ 0xff;
    await writeFile(path.join(dir, 'snapshots', file!), bytes);
    const reopened = await LevelStorage.open(dir);
    await expect(reopened.load()).rejects.toBeInstanceOf(StorageCorruptError);
    await reopened.close();
  });

  it('ignores and removes a snapshot file left behind by a crash before its batch', async () => {
    const dir = await tempDir();
    const storage = await LevelStorage.open(dir);
    await storage.load();
    await storage.save({ entries: range(1, 3, 1), hardState: { term: 1, vote: 1, commit: 3 } });
    await storage.close();
    await writeFile(path.join(dir, 'snapshots', 'snapshot-3-1.snap.tmp'), Buffer.from('torn'));
    const reopened = await LevelStorage.open(dir);
    const state = await reopened.load();
    expect(state.snapshot.meta.index).toBe(0);
    expect(state.entries.length).toBe(3);
    expect(await readdir(path.join(dir, 'snapshots'))).toEqual([]);
    await reopened.close();
  });
});
