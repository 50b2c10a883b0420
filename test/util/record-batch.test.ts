// The RecordBatch v2 codec against golden bytes written field by field from Kafka's published
// format description, round trips (fixed and seeded-random), and malformed input, which must
// always end in a RiffleError, never a crash, a wrong answer or a hang.
import { describe, expect, it } from 'vitest';
import { RiffleError } from '../../src/rpc/errors.js';
import { crc32c } from '../../src/util/crc32c.js';
import { Prng } from '../../src/util/prng.js';
import {
  ATTRIBUTE_CONTROL,
  BATCH_HEADER_BYTES,
  RecordBatchBuilder,
  decodeAllRecords,
  decodeRecords,
  forEachRecordOfAll,
  encodeRecordBatch,
  iterateBatches,
  readBatchHeader,
  stampBatch,
  validateProducedBatches,
  verifyBatchCrc,
  type RecordInput,
} from '../../src/util/record-batch.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/#[^\n]*/g, '').replace(/\s+/g, ''), 'hex');

// Two records, the second with a null key; headers on both; idempotent producer fields set.
const GOLDEN_RECORDS_HEX = `
  20          # record 0 length varint: 16 (zigzag 32)
  00          # attributes
  00          # timestampDelta varlong 0
  00          # offsetDelta varint 0
  04 6b31     # keyLength 2, "k1"
  04 7631     # valueLength 2, "v1"
  02          # headers count 1
  04 6831     # header key length 2, "h1"
  04 6876     # header value length 2, "hv"
  1e          # record 1 length varint: 15 (zigzag 30)
  00          # attributes
  0a          # timestampDelta varlong 5 (zigzag 10)
  02          # offsetDelta varint 1
  01          # keyLength -1: null key
  0c 76616c756532  # valueLength 6, "value2"
  02          # headers count 1
  02 6e       # header key length 1, "n"
  01          # header value length -1: null value
`;
const GOLDEN_HEX = `
  0000000000000000  # baseOffset 0
  00000052          # batchLength 82 = 94 - 12
  ffffffff          # partitionLeaderEpoch -1 (not yet stamped)
  02                # magic 2
  cd5f1dd5          # crc: CRC-32C of attributes .. end
  0000              # attributes: no compression, create time, not transactional
  00000001          # lastOffsetDelta 1
  0000018bcfe56800  # baseTimestamp 1700000000000
  0000018bcfe56805  # maxTimestamp 1700000000005
  00000000000004d2  # producerId 1234
  0005              # producerEpoch 5
  00000007          # baseSequence 7
  00000002          # recordsCount 2
  ${GOLDEN_RECORDS_HEX}
`;

const GOLDEN_INPUT: RecordInput[] = [
  { key: Buffer.from('k1'), value: Buffer.from('v1'), headers: [{ key: 'h1', value: Buffer.from('hv') }], timestamp: 1_700_000_000_000 },
  { key: null, value: Buffer.from('value2'), headers: [{ key: 'n', value: null }], timestamp: 1_700_000_000_005 },
];
const GOLDEN_OPTIONS = { producerId: 1234, producerEpoch: 5, baseSequence: 7 };

/** Bit-at-a-time CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), independent of the codec's. */
function referenceCrc32c(data: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** A batch around hand-written record bytes, with a correct CRC, for malformed-record tests. */
function rawBatch(recordsHex: string, recordsCount: number, attributes = 0): Buffer {
  const records = hex(recordsHex);
  const batch = Buffer.alloc(BATCH_HEADER_BYTES + records.length);
  batch.writeInt32BE(batch.length - 12, 8);
  batch.writeInt32BE(-1, 12);
  batch.writeInt8(2, 16);
  batch.writeInt16BE(attributes, 21);
  batch.writeInt32BE(recordsCount - 1, 23);
  batch.writeInt32BE(-1, 43);
  batch.writeInt32BE(-1, 47);
  batch.writeInt16BE(-1, 51);
  batch.writeInt32BE(-1, 53);
  batch.writeInt32BE(recordsCount, 57);
  records.copy(batch, BATCH_HEADER_BYTES);
  return recrc(batch);
}

function recrc(batch: Buffer, position = 0): Buffer {
  const end = position + 12 + batch.readInt32BE(position + 8);
  batch.writeUInt32BE(referenceCrc32c(batch.subarray(position + 21, end)), position + 17);
  return batch;
}

function expectRiffleError(action: () => unknown, errorName?: string): void {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(RiffleError);
    if (errorName !== undefined) expect((error as RiffleError).errorName).toBe(errorName);
    return;
  }
  throw new Error('expected a RiffleError, nothing was thrown');
}

function smallRecords(count: number, timestamp = 1_000): RecordInput[] {
  return Array.from({ length: count }, (_, index) => ({ key: Buffer.from(`k${index}`), value: Buffer.from(`value-${index}`), timestamp: timestamp + index }));
}

describe('RecordBatch v2 golden bytes', () => {
  it('the reference CRC-32C matches the standard check value', () => {
    expect(referenceCrc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  it('encodes two records, a null key, headers and producer fields byte for byte', () => {
    const expected = hex(GOLDEN_HEX);
    expect(expected.length).toBe(94);
    const encoded = encodeRecordBatch(GOLDEN_INPUT, GOLDEN_OPTIONS);
    expect(encoded.toString('hex')).toBe(expected.toString('hex'));
    expect(referenceCrc32c(expected.subarray(21))).toBe(0xcd5f1dd5);
    expect(encoded.readUInt32BE(17)).toBe(0xcd5f1dd5);
  });

  it('parses the golden header', () => {
    expect(readBatchHeader(hex(GOLDEN_HEX))).toEqual({
      baseOffset: 0, batchLength: 82, partitionLeaderEpoch: -1, magic: 2, crc: 0xcd5f1dd5, attributes: 0, lastOffsetDelta: 1,
      baseTimestamp: 1_700_000_000_000, maxTimestamp: 1_700_000_000_005, producerId: 1234, producerEpoch: 5, baseSequence: 7, recordsCount: 2,
    });
  });

  it('decodes the golden records as views into the buffer', () => {
    const golden = hex(GOLDEN_HEX);
    const records = decodeRecords(golden);
    expect(records).toEqual([
      { offset: 0, timestamp: 1_700_000_000_000, key: Buffer.from('k1'), value: Buffer.from('v1'), headers: [{ key: 'h1', value: Buffer.from('hv') }] },
      { offset: 1, timestamp: 1_700_000_000_005, key: null, value: Buffer.from('value2'), headers: [{ key: 'n', value: null }] },
    ]);
    expect(records[1]!.value!.buffer).toBe(golden.buffer);
    verifyBatchCrc(golden);
  });

  it('stamps base offset and leader epoch without touching the CRC-covered bytes', () => {
    const golden = hex(GOLDEN_HEX);
    stampBatch(golden, 0, 42, 3);
    expect(golden.subarray(0, 8).toString('hex')).toBe('000000000000002a');
    expect(golden.readInt32BE(12)).toBe(3);
    expect(golden.subarray(16).equals(hex(GOLDEN_HEX).subarray(16))).toBe(true);
    verifyBatchCrc(golden);
    expect(decodeRecords(golden).map((record) => record.offset)).toEqual([42, 43]);
  });
});

describe('RecordBatch v2 round trips', () => {
  it('keeps empty versus null keys and values, large values, unicode header keys and negative deltas', () => {
    const big = Buffer.alloc(70_000, 0xab);
    const input: RecordInput[] = [
      { key: Buffer.alloc(0), value: null, timestamp: 5_000 },
      { key: null, value: Buffer.alloc(0), timestamp: 4_000 },
      { key: Buffer.from('big'), value: big, timestamp: 6_000, headers: [{ key: 'ключ-🔑', value: Buffer.from([0, 1, 2]) }, { key: '', value: null }] },
    ];
    const batch = encodeRecordBatch(input, { baseOffset: 2 ** 40 });
    const header = readBatchHeader(batch);
    expect(header.baseTimestamp).toBe(5_000);
    expect(header.maxTimestamp).toBe(6_000);
    expect(header.baseOffset).toBe(2 ** 40);
    const records = decodeRecords(batch);
    expect(records.map((record) => record.timestamp)).toEqual([5_000, 4_000, 6_000]);
    expect(records.map((record) => record.offset)).toEqual([2 ** 40, 2 ** 40 + 1, 2 ** 40 + 2]);
    expect(records[0]!.key).toEqual(Buffer.alloc(0));
    expect(records[0]!.value).toBeNull();
    expect(records[1]!.key).toBeNull();
    expect(records[1]!.value).toEqual(Buffer.alloc(0));
    expect(records[2]!.value!.equals(big)).toBe(true);
    expect(records[2]!.headers).toEqual(input[2]!.headers);
    expect(validateProducedBatches(batch, { maxBatchBytes: 1 << 20 }).records).toBe(3);
  });

  it('encodes many records with multi-byte varints and grows its buffer', () => {
    const builder = new RecordBatchBuilder({ nowMs: 77 }, 64);
    for (let index = 0; index < 20_000; index++) builder.append({ key: null, value: Buffer.from([index & 0xff]) });
    expect(builder.count).toBe(20_000);
    const batch = builder.build();
    expect(builder.sizeBytes).toBe(batch.length);
    const records = decodeRecords(batch);
    expect(records.length).toBe(20_000);
    expect(records[19_999]).toMatchObject({ offset: 19_999, timestamp: 77 });
    expect(records[300]!.value![0]).toBe(300 & 0xff);
  });

  it('reports log-append time as every record timestamp', () => {
    const batch = encodeRecordBatch(smallRecords(3, 100), { timestampType: 'log-append' });
    expect(readBatchHeader(batch).attributes & 0x08).toBe(0x08);
    expect(decodeRecords(batch).map((record) => record.timestamp)).toEqual([102, 102, 102]);
  });

  it('rejects an empty batch and a build after build', () => {
    expectRiffleError(() => encodeRecordBatch([]), 'INVALID_RECORD');
    const builder = new RecordBatchBuilder();
    builder.append({ key: null, value: null });
    builder.build();
    expect(() => builder.append({ key: null, value: null })).toThrow(/after build/);
  });

  it('survives seeded random round trips', () => {
    const seed = Number(process.env.RIFFLE_SEED ?? Date.now() % 0x7fffffff);
    console.log(`record-batch random round trips: RIFFLE_SEED=${seed}`);
    const prng = new Prng(seed);
    const randomBytes = (): Buffer | null => {
      if (prng.chance(0.1)) return null;
      const bytes = Buffer.alloc(prng.chance(0.05) ? prng.int(200, 5_000) : prng.int(0, 60));
      for (let index = 0; index < bytes.length; index++) bytes[index] = prng.int(0, 256);
      return bytes;
    };
    for (let round = 0; round < 100; round++) {
      const baseTimestamp = prng.int(0, 2 ** 31) * 1_000;
      const input: RecordInput[] = Array.from({ length: prng.int(1, 50) }, () => ({
        key: randomBytes(),
        value: randomBytes(),
        timestamp: baseTimestamp + prng.int(-100_000, 100_000),
        headers: Array.from({ length: prng.int(0, 3) }, () => ({ key: `h${prng.int(0, 1_000_000)}`, value: randomBytes() })),
      }));
      const baseOffset = prng.int(0, 2 ** 31);
      const batch = encodeRecordBatch(input, { baseOffset, producerId: prng.int(-1, 1000), producerEpoch: prng.int(-1, 100), baseSequence: prng.int(-1, 1000) });
      verifyBatchCrc(batch);
      const decoded = decodeRecords(batch);
      expect(decoded.length, `seed ${seed} round ${round}`).toBe(input.length);
      decoded.forEach((record, index) => {
        const original = input[index]!;
        expect(record.offset).toBe(baseOffset + index);
        expect(record.timestamp).toBe(original.timestamp);
        expect(record.key).toEqual(original.key);
        expect(record.value).toEqual(original.value);
        expect(record.headers).toEqual(original.headers);
      });
      validateProducedBatches(batch, { maxBatchBytes: 1 << 20 });
    }
  });
});

describe('iterating and decoding fetch responses', () => {
  it('iterates whole batches and ignores a trailing partial one', () => {
    const first = encodeRecordBatch(smallRecords(3), { baseOffset: 10 });
    const second = encodeRecordBatch(smallRecords(2), { baseOffset: 13 });
    const third = encodeRecordBatch(smallRecords(4), { baseOffset: 15 });
    for (const cut of [0, 5, 12, 30, third.length - 1]) {
      const buffer = Buffer.concat([first, second, third.subarray(0, cut)]);
      const positions = [...iterateBatches(buffer)].map((batch) => [batch.position, batch.header.baseOffset]);
      expect(positions).toEqual([[0, 10], [first.length, 13]]);
      expect([...decodeAllRecords(buffer)].map((record) => record.offset)).toEqual([10, 11, 12, 13, 14]);
    }
  });

  it('hands the same records to a sink as the generator yields', () => {
    const buffer = Buffer.concat([hex(GOLDEN_HEX), encodeRecordBatch(smallRecords(5), { baseOffset: 2 })]);
    const seen: unknown[] = [];
    const count = forEachRecordOfAll(buffer, (offset, timestamp, key, value, headers) => seen.push({ offset, timestamp, key, value, headers }));
    expect(count).toBe(7);
    expect(seen).toEqual([...decodeAllRecords(buffer)]);
  });

  it('skips control batches when decoding for consumers', () => {
    const control = rawBatch('10 00 00 00 01 04 0000 00', 1, ATTRIBUTE_CONTROL);
    const data = encodeRecordBatch(smallRecords(2), { baseOffset: 1 });
    expect([...decodeAllRecords(Buffer.concat([control, data]))].map((record) => record.offset)).toEqual([1, 2]);
  });

  it('refuses to decode a batch whose CRC fails', () => {
    const batch = encodeRecordBatch(smallRecords(2));
    batch[batch.length - 3]! ^= 0x01;
    expectRiffleError(() => [...decodeAllRecords(batch)], 'CORRUPT_MESSAGE');
  });
});

describe('validating produced batches', () => {
  const limits = { maxBatchBytes: 10_000 };

  it('summarizes valid batches', () => {
    const first = encodeRecordBatch(smallRecords(3));
    const second = encodeRecordBatch(smallRecords(4, 50));
    const summary = validateProducedBatches(Buffer.concat([first, second]), limits);
    expect(summary.batches).toBe(2);
    expect(summary.records).toBe(7);
    expect(summary.firstHeader.recordsCount).toBe(3);
    expect(summary.lastHeader.maxTimestamp).toBe(53);
  });

  it('answers every rule violation with its typed error', () => {
    const good = encodeRecordBatch(smallRecords(3));
    const mutate = (edit: (batch: Buffer) => void, fixCrc = true): Buffer => {
      const batch = Buffer.from(good);
      edit(batch);
      return fixCrc ? recrc(batch) : batch;
    };
    expectRiffleError(() => validateProducedBatches(Buffer.alloc(0), limits), 'INVALID_RECORD');
    expectRiffleError(() => validateProducedBatches(Buffer.concat([good, good.subarray(0, 20)]), limits), 'CORRUPT_MESSAGE');
    expectRiffleError(() => validateProducedBatches(Buffer.concat([good, good.subarray(0, 70)]), limits), 'CORRUPT_MESSAGE');
    expectRiffleError(() => validateProducedBatches(mutate((batch) => (batch[70]! ^= 0x10), false), limits), 'CORRUPT_MESSAGE');
    expectRiffleError(() => validateProducedBatches(mutate((batch) => batch.writeInt8(1, 16)), limits), 'CORRUPT_MESSAGE');
    expectRiffleError(() => validateProducedBatches(mutate((batch) => batch.writeInt16BE(1, 21)), limits), 'INVALID_RECORD');
    expectRiffleError(() => validateProducedBatches(mutate((batch) => batch.writeInt16BE(ATTRIBUTE_CONTROL, 21)), limits), 'INVALID_RECORD');
    expectRiffleError(() => validateProducedBatches(mutate((batch) => batch.writeInt32BE(5, 23)), limits), 'INVALID_RECORD');
    expectRiffleError(() => validateProducedBatches(mutate((batch) => { batch.writeInt32BE(4, 57); batch.writeInt32BE(3, 23); }), limits), 'CORRUPT_MESSAGE');
    expectRiffleError(() => validateProducedBatches(mutate((batch) => batch.writeInt32BE(0, 39)), limits), 'INVALID_RECORD');
    expectRiffleError(() => validateProducedBatches(good, { maxBatchBytes: good.length - 1 }), 'MESSAGE_TOO_LARGE');
    const zeroRecords = rawBatch('', 0);
    expectRiffleError(() => validateProducedBatches(zeroRecords, limits), 'INVALID_RECORD');
    // Offset deltas must run 0, 1, 2...: here the only record claims delta 1.
    expectRiffleError(() => validateProducedBatches(rawBatch('0c 00 00 02 01 01 00', 1), limits), 'INVALID_RECORD');
  });

  it('leaves a rejected request untouched', () => {
    const good = encodeRecordBatch(smallRecords(3));
    const bad = Buffer.concat([good, Buffer.from(good.subarray(0, 30))]);
    const before = Buffer.from(bad);
    expectRiffleError(() => validateProducedBatches(bad, limits));
    expect(bad.equals(before)).toBe(true);
  });
});

describe('malformed input never crashes or hangs', () => {
  const decoders: Array<[string, (buffer: Buffer) => unknown]> = [
    ['readBatchHeader', (buffer) => readBatchHeader(buffer)],
    ['verifyBatchCrc', (buffer) => verifyBatchCrc(buffer)],
    ['decodeRecords', (buffer) => decodeRecords(buffer)],
    ['decodeAllRecords', (buffer) => [...decodeAllRecords(buffer, { verifyCrc: false })]],
    ['forEachRecordOfAll', (buffer) => forEachRecordOfAll(buffer, () => {}, { verifyCrc: false })],
    ['validateProducedBatches', (buffer) => validateProducedBatches(buffer, { maxBatchBytes: 1 << 20 })],
  ];

  it('rejects every truncation of the golden batch', () => {
    const golden = hex(GOLDEN_HEX);
    for (let length = 0; length < golden.length; length++) {
      const truncated = golden.subarray(0, length);
      expectRiffleError(() => decodeRecords(truncated), 'CORRUPT_MESSAGE');
      expectRiffleError(() => verifyBatchCrc(truncated), 'CORRUPT_MESSAGE');
      expectRiffleError(() => validateProducedBatches(truncated, { maxBatchBytes: 1000 }));
    }
  });

  it('rejects a bad magic, short and negative batch lengths and a bad CRC', () => {
    const golden = hex(GOLDEN_HEX);
    const badMagic = Buffer.from(golden);
    badMagic.writeInt8(1, 16);
    expectRiffleError(() => readBatchHeader(badMagic), 'CORRUPT_MESSAGE');
    for (const length of [-1, -(2 ** 31), 0, 48]) {
      const badLength = Buffer.from(golden);
      badLength.writeInt32BE(length, 8);
      expectRiffleError(() => readBatchHeader(badLength), 'CORRUPT_MESSAGE');
      expectRiffleError(() => [...iterateBatches(badLength)], 'CORRUPT_MESSAGE');
    }
    const longLength = Buffer.from(golden);
    longLength.writeInt32BE(2 ** 31 - 1, 8);
    expectRiffleError(() => decodeRecords(longLength), 'CORRUPT_MESSAGE');
    const badCrc = Buffer.from(golden);
    badCrc[93]! ^= 0x80;
    expectRiffleError(() => verifyBatchCrc(badCrc), 'CORRUPT_MESSAGE');
  });

  it('rejects overlong varints, negative lengths and lengths past the record', () => {
    const cases: Array<[string, string]> = [
      ['offset delta varint of six bytes', '10 00 00 ffffffffff01 00 00 00'],
      ['offset delta varint overflowing 32 bits', '0e 00 00 ffffffff1f 00 00 00'],
      ['timestamp varlong of eleven bytes', '14 00 ffffffffffffffffffff01 00 00 00 00'],
      ['key length -2', '0c 00 00 00 03 00 00'],
      ['value length -5', '0c 00 00 00 01 09 00'],
      ['key length past the record', '0c 00 00 00 14 00 00'],
      ['record length past the batch', '7e 00 00 00 01 01 00'],
      ['negative record length', '03 00 00 00 01 01 00'],
      ['record longer than its fields', '10 00 00 00 01 01 00 0000'],
      ['negative header count', '0c 00 00 00 01 01 01'],
      ['header count beyond the record', '0c 00 00 00 01 01 7e'],
      ['null header key', '10 00 00 00 01 01 02 01 01'],
      ['truncated varint at the end of the record', '08 00 00 00 80'],
    ];
    for (const [name, recordsHex] of cases) {
      const batch = rawBatch(recordsHex, 1);
      for (const [decoderName, decode] of decoders.slice(2)) {
        try {
          decode(batch);
          throw new Error(`${name}: ${decoderName} accepted it`);
        } catch (error) {
          expect(error, `${name}: ${decoderName}: ${String(error)}`).toBeInstanceOf(RiffleError);
        }
      }
    }
  });

  it('answers random corruption with RiffleError only', () => {
    const seed = Number(process.env.RIFFLE_SEED ?? Date.now() % 0x7fffffff);
    console.log(`record-batch fuzz: RIFFLE_SEED=${seed}`);
    const prng = new Prng(seed);
    const golden = hex(GOLDEN_HEX);
    const bigger = encodeRecordBatch([...GOLDEN_INPUT, ...smallRecords(20, 1_700_000_000_100)], GOLDEN_OPTIONS);
    for (let round = 0; round < 3_000; round++) {
      const damaged = Buffer.from(prng.chance(0.5) ? golden : bigger);
      const flips = prng.int(1, 4);
      for (let flip = 0; flip < flips; flip++) damaged[prng.int(0, damaged.length)] = prng.int(0, 256);
      if (prng.chance(0.5)) recrc(damaged.subarray(0, damaged.length));
      for (const [name, decode] of decoders) {
        try {
          decode(damaged);
        } catch (error) {
          if (!(error instanceof RiffleError)) throw new Error(`seed ${seed} round ${round} ${name}: ${String(error)}`);
        }
      }
    }
  });
});
