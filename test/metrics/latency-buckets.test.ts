// The shared latency buckets: finer between 5 and 100 ms, with edges at the 20 and 30 ms p99
// targets, so the share of requests within a target is read off one bucket.
import { describe, expect, it } from 'vitest';
import { LATENCY_BUCKETS_SECONDS, createNodeRegistry } from '../../src/metrics/index.js';
import { RpcMetrics } from '../../src/rpc/server.js';

describe('latency buckets', () => {
  it('ascend from 100 µs to 10 s with edges at the 20 and 30 ms targets', () => {
    expect(LATENCY_BUCKETS_SECONDS[0]).toBe(0.0001);
    expect(LATENCY_BUCKETS_SECONDS.at(-1)).toBe(10);
    for (let index = 1; index < LATENCY_BUCKETS_SECONDS.length; index++) expect(LATENCY_BUCKETS_SECONDS[index]).toBeGreaterThan(LATENCY_BUCKETS_SECONDS[index - 1]!);
    expect(LATENCY_BUCKETS_SECONDS).toEqual(expect.arrayContaining([0.0075, 0.015, 0.02, 0.03, 0.04, 0.075]));
  });

  it('count a 18 ms request under 20 ms and not under 15 ms in the exposition', async () => {
    const registry = createNodeRegistry({ nodeId: 7 });
    const metrics = new RpcMetrics(registry);
    metrics.latency.observe({ service: 'riffle.v1.Kafka', method: 'ProduceStream' }, 0.018);
    metrics.latency.observe({ service: 'riffle.v1.Kafka', method: 'ProduceStream' }, 0.027);
    const text = await registry.metrics();
    const bucket = (le: string): number => {
      const line = text.split('\n').find((candidate) => candidate.startsWith('riffle_rpc_request_duration_seconds_bucket{') && candidate.includes(`le="${le}"`) && candidate.includes('method="ProduceStream"'));
      return Number(line?.split(' ').at(-1));
    };
    expect(bucket('0.015')).toBe(0);
    expect(bucket('0.02')).toBe(1);
    expect(bucket('0.025')).toBe(1);
    expect(bucket('0.03')).toBe(2);
  });
});
