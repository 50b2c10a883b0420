// `riffle bench floor` (npm run bench:floor): the latency this machine allows an acks=all produce
// with flush policy `ack` when nothing but the critical path runs, a reference for the figures of
// `bench produce`. Three relay processes (127.0.39.1-3, each a fork of this CLI with the broker
// nodes' heap flags) stand in for the brokers and do only what a produce must wait for: the
// partition's leader writes the batch to a file and starts its fdatasync, forwards the batch to
// both other relays, which write and fdatasync it and answer, and answers the client once all
// three copies are durable (the high watermark of a three-replica ISR). The client in this
// process makes records and batches the way the SDK and `bench produce --rate` do: 500-record
// pacing steps, a batch sealed after --linger-ms or at --batch-bytes, the next partition (of 8,
// led round robin) after each seal. No broker logic runs: no record format, validation, offsets,
// indexes, replica fetch protocol, metrics or metadata. `--transport grpc` carries the messages
// on grpc-js bidirectional streams with the channel and server options and widened HTTP/2
// windows of Riffle's own RPC layer (bytes only, no protobuf), `tcp` on plain length-prefixed
// TCP; by default both run, one after the other. Latency is per record from its send to the
// acknowledgement of its batch, after --warmup-seconds unmeasured at the same pace. --work-us
// makes each relay spend that much CPU on every batch it receives (a busy loop), to see what a
// broker's own work on the path costs in latency.
import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, fdatasync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Command } from 'commander';
import { channelOptions } from '../rpc/client.js';
import { bindServer, serverOptions, shutdownServer } from '../rpc/server.js';
import { CpuMeter, PACE_STEP_RECORDS, pace, quantileOf, round } from './bench-cluster.js';
import { SERVER_NODE_FLAGS } from './node-process.js';
import { parseIntegerOption, printJson, reportError } from './output.js';

const SUBNET = '127.0.39';
const PORT = 19_950;
const RELAYS = 3;
const PARTITIONS = 8;
/** Every message starts with the batch id (float64) and the partition (uint32). */
const HEADER_BYTES = 12;
const MESSAGE_BYTES_MAX = 64 * 1024 * 1024;
const START_TIMEOUT_MS = 30_000;
/** Unmeasured seconds at the run's pace before a floor measures (JIT and connections warm). */
export const FLOOR_WARMUP_SECONDS_DEFAULT = 3;

type Transport = 'tcp' | 'grpc';
type Flush = 'ack' | 'os';

/** The pace and batching of a floor run (what `bench produce --floor` carries over from its run). */
export interface FloorSettings {
  rate: number;
  seconds: number;
  warmupSeconds: number;
  recordSize: number;
  lingerMs: number;
  batchBytes: number;
  flush: string;
}

interface FloorOptions extends FloorSettings {
  transport: string;
  workUs: number;
}

/** One ordered message channel to a peer, over either transport. */
interface Channel {
  send(message: Buffer): void;
  close(): void;
}

type OnMessage = (message: Buffer) => void;

export function registerFloorBench(bench: Command): void {
  bench
    .command('floor')
    .description('The latency of the acks=all, flush-on-ack critical path with no broker logic (three relay processes); prints JSON.')
    .option('--transport <transport>', 'tcp, grpc or both', 'both')
    .option('--rate <records-per-second>', 'records sent per second', parseIntegerOption, 100_000)
    .option('--seconds <n>', 'measured seconds', parseIntegerOption, 20)
    .option('--warmup-seconds <n>', 'unmeasured seconds first, at the same pace', parseIntegerOption, FLOOR_WARMUP_SECONDS_DEFAULT)
    .option('--record-size <bytes>', 'bytes of each record', parseIntegerOption, 100)
    .option('--linger-ms <ms>', 'how long a batch waits for more records', parseIntegerOption, 5)
    .option('--batch-bytes <bytes>', 'a batch is sealed at this size', parseIntegerOption, 256 * 1024)
    .option('--flush <flush>', 'ack (fdatasync before answering) or os', 'ack')
    .option('--work-us <us>', 'CPU each relay spends on each batch it receives (a busy loop; stands in for a broker\'s own work)', parseIntegerOption, 0)
    .action(async (options: FloorOptions) => {
      try {
        const transports: Transport[] = options.transport === 'both' ? ['tcp', 'grpc'] : [parseTransport(options.transport)];
        const flush = parseFlush(options.flush);
        const runs = [];
        for (const transport of transports) runs.push(await measure(transport, flush, options));
        printJson({
          benchmark: 'bench floor',
          relays: RELAYS,
          partitions: PARTITIONS,
          rate: options.rate,
          recordSizeBytes: options.recordSize,
          lingerMs: options.lingerMs,
          batchBytes: options.batchBytes,
          flush,
          workMicrosecondsPerBatch: options.workUs,
          runs,
        });
      } catch (error) {
        reportError('bench floor', error);
      }
    });
  bench
    .command('floor-relay', { hidden: true })
    .requiredOption('--id <n>', 'relay id, 1-3', parseIntegerOption)
    .requiredOption('--transport <transport>')
    .requiredOption('--flush <flush>')
    .option('--work-us <us>', 'CPU spent on each batch received', parseIntegerOption, 0)
    .action((options: { id: number; transport: string; flush: string; workUs: number }) => {
      runRelay(options.id, parseTransport(options.transport), parseFlush(options.flush), options.workUs).catch((error: unknown) => {
        reportError('bench floor-relay', error);
        process.exit(1);
      });
    });
}

function parseTransport(value: string): Transport {
  if (value === 'tcp' || value === 'grpc') return value;
  throw new Error(`--transport must be tcp, grpc or both, not '${value}'`);
}

function parseFlush(value: string): Flush {
  if (value === 'ack' || value === 'os') return value;
  throw new Error(`--flush must be ack or os, not '${value}'`);
}

function relayHost(id: number): string {
  return `${SUBNET}.${id}`;
}

function header(id: number, partition: number): Buffer {
  const buffer = Buffer.allocUnsafe(HEADER_BYTES);
  buffer.writeDoubleBE(id, 0);
  buffer.writeUInt32BE(partition, 8);
  return buffer;
}

// --- transports ---------------------------------------------------------------------------

/** Splits a TCP byte stream into its length-prefixed messages. */
function readFrames(socket: net.Socket, onMessage: OnMessage): void {
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 4) {
      const length = pending.readUInt32BE(0);
      if (pending.length < 4 + length) break;
      onMessage(pending.subarray(4, 4 + length));
      pending = pending.subarray(4 + length);
    }
  });
}

function tcpChannel(socket: net.Socket): Channel {
  return {
    send(message) {
      const length = Buffer.allocUnsafe(4);
      length.writeUInt32BE(message.length, 0);
      socket.cork();
      socket.write(length);
      socket.write(message);
      socket.uncork();
    },
    close: () => socket.destroy(),
  };
}

const identity = (buffer: Buffer): Buffer => buffer;
const FLOOR_SERVICE: grpc.ServiceDefinition = {
  Relay: {
    path: '/riffle.bench.Floor/Relay',
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
    originalName: 'relay',
  },
};
const FloorClient = grpc.makeGenericClientConstructor(FLOOR_SERVICE, 'Floor');

/** Opens a channel to relay `id`; its answers go to onMessage. */
async function connect(transport: Transport, id: number, onMessage: OnMessage): Promise<Channel> {
  if (transport === 'tcp') {
    const socket = net.connect({ host: relayHost(id), port: PORT, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    readFrames(socket, onMessage);
    return tcpChannel(socket);
  }
  const client = new FloorClient(`${relayHost(id)}:${PORT}`, grpc.credentials.createInsecure(), channelOptions());
  await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + START_TIMEOUT_MS, (error) => (error ? reject(error) : resolve())));
  const stream = (client as unknown as { Relay(): grpc.ClientDuplexStream<Buffer, Buffer> }).Relay();
  stream.on('data', onMessage);
  stream.on('error', () => undefined);
  return {
    send: (message) => void stream.write(message),
    close: () => {
      stream.cancel();
      client.close();
    },
  };
}

/** Serves incoming channels on this relay's address; `accept` gets each one's sender. */
async function listen(transport: Transport, id: number, accept: (reply: Channel) => OnMessage): Promise<() => Promise<void>> {
  if (transport === 'tcp') {
    const server = net.createServer({ noDelay: true }, (socket) => readFrames(socket, accept(tcpChannel(socket))));
    server.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(PORT, relayHost(id), resolve);
    });
    return () => new Promise((resolve) => server.close(() => resolve()));
  }
  const server = new grpc.Server(serverOptions(MESSAGE_BYTES_MAX));
  server.addService(FLOOR_SERVICE, {
    Relay: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      const onMessage = accept({ send: (message) => void call.write(message), close: () => call.end() });
      call.on('data', onMessage);
      call.on('error', () => undefined);
      call.on('end', () => call.end());
    },
  });
  await bindServer(server, relayHost(id), PORT);
  return () => shutdownServer(server, 1_000);
}

// --- relay (a child process) ---------------------------------------------------------------

/**
 * A relay: the first message on an incoming channel says whether it comes from the client
 * ("produce": lead the batch) or from another relay ("replica": keep a copy and answer).
 */
async function runRelay(id: number, transport: Transport, flush: Flush, workUs: number): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `riffle-bench-floor-${id}-`));
  const files = new Map<number, { fd: number; position: number }>();
  /** Writes the batch to its partition's file; `durable` runs once the policy counts it durable. */
  const write = (partition: number, body: Buffer, durable: () => void): void => {
    let file = files.get(partition);
    if (!file) files.set(partition, (file = { fd: openSync(path.join(dir, `${partition}.log`), 'w'), position: 0 }));
    let written = 0;
    while (written < body.length) written += writeSync(file.fd, body, written, body.length - written, file.position + written);
    file.position += body.length;
    if (flush === 'os') durable();
    else
      fdatasync(file.fd, (error) => {
        if (!error) return durable();
        reportError('bench floor-relay', error);
        process.exit(1);
      });
  };
  const peers: Channel[] = [];
  /** Batches led here that wait for copies: batch id -> what is still missing. */
  const waiting = new Map<number, { missing: number; answer: () => void }>();
  const copied = (batchId: number): void => {
    const entry = waiting.get(batchId);
    if (!entry || --entry.missing > 0) return;
    waiting.delete(batchId);
    entry.answer();
  };
  const stop = await listen(transport, id, (reply) => {
    let role: string | undefined;
    return (message) => {
      if (role === undefined) {
        role = message.toString();
        return;
      }
      busyFor(workUs);
      const batchId = message.readDoubleBE(0);
      const partition = message.readUInt32BE(8);
      const body = message.subarray(HEADER_BYTES);
      if (role === 'replica') {
        write(partition, body, () => reply.send(header(batchId, partition)));
        return;
      }
      waiting.set(batchId, { missing: 1 + peers.length, answer: () => reply.send(header(batchId, partition)) });
      write(partition, body, () => copied(batchId));
      for (const peer of peers) peer.send(message);
    };
  });
  process.on('message', (command: unknown) => {
    if (command === 'connect') {
      void (async () => {
        for (let peer = 1; peer <= RELAYS; peer++) {
          if (peer === id) continue;
          const channel = await connect(transport, peer, (answer) => copied(answer.readDoubleBE(0)));
          channel.send(Buffer.from('replica'));
          peers.push(channel);
        }
        process.send?.('connected');
      })();
    } else if (command === 'stop') {
      for (const peer of peers) peer.close();
      void stop().finally(() => {
        for (const file of files.values()) closeSync(file.fd);
        rmSync(dir, { recursive: true, force: true });
        process.exit(0);
      });
    }
  });
  process.send?.('listening');
}

/** Keeps the CPU busy for `microseconds`, as a broker's own work on a batch would. */
function busyFor(microseconds: number): void {
  if (microseconds <= 0) return;
  const until = performance.now() + microseconds / 1000;
  while (performance.now() < until);
}

// --- client (this process) -----------------------------------------------------------------

function startRelay(id: number, transport: Transport, flush: Flush, workUs: number): ChildProcess {
  const script = process.argv[1];
  if (!script) throw new Error('cannot tell which script to fork for the relays');
  return fork(script, ['bench', 'floor-relay', '--id', String(id), '--transport', transport, '--flush', flush, '--work-us', String(workUs)], {
    execArgv: SERVER_NODE_FLAGS,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
}

function nextMessage(child: ChildProcess, expected: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`relay ${child.pid} did not say '${expected}' in time`)), START_TIMEOUT_MS);
    const onExit = (): void => reject(new Error(`relay ${child.pid} exited before saying '${expected}'`));
    child.once('exit', onExit);
    child.once('message', (message) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      if (message === expected) resolve();
      else reject(new Error(`relay ${child.pid} said '${String(message)}', expected '${expected}'`));
    });
  });
}

interface Batch {
  id: number;
  partition: number;
  records: Buffer[];
  /** Where the send times of its records begin in `sentAt` (one per record, in order). */
  first: number;
  timer?: NodeJS.Timeout;
}

/** The floor's figures over one transport, as `bench floor` prints each run. */
export interface FloorRun {
  transport: Transport;
  records: number;
  recordsPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number };
  cpu: { clientCores: number; relayCores: Record<string, number>; microsecondsPerRecord: number };
}

/** One floor measurement over grpc-js (Riffle's transport) with no relay work, for a benchmark to set its figures against. */
export function measureGrpcFloor(settings: FloorSettings): Promise<FloorRun> {
  return measure('grpc', parseFlush(settings.flush), { ...settings, transport: 'grpc', workUs: 0 });
}

async function measure(transport: Transport, flush: Flush, options: FloorOptions): Promise<FloorRun> {
  const relays = new Map<number, ChildProcess>();
  const channels: Channel[] = [];
  try {
    for (let id = 1; id <= RELAYS; id++) relays.set(id, startRelay(id, transport, flush, options.workUs));
    await Promise.all([...relays.values()].map((child) => nextMessage(child, 'listening')));
    for (const child of relays.values()) child.send('connect');
    await Promise.all([...relays.values()].map((child) => nextMessage(child, 'connected')));

    const warmupRecords = options.rate * options.warmupSeconds;
    const totalRecords = warmupRecords + options.rate * options.seconds;
    const sentAt = new Float64Array(totalRecords);
    const latencies = new Float64Array(totalRecords - warmupRecords);
    const inFlight = new Map<number, Batch>();
    let acknowledged = 0;
    let allAcknowledged: (() => void) | undefined;
    const onAnswer = (message: Buffer): void => {
      const now = performance.now();
      const batch = inFlight.get(message.readDoubleBE(0));
      if (!batch) return;
      inFlight.delete(batch.id);
      for (let index = batch.first; index < batch.first + batch.records.length; index++) {
        if (index >= warmupRecords) latencies[index - warmupRecords] = now - sentAt[index]!;
      }
      acknowledged += batch.records.length;
      if (acknowledged === totalRecords) allAcknowledged?.();
    };
    for (let id = 1; id <= RELAYS; id++) {
      const channel = await connect(transport, id, onAnswer);
      channel.send(Buffer.from('produce'));
      channels.push(channel);
    }

    const record = Buffer.alloc(options.recordSize, 0x61);
    let nextBatchId = 1;
    let partition = 0;
    let open: Batch | undefined;
    let openBytes = 0;
    const seal = (): void => {
      const batch = open!;
      open = undefined;
      clearTimeout(batch.timer);
      inFlight.set(batch.id, batch);
      channels[batch.partition % RELAYS]!.send(Buffer.concat([header(batch.id, batch.partition), ...batch.records]));
      partition = (partition + 1) % PARTITIONS;
    };
    const relayPids = new Map([...relays].map(([id, child]) => [id, child.pid]));
    let meter: CpuMeter | undefined;
    let measuredFrom = 0;
    const started = performance.now();
    const done = new Promise<void>((resolve) => (allAcknowledged = resolve));
    for (let index = 0; index < totalRecords; index++) {
      if (index === warmupRecords) {
        meter = new CpuMeter(relayPids);
        measuredFrom = performance.now();
      }
      if (index % PACE_STEP_RECORDS === 0) await pace(started, index, options.rate);
      if (open && openBytes + record.length > options.batchBytes) seal();
      if (!open) {
        open = { id: nextBatchId++, partition, records: [], first: index };
        open.timer = setTimeout(seal, options.lingerMs);
        openBytes = 0;
      }
      sentAt[index] = performance.now();
      open.records.push(record);
      openBytes += record.length;
    }
    if (open) seal();
    const deadline = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('acknowledgements did not arrive within 60 s')), 60_000).unref());
    await Promise.race([done, deadline]);
    const cpu = meter!.stop(totalRecords - warmupRecords);
    const elapsedSeconds = (performance.now() - measuredFrom) / 1000;
    latencies.sort();
    const quantile = (q: number): number => quantileOf(latencies, q);
    return {
      transport,
      records: latencies.length,
      recordsPerSecond: Math.round(latencies.length / elapsedSeconds),
      latencyMs: { p50: quantile(0.5), p90: quantile(0.9), p99: quantile(0.99), p999: quantile(0.999), max: round(latencies[latencies.length - 1]!) },
      cpu: { clientCores: cpu.clientCores, relayCores: cpu.nodeCores, microsecondsPerRecord: cpu.microsecondsPerRecord },
    };
  } finally {
    for (const channel of channels) channel.close();
    await Promise.all(
      [...relays.values()].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
            child.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            child.send('stop');
          }),
      ),
    );
  }
}
