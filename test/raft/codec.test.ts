// The binary layouts of raft/codec.ts against golden bytes (codec-golden.json), plus the checks
// that make decoding refuse damaged input.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  CodecError, decodeEntries, decodeHardState, decodeSnapshotFile, encodeEntries, encodeHardState, encodeSnapshotFile,
} from '../../raft/codec.js';
import type { Entry, EntryKind } from '../../raft/types.js';

interface Golden {
  entryBatch: { entries: { index: number; term: number; kind: EntryKind; dataUtf8: string }[]; hex: string };
  hardState: { term: number; vote: number; commit: number; hex: string };
  snapshotFile: { index: number; term: number; dataUtf8: string; hex: string };
}

const golden = JSON.parse(readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), 'codec-golden.json'), 'utf8')) as Golden;
const entries: Entry[] = golden.entryBatch.entries.map((e) => ({ index: e.index, term: e.term, kind: e.kind, data: Buffer.from(e.dataUtf8) }));

describe('raft codec', () => {
  it('encodes an entry batch to the golden bytes and back', () => {
    expect(encodeEntries(entries).toString('hex')).toBe(golden.entryBatch.hex);
    const decoded = decodeEntries(Buffer.from(golden.entryBatch.hex, 'hex'));
    expect(decoded.map((e) => ({ index: e.index, term: e.term, kind: e.kind, dataUtf8: Buffer.from(e.data).toString() }))).toEqual(golden.entryBatch.entries);
  });

  it('encodes the hard state and the snapshot file to the golden bytes and back', () => {
    const { hex, ...state } = golden.hardState;
    expect(encodeHardState(state).toString('hex')).toBe(hex);
    expect(decodeHardState(Buffer.from(hex, 'hex'))).toEqual(state);
    const snapshot = { meta: { index: golden.snapshotFile.index, term: golden.snapshotFile.term }, data: Buffer.from(golden.snapshotFile.dataUtf8) };
    expect(encodeSnapshotFile(snapshot).toString('hex')).toBe(golden.snapshotFile.hex);
    expect(decodeSnapshotFile(Buffer.from(golden.snapshotFile.hex, 'hex')).meta).toEqual(snapshot.meta);
  });

  it('stores a recovering node\'s hard state in a 17th byte, and reads the 16-byte form as not recovering', () => {
    const { hex, ...state } = golden.hardState;
    const recovering = encodeHardState({ ...state, recovering: true });
    expect(recovering.toString('hex')).toBe(`${hex}01`);
    expect(decodeHardState(recovering)).toEqual({ ...state, recovering: true });
    expect(decodeHardState(Buffer.from(hex, 'hex')).recovering).toBeUndefined();
    expect(() => decodeHardState(Buffer.from(`${hex}02`, 'hex'))).toThrow(CodecError);
    expect(() => decodeHardState(Buffer.from(`${hex}0100`, 'hex'))).toThrow(CodecError);
  });

  it('refuses truncated, non-contiguous and corrupted input', () => {
    const batch = Buffer.from(golden.entryBatch.hex, 'hex');
    expect(() => decodeEntries(batch.subarray(0, batch.length - 1))).toThrow(CodecError);
    const gap = encodeEntries([entries[0]!, { ...entries[1]!, index: 5 }]);
    expect(() => decodeEntries(gap)).toThrow(/not contiguous/);
    const file = Buffer.from(golden.snapshotFile.hex, 'hex');
    file[22] ^= 0x01;
    expect(() => decodeSnapshotFile(file)).toThrow(/checksum/);
  });
});
