// The SDK's entry point: knows the bootstrap addresses, discovers the cluster from any node,
// caches topic metadata (leaders per partition) and refreshes it when a node says it is not the
// leader. Producers, consumers and the admin client share one RiffleClient and its connections.
import { ConnectionPool, type NodeConnection, type ServiceName } from '../rpc/client.js';
import { RiffleError, errorNameOf } from '../rpc/errors.js';
import { DEFAULT_RETRY, withRetries, type RetryOptions } from './retry.js';
import type { MetadataResponse__Output } from '../rpc/generated/riffle/v1/MetadataResponse.js';
import type { ListOffsetsResponse__Output } from '../rpc/generated/riffle/v1/ListOffsetsResponse.js';

export const DEFAULT_BOOTSTRAP = '127.0.0.1:9094';
export const METADATA_MAX_AGE_MS = 30_000;
/** The longest one node gets to answer a request any node could answer before the next is tried. */
export const CALL_ANY_ATTEMPT_MS_MAX = 10_000;

export interface RiffleClientOptions {
  /** One or more `host:port` gRPC addresses of any nodes, comma-separated or as a list. */
  bootstrap?: string | string[];
  requestTimeoutMs?: number;
  retry?: Partial<RetryOptions>;
}

export interface PartitionMetadata {
  partition: number;
  leaderId: number;
  leaderEpoch: number;
  replicas: number[];
  isr: number[];
}

export interface TopicMetadata {
  name: string;
  topicId: string;
  kind: string;
  partitions: PartitionMetadata[];
}

/**
 * A partition of cached topic metadata. The partitions are sorted by index and usually complete,
 * so the one at its own index is tried first: per-partition lookups on the fetch and produce
 * paths stay constant-time for topics of many partitions.
 */
export function partitionOf(metadata: TopicMetadata | undefined, partition: number): PartitionMetadata | undefined {
  if (metadata === undefined) return undefined;
  const direct = metadata.partitions[partition];
  if (direct?.partition === partition) return direct;
  return metadata.partitions.find((candidate) => candidate.partition === partition);
}

/** The key of a partition's newest leader epoch seen (by topic id, so a re-created topic starts afresh). */
function epochKey(topicId: string, partition: number): string {
  return `${topicId}\u0000${partition}`;
}

export interface BrokerAddress {
  nodeId: number;
  address: string;
  rack: string;
}

export class RiffleClient {
  readonly bootstrap: string[];
  readonly requestTimeoutMs: number;
  readonly retry: RetryOptions;
  private readonly pool = new ConnectionPool();
  private brokers = new Map<number, BrokerAddress>();
  private readonly topics = new Map<string, { metadata: TopicMetadata; fetchedAtMs: number }>();
  /**
   * The newest leader epoch seen of each partition (by topic id), kept when the cache entry is
   * dropped: metadata naming an older leader (from a broker that is behind, or a paused leader
   * that resumed before learning it was deposed) is not believed (KIP-320).
   */
  private readonly leaderEpochs = new Map<string, number>();
  clusterId = '';
  private lastGoodAddress?: string;

  constructor(options: RiffleClientOptions = {}) {
    const bootstrap = options.bootstrap ?? process.env.RIFFLE_BOOTSTRAP ?? DEFAULT_BOOTSTRAP;
    this.bootstrap = (Array.isArray(bootstrap) ? bootstrap : bootstrap.split(',')).map((address) => address.trim()).filter(Boolean);
    if (this.bootstrap.length === 0) throw new RiffleError('INVALID_REQUEST', 'No bootstrap address given.');
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
  }

  connection(address: string): NodeConnection {
    return this.pool.get(address);
  }

  /** The connection to a node by id, from the last metadata seen. */
  connectionTo(nodeId: number): NodeConnection {
    const broker = this.brokers.get(nodeId);
    if (!broker) throw new RiffleError('BROKER_NOT_AVAILABLE', `Node ${nodeId} is not in the cluster metadata.`);
    return this.pool.get(broker.address);
  }

  knownBrokers(): BrokerAddress[] {
    return [...this.brokers.values()];
  }

  /**
   * Calls a method on any reachable node, for requests any node can answer (metadata, admin):
   * the node that answered last first, then the bootstrap list, then every other known broker.
   * A node that refuses the connection or does not answer within an attempt's share of the time
   * (a crashed or paused process) is skipped for the next one.
   */
  async callAny<Response>(service: ServiceName, method: string, request: object, timeoutMs = this.requestTimeoutMs): Promise<Response> {
    const known = this.knownBrokers().map((broker) => broker.address);
    const addresses = [...new Set([...(this.lastGoodAddress ? [this.lastGoodAddress] : []), ...this.bootstrap, ...known])];
    const attemptMs = Math.min(timeoutMs, CALL_ANY_ATTEMPT_MS_MAX);
    let lastError: RiffleError | undefined;
    for (const address of addresses) {
      try {
        const response = await this.pool.get(address).call<Response>(service, method, request, attemptMs);
        this.lastGoodAddress = address;
        return response;
      } catch (error) {
        if (!(error instanceof RiffleError) || (error.errorName !== 'NETWORK_EXCEPTION' && error.errorName !== 'REQUEST_TIMED_OUT')) throw error;
        if (this.lastGoodAddress === address) this.lastGoodAddress = undefined;
        lastError = error;
      }
    }
    throw lastError ?? new RiffleError('NETWORK_EXCEPTION', 'No node reachable.');
  }

  /** Like callAny, retrying retriable errors until the retry deadline. */
  callAnyWithRetries<Response>(service: ServiceName, method: string, request: object): Promise<Response> {
    return withRetries(() => this.callAny<Response>(service, method, request), this.retry);
  }

  /** Refreshes metadata for the given topics (all topics when empty); `attemptMs` bounds the wait on each node asked. */
  async refreshMetadata(topics: string[] = [], attemptMs = Math.min(this.requestTimeoutMs, 10_000)): Promise<MetadataResponse__Output> {
    const response = await this.callAny<MetadataResponse__Output>('riffle.v1.Kafka', 'Metadata', { topics, includeInternal: true }, attemptMs);
    this.clusterId = response.clusterId;
    this.brokers = new Map(response.brokers.map((broker) => [broker.nodeId, { nodeId: broker.nodeId, address: `${broker.host}:${broker.port}`, rack: broker.rack }]));
    const now = Date.now();
    for (const topic of response.topics) {
      if (topic.errorCode !== 0) {
        this.topics.delete(topic.name);
        continue;
      }
      const previous = this.topics.get(topic.name)?.metadata;
      const partitions = topic.partitions
        .map((partition): PartitionMetadata => {
          const answered = { partition: partition.partitionIndex, leaderId: partition.leaderId, leaderEpoch: partition.leaderEpoch, replicas: partition.replicaNodes, isr: partition.isrNodes };
          const key = epochKey(topic.topicId, partition.partitionIndex);
          const seen = this.leaderEpochs.get(key) ?? -1;
          if (answered.leaderEpoch >= seen) {
            this.leaderEpochs.set(key, answered.leaderEpoch);
            return answered;
          }
          // Older than what we saw: keep what we knew, or no leader (ask again later).
          const known = previous?.topicId === topic.topicId ? partitionOf(previous, answered.partition) : undefined;
          return known ?? { ...answered, leaderId: -1, leaderEpoch: seen };
        })
        .sort((a, b) => a.partition - b.partition);
      this.topics.set(topic.name, { metadata: { name: topic.name, topicId: topic.topicId, kind: topic.kind, partitions }, fetchedAtMs: now });
    }
    return response;
  }

  /** Topic metadata from the cache, fetched when missing or stale; UNKNOWN_TOPIC_OR_PARTITION if absent. */
  async topicMetadata(topic: string, forceRefresh = false): Promise<TopicMetadata> {
    const cached = this.topics.get(topic);
    if (cached && !forceRefresh && Date.now() - cached.fetchedAtMs < METADATA_MAX_AGE_MS) return cached.metadata;
    const response = await this.refreshMetadata([topic]);
    const entry = response.topics.find((candidate) => candidate.name === topic);
    if (!entry || entry.errorCode !== 0) throw new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', entry?.errorMessage || `Topic '${topic}' does not exist.`);
    return this.topics.get(topic)!.metadata;
  }

  /** The leader epoch of a partition in the cached metadata; -1 when unknown (a broker then skips the check). */
  leaderEpochOf(topic: string, partition: number): number {
    return partitionOf(this.topics.get(topic)?.metadata, partition)?.leaderEpoch ?? -1;
  }

  /** Cached topic metadata, if any, without asking the cluster. */
  cachedTopic(topic: string): TopicMetadata | undefined {
    return this.topics.get(topic)?.metadata;
  }

  /**
   * Takes a leader a broker reported (KIP-951's current leader in an error answer) into the cache,
   * if it is newer than what the cache has; returns whether it did.
   */
  noteLeader(topic: string, partition: number, leaderId: number, leaderEpoch: number): boolean {
    const entry = this.topics.get(topic);
    const known = partitionOf(entry?.metadata, partition);
    if (!entry || !known || leaderId < 0 || leaderEpoch <= known.leaderEpoch || !this.brokers.has(leaderId)) return false;
    this.leaderEpochs.set(epochKey(entry.metadata.topicId, partition), leaderEpoch);
    const partitions = entry.metadata.partitions.map((candidate) => (candidate.partition === partition ? { ...candidate, leaderId, leaderEpoch } : candidate));
    this.topics.set(topic, { metadata: { ...entry.metadata, partitions }, fetchedAtMs: entry.fetchedAtMs });
    return true;
  }

  /**
   * ListOffsets of one partition on its leader: timestamp -1 latest, -2 earliest, or a time in
   * ms (-1 when no record is that late). Retried like any call, which covers a new leader's
   * OFFSET_NOT_AVAILABLE until its high watermark settles (KIP-207).
   */
  listOffset(topic: string, partition: number, timestamp: number): Promise<number> {
    return withRetries(async () => {
      const metadata = await this.topicMetadata(topic);
      const leader = partitionOf(metadata, partition)?.leaderId ?? -1;
      if (leader < 0) {
        this.invalidate(topic);
        throw new RiffleError('LEADER_NOT_AVAILABLE', `No leader for ${topic}-${partition}.`);
      }
      const response = await this.connectionTo(leader).call<ListOffsetsResponse__Output>('riffle.v1.Kafka', 'ListOffsets', {
        topics: [{ name: topic, partitions: [{ partitionIndex: partition, currentLeaderEpoch: -1, timestamp }] }],
      }, this.requestTimeoutMs);
      const answer = response.topics[0]?.partitions[0];
      if (!answer) throw new RiffleError('UNKNOWN_SERVER_ERROR', 'ListOffsets answered without a partition.');
      if (answer.errorCode !== 0) {
        this.invalidate(topic);
        throw new RiffleError(errorNameOf(answer.errorCode), answer.errorMessage || undefined);
      }
      return Number(answer.offset);
    }, this.retry);
  }

  /** Forgets cached metadata of a topic, so the next lookup asks the cluster. */
  invalidate(topic: string): void {
    this.topics.delete(topic);
  }

  close(): void {
    this.pool.close();
  }
}
