// Checkpoints and shard leases of Kinesis-like applications (issue 7, item 7) on three real
// `riffle server` processes on 127.0.33.1-3. Workers run as their own processes
// (fixtures/lease-worker.mjs) so they can be killed. The tests: a planned worker
// shutdown moves its leases within 1 s and processes no record twice; a crashed worker's leases
// move within the failover time (plus one heartbeat) and processing resumes from the checkpoint.
// Also: balance across workers, children only after their parents reached SHARD_END (within 1 s),
// bad input gets typed errors, and the SubscribeToShard rate limit of the 'kinesis' profile.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KinesisClient, KinesisWorker, RiffleClient, getCheckpoints, findApplicationCoordinator, type KinesisRecord } from '../../src/client/index.js';
import { RiffleError, fromServiceError } from '../../src/rpc/errors.js';
import { REPO_ROOT, runCli, startCluster, temporaryDir, waitFor, type TestCluster } from '../helpers/cluster.js';
import { putAll } from '../helpers/kinesis.js';

const data = temporaryDir('riffle-leases-');
const FAILOVER_TIME_MS = 3_000;
let cluster: TestCluster;
let client: RiffleClient;
let kinesis: KinesisClient;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  cluster = await startCluster({ subnet: '127.0.33', dataDir: data.dir, controllers: 3, extraArgs: ['--offsets-topic-partitions', '3', '--default-replication-factor', '3', '--kinesis-heartbeat-ms', '300'] });
  client = new RiffleClient({ bootstrap: cluster.bootstrap, retry: { deadlineMs: 30_000 } });
  kinesis = new KinesisClient(client);
  await waitFor(async () => (await client.refreshMetadata(['__consumer_offsets'])).topics[0]?.partitions.every((partition) => partition.leaderId >= 0), { timeoutMs: 30_000, what: 'the offsets topic' });
}, 90_000);

afterAll(async () => {
  for (const worker of workers) worker.child.kill('SIGKILL');
  client?.close();
  await cluster?.stopAll();
  data.remove();
});

interface WorkerEvent {
  event: string;
  t: number;
  worker: string;
  shardId?: string;
  sequenceNumber?: string;
  data?: string;
  checkpoint?: string | null;
  leaseEpoch?: number;
  message?: string;
}

class WorkerProcess {
  readonly events: WorkerEvent[] = [];
  readonly child: ChildProcess;
  exited = false;

  constructor(readonly workerId: string, settings: { applicationName: string; streamName: string; failoverTimeMs?: number; consumerName?: string }) {
    this.child = spawn(process.execPath, [path.join(REPO_ROOT, 'test', 'integration', 'fixtures', 'lease-worker.mjs')], {
      env: { ...process.env, RIFFLE_WORKER: JSON.stringify({ bootstrap: cluster.bootstrap, workerId, ...settings }) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.events.push(JSON.parse(line) as WorkerEvent));
    this.child.once('exit', () => (this.exited = true));
    workers.push(this);
  }

  /** The shards it holds now, from its lease events. */
  owned(): Set<string> {
    const owned = new Set<string>();
    for (const event of this.events) {
      if (event.event === 'acquired') owned.add(event.shardId!);
      else if (event.event === 'released' || event.event === 'lost' || event.event === 'ended') owned.delete(event.shardId!);
    }
    return owned;
  }

  records(): WorkerEvent[] {
    return this.events.filter((event) => event.event === 'record');
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.kill('SIGTERM');
    await waitFor(() => this.exited, { timeoutMs: 20_000, what: `${this.workerId} to stop` });
  }
}

/** Writes records with unique payloads until stopped; returns every acknowledged payload. */
function startProducer(streamName: string, prefix: string): { stop: () => Promise<string[]> } {
  const written: string[] = [];
  let running = true;
  let sequence = 0;
  const loop = (async () => {
    while (running) {
      const batch = Array.from({ length: 10 }, () => `${prefix}-${sequence++}`);
      const response = await kinesis.putRecords(streamName, batch.map((payload) => ({ partitionKey: payload, data: payload })));
      response.records.forEach((result, index) => {
        if (!result.errorCode) written.push(batch[index]!);
      });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  return { stop: async () => {
    running = false;
    await loop;
    return written;
  } };
}

async function createStream(name: string, shardCount: number, limitsProfile?: 'kinesis'): Promise<void> {
  await kinesis.createStream(name, { shardCount, limitsProfile });
  await waitFor(async () => (await client.topicMetadata(name, true)).partitions.every((partition) => partition.leaderId >= 0), { timeoutMs: 20_000, what: `stream ${name}` });
}

function countOf(values: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return counts;
}

async function errorOf(promise: Promise<unknown>): Promise<RiffleError> {
  const error = await promise.then(() => undefined, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(RiffleError);
  return error as RiffleError;
}

describe('Kinesis-like checkpoints and leases', () => {
  it('balances leases; a planned worker shutdown moves its leases within 1 s and processes no record twice', async () => {
    await createStream('leases-planned', 4);
    const settings = { applicationName: 'app-planned', streamName: 'leases-planned' };
    const producer = startProducer('leases-planned', 'p');
    const a = new WorkerProcess('worker-a', settings);
    await waitFor(() => a.owned().size === 4, { timeoutMs: 20_000, what: 'worker a to hold every shard' });
    const b = new WorkerProcess('worker-b', settings);
    await waitFor(() => a.owned().size === 2 && b.owned().size === 2, { timeoutMs: 20_000, what: 'two leases each' });
    await waitFor(() => b.records().length > 0 && a.records().length > 0, { timeoutMs: 10_000, what: 'both processing' });
    const shutdownAt = Date.now();
    a.child.kill('SIGTERM');
    await waitFor(() => b.owned().size === 4, { timeoutMs: 10_000, what: 'worker b to take every lease' });
    const moves = [...a.events.filter((event) => event.event === 'released' && event.t >= shutdownAt)].map((released) => {
      // Revoke-then-assign: b is granted the shard only after a released it (one clock: one machine).
      const acquired = b.events.find((event) => event.event === 'acquired' && event.shardId === released.shardId && event.t >= shutdownAt);
      expect(acquired).toBeDefined();
      expect(acquired!.t).toBeGreaterThanOrEqual(released.t);
      return acquired!.t - released.t;
    });
    console.log(`planned shutdown: lease move times ${JSON.stringify(moves)} ms; SIGTERM to all leases on b ${Math.max(...b.events.filter((event) => event.event === 'acquired').map((event) => event.t)) - shutdownAt} ms`);
    expect(moves).toHaveLength(2);
    for (const move of moves) expect(move).toBeLessThanOrEqual(1_000);
    await waitFor(() => a.exited, { timeoutMs: 10_000, what: 'worker a to exit' });
    const written = await producer.stop();
    await waitFor(() => {
      const seen = new Set([...a.records(), ...b.records()].map((event) => event.data));
      return written.every((payload) => seen.has(payload));
    }, { timeoutMs: 20_000, what: 'every record processed' });
    const counts = countOf([...a.records(), ...b.records()].map((event) => event.data!));
    const twice = [...counts].filter(([, count]) => count > 1);
    expect(twice).toEqual([]);
    await b.stop();
    const checkpoints = await getCheckpoints(client, 'app-planned');
    expect(checkpoints.shards.map((shard) => shard.leaseOwner)).toEqual(['', '', '', '']);
    expect(checkpoints.shards.every((shard) => shard.checkpoint !== '')).toBe(true);
    const cli = await runCli(['stream', 'checkpoints', 'app-planned', '--bootstrap', cluster.bootstrap, '--json']);
    expect(cli.code).toBe(0);
    const printed = JSON.parse(cli.stdout) as { Shards: { ShardId: string; Checkpoint: string | null; LeaseOwner: string | null }[] };
    expect(printed.Shards.map((shard) => shard.Checkpoint)).toEqual(checkpoints.shards.map((shard) => shard.checkpoint));
    expect(printed.Shards.every((shard) => shard.LeaseOwner === null)).toBe(true);
    const missing = await runCli(['stream', 'checkpoints', 'no-such-app', '--bootstrap', cluster.bootstrap]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('ResourceNotFoundException');
  }, 120_000);

  it('moves a crashed worker\'s leases within the failover time and resumes from the checkpoint', async () => {
    await createStream('leases-crash', 4);
    const settings = { applicationName: 'app-crash', streamName: 'leases-crash', failoverTimeMs: FAILOVER_TIME_MS };
    const producer = startProducer('leases-crash', 'c');
    const c = new WorkerProcess('worker-c', settings);
    await waitFor(() => c.owned().size === 4, { timeoutMs: 20_000, what: 'worker c to hold every shard' });
    const d = new WorkerProcess('worker-d', settings);
    await waitFor(() => c.owned().size === 2 && d.owned().size === 2, { timeoutMs: 20_000, what: 'two leases each' });
    await waitFor(() => c.events.filter((event) => event.event === 'checkpointed').length > 2, { timeoutMs: 10_000, what: 'worker c to checkpoint' });
    const crashedShards = [...c.owned()];
    const lastCheckpointOfC = new Map<string, string>();
    const killedAt = Date.now();
    c.child.kill('SIGKILL');
    await waitFor(() => c.exited, { timeoutMs: 5_000 });
    for (const event of c.events) if (event.event === 'checkpointed') lastCheckpointOfC.set(event.shardId!, event.sequenceNumber!);
    await waitFor(() => d.owned().size === 4, { timeoutMs: FAILOVER_TIME_MS + 5_000, what: 'worker d to take the crashed worker\'s leases' });
    const takeovers = d.events.filter((event) => event.event === 'acquired' && event.t >= killedAt);
    const moveMs = Math.max(...takeovers.map((event) => event.t)) - killedAt;
    console.log(`crash: leases moved ${moveMs} ms after kill -9 (failover time ${FAILOVER_TIME_MS} ms)`);
    expect(takeovers.map((event) => event.shardId).sort()).toEqual(crashedShards.sort());
    // The coordinator expires c early enough for d's next heartbeat to get the leases within the
    // failover time; 250 ms allow for scheduling on a loaded machine.
    expect(moveMs).toBeLessThanOrEqual(FAILOVER_TIME_MS + 250);
    const written = await producer.stop();
    await waitFor(() => {
      const seen = new Set([...c.records(), ...d.records()].map((event) => event.data));
      return written.every((payload) => seen.has(payload));
    }, { timeoutMs: 20_000, what: 'every record processed' });
    for (const takeover of takeovers) {
      // d resumed after the crashed worker's last checkpoint of the shard: a record c processed,
      // no earlier than the last checkpoint c reported (c may have died between its checkpoint
      // call and reporting it).
      const reported = lastCheckpointOfC.get(takeover.shardId!);
      expect(takeover.checkpoint).toBeTruthy();
      expect(c.records().some((event) => event.shardId === takeover.shardId && event.sequenceNumber === takeover.checkpoint)).toBe(true);
      if (reported) expect(BigInt(takeover.checkpoint!) >= BigInt(reported)).toBe(true);
      const first = d.records().find((event) => event.shardId === takeover.shardId && event.t >= takeover.t);
      if (first && takeover.checkpoint) expect(BigInt(first.sequenceNumber!) > BigInt(takeover.checkpoint)).toBe(true);
      // Nothing between the checkpoint and d's first record was skipped: c processed it or d did.
      const shardRecords = [...c.records(), ...d.records()].filter((event) => event.shardId === takeover.shardId).map((event) => BigInt(event.sequenceNumber!));
      const firstOfD = d.records().find((event) => event.shardId === takeover.shardId);
      if (firstOfD) expect(shardRecords.some((sequence) => sequence < BigInt(firstOfD.sequenceNumber!)) || !takeover.checkpoint).toBe(true);
    }
    await d.stop();
  }, 120_000);

  it('keeps checkpoints and leases through a coordinator failover (kill -9 of its node)', async () => {
    await createStream('leases-failover', 2);
    // The default failover time (10 s) outlasts a coordinator failover, so the worker keeps its leases.
    const settings = { applicationName: 'app-failover', streamName: 'leases-failover' };
    const producer = startProducer('leases-failover', 'f');
    const e = new WorkerProcess('worker-e', settings);
    await waitFor(() => e.owned().size === 2 && e.events.filter((event) => event.event === 'checkpointed').length >= 2, { timeoutMs: 20_000, what: 'worker e to hold and checkpoint both shards' });
    const address = await findApplicationCoordinator(client, 'app-failover');
    const coordinatorId = Number(address.split(':')[0]!.split('.').at(-1));
    const before = await getCheckpoints(client, 'app-failover');
    await cluster.nodes.get(coordinatorId)!.kill();
    try {
      const after = await waitFor(async () => {
        if ((await findApplicationCoordinator(client, 'app-failover')) === address) return undefined;
        return getCheckpoints(client, 'app-failover');
      }, { timeoutMs: 30_000, intervalMs: 200, what: 'a new coordinator' });
      for (const shard of before.shards) {
        const now = after.shards.find((candidate) => candidate.shardId === shard.shardId)!;
        expect(BigInt(now.checkpoint) >= BigInt(shard.checkpoint)).toBe(true);
        expect(now.leaseOwner).toBe('worker-e');
      }
      const written = await producer.stop();
      await waitFor(() => {
        const seen = new Set(e.records().map((event) => event.data));
        return written.every((payload) => seen.has(payload));
      }, { timeoutMs: 30_000, what: 'every record processed' });
      expect(e.events.filter((event) => event.event === 'lost')).toEqual([]);
      // Checkpoints reach the new coordinator.
      await putAll(kinesis, 'leases-failover', [{ partitionKey: 'after', data: 'after-failover' }]);
      const late = await waitFor(() => e.records().find((record) => record.data === 'after-failover'), { timeoutMs: 20_000, what: 'a record after the failover' });
      await waitFor(() => e.events.some((event) => event.event === 'checkpointed' && event.sequenceNumber === late.sequenceNumber), { timeoutMs: 20_000, what: 'its checkpoint at the new coordinator' });
      const final = await getCheckpoints(client, 'app-failover', { shardId: late.shardId });
      expect(final.shards[0]!.checkpoint).toBe(late.sequenceNumber);
      await e.stop();
    } finally {
      await (await cluster.start(coordinatorId)).waitReady(60_000);
    }
  }, 150_000);

  it('leases children only after their parents reached SHARD_END, within 1 s', async () => {
    await createStream('leases-reshard', 1);
    const events: { type: string; shardId?: string; t: number }[] = [];
    const processed: string[] = [];
    // This case failed once in a full run (the parent record not processed within 10 s, right
    // after the coordinator failover case restarted a node): the worker's events say where it stood.
    const log: string[] = [];
    const explain = (error: unknown): never => {
      console.log(`worker events:\n${log.join('\n')}\nprocessed: ${JSON.stringify(processed)}`);
      throw error;
    };
    const worker = new KinesisWorker(client, kinesis, {
      applicationName: 'app-reshard', streamName: 'leases-reshard', workerId: 'in-process', failoverTimeMs: FAILOVER_TIME_MS,
      retrieval: { type: 'polling', idleTimeBetweenReadsMs: 50 },
      processorFactory: (shardId) => ({
        async processRecords(records: KinesisRecord[], checkpointer) {
          processed.push(...records.map((record) => `${shardId}:${Buffer.from(record.data).toString('utf8')}`));
          await checkpointer.checkpoint();
        },
      }),
      onEvent: (event) => {
        events.push({ type: event.type, shardId: 'shardId' in event ? event.shardId : undefined, t: Date.now() });
        log.push(`${new Date().toISOString()} ${JSON.stringify(event).slice(0, 300)}`);
      },
    });
    await worker.start();
    try {
      const [sequenceNumber] = await putAll(kinesis, 'leases-reshard', [{ partitionKey: 'k', data: 'before' }]);
      log.push(`${new Date().toISOString()} put at ${sequenceNumber}`);
      await waitFor(() => processed.includes('shardId-000000000000:before'), { timeoutMs: 10_000, what: 'the parent record' }).catch(explain);
      await kinesis.splitShard('leases-reshard', 'shardId-000000000000', (1n << 127n).toString());
      await waitFor(() => worker.ownedShards().length === 2, { timeoutMs: 10_000, what: 'both children leased' }).catch(explain);
      const ended = events.find((event) => event.type === 'shard-ended' && event.shardId === 'shardId-000000000000')!;
      expect(ended).toBeDefined();
      const children = events.filter((event) => event.type === 'lease-acquired' && event.shardId !== 'shardId-000000000000');
      expect(children).toHaveLength(2);
      for (const child of children) {
        expect(child.t).toBeGreaterThanOrEqual(ended.t);
        expect(child.t - ended.t).toBeLessThanOrEqual(1_000);
      }
      console.log(`children leased ${Math.max(...children.map((child) => child.t - ended.t))} ms after the parent was drained`);
      const parent = await getCheckpoints(client, 'app-reshard', { shardId: 'shardId-000000000000' });
      expect(parent.shards[0]!.checkpoint).toBe('SHARD_END');
      expect(parent.shards[0]!.leaseOwner).toBe('');
    } finally {
      await worker.stop();
    }
  }, 60_000);

  it('an Enhanced Fan-Out worker resumes after the checkpoint its predecessor left at stop()', async () => {
    await createStream('leases-efo', 1);
    const seen: string[] = [];
    // This case failed now and then (about one run in four of this file): the worker's events say
    // where it stood. Its puts ignored per-record failures then; they are resent now (putAll), as
    // the reshard case's put had to be after a node restart (InternalFailure: no connection yet).
    const events: string[] = [];
    const makeWorker = (workerId: string): KinesisWorker => new KinesisWorker(client, kinesis, {
      applicationName: 'app-efo', streamName: 'leases-efo', workerId, retrieval: { type: 'fan-out', consumerName: 'app-efo' },
      onEvent: (event) => events.push(`${new Date().toISOString()} ${workerId} ${JSON.stringify(event).slice(0, 300)}`),
      processorFactory: () => ({
        processRecords(records: KinesisRecord[]) {
          // No checkpoint here: stop() checkpoints what was processed.
          seen.push(...records.map((record) => Buffer.from(record.data).toString('utf8')));
        },
      }),
    });
    const first = makeWorker('efo-1');
    await first.start();
    await waitFor(() => first.ownedShards().length === 1, { timeoutMs: 10_000, what: 'the lease' });
    await putAll(kinesis, 'leases-efo', ['a', 'b', 'c'].map((value) => ({ partitionKey: value, data: value })));
    await waitFor(() => seen.length === 3, { timeoutMs: 10_000, what: 'three pushed records' }).catch((error: unknown) => {
      console.log(`worker events:\n${events.join('\n')}\nseen: ${JSON.stringify(seen)}`);
      throw error;
    });
    await first.stop();
    await putAll(kinesis, 'leases-efo', ['d', 'e'].map((value) => ({ partitionKey: value, data: value })));
    const second = makeWorker('efo-2');
    await second.start();
    try {
      await waitFor(() => seen.length >= 5, { timeoutMs: 10_000, what: 'the records written meanwhile' });
      expect(seen).toEqual(['a', 'b', 'c', 'd', 'e']);
    } finally {
      await second.stop();
    }
  }, 60_000);

  it('answers bad input with typed errors and keeps serving', async () => {
    await createStream('leases-bad', 1);
    const address = await findApplicationCoordinator(client, 'app-bad');
    const call = (method: string, request: object) => client.connection(address).call('riffle.v1.Kinesis', method, request, 5_000);
    const heartbeat = await call('LeaseHeartbeat', { applicationName: 'app-bad', streamName: 'leases-bad', workerId: 'w1', ownedShardIds: [], drainedShards: [], failoverTimeMs: 2_000 }) as { leases: { shardId: string; leaseEpoch: number }[] };
    expect(heartbeat.leases.map((lease) => lease.shardId)).toEqual(['shardId-000000000000']);
    const epoch = heartbeat.leases[0]!.leaseEpoch;
    const [sequence] = await putAll(kinesis, 'leases-bad', [{ partitionKey: 'k', data: 'x' }]);
    const base = { applicationName: 'app-bad', streamName: 'leases-bad', shardId: 'shardId-000000000000', workerId: 'w1', leaseEpoch: epoch, sequenceNumber: sequence };
    expect((await errorOf(call('Checkpoint', { ...base, streamName: 'no-such-stream' }))).errorName).toBe('RESOURCE_NOT_FOUND');
    expect((await errorOf(call('Checkpoint', { ...base, shardId: 'shardId-000000000009' }))).errorName).toBe('RESOURCE_NOT_FOUND');
    expect((await errorOf(call('Checkpoint', { ...base, sequenceNumber: '12x' }))).errorName).toBe('INVALID_ARGUMENT');
    expect((await errorOf(call('Checkpoint', { ...base, sequenceNumber: 'SHARD_END' }))).errorName).toBe('INVALID_ARGUMENT');
    expect((await errorOf(call('Checkpoint', { ...base, leaseEpoch: epoch + 1 }))).errorName).toBe('LEASE_NOT_HELD');
    expect((await errorOf(call('Checkpoint', { ...base, workerId: 'w2' }))).errorName).toBe('LEASE_NOT_HELD');
    expect((await errorOf(call('LeaseHeartbeat', { applicationName: 'app-bad', streamName: 'leases-bad', workerId: 'w1', failoverTimeMs: 5 }))).errorName).toBe('INVALID_ARGUMENT');
    expect((await errorOf(call('LeaseHeartbeat', { applicationName: 'app-bad', streamName: 'other-stream', workerId: 'w1' }))).errorName).toBe('RESOURCE_NOT_FOUND');
    expect((await errorOf(call('LeaseHeartbeat', { applicationName: 'app-bad', streamName: 'leases-bad', workerId: '' }))).errorName).toBe('INVALID_ARGUMENT');
    expect((await errorOf(getCheckpoints(client, 'no-such-app'))).errorName).toBe('RESOURCE_NOT_FOUND');
    // The owner's checkpoint goes through; a later, lower one is refused.
    await call('Checkpoint', base);
    const after = await getCheckpoints(client, 'app-bad', { shardId: 'shardId-000000000000' });
    expect(after.shards[0]!.checkpoint).toBe(sequence);
    expect(after.shards[0]!.leaseOwner).toBe('w1');
    // The lease expires after the failover time without heartbeats; the old owner is then stale.
    await waitFor(async () => (await getCheckpoints(client, 'app-bad')).shards[0]!.leaseOwner === '', { timeoutMs: 10_000, what: 'the lease to expire' });
    expect((await errorOf(call('Checkpoint', base))).errorName).toBe('LEASE_NOT_HELD');
    for (const node of cluster.nodes.values()) expect(node.running).toBe(true);
  }, 60_000);

  it('refuses a second SubscribeToShard within a second per consumer and shard under the kinesis profile', async () => {
    await createStream('leases-efo-limit', 1, 'kinesis');
    const summary = await kinesis.describeStreamSummary('leases-efo-limit');
    const consumer = await kinesis.registerStreamConsumer(summary.streamArn, 'limited');
    const leader = (await client.topicMetadata('leases-efo-limit', true)).partitions[0]!.leaderId;
    const subscribe = (): Promise<RiffleError | null> => new Promise((resolve) => {
      const stub = client.connectionTo(leader).client('riffle.v1.Kinesis') as unknown as { SubscribeToShard(request: object): grpc.ClientReadableStream<unknown> };
      const stream = stub.SubscribeToShard({ consumerArn: consumer.consumerArn, shardId: 'shardId-000000000000', startingPosition: { type: 'LATEST' } });
      stream.once('data', () => {
        stream.cancel();
        resolve(null);
      });
      stream.once('error', (error: grpc.ServiceError) => resolve(error.code === grpc.status.CANCELLED ? null : fromServiceError(error)));
    });
    const firstAt = Date.now();
    expect(await subscribe()).toBeNull();
    const second = await subscribe();
    expect(second?.errorName).toBe('LIMIT_EXCEEDED');
    const accepted = await waitFor(async () => ((await subscribe()) === null ? Date.now() : undefined), { timeoutMs: 10_000, intervalMs: 100, what: 'a later subscription' });
    expect(accepted - firstAt).toBeGreaterThanOrEqual(1_000);
  }, 60_000);
});
