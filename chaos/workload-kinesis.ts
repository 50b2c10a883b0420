// The Kinesis-like workload: producers writing unique values with PutRecords over many partition
// keys, and readers that follow the stream's shard lineage (parents read to SHARD_END before
// their children, as the KCL does): one polling with GetRecords, one pushed to by Enhanced
// Fan-Out (SubscribeToShard). Readers "crash" now and then (drop their clients without closing)
// and restart from the last sequence number they processed in each shard and the set of shards
// they finished. A reshard (split, merge or UpdateShardCount) can be asked for by the scenario.
// After the heal, `finalRead` reads every shard, open or closed, from TRIM_HORIZON to its end.
//
// Beside them runs an application with server-side checkpoints and leases: `workers` processes of
// lease-worker.ts (the SDK's KinesisWorker, checkpointing after every batch) that the harness
// kill -9s (its leases expire after the failover time and the next owner resumes from the
// checkpoint) or stops with SIGTERM (checkpoint and release: a planned move), starting a new one
// each time.
//
// History operations (history.ts): 'put' (invoke, then ok with shard and sequence number, or
// info when the outcome is unknown), 'get' (what a reader received from one shard, in order),
// 'shard-end' (a reader finished a shard), 'reader-start' (a reader (re)starts: positions may
// jump), and nemesis entries for reshards.
import { KinesisClient, RiffleClient, type Shard } from '../src/client/index.js';
import { toRiffleError } from '../src/rpc/errors.js';
import type { Prng } from '../src/util/prng.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { History } from './history.js';
import { churn, killChild, startReportingChild, stopChild, type ReportedOp, type ReportingChild } from './reporting-child.js';

const WORKER_ENTRY = path.join(path.dirname(fileURLToPath(import.meta.url)), 'lease-worker.js');
/** Application workers started over a run at most (a bound on restarts). */
const WORKERS_STARTED_MAX = 200;
/** The application's lease failover time: a killed worker's leases move after this. */
export const APP_FAILOVER_MS = 6_000;

export interface KinesisWorkloadOptions {
  stream: string;
  shards: number;
  producers: number;
  /** PutRecords calls each producer keeps outstanding. */
  producerConcurrency: number;
  /** Records per PutRecords call. */
  recordsPerPut: number;
  keys: number;
  /** How often (on average) a reader crashes and restarts, 0 for never. */
  readerRestartEveryMs: number;
  /** The application with leases and checkpoints: its name and how many workers run at once. */
  app: string;
  workers: number;
  /** How often (on average) a worker is killed or stopped and replaced, 0 for never. */
  workerRestartEveryMs: number;
}

export const KINESIS_WORKLOAD_DEFAULTS: Omit<KinesisWorkloadOptions, 'stream'> = {
  shards: 4,
  producers: 2,
  producerConcurrency: 4,
  recordsPerPut: 10,
  keys: 64,
  readerRestartEveryMs: 10_000,
  app: 'chaos-app',
  workers: 2,
  workerRestartEveryMs: 12_000,
};

interface AppWorker extends ReportingChild {
  /** Shards it holds, per its own reports. */
  leased: Set<string>;
  /** The last sequence number it processed per shard: a checkpoint in flight may carry it. */
  processed: Map<string, string>;
}

/** PutRecords calls each producer makes at most, a bound on any run. */
const PUTS_PER_PRODUCER_MAX = 200_000;
/** How long readers may take, once producers stop, to reach the end of every shard. */
const DRAIN_MS_MAX = 60_000;
/** A final read that makes no progress for this long gives up (the checker reports what is missing). */
const FINAL_READ_STALL_MS = 60_000;
const RETRY_PAUSE_MS = 200;
/** Shard counts a reshard keeps within. */
const SHARDS_MIN = 2;
const SHARDS_MAX = 8;

type ReaderKind = 'polling' | 'efo';

/** What a reader keeps across its crashes: in a real application, its checkpoints. */
interface ReaderProgress {
  /** Last sequence number processed per shard. */
  positions: Map<string, string>;
  /** Shards read to SHARD_END. */
  finished: Set<string>;
}

export class KinesisWorkload {
  private stopping = false;
  private draining = false;
  private drainDeadlineMs = 0;
  private readonly producing: Promise<void>[] = [];
  private readonly reading: Promise<void>[] = [];
  private readonly clients: RiffleClient[] = [];
  private readonly workers = new Map<string, AppWorker>();
  private workersStarted = 0;
  private churn?: Promise<void>;
  private consumerArn = '';
  /** The open shards' last sequence numbers when the producers stopped: what readers must reach. */
  private drainTargets = new Map<string, string | null>();
  /** The parents of those shards: a reader must have finished them (so every ancestor too). */
  private drainParents = new Set<string>();

  constructor(
    private readonly bootstrap: string,
    private readonly history: History,
    private readonly options: KinesisWorkloadOptions,
    private readonly random: Prng,
  ) {}

  async setUp(): Promise<void> {
    const kinesis = this.newKinesis();
    await kinesis.createStream(this.options.stream, { shardCount: this.options.shards });
    const arn = (await kinesis.describeStreamSummary(this.options.stream)).streamArn;
    this.consumerArn = (await kinesis.registerStreamConsumer(arn, 'chaos-efo')).consumerArn;
  }

  start(): void {
    for (let index = 0; index < this.options.producers; index++) this.producing.push(this.produce(`kinesis-producer-${index}`));
    this.reading.push(this.read('kinesis-poller', 'polling'));
    this.reading.push(this.read('kinesis-efo', 'efo'));
    for (let index = 0; index < this.options.workers; index++) this.startWorker();
    if (this.options.workerRestartEveryMs > 0) this.churn = this.churnLoop();
  }

  /** Stops the producers, then lets the readers reach the end of every shard and stops them. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.producing);
    this.drainDeadlineMs = Date.now() + DRAIN_MS_MAX;
    this.drainTargets = await this.openShardEnds();
    this.draining = true;
    await this.churn;
    await Promise.all(this.reading);
    while (Date.now() < this.drainDeadlineMs && !this.applicationCaughtUp()) await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
    await Promise.all([...this.workers.values()].map((worker) => this.terminate(worker)));
    for (const client of this.clients) client.close();
  }

  /** Kills the application's workers that are left (for a run that ends early). */
  async abort(): Promise<void> {
    this.stopping = true;
    this.draining = true;
    for (const worker of this.workers.values()) worker.child.kill('SIGKILL');
    await Promise.all([...this.workers.values()].map((worker) => worker.exited));
    this.workers.clear();
  }

  private startWorker(): void {
    if (this.workersStarted >= WORKERS_STARTED_MAX) return;
    const name = `app-worker-${this.workersStarted++}`;
    const args = [this.bootstrap, this.options.app, this.options.stream, 'polling', String(APP_FAILOVER_MS)];
    const worker: AppWorker = { ...startReportingChild(name, WORKER_ENTRY, args, (op, at) => this.recordWorkerOp(worker, op, at)), leased: new Set(), processed: new Map() };
    this.workers.set(name, worker);
  }

  private recordWorkerOp(worker: AppWorker, op: ReportedOp, at: number | undefined): void {
    if (op.f === 'get' && op.shard && op.kinesisRecords?.length) worker.processed.set(op.shard, op.kinesisRecords[op.kinesisRecords.length - 1]!.sequence);
    if (op.f === 'lease' && op.shard) {
      if (op.type === 'ok') worker.leased.add(op.shard);
      else worker.leased.delete(op.shard);
    }
    this.history.add({ ...op, process: worker.name }, at);
  }

  private churnLoop(): Promise<void> {
    return churn({
      everyMs: this.options.workerRestartEveryMs, random: this.random, stopping: () => this.stopping, names: () => [...this.workers.keys()],
      replace: async (name, crash) => {
        const victim = this.workers.get(name)!;
        if (crash) await this.killWorker(victim);
        else await this.terminate(victim);
        this.startWorker();
      },
    });
  }

  /** A crash: the worker holds nothing from the moment it dies; a checkpoint in flight may land. */
  private async killWorker(worker: AppWorker): Promise<void> {
    await killChild(worker);
    this.workers.delete(worker.name);
    for (const shard of worker.leased) {
      const sequence = worker.processed.get(shard);
      if (sequence !== undefined) this.history.add({ type: 'info', f: 'checkpoint', process: worker.name, group: this.options.app, shard, sequence, error: 'killed' });
      this.history.add({ type: 'info', f: 'lease', process: worker.name, group: this.options.app, shard, error: 'killed' });
    }
    this.history.add({ type: 'invoke', f: 'nemesis', process: 'workload', fault: `kill -9 ${worker.name}` });
  }

  /** A planned stop: the worker checkpoints and releases every lease, then leaves. */
  private async terminate(worker: AppWorker): Promise<void> {
    await stopChild(worker);
    this.workers.delete(worker.name);
    for (const shard of worker.leased) this.history.add({ type: 'info', f: 'lease', process: worker.name, group: this.options.app, shard, error: 'exited' });
  }

  /** The application processed every open shard up to its end when the producers stopped. */
  private applicationCaughtUp(): boolean {
    const last = new Map<string, string>();
    for (const op of this.history.ops) {
      if (op.f === 'get' && op.type === 'ok' && op.group === this.options.app && op.shard && op.kinesisRecords?.length) {
        const sequence = op.kinesisRecords[op.kinesisRecords.length - 1]!.sequence;
        const previous = last.get(op.shard);
        if (previous === undefined || BigInt(sequence) > BigInt(previous)) last.set(op.shard, sequence);
      }
    }
    for (const [shard, target] of this.drainTargets) {
      if (target === null) continue;
      const reached = last.get(shard);
      if (reached === undefined || BigInt(reached) < BigInt(target)) return false;
    }
    return true;
  }

  /**
   * One reshard: split the shard with the widest hash range, merge the two adjacent shards with
   * the narrowest combined range, or scale uniformly, chosen by the seed within SHARDS_MIN..MAX.
   */
  async reshard(): Promise<void> {
    const kinesis = this.newKinesis();
    let description = '';
    try {
      const open = (await kinesis.listShards(this.options.stream)).filter((shard) => !shard.sequenceNumberRange?.endingSequenceNumber).sort(byStartingHashKey);
      const choice = this.random.int(0, 3);
      if (choice === 0 && open.length < SHARDS_MAX) {
        const widest = [...open].sort((a, b) => compareBigInt(width(b), width(a)))[0]!;
        const middle = BigInt(widest.hashKeyRange!.startingHashKey) + width(widest) / 2n;
        description = `split ${widest.shardId}`;
        this.history.add({ type: 'invoke', f: 'nemesis', process: 'nemesis', fault: description });
        await kinesis.splitShard(this.options.stream, widest.shardId, middle.toString());
      } else if (choice === 1 && open.length > SHARDS_MIN) {
        let best = 0;
        for (let index = 1; index < open.length - 1; index++) {
          if (width(open[index]!) + width(open[index + 1]!) < width(open[best]!) + width(open[best + 1]!)) best = index;
        }
        description = `merge ${open[best]!.shardId}+${open[best + 1]!.shardId}`;
        this.history.add({ type: 'invoke', f: 'nemesis', process: 'nemesis', fault: description });
        await kinesis.mergeShards(this.options.stream, open[best]!.shardId, open[best + 1]!.shardId);
      } else {
        const target = open.length * 2 <= SHARDS_MAX ? open.length * 2 : Math.max(SHARDS_MIN, Math.ceil(open.length / 2));
        description = `scale ${open.length}->${target}`;
        this.history.add({ type: 'invoke', f: 'nemesis', process: 'nemesis', fault: description });
        await kinesis.updateShardCount(this.options.stream, target);
      }
      this.history.add({ type: 'ok', f: 'nemesis', process: 'nemesis', fault: description });
    } catch (error) {
      // Refused (a reshard in progress, the controller moving): the scenario tries again later.
      if (description) this.history.add({ type: 'info', f: 'nemesis', process: 'nemesis', fault: `${description}: ${toRiffleError(error).errorName}` });
    }
  }

  private newClient(): RiffleClient {
    const client = new RiffleClient({ bootstrap: this.bootstrap, requestTimeoutMs: 10_000, retry: { deadlineMs: 30_000 } });
    this.clients.push(client);
    return client;
  }

  private newKinesis(): KinesisClient {
    return new KinesisClient(this.newClient());
  }

  private async produce(process: string): Promise<void> {
    const kinesis = this.newKinesis();
    const inFlight = new Set<Promise<void>>();
    let sequence = 0;
    for (let put = 0; put < PUTS_PER_PRODUCER_MAX && !this.stopping; put++) {
      const entries = Array.from({ length: this.options.recordsPerPut }, () => {
        const value = `${process}-${sequence++}`;
        this.history.add({ type: 'invoke', f: 'put', process, value });
        return { value, partitionKey: `key-${this.random.int(0, this.options.keys)}` };
      });
      const call = kinesis.putRecords(this.options.stream, entries.map((entry) => ({ data: entry.value, partitionKey: entry.partitionKey }))).then(
        (response) => {
          entries.forEach((entry, index) => {
            const result = response.records[index];
            if (result && !result.errorCode && result.sequenceNumber && result.shardId) {
              this.history.add({ type: 'ok', f: 'put', process, value: entry.value, shard: result.shardId, sequence: result.sequenceNumber });
            } else {
              // A per-record failure: Kinesis says not written, but a shard batch whose leader
              // changed mid-write has an unknown outcome, so the checker treats it as unknown.
              this.history.add({ type: 'info', f: 'put', process, value: entry.value, error: result?.errorCode ?? 'no result' });
            }
          });
        },
        (error: unknown) => {
          const name = toRiffleError(error).errorName;
          for (const entry of entries) this.history.add({ type: 'info', f: 'put', process, value: entry.value, error: name });
        },
      );
      const tracked = call.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
      if (inFlight.size >= this.options.producerConcurrency) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
  }

  /**
   * A reader over the whole stream: a loop per readable shard (no parent, or every parent
   * finished), started as shards become readable; crashes and restarts now and then.
   */
  private async read(process: string, kind: ReaderKind): Promise<void> {
    const progress: ReaderProgress = { positions: new Map(), finished: new Set() };
    while (!(this.draining && (this.readerCaughtUp(progress) || Date.now() > this.drainDeadlineMs))) {
      const client = this.newClient();
      const kinesis = new KinesisClient(client);
      const abort = new AbortController();
      this.history.add({ type: 'ok', f: 'reader-start', process, value: JSON.stringify(Object.fromEntries(progress.positions)) });
      const lifetimeMs = this.options.readerRestartEveryMs > 0 ? this.options.readerRestartEveryMs * (0.5 + this.random.next()) : Number.POSITIVE_INFINITY;
      const until = Date.now() + lifetimeMs;
      const loops = new Map<string, Promise<void>>();
      while (!abort.signal.aborted) {
        if (!this.draining && Date.now() >= until) break;
        if (this.draining && (this.readerCaughtUp(progress) || Date.now() > this.drainDeadlineMs)) break;
        try {
          for (const shard of await kinesis.listShards(this.options.stream)) {
            if (loops.has(shard.shardId) || progress.finished.has(shard.shardId)) continue;
            const parents = [shard.parentShardId, shard.adjacentParentShardId].filter((id): id is string => Boolean(id));
            if (!parents.every((parent) => progress.finished.has(parent))) continue;
            const loop = kind === 'polling' ? this.pollShard(process, kinesis, shard.shardId, progress, abort.signal) : this.subscribeShard(process, kinesis, shard.shardId, progress, abort.signal);
            loops.set(shard.shardId, loop.catch(() => undefined).finally(() => loops.delete(shard.shardId)));
          }
        } catch {
          // The cluster is between leaders: look again shortly.
        }
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
      }
      // The crash: in-flight reads are abandoned; what they delivered is already recorded.
      abort.abort();
      await Promise.all(loops.values());
      client.close();
    }
  }

  private startingPosition(progress: ReaderProgress, shardId: string): { type: 'TRIM_HORIZON' } | { type: 'AFTER_SEQUENCE_NUMBER'; sequenceNumber: string } {
    const last = progress.positions.get(shardId);
    return last === undefined ? { type: 'TRIM_HORIZON' } : { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: last };
  }

  private async pollShard(process: string, kinesis: KinesisClient, shardId: string, progress: ReaderProgress, signal: AbortSignal): Promise<void> {
    let iterator: string | undefined;
    while (!signal.aborted) {
      try {
        iterator ??= await kinesis.getShardIterator(this.options.stream, shardId, this.startingPosition(progress, shardId));
        const response = await kinesis.getRecords(iterator, 1_000);
        if (signal.aborted) return;
        this.delivered(process, shardId, progress, response.records.map((record) => ({ sequence: record.sequenceNumber, value: Buffer.from(record.data).toString() })));
        if (!response.nextShardIterator) {
          this.finished(process, shardId, progress);
          return;
        }
        iterator = response.nextShardIterator;
        if (response.records.length === 0) await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
      } catch (error) {
        // An expired or refused iterator, or a leader change: start again from the last position.
        iterator = undefined;
        this.history.add({ type: 'info', f: 'get', process, shard: shardId, error: toRiffleError(error).errorName });
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
      }
    }
  }

  private async subscribeShard(process: string, kinesis: KinesisClient, shardId: string, progress: ReaderProgress, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        const events = kinesis.subscribeToShard(this.consumerArn, shardId, this.startingPosition(progress, shardId), { signal, resubscribeDeadlineMs: 30_000 });
        for await (const event of events) {
          if (signal.aborted) return;
          this.delivered(process, shardId, progress, event.records.map((record) => ({ sequence: record.sequenceNumber, value: Buffer.from(record.data).toString() })));
          if (event.childShards.length > 0) {
            this.finished(process, shardId, progress);
            return;
          }
        }
      } catch (error) {
        this.history.add({ type: 'info', f: 'get', process, shard: shardId, error: toRiffleError(error).errorName });
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
      }
    }
  }

  private delivered(process: string, shard: string, progress: ReaderProgress, records: { sequence: string; value: string }[]): void {
    if (records.length === 0) return;
    this.history.add({ type: 'ok', f: 'get', process, shard, kinesisRecords: records });
    progress.positions.set(shard, records[records.length - 1]!.sequence);
  }

  private finished(process: string, shard: string, progress: ReaderProgress): void {
    progress.finished.add(shard);
    this.history.add({ type: 'ok', f: 'shard-end', process, shard });
  }

  /** The reader has every open shard up to where it ended when the producers stopped. */
  private readerCaughtUp(progress: ReaderProgress): boolean {
    if (this.drainTargets.size === 0) return false;
    for (const parent of this.drainParents) if (!progress.finished.has(parent)) return false;
    for (const [shard, last] of this.drainTargets) {
      if (last === null) continue;
      const position = progress.positions.get(shard);
      if (position === undefined || BigInt(position) < BigInt(last)) return false;
    }
    return true;
  }

  /** Each open shard's last sequence number (null when empty), read after the producers stopped. */
  private async openShardEnds(): Promise<Map<string, string | null>> {
    const kinesis = this.newKinesis();
    while (Date.now() < this.drainDeadlineMs) {
      try {
        const ends = new Map<string, string | null>();
        const shards = await kinesis.listShards(this.options.stream);
        for (const shard of shards.filter((candidate) => !candidate.sequenceNumberRange?.endingSequenceNumber)) {
          for (const parent of [shard.parentShardId, shard.adjacentParentShardId]) if (parent) this.drainParents.add(parent);
          const records = await this.readShard(kinesis, shard.shardId, Date.now() + FINAL_READ_STALL_MS);
          ends.set(shard.shardId, records.length > 0 ? records[records.length - 1]!.sequence : null);
        }
        return ends;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
      }
    }
    throw new Error('the ends of the open shards could not be read before the drain deadline');
  }

  /** Every shard with its lineage and all its records from TRIM_HORIZON to its end. */
  async finalRead(): Promise<KinesisFinalState> {
    const kinesis = this.newKinesis();
    const deadline = Date.now() + FINAL_READ_STALL_MS * 3;
    for (;;) {
      try {
        const shards = await kinesis.listShards(this.options.stream);
        const result: KinesisFinalState = { shards: new Map() };
        for (const shard of shards) {
          const parents = [shard.parentShardId, shard.adjacentParentShardId].filter((id): id is string => Boolean(id));
          result.shards.set(shard.shardId, { parents, closed: Boolean(shard.sequenceNumberRange?.endingSequenceNumber), records: await this.readShard(kinesis, shard.shardId, deadline) });
        }
        return result;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
      }
    }
  }

  /** A shard's records from TRIM_HORIZON until its end (closed) or until caught up (open). */
  private async readShard(kinesis: KinesisClient, shardId: string, deadline: number): Promise<{ sequence: string; value: string; partitionKey: string }[]> {
    const records: { sequence: string; value: string; partitionKey: string }[] = [];
    let iterator: string | undefined;
    for (;;) {
      try {
        const after = records[records.length - 1]?.sequence;
        iterator ??= await kinesis.getShardIterator(this.options.stream, shardId, after === undefined ? { type: 'TRIM_HORIZON' } : { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: after });
        const response = await kinesis.getRecords(iterator, 10_000);
        for (const record of response.records) records.push({ sequence: record.sequenceNumber, value: Buffer.from(record.data).toString(), partitionKey: record.partitionKey });
        if (!response.nextShardIterator) return records;
        if (response.records.length === 0 && response.millisBehindLatest === 0) return records;
        iterator = response.nextShardIterator;
      } catch (error) {
        iterator = undefined;
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
      }
    }
  }
}

export interface KinesisFinalState {
  shards: Map<string, { parents: string[]; closed: boolean; records: { sequence: string; value: string; partitionKey: string }[] }>;
}

function width(shard: Shard): bigint {
  return BigInt(shard.hashKeyRange!.endingHashKey) - BigInt(shard.hashKeyRange!.startingHashKey);
}

function byStartingHashKey(a: Shard, b: Shard): number {
  return compareBigInt(BigInt(a.hashKeyRange!.startingHashKey), BigInt(b.hashKeyRange!.startingHashKey));
}

function compareBigInt(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
