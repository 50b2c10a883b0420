import { describe, expect, it } from 'vitest';
import { StickyPartitioner, murmur2, partitionForKey } from '../../src/client/partitioner.js';

describe('murmur2 partitioner', () => {
  // Expected values are those of Kafka's own murmur2 test cases (UtilsTest.testMurmur2).
  it.each([
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ['abc', 479470107],
  ])('hashes %s like Kafka', (input, expected) => {
    expect(murmur2(Buffer.from(input))).toBe(expected);
  });

  it('maps a key to a partition by clearing the sign bit, as Kafka toPositive does', () => {
    const hash = murmur2(Buffer.from('foobar'));
    expect(partitionForKey(Buffer.from('foobar'), 7)).toBe((hash & 0x7fffffff) % 7);
    expect(partitionForKey(Buffer.from('foobar'), 7)).toBeGreaterThanOrEqual(0);
  });

  it('sends the same key to the same partition every time', () => {
    const first = partitionForKey(Buffer.from('user-42'), 12);
    for (let i = 0; i < 100; i++) expect(partitionForKey(Buffer.from('user-42'), 12)).toBe(first);
  });
});

describe('sticky partitioner', () => {
  it('sticks to one partition until its batch is sealed, then moves to another', () => {
    const values = [0.1, 0.1, 0.9];
    const sticky = new StickyPartitioner(() => values.shift() ?? 0.5);
    const first = sticky.partition('t', 4);
    expect(sticky.partition('t', 4)).toBe(first);
    sticky.batchSealed('t', first, 4);
    const second = sticky.partition('t', 4);
    expect(second).not.toBe(first);
  });

  it('never picks a partition beyond the topic size', () => {
    const sticky = new StickyPartitioner();
    for (let i = 0; i < 50; i++) {
      const partition = sticky.partition('t', 3);
      expect(partition).toBeGreaterThanOrEqual(0);
      expect(partition).toBeLessThan(3);
      sticky.batchSealed('t', partition, 3);
    }
  });
});
