// The checkpoint and lease methods of the riffle.v1.Kinesis service (a Riffle extension):
// LeaseHeartbeat, Checkpoint and GetCheckpoint, answered by the application's coordinator.
// Failures travel as a typed gRPC status (NOT_COORDINATOR sends the worker to FindCoordinator
// with key type 2; LEASE_NOT_HELD tells a stale owner to stop).
import { unary, type HandlerContext } from '../../src/rpc/server.js';
import type { KinesisHandlers } from '../../src/rpc/generated/riffle/v1/Kinesis.js';
import type { LeaseHeartbeatRequest__Output } from '../../src/rpc/generated/riffle/v1/LeaseHeartbeatRequest.js';
import type { LeaseHeartbeatResponse } from '../../src/rpc/generated/riffle/v1/LeaseHeartbeatResponse.js';
import type { CheckpointRequest__Output } from '../../src/rpc/generated/riffle/v1/CheckpointRequest.js';
import type { CheckpointResponse } from '../../src/rpc/generated/riffle/v1/CheckpointResponse.js';
import type { GetCheckpointRequest__Output } from '../../src/rpc/generated/riffle/v1/GetCheckpointRequest.js';
import type { GetCheckpointResponse } from '../../src/rpc/generated/riffle/v1/GetCheckpointResponse.js';
import type { LeaseCoordinator } from './lease-coordinator.js';

export function leaseHandlers(context: HandlerContext, leases: LeaseCoordinator): Partial<KinesisHandlers> {
  return {
    LeaseHeartbeat: unary(context, 'LeaseHeartbeat', async (request: LeaseHeartbeatRequest__Output): Promise<LeaseHeartbeatResponse> => {
      const outcome = await leases.heartbeat({
        appName: request.applicationName, streamName: request.streamName, workerId: request.workerId, ownedShardIds: request.ownedShardIds,
        drained: request.drainedShards.map((drained) => ({ shardId: drained.shardId, leaseEpoch: drained.leaseEpoch })),
        failoverTimeMs: request.failoverTimeMs, leaving: request.leaving,
      });
      return { leases: outcome.leases, releaseShardIds: outcome.release, heartbeatIntervalMs: outcome.heartbeatIntervalMs, failoverTimeMs: outcome.failoverTimeMs };
    }),
    Checkpoint: unary(context, 'Checkpoint', async (request: CheckpointRequest__Output): Promise<CheckpointResponse> => {
      await leases.checkpoint({
        appName: request.applicationName, streamName: request.streamName, shardId: request.shardId, workerId: request.workerId, leaseEpoch: request.leaseEpoch, sequenceNumber: request.sequenceNumber,
      });
      return {};
    }),
    GetCheckpoint: unary(context, 'GetCheckpoint', async (request: GetCheckpointRequest__Output): Promise<GetCheckpointResponse> => {
      const { app, shards, workers } = leases.describe(request.applicationName, request.streamName, request.shardId);
      return {
        shards: shards.map(([shardId, value]) => ({ shardId, checkpoint: value.checkpoint, leaseOwner: value.owner, leaseEpoch: value.leaseEpoch, checkpointTimestampMs: value.checkpointTimestampMs })),
        workers, failoverTimeMs: app.failoverTimeMs,
      };
    }),
  };
}
