// The admin API on a broker. Reads (describe, list, configs, cluster) come from the broker's
// metadata image; writes (create, delete, grow topics, alter configs) are forwarded to the active
// controller, and the broker answers once its own image shows the change, so a client that
// creates a topic and then produces through the same broker finds it.
import type { ClusterView } from './cluster-view.js';
import type { ControllerClient } from './controller-client.js';
import type { MetadataCache } from './metadata-cache.js';
import type { ReplicaManager } from './replica-manager.js';
import { minInsyncReplicasOf, type MetadataImage, type TopicInfo } from '../controller/index.js';
import { RiffleError } from '../src/rpc/errors.js';
import { unary, type HandlerContext } from '../src/rpc/server.js';
import type { AdminHandlers } from '../src/rpc/generated/riffle/v1/Admin.js';
import type { CreateTopicsRequest__Output } from '../src/rpc/generated/riffle/v1/CreateTopicsRequest.js';
import type { CreateTopicsResponse__Output } from '../src/rpc/generated/riffle/v1/CreateTopicsResponse.js';
import type { DeleteTopicsRequest__Output } from '../src/rpc/generated/riffle/v1/DeleteTopicsRequest.js';
import type { DeleteTopicsResponse__Output } from '../src/rpc/generated/riffle/v1/DeleteTopicsResponse.js';
import type { DescribeTopicsRequest__Output } from '../src/rpc/generated/riffle/v1/DescribeTopicsRequest.js';
import type { DescribeTopicsResponse } from '../src/rpc/generated/riffle/v1/DescribeTopicsResponse.js';
import type { TopicDescription } from '../src/rpc/generated/riffle/v1/TopicDescription.js';
import type { ListTopicsRequest__Output } from '../src/rpc/generated/riffle/v1/ListTopicsRequest.js';
import type { ListTopicsResponse } from '../src/rpc/generated/riffle/v1/ListTopicsResponse.js';
import type { CreatePartitionsRequest__Output } from '../src/rpc/generated/riffle/v1/CreatePartitionsRequest.js';
import type { CreatePartitionsResponse__Output } from '../src/rpc/generated/riffle/v1/CreatePartitionsResponse.js';
import type { IncrementalAlterConfigsRequest__Output } from '../src/rpc/generated/riffle/v1/IncrementalAlterConfigsRequest.js';
import type { IncrementalAlterConfigsResponse__Output } from '../src/rpc/generated/riffle/v1/IncrementalAlterConfigsResponse.js';
import type { DescribeClusterResponse } from '../src/rpc/generated/riffle/v1/DescribeClusterResponse.js';
import type { DescribeQuorumResponse__Output } from '../src/rpc/generated/riffle/internal/DescribeQuorumResponse.js';
import type { DescribeConfigsRequest__Output } from '../src/rpc/generated/riffle/v1/DescribeConfigsRequest.js';
import type { DescribeConfigsResponse } from '../src/rpc/generated/riffle/v1/DescribeConfigsResponse.js';
import type { DescribeConfigsResult } from '../src/rpc/generated/riffle/v1/DescribeConfigsResult.js';
import type { DescribedConfig } from '../src/rpc/generated/riffle/v1/DescribedConfig.js';

/** The most topics one admin request may name. */
export const ADMIN_REQUEST_TOPICS_MAX = 1000;
/** How long a write waits for this broker's image to show the controller's change. */
export const METADATA_PROPAGATION_WAIT_MS = 5_000;

export interface AdminServiceDeps {
  cluster: ClusterView;
  controller: ControllerClient;
  metadata: MetadataCache;
  replicas: ReplicaManager;
}

export function adminHandlers(context: HandlerContext, deps: AdminServiceDeps): Partial<AdminHandlers> {
  return {
    CreateTopics: unary(context, 'CreateTopics', (request: CreateTopicsRequest__Output) => createTopics(deps, request)),
    DeleteTopics: unary(context, 'DeleteTopics', (request: DeleteTopicsRequest__Output) => deleteTopics(deps, request)),
    CreatePartitions: unary(context, 'CreatePartitions', (request: CreatePartitionsRequest__Output) => forward<CreatePartitionsResponse__Output>(deps, 'CreatePartitions', request)),
    IncrementalAlterConfigs: unary(context, 'IncrementalAlterConfigs', (request: IncrementalAlterConfigsRequest__Output) =>
      forward<IncrementalAlterConfigsResponse__Output>(deps, 'IncrementalAlterConfigs', request),
    ),
    DescribeTopics: unary(context, 'DescribeTopics', async (request: DescribeTopicsRequest__Output) => describeTopics(deps, request)),
    ListTopics: unary(context, 'ListTopics', async (request: ListTopicsRequest__Output) => listTopics(deps, request)),
    DescribeCluster: unary(context, 'DescribeCluster', () => describeCluster(deps)),
    DescribeConfigs: unary(context, 'DescribeConfigs', async (request: DescribeConfigsRequest__Output) => describeConfigs(deps, request)),
  };
}

function checkCount(count: number): void {
  if (count > ADMIN_REQUEST_TOPICS_MAX) throw new RiffleError('INVALID_REQUEST', `At most ${ADMIN_REQUEST_TOPICS_MAX} topics per request, got ${count}.`);
}

/** Forwards a write to the active controller, then waits until the local image has caught up with it. */
async function forward<Response>(deps: AdminServiceDeps, method: string, request: object): Promise<Response> {
  const response = await deps.controller.call<Response>(method, request, 30_000);
  await waitForLocalCatchUp(deps);
  return response;
}

/** Waits until this broker's image and replicas have caught up with the controller's committed offset. */
async function waitForLocalCatchUp(deps: AdminServiceDeps): Promise<void> {
  const committed = deps.metadata.committedOffset;
  await deps.metadata.waitFor((image) => image.offset >= committed, METADATA_PROPAGATION_WAIT_MS);
  await deps.replicas.whenSynced(committed, METADATA_PROPAGATION_WAIT_MS);
}

async function createTopics(deps: AdminServiceDeps, request: CreateTopicsRequest__Output): Promise<CreateTopicsResponse__Output> {
  checkCount(request.topics.length);
  const response = await deps.controller.call<CreateTopicsResponse__Output>('CreateTopics', request, 30_000);
  const created = response.topics.filter((topic) => topic.errorCode === 0 && !request.validateOnly).map((topic) => topic.name);
  await deps.metadata.waitFor((image) => created.every((name) => image.topicByName(name) !== undefined), METADATA_PROPAGATION_WAIT_MS);
  await deps.replicas.whenSynced(deps.metadata.offset, METADATA_PROPAGATION_WAIT_MS);
  return response;
}

async function deleteTopics(deps: AdminServiceDeps, request: DeleteTopicsRequest__Output): Promise<DeleteTopicsResponse__Output> {
  checkCount(request.topicNames.length);
  const response = await deps.controller.call<DeleteTopicsResponse__Output>('DeleteTopics', request, 30_000);
  const deleted = response.responses.filter((topic) => topic.errorCode === 0).map((topic) => topic.name);
  await deps.metadata.waitFor((image) => deleted.every((name) => image.topicByName(name) === undefined), METADATA_PROPAGATION_WAIT_MS);
  await deps.replicas.whenSynced(deps.metadata.offset, METADATA_PROPAGATION_WAIT_MS);
  return response;
}

function describeTopics(deps: AdminServiceDeps, request: DescribeTopicsRequest__Output): DescribeTopicsResponse {
  checkCount(request.topicNames.length);
  const image = deps.cluster.image();
  const names = request.topicNames.length > 0 ? request.topicNames : [...image.topics.values()].map((topic) => topic.name).sort();
  return {
    topics: names.map((name): TopicDescription => {
      const topic = image.topicByName(name);
      if (!topic) {
        const error = new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `Topic '${name}' does not exist.`);
        return { name, errorCode: error.code, errorMessage: error.message };
      }
      return describeTopic(deps, image, topic);
    }),
  };
}

function describeTopic(deps: AdminServiceDeps, image: MetadataImage, topic: TopicInfo): TopicDescription {
  const partitions = topic.partitions.map((info) => {
    // Offsets are known for the replicas this broker hosts; -1 elsewhere.
    const local = deps.replicas.findPartition(topic.name, info.partition);
    return {
      partitionIndex: info.partition,
      leaderId: info.leader,
      leaderEpoch: info.leaderEpoch,
      replicaNodes: [...info.replicas],
      isrNodes: [...info.isr],
      offlineReplicas: info.replicas.filter((id) => !image.isActiveBroker(id)),
      logStartOffset: local?.logStartOffset ?? -1,
      highWatermark: local?.highWatermark ?? -1,
      logEndOffset: local?.logEndOffset ?? -1,
      sizeBytes: local?.log.sizeBytes ?? -1,
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
    topics: [...deps.cluster.image().topics.values()]
      .filter((topic) => request.includeInternal || !topic.internal)
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((topic) => ({
        name: topic.name,
        topicId: topic.topicId,
        kind: topic.kind,
        numPartitions: topic.partitions.length,
        replicationFactor: topic.replicationFactor,
        isInternal: topic.internal,
      })),
  };
}

/** How long DescribeCluster waits for the controller's quorum view before answering without it. */
const QUORUM_DESCRIBE_TIMEOUT_MS = 1_000;

async function describeQuorum(deps: AdminServiceDeps): Promise<DescribeClusterResponse['quorum']> {
  try {
    const quorum = await deps.controller.call<DescribeQuorumResponse__Output>('DescribeQuorum', {}, QUORUM_DESCRIBE_TIMEOUT_MS);
    return {
      leaderId: quorum.leaderId,
      term: quorum.term,
      commitOffset: quorum.commitOffset,
      voters: quorum.voters.map((voter) => ({
        nodeId: voter.nodeId,
        host: voter.host,
        port: voter.port,
        lag: voter.matchOffset < 0 ? -1 : Math.max(0, quorum.commitOffset - voter.matchOffset),
      })),
    };
  } catch {
    return undefined;
  }
}

async function describeCluster(deps: AdminServiceDeps): Promise<DescribeClusterResponse> {
  const image = deps.cluster.image();
  return {
    quorum: await describeQuorum(deps),
    partitionCount: [...image.allPartitions()].length,
    underReplicatedPartitions: image.underReplicated().length,
    offlinePartitions: image.offline().length,
    metadataOffset: image.offset,
    clusterId: deps.cluster.clusterId(),
    controllerId: deps.cluster.controllerId(),
    brokers: deps.cluster.brokers().map((broker) => ({
      brokerId: broker.nodeId,
      host: broker.host,
      port: broker.port,
      rack: broker.rack,
      roles: broker.roles,
      state: broker.state,
      httpEndpoint: broker.httpEndpoint,
      brokerEpoch: broker.epoch,
    })),
  };
}

function describeConfigs(deps: AdminServiceDeps, request: DescribeConfigsRequest__Output): DescribeConfigsResponse {
  return { results: request.resources.map((resource) => describeResourceConfigs(deps, resource)) };
}

function describeResourceConfigs(deps: AdminServiceDeps, resource: DescribeConfigsRequest__Output['resources'][number]): DescribeConfigsResult {
  const base = { resourceType: resource.resourceType, resourceName: resource.resourceName };
  if (resource.resourceType !== 'topic') {
    const error = new RiffleError('INVALID_REQUEST', `Unknown resource type '${resource.resourceType}'; only 'topic' configs are described.`);
    return { ...base, errorCode: error.code, errorMessage: error.message };
  }
  const topic = deps.cluster.image().topicByName(resource.resourceName);
  if (!topic) {
    const error = new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `Topic '${resource.resourceName}' does not exist.`);
    return { ...base, errorCode: error.code, errorMessage: error.message };
  }
  const effective = deps.replicas.logConfigOf(topic.configs);
  const values: Record<string, string> = {
    'segment.bytes': String(effective.segmentBytes),
    'segment.ms': String(effective.segmentMs),
    'retention.ms': String(effective.retentionMs),
    'retention.bytes': String(effective.retentionBytes),
    'flush.policy': effective.flushPolicy,
    'flush.interval.ms': String(effective.flushIntervalMs),
    'index.interval.bytes': String(effective.indexIntervalBytes),
    'max.message.bytes': String(effective.maxBatchBytes),
    'min.insync.replicas': String(minInsyncReplicasOf(topic.configs, topic.replicationFactor)),
  };
  const wanted = resource.configurationKeys.length > 0 ? resource.configurationKeys : Object.keys(values);
  const configs: DescribedConfig[] = wanted
    .filter((name) => name in values)
    .map((name) => ({ name, value: values[name]!, readOnly: false, isDefault: !(name in topic.configs), source: name in topic.configs ? 'topic' : 'default' }));
  return { ...base, errorCode: 0, configs };
}
