// Follower fetching with progress reports, in process: a leader Partition served by the real
// ReplicaFetch handler on 127.0.16.1 and a follower Partition driven by the real fetcher. The
// follower's fsyncs are held by the test, so it can see that the follower fetches again before
// its flush completes, that nothing it has not flushed counts toward the high watermark, and
// that the completed flush reaches the leader as a progress report while the next fetch is
// parked. Malformed positions are refused without harm, and an answer leaves out the partitions
// with nothing new for the follower.
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Registry } from '../../src/metrics/index.js';
import { Partition, type PartitionRole } from '../../broker/partition.js';
import { ReplicaFetcherManager } from '../../broker/replica-fetcher.js';
import { replicationHandlers } from '../../broker/replication-service.js';
import type { ReplicaManager } from '../../broker/replica-manager.js';
import { OpenStreams, RpcMetrics, bindServer } from '../../src/rpc/server.js';
import { serviceClient } from '../../src/rpc/proto.js';
import { ConnectionPool } from '../../src/rpc/client.js';
import { createLogger } from '../../src/util/logger.js';
import type { ReplicaFetchResponse__Output } from '../../src/rpc/generated/riffle/internal/ReplicaFetchResponse.js';
import type { ReplicaFetchRequest } from '../../src/rpc/generated/riffle/internal/ReplicaFetchRequest.js';
import { batchOf, makeTempDir, openLog, removeDir, waitFor } from './log/helpers.js';

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

async function startLeader(): Promise<{ leader: Partition; address: string }> {
  const { log } = await openLog(leaderDir, { flushPolicy: 'ack' });
  const leader = new Partition('events', 'id', 0, log, 1, LEADER_ROLE);
  const replicas = { findPartition: (topic: string, index: number) => (topic === 'events' && index === 0 ? leader : undefined) } as unknown as ReplicaManager;
  const server = new grpc.Server();
  server.addService(
    serviceClient('riffle/internal/replication.proto', 'riffle.internal.Replication').service,
    replicationHandlers({ service: 'replication', metrics: new RpcMetrics(new Registry()), logger }, { replicas, logger, streams: new OpenStreams() }) as grpc.UntypedServiceImplementation,
  );
  const port = await bindServer(server, HOST, 0);
  cleanups.push(() => leader.close());
  cleanups.push(() => void server.forceShutdown());
  return { leader, address: `${HOST}:${port}` };
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
