// A throwaway cluster for the cluster benchmarks: three combined controller+broker nodes on
// their own loopback addresses (127.0.5.1-3 unless a benchmark picks another subnet), AZs a, b,
// c, in a temporary data directory.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NodeProcess } from './node-process.js';

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
