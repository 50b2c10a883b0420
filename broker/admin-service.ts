// The admin API on one broker: topics, cluster description and configs. Each topic in a request
// succeeds or fails on its own, with Kafka's error code in the response.
import type { ClusterView } from './cluster-view.js';
import type { ReplicaManager } from './replica-manager.js';
import type { TopicManager } from './topic-manager.js';
import type { TopicRecord } from './topic-store.js';
import { RiffleError, toRiffleError } from '../src/rpc/errors.js';
import { unary, type HandlerContext } from '../src/rpc/server.js';
import type { AdminHandlers } from '../src/rpc/generated/riffle/v1/Admin.js';
import type { CreateTopicsRequest__Output } from '../src/rpc/generated/riffle/v1/CreateTopicsRequest.js';
import type { CreateTopicsResponse } from '../src/rpc/generated/riffle/v1/CreateTopicsResponse.js';
import type { DeleteTopicsRequest__Output } from '../src/rpc/generated/riffle/v1/DeleteTopicsRequest.js';
import type { DeleteTopicsResponse } from '../src/rpc/generated/riffle/v1/DeleteTopicsResponse.js';
import type { DescribeTopicsRequest__Output } from '../src/rpc/generated/riffle/v1/DescribeTopicsRequest.js';
import type { DescribeTopicsResponse } from '../src/rpc/generated/riffle/v1/DescribeTopicsResponse.js';
import type { TopicDescription } from '../src/rpc/generated/riffle/v1/TopicDescription.js';
import type { ListTopicsRequest__Output } from '../src/rpc/generated/riffle/v1/ListTopicsRequest.js';
import type { ListTopicsResponse } from '../src/rpc/generated/riffle/v1/ListTopicsResponse.js';
import type { CreatePartitionsRequest__Output } from '../src/rpc/generated/riffle/v1/CreatePartitionsRequest.js';
import type { CreatePartitionsResponse } from '../src/rpc/generated/riffle/v1/CreatePartitionsResponse.js';
import type { DescribeClusterResponse } from '../src/rpc/generated/riffle/v1/DescribeClusterResponse.js';
import type { DescribeConfigsRequest__Output } from '../src/rpc/generated/riffle/v1/DescribeConfigsRequest.js';
import type { DescribeConfigsResponse } from '../src/rpc/generated/riffle/v1/DescribeConfigsResponse.js';
import type { DescribeConfigsResult } from '../src/rpc/generated/riffle/v1/DescribeConfigsResult.js';
import type { DescribedConfig } from '../src/rpc/generated/riffle/v1/DescribedConfig.js';

/** The most topics one admin request may name. */
export const ADMIN_REQUEST_TOPICS_MAX = 1000;

export interface AdminServiceDeps {
  cluster: ClusterView;
  topics: TopicManager;
  replicas: ReplicaManager;
}

export function adminHandlers(context: HandlerContext, deps: AdminServiceDeps): Partial<AdminHandlers> {
  return {
    CreateTopics: unary(context, 'CreateTopics', (request: CreateTopicsRequest__Output) => createTopics(deps, request)),
    DeleteTopics: unary(context, 'DeleteTopics', (request: DeleteTopicsRequest__Output) => deleteTopics(deps, request)),
    DescribeTopics: unary(context, 'DescribeTopics', async (request: DescribeTopicsRequest__Output) => describeTopics(deps, request)),
    ListTopics: unary(context, 'ListTopics', async (request: ListTopicsRequest__Output) => listTopics(deps, request)),
    CreatePartitions: unary(context, 'CreatePartitions', (request: CreatePartitionsRequest__Output) => createPartitions(deps, request)),
    DescribeCluster: unary(context, 'DescribeCluster', async () => describeCluster(deps)),
    DescribeConfigs: unary(context, 'DescribeConfigs', async (request: DescribeConfigsRequest__Output) => describeConfigs(deps, request)),
  };
}

function checkCount(count: number): void {
  if (count > ADMIN_REQUEST_TOPICS_MAX) throw new RiffleError('INVALID_REQUEST', `At most ${ADMIN_REQUEST_TOPICS_MAX} topics per request, got ${count}.`);
}

async function createTopics(deps: AdminServiceDeps, request: CreateTopicsRequest__Output): Promise<CreateTopicsResponse> {
  checkCount(request.topics.length);
  const topics = [];
  for (const wanted of request.topics) {
    const spec = {
      name: wanted.name,
      partitions: wanted.numPartitions === 0 ? -1 : wanted.numPartitions,
      replicationFactor: wanted.replicationFactor === 0 ? -1 : wanted.replicationFactor,
      configs: Object.fromEntries(wanted.configs.map((entry) => [entry.name, entry.value])),
    };
    try {
      if (request.validateOnly) {
        const record = deps.topics.validate(spec);
        if (deps.topics.get(spec.name)) throw new RiffleError('TOPIC_ALREADY_EXISTS', `Topic '${spec.name}' already exists.`);
        topics.push({ name: wanted.name, errorCode: 0, numPartitions: record.partitions, replicationFactor: record.replicationFactor });
        continue;
      }
      const record = await deps.topics.create(spec);
      topics.push({
        name: record.name,
        topicId: record.topicId,
        errorCode: 0,
        numPartitions: record.partitions,
        replicationFactor: record.replicationFactor,
        configs: Object.entries(record.configs).map(([name, value]) => ({ name, value })),
      });
    } catch (error) {
      const riffleError = toRiffleError(error);
      topics.push({ name: wanted.name, errorCode: riffleError.code, errorMessage: riffleError.message, numPartitions: -1, replicationFactor: -1 });
    }
  }
  return { topics };
}

async function deleteTopics(deps: AdminServiceDeps, request: DeleteTopicsRequest__Output): Promise<DeleteTopicsResponse> {
  checkCount(request.topicNames.length);
  const responses = [];
  for (const name of request.topicNames) {
    try {
      const record = await deps.topics.delete(name);
      responses.push({ name, topicId: record.topicId, errorCode: 0 });
    } catch (error) {
      const riffleError = toRiffleError(error);
      responses.push({ name, errorCode: riffleError.code, errorMessage: riffleError.message });
    }
  }
  return { responses };
}

function describeTopics(deps: AdminServiceDeps, request: DescribeTopicsRequest__Output): DescribeTopicsResponse {
  checkCount(request.topicNames.length);
  const names = request.topicNames.length > 0 ? request.topicNames : deps.topics.list().map((topic) => topic.name);
  return {
    topics: names.map((name): TopicDescription => {
      const topic = deps.topics.get(name);
      if (!topic) {
        const error = new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `Topic '${name}' does not exist.`);
        return { name, errorCode: error.code, errorMessage: error.message };
      }
      return describeTopic(deps, topic);
    }),
  };
}

function describeTopic(deps: AdminServiceDeps, topic: TopicRecord): TopicDescription {
  const self = deps.cluster.selfId;
  const partitions = Array.from({ length: topic.partitions }, (_, index) => {
    const partition = deps.replicas.findPartition(topic.name, index);
    if (!partition) return { partitionIndex: index, leaderId: -1, leaderEpoch: -1, replicaNodes: [self], isrNodes: [], offlineReplicas: [self] };
    return {
      partitionIndex: index,
      leaderId: self,
      leaderEpoch: partition.leaderEpoch,
      replicaNodes: [self],
      isrNodes: [self],
      logStartOffset: partition.logStartOffset,
      highWatermark: partition.highWatermark,
      logEndOffset: partition.logEndOffset,
      sizeBytes: partition.log.sizeBytes,
    };
  });
  return {
    errorCode: 0,
    name: topic.name,
    topicId: topic.topicId,
    isInternal: topic.internal,
    kind: topic.kind,
    replicationFactor: topic.replicationFactor,
    partitions,
    configs: Object.entries(topic.configs).map(([name, value]) => ({ name, value })),
  };
}

function listTopics(deps: AdminServiceDeps, request: ListTopicsRequest__Output): ListTopicsResponse {
  return {
    topics: deps.topics
      .list()
      .filter((topic) => request.includeInternal || !topic.internal)
      .map((topic) => ({
        name: topic.name,
        topicId: topic.topicId,
        kind: topic.kind,
        numPartitions: topic.partitions,
        replicationFactor: topic.replicationFactor,
        isInternal: topic.internal,
      })),
  };
}

async function createPartitions(deps: AdminServiceDeps, request: CreatePartitionsRequest__Output): Promise<CreatePartitionsResponse> {
  checkCount(request.topics.length);
  const results = [];
  for (const wanted of request.topics) {
    try {
      await deps.topics.createPartitions(wanted.name, wanted.count, request.validateOnly);
      results.push({ name: wanted.name, errorCode: 0 });
    } catch (error) {
      const riffleError = toRiffleError(error);
      results.push({ name: wanted.name, errorCode: riffleError.code, errorMessage: riffleError.message });
    }
  }
  return { results };
}

function describeCluster(deps: AdminServiceDeps): DescribeClusterResponse {
  return {
    clusterId: deps.cluster.clusterId,
    controllerId: deps.cluster.controllerId(),
    brokers: deps.cluster.brokers().map((broker) => ({
      brokerId: broker.nodeId,
      host: broker.host,
      port: broker.port,
      rack: broker.rack,
      roles: broker.roles,
      state: broker.state,
      httpEndpoint: broker.httpEndpoint,
    })),
  };
}

function describeConfigs(deps: AdminServiceDeps, request: DescribeConfigsRequest__Output): DescribeConfigsResponse {
  return { results: request.resources.map((resource) => describeResourceConfigs(deps, resource)) };
}

function describeResourceConfigs(
  deps: AdminServiceDeps,
  resource: DescribeConfigsRequest__Output['resources'][number],
): DescribeConfigsResult {
  const base = { resourceType: resource.resourceType, resourceName: resource.resourceName };
  if (resource.resourceType !== 'topic') {
    const error = new RiffleError('INVALID_REQUEST', `Unknown resource type '${resource.resourceType}'; only 'topic' configs are described.`);
    return { ...base, errorCode: error.code, errorMessage: error.message };
  }
  const topic = deps.topics.get(resource.resourceName);
  if (!topic) {
    const error = new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `Topic '${resource.resourceName}' does not exist.`);
    return { ...base, errorCode: error.code, errorMessage: error.message };
  }
  const effective = deps.replicas.logConfigOf(topic);
  const values: Record<string, string> = {
    'segment.bytes': String(effective.segmentBytes),
    'segment.ms': String(effective.segmentMs),
    'retention.ms': String(effective.retentionMs),
    'retention.bytes': String(effective.retentionBytes),
    'flush.policy': effective.flushPolicy,
    'flush.interval.ms': String(effective.flushIntervalMs),
    'index.interval.bytes': String(effective.indexIntervalBytes),
    'max.message.bytes': String(effective.maxBatchBytes),
    'min.insync.replicas': topic.configs['min.insync.replicas'] ?? '1',
  };
  const wanted = resource.configurationKeys.length > 0 ? resource.configurationKeys : Object.keys(values);
  const configs: DescribedConfig[] = wanted
    .filter((name) => name in values)
    .map((name) => ({ name, value: values[name]!, readOnly: false, isDefault: !(name in topic.configs), source: name in topic.configs ? 'topic' : 'default' }));
  return { ...base, errorCode: 0, configs };
}
