// The SDK's entry point: knows the bootstrap addresses, discovers the cluster from any node,
// caches topic metadata (leaders per partition) and refreshes it when a node says it is not the
// leader. Producers, consumers and the admin client share one RiffleClient and its connections.
import { ConnectionPool, type NodeConnection, type ServiceName } from '../rpc/client.js';
import { RiffleError } from '../rpc/errors.js';
import { DEFAULT_RETRY, withRetries, type RetryOptions } from './retry.js';
import type { MetadataResponse__Output } from '../rpc/generated/riffle/v1/MetadataResponse.js';

export const DEFAULT_BOOTSTRAP = '127.0.0.1:9094';
export const METADATA_MAX_AGE_MS = 30_000;

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
  clusterId = '';

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
   * Calls a method on any reachable node: known brokers first, then the bootstrap list. Used
   * for requests any node can answer (metadata, admin).
   */
  async callAny<Response>(service: ServiceName, method: string, request: object, timeoutMs = this.requestTimeoutMs): Promise<Response> {
    const addresses = [...new Set([...this.knownBrokers().map((broker) => broker.address), ...this.bootstrap])];
    let lastError: RiffleError | undefined;
    for (const address of addresses) {
      try {
        return await this.pool.get(address).call<Response>(service, method, request, timeoutMs);
      } catch (error) {
        if (!(error instanceof RiffleError) || error.errorName !== 'NETWORK_EXCEPTION') throw error;
        lastError = error;
      }
    }
    throw lastError ?? new RiffleError('NETWORK_EXCEPTION', 'No node reachable.');
  }

  /** Like callAny, retrying retriable errors until the retry deadline. */
  callAnyWithRetries<Response>(service: ServiceName, method: string, request: object): Promise<Response> {
    return withRetries(() => this.callAny<Response>(service, method, request), this.retry);
  }

  /** Refreshes metadata for the given topics (all topics when empty). */
  async refreshMetadata(topics: string[] = []): Promise<MetadataResponse__Output> {
    const response = await this.callAny<MetadataResponse__Output>('riffle.v1.Kafka', 'Metadata', { topics, includeInternal: true }, Math.min(this.requestTimeoutMs, 10_000));
    this.clusterId = response.clusterId;
    this.brokers = new Map(response.brokers.map((broker) => [broker.nodeId, { nodeId: broker.nodeId, address: `${broker.host}:${broker.port}`, rack: broker.rack }]));
    const now = Date.now();
    for (const topic of response.topics) {
      if (topic.errorCode !== 0) {
        this.topics.delete(topic.name);
        continue;
      }
      const partitions = topic.partitions
        .map((partition) => ({
          partition: partition.partitionIndex,
          leaderId: partition.leaderId,
          leaderEpoch: partition.leaderEpoch,
          replicas: partition.replicaNodes,
          isr: partition.isrNodes,
        }))
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

  /** Cached topic metadata, if any, without asking the cluster. */
  cachedTopic(topic: string): TopicMetadata | undefined {
    return this.topics.get(topic)?.metadata;
  }

  /** Forgets cached metadata of a topic, so the next lookup asks the cluster. */
  invalidate(topic: string): void {
    this.topics.delete(topic);
  }

  close(): void {
    this.pool.close();
  }
}
