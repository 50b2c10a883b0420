// A throwaway cluster for the cluster benchmarks: three combined controller+broker nodes on
// their own loopback addresses (127.0.5.1-3 unless a benchmark picks another subnet), AZs a, b,
// c, in a temporary data directory.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NodeProcess } from './node-process.js';
import type { Admin } from '../client/index.js';

const DEFAULT_SUBNET = '127.0.5';
const PORTS = { grpc: 19094, controller: 19093, http: 19644 };
const AZS = ['a', 'b', 'c'];

export class BenchCluster {
  readonly nodes = new Map<number, NodeProcess>();
  private readonly quorum: string;

  private constructor(readonly dataDir: string, private readonly size: number, private readonly subnet: string, private readonly extraArgs: string[]) {
    this.quorum = Array.from({ length: size }, (_, index) => `${index + 1}@${subnet}.${index + 1}:${PORTS.controller}`).join(',');
  }

  static async start(size = 3, options: { subnet?: string; extraArgs?: string[] } = {}): Promise<BenchCluster> {
    const cluster = new BenchCluster(mkdtempSync(path.join(os.tmpdir(), 'riffle-bench-cluster-')), size, options.subnet ?? DEFAULT_SUBNET, options.extraArgs ?? []);
    for (let id = 1; id <= size; id++) cluster.spawn(id);
    try {
      await Promise.all([...cluster.nodes.values()].map((node) => node.waitReady(60_000)));
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  get bootstrap(): string {
    return [...this.nodes.values()].map((node) => node.bootstrap).join(',');
  }

  /** Starts node `id` (again) with its address, ports and data directory. */
  spawn(id: number): NodeProcess {
    const node = new NodeProcess({
      nodeId: id, dataDir: path.join(this.dataDir, `node-${id}`), host: `${this.subnet}.${id}`, grpcPort: PORTS.grpc,
      controllerPort: PORTS.controller, httpPort: PORTS.http, az: AZS[(id - 1) % AZS.length],
      extraArgs: ['--log-level', 'warn', '--controller-quorum', this.quorum, ...this.extraArgs], stdio: 'stderr',
    });
    this.nodes.set(id, node);
    return node;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((node) => node.stop()));
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export function rssMegabytes(node: NodeProcess): number {
  const status = readFileSync(`/proc/${node.child.pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Math.round(Number(match[1]) / 1024) : -1;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** A paced benchmark run (`--rate`) sleeps in steps of this many records. */
export const PACE_STEP_RECORDS = 500;

/** Sleeps until record `index` is due at `rate` records per second from `startedMs`. */
export async function pace(startedMs: number, index: number, rate: number): Promise<void> {
  const dueMs = startedMs + (index / rate) * 1000;
  const waitMs = dueMs - performance.now();
  if (waitMs > 1) await new Promise((resolve) => setTimeout(resolve, waitMs));
}

/** A figure rounded to three decimals (microseconds, for milliseconds). */
export function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** The `q` quantile of ascending `sorted` (NaN when empty), rounded. */
export function quantileOf(sorted: ArrayLike<number>, q: number): number {
  return sorted.length === 0 ? NaN : round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
}

/** Linux's USER_HZ, the unit of the CPU times in /proc/<pid>/stat (100 on every Linux port). */
const CLOCK_TICKS_PER_SECOND = 100;

/** CPU seconds (user and system, all threads) process `pid` has used; undefined without /proc. */
export function cpuSecondsOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The fields after the command name, which may hold spaces: state, ppid, ... utime (14th), stime (15th).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/**
 * The CPU a measured phase costs: this process (the client) and each node process the benchmark
 * started, as average cores busy, and all of them together per record. Nodes it did not start
 * (a cluster given by --bootstrap) are not counted.
 */
export class CpuMeter {
  private readonly startedMs = performance.now();
  private readonly client = process.cpuUsage();
  private readonly nodes: Map<number, number>;

  constructor(private readonly pids: Map<number, number | undefined>) {
    this.nodes = new Map();
    for (const [id, pid] of pids) {
      const seconds = cpuSecondsOf(pid);
      if (seconds !== undefined) this.nodes.set(id, seconds);
    }
  }

  stop(records: number): { clientCores: number; nodeCores: Record<string, number>; microsecondsPerRecord: number } {
    const elapsedSeconds = (performance.now() - this.startedMs) / 1000;
    const client = process.cpuUsage(this.client);
    const clientSeconds = (client.user + client.system) / 1e6;
    let totalSeconds = clientSeconds;
    const nodeCores: Record<string, number> = {};
    for (const [id, before] of this.nodes) {
      const after = cpuSecondsOf(this.pids.get(id));
      if (after === undefined) continue;
      totalSeconds += after - before;
      nodeCores[String(id)] = round2((after - before) / elapsedSeconds);
    }
    return { clientCores: round2(clientSeconds / elapsedSeconds), nodeCores, microsecondsPerRecord: round2((totalSeconds * 1e6) / records) };
  }
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

/** Waits (at most a minute) until every partition of the topic has all its replicas in its ISR. */
export async function waitForFullIsr(admin: Admin, topic: string): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    const { partitions } = await admin.describeTopic(topic);
    if (partitions.every((partition) => partition.isrNodes.length === partition.replicaNodes.length)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${topic} never got its full ISR back`);
}
