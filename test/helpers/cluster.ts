// Helpers for integration tests: real `riffle server` processes (the built dist/ binary) on
// loopback addresses of their own, temporary data directories, the CLI as a child process, and
// waiting for conditions with deadlines.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NodeProcess, freePort } from '../../src/cli/node-process.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BUILT_CLI = path.join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

export function temporaryDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Starts a node on the given loopback address with free ports and waits until it is ready. */
export async function startNode(options: { host: string; dataDir: string; nodeId?: number; extraArgs?: string[]; ports?: { grpc: number; controller: number; http: number } }): Promise<NodeProcess> {
  const ports = options.ports ?? { grpc: await freePort(options.host), controller: await freePort(options.host), http: await freePort(options.host) };
  const node = new NodeProcess({
    nodeId: options.nodeId ?? 1,
    dataDir: options.dataDir,
    host: options.host,
    grpcPort: ports.grpc,
    controllerPort: ports.controller,
    httpPort: ports.http,
    extraArgs: ['--log-level', 'warn', ...(options.extraArgs ?? [])],
    stdio: 'inherit',
    entry: BUILT_CLI,
  });
  await node.waitReady();
  return node;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI with arguments and optional standard input. */
export function runCli(args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BUILT_CLI, ...args], { env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`riffle ${args.join(' ')} did not finish within ${options.timeoutMs ?? 30_000} ms; stderr: ${stderr}`));
    }, options.timeoutMs ?? 30_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Polls a condition until it holds or the deadline passes. */
export async function waitFor<T>(condition: () => Promise<T | undefined | false> | T | undefined | false, options: { timeoutMs?: number; intervalMs?: number; what?: string } = {}): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await condition();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 50));
  }
  throw new Error(`timed out waiting for ${options.what ?? 'condition'}${lastError ? `: ${String(lastError)}` : ''}`);
}

export { execFile };

export interface TestCluster {
  nodes: Map<number, NodeProcess>;
  bootstrap: string;
  quorum: string;
  /** Starts (or restarts) node `id` with its original address, ports and data directory. */
  start(id: number): Promise<NodeProcess>;
  stopAll(): Promise<void>;
}

const AZS = ['a', 'b', 'c'];

/**
 * A cluster of real processes, node i on address `${subnet}.${i}` with the same ports on every
 * address: the first `controllers` nodes are combined controller+broker nodes, the rest brokers
 * only; AZs go a, b, c in turn. Data lives under `dataDir/node-<i>`.
 */
export async function startCluster(options: { subnet: string; dataDir: string; controllers: number; brokers?: number; extraArgs?: string[] }): Promise<TestCluster> {
  const total = options.controllers + (options.brokers ?? 0);
  const ports = { grpc: 19094, controller: 19093, http: 19644 };
  const hostOf = (id: number): string => `${options.subnet}.${id}`;
  const quorum = Array.from({ length: options.controllers }, (_, index) => `${index + 1}@${hostOf(index + 1)}:${ports.controller}`).join(',');
  const nodes = new Map<number, NodeProcess>();
  const start = async (id: number): Promise<NodeProcess> => {
    const roles = id <= options.controllers ? 'controller,broker' : 'broker';
    const node = new NodeProcess({
      nodeId: id,
      dataDir: path.join(options.dataDir, `node-${id}`),
      host: hostOf(id),
      grpcPort: ports.grpc,
      controllerPort: ports.controller,
      httpPort: ports.http,
      az: AZS[(id - 1) % AZS.length]!,
      extraArgs: ['--log-level', 'warn', '--roles', roles, '--controller-quorum', quorum, ...(options.extraArgs ?? [])],
      stdio: 'inherit',
      entry: BUILT_CLI,
    });
    nodes.set(id, node);
    return node;
  };
  const ids = Array.from({ length: total }, (_, index) => index + 1);
  await Promise.all(ids.map((id) => start(id)));
  try {
    await Promise.all([...nodes.values()].map((node) => node.waitReady(60_000)));
  } catch (error) {
    // A cluster that did not come up must not leave its processes behind.
    await Promise.all([...nodes.values()].map((node) => node.kill()));
    throw error;
  }
  return {
    nodes,
    bootstrap: ids.map((id) => `${hostOf(id)}:${ports.grpc}`).join(','),
    quorum,
    start: async (id) => {
      const node = await start(id);
      return node;
    },
    stopAll: async () => {
      await Promise.all([...nodes.values()].map((node) => node.kill()));
    },
  };
}
