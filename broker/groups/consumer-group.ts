// One consumer group's durable state and the KIP-848 rules that change it. Everything here is
// pure: an operation takes a copy of the group, changes it, and the shard (group-shard.ts) turns
// the difference into __consumer_offsets records (diffRecords), appends them, and only then
// makes the copy current. Replaying the same records (applyRecord) rebuilds the same state, so a
// new coordinator continues exactly where the old one stopped.
//
// The protocol, as in Kafka's GroupMetadataManager and CurrentAssignmentBuilder:
// - The group epoch rises whenever membership, a subscription or the subscribed topics' partition
//   counts change; the target assignment is then recomputed (by the assignor) at that epoch.
// - Each member reconciles towards its target independently: partitions it must give up are
//   first revoked (the member keeps its epoch and state `unrevoked_partitions` until a heartbeat
//   shows it no longer owns them); then it moves to the target epoch and receives the partitions
//   no other member still holds (`unreleased_partitions` until the others let go). So no
//   partition is ever held by two members, and members whose partitions do not move keep
//   consuming throughout: nobody stops the world.
// - A member's epoch fences it: a heartbeat or commit from an older epoch is refused.
import { createHash, randomUUID } from 'node:crypto';
import { RiffleError } from '../../src/rpc/errors.js';
import { ASSIGNORS, DEFAULT_ASSIGNOR } from './assignors.js';
import {
  assignmentEntries, assignmentEquals, assignmentOf, sortedAssignment, tpKey,
  type Assignment, type CurrentAssignmentValue, type MemberMetadataValue, type OffsetValue, type OffsetsRecord,
} from './offsets-records.js';

export interface GroupState {
  readonly groupId: string;
  /** False for a group that only has offsets (committed from outside any membership). */
  hasMetadata: boolean;
  epoch: number;
  subscriptionDigest: string;
  assignmentEpoch: number;
  readonly members: Map<string, MemberMetadataValue>;
  readonly current: Map<string, CurrentAssignmentValue>;
  readonly target: Map<string, Assignment>;
  /** Committed offsets by tpKey; shared (not copied) by cloneGroup. */
  offsets: Map<string, { topic: string; partition: number; value: OffsetValue }>;
}

export type GroupStateName = 'empty' | 'assigning' | 'reconciling' | 'stable';

export const LEAVE_EPOCH = -1;
export const STATIC_LEAVE_EPOCH = -2;
export const METADATA_BYTES_MAX = 4096;
export const GROUP_ID_LENGTH_MAX = 255;
export const MEMBERS_PER_GROUP_MAX = 1_000;
export const REGEX_LENGTH_MAX = 1_000;
export const SUBSCRIBED_TOPICS_MAX = 10_000;

export function newGroup(groupId: string): GroupState {
  return {
    groupId, hasMetadata: false, epoch: 0, subscriptionDigest: '', assignmentEpoch: 0,
    members: new Map(), current: new Map(), target: new Map(), offsets: new Map(),
  };
}

export function cloneGroup(group: GroupState): GroupState {
  return {
    ...group,
    members: new Map([...group.members].map(([id, meta]) => [id, { ...meta, subscribedTopicNames: [...meta.subscribedTopicNames] }])),
    current: new Map([...group.current].map(([id, value]) => [id, { ...value }])),
    target: new Map(group.target),
  };
}

export function groupStateOf(group: GroupState): GroupStateName {
  if (group.members.size === 0) return 'empty';
  if (group.assignmentEpoch < group.epoch) return 'assigning';
  for (const current of group.current.values()) {
    if (current.state === 'left') continue;
    if (current.state !== 'stable' || current.memberEpoch !== group.assignmentEpoch) return 'reconciling';
  }
  return 'stable';
}

/** Applies one replayed record; the inverse of diffRecords. */
export function applyRecord(groups: Map<string, GroupState>, record: OffsetsRecord): void {
  let group = groups.get(record.group);
  if (!group) {
    if (record.value === null) return;
    group = newGroup(record.group);
    groups.set(record.group, group);
  }
  switch (record.type) {
    case 'offset':
      if (record.value) group.offsets.set(tpKey(record.topic, record.partition), { topic: record.topic, partition: record.partition, value: record.value });
      else group.offsets.delete(tpKey(record.topic, record.partition));
      break;
    case 'group':
      group.hasMetadata = record.value !== null;
      group.epoch = record.value?.epoch ?? 0;
      group.subscriptionDigest = record.value?.subscriptionDigest ?? '';
      break;
    case 'target-epoch':
      group.assignmentEpoch = record.value?.assignmentEpoch ?? 0;
      break;
    case 'member':
      if (record.value) group.members.set(record.member, record.value);
      else group.members.delete(record.member);
      break;
    case 'target-member':
      if (record.value) group.target.set(record.member, record.value.partitions);
      else group.target.delete(record.member);
      break;
    case 'current-assignment':
      if (record.value) group.current.set(record.member, record.value);
      else group.current.delete(record.member);
      break;
  }
  if (!group.hasMetadata && group.members.size === 0 && group.offsets.size === 0 && group.current.size === 0 && group.target.size === 0) groups.delete(record.group);
}

/** The records that turn `before` (undefined: no such group) into `after` (undefined: deleted). */
export function diffRecords(groupId: string, before: GroupState | undefined, after: GroupState | undefined): OffsetsRecord[] {
  const records: OffsetsRecord[] = [];
  const group = groupId;
  const metaBefore = before?.hasMetadata ? { epoch: before.epoch, subscriptionDigest: before.subscriptionDigest } : null;
  const metaAfter = after?.hasMetadata ? { epoch: after.epoch, subscriptionDigest: after.subscriptionDigest } : null;
  if (JSON.stringify(metaBefore) !== JSON.stringify(metaAfter)) records.push({ type: 'group', group, value: metaAfter });
  if ((before?.assignmentEpoch ?? 0) !== (after?.assignmentEpoch ?? 0)) {
    records.push({ type: 'target-epoch', group, value: after ? { assignmentEpoch: after.assignmentEpoch } : null });
  }
  const memberIds = new Set([...(before?.members.keys() ?? []), ...(after?.members.keys() ?? []), ...(before?.current.keys() ?? []), ...(before?.target.keys() ?? []),
    ...(after?.current.keys() ?? []), ...(after?.target.keys() ?? [])]);
  for (const member of [...memberIds].sort()) {
    const metaOld = before?.members.get(member);
    const metaNew = after?.members.get(member);
    if (JSON.stringify(metaOld ?? null) !== JSON.stringify(metaNew ?? null)) records.push({ type: 'member', group, member, value: metaNew ?? null });
    const targetOld = before?.target.get(member);
    const targetNew = after?.target.get(member);
    if (JSON.stringify(targetOld ?? null) !== JSON.stringify(targetNew ?? null)) records.push({ type: 'target-member', group, member, value: targetNew ? { partitions: targetNew } : null });
    const currentOld = before?.current.get(member);
    const currentNew = after?.current.get(member);
    if (JSON.stringify(currentOld ?? null) !== JSON.stringify(currentNew ?? null)) records.push({ type: 'current-assignment', group, member, value: currentNew ?? null });
  }
  return records;
}

// ---- heartbeat ----

export interface HeartbeatInput {
  groupId: string;
  memberId: string;
  memberEpoch: number;
  instanceId: string;
  rackId: string;
  rebalanceTimeoutMs: number;
  subscribedTopicNames: string[] | null;
  subscribedTopicRegex: string | null;
  serverAssignor: string;
  /** Null when the request did not say what it owns. */
  ownedPartitions: Assignment | null;
  clientId: string;
  clientHost: string;
}

export interface HeartbeatOutcome {
  memberId: string;
  memberEpoch: number;
  /** Present when the member should be told its assignment. */
  assignment: Assignment | null;
  /** The member left (or was removed): it needs no session. */
  left: boolean;
  /** The group epoch was bumped by this heartbeat. */
  bumped: boolean;
  /** Milliseconds the assignor took, when it ran. */
  assignorMs: number | null;
}

export interface TopicCatalog {
  /** Partition counts of the topics a consumer may subscribe to (no internal topics). */
  partitionCounts(): ReadonlyMap<string, number>;
  /** Racks (AZs) of the brokers holding a replica of each partition of a topic, distinct and sorted. */
  partitionRacks?(topic: string): readonly (readonly string[])[];
}

export const DEFAULT_REBALANCE_TIMEOUT_MS = 60_000;

/** Runs one heartbeat against `group` (a copy the caller may discard); see the header. */
export function heartbeat(group: GroupState, input: HeartbeatInput, catalog: TopicCatalog, clock: () => number = performance.now.bind(performance)): HeartbeatOutcome {
  if (input.memberEpoch === LEAVE_EPOCH || input.memberEpoch === STATIC_LEAVE_EPOCH) return leave(group, input, catalog, clock);
  let memberId = input.memberId;
  let bump = false;
  let joined = false;
  if (input.memberEpoch === 0) {
    if (!memberId) memberId = randomUUID();
    const replaced = input.instanceId ? replaceStaticMember(group, memberId, input.instanceId) : false;
    const existing = group.current.get(memberId);
    if (!replaced) {
      if (!existing && group.members.size >= MEMBERS_PER_GROUP_MAX) throw new RiffleError('INVALID_REQUEST', `Group '${group.groupId}' already has ${MEMBERS_PER_GROUP_MAX} members.`);
      if (!input.subscribedTopicNames?.length && !input.subscribedTopicRegex) {
        throw new RiffleError('INVALID_REQUEST', 'A joining member must subscribe to topic names or a regex.');
      }
      // A join (or a rejoin after being fenced) starts from nothing: whatever the member thinks
      // it owns, it must not consume it under the old epoch.
      group.current.set(memberId, { memberEpoch: 0, previousMemberEpoch: -1, state: 'stable', assigned: {}, pendingRevocation: {} });
      bump = !existing;
    }
    joined = true;
  } else if (input.memberEpoch < 0) {
    throw new RiffleError('INVALID_REQUEST', `Member epoch ${input.memberEpoch} is not valid.`);
  } else {
    const current = group.current.get(memberId);
    if (!current || current.state === 'left') throw new RiffleError('UNKNOWN_MEMBER_ID', `Member '${memberId}' is not in group '${group.groupId}'.`);
    if (input.memberEpoch !== current.memberEpoch) {
      // A response lost on its way: the member may repeat the previous epoch while it owns
      // nothing it should not.
      const owned = input.ownedPartitions;
      const tolerated = input.memberEpoch === current.previousMemberEpoch && owned !== null && isSubset(owned, current.assigned);
      if (!tolerated) throw new RiffleError('FENCED_MEMBER_EPOCH', `Member '${memberId}' is at epoch ${current.memberEpoch}, not ${input.memberEpoch}.`);
    }
  }
  bump = updateMemberMetadata(group, memberId, input, joined) || bump;
  return finishHeartbeat(group, memberId, input, catalog, clock, bump, joined);
}

function finishHeartbeat(group: GroupState, memberId: string, input: HeartbeatInput, catalog: TopicCatalog, clock: () => number, bumpRequested: boolean, joined: boolean): HeartbeatOutcome {
  const { bumped, assignorMs } = refreshTarget(group, catalog, clock, bumpRequested);
  const before = group.current.get(memberId)!;
  const after = reconcile(group, memberId, input.ownedPartitions);
  group.current.set(memberId, after);
  const changed = !assignmentEquals(before.assigned, after.assigned) || before.memberEpoch !== after.memberEpoch;
  const ownedDiffers = input.ownedPartitions !== null && !assignmentEquals(input.ownedPartitions, after.assigned);
  return { memberId, memberEpoch: after.memberEpoch, assignment: changed || joined || ownedDiffers ? after.assigned : null, left: false, bumped, assignorMs };
}

function leave(group: GroupState, input: HeartbeatInput, catalog: TopicCatalog, clock: () => number): HeartbeatOutcome {
  const current = group.current.get(input.memberId);
  if (!current) throw new RiffleError('UNKNOWN_MEMBER_ID', `Member '${input.memberId}' is not in group '${group.groupId}'.`);
  const meta = group.members.get(input.memberId);
  if (input.memberEpoch === STATIC_LEAVE_EPOCH && meta?.instanceId) {
    // A static member keeps its partitions for the session timeout, so a restart moves nothing.
    group.current.set(input.memberId, { ...current, state: 'left', pendingRevocation: {} });
    return { memberId: input.memberId, memberEpoch: STATIC_LEAVE_EPOCH, assignment: null, left: true, bumped: false, assignorMs: null };
  }
  removeMember(group, input.memberId);
  const { assignorMs } = refreshTarget(group, catalog, clock, true);
  return { memberId: input.memberId, memberEpoch: LEAVE_EPOCH, assignment: null, left: true, bumped: true, assignorMs };
}

/** Removes a member (left, expired or fenced) and recomputes the target; returns the assignor time. */
export function expireMember(group: GroupState, memberId: string, catalog: TopicCatalog, clock: () => number = performance.now.bind(performance)): number | null {
  removeMember(group, memberId);
  return refreshTarget(group, catalog, clock, true).assignorMs;
}

function removeMember(group: GroupState, memberId: string): void {
  group.members.delete(memberId);
  group.current.delete(memberId);
  group.target.delete(memberId);
}

/** A static member rejoining under a new member id takes over its predecessor's place. */
function replaceStaticMember(group: GroupState, memberId: string, instanceId: string): boolean {
  for (const [oldId, meta] of group.members) {
    if (meta.instanceId !== instanceId || oldId === memberId) continue;
    const old = group.current.get(oldId)!;
    if (old.state !== 'left') {
      throw new RiffleError('UNRELEASED_INSTANCE_ID', `Instance '${instanceId}' is still used by member '${oldId}' of group '${group.groupId}'.`);
    }
    group.members.set(memberId, meta);
    group.current.set(memberId, { ...old, state: 'stable' });
    const target = group.target.get(oldId);
    if (target) group.target.set(memberId, target);
    removeMember(group, oldId);
    return true;
  }
  return false;
}

/** Takes the subscription from the request; returns whether the group epoch must rise. */
function updateMemberMetadata(group: GroupState, memberId: string, input: HeartbeatInput, joined: boolean): boolean {
  const previous = group.members.get(memberId);
  const serverAssignor = input.serverAssignor || previous?.serverAssignor || '';
  if (serverAssignor && !ASSIGNORS.has(serverAssignor)) {
    throw new RiffleError('UNSUPPORTED_ASSIGNOR', `Assignor '${serverAssignor}' is not one of ${[...ASSIGNORS.keys()].join(', ')}.`);
  }
  const regex = input.subscribedTopicRegex ?? previous?.subscribedTopicRegex ?? '';
  if (regex) compileSubscription(regex);
  const next: MemberMetadataValue = {
    instanceId: input.instanceId || previous?.instanceId || '',
    rackId: input.rackId || previous?.rackId || '',
    clientId: input.clientId || previous?.clientId || '',
    clientHost: input.clientHost || previous?.clientHost || '',
    subscribedTopicNames: input.subscribedTopicNames ? [...new Set(input.subscribedTopicNames)].sort() : previous?.subscribedTopicNames ?? [],
    subscribedTopicRegex: regex,
    serverAssignor,
    rebalanceTimeoutMs: input.rebalanceTimeoutMs > 0 ? input.rebalanceTimeoutMs : previous?.rebalanceTimeoutMs ?? DEFAULT_REBALANCE_TIMEOUT_MS,
  };
  if (next.subscribedTopicNames.length > SUBSCRIBED_TOPICS_MAX) throw new RiffleError('INVALID_REQUEST', `More than ${SUBSCRIBED_TOPICS_MAX} subscribed topics.`);
  group.members.set(memberId, next);
  group.hasMetadata = true;
  if (joined && !previous) return true;
  return previous !== undefined && (
    JSON.stringify(previous.subscribedTopicNames) !== JSON.stringify(next.subscribedTopicNames)
    || previous.subscribedTopicRegex !== next.subscribedTopicRegex
    || previous.serverAssignor !== next.serverAssignor
    || previous.rackId !== next.rackId);
}

const compiledRegexes = new Map<string, RegExp>();
const COMPILED_REGEXES_MAX = 1_000;

/** A subscription regex matches whole topic names (as Java's Pattern.matches does). */
export function compileSubscription(regex: string): RegExp {
  if (regex.length > REGEX_LENGTH_MAX) throw new RiffleError('INVALID_REQUEST', `Subscription regex is longer than ${REGEX_LENGTH_MAX} characters.`);
  let compiled = compiledRegexes.get(regex);
  if (compiled) return compiled;
  try {
    compiled = new RegExp(`^(?:${regex})$`);
  } catch (error) {
    throw new RiffleError('INVALID_REQUEST', `Subscription regex '${regex}' is invalid: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (compiledRegexes.size >= COMPILED_REGEXES_MAX) compiledRegexes.clear();
  compiledRegexes.set(regex, compiled);
  return compiled;
}

/** The existing topics a member's subscription resolves to. */
export function resolveSubscription(meta: MemberMetadataValue, counts: ReadonlyMap<string, number>): Set<string> {
  const topics = new Set<string>();
  for (const name of meta.subscribedTopicNames) if (counts.has(name)) topics.add(name);
  if (meta.subscribedTopicRegex) {
    const regex = compileSubscription(meta.subscribedTopicRegex);
    for (const name of counts.keys()) if (regex.test(name)) topics.add(name);
  }
  return topics;
}

/**
 * Bumps the group epoch when asked or when the subscribed topics' partitions changed (new
 * partitions, or a new topic matching a regex), and recomputes the target assignment.
 */
function refreshTarget(group: GroupState, catalog: TopicCatalog, clock: () => number, bumpRequested: boolean): { bumped: boolean; assignorMs: number | null } {
  const counts = catalog.partitionCounts();
  const resolved = new Map<string, Set<string>>();
  const subscribed = new Map<string, number>();
  for (const [memberId, meta] of group.members) {
    const topics = resolveSubscription(meta, counts);
    resolved.set(memberId, topics);
    for (const topic of topics) subscribed.set(topic, counts.get(topic)!);
  }
  // Replica racks matter to the assignment only when some member has a rack (KIP-881): then a
  // change of them (replicas moved) is a change of the subscribed topics, as in Kafka.
  const withRacks = catalog.partitionRacks !== undefined && [...group.members.values()].some((meta) => meta.rackId !== '');
  const partitionRacks = new Map<string, readonly (readonly string[])[]>();
  if (withRacks) for (const topic of subscribed.keys()) partitionRacks.set(topic, catalog.partitionRacks!(topic));
  const sortedTopics = [...subscribed].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  // With racks the digest is hashed: it is written down, and racks of 1,000 partitions are long.
  const digest = withRacks
    ? `racks:${createHash('sha256').update(JSON.stringify(sortedTopics.map(([topic, count]) => [topic, count, partitionRacks.get(topic)]))).digest('hex')}`
    : JSON.stringify(sortedTopics);
  const bumped = bumpRequested || digest !== group.subscriptionDigest;
  if (bumped) {
    group.epoch += 1;
    group.subscriptionDigest = digest;
    group.hasMetadata = true;
  }
  if (group.assignmentEpoch >= group.epoch) return { bumped, assignorMs: null };
  const started = clock();
  const assignor = ASSIGNORS.get(preferredAssignor(group)) ?? ASSIGNORS.get(DEFAULT_ASSIGNOR)!;
  const target = assignor.assign({
    members: [...group.members.keys()].map((memberId) => ({ memberId, topics: resolved.get(memberId)!, rackId: group.members.get(memberId)!.rackId })),
    partitionCounts: subscribed,
    previous: group.target,
    partitionRacks,
  });
  group.target.clear();
  for (const [memberId, assignment] of target) group.target.set(memberId, sortedAssignment(assignment));
  group.assignmentEpoch = group.epoch;
  return { bumped, assignorMs: clock() - started };
}

/** The assignor most members ask for (ties: by name), or the default. */
export function preferredAssignor(group: GroupState): string {
  const votes = new Map<string, number>();
  for (const meta of group.members.values()) if (meta.serverAssignor) votes.set(meta.serverAssignor, (votes.get(meta.serverAssignor) ?? 0) + 1);
  let best = DEFAULT_ASSIGNOR;
  let bestVotes = 0;
  for (const [name, count] of [...votes].sort()) {
    if (count > bestVotes) {
      best = name;
      bestVotes = count;
    }
  }
  return best;
}

/**
 * Moves one member towards its target (Kafka's CurrentAssignmentBuilder): revoke first, then
 * take the new epoch and whatever is free. `owned` is what the member says it holds, if it said.
 */
export function reconcile(group: GroupState, memberId: string, owned: Assignment | null): CurrentAssignmentValue {
  let current = group.current.get(memberId)!;
  if (current.state === 'left') return current;
  if (current.state === 'unrevoked_partitions') {
    const stillOwned = owned !== null && [...assignmentEntries(current.pendingRevocation)].some(([topic, partition]) => owned[topic]?.includes(partition));
    if (owned === null || stillOwned) return current;
    current = { ...current, state: 'stable', pendingRevocation: {} };
  }
  if (current.state === 'stable' && current.memberEpoch === group.assignmentEpoch) return current;
  const target = group.target.get(memberId) ?? {};
  const targetKeys = new Set([...assignmentEntries(target)].map(([topic, partition]) => tpKey(topic, partition)));
  const kept: [string, number][] = [];
  const revoked: [string, number][] = [];
  for (const entry of assignmentEntries(current.assigned)) (targetKeys.has(tpKey(entry[0], entry[1])) ? kept : revoked).push(entry);
  if (revoked.length > 0) {
    return { ...current, state: 'unrevoked_partitions', assigned: assignmentOf(kept), pendingRevocation: assignmentOf(revoked) };
  }
  const taken = ownedByOthers(group, memberId);
  const keptKeys = new Set(kept.map(([topic, partition]) => tpKey(topic, partition)));
  const assigned = [...kept];
  let unreleased = false;
  for (const [topic, partition] of assignmentEntries(target)) {
    const key = tpKey(topic, partition);
    if (keptKeys.has(key)) continue;
    if (taken.has(key)) unreleased = true;
    else assigned.push([topic, partition]);
  }
  const epochChanged = current.memberEpoch !== group.assignmentEpoch;
  return {
    memberEpoch: group.assignmentEpoch,
    previousMemberEpoch: epochChanged ? current.memberEpoch : current.previousMemberEpoch,
    state: unreleased ? 'unreleased_partitions' : 'stable',
    assigned: assignmentOf(assigned),
    pendingRevocation: {},
  };
}

/** Partitions some other member holds or has yet to revoke. */
export function ownedByOthers(group: GroupState, memberId: string): Set<string> {
  const taken = new Set<string>();
  for (const [otherId, other] of group.current) {
    if (otherId === memberId) continue;
    for (const [topic, partition] of assignmentEntries(other.assigned)) taken.add(tpKey(topic, partition));
    for (const [topic, partition] of assignmentEntries(other.pendingRevocation)) taken.add(tpKey(topic, partition));
  }
  return taken;
}

/** Who holds each partition (assigned, or pending revocation), by tpKey. */
export function partitionHolders(group: GroupState): Map<string, string> {
  const holders = new Map<string, string>();
  for (const [memberId, current] of group.current) {
    for (const [topic, partition] of assignmentEntries(current.assigned)) holders.set(tpKey(topic, partition), memberId);
    for (const [topic, partition] of assignmentEntries(current.pendingRevocation)) holders.set(tpKey(topic, partition), memberId);
  }
  return holders;
}

/**
 * Whether a heartbeat of `memberId` that was answered "no change" (it repeated what it owns)
 * now has news that moves partitions: the member is gone, its target partitions differ from what
 * it holds (it must revoke, or may take more), or a partition it waits for was released. A member
 * revoking changes only by its own next heartbeat. A member whose partitions stay the same under
 * a new target epoch is not news worth waking for: it takes the epoch on its next heartbeat (at
 * the latest when its hold ends), so a rebalance wakes only the members whose partitions move.
 * Used to end long-poll heartbeats (parked-heartbeats.ts).
 */
export function heartbeatAnswerWouldChange(group: GroupState, memberId: string, holdersOf: (group: GroupState) => Map<string, string> = partitionHolders): boolean {
  const current = group.current.get(memberId);
  if (!current || current.state === 'left' || !group.members.has(memberId)) return true;
  if (current.state === 'unrevoked_partitions') return false;
  if (current.memberEpoch !== group.assignmentEpoch) return !assignmentEquals(current.assigned, group.target.get(memberId) ?? {});
  if (current.state === 'stable') return false;
  const holders = holdersOf(group);
  const assigned = new Set([...assignmentEntries(current.assigned)].map(([topic, partition]) => tpKey(topic, partition)));
  for (const [topic, partition] of assignmentEntries(group.target.get(memberId) ?? {})) {
    const key = tpKey(topic, partition);
    if (!assigned.has(key) && !holders.has(key)) return true;
  }
  return false;
}

function isSubset(a: Assignment, b: Assignment): boolean {
  for (const [topic, partition] of assignmentEntries(a)) if (!b[topic]?.includes(partition)) return false;
  return true;
}

// ---- offsets ----

/**
 * Checks who may commit (KIP-848): a member at exactly its current epoch; an older epoch is a
 * zombie (STALE_MEMBER_EPOCH), a newer one impossible (FENCED_MEMBER_EPOCH). A commit from outside
 * any membership (empty member id, epoch -1: admin tools, manual assignment) needs an empty group.
 */
export function validateCommitter(group: GroupState | undefined, memberId: string, memberEpoch: number): void {
  if (!memberId && memberEpoch < 0) {
    if (group && group.members.size > 0) {
      throw new RiffleError('NON_EMPTY_GROUP', `Group '${group.groupId}' has ${group.members.size} member(s); only its members may commit offsets.`);
    }
    return;
  }
  const current = group?.current.get(memberId);
  if (!group || !current || current.state === 'left') throw new RiffleError('UNKNOWN_MEMBER_ID', `Member '${memberId}' is not in group '${group?.groupId ?? ''}'.`);
  if (memberEpoch > current.memberEpoch) throw new RiffleError('FENCED_MEMBER_EPOCH', `Member '${memberId}' is at epoch ${current.memberEpoch}, not ${memberEpoch}.`);
  if (memberEpoch < current.memberEpoch) throw new RiffleError('STALE_MEMBER_EPOCH', `Member '${memberId}' is at epoch ${current.memberEpoch}; epoch ${memberEpoch} is stale.`);
}

/** The records deleting a group and everything it has. */
export function deletionRecords(group: GroupState): OffsetsRecord[] {
  const records = diffRecords(group.groupId, group, undefined);
  for (const { topic, partition } of group.offsets.values()) records.push({ type: 'offset', group: group.groupId, topic, partition, value: null });
  return records;
}

export function validateGroupId(groupId: string): void {
  if (!groupId) throw new RiffleError('INVALID_GROUP_ID', 'The group id is empty.');
  if (groupId.length > GROUP_ID_LENGTH_MAX) throw new RiffleError('INVALID_GROUP_ID', `The group id is longer than ${GROUP_ID_LENGTH_MAX} characters.`);
}
