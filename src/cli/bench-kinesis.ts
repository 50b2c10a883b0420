// `riffle bench kinesis` (npm run bench:kinesis): the Kinesis-like API's targets, printed as JSON.
// Starts its own three-node cluster on 127.0.31.1-3 and measures
//  - PutRecords throughput: 100-byte records, 500 per request, random partition keys, profile
//    'off', RF 3, 8 shards, --concurrency requests in flight through the SDK (which sends each
//    shard's records straight to its leader);
//  - Enhanced Fan-Out push latency at --efo-rate-bytes per shard (1 MB/s by default): a writer
//    per shard puts 1 KiB records in small PutRecords batches every 10 ms, a SubscribeToShard
//    subscriber per shard receives them; latency is delivery time minus the writer's
//    PutRecords acknowledgement time (a record can arrive before its acknowledgement does:
//    those count as 0 and are reported), and also delivery minus send time;
//  - optionally (--kinesalite) the same PutRecords workload against kinesalite (in-memory,
//    unreplicated) on 127.0.32.1 driven by @aws-sdk/client-kinesis over HTTP/1.1, with the ratio.
// --warmup-records puts that many records first, unmeasured, to the same stream (on both sides
// with --kinesalite): fresh processes run unoptimized code for their first few hundred thousand
// records, which says more about JIT tiering than about the steady state (as in bench produce).
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { Command } from 'commander';
import { KinesisClient, RiffleClient } from '../client/index.js';
import { shardIdOf, streamArnOf, uniformHashRanges } from '../util/kinesis.js';
import { BenchCluster } from './bench-cluster.js';
import { parseIntegerOption, printJson, reportError } from './output.js';

const SUBNET = '127.0.31';
const KINESALITE_HOST = '127.0.32.1';
/** PutRecords calls one EFO writer keeps in flight at most. */
const EFO_PUTS_IN_FLIGHT_MAX = 100;

interface KinesisBenchOptions {
  records: number;
  warmupRecords: number;
  concurrency: number;
  shards: number;
  efoShards: number;
  efoSeconds: number;
  efoRateBytes: number;
  kinesalite?: boolean;
  kinesaliteRecords: number;
  bootstrap?: string;
}

export function registerKinesisBench(bench: Command): void {
  bench
    .command('kinesis')
    .description('PutRecords throughput (RF 3, 8 shards) and EFO push latency on a fresh 3-node cluster; optionally side by side with kinesalite; prints JSON.')
    .option('--records <n>', 'records for the PutRecords throughput run', parseIntegerOption, 1_000_000)
    .option('--warmup-records <n>', 'records put first, not measured (JIT warm-up; also for kinesalite)', parseIntegerOption, 0)
    .option('--concurrency <n>', 'PutRecords requests in flight', parseIntegerOption, 128)
    .option('--shards <n>', 'shards of the throughput stream', parseIntegerOption, 8)
    .option('--efo-shards <n>', 'shards of the EFO latency stream', parseIntegerOption, 2)
    .option('--efo-seconds <n>', 'duration of the EFO latency run', parseIntegerOption, 10)
    .option('--efo-rate-bytes <n>', 'bytes per second written to each EFO shard', parseIntegerOption, 1_000_000)
    .option('--kinesalite', 'also run the PutRecords workload against kinesalite (devDependency) and report the ratio')
    .option('--kinesalite-records <n>', 'records for the kinesalite run', parseIntegerOption, 100_000)
    .option('--bootstrap <addresses>', 'use this running cluster instead of starting one (for profiling)')
    .action(async (options: KinesisBenchOptions) => {
      let cluster: BenchCluster | undefined;
      try {
        if (!options.bootstrap) cluster = await BenchCluster.start(3, { subnet: SUBNET, extraArgs: ['--default-replication-factor', '3'] });
        const client = new RiffleClient({ bootstrap: options.bootstrap ?? cluster!.bootstrap, retry: { deadlineMs: 60_000 } });
        try {
          const kinesis = new KinesisClient(client);
          const putRecords = await benchPutRecords(kinesis, options);
          const efo = await benchEfoLatency(kinesis, client, options);
          const kinesalite = options.kinesalite ? await benchKinesalite(options) : undefined;
          printJson({
            benchmark: 'bench kinesis',
            // Other work on the machine skews every figure; the load says how much there was.
            machine: { cpus: os.cpus().length, loadAverage1m: Math.round(os.loadavg()[0]! * 10) / 10 },
            putRecords,
            efo,
            ...(kinesalite ? { kinesalite, ratio: Math.round((putRecords.recordsPerSecond / kinesalite.recordsPerSecond) * 10) / 10 } : {}),
          });
        } finally {
          client.close();
        }
      } catch (error) {
        reportError('bench kinesis', error);
      } finally {
        await cluster?.stop();
      }
    });
}

function randomKey(): string {
  return randomBytes(12).toString('base64url');
}

interface PutResult {
  records: number;
  recordsPerSecond: number;
  megabytesPerSecond: number;
  failedAndRetried: number;
  seconds: number;
}

async function benchPutRecords(kinesis: KinesisClient, options: KinesisBenchOptions): Promise<PutResult & { warmupRecords: number; shards: number; replicationFactor: number; recordSizeBytes: number; concurrency: number }> {
  await kinesis.createStream('bench-put', { shardCount: options.shards, replicationFactor: 3, limitsProfile: 'off' });
  const payload = Buffer.alloc(100, 7);
  const put = async (entries: Entry[]): Promise<Entry[]> => {
    const response = await kinesis.putRecords('bench-put', entries);
    return response.failedRecordCount === 0 ? [] : entries.filter((_, index) => response.records[index]!.errorCode);
  };
  if (options.warmupRecords > 0) await drivePutRecords(options.warmupRecords, options.concurrency, put, payload);
  const result = await drivePutRecords(options.records, options.concurrency, put, payload);
  return { ...result, warmupRecords: options.warmupRecords, shards: options.shards, replicationFactor: 3, recordSizeBytes: payload.length, concurrency: options.concurrency };
}

type Entry = { partitionKey: string; data: Buffer };

/** Runs `total` records through `put` in 500-record requests, `concurrency` at a time; failed records are resent. */
async function drivePutRecords(total: number, concurrency: number, put: (entries: Entry[]) => Promise<Entry[]>, payload: Buffer): Promise<PutResult> {
  const keys = Array.from({ length: 10_000 }, randomKey);
  let issued = 0;
  let retried = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (issued < total) {
      const count = Math.min(500, total - issued);
      issued += count;
      let entries: Entry[] = Array.from({ length: count }, (_, index) => ({ partitionKey: keys[(issued + index) % keys.length]!, data: payload }));
      for (let attempt = 0; attempt < 50 && entries.length > 0; attempt++) {
        entries = await put(entries);
        retried += entries.length;
      }
      if (entries.length > 0) throw new Error(`${entries.length} records were refused 50 times`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  return {
    records: total, recordsPerSecond: Math.round(total / seconds), megabytesPerSecond: Math.round((total * payload.length) / seconds / 1e4) / 100,
    failedAndRetried: retried, seconds: Math.round(seconds * 100) / 100,
  };
}

function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return NaN;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]! * 100) / 100;
}

async function benchEfoLatency(kinesis: KinesisClient, client: RiffleClient, options: KinesisBenchOptions): Promise<object> {
  const stream = 'bench-efo';
  await kinesis.createStream(stream, { shardCount: options.efoShards, replicationFactor: 3 });
  await client.refreshMetadata([]);
  const consumer = await kinesis.registerStreamConsumer(streamArnOf(client.clusterId, stream), 'bench');
  const recordBytes = 1024;
  const batchEveryMs = 10;
  const recordsPerBatch = Math.max(1, Math.round((options.efoRateBytes / recordBytes) * (batchEveryMs / 1000)));
  const ackedAt = new Map<string, number>();
  const delivered: { sequenceNumber: string; atMs: number; sentAtMs: number }[] = [];
  const stop = new AbortController();
  const ranges = uniformHashRanges(options.efoShards);
  const live = new Set<number>();
  const subscribers = ranges.map(async (_, shard) => {
    for await (const event of kinesis.subscribeToShard(consumer.consumerArn, shardIdOf(shard), { type: 'LATEST' }, { signal: stop.signal })) {
      live.add(shard);
      const now = performance.timeOrigin + performance.now();
      for (const record of event.records) delivered.push({ sequenceNumber: record.sequenceNumber, atMs: now, sentAtMs: record.data.readDoubleBE(0) });
    }
  });
  // Write only once every subscription is established (its first heartbeat proves it).
  const liveBy = Date.now() + 15_000;
  while (live.size < ranges.length && Date.now() < liveBy) await new Promise((resolve) => setTimeout(resolve, 20));
  const endAt = Date.now() + options.efoSeconds * 1000;
  const writers = ranges.map(async (range) => {
    const explicitHashKey = ((range.start + range.end) / 2n).toString();
    const inFlight = new Set<Promise<void>>();
    const startedAt = Date.now();
    for (let tick = 0; Date.now() < endAt && tick < 1_000_000; tick++) {
      const wait = startedAt + tick * batchEveryMs - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      // Paced, not closed-loop: a slow acknowledgement does not lower the offered load.
      if (inFlight.size >= EFO_PUTS_IN_FLIGHT_MAX) await Promise.race(inFlight);
      const sentAt = performance.timeOrigin + performance.now();
      const entries = Array.from({ length: recordsPerBatch }, () => {
        const data = Buffer.alloc(recordBytes);
        data.writeDoubleBE(sentAt, 0);
        return { partitionKey: 'p', explicitHashKey, data };
      });
      const put = kinesis.putRecords(stream, entries).then((response) => {
        const acked = performance.timeOrigin + performance.now();
        for (const record of response.records) if (record.sequenceNumber) ackedAt.set(record.sequenceNumber, acked);
      }).finally(() => inFlight.delete(put));
      inFlight.add(put);
    }
    await Promise.all(inFlight);
  });
  await Promise.all(writers);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && delivered.length < ackedAt.size) await new Promise((resolve) => setTimeout(resolve, 50));
  stop.abort();
  await Promise.allSettled(subscribers);
  const afterAck: number[] = [];
  const signed: number[] = [];
  const afterSend: number[] = [];
  let beforeAck = 0;
  for (const record of delivered) {
    const acked = ackedAt.get(record.sequenceNumber);
    if (acked === undefined) continue;
    const latency = record.atMs - acked;
    if (latency < 0) beforeAck++;
    signed.push(latency);
    afterAck.push(Math.max(0, latency));
    afterSend.push(record.atMs - record.sentAtMs);
  }
  for (const values of [afterAck, signed, afterSend]) values.sort((a, b) => a - b);
  return {
    shards: options.efoShards, bytesPerSecondPerShard: options.efoRateBytes, recordSizeBytes: recordBytes, acknowledged: ackedAt.size, delivered: delivered.length,
    // Delivery minus the writer's receipt of the acknowledgement; a record pushed before its
    // acknowledgement arrived counts as 0 here and shows as negative in the signed figures.
    pushLatencyAfterAckMs: { p50: percentile(afterAck, 0.5), p99: percentile(afterAck, 0.99), max: percentile(afterAck, 1) },
    deliveryMinusAckSignedMs: { p1: percentile(signed, 0.01), p50: percentile(signed, 0.5), p99: percentile(signed, 0.99) },
    deliveredBeforeAck: beforeAck,
    endToEndFromSendMs: { p50: percentile(afterSend, 0.5), p99: percentile(afterSend, 0.99) },
  };
}

/** The PutRecords workload against kinesalite on 127.0.32.1 through the AWS SDK (HTTP/1.1). */
async function benchKinesalite(options: KinesisBenchOptions): Promise<PutResult & { warmupRecords: number; note: string }> {
  const load = (name: string): Promise<Record<string, unknown>> => import(name) as Promise<Record<string, unknown>>;
  const kinesaliteModule = await load('kinesalite');
  const sdk = await load('@aws-sdk/client-kinesis');
  const http = await load('@smithy/node-http-handler');
  const createServer = (kinesaliteModule.default ?? kinesaliteModule) as (options: object) => { listen(port: number, host: string, callback: (error?: Error) => void): void; close(callback: () => void): void; address(): { port: number } };
  const server = createServer({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 });
  await new Promise<void>((resolve, reject) => server.listen(0, KINESALITE_HOST, (error) => (error ? reject(error) : resolve())));
  const port = server.address().port;
  const KinesisSdk = sdk.Kinesis as new (options: object) => { createStream(input: object): Promise<unknown>; describeStream(input: object): Promise<{ StreamDescription?: { StreamStatus?: string } }>; putRecords(input: object): Promise<{ FailedRecordCount?: number; Records: { ErrorCode?: string }[] }>; destroy(): void };
  const Handler = http.NodeHttpHandler as new (options: object) => object;
  const aws = new KinesisSdk({
    endpoint: `http://${KINESALITE_HOST}:${port}`, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    requestHandler: new Handler({ connectionTimeout: 5_000 }), maxAttempts: 1,
  });
  try {
    await aws.createStream({ StreamName: 'bench', ShardCount: options.shards });
    for (let attempt = 0; attempt < 100; attempt++) {
      if ((await aws.describeStream({ StreamName: 'bench' })).StreamDescription?.StreamStatus === 'ACTIVE') break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const payload = Buffer.alloc(100, 7);
    const put = async (entries: Entry[]): Promise<Entry[]> => {
      const response = await aws.putRecords({ StreamName: 'bench', Records: entries.map((entry) => ({ PartitionKey: entry.partitionKey, Data: entry.data })) });
      return (response.FailedRecordCount ?? 0) === 0 ? [] : entries.filter((_, index) => response.Records[index]!.ErrorCode);
    };
    // Warmed like our side, but no longer than its measured run (kinesalite is ~10x slower).
    const warmupRecords = Math.min(options.warmupRecords, options.kinesaliteRecords);
    if (warmupRecords > 0) await drivePutRecords(warmupRecords, options.concurrency, put, payload);
    const result = await drivePutRecords(options.kinesaliteRecords, options.concurrency, put, payload);
    return { ...result, warmupRecords, note: `kinesalite (in memory, unreplicated) on ${KINESALITE_HOST}, @aws-sdk/client-kinesis over HTTP/1.1` };
  } finally {
    aws.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

