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

import type { ListGroupsResponse__Output } from '../rpc/generated/riffle/v1/ListGroupsResponse.js';
import type { ListedGroup__Output } from '../rpc/generated/riffle/v1/ListedGroup.js';
import type { DescribeGroupsResponse__Output } from '../rpc/generated/riffle/v1/DescribeGroupsResponse.js';
import type { DescribedGroup__Output } from '../rpc/generated/riffle/v1/DescribedGroup.js';
import type { DeleteGroupsResponse__Output } from '../rpc/generated/riffle/v1/DeleteGroupsResponse.js';
import type { FindCoordinatorResponse__Output } from '../rpc/generated/riffle/v1/FindCoordinatorResponse.js';
import type { OffsetCommitResponse__Output } from '../rpc/generated/riffle/v1/OffsetCommitResponse.js';
import type { OffsetFetchResponse__Output } from '../rpc/generated/riffle/v1/OffsetFetchResponse.js';
import { withRetries } from './retry.js';

export type TopicDescription = TopicDescription__Output;
export type ListedGroup = ListedGroup__Output;
export type GroupDescription = DescribedGroup__Output;

/** Where reset-offsets moves a group: the log start, the high watermark, a time, or given offsets. */
export type OffsetResetTarget =
  | { to: 'earliest' | 'latest' }
  | { to: 'timestamp'; timestampMs: number }
  | { to: 'offsets'; offsets: Record<number, number> };
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

/** Consumer group administration: any node finds the coordinator; the coordinator answers. */
export class GroupAdmin {
  constructor(private readonly client: RiffleClient) {}

  private async coordinator(groupId: string): Promise<string> {
    const response = await this.client.callAnyWithRetries<FindCoordinatorResponse__Output>('riffle.v1.Kafka', 'FindCoordinator', { keyType: 0, coordinatorKeys: [groupId] });
    const found = response.coordinators[0];
    if (!found) throw new RiffleError('UNKNOWN_SERVER_ERROR', 'FindCoordinator answered without a coordinator.');
    throwIfError(found.errorCode, found.errorMessage);
    return `${found.host}:${found.port}`;
  }

  /** Calls a group's coordinator, finding it again while it moves or loads. */
  private callCoordinator<Response>(groupId: string, method: string, request: object, errorOf: (response: Response) => { code: number; message: string }): Promise<Response> {
    return withRetries(async () => {
      const response = await this.client.connection(await this.coordinator(groupId)).call<Response>('riffle.v1.Kafka', method, request, this.client.requestTimeoutMs);
      const error = errorOf(response);
      throwIfError(error.code, error.message);
      return response;
    }, this.client.retry);
  }

  /** Every group of the cluster: each live broker lists the groups it coordinates. */
  async listGroups(): Promise<ListedGroup[]> {
    await this.client.refreshMetadata([]);
    const groups = new Map<string, ListedGroup>();
    await Promise.all(this.client.knownBrokers().map(async (broker) => {
      const response = await withRetries(() => this.client.connection(broker.address).call<ListGroupsResponse__Output>('riffle.v1.Kafka', 'ListGroups', {}, this.client.requestTimeoutMs), this.client.retry);
      for (const group of response.groups) groups.set(group.groupId, group);
    }));
    return [...groups.values()].sort((a, b) => (a.groupId < b.groupId ? -1 : 1));
  }

  async describeGroup(groupId: string): Promise<GroupDescription> {
    const response = await this.callCoordinator<DescribeGroupsResponse__Output>(groupId, 'DescribeGroups', { groupIds: [groupId] },
      (answer) => ({ code: answer.groups[0]?.errorCode ?? 0, message: answer.groups[0]?.errorMessage ?? '' }));
    return response.groups[0]!;
  }

  async deleteGroup(groupId: string): Promise<void> {
    await this.callCoordinator<DeleteGroupsResponse__Output>(groupId, 'DeleteGroups', { groupsNames: [groupId] },
      (answer) => ({ code: answer.results[0]?.errorCode ?? 0, message: answer.results[0]?.errorMessage ?? '' }));
  }

  /** The committed offsets of a group, by topic and partition. */
  async fetchOffsets(groupId: string): Promise<{ topic: string; partition: number; offset: number; metadata: string }[]> {
    const response = await this.callCoordinator<OffsetFetchResponse__Output>(groupId, 'OffsetFetch', { groups: [{ groupId, memberId: '', memberEpoch: -1, topics: [] }] },
      (answer) => ({ code: answer.groups[0]?.errorCode ?? 0, message: answer.groups[0]?.errorMessage ?? '' }));
    return (response.groups[0]?.topics ?? []).flatMap((topic) => topic.partitions.map((partition) => ({
      topic: topic.name, partition: partition.partitionIndex, offset: Number(partition.committedOffset), metadata: partition.metadata,
    })));
  }

  /**
   * Moves an inactive group's committed offsets of a topic (all its partitions, or the given
   * ones); a group with members refuses with NON_EMPTY_GROUP. Returns the offsets committed.
   */
  async resetOffsets(groupId: string, topic: string, target: OffsetResetTarget, partitions?: number[]): Promise<{ partition: number; offset: number }[]> {
    const metadata = await this.client.topicMetadata(topic, true);
    const chosen = target.to === 'offsets' ? Object.keys(target.offsets).map(Number) : partitions ?? metadata.partitions.map((partition) => partition.partition);
    const offsets: { partition: number; offset: number }[] = [];
    for (const partition of chosen) {
      if (!metadata.partitions.some((candidate) => candidate.partition === partition)) throw new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `Topic '${topic}' has no partition ${partition}.`);
      const offset = target.to === 'offsets' ? target.offsets[partition]! : await this.lookupOffset(topic, partition, timestampOf(target));
      offsets.push({ partition, offset });
    }
    await this.callCoordinator<OffsetCommitResponse__Output>(groupId, 'OffsetCommit', {
      groupId, generationIdOrMemberEpoch: -1, memberId: '', groupInstanceId: '',
      topics: [{ name: topic, partitions: offsets.map(({ partition, offset }) => ({ partitionIndex: partition, committedOffset: offset, committedLeaderEpoch: -1, committedMetadata: '' })) }],
    }, (answer) => {
      const failed = answer.topics.flatMap((entry) => entry.partitions).find((partition) => partition.errorCode !== 0);
      return { code: failed?.errorCode ?? 0, message: failed?.errorMessage ?? '' };
    });
    return offsets;
  }

  /** ListOffsets on the leader; a timestamp past the last record resolves to the high watermark. */
  private async lookupOffset(topic: string, partition: number, timestamp: number): Promise<number> {
    const offset = await this.client.listOffset(topic, partition, timestamp);
    return offset >= 0 ? offset : this.client.listOffset(topic, partition, -1);
  }
}

function timestampOf(target: OffsetResetTarget): number {
  if (target.to === 'earliest') return -2;
  if (target.to === 'latest') return -1;
  if (target.to === 'timestamp') return target.timestampMs;
  throw new RiffleError('INVALID_REQUEST', 'Explicit offsets need no lookup.');
}

function throwIfError(code: number, message: string): void {
  if (code !== 0) throw new RiffleError(errorNameOf(code), message || undefined);
}
