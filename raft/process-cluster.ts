// Starts and stops node-main.ts processes on loopback addresses, for the real-process test and
// the benchmark. Every wait has a deadline; every process started is killed on stop() and, as a
// last resort, when this process exits.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeId } from './types.js';

export interface NodeStatusView {
  readonly id: NodeId;
  readonly role: string;
  readonly term: number;
  readonly leader: NodeId;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
}

export interface ProcessClusterOptions {
  /** One loopback address per node, e.g. ['127.0.2.1', '127.0.2.2', '127.0.2.3']. */
  readonly hosts: readonly string[];
  readonly raftPort: number;
  readonly httpPort: number;
  readonly baseDir: string;
  readonly extraArgs?: readonly string[];
  /** Flags for node itself, e.g. ['--cpu-prof'] when profiling. */
  readonly nodeFlags?: readonly string[];
}

const HTTP_TIMEOUT_MS = 2_000;
const STOP_GRACE_MS = 3_000;
/** dist/raft/node-main.js beside this module once built. */
export const NODE_MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'node-main.js');

const everyChild = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of everyChild) child.kill('SIGKILL');
});

export class ProcessCluster {
  readonly ids: NodeId[];
  private readonly children = new Map<NodeId, ChildProcess>();

  constructor(private readonly options: ProcessClusterOptions, private readonly nodeMain = NODE_MAIN) {
    this.ids = options.hosts.map((_, i) => i + 1);
  }

  httpAddress(id: NodeId): string {
    return `${this.options.hosts[id - 1]}:${this.options.httpPort}`;
  }

  isRunning(id: NodeId): boolean {
    return this.children.has(id);
  }

  start(id: NodeId): void {
    if (this.children.has(id)) return;
    const voters = this.ids.map((v) => `${v}@${this.options.hosts[v - 1]}:${this.options.raftPort}`).join(',');
    const dataDir = path.join(this.options.baseDir, `node-${id}`);
    mkdirSync(dataDir, { recursive: true });
    const log = openSync(path.join(this.options.baseDir, `node-${id}.log`), 'a');
    const args = [...(this.options.nodeFlags ?? []), this.nodeMain, '--id', String(id), '--voters', voters, '--http', this.httpAddress(id), '--data-dir', dataDir, ...(this.options.extraArgs ?? [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', log, log], env: { ...process.env, RIFFLE_LOG_LEVEL: process.env.RIFFLE_LOG_LEVEL ?? 'info' } });
    closeSync(log);
    everyChild.add(child);
    this.children.set(id, child);
    child.once('exit', () => {
      everyChild.delete(child);
      if (this.children.get(id) === child) this.children.delete(id);
    });
  }

  /** kill -9: no chance to flush or say goodbye. */
  async kill(id: NodeId): Promise<void> {
    const child = this.children.get(id);
    if (!child) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.children.entries()].map(async ([, child]) => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    }));
  }

  async status(id: NodeId): Promise<NodeStatusView | undefined> {
    if (!this.children.has(id)) return undefined;
    try {
      const response = await fetch(`http://${this.httpAddress(id)}/status`, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
      return response.ok ? ((await response.json()) as NodeStatusView) : undefined;
    } catch {
      return undefined;
    }
  }

  /** The node that reports itself leader in the highest term, if any. */
  async leader(): Promise<NodeStatusView | undefined> {
    const statuses = await Promise.all(this.ids.map((id) => this.status(id)));
    let best: NodeStatusView | undefined;
    for (const s of statuses) if (s && s.role === 'leader' && (!best || s.term > best.term)) best = s;
    return best;
  }

  async post(id: NodeId, route: string, body: unknown, timeoutMs = HTTP_TIMEOUT_MS): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await fetch(`http://${this.httpAddress(id)}${route}`, {
      method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  /** Polls `probe` every `intervalMs` until it returns a value, or throws after `timeoutMs`. */
  static async waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, intervalMs = 20): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const value = await probe();
      if (value !== undefined) return value;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
  }
}
