// The producer's watch over unanswered requests: a leader that stops without closing its
// connections (paused, cut off) never answers, and its requests would wait out the request
// timeout. Once the metadata names another leader at a newer epoch, the producer gives up on the
// request and sends its batches there, with the same sequence numbers; a leader that is merely
// slow, or metadata that is not newer, changes nothing.
import { afterEach, describe, expect, it } from 'vitest';
import type { RiffleClient, TopicMetadata } from '../../src/client/client.js';
import { Producer } from '../../src/client/producer.js';
import { DEFAULT_RETRY } from '../../src/client/retry.js';
import { RiffleError } from '../../src/rpc/errors.js';
import { readBatchHeader } from '../../src/util/record-batch.js';

interface ProduceRequest {
  topicData: { name: string; partitionData: { index: number; records: Buffer }[] }[];
}

interface Arrival {
  broker: number;
  baseSequence: number;
  producerId: number;
}

/** Two brokers behind a fake client; each answers as `answer` says, and `metadata` is what a refresh finds. */
function twoBrokers(answer: (broker: number) => 'now' | 'never' | number) {
  const arrivals: Arrival[] = [];
  const hanging: (() => void)[] = [];
  const state = {
    metadata: topicLedBy(1, 0),
    refreshes: 0,
  };
  let cached = state.metadata;
  let nextOffset = 0;
  const connectionTo = (broker: number) => ({
    pipelined: (_service: string, method: string) => {
      if (method !== 'ProduceStream') throw new Error(`unexpected ${method}`);
      return {
        call: (request: ProduceRequest) => {
          const data = request.topicData[0]!.partitionData[0]!;
          const header = readBatchHeader(data.records);
          arrivals.push({ broker, baseSequence: header.baseSequence, producerId: header.producerId });
          const response = { responses: [{ name: 'events', partitionResponses: [{ index: data.index, errorCode: 0, errorMessage: '', baseOffset: nextOffset++ }] }], throttleTimeMs: 0 };
          const how = answer(broker);
          if (how === 'now') return Promise.resolve(response);
          if (how === 'never') return new Promise((_, reject) => hanging.push(() => reject(new RiffleError('NETWORK_EXCEPTION', 'test over'))));
          return new Promise((resolve) => setTimeout(() => resolve(response), how));
        },
      };
    },
  });
  const client = {
    retry: { ...DEFAULT_RETRY, backoffMsInitial: 1, backoffMsMax: 5 },
    cachedTopic: () => cached,
    leaderEpochOf: (_topic: string, partition: number) => cached.partitions.find((candidate) => candidate.partition === partition)?.leaderEpoch ?? -1,
    topicMetadata: async () => cached,
    refreshMetadata: async () => {
      state.refreshes++;
      cached = state.metadata;
      return {};
    },
    noteLeader: () => false,
    invalidate: () => undefined,
    connectionTo,
    callAny: async (_service: string, method: string) => {
      if (method !== 'InitProducerId') throw new Error(`unexpected ${method}`);
      return { errorCode: 0, producerId: 7, producerEpoch: 0 };
    },
  };
  return { client: client as unknown as RiffleClient, arrivals, state, release: () => hanging.splice(0).forEach((reject) => reject()) };
}

function topicLedBy(leaderId: number, leaderEpoch: number): TopicMetadata {
  return { name: 'events', topicId: 'id', kind: 'kafka', partitions: [{ partition: 0, leaderId, leaderEpoch, replicas: [1, 2], isr: [1, 2] }] };
}

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((cleanup) => cleanup()));

describe('producer requests to a leader that does not answer', () => {
  it('go to the new leader, with the same sequence numbers, once the metadata names it at a newer epoch', async () => {
    const brokers = twoBrokers((broker) => (broker === 1 ? 'never' : 'now'));
    cleanups.push(brokers.release);
    // A request timeout far beyond the test's deadline: only the leader check can settle the send.
    const producer = new Producer(brokers.client, { lingerMs: 0, requestTimeoutMs: 600_000, deliveryTimeoutMs: 900_000 });
    const sent = producer.send({ topic: 'events', partition: 0, value: 'x' });
    await expect.poll(() => brokers.arrivals.length).toBe(1);
    // The controller elects broker 2; a refresh finds it.
    brokers.state.metadata = topicLedBy(2, 1);
    const metadata = await sent;
    expect(metadata.partition).toBe(0);
    expect(brokers.arrivals.map((arrival) => arrival.broker)).toEqual([1, 2]);
    const [first, second] = brokers.arrivals;
    expect(second!.producerId).toBe(first!.producerId);
    expect(second!.baseSequence).toBe(first!.baseSequence);
    await producer.close();
  }, 15_000);

  it('keep waiting for a leader that is merely slow, or when the metadata names another broker at no newer epoch', async () => {
    const brokers = twoBrokers((broker) => (broker === 1 ? 2_500 : 'now'));
    const producer = new Producer(brokers.client, { lingerMs: 0, requestTimeoutMs: 600_000 });
    // Metadata from a broker that is behind: another leader, but the same epoch.
    brokers.state.metadata = topicLedBy(2, 0);
    const metadata = await producer.send({ topic: 'events', partition: 0, value: 'x' });
    expect(metadata.offset).toBe(0);
    // The check ran (the answer took over a second) and sent nothing to broker 2.
    expect(brokers.state.refreshes).toBeGreaterThanOrEqual(1);
    expect(brokers.arrivals.map((arrival) => arrival.broker)).toEqual([1]);
    await producer.close();
  }, 15_000);
});
