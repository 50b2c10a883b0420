// Micro benchmark of the partition log alone (no network): append with flush policy `os` and
// `ack` (concurrent appenders sharing fdatasyncs through group commit), sequential reads, and a
// leader election over many logs (how long a new epoch on each blocks the event loop, and how long
// until the epoch checkpoints are durable), and the creation of many new logs at once, as a broker
// does for a new topic's replicas (how much of it runs on the event loop). Prints one JSON object. Usage: npm run bench:log -- [records=2000000] [recordBytes=100] [batchRecords=1000]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { encodeRecordBatch, iterateBatches } from '../../src/util/record-batch.js';
import { DEFAULT_LOG_CONFIG, PartitionLog, type FlushPolicy } from './index.js';

/** Appends in flight at once in the `ack` run, like that many producers waiting for their acks. */
const ACK_IN_FLIGHT_MAX = 16;
const READ_MAX_BYTES = 1024 * 1024;
/** Logs that change leader at once in the epoch run, like a broker taking over from a dead one. */
const EPOCH_LOGS = 300;
const EPOCH_ROUNDS = 3;
/** New logs opened in the creation run, and how many at once (ReplicaManager's metadata sync opens 16 at a time). */
const CREATE_LOGS = 300;
const CREATE_CONCURRENCY = 16;

interface Rate {
  records: number;
  seconds: number;
  recordsPerSecond: number;
  megabytesPerSecond: number;
}

function rate(records: number, bytes: number, seconds: number): Rate {
  return { records, seconds: Number(seconds.toFixed(3)), recordsPerSecond: Math.round(records / seconds), megabytesPerSecond: Number((bytes / seconds / 1e6).toFixed(1)) };
}

/** The middle of `values` (the upper one of an even count), rounded. */
function median(values: number[]): number {
  return Math.round([...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!);
}

function makeBatches(count: number, batchRecords: number, recordBytes: number): Buffer[] {
  const value = Buffer.alloc(recordBytes, 0x61);
  return Array.from({ length: count }, () => encodeRecordBatch(Array.from({ length: batchRecords }, () => ({ key: null, value }))));
}

async function openFresh(dir: string, flushPolicy: FlushPolicy): Promise<PartitionLog> {
  fs.rmSync(dir, { recursive: true, force: true });
  return PartitionLog.open({ dir, topic: 'bench', partition: 0, config: { ...DEFAULT_LOG_CONFIG, segmentBytes: 256 * 1024 * 1024, flushPolicy } });
}

async function benchAppend(dir: string, flushPolicy: FlushPolicy, batches: Buffer[], rounds: number, batchRecords: number): Promise<Rate> {
  const log = await openFresh(dir, flushPolicy);
  const started = performance.now();
  let bytes = 0;
  const inFlight = new Set<Promise<void>>();
  for (let round = 0; round < rounds; round++) {
    const batch = batches[round % batches.length]!;
    const info = log.append(batch, 0);
    bytes += batch.length;
    const durable = log.waitDurable(info.lastOffset + 1);
    inFlight.add(durable);
    void durable.then(() => inFlight.delete(durable));
    if (inFlight.size >= ACK_IN_FLIGHT_MAX) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  const seconds = (performance.now() - started) / 1000;
  await log.close();
  return rate(rounds * batchRecords, bytes, seconds);
}

async function benchRead(dir: string): Promise<Rate> {
  const log = await PartitionLog.open({ dir, topic: 'bench', partition: 0, config: { ...DEFAULT_LOG_CONFIG, segmentBytes: 256 * 1024 * 1024, flushPolicy: 'os' } });
  const started = performance.now();
  let records = 0;
  let bytes = 0;
  for (let offset = log.logStartOffset; offset < log.logEndOffset; ) {
    const read = log.read(offset, READ_MAX_BYTES);
    for (const { header } of iterateBatches(read.records)) records += header.recordsCount;
    bytes += read.records.length;
    offset = read.nextOffset;
  }
  const seconds = (performance.now() - started) / 1000;
  await log.close();
  return rate(records, bytes, seconds);
}

/**
 * Begins a new leader epoch on each of EPOCH_LOGS logs, as a broker does for every partition it
 * takes over, then flushes them all: the synchronous part is time the broker's event loop serves
 * nobody; the rest runs on the thread pool. Medians over EPOCH_ROUNDS rounds.
 */
async function benchEpochChange(root: string): Promise<{ logs: number; eventLoopBlockedMs: number; durableAfterMs: number }> {
  const logs: PartitionLog[] = [];
  for (let index = 0; index < EPOCH_LOGS; index++) {
    logs.push(await PartitionLog.open({ dir: path.join(root, `epochs-${index}`), topic: 'epochs', partition: index, config: { ...DEFAULT_LOG_CONFIG, flushPolicy: 'ack' } }));
  }
  const blocked: number[] = [];
  const durable: number[] = [];
  try {
    for (let epoch = 0; epoch <= EPOCH_ROUNDS; epoch++) {
      const started = performance.now();
      for (const log of logs) log.beginLeaderEpoch(epoch);
      const returned = performance.now();
      await Promise.all(logs.map((log) => log.flush()));
      // Epoch 0 creates the checkpoint files: a warm-up, not measured.
      if (epoch === 0) continue;
      blocked.push(returned - started);
      durable.push(performance.now() - returned);
    }
  } finally {
    for (const log of logs) await log.close();
  }
  return { logs: EPOCH_LOGS, eventLoopBlockedMs: median(blocked), durableAfterMs: median(durable) };
}

/**
 * Opens CREATE_LOGS new logs, CREATE_CONCURRENCY at a time, and begins each one's first leader
 * epoch, as a broker does for the replicas of a new topic. The event loop's active time (event
 * loop utilization) is what it could not serve anything else, and its longest stall what a
 * request arriving meanwhile could have waited; the rest ran on the thread pool. Medians over
 * EPOCH_ROUNDS rounds, each in a new directory.
 */
async function benchCreate(root: string): Promise<{ logs: number; concurrency: number; eventLoopActiveMs: number; longestStallMs: number; elapsedMs: number }> {
  const active: number[] = [];
  const stalls: number[] = [];
  const elapsed: number[] = [];
  for (let round = 0; round < EPOCH_ROUNDS; round++) {
    const dir = path.join(root, `create-${round}`);
    const logs: PartitionLog[] = [];
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    const before = performance.eventLoopUtilization();
    const started = performance.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < CREATE_LOGS) {
        const index = next++;
        const log = await PartitionLog.open({ dir: path.join(dir, `created-${index}`), topic: 'created', partition: index, config: { ...DEFAULT_LOG_CONFIG, flushPolicy: 'ack' } });
        log.beginLeaderEpoch(0);
        logs.push(log);
      }
    };
    await Promise.all(Array.from({ length: CREATE_CONCURRENCY }, worker));
    await Promise.all(logs.map((log) => log.flush()));
    elapsed.push(performance.now() - started);
    active.push(performance.eventLoopUtilization(before).active);
    delay.disable();
    stalls.push(delay.max / 1e6);
    for (const log of logs) await log.close();
  }
  return { logs: CREATE_LOGS, concurrency: CREATE_CONCURRENCY, eventLoopActiveMs: median(active), longestStallMs: median(stalls), elapsedMs: median(elapsed) };
}

async function main(): Promise<void> {
  const [records = 2_000_000, recordBytes = 100, batchRecords = 1000] = process.argv.slice(2).map(Number);
  const rounds = Math.ceil(records / batchRecords);
  const batches = makeBatches(Math.min(rounds, 64), batchRecords, recordBytes);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'riffle-bench-log-'));
  try {
    const dir = path.join(root, 'bench-0');
    const appendOs = await benchAppend(dir, 'os', batches, rounds, batchRecords);
    const read = await benchRead(dir);
    const appendAck = await benchAppend(dir, 'ack', batches, rounds, batchRecords);
    const epochChange = await benchEpochChange(root);
    const create = await benchCreate(root);
    const result = {
      benchmark: 'partition-log',
      recordBytes,
      batchRecords,
      batchBytes: batches[0]!.length,
      appendOs,
      appendAck: { ...appendAck, inFlight: ACK_IN_FLIGHT_MAX, ratioToOs: Number((appendAck.recordsPerSecond / appendOs.recordsPerSecond).toFixed(2)) },
      read: { ...read, maxBytes: READ_MAX_BYTES },
      epochChange,
      create,
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

await main();
