import { describe, expect, it } from 'vitest';
import { ShardIteratorCodec } from '../../../broker/kinesis/shard-iterators.js';
import { RiffleError } from '../../../src/rpc/errors.js';

function errorName(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    return error instanceof RiffleError ? error.errorName : String(error);
  }
  return 'no error';
}

describe('ShardIteratorCodec', () => {
  const secret = Buffer.alloc(32, 7);
  let now = 1_000_000;
  const codec = new ShardIteratorCodec(() => secret, () => now, 300_000);

  it('round-trips a position', () => {
    const token = codec.encode({ topicId: 'topic-abc', partition: 5, offset: 123_456_789 });
    expect(token.length).toBeLessThanOrEqual(512);
    expect(codec.decode(token)).toEqual({ topicId: 'topic-abc', partition: 5, offset: 123_456_789, issuedAtMs: now });
  });

  it('rejects a mangled iterator as InvalidArgumentException', () => {
    const token = codec.encode({ topicId: 'topic-abc', partition: 5, offset: 42 });
    const bytes = Buffer.from(token, 'base64url');
    for (const position of [0, 3, 12, bytes.length - 1]) {
      const forged = Buffer.from(bytes);
      forged[position] = forged[position]! ^ 0x01;
      expect(errorName(() => codec.decode(forged.toString('base64url')))).toBe('INVALID_ARGUMENT');
    }
    expect(errorName(() => codec.decode(token.slice(0, -2)))).toBe('INVALID_ARGUMENT');
    expect(errorName(() => codec.decode('not an iterator!'))).toBe('INVALID_ARGUMENT');
    expect(errorName(() => codec.decode(''))).toBe('INVALID_ARGUMENT');
    expect(errorName(() => codec.decode('A'.repeat(600)))).toBe('INVALID_ARGUMENT');
  });

  it('rejects an iterator signed with another secret (another cluster, or a forger)', () => {
    const other = new ShardIteratorCodec(() => Buffer.alloc(32, 8), () => now);
    const token = other.encode({ topicId: 't', partition: 0, offset: 0 });
    expect(errorName(() => codec.decode(token))).toBe('INVALID_ARGUMENT');
  });

  it('expires an iterator after its time to live with ExpiredIteratorException', () => {
    const token = codec.encode({ topicId: 't', partition: 0, offset: 0 });
    now += 300_000;
    expect(codec.decode(token).offset).toBe(0);
    now += 1;
    expect(errorName(() => codec.decode(token))).toBe('EXPIRED_ITERATOR');
  });
});
