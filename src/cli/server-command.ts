// `riffle server`: runs one node in the foreground until SIGTERM or SIGINT, then shuts down
// gracefully (in-flight requests finish, logs are flushed and closed) and exits 0.
import type { Command } from 'commander';
import { RiffleNode } from '../../broker/node.js';
import { ConfigError, SETTINGS, resolveNodeConfig, type RawSettings } from '../config/node-config.js';
import { createLogger } from '../util/logger.js';

export function registerServerCommand(program: Command): void {
  const command = program.command('server').description('Run one Riffle node in the foreground.');
  command.option('--config <file>', 'YAML file of settings (keys as the flag names)', process.env.RIFFLE_CONFIG);
  for (const [key, spec] of Object.entries(SETTINGS)) {
    command.option(`--${spec.yaml} <value>`, `${describeSetting(key)} (env ${spec.env}${spec.defaultValue ? `, default ${spec.defaultValue}` : ''})`);
  }
  command.action(async (options: Record<string, string | undefined>) => {
    const flags: RawSettings = {};
    for (const key of Object.keys(SETTINGS) as (keyof typeof SETTINGS)[]) {
      if (options[key] !== undefined) flags[key] = options[key];
    }
    let config;
    try {
      config = resolveNodeConfig(flags, process.env, options.config);
    } catch (error) {
      if (error instanceof ConfigError) {
        process.stderr.write(`riffle server: ${error.message}\n`);
        process.exit(2);
      }
      throw error;
    }
    const logger = createLogger({ level: config.logLevel, nodeId: config.nodeId });
    const node = await RiffleNode.start({ config, logger });
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutdown requested');
      node.stop().then(
        () => process.exit(0),
        (error: unknown) => {
          logger.fatal({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

function describeSetting(key: string): string {
  const descriptions: Record<string, string> = {
    nodeId: 'this node id',
    roles: 'controller, broker or both',
    az: 'availability zone of this node',
    dataDir: 'directory for logs and metadata',
    listen: 'gRPC client and replication listener',
    controllerListen: 'Raft and controller listener',
    http: 'metrics and health listener',
    advertisedListen: 'address others dial for --listen',
    advertisedControllerListen: 'address others dial for --controller-listen',
    advertisedHttp: 'address others dial for --http',
    controllerQuorum: 'voters as id@host:port,...',
    logLevel: 'fatal, error, warn, info, debug, trace or silent',
    defaultPartitions: 'partitions of a topic created without a count',
    defaultReplicationFactor: 'replication factor of a topic created without one',
    requestBytesMax: 'largest request accepted, in bytes',
    retentionCheckIntervalMs: 'how often retention runs',
    shutdownGraceMs: 'how long shutdown waits for requests in flight',
    metadataSnapshotEntries: 'controller snapshots the metadata and compacts its log every this many entries',
    dialOverrides: 'advertised=dialed host:port pairs, comma-separated: addresses this node dials instead of advertised ones (NAT, fault proxies)',
    offsetsTopicPartitions: 'partitions of __consumer_offsets when the cluster creates it',
    groupSessionTimeoutMs: 'a consumer group member not heard from for this long is removed',
    groupHeartbeatIntervalMs: 'how often consumer group members heartbeat',
    offsetsRetentionMs: 'offsets of a group without members expire this long after its last commit',
    logScrubBytesPerSecond: 'bytes per second the background scrubber CRC-checks in closed log segments (0: off)',
    replicaLagTimeMaxMs: 'a follower not caught up with its leader for this long leaves the ISR (replica.lag.time.max.ms)',
    kinesisSubscriptionMs: 'lifetime of one Enhanced Fan-Out subscription (SubscribeToShard)',
    kinesisHeartbeatMs: 'interval of heartbeat events on an idle EFO subscription',
    kinesisIteratorTtlMs: 'how long a Kinesis shard iterator stays valid',
    kinesisOnDemandCheckMs: 'how often on-demand streams check shard load (a shard over budget for 3 checks is split)',
  };
  return descriptions[key] ?? key;
}
