// Kinesis shard iterators: opaque, HMAC-signed tokens naming a position in one shard. The secret
// is the cluster secret the first active controller wrote into the metadata log at bootstrap
// (ClusterRecord.cluster_secret, 32 random bytes), so every broker can verify an iterator any
// other broker issued, and the secret survives failovers and restarts with the metadata.
//
// Layout before base64url: version (1) | topic id length (1) | topic id (UTF-8) | partition
// (uint32) | offset (uint64) | issued at, ms since the epoch (uint64) | HMAC-SHA256 of all of the
// above, first 16 bytes. A token that does not decode or whose MAC does not match is
// InvalidArgumentException; one older than the TTL (5 minutes by default) ExpiredIteratorException.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { RiffleError } from '../../src/rpc/errors.js';
import { assert } from '../../src/util/assert.js';

const VERSION = 1;
const MAC_BYTES = 16;
const TOPIC_ID_BYTES_MAX = 64;
/** Kinesis: a shard iterator is 1..512 characters. */
export const SHARD_ITERATOR_LENGTH_MAX = 512;
export const ITERATOR_TTL_MS_DEFAULT = 300_000;

export interface IteratorPosition {
  topicId: string;
  partition: number;
  /** The next offset to read. */
  offset: number;
}

export interface DecodedIterator extends IteratorPosition {
  issuedAtMs: number;
}

export class ShardIteratorCodec {
  constructor(
    private readonly secret: () => Uint8Array,
    private readonly nowMs: () => number = Date.now,
    readonly ttlMs: number = ITERATOR_TTL_MS_DEFAULT,
  ) {}

  encode(position: IteratorPosition): string {
    const topicId = Buffer.from(position.topicId, 'utf8');
    assert(topicId.length > 0 && topicId.length <= TOPIC_ID_BYTES_MAX, () => `topic id of ${topicId.length} bytes`);
    assert(Number.isSafeInteger(position.offset) && position.offset >= 0, () => `iterator offset ${position.offset}`);
    const payload = Buffer.alloc(2 + topicId.length + 4 + 8 + 8);
    let at = payload.writeUInt8(VERSION, 0);
    at = payload.writeUInt8(topicId.length, at);
    at += topicId.copy(payload, at);
    at = payload.writeUInt32BE(position.partition, at);
    at = payload.writeBigUInt64BE(BigInt(position.offset), at);
    payload.writeBigUInt64BE(BigInt(this.nowMs()), at);
    return Buffer.concat([payload, this.mac(payload)]).toString('base64url');
  }

  /** Verifies and decodes; throws INVALID_ARGUMENT (forged, mangled) or EXPIRED_ITERATOR. */
  decode(token: string): DecodedIterator {
    if (typeof token !== 'string' || token.length === 0 || token.length > SHARD_ITERATOR_LENGTH_MAX || !/^[A-Za-z0-9_-]+$/.test(token)) {
      throw invalid('is not a shard iterator');
    }
    const bytes = Buffer.from(token, 'base64url');
    if (bytes.length < 2 + 1 + 4 + 8 + 8 + MAC_BYTES || bytes[0] !== VERSION) throw invalid('is not a shard iterator');
    const topicIdLength = bytes[1]!;
    const payloadLength = 2 + topicIdLength + 4 + 8 + 8;
    if (bytes.length !== payloadLength + MAC_BYTES) throw invalid('is not a shard iterator');
    const payload = bytes.subarray(0, payloadLength);
    if (!timingSafeEqual(this.mac(payload), bytes.subarray(payloadLength))) throw invalid('has an invalid signature');
    let at = 2;
    const topicId = payload.subarray(at, at + topicIdLength).toString('utf8');
    at += topicIdLength;
    const partition = payload.readUInt32BE(at);
    const offset = Number(payload.readBigUInt64BE(at + 4));
    const issuedAtMs = Number(payload.readBigUInt64BE(at + 12));
    const ageMs = this.nowMs() - issuedAtMs;
    if (ageMs > this.ttlMs) {
      throw new RiffleError('EXPIRED_ITERATOR', `Iterator expired: issued ${ageMs} ms ago; iterators are valid for ${this.ttlMs} ms.`);
    }
    return { topicId, partition, offset, issuedAtMs };
  }

  private mac(payload: Buffer): Buffer {
    const secret = this.secret();
    if (secret.length === 0) throw new RiffleError('LEADER_NOT_AVAILABLE', 'The cluster secret is not known yet.');
    return createHmac('sha256', secret).update(payload).digest().subarray(0, MAC_BYTES);
  }
}

function invalid(what: string): RiffleError {
  return new RiffleError('INVALID_ARGUMENT', `Invalid ShardIterator: the value ${what}.`);
}
