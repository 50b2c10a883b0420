// Real processes: three raft nodes (dist/raft/node-main.js) on 127.0.2.1..3 with classic-level
// storage and the gRPC transport. Clients run a register workload while the leader is killed
// with SIGKILL; a new leader must take over and keep committing, the old leader must catch up
// after a restart, and the whole client history must be linearizable.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Prng } from '../../src/util/prng.js';
import { checkLinearizable, type KvOperation } from '../../raft/linearizability.js';
import { ProcessCluster } from '../../raft/process-cluster.js';
import { LevelStorage } from '../../raft/level-storage.js';
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

const WRITER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/level-writer.mjs');

/** Runs the writer until it has acknowledged `ackedAtLeast` more batches, then kills it with SIGKILL. */
async function writeAndKill(dir: string, ackedAtLeast: number, killAfterMs: number): Promise<number> {
  const child = spawn(process.execPath, [WRITER, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  let lastAcked = 0;
  let acks = 0;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('writer made no progress')), 20_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString().split('\n')) {
          const match = /^acked (\d+)$/.exec(line);
          if (!match) continue;
          lastAcked = Number(match[1]);
          if (++acks === ackedAtLeast) {
            clearTimeout(timer);
            setTimeout(resolve, killAfterMs);
          }
        }
      });
    });
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
  return lastAcked;
}

describe('classic-level storage under kill -9', () => {
  it('recovers a consistent log holding every acknowledged write, crash after crash', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'riffle-raft-crash-'));
    try {
      const prng = new Prng(4242);
      console.log('storage crash test seed 4242');
      for (let round = 0; round < 4; round++) {
        const acked = await writeAndKill(dir, 150, prng.int(0, 30));
        const storage = await LevelStorage.open(dir);
        const state = await storage.load();
        await storage.close();
        const last = state.snapshot.meta.index + state.entries.length;
        expect(last).toBeGreaterThanOrEqual(acked);
        expect(state.hardState.commit).toBeGreaterThanOrEqual(acked);
        expect(state.hardState.commit).toBeLessThanOrEqual(last);
        state.entries.forEach((entry, i) => {
          expect(entry.index).toBe(state.snapshot.meta.index + 1 + i);
          expect(Buffer.from(entry.data).toString()).toBe(`entry-${entry.index}-${'p'.repeat(entry.index % 200)}`);
        });
        if (state.snapshot.meta.index > 0) expect(Buffer.from(state.snapshot.data).toString()).toBe(`snap-${state.snapshot.meta.index}`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
