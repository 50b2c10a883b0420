// Pure Kinesis arithmetic shared by the controller, the broker and the SDK: shard ids, the
// 128-bit hash-key space and MD5 routing, sequence numbers, and stream/consumer ARNs. Nothing
// here does I/O or knows about partitions beyond their number.
//
// Sequence numbers (docs/api.md): decimal strings of SEQUENCE_BASE + partition * 2^64 +
// (offset + 1). They are unique and strictly increasing within a shard (offsets are), decode to
// (partition, offset) in O(1), and the children of a resharding (higher partition numbers) sort
// after their parents. offset -1 ("before the first record") is representable, so a
// continuation sequence number always exists, even for a shard nothing was read from yet.
import crypto, { createHash } from 'node:crypto';

export const HASH_KEY_MAX = (1n << 128n) - 1n;
const SEQUENCE_BASE = 1n << 124n;
const OFFSET_SPACE = 1n << 64n;
const PARTITION_MAX = 2 ** 31 - 1;
/** Kinesis: a sequence number is 0 or up to 129 digits without a leading zero. */
const SEQUENCE_PATTERN = /^(0|[1-9]\d{0,128})$/;
const HASH_KEY_PATTERN = /^(0|[1-9]\d{0,38})$/;
const SHARD_ID_PATTERN = /^shardId-(\d{12})$/;

export const PARTITION_KEY_LENGTH_MAX = 256;
export const STREAM_NAME_LENGTH_MAX = 128;
export const STREAM_NAME_PATTERN = /^[a-zA-Z0-9_.-]+$/;

/** `shardId-000000000007` for partition 7 (Kinesis pads to twelve digits). */
export function shardIdOf(partition: number): string {
  return `shardId-${String(partition).padStart(12, '0')}`;
}

/** The partition of a shard id, or null when the id is not in Kinesis form. */
export function partitionOfShardId(shardId: string): number | null {
  const match = SHARD_ID_PATTERN.exec(shardId);
  if (!match) return null;
  const partition = Number(match[1]);
  return partition <= PARTITION_MAX ? partition : null;
}

/** The hash key of a partition key: MD5 of its UTF-8 bytes as an unsigned 128-bit integer. */
export function hashKeyOfPartitionKey(partitionKey: string): bigint {
  const digest = createHash('md5').update(partitionKey, 'utf8').digest();
  return (digest.readBigUInt64BE(0) << 64n) | digest.readBigUInt64BE(8);
}

/** One-shot hashing (Node 20.12+) is about twice as fast as createHash for short keys. */
const oneShotHash = (crypto as unknown as { hash?: (algorithm: string, data: string | Buffer, encoding: 'hex') => string }).hash;

/**
 * The hash key of a partition key as 32 lowercase hex digits. Hex strings of equal length
 * compare like the numbers they spell, so routing compares strings and needs no BigInt.
 */
export function hashKeyHexOfPartitionKey(partitionKey: string | Buffer): string {
  if (oneShotHash) return oneShotHash('md5', partitionKey, 'hex');
  return typeof partitionKey === 'string' ? createHash('md5').update(partitionKey, 'utf8').digest('hex') : createHash('md5').update(partitionKey).digest('hex');
}

/** A hash key as 32 lowercase hex digits (comparable with hashKeyHexOfPartitionKey's). */
export function hashKeyHex(hashKey: bigint): string {
  return hashKey.toString(16).padStart(32, '0');
}

/** A decimal hash key in 0 .. 2^128-1, or null when it is not one. */
export function parseHashKey(text: string): bigint | null {
  if (!HASH_KEY_PATTERN.test(text)) return null;
  const value = BigInt(text);
  return value <= HASH_KEY_MAX ? value : null;
}

/** Splits the hash-key space into `count` contiguous ranges of equal size (the last takes the rest). */
export function uniformHashRanges(count: number): { start: bigint; end: bigint }[] {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`shard count ${count}`);
  const size = (HASH_KEY_MAX + 1n) / BigInt(count);
  return Array.from({ length: count }, (_, index) => ({
    start: size * BigInt(index),
    end: index === count - 1 ? HASH_KEY_MAX : size * BigInt(index + 1) - 1n,
  }));
}

/** Sequence numbers are spelled as a head (all but the last nine digits) and a nine-digit tail. */
const TAIL_MODULUS = 1_000_000_000;
const TAIL_MODULUS_BIG = BigInt(TAIL_MODULUS);
/** Offsets up to here take the fast path (their sum with a tail stays an exact double). */
const FAST_OFFSET_MAX = 2 ** 52;
/** Partitions whose head is remembered; past this the memo starts over. */
const SEQUENCE_MEMO_PARTITIONS_MAX = 4096;

/** Per partition: its first sequence number split at the tail, and the head last spelled. */
interface SequenceMemo {
  headBase: bigint;
  tailBase: number;
  block: number;
  head: string;
}
const sequenceMemos = new Map<number, SequenceMemo>();

/**
 * The sequence number of `offset` in `partition`. Spelling a 38-digit BigInt for every record
 * cost a visible share of PutRecords and GetRecords, so the digits above the last nine are
 * spelled once per billion offsets of a partition and the last nine with Number arithmetic;
 * the value is the one in the header comment (the test compares it with the BigInt formula).
 */
export function encodeSequenceNumber(partition: number, offset: number): string {
  const position = offset + 1;
  if (!Number.isSafeInteger(position) || position < 0 || position > FAST_OFFSET_MAX) return sequenceNumberValue(partition, offset).toString();
  let memo = sequenceMemos.get(partition);
  if (!memo) {
    if (sequenceMemos.size >= SEQUENCE_MEMO_PARTITIONS_MAX) sequenceMemos.clear();
    const first = sequenceNumberValue(partition, -1);
    memo = { headBase: first / TAIL_MODULUS_BIG, tailBase: Number(first % TAIL_MODULUS_BIG), block: -1, head: '' };
    sequenceMemos.set(partition, memo);
  }
  const sum = memo.tailBase + position;
  const block = Math.floor(sum / TAIL_MODULUS);
  if (block !== memo.block) {
    memo.block = block;
    memo.head = (memo.headBase + BigInt(block)).toString();
  }
  return memo.head + String(sum - block * TAIL_MODULUS).padStart(9, '0');
}

function sequenceNumberValue(partition: number, offset: number): bigint {
  return SEQUENCE_BASE + BigInt(partition) * OFFSET_SPACE + BigInt(offset + 1);
}

export interface DecodedSequenceNumber {
  partition: number;
  /** -1 for the position before the first record. */
  offset: number;
}

/** Decodes a sequence number; null when it is not one Riffle issued. */
export function decodeSequenceNumber(text: string): DecodedSequenceNumber | null {
  if (!SEQUENCE_PATTERN.test(text)) return null;
  const value = BigInt(text) - SEQUENCE_BASE;
  if (value < 0n) return null;
  const partition = value / OFFSET_SPACE;
  const offsetPlusOne = value % OFFSET_SPACE;
  if (partition > BigInt(PARTITION_MAX) || offsetPlusOne > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return { partition: Number(partition), offset: Number(offsetPlusOne) - 1 };
}

/** The largest sequence number a shard can hold: a closed shard's EndingSequenceNumber. */
export function endingSequenceNumberOf(partition: number): string {
  return (SEQUENCE_BASE + BigInt(partition) * OFFSET_SPACE + OFFSET_SPACE - 1n).toString();
}

/** Kinesis stream names: 1..128 of [a-zA-Z0-9_.-]. */
export function isValidStreamName(name: string): boolean {
  return name.length >= 1 && name.length <= STREAM_NAME_LENGTH_MAX && STREAM_NAME_PATTERN.test(name);
}

export const ARN_PREFIX = 'arn:aws:kinesis:riffle:';

/** `arn:aws:kinesis:riffle:<cluster id>:stream/<name>`. */
export function streamArnOf(clusterId: string, streamName: string): string {
  return `${ARN_PREFIX}${clusterId}:stream/${streamName}`;
}

/** The stream name in a stream ARN (or in a consumer ARN), or null. */
export function streamNameOfArn(arn: string): string | null {
  if (!arn.startsWith(ARN_PREFIX)) return null;
  const match = /:stream\/([^/]+)(\/consumer\/.*)?$/.exec(arn);
  return match ? match[1]! : null;
}

/** `<stream ARN>/consumer/<name>:<creation seconds>`, as Kinesis forms consumer ARNs. */
export function consumerArnOf(streamArn: string, consumerName: string, createdAtMs: number): string {
  return `${streamArn}/consumer/${consumerName}:${Math.floor(createdAtMs / 1000)}`;
}

/** The consumer name in a consumer ARN, or null. */
export function consumerNameOfArn(arn: string): string | null {
  const match = /\/consumer\/([^/:]+):\d+$/.exec(arn);
  return match ? match[1]! : null;
}
