// Runs the deterministic simulator over many seeds of 3- and 5-node clusters. Each seed is a
// fault schedule (drops, delays, duplicates, partitions, one-way cuts, crashes losing unsynced
// writes, restarts) with invariants checked after every event, then a healed liveness phase and a
// linearizability check of the clients' history. A failure names the seed and the replay command.
import { describe, expect, it } from 'vitest';
import { runSimulation, type SimulationResult } from '../../raft/simulator.js';

const SEEDS_SHORT = 1_000;
const SEEDS_LONG = 150;
const FIRST_SEED = Number(process.env.RIFFLE_SIM_FIRST_SEED ?? 1);

function runSeeds(count: number, first: number, safetyMs: number): SimulationResult[] {
  const results: SimulationResult[] = [];
  for (let seed = first; seed < first + count; seed++) {
    const nodeCount = seed % 2 === 0 ? 5 : 3;
    const result = runSimulation({ seed, nodeCount, safetyMs, livenessMsMax: 30_000, snapshotEveryEntries: 25 });
    if (!result.ok) {
      const replay = `npm run build && npm run sim -- --seed ${seed} --nodes ${nodeCount} --safety-ms ${safetyMs} --verbose`;
      throw new Error(`simulation seed ${seed} (${nodeCount} nodes) failed: ${result.error}\nreplay: ${replay}`);
    }
    results.push(result);
  }
  return results;
}

describe('raft simulator', () => {
  it(`keeps every invariant and stays live over ${SEEDS_SHORT} seeds of 3 s faults`, () => {
    console.log(`simulator seeds ${FIRST_SEED}..${FIRST_SEED + SEEDS_SHORT - 1}`);
    const results = runSeeds(SEEDS_SHORT, FIRST_SEED, 3_000);
    expect(results.filter((r) => r.nodeCount === 3).length).toBeGreaterThan(0);
    expect(results.filter((r) => r.nodeCount === 5).length).toBeGreaterThan(0);
    // The runs must do real work: commits, client operations and crashes.
    expect(results.reduce((sum, r) => sum + r.committed, 0)).toBeGreaterThan(SEEDS_SHORT * 20);
    expect(results.reduce((sum, r) => sum + r.operations, 0)).toBeGreaterThan(SEEDS_SHORT * 20);
    expect(results.filter((r) => r.crashes > 0).length).toBeGreaterThan(SEEDS_SHORT / 2);
    expect(results.filter((r) => r.snapshotsInstalled > 0).length).toBeGreaterThan(SEEDS_SHORT / 20);
  });

  it(`keeps every invariant over ${SEEDS_LONG} seeds of 10 s faults`, () => {
    const first = FIRST_SEED + 1_000_000;
    console.log(`simulator seeds ${first}..${first + SEEDS_LONG - 1} (10 s)`);
    const results = runSeeds(SEEDS_LONG, first, 10_000);
    expect(results.every((r) => r.ok)).toBe(true);
  });

  it('replays a seed exactly', () => {
    const a = runSimulation({ seed: 42, nodeCount: 5, safetyMs: 3_000, livenessMsMax: 30_000, snapshotEveryEntries: 25 });
    const b = runSimulation({ seed: 42, nodeCount: 5, safetyMs: 3_000, livenessMsMax: 30_000, snapshotEveryEntries: 25 });
    expect(a.ok).toBe(true);
    expect(b).toEqual(a);
  });
});
