// A stand-in for RiffleClient in producer unit tests: one broker leading every partition of the
// topic 'events', which notes when each partition's batch arrived and answers at once, giving
// the batches base offsets 0, 1, 2, ... in arrival order.
import type { RiffleClient, TopicMetadata } from '../../src/client/client.js';
import { DEFAULT_RETRY } from '../../src/client/retry.js';

interface ProduceRequest {
  topicData: { name: string; partitionData: { index: number; records: Buffer }[] }[];
}

/** A client whose one broker records when each partition's batch arrived, and answers at once. */
export function recordingClient(arrivals: { partition: number; atMs: number }[] = []): RiffleClient {
  const metadata: TopicMetadata = {
    name: 'events', topicId: 'id', kind: 'kafka',
    partitions: [0, 1, 2, 3].map((partition) => ({ partition, leaderId: 1, leaderEpoch: 0, replicas: [1], isr: [1] })),
  };
  let nextOffset = 0;
  const produce = {
    call: async (request: ProduceRequest) => {
      const responses = request.topicData.map((topic) => ({
        name: topic.name,
        partitionResponses: topic.partitionData.map((data) => {
          arrivals.push({ partition: data.index, atMs: performance.now() });
          return { index: data.index, errorCode: 0, errorMessage: '', baseOffset: nextOffset++, logAppendTimeMs: -1, logStartOffset: 0, recordErrors: [] };
        }),
      }));
      return { responses, throttleTimeMs: 0 };
    },
  };
  const connection = {
    pipelined: (_service: string, method: string) => {
      if (method !== 'ProduceStream') throw new Error(`unexpected ${method}`);
      return produce;
    },
  };
  const client = {
    retry: DEFAULT_RETRY,
    cachedTopic: () => metadata,
    leaderEpochOf: (_topic: string, partition: number) => metadata.partitions.find((candidate) => candidate.partition === partition)?.leaderEpoch ?? -1,
    topicMetadata: async () => metadata,
    invalidate: () => undefined,
    connectionTo: () => connection,
  };
  return client as unknown as RiffleClient;
}
