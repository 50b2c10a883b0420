// Zigzag varints as Kafka's RecordBatch v2 uses them (the encoding of protobuf's sint32/sint64).
// Values are plain JavaScript numbers: a varint holds a signed 32-bit integer, a varlong any safe
// integer (|v| < 2^53). Kafka's varlongs may carry full 64-bit values, but the only varlong in a
// record is a timestamp delta, and a delta beyond 2^53 ms is corrupt input for us; it is rejected
// rather than silently rounded.
//
// Reading goes through a VarintReader that tracks its position and never reads past its end, so
// a truncated or overlong varint is an error, never a wrong value, a crash or a hang.
import { RiffleError } from '../rpc/errors.js';

/** The longest encoding of a zigzag varint (a 32-bit value). */
export const VARINT_BYTES_MAX = 5;
/** The longest encoding of a zigzag varlong (a 64-bit value). */
export const VARLONG_BYTES_MAX = 10;

const TWO_POW_52 = 2 ** 52;
const TWO_POW_53 = 2 ** 53;

/** Bytes the zigzag varint encoding of a 32-bit signed value takes. */
export function varintSize(value: number): number {
  const zigzag = ((value << 1) ^ (value >> 31)) >>> 0;
  if (zigzag < 0x80) return 1;
  if (zigzag < 0x4000) return 2;
  if (zigzag < 0x20_0000) return 3;
  if (zigzag < 0x1000_0000) return 4;
  return 5;
}

/** Bytes the zigzag varlong encoding of a safe integer takes. */
export function varlongSize(value: number): number {
  if (value >= -0x4000_0000 && value < 0x4000_0000) return varintSize(value);
  let zigzag = value >= 0 ? value * 2 : -value * 2 - 1;
  let size = 1;
  while (zigzag >= 0x80) {
    zigzag = Math.floor(zigzag / 128);
    size++;
  }
  return size;
}

/** Writes a zigzag varint (32-bit signed value) at `position`; returns the position after it. */
export function writeVarint(buffer: Buffer, position: number, value: number): number {
  let zigzag = ((value << 1) ^ (value >> 31)) >>> 0;
  while (zigzag >= 0x80) {
    buffer[position++] = (zigzag & 0x7f) | 0x80;
    zigzag >>>= 7;
  }
  buffer[position++] = zigzag;
  return position;
}

/** Writes a zigzag varlong (a safe integer) at `position`; returns the position after it. */
export function writeVarlong(buffer: Buffer, position: number, value: number): number {
  if ((value | 0) === value && value >= -0x4000_0000 && value < 0x4000_0000) return writeVarint(buffer, position, value);
  // Readers reject zigzag values of 2^53 and more, so writers refuse what could not be read back.
  if (!Number.isSafeInteger(value) || value >= TWO_POW_52 || value < -TWO_POW_52) {
    throw new RiffleError('INVALID_RECORD', `varlong ${value} is outside [-2^52, 2^52)`);
  }
  let zigzag = value >= 0 ? value * 2 : -value * 2 - 1;
  while (zigzag >= 0x80) {
    buffer[position++] = (zigzag % 128) | 0x80;
    zigzag = Math.floor(zigzag / 128);
  }
  buffer[position++] = zigzag;
  return position;
}

function corrupt(message: string): RiffleError {
  return new RiffleError('CORRUPT_MESSAGE', message);
}

/**
 * Reads varints and fixed-size fields from `buffer[position, end)`. Every read checks the end
 * and throws CORRUPT_MESSAGE when the input is truncated or a varint is overlong.
 */
export class VarintReader {
  constructor(
    readonly buffer: Buffer,
    public position: number,
    public end: number,
  ) {}

  get remaining(): number {
    return this.end - this.position;
  }

  readInt8(): number {
    if (this.position >= this.end) throw corrupt('truncated record: int8 past the end');
    const byte = this.buffer[this.position++]!;
    return (byte << 24) >> 24;
  }

  /** A zigzag varint holding a signed 32-bit value. */
  readVarint(): number {
    const buffer = this.buffer;
    let position = this.position;
    if (position >= this.end) throw corrupt('truncated varint');
    let byte = buffer[position++]!;
    if (byte < 0x80) {
      this.position = position;
      return (byte >>> 1) ^ -(byte & 1);
    }
    let raw = byte & 0x7f;
    let shift = 7;
    for (;;) {
      if (position >= this.end) throw corrupt('truncated varint');
      byte = buffer[position++]!;
      if (shift === 28) {
        if (byte > 0x0f) throw corrupt('varint overflows 32 bits');
        raw = (raw | (byte << 28)) >>> 0;
        break;
      }
      raw |= (byte & 0x7f) << shift;
      if (byte < 0x80) break;
      shift += 7;
    }
    this.position = position;
    return (raw >>> 1) ^ -(raw & 1);
  }

  /** A zigzag varlong; values beyond ±2^53 are rejected as corrupt. */
  readVarlong(): number {
    const start = this.position;
    const buffer = this.buffer;
    if (start < this.end && buffer[start]! < 0x80) {
      const byte = buffer[start]!;
      this.position = start + 1;
      return (byte >>> 1) ^ -(byte & 1);
    }
    let raw = 0;
    let multiplier = 1;
    let position = start;
    for (let index = 0; ; index++) {
      if (index === VARLONG_BYTES_MAX) throw corrupt('varlong longer than 10 bytes');
      if (position >= this.end) throw corrupt('truncated varlong');
      const byte = buffer[position++]!;
      raw += (byte & 0x7f) * multiplier;
      if (byte < 0x80) break;
      multiplier *= 128;
    }
    if (raw >= TWO_POW_53) throw corrupt('varlong beyond 2^53 is not supported');
    this.position = position;
    return raw % 2 === 0 ? raw / 2 : -(raw + 1) / 2;
  }

  /** A length-prefixed byte string as a subarray (no copy), or null for length -1. */
  readBytesOrNull(what: string): Buffer | null {
    const length = this.readVarint();
    if (length === -1) return null;
    if (length < 0) throw corrupt(`negative ${what} length ${length}`);
    if (length > this.end - this.position) throw corrupt(`${what} length ${length} runs past the end of the record`);
    const start = this.position;
    this.position = start + length;
    return this.buffer.subarray(start, start + length);
  }

  /** Skips a length-prefixed byte string; returns its length (-1 for null). */
  skipBytesOrNull(what: string): number {
    const length = this.readVarint();
    if (length === -1) return -1;
    if (length < 0) throw corrupt(`negative ${what} length ${length}`);
    if (length > this.end - this.position) throw corrupt(`${what} length ${length} runs past the end of the record`);
    this.position += length;
    return length;
  }
}
