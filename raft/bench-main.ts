// `npm run bench:raft`: three node-main processes on 127.0.2.21..23 (classic-level storage,
// gRPC transport). Measures committed proposals per second of 100-byte entries (proposals are
// generated inside the leader process, so the figure is Raft's, not an HTTP client's), the
// commit latency at half that load, and the time to elect a new leader after kill -9 of the
// current one (median over --trials). Prints one JSON document.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ProcessCluster } from './process-cluster.js';

const HOSTS = ['127.0.2.21', '127.0.2.22', '127.0.2.23'];
const PAYLOAD_BYTES = 100;
const TRIALS_MAX = 1_000;

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  const value = at >= 0 ? Number(process.argv[at + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`--${name} must be a positive number`);
  return value;
}

function quantile(samples: readonly number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

async function bench(cluster: ProcessCluster, body: Record<string, number>): Promise<Record<string, number>> {
  const leader = await ProcessCluster.waitFor('a leader', 20_000, () => cluster.leader());
  const response = await cluster.post(leader.id, '/bench', body, 300_000);
  if (response.status !== 200) throw new Error(`bench failed: ${JSON.stringify(response.body)}`);
  return response.body as Record<string, number>;
}

/** Kills the leader and measures until another node reports itself leader. */
async function reelection(cluster: ProcessCluster): Promise<number> {
  const old = await ProcessCluster.waitFor('a leader', 20_000, () => cluster.leader());
  const started = performance.now();
  await cluster.kill(old.id);
  const next = await ProcessCluster.waitFor('a new leader', 20_000, async () => {
    const leader = await cluster.leader();
    return leader && leader.id !== old.id ? leader : undefined;
  }, 5);
  const elapsedMs = performance.now() - started;
  cluster.start(old.id);
  await ProcessCluster.waitFor('the old leader to rejoin', 30_000, async () => {
    const status = await cluster.status(old.id);
    return status && status.role === 'follower' && status.applied >= next.commit ? true : undefined;
  });
  return elapsedMs;
}

async function main(): Promise<void> {
  const trials = Math.min(flag('trials', 20), TRIALS_MAX);
  const count = flag('count', 200_000);
  const baseDir = await mkdtemp(path.join(os.tmpdir(), 'riffle-raft-bench-'));
  const cluster = new ProcessCluster({ hosts: HOSTS, raftPort: 17500, httpPort: 17501, baseDir, extraArgs: ['--snapshot-every', '50000'] });
  try {
    for (const id of cluster.ids) cluster.start(id);
    await bench(cluster, { count: 20_000, payloadBytes: PAYLOAD_BYTES, ratePerSec: 0, windowMax: 10_000 });
    const full = await bench(cluster, { count, payloadBytes: PAYLOAD_BYTES, ratePerSec: 0, windowMax: 10_000 });
    const halfRate = Math.floor(full.throughputPerSec! / 2);
    const half = await bench(cluster, { count: halfRate * 5, payloadBytes: PAYLOAD_BYTES, ratePerSec: halfRate, windowMax: 100_000 });
    const elections: number[] = [];
    for (let i = 0; i < trials; i++) elections.push(await reelection(cluster));
    const result = {
      proposalBytes: PAYLOAD_BYTES,
      throughput: { proposals: full.committed, failed: full.failed, perSec: Math.round(full.throughputPerSec!), targetPerSec: 20_000 },
      latencyAtHalfLoad: { ratePerSec: halfRate, proposals: half.committed, p50Ms: round(half.p50Ms!), p99Ms: round(half.p99Ms!), targetP50Ms: 5 },
      reelectionAfterKill9: { trials, medianMs: Math.round(quantile(elections, 0.5)), p90Ms: Math.round(quantile(elections, 0.9)), maxMs: Math.round(Math.max(...elections)), targetMedianMs: 2_500, samplesMs: elections.map(Math.round) },
    };
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await cluster.stop();
    await rm(baseDir, { recursive: true, force: true });
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
