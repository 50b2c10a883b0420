// Starts `riffle server` as a child process and waits until it is ready; used by `riffle dev`,
// the benchmarks and the integration tests, so all of them run the real server binary.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The built CLI entry (dist/src/cli/main.js), next to this file once compiled. */
export const CLI_ENTRY = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.js');

/**
 * V8 flags for a server process. A broker's live heap is small (about 20 MiB) and V8 sizes the
 * old generation's first collection limit to it, so under load the objects that outlive a
 * scavenge started a full mark-compact every 300-500 ms, with pauses of 4-38 ms and a large share
 * of the CPU. A 256 MiB initial old space defers those until the heap really grows: on a 3-node
 * cluster on the 2-core machine, acks=all with flush ack went from 198-222k to 243-273k
 * records/s. Node's default 16 MiB semi-spaces (set explicitly) keep scavenges short: with 64 MiB
 * ones (used before) p99 at 100,000 records/s was about twice as high, and throughput no better
 * once major collections were rare. The container image passes the same flags (deploy/Dockerfile:
 * NODE_OPTIONS does not accept --initial-old-space-size).
 */
export const SERVER_NODE_FLAGS = ['--max-semi-space-size=16', '--initial-old-space-size=256'];

export interface NodeProcessOptions {
  nodeId: number;
  dataDir: string;
  host: string;
  grpcPort: number;
  controllerPort: number;
  httpPort: number;
  az?: string;
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /**
   * Where the child's stdout and stderr go: inherited, ignored, piped, appended to a file, or both
   * to this process's stderr (benchmarks: their stdout holds only their JSON).
   */
  stdio?: 'inherit' | 'ignore' | 'pipe' | 'stderr' | { logFile: string };
  /** The built CLI entry to run; defaults to the one beside this module. */
  entry?: string;
}

export class NodeProcess {
  readonly child: ChildProcess;
  private exited: Promise<number | null>;

  constructor(readonly options: NodeProcessOptions) {
    const args = [
      options.entry ?? CLI_ENTRY,
      'server',
      '--node-id', String(options.nodeId),
      '--data-dir', options.dataDir,
      '--listen', `${options.host}:${options.grpcPort}`,
      '--controller-listen', `${options.host}:${options.controllerPort}`,
      '--http', `${options.host}:${options.httpPort}`,
      '--az', options.az ?? 'a',
      ...(options.extraArgs ?? []),
    ];
    const stdio = resolveStdio(options.stdio ?? 'ignore');
    this.child = spawn(process.execPath, [...SERVER_NODE_FLAGS, ...args], { stdio: ['ignore', stdio, stdio], env: { ...process.env, ...options.env } });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    if (typeof stdio === 'number') closeSync(stdio);
  }

  get bootstrap(): string {
    return `${this.options.host}:${this.options.grpcPort}`;
  }

  get httpUrl(): string {
    return `http://${this.options.host}:${this.options.httpPort}`;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves once /readyz answers 200; rejects if the process exits or the deadline passes. */
  async waitReady(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`node ${this.options.nodeId} exited with code ${this.child.exitCode ?? this.child.signalCode}`);
      try {
        const response = await fetch(`${this.httpUrl}/readyz`, { signal: AbortSignal.timeout(1_000) });
        if (response.status === 200) return;
      } catch {
        // Not listening yet.
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`node ${this.options.nodeId} not ready within ${timeoutMs} ms`);
  }

  /** SIGTERM, then SIGKILL if it has not exited within graceMs. Resolves with the exit code. */
  async stop(graceMs = 10_000): Promise<number | null> {
    if (!this.running) return this.exited;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  /** kill -9: no chance to flush or close anything. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  waitExit(): Promise<number | null> {
    return this.exited;
  }
}

function resolveStdio(stdio: NonNullable<NodeProcessOptions['stdio']>): 'inherit' | 'ignore' | 'pipe' | number | NodeJS.WriteStream {
  if (stdio === 'stderr') return process.stderr;
  if (typeof stdio === 'string') return stdio;
  mkdirSync(path.dirname(stdio.logFile), { recursive: true });
  return openSync(stdio.logFile, 'a');
}

/** A TCP port free right now on the given host (the OS picks it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
