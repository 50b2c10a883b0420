// Follower fetching with progress reports, in process: a leader Partition served by the real
// ReplicaFetch handler on 127.0.16.1 and a follower Partition driven by the real fetcher. The
// follower's fsyncs are held by the test, so it can see that the follower fetches again before
// its flush completes, that nothing it has not flushed counts toward the high watermark, and
// that the completed flush reaches the leader as a progress report while the next fetch is
// parked. Malformed positions are refused without harm, and an answer leaves out the partitions
// with nothing new for the follower. The stream is a fetch session: incremental requests list
// only moved partitions, the leader fetches the others at their kept positions, and a new stream
// starts over with a whole request. A quiet partition of a session (the follower has its log and
// high watermark) is not read or checked again round after round, yet still counts as caught up.
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Registry } from '../../src/metrics/index.js';
import { Partition, type PartitionRole } from '../../broker/partition.js';
import { ReplicaFetcherManager } from '../../broker/replica-fetcher.js';
import { ReplicationServiceMetrics, replicationHandlers } from '../../broker/replication-service.js';
import type { ReplicaManager } from '../../broker/replica-manager.js';
import { OpenStreams, RpcMetrics, bindServer } from '../../src/rpc/server.js';
import { serviceClient } from '../../src/rpc/proto.js';
import { ConnectionPool } from '../../src/rpc/client.js';
import { createLogger } from '../../src/util/logger.js';
import type { ReplicaFetchResponse__Output } from '../../src/rpc/generated/riffle/internal/ReplicaFetchResponse.js';
import type { ReplicaFetchRequest } from '../../src/rpc/generated/riffle/internal/ReplicaFetchRequest.js';
import type { DescribeLogChecksumsResponse__Output } from '../../src/rpc/generated/riffle/internal/DescribeLogChecksumsResponse.js';
import * as path from 'node:path';
import { RiffleError } from '../../src/rpc/errors.js';
import type { ReplicaFetchRequest__Output } from '../../src/rpc/generated/riffle/internal/ReplicaFetchRequest.js';
import { batchOf, makeTempDir, metricValue, openLog, removeDir, waitFor } from './log/helpers.js';

const HOST = '127.0.16.1';
const LEADER_ROLE: PartitionRole = { leaderId: 1, leaderEpoch: 4, partitionEpoch: 2, replicas: [1, 2], isr: [1, 2], minInsyncReplicas: 2 };
const logger = createLogger({ level: 'silent' });

/** A follower log whose fsyncs wait until the test releases them. */
class HeldSyncs {
  held = false;
  private waiting: (() => void)[] = [];

  readonly syncFile = (): Promise<void> => {
    if (!this.held) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  };

  get waitingCount(): number {
    return this.waiting.length;
  }

  release(): void {
    this.held = false;
    for (const resolve of this.waiting.splice(0)) resolve();
  }
}

let leaderDir: string;
let followerDir: string;
const cleanups: (() => void | Promise<void>)[] = [];

beforeEach(() => {
  leaderDir = makeTempDir();
  followerDir = makeTempDir();
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  removeDir(leaderDir);
  removeDir(followerDir);
});

async function startLeader(): Promise<{ leader: Partition; address: string; registry: Registry }> {
  const { log } = await openLog(leaderDir, { flushPolicy: 'ack' });
  const leader = new Partition('events', 'id', 0, log, 1, LEADER_ROLE);
  const replicas = { findPartition: (topic: string, index: number) => (topic === 'events' && index === 0 ? leader : undefined) } as unknown as ReplicaManager;
  const registry = new Registry();
  const server = new grpc.Server();
  server.addService(
    serviceClient('riffle/internal/replication.proto', 'riffle.internal.Replication').service,
    replicationHandlers({ service: 'replication', metrics: new RpcMetrics(new Registry()), logger }, { replicas, logger, streams: new OpenStreams(), metrics: new ReplicationServiceMetrics(registry) }) as grpc.UntypedServiceImplementation,
  );
  const port = await bindServer(server, HOST, 0);
  cleanups.push(() => leader.close());
  cleanups.push(() => void server.forceShutdown());
  return { leader, address: `${HOST}:${port}`, registry };
}

async function startFollower(address: string, syncs: HeldSyncs): Promise<{ follower: Partition; reports: () => number }> {
  const { log } = await openLog(followerDir, { flushPolicy: 'ack' }, { syncFile: syncs.syncFile });
  const follower = new Partition('events', 'id', 0, log, 2, LEADER_ROLE);
  let reports = 0;
  const fetchers = new ReplicaFetcherManager({ selfId: 2, brokerEpoch: () => 1, logger, onProgressReport: () => reports++ });
  fetchers.follow(follower, 1, address);
  cleanups.push(() => follower.close());
  cleanups.push(() => fetchers.close());
  return { follower, reports: () => reports };
}

/** A bare ReplicaFetch stream to the leader, as a follower would open it; its answers in arrival order. */
function openFetchStream(address: string): { stream: grpc.ClientDuplexStream<ReplicaFetchRequest, ReplicaFetchResponse__Output>; answers: ReplicaFetchResponse__Output[] } {
  const client = new ConnectionPool().get(address);
  cleanups.push(() => client.close());
  const stream = (client.client('riffle.internal.Replication') as unknown as { ReplicaFetch(): grpc.ClientDuplexStream<ReplicaFetchRequest, ReplicaFetchResponse__Output> }).ReplicaFetch();
  cleanups.push(() => stream.cancel());
  const answers: ReplicaFetchResponse__Output[] = [];
  stream.on('data', (response: ReplicaFetchResponse__Output) => answers.push(response));
  stream.on('error', () => undefined);
  return { stream, answers };
}

describe('replica fetching with progress reports', () => {
  it('fetches again before its flush completes, and the completed flush moves the high watermark through a progress report', async () => {
    const { leader, address } = await startLeader();
    const syncs = new HeldSyncs();
    const { follower, reports } = await startFollower(address, syncs);
    await waitFor(() => leader.recordedFollowerEnd(2) === 0, 'the follower to start fetching');

    syncs.held = true;
    let acknowledged = false;
    const first = leader.append(batchOf(10), -1).then((info) => {
      acknowledged = true;
      return info;
    });
    await waitFor(() => follower.logEndOffset === 10 && syncs.waitingCount > 0, 'the follower to append the first batch and start its flush');
    // Its flush is held, yet it fetches and appends the next batch: it did not wait for the flush.
    const second = leader.append(batchOf(5), -1);
    await waitFor(() => follower.logEndOffset === 15, 'the follower to append the second batch while its flush is held');
    expect(follower.replicationDurableOffset).toBe(0);
    // Nothing the follower has not flushed counts: the writes wait.
    await leader.log.waitDurable(15);
    expect(leader.highWatermark).toBe(0);
    expect(leader.recordedFollowerEnd(2)).toBe(0);
    expect(acknowledged).toBe(false);

    const reportsBefore = reports();
    syncs.release();
    expect((await first).baseOffset).toBe(0);
    expect((await second).baseOffset).toBe(10);
    expect(leader.highWatermark).toBe(15);
    expect(reports()).toBeGreaterThan(reportsBefore);
    expect(follower.replicationDurableOffset).toBe(15);
  });

  it('ignores a progress report for another leader epoch or with an impossible durable end, and refuses such a fetch', async () => {
    const { leader, address } = await startLeader();
    await leader.append(batchOf(3), 1);
    const { stream, answers } = openFetchStream(address);
    const entry = { topic: 'events', partition: 0, currentLeaderEpoch: 4, lastFetchedEpoch: -1, logStartOffset: 0, partitionMaxBytes: 1 << 20 };

    stream.write({ replicaId: 2, brokerEpoch: 1, progressOnly: true, partitions: [{ ...entry, currentLeaderEpoch: 3, fetchOffset: 3, unflushedRecords: 0 }] });
    stream.write({ replicaId: 2, brokerEpoch: 1, progressOnly: true, partitions: [{ ...entry, fetchOffset: 3, unflushedRecords: 7 }] });
    stream.write({ replicaId: 2, brokerEpoch: 1, maxWaitMs: 0, maxBytes: 1 << 20, partitions: [{ ...entry, fetchOffset: 0, unflushedRecords: -1 }] });
    await waitFor(() => answers.length === 1, 'the answer to the malformed fetch');
    // Reports are never answered; the fetch is refused per partition with a typed error.
    expect(answers[0]!.partitions[0]!.errorCode).not.toBe(0);
    expect(answers[0]!.partitions[0]!.errorMessage).toMatch(/unflushed_records -1/);
    expect(leader.recordedFollowerEnd(2)).toBe(-1);
    expect(leader.highWatermark).toBe(0);

    // A good report of the current epoch counts.
    stream.write({ replicaId: 2, brokerEpoch: 1, progressOnly: true, partitions: [{ ...entry, fetchOffset: 3, unflushedRecords: 1 }] });
    await waitFor(() => leader.highWatermark === 2, 'the high watermark to reach the reported durable end');
    expect(leader.recordedFollowerEnd(2)).toBe(2);
    expect(answers).toHaveLength(1);
  });

  it('does not count a follower that claims more than the leader has written, by report or by fetch (as Kafka records a follower only after its read succeeds)', async () => {
    const { leader, address, registry } = await startLeader();
    await leader.append(batchOf(3), 1);
    const { stream, answers } = openFetchStream(address);
    const entry = { topic: 'events', partition: 0, currentLeaderEpoch: 4, lastFetchedEpoch: -1, logStartOffset: 0, partitionMaxBytes: 1 << 20, unflushedRecords: 0 };

    // Offsets 0-2 exist; a follower claiming 10 (a broken or forged one) would move the high
    // watermark over records it may not have.
    stream.write({ replicaId: 2, brokerEpoch: 1, progressOnly: true, partitions: [{ ...entry, fetchOffset: 10 }] });
    stream.write({ replicaId: 2, brokerEpoch: 1, maxWaitMs: 0, maxBytes: 1 << 20, partitions: [{ ...entry, fetchOffset: 10 }] });
    await waitFor(() => answers.length === 1, 'the answer to the fetch past the log end');
    expect(answers[0]!.partitions[0]!.errorCode).toBe(new RiffleError('OFFSET_OUT_OF_RANGE').code);
    expect(leader.recordedFollowerEnd(2)).toBe(-1);
    expect(leader.highWatermark).toBe(0);
    expect(await metricValue(registry, 'riffle_broker_follower_claims_ignored_total')).toBe(2);

    // At the log end it counts.
    stream.write({ replicaId: 2, brokerEpoch: 1, maxWaitMs: 0, maxBytes: 1 << 20, partitions: [{ ...entry, fetchOffset: 3 }] });
    await waitFor(() => leader.highWatermark === 3, 'the high watermark to reach the follower at the log end');
    expect(leader.recordedFollowerEnd(2)).toBe(3);

  });

  it('leaves out of an answer the partitions with nothing new, and names those with records, errors or a newer high watermark', async () => {
    const { leader, address } = await startLeader();
    await leader.append(batchOf(3), 1);
    const { stream, answers } = openFetchStream(address);
    const entry = { topic: 'events', partition: 0, currentLeaderEpoch: 4, lastFetchedEpoch: 4, logStartOffset: 0, partitionMaxBytes: 1 << 20, unflushedRecords: 0 };
    const fetch = async (partitions: object[]): Promise<ReplicaFetchResponse__Output> => {
      const count = answers.length;
      stream.write({ replicaId: 2, brokerEpoch: 1, maxWaitMs: 0, maxBytes: 1 << 20, partitions });
      await waitFor(() => answers.length === count + 1, 'an answer');
      return answers[count]!;
    };

    // Caught up, but its high watermark is behind: the entry carries the leader's.
    const caughtUp = await fetch([{ ...entry, fetchOffset: 3, highWatermark: 0 }]);
    expect(caughtUp.partitions.map((data) => [data.partition, Number(data.highWatermark), data.records.length])).toEqual([[0, 3, 0]]);
    // Caught up with the same high watermark: nothing to say about it.
    expect((await fetch([{ ...entry, fetchOffset: 3, highWatermark: 3 }])).partitions).toEqual([]);
    // Records to send, or an error, are always named; the quiet partition still is not.
    const mixed = await fetch([{ ...entry, fetchOffset: 3, highWatermark: 3 }, { ...entry, partition: 7, fetchOffset: 0, highWatermark: 0 }]);
    expect(mixed.partitions.map((data) => [data.partition, data.errorCode === 0])).toEqual([[7, false]]);
    const behind = await fetch([{ ...entry, lastFetchedEpoch: -1, fetchOffset: 0, highWatermark: 3 }]);
    expect(behind.partitions.map((data) => [data.partition, Number(data.highWatermark), data.records.length > 0])).toEqual([[0, 3, true]]);
  });
});

describe('DescribeLogChecksums', () => {
  it('answers each partition on its own: a checksum, or a typed error with a message for an unknown partition or a bad offset', async () => {
    const { leader, address } = await startLeader();
    await leader.append(batchOf(3), 1);
    await leader.append(batchOf(4), 1);
    const client = new ConnectionPool().get(address);
    cleanups.push(() => client.close());
    const response = await client.call<DescribeLogChecksumsResponse__Output>('riffle.internal.Replication', 'DescribeLogChecksums', {
      partitions: [{ topic: 'events', partition: 0, offset: 100 }, { topic: 'events', partition: 9, offset: 10 }, { topic: 'events', partition: 0, offset: -5 }, { topic: 'events', partition: 0, offset: 3 }],
    }, 5_000);
    const answers = response.partitions.map((entry) => ({ partition: entry.partition, errorCode: entry.errorCode, offset: Number(entry.offset), bytes: Number(entry.bytes), message: entry.errorMessage }));
    expect(answers[0]).toMatchObject({ partition: 0, errorCode: 0, offset: 7 });
    expect(answers[0]!.bytes).toBeGreaterThan(0);
    expect(answers[1]).toMatchObject({ partition: 9, errorCode: new RiffleError('UNKNOWN_TOPIC_OR_PARTITION').code, message: expect.stringMatching(/does not host events-9/) });
    expect(answers[2]).toMatchObject({ partition: 0, errorCode: new RiffleError('INVALID_REQUEST').code, message: expect.stringMatching(/offset -5/) });
    expect(answers[3]).toMatchObject({ partition: 0, errorCode: 0, offset: 3 });
    expect(answers[3]!.bytes).toBeLessThan(answers[0]!.bytes);
    expect(response.partitions[3]!.crc32c).toBe((await leader.log.checksumUpTo(3)).crc32c);
  });
});

/**
 * A leader of events-0 and events-1 whose ReplicaFetch handler lets the test see every request;
 * with `dropFirstStreamAtIncremental` it ends stream 1 at its first incremental fetch.
 */
async function startTwoPartitionLeader(options: { dropFirstStreamAtIncremental?: boolean; nowMs?: () => number } = {}): Promise<{ leaders: Partition[]; address: string; requests: { stream: number; request: ReplicaFetchRequest__Output }[] }> {
  const leaders: Partition[] = [];
  for (const index of [0, 1]) {
    const { log } = await openLog(path.join(leaderDir, `events-${index}`), { flushPolicy: 'ack' });
    leaders.push(new Partition('events', 'id', index, log, 1, LEADER_ROLE, options.nowMs));
  }
  const replicas = { findPartition: (topic: string, index: number) => (topic === 'events' ? leaders[index] : undefined) } as unknown as ReplicaManager;
  const handlers = replicationHandlers({ service: 'replication', metrics: new RpcMetrics(new Registry()), logger }, { replicas, logger, streams: new OpenStreams(), metrics: new ReplicationServiceMetrics(new Registry()) });
  const requests: { stream: number; request: ReplicaFetchRequest__Output }[] = [];
  let streams = 0;
  const serve = handlers.ReplicaFetch!;
  const ReplicaFetch = (call: grpc.ServerDuplexStream<ReplicaFetchRequest__Output, unknown>): void => {
    const stream = ++streams;
    let dropped = false;
    call.on('data', (request: ReplicaFetchRequest__Output) => {
      requests.push({ stream, request });
      if (options.dropFirstStreamAtIncremental && stream === 1 && request.incremental && !request.progressOnly && !dropped) {
        dropped = true;
        call.emit('error', new RiffleError('NETWORK_EXCEPTION', 'dropped by the test').toServiceError());
      }
    });
    serve(call as never);
  };
  const server = new grpc.Server();
  server.addService(serviceClient('riffle/internal/replication.proto', 'riffle.internal.Replication').service, { ...handlers, ReplicaFetch } as grpc.UntypedServiceImplementation);
  const port = await bindServer(server, HOST, 0);
  for (const leader of leaders) cleanups.push(() => leader.close());
  cleanups.push(() => void server.forceShutdown());
  return { leaders, address: `${HOST}:${port}`, requests };
}

async function startTwoPartitionFollower(address: string): Promise<{ followers: Partition[]; fetchers: ReplicaFetcherManager }> {
  const fetchers = new ReplicaFetcherManager({ selfId: 2, brokerEpoch: () => 1, logger });
  const followers: Partition[] = [];
  for (const index of [0, 1]) {
    const { log } = await openLog(path.join(followerDir, `events-${index}`), { flushPolicy: 'ack' });
    const follower = new Partition('events', 'id', index, log, 2, LEADER_ROLE);
    followers.push(follower);
    fetchers.follow(follower, 1, address);
    cleanups.push(() => follower.close());
  }
  cleanups.push(() => fetchers.close());
  return { followers, fetchers };
}

const listed = (request: ReplicaFetchRequest__Output): string[] => request.partitions.map((entry) => `${entry.topic}-${entry.partition}`);

describe('replica fetch sessions', () => {
  it('keeps each partition at its last sent position on the stream: unlisted ones are fetched, reports move them, forgotten ones are dropped', async () => {
    const { leader, address } = await startLeader();
    await leader.append(batchOf(3), 1);
    const { stream, answers } = openFetchStream(address);
    const entry = { topic: 'events', partition: 0, currentLeaderEpoch: 4, lastFetchedEpoch: 4, logStartOffset: 0, partitionMaxBytes: 1 << 20, unflushedRecords: 0 };
    const fetch = async (request: object): Promise<ReplicaFetchResponse__Output> => {
      const count = answers.length;
      stream.write({ replicaId: 2, brokerEpoch: 1, maxWaitMs: 0, maxBytes: 1 << 20, ...request });
      await waitFor(() => answers.length === count + 1, 'an answer');
      return answers[count]!;
    };

    // The follower is caught up and says so once; every answer offers sessions.
    const first = await fetch({ incremental: true, partitions: [{ ...entry, fetchOffset: 3, highWatermark: 3 }] });
    expect(first.incrementalSessions).toBe(true);
    expect(first.partitions).toEqual([]);
    expect(leader.recordedFollowerEnd(2)).toBe(3);
    // Two more records: a request naming no partition still fetches events-0 from offset 3.
    await leader.append(batchOf(2), 1);
    const unlisted = await fetch({ incremental: true, partitions: [] });
    expect(unlisted.partitions.map((data) => [data.partition, data.records.length > 0])).toEqual([[0, true]]);
    // A whole (not incremental) request stands alone: an empty one fetches nothing.
    expect((await fetch({ partitions: [] })).partitions).toEqual([]);

    // A report in the session moves the kept position: the next round fetches from 5, has nothing
    // to send, and does not take the follower's durable end back to 3.
    stream.write({ replicaId: 2, brokerEpoch: 1, progressOnly: true, incremental: true, partitions: [{ ...entry, fetchOffset: 5, highWatermark: 3 }] });
    await waitFor(() => leader.recordedFollowerEnd(2) === 5, 'the reported durable end');
    const afterReport = await fetch({ incremental: true, partitions: [] });
    expect(afterReport.partitions.map((data) => [data.partition, Number(data.highWatermark), data.records.length])).toEqual([[0, 5, 0]]);
    expect(leader.recordedFollowerEnd(2)).toBe(5);
    expect(leader.highWatermark).toBe(5);

    // Forgotten: a new record is no longer sent on this stream.
    await fetch({ incremental: true, partitions: [{ ...entry, fetchOffset: 5, highWatermark: 5 }] });
    await leader.append(batchOf(1), 1);
    expect((await fetch({ incremental: true, partitions: [], forgotten: [{ topic: 'events', partition: 0 }] })).partitions).toEqual([]);
    // A session belongs to its stream: a second stream knows nothing of the first's.
    const other = openFetchStream(address);
    other.stream.write({ replicaId: 2, brokerEpoch: 1, maxWaitMs: 0, maxBytes: 1 << 20, incremental: true, partitions: [] });
    await waitFor(() => other.answers.length === 1, 'the second stream\'s answer');
    expect(other.answers[0]!.partitions).toEqual([]);
  });

  it('a follower lists only the partitions that moved once the leader keeps its session, forgets the ones it stops following, and starts over on a new stream', async () => {
    const { leaders, address, requests } = await startTwoPartitionLeader({ dropFirstStreamAtIncremental: true });
    const { followers, fetchers } = await startTwoPartitionFollower(address);
    const fetches = (): { stream: number; request: ReplicaFetchRequest__Output }[] => requests.filter((entry) => !entry.request.progressOnly && entry.request.maxWaitMs > 0);

    // Stream 1 opens with a whole request naming both partitions; the test drops it at its first
    // incremental one. Stream 2 starts over: whole first, then incremental.
    await waitFor(() => fetches().filter((entry) => entry.stream === 2 && entry.request.incremental).length >= 1, 'incremental fetches on the second stream');
    const opening = fetches().filter((entry) => entry.stream === 2)[0]!.request;
    expect(opening.incremental).toBe(false);
    expect(listed(opening).sort()).toEqual(['events-0', 'events-1']);

    // Replication of events-0 goes on through the session, under acks=all.
    for (let round = 0; round < 5; round++) await leaders[0]!.append(batchOf(4), -1);
    expect(followers[0]!.logEndOffset).toBe(20);
    expect(leaders[0]!.highWatermark).toBe(20);
    const incremental = fetches().filter((entry) => entry.stream === 2 && entry.request.incremental).map((entry) => entry.request);
    expect(incremental.length).toBeGreaterThanOrEqual(5);
    // The quiet partition is named at most once (when the session took it in), events-0 only when it moved.
    expect(incremental.flatMap(listed).filter((name) => name === 'events-1').length).toBeLessThanOrEqual(1);
    expect(incremental.every((request) => listed(request).every((name) => name === 'events-0' || name === 'events-1'))).toBe(true);

    // Unfollowed: the next round forgets it, and it is never named again.
    fetchers.unfollow(followers[1]!);
    await leaders[0]!.append(batchOf(1), -1);
    await waitFor(() => fetches().some((entry) => entry.stream === 2 && entry.request.forgotten.some((gone) => gone.partition === 1)), 'a round forgetting events-1');
    expect(followers[0]!.logEndOffset).toBe(21);
  });

  it('does not read or check a quiet partition again while it stays quiet, still counts it caught up, and names it again once it changes', async () => {
    let nowMs = 1_000_000;
    const { leaders, address } = await startTwoPartitionLeader({ nowMs: () => nowMs });
    for (const leader of leaders) await leader.append(batchOf(3), 1);
    const [busy, quiet] = leaders as [Partition, Partition];
    const epochChecks = vi.spyOn(quiet.log, 'endOffsetForEpoch');
    const reads = vi.spyOn(quiet, 'readForReplica');
    const { stream, answers } = openFetchStream(address);
    const entry = { topic: 'events', currentLeaderEpoch: 4, lastFetchedEpoch: 4, logStartOffset: 0, partitionMaxBytes: 1 << 20, unflushedRecords: 0 };
    const fetch = async (request: object): Promise<ReplicaFetchResponse__Output> => {
      const count = answers.length;
      stream.write({ replicaId: 2, brokerEpoch: 1, maxWaitMs: 0, maxBytes: 1 << 20, incremental: true, ...request });
      await waitFor(() => answers.length === count + 1, 'an answer');
      return answers[count]!;
    };
    const named = (response: ReplicaFetchResponse__Output): number[] => response.partitions.map((data) => data.partition);

    // Both caught up: the first round checks both positions against the leader's epochs.
    expect(named(await fetch({ partitions: [{ ...entry, partition: 0, fetchOffset: 3, highWatermark: 3 }, { ...entry, partition: 1, fetchOffset: 3, highWatermark: 3 }] }))).toEqual([]);
    expect(epochChecks).toHaveBeenCalledTimes(1);
    const readsAfterFirst = reads.mock.calls.length;

    // Ten rounds with records on events-0 only, the clock moving past replica.lag.time.max.ms:
    // events-1 is never looked up in its log again, and its follower stays caught up.
    for (let round = 0; round < 10; round++) {
      await busy.append(batchOf(1), 1);
      nowMs += 3_000;
      const response = await fetch({ partitions: [{ ...entry, partition: 0, fetchOffset: 3 + round, highWatermark: 3 }] });
      expect(named(response)).toEqual([0]);
    }
    expect(epochChecks).toHaveBeenCalledTimes(1);
    expect(reads.mock.calls.length).toBe(readsAfterFirst);
    expect(quiet.maxFollowerLagMs()).toBe(0);
    expect(quiet.recordedFollowerEnd(2)).toBe(3);

    // A record on events-1 ends the quiet: it is read and sent.
    await quiet.append(batchOf(2), 1);
    const moved = await fetch({ partitions: [] });
    expect(moved.partitions.map((data) => [data.partition, data.records.length > 0])).toEqual([[0, true], [1, true]]);
    // A new leader epoch does too: the kept position's epoch is now stale, and the answer says so.
    quiet.updateRole({ ...LEADER_ROLE, leaderEpoch: 5, partitionEpoch: 3 });
    const fenced = await fetch({ partitions: [{ ...entry, partition: 1, fetchOffset: 5, highWatermark: 3 }] });
    expect(fenced.partitions.map((data) => [data.partition, data.errorCode === new RiffleError('FENCED_LEADER_EPOCH').code])).toEqual([[0, false], [1, true]]);
  });
});
