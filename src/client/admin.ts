// The admin client: topics and the cluster. Per-topic errors come back as typed RiffleErrors.
import type { RiffleClient } from './client.js';
import { RiffleError, errorNameOf } from '../rpc/errors.js';
import type { CreateTopicsResponse__Output } from '../rpc/generated/riffle/v1/CreateTopicsResponse.js';
import type { DeleteTopicsResponse__Output } from '../rpc/generated/riffle/v1/DeleteTopicsResponse.js';
import type { DescribeTopicsResponse__Output } from '../rpc/generated/riffle/v1/DescribeTopicsResponse.js';
import type { TopicDescription__Output } from '../rpc/generated/riffle/v1/TopicDescription.js';
import type { ListTopicsResponse__Output } from '../rpc/generated/riffle/v1/ListTopicsResponse.js';
import type { ListedTopic__Output } from '../rpc/generated/riffle/v1/ListedTopic.js';
import type { DescribeClusterResponse__Output } from '../rpc/generated/riffle/v1/DescribeClusterResponse.js';
import type { CreatePartitionsResponse__Output } from '../rpc/generated/riffle/v1/CreatePartitionsResponse.js';
import type { DescribeConfigsResponse__Output } from '../rpc/generated/riffle/v1/DescribeConfigsResponse.js';
import type { DescribedConfig__Output } from '../rpc/generated/riffle/v1/DescribedConfig.js';

export type TopicDescription = TopicDescription__Output;
export type ListedTopic = ListedTopic__Output;
export type ClusterDescription = DescribeClusterResponse__Output;

export interface NewTopic {
  name: string;
  partitions?: number;
  replicationFactor?: number;
  configs?: Record<string, string>;
}

export class Admin {
  constructor(private readonly client: RiffleClient) {}

  async createTopic(topic: NewTopic, options: { validateOnly?: boolean } = {}): Promise<{ topicId: string; partitions: number; replicationFactor: number }> {
    const response = await this.client.callAnyWithRetries<CreateTopicsResponse__Output>('riffle.v1.Admin', 'CreateTopics', {
      topics: [
        {
          name: topic.name,
          numPartitions: topic.partitions ?? -1,
          replicationFactor: topic.replicationFactor ?? -1,
          configs: Object.entries(topic.configs ?? {}).map(([name, value]) => ({ name, value })),
        },
      ],
      validateOnly: options.validateOnly ?? false,
    });
    const result = response.topics[0];
    if (!result) throw new RiffleError('UNKNOWN_SERVER_ERROR', 'CreateTopics answered without a result.');
    throwIfError(result.errorCode, result.errorMessage);
    return { topicId: result.topicId, partitions: result.numPartitions, replicationFactor: result.replicationFactor };
  }

  async deleteTopic(name: string): Promise<void> {
    const response = await this.client.callAnyWithRetries<DeleteTopicsResponse__Output>('riffle.v1.Admin', 'DeleteTopics', { topicNames: [name] });
    const result = response.responses[0];
    if (!result) throw new RiffleError('UNKNOWN_SERVER_ERROR', 'DeleteTopics answered without a result.');
    throwIfError(result.errorCode, result.errorMessage);
    this.client.invalidate(name);
  }

  async createPartitions(name: string, count: number): Promise<void> {
    const response = await this.client.callAnyWithRetries<CreatePartitionsResponse__Output>('riffle.v1.Admin', 'CreatePartitions', { topics: [{ name, count }] });
    const result = response.results[0];
    if (!result) throw new RiffleError('UNKNOWN_SERVER_ERROR', 'CreatePartitions answered without a result.');
    throwIfError(result.errorCode, result.errorMessage);
    this.client.invalidate(name);
  }

  async listTopics(options: { includeInternal?: boolean } = {}): Promise<ListedTopic[]> {
    const response = await this.client.callAnyWithRetries<ListTopicsResponse__Output>('riffle.v1.Admin', 'ListTopics', { includeInternal: options.includeInternal ?? false });
    return response.topics;
  }

  async describeTopic(name: string): Promise<TopicDescription> {
    const response = await this.client.callAnyWithRetries<DescribeTopicsResponse__Output>('riffle.v1.Admin', 'DescribeTopics', { topicNames: [name] });
    const topic = response.topics[0];
    if (!topic) throw new RiffleError('UNKNOWN_SERVER_ERROR', 'DescribeTopics answered without a result.');
    throwIfError(topic.errorCode, topic.errorMessage);
    return topic;
  }

  async describeConfigs(topic: string): Promise<DescribedConfig__Output[]> {
    const response = await this.client.callAnyWithRetries<DescribeConfigsResponse__Output>('riffle.v1.Admin', 'DescribeConfigs', {
      resources: [{ resourceType: 'topic', resourceName: topic, configurationKeys: [] }],
    });
    const result = response.results[0];
    if (!result) throw new RiffleError('UNKNOWN_SERVER_ERROR', 'DescribeConfigs answered without a result.');
    throwIfError(result.errorCode, result.errorMessage);
    return result.configs;
  }

  /** Asks without retries: a status check should say at once when the cluster is unreachable. */
  describeCluster(timeoutMs = 5_000): Promise<ClusterDescription> {
    return this.client.callAny<ClusterDescription>('riffle.v1.Admin', 'DescribeCluster', {}, timeoutMs);
  }
}

function throwIfError(code: number, message: string): void {
  if (code !== 0) throw new RiffleError(errorNameOf(code), message || undefined);
}
