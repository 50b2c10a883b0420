// One controller of the quorum: Raft (classic-level storage under <data-dir>/metadata-raft, the
// gRPC transport on the controller listener), the QuorumController replaying the metadata log,
// the Controller service beside Raft on the same listener, and the periodic controller tick
// (fencing, elections). The caller owns the gRPC server: it adds this node's services with
// `ControllerNode.start` and binds the listener afterwards.
import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { GrpcTransport, LevelStorage, RaftNode, type RaftTimingOptions } from '../raft/index.js';
import { controllerHandlers } from './controller-service.js';
import { MetadataStateMachine, RaftMetadataLog } from './metadata-log.js';
import { QuorumController } from './quorum-controller.js';
import type { ControllerConfig } from './controller-config.js';
import type { NodeConfig } from '../src/config/node-config.js';
import type { Registry } from '../src/metrics/index.js';
import { serviceClient } from '../src/rpc/proto.js';
import { RpcMetrics } from '../src/rpc/server.js';
import { systemClock, type Clock } from '../src/util/clock.js';
import type { Logger } from '../src/util/logger.js';

/** How long a stopping active controller waits for its successor to take over. */
export const LEADERSHIP_HANDOFF_WAIT_MS = 2_000;

/** How often the active controller checks sessions and leaderless partitions. */
export const CONTROLLER_TICK_MS = 200;

export interface ControllerNodeOptions {
  config: NodeConfig;
  server: grpc.Server;
  logger: Logger;
  registry: Registry;
  rpcMetrics: RpcMetrics;
  clock?: Clock;
  controllerConfig?: Partial<ControllerConfig>;
  raftTiming?: Partial<RaftTimingOptions>;
}

export class ControllerNode {
  private tickTimer?: NodeJS.Timeout;

  private constructor(
    readonly raft: RaftNode,
    readonly controller: QuorumController,
    readonly stateMachine: MetadataStateMachine,
    private readonly logger: Logger,
  ) {}

  static async start(options: ControllerNodeOptions): Promise<ControllerNode> {
    const { config, logger, registry } = options;
    const voters = config.controllerQuorum;
    const addressOf = (nodeId: number): string | undefined => {
      const voter = voters.find((candidate) => candidate.nodeId === nodeId);
      return voter ? `${voter.host}:${voter.port}` : undefined;
    };
    let raft: RaftNode | undefined;
    const raftNode = (): RaftNode => raft!;
    // The log, the controller and the state machine refer to each other; the closures below
    // are only called once all three exist.
    let stateMachine: MetadataStateMachine | undefined;
    const log = new RaftMetadataLog(raftNode, () => stateMachine!.lastAppliedTerm, addressOf);
    const controller = new QuorumController({ log, clock: options.clock ?? systemClock, logger, registry, config: options.controllerConfig });
    stateMachine = new MetadataStateMachine(controller);
    const storage = await LevelStorage.open(path.join(config.dataDir, 'metadata-raft'));
    const peers = new Map(voters.filter((voter) => voter.nodeId !== config.nodeId).map((voter) => [voter.nodeId, `${voter.host}:${voter.port}`]));
    const transport = new GrpcTransport({
      id: config.nodeId,
      listen: `${config.controllerListen.host}:${config.controllerListen.port}`,
      peers,
      logger,
      server: options.server,
      onDrop: (reason) => raft?.recordDrop(reason),
    });
    raft = new RaftNode({
      id: config.nodeId,
      voters: voters.map((voter) => voter.nodeId),
      storage,
      stateMachine,
      transport,
      logger,
      registry,
      timing: options.raftTiming,
      snapshotEveryEntries: config.metadataSnapshotEntries,
      leaderHint: (leader) => addressOf(leader) ?? String(leader),
    });
    options.server.addService(
      serviceClient('riffle/internal/controller.proto', 'riffle.internal.Controller').service,
      controllerHandlers({ service: 'controller', metrics: options.rpcMetrics, logger }, { controller, stateMachine, raft: raftNode, voters }) as grpc.UntypedServiceImplementation,
    );
    await raft.start();
    const node = new ControllerNode(raft, controller, stateMachine, logger);
    node.tickTimer = setInterval(() => {
      controller.tick().catch((error: unknown) => logger.error({ err: error }, 'controller tick failed'));
    }, CONTROLLER_TICK_MS);
    node.tickTimer.unref();
    return node;
  }

  /** Ready once a leader is known and this controller has applied what it knows is committed. */
  isReady(): boolean {
    const status = this.raft.status();
    return status.leader > 0 && status.applied >= status.commit && this.controller.image.cluster !== null;
  }

  /**
   * Stops the controller. An active controller first hands Raft leadership to another voter
   * (TimeoutNow), so the quorum has a new active controller within a heartbeat or two instead of
   * an election timeout after this node goes quiet.
   */
  async stop(): Promise<void> {
    clearInterval(this.tickTimer);
    await this.handOffLeadership();
    await this.raft.stop();
    this.logger.info('controller stopped');
  }

  private async handOffLeadership(): Promise<void> {
    const status = this.raft.status();
    if (status.role !== 'leader') return;
    const matches = this.raft.voterMatches();
    const successor = [...(matches ?? new Map<number, number>())]
      .filter(([id]) => id !== status.id)
      .sort((a, b) => b[1] - a[1])[0];
    if (!successor || !this.raft.transferLeadership(successor[0])) return;
    const deadline = Date.now() + LEADERSHIP_HANDOFF_WAIT_MS;
    while (Date.now() < deadline && this.raft.status().role === 'leader') await new Promise((resolve) => setTimeout(resolve, 10));
    this.logger.info(`controller handed leadership to node ${successor[0]}`);
  }
}
