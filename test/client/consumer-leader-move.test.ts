// Both consumers' watch over a fetch that a broker does not answer (paused, cut off): once the
// refreshed metadata shows that broker neither leads nor follows in sync a partition of the
// fetch, the fetch is given up on and the partition fetched again, from the same position, where
// the metadata now points. A broker that is merely slow, and still leads, is waited for.
import { afterEach, describe, expect, it } from 'vitest';
import { PartitionConsumer, type RiffleClient, type TopicMetadata } from '../../src/client/index.js';
import { GroupFetcher } from '../../src/client/group-fetcher.js';
import { RiffleError } from '../../src/rpc/errors.js';

interface Fetch {
  node: number;
  offset: number;
}

/** When node 1 answered its fetch, if it did. */
interface Answered {
  atMs?: number;
}

function ledBy(leaderId: number, isr: number[]): TopicMetadata {
  return { name: 'events', topicId: 'id', kind: 'kafka', partitions: [{ partition: 0, leaderId, leaderEpoch: leaderId, replicas: [1, 2], isr }] };
}

/** Node 1 answers fetches as `node1` says, node 2 at once; a refresh finds `state.metadata`. */
function twoNodes(node1: 'never' | number) {
  const fetches: Fetch[] = [];
  const sentAtMs: number[] = [];
  const node1Answered: Answered = {};
  const hanging: (() => void)[] = [];
  const state = { metadata: ledBy(1, [1, 2]), refreshes: 0 };
  let cached = state.metadata;
  const answer = { throttleTimeMs: 0, errorCode: 0, responses: [{ topic: 'events', partitions: [{ partitionIndex: 0, errorCode: 0, errorMessage: '', highWatermark: 5, lastStableOffset: 5, logStartOffset: 0, preferredReadReplica: -1, records: Buffer.alloc(0) }] }] };
  const connectionTo = (node: number) => ({
    pipelined: () => ({
      call: (request: { topics: { partitions: { fetchOffset: number }[] }[] }) => {
        fetches.push({ node, offset: request.topics[0]!.partitions[0]!.fetchOffset });
        sentAtMs.push(performance.now());
        if (node !== 1) return new Promise((resolve) => setTimeout(() => resolve(answer), 5));
        if (node1 === 'never') return new Promise((_, reject) => hanging.push(() => reject(new RiffleError('NETWORK_EXCEPTION', 'test over'))));
        return new Promise((resolve) => setTimeout(() => {
          node1Answered.atMs ??= performance.now();
          resolve(answer);
        }, node1));
      },
    }),
  });
  const client = {
    requestTimeoutMs: 600_000,
    retry: { deadlineMs: 1_000, backoffMsInitial: 1, backoffMsMax: 5 },
    topicMetadata: async () => cached,
    cachedTopic: () => cached,
    leaderEpochOf: () => cached.partitions[0]!.leaderEpoch,
    refreshMetadata: async () => {
      state.refreshes++;
      cached = state.metadata;
      return {};
    },
    invalidate: () => undefined,
    connectionTo,
  };
  return { client: client as unknown as RiffleClient, fetches, sentAtMs, node1Answered, state, release: () => hanging.splice(0).forEach((reject) => reject()) };
}

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((cleanup) => cleanup()));

/** Polls until `done` or the deadline; the request timeout (600 s) is far past it. */
async function pollUntil(poll: () => Promise<unknown>, done: () => boolean, deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!done() && Date.now() < deadline) await poll();
}

describe('consumer fetches from a broker that does not answer', () => {
  for (const kind of ['partition consumer', 'group fetcher'] as const) {
    const subject = (client: RiffleClient): (() => Promise<unknown>) => {
      if (kind === 'partition consumer') {
        const consumer = new PartitionConsumer(client, { topic: 'events', from: 5, maxWaitMs: 100 });
        return () => consumer.poll();
      }
      const fetcher = new GroupFetcher(client, { maxWaitMs: 100, maxBytes: 1 << 20, partitionMaxBytes: 1 << 20, autoOffsetReset: 'earliest' });
      fetcher.add('events', 0, 5);
      return () => fetcher.poll();
    };

    it(`${kind}: go to the new leader at the same position once the old one is out of the ISR`, async () => {
      const nodes = twoNodes('never');
      cleanups.push(nodes.release);
      const polling = pollUntil(subject(nodes.client), () => nodes.fetches.some((fetch) => fetch.node === 2), 10_000);
      await expect.poll(() => nodes.fetches.length).toBe(1);
      // The controller fenced node 1: broker 2 leads, alone in the ISR.
      nodes.state.metadata = ledBy(2, [2]);
      await polling;
      expect(nodes.fetches.slice(0, 2)).toEqual([{ node: 1, offset: 5 }, { node: 2, offset: 5 }]);
    }, 20_000);

    it(`${kind}: wait for a slow leader that is still in the ISR`, async () => {
      const nodes = twoNodes(2_500);
      // Another broker leads per the refresh, but node 1 is still in sync: no reason to give up.
      nodes.state.metadata = ledBy(2, [1, 2]);
      // Node 1 answers after 2.5 s; the check ran meanwhile (after 1.1 s) and gave up nothing,
      // so the next fetch leaves only after that answer.
      await pollUntil(subject(nodes.client), () => nodes.fetches.length >= 2, 10_000);
      expect(nodes.fetches[0]).toEqual({ node: 1, offset: 5 });
      expect(nodes.state.refreshes).toBeGreaterThanOrEqual(1);
      expect(nodes.node1Answered.atMs).toBeDefined();
      expect(nodes.sentAtMs[1]).toBeGreaterThanOrEqual(nodes.node1Answered.atMs!);
    }, 20_000);
  }
});
