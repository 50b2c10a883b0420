// The controller's Prometheus metrics. Gauges are computed from the current image when scraped
// (a scan of the partitions, cheap next to a scrape interval), so they can never drift from the
// metadata; only request latency is recorded as it happens.
import { Gauge, Histogram, LATENCY_BUCKETS_SECONDS, type Registry } from '../src/metrics/index.js';
import type { MetadataImage } from './metadata-image.js';

/** What the metrics read from the controller at scrape time. */
export interface ControllerMetricsSource {
  image(): MetadataImage;
  isActive(): boolean;
  /** Per broker: the controller's offset minus the metadata offset of its last heartbeat (active only). */
  brokerMetadataLags(): ReadonlyMap<number, number>;
}

export class ControllerMetrics {
  private readonly requestDuration: Histogram<'method'>;

  constructor(registry: Registry, source: ControllerMetricsSource) {
    const registers = [registry];
    const gauge = (name: string, help: string, value: () => number): void => {
      new Gauge({ name, help, registers, collect() { this.set(value()); } });
    };
    gauge('riffle_controller_active', '1 on the active controller, 0 on standbys', () => (source.isActive() ? 1 : 0));
    gauge('riffle_controller_fenced_brokers', 'registered brokers that are fenced', () => source.image().fencedBrokers().length);
    gauge('riffle_controller_offline_partitions', 'partitions without a leader (open, or closed stream shards)', () => source.image().offline().length);
    gauge('riffle_controller_under_replicated_partitions', 'partitions whose ISR is smaller than their replica set',
      () => source.image().underReplicated().length);
    gauge('riffle_controller_metadata_offset', 'metadata offset of the last applied batch', () => source.image().offset);
    new Gauge({
      name: 'riffle_controller_broker_metadata_lag', help: 'metadata offsets a broker is behind, from its last heartbeat (active controller only)',
      labelNames: ['broker'], registers,
      collect() {
        this.reset();
        for (const [broker, lag] of source.brokerMetadataLags()) this.set({ broker: String(broker) }, lag);
      },
    });
    this.requestDuration = new Histogram({
      name: 'riffle_controller_request_duration_seconds', help: 'time to answer a controller request, including the metadata commit',
      labelNames: ['method'], buckets: LATENCY_BUCKETS_SECONDS, registers,
    });
  }

  observeRequest(method: string, seconds: number): void {
    this.requestDuration.observe({ method }, seconds);
  }
}
