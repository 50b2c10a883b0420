// The records of the __consumer_offsets topic: what a group coordinator writes and what a new
// coordinator replays to rebuild its groups. As in Kafka, every record is a key and a value, the
// key starts with a type number (Kafka's own numbering: 1 offset commit, 3 consumer group
// metadata, 5 member metadata, 6 target assignment metadata, 7 target assignment member,
// 8 current member assignment; Riffle's own: 100 Kinesis-like application, 101 its checkpoint and
// lease of one shard) and a null value (a tombstone) deletes the key. Compaction keeps
// the last record per key, so the key holds exactly what identifies the fact.
//
// Departure from Kafka: keys are Kafka-like binary (int16 type, int16-length UTF-8 strings,
// int32 partition), but values are versioned JSON rather than Kafka's binary schemas: they are
// small, read only on takeover, and JSON keeps them readable in `riffle consume __consumer_offsets`.
import { RiffleError } from '../../src/rpc/errors.js';
import { assert } from '../../src/util/assert.js';

/** Topic name -> sorted partition numbers. */
export type Assignment = Record<string, number[]>;

export type MemberReconcileState = 'stable' | 'unrevoked_partitions' | 'unreleased_partitions' | 'left';

export interface OffsetValue {
  offset: number;
  leaderEpoch: number;
  metadata: string;
  commitTimestampMs: number;
}

export interface GroupMetadataValue {
  epoch: number;
  /** A digest of the subscribed topics and their partition counts when the epoch was last bumped. */
  subscriptionDigest: string;
}

export interface MemberMetadataValue {
  instanceId: string;
  rackId: string;
  clientId: string;
  clientHost: string;
  subscribedTopicNames: string[];
  subscribedTopicRegex: string;
  serverAssignor: string;
  rebalanceTimeoutMs: number;
}

export interface CurrentAssignmentValue {
  memberEpoch: number;
  previousMemberEpoch: number;
  state: MemberReconcileState;
  assigned: Assignment;
  pendingRevocation: Assignment;
}

export type OffsetsRecord =
  | { type: 'offset'; group: string; topic: string; partition: number; value: OffsetValue | null }
  | { type: 'group'; group: string; value: GroupMetadataValue | null }
  | { type: 'member'; group: string; member: string; value: MemberMetadataValue | null }
  | { type: 'target-epoch'; group: string; value: { assignmentEpoch: number } | null }
  | { type: 'target-member'; group: string; member: string; value: { partitions: Assignment } | null }
  | { type: 'current-assignment'; group: string; member: string; value: CurrentAssignmentValue | null }
  | { type: 'kinesis-app'; group: string; value: KinesisAppValue | null }
  | { type: 'kinesis-shard'; group: string; shard: string; value: KinesisShardValue | null };

/** A Kinesis-like application (Riffle extension; `group` holds the application name). */
export interface KinesisAppValue {
  streamName: string;
  failoverTimeMs: number;
}

/** The checkpoint and lease of one shard for one application. */
export interface KinesisShardValue {
  /** A sequence number, 'SHARD_END', or '' when none was written. */
  checkpoint: string;
  checkpointTimestampMs: number;
  /** The worker holding the lease; '' when free. */
  owner: string;
  /** Rises on every grant; fences checkpoints of earlier owners. */
  leaseEpoch: number;
}

// Riffle's own types start at 100, far from Kafka's numbering, so Kafka can grow without a clash.
const TYPE_NUMBERS = { offset: 1, group: 3, member: 5, 'target-epoch': 6, 'target-member': 7, 'current-assignment': 8, 'kinesis-app': 100, 'kinesis-shard': 101 } as const;
const TYPE_NAMES = new Map<number, OffsetsRecord['type']>(Object.entries(TYPE_NUMBERS).map(([name, number]) => [number, name as OffsetsRecord['type']]));
const VALUE_VERSION = 1;
/** Group ids, member ids and topic names longer than this are refused before they reach a key. */
export const KEY_STRING_BYTES_MAX = 32_767;

export function encodeKey(record: OffsetsRecord): Buffer {
  const parts: (string | number)[] = [record.group];
  if (record.type === 'offset') parts.push(record.topic, record.partition);
  else if (record.type === 'member' || record.type === 'target-member' || record.type === 'current-assignment') parts.push(record.member);
  else if (record.type === 'kinesis-shard') parts.push(record.shard);
  const strings = parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'utf8') : null));
  let size = 2;
  for (const [index, part] of parts.entries()) size += typeof part === 'number' ? 4 : 2 + strings[index]!.length;
  const key = Buffer.alloc(size);
  key.writeInt16BE(TYPE_NUMBERS[record.type], 0);
  let position = 2;
  for (const [index, part] of parts.entries()) {
    if (typeof part === 'number') {
      key.writeInt32BE(part, position);
      position += 4;
      continue;
    }
    const bytes = strings[index]!;
    assert(bytes.length <= KEY_STRING_BYTES_MAX, () => `offsets key string of ${bytes.length} bytes`);
    key.writeInt16BE(bytes.length, position);
    bytes.copy(key, position + 2);
    position += 2 + bytes.length;
  }
  return key;
}

export function encodeValue(record: OffsetsRecord): Buffer | null {
  return record.value === null ? null : Buffer.from(JSON.stringify({ v: VALUE_VERSION, ...record.value }), 'utf8');
}

/**
 * Decodes one stored record. An unknown key type is skipped (null), so a newer writer's records
 * do not stop an older coordinator from loading; a malformed record throws CORRUPT_MESSAGE.
 */
export function decodeRecord(key: Buffer | null, value: Buffer | null): OffsetsRecord | null {
  if (!key || key.length < 2) throw corrupt('offsets record without a key');
  const type = TYPE_NAMES.get(key.readInt16BE(0));
  if (!type) return null;
  let position = 2;
  const readString = (): string => {
    if (position + 2 > key.length) throw corrupt('truncated offsets key');
    const length = key.readInt16BE(position);
    if (length < 0 || position + 2 + length > key.length) throw corrupt('bad string in offsets key');
    const text = key.toString('utf8', position + 2, position + 2 + length);
    position += 2 + length;
    return text;
  };
  const group = readString();
  const parsed = value === null ? null : parseValue(value);
  switch (type) {
    case 'offset': {
      const topic = readString();
      if (position + 4 > key.length) throw corrupt('truncated offsets key');
      const partition = key.readInt32BE(position);
      return { type, group, topic, partition, value: parsed as OffsetValue | null };
    }
    case 'group':
      return { type, group, value: parsed as GroupMetadataValue | null };
    case 'target-epoch':
      return { type, group, value: parsed as { assignmentEpoch: number } | null };
    case 'member':
      return { type, group, member: readString(), value: parsed as MemberMetadataValue | null };
    case 'target-member':
      return { type, group, member: readString(), value: parsed as { partitions: Assignment } | null };
    case 'current-assignment':
      return { type, group, member: readString(), value: parsed as CurrentAssignmentValue | null };
    case 'kinesis-app':
      return { type, group, value: parsed as KinesisAppValue | null };
    case 'kinesis-shard':
      return { type, group, shard: readString(), value: parsed as KinesisShardValue | null };
  }
}

function parseValue(value: Buffer): object {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString('utf8'));
  } catch {
    throw corrupt('offsets record value is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || (parsed as { v?: unknown }).v !== VALUE_VERSION) throw corrupt('offsets record value has an unknown version');
  const { v: _version, ...rest } = parsed as Record<string, unknown>;
  return rest;
}

function corrupt(message: string): RiffleError {
  return new RiffleError('CORRUPT_MESSAGE', message);
}

/** Kafka's Utils.abs(groupId.hashCode()) % partitions, with Java's String.hashCode over UTF-16 units. */
export function offsetsPartitionFor(groupId: string, partitions: number): number {
  assert(Number.isInteger(partitions) && partitions > 0, () => `offsets partitions ${partitions}`);
  let hash = 0;
  for (let index = 0; index < groupId.length; index++) hash = (Math.imul(hash, 31) + groupId.charCodeAt(index)) | 0;
  // Kafka's Utils.abs maps Integer.MIN_VALUE to 0 rather than overflowing.
  const positive = hash === -2147483648 ? 0 : Math.abs(hash);
  return positive % partitions;
}

export function sortedAssignment(assignment: Assignment): Assignment {
  const result: Assignment = {};
  for (const topic of Object.keys(assignment).sort()) {
    const partitions = [...new Set(assignment[topic]!)].sort((a, b) => a - b);
    if (partitions.length > 0) result[topic] = partitions;
  }
  return result;
}

export function assignmentEquals(a: Assignment, b: Assignment): boolean {
  return JSON.stringify(sortedAssignment(a)) === JSON.stringify(sortedAssignment(b));
}

export function assignmentSize(assignment: Assignment): number {
  let size = 0;
  for (const partitions of Object.values(assignment)) size += partitions.length;
  return size;
}

export function* assignmentEntries(assignment: Assignment): Generator<[string, number]> {
  for (const [topic, partitions] of Object.entries(assignment)) for (const partition of partitions) yield [topic, partition];
}

export function assignmentOf(entries: Iterable<[string, number]>): Assignment {
  const result: Assignment = {};
  for (const [topic, partition] of entries) (result[topic] ??= []).push(partition);
  return sortedAssignment(result);
}

export function tpKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}
