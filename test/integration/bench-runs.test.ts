// `riffle bench produce --runs`: the whole measurement is repeated on a fresh node each time, every
// run is reported with its own topic and figures, and the summary holds each figure's median over
// the runs (the lower middle one of an even count); bad --runs values are refused.
import { describe, expect, it } from 'vitest';
import { medianOfRuns } from '../../src/cli/bench-command.js';
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
