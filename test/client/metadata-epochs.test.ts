// KIP-320 in the SDK: metadata that names an older leader epoch than the client has seen (from a
// broker that is behind, or a paused leader that resumed before learning it was deposed) is not
// believed, even after the cache entry was dropped; and consumers' fetches carry the leader
// epoch they believe in, so a broker at another epoch refuses them instead of answering
// OFFSET_OUT_OF_RANGE for an offset its stale log lacks. Chaos pause-leader (CI seed 350523738)
// had a group member take a resumed old leader's word, be told its position 2001 was out of
// range, and reset to offset 0.
import { describe, expect, it } from 'vitest';
import { PartitionConsumer, RiffleClient } from '../../src/client/index.js';

interface Answer {
  topicId: string;
  leaderId: number;
  leaderEpoch: number;
}

/** A real RiffleClient whose Metadata answers come from `answers`, one per call. */
function clientAnswering(answers: Answer[]): RiffleClient {
  const client = new RiffleClient({ bootstrap: '127.0.0.1:1' });
  Object.assign(client, {
    callAny: async () => {
      const answer = answers.shift()!;
      return {
        clusterId: 'c',
        brokers: [1, 2, 3].map((nodeId) => ({ nodeId, host: '127.0.0.1', port: 1, rack: '' })),
        topics: [{ name: 'events', topicId: answer.topicId, kind: 'kafka', errorCode: 0, errorMessage: '', partitions: [{ partitionIndex: 0, leaderId: answer.leaderId, leaderEpoch: answer.leaderEpoch, replicaNodes: [1, 2, 3], isrNodes: [1, 2, 3] }] }],
      };
    },
  });
  return client;
}

describe('metadata leader epochs (KIP-320)', () => {
  it('never goes back to an older leader epoch of a partition, even after the cache entry is dropped', async () => {
    const client = clientAnswering([
      { topicId: 'a', leaderId: 3, leaderEpoch: 3 },
      { topicId: 'a', leaderId: 1, leaderEpoch: 2 },
      { topicId: 'a', leaderId: 1, leaderEpoch: 2 },
      { topicId: 'a', leaderId: 2, leaderEpoch: 4 },
      { topicId: 'b', leaderId: 1, leaderEpoch: 0 },
    ]);
    const leader = async (): Promise<[number, number]> => {
      const partition = (await client.topicMetadata('events', true)).partitions[0]!;
      return [partition.leaderId, partition.leaderEpoch];
    };
    expect(await leader()).toEqual([3, 3]);
    // A deposed leader's stale answer: the cache keeps what it knew.
    expect(await leader()).toEqual([3, 3]);
    // Dropped from the cache, then the stale answer again: no leader rather than the old one.
    client.invalidate('events');
    expect(await leader()).toEqual([-1, 3]);
    expect(await leader()).toEqual([2, 4]);
    // A topic deleted and created again (another id) starts its epochs anew.
    expect(await leader()).toEqual([1, 0]);
    client.close();
  });

  it('a partition consumer sends the leader epoch it knows with each fetch', async () => {
    const client = clientAnswering([{ topicId: 'a', leaderId: 2, leaderEpoch: 7 }]);
    const epochs: number[] = [];
    Object.assign(client, {
      connectionTo: () => ({
        pipelined: () => ({
          call: async (request: { topics: { partitions: { currentLeaderEpoch: number }[] }[] }) => {
            epochs.push(request.topics[0]!.partitions[0]!.currentLeaderEpoch);
            return { throttleTimeMs: 0, errorCode: 0, responses: [{ topic: 'events', partitions: [{ partitionIndex: 0, errorCode: 0, errorMessage: '', highWatermark: 5, lastStableOffset: 5, logStartOffset: 0, preferredReadReplica: -1, records: Buffer.alloc(0) }] }] };
          },
        }),
      }),
    });
    const consumer = new PartitionConsumer(client, { topic: 'events', from: 5, maxWaitMs: 10 });
    await consumer.poll();
    expect(epochs).toEqual([7]);
    client.close();
  });
});
