// Assembles one Riffle node from its roles. A controller runs Raft and the QuorumController on
// --controller-listen; a broker follows the controller's metadata, registers and heartbeats,
// hosts the partition replicas the metadata assigns it, and serves the Kafka and Admin services
// on --listen. A combined node does both (KRaft's combined mode). Every node serves /metrics,
// /healthz and /readyz on --http.
//
// Shutdown: a broker first asks the controller to move its leaderships away (controlled
// shutdown), then stops accepting calls, lets those in flight finish within the grace period,
// and flushes and closes every log; a controller stops Raft last.
import * as grpc from '@grpc/grpc-js';
import { ControllerNode } from '../controller/controller-node.js';
import type { ControllerConfig } from '../controller/index.js';
import type { RaftTimingOptions } from '../raft/index.js';
import { adminHandlers } from './admin-service.js';
import { BrokerLifecycle } from './broker-lifecycle.js';
import { ImageClusterView } from './cluster-view.js';
import { ControllerClient } from './controller-client.js';
import { FetchPurgatory } from './fetch-purgatory.js';
import { DataPlaneMetrics, kafkaHandlers } from './kafka-service.js';
import { KinesisService } from './kinesis/kinesis-service.js';
import { brokerProducerIds } from './producer-ids.js';
import { registerProducerStateGauge } from './producer-state.js';
import { MetadataCache } from './metadata-cache.js';
import { loadOrCreateIdentity } from './node-identity.js';
import { ReplicaManager, type AlterIsrAnswer } from './replica-manager.js';
import { ReplicaFetcherManager } from './replica-fetcher.js';
import { outOfIsrReason, replicasOutOfIsr } from './replica-readiness.js';
import { ReplicationServiceMetrics, replicationHandlers } from './replication-service.js';
import { GroupCoordinator, GroupMetrics, LagSampler, LeaseCoordinator, LeaseMetrics, groupHandlers, leaseHandlers } from './groups/index.js';
import type { IsrProposal, Partition } from './partition.js';
import { RiffleError, errorNameOf } from '../src/rpc/errors.js';
import type { AlterPartitionResponse__Output } from '../src/rpc/generated/riffle/internal/AlterPartitionResponse.js';
import { dialAddress, type NodeConfig } from '../src/config/node-config.js';
import { Counter, createNodeRegistry, Gauge, type Registry } from '../src/metrics/index.js';
import { NodeHttpServer, type Readiness } from '../src/metrics/http-server.js';
import { serviceClient } from '../src/rpc/proto.js';
import { OpenStreams, RpcMetrics, bindServer, serverOptions, shutdownServer } from '../src/rpc/server.js';
import { systemClock, type Clock } from '../src/util/clock.js';
import type { Logger } from '../src/util/logger.js';

export interface RiffleNodeOptions {
  config: NodeConfig;
  logger: Logger;
  clock?: Clock;
  registry?: Registry;
  controllerConfig?: Partial<ControllerConfig>;
  raftTiming?: Partial<RaftTimingOptions>;
}

/** How long a stopping broker waits for the controller to move its leaderships away. */
export const CONTROLLED_SHUTDOWN_WAIT_MS = 10_000;

interface BrokerParts {
  server: grpc.Server;
  /** Open server streams (replica fetches, pipelined produce), ended first on stop. */
  openStreams: OpenStreams;
  port: number;
  controllerClient: ControllerClient;
  metadata: MetadataCache;
  replicas: ReplicaManager;
  lifecycle: BrokerLifecycle;
  retentionTimer: NodeJS.Timeout;
  groups: GroupCoordinator;
  leases: LeaseCoordinator;
  kinesis: KinesisService;
}

interface ControllerParts {
  server: grpc.Server;
  port: number;
  node: ControllerNode;
}

export class RiffleNode {
  private state: 'serving' | 'stopping' | 'stopped' = 'serving';

  private constructor(
    readonly config: NodeConfig,
    readonly registry: Registry,
    private readonly logger: Logger,
    private readonly httpServer: NodeHttpServer,
    readonly broker: BrokerParts | undefined,
    readonly controller: ControllerParts | undefined,
  ) {}

  static async start(options: RiffleNodeOptions): Promise<RiffleNode> {
    const { config, logger } = options;
    const clock = options.clock ?? systemClock;
    const registry = options.registry ?? createNodeRegistry({ nodeId: config.nodeId });
    await loadOrCreateIdentity(config.dataDir, config.nodeId);
    const rpcMetrics = new RpcMetrics(registry);
    const controller = config.roles.includes('controller') ? await startController(options, registry, rpcMetrics, clock) : undefined;
    const broker = config.roles.includes('broker') ? await startBroker(options, registry, rpcMetrics, clock) : undefined;
    let node: RiffleNode | undefined;
    const httpServer = await NodeHttpServer.start({
      host: config.http.host,
      port: config.http.port,
      registry,
      readiness: () => node?.readiness() ?? { ready: false, reasons: ['starting'] },
    });
    node = new RiffleNode(config, registry, logger, httpServer, broker, controller);
    logger.info({ grpcPort: broker?.port, controllerPort: controller?.port, httpPort: httpServer.port }, `node ${config.nodeId} started with roles ${config.roles.join(',')}`);
    return node;
  }

  get httpPort(): number {
    return this.httpServer.port;
  }

  /**
   * Ready when every role is: the controller knows a leader and has applied what is committed; the
   * broker is registered, unfenced, caught up with the metadata log, and back in the ISR of every
   * partition it replicates that has a leader (so a rolling restart that waits for readiness never
   * takes a partition below min.insync.replicas).
   */
  readiness(): Readiness {
    const reasons: string[] = [];
    if (this.state !== 'serving') reasons.push(`node is ${this.state}`);
    if (this.controller && !this.controller.node.isReady()) reasons.push('controller has no leader or has not applied the committed metadata');
    if (this.broker) {
      if (this.broker.lifecycle.state !== 'active') reasons.push(`broker is ${this.broker.lifecycle.state}`);
      if (!this.broker.metadata.caughtUp) reasons.push('broker metadata is behind the controller');
      else {
        const outOfIsr = outOfIsrReason(replicasOutOfIsr(this.broker.metadata.image, this.config.nodeId));
        if (outOfIsr) reasons.push(outOfIsr);
      }
    }
    return { ready: reasons.length === 0, reasons };
  }

  async stop(): Promise<void> {
    if (this.state !== 'serving') return;
    this.state = 'stopping';
    this.logger.info(`node ${this.config.nodeId} stopping`);
    if (this.broker) await stopBroker(this.broker, this.config, this.logger);
    if (this.controller) {
      await this.controller.node.stop();
      await shutdownServer(this.controller.server, 1_000);
    }
    await this.httpServer.close();
    this.state = 'stopped';
    this.logger.info(`node ${this.config.nodeId} stopped`);
  }
}

async function startController(options: RiffleNodeOptions, registry: Registry, rpcMetrics: RpcMetrics, clock: Clock): Promise<ControllerParts> {
  const { config, logger } = options;
  const server = new grpc.Server(serverOptions(64 * 1024 * 1024));
  const node = await ControllerNode.start({
    config, server, logger, registry, rpcMetrics, clock,
    controllerConfig: { offsetsTopicPartitions: config.offsetsTopicPartitions, ...options.controllerConfig }, raftTiming: options.raftTiming,
  });
  const port = await bindServer(server, config.controllerListen.host, config.controllerListen.port);
  return { server, port, node };
}

async function startBroker(options: RiffleNodeOptions, registry: Registry, rpcMetrics: RpcMetrics, clock: Clock): Promise<BrokerParts> {
  const { config, logger } = options;
  const dial = (address: string): string => dialAddress(config, address);
  const controllerClient = new ControllerClient(config.controllerQuorum, logger, dial);
  const metadata = new MetadataCache();
  let lifecycle: BrokerLifecycle | undefined;
  const progressReports = new Counter({
    name: 'riffle_broker_replica_progress_reports_total',
    help: 'Progress reports this broker wrote as a follower: a flush completed while its next replica fetch was parked at the leader.',
    registers: [registry],
  });
  const fetchRounds = new Counter({
    name: 'riffle_broker_replica_fetch_rounds_total',
    help: 'Replica fetch rounds this broker sent as a follower.',
    registers: [registry],
  });
  const fetchRoundPartitions = new Counter({
    name: 'riffle_broker_replica_fetch_round_partitions_total',
    help: 'Partitions named in the replica fetch rounds this broker sent as a follower (in a fetch session, only those whose position moved).',
    registers: [registry],
  });
  const fetchers = new ReplicaFetcherManager({
    selfId: config.nodeId, brokerEpoch: () => lifecycle?.brokerEpoch ?? -1, logger, dial, onProgressReport: () => progressReports.inc(),
    onRound: (partitions) => {
      fetchRounds.inc();
      fetchRoundPartitions.inc(partitions);
    },
  });
  const alterIsr = async (partition: Partition, proposal: IsrProposal): Promise<AlterIsrAnswer> => {
    const response = await controllerClient.call<AlterPartitionResponse__Output>('AlterPartition', {
      brokerId: config.nodeId,
      brokerEpoch: lifecycle?.brokerEpoch ?? -1,
      topicId: partition.topicId,
      partition: partition.index,
      leaderEpoch: proposal.leaderEpoch,
      partitionEpoch: proposal.partitionEpoch,
      newIsrWithEpochs: proposal.isr.map((id) => ({ brokerId: id, brokerEpoch: id === config.nodeId ? lifecycle?.brokerEpoch ?? -1 : proposal.followerEpochs.get(id) ?? -1 })),
    });
    const error = response.errorCode === 0 ? null : new RiffleError(errorNameOf(response.errorCode), response.errorMessage || undefined);
    // Without the controller's copy of the partition the answer settles nothing.
    if (!response.partition) throw error ?? new Error('AlterPartition answered without the partition');
    return { error, partitionEpoch: response.partition.partitionEpoch };
  };
  const replicas = new ReplicaManager({ selfId: config.nodeId, dataDir: config.dataDir, clock, logger, registry, fetchers, alterIsr, replicaLagTimeMs: config.replicaLagTimeMaxMs });
  replicas.startIsrMaintenance();
  replicas.startScrubber(config.logScrubBytesPerSecond);
  // Replicas act only on an image that has caught up with the controller: the intermediate images
  // a restarting broker replays hold roles long superseded (as Kafka brokers wait to catch up).
  // The active controller's word that the broker caught up (a heartbeat answer) opens the gate:
  // the image may come from a controller that is itself behind, whose own idea of "committed"
  // is stale.
  const syncReplicas = (): void => {
    if (!metadata.caughtUp || !lifecycle?.hasCaughtUp) return;
    replicas.sync(metadata.image).catch((error: unknown) => logger.error({ err: error }, 'replica sync failed'));
  };
  metadata.onChange(syncReplicas);
  const deliveries = new Counter({
    name: 'riffle_broker_metadata_deliveries_total',
    help: 'Metadata deliveries from the controller, by kind (snapshot, batch, or heartbeat: a delivery without payload).',
    labelNames: ['kind'],
    registers: [registry],
  });
  const silentStreams = new Counter({
    name: 'riffle_broker_metadata_streams_silent_total',
    help: 'Metadata streams given up because the controller sent nothing, not even a heartbeat, for 5 s.',
    registers: [registry],
  });
  controllerClient.followMetadata(config.nodeId, () => metadata.offset + 1, (delivery) => {
    metadata.apply(delivery);
    deliveries.inc({ kind: delivery.snapshot ? 'snapshot' : delivery.batch ? 'batch' : 'heartbeat' });
  }, () => silentStreams.inc());
  lifecycle = new BrokerLifecycle(config, controllerClient, () => metadata.offset, logger);
  lifecycle.onCaughtUp(syncReplicas);
  lifecycle.start();
  const cluster = new ImageClusterView(config.nodeId, () => metadata.image, () => controllerClient.activeControllerId());
  const purgatory = new FetchPurgatory();
  registerBrokerGauges(registry, purgatory, metadata, lifecycle);
  registerProducerStateGauge(registry, () => replicas.allPartitions());
  const groups = new GroupCoordinator({
    selfId: config.nodeId, replicas, image: () => metadata.image, logger, metrics: new GroupMetrics(registry),
    lag: new LagSampler(config.nodeId, replicas, () => metadata.image, logger),
    config: { sessionTimeoutMs: config.groupSessionTimeoutMs, heartbeatIntervalMs: config.groupHeartbeatIntervalMs, offsetsRetentionMs: config.offsetsRetentionMs },
  });
  // A new leadership of an offsets partition loads its groups; a lost one drops them.
  replicas.onSynced(() => groups.syncLeadership());
  groups.start();
  const leases = new LeaseCoordinator({ groups, image: () => metadata.image, logger, metrics: new LeaseMetrics(registry) });
  leases.start();
  // Keepalive pings every 4 s (answered within 4 s) let the broker notice a half-open client, such
  // as a vanished Enhanced Fan-Out subscriber, within 10 s.
  const server = new grpc.Server({ ...serverOptions(config.requestBytesMax), 'grpc.keepalive_time_ms': 4_000, 'grpc.keepalive_timeout_ms': 4_000 });
  const openStreams = new OpenStreams();
  const kafkaContext = { service: 'kafka', metrics: rpcMetrics, logger };
  server.addService(
    serviceClient('riffle/v1/kafka.proto', 'riffle.v1.Kafka').service,
    {
      ...kafkaHandlers(kafkaContext, {
        cluster, replicas, purgatory, metrics: new DataPlaneMetrics(registry), logger, requestBytesMax: config.requestBytesMax, streams: openStreams, standing: lifecycle,
        producerIds: brokerProducerIds({ registry, controller: controllerClient, brokerId: config.nodeId, brokerEpoch: () => lifecycle?.brokerEpoch ?? -1, allocatedEnd: () => metadata.image.nextProducerId, logger }),
      }),
      ...groupHandlers(kafkaContext, { coordinator: groups, cluster }),
    } as grpc.UntypedServiceImplementation,
  );
  server.addService(
    serviceClient('riffle/v1/admin.proto', 'riffle.v1.Admin').service,
    adminHandlers({ service: 'admin', metrics: rpcMetrics, logger }, { cluster, controller: controllerClient, metadata, replicas }) as grpc.UntypedServiceImplementation,
  );
  const kinesis = new KinesisService({
    cluster, controller: controllerClient, metadata, replicas, registry, logger,
    subscriptionMs: config.kinesisSubscriptionMs, heartbeatMs: config.kinesisHeartbeatMs, iteratorTtlMs: config.kinesisIteratorTtlMs, onDemandCheckMs: config.kinesisOnDemandCheckMs,
  });
  server.addService(
    serviceClient('riffle/v1/kinesis.proto', 'riffle.v1.Kinesis').service,
    {
      ...kinesis.handlers({ service: 'kinesis', metrics: rpcMetrics, logger }),
      ...leaseHandlers({ service: 'kinesis', metrics: rpcMetrics, logger }, leases),
    } as grpc.UntypedServiceImplementation,
  );
  server.addService(
    serviceClient('riffle/internal/replication.proto', 'riffle.internal.Replication').service,
    replicationHandlers({ service: 'replication', metrics: rpcMetrics, logger }, { replicas, logger, streams: openStreams, metrics: new ReplicationServiceMetrics(registry) }) as grpc.UntypedServiceImplementation,
  );
  const port = await bindServer(server, config.listen.host, config.listen.port);
  const retentionTimer = setInterval(() => {
    const deleted = replicas.applyRetention();
    if (deleted > 0) logger.info({ segments: deleted }, 'retention deleted segments');
  }, config.retentionCheckIntervalMs);
  retentionTimer.unref();
  return { server, openStreams, port, controllerClient, metadata, replicas, lifecycle, retentionTimer, groups, leases, kinesis };
}

async function stopBroker(broker: BrokerParts, config: NodeConfig, logger: Logger): Promise<void> {
  const moved = await broker.lifecycle.controlledShutdown(CONTROLLED_SHUTDOWN_WAIT_MS);
  if (!moved) logger.warn('controlled shutdown did not complete; stopping anyway');
  clearInterval(broker.retentionTimer);
  // Followers' fetch streams and clients' produce streams never end by themselves; they would hold
  // the server for the grace. (Produce streams end once their requests in flight are answered.)
  broker.openStreams.endAll();
  // EFO subscriptions would hold the server for the grace too; their clients resubscribe elsewhere.
  broker.kinesis.close();
  // Long-poll heartbeats held by the coordinator would too; closing it answers them NOT_COORDINATOR
  // at once, and their members find the new coordinator.
  broker.groups.close();
  await shutdownServer(broker.server, config.shutdownGraceMs);
  broker.leases.close();
  broker.lifecycle.stop();
  broker.controllerClient.close();
  await broker.replicas.close();
}

function registerBrokerGauges(registry: Registry, purgatory: FetchPurgatory, metadata: MetadataCache, lifecycle: BrokerLifecycle): void {
  new Gauge({
    name: 'riffle_broker_good_standing',
    help: "1 while the controller's last unfenced heartbeat answer vouches for this broker (within the session timeout of sending it, and this broker's metadata has reached the answer's offset); 0 otherwise.",
    registers: [registry],
    collect() {
      this.set(lifecycle.inGoodStanding ? 1 : 0);
    },
  });
  new Gauge({
    name: 'riffle_broker_fetch_parked',
    help: 'Long-polling fetches waiting for data.',
    registers: [registry],
    collect() {
      this.set(purgatory.parkedCount);
    },
  });
  new Gauge({
    name: 'riffle_broker_metadata_offset',
    help: 'The metadata offset this broker has applied.',
    registers: [registry],
    collect() {
      this.set(metadata.offset);
    },
  });
  new Gauge({
    name: 'riffle_broker_metadata_lag',
    help: "How far this broker's metadata is behind the controller's committed offset, in offsets.",
    registers: [registry],
    collect() {
      this.set(Math.max(0, metadata.committedOffset - metadata.offset));
    },
  });
}
