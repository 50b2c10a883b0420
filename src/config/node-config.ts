// A node's configuration. Every setting comes from, in order of precedence: a command-line flag,
// a RIFFLE_* environment variable, the YAML file named by --config, then the default here. The
// result is validated as a whole (relations between fields included) before a node starts.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

export type NodeRole = 'controller' | 'broker';

export interface Endpoint {
  host: string;
  port: number;
}

export interface QuorumVoter extends Endpoint {
  nodeId: number;
}

export interface NodeConfig {
  nodeId: number;
  roles: NodeRole[];
  az: string;
  dataDir: string;
  listen: Endpoint;
  controllerListen: Endpoint;
  http: Endpoint;
  advertisedListen: Endpoint;
  advertisedControllerListen: Endpoint;
  advertisedHttp: Endpoint;
  controllerQuorum: QuorumVoter[];
  logLevel: string;
  /** Partitions of a topic created without a count. */
  defaultPartitions: number;
  /** Replication factor of a topic created without one. */
  defaultReplicationFactor: number;
  /** Largest Produce request a broker accepts, in bytes. */
  requestBytesMax: number;
  /** How often retention runs over every partition. */
  retentionCheckIntervalMs: number;
  /** How long a SIGTERM waits for requests in flight before closing. */
  shutdownGraceMs: number;
  /** A controller snapshots the metadata image and compacts its Raft log every this many entries. */
  metadataSnapshotEntries: number;
  /**
   * Addresses this node dials instead of the ones other nodes advertise (advertised host:port to
   * the host:port to dial), for networks where the way to a node depends on who dials it: NAT, or
   * the chaos harness's per-link fault proxies.
   */
  dialOverrides: ReadonlyMap<string, string>;
  /** Partitions of __consumer_offsets, used when the cluster creates it. */
  offsetsTopicPartitions: number;
  /** A consumer group member not heard from for this long is removed (group.consumer.session.timeout.ms). */
  groupSessionTimeoutMs: number;
  /** How often members heartbeat (group.consumer.heartbeat.interval.ms). */
  groupHeartbeatIntervalMs: number;
  /** Committed offsets of a group without members expire this long after its last commit. */
  offsetsRetentionMs: number;
  /** Bytes per second the background scrubber CRC-checks in closed log segments (0: off). */
  logScrubBytesPerSecond: number;
  /** A follower not caught up with its leader for this long leaves the ISR (Kafka's replica.lag.time.max.ms). */
  replicaLagTimeMaxMs: number;
  /** How long one Enhanced Fan-Out subscription (SubscribeToShard) lasts before the client resubscribes. */
  kinesisSubscriptionMs: number;
  /** How often an idle EFO subscription gets a heartbeat event. */
  kinesisHeartbeatMs: number;
  /** How long a shard iterator stays valid. */
  kinesisIteratorTtlMs: number;
  /** How often on-demand streams' shard loads are checked (a shard hot for 3 checks is split). */
  kinesisOnDemandCheckMs: number;
}

/** The settings as strings, keyed by their flag name without dashes in camelCase. */
export type RawSettings = Partial<Record<keyof typeof SETTINGS, string>>;

interface SettingSpec {
  env: string;
  yaml: string;
  defaultValue: string | null;
}

/** Every setting with its environment variable and YAML key. Flags use kebab-case of the key. */
/**
 * The shortest --replica-lag-time-max-ms: twice the longest a follower's fetch waits at the
 * leader for new records (500 ms), so that an idle, caught-up follower never looks behind.
 */
export const REPLICA_LAG_TIME_MS_MIN = 1_000;

export const SETTINGS = {
  nodeId: { env: 'RIFFLE_NODE_ID', yaml: 'node-id', defaultValue: '1' },
  roles: { env: 'RIFFLE_ROLES', yaml: 'roles', defaultValue: 'controller,broker' },
  az: { env: 'RIFFLE_AZ', yaml: 'az', defaultValue: 'default' },
  dataDir: { env: 'RIFFLE_DATA_DIR', yaml: 'data-dir', defaultValue: './riffle-data' },
  listen: { env: 'RIFFLE_LISTEN', yaml: 'listen', defaultValue: '0.0.0.0:9094' },
  controllerListen: { env: 'RIFFLE_CONTROLLER_LISTEN', yaml: 'controller-listen', defaultValue: '0.0.0.0:9093' },
  http: { env: 'RIFFLE_HTTP', yaml: 'http', defaultValue: '0.0.0.0:9644' },
  advertisedListen: { env: 'RIFFLE_ADVERTISED_LISTEN', yaml: 'advertised-listen', defaultValue: null },
  advertisedControllerListen: { env: 'RIFFLE_ADVERTISED_CONTROLLER_LISTEN', yaml: 'advertised-controller-listen', defaultValue: null },
  advertisedHttp: { env: 'RIFFLE_ADVERTISED_HTTP', yaml: 'advertised-http', defaultValue: null },
  controllerQuorum: { env: 'RIFFLE_CONTROLLER_QUORUM', yaml: 'controller-quorum', defaultValue: null },
  logLevel: { env: 'RIFFLE_LOG_LEVEL', yaml: 'log-level', defaultValue: 'info' },
  defaultPartitions: { env: 'RIFFLE_DEFAULT_PARTITIONS', yaml: 'default-partitions', defaultValue: '1' },
  defaultReplicationFactor: { env: 'RIFFLE_DEFAULT_REPLICATION_FACTOR', yaml: 'default-replication-factor', defaultValue: '1' },
  requestBytesMax: { env: 'RIFFLE_REQUEST_BYTES_MAX', yaml: 'request-bytes-max', defaultValue: String(64 * 1024 * 1024) },
  retentionCheckIntervalMs: { env: 'RIFFLE_RETENTION_CHECK_INTERVAL_MS', yaml: 'retention-check-interval-ms', defaultValue: '300000' },
  shutdownGraceMs: { env: 'RIFFLE_SHUTDOWN_GRACE_MS', yaml: 'shutdown-grace-ms', defaultValue: '5000' },
  metadataSnapshotEntries: { env: 'RIFFLE_METADATA_SNAPSHOT_ENTRIES', yaml: 'metadata-snapshot-entries', defaultValue: '10000' },
  dialOverrides: { env: 'RIFFLE_DIAL_OVERRIDES', yaml: 'dial-overrides', defaultValue: '' },
  offsetsTopicPartitions: { env: 'RIFFLE_OFFSETS_TOPIC_PARTITIONS', yaml: 'offsets-topic-partitions', defaultValue: '50' },
  groupSessionTimeoutMs: { env: 'RIFFLE_GROUP_SESSION_TIMEOUT_MS', yaml: 'group-session-timeout-ms', defaultValue: '10000' },
  groupHeartbeatIntervalMs: { env: 'RIFFLE_GROUP_HEARTBEAT_INTERVAL_MS', yaml: 'group-heartbeat-interval-ms', defaultValue: '1000' },
  logScrubBytesPerSecond: { env: 'RIFFLE_LOG_SCRUB_BYTES_PER_SECOND', yaml: 'log-scrub-bytes-per-second', defaultValue: String(16 * 1024 * 1024) },
  replicaLagTimeMaxMs: { env: 'RIFFLE_REPLICA_LAG_TIME_MAX_MS', yaml: 'replica-lag-time-max-ms', defaultValue: '10000' },
  offsetsRetentionMs: { env: 'RIFFLE_OFFSETS_RETENTION_MS', yaml: 'offsets-retention-ms', defaultValue: String(7 * 24 * 60 * 60 * 1000) },
  kinesisSubscriptionMs: { env: 'RIFFLE_KINESIS_SUBSCRIPTION_MS', yaml: 'kinesis-subscription-ms', defaultValue: '300000' },
  kinesisHeartbeatMs: { env: 'RIFFLE_KINESIS_HEARTBEAT_MS', yaml: 'kinesis-heartbeat-ms', defaultValue: '2000' },
  kinesisIteratorTtlMs: { env: 'RIFFLE_KINESIS_ITERATOR_TTL_MS', yaml: 'kinesis-iterator-ttl-ms', defaultValue: '300000' },
  kinesisOnDemandCheckMs: { env: 'RIFFLE_KINESIS_ON_DEMAND_CHECK_MS', yaml: 'kinesis-on-demand-check-ms', defaultValue: '10000' },
} as const satisfies Record<string, SettingSpec>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Merges flags, environment and an optional YAML file, then parses and validates. */
export function resolveNodeConfig(
  flags: RawSettings,
  env: NodeJS.ProcessEnv = process.env,
  configFile?: string,
): NodeConfig {
  const fromFile = configFile ? readYamlSettings(configFile) : {};
  const raw: Record<string, string | null> = {};
  for (const [key, spec] of Object.entries(SETTINGS) as [keyof typeof SETTINGS, SettingSpec][]) {
    raw[key] = flags[key] ?? env[spec.env] ?? fromFile[spec.yaml as string] ?? spec.defaultValue;
  }
  return parseNodeConfig(raw);
}

function readYamlSettings(file: string): Record<string, string> {
  const parsed: unknown = parseYaml(readFileSync(file, 'utf8'));
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`${file}: expected a mapping of settings`);
  const known = new Set<string>(Object.values(SETTINGS).map((spec) => spec.yaml));
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (!known.has(key)) throw new ConfigError(`${file}: unknown setting '${key}'`);
    result[key] = Array.isArray(value) ? value.join(',') : String(value);
  }
  return result;
}

function parseNodeConfig(raw: Record<string, string | null>): NodeConfig {
  const nodeId = parseInteger('node-id', raw.nodeId, 0, 2 ** 31 - 1);
  const listen = parseEndpoint('listen', raw.listen!);
  const controllerListen = parseEndpoint('controller-listen', raw.controllerListen!);
  const http = parseEndpoint('http', raw.http!);
  const config: NodeConfig = {
    nodeId,
    roles: parseRoles(raw.roles!),
    az: parseName('az', raw.az!),
    dataDir: raw.dataDir!,
    listen,
    controllerListen,
    http,
    advertisedListen: raw.advertisedListen ? parseEndpoint('advertised-listen', raw.advertisedListen) : advertise(listen),
    advertisedControllerListen: raw.advertisedControllerListen
      ? parseEndpoint('advertised-controller-listen', raw.advertisedControllerListen)
      : advertise(controllerListen),
    advertisedHttp: raw.advertisedHttp ? parseEndpoint('advertised-http', raw.advertisedHttp) : advertise(http),
    controllerQuorum: [],
    logLevel: parseLogLevel(raw.logLevel!),
    defaultPartitions: parseInteger('default-partitions', raw.defaultPartitions, 1, 10_000),
    defaultReplicationFactor: parseInteger('default-replication-factor', raw.defaultReplicationFactor, 1, 16),
    requestBytesMax: parseInteger('request-bytes-max', raw.requestBytesMax, 1024, 1024 * 1024 * 1024),
    retentionCheckIntervalMs: parseInteger('retention-check-interval-ms', raw.retentionCheckIntervalMs, 10, 86_400_000),
    shutdownGraceMs: parseInteger('shutdown-grace-ms', raw.shutdownGraceMs, 0, 600_000),
    metadataSnapshotEntries: parseInteger('metadata-snapshot-entries', raw.metadataSnapshotEntries, 10, 10_000_000),
    dialOverrides: parseDialOverrides(raw.dialOverrides ?? ''),
    offsetsTopicPartitions: parseInteger('offsets-topic-partitions', raw.offsetsTopicPartitions, 1, 1_000),
    groupSessionTimeoutMs: parseInteger('group-session-timeout-ms', raw.groupSessionTimeoutMs, 100, 3_600_000),
    groupHeartbeatIntervalMs: parseInteger('group-heartbeat-interval-ms', raw.groupHeartbeatIntervalMs, 10, 3_600_000),
    offsetsRetentionMs: parseInteger('offsets-retention-ms', raw.offsetsRetentionMs, 1_000, Number.MAX_SAFE_INTEGER),
    logScrubBytesPerSecond: parseInteger('log-scrub-bytes-per-second', raw.logScrubBytesPerSecond, 0, 1024 * 1024 * 1024 * 1024),
    replicaLagTimeMaxMs: parseInteger('replica-lag-time-max-ms', raw.replicaLagTimeMaxMs, REPLICA_LAG_TIME_MS_MIN, 3_600_000),
    kinesisSubscriptionMs: parseInteger('kinesis-subscription-ms', raw.kinesisSubscriptionMs, 100, 3_600_000),
    kinesisHeartbeatMs: parseInteger('kinesis-heartbeat-ms', raw.kinesisHeartbeatMs, 50, 60_000),
    kinesisIteratorTtlMs: parseInteger('kinesis-iterator-ttl-ms', raw.kinesisIteratorTtlMs, 100, 3_600_000),
    kinesisOnDemandCheckMs: parseInteger('kinesis-on-demand-check-ms', raw.kinesisOnDemandCheckMs, 100, 3_600_000),
  };
  config.controllerQuorum = raw.controllerQuorum
    ? parseQuorum(raw.controllerQuorum)
    : [{ nodeId, ...config.advertisedControllerListen }];
  validateRelations(config);
  return config;
}

function validateRelations(config: NodeConfig): void {
  const ports = [config.listen, config.controllerListen, config.http];
  const seen = new Set<string>();
  for (const endpoint of ports) {
    const key = `${endpoint.host}:${endpoint.port}`;
    if (endpoint.port !== 0 && seen.has(key)) throw new ConfigError(`two listeners share ${key}`);
    seen.add(key);
  }
  if (config.groupSessionTimeoutMs <= config.groupHeartbeatIntervalMs) {
    throw new ConfigError(`--group-session-timeout-ms (${config.groupSessionTimeoutMs}) must be more than --group-heartbeat-interval-ms (${config.groupHeartbeatIntervalMs})`);
  }
  if (config.roles.includes('controller') && !config.controllerQuorum.some((voter) => voter.nodeId === config.nodeId)) {
    throw new ConfigError(`node ${config.nodeId} has the controller role but is not in --controller-quorum`);
  }
}

/** An address others can dial: a wildcard bind address is advertised as loopback. */
function advertise(endpoint: Endpoint): Endpoint {
  const wildcard = endpoint.host === '0.0.0.0' || endpoint.host === '::' || endpoint.host === '';
  return { host: wildcard ? '127.0.0.1' : endpoint.host, port: endpoint.port };
}

export function parseEndpoint(name: string, value: string): Endpoint {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value.trim());
  if (!match) throw new ConfigError(`--${name}: expected host:port, got '${value}'`);
  const host = match[1] ?? match[2] ?? '';
  const port = Number(match[3]);
  if (port > 65_535) throw new ConfigError(`--${name}: port ${port} is out of range`);
  return { host: host === '' ? '0.0.0.0' : host, port };
}

function parseDialOverrides(value: string): Map<string, string> {
  const overrides = new Map<string, string>();
  for (const part of value.split(',').map((text) => text.trim()).filter((text) => text !== '')) {
    const [from, to, extra] = part.split('=');
    if (from === undefined || to === undefined || extra !== undefined) throw new ConfigError(`--dial-overrides: expected advertised=dialed, got '${part}'`);
    const advertised = parseEndpoint('dial-overrides', from);
    const dialed = parseEndpoint('dial-overrides', to);
    overrides.set(`${advertised.host}:${advertised.port}`, `${dialed.host}:${dialed.port}`);
  }
  return overrides;
}

/** The address to dial for an advertised one, after this node's --dial-overrides. */
export function dialAddress(config: Pick<NodeConfig, 'dialOverrides'>, address: string): string {
  return config.dialOverrides.get(address) ?? address;
}

function parseQuorum(value: string): QuorumVoter[] {
  const voters = value.split(',').map((part) => {
    const match = /^(\d+)@(.+)$/.exec(part.trim());
    if (!match) throw new ConfigError(`--controller-quorum: expected id@host:port, got '${part}'`);
    return { nodeId: Number(match[1]), ...parseEndpoint('controller-quorum', match[2]!) };
  });
  const ids = new Set(voters.map((voter) => voter.nodeId));
  if (ids.size !== voters.length) throw new ConfigError('--controller-quorum: a node id appears twice');
  return voters;
}

function parseRoles(value: string): NodeRole[] {
  const roles = value.split(',').map((role) => role.trim()).filter(Boolean);
  if (roles.length === 0) throw new ConfigError('--roles: at least one of controller, broker');
  for (const role of roles) {
    if (role !== 'controller' && role !== 'broker') throw new ConfigError(`--roles: unknown role '${role}'`);
  }
  return [...new Set(roles)] as NodeRole[];
}

function parseName(name: string, value: string): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(value)) throw new ConfigError(`--${name}: '${value}' is not a valid name`);
  return value;
}

function parseLogLevel(value: string): string {
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  if (!levels.includes(value)) throw new ConfigError(`--log-level: one of ${levels.join(', ')}`);
  return value;
}

export function parseInteger(name: string, value: string | null | undefined, min: number, max: number): number {
  const number = Number(value);
  if (value === null || value === undefined || value.trim() === '' || !Number.isInteger(number)) {
    throw new ConfigError(`--${name}: expected a whole number, got '${value}'`);
  }
  if (number < min || number > max) throw new ConfigError(`--${name}: ${number} is outside ${min}..${max}`);
  return number;
}
