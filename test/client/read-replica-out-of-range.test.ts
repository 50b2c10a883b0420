// A consumer sent to a replica in its AZ (KIP-392) that answers OFFSET_OUT_OF_RANGE goes back
// to the leader at the same position, as Kafka's consumer clears its preferred replica: the
// replica may be behind or have truncated, and only the leader's answer may reset a position.
// Before, such an answer reset the position (to the earliest offset in chaos az-partition seed 64,
// so a group member read its partition again from offset 0).
import { describe, expect, it } from 'vitest';
import { PartitionConsumer, type RiffleClient } from '../../src/client/index.js';
import { GroupFetcher } from '../../src/client/group-fetcher.js';
import { ERRORS } from '../../src/rpc/errors.js';

interface Fetch {
  node: number;
  offset: number;
}

/** Leader 1 sends the consumer to replica 2, which has not reached its offset; leader 1 then serves it. */
function leaderAndBehindReplica() {
  const fetches: Fetch[] = [];
  const lookups: string[] = [];
  const partitionAnswer = (node: number, offset: number) => {
    const base = { partitionIndex: 0, highWatermark: 20, lastStableOffset: 20, logStartOffset: 0, records: Buffer.alloc(0), errorMessage: '' };
    const toLeader = fetches.filter((fetch) => fetch.node === 1).length;
    if (node === 2) return { ...base, errorCode: ERRORS.OFFSET_OUT_OF_RANGE.code, errorMessage: `Offset ${offset} is outside [0, 3]`, preferredReadReplica: -1 };
    return { ...base, errorCode: 0, preferredReadReplica: toLeader === 1 ? 2 : -1 };
  };
  const connectionTo = (node: number) => ({
    pipelined: (_service: string, method: string) => {
      if (method !== 'FetchStream') throw new Error(`unexpected ${method}`);
      return {
        call: async (request: { topics: { topic: string; partitions: { fetchOffset: number }[] }[] }) => {
          const offset = request.topics[0]!.partitions[0]!.fetchOffset;
          fetches.push({ node, offset });
          return { throttleTimeMs: 0, errorCode: 0, responses: [{ topic: 'events', partitions: [partitionAnswer(node, offset)] }] };
        },
      };
    },
    call: async (_service: string, method: string) => {
      lookups.push(method);
      return { topics: [{ name: 'events', partitions: [{ partitionIndex: 0, errorCode: 0, offset: 0, timestamp: -1 }] }] };
    },
  });
  const metadata = { name: 'events', topicId: 'id', kind: 'kafka', partitions: [{ partition: 0, leaderId: 1, leaderEpoch: 0, replicas: [1, 2], isr: [1, 2] }] };
  const client = {
    requestTimeoutMs: 1_000,
    retry: { deadlineMs: 1_000, backoffMsInitial: 1, backoffMsMax: 5 },
    topicMetadata: async () => metadata,
    leaderEpochOf: () => 0,
    invalidate: () => undefined,
    connectionTo,
    listOffset: async () => {
      lookups.push('listOffset');
      return 0;
    },
  };
  return { client: client as unknown as RiffleClient, fetches, lookups };
}

describe('an OFFSET_OUT_OF_RANGE from a preferred read replica', () => {
  it('sends a group member back to the leader at the same position', async () => {
    const { client, fetches, lookups } = leaderAndBehindReplica();
    const fetcher = new GroupFetcher(client, { maxWaitMs: 10, maxBytes: 1 << 20, partitionMaxBytes: 1 << 20, autoOffsetReset: 'earliest', rack: 'b' });
    fetcher.add('events', 0, 5);
    for (let poll = 0; poll < 10 && fetches.length < 3; poll++) await fetcher.poll();
    expect(fetches.slice(0, 3)).toEqual([{ node: 1, offset: 5 }, { node: 2, offset: 5 }, { node: 1, offset: 5 }]);
    expect(lookups).toEqual([]);
  });

  it('sends a partition consumer back to the leader at the same position', async () => {
    const { client, fetches, lookups } = leaderAndBehindReplica();
    const consumer = new PartitionConsumer(client, { topic: 'events', from: 5, maxWaitMs: 10, rack: 'b', autoOffsetReset: 'earliest' });
    for (let poll = 0; poll < 10 && fetches.length < 3; poll++) await consumer.poll();
    expect(fetches.slice(0, 3)).toEqual([{ node: 1, offset: 5 }, { node: 2, offset: 5 }, { node: 1, offset: 5 }]);
    expect(consumer.position(0)).toBe(5);
    expect(lookups).toEqual([]);
  });
});
