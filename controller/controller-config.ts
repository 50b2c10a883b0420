// The active controller's settings, with defaults and the relations between them. Heartbeat and
// session timeout follow KIP-631's broker.heartbeat.interval.ms and broker.session.timeout.ms,
// with Riffle's faster defaults (500 ms and 3 s) so a dead broker loses its leaderships quickly.
import { assert } from '../src/util/assert.js';

export interface ControllerConfig {
  /** How often brokers heartbeat; returned nowhere, but the session timeout is checked against it. */
  readonly heartbeatIntervalMs: number;
  /** A broker not heard from for this long is fenced. */
  readonly sessionTimeoutMs: number;
  /** How often preferred-leader election runs (Kafka's leader.imbalance.check.interval.ms). */
  readonly preferredLeaderCheckIntervalMs: number;
  /** Partitions of a CreateTopics request that asks for the default (-1). */
  readonly defaultPartitions: number;
  /** Replication factor for -1; capped at the number of active brokers. */
  readonly defaultReplicationFactor: number;
  /** Producer ids handed to a broker per AllocateProducerIds. */
  readonly producerIdBlockSize: number;
  /** Partitions of the internal __consumer_offsets topic (Kafka's offsets.topic.num.partitions); 0: never created. */
  readonly offsetsTopicPartitions: number;
  /** Its replication factor, capped at the active brokers when it is created. */
  readonly offsetsTopicReplicationFactor: number;
  /**
   * How long the controller waits, from the first active broker on, for enough brokers to give
   * __consumer_offsets its full replication factor before creating it with fewer.
   */
  readonly offsetsTopicCreateWaitMs: number;
}

export const DEFAULT_CONTROLLER_CONFIG: ControllerConfig = Object.freeze({
  heartbeatIntervalMs: 500,
  sessionTimeoutMs: 3_000,
  preferredLeaderCheckIntervalMs: 5_000,
  defaultPartitions: 1,
  defaultReplicationFactor: 3,
  producerIdBlockSize: 1_000,
  offsetsTopicPartitions: 50,
  offsetsTopicReplicationFactor: 3,
  offsetsTopicCreateWaitMs: 3_000,
});

/** Upper bounds that keep a typo from turning into a controller that never fences anyone. */
const SESSION_TIMEOUT_MS_MAX = 10 * 60 * 1000;
const PRODUCER_ID_BLOCK_SIZE_MAX = 1_000_000;
export const TOPIC_PARTITIONS_MAX = 10_000;

export class ControllerConfigError extends Error {
  override readonly name = 'ControllerConfigError';
}

/** Defaults filled in and relations checked; throws ControllerConfigError. */
export function resolveControllerConfig(overrides: Partial<ControllerConfig> = {}): ControllerConfig {
  const config: ControllerConfig = { ...DEFAULT_CONTROLLER_CONFIG, ...overrides };
  requireInteger('heartbeatIntervalMs', config.heartbeatIntervalMs, 1, SESSION_TIMEOUT_MS_MAX);
  requireInteger('sessionTimeoutMs', config.sessionTimeoutMs, 1, SESSION_TIMEOUT_MS_MAX);
  requireInteger('preferredLeaderCheckIntervalMs', config.preferredLeaderCheckIntervalMs, 1, Number.MAX_SAFE_INTEGER);
  requireInteger('defaultPartitions', config.defaultPartitions, 1, TOPIC_PARTITIONS_MAX);
  requireInteger('defaultReplicationFactor', config.defaultReplicationFactor, 1, 1_000);
  requireInteger('producerIdBlockSize', config.producerIdBlockSize, 1, PRODUCER_ID_BLOCK_SIZE_MAX);
  requireInteger('offsetsTopicPartitions', config.offsetsTopicPartitions, 0, 1_000);
  requireInteger('offsetsTopicReplicationFactor', config.offsetsTopicReplicationFactor, 1, 16);
  requireInteger('offsetsTopicCreateWaitMs', config.offsetsTopicCreateWaitMs, 0, SESSION_TIMEOUT_MS_MAX);
  // A session must survive at least one lost heartbeat, or a single delay fences a healthy broker.
  if (config.sessionTimeoutMs <= 2 * config.heartbeatIntervalMs) {
    throw new ControllerConfigError(
      `sessionTimeoutMs (${config.sessionTimeoutMs}) must be more than twice heartbeatIntervalMs (${config.heartbeatIntervalMs})`);
  }
  assert(Object.isFrozen(DEFAULT_CONTROLLER_CONFIG), 'controller defaults are frozen');
  return Object.freeze(config);
}

function requireInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ControllerConfigError(`${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
}
