// `riffle bench floor`: three relay processes carry a short paced run over both transports (each
// relay also spending --work-us on every batch), every record is acknowledged and measured, and
// the relays leave nothing behind.
import { readdirSync } from 'node:fs';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cluster.js';

interface FloorRun {
  transport: string;
  records: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number };
  cpu: { relayCores: Record<string, number> };
}

function relayDirs(): string[] {
  return readdirSync(os.tmpdir()).filter((name) => name.startsWith('riffle-bench-floor-'));
}

describe('riffle bench floor', () => {
  it('measures every record over TCP and over gRPC, then stops its relays', async () => {
    const before = new Set(relayDirs());
    const result = await runCli(['bench', 'floor', '--seconds', '1', '--warmup-seconds', '1', '--rate', '4000', '--work-us', '200'], { timeoutMs: 60_000 });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const output = JSON.parse(result.stdout) as { flush: string; workMicrosecondsPerBatch: number; runs: FloorRun[] };
    expect(output.flush).toBe('ack');
    expect(output.workMicrosecondsPerBatch).toBe(200);
    expect(output.runs.map((run) => run.transport)).toEqual(['tcp', 'grpc']);
    for (const run of output.runs) {
      expect(run.records).toBe(4_000);
      expect(run.latencyMs.p50).toBeGreaterThan(0);
      expect(run.latencyMs.p50).toBeLessThanOrEqual(run.latencyMs.p99);
      expect(run.latencyMs.p99).toBeLessThanOrEqual(run.latencyMs.max);
      expect(Object.keys(run.cpu.relayCores).sort()).toEqual(['1', '2', '3']);
    }
    expect(relayDirs().filter((name) => !before.has(name))).toEqual([]);
  }, 90_000);

  it('refuses an unknown transport or flush with a clear error', async () => {
    const transport = await runCli(['bench', 'floor', '--transport', 'udp', '--seconds', '1']);
    expect(transport.code).toBe(1);
    expect(transport.stderr).toContain("--transport must be tcp, grpc or both, not 'udp'");
    const flush = await runCli(['bench', 'floor', '--flush', 'never', '--seconds', '1']);
    expect(flush.code).toBe(1);
    expect(flush.stderr).toContain("--flush must be ack or os, not 'never'");
  });
});
