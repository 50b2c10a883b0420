// Bytes of the metadata log: a MetadataBatch is the payload of one Raft entry of the controller
// quorum, a MetadataSnapshot the payload of a Raft snapshot (and of FetchMetadata for a broker
// that is behind the log start). Encoding is plain protobuf (metadata.proto) through protobufjs,
// decoded with the same conversions @grpc/proto-loader uses (camelCase names, int64 as Number,
// defaults filled in, oneof discriminators), so decoded values have the generated `__Output`
// shapes. Decoding only checks that the bytes are a well-formed message with one record kind per
// record; whether the records make sense is MetadataImage.apply's business.
import path from 'node:path';
import protobufjs from 'protobufjs';
import { PROTO_ROOT } from '../src/rpc/proto.js';
import { assert } from '../src/util/assert.js';
import type { MetadataBatch } from '../src/rpc/generated/riffle/internal/MetadataBatch.js';
import type { MetadataRecord, MetadataRecord__Output } from '../src/rpc/generated/riffle/internal/MetadataRecord.js';
import type { MetadataSnapshot, MetadataSnapshot__Output } from '../src/rpc/generated/riffle/internal/MetadataSnapshot.js';

/** Bytes that are not a metadata batch or snapshot (torn, corrupt, or of another format). */
export class MetadataCodecError extends Error {
  override readonly name = 'MetadataCodecError';
}

/** One batch is one Raft entry; the largest topic creation (10,000 partitions) fits easily. */
export const METADATA_BATCH_RECORDS_MAX = 100_000;
/** A whole-cluster snapshot; protects decoding from absurd lengths in corrupt input. */
export const METADATA_SNAPSHOT_BYTES_MAX = 512 * 1024 * 1024;

/** Every field name of MetadataRecord's `record` oneof. */
export const METADATA_RECORD_KINDS = [
  'cluster', 'registerBroker', 'brokerState', 'topic', 'partition', 'partitionChange', 'removeTopic',
  'producerIds', 'config', 'streamConsumer', 'removeStreamConsumer',
] as const;
export type MetadataRecordKind = (typeof METADATA_RECORD_KINDS)[number];

const TO_OBJECT_OPTIONS: protobufjs.IConversionOptions = { longs: Number, enums: String, defaults: true, oneofs: true };

interface MetadataTypes {
  batch: protobufjs.Type;
  snapshot: protobufjs.Type;
}

let types: MetadataTypes | undefined;

function metadataTypes(): MetadataTypes {
  if (types) return types;
  const root = new protobufjs.Root();
  root.resolvePath = (_origin, target) => path.join(PROTO_ROOT, target);
  root.loadSync('riffle/internal/metadata.proto', { keepCase: false });
  root.resolveAll();
  types = { batch: root.lookupType('riffle.internal.MetadataBatch'), snapshot: root.lookupType('riffle.internal.MetadataSnapshot') };
  return types;
}

/** The kind of a record: the one oneof member that is set. Throws when none or several are. */
export function recordKindOf(record: MetadataRecord): MetadataRecordKind {
  let found: MetadataRecordKind | undefined;
  for (const kind of METADATA_RECORD_KINDS) {
    if (record[kind] === undefined || record[kind] === null) continue;
    if (found !== undefined) throw new MetadataCodecError(`metadata record sets both ${found} and ${kind}`);
    found = kind;
  }
  if (found === undefined) throw new MetadataCodecError('metadata record sets no record kind');
  return found;
}

export function encodeMetadataBatch(records: readonly MetadataRecord[]): Uint8Array {
  assert(records.length > 0 && records.length <= METADATA_BATCH_RECORDS_MAX, () => `batch of ${records.length} records`);
  for (const record of records) recordKindOf(record);
  const { batch } = metadataTypes();
  const message: MetadataBatch = { records: [...records] };
  return batch.encode(batch.fromObject(message)).finish();
}

export function decodeMetadataBatch(bytes: Uint8Array): MetadataRecord__Output[] {
  const { batch } = metadataTypes();
  const decoded = decodeMessage(batch, bytes, 'metadata batch') as { records: MetadataRecord__Output[] };
  const records = decoded.records;
  if (records.length === 0) throw new MetadataCodecError('metadata batch has no records');
  if (records.length > METADATA_BATCH_RECORDS_MAX) throw new MetadataCodecError(`metadata batch has ${records.length} records`);
  for (const record of records) {
    const kind = recordKindOf(record);
    if (record.record !== kind) throw new MetadataCodecError(`metadata record oneof says ${String(record.record)}, holds ${kind}`);
  }
  return records;
}

export function encodeMetadataSnapshot(snapshot: MetadataSnapshot): Uint8Array {
  const type = metadataTypes().snapshot;
  const bytes = type.encode(type.fromObject(snapshot)).finish();
  assert(bytes.length <= METADATA_SNAPSHOT_BYTES_MAX, () => `snapshot of ${bytes.length} bytes`);
  return bytes;
}

export function decodeMetadataSnapshot(bytes: Uint8Array): MetadataSnapshot__Output {
  if (bytes.length > METADATA_SNAPSHOT_BYTES_MAX) throw new MetadataCodecError(`metadata snapshot of ${bytes.length} bytes`);
  const snapshot = decodeMessage(metadataTypes().snapshot, bytes, 'metadata snapshot') as MetadataSnapshot__Output;
  if (!Number.isSafeInteger(snapshot.offset) || snapshot.offset < 0) {
    throw new MetadataCodecError(`metadata snapshot offset ${snapshot.offset}`);
  }
  return snapshot;
}

function decodeMessage(type: protobufjs.Type, bytes: Uint8Array, what: string): unknown {
  let message: protobufjs.Message;
  try {
    message = type.decode(bytes);
  } catch (error) {
    throw new MetadataCodecError(`${what} does not decode: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  return type.toObject(message, TO_OBJECT_OPTIONS);
}
