// Zigzag varints: sizes, boundary values, and rejection of truncated or overlong encodings.
import { describe, expect, it } from 'vitest';
import { RiffleError } from '../../src/rpc/errors.js';
import { VarintReader, varintSize, varlongSize, writeVarint, writeVarlong } from '../../src/util/varint.js';

const INT32_VALUES = [0, 1, -1, 63, -64, 64, -65, 8191, 8192, -8193, 2 ** 20, 2 ** 27, -(2 ** 28), 2 ** 31 - 1, -(2 ** 31)];
const LONG_VALUES = [...INT32_VALUES, 2 ** 31, -(2 ** 31) - 1, 2 ** 40, -(2 ** 45), 1_700_000_000_000, Number.MAX_SAFE_INTEGER >> 0, 2 ** 52 - 1, -(2 ** 52)];

describe('zigzag varints', () => {
  it('encodes zigzag values as protobuf sint32 does', () => {
    const buffer = Buffer.alloc(10);
    expect(buffer.subarray(0, writeVarint(buffer, 0, 0)).toString('hex')).toBe('00');
    expect(buffer.subarray(0, writeVarint(buffer, 0, -1)).toString('hex')).toBe('01');
    expect(buffer.subarray(0, writeVarint(buffer, 0, 1)).toString('hex')).toBe('02');
    expect(buffer.subarray(0, writeVarint(buffer, 0, 64)).toString('hex')).toBe('8001');
    expect(buffer.subarray(0, writeVarint(buffer, 0, -(2 ** 31))).toString('hex')).toBe('ffffffff0f');
  });

  it('round-trips boundary values with the predicted sizes', () => {
    const buffer = Buffer.alloc(10);
    for (const value of INT32_VALUES) {
      const end = writeVarint(buffer, 0, value);
      expect(end, `size of ${value}`).toBe(varintSize(value));
      const reader = new VarintReader(buffer, 0, end);
      expect(reader.readVarint()).toBe(value);
      expect(reader.position).toBe(end);
    }
    for (const value of LONG_VALUES) {
      const end = writeVarlong(buffer, 0, value);
      expect(end, `size of ${value}`).toBe(varlongSize(value));
      expect(new VarintReader(buffer, 0, end).readVarlong()).toBe(value);
    }
  });

  it('refuses to write varlongs it could not read back', () => {
    const buffer = Buffer.alloc(10);
    expect(() => writeVarlong(buffer, 0, 2 ** 52)).toThrow(RiffleError);
    expect(() => writeVarlong(buffer, 0, -(2 ** 52) - 1)).toThrow(RiffleError);
    expect(() => writeVarlong(buffer, 0, 0.5)).toThrow(RiffleError);
  });

  it('rejects truncated and overlong encodings with CORRUPT_MESSAGE', () => {
    const cases: Array<[string, (reader: VarintReader) => number]> = [
      ['80', (reader) => reader.readVarint()],
      ['ffffffff10', (reader) => reader.readVarint()],
      ['ffffffffff01', (reader) => reader.readVarint()],
      ['', (reader) => reader.readVarint()],
      ['ffffffffffffffffff', (reader) => reader.readVarlong()],
      ['ffffffffffffffffffff01', (reader) => reader.readVarlong()],
      ['ffffffffffffffff7f', (reader) => reader.readVarlong()],
    ];
    for (const [hex, read] of cases) {
      const buffer = Buffer.from(hex, 'hex');
      expect(() => read(new VarintReader(buffer, 0, buffer.length)), hex).toThrow(RiffleError);
    }
  });
});
