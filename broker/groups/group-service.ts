// The consumer-group methods of the riffle.v1.Kafka service: FindCoordinator, ConsumerGroupHeartbeat,
// OffsetCommit, OffsetFetch, DescribeGroups, ListGroups and DeleteGroups. As in Kafka, per-group and
// per-partition failures are error codes in the response (a heartbeat's error is its error_code);
// a request that is wrong as a whole fails with a typed gRPC status.
import type * as grpc from '@grpc/grpc-js';
import { RiffleError, toRiffleError } from '../../src/rpc/errors.js';
import { unary, type HandlerContext } from '../../src/rpc/server.js';
import type { KafkaHandlers } from '../../src/rpc/generated/riffle/v1/Kafka.js';
import type { FindCoordinatorRequest__Output } from '../../src/rpc/generated/riffle/v1/FindCoordinatorRequest.js';
import type { FindCoordinatorResponse } from '../../src/rpc/generated/riffle/v1/FindCoordinatorResponse.js';
import type { ConsumerGroupHeartbeatRequest__Output } from '../../src/rpc/generated/riffle/v1/ConsumerGroupHeartbeatRequest.js';
import type { ConsumerGroupHeartbeatResponse } from '../../src/rpc/generated/riffle/v1/ConsumerGroupHeartbeatResponse.js';
import type { OffsetCommitRequest__Output } from '../../src/rpc/generated/riffle/v1/OffsetCommitRequest.js';
import type { OffsetCommitResponse } from '../../src/rpc/generated/riffle/v1/OffsetCommitResponse.js';
import type { OffsetFetchRequest__Output } from '../../src/rpc/generated/riffle/v1/OffsetFetchRequest.js';
import type { OffsetFetchResponse } from '../../src/rpc/generated/riffle/v1/OffsetFetchResponse.js';
import type { OffsetFetchGroupResponse } from '../../src/rpc/generated/riffle/v1/OffsetFetchGroupResponse.js';
import type { DescribeGroupsRequest__Output } from '../../src/rpc/generated/riffle/v1/DescribeGroupsRequest.js';
import type { DescribeGroupsResponse } from '../../src/rpc/generated/riffle/v1/DescribeGroupsResponse.js';
import type { DescribedGroup } from '../../src/rpc/generated/riffle/v1/DescribedGroup.js';
import type { ListGroupsRequest__Output } from '../../src/rpc/generated/riffle/v1/ListGroupsRequest.js';
import type { ListGroupsResponse } from '../../src/rpc/generated/riffle/v1/ListGroupsResponse.js';
import type { DeleteGroupsRequest__Output } from '../../src/rpc/generated/riffle/v1/DeleteGroupsRequest.js';
import type { DeleteGroupsResponse } from '../../src/rpc/generated/riffle/v1/DeleteGroupsResponse.js';
import type { TopicPartitions, TopicPartitions__Output } from '../../src/rpc/generated/riffle/v1/TopicPartitions.js';
import type { ClusterView } from '../cluster-view.js';
import { groupStateOf, preferredAssignor, type HeartbeatInput } from './consumer-group.js';
import type { CancelSignal } from './parked-heartbeats.js';
import type { GroupCoordinator } from './group-coordinator.js';
import { assignmentEntries, sortedAssignment, tpKey, type Assignment } from './offsets-records.js';

export interface GroupServiceDeps {
  coordinator: GroupCoordinator;
  cluster: ClusterView;
}

/** Keys, groups, partitions or members in one request at most. */
export const GROUP_REQUEST_ITEMS_MAX = 10_000;

export function groupHandlers(context: HandlerContext, deps: GroupServiceDeps): Partial<KafkaHandlers> {
  return {
    FindCoordinator: unary(context, 'FindCoordinator', async (request: FindCoordinatorRequest__Output) => findCoordinator(deps, request)),
    ConsumerGroupHeartbeat: unary(context, 'ConsumerGroupHeartbeat', async (request: ConsumerGroupHeartbeatRequest__Output, call: grpc.ServerUnaryCall<ConsumerGroupHeartbeatRequest__Output, ConsumerGroupHeartbeatResponse>) =>
      consumerGroupHeartbeat(deps, request, call.getPeer(), cancelSignalOf(call))),
    OffsetCommit: unary(context, 'OffsetCommit', async (request: OffsetCommitRequest__Output) => offsetCommit(deps, request)),
    OffsetFetch: unary(context, 'OffsetFetch', async (request: OffsetFetchRequest__Output) => offsetFetch(deps, request)),
    DescribeGroups: unary(context, 'DescribeGroups', async (request: DescribeGroupsRequest__Output) => describeGroups(deps, request)),
    ListGroups: unary(context, 'ListGroups', async (request: ListGroupsRequest__Output) => listGroups(deps, request)),
    DeleteGroups: unary(context, 'DeleteGroups', async (request: DeleteGroupsRequest__Output) => deleteGroups(deps, request)),
  };
}

function limit<T>(items: T[], what: string): T[] {
  if (items.length > GROUP_REQUEST_ITEMS_MAX) throw new RiffleError('INVALID_REQUEST', `At most ${GROUP_REQUEST_ITEMS_MAX} ${what} per request, got ${items.length}.`);
  return items;
}

function findCoordinator(deps: GroupServiceDeps, request: FindCoordinatorRequest__Output): FindCoordinatorResponse {
  return {
    coordinators: limit(request.coordinatorKeys, 'keys').map((key) => {
      try {
        // Key type 2 (a Kinesis-like application) maps to the same partition as a group of that
        // name; its state lives under record types of its own, so the names cannot collide.
        if (request.keyType !== 0 && request.keyType !== 2) throw new RiffleError('INVALID_REQUEST', `Coordinator key type ${request.keyType} is not supported (0: group, 2: application).`);
        if (!key) throw new RiffleError('INVALID_GROUP_ID', 'The group id is empty.');
        const { leader } = deps.coordinator.coordinatorOf(key);
        const broker = deps.cluster.liveBrokers().find((candidate) => candidate.nodeId === leader);
        if (!broker) throw new RiffleError('COORDINATOR_NOT_AVAILABLE', `The coordinator of group '${key}' is not available.`);
        return { key, nodeId: broker.nodeId, host: broker.host, port: broker.port, errorCode: 0, errorMessage: '' };
      } catch (error) {
        const riffleError = toRiffleError(error);
        return { key, nodeId: -1, host: '', port: -1, errorCode: riffleError.code, errorMessage: riffleError.message };
      }
    }),
  };
}

function assignmentFrom(topics: TopicPartitions__Output[]): Assignment {
  const assignment: Assignment = {};
  for (const topic of topics) {
    if (!topic.topicName) throw new RiffleError('INVALID_REQUEST', 'Owned partitions must name their topic.');
    for (const partition of topic.partitions) {
      if (!Number.isInteger(partition) || partition < 0) throw new RiffleError('INVALID_REQUEST', `Invalid partition ${partition}.`);
      (assignment[topic.topicName] ??= []).push(partition);
    }
  }
  return sortedAssignment(assignment);
}

function topicPartitionsOf(assignment: Assignment): TopicPartitions[] {
  return Object.entries(assignment).map(([topicName, partitions]) => ({ topicName, topicId: '', partitions }));
}

/** A held (long-poll) heartbeat ends when its client cancels the call or its deadline passes. */
function cancelSignalOf(call: grpc.ServerUnaryCall<unknown, unknown>): CancelSignal {
  // One listener on the call however often the heartbeat is held again (no listener leak warning).
  const listeners: (() => void)[] = [];
  call.once('cancelled', () => listeners.forEach((listener) => listener()));
  return {
    get cancelled() {
      return call.cancelled;
    },
    onCancel: (listener) => void listeners.push(listener),
  };
}

async function consumerGroupHeartbeat(deps: GroupServiceDeps, request: ConsumerGroupHeartbeatRequest__Output, peer: string, cancel: CancelSignal): Promise<ConsumerGroupHeartbeatResponse> {
  try {
    const joining = request.memberEpoch === 0;
    const hasSubscription = request.hasSubscription || joining;
    const input: HeartbeatInput = {
      groupId: request.groupId,
      memberId: request.memberId,
      memberEpoch: request.memberEpoch,
      instanceId: request.instanceId,
      rackId: request.rackId,
      rebalanceTimeoutMs: request.rebalanceTimeoutMs,
      subscribedTopicNames: hasSubscription ? limit(request.subscribedTopicNames, 'topics') : null,
      subscribedTopicRegex: hasSubscription ? request.subscribedTopicRegex : null,
      serverAssignor: request.serverAssignor,
      ownedPartitions: request.hasOwnedPartitions ? assignmentFrom(limit(request.topicPartitions, 'topics')) : null,
      clientId: '',
      clientHost: peer,
    };
    if (!input.memberId && request.memberEpoch !== 0) throw new RiffleError('UNKNOWN_MEMBER_ID', 'A member id is required once joined.');
    const outcome = await deps.coordinator.heartbeat(input, request.longPollMaxWaitMs, cancel);
    return {
      errorCode: 0, errorMessage: '', memberId: outcome.memberId, memberEpoch: outcome.memberEpoch, heartbeatIntervalMs: outcome.heartbeatIntervalMs, sessionTimeoutMs: outcome.sessionTimeoutMs,
      assignment: outcome.assignment ? { topicPartitions: topicPartitionsOf(outcome.assignment) } : null, throttleTimeMs: 0, longPoll: outcome.longPoll,
    };
  } catch (error) {
    const riffleError = toRiffleError(error);
    return { errorCode: riffleError.code, errorMessage: riffleError.message, memberId: request.memberId, memberEpoch: -1, heartbeatIntervalMs: 0, assignment: null, throttleTimeMs: 0 };
  }
}

async function offsetCommit(deps: GroupServiceDeps, request: OffsetCommitRequest__Output): Promise<OffsetCommitResponse> {
  const partitions = limit(request.topics.flatMap((topic) => topic.partitions.map((partition) => ({
    topic: topic.name, partition: partition.partitionIndex, offset: Number(partition.committedOffset),
    leaderEpoch: partition.committedLeaderEpoch, metadata: partition.committedMetadata,
  }))), 'partitions');
  let errors: Map<string, RiffleError | null>;
  try {
    errors = await deps.coordinator.commit(request.groupId, request.memberId, request.generationIdOrMemberEpoch, partitions);
  } catch (error) {
    // A whole-request failure (not the coordinator, fenced, stale) applies to every partition.
    const riffleError = toRiffleError(error);
    errors = new Map(partitions.map((partition) => [tpKey(partition.topic, partition.partition), riffleError]));
  }
  return {
    throttleTimeMs: 0,
    topics: request.topics.map((topic) => ({
      name: topic.name,
      partitions: topic.partitions.map((partition) => {
        const error = errors.get(tpKey(topic.name, partition.partitionIndex));
        return { partitionIndex: partition.partitionIndex, errorCode: error?.code ?? 0, errorMessage: error?.message ?? '' };
      }),
    })),
  };
}

function offsetFetch(deps: GroupServiceDeps, request: OffsetFetchRequest__Output): OffsetFetchResponse {
  return {
    throttleTimeMs: 0,
    groups: limit(request.groups, 'groups').map((wanted): OffsetFetchGroupResponse => {
      try {
        const topics = wanted.topics.length > 0 ? wanted.topics.map((topic) => ({ topic: topic.name, partitions: topic.partitionIndexes })) : null;
        const offsets = deps.coordinator.fetchOffsets(wanted.groupId, wanted.memberId, wanted.memberEpoch, topics);
        const byTopic = new Map<string, { partitionIndex: number; committedOffset: number; committedLeaderEpoch: number; metadata: string; errorCode: number }[]>();
        for (const { topic, partition, value } of offsets.values()) {
          let list = byTopic.get(topic);
          if (!list) byTopic.set(topic, (list = []));
          list.push({ partitionIndex: partition, committedOffset: value?.offset ?? -1, committedLeaderEpoch: value?.leaderEpoch ?? -1, metadata: value?.metadata ?? '', errorCode: 0 });
        }
        return {
          groupId: wanted.groupId, errorCode: 0, errorMessage: '',
          topics: [...byTopic].sort().map(([name, partitions]) => ({ name, partitions: partitions.sort((a, b) => a.partitionIndex - b.partitionIndex) })),
        };
      } catch (error) {
        const riffleError = toRiffleError(error);
        return { groupId: wanted.groupId, errorCode: riffleError.code, errorMessage: riffleError.message, topics: [] };
      }
    }),
  };
}

async function describeGroups(deps: GroupServiceDeps, request: DescribeGroupsRequest__Output): Promise<DescribeGroupsResponse> {
  const groups = await Promise.all(limit(request.groupIds, 'groups').map(async (groupId): Promise<DescribedGroup> => {
    try {
      const group = deps.coordinator.group(groupId);
      const lag = await deps.coordinator.lagOf(group);
      const owners = new Map<string, string>();
      for (const [memberId, current] of group.current) for (const [topic, partition] of assignmentEntries(current.assigned)) owners.set(tpKey(topic, partition), memberId);
      return {
        errorCode: 0, errorMessage: '', groupId, groupState: groupStateOf(group), groupEpoch: group.epoch, assignmentEpoch: group.assignmentEpoch,
        assignorName: preferredAssignor(group), coordinatorId: deps.cluster.selfId,
        members: [...group.members].sort(([a], [b]) => (a < b ? -1 : 1)).map(([memberId, meta]) => {
          const current = group.current.get(memberId);
          return {
            memberId, instanceId: meta.instanceId, rackId: meta.rackId, memberEpoch: current?.memberEpoch ?? -1, clientId: meta.clientId, clientHost: meta.clientHost,
            subscribedTopicNames: meta.subscribedTopicNames, subscribedTopicRegex: meta.subscribedTopicRegex,
            assignment: { topicPartitions: topicPartitionsOf(current?.assigned ?? {}) },
            targetAssignment: { topicPartitions: topicPartitionsOf(group.target.get(memberId) ?? {}) },
            memberState: current?.state ?? 'stable',
            partitionsPendingRevocation: { topicPartitions: topicPartitionsOf(current?.pendingRevocation ?? {}) },
          };
        }),
        offsets: [...group.offsets.values()]
          .sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition))
          .map(({ topic, partition, value }) => {
            const reading = lag.get(tpKey(topic, partition));
            return {
              topic, partitionIndex: partition, committedOffset: value.offset, logEndOffset: reading?.logEndOffset ?? -1, lag: reading?.lagRecords ?? -1,
              metadata: value.metadata, lagMs: reading?.lagMs ?? -1, ownerMemberId: owners.get(tpKey(topic, partition)) ?? '',
            };
          }),
      };
    } catch (error) {
      const riffleError = toRiffleError(error);
      return { errorCode: riffleError.code, errorMessage: riffleError.message, groupId, groupState: 'dead', members: [], offsets: [], coordinatorId: deps.cluster.selfId };
    }
  }));
  return { groups };
}

function listGroups(deps: GroupServiceDeps, request: ListGroupsRequest__Output): ListGroupsResponse {
  const states = new Set(request.statesFilter.map((state) => state.toLowerCase()));
  const types = new Set(request.typesFilter.map((type) => type.toLowerCase()));
  const groups = deps.coordinator.listGroups()
    .map((group) => ({ groupId: group.groupId, protocolType: 'consumer', groupState: groupStateOf(group), groupType: 'consumer' }))
    .filter((group) => (states.size === 0 || states.has(group.groupState)) && (types.size === 0 || types.has(group.groupType)))
    .sort((a, b) => (a.groupId < b.groupId ? -1 : 1));
  return { errorCode: 0, groups };
}

async function deleteGroups(deps: GroupServiceDeps, request: DeleteGroupsRequest__Output): Promise<DeleteGroupsResponse> {
  const results = [];
  for (const groupId of limit(request.groupsNames, 'groups')) {
    try {
      await deps.coordinator.deleteGroup(groupId);
      results.push({ groupId, errorCode: 0, errorMessage: '' });
    } catch (error) {
      const riffleError = toRiffleError(error);
      results.push({ groupId, errorCode: riffleError.code, errorMessage: riffleError.message });
    }
  }
  return { results };
}
