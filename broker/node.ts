// Assembles one broker node: identity, topic catalogue, partition logs, the Kafka and Admin gRPC
// services, the HTTP listener for metrics and health, and the retention timer. Shutdown stops
// accepting calls, lets those in flight finish within the grace period, then flushes and closes
// every log so the next start needs no recovery.
import * as grpc from '@grpc/grpc-js';
import { SingleNodeCluster } from './cluster-view.js';
import { FetchPurgatory } from './fetch-purgatory.js';
import { DataPlaneMetrics, kafkaHandlers } from './kafka-service.js';
import { adminHandlers } from './admin-service.js';
import { loadOrCreateIdentity, type NodeIdentity } from './node-identity.js';
import { ReplicaManager } from './replica-manager.js';
import { TopicManager } from './topic-manager.js';
import { TopicStore } from './topic-store.js';
import type { NodeConfig } from '../src/config/node-config.js';
import { createNodeRegistry, Gauge, type Registry } from '../src/metrics/index.js';
import { NodeHttpServer } from '../src/metrics/http-server.js';
import { serviceClient } from '../src/rpc/proto.js';
import { RpcMetrics, bindServer, serverOptions, shutdownServer } from '../src/rpc/server.js';
import { systemClock, type Clock } from '../src/util/clock.js';
import type { Logger } from '../src/util/logger.js';

export interface BrokerNodeOptions {
  config: NodeConfig;
  logger: Logger;
  clock?: Clock;
  registry?: Registry;
}

export class BrokerNode {
  private state: 'starting' | 'serving' | 'stopping' | 'stopped' = 'starting';
  private retentionTimer?: NodeJS.Timeout;

  private constructor(
    readonly config: NodeConfig,
    readonly identity: NodeIdentity,
    readonly registry: Registry,
    private readonly logger: Logger,
    private readonly grpcServer: grpc.Server,
    private readonly httpServer: NodeHttpServer,
    private readonly replicas: ReplicaManager,
    private readonly cluster: SingleNodeCluster,
    readonly grpcPort: number,
  ) {}

  static async start(options: BrokerNodeOptions): Promise<BrokerNode> {
    const { config, logger } = options;
    const clock = options.clock ?? systemClock;
    const registry = options.registry ?? createNodeRegistry({ nodeId: config.nodeId });
    const identity = await loadOrCreateIdentity(config.dataDir, config.nodeId);
    const store = await TopicStore.open(config.dataDir);
    const replicas = new ReplicaManager({ dataDir: config.dataDir, clock, logger, registry });
    const cluster = new SingleNodeCluster(identity.clusterId, {
      nodeId: config.nodeId,
      host: config.advertisedListen.host,
      port: config.advertisedListen.port,
      rack: config.az,
      roles: config.roles,
      httpEndpoint: `${config.advertisedHttp.host}:${config.advertisedHttp.port}`,
      state: 'active',
    });
    const topics = new TopicManager(
      store,
      replicas,
      { partitions: config.defaultPartitions, replicationFactor: config.defaultReplicationFactor },
      () => cluster.brokers().length,
      clock,
      logger,
    );
    await topics.openAll();
    const purgatory = new FetchPurgatory();
    registerNodeGauges(registry, purgatory);
    const grpcServer = new grpc.Server(serverOptions(config.requestBytesMax));
    const rpcMetrics = new RpcMetrics(registry);
    const dataMetrics = new DataPlaneMetrics(registry);
    grpcServer.addService(
      serviceClient('riffle/v1/kafka.proto', 'riffle.v1.Kafka').service,
      kafkaHandlers({ service: 'kafka', metrics: rpcMetrics, logger }, {
        cluster, advertised: config.advertisedListen, topics, replicas, purgatory, metrics: dataMetrics, logger, requestBytesMax: config.requestBytesMax,
      }) as grpc.UntypedServiceImplementation,
    );
    grpcServer.addService(
      serviceClient('riffle/v1/admin.proto', 'riffle.v1.Admin').service,
      adminHandlers({ service: 'admin', metrics: rpcMetrics, logger }, { cluster, topics, replicas }) as grpc.UntypedServiceImplementation,
    );
    const grpcPort = await bindServer(grpcServer, config.listen.host, config.listen.port);
    let node: BrokerNode | undefined;
    const httpServer = await NodeHttpServer.start({
      host: config.http.host,
      port: config.http.port,
      registry,
      readiness: () => (node?.state === 'serving' ? { ready: true, reasons: [] } : { ready: false, reasons: [`node is ${node?.state ?? 'starting'}`] }),
    });
    node = new BrokerNode(config, identity, registry, logger, grpcServer, httpServer, replicas, cluster, grpcPort);
    node.startRetention();
    node.state = 'serving';
    logger.info({ clusterId: identity.clusterId, grpcPort, httpPort: httpServer.port }, `node ${config.nodeId} serving on ${config.listen.host}:${grpcPort}`);
    return node;
  }

  get httpPort(): number {
    return this.httpServer.port;
  }

  private startRetention(): void {
    this.retentionTimer = setInterval(() => {
      const deleted = this.replicas.applyRetention();
      if (deleted > 0) this.logger.info({ segments: deleted }, 'retention deleted segments');
    }, this.config.retentionCheckIntervalMs);
    this.retentionTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.state === 'stopping' || this.state === 'stopped') return;
    this.state = 'stopping';
    this.cluster.setState('shutting_down');
    this.logger.info(`node ${this.config.nodeId} stopping`);
    clearInterval(this.retentionTimer);
    await shutdownServer(this.grpcServer, this.config.shutdownGraceMs);
    await this.replicas.close();
    await this.httpServer.close();
    this.state = 'stopped';
    this.logger.info(`node ${this.config.nodeId} stopped`);
  }
}

function registerNodeGauges(registry: Registry, purgatory: FetchPurgatory): void {
  new Gauge({
    name: 'riffle_broker_fetch_parked',
    help: 'Long-polling fetches waiting for data.',
    registers: [registry],
    collect() {
      this.set(purgatory.parkedCount);
    },
  });
}
