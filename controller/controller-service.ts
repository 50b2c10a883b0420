// The riffle.internal.Controller gRPC service: the writing methods go to the QuorumController
// (which answers NOT_CONTROLLER with a leader hint on a standby), FetchMetadata streams committed
// batches from any controller, and DescribeQuorum reports the Raft view of this controller.
import type * as grpc from '@grpc/grpc-js';
import { NO_NODE, type RaftNode } from '../raft/index.js';
import type { MetadataStateMachine, TailBatch } from './metadata-log.js';
import type { QuorumController } from './quorum-controller.js';
import { unary, type HandlerContext } from '../src/rpc/server.js';
import { RiffleError } from '../src/rpc/errors.js';
import type { QuorumVoter } from '../src/config/node-config.js';
import type { ControllerHandlers } from '../src/rpc/generated/riffle/internal/Controller.js';
import type { FetchMetadataRequest__Output } from '../src/rpc/generated/riffle/internal/FetchMetadataRequest.js';
import type { MetadataDelivery } from '../src/rpc/generated/riffle/internal/MetadataDelivery.js';
import type { DescribeQuorumResponse } from '../src/rpc/generated/riffle/internal/DescribeQuorumResponse.js';

/** Metadata streams one controller serves at once (one per broker is the normal load). */
export const METADATA_STREAMS_MAX = 1_000;
/**
 * How often a metadata stream carries a heartbeat (a delivery without payload) while this
 * controller follows a Raft leader. A broker that hears nothing for a few of these gives up on
 * this controller and follows another (see ControllerClient.followMetadata): a connection to a
 * frozen process can hang before gRPC's keepalive applies, and a controller cut off from the
 * quorum has nothing new to send.
 */
export const METADATA_HEARTBEAT_MS = 1_000;

export interface ControllerServiceDeps {
  controller: QuorumController;
  stateMachine: MetadataStateMachine;
  raft: () => RaftNode;
  voters: QuorumVoter[];
}

export function controllerHandlers(context: HandlerContext, deps: ControllerServiceDeps): Partial<ControllerHandlers> {
  const { controller } = deps;
  let streams = 0;
  return {
    RegisterBroker: unary(context, 'RegisterBroker', (request) => controller.registerBroker(request)),
    BrokerHeartbeat: unary(context, 'BrokerHeartbeat', (request) => controller.brokerHeartbeat(request)),
    AlterPartition: unary(context, 'AlterPartition', (request) => controller.alterPartition(request)),
    AllocateProducerIds: unary(context, 'AllocateProducerIds', (request) => controller.allocateProducerIds(request)),
    CreateTopics: unary(context, 'CreateTopics', (request) => controller.createTopics(request)),
    DeleteTopics: unary(context, 'DeleteTopics', (request) => controller.deleteTopics(request)),
    CreatePartitions: unary(context, 'CreatePartitions', (request) => controller.createPartitions(request)),
    IncrementalAlterConfigs: unary(context, 'IncrementalAlterConfigs', (request) => controller.incrementalAlterConfigs(request)),
    AlterStream: unary(context, 'AlterStream', (request) => controller.alterStream(request)),
    DescribeQuorum: unary(context, 'DescribeQuorum', async () => describeQuorum(deps)),
    FetchMetadata: (call: grpc.ServerWritableStream<FetchMetadataRequest__Output, MetadataDelivery>) => {
      if (streams >= METADATA_STREAMS_MAX) {
        call.emit('error', new RiffleError('LIMIT_EXCEEDED', `${streams} metadata streams are open.`).toServiceError());
        return;
      }
      streams++;
      const stop = streamMetadata(deps, call);
      call.once('cancelled', () => {
        streams--;
        stop();
      });
    },
  };
}

/**
 * Sends what the broker lacks (a snapshot when the tail no longer has it), then every new batch,
 * and a heartbeat every METADATA_HEARTBEAT_MS while this controller knows a Raft leader.
 */
function streamMetadata(deps: ControllerServiceDeps, call: grpc.ServerWritableStream<FetchMetadataRequest__Output, MetadataDelivery>): () => void {
  const { stateMachine, controller } = deps;
  const heartbeat = (): void => {
    if (!call.cancelled && deps.raft().status().leader !== NO_NODE) call.write({ committedOffset: controller.image.offset });
  };
  let next = Math.max(0, call.request.fromOffset);
  const committed = (): number => controller.image.offset;
  const send = (batch: TailBatch): void => {
    if (batch.offset < next) return;
    call.write({ batch: { offset: batch.offset, batch: { records: batch.records as never } }, committedOffset: committed() });
    next = batch.offset + 1;
  };
  const batches = stateMachine.batchesFrom(next);
  if (batches === null) {
    const image = controller.image;
    call.write({ snapshot: image.toSnapshot(), committedOffset: image.offset });
    next = image.offset + 1;
    for (const batch of stateMachine.batchesFrom(next) ?? []) send(batch);
  } else {
    for (const batch of batches) send(batch);
  }
  heartbeat();
  const timer = setInterval(heartbeat, METADATA_HEARTBEAT_MS);
  timer.unref();
  const unsubscribe = stateMachine.subscribe(send);
  return () => {
    clearInterval(timer);
    unsubscribe();
  };
}

function describeQuorum(deps: ControllerServiceDeps): DescribeQuorumResponse {
  const status = deps.raft().status();
  const matches = deps.raft().voterMatches();
  return {
    leaderId: status.leader,
    term: status.term,
    commitOffset: status.commit,
    appliedOffset: status.applied,
    voters: deps.voters.map((voter) => ({ nodeId: voter.nodeId, host: voter.host, port: voter.port, matchOffset: matches?.get(voter.nodeId) ?? -1 })),
  };
}
