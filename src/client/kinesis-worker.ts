// A KCL-like worker for Kinesis-like streams: it heartbeats the application's coordinator (found
// with FindCoordinator, key type 2), which balances shard leases across the application's
// workers, and runs one record processor per leased shard, reading by polling GetRecords or by
// Enhanced Fan-Out (SubscribeToShard). Processing starts after the shard's checkpoint (or at the
// initial position when there is none).
//
// Departures from KCL, on purpose:
// - Leases are never stolen. When the coordinator moves a lease (a worker joins, or this one
//   stops), this worker finishes the batch in progress, calls shutdownRequested, checkpoints the
//   last record it processed, and only then gives the lease back; the coordinator hands it to the
//   next worker only after that. So a planned move processes nothing twice.
// - A shard read to its end is reported in the next heartbeat, which checkpoints it at SHARD_END
//   and frees it in one write, so its children become leasable at once.
// - A worker that has not had a heartbeat answered for its failover time (less a margin) drops
//   its leases by itself (leaseLost), before the coordinator could give them to someone else.
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { RiffleError, errorNameOf, toRiffleError } from '../rpc/errors.js';
import type { RiffleClient } from './client.js';
import type { KinesisClient, StartingPosition } from './kinesis.js';
import type { FindCoordinatorResponse__Output } from '../rpc/generated/riffle/v1/FindCoordinatorResponse.js';
import type { LeaseHeartbeatResponse__Output } from '../rpc/generated/riffle/v1/LeaseHeartbeatResponse.js';
import type { GetCheckpointResponse__Output } from '../rpc/generated/riffle/v1/GetCheckpointResponse.js';
import type { KinesisRecord__Output } from '../rpc/generated/riffle/v1/KinesisRecord.js';

export type KinesisRecord = KinesisRecord__Output;

const SERVICE = 'riffle.v1.Kinesis';
export const SHARD_END = 'SHARD_END';
/** FindCoordinator key type of a Kinesis-like application. */
export const APPLICATION_KEY_TYPE = 2;
export const FAILOVER_TIME_MS_DEFAULT = 10_000;
const COORDINATOR_CALL_TIMEOUT_MS = 5_000;
/** Between heartbeats while the coordinator cannot be reached. */
const HEARTBEAT_RETRY_MS = 200;
/** Polling: wait this long after a GetRecords call that returned nothing. */
export const IDLE_TIME_BETWEEN_READS_MS_DEFAULT = 200;
export const MAX_RECORDS_DEFAULT = 1_000;
const THROTTLED_BACKOFF_MS = 250;
/** Between tries of the checkpoint a released lease needs before it is given back. */
const FINAL_CHECKPOINT_RETRY_MS = 200;
/** How often the worker checks whether it has been silent for too long. */
const FENCE_CHECK_MS = 50;

export interface ShardInfo {
  shardId: string;
  leaseEpoch: number;
  /** The checkpoint the shard resumes after (null when none was written). */
  checkpoint: string | null;
}

export interface RecordProcessorCheckpointer {
  /** Checkpoints a sequence number (default: the last record handed to processRecords). */
  checkpoint(sequenceNumber?: string): Promise<void>;
}

/** KCL's ShardRecordProcessor, one per leased shard. */
export interface ShardRecordProcessor {
  initialize?(shard: ShardInfo): void | Promise<void>;
  processRecords(records: KinesisRecord[], checkpointer: RecordProcessorCheckpointer, context: { shardId: string; millisBehindLatest: number }): void | Promise<void>;
  /** The lease was lost (expired or taken): stop without checkpointing; another worker resumes from the last checkpoint. */
  leaseLost?(shard: { shardId: string }): void | Promise<void>;
  /** The shard was read to its end; the worker checkpoints SHARD_END when this returns. */
  shardEnded?(shard: { shardId: string }): void | Promise<void>;
  /** The lease moves (planned); the worker checkpoints the last processed record when this returns. */
  shutdownRequested?(shard: { shardId: string }, checkpointer: RecordProcessorCheckpointer): void | Promise<void>;
}

export type WorkerEvent =
  | { type: 'lease-acquired'; shardId: string; leaseEpoch: number; checkpoint: string | null }
  | { type: 'lease-released' | 'lease-lost' | 'shard-ended'; shardId: string; leaseEpoch: number }
  | { type: 'error'; shardId?: string; error: RiffleError };

export interface KinesisWorkerOptions {
  applicationName: string;
  streamName: string;
  /** Unique within the application (default: host name and a random suffix). */
  workerId?: string;
  processorFactory: (shardId: string) => ShardRecordProcessor;
  /** Where a shard without a checkpoint starts. */
  initialPosition?: 'TRIM_HORIZON' | 'LATEST';
  /** A worker silent this long loses its leases (10 s default; set for the whole application). */
  failoverTimeMs?: number;
  /** Polling GetRecords (default) or Enhanced Fan-Out through a registered consumer of this name. */
  retrieval?: { type: 'polling'; idleTimeBetweenReadsMs?: number; maxRecords?: number } | { type: 'fan-out'; consumerName: string };
  onEvent?: (event: WorkerEvent) => void;
}

export class KinesisWorker {
  readonly workerId: string;
  private readonly runners = new Map<string, ShardRunner>();
  /** Shards given back or drained at an epoch, until the coordinator no longer lists them. */
  private readonly finished = new Map<string, number>();
  private readonly drained = new Map<string, number>();
  private coordinator?: string;
  private failoverTimeMs: number;
  private lastAnsweredSentMs = performance.now();
  private stopping = false;
  private stopped = false;
  private loop?: Promise<void>;
  private wakeUp?: () => void;
  private consumerArn?: string;
  private fenceTimer?: NodeJS.Timeout;

  constructor(readonly client: RiffleClient, readonly kinesis: KinesisClient, readonly options: KinesisWorkerOptions) {
    this.workerId = options.workerId ?? `${os.hostname()}-${randomUUID().slice(0, 8)}`;
    this.failoverTimeMs = options.failoverTimeMs ?? FAILOVER_TIME_MS_DEFAULT;
  }

  /** Joins the application; resolves after the first heartbeat was answered. */
  async start(): Promise<void> {
    if (this.options.retrieval?.type === 'fan-out') this.consumerArn = await this.registeredConsumer(this.options.retrieval.consumerName);
    const first = await this.heartbeatOnce();
    // Checked on a timer of its own: a heartbeat can hang on an unreachable coordinator.
    this.fenceTimer = setInterval(() => this.fenceIfSilent(), FENCE_CHECK_MS);
    this.fenceTimer.unref();
    this.loop = this.run(first);
  }

  /** The shards this worker processes now. */
  ownedShards(): string[] {
    return [...this.runners.keys()].sort();
  }

  /**
   * Graceful stop: every processor finishes its batch, gets shutdownRequested and is
   * checkpointed; then the worker leaves, releasing its leases for the other workers at once.
   */
  async stop(): Promise<void> {
    if (this.stopping) return this.loop;
    this.stopping = true;
    await Promise.all([...this.runners.values()].map((runner) => runner.release()));
    this.wake();
    await this.loop;
  }

  private async run(firstIntervalMs: number): Promise<void> {
    let intervalMs = firstIntervalMs;
    while (!this.stopping) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = undefined;
      if (this.stopping) break;
      try {
        intervalMs = await this.heartbeatOnce();
      } catch (error) {
        intervalMs = HEARTBEAT_RETRY_MS;
        this.emit({ type: 'error', error: toRiffleError(error) });
      }
      this.fenceIfSilent();
    }
    clearInterval(this.fenceTimer);
    await this.leave();
    this.stopped = true;
  }

  private wake(): void {
    this.wakeUp?.();
  }

  private async leave(): Promise<void> {
    // Runners still going were told to release; wait for their checkpoints before leaving.
    await Promise.all([...this.runners.values()].map((runner) => runner.done));
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await this.coordinatorCall<LeaseHeartbeatResponse__Output>('LeaseHeartbeat', this.heartbeatRequest(true));
        return;
      } catch (error) {
        const riffleError = toRiffleError(error);
        this.emit({ type: 'error', error: riffleError });
        if (!riffleError.retriable) return;
        await new Promise((resolve) => setTimeout(resolve, HEARTBEAT_RETRY_MS));
      }
    }
  }

  private heartbeatRequest(leaving: boolean): object {
    return {
      applicationName: this.options.applicationName, streamName: this.options.streamName, workerId: this.workerId,
      ownedShardIds: leaving ? [] : [...this.runners.keys()],
      drainedShards: [...this.drained].map(([shardId, leaseEpoch]) => ({ shardId, leaseEpoch })),
      failoverTimeMs: this.options.failoverTimeMs ?? 0, leaving,
    };
  }

  /** One heartbeat; returns the interval until the next. */
  private async heartbeatOnce(): Promise<number> {
    const sentMs = performance.now();
    const reportedDrained = new Map(this.drained);
    const response = await this.coordinatorCall<LeaseHeartbeatResponse__Output>('LeaseHeartbeat', this.heartbeatRequest(false));
    this.lastAnsweredSentMs = sentMs;
    this.failoverTimeMs = response.failoverTimeMs || this.failoverTimeMs;
    for (const [shardId, epoch] of reportedDrained) if (this.drained.get(shardId) === epoch) this.drained.delete(shardId);
    this.apply(response);
    return response.heartbeatIntervalMs || HEARTBEAT_RETRY_MS;
  }

  private apply(response: LeaseHeartbeatResponse__Output): void {
    const held = new Map(response.leases.map((lease) => [lease.shardId, lease]));
    for (const [shardId, runner] of this.runners) {
      const lease = held.get(shardId);
      if (lease && lease.leaseEpoch === runner.leaseEpoch) continue;
      this.drop(runner);
    }
    for (const [shardId, epoch] of this.finished) if (held.get(shardId)?.leaseEpoch !== epoch) this.finished.delete(shardId);
    if (!this.stopping) {
      for (const lease of held.values()) {
        if (this.runners.has(lease.shardId) || this.finished.get(lease.shardId) === lease.leaseEpoch || this.drained.has(lease.shardId)) continue;
        this.startRunner({ shardId: lease.shardId, leaseEpoch: lease.leaseEpoch, checkpoint: lease.checkpoint || null });
      }
    }
    for (const shardId of response.releaseShardIds) void this.runners.get(shardId)?.release();
  }

  private startRunner(shard: ShardInfo): void {
    const runner = new ShardRunner(this, shard, this.options.processorFactory(shard.shardId));
    this.runners.set(shard.shardId, runner);
    this.emit({ type: 'lease-acquired', ...shard });
    runner.done = runner.run().then((outcome) => {
      if (this.runners.get(shard.shardId) !== runner) return;
      this.runners.delete(shard.shardId);
      if (outcome === 'ended') this.drained.set(shard.shardId, shard.leaseEpoch);
      else if (outcome === 'released') this.finished.set(shard.shardId, shard.leaseEpoch);
      this.emit({ type: outcome === 'ended' ? 'shard-ended' : outcome === 'released' ? 'lease-released' : 'lease-lost', shardId: shard.shardId, leaseEpoch: shard.leaseEpoch });
      // Tell the coordinator at once: the shard (or its children) can go to the next worker.
      this.wake();
    });
  }

  /**
   * Drops every lease when no heartbeat was answered for the failover time less a margin (a
   * third, at most 2 s), before the coordinator could expire this worker (it does so a heartbeat
   * interval and 200 ms before the failover time since the heartbeat it last received).
   */
  private fenceIfSilent(): void {
    const marginMs = Math.min(2_000, this.failoverTimeMs / 3);
    if (performance.now() - this.lastAnsweredSentMs < this.failoverTimeMs - marginMs) return;
    for (const runner of this.runners.values()) this.drop(runner);
  }

  /** Called by a runner whose checkpoint was refused with LEASE_NOT_HELD. */
  leaseGone(runner: ShardRunner): void {
    this.drop(runner);
    this.wake();
  }

  /**
   * The lease is gone (taken, expired, or given up by this worker for silence): the runner stops
   * at once, without a checkpoint, and the application hears of it now, not when the runner ends.
   */
  private drop(runner: ShardRunner): void {
    if (this.runners.get(runner.shardId) !== runner) return;
    this.runners.delete(runner.shardId);
    runner.lose();
    this.emit({ type: 'lease-lost', shardId: runner.shardId, leaseEpoch: runner.leaseEpoch });
  }

  emit(event: WorkerEvent): void {
    this.options.onEvent?.(event);
  }

  /** The application's failover time, as the coordinator last said. */
  get failoverTime(): number {
    return this.failoverTimeMs;
  }

  get retrieval(): NonNullable<KinesisWorkerOptions['retrieval']> {
    return this.options.retrieval ?? { type: 'polling' };
  }

  get fanOutConsumerArn(): string | undefined {
    return this.consumerArn;
  }

  async checkpoint(shardId: string, leaseEpoch: number, sequenceNumber: string): Promise<void> {
    await this.coordinatorCall('Checkpoint', {
      applicationName: this.options.applicationName, streamName: this.options.streamName, shardId, workerId: this.workerId, leaseEpoch, sequenceNumber,
    });
  }

  private async registeredConsumer(consumerName: string): Promise<string> {
    const summary = await this.kinesis.describeStreamSummary(this.options.streamName);
    const existing = (await this.kinesis.listStreamConsumers(summary.streamArn)).find((consumer) => consumer.consumerName === consumerName);
    if (existing) return existing.consumerArn;
    try {
      return (await this.kinesis.registerStreamConsumer(summary.streamArn, consumerName)).consumerArn;
    } catch (error) {
      // Another worker of the application registered it meanwhile.
      if (!(error instanceof RiffleError) || error.errorName !== 'RESOURCE_IN_USE') throw error;
      const found = (await this.kinesis.listStreamConsumers(summary.streamArn)).find((consumer) => consumer.consumerName === consumerName);
      if (!found) throw error;
      return found.consumerArn;
    }
  }

  /** A call to the application's coordinator, finding it again after NOT_COORDINATOR or a lost node. */
  private async coordinatorCall<Response>(method: string, request: object): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      try {
        const address = await this.coordinatorAddress();
        return await this.client.connection(address).call<Response>(SERVICE, method, request, COORDINATOR_CALL_TIMEOUT_MS);
      } catch (error) {
        const riffleError = toRiffleError(error);
        if (riffleError.errorName === 'NOT_COORDINATOR' || riffleError.errorName === 'NETWORK_EXCEPTION' || riffleError.errorName === 'REQUEST_TIMED_OUT' || riffleError.errorName === 'COORDINATOR_NOT_AVAILABLE') {
          this.coordinator = undefined;
        }
        if (!riffleError.retriable || attempt >= 2) throw riffleError;
        await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
      }
    }
  }

  private async coordinatorAddress(): Promise<string> {
    if (this.coordinator) return this.coordinator;
    this.coordinator = await findApplicationCoordinator(this.client, this.options.applicationName);
    return this.coordinator;
  }

  get isStopped(): boolean {
    return this.stopped;
  }
}

/** The address of an application's coordinator. */
export async function findApplicationCoordinator(client: RiffleClient, applicationName: string): Promise<string> {
  const response = await client.callAny<FindCoordinatorResponse__Output>('riffle.v1.Kafka', 'FindCoordinator', { keyType: APPLICATION_KEY_TYPE, coordinatorKeys: [applicationName] }, COORDINATOR_CALL_TIMEOUT_MS);
  const found = response.coordinators[0];
  if (!found) throw new RiffleError('COORDINATOR_NOT_AVAILABLE', 'FindCoordinator answered without a coordinator.');
  if (found.errorCode !== 0) throw new RiffleError(errorNameOf(found.errorCode), found.errorMessage || undefined);
  return `${found.host}:${found.port}`;
}

/** An application's checkpoints and leases (GetCheckpoint), from its coordinator. */
export async function getCheckpoints(client: RiffleClient, applicationName: string, options: { streamName?: string; shardId?: string } = {}): Promise<GetCheckpointResponse__Output> {
  for (let attempt = 0; ; attempt++) {
    try {
      const address = await findApplicationCoordinator(client, applicationName);
      return await client.connection(address).call<GetCheckpointResponse__Output>(SERVICE, 'GetCheckpoint', { applicationName, streamName: options.streamName ?? '', shardId: options.shardId ?? '' }, COORDINATOR_CALL_TIMEOUT_MS);
    } catch (error) {
      const riffleError = toRiffleError(error);
      if (!riffleError.retriable || attempt >= 20) throw riffleError;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

type RunnerOutcome = 'ended' | 'released' | 'lost';

/** One leased shard: reads it and feeds its processor until it ends, is released or is lost. */
class ShardRunner {
  readonly shardId: string;
  readonly leaseEpoch: number;
  done: Promise<void> = Promise.resolve();
  private readonly abort = new AbortController();
  private releasing = false;
  private lost = false;
  private lastProcessed: string | null;
  /** The last record handed to processRecords (the default checkpoint, also during the call). */
  private lastHanded: string | null;
  private checkpointed: string | null;
  private wakeUp?: () => void;

  constructor(private readonly worker: KinesisWorker, private readonly shard: ShardInfo, private readonly processor: ShardRecordProcessor) {
    this.shardId = shard.shardId;
    this.leaseEpoch = shard.leaseEpoch;
    this.lastProcessed = shard.checkpoint;
    this.lastHanded = shard.checkpoint;
    this.checkpointed = shard.checkpoint;
  }

  /** Asks the runner to stop after its batch, checkpoint and give the lease back; resolves when done. */
  release(): Promise<void> {
    this.releasing = true;
    this.abort.abort();
    this.wakeUp?.();
    return this.done;
  }

  lose(): void {
    this.lost = true;
    this.abort.abort();
    this.wakeUp?.();
  }

  private readonly checkpointer: RecordProcessorCheckpointer = {
    checkpoint: async (sequenceNumber?: string) => {
      const target = sequenceNumber ?? this.lastHanded;
      if (!target || target === this.checkpointed) return;
      try {
        await this.worker.checkpoint(this.shardId, this.leaseEpoch, target);
        this.checkpointed = target;
      } catch (error) {
        const riffleError = toRiffleError(error);
        if (riffleError.errorName === 'LEASE_NOT_HELD') this.worker.leaseGone(this);
        throw riffleError;
      }
    },
  };

  async run(): Promise<RunnerOutcome> {
    let ended = false;
    try {
      await this.processor.initialize?.(this.shard);
      ended = this.worker.retrieval.type === 'fan-out' ? await this.subscribe() : await this.poll();
    } catch (error) {
      if (!this.lost && !this.releasing) this.worker.emit({ type: 'error', shardId: this.shardId, error: toRiffleError(error) });
    }
    if (this.lost) {
      await this.quietly(() => this.processor.leaseLost?.({ shardId: this.shardId }));
      return 'lost';
    }
    if (ended) {
      await this.quietly(() => this.processor.shardEnded?.({ shardId: this.shardId }));
      return 'ended';
    }
    // Released (planned move or stop), or the reader failed: checkpoint what was processed.
    await this.quietly(() => this.processor.shutdownRequested?.({ shardId: this.shardId }, this.checkpointer));
    return (await this.finalCheckpoint()) ? 'released' : 'lost';
  }

  /**
   * Checkpoints the last processed record before the lease is given back, retrying while the
   * coordinator is unreachable (the lease stays held meanwhile: the heartbeat still lists the
   * shard). Giving the lease back without it would make the next owner process those records
   * again (the chaos suite's `reprocessed` found that). False when the lease was lost instead.
   */
  private async finalCheckpoint(): Promise<boolean> {
    // Past the failover time the coordinator has expired this worker anyway (it may be stopping,
    // with its heartbeats ended): the lease is lost, not released.
    const deadline = performance.now() + this.worker.failoverTime;
    for (;;) {
      if (this.lost || performance.now() > deadline) return false;
      try {
        await this.checkpointer.checkpoint(this.lastProcessed ?? undefined);
        return !this.lost;
      } catch (error) {
        const riffleError = toRiffleError(error);
        this.worker.emit({ type: 'error', shardId: this.shardId, error: riffleError });
        if (!riffleError.retriable || this.lost) return false;
      }
      await new Promise((resolve) => setTimeout(resolve, FINAL_CHECKPOINT_RETRY_MS));
    }
  }

  private async quietly(action: () => unknown): Promise<void> {
    try {
      await action();
    } catch (error) {
      this.worker.emit({ type: 'error', shardId: this.shardId, error: toRiffleError(error) });
    }
  }

  private startingPosition(): StartingPosition {
    if (this.lastProcessed) return { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: this.lastProcessed };
    return { type: this.worker.options.initialPosition ?? 'TRIM_HORIZON' };
  }

  private async process(records: KinesisRecord[], millisBehindLatest: number): Promise<void> {
    if (records.length === 0) return;
    this.lastHanded = records.at(-1)!.sequenceNumber;
    await this.processor.processRecords(records, this.checkpointer, { shardId: this.shardId, millisBehindLatest });
    this.lastProcessed = this.lastHanded;
  }

  /** Polling GetRecords; true when the shard ended. */
  private async poll(): Promise<boolean> {
    const retrieval = this.worker.retrieval as { idleTimeBetweenReadsMs?: number; maxRecords?: number };
    const kinesis = this.worker.kinesis;
    const streamName = this.worker.options.streamName;
    let iterator: string | undefined = await kinesis.getShardIterator(streamName, this.shardId, this.startingPosition());
    while (!this.abort.signal.aborted && iterator) {
      let response;
      try {
        response = await kinesis.getRecords(iterator, retrieval.maxRecords ?? MAX_RECORDS_DEFAULT);
      } catch (error) {
        const riffleError = toRiffleError(error);
        if (riffleError.errorName === 'EXPIRED_ITERATOR') {
          iterator = await kinesis.getShardIterator(streamName, this.shardId, this.startingPosition());
          continue;
        }
        if (riffleError.errorName !== 'PROVISIONED_THROUGHPUT_EXCEEDED') throw riffleError;
        await this.sleep(THROTTLED_BACKOFF_MS);
        continue;
      }
      if (this.lost) return false;
      await this.process(response.records, Number(response.millisBehindLatest));
      iterator = response.nextShardIterator ?? undefined;
      if (!iterator) return true;
      if (response.records.length === 0) await this.sleep(retrieval.idleTimeBetweenReadsMs ?? IDLE_TIME_BETWEEN_READS_MS_DEFAULT);
    }
    return false;
  }

  /** Enhanced Fan-Out; true when the shard ended. */
  private async subscribe(): Promise<boolean> {
    const arn = this.worker.fanOutConsumerArn;
    if (!arn) throw new RiffleError('INVALID_ARGUMENT', 'No Enhanced Fan-Out consumer registered.');
    for await (const event of this.worker.kinesis.subscribeToShard(arn, this.shardId, this.startingPosition(), { signal: this.abort.signal })) {
      if (this.lost) return false;
      await this.process(event.records, Number(event.millisBehindLatest));
      if (event.childShards.length > 0) return true;
      if (this.abort.signal.aborted) return false;
    }
    return false;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.abort.signal.aborted) return resolve();
      const timer = setTimeout(resolve, ms);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
