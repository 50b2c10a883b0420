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

/** A client whose only node is the scripted coordinator; fetching never gets anywhere (these tests are about ownership and commits). */
function scriptedClient(coordinator: (method: string, request: Record<string, unknown>) => Promise<unknown>): RiffleClient {
  return {
    retry: { deadlineMs: 5_000 },
    requestTimeoutMs: 1_000,
    callAny: async () => ({ coordinators: [{ errorCode: 0, host: 'coordinator', port: 1, errorMessage: '' }] }),
    connection: () => ({ call: (_service: string, method: string, request: Record<string, unknown>) => coordinator(method, request) }),
    topicMetadata: async () => { throw new RiffleError('LEADER_NOT_AVAILABLE', 'no leader in this test'); },
    invalidate: () => undefined,
  } as unknown as RiffleClient;
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
    const client = scriptedClient(coordinator);
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

  it('drops from a commit retry a partition lost and taken up again since the offsets were given', async () => {
    // The member owns partition 0 and commits 50; the coordinator is loading, so the commit is
    // retried. Meanwhile the member is fenced, rejoins, is given partition 0 again and starts
    // from the committed 40. A retry with the new epoch must not carry the old 50: the member
    // starting over will commit 41, 42, ... and the group's offset would go back (chaos
    // az-partition seed 4: commit-backwards).
    let heartbeats = 0;
    let fenced = false;
    let rejoined = false;
    const commits: { epoch: number; partitions: number[] }[] = [];
    let commitsAnswered = 0;
    const coordinator = async (method: string, request: Record<string, unknown>): Promise<unknown> => {
      if (method === 'ConsumerGroupHeartbeat') {
        heartbeats++;
        const epoch = request.memberEpoch as number;
        if (fenced && !rejoined && epoch !== 0) return { errorCode: 110, errorMessage: 'fenced', memberId: '', memberEpoch: 0, heartbeatIntervalMs: 20, sessionTimeoutMs: 10_000, assignment: null };
        if (epoch === 0 && fenced) rejoined = true;
        const memberEpoch = rejoined ? 3 : 1;
        return { errorCode: 0, errorMessage: '', memberId: 'member-a', memberEpoch, heartbeatIntervalMs: 20, sessionTimeoutMs: 10_000, assignment: assignmentOf([0]) };
      }
      if (method === 'OffsetFetch') {
        return { groups: [{ errorCode: 0, topics: [{ name: 'events', partitions: [{ partitionIndex: 0, committedOffset: 40, errorCode: 0 }] }] }] };
      }
      if (method === 'OffsetCommit') {
        const topics = request.topics as { partitions: { partitionIndex: number }[] }[];
        commits.push({ epoch: request.generationIdOrMemberEpoch as number, partitions: topics.flatMap((topic) => topic.partitions.map((partition) => partition.partitionIndex)) });
        // Loading until the member has been fenced and given the partition again.
        const answer = rejoined && commitsAnswered > 0 ? 0 : 14;
        commitsAnswered++;
        if (answer !== 0) fenced = true;
        return { topics: topics.map((topic) => ({ name: 'events', partitions: topic.partitions.map((partition) => ({ partitionIndex: partition.partitionIndex, errorCode: answer })) })) };
      }
      throw new Error(`unexpected ${method}`);
    };
    const client = scriptedClient(coordinator);
    const consumer = new GroupConsumer(client, { groupId: 'g', autoCommit: false, maxWaitMs: 50 });
    const lost: number[][] = [];
    consumer.on('lost', (payload) => lost.push((payload as { partition: number }[]).map((tp) => tp.partition)));
    consumer.on('error', () => undefined);
    consumer.subscribe({ topic: 'events' });
    await consumer.run({ eachBatch: async () => undefined });
    await until(() => consumer.assignment().length === 1, 'the member to own partition 0');
    const outcome = consumer.commitOffsets([{ topic: 'events', partition: 0, offset: 50 }]).then(() => 'committed', (error: RiffleError) => error.errorName);
    await until(() => rejoined && consumer.assignment().length === 1, 'the member fenced and given partition 0 again');
    expect(await outcome).toBe('STALE_MEMBER_EPOCH');
    expect(lost).toEqual([[0]]);
    // The first attempt carried 50 with epoch 1; no attempt under the new epoch did.
    expect(commits[0]).toEqual({ epoch: 1, partitions: [0] });
    expect(commits.filter((commit) => commit.epoch === 3 && commit.partitions.includes(0))).toEqual([]);
    await consumer.stop().catch(() => undefined);
  });
  it('revokes everything it owns before it leaves on stop()', async () => {
    // What the application and the coordinator heard, in order.
    const timeline: string[] = [];
    const coordinator = async (method: string, request: Record<string, unknown>): Promise<unknown> => {
      if (method === 'ConsumerGroupHeartbeat') {
        const epoch = request.memberEpoch as number;
        if (epoch === -1) {
          timeline.push('leave');
          return { errorCode: 0, errorMessage: '', memberId: 'member-a', memberEpoch: -1, heartbeatIntervalMs: 20, sessionTimeoutMs: 10_000, assignment: null };
        }
        return { errorCode: 0, errorMessage: '', memberId: 'member-a', memberEpoch: 1, heartbeatIntervalMs: 20, sessionTimeoutMs: 10_000, assignment: epoch === 0 ? assignmentOf([0, 1]) : null };
      }
      if (method === 'OffsetFetch') return { groups: [{ errorCode: 0, topics: [{ name: 'events', partitions: [0, 1].map((partitionIndex) => ({ partitionIndex, committedOffset: 7, errorCode: 0 })) }] }] };
      if (method === 'OffsetCommit') return { topics: [] };
      throw new Error(`unexpected ${method}`);
    };
    const consumer = new GroupConsumer(scriptedClient(coordinator), {
      groupId: 'g', autoCommit: false, maxWaitMs: 50,
      onPartitionsRevoked: (partitions) => void timeline.push(`listener revoked ${partitions.map((tp) => tp.partition).join(',')}`),
    });
    consumer.on('assigned', (payload) => timeline.push(`assigned ${(payload as { partition: number }[]).map((tp) => tp.partition).join(',')}`));
    consumer.on('revoked', (payload) => timeline.push(`revoked ${(payload as { partition: number }[]).map((tp) => tp.partition).join(',')}`));
    consumer.on('error', () => undefined);
    consumer.subscribe({ topic: 'events' });
    await consumer.run({ eachBatch: async () => undefined });
    await until(() => consumer.assignment().length === 2, 'the member to own partitions 0 and 1');
    await consumer.stop();
    expect(timeline).toEqual(['assigned 0,1', 'listener revoked 0,1', 'revoked 0,1', 'leave']);
    expect(consumer.assignment()).toEqual([]);
  });

  it('takes nothing up once stop() has begun, and leaves owning nothing', async () => {
    // stop() is called while the member fetches the start offsets of its first assignment (chaos
    // controller-kill seed 255943411 in CI: a member told to leave still took up partitions it was
    // given meanwhile, and left without revoking them, so their next owner overlapped it).
    const timeline: string[] = [];
    let releaseOffsetFetch!: () => void;
    const offsetFetch = new Promise<void>((resolve) => (releaseOffsetFetch = resolve));
    let offsetFetchStarted = false;
    const coordinator = async (method: string, request: Record<string, unknown>): Promise<unknown> => {
      if (method === 'ConsumerGroupHeartbeat') {
        const epoch = request.memberEpoch as number;
        if (epoch === -1) timeline.push('leave');
        return { errorCode: 0, errorMessage: '', memberId: 'member-a', memberEpoch: epoch === -1 ? -1 : 1, heartbeatIntervalMs: 20, sessionTimeoutMs: 10_000, assignment: epoch === 0 ? assignmentOf([0, 1]) : null };
      }
      if (method === 'OffsetFetch') {
        offsetFetchStarted = true;
        await offsetFetch;
        return { groups: [{ errorCode: 0, topics: [{ name: 'events', partitions: [0, 1].map((partitionIndex) => ({ partitionIndex, committedOffset: 7, errorCode: 0 })) }] }] };
      }
      if (method === 'OffsetCommit') return { topics: [] };
      throw new Error(`unexpected ${method}`);
    };
    const consumer = new GroupConsumer(scriptedClient(coordinator), { groupId: 'g', autoCommit: false, maxWaitMs: 50 });
    consumer.on('assigned', (payload) => timeline.push(`assigned ${(payload as { partition: number }[]).map((tp) => tp.partition).join(',')}`));
    consumer.on('revoked', (payload) => timeline.push(`revoked ${(payload as { partition: number }[]).map((tp) => tp.partition).join(',')}`));
    consumer.on('error', () => undefined);
    consumer.subscribe({ topic: 'events' });
    await consumer.run({ eachBatch: async () => undefined });
    await until(() => offsetFetchStarted, 'the start offsets to be asked for');
    const stopped = consumer.stop();
    releaseOffsetFetch();
    await stopped;
    expect(timeline).toEqual(['leave']);
    expect(consumer.assignment()).toEqual([]);
  });
});

