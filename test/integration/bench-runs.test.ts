// `riffle bench produce --runs`: the whole measurement is repeated on a fresh node each time, every
// run is reported with its own topic and figures, and the summary holds each figure's median over
// the runs (the lower middle one of an even count); bad --runs values are refused. With --floor,
// each run is followed by a floor measurement at its pace, and its latency is set against it.
import { readdirSync } from 'node:fs';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { medianOfRuns, withFloor } from '../../src/cli/bench-command.js';
import type { FloorRun } from '../../src/cli/bench-floor.js';
import { runCli } from '../helpers/cluster.js';

interface Latency {
  p50: number;
  p99: number;
  p999: number;
  max: number;
}

interface ProduceFigures {
  produce: { recordsPerSecond: number; latencyMs: Latency };
  cpu: { clientCores: number; nodeCores: Record<string, number> };
}

describe('medianOfRuns', () => {
  it('takes the median of every number, keeps agreeing values and drops the rest', () => {
    const runs = [
      { produce: { p99: 30, p50: 9 }, acks: 'all', topic: 'a', cores: { 1: 0.2 } },
      { produce: { p99: 20, p50: 11 }, acks: 'all', topic: 'b', cores: { 1: 0.4 } },
      { produce: { p99: 50, p50: 10 }, acks: 'all', topic: 'c', cores: { 1: 0.3 } },
      { produce: { p99: 40, p50: 12 }, acks: 'all', topic: 'd', cores: { 1: 0.1 } },
    ];
    expect(medianOfRuns(runs)).toEqual({ produce: { p99: 30, p50: 10 }, acks: 'all', cores: { 1: 0.2 } });
    expect(medianOfRuns([{ a: 1 }])).toEqual({ a: 1 });
  });
});

describe('riffle bench produce --runs', () => {
  it('measures on a fresh node each run and reports every run and the medians', async () => {
    const result = await runCli(['bench', 'produce', '--start-node', '--records', '3000', '--rate', '3000', '--runs', '3', '--no-progress'], { timeoutMs: 120_000 });
    expect(result.code).toBe(0);
    const output = JSON.parse(result.stdout) as { runs: number; records: number; median: ProduceFigures; each: (ProduceFigures & { run: number; topic: string })[] };
    expect(output.runs).toBe(3);
    expect(output.records).toBe(3_000);
    expect(output.each.map((run) => run.run)).toEqual([1, 2, 3]);
    expect(new Set(output.each.map((run) => run.topic)).size).toBe(3);
    const p99s = output.each.map((run) => run.produce.latencyMs.p99).sort((a, b) => a - b);
    expect(output.median.produce.latencyMs.p99).toBe(p99s[1]);
    for (const run of output.each) {
      expect(run.produce.latencyMs.p50).toBeGreaterThan(0);
      expect(run.produce.latencyMs.p50).toBeLessThanOrEqual(run.produce.latencyMs.p99);
      expect(Object.keys(run.cpu.nodeCores)).toEqual(['1']);
    }
  }, 150_000);

  it('refuses --runs below one, or with a fixed topic', async () => {
    const zero = await runCli(['bench', 'produce', '--start-node', '--runs', '0']);
    expect(zero.code).toBe(1);
    expect(zero.stderr).toContain('--runs must be at least 1, not 0');
    const topic = await runCli(['bench', 'produce', '--start-node', '--runs', '2', '--topic', 'fixed']);
    expect(topic.code).toBe(1);
    expect(topic.stderr).toContain('--runs needs a new topic for each run: leave out --topic');
  });
});

function floorRun(p50: number, p99: number): FloorRun {
  return {
    transport: 'grpc', records: 1000, recordsPerSecond: 1000,
    latencyMs: { p50, p90: p99, p99, p999: p99 + 1, max: p99 + 2 },
    cpu: { clientCores: 0.1, relayCores: { 1: 0.1, 2: 0.1, 3: 0.1 }, microsecondsPerRecord: 5 },
  };
}

describe('withFloor', () => {
  it("sets a produce or end-to-end run's latency against the floor's, and refuses a run without latency", () => {
    const produce = withFloor({ produce: { latencyMs: { p50: 10, p99: 45 } } }, floorRun(8, 20)) as Record<string, unknown>;
    expect(produce.latencyOverFloor).toEqual({ p50: 1.25, p99: 2.25 });
    expect(produce.floor).toEqual({ latencyMs: { p50: 8, p99: 20, p999: 21 }, cpu: { relayCores: { 1: 0.1, 2: 0.1, 3: 0.1 }, microsecondsPerRecord: 5 } });
    const endToEnd = withFloor({ endToEnd: { latencyMs: { p50: 12, p99: 30 } } }, floorRun(6, 15)) as Record<string, unknown>;
    expect(endToEnd.latencyOverFloor).toEqual({ p50: 2, p99: 2 });
    expect(() => withFloor({ consume: {} }, floorRun(6, 15))).toThrow('--floor needs a run that measures latency');
  });
});

interface FloorFigures extends ProduceFigures {
  floor: { latencyMs: { p50: number; p99: number; p999: number }; cpu: { relayCores: Record<string, number> } };
  latencyOverFloor: { p50: number; p99: number };
}

function floorDirs(): string[] {
  return readdirSync(os.tmpdir()).filter((name) => name.startsWith('riffle-bench-floor-'));
}

describe('riffle bench produce --floor', () => {
  it("measures the floor after every run at the run's pace and reports the run's latency over it", async () => {
    const before = new Set(floorDirs());
    const result = await runCli(['bench', 'produce', '--start-node', '--records', '3000', '--rate', '3000', '--runs', '2', '--floor', '--no-progress'], { timeoutMs: 120_000 });
    expect(result.code).toBe(0);
    const output = JSON.parse(result.stdout) as { median: FloorFigures; each: FloorFigures[] };
    expect(output.each).toHaveLength(2);
    for (const run of output.each) {
      expect(run.floor.latencyMs.p50).toBeGreaterThan(0);
      expect(run.floor.latencyMs.p50).toBeLessThanOrEqual(run.floor.latencyMs.p99);
      expect(Object.keys(run.floor.cpu.relayCores).sort()).toEqual(['1', '2', '3']);
      expect(run.latencyOverFloor.p99).toBe(Math.round((run.produce.latencyMs.p99 / run.floor.latencyMs.p99) * 100) / 100);
      expect(run.latencyOverFloor.p50).toBe(Math.round((run.produce.latencyMs.p50 / run.floor.latencyMs.p50) * 100) / 100);
    }
    expect(output.median.latencyOverFloor.p99).toBe(Math.min(...output.each.map((run) => run.latencyOverFloor.p99)));
    expect(floorDirs().filter((name) => !before.has(name))).toEqual([]);
  }, 150_000);

  it('refuses --floor without --rate or with a flush policy the floor does not have', async () => {
    const unpaced = await runCli(['bench', 'produce', '--start-node', '--floor']);
    expect(unpaced.code).toBe(1);
    expect(unpaced.stderr).toContain('--floor needs --rate: the floor is measured at the pace of the run');
    const interval = await runCli(['bench', 'produce', '--start-node', '--rate', '1000', '--flush-policy', 'interval', '--floor']);
    expect(interval.code).toBe(1);
    expect(interval.stderr).toContain("--floor needs --flush-policy ack or os, not 'interval'");
  });
});
