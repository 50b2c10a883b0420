// The lease coordinator of Kinesis-like applications: worker heartbeats, checkpoints and lease
// expiry, run on the GroupShard of partition hash(application) mod N of __consumer_offsets (the
// same shard, queue and acks=all writes as the consumer groups of that partition, so a new
// coordinator replays applications exactly as it replays groups). The rules are in
// kinesis-leases.ts; this file keeps the worker sessions and does the I/O.
//
// Sessions are in memory, as for groups: a coordinator that takes over gives every worker that
// holds a lease a fresh session of one failover time, counted from the load. A worker is expired
// a little before the failover time since its last heartbeat (expiryAfterMs), so that after a
// crash its leases are with another worker within the failover time.
import type { MetadataImage } from '../../controller/index.js';
import { RiffleError, toRiffleError } from '../../src/rpc/errors.js';
import type { Logger } from '../../src/util/logger.js';
import { decodeSequenceNumber, partitionOfShardId, shardIdOf } from '../../src/util/kinesis.js';
import type { GroupCoordinator } from './group-coordinator.js';
import type { GroupShard } from './group-shard.js';
import {
  SHARD_END, WORKERS_PER_APP_MAX, cloneApp, compareSequenceNumbers, diffAppRecords, expireWorker, leaseHeartbeat, leaseOwners, newApp, validateWorkerHeartbeat,
  type KinesisApp, type LeaseHeartbeatInput, type LeaseHeartbeatOutcome, type StreamShard,
} from './kinesis-leases.js';
import type { LeaseMetrics } from './lease-metrics.js';
import type { KinesisShardValue } from './offsets-records.js';

/** How often worker sessions are checked. */
export const LEASE_TICK_MS = 100;
/** A worker that is reconciling (waiting for a shard, or releasing one) is asked back this soon. */
export const LEASE_RECONCILING_HEARTBEAT_MS = 100;
/** The steady heartbeat interval is this fraction of the failover time, at most LEASE_HEARTBEAT_MS_MAX. */
export const LEASE_HEARTBEAT_FRACTION = 10;
export const LEASE_HEARTBEAT_MS_MAX = 500;
/** Shard ids in one request at most. */
export const LEASE_REQUEST_SHARDS_MAX = 10_000;

export interface LeaseCoordinatorOptions {
  groups: GroupCoordinator;
  image: () => MetadataImage;
  logger: Logger;
  metrics: LeaseMetrics;
}

export interface CheckpointInput {
  appName: string;
  streamName: string;
  shardId: string;
  workerId: string;
  leaseEpoch: number;
  sequenceNumber: string;
}

export class LeaseCoordinator {
  /** Per loaded shard: application -> worker -> performance.now() deadline. */
  private readonly sessions = new WeakMap<GroupShard, Map<string, Map<string, number>>>();
  private timer?: NodeJS.Timeout;

  constructor(private readonly options: LeaseCoordinatorOptions) {
    options.metrics.bind({ apps: () => this.listApps(), workers: (shard, appName) => this.sessionsOf(shard, appName).size, shards: () => options.groups.loadedShards() });
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), LEASE_TICK_MS);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  listApps(): KinesisApp[] {
    return this.options.groups.loadedShards().flatMap((shard) => [...shard.apps.values()]);
  }

  /** The worker sessions of an application on a shard, created for the lease owners on first use. */
  private sessionsOf(shard: GroupShard, appName: string): Map<string, number> {
    let byApp = this.sessions.get(shard);
    if (!byApp) this.sessions.set(shard, (byApp = new Map()));
    let workers = byApp.get(appName);
    if (!workers) {
      workers = new Map();
      const app = shard.apps.get(appName);
      for (const owner of app ? leaseOwners(app) : []) workers.set(owner, performance.now() + app!.failoverTimeMs);
      byApp.set(appName, workers);
    }
    return workers;
  }

  private streamShards(streamName: string): StreamShard[] {
    const topic = this.options.image().topicByName(streamName);
    if (!topic || topic.kind !== 'stream') throw new RiffleError('RESOURCE_NOT_FOUND', `Stream ${streamName} not found.`);
    return topic.partitions.map((info) => ({
      shardId: shardIdOf(info.partition),
      parents: info.parentPartitions.map((parent) => shardIdOf(parent)),
      closed: info.state === 'closed',
    }));
  }

  async heartbeat(input: LeaseHeartbeatInput): Promise<LeaseHeartbeatOutcome & { heartbeatIntervalMs: number; failoverTimeMs: number }> {
    try {
      validateWorkerHeartbeat(input);
      if (input.ownedShardIds.length > LEASE_REQUEST_SHARDS_MAX || input.drained.length > LEASE_REQUEST_SHARDS_MAX) throw new RiffleError('INVALID_ARGUMENT', `At most ${LEASE_REQUEST_SHARDS_MAX} shards per heartbeat.`);
      const stream = this.streamShards(input.streamName);
      const shard = this.options.groups.shardFor(input.appName);
      const outcome = await shard.run(() => {
        const sessions = this.sessionsOf(shard, input.appName);
        if (!sessions.has(input.workerId) && !input.leaving && sessions.size >= WORKERS_PER_APP_MAX) throw new RiffleError('LIMIT_EXCEEDED', `Application ${input.appName} has ${sessions.size} workers.`);
        const before = shard.apps.get(input.appName);
        const after = before ? cloneApp(before) : newApp(input.appName);
        const live = [...sessions.keys()].filter((worker) => worker !== input.workerId);
        const result = leaseHeartbeat(after, input, stream, live);
        return {
          records: diffAppRecords(input.appName, before, after),
          result,
          afterCommit: () => {
            const app = shard.apps.get(input.appName);
            if (input.leaving) sessions.delete(input.workerId);
            else sessions.set(input.workerId, performance.now() + expiryAfterMs(app?.failoverTimeMs ?? 0));
            if (result.freed > 0) this.options.metrics.leaseMoves.inc({ reason: input.leaving ? 'worker_stopped' : 'released' }, result.freed);
            if (result.granted > 0) this.options.logger.info(`application ${input.appName} granted ${result.granted} lease(s) to worker ${input.workerId}`);
          },
        };
      });
      const failoverTimeMs = shard.apps.get(input.appName)?.failoverTimeMs ?? 0;
      const steady = steadyHeartbeatMs(failoverTimeMs);
      this.options.metrics.heartbeats.inc({ outcome: 'ok' });
      return { ...outcome, heartbeatIntervalMs: outcome.reconciling ? LEASE_RECONCILING_HEARTBEAT_MS : steady, failoverTimeMs };
    } catch (error) {
      this.options.metrics.heartbeats.inc({ outcome: toRiffleError(error).errorName });
      throw error;
    }
  }

  async checkpoint(input: CheckpointInput): Promise<void> {
    try {
      if (!input.appName) throw new RiffleError('INVALID_ARGUMENT', 'ApplicationName is required.');
      const stream = this.streamShards(input.streamName);
      const info = stream.find((candidate) => candidate.shardId === input.shardId);
      if (!info) throw new RiffleError('RESOURCE_NOT_FOUND', `Shard ${input.shardId} in stream ${input.streamName} not found.`);
      validateSequenceNumber(input.sequenceNumber, input.shardId, info.closed);
      const shard = this.options.groups.shardFor(input.appName);
      await shard.run(() => {
        const before = shard.apps.get(input.appName);
        if (!before?.hasMetadata) throw new RiffleError('RESOURCE_NOT_FOUND', `Application ${input.appName} not found.`);
        if (before.streamName !== input.streamName) throw new RiffleError('INVALID_ARGUMENT', `Application ${input.appName} consumes stream ${before.streamName}, not ${input.streamName}.`);
        const value = before.shards.get(input.shardId);
        if (!value || value.owner !== input.workerId || value.leaseEpoch !== input.leaseEpoch) {
          throw new RiffleError('LEASE_NOT_HELD', `Worker ${input.workerId} does not hold the lease of ${input.shardId} at epoch ${input.leaseEpoch}${value?.owner ? ` (worker ${value.owner} holds it at epoch ${value.leaseEpoch})` : ''}.`);
        }
        if (value.checkpoint === SHARD_END) throw new RiffleError('INVALID_ARGUMENT', `${input.shardId} is already checkpointed at SHARD_END.`);
        if (value.checkpoint && input.sequenceNumber !== SHARD_END && compareSequenceNumbers(input.sequenceNumber, value.checkpoint) < 0) {
          throw new RiffleError('INVALID_ARGUMENT', `Sequence number ${input.sequenceNumber} is below the checkpoint ${value.checkpoint} of ${input.shardId}.`);
        }
        const after = cloneApp(before);
        after.shards.set(input.shardId, { ...value, checkpoint: input.sequenceNumber, checkpointTimestampMs: Date.now() });
        return { records: diffAppRecords(input.appName, before, after), result: undefined };
      });
      this.options.metrics.checkpoints.inc({ outcome: 'ok' });
    } catch (error) {
      this.options.metrics.checkpoints.inc({ outcome: toRiffleError(error).errorName });
      throw error;
    }
  }

  /** The application's shards (one when `shardId` is given) and its live workers. */
  describe(appName: string, streamName: string, shardId: string): { app: KinesisApp; shards: [string, KinesisShardValue][]; workers: string[] } {
    if (!appName) throw new RiffleError('INVALID_ARGUMENT', 'ApplicationName is required.');
    const shard = this.options.groups.shardFor(appName);
    const app = shard.apps.get(appName);
    if (!app?.hasMetadata) throw new RiffleError('RESOURCE_NOT_FOUND', `Application ${appName} not found.`);
    if (streamName && app.streamName !== streamName) throw new RiffleError('INVALID_ARGUMENT', `Application ${appName} consumes stream ${app.streamName}, not ${streamName}.`);
    let shards = [...app.shards].sort(([a], [b]) => (a < b ? -1 : 1));
    if (shardId) {
      if (partitionOfShardId(shardId) === null) throw new RiffleError('INVALID_ARGUMENT', `'${shardId}' is not a shard id (shardId-000000000000).`);
      if (!this.streamShards(app.streamName).some((candidate) => candidate.shardId === shardId)) throw new RiffleError('RESOURCE_NOT_FOUND', `Shard ${shardId} in stream ${app.streamName} not found.`);
      shards = shards.filter(([candidate]) => candidate === shardId);
      if (shards.length === 0) shards = [[shardId, { checkpoint: '', checkpointTimestampMs: 0, owner: '', leaseEpoch: 0 }]];
    }
    return { app, shards, workers: [...this.sessionsOf(shard, appName).keys()].sort() };
  }

  private tick(): void {
    const now = performance.now();
    for (const shard of this.options.groups.loadedShards()) {
      for (const appName of shard.apps.keys()) {
        const sessions = this.sessionsOf(shard, appName);
        for (const [workerId, deadline] of sessions) {
          if (now <= deadline) continue;
          sessions.delete(workerId);
          this.expire(shard, appName, workerId);
        }
      }
    }
  }

  private expire(shard: GroupShard, appName: string, workerId: string): void {
    shard.run(() => {
      const before = shard.apps.get(appName);
      if (!before) return { records: [], result: 0 };
      const after = cloneApp(before);
      const freed = expireWorker(after, workerId);
      return {
        records: diffAppRecords(appName, before, after),
        result: freed,
        afterCommit: () => {
          if (freed > 0) this.options.metrics.leaseMoves.inc({ reason: 'expired' }, freed);
          this.options.logger.info(`application ${appName} expired worker ${workerId}: ${freed} lease(s) freed`);
        },
      };
    }).catch((error: unknown) => {
      this.options.logger.warn({ err: error, appName, workerId }, 'expiring a worker failed; the next tick retries');
      const sessions = this.sessionsOf(shard, appName);
      if (!sessions.has(workerId)) sessions.set(workerId, 0);
    });
  }
}

/** The heartbeat interval of a worker that is not reconciling. */
export function steadyHeartbeatMs(failoverTimeMs: number): number {
  return Math.min(LEASE_HEARTBEAT_MS_MAX, Math.floor(failoverTimeMs / LEASE_HEARTBEAT_FRACTION));
}

/**
 * How long after its last heartbeat a worker is expired: early enough that its leases are with
 * another worker within the failover time of a crash (the tick that notices, the other workers'
 * next heartbeat and a slack for the calls come after the expiry), and still after the worker
 * itself gave them up (it does a third of the failover time, at most 2 s, before the failover
 * time since its last answered heartbeat; see src/client/kinesis-worker.ts).
 */
export function expiryAfterMs(failoverTimeMs: number): number {
  return failoverTimeMs - LEASE_TICK_MS - steadyHeartbeatMs(failoverTimeMs) - EXPIRY_SLACK_MS;
}

/** Scheduling and call time allowed for between an expiry and the next worker's grant. */
const EXPIRY_SLACK_MS = 100;

function validateSequenceNumber(sequenceNumber: string, shardId: string, closed: boolean): void {
  if (sequenceNumber === SHARD_END) {
    if (!closed) throw new RiffleError('INVALID_ARGUMENT', `${shardId} is open: only a closed shard can be checkpointed at SHARD_END.`);
    return;
  }
  const decoded = decodeSequenceNumber(sequenceNumber ?? '');
  if (!decoded) throw new RiffleError('INVALID_ARGUMENT', `'${sequenceNumber}' is not a sequence number.`);
  if (shardIdOf(decoded.partition) !== shardId) throw new RiffleError('INVALID_ARGUMENT', `Sequence number ${sequenceNumber} belongs to ${shardIdOf(decoded.partition)}, not ${shardId}.`);
}
