// Real processes: three raft nodes (dist/raft/node-main.js) on 127.0.2.1..3 with classic-level
// storage and the gRPC transport. Clients run a register workload while the leader is killed
// with SIGKILL; a new leader must take over and keep committing, the old leader must catch up
// after a restart, and the whole client history must be linearizable.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Prng } from '../../src/util/prng.js';
import { checkLinearizable, type KvOperation } from '../../raft/linearizability.js';
import { ProcessCluster } from '../../raft/process-cluster.js';
import { NODE_MAIN_JS, ensureBuilt } from './build-dist.js';

const HOSTS = ['127.0.2.1', '127.0.2.2', '127.0.2.3'];
const RAFT_PORT = 17400;
const HTTP_PORT = 17401;
const CLIENTS = 4;
const KEYS = ['k0', 'k1', 'k2'];
const REQUEST_TIMEOUT_MS = 3_000;
/** Operations per client; the workload also stops when the test says so. */
const CLIENT_OPERATIONS_MAX = 5_000;

let baseDir = '';
let cluster: ProcessCluster;

beforeAll(async () => {
  ensureBuilt();
  baseDir = await mkdtemp(path.join(os.tmpdir(), 'riffle-raft-process-'));
  cluster = new ProcessCluster({ hosts: HOSTS, raftPort: RAFT_PORT, httpPort: HTTP_PORT, baseDir }, NODE_MAIN_JS);
});

afterAll(async () => {
  await cluster?.stop();
  if (baseDir) await rm(baseDir, { recursive: true, force: true });
});

/** A register client that follows leader hints and records what it saw. */
class Client {
  private guess: number;
  writesOk = 0;

  constructor(private readonly id: number, private readonly prng: Prng, private readonly history: KvOperation[]) {
    this.guess = 1 + (id % HOSTS.length);
  }

  async run(shouldStop: () => boolean): Promise<void> {
    for (let n = 0; n < CLIENT_OPERATIONS_MAX && !shouldStop(); n++) {
      const key = this.prng.pick(KEYS);
      if (this.prng.chance(0.6)) await this.write(key, `c${this.id}-${n}`);
      else await this.read(key);
    }
  }

  private async call(route: string, body: unknown): Promise<{ outcome: 'ok' | 'failed' | 'unknown'; body?: Record<string, unknown> }> {
    if (!cluster.isRunning(this.guess)) this.guess = 1 + ((this.guess) % HOSTS.length);
    try {
      const response = await cluster.post(this.guess, route, body, REQUEST_TIMEOUT_MS);
      if (response.status === 200) return { outcome: 'ok', body: response.body };
      const hint = response.body.leaderHint;
      if (typeof hint === 'string') this.guess = HOSTS.indexOf(hint.split(':')[0]!) + 1 || this.guess;
      else this.guess = 1 + (this.guess % HOSTS.length);
      const definite = response.body.error === 'NOT_CONTROLLER' || response.body.error === 'LIMIT_EXCEEDED';
      if (!definite) return { outcome: 'unknown' };
      // Without a hint there may be no leader yet: give the election a moment.
      if (typeof hint !== 'string') await new Promise((resolve) => setTimeout(resolve, 50));
      return { outcome: 'failed' };
    } catch {
      this.guess = 1 + (this.guess % HOSTS.length);
      return { outcome: 'unknown' };
    }
  }

  private async write(key: string, value: string): Promise<void> {
    const invokeMs = performance.now();
    const { outcome } = await this.call('/put', { key, value });
    if (outcome === 'failed') return;
    if (outcome === 'ok') this.writesOk++;
    this.history.push({ client: this.id, kind: 'write', key, value, invokeMs, completeMs: outcome === 'ok' ? performance.now() : Infinity });
  }

  private async read(key: string): Promise<void> {
    const invokeMs = performance.now();
    const result = await this.call('/get', { key });
    if (result.outcome !== 'ok') return;
    const value = result.body!.value;
    this.history.push({ client: this.id, kind: 'read', key, value: typeof value === 'string' ? value : null, invokeMs, completeMs: performance.now() });
  }
}

describe('raft on real processes', () => {
  it('survives kill -9 of the leader, catches the old leader up, and stays linearizable', async () => {
    const seed = 3_1337;
    console.log(`raft process test workload seed ${seed}, data in ${baseDir}`);
    const prng = new Prng(seed);
    for (const id of cluster.ids) cluster.start(id);
    const first = await ProcessCluster.waitFor('a first leader', 20_000, () => cluster.leader());

    const history: KvOperation[] = [];
    const clients = Array.from({ length: CLIENTS }, (_, i) => new Client(i, new Prng(prng.nextUint32()), history));
    let stop = false;
    const workload = Promise.all(clients.map((client) => client.run(() => stop)));
    const okWrites = (): number => clients.reduce((sum, c) => sum + c.writesOk, 0);
    try {
      await ProcessCluster.waitFor('writes before the kill', 15_000, async () => (okWrites() >= 50 ? true : undefined));
      await cluster.kill(first.id);
      const writesAtKill = okWrites();
      const second = await ProcessCluster.waitFor('a new leader', 15_000, async () => {
        const leader = await cluster.leader();
        return leader && leader.id !== first.id ? leader : undefined;
      });
      expect(second.term).toBeGreaterThan(first.term);
      await ProcessCluster.waitFor('writes under the new leader', 15_000, async () => (okWrites() >= writesAtKill + 50 ? true : undefined));

      cluster.start(first.id);
      const target = (await cluster.status(second.id))!.commit;
      const rejoined = await ProcessCluster.waitFor('the old leader to catch up', 20_000, async () => {
        const status = await cluster.status(first.id);
        return status && status.applied >= target && status.role === 'follower' ? status : undefined;
      });
      expect(rejoined.term).toBeGreaterThanOrEqual(second.term);
    } finally {
      stop = true;
      await workload;
    }

    const result = checkLinearizable(history);
    console.log(`process test: ${history.length} operations, ${okWrites()} acknowledged writes`);
    expect(result).toEqual({ ok: true, operations: expect.any(Number) });
    expect(history.filter((op) => op.kind === 'read').length).toBeGreaterThan(20);
  });
});
