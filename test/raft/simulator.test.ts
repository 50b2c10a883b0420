// Runs the deterministic simulator over many seeds of 3- and 5-node clusters. Each seed is a
// fault schedule (drops, delays, duplicates, partitions, one-way cuts, crashes losing unsynced
// writes, disks lost outright, restarts) with invariants checked after every event, then a healed liveness phase and a
// linearizability check of the clients' history. A failure names the seed and the replay command.
import { describe, expect, it } from 'vitest';
import { runSimulation, type SimulationResult } from '../../raft/simulator.js';

/** Seeds per test, and tests per kind of run: small enough that each test stays far below its timeout. */
const SEEDS_PER_TEST = 500;
const SHORT_TESTS = 4;
const LONG_TESTS = 2;
const LONG_SEEDS_PER_TEST = 150;
const FIRST_SEED = Number(process.env.RIFFLE_SIM_FIRST_SEED ?? 1);

function runSeeds(count: number, first: number, safetyMs: number): SimulationResult[] {
  const results: SimulationResult[] = [];
  for (let seed = first; seed < first + count; seed++) {
    const nodeCount = seed % 2 === 0 ? 5 : 3;
    const result = runSimulation({ seed, nodeCount, safetyMs, livenessMsMax: 10_000, snapshotEveryEntries: 25 });
    if (!result.ok) {
      const replay = `npm run build && npm run sim -- --seed ${seed} --nodes ${nodeCount} --safety-ms ${safetyMs} --verbose`;
      throw new Error(`simulation seed ${seed} (${nodeCount} nodes) failed: ${result.error}\nreplay: ${replay}`);
    }
    results.push(result);
  }
  return results;
}

describe('raft simulator', () => {
  for (let part = 0; part < SHORT_TESTS; part++) {
    const first = FIRST_SEED + part * SEEDS_PER_TEST;
    it(`keeps every invariant and stays live over seeds ${first}..${first + SEEDS_PER_TEST - 1} (3 s of faults each)`, () => {
      console.log(`simulator seeds ${first}..${first + SEEDS_PER_TEST - 1}`);
      const results = runSeeds(SEEDS_PER_TEST, first, 3_000);
      expect(results.filter((r) => r.nodeCount === 3).length).toBe(SEEDS_PER_TEST / 2);
      expect(results.filter((r) => r.nodeCount === 5).length).toBe(SEEDS_PER_TEST / 2);
      // The runs must do real work: commits, client operations, crashes and snapshot installs.
      expect(results.reduce((sum, r) => sum + r.committed, 0)).toBeGreaterThan(SEEDS_PER_TEST * 20);
      expect(results.reduce((sum, r) => sum + r.operations, 0)).toBeGreaterThan(SEEDS_PER_TEST * 20);
      expect(results.filter((r) => r.crashes > 0).length).toBeGreaterThan(SEEDS_PER_TEST / 2);
      // Lost disks too: without the recovering voter's rule about 3% of seeds lose committed entries.
      expect(results.filter((r) => r.wipes > 0).length).toBeGreaterThan(SEEDS_PER_TEST / 4);
      expect(results.filter((r) => r.snapshotsInstalled > 0).length).toBeGreaterThan(SEEDS_PER_TEST / 20);
    });
  }

  for (let part = 0; part < LONG_TESTS; part++) {
    const first = FIRST_SEED + 1_000_000 + part * LONG_SEEDS_PER_TEST;
    it(`keeps every invariant over seeds ${first}..${first + LONG_SEEDS_PER_TEST - 1} (10 s of faults each)`, () => {
      console.log(`simulator seeds ${first}..${first + LONG_SEEDS_PER_TEST - 1} (10 s)`);
      const results = runSeeds(LONG_SEEDS_PER_TEST, first, 10_000);
      expect(results.reduce((sum, r) => sum + r.committed, 0)).toBeGreaterThan(LONG_SEEDS_PER_TEST * 50);
    });
  }

  it('replays a seed exactly', () => {
    const a = runSimulation({ seed: 42, nodeCount: 5, safetyMs: 3_000, livenessMsMax: 10_000, snapshotEveryEntries: 25 });
    const b = runSimulation({ seed: 42, nodeCount: 5, safetyMs: 3_000, livenessMsMax: 10_000, snapshotEveryEntries: 25 });
    expect(a.ok).toBe(true);
    expect(b).toEqual(a);
  });
});
