// `riffle bench produce|consume|e2e`: throughput and latency of the data path, printed as JSON on
// stdout (a progress bar goes to stderr). With --start-node the benchmark starts its own single
// node in a temporary directory on loopback, with --start-cluster three combined nodes on
// 127.0.35.1-3 (AZs a, b, c; topics RF 3, min.insync.replicas 2), and stops them afterwards, so
// `npm run bench:produce` measures a fresh three-node cluster with nothing else running.
// --warmup-records sends that many records first, unmeasured, to the same topic: a fresh
// process runs unoptimized code for its first few hundred thousand records, which says little
// about the steady state and much about JIT tiering. --runs repeats the whole measurement (a fresh
// cluster or node and a new topic each time) and adds the median of every figure over the runs: on
// a small shared machine one run's tail latency can be twice the next one's. --floor (produce
// and e2e with --rate) measures the machine's floor (bench-floor.ts, over grpc-js) after each run,
// once its cluster has stopped, and reports the run's latency over the floor's: the host's slow
// spells move both, so the ratio compares builds and sessions where the bare figures cannot.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { SingleBar, Presets } from 'cli-progress';
import type { Command } from 'commander';
import { Admin, PartitionConsumer, Producer, RiffleClient, type Acks } from '../client/index.js';
import { DEFAULT_BOOTSTRAP } from '../client/client.js';
import { isRiffleError } from '../rpc/errors.js';
import { NodeProcess, freePort } from './node-process.js';
import { BenchCluster, CpuMeter, PACE_STEP_RECORDS, median, pace, quantileOf, round, waitForFullIsr } from './bench-cluster.js';
import { registerMetadataBench } from './bench-metadata.js';
import { registerFailoverBench } from './bench-failover.js';
import { registerGroupsBench } from './bench-groups.js';
import { registerKinesisBench } from './bench-kinesis.js';
import { FLOOR_WARMUP_SECONDS_DEFAULT, measureGrpcFloor, registerFloorBench, type FloorRun, type FloorSettings } from './bench-floor.js';
import { parseIntegerOption, printJson, reportError } from './output.js';

interface BenchOptions {
  bootstrap: string;
  topic?: string;
  records: number;
  recordSize: number;
  batchBytes: number;
  lingerMs: number;
  partitions: number;
  acks: string;
  flushPolicy: string;
  startNode?: boolean;
  startCluster?: boolean;
  warmupRecords: number;
  progress: boolean;
  windowBytes: number;
  rate?: number;
  idlePartitions: number;
  runs: number;
  floor?: boolean;
}

function benchOptions(command: Command): Command {
  return command
    .option('--bootstrap <addresses>', 'cluster to measure (ignored with --start-node)', process.env.RIFFLE_BOOTSTRAP ?? DEFAULT_BOOTSTRAP)
    .option('--topic <name>', 'topic to use (created when missing); a new one by default')
    .option('--records <n>', 'records to send', parseIntegerOption, 2_000_000)
    .option('--record-size <bytes>', 'value size of each record', parseIntegerOption, 100)
    .option('--batch-bytes <bytes>', 'producer batch size', parseIntegerOption, 256 * 1024)
    .option('--linger-ms <ms>', 'producer linger', parseIntegerOption, 5)
    .option('--partitions <n>', 'partitions of a new topic', parseIntegerOption, 8)
    .option('--acks <acks>', '0, 1 or all', '1')
    .option('--flush-policy <policy>', 'flush.policy of a new topic: ack, interval or os', 'os')
    .option('--window-bytes <bytes>', 'record bytes the producer keeps outstanding at most', parseIntegerOption, 16 * 1024 * 1024)
    .option('--rate <records-per-second>', 'send at this pace instead of as fast as possible (latency at a given load)', parseIntegerOption)
    .option('--start-node', 'start a fresh single node on loopback for the run')
    .option('--start-cluster', 'start a fresh three-node cluster (RF 3, min.insync.replicas 2) on 127.0.35.1-3 for the run')
    .option('--warmup-records <n>', 'records sent first, not measured (JIT warm-up)', parseIntegerOption, 0)
    .option('--idle-partitions <n>', 'partitions of a second topic that gets no records, replicated alongside (the cost of quiet partitions)', parseIntegerOption, 0)
    .option('--runs <n>', 'repeat the measurement this many times (fresh cluster or node and topic each time) and add the median of every figure', parseIntegerOption, 1)
    .option('--no-progress', 'no progress bar');
}

/** --floor: only where the run is paced and its latency measured (produce with --rate, e2e). */
function floorOption(command: Command): Command {
  return command.option(
    '--floor',
    "after each run, measure the machine's floor (`bench floor` over grpc-js: relays that only write, fdatasync and forward) at the run's pace, record size, linger, batch size and flush policy, for as long as the run measured, and report the run's latency over it",
  );
}

export function registerBenchCommands(program: Command): void {
  const bench = program.command('bench').description('Measure produce and consume throughput and metadata operations; prints JSON.');
  registerMetadataBench(bench);
  registerFailoverBench(bench);
  registerGroupsBench(bench);
  registerKinesisBench(bench);
  registerFloorBench(bench);
  floorOption(benchOptions(bench.command('produce').description('Produce records as fast as the cluster takes them.'))).action(async (options: BenchOptions) => {
    await runBench('bench produce', options, async (producer, client, topic) => benchProduce(producer, topic, options));
  });
  floorOption(benchOptions(bench.command('e2e').description('End-to-end latency: produce at --rate and consume at once; time from send to receipt.'))).action(async (options: BenchOptions) => {
    await runBench('bench e2e', options, async (producer, client, topic) => ({ endToEnd: await benchEndToEnd(producer, client, topic, options) }));
  });
  benchOptions(bench.command('consume').description('Produce records, then consume them from the beginning.')).action(async (options: BenchOptions) => {
    await runBench('bench consume', options, async (producer, client, topic) => {
      const produced = await benchProduce(producer, topic, { ...options, progress: false });
      return { ...produced, consume: await benchConsume(client, topic, options) };
    });
  });
}

/**
 * Runs `body` against the cluster the options name. The warm-up and the measured run share one
 * producer, as an application's long-lived producer would: the measured run starts with its
 * producer id, metadata and connections in hand, so its first records do not wait for them.
 */
async function runBench(name: string, options: BenchOptions, body: (producer: Producer, client: RiffleClient, topic: string) => Promise<object>): Promise<void> {
  try {
    if (options.startNode && options.startCluster) throw new Error('--start-node and --start-cluster exclude each other');
    if (!(options.runs >= 1)) throw new Error(`--runs must be at least 1, not ${options.runs}`);
    if (options.runs > 1 && options.topic !== undefined) throw new Error('--runs needs a new topic for each run: leave out --topic');
    if (options.floor) checkFloorOptions(options);
    const runs: BenchRun[] = [];
    for (let run = 0; run < options.runs; run++) {
      const measured = await measureOnce(options, body);
      // After the run's cluster has stopped, so the two never share the machine.
      if (options.floor) measured.result = withFloor(measured.result, await measureGrpcFloor(floorSettings(options)));
      runs.push(measured);
    }
    const header = {
      benchmark: name, cluster: options.startCluster ? 'three nodes, RF 3' : options.startNode ? 'one node' : options.bootstrap,
    };
    const settings = {
      records: options.records, warmupRecords: options.warmupRecords, rate: options.rate ?? 'unlimited', recordSizeBytes: options.recordSize, partitions: options.partitions,
      acks: options.acks, flushPolicy: options.flushPolicy, batchBytes: options.batchBytes, idlePartitions: options.idlePartitions,
    };
    if (runs.length === 1) {
      const [only] = runs;
      printJson({ ...header, topic: only!.topic, ...settings, ...only!.result, cpu: only!.cpu });
    } else {
      const figures = runs.map((run) => ({ ...run.result, cpu: run.cpu }));
      printJson({ ...header, ...settings, runs: runs.length, median: medianOfRuns(figures), each: runs.map((run, index) => ({ run: index + 1, topic: run.topic, ...figures[index] })) });
    }
  } catch (error) {
    reportError(name, error);
  }
}

interface BenchRun {
  topic: string;
  result: object;
  cpu: object;
}

function checkFloorOptions(options: BenchOptions): void {
  if (options.rate === undefined) throw new Error('--floor needs --rate: the floor is measured at the pace of the run');
  if (options.flushPolicy !== 'ack' && options.flushPolicy !== 'os') throw new Error(`--floor needs --flush-policy ack or os, not '${options.flushPolicy}'`);
}

function floorSettings(options: BenchOptions): FloorSettings {
  const seconds = Math.max(1, Math.ceil(options.records / options.rate!));
  return {
    rate: options.rate!, seconds, warmupSeconds: Math.min(FLOOR_WARMUP_SECONDS_DEFAULT, seconds), recordSize: options.recordSize,
    lingerMs: options.lingerMs, batchBytes: options.batchBytes, flush: options.flushPolicy,
  };
}

/**
 * A run's result with the floor measured after it, and the run's latency over the floor's: how
 * far above what the machine allowed at that moment the run was (the host's own spells move both).
 */
export function withFloor(result: object, floor: FloorRun): object {
  const measured = result as { produce?: { latencyMs?: LatencyFigures }; endToEnd?: { latencyMs?: LatencyFigures } };
  const latency = measured.endToEnd?.latencyMs ?? measured.produce?.latencyMs;
  if (!latency) throw new Error('--floor needs a run that measures latency');
  const ratio = (run: number, base: number): number => Math.round((run / base) * 100) / 100;
  return {
    ...result,
    floor: { latencyMs: { p50: floor.latencyMs.p50, p99: floor.latencyMs.p99, p999: floor.latencyMs.p999 }, cpu: { relayCores: floor.cpu.relayCores, microsecondsPerRecord: floor.cpu.microsecondsPerRecord } },
    latencyOverFloor: { p50: ratio(latency.p50, floor.latencyMs.p50), p99: ratio(latency.p99, floor.latencyMs.p99) },
  };
}

interface LatencyFigures {
  p50: number;
  p99: number;
}

/** One measurement against the cluster the options name (started for it, and stopped, with --start-*). */
async function measureOnce(options: BenchOptions, body: (producer: Producer, client: RiffleClient, topic: string) => Promise<object>): Promise<BenchRun> {
  let node: NodeProcess | undefined;
  let cluster: BenchCluster | undefined;
  let dataDir: string | undefined;
  try {
    let bootstrap = options.bootstrap;
    if (options.startCluster) {
      cluster = await BenchCluster.start(3, { subnet: CLUSTER_SUBNET, extraArgs: ['--default-replication-factor', '3'] });
      bootstrap = cluster.bootstrap;
    } else if (options.startNode) {
      dataDir = mkdtempSync(path.join(os.tmpdir(), 'riffle-bench-'));
      const host = '127.0.0.1';
      node = new NodeProcess({ nodeId: 1, dataDir, host, grpcPort: await freePort(host), controllerPort: await freePort(host), httpPort: await freePort(host), extraArgs: ['--log-level', 'warn'], stdio: 'stderr' });
      await node.waitReady();
      bootstrap = node.bootstrap;
    }
    const client = new RiffleClient({ bootstrap });
    const producer = new Producer(client, { acks: parseAcks(options.acks), batchBytesMax: options.batchBytes, lingerMs: options.lingerMs });
    try {
      const topic = options.topic ?? `bench-${Date.now()}`;
      await ensureTopic(client, topic, options);
      if (options.idlePartitions > 0) await createIdleTopic(client, `${topic}-idle`, options);
      await client.topicMetadata(topic);
      if (options.warmupRecords > 0) await benchProduce(producer, topic, { ...options, records: options.warmupRecords, rate: undefined, progress: false });
      const nodePids = new Map<number, number | undefined>();
      for (const [id, started] of cluster?.nodes ?? []) nodePids.set(id, started.child.pid);
      if (node) nodePids.set(1, node.child.pid);
      const cpuMeter = new CpuMeter(nodePids);
      const result = await body(producer, client, topic);
      return { topic, result, cpu: cpuMeter.stop(options.records) };
    } finally {
      await producer.close();
      client.close();
    }
  } finally {
    await node?.stop();
    await cluster?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * The runs' figures with every number replaced by its median over the runs (the lower middle one
 * of an even count: a figure that was measured, not an average of two); other values are kept
 * when every run agrees on them.
 */
export function medianOfRuns(runs: readonly unknown[]): unknown {
  const [first] = runs;
  if (typeof first === 'number') return runs.every((value) => typeof value === 'number') ? median(runs as number[]) : undefined;
  if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(first)) {
      const values = runs.map((run) => (run as Record<string, unknown> | null)?.[key]);
      const value = medianOfRuns(values);
      if (value !== undefined) out[key] = value;
    }
    return out;
  }
  return runs.every((value) => value === first) ? first : undefined;
}

/** Where --start-cluster puts its nodes (the other cluster benchmarks use other subnets). */
const CLUSTER_SUBNET = '127.0.35';

async function ensureTopic(client: RiffleClient, topic: string, options: BenchOptions): Promise<void> {
  try {
    await new Admin(client).createTopic({ name: topic, partitions: options.partitions, configs: { 'flush.policy': options.flushPolicy } });
  } catch (error) {
    if (!isRiffleError(error, 'TOPIC_ALREADY_EXISTS')) throw error;
  }
}

/** A topic nobody writes to, its partitions in sync and led before the run starts. */
async function createIdleTopic(client: RiffleClient, topic: string, options: BenchOptions): Promise<void> {
  const admin = new Admin(client);
  await admin.createTopic({ name: topic, partitions: options.idlePartitions, configs: { 'flush.policy': options.flushPolicy } });
  await waitForFullIsr(admin, topic);
}

function parseAcks(value: string): Acks {
  if (value === 'all' || value === '-1') return -1;
  if (value === '0' || value === '1') return Number(value) as Acks;
  throw new Error(`--acks must be 0, 1 or all, got '${value}'`);
}

function progressBar(enabled: boolean, total: number, label: string): SingleBar | undefined {
  if (!enabled || !process.stderr.isTTY) return undefined;
  const bar = new SingleBar({ format: `${label} [{bar}] {percentage}% | {value}/{total} records | {eta}s left`, stream: process.stderr }, Presets.shades_classic);
  bar.start(total, 0);
  return bar;
}

async function benchProduce(producer: Producer, topic: string, options: BenchOptions): Promise<object> {
  const value = Buffer.alloc(options.recordSize, 'x');
  const latenciesMs = new Float64Array(options.records);
  // Keep a bounded window of records outstanding, so latency measures the cluster, not a queue.
  const windowMax = Math.max(1_000, Math.floor(options.windowBytes / (options.recordSize + 32)));
  let outstanding = 0;
  let acknowledged = 0;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const bar = progressBar(options.progress, options.records, 'produce');
  // The sending loop sleeps while the window is full and wakes when half of it has drained, so
  // it does not pay a promise and a turn of the event loop for every acknowledged record.
  const lowWater = Math.floor(windowMax / 2);
  const wakeIfDrained = (): void => {
    if (outstanding <= lowWater && wake) {
      const resume = wake;
      wake = undefined;
      resume();
    }
  };

  const loopDelay = startLoopDelay();
  const started = performance.now();
  for (let index = 0; index < options.records && failure === undefined; index++) {
    if (options.rate !== undefined && index % PACE_STEP_RECORDS === 0) await pace(started, index, options.rate);
    if (outstanding >= windowMax) await new Promise<void>((resolve) => (wake = resolve));
    outstanding++;
    // The send time goes where the latency will, so the callback captures only the index. The
    // callback form of send() spares a promise per record, as a client this fast would.
    latenciesMs[index] = performance.now();
    producer.send({ topic, key: null, value }, (error) => {
      if (error) failure ??= error;
      else latenciesMs[index] = performance.now() - latenciesMs[index]!;
      outstanding--;
      if (++acknowledged % 50_000 === 0) bar?.update(acknowledged);
      wakeIfDrained();
    });
  }
  await producer.flush();
  const elapsedSeconds = (performance.now() - started) / 1000;
  bar?.stop();
  if (failure !== undefined) throw failure;
  const sorted = latenciesMs.sort();
  const quantile = (q: number): number => quantileOf(sorted, q);
  return {
    produce: {
      recordsPerSecond: Math.round(options.records / elapsedSeconds),
      megabytesPerSecond: round((options.records * options.recordSize) / elapsedSeconds / 1e6),
      elapsedSeconds: round(elapsedSeconds),
      latencyMs: { p50: quantile(0.5), p99: quantile(0.99), p999: quantile(0.999), max: round(sorted[sorted.length - 1]!) },
      clientEventLoopDelayMs: stopLoopDelay(loopDelay),
    },
  };
}

async function benchConsume(client: RiffleClient, topic: string, options: BenchOptions): Promise<object> {
  const consumer = new PartitionConsumer(client, { topic, from: 'earliest', maxWaitMs: 100, partitionMaxBytes: 1024 * 1024 });
  const bar = progressBar(options.progress, options.records, 'consume');
  let records = 0;
  let bytes = 0;
  const started = performance.now();
  const deadline = started + 600_000;
  while (records < options.records && performance.now() < deadline) {
    for (const record of await consumer.poll()) {
      records++;
      bytes += record.value?.length ?? 0;
    }
    bar?.update(records);
  }
  const elapsedSeconds = (performance.now() - started) / 1000;
  bar?.stop();
  return {
    recordsPerSecond: Math.round(records / elapsedSeconds),
    megabytesPerSecond: round(bytes / elapsedSeconds / 1e6),
    elapsedSeconds: round(elapsedSeconds),
    recordsRead: records,
  };
}

/**
 * Each record carries its send time (performance.now() of this process) in its first 8 bytes; a
 * consumer in the same process, started at the end of the topic, measures send-to-receipt.
 */
async function benchEndToEnd(producer: Producer, client: RiffleClient, topic: string, options: BenchOptions): Promise<object> {
  const rate = options.rate ?? 10_000;
  const consumer = new PartitionConsumer(client, { topic, from: 'latest', maxWaitMs: 100 });
  await consumer.poll();
  const latenciesMs = new Float64Array(options.records);
  let received = 0;
  let stopped = false;
  const consuming = (async () => {
    const deadline = performance.now() + 600_000;
    while (!stopped && received < options.records && performance.now() < deadline) {
      for (const record of await consumer.poll()) {
        if (received < options.records && record.value && record.value.length >= 8) latenciesMs[received++] = performance.now() - record.value.readDoubleLE(0);
      }
    }
  })();
  // Acknowledgements are counted, not collected: two million promises (and their results) kept
  // to the end grow the old space until a full collection stalls this process, consumer
  // included, and the stall shows up as end-to-end latency that the cluster never caused.
  let settled = 0;
  let failure: unknown;
  let allSettled: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (allSettled = resolve));
  const onSettled = (error: Error | null): void => {
    if (error) failure ??= error;
    if (++settled === options.records) allSettled();
  };
  const loopDelay = startLoopDelay();
  const started = performance.now();
  for (let index = 0; index < options.records && failure === undefined; index++) {
    if (index % PACE_STEP_RECORDS === 0) await pace(started, index, rate);
    // A slice of Node's shared pool, not an allocation of its own per record (the producer copies
    // the value into its batch at send).
    const value = Buffer.allocUnsafe(Math.max(8, options.recordSize)).fill('x', 8);
    value.writeDoubleLE(performance.now(), 0);
    producer.send({ topic, key: null, value }, onSettled);
  }
  if (failure === undefined) await done;
  if (failure !== undefined) {
    stopped = true;
    throw failure;
  }
  await Promise.race([consuming, new Promise((resolve) => setTimeout(resolve, 30_000))]);
  stopped = true;
  const sorted = latenciesMs.subarray(0, received).sort();
  const quantile = (q: number): number => quantileOf(sorted, q);
  return { rate, received, latencyMs: { p50: quantile(0.5), p99: quantile(0.99), p999: quantile(0.999), max: quantile(1) }, clientEventLoopDelayMs: stopLoopDelay(loopDelay) };
}

/** Resolution of the benchmark's own event-loop delay histogram. */
const LOOP_DELAY_RESOLUTION_MS = 5;

/**
 * The benchmark process's event-loop delay while it measures: latency the client adds by being
 * busy or descheduled, which the cluster never caused (on a small machine the client competes
 * with the brokers for the same cores).
 */
function startLoopDelay(): IntervalHistogram {
  const histogram = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
  histogram.enable();
  return histogram;
}

/** Delays beyond the sampling interval, in ms. */
function stopLoopDelay(histogram: IntervalHistogram): { p50: number; p99: number; max: number } {
  histogram.disable();
  const beyondInterval = (nanoseconds: number): number => round(Math.max(0, nanoseconds / 1e6 - LOOP_DELAY_RESOLUTION_MS));
  return { p50: beyondInterval(histogram.percentile(50)), p99: beyondInterval(histogram.percentile(99)), max: beyondInterval(histogram.max) };
}

