// Checkpoints and shard leases of Kinesis-like consumer applications (a Riffle extension: what
// KCL keeps in a DynamoDB lease table). An application lives in __consumer_offsets beside the
// consumer groups of the same partition (hash(application) mod N, so the same coordinator), under
// record types of its own (kinesis-app, kinesis-shard), so a group and an application with the
// same name never see each other's state.
//
// Everything here is pure, as in consumer-group.ts: an operation changes a copy of the
// application, the coordinator appends the difference (diffAppRecords) and only then makes the
// copy current; replaying the records (applyAppRecord) rebuilds the same state.
//
// The rules, and where they depart from KCL:
// - A lease is granted only when nobody holds it. A planned move (a worker joins or stops) is
//   revoke-then-assign: the owner is asked to release, finishes its batch, checkpoints, and
//   leaves the shard out of its next heartbeat; only then can another worker get it. KCL's
//   workers steal leases from each other, and the stolen shard's in-flight records are processed
//   twice; here they are not.
// - A worker that does not heartbeat for the application's failover time loses its leases (the
//   coordinator's tick frees them), as a KCL lease expires when its owner stops renewing it.
// - A shard is leasable when it is not at SHARD_END and each parent still in the stream is
//   checkpointed at SHARD_END, so children are read only after their parents (KCL's rule).
// - Targets are balanced to within one lease per live worker and sticky: a worker keeps what it
//   holds up to its share, and only the surplus moves.
import { RiffleError } from '../../src/rpc/errors.js';
import { assert } from '../../src/util/assert.js';
import type { KinesisAppValue, KinesisShardValue, OffsetsRecord } from './offsets-records.js';

export const SHARD_END = 'SHARD_END';
export const FAILOVER_TIME_MS_DEFAULT = 10_000;
export const FAILOVER_TIME_MS_MIN = 2_000;
export const FAILOVER_TIME_MS_MAX = 600_000;
export const WORKERS_PER_APP_MAX = 1_000;
export const WORKER_ID_LENGTH_MAX = 255;

export interface KinesisApp {
  readonly appName: string;
  /** False until the first heartbeat wrote the application record. */
  hasMetadata: boolean;
  streamName: string;
  failoverTimeMs: number;
  readonly shards: Map<string, KinesisShardValue>;
}

/** A shard of the stream as the metadata image has it. */
export interface StreamShard {
  shardId: string;
  parents: string[];
  closed: boolean;
}

export function newApp(appName: string): KinesisApp {
  return { appName, hasMetadata: false, streamName: '', failoverTimeMs: FAILOVER_TIME_MS_DEFAULT, shards: new Map() };
}

export function cloneApp(app: KinesisApp): KinesisApp {
  return { ...app, shards: new Map([...app.shards].map(([shardId, value]) => [shardId, { ...value }])) };
}

export function isAppRecord(record: OffsetsRecord): record is Extract<OffsetsRecord, { type: 'kinesis-app' | 'kinesis-shard' }> {
  return record.type === 'kinesis-app' || record.type === 'kinesis-shard';
}

/** Applies one replayed record; the inverse of diffAppRecords. */
export function applyAppRecord(apps: Map<string, KinesisApp>, record: Extract<OffsetsRecord, { type: 'kinesis-app' | 'kinesis-shard' }>): void {
  let app = apps.get(record.group);
  if (!app) {
    if (record.value === null) return;
    app = newApp(record.group);
    apps.set(record.group, app);
  }
  if (record.type === 'kinesis-app') {
    app.hasMetadata = record.value !== null;
    app.streamName = record.value?.streamName ?? '';
    app.failoverTimeMs = record.value?.failoverTimeMs ?? FAILOVER_TIME_MS_DEFAULT;
  } else if (record.value) app.shards.set(record.shard, { ...record.value });
  else app.shards.delete(record.shard);
  if (!app.hasMetadata && app.shards.size === 0) apps.delete(record.group);
}

/** The records that turn `before` (undefined: no such application) into `after`. */
export function diffAppRecords(appName: string, before: KinesisApp | undefined, after: KinesisApp): OffsetsRecord[] {
  const records: OffsetsRecord[] = [];
  const metaBefore: KinesisAppValue | null = before?.hasMetadata ? { streamName: before.streamName, failoverTimeMs: before.failoverTimeMs } : null;
  const metaAfter: KinesisAppValue | null = after.hasMetadata ? { streamName: after.streamName, failoverTimeMs: after.failoverTimeMs } : null;
  if (JSON.stringify(metaBefore) !== JSON.stringify(metaAfter)) records.push({ type: 'kinesis-app', group: appName, value: metaAfter });
  for (const [shard, value] of after.shards) {
    if (JSON.stringify(before?.shards.get(shard)) !== JSON.stringify(value)) records.push({ type: 'kinesis-shard', group: appName, shard, value: { ...value } });
  }
  for (const shard of before?.shards.keys() ?? []) if (!after.shards.has(shard)) records.push({ type: 'kinesis-shard', group: appName, shard, value: null });
  return records;
}

/** Shards that may be leased: not at SHARD_END, every parent still in the stream at SHARD_END. */
export function leasableShards(app: KinesisApp, stream: StreamShard[]): string[] {
  const inStream = new Set(stream.map((shard) => shard.shardId));
  const ended = (shardId: string): boolean => app.shards.get(shardId)?.checkpoint === SHARD_END;
  return stream
    .filter((shard) => !ended(shard.shardId) && shard.parents.every((parent) => !inStream.has(parent) || ended(parent)))
    .map((shard) => shard.shardId)
    .sort();
}

/**
 * Balanced, sticky targets: every live worker gets floor(n/w) or ceil(n/w) of the leasable
 * shards; the workers holding the most get the larger shares, each keeps what it holds up to its
 * share, and the rest go to the least loaded workers. Deterministic for the same inputs.
 */
export function targetLeases(app: KinesisApp, leasable: string[], liveWorkers: string[]): Map<string, string[]> {
  const target = new Map<string, string[]>();
  if (liveWorkers.length === 0) return target;
  const workers = [...new Set(liveWorkers)].sort();
  const held = new Map<string, string[]>(workers.map((worker) => [worker, []]));
  const unplaced: string[] = [];
  for (const shardId of leasable) {
    const owner = app.shards.get(shardId)?.owner ?? '';
    const list = held.get(owner);
    if (list) list.push(shardId);
    else unplaced.push(shardId);
  }
  const base = Math.floor(leasable.length / workers.length);
  let extra = leasable.length % workers.length;
  const byHeld = [...workers].sort((a, b) => held.get(b)!.length - held.get(a)!.length || (a < b ? -1 : 1));
  const share = new Map<string, number>();
  for (const worker of byHeld) share.set(worker, base + (extra-- > 0 ? 1 : 0));
  for (const worker of workers) {
    const kept = held.get(worker)!.slice(0, share.get(worker)!);
    unplaced.push(...held.get(worker)!.slice(kept.length));
    target.set(worker, kept);
  }
  unplaced.sort();
  for (const shardId of unplaced) {
    const worker = workers
      .filter((candidate) => target.get(candidate)!.length < share.get(candidate)!)
      .sort((a, b) => target.get(a)!.length - target.get(b)!.length || (a < b ? -1 : 1))[0];
    assert(worker !== undefined, () => `no worker with room for ${shardId}`);
    target.get(worker)!.push(shardId);
  }
  return target;
}

export interface LeaseHeartbeatInput {
  appName: string;
  streamName: string;
  workerId: string;
  ownedShardIds: string[];
  drained: { shardId: string; leaseEpoch: number }[];
  failoverTimeMs: number;
  leaving: boolean;
}

export interface LeaseHeartbeatOutcome {
  leases: { shardId: string; leaseEpoch: number; checkpoint: string }[];
  release: string[];
  /** The worker waits for shards others still hold, or must release some: ask it back soon. */
  reconciling: boolean;
  granted: number;
  freed: number;
}

export function validateWorkerHeartbeat(input: LeaseHeartbeatInput): void {
  if (!input.appName) throw new RiffleError('INVALID_ARGUMENT', 'ApplicationName is required.');
  if (input.appName.length > WORKER_ID_LENGTH_MAX) throw new RiffleError('INVALID_ARGUMENT', `ApplicationName is longer than ${WORKER_ID_LENGTH_MAX} characters.`);
  if (!input.workerId || input.workerId.length > WORKER_ID_LENGTH_MAX) throw new RiffleError('INVALID_ARGUMENT', `WorkerId must have 1 to ${WORKER_ID_LENGTH_MAX} characters.`);
  if (input.failoverTimeMs !== 0 && (!Number.isInteger(input.failoverTimeMs) || input.failoverTimeMs < FAILOVER_TIME_MS_MIN || input.failoverTimeMs > FAILOVER_TIME_MS_MAX)) {
    throw new RiffleError('INVALID_ARGUMENT', `FailoverTimeMs must be between ${FAILOVER_TIME_MS_MIN} and ${FAILOVER_TIME_MS_MAX}, got ${input.failoverTimeMs}.`);
  }
}

/**
 * One worker heartbeat on a copy of the application: takes what the worker drained and released,
 * then grants it the free shards of its target and asks it to release the shards outside it.
 * `liveWorkers` are the workers with a live session (this one included).
 */
export function leaseHeartbeat(app: KinesisApp, input: LeaseHeartbeatInput, stream: StreamShard[], liveWorkers: string[]): LeaseHeartbeatOutcome {
  if (app.hasMetadata && app.streamName !== input.streamName) {
    throw new RiffleError('INVALID_ARGUMENT', `Application ${input.appName} consumes stream ${app.streamName}, not ${input.streamName}.`);
  }
  app.hasMetadata = true;
  app.streamName = input.streamName;
  if (input.failoverTimeMs > 0) app.failoverTimeMs = input.failoverTimeMs;
  const closed = new Set(stream.filter((shard) => shard.closed).map((shard) => shard.shardId));
  let freed = 0;
  for (const drained of input.drained) {
    const value = app.shards.get(drained.shardId);
    // A stale or unknown report is ignored: the response tells the worker what it really holds.
    if (!value || value.owner !== input.workerId || value.leaseEpoch !== drained.leaseEpoch || !closed.has(drained.shardId)) continue;
    app.shards.set(drained.shardId, { ...value, checkpoint: SHARD_END, checkpointTimestampMs: Date.now(), owner: '' });
    freed += 1;
  }
  const owned = new Set(input.ownedShardIds);
  for (const [shardId, value] of app.shards) {
    if (value.owner !== input.workerId || (owned.has(shardId) && !input.leaving)) continue;
    app.shards.set(shardId, { ...value, owner: '' });
    freed += 1;
  }
  if (input.leaving) return { leases: [], release: [], reconciling: false, granted: 0, freed };
  const leasable = leasableShards(app, stream);
  const target = new Set(targetLeases(app, leasable, [...liveWorkers, input.workerId]).get(input.workerId) ?? []);
  let granted = 0;
  let waiting = false;
  for (const shardId of target) {
    const value = app.shards.get(shardId);
    if (value?.owner === input.workerId) continue;
    if (value && value.owner !== '') {
      waiting = true;
      continue;
    }
    app.shards.set(shardId, { checkpoint: value?.checkpoint ?? '', checkpointTimestampMs: value?.checkpointTimestampMs ?? 0, owner: input.workerId, leaseEpoch: (value?.leaseEpoch ?? 0) + 1 });
    granted += 1;
  }
  const leases: LeaseHeartbeatOutcome['leases'] = [];
  const release: string[] = [];
  for (const [shardId, value] of [...app.shards].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (value.owner !== input.workerId) continue;
    leases.push({ shardId, leaseEpoch: value.leaseEpoch, checkpoint: value.checkpoint });
    if (!target.has(shardId)) release.push(shardId);
  }
  return { leases, release, reconciling: waiting || release.length > 0, granted, freed };
}

/** Frees every lease of a worker (it missed its failover time); returns how many. */
export function expireWorker(app: KinesisApp, workerId: string): number {
  let freed = 0;
  for (const [shardId, value] of app.shards) {
    if (value.owner !== workerId) continue;
    app.shards.set(shardId, { ...value, owner: '' });
    freed += 1;
  }
  return freed;
}

/** Compares two decimal sequence numbers. */
export function compareSequenceNumbers(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The workers that hold a lease of the application. */
export function leaseOwners(app: KinesisApp): Set<string> {
  const owners = new Set<string>();
  for (const value of app.shards.values()) if (value.owner) owners.add(value.owner);
  return owners;
}
