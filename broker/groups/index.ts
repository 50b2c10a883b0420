// The consumer group coordinator (KIP-848) and its offsets topic: the surface the node wiring uses.
export { GroupCoordinator, GROUP_TICK_MS, RECONCILING_HEARTBEAT_INTERVAL_MS, type GroupCoordinatorConfig } from './group-coordinator.js';
export { GroupMetrics } from './group-metrics.js';
export { LagSampler, LAG_SAMPLE_INTERVAL_MS } from './lag-sampler.js';
export { groupHandlers, type GroupServiceDeps } from './group-service.js';
export { ASSIGNORS, DEFAULT_ASSIGNOR, rangeAssignor, uniformAssignor, type PartitionAssignor } from './assignors.js';
export { offsetsPartitionFor } from './offsets-records.js';
export { LeaseCoordinator, LEASE_TICK_MS } from './lease-coordinator.js';
export { LeaseMetrics } from './lease-metrics.js';
export { leaseHandlers } from './lease-service.js';
