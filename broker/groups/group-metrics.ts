// The group coordinator's Prometheus metrics (docs/metrics.md lists them). Gauges are computed
// at scrape time from the shards this broker has loaded, so only the coordinator of a group
// reports it, and a group moves with its coordinator.
import { Counter, Gauge, Histogram, type Registry } from '../../src/metrics/index.js';
import { groupStateOf, type GroupState } from './consumer-group.js';
import type { PartitionLag } from './lag-sampler.js';

export interface GroupMetricsSource {
  groups(): GroupState[];
  loadedPartitions(): number;
  parkedHeartbeats(): number;
  lag(): ReadonlyMap<string, PartitionLag[]>;
}

const GROUP_STATES = ['empty', 'assigning', 'reconciling', 'stable'] as const;
const DURATION_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class GroupMetrics {
  readonly heartbeats: Counter<'outcome'>;
  readonly commits: Counter<'outcome'>;
  readonly rebalances: Counter;
  readonly rebalanceDuration: Histogram;
  readonly assignmentDuration: Histogram;
  readonly loadDuration: Histogram;
  readonly membersRemoved: Counter<'reason'>;
  readonly offsetsExpired: Counter;
  readonly parkedHeartbeatEnds: Counter<'end'>;
  private source?: GroupMetricsSource;

  constructor(registry: Registry) {
    const metrics = this;
    this.heartbeats = new Counter({ name: 'riffle_group_heartbeats_total', help: 'ConsumerGroupHeartbeat calls answered by this coordinator, by outcome (ok or the error name).', labelNames: ['outcome'], registers: [registry] });
    this.commits = new Counter({ name: 'riffle_group_offset_commits_total', help: 'Partition offsets committed through this coordinator, by outcome (ok or the error name).', labelNames: ['outcome'], registers: [registry] });
    this.rebalances = new Counter({ name: 'riffle_group_rebalances_total', help: 'Group epoch bumps (membership, subscription or partition changes) on groups this broker coordinates.', registers: [registry] });
    this.rebalanceDuration = new Histogram({ name: 'riffle_group_rebalance_duration_seconds', help: 'From a group epoch bump until every member reconciled to the new target assignment.', buckets: DURATION_BUCKETS, registers: [registry] });
    this.assignmentDuration = new Histogram({ name: 'riffle_group_assignment_duration_seconds', help: 'Time the server-side assignor took to compute a target assignment.', buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1], registers: [registry] });
    this.loadDuration = new Histogram({ name: 'riffle_group_coordinator_load_duration_seconds', help: 'Time to replay one __consumer_offsets partition on becoming its leader.', buckets: DURATION_BUCKETS, registers: [registry] });
    this.membersRemoved = new Counter({ name: 'riffle_group_members_removed_total', help: 'Members removed by the coordinator, by reason (session_timeout or rebalance_timeout).', labelNames: ['reason'], registers: [registry] });
    this.offsetsExpired = new Counter({ name: 'riffle_group_offsets_expired_total', help: 'Committed offsets deleted by retention after their group stayed empty.', registers: [registry] });
    new Gauge({
      name: 'riffle_group_groups', help: 'Consumer groups this broker coordinates, by state.', labelNames: ['state'], registers: [registry],
      collect() {
        const counts = new Map<string, number>(GROUP_STATES.map((state) => [state, 0]));
        for (const group of metrics.source?.groups() ?? []) counts.set(groupStateOf(group), counts.get(groupStateOf(group))! + 1);
        for (const [state, count] of counts) this.set({ state }, count);
      },
    });
    this.parkedHeartbeatEnds = new Counter({
      name: 'riffle_group_parked_heartbeats_total', help: 'Long-poll heartbeats this coordinator held, by how the hold ended (changed, timeout, superseded, cancelled, unloaded).',
      labelNames: ['end'], registers: [registry],
    });
    new Gauge({
      name: 'riffle_group_heartbeats_parked', help: 'Long-poll heartbeats this coordinator holds now.', registers: [registry],
      collect() {
        this.set(metrics.source?.parkedHeartbeats() ?? 0);
      },
    });
    new Gauge({
      name: 'riffle_group_members', help: 'Members of each group this broker coordinates.', labelNames: ['group'], registers: [registry],
      collect() {
        this.reset();
        for (const group of metrics.source?.groups() ?? []) if (group.hasMetadata) this.set({ group: group.groupId }, group.members.size);
      },
    });
    new Gauge({
      name: 'riffle_group_coordinator_partitions', help: '__consumer_offsets partitions this broker leads and has loaded.', registers: [registry],
      collect() {
        this.set(metrics.source?.loadedPartitions() ?? 0);
      },
    });
    new Gauge({
      name: 'riffle_group_lag_records', help: 'Records between a group\'s committed offset and the high watermark, per group and partition (sampled every 5 s by the coordinator).',
      labelNames: ['group', 'topic', 'partition'], registers: [registry],
      collect() {
        this.reset();
        for (const [group, lags] of metrics.source?.lag() ?? []) {
          for (const lag of lags) if (lag.lagRecords >= 0) this.set({ group, topic: lag.topic, partition: String(lag.partition) }, lag.lagRecords);
        }
      },
    });
    new Gauge({
      name: 'riffle_group_lag_seconds', help: 'Age of the oldest record a group has not consumed (0 when caught up), per group and partition (sampled every 5 s by the coordinator).',
      labelNames: ['group', 'topic', 'partition'], registers: [registry],
      collect() {
        this.reset();
        for (const [group, lags] of metrics.source?.lag() ?? []) {
          for (const lag of lags) if (lag.lagMs >= 0) this.set({ group, topic: lag.topic, partition: String(lag.partition) }, lag.lagMs / 1000);
        }
      },
    });
  }

  bind(source: GroupMetricsSource): void {
    this.source = source;
  }
}
