// Faults. Each one records when it starts and ends in the history ("nemesis" operations), picks
// its victims with the run's seeded PRNG, and knows how to undo itself. Killed nodes come back
// through the watchdog after a random delay; the heal phase undoes whatever is still in force.
import { existsSync, openSync, closeSync, readdirSync, statSync, ftruncateSync } from 'node:fs';
import path from 'node:path';
import { Admin, RiffleClient } from '../src/client/index.js';
import type { Prng } from '../src/util/prng.js';
import type { ChaosCluster } from './cluster.js';
import type { FaultProxy } from './proxy.js';
import type { History } from './history.js';
import { flipByteInClosedSegment } from './disk-faults.js';

/** How long a node may take to become ready after a restart. */
const RESTART_READY_MS = 60_000;

export class Nemesis {
  private readonly client: RiffleClient;
  private readonly restarts = new Set<Promise<void>>();
  /** Faults now in force, by name, with how to end them. */
  private readonly active = new Map<string, () => Promise<void> | void>();

  constructor(
    private readonly cluster: ChaosCluster,
    private readonly history: History,
    private readonly random: Prng,
    private readonly topic: string,
  ) {
    this.client = new RiffleClient({ bootstrap: cluster.bootstrap, requestTimeoutMs: 5_000, retry: { deadlineMs: 10_000 } });
  }

  private record(type: 'invoke' | 'ok' | 'info', fault: string): void {
    this.history.add({ type, f: 'nemesis', process: 'nemesis', fault });
  }

  runningNodes(): number[] {
    return [...this.cluster.nodes.keys()].filter((id) => this.cluster.isRunning(id) && !this.cluster.node(id).paused);
  }

  /** The node leading most partitions of the workload's topic (a running one), if known. */
  async leaderOfMost(): Promise<number | undefined> {
    try {
      const description = await new Admin(this.client).describeTopic(this.topic);
      const counts = new Map<number, number>();
      for (const partition of description.partitions) if (partition.leaderId >= 0) counts.set(partition.leaderId, (counts.get(partition.leaderId) ?? 0) + 1);
      const sorted = [...counts].filter(([id]) => this.runningNodes().includes(id)).sort((a, b) => b[1] - a[1] || a[0] - b[0]);
      return sorted[0]?.[0];
    } catch {
      return undefined;
    }
  }

  async activeController(): Promise<number | undefined> {
    try {
      const id = (await new Admin(this.client).describeCluster(3_000)).controllerId;
      return id > 0 ? id : undefined;
    } catch {
      return undefined;
    }
  }

  /** kill -9 of the given nodes; the watchdog restarts each after `restartAfterMs`. */
  async kill(ids: number[], label: string, restartAfterMs: number): Promise<void> {
    const victims = ids.filter((id) => this.cluster.isRunning(id));
    if (victims.length === 0) return;
    this.record('invoke', `kill ${label} [${victims.join(',')}]`);
    await Promise.all(victims.map((id) => this.cluster.kill(id)));
    for (const id of victims) this.restartLater(id, restartAfterMs);
  }

  /** SIGTERM one node (controlled shutdown), then start it again and wait until it is ready. */
  async restartGracefully(id: number): Promise<void> {
    this.record('invoke', `sigterm n${id}`);
    await this.cluster.stop(id);
    this.cluster.start(id);
    await this.cluster.waitReady(id, RESTART_READY_MS).catch(() => undefined);
    this.record('ok', `sigterm n${id} back`);
  }

  private restartLater(id: number, delayMs: number): void {
    const restart = (async () => {
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      if (this.cluster.isRunning(id)) return;
      this.cluster.start(id);
      this.record('ok', `restart n${id}`);
      await this.cluster.waitReady(id, RESTART_READY_MS).catch(() => undefined);
    })();
    this.restarts.add(restart);
    void restart.finally(() => this.restarts.delete(restart));
  }

  /** SIGSTOP the nodes until `end` (or the heal). */
  pause(ids: number[], label: string): void {
    const victims = ids.filter((id) => this.cluster.isRunning(id) && !this.cluster.node(id).paused);
    if (victims.length === 0) return;
    const name = `pause ${label} [${victims.join(',')}]`;
    this.record('invoke', name);
    for (const id of victims) this.cluster.pause(id);
    this.active.set(name, () => {
      for (const id of victims) this.cluster.resume(id);
      this.record('ok', `resume [${victims.join(',')}]`);
    });
  }

  /** Cuts every node-to-node link between `group` and the others, both ways (bytes hang). */
  isolate(group: number[], label: string): void {
    const others = [...this.cluster.nodes.keys()].filter((id) => !group.includes(id));
    const name = `isolate ${label} [${group.join(',')}]`;
    this.record('invoke', name);
    const links = group.flatMap((inside) => others.flatMap((outside) => [...this.cluster.linksBetween(inside, outside), ...this.cluster.linksBetween(outside, inside)]));
    for (const link of links) link.set('both', { mode: 'blackhole' });
    this.active.set(name, () => {
      for (const link of links) link.heal();
      this.record('ok', `heal ${label}`);
    });
  }

  /** Bytes from `from` stop reaching `to`; the other way still works. */
  cutOneWay(from: number, to: number): void {
    const name = `one-way n${from}->n${to}`;
    this.record('invoke', name);
    const links = this.blockFrom(from, to);
    this.active.set(name, () => {
      for (const link of links) link.heal();
      this.record('ok', `heal ${name}`);
    });
  }

  /**
   * Jepsen's majorities ring: the nodes in a random ring order, each hearing only itself and its
   * nearest neighbours, a bare majority of the cluster, so every node sees a majority but no two
   * see the same one. Node x not hearing y means bytes from y to x hang (a one-way cut), so the
   * views need not be symmetric.
   */
  majorityRing(): void {
    const ring = this.random.shuffle([...this.cluster.nodes.keys()].sort((a, b) => a - b));
    const views = majorityRingViews(ring);
    const name = `majority ring [${ring.join(',')}]`;
    this.record('invoke', name);
    const links: FaultProxy[] = [];
    for (const [node, view] of views) {
      for (const from of ring) if (!view.has(from)) links.push(...this.blockFrom(from, node));
    }
    this.active.set(name, () => {
      for (const link of links) link.heal();
      this.record('ok', `heal ${name}`);
    });
  }

  /** Makes bytes from `from` stop reaching `to` on every link between them; returns the links. */
  private blockFrom(from: number, to: number): FaultProxy[] {
    const outgoing = this.cluster.linksBetween(from, to);
    const incoming = this.cluster.linksBetween(to, from);
    for (const link of outgoing) link.set('forward', { mode: 'blackhole' });
    for (const link of incoming) link.set('backward', { mode: 'blackhole' });
    return [...outgoing, ...incoming];
  }

  /**
   * Bit rot: the node stops (SIGTERM, or kill -9 when `clean` is false), one byte flips inside
   * a batch of an older, closed segment of one of its replicas of the workload's topic, and the
   * node starts again at once. The broker must find the batch (scrubber or read), never serve
   * it, and repair it from the leader. Skipped when the node has no closed segment yet.
   */
  async flipByte(id: number, clean: boolean): Promise<void> {
    const logsDir = path.join(this.cluster.node(id).dataDir, 'logs');
    if (!existsSync(logsDir) || !this.cluster.isRunning(id)) return;
    const how = clean ? 'sigterm' : 'kill';
    if (clean) await this.cluster.stop(id);
    else await this.cluster.kill(id);
    const partitions = this.random.shuffle(readdirSync(logsDir).filter((name) => name.startsWith(`${this.topic}-`)).sort());
    let flipped: string | undefined;
    for (const partition of partitions) {
      const result = flipByteInClosedSegment(path.join(logsDir, partition), (count) => this.random.int(0, count));
      if (!result) continue;
      flipped = `${partition}/${result.segment} byte ${result.position} (batch ${result.batchBaseOffset}-${result.batchLastOffset})`;
      break;
    }
    this.record('invoke', `bit flip n${id} (${how}) ${flipped ?? 'skipped: no closed segment'}`);
    this.restartLater(id, 0);
  }

  /**
   * A torn tail: the node dies, and the last `bytes` of one partition's newest segment never
   * reached the disk (as after a power cut with unsynced writes). The node restarts at once.
   */
  async tearTail(id: number, bytes: number): Promise<void> {
    const logsDir = path.join(this.cluster.node(id).dataDir, 'logs');
    if (!existsSync(logsDir)) return;
    const partitions = readdirSync(logsDir).filter((name) => name.startsWith(`${this.topic}-`));
    if (partitions.length === 0) return;
    const partitionDir = path.join(logsDir, this.random.pick(partitions.sort()));
    const segments = readdirSync(partitionDir).filter((name) => name.endsWith('.log')).sort();
    const newest = segments.at(-1);
    if (!newest) return;
    this.record('invoke', `torn tail n${id} ${path.basename(partitionDir)}/${newest} -${bytes} bytes`);
    await this.cluster.kill(id);
    const file = path.join(partitionDir, newest);
    const size = statSync(file).size;
    const fd = openSync(file, 'r+');
    try {
      ftruncateSync(fd, Math.max(0, size - bytes));
    } finally {
      closeSync(fd);
    }
    this.restartLater(id, 0);
  }

  /** Ends one fault in force, chosen at random; false when none is. */
  async endOne(): Promise<boolean> {
    const names = [...this.active.keys()];
    if (names.length === 0) return false;
    const name = this.random.pick(names.sort());
    const end = this.active.get(name)!;
    this.active.delete(name);
    await end();
    return true;
  }

  /** Ends every fault, restarts every stopped node and waits until all are ready. */
  async healAll(): Promise<void> {
    for (const [name, end] of [...this.active]) {
      this.active.delete(name);
      await end();
    }
    this.cluster.healNetwork();
    await Promise.all(this.restarts);
    for (const id of this.cluster.nodes.keys()) {
      if (this.cluster.node(id).paused) this.cluster.resume(id);
      if (!this.cluster.isRunning(id)) this.cluster.start(id);
    }
    await Promise.all([...this.cluster.nodes.keys()].map((id) => this.cluster.waitReady(id, RESTART_READY_MS)));
    this.record('ok', 'healed');
  }

  /** Waits until every partition of the topic has its full ISR again; false at the deadline. */
  async waitFullIsr(timeoutMs: number, moreTopics: readonly string[] = []): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        const descriptions = await Promise.all([this.topic, ...moreTopics].map((topic) => new Admin(this.client).describeTopic(topic)));
        const full = descriptions.every((description) => description.partitions.every((partition) => partition.leaderId >= 0 && partition.isrNodes.length === partition.replicaNodes.length));
        if (full) return true;
      } catch {
        // The cluster may still be settling.
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    return false;
  }

  close(): void {
    this.client.close();
  }
}

/**
 * Who each node hears in a majorities ring over `ring` (in ring order): itself and the nearest
 * nodes on both sides, alternating, clockwise first, until it hears a bare majority.
 */
export function majorityRingViews(ring: readonly number[]): Map<number, Set<number>> {
  const count = ring.length;
  if (new Set(ring).size !== count) throw new Error(`a ring names each node once: [${ring.join(',')}]`);
  const majority = Math.floor(count / 2) + 1;
  const views = new Map<number, Set<number>>();
  ring.forEach((node, position) => {
    const view = new Set([node]);
    for (let distance = 1; view.size < majority; distance++) {
      view.add(ring[(position + distance) % count]!);
      if (view.size < majority) view.add(ring[(position - distance + count) % count]!);
    }
    views.set(node, view);
  });
  return views;
}
