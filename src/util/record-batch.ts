// Kafka's RecordBatch v2 (magic 2): the one byte format Riffle stores, replicates and serves, so
// a future Kafka-wire-protocol listener can hand stored bytes to Kafka clients unchanged. This
// module owns encoding (RecordBatchBuilder), header parsing, CRC-32C checks, the broker-side
// validation of produced batches, offset stamping and record decoding. It lives in src/util
// because the client SDK encodes and decodes batches too.
//
// Layout (big-endian; see ../shared/reference/record-batch-v2.md):
//   0 baseOffset int64 | 8 batchLength int32 | 12 partitionLeaderEpoch int32 | 16 magic int8 |
//   17 crc uint32 | 21 attributes int16 | 23 lastOffsetDelta int32 | 27 baseTimestamp int64 |
//   35 maxTimestamp int64 | 43 producerId int64 | 51 producerEpoch int16 | 53 baseSequence int32 |
//   57 recordsCount int32 | 61 records
// The CRC covers attributes to the end, so baseOffset and partitionLeaderEpoch can be stamped by
// the broker without recomputing it.
//
// Departures from Kafka: int64 fields are JavaScript numbers (safe up to 2^53; offsets and
// timestamps never get near that); compression is not supported yet (a compressed batch is
// INVALID_RECORD); varlongs beyond 2^53 are rejected as corrupt.
import { RiffleError } from '../rpc/errors.js';
import { assert } from './assert.js';
import { crc32c } from './crc32c.js';
import { VarintReader, varintSize, varlongSize, writeVarint, writeVarlong } from './varint.js';

export interface RecordHeader {
  key: string;
  value: Buffer | null;
}

export interface RecordInput {
  key: Buffer | null;
  value: Buffer | null;
  headers?: RecordHeader[];
  /** Create time in ms since the epoch; defaults to the builder's `nowMs` or Date.now(). */
  timestamp?: number;
}

export interface BatchHeader {
  baseOffset: number;
  batchLength: number;
  partitionLeaderEpoch: number;
  magic: number;
  crc: number;
  attributes: number;
  lastOffsetDelta: number;
  baseTimestamp: number;
  maxTimestamp: number;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  recordsCount: number;
}

export interface DecodedRecord {
  offset: number;
  timestamp: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: RecordHeader[];
}

export interface RecordBatchOptions {
  baseOffset?: number;
  partitionLeaderEpoch?: number;
  producerId?: number;
  producerEpoch?: number;
  baseSequence?: number;
  timestampType?: 'create' | 'log-append';
  /** The timestamp given to records without one (default: Date.now() at append). */
  nowMs?: number;
}

/** Size of the fixed batch header; records start here (Kafka's RECORDS_OFFSET). */
export const BATCH_HEADER_BYTES = 61;
/** Bytes before batchLength's coverage starts: baseOffset + batchLength (Kafka's LOG_OVERHEAD). */
export const LOG_OVERHEAD_BYTES = 12;
export const MAGIC_V2 = 2;
/** Largest batch the builder produces; the broker's own limit (max.message.bytes) is far lower. */
export const BUILDER_BATCH_BYTES_MAX = 256 * 1024 * 1024;

export const ATTRIBUTE_COMPRESSION_MASK = 0x07;
export const ATTRIBUTE_LOG_APPEND_TIME = 0x08;
export const ATTRIBUTE_TRANSACTIONAL = 0x10;
export const ATTRIBUTE_CONTROL = 0x20;

// Field positions inside a batch.
const BASE_OFFSET_AT = 0;
const BATCH_LENGTH_AT = 8;
const LEADER_EPOCH_AT = 12;
const MAGIC_AT = 16;
const CRC_AT = 17;
const ATTRIBUTES_AT = 21;
const LAST_OFFSET_DELTA_AT = 23;
const BASE_TIMESTAMP_AT = 27;
const MAX_TIMESTAMP_AT = 35;
const PRODUCER_ID_AT = 43;
const PRODUCER_EPOCH_AT = 51;
const BASE_SEQUENCE_AT = 53;
const RECORDS_COUNT_AT = 57;
/** batchLength of a batch with no records: everything after the batchLength field. */
const BATCH_LENGTH_MIN = BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES;
const TWO_POW_32 = 0x1_0000_0000;
const BUILDER_INITIAL_BYTES = 16 * 1024;

function corrupt(message: string): RiffleError {
  return new RiffleError('CORRUPT_MESSAGE', message);
}

function invalid(message: string): RiffleError {
  return new RiffleError('INVALID_RECORD', message);
}

function readInt64(buffer: Buffer, position: number): number {
  return buffer.readInt32BE(position) * TWO_POW_32 + buffer.readUInt32BE(position + 4);
}

function writeInt64(buffer: Buffer, position: number, value: number): void {
  assert(Number.isSafeInteger(value), () => `int64 field ${value} is not a safe integer`);
  const high = Math.floor(value / TWO_POW_32);
  buffer.writeInt32BE(high, position);
  buffer.writeUInt32BE(value - high * TWO_POW_32, position + 4);
}

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * Builds one batch by writing records straight into a growing buffer. Offsets inside the batch
 * are 0..count-1 (offset deltas); the broker stamps the base offset on append.
 */
export class RecordBatchBuilder {
  private buffer: Buffer;
  private position = BATCH_HEADER_BYTES;
  private recordsCount = 0;
  private baseTimestamp = 0;
  private maxTimestamp = -1;
  private built = false;
  private readonly options: RecordBatchOptions;
  private readonly headerKeyBytes: number[] = [];

  constructor(options: RecordBatchOptions = {}, initialCapacityBytes = BUILDER_INITIAL_BYTES) {
    this.options = options;
    this.buffer = Buffer.allocUnsafe(Math.max(initialCapacityBytes, BATCH_HEADER_BYTES + 64));
  }

  get count(): number {
    return this.recordsCount;
  }

  /** Bytes the batch would take if built now. */
  get sizeBytes(): number {
    return this.position;
  }

  append(record: RecordInput): void {
    assert(!this.built, 'append after build');
    const timestamp = record.timestamp ?? this.options.nowMs ?? Date.now();
    if (!Number.isSafeInteger(timestamp)) throw new RiffleError('INVALID_TIMESTAMP', `timestamp ${timestamp} is not an integer`);
    if (this.recordsCount === 0) this.baseTimestamp = timestamp;
    const timestampDelta = timestamp - this.baseTimestamp;
    const offsetDelta = this.recordsCount;
    const key = record.key;
    const value = record.value;
    const keyLength = key === null ? -1 : key.length;
    const valueLength = value === null ? -1 : value.length;
    const headers = record.headers;
    const headersBytes = headers === undefined || headers.length === 0 ? 1 : this.measureHeaders(headers);
    const bodyBytes =
      1 + varlongSize(timestampDelta) + varintSize(offsetDelta) + varintSize(keyLength) + (keyLength > 0 ? keyLength : 0) +
      varintSize(valueLength) + (valueLength > 0 ? valueLength : 0) + headersBytes;
    this.ensureCapacity(varintSize(bodyBytes) + bodyBytes);
    const buffer = this.buffer;
    let position = writeVarint(buffer, this.position, bodyBytes);
    buffer[position++] = 0; // record attributes, unused
    position = writeVarlong(buffer, position, timestampDelta);
    position = writeVarint(buffer, position, offsetDelta);
    position = writeBytes(buffer, position, key);
    position = writeBytes(buffer, position, value);
    position = headersBytes === 1 ? writeVarint(buffer, position, 0) : this.writeHeaders(position, headers!);
    assert(position === this.position + varintSize(bodyBytes) + bodyBytes, 'record size mismatch');
    this.position = position;
    this.recordsCount++;
    if (timestamp > this.maxTimestamp || this.recordsCount === 1) this.maxTimestamp = timestamp;
  }

  /** Finishes the batch: writes the header and CRC. The builder cannot be used afterwards. */
  build(): Buffer {
    assert(!this.built, 'build called twice');
    if (this.recordsCount === 0) throw invalid('a record batch needs at least one record');
    this.built = true;
    const options = this.options;
    const buffer = this.buffer;
    const attributes = options.timestampType === 'log-append' ? ATTRIBUTE_LOG_APPEND_TIME : 0;
    writeInt64(buffer, BASE_OFFSET_AT, options.baseOffset ?? 0);
    buffer.writeInt32BE(this.position - LOG_OVERHEAD_BYTES, BATCH_LENGTH_AT);
    buffer.writeInt32BE(options.partitionLeaderEpoch ?? -1, LEADER_EPOCH_AT);
    buffer.writeInt8(MAGIC_V2, MAGIC_AT);
    buffer.writeInt16BE(attributes, ATTRIBUTES_AT);
    buffer.writeInt32BE(this.recordsCount - 1, LAST_OFFSET_DELTA_AT);
    writeInt64(buffer, BASE_TIMESTAMP_AT, this.baseTimestamp);
    writeInt64(buffer, MAX_TIMESTAMP_AT, this.maxTimestamp);
    writeInt64(buffer, PRODUCER_ID_AT, options.producerId ?? -1);
    buffer.writeInt16BE(options.producerEpoch ?? -1, PRODUCER_EPOCH_AT);
    buffer.writeInt32BE(options.baseSequence ?? -1, BASE_SEQUENCE_AT);
    buffer.writeInt32BE(this.recordsCount, RECORDS_COUNT_AT);
    const batch = buffer.subarray(0, this.position);
    batch.writeUInt32BE(crc32c(batch.subarray(ATTRIBUTES_AT)), CRC_AT);
    return batch;
  }

  private measureHeaders(headers: RecordHeader[]): number {
    const keyBytes = this.headerKeyBytes;
    keyBytes.length = 0;
    let size = varintSize(headers.length);
    for (const header of headers) {
      const keyLength = Buffer.byteLength(header.key, 'utf8');
      keyBytes.push(keyLength);
      const valueLength = header.value === null ? -1 : header.value.length;
      size += varintSize(keyLength) + keyLength + varintSize(valueLength) + (valueLength > 0 ? valueLength : 0);
    }
    return size;
  }

  private writeHeaders(position: number, headers: RecordHeader[]): number {
    const buffer = this.buffer;
    position = writeVarint(buffer, position, headers.length);
    for (let index = 0; index < headers.length; index++) {
      const header = headers[index]!;
      const keyLength = this.headerKeyBytes[index]!;
      position = writeVarint(buffer, position, keyLength);
      position += buffer.write(header.key, position, keyLength, 'utf8');
      position = writeBytes(buffer, position, header.value);
    }
    return position;
  }

  private ensureCapacity(extraBytes: number): void {
    const needed = this.position + extraBytes;
    if (needed <= this.buffer.length) return;
    if (needed > BUILDER_BATCH_BYTES_MAX) {
      throw new RiffleError('MESSAGE_TOO_LARGE', `record batch would exceed ${BUILDER_BATCH_BYTES_MAX} bytes`);
    }
    const grown = Buffer.allocUnsafe(Math.min(BUILDER_BATCH_BYTES_MAX, Math.max(needed, this.buffer.length * 2)));
    this.buffer.copy(grown, 0, 0, this.position);
    this.buffer = grown;
  }
}

function writeBytes(buffer: Buffer, position: number, bytes: Buffer | null): number {
  if (bytes === null) return writeVarint(buffer, position, -1);
  position = writeVarint(buffer, position, bytes.length);
  const length = bytes.length;
  if (length < 32) {
    // Small copies are cheaper as a loop than as a call into the runtime.
    for (let index = 0; index < length; index++) buffer[position + index] = bytes[index]!;
  } else {
    buffer.set(bytes, position);
  }
  return position + length;
}

/** Encodes records as one batch. */
export function encodeRecordBatch(records: RecordInput[], options: RecordBatchOptions = {}): Buffer {
  const builder = new RecordBatchBuilder(options, estimateBatchBytes(records));
  for (const record of records) builder.append(record);
  return builder.build();
}

function estimateBatchBytes(records: RecordInput[]): number {
  let bytes = BATCH_HEADER_BYTES;
  for (const record of records) bytes += 16 + (record.key?.length ?? 0) + (record.value?.length ?? 0);
  return Math.min(bytes, BUILDER_BATCH_BYTES_MAX);
}

// ---------------------------------------------------------------------------------------------
// Headers, CRC, iteration

/** Parses the fixed header at `position`. Checks length and magic, not the CRC. */
export function readBatchHeader(buffer: Buffer, position = 0): BatchHeader {
  if (!(position >= 0) || buffer.length - position < BATCH_HEADER_BYTES) {
    throw corrupt(`record batch header truncated: ${buffer.length - position} bytes at position ${position}`);
  }
  const magic = buffer.readInt8(position + MAGIC_AT);
  if (magic !== MAGIC_V2) throw corrupt(`record batch magic ${magic} is not 2`);
  const batchLength = buffer.readInt32BE(position + BATCH_LENGTH_AT);
  if (batchLength < BATCH_LENGTH_MIN) throw corrupt(`record batch length ${batchLength} is below ${BATCH_LENGTH_MIN}`);
  return {
    baseOffset: readInt64(buffer, position + BASE_OFFSET_AT),
    batchLength,
    partitionLeaderEpoch: buffer.readInt32BE(position + LEADER_EPOCH_AT),
    magic,
    crc: buffer.readUInt32BE(position + CRC_AT),
    attributes: buffer.readInt16BE(position + ATTRIBUTES_AT),
    lastOffsetDelta: buffer.readInt32BE(position + LAST_OFFSET_DELTA_AT),
    baseTimestamp: readInt64(buffer, position + BASE_TIMESTAMP_AT),
    maxTimestamp: readInt64(buffer, position + MAX_TIMESTAMP_AT),
    producerId: readInt64(buffer, position + PRODUCER_ID_AT),
    producerEpoch: buffer.readInt16BE(position + PRODUCER_EPOCH_AT),
    baseSequence: buffer.readInt32BE(position + BASE_SEQUENCE_AT),
    recordsCount: buffer.readInt32BE(position + RECORDS_COUNT_AT),
  };
}

/** Total bytes of the batch at `position` (batchLength + 12); reads only the length field. */
export function batchSizeAt(buffer: Buffer, position: number): number {
  return buffer.readInt32BE(position + BATCH_LENGTH_AT) + LOG_OVERHEAD_BYTES;
}

/** Checks the CRC-32C of the whole batch at `position`; throws CORRUPT_MESSAGE. */
export function verifyBatchCrc(buffer: Buffer, position = 0): void {
  const header = readBatchHeader(buffer, position);
  const end = position + LOG_OVERHEAD_BYTES + header.batchLength;
  if (end > buffer.length) throw corrupt(`record batch at ${position} is truncated: needs ${end - position} bytes, has ${buffer.length - position}`);
  const actual = crc32c(buffer.subarray(position + ATTRIBUTES_AT, end));
  if (actual !== header.crc) {
    throw corrupt(`record batch at offset ${header.baseOffset} failed its CRC check (stored ${header.crc}, computed ${actual})`);
  }
}

/**
 * Every whole batch in `buffer`, in order. A trailing partial batch (fewer than 12 bytes, or a
 * batchLength reaching past the end) is ignored, as a Kafka fetch response may end with one. A
 * whole batch with a bad magic or a too-short length throws CORRUPT_MESSAGE.
 */
export function* iterateBatches(buffer: Buffer): Generator<{ position: number; header: BatchHeader }> {
  let position = 0;
  while (buffer.length - position >= LOG_OVERHEAD_BYTES) {
    const batchLength = buffer.readInt32BE(position + BATCH_LENGTH_AT);
    if (batchLength >= BATCH_LENGTH_MIN && position + LOG_OVERHEAD_BYTES + batchLength > buffer.length) return;
    const header = readBatchHeader(buffer, position);
    yield { position, header };
    position += LOG_OVERHEAD_BYTES + header.batchLength;
  }
}

/** Writes the broker-assigned base offset and leader epoch; both lie outside the CRC. */
export function stampBatch(buffer: Buffer, position: number, baseOffset: number, partitionLeaderEpoch: number): void {
  assert(buffer.length - position >= BATCH_HEADER_BYTES, 'stampBatch past the end');
  assert(Number.isSafeInteger(baseOffset) && baseOffset >= 0, () => `bad base offset ${baseOffset}`);
  writeInt64(buffer, position + BASE_OFFSET_AT, baseOffset);
  buffer.writeInt32BE(partitionLeaderEpoch, position + LEADER_EPOCH_AT);
}

/**
 * Marks the batch at `position` as LOG_APPEND_TIME with `timestampMs` as its time (Kafka's
 * message.timestamp.type=LogAppendTime: every record reads back with the batch's max timestamp)
 * and recomputes the CRC, which covers both fields.
 */
export function stampLogAppendTime(buffer: Buffer, position: number, timestampMs: number): void {
  const header = readBatchHeader(buffer, position);
  const end = position + LOG_OVERHEAD_BYTES + header.batchLength;
  assert(end <= buffer.length, 'stampLogAppendTime past the end');
  buffer.writeInt16BE(header.attributes | ATTRIBUTE_LOG_APPEND_TIME, position + ATTRIBUTES_AT);
  writeInt64(buffer, position + BASE_TIMESTAMP_AT, timestampMs);
  writeInt64(buffer, position + MAX_TIMESTAMP_AT, timestampMs);
  buffer.writeUInt32BE(crc32c(buffer.subarray(position + ATTRIBUTES_AT, end)), position + CRC_AT);
}

// ---------------------------------------------------------------------------------------------
// Broker-side validation

export interface ProducedBatchesSummary {
  batches: number;
  records: number;
  firstHeader: BatchHeader;
  lastHeader: BatchHeader;
}

/**
 * Validates a produce request's batches before the broker assigns offsets: whole batches only,
 * magic 2, CRC, no compression, no control batches, recordsCount == lastOffsetDelta + 1 > 0,
 * records well formed with offset deltas 0..n-1, maxTimestamp matching the records (create time),
 * each batch within `maxBatchBytes`. Throws CORRUPT_MESSAGE (bytes do not parse or fail the CRC),
 * INVALID_RECORD (parses but breaks a rule) or MESSAGE_TOO_LARGE.
 */
export function validateProducedBatches(buffer: Buffer, limits: { maxBatchBytes: number }): ProducedBatchesSummary {
  if (buffer.length === 0) throw invalid('the produce request holds no record batch');
  let position = 0;
  let batches = 0;
  let records = 0;
  let firstHeader: BatchHeader | undefined;
  let lastHeader: BatchHeader | undefined;
  while (position < buffer.length) {
    if (buffer.length - position < BATCH_HEADER_BYTES) throw corrupt(`trailing ${buffer.length - position} bytes are not a whole record batch`);
    const header = readBatchHeader(buffer, position);
    const batchBytes = LOG_OVERHEAD_BYTES + header.batchLength;
    if (batchBytes > limits.maxBatchBytes) {
      throw new RiffleError('MESSAGE_TOO_LARGE', `record batch of ${batchBytes} bytes exceeds the limit of ${limits.maxBatchBytes}`);
    }
    verifyBatchCrc(buffer, position);
    validateBatchRules(header);
    validateRecords(buffer, position, header);
    firstHeader ??= header;
    lastHeader = header;
    batches++;
    records += header.recordsCount;
    position += batchBytes;
  }
  assert(firstHeader !== undefined && lastHeader !== undefined, 'no batch validated');
  return { batches, records, firstHeader, lastHeader };
}

function validateBatchRules(header: BatchHeader): void {
  const compression = header.attributes & ATTRIBUTE_COMPRESSION_MASK;
  if (compression !== 0) throw invalid(`compression codec ${compression} is not supported yet`);
  if ((header.attributes & ATTRIBUTE_CONTROL) !== 0) throw invalid('producers may not send control batches');
  if (header.recordsCount <= 0) throw invalid(`record batch holds ${header.recordsCount} records`);
  if (header.recordsCount !== header.lastOffsetDelta + 1) {
    throw invalid(`recordsCount ${header.recordsCount} does not match lastOffsetDelta ${header.lastOffsetDelta}`);
  }
  if (!Number.isSafeInteger(header.baseTimestamp) || !Number.isSafeInteger(header.maxTimestamp)) {
    throw new RiffleError('INVALID_TIMESTAMP', 'batch timestamps are out of range');
  }
}

/** Walks every record without allocating: structure, offset deltas and the max timestamp. */
function validateRecords(buffer: Buffer, position: number, header: BatchHeader): void {
  const batchEnd = position + LOG_OVERHEAD_BYTES + header.batchLength;
  const reader = new VarintReader(buffer, position + BATCH_HEADER_BYTES, batchEnd);
  let maxTimestamp = -Infinity;
  for (let index = 0; index < header.recordsCount; index++) {
    const recordEnd = readRecordBoundary(reader, batchEnd);
    reader.readInt8();
    const timestamp = header.baseTimestamp + reader.readVarlong();
    if (timestamp > maxTimestamp) maxTimestamp = timestamp;
    const offsetDelta = reader.readVarint();
    if (offsetDelta !== index) throw invalid(`record ${index} has offset delta ${offsetDelta}`);
    reader.skipBytesOrNull('key');
    reader.skipBytesOrNull('value');
    const headersCount = readHeadersCount(reader);
    for (let headerIndex = 0; headerIndex < headersCount; headerIndex++) {
      if (reader.skipBytesOrNull('header key') < 0) throw corrupt('record header key is null');
      reader.skipBytesOrNull('header value');
    }
    finishRecord(reader, recordEnd, batchEnd);
  }
  if (reader.position !== batchEnd) throw corrupt(`record batch has ${batchEnd - reader.position} bytes after its last record`);
  const logAppendTime = (header.attributes & ATTRIBUTE_LOG_APPEND_TIME) !== 0;
  if (!logAppendTime && maxTimestamp !== header.maxTimestamp) {
    throw invalid(`batch maxTimestamp ${header.maxTimestamp} differs from its records' maximum ${maxTimestamp}`);
  }
}

/** Reads a record's length prefix and narrows the reader to the record; returns its end. */
function readRecordBoundary(reader: VarintReader, batchEnd: number): number {
  reader.end = batchEnd;
  const length = reader.readVarint();
  if (length <= 0 || length > reader.remaining) throw corrupt(`record length ${length} does not fit the batch`);
  const recordEnd = reader.position + length;
  reader.end = recordEnd;
  return recordEnd;
}

function readHeadersCount(reader: VarintReader): number {
  const count = reader.readVarint();
  // Every header takes at least two bytes, which bounds the loop by the record's size.
  if (count < 0 || count * 2 > reader.remaining) throw corrupt(`record header count ${count} is invalid`);
  return count;
}

function finishRecord(reader: VarintReader, recordEnd: number, batchEnd: number): void {
  if (reader.position !== recordEnd) throw corrupt(`record ends ${recordEnd - reader.position} bytes after its fields`);
  reader.end = batchEnd;
}

// ---------------------------------------------------------------------------------------------
// Decoding

/**
 * Decodes the records of the one batch at `position`. Keys, values and header values are
 * subarrays of `buffer` (no copies). Does not check the CRC (see verifyBatchCrc).
 */
export function decodeRecords(buffer: Buffer, position = 0): DecodedRecord[] {
  const records: DecodedRecord[] = [];
  forEachRecord(buffer, position, (offset, timestamp, key, value, headers) => {
    records.push({ offset, timestamp, key, value, headers });
  });
  return records;
}

/** Receives one decoded record; see forEachRecord. */
export type RecordSink = (offset: number, timestamp: number, key: Buffer | null, value: Buffer | null, headers: RecordHeader[]) => void;

/**
 * Decodes one batch and hands each record's fields to `sink`, without building an intermediate
 * object per record: consumers build their own record type straight from the fields. Returns
 * the number of records. key/value are subarrays of `buffer` (no copies).
 */
export function forEachRecord(buffer: Buffer, position: number, sink: RecordSink): number {
  const header = readBatchHeader(buffer, position);
  const batchEnd = position + LOG_OVERHEAD_BYTES + header.batchLength;
  if (batchEnd > buffer.length) throw corrupt(`record batch at ${position} is truncated`);
  const compression = header.attributes & ATTRIBUTE_COMPRESSION_MASK;
  if (compression !== 0) throw invalid(`compression codec ${compression} is not supported yet`);
  if (header.recordsCount < 0) throw corrupt(`negative records count ${header.recordsCount}`);
  const logAppendTime = (header.attributes & ATTRIBUTE_LOG_APPEND_TIME) !== 0;
  const reader = new VarintReader(buffer, position + BATCH_HEADER_BYTES, batchEnd);
  for (let index = 0; index < header.recordsCount; index++) {
    const recordEnd = readRecordBoundary(reader, batchEnd);
    reader.readInt8();
    const timestampDelta = reader.readVarlong();
    const offsetDelta = reader.readVarint();
    const key = reader.readBytesOrNull('key');
    const value = reader.readBytesOrNull('value');
    const headers = readHeaders(reader);
    finishRecord(reader, recordEnd, batchEnd);
    sink(header.baseOffset + offsetDelta, logAppendTime ? header.maxTimestamp : header.baseTimestamp + timestampDelta, key, value, headers);
  }
  if (reader.position !== batchEnd) throw corrupt(`record batch has ${batchEnd - reader.position} bytes after its last record`);
  return header.recordsCount;
}

/** Shared by every record without headers; frozen so no caller can add to it. */
const NO_HEADERS: RecordHeader[] = Object.freeze([]) as unknown as RecordHeader[];

function readHeaders(reader: VarintReader): RecordHeader[] {
  const count = readHeadersCount(reader);
  if (count === 0) return NO_HEADERS;
  const headers: RecordHeader[] = [];
  for (let index = 0; index < count; index++) {
    const key = reader.readBytesOrNull('header key');
    if (key === null) throw corrupt('record header key is null');
    headers.push({ key: key.toString('utf8'), value: reader.readBytesOrNull('header value') });
  }
  return headers;
}

/**
 * Every record of every whole batch in `buffer` (a fetch response), CRC-checked, skipping
 * control batches. A trailing partial batch is ignored.
 */
export function forEachRecordOfAll(buffer: Buffer, sink: RecordSink, options: { verifyCrc?: boolean } = {}): number {
  const verify = options.verifyCrc ?? true;
  let count = 0;
  for (const { position, header } of iterateBatches(buffer)) {
    if (verify) verifyBatchCrc(buffer, position);
    if ((header.attributes & ATTRIBUTE_CONTROL) !== 0) continue;
    count += forEachRecord(buffer, position, sink);
  }
  return count;
}

/** The same as forEachRecordOfAll, as a generator of record objects. */
export function* decodeAllRecords(buffer: Buffer, options: { verifyCrc?: boolean } = {}): Generator<DecodedRecord> {
  const verify = options.verifyCrc ?? true;
  for (const { position, header } of iterateBatches(buffer)) {
    if (verify) verifyBatchCrc(buffer, position);
    if ((header.attributes & ATTRIBUTE_CONTROL) !== 0) continue;
    yield* decodeRecords(buffer, position);
  }
}
