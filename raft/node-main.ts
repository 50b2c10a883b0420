// A stand-alone Raft node process for the real-process test and the benchmark: classic-level
// storage, the gRPC transport, and a key-value register state machine, controlled over a small
// HTTP/JSON interface. It is test equipment, not the Riffle server (that is src/cli).
//   node dist/raft/node-main.js --id 1 --voters 1@127.0.2.1:17400,2@127.0.2.2:17400,... \
//     --http 127.0.2.1:17401 --data-dir DIR [--tick-ms 50 --heartbeat-ms 100
//     --election-min-ms 1000 --election-max-ms 2000 --snapshot-every 10000]
// HTTP: GET /status; GET /metrics; POST /put {key,value}; POST /get {key}; POST /transfer {to};
//       POST /bench {count, payloadBytes, ratePerSec (0: as fast as possible), windowMax}.
import http from 'node:http';
import { createLogger } from '../src/util/logger.js';
import { createNodeRegistry } from '../src/metrics/index.js';
import { isRiffleError } from '../src/rpc/errors.js';
import { KvStateMachine, encodeKvCommand } from './kv-state-machine.js';
import { LevelStorage } from './level-storage.js';
import { RaftNode } from './raft-node.js';
import { GrpcTransport } from './transport.js';
import type { NodeId } from './types.js';

/** Request bodies larger than this are refused. */
const HTTP_BODY_BYTES_MAX = 1024 * 1024;
/** One /bench call proposes at most this many entries. */
const BENCH_COUNT_MAX = 5_000_000;

interface Args {
  id: NodeId;
  voters: Map<NodeId, string>;
  http: string;
  dataDir: string;
  timing: { tickMs?: number; heartbeatMs?: number; electionMinMs?: number; electionMaxMs?: number };
  snapshotEvery: number;
}

function parseArgs(argv: readonly string[]): Args {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) flags.set(argv[i]!.replace(/^--/, ''), argv[i + 1] ?? '');
  const required = (name: string): string => {
    const value = flags.get(name);
    if (!value) throw new RangeError(`--${name} is required`);
    return value;
  };
  const voters = new Map<NodeId, string>();
  for (const part of required('voters').split(',')) {
    const [id, address] = part.split('@');
    voters.set(Number(id), address!);
  }
  const optional = (name: string): number | undefined => (flags.has(name) ? Number(flags.get(name)) : undefined);
  return {
    id: Number(required('id')), voters, http: required('http'), dataDir: required('data-dir'),
    timing: { tickMs: optional('tick-ms'), heartbeatMs: optional('heartbeat-ms'), electionMinMs: optional('election-min-ms'), electionMaxMs: optional('election-max-ms') },
    snapshotEvery: optional('snapshot-every') ?? 10_000,
  };
}

function splitHostPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
}

async function readJson(request: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of request) {
    bytes += (chunk as Buffer).length;
    if (bytes > HTTP_BODY_BYTES_MAX) throw new RangeError('request body too large');
    chunks.push(chunk as Buffer);
  }
  return bytes === 0 ? {} : (JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>);
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** Proposes `count` entries of `payloadBytes` from inside this (leader) process. */
async function runBench(node: RaftNode, body: Record<string, unknown>): Promise<Record<string, number>> {
  const count = Math.min(Number(body.count ?? 10_000), BENCH_COUNT_MAX);
  const payloadBytes = Number(body.payloadBytes ?? 100);
  const ratePerSec = Number(body.ratePerSec ?? 0);
  const windowMax = Number(body.windowMax ?? 5_000);
  // The JSON command ["bench","xxx..."] is exactly payloadBytes long.
  const data = encodeKvCommand({ key: 'bench', value: 'x'.repeat(Math.max(0, payloadBytes - 12)) });
  const latencies = new Float64Array(count);
  let issued = 0;
  let completed = 0;
  let failed = 0;
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const issue = (): void => {
      const target = ratePerSec > 0 ? Math.min(count, Math.floor(((performance.now() - started) / 1000) * ratePerSec) + 1) : count;
      while (issued < target && issued - completed - failed < windowMax) {
        const at = performance.now();
        const slot = issued++;
        node.propose(data).then(
          () => { latencies[slot] = performance.now() - at; completed++; },
          () => { latencies[slot] = NaN; failed++; },
        ).finally(() => { if (completed + failed === count) resolve(); });
      }
      if (issued < count) setTimeout(issue, ratePerSec > 0 ? 1 : 0);
    };
    issue();
  });
  const elapsedMs = performance.now() - started;
  const sorted = latencies.filter((v) => !Number.isNaN(v)).sort();
  return { committed: completed, failed, elapsedMs, throughputPerSec: (completed / elapsedMs) * 1000, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99) };
}

async function route(node: RaftNode, machine: KvStateMachine, request: http.IncomingMessage): Promise<unknown> {
  const body = request.method === 'POST' ? await readJson(request) : {};
  switch (request.url) {
    case '/status':
      return node.status();
    case '/put':
      await node.propose(encodeKvCommand({ key: String(body.key), value: String(body.value) }));
      return { ok: true };
    case '/get':
      await node.readBarrier();
      return { value: machine.get(String(body.key)) ?? null };
    case '/transfer':
      return { started: node.transferLeadership(Number(body.to)) };
    case '/bench':
      return runBench(node, body);
    default:
      throw new RangeError(`no route ${request.url}`);
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const logger = createLogger({ name: 'raft-node', nodeId: args.id });
  const peers = new Map([...args.voters].filter(([id]) => id !== args.id));
  let onDrop: (reason: string) => void = () => {};
  const transport = new GrpcTransport({ id: args.id, listen: args.voters.get(args.id)!, peers, logger, onDrop: (reason) => onDrop(reason) });
  const machine = new KvStateMachine();
  const storage = await LevelStorage.open(args.dataDir);
  const registry = createNodeRegistry({ nodeId: args.id });
  const node = new RaftNode({
    id: args.id, voters: [...args.voters.keys()], storage, stateMachine: machine, transport, logger, registry, timing: args.timing, snapshotEveryEntries: args.snapshotEvery,
    leaderHint: (leader) => args.voters.get(leader) ?? String(leader),
  });
  onDrop = (reason) => node.recordDrop(reason);
  await node.start();
  const server = http.createServer((request, response) => {
    if (request.url === '/metrics') {
      void registry.metrics().then((text) => { response.writeHead(200, { 'content-type': registry.contentType }); response.end(text); });
      return;
    }
    route(node, machine, request).then(
      (result) => { response.writeHead(200, { 'content-type': 'application/json' }); response.end(JSON.stringify(result)); },
      (error: unknown) => {
        const body = isRiffleError(error) ? { error: error.errorName, message: error.message, leaderHint: error.leaderHint } : { error: 'INTERNAL', message: String(error) };
        response.writeHead(isRiffleError(error) ? 409 : 500, { 'content-type': 'application/json' });
        response.end(JSON.stringify(body));
      },
    );
  });
  const { host, port } = splitHostPort(args.http);
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  logger.info(`raft node ${args.id} serving http on ${args.http}`);
  const shutdown = (): void => {
    server.close();
    void node.stop().finally(() => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
