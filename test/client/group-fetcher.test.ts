// Polls that have nothing to fetch (every partition paused, none yet, or none at all) must wait
// like a long poll, not answer at once: a run loop over an instant answer is a chain of
// microtasks that never yields, so the process's timers and I/O stop (heartbeats, the commit of
// a revocation, a listener's own calls) and the member hangs (chaos pause-leader seed 21). Each
// test checks that a macrotask queued before the poll ran before the poll answered.
import { describe, expect, it } from 'vitest';
import { PartitionConsumer, type RiffleClient } from '../../src/client/index.js';
import { GroupFetcher } from '../../src/client/group-fetcher.js';
import { RiffleError } from '../../src/rpc/errors.js';

/** A client with no leaders: a fetch can get nowhere (these tests are about waiting). */
const noLeaders = {
  requestTimeoutMs: 1_000,
  topicMetadata: async () => { throw new RiffleError('LEADER_NOT_AVAILABLE', 'no leader in this test'); },
  invalidate: () => undefined,
} as unknown as RiffleClient;

function fetcher(maxWaitMs: number): GroupFetcher {
  return new GroupFetcher(noLeaders, { maxWaitMs, maxBytes: 1 << 20, partitionMaxBytes: 1 << 20, autoOffsetReset: 'earliest' });
}

/** Polls once; resolves whether a macrotask queued just before ran before the poll answered. */
async function yieldedDuring(poll: () => Promise<unknown>): Promise<boolean> {
  let ran = false;
  setImmediate(() => (ran = true));
  await poll();
  return ran;
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe('group fetcher with nothing to fetch', () => {
  it('waits when every partition is paused', async () => {
    const subject = fetcher(20);
    subject.add('events', 0, 0);
    subject.add('events', 1, 0);
    subject.pause('events', 0);
    subject.pause('events', 1);
    expect(await yieldedDuring(async () => expect(await subject.poll()).toEqual([]))).toBe(true);
  });

  it('waits when it has no partitions', async () => {
    const subject = fetcher(20);
    expect(await yieldedDuring(async () => expect(await subject.poll()).toEqual([]))).toBe(true);
  });

  it('a resumed, added or moved partition, or wake(), ends the wait at once', async () => {
    const subject = fetcher(600_000);
    subject.add('events', 0, 0);
    subject.pause('events', 0);
    let polled = subject.poll();
    subject.resume('events', 0);
    await within(polled, 5_000, 'the poll to end on resume');

    subject.pause('events', 0);
    polled = subject.poll();
    subject.add('events', 1, 0);
    subject.pause('events', 1);
    await within(polled, 5_000, 'the poll to end on add');

    polled = subject.poll();
    subject.seek('events', 1, 5);
    await within(polled, 5_000, 'the poll to end on seek');

    polled = subject.poll();
    subject.wake();
    await within(polled, 5_000, 'the poll to end on wake');
  });

  it('a partition without a known leader is retried soon, and the failure reported', async () => {
    const subject = fetcher(600_000);
    subject.add('events', 0, 0);
    await expect(within(subject.poll(), 5_000, 'the poll to report the missing leader')).rejects.toMatchObject({ errorName: 'LEADER_NOT_AVAILABLE' });
  });
});

describe('partition consumer with no partitions', () => {
  it('waits instead of answering at once', async () => {
    const client = {
      requestTimeoutMs: 1_000,
      topicMetadata: async () => ({ topic: 'events', partitions: [{ partition: 0, leaderId: 1 }] }),
      invalidate: () => undefined,
    } as unknown as RiffleClient;
    const consumer = new PartitionConsumer(client, { topic: 'events', partitions: [], maxWaitMs: 20 });
    expect(await yieldedDuring(async () => expect(await consumer.poll()).toEqual([]))).toBe(true);
  });
});
