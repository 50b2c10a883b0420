// The Kinesis layer's Prometheus metrics (docs/metrics.md): records and bytes in and out per
// stream and shard, throttled requests, iterator age (MillisBehindLatest) and Enhanced Fan-Out
// subscriptions and push latency.
import { Counter, Gauge, Histogram, type Registry } from '../../src/metrics/index.js';

/** Push latency buckets: EFO targets single-digit milliseconds. */
const PUSH_LATENCY_BUCKETS_SECONDS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5];

export class KinesisMetrics {
  readonly incomingBytes: Counter<'stream' | 'shard'>;
  readonly incomingRecords: Counter<'stream' | 'shard'>;
  readonly outgoingBytes: Counter<'stream' | 'shard' | 'api'>;
  readonly outgoingRecords: Counter<'stream' | 'shard' | 'api'>;
  readonly throttled: Counter<'stream' | 'operation'>;
  readonly iteratorAge: Gauge<'stream' | 'shard'>;
  readonly subscriptions: Gauge;
  readonly pushLatency: Histogram;

  constructor(registry: Registry) {
    this.incomingBytes = new Counter({ name: 'riffle_kinesis_incoming_bytes_total', help: 'Record data and partition-key bytes accepted by PutRecord(s), by stream and shard.', labelNames: ['stream', 'shard'], registers: [registry] });
    this.incomingRecords = new Counter({ name: 'riffle_kinesis_incoming_records_total', help: 'Records accepted by PutRecord(s), by stream and shard.', labelNames: ['stream', 'shard'], registers: [registry] });
    this.outgoingBytes = new Counter({ name: 'riffle_kinesis_outgoing_bytes_total', help: 'Record data bytes returned by GetRecords or pushed by SubscribeToShard, by stream, shard and api (get_records or subscribe).', labelNames: ['stream', 'shard', 'api'], registers: [registry] });
    this.outgoingRecords = new Counter({ name: 'riffle_kinesis_outgoing_records_total', help: 'Records returned by GetRecords or pushed by SubscribeToShard, by stream, shard and api.', labelNames: ['stream', 'shard', 'api'], registers: [registry] });
    this.throttled = new Counter({ name: 'riffle_kinesis_throttled_requests_total', help: 'Requests or records refused with ProvisionedThroughputExceededException, or SubscribeToShard calls with LimitExceededException (profile kinesis), by stream and operation.', labelNames: ['stream', 'operation'], registers: [registry] });
    this.iteratorAge = new Gauge({ name: 'riffle_kinesis_iterator_age_milliseconds', help: 'MillisBehindLatest of the latest GetRecords answer or EFO event, by stream and shard.', labelNames: ['stream', 'shard'], registers: [registry] });
    this.subscriptions = new Gauge({ name: 'riffle_kinesis_efo_subscriptions', help: 'Enhanced Fan-Out subscriptions (SubscribeToShard streams) open on this broker.', registers: [registry] });
    this.pushLatency = new Histogram({ name: 'riffle_kinesis_efo_push_latency_seconds', help: 'Time from a record being appended by its leader to its EFO event being written to the subscriber.', buckets: PUSH_LATENCY_BUCKETS_SECONDS, registers: [registry] });
  }
}
