// The group coordinator of one broker: a GroupShard for every __consumer_offsets partition this
// broker leads, loaded when it becomes leader and dropped when it stops, and the group operations
// (KIP-848 heartbeat, offset commit and fetch, describe, list, delete) routed to the shard of
// partition hash(group) mod N. A periodic tick expires sessions, fences members that do not
// revoke within their rebalance timeout, expires the offsets of groups empty for longer than
// the retention, and samples consumer lag for the metrics.
//
// Room for the classic protocol: a shard keys groups by id and records the group type in its
// state ('consumer' here); JoinGroup/SyncGroup would be more operations on the same shard and
// the same records file, as in Kafka 4, without a second coordinator.
import { OFFSETS_TOPIC, type MetadataImage } from '../../controller/index.js';
import type { ReplicaManager } from '../replica-manager.js';
import { RiffleError, toRiffleError } from '../../src/rpc/errors.js';
import type { Logger } from '../../src/util/logger.js';
import {
  cloneGroup, deletionRecords, expireMember, groupStateOf, heartbeat, newGroup, validateCommitter, validateGroupId,
  METADATA_BYTES_MAX, type GroupState, type HeartbeatInput, type HeartbeatOutcome, type TopicCatalog,
} from './consumer-group.js';
import { GroupShard, type ShardOperationResult } from './group-shard.js';
import type { CancelSignal } from './parked-heartbeats.js';
import type { GroupMetrics } from './group-metrics.js';
import { LAG_SAMPLE_INTERVAL_MS, type GroupOffsetsToSample, type LagSampler } from './lag-sampler.js';
import { offsetsPartitionFor, tpKey, type OffsetsRecord, type OffsetValue } from './offsets-records.js';

export interface GroupCoordinatorConfig {
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  offsetsRetentionMs: number;
}

export interface GroupCoordinatorOptions {
  selfId: number;
  replicas: ReplicaManager;
  image: () => MetadataImage;
  logger: Logger;
  config: GroupCoordinatorConfig;
  metrics: GroupMetrics;
  lag: LagSampler;
}

/** How often sessions, revocation deadlines and retention are checked. */
export const GROUP_TICK_MS = 100;
/** A member that is reconciling is asked back this soon, so partitions move quickly. */
export const RECONCILING_HEARTBEAT_INTERVAL_MS = 100;
/** Heartbeats of one group waiting for their shard's turn at most; beyond, refused (retriable). */
export const HEARTBEAT_BATCH_MAX = 2_000;
/** Times one held heartbeat is woken and run again before it is answered as it stands. */
const HOLD_ROUNDS_MAX = 100;
/** How often retention of empty groups' offsets is checked. */
const RETENTION_CHECK_MS = 60_000;
export const TOPIC_NAME_LENGTH_MAX = 249;

interface PendingHeartbeat {
  input: HeartbeatInput;
  resolve: (outcome: HeartbeatOutcome) => void;
  reject: (error: unknown) => void;
}

export type HeartbeatAnswer = HeartbeatOutcome & { heartbeatIntervalMs: number; sessionTimeoutMs: number; longPoll: boolean };

export interface CommitPartition {
  topic: string;
  partition: number;
  offset: number;
  leaderEpoch: number;
  metadata: string;
}

export class GroupCoordinator {
  private readonly shards = new Map<number, GroupShard>();
  /** Heartbeats waiting for their shard's turn, by shard and group (see runHeartbeat). */
  private readonly pendingHeartbeats = new Map<GroupShard, Map<string, PendingHeartbeat[]>>();
  private racksImage?: MetadataImage;
  private readonly racksByTopic = new Map<string, readonly (readonly string[])[]>();
  private timer?: NodeJS.Timeout;
  private lagTimer?: NodeJS.Timeout;
  private lagSampling = false;
  private lastRetentionCheckMs = 0;
  private closed = false;

  constructor(private readonly options: GroupCoordinatorOptions) {
    options.metrics.bind({
      groups: () => this.listGroups(),
      loadedPartitions: () => this.loadedShards().length,
      parkedHeartbeats: () => [...this.shards.values()].reduce((sum, shard) => sum + shard.parked.size, 0),
      lag: () => this.options.lag.latest,
    });
  }

  get config(): GroupCoordinatorConfig {
    return this.options.config;
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), GROUP_TICK_MS);
    this.timer.unref();
    this.lagTimer = setInterval(() => this.sampleLag(), LAG_SAMPLE_INTERVAL_MS);
    this.lagTimer.unref();
  }

  private sampleLag(): void {
    if (this.lagSampling || this.closed) return;
    this.lagSampling = true;
    this.options.lag.sampleAll(this.listGroups().map(offsetsToSample))
      .catch((error: unknown) => this.options.logger.warn({ err: error }, 'lag sampling failed'))
      .finally(() => (this.lagSampling = false));
  }

  /** A fresh lag reading of one group (for DescribeGroups). */
  async lagOf(group: GroupState): Promise<Map<string, { logEndOffset: number; lagRecords: number; lagMs: number }>> {
    const sampled = await this.options.lag.sample([offsetsToSample(group)]);
    const result = new Map<string, { logEndOffset: number; lagRecords: number; lagMs: number }>();
    for (const lag of sampled.get(group.groupId) ?? []) result.set(tpKey(lag.topic, lag.partition), lag);
    return result;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    clearInterval(this.lagTimer);
    this.options.lag.close();
    for (const shard of this.shards.values()) shard.close();
    this.shards.clear();
  }

  loadedShards(): GroupShard[] {
    return [...this.shards.values()].filter((shard) => shard.state === 'active');
  }

  /** Loads shards for the offsets partitions this broker now leads; drops the others. */
  syncLeadership(): void {
    if (this.closed) return;
    const topic = this.options.image().topicByName(OFFSETS_TOPIC);
    const led = new Set<number>();
    for (const info of topic?.partitions ?? []) {
      const partition = this.options.replicas.findPartition(OFFSETS_TOPIC, info.partition);
      if (!partition?.isLeader) continue;
      led.add(info.partition);
      const shard = this.shards.get(info.partition);
      if (shard && shard.leaderEpoch === partition.leaderEpoch && shard.partition === partition && shard.state !== 'closed') continue;
      shard?.close();
      this.load(new GroupShard(partition, partition.leaderEpoch, this.options.logger));
    }
    for (const [index, shard] of this.shards) {
      if (led.has(index)) continue;
      shard.close();
      this.shards.delete(index);
      this.options.logger.info(`broker ${this.options.selfId} stopped coordinating offsets partition ${index}`);
    }
  }

  private load(shard: GroupShard): void {
    this.shards.set(shard.index, shard);
    const started = performance.now();
    shard.load().then(
      () => {
        if (shard.state !== 'active') return;
        this.options.metrics.loadDuration.observe((performance.now() - started) / 1000);
        for (const groupId of shard.groups.keys()) this.touchAllSessions(shard, groupId);
        this.options.logger.info(`broker ${this.options.selfId} coordinates offsets partition ${shard.index} at leader epoch ${shard.leaderEpoch}: ${shard.groups.size} groups from ${shard.loadedRecords} records`);
      },
      (error: unknown) => {
        this.options.logger.error({ err: error, partition: shard.index }, 'loading an offsets partition failed');
        shard.close();
        if (this.shards.get(shard.index) === shard) this.shards.delete(shard.index);
      },
    );
  }

  /** The offsets partition of a group and its current leader (-1 when unknown or leaderless). */
  coordinatorOf(groupId: string): { partition: number; leader: number } {
    const topic = this.options.image().topicByName(OFFSETS_TOPIC);
    if (!topic || topic.partitions.length === 0) throw new RiffleError('COORDINATOR_NOT_AVAILABLE', 'The offsets topic does not exist yet.');
    const partition = offsetsPartitionFor(groupId, topic.partitions.length);
    return { partition, leader: topic.partitions[partition]!.leader };
  }

  /** The active shard of a group; NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS otherwise. */
  shardFor(groupId: string): GroupShard {
    validateGroupId(groupId);
    const { partition } = this.coordinatorOf(groupId);
    const shard = this.shards.get(partition);
    if (!shard) throw new RiffleError('NOT_COORDINATOR', `Broker ${this.options.selfId} does not coordinate group '${groupId}'.`);
    shard.requireActive();
    return shard;
  }

  catalog(): TopicCatalog {
    return {
      partitionCounts: () => {
        const counts = new Map<string, number>();
        for (const topic of this.options.image().topics.values()) if (!topic.internal) counts.set(topic.name, topic.partitions.length);
        return counts;
      },
      partitionRacks: (topic) => this.partitionRacks(topic),
    };
  }

  /** The racks (brokers' AZs) holding a replica of each partition of a topic; cached per metadata image. */
  private partitionRacks(topicName: string): readonly (readonly string[])[] {
    const image = this.options.image();
    if (image !== this.racksImage) {
      this.racksImage = image;
      this.racksByTopic.clear();
    }
    let racks = this.racksByTopic.get(topicName);
    if (racks) return racks;
    racks = (image.topicByName(topicName)?.partitions ?? []).map((partition) =>
      [...new Set(partition.replicas.map((nodeId) => image.broker(nodeId)?.rack ?? '').filter((rack) => rack !== ''))].sort());
    this.racksByTopic.set(topicName, racks);
    return racks;
  }

  // ---- heartbeat ----

  /**
   * One ConsumerGroupHeartbeat. With `longPollMaxWaitMs` > 0 (the long-poll extension), an answer
   * that would be "no change" is held for up to min(that, the heartbeat interval) and the
   * heartbeat is run again as soon as a committed change concerns this member (see
   * parked-heartbeats.ts); a held heartbeat keeps the member's session alive.
   */
  async heartbeat(input: HeartbeatInput, longPollMaxWaitMs = 0, cancel?: CancelSignal): Promise<HeartbeatAnswer> {
    const shard = this.shardFor(input.groupId);
    try {
      // At most one held heartbeat per member: a newer one ends the older before it runs.
      if (input.memberId) shard.parked.end(input.groupId, input.memberId, 'superseded');
      let outcome = await this.runHeartbeat(shard, input);
      const waitMs = Math.min(Math.max(0, longPollMaxWaitMs), this.config.heartbeatIntervalMs);
      // `longPoll` tells the member it may heartbeat again at once; never for a "no change" that
      // was not held (no room to hold it), or the member would spin.
      let longPoll = waitMs > 0;
      if (waitMs > 0 && outcome.assignment === null && !outcome.left) {
        const held = await this.hold(shard, input, outcome, performance.now() + waitMs, cancel);
        outcome = held.outcome;
        longPoll = held.held;
      }
      this.options.metrics.heartbeats.inc({ outcome: 'ok' });
      return { ...outcome, heartbeatIntervalMs: this.intervalFor(shard, input.groupId, outcome.memberId), sessionTimeoutMs: this.config.sessionTimeoutMs, longPoll };
    } catch (error) {
      this.options.metrics.heartbeats.inc({ outcome: toRiffleError(error).errorName });
      throw error;
    }
  }

  /**
   * Runs a heartbeat in its shard's turn. Heartbeats of one group that arrive while the shard is
   * busy are run together as one operation and one appended batch (group commit): each runs on a
   * copy of the state the previous one left, a failing one changes nothing, and all are answered
   * once the batch is committed. A member joining, or every held heartbeat of a group woken by one
   * change, then costs one replicated write instead of one each.
   */
  private runHeartbeat(shard: GroupShard, input: HeartbeatInput): Promise<HeartbeatOutcome> {
    return new Promise((resolve, reject) => {
      let groups = this.pendingHeartbeats.get(shard);
      if (!groups) this.pendingHeartbeats.set(shard, (groups = new Map()));
      const pending = groups.get(input.groupId);
      if (pending) {
        if (pending.length >= HEARTBEAT_BATCH_MAX) {
          reject(new RiffleError('COORDINATOR_NOT_AVAILABLE', `${pending.length} heartbeats of group '${input.groupId}' are waiting.`));
          return;
        }
        pending.push({ input, resolve, reject });
        return;
      }
      const batch: PendingHeartbeat[] = [{ input, resolve, reject }];
      groups.set(input.groupId, batch);
      shard.run(() => this.heartbeatBatch(shard, input.groupId, batch)).then(
        (results) => results.forEach((result, index) => (result.error === undefined ? batch[index]!.resolve(result.outcome!) : batch[index]!.reject(result.error))),
        (error: unknown) => {
          this.closeBatch(shard, input.groupId, batch);
          batch.forEach((entry) => entry.reject(error));
        },
      );
    });
  }

  /** From here on, new heartbeats of the group start the next batch. */
  private closeBatch(shard: GroupShard, groupId: string, batch: PendingHeartbeat[]): void {
    const groups = this.pendingHeartbeats.get(shard);
    if (groups?.get(groupId) === batch) groups.delete(groupId);
    if (groups?.size === 0) this.pendingHeartbeats.delete(shard);
  }

  private heartbeatBatch(shard: GroupShard, groupId: string, batch: PendingHeartbeat[]): ShardOperationResult<{ outcome?: HeartbeatOutcome; error?: unknown }[]> {
    this.closeBatch(shard, groupId, batch);
    const before = shard.groups.get(groupId);
    let working = before ?? newGroup(groupId);
    const results: { outcome?: HeartbeatOutcome; error?: unknown }[] = [];
    for (const { input } of batch) {
      const next = cloneGroup(working);
      try {
        results.push({ outcome: heartbeat(next, input, this.catalog()) });
        working = next;
      } catch (error) {
        results.push({ error });
      }
    }
    const changed = results.some((result) => result.outcome !== undefined);
    return {
      records: changed ? GroupShard.changes(groupId, before, working) : [],
      result: results,
      afterCommit: () => {
        for (const result of results) if (result.outcome) this.afterMembershipChange(shard, groupId, result.outcome);
      },
    };
  }

  /** Holds a "no change" heartbeat until there is news for the member or `deadlineMs` passes. */
  private async hold(shard: GroupShard, input: HeartbeatInput, answered: HeartbeatOutcome, deadlineMs: number, cancel?: CancelSignal): Promise<{ outcome: HeartbeatOutcome; held: boolean }> {
    let outcome = answered;
    let held = false;
    const rerunInput = { ...input, memberId: answered.memberId };
    for (let rounds = 0; rounds < HOLD_ROUNDS_MAX; rounds++) {
      const leftMs = deadlineMs - performance.now();
      const group = shard.groups.get(input.groupId);
      if (leftMs <= 0 || !group || !shard.parked.hasRoom()) break;
      const end = await shard.parked.park(group, outcome.memberId, leftMs, cancel);
      held = true;
      this.options.metrics.parkedHeartbeatEnds.inc({ end });
      if (end === 'unloaded') throw new RiffleError('NOT_COORDINATOR', `Broker ${this.options.selfId} no longer coordinates group '${input.groupId}'.`);
      if (end !== 'changed') break;
      // News for this member: the same heartbeat again gives the new answer.
      outcome = await this.runHeartbeat(shard, rerunInput);
      if (outcome.assignment !== null || outcome.left) return { outcome, held };
    }
    // Held until now: the member was alive all along (its session counts from now).
    const session = shard.sessions.get(input.groupId)?.get(outcome.memberId);
    if (session && held) session.deadlineMs = Math.max(session.deadlineMs, performance.now() + this.config.sessionTimeoutMs);
    return { outcome, held };
  }

  private intervalFor(shard: GroupShard, groupId: string, memberId: string): number {
    const group = shard.groups.get(groupId);
    const current = group?.current.get(memberId);
    const reconciling = current !== undefined && (current.state !== 'stable' || current.memberEpoch !== group!.assignmentEpoch);
    return reconciling ? Math.min(RECONCILING_HEARTBEAT_INTERVAL_MS, this.config.heartbeatIntervalMs) : this.config.heartbeatIntervalMs;
  }

  private afterMembershipChange(shard: GroupShard, groupId: string, outcome: HeartbeatOutcome): void {
    const group = shard.groups.get(groupId);
    let sessions = shard.sessions.get(groupId);
    if (!sessions) shard.sessions.set(groupId, (sessions = new Map()));
    if (outcome.left && outcome.memberEpoch === -1) sessions.delete(outcome.memberId);
    else {
      // A static member that left keeps its place for one session timeout from now.
      const current = group?.current.get(outcome.memberId);
      const revoking = current?.state === 'unrevoked_partitions';
      const existing = sessions.get(outcome.memberId);
      const rebalanceTimeoutMs = group?.members.get(outcome.memberId)?.rebalanceTimeoutMs ?? 60_000;
      sessions.set(outcome.memberId, {
        deadlineMs: performance.now() + this.config.sessionTimeoutMs,
        revocationDeadlineMs: revoking ? existing?.revocationDeadlineMs ?? performance.now() + rebalanceTimeoutMs : null,
      });
    }
    for (const memberId of sessions.keys()) if (!group?.members.has(memberId)) sessions.delete(memberId);
    this.noteRebalance(shard, groupId, outcome.bumped, outcome.assignorMs);
  }

  private noteRebalance(shard: GroupShard, groupId: string, bumped: boolean, assignorMs: number | null): void {
    const metrics = this.options.metrics;
    if (assignorMs !== null) metrics.assignmentDuration.observe(assignorMs / 1000);
    const group = shard.groups.get(groupId);
    if (bumped) {
      metrics.rebalances.inc();
      if (!shard.rebalanceStartedMs.has(groupId)) shard.rebalanceStartedMs.set(groupId, performance.now());
    }
    const state = group ? groupStateOf(group) : 'empty';
    const started = shard.rebalanceStartedMs.get(groupId);
    if (started !== undefined && (state === 'stable' || state === 'empty')) {
      metrics.rebalanceDuration.observe((performance.now() - started) / 1000);
      shard.rebalanceStartedMs.delete(groupId);
    }
    if (state === 'empty') {
      if (!shard.emptySinceMs.has(groupId)) shard.emptySinceMs.set(groupId, Date.now());
    } else shard.emptySinceMs.delete(groupId);
  }

  private touchAllSessions(shard: GroupShard, groupId: string): void {
    const group = shard.groups.get(groupId);
    const sessions = new Map<string, { deadlineMs: number; revocationDeadlineMs: number | null }>();
    for (const [memberId, current] of group?.current ?? []) {
      const rebalanceTimeoutMs = group!.members.get(memberId)?.rebalanceTimeoutMs ?? 60_000;
      sessions.set(memberId, {
        deadlineMs: performance.now() + this.config.sessionTimeoutMs,
        revocationDeadlineMs: current.state === 'unrevoked_partitions' ? performance.now() + rebalanceTimeoutMs : null,
      });
    }
    shard.sessions.set(groupId, sessions);
  }

  // ---- periodic work ----

  private tick(): void {
    if (this.closed) return;
    this.syncLeadership();
    const now = performance.now();
    for (const shard of this.shards.values()) {
      if (shard.state !== 'active') continue;
      for (const [groupId, sessions] of shard.sessions) {
        for (const [memberId, session] of sessions) {
          // A member whose heartbeat is held right now is alive, whatever its deadline says.
          const expired = now > session.deadlineMs && !shard.parked.isParked(groupId, memberId);
          const notRevoking = session.revocationDeadlineMs !== null && now > session.revocationDeadlineMs;
          if (expired || notRevoking) this.removeMember(shard, groupId, memberId, expired ? 'session expired' : 'did not revoke within its rebalance timeout');
        }
      }
    }
    if (Date.now() - this.lastRetentionCheckMs >= Math.min(RETENTION_CHECK_MS, this.config.offsetsRetentionMs)) {
      this.lastRetentionCheckMs = Date.now();
      for (const shard of this.shards.values()) if (shard.state === 'active') this.expireOffsets(shard);
    }
  }

  private removeMember(shard: GroupShard, groupId: string, memberId: string, reason: string): void {
    // Taken out of the session table at once so the next tick does not try again meanwhile.
    shard.sessions.get(groupId)?.delete(memberId);
    shard.run(() => {
      const before = shard.groups.get(groupId);
      if (!before?.members.has(memberId)) return { records: [], result: undefined };
      const after = cloneGroup(before);
      const assignorMs = expireMember(after, memberId, this.catalog());
      return {
        records: GroupShard.changes(groupId, before, after),
        result: undefined,
        afterCommit: () => {
          this.options.metrics.membersRemoved.inc({ reason: reason === 'session expired' ? 'session_timeout' : 'rebalance_timeout' });
          this.options.logger.info(`group ${groupId} removed member ${memberId} (${reason}) at group epoch ${shard.groups.get(groupId)?.epoch ?? 0}`);
          this.noteRebalance(shard, groupId, true, assignorMs);
        },
      };
    }).catch((error: unknown) => {
      this.options.logger.warn({ err: error, groupId, memberId }, 'removing an expired member failed; the next tick retries');
      // Back in the table already past its deadline, unless the member came back meanwhile.
      const sessions = shard.sessions.get(groupId);
      if (sessions && !sessions.has(memberId) && shard.groups.get(groupId)?.members.has(memberId)) sessions.set(memberId, { deadlineMs: 0, revocationDeadlineMs: null });
    });
  }

  /** Offsets retention: a group empty for longer than the retention loses the offsets committed before it. */
  private expireOffsets(shard: GroupShard): void {
    const nowMs = Date.now();
    const retention = this.config.offsetsRetentionMs;
    for (const [groupId, emptySince] of shard.emptySinceMs) {
      if (nowMs - emptySince < retention) continue;
      shard.run(() => {
        const group = shard.groups.get(groupId);
        if (!group || group.members.size > 0) return { records: [], result: 0 };
        const records: OffsetsRecord[] = [];
        for (const { topic, partition, value } of group.offsets.values()) {
          if (nowMs - value.commitTimestampMs >= retention) records.push({ type: 'offset', group: groupId, topic, partition, value: null });
        }
        if (records.length === group.offsets.size) records.push(...deletionRecords({ ...group, offsets: new Map() }));
        return {
          records,
          result: records.length,
          afterCommit: () => {
            const expired = records.filter((record) => record.type === 'offset').length;
            if (expired > 0) this.options.metrics.offsetsExpired.inc(expired);
            if (!shard.groups.has(groupId)) shard.emptySinceMs.delete(groupId);
          },
        };
      }).catch((error: unknown) => this.options.logger.warn({ err: error, groupId }, 'expiring offsets failed'));
    }
  }

  // ---- offsets ----

  async commit(groupId: string, memberId: string, memberEpoch: number, partitions: CommitPartition[]): Promise<Map<string, RiffleError | null>> {
    const shard = this.shardFor(groupId);
    const outcome = await shard.run(() => {
      const group = shard.groups.get(groupId);
      validateCommitter(group, memberId, memberEpoch);
      const errors = new Map<string, RiffleError | null>();
      const records: OffsetsRecord[] = [];
      const commitTimestampMs = Date.now();
      for (const wanted of partitions) {
        const key = tpKey(wanted.topic, wanted.partition);
        const error = validateCommit(wanted);
        errors.set(key, error);
        if (error) continue;
        const value: OffsetValue = { offset: wanted.offset, leaderEpoch: wanted.leaderEpoch, metadata: wanted.metadata, commitTimestampMs };
        records.push({ type: 'offset', group: groupId, topic: wanted.topic, partition: wanted.partition, value });
      }
      return { records, result: { errors, written: records.length } };
    });
    // A group that exists only through commits (a simple consumer or an admin tool) is empty from
    // its first commit on, so retention applies to it as to a group whose members left.
    const committed = shard.groups.get(groupId);
    if (committed && committed.members.size === 0 && !shard.emptySinceMs.has(groupId)) shard.emptySinceMs.set(groupId, Date.now());
    this.options.metrics.commits.inc({ outcome: 'ok' }, outcome.written);
    return outcome.errors;
  }

  /** Committed offsets of a group (all when `wanted` is null); -1 entries for partitions without one. */
  fetchOffsets(groupId: string, memberId: string, memberEpoch: number, wanted: { topic: string; partitions: number[] }[] | null): Map<string, { topic: string; partition: number; value: OffsetValue | null }> {
    const shard = this.shardFor(groupId);
    const group = shard.groups.get(groupId);
    // KIP-848: a member reading offsets is checked like a committer; anyone else reads freely.
    if (memberId) validateCommitter(group, memberId, memberEpoch);
    const result = new Map<string, { topic: string; partition: number; value: OffsetValue | null }>();
    if (wanted === null) {
      for (const [key, entry] of group?.offsets ?? []) result.set(key, entry);
      return result;
    }
    for (const topic of wanted) {
      for (const partition of topic.partitions) {
        const key = tpKey(topic.topic, partition);
        result.set(key, { topic: topic.topic, partition, value: group?.offsets.get(key)?.value ?? null });
      }
    }
    return result;
  }

  /** A group as the shard holds it (GROUP_ID_NOT_FOUND when it has neither members nor offsets). */
  group(groupId: string): GroupState {
    const group = this.shardFor(groupId).groups.get(groupId);
    if (!group) throw new RiffleError('GROUP_ID_NOT_FOUND', `Group '${groupId}' does not exist.`);
    return group;
  }

  listGroups(): GroupState[] {
    const groups: GroupState[] = [];
    for (const shard of this.loadedShards()) groups.push(...shard.groups.values());
    return groups;
  }

  async deleteGroup(groupId: string): Promise<void> {
    const shard = this.shardFor(groupId);
    await shard.run(() => {
      const group = shard.groups.get(groupId);
      if (!group) throw new RiffleError('GROUP_ID_NOT_FOUND', `Group '${groupId}' does not exist.`);
      if (group.members.size > 0) throw new RiffleError('NON_EMPTY_GROUP', `Group '${groupId}' has ${group.members.size} member(s).`);
      return {
        records: deletionRecords(group),
        result: undefined,
        afterCommit: () => {
          shard.sessions.delete(groupId);
          shard.emptySinceMs.delete(groupId);
          shard.rebalanceStartedMs.delete(groupId);
        },
      };
    });
  }
}

function offsetsToSample(group: GroupState): GroupOffsetsToSample {
  return { groupId: group.groupId, offsets: [...group.offsets.values()].map(({ topic, partition, value }) => ({ topic, partition, offset: value.offset })) };
}

function validateCommit(wanted: CommitPartition): RiffleError | null {
  if (!wanted.topic || wanted.topic.length > TOPIC_NAME_LENGTH_MAX) return new RiffleError('INVALID_TOPIC_EXCEPTION', `Invalid topic name '${wanted.topic}'.`);
  if (!Number.isSafeInteger(wanted.partition) || wanted.partition < 0) return new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `Invalid partition ${wanted.partition}.`);
  if (!Number.isSafeInteger(wanted.offset) || wanted.offset < 0) return new RiffleError('INVALID_REQUEST', `Invalid offset ${wanted.offset} for ${wanted.topic}-${wanted.partition}.`);
  if (Buffer.byteLength(wanted.metadata, 'utf8') > METADATA_BYTES_MAX) return new RiffleError('OFFSET_METADATA_TOO_LARGE', `Offset metadata is longer than ${METADATA_BYTES_MAX} bytes.`);
  return null;
}
