// Prometheus metrics. Each node owns one registry (several nodes may share a process in tests),
// and every component registers its metrics on the registry it is handed. Names follow
// riffle_<area>_<what>_<unit>; docs/metrics.md lists every one.
import { Registry, collectDefaultMetrics } from 'prom-client';

export { Counter, Gauge, Histogram, Summary, Registry } from 'prom-client';

export function createNodeRegistry(labels: { nodeId: number }): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ node: String(labels.nodeId) });
  collectDefaultMetrics({ register: registry, prefix: 'riffle_process_' });
  return registry;
}

/**
 * Latency buckets in seconds, from 100 µs to 10 s; finer from 5 to 100 ms, where produce and
 * end-to-end latency live: the 20 and 30 ms edges let a rule count the requests within those
 * targets exactly instead of interpolating between 10 and 25 or 25 and 50 ms.
 */
export const LATENCY_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
