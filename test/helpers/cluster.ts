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
