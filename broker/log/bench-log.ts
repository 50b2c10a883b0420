// Micro benchmark of the partition log alone (no network): append with flush policy `os` and
// `ack` (concurrent appenders sharing fdatasyncs through group commit) and sequential reads.
// Prints one JSON object. Usage: npm run bench:log -- [records=2000000] [recordBytes=100] [batchRecords=1000]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeRecordBatch, iterateBatches } from '../../src/util/record-batch.js';
import { DEFAULT_LOG_CONFIG, PartitionLog, type FlushPolicy } from './index.js';

/** Appends in flight at once in the `ack` run, like that many producers waiting for their acks. */
const ACK_IN_FLIGHT_MAX = 16;
const READ_MAX_BYTES = 1024 * 1024;

interface Rate {
  records: number;
  seconds: number;
  recordsPerSecond: number;
  megabytesPerSecond: number;
}

function rate(records: number, bytes: number, seconds: number): Rate {
  return { records, seconds: Number(seconds.toFixed(3)), recordsPerSecond: Math.round(records / seconds), megabytesPerSecond: Number((bytes / seconds / 1e6).toFixed(1)) };
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
    const result = {
      benchmark: 'partition-log',
      recordBytes,
      batchRecords,
      batchBytes: batches[0]!.length,
      appendOs,
      appendAck: { ...appendAck, inFlight: ACK_IN_FLIGHT_MAX, ratioToOs: Number((appendAck.recordsPerSecond / appendOs.recordsPerSecond).toFixed(2)) },
      read: { ...read, maxBytes: READ_MAX_BYTES },
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

await main();
