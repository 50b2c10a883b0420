// The lease coordinator's Prometheus metrics (docs/metrics.md lists them). Gauges are computed at
// scrape time from the applications of the offsets partitions this broker leads, so only an
// application's coordinator reports it.
import { Counter, Gauge, type Registry } from '../../src/metrics/index.js';
import type { GroupShard } from './group-shard.js';
import type { KinesisApp } from './kinesis-leases.js';

export interface LeaseMetricsSource {
  apps(): KinesisApp[];
  workers(shard: GroupShard, appName: string): number;
  shards(): GroupShard[];
}

export class LeaseMetrics {
  readonly heartbeats: Counter<'outcome'>;
  readonly checkpoints: Counter<'outcome'>;
  readonly leaseMoves: Counter<'reason'>;
  private source?: LeaseMetricsSource;

  constructor(registry: Registry) {
    const metrics = this;
    this.heartbeats = new Counter({ name: 'riffle_kinesis_app_heartbeats_total', help: 'Lease heartbeats of Kinesis-like application workers answered by this coordinator, by outcome (ok or the error name).', labelNames: ['outcome'], registers: [registry] });
    this.checkpoints = new Counter({ name: 'riffle_kinesis_app_checkpoints_total', help: 'Checkpoint calls answered by this coordinator, by outcome (ok or the error name).', labelNames: ['outcome'], registers: [registry] });
    this.leaseMoves = new Counter({ name: 'riffle_kinesis_app_lease_releases_total', help: 'Shard leases freed for another owner, by reason (released: planned move or drained shard, worker_stopped, expired: the failover time passed).', labelNames: ['reason'], registers: [registry] });
    new Gauge({
      name: 'riffle_kinesis_app_applications', help: 'Kinesis-like consumer applications this broker coordinates.', registers: [registry],
      collect() {
        this.set(metrics.source?.apps().filter((app) => app.hasMetadata).length ?? 0);
      },
    });
    new Gauge({
      name: 'riffle_kinesis_app_leases', help: 'Shard leases held by workers, per application this broker coordinates.', labelNames: ['application'], registers: [registry],
      collect() {
        this.reset();
        for (const app of metrics.source?.apps() ?? []) {
          let held = 0;
          for (const value of app.shards.values()) if (value.owner) held += 1;
          this.set({ application: app.appName }, held);
        }
      },
    });
    new Gauge({
      name: 'riffle_kinesis_app_workers', help: 'Workers with a live session, per application this broker coordinates.', labelNames: ['application'], registers: [registry],
      collect() {
        this.reset();
        for (const shard of metrics.source?.shards() ?? []) for (const appName of shard.apps.keys()) this.set({ application: appName }, metrics.source!.workers(shard, appName));
      },
    });
  }

  bind(source: LeaseMetricsSource): void {
    this.source = source;
  }
}
