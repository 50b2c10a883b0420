// The group consumer against a scripted coordinator (no server): a reconciliation that is still
// fetching the start offsets of an assignment must not take partitions a newer assignment
// withdrew meanwhile, and until it knows, it reports them as owned so the coordinator cannot give
// them to another member (two owners: the chaos suite's double-ownership and restart-offset
// anomalies under leader kills). Once the newer assignment is applied, it owns and reports only
// what that one gives it.
import { describe, expect, it } from 'vitest';
import { GroupConsumer, type RiffleClient } from '../../src/client/index.js';
import { RiffleError } from '../../src/rpc/errors.js';

interface Heartbeat {
  memberEpoch: number;
  topicPartitions: { topicName: string; partitions: number[] }[];
}

function assignmentOf(partitions: number[]): { topicPartitions: { topicName: string; partitions: number[] }[] } {
  return { topicPartitions: [{ topicName: 'events', partitions }] };
}

async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('group consumer reconciliation', () => {
  it('does not take partitions withdrawn while it fetched their start offsets', async () => {
    const heartbeats: Heartbeat[] = [];
    let releaseFirstOffsetFetch!: () => void;
    const firstOffsetFetch = new Promise<void>((resolve) => (releaseFirstOffsetFetch = resolve));
    let offsetFetches = 0;
    const coordinator = async (method: string, request: Record<string, unknown>): Promise<unknown> => {
      if (method === 'ConsumerGroupHeartbeat') {
        heartbeats.push(request as unknown as Heartbeat);
        // First answer: partitions 0-3; second: only 0-1 (another member joined); then unchanged.
        const assignment = heartbeats.length === 1 ? assignmentOf([0, 1, 2, 3]) : heartbeats.length === 2 ? assignmentOf([0, 1]) : null;
        return { errorCode: 0, errorMessage: '', memberId: 'member-a', memberEpoch: heartbeats.length === 1 ? 1 : 2, heartbeatIntervalMs: 20, sessionTimeoutMs: 10_000, assignment };
      }
      if (method === 'OffsetFetch') {
        if (offsetFetches++ === 0) await firstOffsetFetch;
        const names = (request.groups as { topics: { name: string; partitionIndexes: number[] }[] }[])[0]!.topics;
        return { groups: [{ errorCode: 0, topics: names.map((topic) => ({ name: topic.name, partitions: topic.partitionIndexes.map((partitionIndex) => ({ partitionIndex, committedOffset: 7, errorCode: 0 })) })) }] };
      }
      if (method === 'OffsetCommit') return { topics: [] };
      throw new Error(`unexpected ${method}`);
    };
    const client = {
      retry: { deadlineMs: 5_000 },
      requestTimeoutMs: 1_000,
      callAny: async () => ({ coordinators: [{ errorCode: 0, host: 'coordinator', port: 1, errorMessage: '' }] }),
      connection: () => ({ call: (_service: string, method: string, request: Record<string, unknown>) => coordinator(method, request) }),
      // Fetching never gets anywhere: this test is about ownership only.
      topicMetadata: async () => { throw new RiffleError('LEADER_NOT_AVAILABLE', 'no leader in this test'); },
      invalidate: () => undefined,
    } as unknown as RiffleClient;
    const consumer = new GroupConsumer(client, { groupId: 'g', autoCommit: false, maxWaitMs: 50 });
    const assigned: number[][] = [];
    const revoked: number[][] = [];
    consumer.on('assigned', (payload) => assigned.push((payload as { partition: number }[]).map((tp) => tp.partition)));
    consumer.on('revoked', (payload) => revoked.push((payload as { partition: number }[]).map((tp) => tp.partition)));
    consumer.on('error', () => undefined);
    consumer.subscribe({ topic: 'events' });
    await consumer.run({ eachBatch: async () => undefined });
    // The newer assignment arrives while the first fetch hangs: the member still reports the
    // partitions it may start on, so none of them can have another owner yet.
    await until(() => heartbeats.length >= 3, 'three heartbeats');
    expect(heartbeats[2]!.topicPartitions.flatMap((topic) => topic.partitions).sort()).toEqual([0, 1, 2, 3]);
    releaseFirstOffsetFetch();
    await until(() => consumer.assignment().length === 2, 'the member to own partitions 0 and 1');
    const heartbeatsBefore = heartbeats.length;
    await until(() => heartbeats.length > heartbeatsBefore + 1, 'a heartbeat after the reconciliation');
    expect(assigned.flat().sort()).toEqual([0, 1]);
    expect(revoked).toEqual([]);
    expect(consumer.assignment().map((tp) => tp.partition).sort()).toEqual([0, 1]);
    expect(heartbeats.at(-1)!.topicPartitions.flatMap((topic) => topic.partitions).sort()).toEqual([0, 1]);
    await consumer.stop().catch(() => undefined);
  });
});
