// The chaos harness's cluster: real `riffle server` processes, each on its own loopback address,
// two per availability zone, with every node-to-node and client-to-node link going through a
// FaultProxy the harness controls.
//
// Addresses (subnet S, default 127.0.40; nodes 1..9):
//   S.<n>          node n's real listeners (gRPC, controller, HTTP);
//   S+1.<10d+n>    the proxy through which node d dials node n (gRPC and controller ports);
//   S+2.<n>        the proxy through which clients dial node n; node n advertises it.
// Node d learns these through its own --controller-quorum (Raft and controller links) and
// --dial-overrides (replica fetches to other brokers, and controller leader hints naming another
// node's view of the quorum).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FaultProxy } from './proxy.js';
import { SERVER_NODE_FLAGS } from '../src/cli/node-process.js';

export const CLI_ENTRY = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');

const PORTS = { grpc: 19094, controller: 19093, http: 19644 };
const NODES_MAX = 9;

export interface ClusterSpec {
  /** First three octets of the node addresses; the next two subnets hold the proxies. */
  subnet: string;
  controllers: number;
  brokers: number;
  azs: readonly string[];
  runDir: string;
  /** Extra `riffle server` flags for every node. */
  serverArgs?: string[];
}

export interface ChaosNode {
  id: number;
  az: string;
  isController: boolean;
  process?: ChildProcess;
  paused: boolean;
  dataDir: string;
}

export class ChaosCluster {
  readonly nodes = new Map<number, ChaosNode>();
  /** Node-to-node proxies by "dialer->target:kind", client proxies by "client->target". */
  readonly proxies = new Map<string, FaultProxy>();
  private readonly exits = new Map<number, Promise<void>>();

  constructor(readonly spec: ClusterSpec) {
    const total = spec.controllers + spec.brokers;
    if (total > NODES_MAX || spec.controllers < 1) throw new Error(`a chaos cluster has 1..${NODES_MAX} nodes with at least one controller`);
    for (let id = 1; id <= total; id++) {
      this.nodes.set(id, { id, az: spec.azs[(id - 1) % spec.azs.length]!, isController: id <= spec.controllers, paused: false, dataDir: path.join(spec.runDir, 'data', `node-${id}`) });
    }
  }

  private get proxySubnet(): string {
    const [a, b, c] = this.spec.subnet.split('.');
    return `${a}.${b}.${Number(c) + 1}`;
  }

  private get clientSubnet(): string {
    const [a, b, c] = this.spec.subnet.split('.');
    return `${a}.${b}.${Number(c) + 2}`;
  }

  nodeHost(id: number): string {
    return `${this.spec.subnet}.${id}`;
  }

  /** The address a client (or the advertised metadata) uses for node `id`. */
  clientAddress(id: number): string {
    return `${this.clientSubnet}.${id}:${PORTS.grpc}`;
  }

  httpUrl(id: number): string {
    return `http://${this.nodeHost(id)}:${PORTS.http}`;
  }

  get bootstrap(): string {
    return [...this.nodes.keys()].map((id) => this.clientAddress(id)).join(',');
  }

  private pairHost(dialer: number, target: number): string {
    return `${this.proxySubnet}.${dialer * 10 + target}`;
  }

  /** Node `dialer`'s address for node `target` on `port` (its own real address for itself). */
  private viewOf(dialer: number, target: number, port: number): string {
    return dialer === target ? `${this.nodeHost(target)}:${port}` : `${this.pairHost(dialer, target)}:${port}`;
  }

  async startProxies(): Promise<void> {
    const starts: Promise<void>[] = [];
    for (const target of this.nodes.values()) {
      const client = new FaultProxy(`${this.clientSubnet}.${target.id}`, PORTS.grpc, this.nodeHost(target.id), PORTS.grpc, `client->n${target.id}`);
      this.proxies.set(`client->${target.id}`, client);
      starts.push(client.start());
      for (const dialer of this.nodes.values()) {
        if (dialer.id === target.id) continue;
        const kinds: [string, number][] = [['grpc', PORTS.grpc]];
        if (target.isController) kinds.push(['controller', PORTS.controller]);
        for (const [kind, port] of kinds) {
          const proxy = new FaultProxy(this.pairHost(dialer.id, target.id), port, this.nodeHost(target.id), port, `n${dialer.id}->n${target.id}:${kind}`);
          this.proxies.set(`${dialer.id}->${target.id}:${kind}`, proxy);
          starts.push(proxy.start());
        }
      }
    }
    await Promise.all(starts);
  }

  /** Proxies carrying traffic from node `from` to node `to` (both kinds). */
  linksBetween(from: number, to: number): FaultProxy[] {
    return ['grpc', 'controller'].map((kind) => this.proxies.get(`${from}->${to}:${kind}`)).filter((proxy): proxy is FaultProxy => proxy !== undefined);
  }

  private argsFor(node: ChaosNode): string[] {
    const voters = [...this.nodes.values()].filter((candidate) => candidate.isController);
    const quorum = voters.map((voter) => `${voter.id}@${this.viewOf(node.id, voter.id, PORTS.controller)}`).join(',');
    const overrides: string[] = [];
    for (const target of this.nodes.values()) {
      if (target.id !== node.id) overrides.push(`${this.clientAddress(target.id)}=${this.viewOf(node.id, target.id, PORTS.grpc)}`);
      if (!target.isController) continue;
      // Another node's view of this voter, as it may appear in a controller's leader hint.
      for (const other of this.nodes.values()) {
        if (other.id === target.id || other.id === node.id) continue;
        overrides.push(`${this.viewOf(other.id, target.id, PORTS.controller)}=${this.viewOf(node.id, target.id, PORTS.controller)}`);
      }
    }
    return [
      'server',
      '--node-id', String(node.id),
      '--roles', node.isController ? 'controller,broker' : 'broker',
      '--az', node.az,
      '--data-dir', node.dataDir,
      '--listen', `${this.nodeHost(node.id)}:${PORTS.grpc}`,
      '--controller-listen', `${this.nodeHost(node.id)}:${PORTS.controller}`,
      '--http', `${this.nodeHost(node.id)}:${PORTS.http}`,
      '--advertised-listen', this.clientAddress(node.id),
      '--controller-quorum', quorum,
      '--dial-overrides', overrides.join(','),
      '--log-level', 'info',
      ...(this.spec.serverArgs ?? []),
    ];
  }

  /** Starts node `id` (again), appending its output to its log file. */
  start(id: number): void {
    const node = this.node(id);
    if (node.process && node.process.exitCode === null && node.process.signalCode === null) throw new Error(`node ${id} is already running`);
    mkdirSync(node.dataDir, { recursive: true });
    const log = openSync(path.join(this.spec.runDir, `node-${id}.log`), 'a');
    const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, CLI_ENTRY, ...this.argsFor(node)], { stdio: ['ignore', log, log] });
    closeSync(log);
    node.process = child;
    node.paused = false;
    this.exits.set(id, new Promise((resolve) => child.once('exit', () => resolve())));
  }

  node(id: number): ChaosNode {
    const node = this.nodes.get(id);
    if (!node) throw new Error(`no node ${id}`);
    return node;
  }

  isRunning(id: number): boolean {
    const child = this.node(id).process;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  async kill(id: number): Promise<void> {
    if (!this.isRunning(id)) return;
    const node = this.node(id);
    node.process!.kill('SIGKILL');
    node.paused = false;
    await this.exits.get(id);
  }

  /** SIGTERM (controlled shutdown), SIGKILL after `graceMs`. */
  async stop(id: number, graceMs = 20_000): Promise<void> {
    if (!this.isRunning(id)) return;
    const node = this.node(id);
    if (node.paused) this.resume(id);
    node.process!.kill('SIGTERM');
    const timer = setTimeout(() => node.process?.kill('SIGKILL'), graceMs);
    await this.exits.get(id);
    clearTimeout(timer);
  }

  pause(id: number): void {
    if (!this.isRunning(id)) return;
    this.node(id).process!.kill('SIGSTOP');
    this.node(id).paused = true;
  }

  resume(id: number): void {
    if (!this.isRunning(id)) return;
    this.node(id).process!.kill('SIGCONT');
    this.node(id).paused = false;
  }

  /** Resolves once node `id` answers /readyz with 200. */
  async waitReady(id: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.isRunning(id)) throw new Error(`node ${id} is not running`);
      try {
        const response = await fetch(`${this.httpUrl(id)}/readyz`, { signal: AbortSignal.timeout(1_000) });
        if (response.status === 200) return;
      } catch {
        // Not up yet.
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`node ${id} not ready within ${timeoutMs} ms`);
  }

  /** Every link back to clean. */
  healNetwork(): void {
    for (const proxy of this.proxies.values()) proxy.heal();
  }

  async shutdown(): Promise<void> {
    for (const node of this.nodes.values()) if (node.paused) this.resume(node.id);
    await Promise.all([...this.nodes.keys()].map((id) => this.kill(id)));
    await Promise.all([...this.proxies.values()].map((proxy) => proxy.stop()));
  }
}
